"""Infractions of the ego, as CARLA's sensors and the Leaderboard see them.

Each check takes the world as it is after a step and returns ``RunEvent`` messages
(kinds from ``bus.messages.EVENT_KINDS``), world frame, sim time in the header:

  collisions      ego box against vehicles, pedestrians and static objects; the same
                  other actor counts again only after 5 s (Leaderboard rule)
  lane invasion   like CARLA's client-side LaneInvasionSensor: a corner of the ego's
                  box moved into another lane across a lane marking
  red light       the ego's front crossed a stop line whose light was red
  stop sign       the ego's front crossed a stop-sign line without having stood
                  still (< 0.1 m/s) within 3 s before (the Leaderboard's rule)
  off route       off the road (no driving lane under the ego centre) or driving
                  against the lane direction outside junctions (inside, lanes of
                  every direction overlap), reported when it starts
  route deviation farther than ``max_deviation_m`` (30 m) from the route polyline
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bus.frames import normalize_angle_deg
from bus.messages import Header, RunEvent, Vector3
from sim.geometry import Box2D, overlaps

if TYPE_CHECKING:
    import carla

COLLISION_REPEAT_S = 5.0
STOP_SIGN_WINDOW_S = 3.0


@dataclass(frozen=True)
class Collider:
    """Something the ego can hit: id, kind ('vehicle' | 'pedestrian' | 'static') and
    its box as (x, y, yaw_deg, half_length, half_width)."""

    id: int
    kind: str
    box: tuple[float, float, float, float, float]


@dataclass
class InfractionMonitor:
    """Keeps what the checks need from one tick to the next (last collision time per
    actor, lane of each ego corner, off-route state, previous front position)."""

    carla_map: carla.Map
    ego_id: int
    route: np.ndarray | None = None  # M x 2 world points of the route polyline
    max_deviation_m: float = 30.0
    _last_hit: dict[int, float] = field(default_factory=dict)
    _corner_lanes: list[tuple[int, int, int] | None] | None = None
    _was_off_route: bool = False
    _deviated: bool = False
    _prev_front: np.ndarray | None = None
    _last_stopped: float = -math.inf  # sim time the ego last stood still

    @property
    def off_route(self) -> bool:
        """Whether the ego is off its lanes now (as of the last :meth:`check`); the
        off_route event says only when that starts, the evaluator needs each tick."""
        return self._was_off_route

    def check(self, header: Header, ego: Box2D, ego_speed: float,
              colliders: Sequence[Collider],
              red_light_crossed: Callable[[np.ndarray, np.ndarray], int | None],
              stop_line_crossed: Callable[[np.ndarray, np.ndarray], int | None] | None = None,
              ) -> list[RunEvent]:
        """All infractions of this tick. ``red_light_crossed(prev_front, front)``
        returns the id of a red light whose stop line the segment crosses, or None;
        ``stop_line_crossed`` likewise for stop signs."""
        if ego_speed < 0.1:
            self._last_stopped = header.stamp
        events = self._collisions(header, ego, colliders)
        events += self._lane_invasion(header, ego)
        events += self._stop_lines(header, ego, red_light_crossed, stop_line_crossed)
        events += self._off_route(header, ego, ego_speed)
        events += self._route_deviation(header, ego)
        return events

    def _event(self, header: Header, kind: str, x: float, y: float, other: int = -1,
               value: float = 0.0, description: str = "") -> RunEvent:
        return RunEvent(header=header, kind=kind, actor_id=self.ego_id, other_id=other,
                        location=Vector3(x, y, 0.0), value=value, description=description)

    # ------------------------------------------------------------------ collisions
    def _collisions(self, header: Header, ego: Box2D,
                    colliders: Sequence[Collider]) -> list[RunEvent]:
        if not colliders:
            return []
        hit = overlaps(ego, np.array([c.box for c in colliders], float))
        events = []
        for c, h in zip(colliders, hit, strict=True):
            if not h:
                continue
            last = self._last_hit.get(c.id)
            self._last_hit[c.id] = header.stamp
            if last is not None and header.stamp - last < COLLISION_REPEAT_S:
                continue
            events.append(self._event(header, f"collision_{c.kind}", ego.x, ego.y, c.id,
                                      description=f"hit {c.kind} {c.id}"))
        return events

    # -------------------------------------------------------------- lane invasion
    def _lane_of(self, x: float, y: float) -> tuple[int, int, int] | None:
        import carla

        wp = self.carla_map.get_waypoint(carla.Location(x, y, 0.0), project_to_road=False,
                                         lane_type=carla.LaneType.Any)
        return None if wp is None else (wp.road_id, wp.section_id, wp.lane_id)

    def _lane_invasion(self, header: Header, ego: Box2D) -> list[RunEvent]:
        import carla

        corners = ego.corners()
        lanes = [self._lane_of(float(cx), float(cy)) for cx, cy in corners]
        before, self._corner_lanes = self._corner_lanes, lanes
        if before is None:
            return []
        crossed: list[str] = []
        for (cx, cy), old, new in zip(corners, before, lanes, strict=True):
            if old is None or new is None or old == new or old[0] != new[0]:
                continue  # off the road, same lane, or a new road (lane ids restart)
            if old[1] != new[1]:
                continue  # a new lane section along the road, not across a marking
            wp = self.carla_map.get_waypoint(carla.Location(float(cx), float(cy), 0.0),
                                             lane_type=carla.LaneType.Any)
            if wp is None:
                continue
            # The marking crossed is the new lane's side that faces the old lane: its
            # left (towards the road centre, in its own driving direction) when we
            # moved away from the centre or across it, else its right.
            same_side = old[2] * new[2] > 0
            outward = same_side and abs(new[2]) > abs(old[2])
            marking = wp.left_lane_marking if (outward or not same_side) else \
                wp.right_lane_marking
            crossed.append(str(marking.type))
        if not crossed:
            return []
        return [self._event(header, "lane_invasion", ego.x, ego.y,
                            description="crossed " + ", ".join(sorted(set(crossed))))]

    # ------------------------------------------------------------------ red light
    def _stop_lines(self, header: Header, ego: Box2D,
                    red_light_crossed: Callable[[np.ndarray, np.ndarray], int | None],
                    stop_line_crossed: Callable[[np.ndarray, np.ndarray], int | None] | None,
                    ) -> list[RunEvent]:
        yaw = math.radians(ego.yaw)
        front = np.array([ego.x + ego.half_length * math.cos(yaw),
                          ego.y + ego.half_length * math.sin(yaw)])
        prev, self._prev_front = self._prev_front, front
        if prev is None:
            return []
        events = []
        light = red_light_crossed(prev, front)
        if light is not None:
            events.append(self._event(header, "red_light", float(front[0]), float(front[1]),
                                      light, description=f"ran red light {light}"))
        sign = stop_line_crossed(prev, front) if stop_line_crossed is not None else None
        if sign is not None and header.stamp - self._last_stopped > STOP_SIGN_WINDOW_S:
            events.append(self._event(header, "stop_sign", float(front[0]), float(front[1]),
                                      sign, description=f"did not stop at stop sign {sign}"))
        return events

    # ------------------------------------------------------------------- off route
    def _off_route(self, header: Header, ego: Box2D, speed: float) -> list[RunEvent]:
        import carla

        wp = self.carla_map.get_waypoint(carla.Location(ego.x, ego.y, 0.0),
                                         project_to_road=False,
                                         lane_type=carla.LaneType.Driving)
        reason = ""
        if wp is None:
            reason = "off the road"
        elif (speed > 0.5 and not wp.is_junction  # junction lanes overlap every way
              and abs(normalize_angle_deg(ego.yaw - wp.transform.rotation.yaw)) > 120.0):
            reason = "driving against the lane direction"
        was, self._was_off_route = self._was_off_route, bool(reason)
        if not reason or was:
            return []
        return [self._event(header, "off_route", ego.x, ego.y, description=reason)]

    # ------------------------------------------------------------- route deviation
    def _route_deviation(self, header: Header, ego: Box2D) -> list[RunEvent]:
        if self.route is None or len(self.route) < 2 or self._deviated:
            return []
        d = distance_to_polyline(np.array([ego.x, ego.y]), self.route)
        if d <= self.max_deviation_m:
            return []
        self._deviated = True
        return [self._event(header, "route_deviation", ego.x, ego.y, value=d,
                            description=f"{d:.1f} m from the route")]


def distance_to_polyline(p: np.ndarray, line: np.ndarray) -> float:
    """Shortest distance (m) from point ``p`` to the polyline ``line`` (M x 2)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(
        np.einsum("ij,ij->i", ab, ab), 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return float(np.min(np.hypot(*(closest - p).T)))

