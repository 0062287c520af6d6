"""Issue targets in closed loop on the simulator's dynamics: behaviour + local planner
+ controller + vehicle model, on a straight road (no bus, no map)."""

from __future__ import annotations

import math

import numpy as np

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


def run(ticks: int, objects_at, light_at) -> list[dynamics.VehicleState]:
    params = dynamics.load_vehicle("default_car")
    state = dynamics.VehicleState(x=0.0, speed=50 / 3.6, gear=4)
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
