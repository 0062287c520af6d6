"""OpenDRIVE maps of the embedded simulator: the built-in ones and any ``.xodr`` file,
loaded into a ``carla.Map`` (which works offline: waypoints, topology, lane
markings, junctions, signal landmarks, crosswalks).

The built-in maps (``town_grid``, ``highway``, ``rural``) are files next to this
module, written by :mod:`sim.maps.generate`. :func:`load_map` takes a built-in name
or a path and fails with one :class:`MapError` line naming the file and what was
expected. ``carla.Map`` itself is lenient in the wrong places: it accepts any XML
(giving a map without a single lane) and crashes the whole process on some
inconsistent files (a road without a planView, a geometry without a shape, a link
to a lane that does not exist), so the file's structure is checked before
``carla.Map`` sees it and a map without driving lanes is refused afterwards.

Frames: every position that comes out of a ``carla.Map`` is CARLA's world frame
(metres, left-handed, z up, yaw in degrees); OpenDRIVE's y is CARLA's -y.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # carla is imported where a map is built, so MapError costs nothing
    import carla

__all__ = [
    "MAP_DIR",
    "LoadedMap",
    "MapError",
    "MapInfo",
    "builtin_maps",
    "load_map",
    "map_info",
    "parse_map",
    "resolve_town",
]

#: Where the built-in maps live (written by ``python -m sim.maps.generate``).
MAP_DIR = Path(__file__).resolve().parent

_GEOMETRY_SHAPES = ("line", "arc", "spiral", "poly3", "paramPoly3")


class MapError(ValueError):
    """A map that cannot be used: missing, empty, not OpenDRIVE, or not drivable."""

    def __init__(self, source: str, expected: str, got: str | None = None) -> None:
        message = f"{source}: expected {expected}"
        if got:
            message += f", got {got}"
        super().__init__(message)
        self.source, self.expected = source, expected


@dataclass(frozen=True)
class LoadedMap:
    """A map ready to drive on: its ``name`` (the built-in name or the file's stem),
    the file it came from (None when built from text), the OpenDRIVE text (what the
    simulator publishes on /map/opendrive) and the ``carla.Map`` built from it."""

    name: str
    path: Path | None
    xodr: str
    map: carla.Map


def builtin_maps() -> dict[str, Path]:
    """Built-in map name -> its .xodr file, sorted by name."""
    return {p.stem: p for p in sorted(MAP_DIR.glob("*.xodr"))}


def load_map(name_or_path: str | Path) -> LoadedMap:
    """Load a built-in map by name (``town_grid``) or an OpenDRIVE file by path.

    A string that names a built-in map wins over a file of that name in the
    working directory; anything with a suffix or a slash is a path."""
    text_name = str(name_or_path)
    builtins = builtin_maps()
    if isinstance(name_or_path, str) and text_name in builtins:
        path = builtins[text_name]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            if path.suffix or "/" in text_name or path.exists():
                raise MapError(str(path), "an existing OpenDRIVE (.xodr) file",
                               "a directory" if path.is_dir() else "no such file")
            raise MapError(text_name, "a built-in map name (" + ", ".join(builtins)
                           + ") or the path of an OpenDRIVE .xodr file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapError(str(path), "a readable OpenDRIVE file", exc.strerror) from None
    except UnicodeDecodeError:
        raise MapError(str(path), "UTF-8 OpenDRIVE text", "undecodable bytes") from None
    name = text_name if path == builtins.get(text_name) else path.stem
    return parse_map(text, name=name, source=str(path), path=path)


def parse_map(xodr: str, name: str = "map", source: str = "<opendrive>",
              path: Path | None = None) -> LoadedMap:
    """Build a :class:`LoadedMap` from OpenDRIVE text; ``source`` names it in errors
    (e.g. the file, or the topic it came from)."""
    if not xodr.strip():
        raise MapError(source, "OpenDRIVE XML", "an empty file")
    _check_structure(xodr, source)
    import carla

    try:
        carla_map = carla.Map(name, xodr)
    except RuntimeError as exc:
        raise MapError(source, "OpenDRIVE that carla.Map can build",
                       f"'{str(exc).strip()}'") from None
    if not carla_map.get_topology() and not carla_map.generate_waypoints(10.0):
        raise MapError(source, "OpenDRIVE with at least one driving lane",
                       "none that carla.Map can use")
    return LoadedMap(name, path, xodr, carla_map)


def resolve_town(town: str, map_dir: str | Path | None = None) -> Path:
    """The .xodr file for a town that a scenario or a CARLA leaderboard route names
    (``Town01``): ``map_dir/<town>.xodr`` when it exists, else a built-in map of
    that name."""
    tried = []
    if map_dir is not None:
        candidate = Path(map_dir) / f"{town}.xodr"
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    builtin = builtin_maps().get(town)
    if builtin is not None:
        return builtin
    names = ", ".join(builtin_maps())
    if tried:
        raise MapError(town, f"the file {tried[0]} or a built-in map ({names})", "neither")
    raise MapError(town, f"a built-in map ({names}) or a map_dir holding {town}.xodr")


@dataclass(frozen=True)
class MapInfo:
    """What ``drivestack maps`` lists: driving-lane length (km, each lane counted,
    junction lanes included), junctions, traffic lights (type 1000001 landmarks),
    stop signs (206), crosswalks, and the range of road speed limits (km/h)."""

    name: str
    driving_km: float
    junctions: int
    traffic_lights: int
    stop_signs: int
    crosswalks: int
    speed_kmh: tuple[float, float] | None


def map_info(loaded: LoadedMap) -> MapInfo:
    root = ET.fromstring(loaded.xodr)
    driving_m = 0.0
    for road in root.iter("road"):
        length = float(road.get("length", "0"))
        sections = road.findall("lanes/laneSection")
        starts = [float(s.get("s", "0")) for s in sections] + [length]
        for sec, s0, s1 in zip(sections, starts, starts[1:], strict=False):
            n = sum(1 for lane in sec.iter("lane") if lane.get("type") == "driving"
                    and lane.get("id") != "0")
            driving_m += n * max(0.0, s1 - s0)
    speeds = []
    factors = {"km/h": 1.0, "m/s": 3.6, "mph": 1.609344}
    for sp in root.iterfind("road/type/speed"):
        try:
            speeds.append(float(sp.get("max", "")) * factors.get(sp.get("unit", "m/s"), 3.6))
        except ValueError:
            continue
    m = loaded.map
    return MapInfo(
        name=loaded.name, driving_km=driving_m / 1000.0,
        junctions=len(root.findall("junction")),
        traffic_lights=len(m.get_all_landmarks_of_type("1000001")),
        stop_signs=len(m.get_all_landmarks_of_type("206")),
        crosswalks=len(crosswalk_polygons(m)),
        speed_kmh=(min(speeds), max(speeds)) if speeds else None)


def crosswalk_polygons(carla_map: carla.Map) -> list[list[carla.Location]]:
    """``carla.Map.get_crosswalks()`` comes back as one flat list of points in
    which each crosswalk's outline is closed by repeating its first point; split
    it into one open polygon per crosswalk (CARLA world frame)."""
    polygons: list[list[carla.Location]] = []
    current: list[carla.Location] = []
    for p in carla_map.get_crosswalks():
        if len(current) >= 3 and p.distance(current[0]) < 1e-3:
            polygons.append(current)
            current = []
        else:
            current.append(p)
    return polygons


# ------------------------------------------------------------------ structure check


def _number(el: ET.Element, attr: str) -> float | None:
    try:
        value = float(el.get(attr, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_structure(xodr: str, source: str) -> None:
    """Refuse what carla.Map would misread or crash on: not XML, not an OpenDRIVE
    root, no roads, and roads without a usable planView, lanes, or lane ids, or
    links to roads and lanes that do not exist."""
    try:
        root = ET.fromstring(xodr)
    except ET.ParseError as exc:
        raise MapError(source, "OpenDRIVE XML", f"malformed XML ({exc})") from None
    if root.tag != "OpenDRIVE":
        raise MapError(source, "an <OpenDRIVE> root element", f"<{root.tag}>")
    roads = root.findall("road")
    if not roads:
        raise MapError(source, "OpenDRIVE with at least one <road>", "none")
    lanes: dict[str, set[int]] = {}
    for road in roads:
        rid = road.get("id")
        where = f"road {rid!r}"
        if rid is None or rid in lanes:
            raise MapError(source, "a unique id on every <road>",
                           "a road without one" if rid is None else f"road id {rid} twice")
        length = _number(road, "length")
        if length is None or length <= 0:
            raise MapError(source, f"a positive length on {where}", repr(road.get("length")))
        geometries = road.findall("planView/geometry")
        if not geometries:
            raise MapError(source, f"a <planView> with <geometry> in {where}", "none")
        for geo in geometries:
            if any(_number(geo, a) is None for a in ("s", "x", "y", "hdg", "length")):
                raise MapError(source, f"numeric s, x, y, hdg and length on every "
                               f"<geometry> of {where}")
            if (_number(geo, "length") or 0.0) <= 0:
                raise MapError(source, f"positive geometry lengths in {where}")
            if not any(geo.find(shape) is not None for shape in _GEOMETRY_SHAPES):
                raise MapError(source, f"a shape ({', '.join(_GEOMETRY_SHAPES)}) in every "
                               f"<geometry> of {where}")
        sections = road.findall("lanes/laneSection")
        if not sections:
            raise MapError(source, f"<lanes> with a <laneSection> in {where}", "none")
        ids: set[int] = set()
        for sec in sections:
            if sec.find("center/lane") is None:
                raise MapError(source, f"a <center> lane in every laneSection of {where}")
            for lane in sec.iter("lane"):
                try:
                    ids.add(int(lane.get("id", "")))
                except ValueError:
                    raise MapError(source, f"an integer id on every lane of {where}",
                                   repr(lane.get("id"))) from None
        lanes[rid] = ids
    junctions = {j.get("id") for j in root.findall("junction")}
    for road in roads:
        rid = road.get("id")
        for tag in ("predecessor", "successor"):
            link = road.find(f"link/{tag}")
            if link is None:
                continue
            kind, target = link.get("elementType", "road"), link.get("elementId")
            known = lanes if kind == "road" else junctions
            if target not in known:
                raise MapError(source, f"road {rid}'s {tag} to be an existing {kind}",
                               f"{kind} {target!r}")
            if kind != "road":
                continue
            for lane in road.iterfind(f"lanes/laneSection/*/lane/link/{tag}"):
                lid = lane.get("id", "")
                if not lid.lstrip("-").isdigit() or int(lid) not in lanes[target]:
                    raise MapError(source, f"lane links of road {rid} to lanes of road "
                                   f"{target}", f"lane {lid!r}")
    for junction in root.findall("junction"):
        for conn in junction.findall("connection"):
            inc, con = conn.get("incomingRoad"), conn.get("connectingRoad")
            if inc not in lanes or con not in lanes:
                raise MapError(source, f"junction {junction.get('id')}'s connections "
                               "between existing roads", f"roads {inc!r} and {con!r}")
            for ll in conn.findall("laneLink"):
                a, b = ll.get("from", ""), ll.get("to", "")
                ok = (a.lstrip("-").isdigit() and int(a) in lanes[inc]
                      and b.lstrip("-").isdigit() and int(b) in lanes[con])
                if not ok:
                    raise MapError(source, f"junction {junction.get('id')}'s lane links "
                                   "between existing lanes",
                                   f"{a!r} of road {inc} to {b!r} of road {con}")
