"""The camera renderer: RGB, semantic labels, depth and instance ids, pixel-aligned.

Per frame and camera:

1. ground: the top-down :class:`GroundRaster` warped into the image with the
   ground-plane homography (``cv2.warpPerspective``: labels nearest-neighbour,
   colours bilinear), only below the highest ground row; sky above the horizon;
   ground depth is cached per camera height and tilt (a flat world: it does not
   change as the ego drives);
2. objects: static scenery (given once) and the frame's actors as boxes, drawn in
   painter's order into a face-id buffer (:mod:`sim.render.objects`), then
   resolved into colour, label, instance id and per-pixel plane depth;
3. per-frame effects (fog by depth, rain streaks, sensor noise).

:meth:`Renderer.render_rgb` gives the same colour images alone, without the work
of labels, instance ids and (without fog) depth.

Conventions: ``rgb`` is BGR (CARLA's ``raw_data`` is BGRA: this is it minus alpha);
``depth`` is metres along the camera's optical axis (CARLA's depth camera, not the
distance along the ray), :data:`FAR_PLANE` (1000 m) for sky; labels are CARLA's
CityObjectLabel ids; instance ids are the objects' ``instance_id`` (0 for the ground,
the sky and static scenery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from bus.messages import Transform
from sim.labels import Label
from sim.render.appearance import Appearance, Part, PostEffects, textured_ground_colors
from sim.render.camera import CameraPose, CameraSpec, camera_pose
from sim.render.ground import (
    GROUND_COLORS,
    GroundGeometry,
    GroundRaster,
    geometry_key,
    ground_geometry,
    image_from_raster,
)
from sim.render.objects import Boxes, FaceTable, RenderObject, draw_boxes

__all__ = ["Frame", "Renderer"]

#: Ground geometries kept per camera. One is enough on the flat ground with a level
#: ego; a few more absorb an ego that pitches or rolls without growing unbounded.
_GEOMETRY_CACHE = 8


@dataclass(frozen=True)
class Frame:
    """One camera image and its ground truth, pixel-aligned, all (H, W) or (H, W, 3):
    ``rgb`` uint8 BGR, ``labels`` uint8 CityObjectLabel ids, ``depth`` float32
    metres along the optical axis (1000 for sky), ``instances`` int32 (0: none)."""

    rgb: np.ndarray
    labels: np.ndarray
    depth: np.ndarray
    instances: np.ndarray


class _Scratch:
    """Image-sized work buffers of one camera, reused every frame: fresh temporaries
    of this size cost a page fault per 4 KiB each frame (several ms per frame on a
    VM). Results are copied out of them, never returned. ``color`` is the BGRA
    working image (four channels: OpenCV's warp and copies are much faster on them
    than on three)."""

    def __init__(self, width: int, height: int) -> None:
        shape = (height, width)
        self.color = np.empty((height, width, 4), np.uint8)
        self.face_ids = np.zeros(shape, np.int32)
        self.index = np.empty(shape, np.intp)
        self.mask = np.empty(shape, np.uint8)
        self.u8 = np.empty(shape, np.uint8)
        self.bgra = np.empty(shape, np.uint32)
        self.f1 = np.empty(shape, np.float32)
        self.f2 = np.empty(shape, np.float32)
        self.depth = np.empty(shape, np.float32)  # an RGB-only frame's depth (fog)
        self.u = np.arange(width, dtype=np.float32)
        self.v = np.arange(height, dtype=np.float32)[:, None]


@dataclass
class _CameraState:
    """What a camera keeps between frames: scratch buffers, effect banks and the
    caches that depend only on the camera (ground geometry and BGRA sky image per
    height and tilt)."""

    spec: CameraSpec
    effects: PostEffects
    scratch: _Scratch
    geometry: dict[tuple[float, ...], tuple[GroundGeometry, np.ndarray]]


class Renderer:
    """Renders frames of one world (ground raster, static scenery) for a set of
    cameras on the ego, with one episode's :class:`Appearance`.

    Construction does the per-episode work (textured ground colours, the static
    boxes, effect banks); :meth:`render` is the per-frame call. A renderer keeps
    per-camera scratch buffers: use one per thread.
    """

    def __init__(self, ground: GroundRaster, cameras: Sequence[CameraSpec],
                 appearance: Appearance | None = None,
                 static_objects: Sequence[RenderObject] = ()) -> None:
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        self.appearance = appearance if appearance is not None else Appearance.neutral()
        self.ground = ground
        colors = textured_ground_colors(ground, self.appearance)
        self._ground_bgra = cv2.cvtColor(colors, cv2.COLOR_BGR2BGRA)
        terrain = ground.labels == Label.TERRAIN
        border = (colors[terrain].mean(axis=0) if terrain.any() else
                  np.array(GROUND_COLORS[Label.TERRAIN]) * self.appearance.gain)
        # beyond the raster the world goes on as terrain
        self._border = (*(float(c) for c in np.clip(np.round(border), 0, 255)), 255.0)
        # statics are coloured by their index, so each keeps its colour for the episode
        self._looks: dict[tuple, tuple[list[Part], tuple[int, int, int]]] = {}
        self._static = Boxes.build(static_objects, self.appearance,
                                   color_keys=range(len(static_objects)))
        self._cameras = {
            c.name: _CameraState(
                spec=c,
                effects=PostEffects(self.appearance, c.image_size_x, c.image_size_y),
                scratch=_Scratch(c.image_size_x, c.image_size_y),
                geometry={},
            )
            for c in cameras
        }

    def render(self, ego: Transform, objects: Sequence[RenderObject] | Boxes = (),
               tick: int = 0) -> dict[str, Frame]:
        """Every camera's frame for the ego at world pose ``ego`` with the frame's
        dynamic ``objects`` (actors, traffic-light heads; or their :meth:`boxes`)
        besides the static scenery. ``tick`` (the sim frame) picks the per-frame
        noise, so a frame is a pure function of (appearance seed, ego pose, objects,
        tick)."""
        boxes = self._boxes(objects)
        return {name: self._render_camera(state, ego, boxes, tick)
                for name, state in self._cameras.items()}

    def render_rgb(self, ego: Transform, objects: Sequence[RenderObject] | Boxes = (),
                   tick: int = 0) -> dict[str, np.ndarray]:
        """Every camera's BGR image only, byte for byte the ``rgb`` of :meth:`render`
        with the same arguments: for a consumer that needs no ground truth (the
        closed loop's camera topics). It skips the label warp and the label and
        instance lookups, and the per-pixel depth unless the fog needs it."""
        boxes = self._boxes(objects)
        return {name: self._draw(state, ego, boxes, tick, None,
                                 state.scratch.depth if state.effects.uses_depth else None,
                                 None)
                for name, state in self._cameras.items()}

    def add_camera(self, spec: CameraSpec) -> None:
        """Add a camera after construction (a sensor spawned into a running world)."""
        if spec.name in self._cameras:
            raise ValueError(f"camera names must be unique, {spec.name!r} exists")
        self._cameras[spec.name] = _CameraState(
            spec=spec, effects=PostEffects(self.appearance, spec.image_size_x,
                                           spec.image_size_y),
            scratch=_Scratch(spec.image_size_x, spec.image_size_y), geometry={})

    def remove_camera(self, name: str) -> None:
        """Forget a camera and its buffers (a destroyed sensor)."""
        self._cameras.pop(name, None)

    def render_views(self, views: dict[str, tuple[Transform, Sequence[int]]],
                     objects: Sequence[RenderObject] | Boxes = (), tick: int = 0
                     ) -> dict[str, Frame]:
        """Frames of the named cameras, each on its own vehicle: ``views`` maps a
        camera name to (world pose of the body it is mounted on, instance ids not
        to draw for it, e.g. that body when the camera sits inside it). The boxes
        are built once for all views; otherwise as :meth:`render`."""
        boxes = self._boxes(objects)
        out = {}
        for name, (body, hidden) in views.items():
            view_boxes = boxes
            if len(hidden) and len(boxes):
                keep = ~np.isin(boxes.instance, np.asarray(hidden, np.int32))
                view_boxes = boxes.take(np.flatnonzero(keep))
            out[name] = self._render_camera(self._cameras[name], body, view_boxes, tick)
        return out

    def boxes(self, objects: Sequence[RenderObject]) -> Boxes:
        """Dynamic ``objects`` as the boxes :meth:`render` draws, in their order: a
        caller whose objects partly stay the same from frame to frame (traffic
        lights) builds those once, as building is Python work per part."""
        return Boxes.build(objects, self.appearance, looks=self._looks)

    def _boxes(self, objects: Sequence[RenderObject] | Boxes) -> Boxes:
        dynamic = objects if isinstance(objects, Boxes) else self.boxes(objects)
        return Boxes.concat(self._static, dynamic) if len(dynamic) else self._static

    # ----------------------------------------------------------------- internals

    def _geometry(self, state: _CameraState, pose: CameraPose) -> tuple[GroundGeometry,
                                                                        np.ndarray]:
        key = geometry_key(pose)
        cached = state.geometry.get(key)
        if cached is None:
            geometry = ground_geometry(state.spec.intrinsics, pose)
            t = np.sqrt(geometry.sky_elevation)[..., None]
            sky = (np.asarray(self.appearance.sky_horizon, np.float32) * (1.0 - t)
                   + np.asarray(self.appearance.sky_zenith, np.float32) * t)
            sky = cv2.cvtColor(np.round(sky).astype(np.uint8), cv2.COLOR_BGR2BGRA)
            cached = (geometry, sky)
            if len(state.geometry) >= _GEOMETRY_CACHE:  # a pitching or rolling ego
                del state.geometry[next(iter(state.geometry))]  # the oldest
            state.geometry[key] = cached
        return cached

    def _render_camera(self, state: _CameraState, ego: Transform, boxes: Boxes,
                       tick: int) -> Frame:
        """The camera's image with all its ground truth, in fresh arrays."""
        h, w = state.scratch.face_ids.shape
        labels = np.empty((h, w), np.uint8)
        depth = np.empty((h, w), np.float32)
        instances = np.zeros((h, w), np.int32)
        rgb = self._draw(state, ego, boxes, tick, labels, depth, instances)
        return Frame(rgb=rgb, labels=labels, depth=depth, instances=instances)

    def _draw(self, state: _CameraState, ego: Transform, boxes: Boxes, tick: int,
              labels: np.ndarray | None, depth: np.ndarray | None,
              instances: np.ndarray | None) -> np.ndarray:
        """Render the camera's frame and return its BGR image; fill ``labels``,
        ``depth`` and ``instances`` ((H, W), instances zeroed) where given, skip the
        work of those that are None (``depth`` is needed when the effects use it)."""
        spec, scratch = state.spec, state.scratch
        K = spec.intrinsics
        w, h = K.width, K.height
        pose = camera_pose(ego, spec.mount)
        geometry, sky = self._geometry(state, pose)
        top = geometry.top

        color = scratch.color
        if depth is not None:
            np.copyto(depth, geometry.depth)
        color[:top] = sky[:top]
        if labels is not None:
            labels[:top] = Label.SKY
        if top < h:
            # the rows [top, h) only: warp with raster <- image, offset by ``top``
            band_from_image = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
            raster_from_band = np.linalg.inv(image_from_raster(pose, K, self.ground)) \
                @ band_from_image
            flags = cv2.WARP_INVERSE_MAP
            if labels is not None:
                cv2.warpPerspective(self.ground.labels, raster_from_band, (w, h - top),
                                    dst=labels[top:], flags=flags | cv2.INTER_NEAREST,
                                    borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=int(Label.TERRAIN))
            cv2.warpPerspective(self._ground_bgra, raster_from_band, (w, h - top),
                                dst=color[top:], flags=flags | cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=self._border)
            if geometry.band_sky is not None:
                band = geometry.band_sky
                if labels is not None:
                    labels[top:][band] = Label.SKY
                color[top:][band] = sky[top:][band]

        if len(boxes):
            scratch.face_ids.fill(0)
            faces = draw_boxes(boxes, pose, K, scratch.face_ids)
            if faces is not None:
                _resolve(scratch, faces, labels, depth, instances)
        state.effects.apply(color, depth, tick)
        return cv2.cvtColor(color, cv2.COLOR_BGRA2BGR)


def _resolve(scratch: _Scratch, faces: FaceTable, labels: np.ndarray | None,
             depth: np.ndarray | None, instances: np.ndarray | None) -> None:
    """Write every object pixel's colour (into ``scratch.color``), and where given
    its label, instance id and depth, from the face that won it
    (``scratch.face_ids``), over the rows holding drawn pixels. Depth is the face
    plane's ``1 / (a u + b v + c)`` at the pixel centre, kept within the face's
    depth range. Lookups are ``take`` on the ids, masked writes ``cv2.copyTo``, all
    into reused buffers (whole rows, so every view is contiguous)."""
    drawn = cv2.compare(scratch.face_ids, 0, cv2.CMP_NE, dst=scratch.mask)
    _, y, _, h = cv2.boundingRect(drawn)
    if h == 0:
        return
    rows = slice(y, y + h)
    mask = drawn[rows]
    ids = scratch.index[rows]
    np.copyto(ids, scratch.face_ids[rows], casting="unsafe")

    def lookup(table: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.take(table, ids, out=out[rows], mode="clip")

    if labels is not None:
        cv2.copyTo(lookup(faces.label, scratch.u8), mask, labels[rows])
    if instances is not None:
        lookup(faces.instance, instances)  # id 0 -> instance 0, as around the objects
    bgra = lookup(faces.bgra, scratch.bgra).view(np.uint8).reshape(h, -1, 4)
    cv2.copyTo(bgra, mask, scratch.color[rows])
    if depth is None:
        return
    inv_z, tmp = scratch.f1[rows], scratch.f2[rows]
    plane = faces.plane
    lookup(plane[:, 0], scratch.f1)
    inv_z *= scratch.u
    lookup(plane[:, 1], scratch.f2)
    tmp *= scratch.v[rows]
    inv_z += tmp
    inv_z += lookup(plane[:, 2], scratch.f2)
    with np.errstate(divide="ignore"):
        z = np.reciprocal(inv_z, out=inv_z)  # <= 0 or inf only at edge pixels: clamped
    np.maximum(z, lookup(faces.z_min, scratch.f2), out=z)
    np.minimum(z, lookup(faces.z_max, scratch.f2), out=z)
    cv2.copyTo(z, mask, depth[rows])
