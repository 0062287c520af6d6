"""Issue targets in closed loop on the simulator's dynamics: behaviour + local planner
+ controller + vehicle model, on a straight road (no bus, no map).

Comfort is measured on the car's actual longitudinal acceleration (the dynamics
model's, per 50 ms step): its jerk |da/dt| must stay within 5 m/s^3 at the 99th
percentile in normal driving. Single steps above that remain where the dynamics
model steps the acceleration itself: a gear change (the gearbox shifts within one
step, ~18 m/s^3 on the 1-2 upshift at full comfort acceleration) and the moment the
car comes to rest (whatever deceleration is left drops to zero in one step)."""

from __future__ import annotations

import math

import numpy as np
import pytest

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

DT = 0.05
ROUTE = np.stack([np.arange(-10.0, 1000.0, 2.0), np.zeros(505)], axis=1)
HALF = 2.45  # ego centre to bumper (default car)


def ego_msg(state: dynamics.VehicleState, k: int) -> EgoState:
    return EgoState(header=Header(k, k * DT),
                    transform=Transform(Vector3(state.x, state.y, 0.0),
                                        Rotation(0.0, state.yaw, 0.0)),
                    speed=state.speed, speed_limit=50 / 3.6)


def run(ticks: int, objects_at, light_at, speed: float = 50 / 3.6,
        ) -> list[dynamics.VehicleState]:
    params = dynamics.load_vehicle("default_car")
    state = dynamics.VehicleState(x=0.0, speed=speed, gear=4 if speed > 5.0 else 1)
    planner, controller = LocalPlanner(ROUTE), Controller()
    history = []
    for k in range(ticks):
        ego = ego_msg(state, k)
        traj = planner.plan(ego, objects_at(k, state), light_at(k, state))
        control = controller.step(ego, traj)
        state = dynamics.step(state, control, params, DT)
        history.append(state)
    return history


def test_following_a_lead_that_brakes_at_6_m_s2_from_50_kmh_without_collision():
    lead = {"x": 35.0, "v": 50 / 3.6}

    def objects(k: int, ego: dynamics.VehicleState) -> ObjectList:
        if k > 0:
            a = -6.0 if k * DT >= 3.0 else 0.0
            lead["v"] = max(0.0, lead["v"] + a * DT)
            lead["x"] += lead["v"] * DT
        return ObjectList(objects=[DetectedObject(
            track_id=5, label="vehicle", position=Vector3(lead["x"] - ego.x, 0.0, 0.75),
            size=Vector3(4.6, 1.9, 1.5), velocity=Vector3(lead["v"], 0.0, 0.0))])

    gaps = []

    def light(k: int, ego: dynamics.VehicleState) -> TrafficLightState:
        gaps.append(lead["x"] - 2.3 - (ego.x + HALF))
        return TrafficLightState()

    history = run(400, objects, light)
    assert min(gaps) > 1.0, min(gaps)
    assert history[-1].speed < 0.1


def test_stopping_for_a_red_line_from_50_kmh():
    line = 80.0

    def light(k: int, ego: dynamics.VehicleState) -> TrafficLightState:
        return TrafficLightState(state="red", distance=line - ego.x)

    history = run(400, lambda k, e: ObjectList(), light)
    front = history[-1].x + HALF
    assert history[-1].speed < 0.05
    assert line - 1.0 - 0.5 <= front <= line, front  # within 1 m before (0.5 m slack)
    decel = max(-s.accel for s in history)
    assert decel <= 4.0, decel
    assert not math.isnan(front)


def jerk(history: list[dynamics.VehicleState]) -> np.ndarray:
    """|da/dt| (m/s^3) of the car's longitudinal acceleration, step to step."""
    return np.abs(np.diff([s.accel for s in history])) / DT


def test_a_normal_stop_at_a_red_line_has_bounded_jerk():
    """From 50 km/h to a stop at a red line 80 m ahead: the brake is ramped in and
    released (the old profile stepped it to 3 m/s^2: p99 32 m/s^3, peak 42)."""
    line = 80.0
    history = run(300, lambda k, e: ObjectList(),
                  lambda k, e: TrafficLightState(state="red", distance=line - e.x))
    j = jerk(history)
    assert np.percentile(j, 99) <= 5.0, np.percentile(j, 99)
    assert j.max() <= 20.0, j.max()  # the moment of coming to rest
    assert history[-1].speed == 0.0
    assert max(-s.accel for s in history) <= 3.0


def test_speeding_up_from_standstill_to_50_kmh_has_bounded_jerk():
    history = run(400, lambda k, e: ObjectList(), lambda k, e: TrafficLightState(), speed=0.0)
    j = jerk(history)
    assert np.percentile(j, 99) <= 5.0, np.percentile(j, 99)
    assert j.max() <= 20.0, j.max()  # the 1-2 upshift
    assert history[-1].speed == pytest.approx(50 / 3.6, abs=0.1)
    assert max(s.accel for s in history) <= 3.0
