"""What the simulator node measures about a run besides the route score: latencies,
the score of a run without a route, its progress line, and the atomic write of
``metrics.json``. No bus in here (the sim node feeds it).

Units: latencies in milliseconds of wall time; sim times in seconds; distances in
metres, world frame (CARLA's).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bus.messages import EgoState, NodeStatus, RunEvent
from sim.evaluation import EgoSample, RunTally, infraction_penalty


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int]:
    """p50, p99 and max (ms) of a series of latencies, and how many there were
    (all 0 for none)."""
    if not values_ms:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0, "count": 0}
    a = np.asarray(values_ms, float)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "count": len(a)}


@dataclass
class _NodeReports:
    p50: list[float] = field(default_factory=list)
    p99: float = 0.0
    max: float = 0.0
    reports: int = 0
    drops: int = 0
    deadline_misses: int = 0


class NodeLatencies:
    """Each node's callback latencies as it reports them on /diagnostics.

    A ``NodeStatus`` carries the p50/p99/max (ms) of the callbacks since the node's
    previous report, so over a run a node's p50 is the median of its reported p50s,
    its p99 the worst reported p99 and its max the worst max; reports of intervals
    without a callback (all zero) are left out of the p50. ``drops`` and
    ``deadline_misses`` are the node's own totals, as last reported."""

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeReports] = {}

    def add(self, status: NodeStatus) -> None:
        r = self._nodes.setdefault(status.node, _NodeReports())
        r.reports += 1
        r.drops, r.deadline_misses = status.drops, status.deadline_misses
        if status.latency_ms_max > 0.0:
            r.p50.append(status.latency_ms_p50)
            r.p99 = max(r.p99, status.latency_ms_p99)
            r.max = max(r.max, status.latency_ms_max)

    def summary(self) -> dict[str, dict[str, float | int]]:
        """{node: {p50, p99, max (ms), reports, drops, deadline_misses}}, by name."""
        return {name: {"p50": statistics.median(r.p50) if r.p50 else 0.0, "p99": r.p99,
                       "max": r.max, "reports": r.reports, "drops": r.drops,
                       "deadline_misses": r.deadline_misses}
                for name, r in sorted(self._nodes.items())}


class FreeDriveEvaluator(RunTally):
    """The score of a run without a route: its infractions, distance, duration and
    comfort, as :class:`sim.evaluation.RouteEvaluator` counts them, but no route
    completion or driving score (None in the metrics) and no end condition of its
    own: it ends on the first end event it is given (scenario_end at the
    scenario's duration). Same interface and metric keys as the RouteEvaluator.

    ``dt``: the simulator's tick (s), to tell consecutive ticks for the jerk."""

    route_completion = None  # nothing to complete

    def update_ego(self, ego: EgoState, events: Sequence[RunEvent] = (), *,
                   off_route: bool | None = None) -> list[RunEvent]:
        """One tick: the ego now and this tick's events; never an end event of its
        own (``off_route`` is accepted for the RouteEvaluator's interface: without a
        route there is no off-route share)."""
        if self.ended:
            return []
        self._track(EgoSample.from_ego_state(ego))
        for event in events:
            self._record(event)
        return []

    def metrics(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The RouteEvaluator's keys; those that need a route are None."""
        out: dict[str, Any] = {
            "driving_score": None,
            "route_completion": None,
            "infraction_penalty": infraction_penalty(self.counts),
            "infractions": {"counts": dict(self.counts),
                            "events": [asdict(i) for i in self.infractions]},
            "off_route_distance_m": None,
            "off_route_share": None,
            "route_length_m": None,
            "route_progress_m": None,
            "timeout_s": None,
            "duration_s": self.duration_s,
            "distance_m": self.distance_m,
            "comfort": self.comfort.summary(),
            "deadline_misses": self.deadline_misses,
            "completed": False,
            "end_reason": self.end_reason,
        }
        for key, value in (extra or {}).items():
            if key in out:
                raise ValueError(f"metrics: extra field {key!r} would replace a computed one")
            out[key] = value
        return out


def format_progress(sim_time_s: float, duration_s: float, distance_m: float,
                    route_percent: float | None, ticks_per_s: float) -> str:
    """The run's progress as the sim node puts it in its /diagnostics message:
    ``key=value`` fields separated by spaces (see :func:`parse_progress`);
    ``route_pct`` only for a run with a route."""
    fields = {"sim_time_s": f"{sim_time_s:.2f}", "duration_s": f"{duration_s:g}",
              "distance_m": f"{distance_m:.1f}", "ticks_per_s": f"{ticks_per_s:.1f}"}
    if route_percent is not None:
        fields["route_pct"] = f"{route_percent:.1f}"
    return " ".join(f"{k}={v}" for k, v in fields.items())


def parse_progress(message: str) -> dict[str, float]:
    """The fields of a :func:`format_progress` line; {} for any other message."""
    out = {}
    for item in message.split():
        key, sep, value = item.partition("=")
        if not sep:
            return {}
        try:
            out[key] = float(value)
        except ValueError:
            return {}
    return out


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename, so a
    reader never sees half a file (and a run killed while writing leaves the old one
    or none). Creates the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
