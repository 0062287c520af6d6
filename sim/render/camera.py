"""Cameras: CARLA's RGB-camera attributes, and where a camera is in the world.

A camera is described as CARLA describes a ``sensor.camera.rgb``: ``image_size_x``,
``image_size_y`` (pixels), ``fov`` (horizontal field of view, degrees) and the
``mount`` transform in the ego frame (x forward, y right, z up, metres and degrees,
CARLA's sensor-attachment convention). Intrinsics come from
``CameraIntrinsics.from_fov`` (square pixels, principal point at the image centre).

Pixel convention throughout the renderer: pixel ``(u, v)`` (column, row) is sampled
at the continuous image coordinate ``(u, v)`` that ``bus.frames.project`` returns,
as OpenCV's ``warpPerspective`` and drawing functions do; with ``cx = W / 2`` the
optical axis passes through column ``W / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bus.frames import CAMERA_FROM_SENSOR, inverse_transform_matrix
from bus.messages import CameraIntrinsics, Transform, Vector3

__all__ = ["CameraPose", "CameraSpec", "camera_pose"]


def _default_mount() -> Transform:
    """Above the windscreen of a mid-size car, looking straight ahead."""
    return Transform(Vector3(1.5, 0.0, 2.4))


@dataclass(frozen=True)
class CameraSpec:
    """One pinhole camera on the ego, with CARLA's attribute names and defaults
    except the image size (640 x 360 here, CARLA's default is 800 x 600)."""

    name: str
    image_size_x: int = 640
    image_size_y: int = 360
    fov: float = 90.0
    mount: Transform = field(default_factory=_default_mount)

    def __post_init__(self) -> None:
        if self.image_size_x <= 0 or self.image_size_y <= 0:
            raise ValueError(
                f"camera {self.name!r}: image size must be positive, "
                f"got {self.image_size_x} x {self.image_size_y}"
            )
        if not 0.0 < self.fov < 180.0:
            raise ValueError(f"camera {self.name!r}: fov must be in (0, 180) deg, got {self.fov}")

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fov(self.image_size_x, self.image_size_y, self.fov)


@dataclass(frozen=True)
class CameraPose:
    """Where a camera is for one frame: ``rotation`` (3x3) and ``translation`` (3,)
    map world points (CARLA frame, m) into the OpenCV camera frame (m):
    ``p_cam = rotation @ p_world + translation``. ``height`` is the camera centre's
    world z (m), i.e. its height above the flat ground plane z = 0."""

    rotation: np.ndarray
    translation: np.ndarray
    height: float

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """Points (..., 3) world -> camera frame (float64)."""
        return points_world @ self.rotation.T + self.translation


def camera_pose(ego: Transform, mount: Transform) -> CameraPose:
    """The world -> camera pose of a camera mounted at ``mount`` (ego frame) on a
    vehicle whose world pose is ``ego``: world -> ego -> sensor (CARLA frames, via
    ``bus.frames``' matrices) -> OpenCV camera (``CAMERA_FROM_SENSOR``)."""
    sensor_from_world = inverse_transform_matrix(mount) @ inverse_transform_matrix(ego)
    camera_from_world = CAMERA_FROM_SENSOR @ sensor_from_world[:3]
    rotation, translation = camera_from_world[:, :3].copy(), camera_from_world[:, 3].copy()
    centre = -rotation.T @ translation  # the camera centre in the world
    return CameraPose(rotation=rotation, translation=translation, height=float(centre[2]))
