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

ride
    comfort and the issue targets in closed loop (local planner + controller +
    the dynamics model, straight road, 20 s each): the jerk |da/dt| of the car's
    actual longitudinal acceleration (m/s^3, p99 and peak) when stopping at a red
    line 80 m ahead from 50 km/h (``ride_stop_*``, with its largest deceleration
    and the front bumper's stopping gap to the line), speeding up from standstill
    to 50 km/h (``ride_speedup_*``) and following a lead at 8 m/s
    (``ride_follow_*``); and, braking for an emergency, the smallest gap to a lead
    that brakes at 6 m/s^2 from 50 km/h (``ride_lead_brake_*``). Targets: jerk p99
    <= 5 m/s^3 in the three normal rides, the stop 0..1.5 m before the line at <= 4
    m/s^2, no collision (``ride_target_met``). Deterministic: ignores queries and
    rounds.

A new measurement is a function of (queries, rounds) returning its figures as a
dict, added to ``MEASUREMENTS``; ``main`` runs each and merges the figures. Prints a
table, then as the last line one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import math
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
from bus.messages import (  # noqa: E402
    DetectedObject,
    EgoState,
    Header,
    ObjectList,
    Rotation,
    TrafficLightState,
    Transform,
    Vector3,
)
from planning.route import RoutePlanner, UnreachableError  # noqa: E402
from sim.maps import load_map  # noqa: E402
from sim.spawn import spawn_points  # noqa: E402

SHARED = REPO.parent / "shared"
BUILD_TARGET_S = 2.0
QUERY_P99_TARGET_MS = 50.0
PLANNER_P99_TARGET_MS = 5.0
CONTROLLER_P99_TARGET_MS = 1.0
JERK_P99_TARGET = 5.0  # m/s^3, normal driving
STOP_DECEL_TARGET = 4.0  # m/s^2


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


def bench_ride(queries: int, rounds: int) -> dict[str, Any]:
    """Closed-loop comfort and targets (see the module docstring); ``queries`` and
    ``rounds`` are unused (the rides are deterministic)."""
    from control.controller import Controller
    from planning.local_planner import LocalPlanner
    from sim import dynamics

    dt, half, ticks = 0.05, 2.45, 400  # s, ego centre to bumper (m), 20 s
    route = np.stack([np.arange(-10.0, 1000.0, 2.0), np.zeros(505)], axis=1)
    params = dynamics.load_vehicle("default_car")

    def ride(speed: float, lead: dict[str, float] | None, decel_at: float, lead_decel: float,
             light: TrafficLightState | None) -> tuple[np.ndarray, float, float]:
        """Accelerations (m/s^2) per step, the smallest bumper gap to the lead (m)
        and the ego's final x (m)."""
        state = dynamics.VehicleState(speed=speed, gear=4 if speed > 5.0 else 1)
        planner, controller = LocalPlanner(route), Controller()
        accels, gap = [], float("inf")
        for k in range(ticks):
            objects = ObjectList()
            if lead is not None:
                a = -lead_decel if k * dt >= decel_at else 0.0
                lead["v"] = max(0.0, lead["v"] + a * dt)
                lead["x"] += lead["v"] * dt
                gap = min(gap, lead["x"] - 2.3 - (state.x + half))
                objects = ObjectList(objects=[DetectedObject(
                    track_id=1, label="vehicle", position=Vector3(lead["x"] - state.x, 0.0, 0.75),
                    size=Vector3(4.6, 1.9, 1.5), velocity=Vector3(lead["v"], 0.0, 0.0))])
            seen = TrafficLightState() if light is None else TrafficLightState(
                state=light.state, distance=light.distance - state.x)
            ego = EgoState(header=Header(k, k * dt), transform=Transform(
                Vector3(state.x, state.y, 0.0), Rotation(0.0, state.yaw, 0.0)),
                speed=state.speed, speed_limit=50 / 3.6)
            control = controller.step(ego, planner.plan(ego, objects, seen))
            state = dynamics.step(state, control, params, dt)
            accels.append(state.accel)
        return np.array(accels), gap, state.x

    def jerk(accels: np.ndarray) -> tuple[float, float]:
        j = np.abs(np.diff(accels)) / dt
        return round(float(np.percentile(j, 99)), 2), round(float(j.max()), 2)

    line = 80.0
    stop, _, x_end = ride(50 / 3.6, None, 0.0, 0.0, TrafficLightState(state="red", distance=line))
    speedup, _, _ = ride(0.0, None, 0.0, 0.0, None)
    follow, _, _ = ride(50 / 3.6, {"x": 40.0, "v": 8.0}, math.inf, 0.0, None)
    braking, lead_gap, _ = ride(50 / 3.6, {"x": 35.0, "v": 50 / 3.6}, 3.0, 6.0, None)
    figures: dict[str, Any] = {}
    for name, accels in (("stop", stop), ("speedup", speedup), ("follow", follow)):
        p99, peak = jerk(accels)
        figures.update({f"ride_{name}_jerk_p99": p99, f"ride_{name}_jerk_peak": peak})
    stop_gap = line - (x_end + half)
    figures.update({
        "ride_stop_decel_max": round(float(-stop.min()), 2),
        "ride_stop_gap_m": round(stop_gap, 2),
        "ride_speedup_accel_max": round(float(speedup.max()), 2),
        "ride_lead_brake_decel_max": round(float(-braking.min()), 2),
        "ride_lead_brake_min_gap_m": round(lead_gap, 2),
    })
    figures["ride_target_met"] = bool(
        all(figures[f"ride_{n}_jerk_p99"] <= JERK_P99_TARGET for n in ("stop", "speedup", "follow"))
        and figures["ride_stop_decel_max"] <= STOP_DECEL_TARGET and 0.0 <= stop_gap <= 1.5
        and lead_gap > 0.0)
    return figures


MEASUREMENTS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "route": bench_route, "steps": bench_steps, "ride": bench_ride}


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
