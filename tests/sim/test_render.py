"""Camera renderer geometry and ground truth (sim.render).

Expected values come from ``bus.frames`` (the one place for frame conversions) and
from closed-form pinhole geometry, never from the renderer's own helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bus.frames import (
    camera_to_ego,
    ego_to_camera,
    ego_to_world,
    project,
    unproject,
    world_to_ego,
)
from bus.messages import Rotation, Transform, Vector3
from sim.labels import Label
from sim.render import (
    FAR_PLANE,
    NEAR_PLANE,
    Appearance,
    CameraSpec,
    Frame,
    GroundRaster,
    Renderer,
    RenderObject,
    default_ground_colors,
)
from sim.render.ground import GROUND_COLORS
from sim.render.scenery import place_scenery, traffic_light_objects

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sim.py"
MPP = 0.1
CAR = (2.3, 0.95, 0.75)  # half sizes, m
SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
PAVED = (Label.ROADS, Label.ROAD_LINES, Label.SIDEWALKS)


# --------------------------------------------------------------------------- scenes
def straight_road(x0: float = -60.0, x1: float = 260.0, half_width: float = 60.0,
                  crossing_x: float | None = None) -> GroundRaster:
    """A road along world x (y in [-7, 7] m) with lane lines at y = 0 and +-3.5 m,
    3 m sidewalks, terrain beyond; optionally a crossing road along y at
    ``crossing_x`` (x in [c - 7, c + 7])."""
    xs = x0 + np.arange(round((x1 - x0) / MPP)) * MPP
    ys = -half_width + np.arange(round(2 * half_width / MPP)) * MPP
    ay, ax = np.abs(ys)[:, None], xs[None, :]
    labels = np.full((ys.size, xs.size), Label.TERRAIN, np.uint8)
    labels[np.broadcast_to(ay < 10.0, labels.shape)] = Label.SIDEWALKS
    road = np.broadcast_to(ay < 7.0, labels.shape)
    if crossing_x is not None:
        labels[np.broadcast_to(np.abs(ax - crossing_x) < 10.0, labels.shape)] = Label.SIDEWALKS
        road = road | (np.abs(ax - crossing_x) < 7.0)
    labels[road] = Label.ROADS
    lines = (np.abs(ay) < 0.13) | (np.abs(ay - 3.5) < 0.13)  # 3 raster pixels wide
    labels[np.broadcast_to(lines, labels.shape) & np.broadcast_to(ay < 7.0, labels.shape)] = \
        Label.ROAD_LINES
    return GroundRaster(labels, default_ground_colors(labels), origin_x=x0,
                        origin_y=-half_width, metres_per_pixel=MPP)


def level_camera(height: float = 1.7, **kw: float) -> CameraSpec:
    """A forward camera at the ego origin, ``height`` m up, no pitch or roll."""
    return CameraSpec("front", mount=Transform(Vector3(0.0, 0.0, height),
                                               Rotation(**kw)))


def car(instance_id: int, x: float, y: float, yaw: float = 0.0,
        extent: tuple[float, float, float] = CAR) -> RenderObject:
    """A car standing on the ground at world (x, y) (its box centre extent.z up)."""
    return RenderObject(instance_id, Label.CAR,
                        Transform(Vector3(x, y, extent[2]), Rotation(yaw=yaw)), extent)


def render(ground: GroundRaster, camera: CameraSpec, objects: list[RenderObject],
           ego: Transform | None = None, appearance: Appearance | None = None,
           static: list[RenderObject] | None = None, tick: int = 0) -> Frame:
    renderer = Renderer(ground, [camera], appearance, static or [])
    return renderer.render(ego or Transform(), objects, tick=tick)[camera.name]


# ------------------------------------------------------------- expected geometry
def box_corners_world(obj: RenderObject) -> np.ndarray:
    """The 8 corners (8, 3) of an object's box in the world frame: box-local points
    go to the world exactly as ego points do for a vehicle at that pose."""
    return ego_to_world(SIGNS * np.array(obj.extent), obj.transform)


def pixels_of(points_world: np.ndarray, ego: Transform, camera: CameraSpec) -> np.ndarray:
    cam = ego_to_camera(world_to_ego(points_world, ego), camera.mount)
    uv, in_front = project(cam, camera.intrinsics)
    assert in_front.all()
    return uv


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    assert rows.size, "empty mask"
    return cols.min(), rows.min(), cols.max(), rows.max()


def world_points_of(frame: Frame, mask: np.ndarray, ego: Transform,
                    camera: CameraSpec) -> np.ndarray:
    """Unproject the pixels of ``mask`` with their rendered depth to the world."""
    rows, cols = np.nonzero(mask)
    uv = np.stack([cols, rows], axis=-1).astype(float)
    cam = unproject(uv, frame.depth[rows, cols], camera.intrinsics)
    return ego_to_world(camera_to_ego(cam, camera.mount), ego)


def assert_on_box_surface(frame: Frame, mask: np.ndarray, obj: RenderObject, ego: Transform,
                          camera: CameraSpec) -> None:
    """The object's pixels unproject onto its box: every pixel's depth lies within
    the box's depth range, and pixels inside the silhouette (not on its one-pixel
    rim, which OpenCV's fill includes when the polygon only grazes the pixel) lie
    on the box surface within three pixels' footprint at their depth."""
    corners = ego_to_camera(world_to_ego(box_corners_world(obj), ego), camera.mount)
    depth = frame.depth[mask]
    assert depth.min() >= max(NEAR_PLANE, corners[:, 2].min()) - 1e-3
    assert depth.max() <= corners[:, 2].max() + 1e-3
    interior = mask.copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            interior &= np.roll(mask, shift, axis=axis)
    pts = world_points_of(frame, interior, ego, camera)
    local = world_to_ego(pts, obj.transform)  # box frame, like an ego frame
    excess = (np.abs(local) - np.array(obj.extent)).max(axis=1)  # 0 on the surface
    tol = 3.0 * frame.depth[interior] / camera.intrinsics.fx + 0.01
    assert (excess <= tol).all(), "a pixel is off the box"
    assert (excess >= -tol).all(), "a pixel is inside the box, not on it"


# ------------------------------------------------------------------------ the tests
@pytest.mark.parametrize(
    ("ego", "mount"),
    [
        (Transform(), Transform(Vector3(0.0, 0.0, 1.7))),
        (Transform(Vector3(12.0, -3.0, 0.0), Rotation(yaw=37.0)),
         Transform(Vector3(1.5, 0.2, 2.4), Rotation(pitch=-8.0, yaw=10.0, roll=3.0))),
        (Transform(Vector3(-5.0, 20.0, 0.0), Rotation(yaw=-120.0)),
         Transform(Vector3(0.0, 0.0, 1.2), Rotation(pitch=5.0))),
    ],
)
def test_car_lands_in_the_predicted_pixel_box(ego: Transform, mount: Transform) -> None:
    camera = CameraSpec("front", mount=mount)
    # a car 18 m ahead of the camera and 1.5 m to its right, turned by 25 deg
    ahead = ego_to_world(camera_to_ego([1.5, 0.0, 18.0], mount), ego)
    target = car(7, ahead[0], ahead[1], yaw=ego.rotation.yaw + 25.0)
    frame = render(straight_road(x0=-80.0), camera, [target], ego=ego)
    uv = pixels_of(box_corners_world(target), ego, camera)
    predicted = (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())
    got = mask_bbox(frame.instances == 7)
    assert np.allclose(got, predicted, atol=2.0), (got, predicted)
    assert (frame.labels[frame.instances == 7] == Label.CAR).all()
    assert_on_box_surface(frame, frame.instances == 7, target, ego, camera)


def test_ground_depth_equals_the_analytic_value() -> None:
    h = 1.7
    camera = level_camera(h)
    frame = render(straight_road(), camera, [])
    K = camera.intrinsics
    rows = np.arange(int(K.cy) + 6, K.height)
    expected = K.fy * h / (rows - K.cy)  # metres along the optical axis
    for col in (0, 100, 320, 500, 639):
        got = frame.depth[rows, col]
        assert np.allclose(got, expected, rtol=0.01), col
    assert frame.depth.dtype == np.float32
    assert (frame.instances == 0).all()


def test_box_face_depth_varies_as_its_plane() -> None:
    # a wall along the road on the right, its near face at y = 8 m
    camera = level_camera(1.7)
    wall = RenderObject(0, Label.BUILDINGS, Transform(Vector3(60.0, 8.5, 5.0)),
                        (50.0, 0.5, 5.0), color=(150, 150, 150))
    frame = render(straight_road(x0=-20.0, x1=200.0), camera, [], static=[wall])
    K = camera.intrinsics
    row = int(K.cy) - 20  # above the horizon: only the wall or sky there
    cols = np.flatnonzero(frame.labels[row] == Label.BUILDINGS)
    assert cols.size > 100
    cols = cols[(cols > cols.min() + 2) & (cols < cols.max() - 2)]  # away from edges
    expected = K.fx * 8.0 / (cols - K.cx)  # x_cam = 8 m: z = fx * x / (u - cx)
    got = frame.depth[row, cols]
    near_face = (expected > 10.5) & (expected < 109.0)  # the face spans x in [10, 110] m
    assert np.allclose(got[near_face], expected[near_face], rtol=0.005)
    assert np.ptp(got) > 50.0  # not one depth per face


def test_labels_and_rgb_are_aligned_under_the_neutral_appearance() -> None:
    camera = level_camera(1.7)
    target = car(3, 15.0, 1.75)
    ground = straight_road()
    frame = render(ground, camera, [target], appearance=Appearance.neutral())
    # ground pixels whose bilinear sample lies wholly inside one label's area of the
    # raster must show exactly that label's colour
    mask = (frame.labels != Label.SKY) & (frame.instances == 0) & (frame.depth < 50.0)
    pts = world_points_of(frame, mask, Transform(), camera)
    col, row = ground.pixel_of(pts[:, 0], pts[:, 1])
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    h, w = ground.labels.shape
    assert ((c0 >= 0) & (c0 + 1 < w) & (r0 >= 0) & (r0 + 1 < h)).all()
    corners = [ground.labels[r0 + dr, c0 + dc] for dr in (0, 1) for dc in (0, 1)]
    pure = np.all([c == corners[0] for c in corners], axis=0)
    labels, rgb = frame.labels[mask], frame.rgb[mask]
    assert np.array_equal(labels[pure], corners[0][pure])
    for label in (Label.ROADS, Label.ROAD_LINES, Label.SIDEWALKS, Label.TERRAIN):
        these = pure & (labels == label)
        assert these.sum() > 100, label
        assert (rgb[these] == GROUND_COLORS[label]).all(), label
    car_pixels = frame.labels == Label.CAR
    assert np.array_equal(car_pixels, frame.instances == 3)
    road = np.array(GROUND_COLORS[Label.ROADS])
    assert not (frame.rgb[car_pixels] == road).all(axis=1).any()


def test_sky_above_the_horizon() -> None:
    camera = level_camera(1.7)
    frame = render(straight_road(), camera, [])
    cy = int(camera.intrinsics.cy)
    sky = frame.labels == Label.SKY
    assert sky[: cy - 1].all()
    assert (frame.depth[: cy - 1] == FAR_PLANE).all()
    assert not sky[cy + 3:].any()
    assert (frame.depth[cy + 3:] < FAR_PLANE).all()


def test_ground_pixels_unproject_onto_their_raster_labels() -> None:
    # a tilted, rolled camera on a rotated ego: every ground pixel's unprojected
    # point must lie on z = 0, where the raster has that pixel's label
    ground = straight_road(x0=-100.0, crossing_x=40.0)
    ego = Transform(Vector3(5.0, -2.0, 0.0), Rotation(yaw=20.0))
    camera = CameraSpec("front", mount=Transform(Vector3(1.0, 0.0, 2.0),
                                                 Rotation(pitch=-12.0, roll=8.0)))
    frame = render(ground, camera, [], ego=ego)
    mask = (frame.labels != Label.SKY) & (frame.depth < 200.0)
    pts = world_points_of(frame, mask, ego, camera)
    assert np.abs(pts[:, 2]).max() < 0.01
    col, row = (np.round(c).astype(int) for c in ground.pixel_of(pts[:, 0], pts[:, 1]))
    h, w = ground.labels.shape
    on_raster = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    assert on_raster.mean() > 0.5
    raster = ground.labels[row[on_raster], col[on_raster]]
    assert (raster == frame.labels[mask][on_raster]).mean() > 0.99
    assert (frame.labels[mask][~on_raster] == Label.TERRAIN).all()  # the world goes on


def test_raster_rows_are_world_y() -> None:
    # a 2 m square patch of sidewalk at world (20, +4): right of the road from an ego
    # looking along +x (CARLA is left-handed: +y is to the right)
    ground = straight_road()
    col, row = ground.pixel_of(20.0, 4.0)
    c, r = round(float(col)), round(float(row))
    ground.labels[r - 10:r + 10, c - 10:c + 10] = Label.WATER
    camera = level_camera(1.7)
    frame = render(ground, camera, [])
    (u, v), = pixels_of(np.array([[20.0, 4.0, 0.0]]), Transform(), camera)
    assert u > camera.intrinsics.cx
    assert frame.labels[round(v), round(u)] == Label.WATER
    (u2, v2), = pixels_of(np.array([[20.0, -4.0, 0.0]]), Transform(), camera)
    assert frame.labels[round(v2), round(u2)] != Label.WATER


def test_a_near_car_hides_a_far_car() -> None:
    camera = level_camera(1.7)
    near, far = car(1, 10.0, 0.0), car(2, 25.0, 0.3)
    ground = straight_road()
    frame = render(ground, camera, [far, near])
    (u, v), = pixels_of(np.array([[10.0 - CAR[0], 0.0, 0.5]]), Transform(), camera)
    assert frame.instances[round(v), round(u)] == 1
    alone = render(ground, camera, [far])
    far_alone = alone.instances == 2
    far_seen = frame.instances == 2
    assert far_seen.sum() < far_alone.sum()  # partly hidden
    assert not (far_seen & ~far_alone).any()
    assert np.array_equal(frame.instances, render(ground, camera, [near, far]).instances)


def test_a_car_in_front_of_a_long_wall_is_not_hidden_by_it() -> None:
    # the wall's centre is nearer than the car's, yet the car stands between the
    # camera and the wall: a separating plane, not centre depth, decides
    camera = level_camera(1.7)
    wall = RenderObject(0, Label.BUILDINGS, Transform(Vector3(35.0, 8.5, 5.0)),
                        (30.0, 0.5, 5.0))
    target = car(5, 50.0, 6.5)
    ground = straight_road()
    with_wall = render(ground, camera, [target], static=[wall])
    alone = render(ground, camera, [target])
    assert (with_wall.labels == Label.BUILDINGS).sum() > 1000
    assert np.array_equal(with_wall.instances == 5, alone.instances == 5)


def ray_cast(objects: list[RenderObject], ego: Transform, camera: CameraSpec,
             pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference visibility by brute force: for each pixel (N, 2) the instance id of
    the nearest box its ray enters (0 for none) and that hit's depth along the
    optical axis (slab test in each box's own frame)."""
    K = camera.intrinsics
    ahead = ego_to_world(camera_to_ego(unproject(pixels, np.ones(len(pixels)), K),
                                       camera.mount), ego)
    origin = ego_to_world(camera_to_ego(np.zeros(3), camera.mount), ego)
    best_t = np.full(len(pixels), np.inf)
    best_id = np.zeros(len(pixels), int)
    for obj in objects:
        o = world_to_ego(origin, obj.transform)  # the box's frame
        d = world_to_ego(ahead, obj.transform) - o
        e = np.array(obj.extent)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-e - o) / d, (e - o) / d
        t_in = np.nanmax(np.minimum(t1, t2), axis=1)
        t_out = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (t_out >= t_in) & (t_in > 0.0) & (t_in < best_t)
        best_t[hit], best_id[hit] = t_in[hit], obj.instance_id
    return best_id, best_t  # unit z on the ray at t = 1: t is the depth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visibility_matches_a_ray_cast_reference(seed: int) -> None:
    # boxes of random size and orientation (tilted ones too), on a grid so that no
    # two intersect; some float, some stand; painter's order must get every
    # occlusion right that a ray caster sees
    rng = np.random.default_rng(seed)
    objects = []
    for k, (gx, gy) in enumerate((gx, gy) for gx in range(5) for gy in range(5)):
        extent = tuple(rng.uniform(0.3, 1.4, 3))
        tilted = rng.random() < 0.4
        rotation = Rotation(pitch=rng.uniform(-40, 40) if tilted else 0.0,
                            yaw=rng.uniform(-180, 180),
                            roll=rng.uniform(-40, 40) if tilted else 0.0)
        centre = Vector3(6.0 + 7.0 * gx + rng.uniform(-0.5, 0.5),
                         -12.0 + 6.0 * gy + rng.uniform(-0.5, 0.5), rng.uniform(1.5, 4.0))
        objects.append(RenderObject(k + 1, Label.STATIC, Transform(centre, rotation), extent))
    ego = Transform(Vector3(0.0, 0.0, 0.0), Rotation(yaw=rng.uniform(-5, 5)))
    camera = level_camera(2.0, pitch=-3.0)
    frame = render(straight_road(), camera, objects, ego=ego)
    ids = frame.instances
    same = np.ones_like(ids, bool)  # away from edges: the 3x3 neighbourhood agrees
    for axis in (0, 1):
        for shift in (-1, 1):
            same &= np.roll(ids, shift, axis=axis) == ids
    same[[0, -1], :] = False
    same[:, [0, -1]] = False
    rows, cols = np.nonzero(same)
    pixels = np.stack([cols, rows], axis=-1).astype(float)
    want_id, want_depth = ray_cast(objects, ego, camera, pixels)
    got_id = ids[rows, cols]
    assert (got_id > 0).sum() > 5000
    agree = got_id == want_id
    assert agree.mean() > 0.999, np.unique(np.stack([got_id, want_id])[:, ~agree], axis=1)
    hit = agree & (want_id > 0)
    # depth: exact on faces; on the one-pixel seam between two faces of a box the
    # pixel may take the other face's plane, a little beyond its edge
    err = np.abs(frame.depth[rows, cols][hit] / want_depth[hit] - 1.0)
    assert (err < 0.01).mean() > 0.995
    assert err.max() < 0.1


def test_an_object_crossing_the_near_plane_draws_only_its_front_part() -> None:
    # a car alongside the camera, from 1.8 m behind it to 2.8 m ahead
    camera = level_camera(1.7)
    beside = car(9, 0.5, 2.5)
    frame = render(straight_road(), camera, [beside])
    mask = frame.instances == 9
    assert mask.sum() > 1000
    assert (np.nonzero(mask)[1] > camera.intrinsics.cx).all()  # all on the right
    depth = frame.depth[mask]
    assert np.isfinite(depth).all() and (depth >= NEAR_PLANE).all()
    assert_on_box_surface(frame, mask, beside, Transform(), camera)
    pts = world_points_of(frame, mask, Transform(), camera)
    assert (pts[:, 0] >= NEAR_PLANE - 1e-3).all()  # nothing from behind the near plane


def test_same_seed_gives_identical_frames() -> None:
    look = replace(Appearance.sample(11), fog_density=0.01, rain=0.7, noise_sigma=3.0)
    ground = straight_road()
    scenery = place_scenery(ground, 11)
    camera = level_camera(1.5)
    objects = [car(1, 12.0, 1.75), car(2, 30.0, -1.75, yaw=180.0)]
    a = render(ground, camera, objects, appearance=look, static=scenery, tick=5)
    b = render(ground, camera, objects, appearance=look, static=scenery, tick=5)
    for name in ("rgb", "labels", "depth", "instances"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    other = render(ground, camera, objects, appearance=Appearance.sample(12),
                   static=scenery, tick=5)
    assert other.rgb.tobytes() != a.rgb.tobytes()


@pytest.mark.parametrize("fog", [0.0, 0.01])
def test_render_rgb_is_the_rgb_of_a_full_render(fog: float) -> None:
    # the closed loop's RGB-only frames skip the ground truth but not one pixel of it
    look = replace(Appearance.sample(11), fog_density=fog, rain=0.7, noise_sigma=3.0)
    ground = straight_road()
    camera = level_camera(1.5)
    objects = [car(1, 12.0, 1.75), car(2, 30.0, -1.75, yaw=180.0),
               *traffic_light_objects(7, Transform(Vector3(20.0, -5.0, 0.0),
                                                   Rotation(yaw=180.0)), "red")]
    renderer = Renderer(ground, [camera], look, place_scenery(ground, 11))
    for tick in (0, 5):
        rgb = renderer.render_rgb(Transform(), objects, tick=tick)[camera.name]
        full = renderer.render(Transform(), objects, tick=tick)[camera.name]
        assert rgb.tobytes() == full.rgb.tobytes()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_appearance_changes_rgb_but_not_labels_or_depth(seed: int) -> None:
    # everything an episode varies except vehicle body shapes, which are geometry
    look = replace(Appearance.sample(seed), vehicle_shapes=False)
    ground = straight_road()
    static = place_scenery(ground, 0)
    camera = level_camera(1.5)
    objects = [car(1, 12.0, 1.75), car(2, 30.0, -1.75, yaw=180.0),
               *traffic_light_objects(3, Transform(Vector3(40.0, 8.0, 0.0),
                                                   Rotation(yaw=180.0)), "red")]
    plain = render(ground, camera, objects, appearance=Appearance.neutral(), static=static)
    varied = render(ground, camera, objects, appearance=look, static=static, tick=3)
    assert np.array_equal(plain.labels, varied.labels)
    assert np.array_equal(plain.instances, varied.instances)
    assert np.array_equal(plain.depth, varied.depth)
    assert np.abs(plain.rgb.astype(int) - varied.rgb).mean() > 5.0


def test_vehicle_shapes_stay_inside_the_box() -> None:
    camera = level_camera(1.7)
    ground = straight_road()
    objects = [car(i + 1, 8.0 + 7.0 * i, 1.75 * (-1) ** i, yaw=10.0 * i) for i in range(5)]
    objects.append(RenderObject(9, Label.TRUCK, Transform(Vector3(20.0, -5.25, 1.6)),
                                (4.0, 1.25, 1.6)))
    look = replace(Appearance.neutral(), vehicle_shapes=True)
    plain, varied = Renderer(ground, [camera]), Renderer(ground, [camera], look)
    for obj in objects:  # one at a time: a narrower cabin in front reveals more behind
        boxed = plain.render(Transform(), [obj])["front"].instances == obj.instance_id
        shaped = varied.render(Transform(), [obj])["front"]
        inside = shaped.instances == obj.instance_id
        assert 50 < inside.sum() < boxed.sum()  # cabins are narrower than the box
        grown = boxed | np.roll(boxed, 1, 0) | np.roll(boxed, -1, 0) \
            | np.roll(boxed, 1, 1) | np.roll(boxed, -1, 1)  # fill rounding at corners
        assert not (inside & ~grown).any()
        interior = inside & np.roll(inside, 1, 0) & np.roll(inside, -1, 0) \
            & np.roll(inside, 1, 1) & np.roll(inside, -1, 1)
        pts = world_points_of(shaped, interior, Transform(), camera)
        local = world_to_ego(pts, obj.transform)
        tol = 3.0 * shaped.depth[interior] / camera.intrinsics.fx + 0.01
        assert (np.abs(local) - np.array(obj.extent) <= tol[:, None]).all()


@pytest.mark.parametrize("lamp", ["red", "yellow", "green", "off"])
def test_a_traffic_light_shows_its_lamp_towards_the_approach(lamp: str) -> None:
    camera = level_camera(1.7)
    light = traffic_light_objects(4, Transform(Vector3(15.0, 3.0, 0.0), Rotation(yaw=180.0)),
                                  lamp)
    frame = render(straight_road(), camera, light)
    head = frame.labels == Label.TRAFFIC_LIGHT
    assert head.sum() > 100
    assert (frame.instances[head] == 4).all()
    assert (frame.labels[frame.instances == 4] != Label.TRAFFIC_LIGHT).any()  # the pole
    b, g, r = (frame.rgb[head][:, k].astype(int) for k in range(3))
    lit = {"red": (r > 200) & (g < 80), "yellow": (r > 200) & (g > 150) & (b < 80),
           "green": (g > 200) & (r < 100)}
    for state, pixels in lit.items():
        assert pixels.any() == (state == lamp), state
    # from behind, no lamp shows
    back = traffic_light_objects(4, Transform(Vector3(15.0, 3.0, 0.0)), lamp)
    frame = render(straight_road(), camera, back)
    rgb = frame.rgb[frame.labels == Label.TRAFFIC_LIGHT].astype(int)
    assert (rgb.max(axis=1) < 150).all()


def test_several_cameras_render_from_their_mounts() -> None:
    front = CameraSpec("front", mount=Transform(Vector3(1.5, 0.0, 2.0)))
    rear = CameraSpec("rear", image_size_x=320, image_size_y=240, fov=100.0,
                      mount=Transform(Vector3(-2.0, 0.0, 2.0), Rotation(yaw=180.0)))
    ground = straight_road(x0=-120.0)
    behind = car(6, -15.0, 0.0)
    frames = Renderer(ground, [front, rear]).render(Transform(), [behind])
    assert set(frames) == {"front", "rear"}
    assert frames["rear"].rgb.shape == (240, 320, 3)
    assert frames["front"].labels.shape == (360, 640)
    assert (frames["rear"].instances == 6).any()
    assert not (frames["front"].instances == 6).any()


def test_scenery_is_deterministic_and_off_the_pavement() -> None:
    ground = straight_road(crossing_x=100.0)
    a, b = place_scenery(ground, 21), place_scenery(ground, 21)
    assert a == b
    assert place_scenery(ground, 22) != a
    kinds = {o.label for o in a}
    assert {Label.BUILDINGS, Label.VEGETATION, Label.POLES} <= kinds
    assert all(o.instance_id == 0 and o.color is None for o in a)
    for obj in a:
        corners = box_corners_world(obj)
        assert corners[:, 2].min() >= -1e-6  # standing on or above the ground
        col, row = ground.pixel_of(corners[:, 0], corners[:, 1])
        under = ground.labels[np.clip(np.round(row).astype(int), 0, ground.labels.shape[0] - 1),
                              np.clip(np.round(col).astype(int), 0, ground.labels.shape[1] - 1)]
        if obj.label == Label.POLES:
            assert not np.isin(under, (Label.ROADS, Label.ROAD_LINES)).any()
        else:
            assert not np.isin(under, PAVED).any(), obj
    frame = render(ground, level_camera(1.7), [], static=a)
    above = frame.labels[: int(level_camera().intrinsics.cy)]
    assert (above == Label.BUILDINGS).mean() > 0.05


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="lamp"):
        RenderObject(1, Label.CAR, Transform(), CAR, lamp="red")
    with pytest.raises(ValueError, match="lamp must be"):
        RenderObject(1, Label.TRAFFIC_LIGHT, Transform(), (0.2, 0.2, 0.5), lamp="blue")
    with pytest.raises(ValueError, match="extent"):
        RenderObject(1, Label.CAR, Transform(), (2.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="labels"):
        GroundRaster(np.zeros((4, 4), np.int32), np.zeros((4, 4, 3), np.uint8), 0, 0, 1)
    with pytest.raises(ValueError, match="fov"):
        CameraSpec("x", fov=180.0)
    with pytest.raises(ValueError, match="above the ground"):
        render(straight_road(), level_camera(-0.5), [])
    with pytest.raises(ValueError, match="unique"):
        Renderer(straight_road(), [level_camera(), level_camera()])


@pytest.mark.timeout(120)
def test_bench_quick_prints_render_figures_as_json() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--frames", "4",
                           "--rounds", "1"], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("render_fps", "render_weather_fps", "floor_fps", "render_vs_floor"):
        assert figures[key] > 0, key
    assert figures["objects_in_view"] >= 10
    assert isinstance(figures["target_met"], bool)


def test_a_scenarios_fixed_time_of_day_sets_the_sky() -> None:
    """A fixed-weather scenario's sky follows its time of day whatever the seed
    draws: a seed that draws night gave a day scenario a night sky over daylit
    streets. Sampled weather keeps each seed's look."""
    from sim.scenario import WeatherConfig
    from sim.scene import appearance_for

    def brightness(look: Appearance) -> float:
        return float(np.mean(look.sky_zenith) + np.mean(look.sky_horizon)) / 2

    night_seeds = [s for s in range(100) if brightness(Appearance.sample(s)) < 80]
    assert night_seeds  # about one seed in ten draws night
    for seed in night_seeds:
        day = appearance_for(WeatherConfig(time_of_day="day"), seed)
        assert brightness(day) > 100, seed
        assert appearance_for(WeatherConfig(sample=True), seed) == Appearance.sample(seed)
    for seed in range(20):
        assert brightness(appearance_for(WeatherConfig(time_of_day="night"), seed)) < 80
