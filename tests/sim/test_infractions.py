"""Infractions: collisions (with the 5 s repeat rule), lane invasion, red light,
off road, wrong direction, route deviation."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import Header
from sim.geometry import Box2D
from sim.infractions import Collider, InfractionMonitor, distance_to_polyline


def never(_a, _b):
    return None


def ego_at(x: float, y: float = 1.75, yaw: float = 0.0) -> Box2D:
    return Box2D(x, y, yaw, 2.4, 1.0)


def run(mon: InfractionMonitor, t: float, ego: Box2D, colliders=(), speed: float = 5.0,
        red=never) -> list[str]:
    return [e.kind for e in mon.check(Header(int(t * 20), t), ego, speed, list(colliders), red)]


def test_collision_counts_once_per_actor_within_5_s(straight_map):
    mon = InfractionMonitor(straight_map, ego_id=1)
    car = Collider(7, "vehicle", (14.0, 1.75, 0.0, 2.3, 0.95))
    walker = Collider(8, "pedestrian", (50.0, 1.75, 0.0, 0.3, 0.3))
    assert run(mon, 0.0, ego_at(10.0), [car, walker]) == ["collision_vehicle"]
    assert run(mon, 1.0, ego_at(10.0), [car, walker]) == []
    assert run(mon, 7.0, ego_at(10.0), [car, walker]) == ["collision_vehicle"]
    assert run(mon, 7.1, ego_at(49.0), [car, walker]) == ["collision_pedestrian"]
    assert run(mon, 8.0, ego_at(100.0), [car, walker]) == []


def test_lane_invasion_reports_the_marking_crossed(straight_map):
    mon = InfractionMonitor(straight_map, ego_id=1)
    assert run(mon, 0.0, ego_at(10.0, 1.75)) == []
    assert run(mon, 0.05, ego_at(10.5, 1.2)) == []  # still inside lane -1 (half width 1)
    events = mon.check(Header(2, 0.1), ego_at(11.0, 0.5), 5.0, [], never)
    assert [e.kind for e in events] == ["lane_invasion"]
    assert "Broken" in events[0].description  # the broken yellow centre line
    assert run(mon, 0.15, ego_at(11.5, 0.5)) == []  # no new crossing


def test_red_light_crossing_uses_the_front_of_the_car(straight_map):
    mon = InfractionMonitor(straight_map, ego_id=1)
    stop_x = 20.0

    def red(prev, front):
        return 42 if prev[0] < stop_x <= front[0] else None

    assert run(mon, 0.0, ego_at(17.0), red=red) == []  # front at 19.4
    events = mon.check(Header(1, 0.05), ego_at(17.8), 5.0, [], red)  # front at 20.2
    assert [(e.kind, e.other_id) for e in events] == [("red_light", 42)]
    assert events[0].location.x == pytest.approx(20.2)


def test_off_road_and_wrong_direction_are_reported_when_they_start(straight_map):
    mon = InfractionMonitor(straight_map, ego_id=1)
    assert run(mon, 0.0, ego_at(10.0)) == []
    assert run(mon, 0.1, ego_at(10.0, 9.0)) == ["off_route"]  # 9 m right: off the road
    assert run(mon, 0.2, ego_at(10.0, 9.5)) == []
    assert run(mon, 0.3, ego_at(10.0, 1.75)) == []
    events = mon.check(Header(7, 0.35), ego_at(10.0, 1.75, 180.0), 5.0, [], never)
    assert [e.description for e in events] == ["driving against the lane direction"]


def test_route_deviation_beyond_30_m(straight_map):
    route = np.array([[0.0, 1.75], [400.0, 1.75]])
    mon = InfractionMonitor(straight_map, ego_id=1, route=route)
    assert "route_deviation" not in run(mon, 0.0, ego_at(10.0, 25.0))
    events = mon.check(Header(1, 0.05), ego_at(10.0, 35.0), 5.0, [], never)
    assert [e.kind for e in events if e.kind == "route_deviation"] == ["route_deviation"]
    assert distance_to_polyline(np.array([10.0, 35.0]), route) == pytest.approx(33.25)
