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

steps
    the local planner's and the controller's time per tick (p50, p99, ms) while
    driving the dynamics model along an S-bend with 20 objects and a red light
    ahead, and each p99 as a fraction of the 50 ms sim tick. Targets: planner p99
    <= 5 ms, controller p99 <= 1 ms (``steps_target_met``).

A new measurement is a function of (queries, rounds) returning its figures as a
dict, added to ``MEASUREMENTS``; ``main`` runs each and merges the figures. Prints a
table, then as the last line one JSON object with every figure.
"""

from __future__ import annotations

import argparse
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

from bench.measure import run_and_report  # noqa: E402
from planning.route import RoutePlanner, UnreachableError  # noqa: E402
from sim.maps import load_map  # noqa: E402
from sim.spawn import spawn_points  # noqa: E402

SHARED = REPO.parent / "shared"
BUILD_TARGET_S = 2.0
QUERY_P99_TARGET_MS = 50.0
PLANNER_P99_TARGET_MS = 5.0
CONTROLLER_P99_TARGET_MS = 1.0


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


def bench_steps(queries: int, rounds: int) -> dict[str, Any]:
    """Per-tick cost of the local planner (behaviour + speed profile + trajectory)
    and of the controller, driving the dynamics model along an S-bend with 20
    objects around and a red light ahead, as a fraction of the 50 ms sim tick."""
    from bus.messages import (
        DetectedObject,
        EgoState,
        Header,
        ObjectList,
        Rotation,
        TrafficLightState,
        Transform,
        Vector3,
    )
    from control.controller import Controller
    from planning.local_planner import LocalPlanner
    from sim import dynamics

    theta = np.linspace(0.0, np.pi, 200)
    bend = np.stack([60.0 * np.sin(theta), 60.0 * (1 - np.cos(theta))], axis=1)
    route = np.concatenate([bend, bend[-1] + (bend[1:] - bend[0]) * [-1, 1]])
    rng = np.random.default_rng(0)
    objects = ObjectList(objects=[DetectedObject(
        track_id=i, label="vehicle" if i % 3 else "pedestrian",
        position=Vector3(float(rng.uniform(5, 60)), float(rng.uniform(-8, 8)), 0.8),
        size=Vector3(4.5, 1.9, 1.5), velocity=Vector3(float(rng.uniform(0, 10)), 0, 0))
        for i in range(20)])
    params = dynamics.load_vehicle("default_car")
    plan_ms, control_ms = [], []
    for _ in range(rounds):
        state = dynamics.VehicleState(speed=10.0, gear=3)
        planner, controller = LocalPlanner(route), Controller()
        for k in range(queries):
            ego = EgoState(header=Header(k, k * 0.05), transform=Transform(
                Vector3(state.x, state.y, 0.0), Rotation(0.0, state.yaw, 0.0)),
                speed=state.speed, speed_limit=13.9)
            t0 = time.perf_counter()
            traj = planner.plan(ego, objects, TrafficLightState(state="red", distance=150.0))
            t1 = time.perf_counter()
            control = controller.step(ego, traj)
            t2 = time.perf_counter()
            state = dynamics.step(state, control, params, 0.05)
            plan_ms.append((t1 - t0) * 1e3)
            control_ms.append((t2 - t1) * 1e3)
    tick_ms = 50.0
    p99_plan, p99_control = (float(np.percentile(v, 99)) for v in (plan_ms, control_ms))
    return {
        "planner_step_p50_ms": round(float(np.percentile(plan_ms, 50)), 3),
        "planner_step_p99_ms": round(p99_plan, 3),
        "controller_step_p50_ms": round(float(np.percentile(control_ms, 50)), 3),
        "controller_step_p99_ms": round(p99_control, 3),
        "planner_p99_vs_tick": round(p99_plan / tick_ms, 4),
        "controller_p99_vs_tick": round(p99_control / tick_ms, 4),
        "steps_target_met": bool(p99_plan <= PLANNER_P99_TARGET_MS
                                 and p99_control <= CONTROLLER_P99_TARGET_MS),
    }


MEASUREMENTS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "route": bench_route, "steps": bench_steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few queries and rounds")
    parser.add_argument("--queries", type=int, default=None, help="queries per map")
    parser.add_argument("--rounds", type=int, default=None, help="graph builds per map")
    args = parser.parse_args(argv)
    queries = args.queries or (50 if args.quick else 500)
    rounds = args.rounds or (2 if args.quick else 5)
    run_and_report(MEASUREMENTS, queries, rounds, {"queries": queries, "rounds": rounds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
