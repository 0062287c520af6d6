"""Static scenery placed from the ground raster, so camera images have structure
above the horizon: buildings set back from the street, trees on the verges, poles
along the kerb, and traffic-light assemblies for the simulator's lights.

Placement reads only the raster's labels (paved = roads, road lines, sidewalks;
buildable = terrain or ground) on a grid of about 1 m cells, and is a pure function
of (raster, seed): the same map and seed give the same scenery. Everything is a
box standing on the ground plane z = 0, with instance id 0 (static background) and
no colour of its own (the episode's :class:`~sim.render.appearance.Appearance`
colours it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bus.messages import Rotation, Transform, Vector3
from sim.labels import Label
from sim.render.ground import GroundRaster
from sim.render.objects import LAMP_HEIGHTS, RenderObject

__all__ = ["SceneryConfig", "place_scenery", "traffic_light_objects"]

_PAVED = (Label.ROADS, Label.ROAD_LINES, Label.SIDEWALKS)
_DRIVABLE = (Label.ROADS, Label.ROAD_LINES)
_BUILDABLE = (Label.TERRAIN, Label.GROUND)


@dataclass(frozen=True)
class SceneryConfig:
    """Placement parameters (metres unless said). ``building_setback``: the gap
    between paved ground and a facade; ``tree_density`` and ``pole_spacing`` thin
    out trees (share of candidate spots kept) and street poles (minimum distance)."""

    building_setback: float = 2.0
    building_half_length: tuple[float, float] = (7.0, 20.0)
    building_half_depth: tuple[float, float] = (5.0, 12.0)
    building_height: tuple[float, float] = (5.0, 28.0)
    tree_band: tuple[float, float] = (1.5, 7.0)
    tree_density: float = 0.15
    tree_spacing: float = 8.0
    pole_spacing: float = 40.0
    pole_height: tuple[float, float] = (5.0, 8.0)


@dataclass
class _Grid:
    """The raster reduced to cells of ``cell`` metres: masks, distances (m) to the
    nearest paved and drivable cell, the unit direction away from paved ground (in
    (x, y) = (col, row) order), and the occupancy of what has been placed.
    ``origin`` is the world (x, y) of the raster's outer corner (pixel (0, 0)'s
    centre minus half a pixel), so cell (row, col) has its centre at
    ``origin + (col + 0.5, row + 0.5) * cell``."""

    cell: float
    origin: tuple[float, float]
    buildable: np.ndarray
    drivable: np.ndarray
    dist_paved: np.ndarray
    dist_drivable: np.ndarray
    away: np.ndarray
    occupied: np.ndarray

    def world(self, row: float, col: float) -> tuple[float, float]:
        return (self.origin[0] + (col + 0.5) * self.cell, self.origin[1] + (row + 0.5) * self.cell)


def _grid(raster: GroundRaster) -> _Grid:
    mpp = raster.metres_per_pixel
    factor = max(1, round(1.0 / mpp))
    h, w = raster.labels.shape
    ch, cw = h // factor, w // factor
    labels = raster.labels[: ch * factor, : cw * factor]

    def share(ids: tuple[int, ...]) -> np.ndarray:
        """Per cell, the share of its raster pixels whose label is in ``ids``."""
        mask = np.isin(labels, ids).astype(np.float32)
        return cv2.resize(mask, (cw, ch), interpolation=cv2.INTER_AREA)

    cell = factor * mpp
    paved = share(_PAVED) > 0.0
    drivable = share(_DRIVABLE) > 0.0
    dist_paved = cv2.distanceTransform((~paved).astype(np.uint8), cv2.DIST_L2, 5) * cell
    dist_drivable = cv2.distanceTransform((~drivable).astype(np.uint8), cv2.DIST_L2, 5) * cell
    gy, gx = np.gradient(cv2.GaussianBlur(dist_paved, (5, 5), 0))
    norm = np.maximum(np.hypot(gx, gy), 1e-6)
    return _Grid(
        cell=cell,
        origin=(raster.origin_x - 0.5 * mpp, raster.origin_y - 0.5 * mpp),
        buildable=share(_BUILDABLE) >= 0.999,
        drivable=drivable,
        dist_paved=dist_paved,
        dist_drivable=dist_drivable,
        away=np.stack([gx / norm, gy / norm], axis=-1),
        occupied=np.zeros((ch, cw), np.uint8),
    )


def _footprint_fits(grid: _Grid, corners: np.ndarray, min_dist: float) -> tuple[
        bool, tuple[slice, slice], np.ndarray]:
    """Whether a footprint (4, 2) in cell coordinates (col, row) lies on free,
    buildable cells at least ``min_dist`` from paved ground; also its window and
    mask, for marking it occupied."""
    h, w = grid.occupied.shape
    c0, r0 = np.floor(corners.min(axis=0)).astype(int) - 1
    c1, r1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    if c0 < 0 or r0 < 0 or c1 > w or r1 > h:
        return False, (slice(0), slice(0)), np.zeros((0, 0), np.uint8)
    window = (slice(r0, r1), slice(c0, c1))
    mask = np.zeros((r1 - r0, c1 - c0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((corners - (c0, r0)) * 16).astype(np.int32), 1,
                       cv2.LINE_8, 4)
    inside = mask.astype(bool)
    ok = (grid.buildable[window][inside].all() and not grid.occupied[window][inside].any()
          and grid.dist_paved[window][inside].min() >= min_dist)
    return bool(ok), window, mask


def _box(label: int, x: float, y: float, yaw: float, half: tuple[float, float, float],
         bottom: float = 0.0) -> RenderObject:
    """A static box standing at world (x, y) with its bottom at z = ``bottom``."""
    return RenderObject(0, label, Transform(Vector3(x, y, bottom + half[2]), Rotation(yaw=yaw)),
                        half)


def place_scenery(raster: GroundRaster, seed: int,
                  config: SceneryConfig | None = None) -> list[RenderObject]:
    """Buildings, trees and street poles for ``raster``, deterministic in ``seed``.

    Buildings: facades parallel to the nearest paved edge, ``building_setback``
    behind it, on buildable cells only, not overlapping. Trees (trunk and crown,
    both Vegetation): on buildable cells in ``tree_band`` metres from paved ground,
    crowns clear of it. Poles: beside the carriageway (0.6-1.5 m from drivable
    cells, not on it), ``pole_spacing`` apart.
    """
    cfg = config if config is not None else SceneryConfig()
    rng = np.random.default_rng([seed, 0x5CE7])
    grid = _grid(raster)
    cell = grid.cell
    out: list[RenderObject] = []

    # buildings: candidate facade points just behind the setback line
    setback = cfg.building_setback
    rows, cols = np.nonzero(grid.buildable & (grid.dist_paved >= setback)
                            & (grid.dist_paved < setback + 1.5 * cell))
    for k in rng.permutation(rows.size):
        r, c = int(rows[k]), int(cols[k])
        if grid.occupied[r, c]:
            continue
        n = grid.away[r, c]
        t = np.array([-n[1], n[0]])
        a = rng.uniform(*cfg.building_half_length)
        b = rng.uniform(*cfg.building_half_depth)
        height = rng.uniform(*cfg.building_height)
        for shrink in (1.0, 0.6):
            ha, hb = a * shrink / cell, b * shrink / cell
            centre = np.array([c, r], float) + n * (hb + 0.5)
            corners = centre + np.array([i * ha * t + j * hb * n for i, j in
                                         ((1, 1), (1, -1), (-1, -1), (-1, 1))])
            ok, window, mask = _footprint_fits(grid, corners, setback - cell)
            if ok:
                # keep a 1-cell gap between buildings
                grid.occupied[window] |= cv2.dilate(mask, np.ones((3, 3), np.uint8))
                x, y = grid.world(centre[1], centre[0])
                yaw = float(np.degrees(np.arctan2(t[1], t[0])))
                out.append(_box(Label.BUILDINGS, x, y, yaw,
                                (a * shrink, b * shrink, height / 2.0)))
                break

    # trees on the verges
    lo, hi = cfg.tree_band
    rows, cols = np.nonzero(grid.buildable & (grid.dist_paved >= lo) & (grid.dist_paved <= hi))
    keep = rng.random(rows.size) < cfg.tree_density
    spacing = max(1, round(cfg.tree_spacing / cell / 2.0))
    for k in rng.permutation(np.flatnonzero(keep)):
        r, c = int(rows[k]), int(cols[k])
        window = (slice(max(0, r - spacing), r + spacing + 1),
                  slice(max(0, c - spacing), c + spacing + 1))
        crown = rng.uniform(1.0, 2.5)
        if grid.occupied[window].any() or grid.dist_paved[r, c] < crown + 0.3:
            continue
        grid.occupied[window] = 1
        x, y = grid.world(r, c)
        trunk = rng.uniform(1.5, 3.0)
        crown_h = rng.uniform(2.0, 5.0)
        yaw = float(rng.uniform(0.0, 90.0))
        out.append(_box(Label.VEGETATION, x, y, yaw, (0.15, 0.15, trunk / 2.0)))
        out.append(_box(Label.VEGETATION, x, y, yaw, (crown, crown, crown_h / 2.0),
                        bottom=0.85 * trunk))

    # street poles beside the carriageway
    rows, cols = np.nonzero(~grid.drivable & (grid.dist_drivable >= 0.6)
                            & (grid.dist_drivable <= 1.5) & (grid.occupied == 0))
    poles = np.zeros_like(grid.occupied)
    reach = max(1, round(cfg.pole_spacing / cell))
    for k in rng.permutation(rows.size):
        r, c = int(rows[k]), int(cols[k])
        if poles[r, c]:
            continue
        cv2.circle(poles, (c, r), reach, 1, -1)
        x, y = grid.world(r, c)
        out.append(_box(Label.POLES, x, y, 0.0,
                        (0.1, 0.1, rng.uniform(*cfg.pole_height) / 2.0)))
    return out


#: Half size (m) of a traffic light's head: depth, width, height.
LIGHT_HEAD_HALF = (0.18, 0.22, 0.55)


def lamp_position(pole: Transform, lamp: str, height: float = 4.5) -> Vector3:
    """World position (m) of the centre of lamp ``lamp`` (red, yellow, green) on
    the head :func:`traffic_light_objects` draws for the same ``pole`` and
    ``height``: on the head's +x face, the one towards the approach."""
    ex, _, ez = LIGHT_HEAD_HALF
    yaw = math.radians(pole.rotation.yaw)
    return Vector3(pole.location.x + ex * math.cos(yaw), pole.location.y + ex * math.sin(yaw),
                   pole.location.z + height - ez + LAMP_HEIGHTS[lamp] * ez)


def traffic_light_objects(instance_id: int, pole: Transform, lamp: str,
                          height: float = 4.5) -> list[RenderObject]:
    """A traffic light as the renderer draws it: a pole (Poles) and a head
    (TrafficLight, with ``lamp`` on its +x face), one instance. ``pole``: world pose
    of the pole's foot on the ground; its yaw is the direction the lamps face, i.e.
    towards the vehicles of the approach the light controls. ``height``: top of the
    head above the ground (m)."""
    x, y, z = pole.location.x, pole.location.y, pole.location.z
    yaw = pole.rotation.yaw
    head = LIGHT_HEAD_HALF
    return [
        RenderObject(instance_id, Label.POLES,
                     Transform(Vector3(x, y, z + (height - 2 * head[2]) / 2.0),
                               Rotation(yaw=yaw)),
                     (0.09, 0.09, (height - 2 * head[2]) / 2.0)),
        RenderObject(instance_id, Label.TRAFFIC_LIGHT,
                     Transform(Vector3(x, y, z + height - head[2]), Rotation(yaw=yaw)),
                     head, lamp=lamp),
    ]
