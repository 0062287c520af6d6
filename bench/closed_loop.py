#!/usr/bin/env python
"""Benchmark: the whole closed loop and its replay on this machine, now.

    python bench/closed_loop.py [--quick] [--duration S] [--rounds R]

loop
    ``drivestack run --scenario town_grid_route`` for ``duration`` sim seconds: the
    default launch (embedded simulator, perception, planning, control and the
    recorder, each its own process, one 640x360 camera, the CNN on the CPU), as a
    user runs it. Cases: ``cnn`` (perception's default, 1 thread), ``cnn_2threads``
    (``--cpu-threads 2``) and, the baseline, ``oracle`` (``--oracle``: ground truth
    instead of perception, the same processes otherwise: what the loop costs
    without the CNN). Per case the median over the rounds of the run's ticks/s
    (from its metrics.json, which also gives each node's p50 latency and the
    end-to-end p50: camera published to command received). Target: ``cnn`` >= 20
    ticks/s (real time at 20 Hz, ``loop_target_met``); ``cnn_vs_oracle`` is the
    ratio of the two.
replay
    ``drivestack replay --check`` of the last ``cnn`` run's recording (perception,
    planning and control re-run in-process on its camera and state messages):
    sim seconds replayed per wall second, the median over the rounds. Target >= 2x
    real time (``replay_target_met``); it must also report no mismatch.

Rounds alternate the cases, so a change in the machine's load hits all alike.
Prints a table, then as the last line one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.measure import run_and_report  # noqa: E402
from launch.replay import ReplayOptions, replay  # noqa: E402

SCENARIO = "town_grid_route"
LOOP_TARGET = 20.0  # ticks/s
REPLAY_TARGET = 2.0  # x real time
CASES: dict[str, list[str]] = {"cnn": [], "cnn_2threads": ["--cpu-threads", "2"],
                               "oracle": ["--oracle"]}


def run_loop(out: Path, duration: float, extra: list[str]) -> dict[str, Any]:
    """One ``drivestack run``; its metrics.json."""
    cmd = [sys.executable, "-m", "launch.cli", "run", "--scenario", SCENARIO,
           "--duration", str(duration), "--out", str(out), "--no-progress", *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    return json.loads((out / "metrics.json").read_text())


def measure(duration: float, rounds: int) -> dict[str, Any]:
    ticks: dict[str, list[float]] = {c: [] for c in CASES}
    nodes: dict[str, dict[str, list[float]]] = {c: {} for c in CASES}
    e2e: dict[str, list[float]] = {c: [] for c in CASES}
    speeds: list[float] = []
    mismatched = 0
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        for r in range(rounds):
            for case, extra in CASES.items():
                out = Path(tmp) / f"{case}-{r}"
                m = run_loop(out, duration, extra)
                ticks[case].append(m["ticks_per_s"])
                e2e[case].append(m["latency_ms"]["end_to_end"]["p50"])
                for node, lat in m["latency_ms"]["nodes"].items():
                    nodes[case].setdefault(node, []).append(lat["p50"])
                if case == "cnn":
                    result = replay(ReplayOptions(path=out / "drive.mcap"))
                    speeds.append(result.speed)
                    mismatched += sum(t.mismatched for t in result.topics)
    figures: dict[str, Any] = {"scenario": SCENARIO, "duration_s": duration,
                               "rounds": rounds}
    for case in CASES:
        figures[f"{case}_ticks_per_s"] = round(statistics.median(ticks[case]), 2)
        figures[f"{case}_end_to_end_p50_ms"] = round(statistics.median(e2e[case]), 1)
        for node, values in sorted(nodes[case].items()):
            figures[f"{case}_{node}_p50_ms"] = round(statistics.median(values), 1)
    figures["cnn_vs_oracle"] = round(figures["cnn_ticks_per_s"]
                                     / figures["oracle_ticks_per_s"], 3)
    figures["loop_target_ticks_per_s"] = LOOP_TARGET
    figures["loop_target_met"] = figures["cnn_ticks_per_s"] >= LOOP_TARGET
    figures["replay_x_realtime"] = round(statistics.median(speeds), 2)
    figures["replay_mismatched"] = mismatched
    figures["replay_target_met"] = (figures["replay_x_realtime"] >= REPLAY_TARGET
                                    and mismatched == 0)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 s runs, one round")
    ap.add_argument("--duration", type=float, default=20.0, help="sim seconds per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    duration, rounds = (10.0, 1) if args.quick else (args.duration, args.rounds)
    run_and_report({"closed_loop": lambda d, r: measure(float(d), r)}, duration, rounds,
                   {})


if __name__ == "__main__":
    main()
