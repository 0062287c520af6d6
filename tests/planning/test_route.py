"""Route planner: connects leaderboard routes and spawn-point pairs along lanes,
changes lanes where markings allow, fails clearly, and A* matches Dijkstra."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path

import carla
import pytest

from planning.route import (
    OffLaneError,
    RoadOption,
    Route,
    RoutePlanner,
    UnreachableError,
)
from sim.maps import load_map
from sim.routes import load_routes
from sim.spawn import spawn_points

MAX_STEP_M = 2.01
ROUTES_FILE = "routes/carla_lb1_town01_town02.xml"


@pytest.fixture(scope="module")
def builtin() -> dict[str, tuple[carla.Map, RoutePlanner]]:
    maps = {name: load_map(name).map for name in ("town_grid", "highway", "rural")}
    return {name: (m, RoutePlanner(m)) for name, m in maps.items()}


@pytest.fixture(scope="module")
def carla_towns(shared_dir: Path) -> dict[str, tuple[carla.Map, RoutePlanner]]:
    towns = {}
    for town in ("Town01", "Town02"):
        m = carla.Map(town, (shared_dir / "maps" / "carla" / f"{town}.xodr").read_text())
        towns[town] = (m, RoutePlanner(m))
    return towns


def assert_follows_lanes(route: Route, carla_map: carla.Map) -> None:
    """Dense (steps <= MAX_STEP_M), every point on a driving lane, s increasing.
    Leaderboard routes and lane following keep within 2 m (the resolution)."""
    assert len(route.waypoints) >= 2
    for prev, cur in itertools.pairwise(route.waypoints):
        step = math.hypot(cur.x - prev.x, cur.y - prev.y)
        assert step <= MAX_STEP_M, f"step {step:.2f} m at s={cur.s:.1f}"
        assert cur.s > prev.s
    for w in route.waypoints:
        # Within a driving lane; a lane change's middle point lies on the marking.
        loc = carla.Location(w.x, w.y, w.z)
        lane = carla_map.get_waypoint(loc, lane_type=carla.LaneType.Driving)
        off = lane.transform.location.distance(loc) - lane.lane_width / 2
        assert off <= 0.1, f"({w.x:.2f}, {w.y:.2f}) is {off:.2f} m off the driving lanes"
    assert route.length_m == pytest.approx(route.waypoints[-1].s)


def test_leaderboard_routes_connect(carla_towns, shared_dir: Path) -> None:
    routes = load_routes(shared_dir / ROUTES_FILE)
    assert len(routes) == 17
    for r in routes:
        carla_map, planner = carla_towns[r.town]
        route = planner.plan_through(r.points)
        assert_follows_lanes(route, carla_map)
        first, last = route.waypoints[0], route.waypoints[-1]
        assert math.hypot(first.x - r.points[0].x, first.y - r.points[0].y) < 2.0
        assert math.hypot(last.x - r.points[-1].x, last.y - r.points[-1].y) < 2.0
        # Sparse points cut corners; a detour around a block would be far longer.
        assert r.length_m() <= route.length_m <= 1.15 * r.length_m(), r.id
        assert {RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT} & set(route.options())


def test_town01_build_time(shared_dir: Path) -> None:
    m = carla.Map("Town01", (shared_dir / "maps" / "carla" / "Town01.xodr").read_text())
    t0 = time.perf_counter()
    RoutePlanner(m)
    assert time.perf_counter() - t0 < 2.0


def _pairs(points: list[carla.Transform], n: int, seed: int = 0):
    rng = random.Random(seed)
    return [tuple(rng.sample(points, 2)) for _ in range(n)]


@pytest.mark.parametrize("name", ["town_grid", "rural"])
def test_spawn_point_pairs_connect(builtin, name: str) -> None:
    carla_map, planner = builtin[name]
    points = spawn_points(carla_map)
    assert len(points) >= 2
    for a, b in _pairs(points, 25):
        route = planner.plan(a, b)
        assert_follows_lanes(route, carla_map)
        end = route.waypoints[-1]
        assert math.hypot(end.x - b.location.x, end.y - b.location.y) < 0.5


def _highway_by_direction(carla_map: carla.Map) -> tuple[list, list]:
    right, left = [], []
    for t in spawn_points(carla_map, spacing_m=100.0):
        wp = carla_map.get_waypoint(t.location)
        (right if wp.lane_id < 0 else left).append(t)
    return right, left


def test_highway_same_direction_connects_opposite_unreachable(builtin) -> None:
    carla_map, planner = builtin["highway"]
    right, left = _highway_by_direction(carla_map)
    assert right and left
    for same in (right, left):
        for a, b in _pairs(same, 8):
            assert_follows_lanes(planner.plan(a, b), carla_map)
    with pytest.raises(UnreachableError, match=r"no route .* from \(") as err:
        planner.plan(right[0], left[0])
    assert not isinstance(err.value, OffLaneError)
    loc = left[0].location
    assert f"({loc.x:.2f}, {loc.y:.2f})" in str(err.value)


def test_highway_lane_change(builtin) -> None:
    carla_map, planner = builtin["highway"]
    start = next(w for w in carla_map.generate_waypoints(50.0)
                 if w.lane_id == -2 and not w.is_junction)
    ahead = start.next(150.0)[0]
    goal = ahead.get_right_lane().get_right_lane()  # lane -4, same direction
    assert goal.lane_id == -4
    route = planner.plan(start.transform.location, goal.transform.location)
    assert_follows_lanes(route, carla_map)
    options = route.options()
    assert options.count(RoadOption.CHANGELANERIGHT) > 0
    assert RoadOption.CHANGELANELEFT not in options
    assert route.waypoints[-1].lane_id == -4
    # Two changes, then following the lane: not much longer than straight ahead.
    assert route.length_m < 160.0


def test_off_lane_points_raise(builtin) -> None:
    _, planner = builtin["town_grid"]
    on_lane = spawn_points(builtin["town_grid"][0])[0].location
    with pytest.raises(OffLaneError, match=r"goal \(5000.00, -5000.00\) is off every driving"):
        planner.plan(on_lane, (5000.0, -5000.0))
    with pytest.raises(UnreachableError, match=r"start \(5000.00, -5000.00\)"):
        planner.plan((5000.0, -5000.0), on_lane)
    with pytest.raises(OffLaneError, match=r"point 1"):
        planner.plan_through([on_lane, carla.Location(5000.0, -5000.0, 0.0)])


@pytest.mark.parametrize("name", ["town_grid", "rural", "highway"])
def test_astar_matches_dijkstra(builtin, name: str) -> None:
    carla_map, planner = builtin[name]
    points = spawn_points(carla_map, spacing_m=60.0)
    checked = 0
    for a, b in _pairs(points, 8, seed=1):
        try:
            fast = planner.plan(a, b)
        except UnreachableError:
            continue
        slow = planner.plan(a, b, heuristic=False)
        assert fast.cost == pytest.approx(slow.cost, rel=1e-9)
        assert fast.length_m <= slow.length_m * 1.01
        checked += 1
    assert checked >= 3


def test_junction_options_and_yaw_preference(builtin) -> None:
    carla_map, planner = builtin["town_grid"]
    points = spawn_points(carla_map)
    seen: set[RoadOption] = set()
    for a, b in _pairs(points, 30, seed=2):
        seen |= set(planner.plan(a, b).options())
    assert {RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT} <= seen
    # A route point with a yaw lands on the lane heading that way.
    wp = carla_map.get_waypoint(points[0].location)
    route = planner.plan(wp.transform, wp.next(30.0)[0].transform)
    assert route.waypoints[0].lane_id == wp.lane_id
    assert route.length_m == pytest.approx(30.0, abs=1.0)
