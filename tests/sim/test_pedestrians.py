"""Pedestrians walk their sidewalks, turn or cross where they end, cross on demand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.pedestrians import Pedestrians, far_sidewalk, sidewalk_beside


@pytest.fixture(scope="module")
def town01(shared_dir: Path):
    import carla

    return carla.Map("Town01", (shared_dir / "maps" / "carla" / "Town01.xodr").read_text())


def sidewalks(town01, n: int) -> list:
    out = []
    for wp in town01.generate_waypoints(25.0):
        if not wp.is_junction and (s := sidewalk_beside(wp)) is not None:
            out.append(s)
        if len(out) == n:
            break
    return out


def test_walkers_stay_on_sidewalks_or_cross(town01):
    import carla

    peds = Pedestrians()
    for i, s in enumerate(sidewalks(town01, 12)):
        peds.spawn(200 + i, s, np.random.default_rng([3, i]))
    crossed = set()
    for _ in range(1200):  # 60 s
        peds.step(0.05)
        for w in peds.walkers:
            if w.crossing:
                crossed.add(w.id)
                continue
            lane = town01.get_waypoint(carla.Location(w.x, w.y, 0.0), project_to_road=False,
                                       lane_type=carla.LaneType.Sidewalk)
            assert lane is not None, (w.id, w.x, w.y)
    assert all(math.isfinite(w.x) and math.isfinite(w.y) for w in peds.walkers)
    assert crossed  # someone crossed a road at the end of a sidewalk


def test_cross_now_reaches_the_far_sidewalk(town01):
    import carla

    s = sidewalks(town01, 1)[0]
    far = far_sidewalk(s)
    assert far is not None
    peds = Pedestrians()
    w = peds.spawn(1, s, np.random.default_rng(0))
    assert peds.cross_now(w)
    start = (w.x, w.y)
    for _ in range(400):
        peds.step(0.05)
        if not w.crossing:
            break
    assert not w.crossing
    assert math.hypot(w.x - start[0], w.y - start[1]) > 6.0  # across two lanes at least
    lane = town01.get_waypoint(carla.Location(w.x, w.y, 0.0), project_to_road=False,
                               lane_type=carla.LaneType.Sidewalk)
    assert lane is not None and lane.lane_id * s.lane_id < 0  # the other side


def crossing_walker(town01) -> tuple[Pedestrians, object, tuple[float, float]]:
    """One walker starting to cross from the first sidewalk, and the unit vector
    (x, y) of its path."""
    s = sidewalks(town01, 1)[0]
    peds = Pedestrians()
    w = peds.spawn(1, s, np.random.default_rng(0))
    assert peds.cross_now(w)
    to = w.crossing_to.transform.location
    d = math.hypot(to.x - w.x, to.y - w.y)
    return peds, w, ((to.x - w.x) / d, (to.y - w.y) / d)


def test_a_crossing_walker_waits_for_a_vehicle_in_its_way_and_goes_on_after(town01):
    """A car standing on the walker's path holds it short of the car (it does not
    walk into its side); once the car is gone the walker crosses."""
    from sim.geometry import Box2D, overlaps
    from sim.pedestrians import WALKER_HALF_SIZE

    peds, w, (ux, uy) = crossing_walker(town01)
    # a 4.9 x 2.1 m car across the walker's path, 3 m into the crossing
    car = np.array([[w.x + 3.0 * ux, w.y + 3.0 * uy, math.degrees(math.atan2(ux, -uy)),
                     2.45, 1.05]])
    for _ in range(200):  # 10 s: long enough to have crossed
        peds.step(0.05, lambda: car)
    assert w.crossing
    assert not overlaps(Box2D(w.x, w.y, w.yaw, WALKER_HALF_SIZE, WALKER_HALF_SIZE), car)[0]
    gap = math.hypot(car[0, 0] - w.x, car[0, 1] - w.y) - 1.05 - WALKER_HALF_SIZE
    assert 0.0 < gap < 0.5  # stopped just short of the car's side
    for _ in range(400):
        peds.step(0.05, lambda: np.zeros((0, 5)))
        if not w.crossing:
            break
    assert not w.crossing  # the car gone: across


def test_a_walker_a_vehicle_drove_against_walks_on(town01):
    """Only a step into a vehicle is refused: a walker already against one (a car
    drove up to it) is not held there."""
    peds, w, _ = crossing_walker(town01)
    car = np.array([[w.x, w.y, 0.0, 2.45, 1.05]])  # on top of the walker
    start = (w.x, w.y)
    for _ in range(20):
        peds.step(0.05, lambda: car)
    assert math.hypot(w.x - start[0], w.y - start[1]) > 0.5


def test_a_walker_crossing_in_front_of_a_car_stopped_for_it_goes_on(town01):
    """A car stopped with its front just short of the walker's path waits for the
    walker; the walker must not wait for the car (they would wait for each other
    for good: Town02 routes 11 to 14 ended blocked)."""
    peds, w, (ux, uy) = crossing_walker(town01)
    # the car's front 0.35 m short of the walker's line, 3 m into the crossing,
    # heading across the walker's path (along the road)
    px, py = w.x + 3.0 * ux, w.y + 3.0 * uy
    hx, hy = -uy, ux  # the car's heading
    car = np.array([[px - (2.45 + 0.35) * hx, py - (2.45 + 0.35) * hy,
                     math.degrees(math.atan2(hy, hx)), 2.45, 1.05]])
    for _ in range(400):
        peds.step(0.05, lambda: car)
        if not w.crossing:
            break
    assert not w.crossing
