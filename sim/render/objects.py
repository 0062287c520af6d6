"""3D boxes: what the renderer draws above the ground, and how.

Every object (vehicle, pedestrian, building, pole, tree part, traffic-light head)
is one or more oriented boxes. Per frame the boxes are taken to the camera frame,
culled against the view frustum, back faces dropped, faces clipped against the
near plane, and the faces drawn with ``cv2.fillConvexPoly`` into a face-id buffer
in painter's order (far to near, corrected by separating planes where boxes
overlap on screen). Colour, label, instance id and depth of every pixel are then
looked up from the face that won it, so all four images are pixel-aligned; depth
comes from the face's plane (1/z is affine in (u, v) on a plane), so it varies
across a face as it should.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np

from bus.frames import rotation_matrix
from bus.messages import CameraIntrinsics, Transform
from sim.labels import Label
from sim.render.appearance import LAMP_COLORS, UNLIT_LAMP, Appearance, Part
from sim.render.camera import CameraPose
from sim.render.ground import FAR_PLANE

__all__ = ["LAMP_STATES", "NEAR_PLANE", "Boxes", "FaceTable", "RenderObject", "draw_boxes"]

#: Near clipping distance (m along the optical axis), as CARLA's cameras.
NEAR_PLANE = 0.1
LAMP_STATES = ("off", "red", "yellow", "green")
#: Height of each lamp's centre on a head's +x face, as a fraction of the head's
#: half height (red at the top, green at the bottom).
LAMP_HEIGHTS: dict[str, float] = {"red": 0.62, "yellow": 0.0, "green": -0.62}

#: Corner ``c`` of a box has local coordinates ``SIGNS[c] * half`` (bits of c: x, y, z).
SIGNS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], float) * 2 - 1
#: Faces as corner indices in cyclic order: +x, -x, +y, -y, +z, -z.
FACES = np.array([[4, 6, 7, 5], [0, 1, 3, 2], [2, 3, 7, 6],
                  [0, 4, 5, 1], [1, 5, 7, 3], [0, 2, 6, 4]])
FACE_AXIS = np.array([0, 0, 1, 1, 2, 2])
FACE_SIGN = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
_SHIFT = 4  # fractional bits of the fixed-point vertices given to fillConvexPoly
_SEPARATION_TOL = 1e-4  # m: boxes this close along an axis count as separated
_OCTAGON = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)


@dataclass(frozen=True, slots=True)
class RenderObject:
    """Something to draw, as a box.

    ``transform``: world pose (CARLA frame, m, deg) of the box *centre*, as CARLA's
    ``BoundingBox`` is centred (for an actor whose origin is on the ground, the
    centre is ``extent.z`` above it). ``extent``: half sizes (m) along the box's own
    x (forward), y (right) and z (up). ``instance_id``: the actor's id, 0 for static
    background. ``label``: CARLA CityObjectLabel id. ``color``: base BGR, or None
    to let the episode's :class:`Appearance` choose. ``lamp``: for a traffic-light
    head (label 7) only, its state ('red', 'yellow', 'green' or 'off'); the three
    lamps are drawn on the head's +x face, which should face the approach it
    controls.
    """

    instance_id: int
    label: int
    transform: Transform
    extent: tuple[float, float, float]
    color: tuple[int, int, int] | None = None
    lamp: str | None = None

    def __post_init__(self) -> None:
        if min(self.extent) <= 0.0:
            raise ValueError(f"RenderObject {self.instance_id}: extent must be positive, "
                             f"got {self.extent}")
        if self.lamp is not None:
            if self.label != Label.TRAFFIC_LIGHT:
                raise ValueError(f"RenderObject {self.instance_id}: only a traffic light "
                                 f"(label 7) has a lamp, this is label {self.label}")
            if self.lamp not in LAMP_STATES:
                raise ValueError(f"RenderObject {self.instance_id}: lamp must be one of "
                                 f"{LAMP_STATES}, got {self.lamp!r}")


@dataclass(frozen=True)
class Boxes:
    """N boxes as arrays, world frame (m). ``corners`` (N, 8, 3); ``axes`` (N, 3, 3)
    whose columns are each box's local x, y, z axes; ``centre`` (N, 3); ``half``
    (N, 3) half sizes; ``label`` (N,) uint8; ``instance`` (N,) int32;
    ``face_rgb`` (N, 6, 3) float32: each face's lit BGR (faces in :data:`FACES`
    order); ``lamp`` (N,) int8: index into :data:`LAMP_STATES`, -1 without lamps;
    ``lamp_rgb`` (N, 3, 3) float32: BGR of the red, yellow and green lamps."""

    corners: np.ndarray
    axes: np.ndarray
    centre: np.ndarray
    half: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    face_rgb: np.ndarray
    lamp: np.ndarray
    lamp_rgb: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, index: np.ndarray) -> Boxes:
        return Boxes(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(a: Boxes, b: Boxes) -> Boxes:
        return Boxes(*(np.concatenate([getattr(a, f.name), getattr(b, f.name)])
                       for f in fields(a)))

    @staticmethod
    def build(objects: Sequence[RenderObject], appearance: Appearance,
              color_keys: Sequence[int] | None = None,
              looks: dict[tuple, tuple[list[Part], tuple[int, int, int]]] | None = None,
              ) -> Boxes:
        """Boxes of ``objects``, each expanded into the parts its appearance gives
        it and lit by its sun. Objects without a colour get
        ``appearance.object_color(label, key)`` with ``key`` from ``color_keys``
        (default: the instance id). ``looks`` caches (parts, colour) per (label,
        extent, key) across calls."""
        looks = {} if looks is None else looks
        rotations: dict[tuple[float, float, float], np.ndarray] = {}  # same pose, once
        rot, centre, offset, half = [], [], [], []
        label, inst, color, lamp = [], [], [], []
        for i, obj in enumerate(objects):
            r, loc = obj.transform.rotation, obj.transform.location
            r_key = (r.pitch, r.yaw, r.roll)
            matrix = rotations.get(r_key)
            if matrix is None:
                matrix = rotations[r_key] = rotation_matrix(r)
            key = obj.instance_id if color_keys is None else color_keys[i]
            look_key = (obj.label, obj.extent, key)
            look = looks.get(look_key)
            if look is None:
                look = (appearance.parts(obj.label, obj.extent, key),
                        appearance.object_color(obj.label, key))
                looks[look_key] = look
            parts, base = look
            if obj.color is not None:
                base = obj.color
            code = -1 if obj.lamp is None else LAMP_STATES.index(obj.lamp)
            for off, hs in parts:
                rot.append(matrix)
                centre.append((loc.x, loc.y, loc.z))
                offset.append(off)
                half.append(hs)
                label.append(obj.label)
                inst.append(obj.instance_id)
                color.append(base)
                lamp.append(code)
        n = len(rot)
        axes = np.array(rot).reshape(n, 3, 3)
        half_arr = np.array(half, float).reshape(n, 3)
        centres = np.array(centre).reshape(n, 3) + np.einsum(
            "nij,nj->ni", axes, np.array(offset, float).reshape(n, 3))
        corners = centres[:, None, :] + np.einsum("nij,nkj->nki", axes,
                                                  SIGNS[None] * half_arr[:, None, :])
        gain = np.asarray(appearance.gain)
        normals = (axes[:, :, FACE_AXIS] * FACE_SIGN).transpose(0, 2, 1)  # (N, 6, 3)
        shade = appearance.shade(normals)  # (N, 6)
        base_rgb = np.array(color, float).reshape(n, 3)
        face_rgb = base_rgb[:, None, :] * shade[..., None] * gain
        codes = np.array(lamp, np.int8)
        lamp_rgb = np.zeros((n, 3, 3))
        unlit = np.asarray(UNLIT_LAMP) * gain
        for k, state in enumerate(("red", "yellow", "green")):
            on = codes == LAMP_STATES.index(state)
            lamp_rgb[:, k] = np.where(on[:, None], LAMP_COLORS[state],
                                      unlit * shade[:, 0:1])  # lit lamps glow: no shading
        return Boxes(corners, axes, centres, half_arr, np.array(label, np.uint8),
                     np.array(inst, np.int32), face_rgb.astype(np.float32), codes,
                     lamp_rgb.astype(np.float32))


@dataclass(frozen=True)
class FaceTable:
    """What the face-id buffer's values mean, indexed by the value itself (entry 0
    is "no face": label 0, instance 0, plane giving depth 1): ``label`` uint8,
    ``instance`` int32, ``bgra`` uint32 (the lit BGR colour packed as the bytes of a
    BGRA pixel), ``plane`` (F, 3) float32 ``(a, b, c)`` with ``1 / z = a u + b v + c``
    at pixel (u, v), and ``z_min``, ``z_max`` float32: the depth range (m) of the
    face's (clipped) polygon, which bounds the plane's extrapolation at edge pixels
    whose centres fall just outside the polygon."""

    label: np.ndarray
    instance: np.ndarray
    bgra: np.ndarray
    plane: np.ndarray
    z_min: np.ndarray
    z_max: np.ndarray


def _frustum_planes(K: CameraIntrinsics, margin: float) -> np.ndarray:
    """Planes ``(n, d)`` (P, 4) in the camera frame, inside where ``n . p + d >= 0``:
    the near and far planes and the four sides of the image grown by ``margin`` px."""
    w, h = K.width, K.height
    return np.array([
        [0.0, 0.0, 1.0, -NEAR_PLANE],
        [0.0, 0.0, -1.0, FAR_PLANE],
        [K.fx, 0.0, K.cx + margin, 0.0],  # u >= -margin
        [-K.fx, 0.0, w + margin - K.cx, 0.0],  # u <= w + margin
        [0.0, K.fy, K.cy + margin, 0.0],
        [0.0, -K.fy, h + margin - K.cy, 0.0],
    ])


def _clip_polygon(poly: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of a convex polygon (k, 3) inside all planes."""
    if (poly @ planes[:, :3].T + planes[:, 3] >= 0.0).all():
        return poly
    for plane in planes:
        dist = poly @ plane[:3] + plane[3]
        inside = dist >= 0.0
        if inside.all():
            continue
        if not inside.any():
            return poly[:0]
        out = []
        k = len(poly)
        for i in range(k):
            j = (i + 1) % k
            if inside[i]:
                out.append(poly[i])
            if inside[i] != inside[j]:
                t = dist[i] / (dist[i] - dist[j])
                out.append(poly[i] + t * (poly[j] - poly[i]))
        poly = np.array(out)
    return poly


def _separation(pa: np.ndarray, pb: np.ndarray, axes: np.ndarray, valid: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """Separating-axis test of box pairs: corners ``pa``, ``pb`` (P, 8, 3), candidate
    unit axes (P, K, 3) of which ``valid`` (P, K) are usable. Returns ``found`` (P,)
    and ``a_first`` (P,): whether A must be drawn before B. The camera (origin)
    projects to 0 on every axis; with A below B on an axis (max A <= min B), a plane
    between them has A on one side and B on the other: if the camera is above A's
    top, A is on the far side and cannot hide B, so A is drawn first; otherwise B
    is on the far side and is drawn first."""
    proj_a = axes @ pa.transpose(0, 2, 1)  # (P, K, 8)
    proj_b = axes @ pb.transpose(0, 2, 1)
    lo_a, hi_a, lo_b, hi_b = proj_a.min(2), proj_a.max(2), proj_b.min(2), proj_b.max(2)
    a_below = (hi_a <= lo_b + _SEPARATION_TOL) & valid
    b_below = (hi_b <= lo_a + _SEPARATION_TOL) & valid & ~a_below
    separated = a_below | b_below
    k = np.argmax(separated, axis=1)
    rows = np.arange(len(k))
    low_is_a = a_below[rows, k]
    low_top = np.where(low_is_a, hi_a[rows, k], hi_b[rows, k])
    return separated[rows, k], low_is_a == (low_top < 0.0)


def _draw_order(pc: np.ndarray, axes_cam: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Painter's order (first drawn first) of M boxes with camera-frame corners
    ``pc`` (M, 8, 3), axes ``axes_cam`` (M, 3, 3) (columns: box x, y, z) and screen
    rectangles ``bbox`` (M, 4) ``(u0, v0, u1, v1)``.

    Far to near by the depth of the box centre. That is right for two boxes whose
    depth ranges do not overlap (the nearer cannot be hidden by the farther), and
    irrelevant for boxes apart on screen; the remaining pairs get a separating plane
    (the separating-axis test on the boxes' face normals, plus their edge cross
    products when the boxes' z axes differ), and the one on the camera's side is
    drawn after the other. The order is then repaired by relaxation (vectorised
    longest-path layering); intersecting boxes keep the depth order, and a cycle
    (possible with three or more boxes) is cut where the iterations stop.
    """
    m = len(pc)
    z = pc[..., 2]
    order = np.argsort(-z.mean(axis=1), kind="stable")
    if m < 2:
        return order
    z0, z1 = z.min(axis=1).astype(np.float32), z.max(axis=1).astype(np.float32)
    u0, v0, u1, v1 = np.clip(bbox, -1e30, 1e30).astype(np.float32).T
    overlap = z0[:, None] < z1[None]
    overlap &= z0[None] < z1[:, None]
    overlap &= u0[:, None] <= u1[None]
    overlap &= u0[None] <= u1[:, None]
    overlap &= v0[:, None] <= v1[None]
    overlap &= v0[None] <= v1[:, None]
    i, j = np.nonzero(overlap)  # symmetric: keep each pair once
    upper = i < j
    i, j = i[upper], j[upper]
    if i.size == 0:
        return order
    ai = axes_cam[i].transpose(0, 2, 1)  # rows: the box's axes, (P, 3, 3)
    aj = axes_cam[j].transpose(0, 2, 1)
    axes = np.concatenate([ai, aj], axis=1)
    found, i_first = _separation(pc[i], pc[j], axes, np.ones(axes.shape[:2], bool))
    # With parallel z axes the edge cross products are the face normals again.
    tilted = np.flatnonzero(~found & (np.abs((ai[:, 2] * aj[:, 2]).sum(axis=1)) < 1.0 - 1e-9))
    if tilted.size:
        cross = np.cross(ai[tilted, :, None, :], aj[tilted, None, :, :]).reshape(-1, 9, 3)
        norm = np.linalg.norm(cross, axis=2, keepdims=True)
        f2, first2 = _separation(pc[i[tilted]], pc[j[tilted]],
                                 cross / np.maximum(norm, 1e-12), norm[..., 0] > 1e-6)
        found[tilted], i_first[tilted] = f2, first2
    i, j, i_first = i[found], j[found], i_first[found]
    before, after = np.where(i_first, i, j), np.where(i_first, j, i)
    rank = np.empty(m)
    rank[order] = np.arange(m)
    priority = rank.copy()
    for _ in range(32):
        bad = priority[before] >= priority[after]
        if not bad.any():
            break
        np.maximum.at(priority, after[bad], priority[before[bad]] + 0.5)
    return np.lexsort((rank, priority))


def draw_boxes(boxes: Boxes, pose: CameraPose, K: CameraIntrinsics,
               face_ids: np.ndarray) -> FaceTable | None:
    """Draw ``boxes`` (world frame) into ``face_ids`` ((H, W) int32, zeroed by the
    caller): each pixel gets 1 + the index of the face that covers it last in
    painter's order, 0 where no box is. Returns the table the ids index, or None
    when no box is in view."""
    w, h = K.width, K.height
    cull = _frustum_planes(K, margin=1.0)
    cull /= np.linalg.norm(cull[:, :3], axis=1, keepdims=True)
    # bounding spheres first (cheap), then the corners of the boxes that survive
    centre_dist = pose.to_camera(boxes.centre) @ cull[:, :3].T + cull[:, 3]
    near = np.flatnonzero((centre_dist >= -np.linalg.norm(boxes.half, axis=1)[:, None])
                          .all(axis=1))
    if near.size == 0:
        return None
    boxes = boxes.take(near)
    pc = pose.to_camera(boxes.corners)  # (N, 8, 3)
    outside = pc @ cull[:, :3].T + cull[:, 3] < 0.0  # (N, 8, planes)
    in_view = ~outside.all(axis=1).any(axis=1)
    z = pc[..., 2]
    safe_z = np.where(z >= NEAR_PLANE, z, 1.0)
    u = K.fx * pc[..., 0] / safe_z + K.cx
    v = K.fy * pc[..., 1] / safe_z + K.cy
    in_front = (z >= NEAR_PLANE).all(axis=1)
    # a box wholly in front that spans under a pixel either way is a speck: skip it
    speck = in_front & (np.ptp(u, axis=1) < 1.0) & (np.ptp(v, axis=1) < 1.0)
    keep = np.flatnonzero(in_view & ~speck)
    if keep.size == 0:
        return None
    boxes = boxes.take(keep)
    pc, z, u, v, in_front = pc[keep], z[keep], u[keep], v[keep], in_front[keep]
    m = len(keep)

    axes_cam = pose.rotation @ boxes.axes
    normals = (axes_cam[:, :, FACE_AXIS] * FACE_SIGN).transpose(0, 2, 1)  # (M, 6, 3)
    face_pts = pc[:, FACES]  # (M, 6, 4, 3)
    d = (normals * face_pts[:, :, 0]).sum(axis=2)
    visible = d < -1e-6  # the camera is on the outer side of the face's plane
    d = np.where(visible, d, -1.0)
    nx, ny, nz = normals[..., 0], normals[..., 1], normals[..., 2]
    plane = np.stack([nx / (K.fx * d), ny / (K.fy * d),
                      (nz - nx * K.cx / K.fx - ny * K.cy / K.fy) / d], axis=-1).reshape(-1, 3)
    fz = face_pts[..., 2]
    z_range = np.stack([np.maximum(fz.min(axis=2), NEAR_PLANE), fz.max(axis=2)],
                       axis=-1).reshape(-1, 2)

    # faces needing clipping: a corner behind the near plane or far off screen
    guard = 8.0 * max(w, h)
    bad = ~((z >= NEAR_PLANE) & (np.abs(u - K.cx) < guard) & (np.abs(v - K.cy) < guard))
    needs_clip = bad[:, FACES].any(axis=2).reshape(-1)
    clip_planes = _frustum_planes(K, margin=guard)[[0, 2, 3, 4, 5]]
    fixed = np.ascontiguousarray(  # (M * 6, 4, 2); fillConvexPoly wants contiguous rows
        np.round(np.stack([np.clip(u, -1e7, 1e7), np.clip(v, -1e7, 1e7)], -1)
                 * (1 << _SHIFT)).astype(np.int32)[:, FACES].reshape(-1, 4, 2))
    bbox = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
    bbox[~in_front] = (-np.inf, -np.inf, np.inf, np.inf)
    order = _draw_order(pc, axes_cam, bbox)

    # The draw list: each box's visible faces, then its lamps. Within a box the most
    # oblique faces go first: a pixel on the edge between two faces is painted by
    # both (OpenCV's fill covers pixels within about half a pixel of the polygon)
    # and the last one wins, so it goes to the face whose plane changes least
    # across a pixel.
    centre = face_pts.mean(axis=2)
    facing = np.where(visible, -(normals * centre).sum(axis=2)
                      / np.linalg.norm(centre, axis=2), np.inf)  # cos(view, normal)
    face_order = np.argsort(facing[order], axis=1)
    box_of, rank = np.nonzero(np.take_along_axis(visible[order], face_order, axis=1))
    face_of = face_order[box_of, rank]
    box_seq = order[box_of]
    seq = (box_seq * 6 + face_of).tolist()
    polys: list[np.ndarray | None] = list(fixed[seq])
    flat_pts = face_pts.reshape(-1, 4, 3)
    for p in np.flatnonzero(needs_clip[seq]).tolist():
        poly = _clip_polygon(flat_pts[seq[p]], clip_planes)
        if len(poly) >= 3:
            z_range[seq[p]] = (max(poly[:, 2].min(), NEAR_PLANE), poly[:, 2].max())
        polys[p] = _fixed_point(poly, K) if len(poly) >= 3 else None
    lamp_boxes = np.flatnonzero((boxes.lamp >= 0) & visible[:, 0])
    lamp_face = np.zeros(0, int)
    if lamp_boxes.size:
        last = {b: p for p, b in enumerate(box_seq.tolist())}  # last face of each box
        lamp_boxes = np.array(sorted(lamp_boxes.tolist(), key=last.__getitem__))
        lamp_polys = _lamp_polygons(boxes, lamp_boxes, pose, K, clip_planes)
        lamp_face = np.repeat(lamp_boxes * 6, 3)  # a lamp is drawn on its box's +x face
        for n in reversed(range(len(lamp_boxes))):  # from the back: positions stay valid
            at = last[int(lamp_boxes[n])] + 1
            seq[at:at] = [6 * m + 3 * n + k for k in range(3)]
            polys[at:at] = lamp_polys[3 * n: 3 * n + 3]
    for pts, face in zip(polys, seq, strict=True):
        if pts is not None:
            cv2.fillConvexPoly(face_ids, pts, face + 1, cv2.LINE_8, _SHIFT)

    src = np.concatenate([np.repeat(np.arange(m), 6), lamp_face // 6])  # box of each face
    rgb = np.concatenate([boxes.face_rgb.reshape(-1, 3),
                          boxes.lamp_rgb[lamp_boxes].reshape(-1, 3)])
    plane = np.concatenate([plane, plane[lamp_face]])
    z_range = np.concatenate([z_range, z_range[lamp_face]])
    bgr = np.clip(np.round(rgb), 0.0, 255.0).astype(np.uint32)
    return FaceTable(
        label=np.concatenate([[0], boxes.label[src]]).astype(np.uint8),
        instance=np.concatenate([[0], boxes.instance[src]]).astype(np.int32),
        bgra=np.concatenate([[0], bgr[:, 0] | bgr[:, 1] << 8 | bgr[:, 2] << 16
                             | np.uint32(255) << 24]).astype(np.uint32),
        plane=np.concatenate([[(0.0, 0.0, 1.0)], plane]).astype(np.float32),
        z_min=np.concatenate([[1.0], z_range[:, 0]]).astype(np.float32),
        z_max=np.concatenate([[1.0], np.minimum(z_range[:, 1], FAR_PLANE)]).astype(np.float32),
    )


def _fixed_point(poly: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Camera-frame polygons (..., k, 3), all in front -> fixed-point pixel vertices
    (..., k, 2), C-contiguous as ``fillConvexPoly`` wants them."""
    u = K.fx * poly[..., 0] / poly[..., 2] + K.cx
    v = K.fy * poly[..., 1] / poly[..., 2] + K.cy
    return np.round(np.stack([u, v], -1) * (1 << _SHIFT)).astype(np.int32)


def lamp_radius(half_width: np.ndarray, half_height: np.ndarray) -> np.ndarray:
    """Radius (m) of the lamps on a head of this half width and half height."""
    return np.minimum(0.8 * np.asarray(half_width), 0.28 * np.asarray(half_height))


def _lamp_polygons(boxes: Boxes, which: np.ndarray, pose: CameraPose, K: CameraIntrinsics,
                   clip_planes: np.ndarray) -> list[np.ndarray | None]:
    """Fixed-point pixel octagons of the red (top), yellow and green (bottom) lamps
    on the +x face of boxes ``which``, three per box in that order (None where
    clipped away)."""
    ex, ey, ez = boxes.half[which].T
    r = lamp_radius(ey, ez)[:, None, None]
    centre_z = (np.array([LAMP_HEIGHTS[k] for k in ("red", "yellow", "green")])[None, :, None]
                * ez[:, None, None])
    local = np.stack(np.broadcast_arrays(  # (L, 3 lamps, 8 vertices, 3)
        ex[:, None, None], r * _OCTAGON[:, 0], centre_z + r * _OCTAGON[:, 1]), axis=-1)
    world = boxes.centre[which][:, None, None, :] + np.einsum(
        "lij,lkvj->lkvi", boxes.axes[which], local)
    cam = pose.to_camera(world).reshape(-1, 8, 3)
    inside = (cam @ clip_planes[:, :3].T + clip_planes[:, 3] >= 0.0).all(axis=(1, 2))
    out: list[np.ndarray | None] = [None] * len(cam)
    whole = np.flatnonzero(inside)
    for n, pts in zip(whole.tolist(), _fixed_point(cam[whole], K), strict=True):
        out[n] = pts
    for n in np.flatnonzero(~inside).tolist():
        poly = _clip_polygon(cam[n], clip_planes)
        out[n] = _fixed_point(poly, K) if len(poly) >= 3 else None
    return out
