"""Pedestrians: walkers on the map's sidewalk lanes who sometimes cross the road.

A walker follows its sidewalk lane (``Waypoint.next``/``previous`` on a lane of
type Sidewalk) at a seeded walking speed, and turns round where the sidewalk ends.
Where a sidewalk meets a junction, it crosses the road with a seeded probability:
straight across to the sidewalk on the far side (found by stepping over the lanes
with ``get_left_lane``), as at a crossing. Scenarios make a walker cross
mid-block (:meth:`Pedestrians.cross_now`).

A crossing walker does not walk into the side of a vehicle: it waits while its
next step would bring it within ``VEHICLE_GAP_M`` of one beside it (its centre
within the vehicle's length). Without this, walkers walked into the side of the ego
standing or crawling beside them, out of its camera's view, and each such contact
counted as the ego's pedestrian collision (Town01/02 leaderboard routes 7 and 11).
A walker ahead of a vehicle's front goes on: that vehicle is waiting for it (a
first version also waited there, and a walker and a car stopped for it waited for
each other for good: Town02 routes 11 to 14 ended blocked). A vehicle that drives
into a walker still hits it: the walker only keeps out of vehicles' way, it does
not dodge them. World frame: CARLA's (m, degrees).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.geometry import Box2D, overlaps

if TYPE_CHECKING:
    import carla

WALKER_HALF_SIZE = 0.3  # m: a walker's box is 0.6 x 0.6 (CARLA's are ~0.37 x 0.37)
CROSS_PROBABILITY = 0.5  # at the end of a sidewalk, chance to cross instead of turning
VEHICLE_GAP_M = 0.2  # a crossing walker stops this far from a vehicle in its way


@dataclass
class Walker:
    id: int
    waypoint: carla.Waypoint  # on the sidewalk lane (while not crossing)
    forward: bool  # walking along the lane's next() direction
    speed: float  # m/s
    rng: np.random.Generator
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    crossing_to: carla.Waypoint | None = None  # far-side sidewalk while crossing

    @property
    def crossing(self) -> bool:
        return self.crossing_to is not None


def sidewalk_beside(wp: carla.Waypoint) -> carla.Waypoint | None:
    """The sidewalk lane on the right of a driving lane (its own side of the road)."""
    import carla

    lane = wp
    for _ in range(6):
        lane = lane.get_right_lane()
        if lane is None:
            return None
        if lane.lane_type == carla.LaneType.Sidewalk:
            return lane
    return None


def far_sidewalk(wp: carla.Waypoint) -> carla.Waypoint | None:
    """The sidewalk on the other side of the road from sidewalk waypoint ``wp``.

    Left (in the lane's direction) leads towards the road centre; across it the
    lane direction flips, so from there the far side is to the right."""
    import carla

    lane = wp
    for _ in range(8):  # to the first lane beyond the centre line
        lane = lane.get_left_lane()
        if lane is None:
            return None
        if lane.lane_id * wp.lane_id < 0:
            break
    else:
        return None
    for _ in range(8):  # then outwards to the sidewalk
        if lane.lane_type == carla.LaneType.Sidewalk:
            return lane
        lane = lane.get_right_lane()
        if lane is None:
            return None
    return None


class Pedestrians:
    """All walkers of a world, stepped together, deterministic for their seeds."""

    def __init__(self) -> None:
        self.walkers: list[Walker] = []

    def spawn(self, walker_id: int, sidewalk: carla.Waypoint, rng: np.random.Generator
              ) -> Walker:
        w = Walker(walker_id, sidewalk, bool(rng.integers(2)), float(rng.uniform(1.1, 1.6)),
                   rng)
        self._place_on(w, sidewalk)
        self.walkers.append(w)
        return w

    def _place_on(self, w: Walker, wp: carla.Waypoint) -> None:
        t = wp.transform
        w.waypoint, w.x, w.y = wp, t.location.x, t.location.y
        w.yaw = t.rotation.yaw if w.forward else t.rotation.yaw + 180.0

    def cross_now(self, w: Walker) -> bool:
        """Start crossing the road from where the walker is (mid-block if need be)."""
        target = far_sidewalk(w.waypoint)
        if target is None:
            return False
        w.crossing_to = target
        loc = target.transform.location
        w.yaw = math.degrees(math.atan2(loc.y - w.y, loc.x - w.x))
        return True

    def step(self, dt: float, vehicles: Callable[[], np.ndarray] | None = None) -> None:
        """Advance every walker ``dt`` s. ``vehicles``: gives the N x 5 boxes (x, y,
        yaw_deg, half_length, half_width; :func:`sim.geometry.box_corners`) that
        crossing walkers keep out of (module doc); called once, and only when a
        walker is crossing."""
        boxes: np.ndarray | None = None
        for w in self.walkers:
            if w.crossing:
                if boxes is None:
                    boxes = np.zeros((0, 5)) if vehicles is None \
                        else np.asarray(vehicles(), float)
                self._step_crossing(w, dt, boxes)
            else:
                self._step_sidewalk(w, dt)

    def _step_crossing(self, w: Walker, dt: float, vehicles: np.ndarray) -> None:
        assert w.crossing_to is not None
        loc = w.crossing_to.transform.location
        dx, dy = loc.x - w.x, loc.y - w.y
        dist = math.hypot(dx, dy)
        step = w.speed * dt
        if dist <= step:
            target, w.crossing_to = w.crossing_to, None
            w.forward = bool(w.rng.integers(2))
            self._place_on(w, target)
            return
        x, y = w.x + dx / dist * step, w.y + dy / dist * step
        if len(vehicles) and _beside_a_vehicle(w, x, y, vehicles):
            return  # wait
        w.x, w.y = x, y

    def _step_sidewalk(self, w: Walker, dt: float) -> None:
        d = w.speed * dt
        ahead = w.waypoint.next(d) if w.forward else w.waypoint.previous(d)
        ahead = [a for a in ahead if not a.is_junction]
        if not ahead:  # the sidewalk ends here (a junction or a dead end)
            if w.rng.random() < CROSS_PROBABILITY and self.cross_now(w):
                return
            w.forward = not w.forward
            self._place_on(w, w.waypoint)
            return
        ahead.sort(key=lambda a: (a.road_id, a.section_id, a.lane_id))
        self._place_on(w, ahead[int(w.rng.integers(len(ahead)))])


def _beside_a_vehicle(w: Walker, x: float, y: float, vehicles: np.ndarray) -> bool:
    """Whether stepping to (x, y) brings walker ``w`` within ``VEHICLE_GAP_M`` of the
    side of one of ``vehicles`` (N x 5 boxes) that it is not against already."""
    half = WALKER_HALF_SIZE + VEHICLE_GAP_M
    near = overlaps(Box2D(x, y, w.yaw, half, half), vehicles)
    if not near.any():
        return False
    near &= ~overlaps(Box2D(w.x, w.y, w.yaw, half, half), vehicles)
    yaw = np.radians(vehicles[:, 2])
    along = (x - vehicles[:, 0]) * np.cos(yaw) + (y - vehicles[:, 1]) * np.sin(yaw)
    return bool((near & (np.abs(along) <= vehicles[:, 3])).any())
