"""Tracing sparse route waypoints along the lanes (sim.routes.trace_route)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from sim.maps import load_map  # noqa: E402
from sim.routes import trace_route  # noqa: E402

# Across town_grid (CARLA frame; junction centres at (100 i, -100 j), junctions 22 m
# across, lanes 1.75 m off the road axis): straight on at (100, -100), right at
# (200, -100), left at (200, 0), the ring's bend at (300, 0), left at (300, -100).
GRID_ROUTE = [(70.0, -98.25), (150.0, -98.25), (198.25, -50.0), (250.0, 1.75),
              (301.75, -50.0), (250.0, -101.75)]
RIGHT, LEFT = 9.25 * math.pi / 2, 12.75 * math.pi / 2  # quarter circles in a junction
GRID_LENGTH = (19 + 22 + 78 + RIGHT + 78 + LEFT  # to the ring
               + 69 + 21.75 * math.pi / 2 + 69  # the ring road round its corner
               + LEFT + 39)


@pytest.fixture(scope="module")
def town_grid():
    return load_map("town_grid").map


def _lane_at(carla_map, x: float, y: float):
    return carla_map.get_waypoint(carla.Location(float(x), float(y), 0.0),
                                  project_to_road=False, lane_type=carla.LaneType.Driving)


def test_route_follows_the_lanes_through_junctions(town_grid):
    route = trace_route(town_grid, GRID_ROUTE)
    assert route.chords == ()
    assert route.length_m() == pytest.approx(GRID_LENGTH, rel=0.005)
    steps = np.hypot(*np.diff(route.points, axis=0).T)
    assert steps.max() < 1.2  # 1 m along the road axis; longer round a bend's outside
    assert route.points[0] == pytest.approx(GRID_ROUTE[0], abs=0.05)
    assert route.points[-1] == pytest.approx(GRID_ROUTE[-1], abs=0.05)
    junctions = []
    for (x0, y0), (x1, y1) in zip(route.points, route.points[1:], strict=False):
        wp = _lane_at(town_grid, x1, y1)
        assert wp is not None, (x1, y1)  # on a driving lane all the way
        if wp.is_junction:
            centre = (round(x1 / 100) * 100, round(y1 / 100) * 100)
            if not junctions or junctions[-1] != centre:
                junctions.append(centre)
            continue
        heading = math.degrees(math.atan2(y1 - y0, x1 - x0))
        off = (heading - wp.transform.rotation.yaw + 180.0) % 360.0 - 180.0
        assert abs(off) < 30.0, (x1, y1, heading, wp.transform.rotation.yaw)
    assert junctions == [(100, -100), (200, -100), (200, 0), (300, -100)]


def test_a_route_straight_on_is_as_long_as_its_chord(town_grid):
    route = trace_route(town_grid, [(20.0, -98.25), (180.0, -98.25)])
    assert route.length_m() == pytest.approx(160.0, abs=1.0)
    assert np.abs(route.points[:, 1] + 98.25).max() < 0.01


def test_a_route_changes_lanes_to_reach_a_waypoint_on_the_next_lane(wide_road):
    # lanes -1 (y = 1.75) and -2 (y = 5.25) both drive towards +x
    route = trace_route(wide_road.carla_map, [(50.0, 1.75), (150.0, 5.25)])
    assert route.chords == ()
    assert route.length_m() == pytest.approx(100.0 + 3.5, abs=1.5)
    assert route.points[-1] == pytest.approx((150.0, 5.25), abs=0.05)


def test_a_segment_without_a_lane_path_is_the_chord_and_is_logged(straight_map, caplog):
    # lane -1 drives towards +x and the road ends at x = 500: x = 50 is not reachable
    with caplog.at_level(logging.WARNING, logger="drivestack.sim.routes"):
        route = trace_route(straight_map, [(0.0, 1.75), (100.0, 1.75), (50.0, 1.75)])
    assert route.chords == (1,)
    assert route.length_m() == pytest.approx(150.0, abs=1.0)
    assert "route segment 1 (100.0, 1.8) -> (50.0, 1.8)" in caplog.text
    assert "straight line" in caplog.text


def test_a_waypoint_off_the_lanes_and_bad_arguments_are_clear_errors(straight_map):
    with pytest.raises(ValueError, match=r"route waypoint 1 \(100.0, 40.0\): 38.2 m from "
                                         r"the nearest driving lane of map straight"):
        trace_route(straight_map, [(0.0, 1.75), (100.0, 40.0)])
    with pytest.raises(ValueError, match="need at least 2"):
        trace_route(straight_map, [(0.0, 1.75)])
    with pytest.raises(ValueError, match="step_m"):
        trace_route(straight_map, [(0.0, 1.75), (10.0, 1.75)], step_m=0.0)


def test_every_leaderboard_route_traces_along_its_town(shared_dir):
    from sim.routes import load_routes

    towns = {t: load_map(shared_dir / "maps" / "carla" / f"{t}.xodr").map
             for t in ("Town01", "Town02")}
    for r in load_routes(shared_dir / "routes" / "carla_lb1_town01_town02.xml"):
        route = trace_route(towns[r.town], [(p.x, p.y) for p in r.points])
        assert route.chords == (), r.id
        # a little longer than the chords between its waypoints, never a detour
        assert r.length_m() <= route.length_m() < 1.1 * r.length_m(), r.id
