"""Routes: CARLA Leaderboard route files, and sparse route waypoints traced along a
map's lanes.

Route files are ``<routes><route id town><waypoint x y z pitch roll yaw/>...
</route></routes>``, waypoints in CARLA world coordinates (metres, degrees). Parsed
with the standard library's ElementTree on text we read ourselves; every problem
(missing file, not XML, a route without waypoints, a bad number) is one
:class:`RouteError` naming the file and the route.

:func:`trace_route` turns the sparse waypoints of a route (a file's, or a
scenario's) into the dense polyline a car drives along the lanes, which is what
the route is scored against (``sim.evaluation``).
"""

from __future__ import annotations

import heapq
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # carla is imported where a map is used, so RouteError costs nothing
    import carla

log = logging.getLogger("drivestack.sim.routes")

#: How far (m) a route waypoint may lie from the centre of its driving lane.
MAX_OFF_LANE_M = 10.0


class RouteError(ValueError):
    """A route file or route id that cannot be used."""


@dataclass(frozen=True)
class RoutePoint:
    """A route waypoint: world position (m) and yaw (deg), CARLA frame."""

    x: float
    y: float
    z: float = 0.0
    yaw: float = 0.0


@dataclass(frozen=True)
class Route:
    id: str
    town: str
    points: tuple[RoutePoint, ...]
    weather: dict[str, float] = field(default_factory=dict)
    source: str = ""  # "file#id", for messages

    def length_m(self) -> float:
        """Straight-line length through the waypoints (a lower bound of the drive)."""
        return sum(math.hypot(b.x - a.x, b.y - a.y)
                   for a, b in zip(self.points, self.points[1:], strict=False))


def _number(elem: ET.Element, name: str, where: str, default: float | None = None) -> float:
    raw = elem.get(name)
    if raw is None:
        if default is not None:
            return default
        raise RouteError(f"{where}: waypoint without attribute {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise RouteError(f"{where}: waypoint {name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise RouteError(f"{where}: waypoint {name}={raw!r} is not finite")
    return value


def load_routes(path: str | Path) -> list[Route]:
    """Every route in a leaderboard route file, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteError(f"{path}: cannot read route file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RouteError(f"{path}: expected a UTF-8 XML route file") from None
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise RouteError(f"{path}: not valid XML ({exc})") from None
    if root.tag != "routes":
        raise RouteError(f"{path}: expected a <routes> document, found <{root.tag}>")
    routes = []
    for i, elem in enumerate(root.findall("route")):
        rid = elem.get("id")
        town = elem.get("town") or elem.get("map")
        where = f"{path} route {rid if rid is not None else f'#{i}'}"
        if rid is None or not town:
            raise RouteError(f"{where}: a <route> needs id and town attributes")
        points = tuple(
            RoutePoint(_number(w, "x", where), _number(w, "y", where),
                       _number(w, "z", where, 0.0), _number(w, "yaw", where, 0.0))
            for w in elem.findall("waypoint"))
        if len(points) < 2:
            raise RouteError(f"{where}: needs at least 2 waypoints, has {len(points)}")
        weather_elem = elem.find("weather")
        weather = {}
        if weather_elem is not None:
            weather = {k: _number(weather_elem, k, where) for k in weather_elem.attrib}
        routes.append(Route(rid, town, points, weather, f"{path}#{rid}"))
    if not routes:
        raise RouteError(f"{path}: no <route> elements")
    return routes


def load_route(path: str | Path, route_id: str | int) -> Route:
    """The route ``route_id`` of a leaderboard route file."""
    routes = load_routes(path)
    for r in routes:
        if r.id == str(route_id):
            return r
    ids = ", ".join(r.id for r in routes[:20]) + (" ..." if len(routes) > 20 else "")
    raise RouteError(f"{path}: no route with id {route_id!r} (ids: {ids})")


# ----------------------------------------------------------------- lane-following
@dataclass(frozen=True)
class DenseRoute:
    """A route traced along the map's lanes (:func:`trace_route`): ``points`` (N, 2),
    world x, y (m), ``step_m`` apart along the road's reference line (a lane on the
    outside of a bend gets longer steps, on the inside shorter), from the first route
    waypoint to the last. ``chords``: indices i of the route segments (waypoint i to
    i + 1) for which no lane path was found and the straight line stands in."""

    points: np.ndarray
    chords: tuple[int, ...] = ()

    def length_m(self) -> float:
        """Length of the polyline (m): the distance driven along the lanes."""
        return float(np.sum(np.hypot(*np.diff(self.points, axis=0).T)))


def _lane(wp: carla.Waypoint) -> tuple[int, int]:
    return wp.road_id, wp.lane_id


def _successors(wp: carla.Waypoint, step_m: float) -> list[tuple[carla.Waypoint, float]]:
    """Where a car on ``wp`` can be after ``step_m`` m (every branch at a split) and
    the lanes beside it of the same direction (a lane change, costing its width
    on top of the step, so the trace changes lanes only to reach a waypoint)."""
    import carla

    out = [(n, step_m) for n in wp.next(step_m)]
    if wp.is_junction:
        return out
    for side in (wp.get_left_lane(), wp.get_right_lane()):
        if (side is not None and side.lane_type == carla.LaneType.Driving
                and side.lane_id * wp.lane_id > 0):
            out.append((side, step_m + wp.lane_width))
    return out


def _trace(start: carla.Waypoint, goal: carla.Waypoint, step_m: float,
           max_length_m: float) -> list[carla.Waypoint] | None:
    """The shortest lane path from ``start`` to ``goal`` (A* over waypoints
    ``step_m`` apart, straight-line distance as the heuristic), ending at the first
    waypoint within ``step_m`` of the goal on the goal's lane, or on any junction
    lane when the goal is in a junction (its lanes overlap, and which one the route
    takes is the path's business); then the goal itself, when on its lane. None
    when no path is shorter than
    ``max_length_m`` m."""
    goal_loc = goal.transform.location
    goal_lane = _lane(goal)

    def reached(wp: carla.Waypoint) -> bool:
        return (wp.transform.location.distance(goal_loc) <= step_m
                and (_lane(wp) == goal_lane or (goal.is_junction and wp.is_junction)))

    def key(wp: carla.Waypoint) -> tuple[int, int, int, int]:
        return wp.road_id, wp.section_id, wp.lane_id, round(wp.s / step_m)

    nodes, parent, best = [start], [-1], {key(start): 0.0}
    heap = [(start.transform.location.distance(goal_loc), 0.0, 0)]
    while heap:
        f, g, i = heapq.heappop(heap)
        if f > max_length_m:
            return None  # every path left is longer
        wp = nodes[i]
        if g > best.get(key(wp), math.inf):
            continue  # reached more cheaply since it was queued
        if reached(wp):
            path = [goal] if _lane(wp) == goal_lane else []  # end on the goal itself
            while i >= 0:
                path.append(nodes[i])
                i = parent[i]
            return path[::-1]
        for nxt, cost in _successors(wp, step_m):
            k, g_next = key(nxt), g + cost
            if g_next >= best.get(k, math.inf):
                continue
            best[k] = g_next
            nodes.append(nxt)
            parent.append(i)
            heapq.heappush(heap, (g_next + nxt.transform.location.distance(goal_loc),
                                  g_next, len(nodes) - 1))
    return None


def trace_route(carla_map: carla.Map, waypoints: Sequence[tuple[float, float]],
                step_m: float = 1.0, max_detour: float = 3.0) -> DenseRoute:
    """The route through ``waypoints`` (world x, y in m, driving order) as the lanes
    run: each waypoint is put on its nearest driving lane (at most
    ``MAX_OFF_LANE_M`` away, else a ValueError names it), and each segment is the
    shortest lane path to the next one (``next(step_m)`` along the lanes, the branch
    at a junction that leads there, a lane change where the next waypoint is on
    another lane of the same direction). So route completion and the route timeout
    use the distance driven, not the chords between sparse waypoints (the
    Leaderboard interpolates its routes the same way, at 1 m).

    A segment with no lane path shorter than ``max_detour`` times its chord (plus
    50 m for turning round blocks) is drawn as the chord and logged; its index is
    in ``DenseRoute.chords``. Frames: CARLA world (metres)."""
    import carla

    if len(waypoints) < 2:
        raise ValueError(f"route: need at least 2 waypoints, got {len(waypoints)}")
    if not step_m > 0.0:
        raise ValueError(f"step_m: expected a positive distance, got {step_m}")
    lanes = []
    for i, (x, y) in enumerate(waypoints):
        loc = carla.Location(float(x), float(y), 0.0)
        wp = carla_map.get_waypoint(loc, lane_type=carla.LaneType.Driving)
        off = math.inf if wp is None else wp.transform.location.distance(loc)
        if off > MAX_OFF_LANE_M:
            raise ValueError(f"route waypoint {i} ({x:.1f}, {y:.1f}): {off:.1f} m from the "
                             f"nearest driving lane of map {carla_map.name} (at most "
                             f"{MAX_OFF_LANE_M:g} m)")
        lanes.append(wp)
    start = lanes[0]
    points = [start.transform.location]
    chords = []
    for i, goal in enumerate(lanes[1:]):
        chord = start.transform.location.distance(goal.transform.location)
        limit = max_detour * chord + 50.0
        path = _trace(start, goal, step_m, limit)
        if path is None:
            a, b = waypoints[i], waypoints[i + 1]
            log.warning("route segment %d (%.1f, %.1f) -> (%.1f, %.1f) on map %s: no lane "
                        "path shorter than %.0f m, using the straight line", i, a[0], a[1],
                        b[0], b[1], carla_map.name, limit)
            chords.append(i)
            path = [start, goal]
        points += [wp.transform.location for wp in path[1:]]
        start = path[-1]
    xy = np.array([[p.x, p.y] for p in points], float)
    return DenseRoute(xy, tuple(chords))
