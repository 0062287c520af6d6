#!/usr/bin/env python
"""Benchmark: the planning stack on this machine, now, on one core.

    python bench/planning.py [--quick] [--queries N] [--rounds R]

route
    ``planning.route.RoutePlanner`` on the built-in ``town_grid`` and, when
    ../shared is present, CARLA's Town01: graph build time (median of ``rounds``
    builds, ``route_build_ms_<map>``) and route query time between random pairs of
    spawn points (``route_query_p50_ms_<map>``, ``route_query_p99_ms_<map>``, over
    ``queries`` queries, seeded), with the mean route length. Targets: Town01 build
    < 2 s, query p99 < 50 ms (``route_target_met``). Town01 figures are null
    without ../shared.

A new measurement is a function of (queries, rounds) returning its figures as a
dict, added to ``MEASUREMENTS``; ``main`` runs each and merges the figures. Prints a
table, then as the last line one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import carla
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planning.route import RoutePlanner, UnreachableError  # noqa: E402
from sim.maps import load_map  # noqa: E402
from sim.spawn import spawn_points  # noqa: E402

SHARED = REPO.parent / "shared"
BUILD_TARGET_S = 2.0
QUERY_P99_TARGET_MS = 50.0


def _route_maps() -> dict[str, carla.Map | None]:
    maps: dict[str, carla.Map | None] = {"town_grid": load_map("town_grid").map}
    town01 = SHARED / "maps" / "carla" / "Town01.xodr"
    maps["Town01"] = carla.Map("Town01", town01.read_text()) if town01.is_file() else None
    return maps


def bench_route(queries: int, rounds: int) -> dict[str, Any]:
    """Graph build and route query times per map (ms)."""
    figures: dict[str, Any] = {}
    met = True
    for name, carla_map in _route_maps().items():
        keys = ("build_ms", "query_p50_ms", "query_p99_ms", "mean_length_m", "nodes")
        if carla_map is None:
            figures.update({f"route_{k}_{name}": None for k in keys})
            continue
        builds = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            planner = RoutePlanner(carla_map)
            builds.append(time.perf_counter() - t0)
        points = spawn_points(carla_map)
        rng = random.Random(0)
        times, lengths = [], []
        while len(times) < queries:
            a, b = rng.sample(points, 2)
            t0 = time.perf_counter()
            try:
                route = planner.plan(a, b)
            except UnreachableError:
                continue
            times.append(time.perf_counter() - t0)
            lengths.append(route.length_m)
        ms = np.array(times) * 1e3
        build_ms = statistics.median(builds) * 1e3
        p99 = float(np.percentile(ms, 99))
        figures.update({
            f"route_build_ms_{name}": round(build_ms, 2),
            f"route_query_p50_ms_{name}": round(float(np.percentile(ms, 50)), 3),
            f"route_query_p99_ms_{name}": round(p99, 3),
            f"route_mean_length_m_{name}": round(float(np.mean(lengths)), 1),
            f"route_nodes_{name}": planner.node_count,
        })
        met = met and p99 < QUERY_P99_TARGET_MS and build_ms < BUILD_TARGET_S * 1e3
    figures["route_target_met"] = met
    return figures


MEASUREMENTS: dict[str, Callable[[int, int], dict[str, Any]]] = {"route": bench_route}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few queries and rounds")
    parser.add_argument("--queries", type=int, default=None, help="queries per map")
    parser.add_argument("--rounds", type=int, default=None, help="graph builds per map")
    args = parser.parse_args(argv)
    queries = args.queries or (50 if args.quick else 500)
    rounds = args.rounds or (2 if args.quick else 5)
    figures: dict[str, Any] = {"queries": queries, "rounds": rounds}
    for name, measure in MEASUREMENTS.items():
        t0 = time.perf_counter()
        figures.update(measure(queries, rounds))
        print(f"{name}: measured in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
