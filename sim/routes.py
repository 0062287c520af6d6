"""CARLA Leaderboard route files: ``<routes><route id town><waypoint x y z pitch roll
yaw/>...</route></routes>``, waypoints in CARLA world coordinates (metres, degrees).

Parsed with the standard library's ElementTree on text we read ourselves; every
problem (missing file, not XML, a route without waypoints, a bad number) is one
:class:`RouteError` naming the file and the route.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


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
