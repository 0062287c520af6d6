"""bus.frames against CARLA's own Transform maths, plus round trips and projection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus import frames
from bus.frames import (
    camera_to_ego,
    ego_to_camera,
    ego_to_world,
    from_carla_transform,
    inverse_transform_matrix,
    normalize_angle_deg,
    project,
    rotation_matrix,
    to_carla_transform,
    transform_matrix,
    unproject,
    vector_ego_to_world,
    vector_world_to_ego,
    world_to_ego,
    yaw_ego_to_world,
    yaw_world_to_ego,
)
from bus.messages import CameraIntrinsics, Rotation, Transform, Vector3

carla = pytest.importorskip("carla")

# carla stores float32: compare with a tolerance relative to the magnitudes involved.
F32_RTOL = 1e-5


def _pose(x: float, y: float, z: float, pitch: float, yaw: float, roll: float) -> Transform:
    return Transform(Vector3(x, y, z), Rotation(pitch=pitch, yaw=yaw, roll=roll))


def _random_poses(n: int, seed: int = 0) -> list[Transform]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y, z = rng.uniform(-300.0, 300.0, 3)
        pitch, yaw, roll = rng.uniform(-180.0, 180.0, 3)
        out.append(_pose(x, y, z, pitch, yaw, roll))
    return out


def _f32_exact(tf: Transform) -> Transform:
    """The pose as carla holds it (float32), so both sides start from the same numbers."""
    return from_carla_transform(to_carla_transform(tf))


def _xyz(v: object) -> np.ndarray:
    return np.array([v.x, v.y, v.z])  # type: ignore[attr-defined]


POSES = [_f32_exact(tf) for tf in _random_poses(25)] + [
    _pose(0, 0, 0, 0, 0, 0),
    _pose(1, 2, 3, 90, 0, 0),
    _pose(1, 2, 3, 0, 90, 0),
    _pose(1, 2, 3, 0, 0, 90),
    _pose(-5, 7, 0.5, -90, 180, -180),
]

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
angle = st.floats(-720.0, 720.0, allow_nan=False, allow_infinity=False)
poses = st.builds(_pose, finite, finite, finite, angle, angle, angle)


# ------------------------------------------------------------------ against carla
@pytest.mark.parametrize("tf", POSES, ids=lambda tf: repr(tf.rotation))
def test_matrices_match_carla(tf: Transform) -> None:
    ctf = to_carla_transform(tf)
    scale = 1.0 + np.abs(_xyz(tf.location)).max()
    np.testing.assert_allclose(transform_matrix(tf), np.array(ctf.get_matrix()),
                               atol=F32_RTOL * scale)
    np.testing.assert_allclose(inverse_transform_matrix(tf),
                               np.array(ctf.get_inverse_matrix()), atol=F32_RTOL * scale)
    np.testing.assert_allclose(rotation_matrix(tf.rotation),
                               np.array(ctf.get_matrix())[:3, :3], atol=F32_RTOL)


@pytest.mark.parametrize("tf", POSES, ids=lambda tf: repr(tf.rotation))
def test_rotation_columns_are_carla_axes(tf: Transform) -> None:
    """Columns of R are the body's forward, right and up vectors in the parent frame."""
    ctf = to_carla_transform(tf)
    r = rotation_matrix(tf.rotation)
    np.testing.assert_allclose(r[:, 0], _xyz(ctf.get_forward_vector()), atol=F32_RTOL)
    np.testing.assert_allclose(r[:, 1], _xyz(ctf.get_right_vector()), atol=F32_RTOL)
    np.testing.assert_allclose(r[:, 2], _xyz(ctf.get_up_vector()), atol=F32_RTOL)


@pytest.mark.parametrize("tf", POSES, ids=lambda tf: repr(tf.rotation))
def test_points_match_carla_transform(tf: Transform) -> None:
    ctf = to_carla_transform(tf)
    pts = np.random.default_rng(1).uniform(-50.0, 50.0, (8, 3))
    scale = 1.0 + np.abs(_xyz(tf.location)).max() + 50.0
    world = ego_to_world(pts, tf)
    ego = world_to_ego(pts, tf)
    vec = vector_ego_to_world(pts, tf)
    for p, w, e, v in zip(pts, world, ego, vec, strict=True):
        # carla's transform()/inverse_transform() modify their argument in place: a
        # fresh Location for each call.
        loc = carla.Location(*map(float, p))
        np.testing.assert_allclose(w, _xyz(ctf.transform(loc)), atol=F32_RTOL * scale)
        loc = carla.Location(*map(float, p))
        np.testing.assert_allclose(e, _xyz(ctf.inverse_transform(loc)), atol=F32_RTOL * scale)
        vec3 = carla.Vector3D(*map(float, p))
        np.testing.assert_allclose(v, _xyz(ctf.transform_vector(vec3)), atol=F32_RTOL * 50)
    # unlike carla, ours leave the input alone
    before = pts.copy()
    ego_to_world(pts, tf)
    world_to_ego(pts, tf)
    ego_to_camera(pts, tf)
    np.testing.assert_array_equal(pts, before)


def test_rotation_sign_conventions() -> None:
    """Positive yaw turns +x towards +y (right); positive pitch raises the nose;
    positive roll dips the right side."""
    fwd = rotation_matrix(Rotation(yaw=90.0))[:, 0]
    np.testing.assert_allclose(fwd, [0, 1, 0], atol=1e-12)
    fwd = rotation_matrix(Rotation(pitch=90.0))[:, 0]
    np.testing.assert_allclose(fwd, [0, 0, 1], atol=1e-12)
    right = rotation_matrix(Rotation(roll=90.0))[:, 1]
    np.testing.assert_allclose(right, [0, 0, -1], atol=1e-12)


@given(poses)
def test_rotation_is_proper_orthonormal(tf: Transform) -> None:
    r = rotation_matrix(tf.rotation)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(transform_matrix(tf) @ inverse_transform_matrix(tf), np.eye(4),
                               atol=1e-9)


def test_carla_roundtrip() -> None:
    tf = _pose(1.5, -2.25, 0.5, 10.0, -45.0, 3.0)
    ctf = to_carla_transform(tf)
    assert isinstance(ctf, carla.Transform)
    assert from_carla_transform(ctf) == tf  # all values exact in float32


def test_module_does_not_import_carla_at_top_level() -> None:
    assert "carla" not in vars(frames)


# ---------------------------------------------------------------- world <-> ego
@given(poses, st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=20))
def test_world_ego_roundtrip(tf: Transform, pts: list[tuple[float, float, float]]) -> None:
    p = np.array(pts)
    np.testing.assert_allclose(ego_to_world(world_to_ego(p, tf), tf), p, atol=1e-9)
    np.testing.assert_allclose(world_to_ego(ego_to_world(p, tf), tf), p, atol=1e-9)
    np.testing.assert_allclose(vector_ego_to_world(vector_world_to_ego(p, tf), tf), p,
                               atol=1e-9)


def test_world_to_ego_example() -> None:
    ego = _pose(10.0, 20.0, 0.0, 0.0, 90.0, 0.0)  # at (10, 20), facing +y
    ahead_right_up = world_to_ego([[10.0 - 2.0, 20.0 + 5.0, 1.0]], ego)
    np.testing.assert_allclose(ahead_right_up, [[5.0, 2.0, 1.0]], atol=1e-12)
    # velocity: rotation only, no translation
    np.testing.assert_allclose(vector_world_to_ego([0.0, 3.0, 0.0], ego), [3.0, 0.0, 0.0],
                               atol=1e-12)


def test_shapes() -> None:
    tf = POSES[0]
    assert world_to_ego(np.zeros(3), tf).shape == (3,)
    assert world_to_ego(np.zeros((0, 3)), tf).shape == (0, 3)
    assert ego_to_camera(np.zeros((4, 5, 3)), tf).shape == (4, 5, 3)
    assert world_to_ego([[1, 2, 3]], tf).dtype == np.float64
    with pytest.raises(ValueError, match="points_world"):
        world_to_ego(np.zeros((4, 2)), tf)


# -------------------------------------------------------------- ego <-> camera
K = CameraIntrinsics.from_fov(800, 600, 90.0)
FRONT = _pose(1.5, 0.0, 2.4, 0.0, 0.0, 0.0)


def test_camera_axes() -> None:
    # ahead, right, up of the camera become +z, +x, -y in OpenCV
    pts = np.array([[1.5 + 1, 0, 2.4], [1.5, 1, 2.4], [1.5, 0, 2.4 + 1]])
    np.testing.assert_allclose(ego_to_camera(pts, FRONT), [[0, 0, 1], [1, 0, 0], [0, -1, 0]],
                               atol=1e-12)


def test_straight_ahead_projects_to_principal_point() -> None:
    uv, ok = project(ego_to_camera([[1.5 + 10.0, 0.0, 2.4]], FRONT), K)
    assert ok.tolist() == [True]
    np.testing.assert_allclose(uv, [[K.cx, K.cy]], atol=1e-9)


def test_right_and_up_directions() -> None:
    uv, ok = project(ego_to_camera([[11.5, 2.0, 2.4], [11.5, 0.0, 4.4]], FRONT), K)
    assert ok.all()
    (u_right, v_right), (u_up, v_up) = uv
    assert u_right > K.cx and v_right == pytest.approx(K.cy)
    assert v_up < K.cy and u_up == pytest.approx(K.cx)
    # 90 deg horizontal FOV: a point at 45 deg to the right lands on the image edge
    edge, _ = project(ego_to_camera([[11.5, 10.0, 2.4]], FRONT), K)
    assert edge[0, 0] == pytest.approx(K.width)


def test_behind_camera_is_masked() -> None:
    uv, ok = project(ego_to_camera([[1.5 - 5.0, 0.0, 2.4], [1.5, 1.0, 2.4]], FRONT), K)
    assert ok.tolist() == [False, False]  # behind, and on the camera plane (z == 0)
    assert np.isnan(uv).all()


def test_mount_rotation_is_respected() -> None:
    """A camera yawed 90 deg (looking right) sees a point on the ego's +y axis ahead."""
    right_cam = _pose(0.0, 0.0, 1.0, 0.0, 90.0, 0.0)
    cam = ego_to_camera([[0.0, 7.0, 1.0]], right_cam)
    np.testing.assert_allclose(cam, [[0.0, 0.0, 7.0]], atol=1e-12)
    # pitched down 30 deg: a point on the ground ahead lands on the optical axis
    down = _pose(0.0, 0.0, 1.0, -30.0, 0.0, 0.0)
    d = 1.0 / np.tan(np.radians(30.0))
    uv, ok = project(ego_to_camera([[d, 0.0, 0.0]], down), K)
    assert ok[0]
    np.testing.assert_allclose(uv, [[K.cx, K.cy]], atol=1e-9)


@given(poses, st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=20))
def test_ego_camera_roundtrip(mount: Transform, pts: list[tuple[float, float, float]]) -> None:
    p = np.array(pts)
    np.testing.assert_allclose(camera_to_ego(ego_to_camera(p, mount), mount), p, atol=1e-9)


@settings(max_examples=200)
@given(
    st.floats(-50.0, 50.0),
    st.floats(-50.0, 50.0),
    st.floats(0.1, 200.0),
    st.sampled_from([K, CameraIntrinsics(640, 480, 500.0, 520.0, 321.5, 239.0)]),
)
def test_unproject_inverts_project(x: float, y: float, z: float, k: CameraIntrinsics) -> None:
    p = np.array([[x, y, z]])
    uv, ok = project(p, k)
    assert ok.all()
    np.testing.assert_allclose(unproject(uv, p[:, 2], k), p, rtol=1e-9, atol=1e-9)


def test_unproject_shapes_and_scalar_depth() -> None:
    uv = np.array([[K.cx, K.cy], [K.cx + K.fx, K.cy]])
    np.testing.assert_allclose(unproject(uv, 2.0, K), [[0, 0, 2], [2, 0, 2]], atol=1e-12)
    assert unproject(np.zeros((3, 4, 2)), np.ones((3, 4)), K).shape == (3, 4, 3)


# ----------------------------------------------------------------------- angles
@pytest.mark.parametrize(
    ("angle", "expected"),
    [(0.0, 0.0), (180.0, 180.0), (-180.0, 180.0), (540.0, 180.0), (-540.0, 180.0),
     (360.0, 0.0), (-360.0, 0.0), (190.0, -170.0), (-190.0, 170.0), (179.5, 179.5),
     (-179.5, -179.5), (720.25, 0.25), (-1e-15, -1e-15)],
)
def test_normalize_angle(angle: float, expected: float) -> None:
    got = normalize_angle_deg(angle)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-12)


def test_normalize_angle_array_and_nan() -> None:
    got = normalize_angle_deg(np.array([-180.0, 181.0, np.nan]))
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got[:2], [180.0, -179.0])
    assert np.isnan(got[2])


@given(st.floats(-1e6, 1e6, allow_nan=False))
def test_normalize_angle_range_and_equivalence(a: float) -> None:
    n = normalize_angle_deg(a)
    assert -180.0 < n <= 180.0
    # same direction: the difference is a multiple of 360 (up to float rounding)
    k = (a - n) / 360.0
    assert k == pytest.approx(round(k), abs=1e-9 * max(1.0, abs(a)))


def test_yaw_world_ego() -> None:
    assert yaw_world_to_ego(90.0, 90.0) == 0.0
    assert yaw_world_to_ego(-170.0, 170.0) == pytest.approx(20.0)
    assert yaw_world_to_ego(0.0, 180.0) == 180.0
    assert yaw_ego_to_world(20.0, 170.0) == pytest.approx(-170.0)
    got = yaw_world_to_ego(np.array([0.0, 90.0]), 90.0)
    np.testing.assert_allclose(got, [-90.0, 0.0])


@given(angle, angle)
def test_yaw_roundtrip(yaw: float, ego_yaw: float) -> None:
    back = yaw_ego_to_world(yaw_world_to_ego(yaw, ego_yaw), ego_yaw)
    diff = normalize_angle_deg(back - normalize_angle_deg(yaw))
    assert min(abs(diff), abs(abs(diff) - 360.0)) < 1e-9


def test_yaw_matches_rotated_heading() -> None:
    """A relative yaw agrees with rotating the heading vector into the ego frame."""
    ego = _pose(0, 0, 0, 0, 30.0, 0)
    yaw = 75.0
    heading_world = [np.cos(np.radians(yaw)), np.sin(np.radians(yaw)), 0.0]
    h = vector_world_to_ego(heading_world, ego)
    assert np.degrees(np.arctan2(h[1], h[0])) == pytest.approx(yaw_world_to_ego(yaw, 30.0))
