"""The sim node's own measurements: latency summaries, per-node latencies from
/diagnostics, the score of a run without a route, the progress line, metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bus.messages import EgoState, Header, NodeStatus, RunEvent, Transform, Vector3
from sim.evaluation import RouteEvaluator
from sim.run_metrics import (
    FreeDriveEvaluator,
    NodeLatencies,
    format_progress,
    latency_summary,
    parse_progress,
    write_json_atomic,
)


def test_latency_summary():
    assert latency_summary([]) == {"p50": 0.0, "p99": 0.0, "max": 0.0, "count": 0}
    s = latency_summary([float(v) for v in range(1, 102)])
    assert s == {"p50": 51.0, "p99": 100.0, "max": 101.0, "count": 101}


def test_node_latencies_keep_each_node_s_reports():
    lat = NodeLatencies()
    for p50, p99, mx in ((2.0, 5.0, 6.0), (0.0, 0.0, 0.0), (4.0, 9.0, 12.0), (3.0, 4.0, 5.0)):
        lat.add(NodeStatus(node="planning", latency_ms_p50=p50, latency_ms_p99=p99,
                           latency_ms_max=mx, drops=2, deadline_misses=1))
    lat.add(NodeStatus(node="control"))
    assert lat.summary() == {
        "control": {"p50": 0.0, "p99": 0.0, "max": 0.0, "reports": 1, "drops": 0,
                    "deadline_misses": 0},
        # an interval without callbacks does not drag the median down
        "planning": {"p50": 3.0, "p99": 9.0, "max": 12.0, "reports": 4, "drops": 2,
                     "deadline_misses": 1},
    }


def _ego(frame: int, x: float, speed: float = 10.0) -> EgoState:
    return EgoState(header=Header(frame, frame * 0.05),
                    transform=Transform(location=Vector3(x, 0.0, 0.0)),
                    velocity=Vector3(speed, 0.0, 0.0), speed=speed)


def test_a_run_without_a_route_counts_infractions_but_has_no_route_score():
    ev = FreeDriveEvaluator(dt=0.05)
    ev.update_ego(_ego(0, 0.0))
    hit = RunEvent(header=Header(1, 0.05), kind="collision_vehicle", actor_id=1, other_id=7)
    miss = RunEvent(header=Header(1, 0.05), kind="deadline_miss")
    assert ev.update_ego(_ego(1, 0.5), [hit, miss]) == []
    assert not ev.ended
    end = RunEvent(header=Header(2, 0.1), kind="scenario_end")
    ev.update_ego(_ego(2, 1.0), [end])
    ev.update_ego(_ego(3, 1.5), [hit])  # after the end: nothing counts
    m = ev.metrics({"ticks": 3})
    assert m["driving_score"] is None and m["route_completion"] is None
    assert m["infraction_penalty"] == pytest.approx(0.6)
    assert m["infractions"]["counts"]["collision_vehicle"] == 1
    assert m["infractions"]["events"][0]["other_id"] == 7
    assert m["deadline_misses"] == 1 and m["end_reason"] == "scenario_end"
    assert m["distance_m"] == pytest.approx(1.0) and m["duration_s"] == pytest.approx(0.1)
    assert m["ticks"] == 3
    # the same keys as a run with a route, so readers need no second schema
    route = RouteEvaluator(np.array([[0.0, 0.0], [100.0, 0.0]]), dt=0.05)
    assert set(m) - {"ticks"} == set(route.metrics())
    with pytest.raises(ValueError, match="'distance_m' would replace"):
        ev.metrics({"distance_m": 3.0})


def test_progress_line_round_trips():
    line = format_progress(12.345, 120.0, 56.78, 34.56, 19.87)
    assert line == ("sim_time_s=12.35 duration_s=120 distance_m=56.8 ticks_per_s=19.9 "
                    "route_pct=34.6")
    assert parse_progress(line) == {"sim_time_s": 12.35, "duration_s": 120.0,
                                    "distance_m": 56.8, "ticks_per_s": 19.9,
                                    "route_pct": 34.6}
    assert "route_pct" not in parse_progress(format_progress(1.0, 2.0, 3.0, None, 4.0))
    assert parse_progress("waiting for publishers") == {}
    assert parse_progress("") == {}


def test_metrics_are_written_whole_or_not_at_all(tmp_path: Path):
    target = tmp_path / "run" / "metrics.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2, "b": None})
    assert json.loads(target.read_text()) == {"a": 2, "b": None}
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]
