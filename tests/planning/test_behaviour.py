"""Behaviour and speed profile: stop lines, yellow, pedestrians, lead vehicles, TTC."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import DetectedObject, ObjectList, TrafficLightState, Vector3
from planning.behaviour import BehaviourParams, decide, path_s, profile_times, speed_profile

P = BehaviourParams()
STRAIGHT = np.stack([np.arange(0.0, 80.0, 1.0), np.zeros(80)], axis=1)  # ego frame
S = path_s(STRAIGHT)
NO_LIGHT = TrafficLightState(state="unknown", distance=-1.0)


def objects(*objs: DetectedObject) -> ObjectList:
    return ObjectList(objects=list(objs))


def car(x: float, y: float = 0.0, vx: float = 0.0) -> DetectedObject:
    return DetectedObject(track_id=7, label="vehicle", position=Vector3(x, y, 0.75),
                          size=Vector3(4.6, 1.9, 1.5), velocity=Vector3(vx, 0, 0))


def walker(x: float, y: float, vy: float = 0.0) -> DetectedObject:
    return DetectedObject(track_id=9, label="pedestrian", position=Vector3(x, y, 0.9),
                          size=Vector3(0.6, 0.6, 1.8), velocity=Vector3(0, vy, 0))


def test_free_road_accelerates_towards_the_limit():
    d = decide(STRAIGHT, 5.0, 13.9, objects(), NO_LIGHT, P)
    v = speed_profile(S, 5.0, d, P)
    assert v[0] == pytest.approx(5.0) and v[-1] == pytest.approx(13.9)
    acc = np.diff(v ** 2) / (2 * np.diff(S))
    assert acc.max() <= P.accel + 1e-9


def test_red_light_stops_before_the_line_within_comfort():
    d = decide(STRAIGHT, 13.9, 13.9, objects(), TrafficLightState(state="red", distance=40.0),
               P)
    assert d.stop_s == pytest.approx(40.0 - P.ego_half_length - P.stop_margin)
    v = speed_profile(S, 13.9, d, P)
    assert v[int(d.stop_s) + 1:].max() == 0.0
    dec = -np.diff(v ** 2) / (2 * np.diff(S))
    assert dec.max() <= P.comfort_decel + 1e-9
    t = profile_times(S, v)
    assert np.all(np.diff(t) > 0)


def test_yellow_is_run_only_when_stopping_is_not_comfortable():
    near = TrafficLightState(state="yellow", distance=12.0)
    assert decide(STRAIGHT, 13.9, 13.9, objects(), near, P).stop_s == np.inf  # too late
    far = TrafficLightState(state="yellow", distance=60.0)
    assert decide(STRAIGHT, 13.9, 13.9, objects(), far, P).stop_s < 60.0


def test_pedestrian_in_or_entering_the_corridor_makes_us_stop():
    inside = decide(STRAIGHT, 10.0, 13.9, objects(walker(30.0, 0.5)), NO_LIGHT, P)
    assert inside.stop_s == pytest.approx(30.0 - P.ego_half_length - P.pedestrian_margin)
    entering = decide(STRAIGHT, 10.0, 13.9, objects(walker(30.0, 4.0, vy=-1.5)), NO_LIGHT, P)
    assert entering.stop_s < 30.0
    leaving = decide(STRAIGHT, 10.0, 13.9, objects(walker(30.0, 4.0, vy=1.5)), NO_LIGHT, P)
    assert leaving.stop_s == np.inf


def test_lead_vehicle_is_followed_and_ttc_triggers_emergency():
    d = decide(STRAIGHT, 10.0, 13.9, objects(car(40.0, vx=10.0)), NO_LIGHT, P)
    assert d.lead_s == pytest.approx(40.0 - P.ego_half_length - 2.3)
    assert d.lead_speed == 10.0 and not d.emergency
    v = speed_profile(S, 10.0, d, P)
    assert v.max() <= 13.9
    beside = decide(STRAIGHT, 10.0, 13.9, objects(car(40.0, y=3.5)), NO_LIGHT, P)
    assert beside.lead_s == np.inf
    close = decide(STRAIGHT, 15.0, 13.9, objects(car(20.0)), NO_LIGHT, P)
    assert close.emergency
    v = speed_profile(S, 15.0, close, P)
    room = close.lead_s - P.min_gap
    assert v[room < S].max() == 0.0  # stops short of the car


def crosser(x: float, y: float, vy: float) -> DetectedObject:
    return DetectedObject(track_id=4, label="vehicle", position=Vector3(x, y, 0.75),
                          size=Vector3(4.6, 1.9, 1.5), velocity=Vector3(0.0, vy, 0.0))


def test_yield_to_a_vehicle_about_to_cross_the_path():
    # from the right (+y), crossing our path 30 m ahead in about 2 s; we arrive in 3 s
    d = decide(STRAIGHT, 10.0, 13.9, objects(crosser(30.0, 16.0, -8.0)), NO_LIGHT, P)
    assert d.stop_s == pytest.approx(30.0 - P.ego_half_length - P.yield_margin, abs=1.0)
    # the same car, but we would reach the crossing 8 s after it: no conflict
    late = decide(STRAIGHT, 2.0, 13.9, objects(crosser(30.0, 16.0, -8.0)), NO_LIGHT, P)
    assert late.stop_s == np.inf
    # moving away from the path: no conflict
    away = decide(STRAIGHT, 10.0, 13.9, objects(crosser(30.0, 16.0, 8.0)), NO_LIGHT, P)
    assert away.stop_s == np.inf
