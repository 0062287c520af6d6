"""Local planner: trajectory along the route, stops for lights and at the route end."""

from __future__ import annotations

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
from planning.local_planner import LocalPlanner

ROUTE = np.stack([np.arange(0.0, 300.0, 2.0), np.full(150, 5.0)], axis=1)  # along +x, y=5


def ego_at(x: float, speed: float, frame: int = 0) -> EgoState:
    return EgoState(header=Header(frame, frame * 0.05),
                    transform=Transform(Vector3(x, 5.0, 0.0), Rotation(0, 0, 0)),
                    speed=speed, speed_limit=13.9)


def test_trajectory_follows_the_route_ahead_for_about_6_s():
    lp = LocalPlanner(ROUTE)
    traj = lp.plan(ego_at(10.0, 10.0), ObjectList(), TrafficLightState())
    assert traj.poses[0, 0] == pytest.approx(10.0, abs=1.0)
    assert np.allclose(traj.poses[:, 1], 5.0) and np.allclose(traj.poses[:, 2], 0.0)
    assert traj.times[-1] >= 5.9 and np.all(np.diff(traj.times) > 0)
    assert traj.speeds[0] == pytest.approx(10.0) and traj.speeds.max() <= 13.9 + 1e-9
    assert lp.progress() == pytest.approx(10.0, abs=1.0)


def test_a_lane_without_a_speed_limit_keeps_the_last_one():
    """Town01's route 0 stood still after its first junction: the junction's road
    has no speed limit (0 in EgoState) and the planner took 0 as the limit."""
    lp = LocalPlanner(ROUTE)
    lp.plan(ego_at(10.0, 10.0), ObjectList(), TrafficLightState())
    assert lp.decision.target_speed == pytest.approx(13.9)
    unknown = ego_at(12.0, 0.0, frame=1)
    unknown.speed_limit = 0.0
    traj = lp.plan(unknown, ObjectList(), TrafficLightState())
    assert lp.decision.target_speed == pytest.approx(13.9) and traj.speeds.max() > 5.0
    fresh = LocalPlanner(ROUTE)  # none seen yet: CARLA's default, 30 km/h
    fresh.plan(unknown, ObjectList(), TrafficLightState())
    assert fresh.decision.target_speed == pytest.approx(30 / 3.6)


def test_red_light_gives_a_stopping_trajectory():
    lp = LocalPlanner(ROUTE)
    traj = lp.plan(ego_at(10.0, 13.9), ObjectList(),
                   TrafficLightState(state="red", distance=45.0))
    stop_x = 10.0 + 45.0 - 2.45 - 1.0
    assert traj.speeds[traj.poses[:, 0] > stop_x + 0.5].max(initial=0.0) == 0.0


def test_the_trajectory_has_a_point_at_the_stop_and_refines_the_approach():
    """The profile is read between trajectory points, so the stop must be one of
    them (on the 1 m grid it would read up to a metre late), with extra points
    before it where the brake is released."""
    lp = LocalPlanner(ROUTE)
    traj = lp.plan(ego_at(10.3, 8.0), ObjectList(), TrafficLightState(state="red", distance=30.0))
    stop_x = 10.3 + 30.0 - 2.45 - 1.0
    at = np.flatnonzero(np.isclose(traj.poses[:, 0], stop_x, atol=1e-9))
    assert len(at) == 1 and traj.speeds[at[0]] == 0.0 and traj.speeds[at[0] - 1] > 0.0
    assert np.sum((traj.poses[:, 0] > stop_x - 1.0) & (traj.poses[:, 0] < stop_x)) >= 6


def test_trajectory_points_after_the_first_stay_put_on_the_route():
    """First point at the ego's foot, the others at whole metres of the route, so
    what is sampled there (curve limits, the envelope) does not shift each tick."""
    lp = LocalPlanner(ROUTE)
    for x in (10.0, 10.37, 10.81):
        traj = lp.plan(ego_at(x, 8.0), ObjectList(), TrafficLightState())
        assert traj.poses[0, 0] == pytest.approx(x)
        rest = traj.poses[1:, 0][traj.poses[1:, 0] > x + 1.0]  # past the refined start
        assert np.allclose(rest, np.round(rest), atol=1e-9)


def test_consecutive_plans_continue_the_acceleration():
    """Each plan starts from the ego's speed and the last plan's acceleration
    where the ego is now, so the acceleration the controller feeds forward does
    not step from one tick to the next."""
    lp = LocalPlanner(ROUTE)
    lp.plan(ego_at(10.0, 13.9), ObjectList(), TrafficLightState(state="red", distance=60.0))
    _, first = lp.last_profile
    k = int(np.argmax(first.sample_accel < -1.0))  # braking has begun there
    ahead = float(first.sample_s[k])
    lp.plan(ego_at(10.0 + ahead, 12.0, frame=k), ObjectList(),
            TrafficLightState(state="red", distance=60.0 - ahead))
    _, second = lp.last_profile
    assert second.sample_accel[0] == pytest.approx(first.sample_accel[k])
    assert second.speeds[0] == pytest.approx(12.0)


def test_the_end_of_the_route_is_a_stop():
    lp = LocalPlanner(ROUTE)
    for x in np.arange(0.0, 290.0, 10.0):
        traj = lp.plan(ego_at(x, 8.0), ObjectList(), TrafficLightState())
    assert traj.speeds[-1] == 0.0
    lp.plan(ego_at(297.0, 0.0), ObjectList(), TrafficLightState())
    assert lp.finished()


def test_curves_limit_the_speed_to_the_lateral_acceleration():
    theta = np.linspace(0.0, np.pi, 160)
    arc = np.stack([30.0 * np.sin(theta), 30.0 * (1 - np.cos(theta))], axis=1)  # r = 30 m
    lp = LocalPlanner(arc)
    ego = EgoState(header=Header(0, 0.0), transform=Transform(Vector3(0.0, 0.0, 0.0)),
                   speed=10.0, speed_limit=20.0)
    traj = lp.plan(ego, ObjectList(), TrafficLightState())
    a_lat = traj.speeds ** 2 / 30.0
    assert a_lat[5:].max() <= 2.5 * 1.05


def stopped_car(x: float, y: float = 0.0, confidence: float = 1.0) -> DetectedObject:
    return DetectedObject(track_id=3, label="vehicle", position=Vector3(x, y, 0.75),
                          size=Vector3(4.6, 1.9, 1.5), confidence=confidence)


def drive_past(adjacent, extra=(), confidence=lambda x: 1.0):
    """Replan every 2 m past a car stopped in the lane at x = 60 (route frame), seen
    with ``confidence(ego x)``."""
    lp = LocalPlanner(ROUTE)
    trajs = []
    for x in np.arange(0.0, 120.0, 2.0):
        ego = ego_at(x, 8.0)
        objs = ObjectList(objects=[stopped_car(60.0 - x, confidence=confidence(x)), *[
            DetectedObject(track_id=9, label="vehicle", position=Vector3(px - x, py, 0.75),
                           size=Vector3(4.6, 1.9, 1.5)) for px, py in extra]])
        trajs.append(lp.plan(ego, objs, TrafficLightState(), adjacent))
    return lp, trajs


def test_a_stopped_car_is_passed_in_a_free_adjacent_lane_and_the_path_returns():
    _, trajs = drive_past({"right": 3.5})
    first = next(t for t in trajs if t.poses[:, 0].max() > 62.0)  # reaches the car
    beside = first.poses[np.abs(first.poses[:, 0] - 60.0) < 1.0]
    assert beside[:, 1].min() == pytest.approx(5.0 + 3.5, abs=0.05)  # in the lane to the right
    assert min(t.speeds[:10].min() for t in trajs) > 6.0  # never slows down for it
    after = trajs[-1].poses
    assert np.allclose(after[:, 1], 5.0, atol=0.05)  # back in its lane after the pass


def test_no_free_lane_means_waiting_behind_the_car():
    _, blocked = drive_past({})
    t = blocked[10]  # at x = 20
    assert t.speeds[t.poses[:, 0] > 60.0 - 2.3 - 5.0 - 2.45].max(initial=0.0) == 0.0
    lp, occupied = drive_past({"right": 3.5}, extra=[(70.0, 8.5)])
    assert lp.overtake is None
    assert np.allclose(occupied[0].poses[:, 1], 5.0)


def test_a_car_the_perception_is_unsure_of_is_stopped_for_not_passed():
    """A camera's false car far ahead is faint: no lane change for it; the same car
    seen with more confidence nearer is passed."""
    lp, trajs = drive_past({"right": 3.5}, confidence=lambda x: 0.45)
    assert lp.overtake is None and all(np.allclose(t.poses[:, 1], 5.0) for t in trajs)
    t = trajs[10]  # at x = 20: it plans to stop behind the car
    assert t.speeds[t.poses[:, 0] > 60.0 - 2.3 - 5.0 - 2.45].max(initial=0.0) == 0.0
    _, trajs = drive_past({"right": 3.5}, confidence=lambda x: 0.45 if x < 24.0 else 0.8)
    assert all(np.allclose(t.poses[:, 1], 5.0) for t in trajs[:12])
    assert trajs[12].poses[:, 1].max() == pytest.approx(5.0 + 3.5, abs=0.05)  # at x = 24
