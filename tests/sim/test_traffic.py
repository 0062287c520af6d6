"""NPC traffic: IDM, car following, stopping for lights, determinism, random turns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.traffic import IDMParams, Obstacle, Traffic, idm_accel, road_speed_limits


def no_lights(_wp):
    return None


def test_idm_free_road_accelerates_to_desired_speed():
    p = IDMParams()
    assert idm_accel(0.0, 10.0, math.inf, 0.0, p) == pytest.approx(p.a_max)
    assert idm_accel(10.0, 10.0, math.inf, 0.0, p) == pytest.approx(0.0)
    assert idm_accel(5.0, 10.0, 3.0, 5.0, p) == -p.b_max  # closing fast on a near car


def test_speed_limits_from_opendrive(straight_xodr):
    assert road_speed_limits(straight_xodr) == {1: pytest.approx(50 / 3.6)}


def test_npc_reaches_the_speed_limit_and_stays_in_lane(straight_map, straight_xodr):
    carla = pytest.importorskip("carla")
    traffic = Traffic(road_speed_limits(straight_xodr))
    wp = straight_map.get_waypoint(carla.Location(10, 1.75, 0))
    npc = traffic.spawn(1, wp, np.random.default_rng(0))
    for _ in range(400):  # 20 s, 280 m: well before the end of the road
        traffic.step(0.05, [], no_lights)
    assert npc.speed == pytest.approx(50 / 3.6, abs=0.3)
    assert npc.y == pytest.approx(1.75, abs=1e-6) and npc.yaw == pytest.approx(0.0, abs=1e-6)


def test_follower_keeps_its_distance_behind_a_stopped_car(straight_map, straight_xodr):
    carla = pytest.importorskip("carla")
    traffic = Traffic(road_speed_limits(straight_xodr))
    follower = traffic.spawn(1, straight_map.get_waypoint(carla.Location(10, 1.75, 0)),
                             np.random.default_rng(0), speed=13.0)
    stopped = Obstacle(99, 120.0, 1.75, 0.0, 0.0, 2.3)
    gaps = []
    for _ in range(600):
        traffic.step(0.05, [stopped], no_lights)
        gaps.append(stopped.x - follower.x - 2 * 2.3)
    assert follower.speed < 0.05
    assert min(gaps) > 1.5  # never closer than about the jam distance
    assert gaps[-1] < 4.0  # and it does close up


def test_a_car_at_an_angle_with_its_back_in_the_lane_is_a_leader(straight_map, straight_xodr):
    """A car turning across the lane: its centre is 2.5 m off the NPC's path, its
    back end on it. The NPC stops short of the back, not of the centre."""
    carla = pytest.importorskip("carla")
    traffic = Traffic(road_speed_limits(straight_xodr))
    npc = traffic.spawn(1, straight_map.get_waypoint(carla.Location(10, 1.75, 0)),
                        np.random.default_rng(0), speed=10.0)
    yaw = 60.0  # pointing out of the lane, to the right (y), at 60 degrees
    across = Obstacle(99, 80.0, 1.75 + 2.3 * math.sin(math.radians(yaw)), yaw, 0.0, 2.3)
    back_x = across.x - 2.3 * math.cos(math.radians(yaw))
    for _ in range(600):
        traffic.step(0.05, [across], no_lights)
    assert npc.speed < 0.05
    assert npc.x + 2.3 < back_x  # its front short of the other's back end


def test_npc_stops_at_a_red_stop_line(straight_map, straight_xodr):
    carla = pytest.importorskip("carla")
    traffic = Traffic(road_speed_limits(straight_xodr))
    npc = traffic.spawn(1, straight_map.get_waypoint(carla.Location(10, 1.75, 0)),
                        np.random.default_rng(0), speed=10.0)
    stop_x = 100.0
    state = {"light": "red"}

    def lights(wp):
        x = wp.transform.location.x
        return (state["light"], stop_x - x) if x < stop_x else None

    for _ in range(400):
        traffic.step(0.05, [], lights)
    front = npc.x + npc.half_length
    assert npc.speed < 0.05 and stop_x - 3.0 < front <= stop_x + 0.1
    state["light"] = "green"
    for _ in range(200):
        traffic.step(0.05, [], lights)
    assert npc.x > stop_x + 20


def run_town(town: Path, seed: int, ticks: int = 300) -> list[tuple[float, float]]:
    import carla

    text = town.read_text()
    m = carla.Map(town.stem, text)
    traffic = Traffic(road_speed_limits(text))
    rng = np.random.default_rng(seed)
    wps = [w for w in m.generate_waypoints(30.0) if not w.is_junction]
    for i, k in enumerate(rng.choice(len(wps), 15, replace=False)):
        traffic.spawn(i + 1, wps[int(k)], np.random.default_rng([seed, i]))
    for _ in range(ticks):
        traffic.step(0.05, [], no_lights)
    return [(n.x, n.y) for n in traffic.npcs]


def test_traffic_is_deterministic_and_seeded(shared_dir: Path):
    town = shared_dir / "maps" / "carla" / "Town01.xodr"
    a, b, c = run_town(town, 1), run_town(town, 1), run_town(town, 2)
    assert a == b
    assert a != c
    assert all(math.isfinite(x) and math.isfinite(y) for x, y in a)


def test_npc_stops_where_its_lane_ends(straight_map, straight_xodr):
    carla = pytest.importorskip("carla")
    traffic = Traffic(road_speed_limits(straight_xodr))
    npc = traffic.spawn(1, straight_map.get_waypoint(carla.Location(400, 1.75, 0)),
                        np.random.default_rng(0), speed=13.0)
    for _ in range(400):
        traffic.step(0.05, [], no_lights)
    assert npc.speed < 0.05 and 490.0 < npc.x + npc.half_length <= 500.0
