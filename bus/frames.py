"""Every frame conversion in drivestack, in one place.

Frames (metres and degrees throughout, as in ``bus.messages``):

world
    CARLA's: x, y, z with z up, left-handed (y points right when looking along +x
    from above); rotations are CARLA ``Rotation`` (pitch, yaw, roll in degrees).
ego
    The vehicle's: x forward, y right, z up, origin at the vehicle transform. This
    is CARLA's actor-local frame, so ``ego -> world`` is exactly
    ``carla.Transform.transform`` of the vehicle's transform.
sensor
    A camera's own CARLA frame (x forward, y right, z up), placed in the ego frame
    by the camera's ``mount`` transform (CARLA's sensor-attachment convention).
camera
    OpenCV's, for projection: x right, y down, z forward (optical axis). It has the
    same origin and orientation as the sensor frame; only the axes are relabelled.

CARLA's rotation convention (LibCarla ``Transform::GetMatrix``), with ``cp, sp``
etc. the cosine and sine of pitch (p), yaw (y) and roll (r)::

        | cp*cy   cy*sp*sr - sy*cr   -cy*sp*cr - sy*sr |
    R = | cp*sy   sy*sp*sr + cy*cr   -sy*sp*cr + cy*sr |
        | sp      -cp*sr              cp*cr            |

Its columns are the body's forward, right and up axes in the parent frame. In
textbook right-handed terms this is ``Rz(yaw) @ Ry(-pitch) @ Rx(-roll)``: positive
pitch raises the nose (forward gains +z) and positive roll dips the right side
(right gains -z), the opposite of what ``Ry(pitch)``/``Rx(roll)`` would give. Yaw
is applied with no sign change, which in the left-handed world means positive yaw
turns from +x towards +y, i.e. clockwise seen from above (to the right).

Every point function takes arrays of shape ``(..., 3)`` (one point ``(3,)`` or N
points ``(N, 3)``) and returns float64 arrays of the same leading shape.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, overload

import numpy as np
from numpy.typing import ArrayLike

from bus.messages import CameraIntrinsics, Rotation, Transform, Vector3

if TYPE_CHECKING:  # pragma: no cover - carla is only imported lazily
    import carla

__all__ = [
    "CAMERA_FROM_SENSOR",
    "FLIP_Y",
    "camera_to_ego",
    "ego_to_camera",
    "ego_to_world",
    "from_carla_transform",
    "inverse_transform_matrix",
    "normalize_angle_deg",
    "project",
    "quaternion_xyzw",
    "right_handed_pose",
    "rotation_matrix",
    "to_carla_transform",
    "transform_matrix",
    "unproject",
    "vector_ego_to_world",
    "vector_world_to_ego",
    "world_to_ego",
    "yaw_ego_to_world",
    "yaw_world_to_ego",
]

#: Relabels a vector from a CARLA sensor frame (x forward, y right, z up) to the
#: OpenCV camera frame (x right, y down, z forward): ``p_cam = CAMERA_FROM_SENSOR @ p``.
#: It is a pure axis permutation with a sign flip; its inverse is its transpose.
CAMERA_FROM_SENSOR: np.ndarray = np.array(
    [[0.0, 1.0, 0.0],   # camera x (right) = sensor y (right)
     [0.0, 0.0, -1.0],  # camera y (down)  = -sensor z (up)
     [1.0, 0.0, 0.0]],  # camera z (fwd)   = sensor x (forward)
)
CAMERA_FROM_SENSOR.setflags(write=False)


# ------------------------------------------------------------------------ matrices
def rotation_matrix(rot: Rotation) -> np.ndarray:
    """3x3 rotation of a CARLA ``Rotation`` (pitch, yaw, roll in degrees).

    Maps vectors from the rotated (local) frame to the parent frame, exactly as the
    upper-left block of ``carla.Transform.get_matrix()`` (see the module docstring
    for the formula and its sign conventions). float64.
    """
    p, y, r = np.radians([rot.pitch, rot.yaw, rot.roll])
    cp, sp = np.cos(p), np.sin(p)
    cy, sy = np.cos(y), np.sin(y)
    cr, sr = np.cos(r), np.sin(r)
    return np.array(
        [
            [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
            [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
            [sp, -cp * sr, cp * cr],
        ],
        dtype=np.float64,
    )


def transform_matrix(tf: Transform) -> np.ndarray:
    """4x4 homogeneous local->parent matrix of a pose (metres, degrees).

    For a vehicle's world transform this maps ego points to world points; for a
    camera mount it maps sensor points to ego points. Matches
    ``carla.Transform.get_matrix()``.
    """
    m = np.eye(4)
    m[:3, :3] = rotation_matrix(tf.rotation)
    m[:3, 3] = (tf.location.x, tf.location.y, tf.location.z)
    return m


def inverse_transform_matrix(tf: Transform) -> np.ndarray:
    """4x4 homogeneous parent->local matrix, the exact inverse of
    :func:`transform_matrix` (``[R^T, -R^T t]``). Matches
    ``carla.Transform.get_inverse_matrix()``."""
    rt = rotation_matrix(tf.rotation).T
    m = np.eye(4)
    m[:3, :3] = rt
    m[:3, 3] = -rt @ np.array([tf.location.x, tf.location.y, tf.location.z])
    return m


def _points(points: ArrayLike, name: str, dim: int = 3) -> np.ndarray:
    """``points`` as a float64 array of shape (..., dim), or a ValueError."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != dim:
        raise ValueError(f"{name}: expected an array of shape (..., {dim}), got {arr.shape}")
    return arr


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous matrix to points of shape (..., 3)."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


# ------------------------------------------------------------------- world <-> ego
def world_to_ego(points_world: ArrayLike, ego: Transform) -> np.ndarray:
    """Points (..., 3) in the world frame (m) -> the ego frame of the vehicle whose
    world pose is ``ego`` (m). Same as ``carla.Transform.inverse_transform``."""
    return _apply(inverse_transform_matrix(ego), _points(points_world, "points_world"))


def ego_to_world(points_ego: ArrayLike, ego: Transform) -> np.ndarray:
    """Points (..., 3) in the ego frame (m) -> the world frame (m), with ``ego`` the
    vehicle's world pose. Same as ``carla.Transform.transform``."""
    return _apply(transform_matrix(ego), _points(points_ego, "points_ego"))


def vector_world_to_ego(v_world: ArrayLike, ego: Transform) -> np.ndarray:
    """Free vectors (..., 3) such as velocities (m/s) or accelerations (m/s^2) from
    the world frame to the ego frame: rotation only, no translation."""
    return _points(v_world, "v_world") @ rotation_matrix(ego.rotation)


def vector_ego_to_world(v_ego: ArrayLike, ego: Transform) -> np.ndarray:
    """Free vectors (..., 3) from the ego frame to the world frame: rotation only.
    Same as ``carla.Transform.transform_vector``."""
    return _points(v_ego, "v_ego") @ rotation_matrix(ego.rotation).T


# ------------------------------------------------------------------ ego <-> camera
def ego_to_camera(points_ego: ArrayLike, mount: Transform) -> np.ndarray:
    """Points (..., 3) in the ego frame (m) -> the OpenCV camera frame (m; x right,
    y down, z forward) of a camera mounted at ``mount`` (its pose in the ego frame,
    CARLA attachment convention: x forward, y right, z up, degrees)."""
    sensor = _apply(inverse_transform_matrix(mount), _points(points_ego, "points_ego"))
    return sensor @ CAMERA_FROM_SENSOR.T


def camera_to_ego(points_camera: ArrayLike, mount: Transform) -> np.ndarray:
    """Points (..., 3) in the OpenCV camera frame (m) -> the ego frame (m); the
    inverse of :func:`ego_to_camera`."""
    sensor = _points(points_camera, "points_camera") @ CAMERA_FROM_SENSOR
    return _apply(transform_matrix(mount), sensor)


# ------------------------------------------------------------- camera <-> pixels
def project(
    points_camera: ArrayLike, K: CameraIntrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of points (..., 3) in the OpenCV camera frame (m).

    Returns ``(pixels, in_front)``: ``pixels`` (..., 2) float64 as ``(u, v)`` in
    pixels (u right, v down; the principal point ``(cx, cy)`` is where the optical
    axis lands), and ``in_front`` (...) bool, true where ``z > 0``. Points not in
    front get NaN pixels. The mask does not test the image bounds.
    """
    p = _points(points_camera, "points_camera")
    z = p[..., 2]
    in_front = z > 0.0
    safe_z = np.where(in_front, z, 1.0)
    u = K.fx * p[..., 0] / safe_z + K.cx
    v = K.fy * p[..., 1] / safe_z + K.cy
    pixels = np.stack([u, v], axis=-1)
    pixels[~in_front] = np.nan
    return pixels, in_front


def unproject(pixels: ArrayLike, depth: ArrayLike, K: CameraIntrinsics) -> np.ndarray:
    """Pixels (..., 2) as ``(u, v)`` with ``depth`` (...) in metres along the camera
    z axis (not along the ray) -> points (..., 3) in the OpenCV camera frame (m).
    The inverse of :func:`project` for points in front."""
    uv = _points(pixels, "pixels", dim=2)
    z = np.asarray(depth, dtype=np.float64)
    x = (uv[..., 0] - K.cx) / K.fx * z
    y = (uv[..., 1] - K.cy) / K.fy * z
    x, y, z = np.broadcast_arrays(x, y, z)
    return np.stack([x, y, z], axis=-1)


# ------------------------------------------------------------------------- angles
def pixel_bearing(u: float, v: float, K: CameraIntrinsics, mount: Transform) -> float:
    """Direction (deg from ego x, positive to the right as CARLA's yaw) of the ray
    through pixel (``u``, ``v``) of a camera with intrinsics ``K`` mounted at
    ``mount`` (ego frame), seen from the camera."""
    ray = camera_to_ego(unproject(np.array([[u, v]]), np.array([1.0]), K), mount)[0]
    return math.degrees(math.atan2(ray[1] - mount.location.y, ray[0] - mount.location.x))


@overload
def normalize_angle_deg(angle_deg: float) -> float: ...
@overload
def normalize_angle_deg(angle_deg: np.ndarray) -> np.ndarray: ...
def normalize_angle_deg(angle_deg: float | np.ndarray) -> float | np.ndarray:
    """Wrap angles in degrees to (-180, 180]; +-180 both map to 180. A scalar in
    gives a float out, an array in gives a float64 array out."""
    a = np.asarray(angle_deg, dtype=np.float64)
    wrapped = 180.0 - np.mod(180.0 - a, 360.0)
    # float rounding in mod can land exactly on -180 for inputs a hair above it
    wrapped = np.where(wrapped <= -180.0, wrapped + 360.0, wrapped)
    return float(wrapped) if wrapped.ndim == 0 else wrapped


@overload
def yaw_world_to_ego(yaw_deg: float, ego_yaw_deg: float) -> float: ...
@overload
def yaw_world_to_ego(yaw_deg: np.ndarray, ego_yaw_deg: float | np.ndarray) -> np.ndarray: ...
def yaw_world_to_ego(
    yaw_deg: float | np.ndarray, ego_yaw_deg: float | np.ndarray
) -> float | np.ndarray:
    """A heading (CARLA yaw, degrees, world frame) relative to the ego's heading:
    0 is straight ahead, positive is to the right. Wrapped to (-180, 180]."""
    return normalize_angle_deg(np.subtract(yaw_deg, ego_yaw_deg)[()])


@overload
def yaw_ego_to_world(yaw_deg: float, ego_yaw_deg: float) -> float: ...
@overload
def yaw_ego_to_world(yaw_deg: np.ndarray, ego_yaw_deg: float | np.ndarray) -> np.ndarray: ...
def yaw_ego_to_world(
    yaw_deg: float | np.ndarray, ego_yaw_deg: float | np.ndarray
) -> float | np.ndarray:
    """A heading relative to the ego (degrees, positive right) -> world CARLA yaw
    (degrees). Wrapped to (-180, 180]; the inverse of :func:`yaw_world_to_ego`."""
    return normalize_angle_deg(np.add(yaw_deg, ego_yaw_deg)[()])


# -------------------------------------------------------------------- carla objects
def to_carla_transform(tf: Transform) -> carla.Transform:
    """A ``bus.messages.Transform`` as a ``carla.Transform`` (same frame and units;
    CARLA stores float32, so values are rounded to single precision)."""
    import carla

    loc, rot = tf.location, tf.rotation
    return carla.Transform(
        carla.Location(x=loc.x, y=loc.y, z=loc.z),
        carla.Rotation(pitch=rot.pitch, yaw=rot.yaw, roll=rot.roll),
    )


def from_carla_transform(tf: carla.Transform) -> Transform:
    """A ``carla.Transform`` as a ``bus.messages.Transform`` (same frame and units)."""
    loc, rot = tf.location, tf.rotation
    return Transform(
        Vector3(float(loc.x), float(loc.y), float(loc.z)),
        Rotation(pitch=float(rot.pitch), yaw=float(rot.yaw), roll=float(rot.roll)),
    )


# ------------------------------------------------------- right-handed (Foxglove, ROS)
#: CARLA's left-handed frames to right-handed ones (y negated: y points left), as
#: Foxglove and ROS draw them.
FLIP_Y: np.ndarray = np.diag([1.0, -1.0, 1.0])
FLIP_Y.setflags(write=False)


def quaternion_xyzw(r: np.ndarray) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w), w >= 0, of a proper 3 x 3 rotation matrix."""
    m = np.asarray(r, float)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s,
             0.25 * s)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s,
             (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s,
             (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s,
             (m[1, 0] - m[0, 1]) / s)
    n = math.copysign(math.sqrt(sum(v * v for v in q)), q[3])  # w >= 0: one of the two
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


def right_handed_pose(m: np.ndarray, optical_child: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(translation m, 3 x 3 rotation) in Foxglove's frames of a CARLA 4 x 4
    local -> parent pose ``m`` whose parent is a CARLA frame (world or ego; y is
    negated). The child is a CARLA frame too, or with ``optical_child`` the pose is
    a CARLA sensor's and the child its OpenCV optical frame (x right, y down, z
    forward)."""
    child = CAMERA_FROM_SENSOR.T if optical_child else FLIP_Y
    return FLIP_Y @ m[:3, 3], FLIP_Y @ m[:3, :3] @ child
