"""Route evaluation: route completion along straight, curved and looping routes, the
Leaderboard 1.0 infraction penalties, driving score, end conditions (blocked,
timeout, completion, deviation), off-route share and comfort figures. No map: the
routes are hand-made polylines and the events are constructed."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from bus.messages import EgoState, Header, Rotation, RunEvent, Transform, Vector3
from sim.evaluation import (
    EgoSample,
    RouteEvaluator,
    RoutePolyline,
    infraction_penalty,
    route_timeout_s,
)

DT = 0.05


def straight(length: float = 100.0, step: float = 10.0) -> np.ndarray:
    n = round(length / step)
    return np.column_stack([np.linspace(0.0, length, n + 1), np.zeros(n + 1)])


def sample(k: int, x: float, y: float = 0.0, speed: float = 5.0, dt: float = DT,
           **kw: float) -> EgoSample:
    return EgoSample(frame=k, stamp=k * dt, x=x, y=y, speed=speed, **kw)


def event(kind: str, t: float = 1.0, x: float = 0.0, y: float = 0.0,
          other: int = -1) -> RunEvent:
    return RunEvent(header=Header(round(t / DT), t), kind=kind, actor_id=1, other_id=other,
                    location=Vector3(x, y, 0.0))


def drive(ev: RouteEvaluator, xs, ys=None, speed: float = 5.0, dt: float = DT,
          start: int = 0) -> list[RunEvent]:
    """Feed positions one per tick; return every event the evaluator emitted."""
    ys = np.zeros(len(xs)) if ys is None else ys
    out: list[RunEvent] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        out += ev.update(sample(start + i, float(x), float(y), speed, dt))
    return out


# ------------------------------------------------------------------ route completion
def test_route_completion_along_a_straight_route():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, np.arange(0.0, 25.5, 0.5))
    assert ev.route_completion == pytest.approx(25.0)
    ev.update(sample(60, 30.0, y=3.0))  # a lane to the side still counts along
    assert ev.route_completion == pytest.approx(30.0)
    ev.update(sample(61, 20.0))  # reversing never takes progress back
    assert ev.route_completion == pytest.approx(30.0)
    assert ev.distance_m == pytest.approx(25.0 + math.hypot(5.0, 3.0) + math.hypot(10.0, 3.0))


def test_route_completion_along_a_curve():
    r = 20.0
    theta = np.linspace(0.0, math.pi / 2, 91)  # a quarter circle, one point a degree
    route = np.column_stack([r * np.sin(theta), r - r * np.cos(theta)])
    ev = RouteEvaluator(route, DT)
    # Drive the arc 0.5 m outside the route, up to 60 degrees.
    a = np.radians(np.arange(0.0, 60.5, 0.5))
    drive(ev, (r + 0.5) * np.sin(a), r - (r + 0.5) * np.cos(a))
    assert ev.route_completion == pytest.approx(60.0 / 90.0 * 100.0, abs=0.1)
    assert ev.route_length_m == pytest.approx(r * math.pi / 2, rel=1e-4)


def test_progress_cannot_jump_far_faster_than_the_window():
    ev = RouteEvaluator(straight(), DT, window_m=10.0)
    ev.update(sample(0, 0.0))
    ev.update(sample(1, 35.0))  # a teleport: matched only up to 10 m ahead
    assert ev.progress_m == pytest.approx(10.0)
    ev.update(sample(2, 35.0))
    ev.update(sample(3, 35.0))
    assert ev.progress_m == pytest.approx(30.0)
    ev.update(sample(4, 80.0))  # farther than 30 m from all of the window: no match
    assert ev.progress_m == pytest.approx(30.0)


def square_loop() -> np.ndarray:
    """A 50 m square driven anticlockwise from (0, 0) that ends at (0, 3), 3 m from
    its start, then goes on 20 m beyond it."""
    corners = [(0, 0), (50, 0), (50, 50), (-3, 50), (-3, 3), (0, 3), (20, 3)]
    pts = []
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        n = max(round(math.hypot(x1 - x0, y1 - y0)), 1)
        pts += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n)]
    pts.append(corners[-1])
    return np.array(pts, float)


def test_route_that_loops_back_near_itself_does_not_jump_ahead():
    route = square_loop()
    ev = RouteEvaluator(route, DT)
    # Along the first 10 m the ego drives 1.6 m left of the route: nearer the route's
    # last leg (y = 3, 1.4 m away) than its first, and that is ~200 m further on.
    drive(ev, np.arange(0.0, 10.5, 0.5), np.full(21, 1.6))
    assert ev.progress_m == pytest.approx(10.0)
    assert not ev.ended
    # The whole loop, then: completes at the end of the route.
    ts = np.linspace(0.0, ev.route.length, 800)
    xs = np.interp(ts, ev.route.s, route[:, 0])
    ys = np.interp(ts, ev.route.s, route[:, 1])
    out = drive(ev, xs, ys, start=21)
    assert [e.kind for e in out] == ["route_completed"]
    assert ev.route_completion == 100.0


def test_parallel_return_lane_does_not_capture_progress():
    # Out along y = 0, a hairpin, back along y = 3.5 (the opposite lane).
    out_leg = np.column_stack([np.arange(0.0, 101.0), np.zeros(101)])
    a = np.linspace(-math.pi / 2, math.pi / 2, 19)[1:-1]
    bend = np.column_stack([100.0 + 1.75 * np.cos(a), 1.75 + 1.75 * np.sin(a)])
    back_leg = np.column_stack([np.arange(100.0, -1.0, -1.0), np.full(101, 3.5)])
    ev = RouteEvaluator(np.vstack([out_leg, bend, back_leg]), DT)
    # Ego 2 m to the left of the outbound leg: 1.5 m from the return lane.
    drive(ev, np.arange(0.0, 60.5, 0.5), np.full(121, 2.0))
    assert ev.progress_m == pytest.approx(60.0)


def test_route_completed_needs_99_percent_and_the_end_within_10_m():
    ev = RouteEvaluator(straight(), DT)
    assert drive(ev, np.arange(0.0, 99.0, 0.5)) == []  # 98.5 %: not yet
    out = ev.update(sample(300, 99.5))
    assert [(e.kind, e.value) for e in out] == [("route_completed", 100.0)]
    assert out[0].header.stamp == pytest.approx(15.0)
    assert ev.end_reason == "route_completed" and ev.completed
    assert ev.route_completion == 100.0
    assert ev.update(sample(301, 100.0), [event("collision_vehicle")]) == []  # ended
    assert ev.counts["collision_vehicle"] == 0


# ------------------------------------------------------------------ penalties and score
def test_infraction_penalty_is_the_product_of_the_leaderboard_factors():
    assert infraction_penalty({"collision_pedestrian": 1, "red_light": 2}) == \
        pytest.approx(0.5 * 0.7 * 0.7)
    assert infraction_penalty({"collision_vehicle": 1, "collision_static": 1,
                               "stop_sign": 1, "lane_invasion": 9}) == \
        pytest.approx(0.6 * 0.65 * 0.8)
    assert infraction_penalty({}, off_route_share=0.25) == pytest.approx(0.75)


def test_driving_score_is_rc_times_ip():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, np.arange(0.0, 40.5, 0.5))
    ev.update(sample(81, 40.0), [event("collision_pedestrian", x=40.0, other=12),
                                 event("red_light", other=3), event("lane_invasion")])
    ev.update(sample(82, 40.0), [event("red_light", t=4.1, other=4)])
    assert ev.route_completion == pytest.approx(40.0)
    assert ev.infraction_penalty == pytest.approx(0.5 * 0.7 * 0.7)
    assert ev.driving_score == pytest.approx(40.0 * 0.5 * 0.7 * 0.7)
    m = ev.metrics()
    assert m["infractions"]["counts"]["red_light"] == 2
    assert m["infractions"]["counts"]["lane_invasion"] == 1
    assert m["infractions"]["events"][0] == {
        "time_s": 1.0, "frame": 20, "kind": "collision_pedestrian", "x": 40.0, "y": 0.0,
        "other_id": 12, "value": 0.0, "description": ""}
    assert m["end_reason"] is None


def test_completed_route_with_a_vehicle_collision_scores_60():
    ev = RouteEvaluator(straight(50.0), DT)
    drive(ev, np.arange(0.0, 20.0, 0.5))
    ev.update(sample(40, 20.0), [event("collision_vehicle", other=101)])
    out = drive(ev, np.arange(20.5, 50.5, 0.5), start=41)
    assert [e.kind for e in out] == ["route_completed"]
    assert ev.driving_score == pytest.approx(60.0)


# ------------------------------------------------------------------ off route
def test_off_route_share_is_of_the_route_progressed():
    ev = RouteEvaluator(straight(), DT)
    for k, x in enumerate(np.arange(0.0, 50.5, 0.5)):
        ev.update(sample(k, float(x)), off_route=20.0 < x <= 30.0)
    assert ev.off_route_m == pytest.approx(10.0)
    assert ev.off_route_share == pytest.approx(10.0 / 50.0)
    assert ev.infraction_penalty == pytest.approx(0.8)
    assert ev.driving_score == pytest.approx(50.0 * 0.8)


def test_without_the_state_only_ticks_with_an_off_route_event_count():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, [0.0, 1.0, 2.0])
    ev.update(sample(3, 3.0, y=5.0), [event("off_route", x=3.0, y=5.0)])
    drive(ev, [4.0, 5.0], [5.0, 5.0], start=4)
    assert ev.off_route_m == pytest.approx(1.0)
    assert ev.counts["off_route"] == 1


# ------------------------------------------------------------------ end conditions
def test_blocked_after_180_s_below_0_1_m_s():
    ev = RouteEvaluator(straight(1000.0), dt=1.0)
    ev.update(sample(0, 0.0, speed=0.0, dt=1.0))
    for k in range(1, 90):  # 89 s standing, then it creeps once: the clock restarts
        assert ev.update(sample(k, 0.0, speed=0.05, dt=1.0)) == []
    ev.update(sample(90, 0.0, speed=0.2, dt=1.0))
    for k in range(91, 271):  # up to 180 s since: not yet (more than 180 s needed)
        assert ev.update(sample(k, 0.0, speed=0.0, dt=1.0)) == []
    out = ev.update(sample(271, 0.0, speed=0.0, dt=1.0))
    assert [(e.kind, e.value) for e in out] == [("blocked", 181.0)]
    assert ev.end_reason == "blocked"
    assert ev.counts["blocked"] == 1
    assert ev.driving_score == 0.0


def test_route_timeout_from_the_route_length():
    assert route_timeout_s(100.0) == 85.0  # int(0.8 * 100 + 5)
    assert route_timeout_s(101.3) == 86.0
    ev = RouteEvaluator(straight(), dt=1.0)
    assert ev.timeout_s == 85.0
    for k in range(86):  # 0.5 m/s: never blocked, never there
        assert ev.update(sample(k, 0.5 * k, speed=0.5, dt=1.0)) == []
    out = ev.update(sample(86, 43.0, speed=0.5, dt=1.0))
    assert [e.kind for e in out] == ["route_timeout"]
    assert ev.route_completion == pytest.approx(43.0)
    assert ev.metrics()["end_reason"] == "route_timeout"


def test_route_deviation_from_the_simulator_ends_the_run():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, np.arange(0.0, 30.5, 0.5))
    out = ev.update(sample(61, 31.0, y=31.0), [event("route_deviation", x=31.0, y=31.0)])
    assert out == []  # the simulator reported it; nothing new to emit
    assert ev.end_reason == "route_deviation"
    assert ev.route_completion == pytest.approx(30.0)
    assert ev.infraction_penalty == 1.0  # no penalty, the lost route is the cost
    ev.update(sample(62, 35.0), [event("collision_static")])
    assert ev.counts["collision_static"] == 0


def test_scenario_end_stops_the_run_where_it_got_to():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, np.arange(0.0, 70.5, 0.5))
    ev.update(sample(141, 70.0), [event("scenario_end", t=7.05)])
    m = ev.metrics()
    assert (m["end_reason"], m["completed"]) == ("scenario_end", False)
    assert m["route_completion"] == pytest.approx(70.0)
    assert m["driving_score"] == pytest.approx(70.0)


# ------------------------------------------------------------------ comfort
def test_comfort_figures_on_a_known_acceleration_profile():
    # 1 s at 0, ramp to +2 m/s^2 in 1 s (jerk 2), hold 2 s, down to -3 m/s^2 in 0.5 s
    # (jerk -10), hold 1.5 s; 0.5 m/s^2 lateral throughout.
    t = np.arange(0, 121) * DT
    a = np.interp(t, [0.0, 1.0, 2.0, 4.0, 4.5, 6.0], [0.0, 0.0, 2.0, 2.0, -3.0, -3.0])
    ev = RouteEvaluator(straight(), DT)
    for k, ak in enumerate(a):
        ev.update(sample(k, 0.1 * k, accel_lon=float(ak), accel_lat=0.5))
    c = ev.metrics()["comfort"]
    assert c["max_abs_accel_lon_mps2"] == pytest.approx(3.0)
    assert c["max_abs_accel_lat_mps2"] == pytest.approx(0.5)
    assert c["max_abs_jerk_mps3"] == pytest.approx(10.0)
    assert c["p99_abs_jerk_mps3"] == pytest.approx(10.0)  # 10 of 120 samples at 10
    assert c["max_abs_jerk_lon_mps3"] == pytest.approx(10.0)


def test_p99_jerk_ignores_a_single_spike_and_dropped_ticks_give_no_jerk():
    ev = RouteEvaluator(straight(), DT)
    for k in range(501):
        ev.update(sample(k, 0.01 * k, accel_lon=1.0 if k == 250 else 0.0))
    ev.update(sample(503, 5.03, accel_lon=-4.0))  # two ticks dropped: no jerk sample
    c = ev.comfort.summary()
    assert c["max_abs_jerk_mps3"] == pytest.approx(20.0)  # 1 m/s^2 in one 0.05 s tick
    assert c["p99_abs_jerk_mps3"] == pytest.approx(0.0)
    assert len(ev.comfort.jerk) == 500
    assert c["max_abs_accel_lon_mps2"] == pytest.approx(4.0)


def test_sample_from_ego_state_rotates_acceleration_into_the_ego_frame():
    ego = EgoState(header=Header(7, 0.35),
                   transform=Transform(Vector3(3.0, 4.0, 0.0), Rotation(0.0, 90.0, 0.0)),
                   acceleration=Vector3(-1.0, 2.0, 0.0), speed=6.0, yaw_rate=12.0)
    s = EgoSample.from_ego_state(ego)
    # Yaw 90 deg: forward is world +y, right is world -x (CARLA's left-handed world).
    assert (s.frame, s.stamp, s.x, s.y, s.speed, s.yaw_rate) == (7, 0.35, 3.0, 4.0, 6.0, 12.0)
    assert s.accel_lon == pytest.approx(2.0)
    assert s.accel_lat == pytest.approx(1.0)
    ev = RouteEvaluator(straight(), DT)
    ev.update_ego(ego)
    assert ev.progress_m == pytest.approx(3.0)


# ------------------------------------------------------------------ output and input
def test_metrics_are_plain_json_with_room_for_the_callers_fields():
    ev = RouteEvaluator(straight(), DT)
    drive(ev, np.arange(0.0, 10.5, 0.5))
    ev.update(sample(21, 10.0), [event("deadline_miss"), event("collision_static")])
    m = ev.metrics(extra={"latency_ms": {"perception": {"p50": 12.0}}, "ticks_per_s": 40.0})
    back = json.loads(json.dumps(m))
    assert back == m
    for key in ("driving_score", "route_completion", "infraction_penalty", "infractions",
                "duration_s", "distance_m", "comfort", "end_reason"):
        assert key in m
    assert m["duration_s"] == pytest.approx(21 * DT)
    assert m["distance_m"] == pytest.approx(10.0)
    assert m["deadline_misses"] == 1
    assert m["ticks_per_s"] == 40.0
    with pytest.raises(ValueError, match="driving_score"):
        ev.metrics(extra={"driving_score": 100.0})


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        RouteEvaluator(np.zeros((5, 3)), DT)
    with pytest.raises(ValueError, match="no length"):
        RouteEvaluator(np.ones((3, 2)), DT)
    with pytest.raises(ValueError, match="dt"):
        RouteEvaluator(straight(), 0.0)
    ev = RouteEvaluator(straight(), DT)
    ev.update(sample(5, 0.0))
    with pytest.raises(ValueError, match="go back"):
        ev.update(sample(4, 0.0))


def test_repeated_route_points_are_dropped():
    line = RoutePolyline(np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [10.0, 0.0],
                                   [10.0, 10.0]]))
    assert len(line.points) == 3
    assert line.length == pytest.approx(20.0)
    assert line.match(np.array([12.0, 5.0]), 0.0, 20.0) == pytest.approx((15.0, 2.0))
    assert line.match(np.array([12.0, 5.0]), 0.0, 8.0) == pytest.approx(
        (8.0, math.hypot(4.0, 5.0)))
