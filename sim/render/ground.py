"""The ground: a top-down raster of the static map, and how a camera sees it.

The world is flat: the ground is the plane z = 0 of CARLA's world frame. Roads with
elevation, bridges or banked curves are drawn as if flattened onto that plane (their
labels and colours stay right in the top-down view; their depth and image position
are off by the height difference). This is what makes the ground a single
homography per frame and its depth a function of the camera mount alone.

Raster axes: column -> world +x, row -> world +y. Because CARLA's world is
left-handed (z up, y to the right of +x), an image displayed with rows going down
shows the map as seen from above, not mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bus.messages import CameraIntrinsics
from sim.labels import Label
from sim.render.camera import CameraPose

__all__ = [
    "FAR_PLANE",
    "GroundGeometry",
    "GroundRaster",
    "default_ground_colors",
    "geometry_key",
    "ground_geometry",
    "image_from_raster",
]

#: CARLA's depth camera far plane (m): depth images saturate there, sky reads as it.
FAR_PLANE = 1000.0

#: BGR colours of ground labels for a plain raster (what the map rasteriser or the
#: appearance layer may replace); ids absent here are grey.
GROUND_COLORS: dict[int, tuple[int, int, int]] = {
    Label.ROADS: (72, 72, 74),
    Label.ROAD_LINES: (225, 225, 225),
    Label.SIDEWALKS: (160, 163, 168),
    Label.TERRAIN: (62, 112, 84),
    Label.GROUND: (92, 112, 125),
    Label.WATER: (110, 80, 40),
    Label.RAIL_TRACK: (70, 80, 90),
}


def default_ground_colors(labels: np.ndarray) -> np.ndarray:
    """A BGR uint8 colour raster (H, W, 3) for a label raster (H, W), one flat
    colour per label (:data:`GROUND_COLORS`)."""
    lut = np.full((256, 3), 128, np.uint8)
    for label, color in GROUND_COLORS.items():
        lut[label] = color
    return lut[labels]


@dataclass(frozen=True)
class GroundRaster:
    """The static map drawn top-down onto the ground plane z = 0.

    ``labels``: (H, W) uint8 CARLA CityObjectLabel ids (Roads 1, Sidewalks 2,
    Terrain 10, RoadLines 24, ...). ``colors``: (H, W, 3) uint8 BGR. Pixel
    ``(row, col)`` has its centre at world ``x = origin_x + col * metres_per_pixel``,
    ``y = origin_y + row * metres_per_pixel`` (m, CARLA world frame).
    """

    labels: np.ndarray
    colors: np.ndarray
    origin_x: float
    origin_y: float
    metres_per_pixel: float

    def __post_init__(self) -> None:
        lab, col = self.labels, self.colors
        if lab.ndim != 2 or lab.dtype != np.uint8:
            raise ValueError(f"GroundRaster.labels: expected (H, W) uint8, got {lab.shape} "
                             f"{lab.dtype}")
        if col.shape != (*lab.shape, 3) or col.dtype != np.uint8:
            raise ValueError(f"GroundRaster.colors: expected {(*lab.shape, 3)} uint8, got "
                             f"{col.shape} {col.dtype}")
        if not self.metres_per_pixel > 0.0:
            raise ValueError("GroundRaster.metres_per_pixel must be positive, got "
                             f"{self.metres_per_pixel}")

    def world_from_pixel(self) -> np.ndarray:
        """3x3 affine: homogeneous raster pixel ``(col, row, 1)`` -> world ``(x, y, 1)``."""
        m = self.metres_per_pixel
        return np.array([[m, 0.0, self.origin_x], [0.0, m, self.origin_y], [0.0, 0.0, 1.0]])

    def pixel_of(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[
            np.ndarray, np.ndarray]:
        """Continuous raster ``(col, row)`` of world points ``(x, y)`` (m)."""
        m = self.metres_per_pixel
        return (np.subtract(x, self.origin_x) / m, np.subtract(y, self.origin_y) / m)



def image_from_raster(pose: CameraPose, K: CameraIntrinsics, raster: GroundRaster) -> np.ndarray:
    """3x3 homography: raster pixel ``(col, row, 1)`` -> image pixel (homogeneous).

    A ground point ``(x, y, 0)`` lands at ``K (x r1 + y r2 + t)`` with ``r1, r2`` the
    first two columns of the world -> camera rotation and ``t`` its translation.
    """
    R, t = pose.rotation, pose.translation
    image_from_ground = K.matrix() @ np.column_stack([R[:, 0], R[:, 1], t])
    return image_from_ground @ raster.world_from_pixel()


@dataclass(frozen=True)
class GroundGeometry:
    """What a flat ground looks like from a camera at a given height and tilt.

    ``depth``: (H, W) float32, metres along the optical axis (CARLA's depth camera),
    :data:`FAR_PLANE` where the pixel sees sky. ``sky``: (H, W) bool, pixels whose
    ray misses the ground or meets it beyond the far plane. ``top``: the first row
    holding any ground pixel (H when none). ``band_sky``: ``sky[top:]`` when it has
    any sky pixel (a rolled camera, or the rows just under the horizon), else None.
    ``sky_elevation``: (H, W) float32, the sine of each pixel ray's elevation above
    the horizon (0 at and below it), for sky gradients.
    """

    depth: np.ndarray
    sky: np.ndarray
    top: int
    band_sky: np.ndarray | None
    sky_elevation: np.ndarray


def ground_geometry(K: CameraIntrinsics, pose: CameraPose) -> GroundGeometry:
    """Depth and sky mask of the plane z = 0 seen by a camera of intrinsics ``K`` at
    ``pose``. They depend only on the camera's height and on the world's up
    direction seen in the camera frame (its pitch and roll), not on x, y or yaw:
    callers cache them on those (see :func:`geometry_key`).

    For the ray through pixel (u, v), ``d = ((u - cx) / fx, (v - cy) / fy, 1)``
    (camera frame, z = 1), the world height along the ray is ``h + z (up . d)``;
    the ground is at ``z = -h / (up . d)``, in front when ``up . d < 0``.
    """
    h = pose.height
    if not h > 0.0:
        raise ValueError(f"camera centre at z = {h:.3f} m: it must be above the ground plane")
    up = pose.rotation[:, 2]  # world +z in the camera frame
    u = (np.arange(K.width) - K.cx) / K.fx
    v = (np.arange(K.height) - K.cy) / K.fy
    rise = up[0] * u[None, :] + up[1] * v[:, None] + up[2]  # up . d, (H, W)
    with np.errstate(divide="ignore"):
        depth = np.where(rise < 0.0, -h / rise, np.inf)
    sky = depth > FAR_PLANE
    depth = np.where(sky, FAR_PLANE, depth).astype(np.float32)
    rows = np.flatnonzero(~sky.all(axis=1))
    top = int(rows[0]) if rows.size else K.height
    band = sky[top:]
    # elevation of each pixel's ray above the horizon, sin(angle) = up . d / |d|
    norm = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + 1.0)
    elevation = np.clip(rise / norm, 0.0, 1.0).astype(np.float32)
    return GroundGeometry(depth=depth, sky=sky, top=top,
                          band_sky=band if band.any() else None, sky_elevation=elevation)


def geometry_key(pose: CameraPose) -> tuple[float, ...]:
    """What :func:`ground_geometry` depends on, rounded so that poses differing only
    in position and yaw (float noise aside) share one cache entry."""
    up = pose.rotation[:, 2]
    return (round(pose.height, 6), *(round(float(c), 9) for c in up))
