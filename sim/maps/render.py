"""Top-down raster of a ``carla.Map``: what the ground looks like from above.

:func:`rasterize` gives the layers the camera renderer warps into its cameras
(CARLA ``CityObjectLabel`` ids, a base RGB colour, the junction areas) and the
world -> pixel transform; :func:`draw_map` adds what a person wants on a map
(traffic lights, stop signs, spawn points, junction outlines, a scale bar) and
:func:`render_png` writes it.

What is painted, bottom to top: terrain everywhere; medians and borders (terrain);
paved non-driving lanes such as shoulders and parking (road); each junction's area
(the convex hull of its driving lanes, road); driving lanes (road); sidewalks;
lane markings with their type (solid, broken, double) and colour; crosswalk zebras
and stop lines (road lines). Geometry comes from ``carla.Map`` itself
(``get_waypoint_xodr`` along every lane of every lane section), so the raster
matches what waypoints, lane invasion and spawn points see.

Frames. World: CARLA's (metres; seen from above with x to the right, y points down
the image, which is the correct, unmirrored view of CARLA's left-handed frame).
Pixels: OpenCV's (u right, v down, integer coordinates at pixel centres).
``MapRaster.world_to_pixel`` is the 3 x 3 affine matrix between the two; the map is
flat at z = 0 (elevation is ignored).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import carla
import cv2
import numpy as np

from sim.labels import Label
from sim.maps import LoadedMap, MapError, crosswalk_polygons

__all__ = ["MapRaster", "draw_map", "rasterize", "render_png"]

# Base colours (RGB). The camera renderer varies them; these are the defaults.
TERRAIN_RGB = (86, 104, 64)
ROAD_RGB = (72, 72, 74)
SHOULDER_RGB = (96, 94, 90)
SIDEWALK_RGB = (152, 148, 140)
MARK_RGB = {"White": (236, 236, 236), "Standard": (236, 236, 236), "Yellow": (232, 188, 40),
            "Blue": (40, 90, 220), "Green": (40, 170, 70), "Red": (210, 40, 40),
            "Other": (236, 236, 236)}

# OpenDRIVE lane type -> (label, colour, paint pass). Lower passes are painted first.
_ROADLIKE = ("shoulder", "parking", "biking", "restricted", "stop", "entry", "exit",
             "onRamp", "offRamp", "connectingRamp", "bidirectional", "special1",
             "special2", "special3", "roadWorks", "tram", "rail", "bus", "taxi", "HOV")
_LANE_STYLE: dict[str, tuple[Label, tuple[int, int, int], int]] = {
    "driving": (Label.ROADS, ROAD_RGB, 3),
    "sidewalk": (Label.SIDEWALKS, SIDEWALK_RGB, 4),
    "median": (Label.TERRAIN, TERRAIN_RGB, 0),
    "border": (Label.TERRAIN, TERRAIN_RGB, 0),
    **{t: (Label.ROADS, SHOULDER_RGB, 1) for t in _ROADLIKE},
}

# Road markings: dash pattern (m painted, m period) of broken lines and dots, the
# gap (m) between the two lines of a double marking, a stop line's depth (m).
_DASH = (3.0, 9.0)
_DOTS = (0.3, 1.5)
_DOUBLE_GAP = 0.12
_STOP_LINE_M = 0.4
_ZEBRA = (0.5, 1.0)  # bar width, period (m)
# (offset side, dashed) per line of each marking type; side -1 is towards the lane's
# left (its inside for the outer edge), +1 its outside.
_MARK_LINES = {
    "Solid": ((0, ""),), "Broken": ((0, "dash"),), "BottsDots": ((0, "dots"),),
    "SolidSolid": ((-1, ""), (1, "")), "SolidBroken": ((-1, ""), (1, "dash")),
    "BrokenSolid": ((-1, "dash"), (1, "")), "BrokenBroken": ((-1, "dash"), (1, "dash")),
}
_SHIFT = 4  # fixed-point bits for OpenCV's polygon filling (1/16 px)


@dataclass
class MapRaster:
    """Top-down layers of one map, all ``height`` x ``width``.

    ``labels`` uint8 CityObjectLabel ids (Roads 1, Sidewalks 2, Terrain 10,
    RoadLines 24); ``color`` uint8 RGB; ``junctions`` bool, True inside a junction
    area. ``resolution`` is metres per pixel; ``origin`` the world (x, y) of the
    image's top-left corner (the outer corner of pixel (0, 0))."""

    labels: np.ndarray
    color: np.ndarray
    junctions: np.ndarray
    resolution: float
    origin: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape[0], self.labels.shape[1]

    @property
    def world_to_pixel(self) -> np.ndarray:
        """3 x 3 affine: homogeneous world (x, y, 1) -> pixel (u, v, 1), OpenCV
        convention (pixel centres at integers)."""
        r = self.resolution
        return np.array([[1 / r, 0.0, -self.origin[0] / r - 0.5],
                         [0.0, 1 / r, -self.origin[1] / r - 0.5],
                         [0.0, 0.0, 1.0]])

    @property
    def pixel_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_pixel)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """N x 2 world points (m) -> N x 2 pixel coordinates (float)."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        return (xy - np.asarray(self.origin)) / self.resolution - 0.5


# ------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class _LaneRef:
    road: int
    junction: int
    lane: int
    type: str
    s0: float
    s1: float


@dataclass
class _LaneSamples:
    ref: _LaneRef
    s: np.ndarray  # road s (m) of each sample
    centre: np.ndarray  # N x 2 world
    right: np.ndarray  # N x 2 unit vector to the lane's right (in its travel direction)
    width: np.ndarray  # N
    right_mark: list[tuple[str, str, float]]  # per sample: (type, colour, width)
    left_mark: list[tuple[str, str, float]]

    def edge(self, side: int) -> np.ndarray:
        """The lane's outer (side +1, its right) or inner (-1, its left) edge."""
        return self.centre + side * self.right * (self.width[:, None] / 2)


def _lanes(xodr: str) -> list[_LaneRef]:
    root = ET.fromstring(xodr)
    out = []
    for road in root.iter("road"):
        rid = int(road.get("id", "0"))
        junction = int(road.get("junction", "-1") or -1)
        length = float(road.get("length", "0"))
        sections = road.findall("lanes/laneSection")
        starts = [float(sec.get("s", "0")) for sec in sections] + [length]
        for sec, s0, s1 in zip(sections, starts, starts[1:], strict=False):
            if s1 - s0 < 1e-3:
                continue
            for side in ("left", "right"):
                for lane in sec.iterfind(f"{side}/lane"):
                    out.append(_LaneRef(rid, junction, int(lane.get("id", "0")),
                                        lane.get("type", "none"), s0, s1))
    return out


def _mark(m: carla.LaneMarking) -> tuple[str, str, float]:
    return (str(m.type), str(m.color), float(m.width))


def _sample_lane(carla_map: carla.Map, ref: _LaneRef, step: float) -> _LaneSamples | None:
    n = max(1, math.ceil((ref.s1 - ref.s0) / step - 1e-9))
    s_values = np.minimum(ref.s0 + step * np.arange(n + 1), ref.s1)
    s_values[-1] = ref.s1
    # Ends of a section belong to the neighbouring one: sample just inside.
    eps = min(1e-3, (ref.s1 - ref.s0) / 4)
    query = np.clip(s_values, ref.s0 + eps, ref.s1 - eps)
    pts, rights, widths, rmarks, lmarks, kept = [], [], [], [], [], []
    for s, q in zip(s_values, query, strict=True):
        wp = carla_map.get_waypoint_xodr(ref.road, ref.lane, float(q))
        if wp is None:
            continue
        t = wp.transform
        yaw = math.radians(t.rotation.yaw)
        pts.append((t.location.x, t.location.y))
        rights.append((-math.sin(yaw), math.cos(yaw)))
        widths.append(wp.lane_width)
        kept.append(s)
        rmarks.append(_mark(wp.right_lane_marking))
        if abs(ref.lane) == 1:  # only the innermost lanes draw the centre line
            lmarks.append(_mark(wp.left_lane_marking))
    if len(pts) < 2:
        return None
    return _LaneSamples(ref, np.array(kept), np.array(pts), np.array(rights),
                        np.array(widths), rmarks, lmarks)


# -------------------------------------------------------------------------- painting


class _Canvas:
    def __init__(self, origin: tuple[float, float], resolution: float, size: tuple[int, int],
                 default_label: int, default_rgb: tuple[int, int, int]) -> None:
        h, w = size
        self.origin, self.res = origin, resolution
        self.labels = np.full((h, w), int(default_label), np.uint8)
        self.color = np.empty((h, w, 3), np.uint8)
        for channel, value in enumerate(default_rgb):  # 10x faster than color[:] = rgb
            self.color[:, :, channel] = value
        self.junctions = np.zeros((h, w), np.uint8)

    def fixed(self, xy: np.ndarray) -> np.ndarray:
        px = (np.asarray(xy, float) - np.asarray(self.origin)) / self.res - 0.5
        return np.round(px * (1 << _SHIFT)).astype(np.int32)

    def fill(self, polygons: Sequence[np.ndarray], label: int,
             rgb: tuple[int, int, int]) -> None:
        """Fill world-frame polygons (each K x 2), one at a time (OpenCV fills a list
        of polygons even-odd, which would cut holes where they overlap)."""
        for poly in polygons:
            if len(poly) < 3:
                continue
            pts = [self.fixed(poly)]
            cv2.fillPoly(self.labels, pts, int(label), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.color, pts, rgb, cv2.LINE_AA, _SHIFT)


def _strip(left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """The polygon covering the band between two polylines."""
    return [np.concatenate([left, right[::-1]])]


def _painted(s: np.ndarray, style: str) -> np.ndarray:
    """Which segments (between samples i and i+1) of a line are painted."""
    mid = (s[:-1] + s[1:]) / 2
    if style == "dash":
        on, period = _DASH
    elif style == "dots":
        on, period = _DOTS
    else:
        return np.ones(len(mid), bool)
    return np.mod(mid, period) < on


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first segment, last segment + 1)."""
    out, start = [], None
    for i, v in enumerate(mask):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def _paint_marks(canvas: _Canvas, lane: _LaneSamples, side: int) -> None:
    marks = lane.right_mark if side > 0 else lane.left_mark
    edge = lane.edge(side)
    normal = lane.right * side  # outwards from the lane
    n = len(lane.s)
    # Segment i takes the marking of its first sample.
    i = 0
    while i < n - 1:
        j = i
        while j + 1 < n - 1 and marks[j + 1] == marks[i]:
            j += 1
        kind, colour, width = marks[i]
        width = width if width > 0 else 0.15
        for offset_side, style in _MARK_LINES.get(kind, ()):
            offset = offset_side * (width + _DOUBLE_GAP) / 2
            seg = slice(i, j + 2)
            centre = edge[seg] + normal[seg] * offset
            painted = _painted(lane.s[seg], style)
            half = normal[seg] * width / 2
            polys = []
            for a, b in _runs(painted):
                polys += _strip(centre[a:b + 1] - half[a:b + 1], centre[a:b + 1] + half[a:b + 1])
            canvas.fill(polys, Label.ROAD_LINES, MARK_RGB.get(colour, MARK_RGB["White"]))
        i = j + 1


def _paint_crosswalk(canvas: _Canvas, poly: np.ndarray) -> None:
    """Zebra bars along the crossing's short side, across its long side."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(poly.astype(np.float32))
    a = math.radians(angle)
    axes = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    long_axis, short_axis = (axes[0], axes[1]) if w >= h else (axes[1], axes[0])
    length, depth = max(w, h), min(w, h)
    bar, period = _ZEBRA
    bars = []
    k = 0
    start = -length / 2 + (length - (math.floor((length - bar) / period) * period + bar)) / 2
    while start + k * period + bar <= length / 2 + 1e-6:
        u0 = start + k * period
        corners = [(u0, -depth / 2), (u0 + bar, -depth / 2), (u0 + bar, depth / 2),
                   (u0, depth / 2)]
        bars.append(np.array([(cx, cy) + u * long_axis + v * short_axis for u, v in corners]))
        k += 1
    canvas.fill(bars, Label.ROAD_LINES, MARK_RGB["White"])


def _stop_waypoints(carla_map: carla.Map) -> list[carla.Waypoint]:
    """Where traffic stops for each traffic light (1000001) and stop sign (206): on
    every driving lane the landmark is valid for, at the junction boundary (walking
    back out of the junction for landmarks inside it, as in CARLA's towns, or
    forward to it for landmarks on the incoming road)."""
    out, seen = [], set()
    for kind in ("1000001", "206"):
        for lm in carla_map.get_all_landmarks_of_type(kind):
            ids = sorted({i for lo, hi in lm.get_lane_validities()
                          for i in range(min(lo, hi), max(lo, hi) + 1) if i != 0})
            for lane_id in ids:
                wp = carla_map.get_waypoint_xodr(lm.road_id, lane_id, lm.s)
                if wp is None or wp.lane_type != carla.LaneType.Driving:
                    continue
                stop = _junction_boundary(wp)
                key = stop and (stop.road_id, stop.lane_id, round(stop.s, 1))
                if stop is not None and key not in seen:
                    seen.add(key)
                    out.append(stop)
    return out


def _junction_boundary(wp: carla.Waypoint, max_walk: float = 30.0,
                       step: float = 1.0) -> carla.Waypoint | None:
    """The last waypoint of ``wp``'s lane before the junction it enters (walking
    forward) or, for ``wp`` inside a junction, before the junction it is in
    (walking back); bisected to a centimetre. None without a junction in reach."""
    inside = wp.is_junction

    def step_to(w: carla.Waypoint, d: float) -> list[carla.Waypoint]:
        return w.previous(d) if inside else w.next(d)

    def crossed(found: list[carla.Waypoint]) -> bool:
        # Walking back out of a junction: crossed once we are outside of it.
        return any(not f.is_junction for f in found) if inside else any(
            f.is_junction for f in found)

    walked = 0.0
    while walked < max_walk:
        found = step_to(wp, step)
        if not found:
            return None
        if crossed(found):
            lo, hi = 0.0, step  # wp at lo is on this side, hi across
            for _ in range(7):
                mid = (lo + hi) / 2
                probe = step_to(wp, mid)
                if probe and crossed(probe):
                    hi = mid
                else:
                    lo = mid
            if inside:
                out = [f for f in step_to(wp, hi) if not f.is_junction]
                return out[0] if out else None
            if lo == 0.0:
                return wp
            ahead = [f for f in step_to(wp, lo) if not f.is_junction]
            return ahead[0] if ahead else wp
        wp, walked = found[0], walked + step
    return None


def _paint_stop_line(canvas: _Canvas, wp: carla.Waypoint) -> None:
    t = wp.transform
    yaw = math.radians(t.rotation.yaw)
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    right = np.array([-math.sin(yaw), math.cos(yaw)])
    c = np.array([t.location.x, t.location.y])
    half = right * wp.lane_width / 2
    canvas.fill([np.array([c - half, c + half, c + half - fwd * _STOP_LINE_M,
                           c - half - fwd * _STOP_LINE_M])], Label.ROAD_LINES,
                MARK_RGB["White"])


# ------------------------------------------------------------------------ rasterize


def _as_map(source: carla.Map | LoadedMap) -> tuple[carla.Map, str]:
    if isinstance(source, LoadedMap):
        return source.map, source.xodr
    return source, source.to_opendrive()


def rasterize(source: carla.Map | LoadedMap, resolution: float = 0.1, margin: float = 10.0,
              bounds: tuple[float, float, float, float] | None = None,
              max_pixels: int = 64_000_000,
              crosswalks: Collection[int] | None = None) -> MapRaster:
    """Paint ``source`` top-down at ``resolution`` m/px.

    ``bounds`` (x_min, y_min, x_max, y_max, world metres) crops to a region (the
    whole map plus ``margin`` m when None). ``crosswalks``: which of the map's
    crosswalks (indices into :func:`sim.maps.crosswalk_polygons`) are painted; all
    when None (data collection leaves some out: junctions differ from town to
    town). Raises ValueError when the image would exceed ``max_pixels``."""
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0 m/px, not {resolution}")
    carla_map, xodr = _as_map(source)
    if bounds is None:  # refuse a too-large image before the (slower) lane sampling
        x0, y0, x1, y1 = _extent(carla_map, margin)
        _check_size(x1 - x0, y1 - y0, resolution, max_pixels)
    step = 0.5 if resolution <= 0.2 else (1.0 if resolution <= 0.5 else 1.5)
    lanes = [ls for ref in _lanes(xodr) if ref.type in _LANE_STYLE or ref.type == "none"
             for ls in [_sample_lane(carla_map, ref, step)] if ls is not None]
    if bounds is None:
        if not lanes:
            raise MapError(carla_map.name, "a map with lanes to draw", "none")
        pts = np.concatenate([np.concatenate([ls.edge(1), ls.edge(-1)]) for ls in lanes])
        lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
        bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    x0, y0, x1, y1 = bounds
    w, h = _check_size(x1 - x0, y1 - y0, resolution, max_pixels)
    canvas = _Canvas((x0, y0), resolution, (h, w), Label.TERRAIN, TERRAIN_RGB)

    junction_pts: dict[int, list[np.ndarray]] = {}
    for ls in lanes:
        if ls.ref.junction >= 0 and ls.ref.type == "driving":
            junction_pts.setdefault(ls.ref.junction, []).extend([ls.edge(1), ls.edge(-1)])
    hulls = [cv2.convexHull(np.concatenate(p).astype(np.float32))[:, 0, :].astype(float)
             for _, p in sorted(junction_pts.items())]

    for paint_pass in range(5):
        if paint_pass == 2:
            canvas.fill(hulls, Label.ROADS, ROAD_RGB)
            for hull in hulls:
                cv2.fillPoly(canvas.junctions, [canvas.fixed(hull)], 1, cv2.LINE_8, _SHIFT)
            continue
        for ls in lanes:
            style = _LANE_STYLE.get(ls.ref.type)
            if style is None or style[2] != paint_pass:
                continue
            canvas.fill(_strip(ls.edge(-1), ls.edge(1)), style[0], style[1])
    for ls in lanes:
        _paint_marks(canvas, ls, +1)
        if abs(ls.ref.lane) == 1:
            _paint_marks(canvas, ls, -1)
    for i, poly in enumerate(crosswalk_polygons(carla_map)):
        if crosswalks is not None and i not in crosswalks:
            continue
        _paint_crosswalk(canvas, np.array([(p.x, p.y) for p in poly]))
    for wp in _stop_waypoints(carla_map):
        _paint_stop_line(canvas, wp)
    return MapRaster(canvas.labels, canvas.color, canvas.junctions.astype(bool), resolution,
                     (x0, y0))


def _extent(carla_map: carla.Map, margin: float) -> tuple[float, float, float, float]:
    """World box around the driving lanes, widened by ``margin`` m (a quick estimate
    from waypoints every 10 m)."""
    xy = np.array([(w.transform.location.x, w.transform.location.y)
                   for w in carla_map.generate_waypoints(10.0)]).reshape(-1, 2)
    if not len(xy):
        return (0.0, 0.0, 0.0, 0.0)
    lo, hi = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _check_size(width_m: float, height_m: float, resolution: float,
                max_pixels: int) -> tuple[int, int]:
    w = max(1, math.ceil(width_m / resolution))
    h = max(1, math.ceil(height_m / resolution))
    if w * h > max_pixels:
        raise ValueError(f"{width_m:.0f} x {height_m:.0f} m at {resolution:g} m/px is "
                         f"{w} x {h} px, more than {max_pixels} px: use a coarser "
                         "resolution or smaller bounds")
    return w, h


# ---------------------------------------------------------------------- for people


def draw_map(raster: MapRaster, source: carla.Map | LoadedMap,
             spawn_points: Sequence[carla.Transform] = (), title: str = "") -> np.ndarray:
    """An RGB picture for people: the raster's colours, junction outlines, traffic
    lights (red dot, line towards the traffic it faces), stop signs (red squares),
    spawn points (blue arrows), a scale bar and a title."""
    carla_map, _ = _as_map(source)
    img = raster.color.copy()
    h, w = raster.shape
    px_per_m = 1.0 / raster.resolution
    thick = max(1, round(0.3 * px_per_m))

    def pix(x: float, y: float) -> tuple[int, int]:
        u, v = raster.to_pixels(np.array([[x, y]]))[0]
        return round(u), round(v)

    contours, _ = cv2.findContours(raster.junctions.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (255, 150, 40), max(1, thick // 2), cv2.LINE_AA)
    radius = max(3, round(0.8 * px_per_m))
    for t in spawn_points:
        yaw = math.radians(t.rotation.yaw)
        a = pix(t.location.x, t.location.y)
        b = pix(t.location.x + 3 * math.cos(yaw), t.location.y + 3 * math.sin(yaw))
        cv2.arrowedLine(img, a, b, (40, 110, 255), thick, cv2.LINE_AA, tipLength=0.4)
    for lm in carla_map.get_all_landmarks_of_type("1000001"):
        loc, yaw = lm.transform.location, math.radians(lm.transform.rotation.yaw)
        c = pix(loc.x, loc.y)
        # A landmark's yaw is the travel direction it governs; the head faces back.
        tip = pix(loc.x - 2.5 * math.cos(yaw), loc.y - 2.5 * math.sin(yaw))
        cv2.line(img, c, tip, (20, 20, 20), thick, cv2.LINE_AA)
        cv2.circle(img, c, radius, (225, 30, 30), -1, cv2.LINE_AA)
        cv2.circle(img, c, radius, (20, 20, 20), max(1, thick // 2), cv2.LINE_AA)
    for lm in carla_map.get_all_landmarks_of_type("206"):
        u, v = pix(lm.transform.location.x, lm.transform.location.y)
        cv2.rectangle(img, (u - radius, v - radius), (u + radius, v + radius), (200, 20, 20), -1)
    # Scale bar: a round number of metres near a fifth of the width.
    target = w * raster.resolution / 5
    metres = 10 ** math.floor(math.log10(max(target, 1e-9)))
    for f in (5, 2, 1):
        if f * metres <= target:
            metres *= f
            break
    bar = round(metres * px_per_m)
    font = max(0.4, min(w, h) / 1500)
    y = h - max(10, h // 40)
    cv2.line(img, (10, y), (10 + bar, y), (255, 255, 255), max(2, round(font * 3)))
    cv2.putText(img, f"{metres:g} m", (10, y - 8), cv2.FONT_HERSHEY_SIMPLEX, font,
                (255, 255, 255), max(1, round(font * 2)), cv2.LINE_AA)
    if title:
        cv2.putText(img, title, (10, round(30 * font) + 10), cv2.FONT_HERSHEY_SIMPLEX,
                    font * 1.2, (255, 255, 255), max(1, round(font * 2.5)), cv2.LINE_AA)
    return img


def auto_resolution(source: carla.Map | LoadedMap, max_side_px: int = 4096) -> float:
    """A resolution (m/px, from a fixed ladder) at which the map's longer side fits
    in ``max_side_px`` pixels: 0.1 m/px for a town, coarser for a highway."""
    carla_map, _ = _as_map(source)
    x0, y0, x1, y1 = _extent(carla_map, 20.0)
    span = max(x1 - x0, y1 - y0)
    for res in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0):
        if span / res <= max_side_px:
            return res
    return 10.0


def render_png(source: LoadedMap, path: str | Path, resolution: float | None = None,
               spawn_points: Sequence[carla.Transform] = ()) -> tuple[int, int]:
    """Rasterise, draw and write ``source`` to a PNG at ``path``; returns (width,
    height) in pixels. ``resolution`` None picks :func:`auto_resolution`."""
    res = resolution if resolution is not None else auto_resolution(source)
    raster = rasterize(source, res)
    title = f"{source.name}  ({res:g} m/px)"
    img = draw_map(raster, source, spawn_points, title=title)
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    Path(path).write_bytes(png.tobytes())
    return img.shape[1], img.shape[0]
