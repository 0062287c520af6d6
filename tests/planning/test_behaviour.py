"""Behaviour and speed profile: stop lines, yellow, pedestrians, lead vehicles, TTC."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import DetectedObject, ObjectList, TrafficLightState, Vector3
from planning.behaviour import (
    BehaviourParams,
    Decision,
    align_grid,
    curvature,
    decide,
    hard_limits,
    limit_points,
    path_s,
    profile_times,
    speed_envelope,
    speed_profile,
)

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
    v = speed_profile(S, 5.0, d, P).speeds
    # it lands on the limit with the acceleration fading out, so only closely
    assert v[0] == pytest.approx(5.0) and v[-1] == pytest.approx(13.9, abs=0.01)
    assert v.max() <= 13.9 + 1e-9
    acc = np.diff(v ** 2) / (2 * np.diff(S))
    assert acc.max() <= P.accel + 1e-9


def test_an_unknown_speed_limit_drives_at_carlas_default_not_zero():
    """EgoState.speed_limit 0 means unknown (a CARLA town's junction roads have no
    limit in their OpenDRIVE): the target is 30 km/h, capped by max_speed."""
    assert decide(STRAIGHT, 0.0, 0.0, objects(), NO_LIGHT, P).target_speed == \
        pytest.approx(30 / 3.6)
    capped = BehaviourParams(max_speed=5.0)
    assert decide(STRAIGHT, 0.0, 0.0, objects(), NO_LIGHT, capped).target_speed == 5.0
    assert decide(STRAIGHT, 0.0, 13.9, objects(), NO_LIGHT, capped).target_speed == 5.0


def test_red_light_stops_before_the_line_within_comfort():
    d = decide(STRAIGHT, 13.9, 13.9, objects(), TrafficLightState(state="red", distance=40.0),
               P)
    assert d.stop_s == pytest.approx(40.0 - P.ego_half_length - P.stop_margin)
    v = speed_profile(S, 13.9, d, P).speeds
    assert v[int(d.stop_s) + 1:].max() == 0.0
    dec = -np.diff(v ** 2) / (2 * np.diff(S))
    assert dec.max() <= P.comfort_decel + 1e-9
    t = profile_times(S, v)
    assert np.all(np.diff(t) > 0)


def test_curvature_is_measured_over_a_baseline_not_per_vertex():
    """A 20 m radius arc sampled at uneven spacing (as lane seams leave a route):
    per vertex the turn is noisy, over 5 m it is the arc's 1/20 within a few %."""
    rng = np.random.default_rng(1)
    angle = np.cumsum(rng.uniform(0.5, 3.0, 60)) / 20.0  # 0.5..3 m apart on the arc
    arc = np.stack([20.0 * np.sin(angle), 20.0 * (1.0 - np.cos(angle))], axis=1)
    kappa = curvature(arc, 5.0)
    inner = kappa[5:-5]  # away from the ends
    assert np.allclose(inner, 1.0 / 20.0, rtol=0.05)
    assert curvature(STRAIGHT, 5.0).max() == pytest.approx(0.0, abs=1e-12)


def profile_jerk(profile) -> np.ndarray:
    """|da/dt| (m/s^3) between the profile's samples in time."""
    return np.abs(np.diff(profile.sample_accel)) / P.profile_dt


@pytest.mark.parametrize(("speed", "accel", "stop_s"), [
    (13.9, 0.0, 70.0),  # cruising towards a red light far enough ahead
    (0.0, 0.0, np.inf),  # setting off on a free road
    (0.0, 0.0, 45.0),  # setting off towards a red light
    (8.0, -1.5, 60.0),  # already slowing down
])
def test_profile_changes_its_acceleration_no_faster_than_the_comfort_jerk(
        speed: float, accel: float, stop_s: float) -> None:
    s = np.arange(0.0, 120.0, 1.0)
    profile = speed_profile(s, speed, Decision(target_speed=13.9, stop_s=stop_s), P, accel=accel)
    assert profile.sample_accel[0] == accel  # continues the acceleration it is given
    assert profile_jerk(profile).max() <= P.jerk + 1e-9
    assert profile.sample_accel.min() >= -P.comfort_decel - 1e-9
    assert profile.sample_accel.max() <= P.accel + 1e-9
    if stop_s < np.inf:  # it stops at the stop, not later
        assert profile.speeds[s >= stop_s].max() == 0.0
        assert profile.sample_s[-1] <= stop_s



@pytest.mark.parametrize("d", [
    Decision(target_speed=13.9),
    Decision(target_speed=13.9, stop_s=30.37),
    Decision(target_speed=13.9, lead_s=20.61, lead_speed=3.0),
    Decision(target_speed=13.9, stop_s=12.02, lead_s=40.5, lead_speed=0.0),
])
def test_a_grid_already_aligned_gives_the_same_profile_as_aligning_it_again(
        d: Decision) -> None:
    s = align_grid(np.arange(0.3, 80.0, 1.0) - 0.3, limit_points(d, P), P.align_m,
                   P.refine_m)
    kappa = np.abs(np.sin(s / 7.0)) / 40.0
    again = speed_profile(s, 8.0, d, P, kappa, accel=-0.5)
    as_is = speed_profile(s, 8.0, d, P, kappa, accel=-0.5, aligned=True)
    for a, b in zip((again.speeds, again.sample_s, again.sample_accel),
                    (as_is.speeds, as_is.sample_s, as_is.sample_accel), strict=True):
        np.testing.assert_array_equal(a, b)

def test_the_envelope_releases_the_brake_as_the_car_comes_to_rest():
    """Braking at up to decel, with the deceleration falling to zero at the stop
    at the given jerk: v = jerk t^2 / 2 over the last x = jerk t^3 / 6."""
    s = np.linspace(0.0, 40.0, 401)
    d = Decision(target_speed=13.9, stop_s=30.0)
    w = speed_envelope(s, *hard_limits(s, 13.9, d, P), 2.5, 2.5)
    t = (6.0 * 0.1 / 2.5) ** (1.0 / 3.0)  # time of the last 0.1 m
    assert w[np.isclose(s, 29.9)][0] == pytest.approx(2.5 * t * t / 2.0, rel=1e-3)
    assert w[s >= 30.0].max() == 0.0
    decel = -np.diff(w**2) / (2.0 * np.diff(s))
    assert decel.max() <= 2.5 + 1e-6
    release = decel[(s[1:] > 29.45) & (s[1:] <= 30.0)]  # the last half metre
    assert np.all(np.diff(release) < 0) and release[-1] < 2.5 / 2


def test_a_stop_too_close_for_comfort_jerk_is_met_within_comfort_decel():
    """50 km/h, red light 40 m ahead: too close to ramp the brake in at 2.5 m/s^3
    and still stop within 3 m/s^2, so the brake goes on at firm_jerk instead."""
    s = np.arange(0.0, 80.0, 1.0)
    d = Decision(target_speed=13.9, stop_s=36.0)
    profile = speed_profile(s, 13.9, d, P)
    assert profile.speeds[s >= 36.0].max() == 0.0
    assert profile.sample_accel.min() >= -P.comfort_decel - 1e-9
    assert P.jerk < profile_jerk(profile).max() <= P.firm_jerk + 1e-9


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



def test_a_walker_reaching_the_corridor_at_the_horizon_still_counts():
    # decide tests only the objects that can reach the corridor in time against it:
    # one that gets in just at the end of pedestrian_horizon must be among them
    reach = P.corridor_half_width + 1.5 * P.pedestrian_horizon
    late = decide(STRAIGHT, 10.0, 13.9, objects(walker(30.0, reach - 0.05, vy=-1.5)),
                  NO_LIGHT, P)
    assert late.stop_s < 30.0
    never = decide(STRAIGHT, 10.0, 13.9, objects(walker(30.0, reach + 0.05, vy=-1.5)),
                   NO_LIGHT, P)
    assert never.stop_s == np.inf

def test_lead_vehicle_is_followed_and_ttc_triggers_emergency():
    d = decide(STRAIGHT, 10.0, 13.9, objects(car(40.0, vx=10.0)), NO_LIGHT, P)
    assert d.lead_s == pytest.approx(40.0 - P.ego_half_length - 2.3)
    assert d.lead_speed == 10.0 and not d.emergency
    v = speed_profile(S, 10.0, d, P).speeds
    assert v.max() <= 13.9
    beside = decide(STRAIGHT, 10.0, 13.9, objects(car(40.0, y=3.5)), NO_LIGHT, P)
    assert beside.lead_s == np.inf
    close = decide(STRAIGHT, 15.0, 13.9, objects(car(20.0)), NO_LIGHT, P)
    assert close.emergency
    v = speed_profile(S, 15.0, close, P).speeds
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
