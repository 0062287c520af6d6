"""Views of a recording: a video for people, and a conversion for Foxglove.

Both read a drivestack recording (``bus.recording``) and never change it: a view is
a conversion of the recording, never the recording itself.

Video (:func:`make_video`): one frame per recorded camera frame. Left, the camera
image with the perception network's segmentation re-run on it (when weights are at
hand) and the objects of /perception/objects drawn as projected 3D boxes; right, an
ego-centred, heading-up bird's-eye view with the map, the ego's recorded path, the
planned trajectory, the perceived objects, the ground-truth actors (when
/sim/ground_truth was recorded) and the infractions of /run/events; below, a line
with the sim time, the speed and the light state. A camera frame of sim frame k is
drawn with the newest message of every other topic whose ``header.frame`` is at
most k, so the boxes and the trajectory are the ones computed from that image.

Foxglove (:func:`to_foxglove`): an MCAP file in Foxglove's schemas, written with the
``foxglove-sdk`` package (the optional extra ``drivestack[viz]``): cameras as
CompressedImage (JPEG) plus CameraCalibration, segmentations as CompressedImage
(PNG, each class in its CityScapes colour), the frame tree world -> ego ->
camera_<name> as FrameTransforms on /tf, objects and ground-truth actors as
SceneUpdate cubes, the trajectory and the map's lane edges as SceneUpdate lines,
and every other topic (ego state, control, lights, diagnostics, events) as JSON
for Foxglove's plot and raw-message panels. Log times are sim time. The
conversion is :class:`FoxgloveConverter`, message by message; ``launch.live``
(``drivestack run --live``) runs the same one on the live bus.

Frames. The recording uses CARLA's left-handed world (x, y, z up, degrees) and the
ego frame (x forward, y right, z up); see ``bus.frames``. Foxglove, like ROS,
expects right-handed frames, so the Foxglove ``world`` and ``ego`` frames are
CARLA's with y negated (y left in ``ego``: the carla-ros-bridge convention) and a
yaw to the right becomes a negative rotation about z. ``camera_<name>`` is the
OpenCV optical frame (x right, y down, z forward) that Foxglove's camera
calibration expects.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.frames import (
    FLIP_Y,
    ego_to_camera,
    project,
    quaternion_xyzw,
    right_handed_pose,
    rotation_matrix,
    transform_matrix,
    world_to_ego,
)
from bus.messages import (
    ActorState,
    CameraIntrinsics,
    DetectedObject,
    EgoState,
    GroundTruth,
    Image,
    MapData,
    ObjectList,
    Rotation,
    RunEvent,
    Segmentation,
    TrafficLightState,
    Trajectory,
    Transform,
    Vector3,
)
from bus.recording import RecordedMessage, Recording, RecordingError
from bus.schema import is_struct, struct_fields
from bus.serialization import DecodeError
from bus.topics import lookup
from perception.classes import CARLA_TO_CLASS_LUT, PALETTE
from sim.evaluation import END_KINDS, INFRACTION_KINDS
from sim.maps import LoadedMap, parse_map
from sim.maps.render import TERRAIN_RGB, MapRaster, rasterize

try:  # the optional extra drivestack[viz]; only to_foxglove needs it
    import foxglove
    from foxglove import channels as fg_channels
    from foxglove import messages as fg
    from foxglove.mcap import MCAPCompression, MCAPWriteOptions
except ImportError:  # pragma: no cover - depends on what is installed
    foxglove = None

CAMERA_PREFIX = "/sensors/camera/"
EGO = "/ego/state"
MAP = "/map/opendrive"
OBJECTS = "/perception/objects"
LIGHT = "/perception/traffic_light"
TRAJECTORY = "/planning/trajectory"
GROUND_TRUTH = "/sim/ground_truth"
EVENTS = "/run/events"
INSTALL_FOXGLOVE = "pip install 'drivestack[viz]' (or: pip install foxglove-sdk)"

# Colours (BGR) of the video.
_CLASS_BGR = {"vehicle": (0, 140, 255), "pedestrian": (60, 60, 255),
              "cyclist": (0, 220, 255), "static": (200, 200, 200), "unknown": (200, 200, 200)}
_TRUTH_BGR = (255, 0, 255)
_PATH_BGR = (255, 160, 40)
_TRAJECTORY_BGR = (80, 230, 80)
_EVENT_BGR = (0, 0, 255)
_EGO_BGR = (255, 255, 255)
_NO_MAP_BGR = (48, 48, 48)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SEG_ALPHA = 0.45
_STATUS_PX = 24  # height of the text line under the two views
_MAP_MARGIN_M = 60.0  # map drawn this far around the recorded ego path
_MAP_MAX_PX = 4096 * 4096
_NEAR_M = 0.1  # box edges are clipped to this depth in front of the camera
_BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
              (0, 4), (1, 5), (2, 6), (3, 7))


class VizError(ValueError):
    """A recording or an option the views cannot use; the message names the file or
    topic and what was expected (one line)."""


# ------------------------------------------------------------------------ reading
def open_recording(path: Path) -> Recording:
    """The recording at ``path``; VizError (one line) when it is missing or not a
    drivestack MCAP file."""
    try:
        return Recording.open(path)
    except RecordingError as exc:
        raise VizError(str(exc)) from None


def camera_topic(rec: Recording, camera: str) -> str:
    """The topic of ``camera``; VizError naming the recorded cameras when absent."""
    topic = CAMERA_PREFIX + camera
    topics = rec.topics()
    if topics.get(topic, ("", 0, 0))[2] == 0:
        cameras = sorted(t[len(CAMERA_PREFIX):] for t, (_, _, n) in topics.items()
                         if t.startswith(CAMERA_PREFIX) and n)
        have = (f"cameras recorded: {', '.join(cameras)}" if cameras
                else "no camera topic recorded")
        raise VizError(f"{rec.path}: no images on {topic} ({have})")
    return topic


def _decoded(rec: Recording, messages: Iterator[RecordedMessage]
             ) -> Iterator[tuple[RecordedMessage, Any]]:
    """Each message with its decoded object; a corrupt chunk or a message this build
    cannot decode becomes a VizError naming the file and topic."""
    try:
        for m in messages:
            try:
                yield m, m.decode()
            except DecodeError as exc:
                raise VizError(f"{rec.path}: cannot decode a message on {m.topic}: "
                               f"{exc}") from None
    except RecordingError as exc:
        raise VizError(str(exc)) from None


def _check_range(start_s: float | None, end_s: float | None) -> None:
    if start_s is not None and end_s is not None and not end_s > start_s:
        raise VizError(f"--end ({end_s:g} s) must be after --start ({start_s:g} s)")


def _in_range(stamp: float, start_s: float | None, end_s: float | None) -> bool:
    return (start_s is None or stamp >= start_s) and (end_s is None or stamp < end_s)


def _check_output(output: Path, recording: Path) -> None:
    if not output.parent.is_dir():
        raise VizError(f"cannot write {output}: no directory {output.parent}")
    if output.exists() and output.resolve() == recording.resolve():
        raise VizError(f"{output} is the recording itself: write the view to another file")


# ---------------------------------------------------------------- camera drawing
def overlay_segmentation(bgr: np.ndarray, seg: np.ndarray, palette: np.ndarray,
                         alpha: float = _SEG_ALPHA) -> np.ndarray:
    """``bgr`` (H x W x 3 uint8) with the class colours of ``seg`` (h x w class ids,
    the node's segmentation at the network's input size, scaled up
    nearest-neighbour) blended in at
    ``alpha``; class 0 (background) is left uncoloured. ``palette``: C x 3 BGR."""
    h, w = bgr.shape[:2]
    labels = cv2.resize(seg, (w, h), interpolation=cv2.INTER_NEAREST)
    colours = palette[np.clip(labels, 0, len(palette) - 1)]
    blended = cv2.addWeighted(bgr, 1.0 - alpha, colours, alpha, 0.0)
    return np.where((labels != 0)[..., None], blended, bgr)


def box_corners_ego(obj: DetectedObject) -> np.ndarray:
    """The 8 corners (m, ego frame) of a detected object's box: the bottom face at
    the object's (+x, +y), (+x, -y), (-x, -y), (-x, +y) (x along its heading, y to
    its right), then the top face in the same order. ``yaw`` (deg) turns the box
    from ego +x towards ego +y, CARLA's sign."""
    half = np.array([obj.size.x, obj.size.y, obj.size.z]) / 2.0
    signs = np.array([(sx, sy, sz) for sz in (-1, 1)
                      for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1))], float)
    r = rotation_matrix(Rotation(yaw=obj.yaw))
    return (signs * half) @ r.T + (obj.position.x, obj.position.y, obj.position.z)


def box_edges_pixels(corners_ego: np.ndarray, image: Image) -> list[np.ndarray]:
    """The box's 12 edges as 2 x 2 pixel segments ((u, v) rows) in ``image``,
    clipped to the part in front of the camera (deeper than 0.1 m); an edge wholly
    behind it is left out. Corners: ego frame (m), as :func:`box_corners_ego`."""
    cam = ego_to_camera(corners_ego, image.mount)
    segments = []
    for a, b in _BOX_EDGES:
        p, q = cam[a].copy(), cam[b].copy()
        if p[2] < _NEAR_M and q[2] < _NEAR_M:
            continue
        if p[2] < _NEAR_M:
            p = p + (q - p) * (_NEAR_M - p[2]) / (q[2] - p[2])
        elif q[2] < _NEAR_M:
            q = q + (p - q) * (_NEAR_M - q[2]) / (p[2] - q[2])
        segments.append(project(np.stack([p, q]), image.intrinsics)[0])
    return segments


def camera_panel(image: Image, objects: ObjectList | None, seg: np.ndarray | None,
                 palette: np.ndarray | None) -> np.ndarray:
    """The camera view: the image (BGR), the segmentation overlay when ``seg`` is
    given, and each object of ``objects`` as a projected 3D box labelled with its
    track id and class."""
    bgr = image.data if image.encoding == "bgr8" else cv2.cvtColor(image.data,
                                                                   cv2.COLOR_RGB2BGR)
    img = np.ascontiguousarray(bgr).copy()
    if seg is not None and palette is not None:
        img = overlay_segmentation(img, seg, palette)
    for obj in objects.objects if objects is not None else ():
        colour = _CLASS_BGR[obj.label]
        segments = box_edges_pixels(box_corners_ego(obj), image)
        for seg_px in segments:
            (u0, v0), (u1, v1) = np.round(seg_px).astype(int)
            cv2.line(img, (u0, v0), (u1, v1), colour, 1, cv2.LINE_AA)
        if segments:
            pts = np.concatenate(segments)
            top = pts[np.argmin(pts[:, 1])]
            cv2.putText(img, f"#{obj.track_id} {obj.label}", (int(top[0]), int(top[1]) - 3),
                        _FONT, 0.4, colour, 1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------ bird's-eye view
def actor_footprint_world(actor: ActorState) -> np.ndarray:
    """The 4 bottom corners (m, world frame) of a ground-truth actor's bounding box
    (its ``bounding_box`` is relative to the actor's transform)."""
    bb = actor.bounding_box
    m = transform_matrix(actor.transform) @ transform_matrix(Transform(bb.location,
                                                                       bb.rotation))
    e = bb.extent
    local = np.array([(e.x, e.y, -e.z), (e.x, -e.y, -e.z), (-e.x, -e.y, -e.z),
                      (-e.x, e.y, -e.z)])
    return local @ m[:3, :3].T + m[:3, 3]


@dataclass
class BevView:
    """An ego-centred, heading-up bird's-eye view, ``side`` pixels square over
    ``view_m`` metres: the ego at the centre, its x (forward) up and its y (right) to
    the right, which is the unmirrored view from above of CARLA's left-handed world.
    Only the ego's yaw turns the view (pitch and roll are ignored: a map view).
    ``raster``: the map around the drive (``sim.maps.render``), or None."""

    side: int
    view_m: float = 60.0
    raster: MapRaster | None = None
    _map_bgr: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.raster is not None:
            self._map_bgr = cv2.cvtColor(self.raster.color, cv2.COLOR_RGB2BGR)

    @property
    def px_per_m(self) -> float:
        return self.side / self.view_m

    def ego_to_pixels(self, xy_ego: np.ndarray) -> np.ndarray:
        """N x 2 ego-frame points (x forward, y right; m) -> N x 2 pixels (u, v)."""
        xy = np.asarray(xy_ego, float).reshape(-1, 2)
        c = self.side / 2.0
        return np.column_stack([c + xy[:, 1] * self.px_per_m, c - xy[:, 0] * self.px_per_m])

    def world_to_pixels(self, xy_world: np.ndarray, ego: Transform) -> np.ndarray:
        """N x 2 world points (m; z taken at the ego's height) -> N x 2 pixels."""
        xy = np.asarray(xy_world, float).reshape(-1, 2)
        flat = Transform(ego.location, Rotation(yaw=ego.rotation.yaw))
        pts = np.column_stack([xy, np.full(len(xy), ego.location.z)])
        return self.ego_to_pixels(world_to_ego(pts, flat)[:, :2])

    def background(self, ego: Transform) -> np.ndarray:
        """The map turned and cropped around ``ego`` (plain grey without a map)."""
        if self._map_bgr is None or self.raster is None:
            return np.full((self.side, self.side, 3), _NO_MAP_BGR, np.uint8)
        yaw = math.radians(ego.rotation.yaw)
        cy, sy, k, c = math.cos(yaw), math.sin(yaw), self.px_per_m, self.side / 2.0
        ex, ey = ego.location.x, ego.location.y
        # world (x, y) -> view pixel; the ego frame's x = d . forward, y = d . right
        world_to_view = np.array([[-k * sy, k * cy, c + k * (sy * ex - cy * ey)],
                                  [-k * cy, -k * sy, c + k * (cy * ex + sy * ey)],
                                  [0.0, 0.0, 1.0]])
        m = world_to_view @ self.raster.pixel_to_world
        terrain = tuple(int(v) for v in TERRAIN_RGB[::-1])
        return cv2.warpAffine(self._map_bgr, m[:2], (self.side, self.side),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=terrain)

    def render(self, state: FrameState) -> np.ndarray:
        """The view of one frame; without an ego state, only a note saying so."""
        if state.ego is None:
            img = np.full((self.side, self.side, 3), _NO_MAP_BGR, np.uint8)
            cv2.putText(img, f"no {EGO}", (8, 20), _FONT, 0.45, _EGO_BGR, 1, cv2.LINE_AA)
            return img
        ego = state.ego.transform
        img = self.background(ego)
        if len(state.path) > 1:
            _polyline(img, self.world_to_pixels(state.path, ego), _PATH_BGR, 2)
        if state.trajectory is not None and len(state.trajectory.poses) > 1:
            _polyline(img, self.world_to_pixels(state.trajectory.poses[:, :2], ego),
                      _TRAJECTORY_BGR, 2)
        if state.ground_truth is not None:
            for actor in state.ground_truth.actors:
                corners = self.world_to_pixels(actor_footprint_world(actor)[:, :2], ego)
                _polyline(img, corners, _TRUTH_BGR, 1, closed=True)
        for obj in state.objects.objects if state.objects is not None else ():
            px = self.ego_to_pixels(box_corners_ego(obj)[:4, :2])
            colour = _CLASS_BGR[obj.label]
            _polyline(img, px, colour, 2, closed=True)
            u, v = px.mean(axis=0)
            cv2.putText(img, str(obj.track_id), (int(u) + 6, int(v) - 6), _FONT, 0.4, colour,
                        1, cv2.LINE_AA)
        for event in state.events:
            if event.kind in INFRACTION_KINDS:
                loc = event.location
                (u, v), = np.round(self.world_to_pixels([[loc.x, loc.y]], ego)).astype(int)
                cv2.circle(img, (u, v), 6, _EVENT_BGR, 2, cv2.LINE_AA)
                cv2.putText(img, event.kind, (u + 8, v + 4), _FONT, 0.4, _EVENT_BGR, 1,
                            cv2.LINE_AA)
        c, s = self.side / 2.0, max(4.0, 1.0 * self.px_per_m)  # the ego: a 2 m arrowhead
        tri = np.array([(c, c - 2 * s), (c - s, c + s), (c + s, c + s)])
        cv2.fillPoly(img, [np.round(tri).astype(np.int32)], _EGO_BGR, cv2.LINE_AA)
        bar = round(10 * self.px_per_m)  # a 10 m scale bar
        cv2.line(img, (8, self.side - 10), (8 + bar, self.side - 10), _EGO_BGR, 2)
        cv2.putText(img, "10 m", (8, self.side - 16), _FONT, 0.4, _EGO_BGR, 1, cv2.LINE_AA)
        return img


def _polyline(img: np.ndarray, px: np.ndarray, colour: tuple[int, int, int], thickness: int,
              closed: bool = False) -> None:
    pts = np.round(np.clip(px, -1e5, 1e5)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [pts], closed, colour, thickness, cv2.LINE_AA)


def map_raster(loaded: LoadedMap, around_xy: np.ndarray,
               margin_m: float = _MAP_MARGIN_M) -> MapRaster:
    """The map rasterised over the box around ``around_xy`` (N x 2 world m, the
    recorded ego path) plus ``margin_m``: the finest of 0.2 .. 2 m/px that fits
    4096 x 4096 px, so a long drive on a large map stays affordable."""
    lo = around_xy.min(axis=0) - margin_m
    hi = around_xy.max(axis=0) + margin_m
    area = float(np.prod(hi - lo))
    res = next((r for r in (0.2, 0.25, 0.5, 1.0) if area / r**2 <= _MAP_MAX_PX), 2.0)
    return rasterize(loaded, res, bounds=(float(lo[0]), float(lo[1]), float(hi[0]),
                                          float(hi[1])), max_pixels=_MAP_MAX_PX * 4)


# --------------------------------------------------------------------- one frame
@dataclass
class FrameState:
    """What the video shows at one camera frame: the image, and the newest message
    of each other topic whose ``header.frame`` is at most the image's (None when
    there is none); ``events`` every RunEvent up to that frame; ``path`` the ego's
    recorded positions so far, N x 2 world (m)."""

    image: Image
    ego: EgoState | None = None
    objects: ObjectList | None = None
    trajectory: Trajectory | None = None
    ground_truth: GroundTruth | None = None
    light: TrafficLightState | None = None
    events: list[RunEvent] = field(default_factory=list)
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def status_text(state: FrameState) -> str:
    """The line under the views: sim time and frame, speed (km/h) and limit, the
    perceived light, object count, infractions and the end reason when reached."""
    h = state.image.header
    parts = [f"t {h.stamp:6.2f} s", f"frame {h.frame}"]
    if state.ego is not None:
        limit = state.ego.speed_limit
        parts.append(f"speed {state.ego.speed * 3.6:5.1f} km/h"
                     + (f" (limit {limit * 3.6:.0f})" if limit > 0 else ""))
    if state.light is not None:
        light = state.light
        parts.append(f"light {light.state}"
                     + (f" in {light.distance:.0f} m" if light.distance >= 0 else ""))
    if state.objects is not None:
        parts.append(f"{len(state.objects.objects)} objects ({state.objects.source})")
    infractions = sum(e.kind in INFRACTION_KINDS for e in state.events)
    if infractions:
        parts.append(f"{infractions} infractions")
    ends = [e.kind for e in state.events if e.kind in END_KINDS]
    if ends:
        parts.append(f"end: {ends[0]}")
    return "   ".join(parts)


def render_frame(state: FrameState, bev: BevView, seg: np.ndarray | None = None,
                 palette: np.ndarray | None = None) -> np.ndarray:
    """One video frame (BGR): the camera panel left, the bird's-eye view right (as
    tall as the camera image), the status line below; width and height even (the
    MPEG-4 encoder needs them so)."""
    cam = camera_panel(state.image, state.objects, seg, palette)
    view = bev.render(state)
    h, w = cam.shape[:2]
    height, width = max(h, bev.side) + _STATUS_PX, w + bev.side
    out = np.zeros((height + height % 2, width + width % 2, 3), np.uint8)
    out[:h, :w] = cam
    out[:bev.side, w:w + bev.side] = view
    cv2.putText(out, status_text(state), (6, height - 7), _FONT, 0.45, _EGO_BGR, 1,
                cv2.LINE_AA)
    return out


# ------------------------------------------------------------------------ video
@dataclass(frozen=True)
class VideoOptions:
    """``drivestack viz -o``: ``recording`` to ``output`` (mp4); ``fps`` None plays
    at the recorded camera rate; ``weights`` None takes the shipped weights when
    present; ``start_s``/``end_s`` bound the camera frames drawn (sim s, [start,
    end)); ``view_m`` the bird's-eye view's side (m)."""

    recording: Path
    output: Path
    camera: str = "front"
    fps: float | None = None
    weights: Path | None = None
    segmentation: bool = True
    start_s: float | None = None
    end_s: float | None = None
    view_m: float = 60.0


@dataclass(frozen=True)
class VideoResult:
    """What was written: ``frames`` frames of ``width`` x ``height`` px at ``fps``;
    ``segmentation`` the weights file of the overlay, or why there is none."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    segmentation: str


@dataclass
class Segmenter:
    """The perception network run on recorded images, and its class colours (BGR)."""

    predictor: Any  # perception.inference.PredictorBase (torch imported only if used)
    palette: np.ndarray

    def labels(self, image: Image) -> np.ndarray:
        """Class ids at the network's input size (the node's segmentation)."""
        return self.predictor.predict(image.data, image.encoding)["segmentation"]


def load_segmenter(weights: Path | None, enabled: bool) -> tuple[Segmenter | None, str]:
    """The network for the overlay and a note for the user: ``weights`` (must
    exist), else the shipped weights when present, else none (not an error: a
    checkout that has not trained yet still gets its video)."""
    if not enabled:
        return None, "off (--no-segmentation)"
    from perception.inference import DEFAULT_WEIGHTS

    path = weights if weights is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        if weights is not None:
            raise VizError(f"weights file {path} not found")
        return None, (f"none: no shipped weights at {path} (train them, or pass "
                      "--weights W)")
    from perception.inference import WeightsError, load_weights, make_predictor, select_device

    try:
        model, info = load_weights(path)
        predictor = make_predictor(model, bool(info.get("light_trained")),
                                   select_device("auto"), source=path.name)
    except WeightsError as exc:
        raise VizError(str(exc)) from None
    return Segmenter(predictor, PALETTE), str(path)


@dataclass
class _Scan:
    """A first pass over the recording: the drawn camera frames' stamps, the sim
    time span of all its camera frames, the ego path (world xy) and the map, all
    needed before the first frame is drawn."""

    stamps: list[float]
    span: tuple[float, float]
    ego_xy: np.ndarray
    map: MapData | None


def _scan(rec: Recording, topic: str, opts: VideoOptions) -> _Scan:
    stamps: list[float] = []
    span = (math.inf, -math.inf)
    xy: list[tuple[float, float]] = []
    map_msg: MapData | None = None
    for m, msg in _decoded(rec, rec.messages(topics=[topic, EGO, MAP])):
        if m.topic == topic:
            span = (min(span[0], msg.header.stamp), max(span[1], msg.header.stamp))
            if _in_range(msg.header.stamp, opts.start_s, opts.end_s):
                stamps.append(msg.header.stamp)
        elif m.topic == EGO:
            xy.append((msg.transform.location.x, msg.transform.location.y))
        elif m.topic == MAP and map_msg is None:
            map_msg = msg
    return _Scan(stamps, span, np.array(xy, float).reshape(-1, 2), map_msg)


def frame_states(rec: Recording, topic: str, start_s: float | None = None,
                 end_s: float | None = None) -> Iterator[FrameState]:
    """The state of every camera frame on ``topic`` with ``start_s <= stamp <
    end_s``, in order. A frame is complete once the next image is recorded (every
    node has answered that frame by then in lockstep) or the recording ends."""
    history: dict[str, deque[Any]] = {t: deque(maxlen=64) for t in
                                      (EGO, OBJECTS, TRAJECTORY, GROUND_TRUTH, LIGHT)}
    events: list[RunEvent] = []
    path_frames: list[int] = []
    path_xy: list[tuple[float, float]] = []

    def newest(t: str, frame: int) -> Any:
        return next((m for m in reversed(history[t]) if m.header.frame <= frame), None)

    def state(image: Image) -> FrameState:
        k = image.header.frame
        n = bisect_right(path_frames, k)
        return FrameState(image, newest(EGO, k), newest(OBJECTS, k), newest(TRAJECTORY, k),
                          newest(GROUND_TRUTH, k), newest(LIGHT, k),
                          [e for e in events if e.header.frame <= k],
                          np.array(path_xy[:n], float).reshape(-1, 2))

    pending: Image | None = None
    topics = [topic, EVENTS, *history]
    for m, msg in _decoded(rec, rec.messages(topics=topics)):
        if m.topic == topic:
            if pending is not None:
                yield state(pending)
                pending = None
            if end_s is not None and msg.header.stamp >= end_s:
                return
            if _in_range(msg.header.stamp, start_s, end_s):
                pending = msg
        elif m.topic == EVENTS:
            events.append(msg)
        else:
            history[m.topic].append(msg)
            if m.topic == EGO:
                path_frames.append(msg.header.frame)
                path_xy.append((msg.transform.location.x, msg.transform.location.y))
    if pending is not None:
        yield state(pending)


def make_video(opts: VideoOptions, progress: bool = True,
               log: Callable[[str], None] = print) -> VideoResult:
    """Write the video of ``opts.recording`` (see the module doc). It is written
    beside ``opts.output`` as <stem>.partial<suffix>, read back to check its frame
    count and size, then renamed: a failed run leaves no half video. VizError on
    bad input."""
    _check_range(opts.start_s, opts.end_s)
    if opts.fps is not None and not opts.fps > 0:
        raise VizError(f"--fps must be > 0, not {opts.fps:g}")
    _check_output(opts.output, opts.recording)
    with open_recording(opts.recording) as rec:
        topic = camera_topic(rec, opts.camera)
        scan = _scan(rec, topic, opts)
        if not scan.stamps:
            raise VizError(f"{rec.path}: no images on {topic} in --start/--end "
                           f"(its images span {scan.span[0]:g} .. {scan.span[1]:g} s)")
        fps = opts.fps or _camera_rate(scan.stamps, topic)
        segmenter, note = load_segmenter(opts.weights, opts.segmentation)
        log(f"segmentation overlay: {note}")
        raster = None
        if scan.map is not None and len(scan.ego_xy):
            loaded = parse_map(scan.map.opendrive, scan.map.name or "map",
                               source=f"{rec.path} {MAP}")
            raster = map_raster(loaded, scan.ego_xy)
        tmp = opts.output.with_name(f"{opts.output.stem}.partial{opts.output.suffix}")
        try:
            with _Encoder(tmp, fps) as encoder:
                _draw(rec, topic, opts, raster, segmenter, encoder, len(scan.stamps),
                      progress)
            _check_video(tmp, encoder.frames, encoder.size)
            tmp.replace(opts.output)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return VideoResult(opts.output, encoder.frames, *encoder.size, fps, note)


class _Encoder:
    """An MPEG-4 (mp4v) file opened at the first frame, whose size it takes."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.size = (0, 0)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.release()

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, self.size)
            if not self._writer.isOpened():
                raise VizError(f"cannot write {self.path}: OpenCV has no MPEG-4 (mp4v) "
                               "writer for it")
        if (frame.shape[1], frame.shape[0]) != self.size:  # the image size changed
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1


def _draw(rec: Recording, topic: str, opts: VideoOptions, raster: MapRaster | None,
          segmenter: Segmenter | None, encoder: _Encoder, total: int,
          progress: bool) -> None:
    """Render every camera frame in the window into ``encoder``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bev: BevView | None = None
    with Progress(TextColumn("viz"), BarColumn(), MofNCompleteColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("viz", total=total)
        for state in frame_states(rec, topic, opts.start_s, opts.end_s):
            if bev is None:  # as tall as the first image
                bev = BevView(state.image.data.shape[0], opts.view_m, raster)
            if segmenter is None:
                encoder.write(render_frame(state, bev))
            else:
                encoder.write(render_frame(state, bev, segmenter.labels(state.image),
                                           segmenter.palette))
            bar.advance(task)


def _camera_rate(stamps: Sequence[float], topic: str) -> float:
    """Frames per second of the recorded camera (median period), else the topic
    table's nominal rate."""
    periods = np.diff(np.asarray(stamps))
    periods = periods[periods > 0]
    return float(1.0 / np.median(periods)) if len(periods) else float(lookup(topic).rate_hz)


def _check_video(path: Path, frames: int, size: tuple[int, int]) -> None:
    cap = cv2.VideoCapture(str(path))
    try:
        got = (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
               int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if got != (frames, *size):
        raise VizError(f"{path}: the written video reads back as {got[0]} frames of "
                       f"{got[1]} x {got[2]} px, expected {frames} of {size[0]} x {size[1]}")


# ----------------------------------------------------------------------- Foxglove
WORLD_FRAME = "world"
EGO_FRAME = "ego"
_TF_TOPIC = "/tf"
MAP_SCENE_TOPIC = "/map"  # the map's lane edges (SceneUpdate)
_JPEG_QUALITY = 90
#: Topics given a Foxglove schema; every other one goes out as JSON. EgoState
#: becomes world -> ego on /tf and JSON (speed, control) on its own topic.
_CONVERTED = frozenset({"Image", "ObjectList", "GroundTruth", "Trajectory", "MapData",
                        "Segmentation"})


def _fg_pose(translation: np.ndarray, rotation: np.ndarray) -> Any:
    x, y, z, w = quaternion_xyzw(rotation)
    return fg.Pose(position=fg.Vector3(x=float(translation[0]), y=float(translation[1]),
                                       z=float(translation[2])),
                   orientation=fg.Quaternion(x=x, y=y, z=z, w=w))


def _fg_time(stamp: float) -> Any:
    sec = math.floor(stamp)
    return fg.Timestamp(int(sec), min(999_999_999, round((stamp - sec) * 1e9)))


def _fg_transform(stamp: float, parent: str, child: str, translation: np.ndarray,
                  rotation: np.ndarray) -> Any:
    x, y, z, w = quaternion_xyzw(rotation)
    return fg.FrameTransform(
        timestamp=_fg_time(stamp), parent_frame_id=parent, child_frame_id=child,
        translation=fg.Vector3(x=float(translation[0]), y=float(translation[1]),
                               z=float(translation[2])),
        rotation=fg.Quaternion(x=x, y=y, z=z, w=w))


def _fg_color(bgr: tuple[int, int, int], alpha: float) -> Any:
    b, g, r = bgr
    return fg.Color(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=alpha)


def fg_ego_transform(ego: EgoState) -> Any:
    """world -> ego of an ego state (FrameTransform)."""
    t, r = right_handed_pose(transform_matrix(ego.transform))
    return _fg_transform(ego.header.stamp, WORLD_FRAME, EGO_FRAME, t, r)


def fg_camera_transform(image: Image) -> Any:
    """ego -> camera_<name> of a camera image's mount (FrameTransform)."""
    t, r = right_handed_pose(transform_matrix(image.mount), optical_child=True)
    return _fg_transform(image.header.stamp, EGO_FRAME, f"camera_{image.camera}", t, r)


def fg_image(image: Image) -> Any:
    """A camera image as a JPEG CompressedImage in its optical frame."""
    bgr = image.data if image.encoding == "bgr8" else cv2.cvtColor(image.data,
                                                                   cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise VizError(f"OpenCV could not encode the {image.camera} image of frame "
                       f"{image.header.frame} as JPEG")
    return fg.CompressedImage(timestamp=_fg_time(image.header.stamp),
                              frame_id=f"camera_{image.camera}", data=jpeg.tobytes(),
                              format="jpeg")


def segmentation_png(seg: Segmentation) -> bytes:
    """A segmentation as PNG bytes, each class in its CityScapes colour."""
    ok, png = cv2.imencode(".png", PALETTE[CARLA_TO_CLASS_LUT[seg.labels]])
    if not ok:
        raise VizError(f"OpenCV could not encode the {seg.camera} segmentation of frame "
                       f"{seg.header.frame} as PNG")
    return png.tobytes()


def fg_segmentation(seg: Segmentation) -> Any:
    """A segmentation as a PNG CompressedImage in its camera's optical frame (a
    viewer draws it over the camera image, scaled to it)."""
    return fg.CompressedImage(timestamp=_fg_time(seg.header.stamp),
                              frame_id=f"camera_{seg.camera}", data=segmentation_png(seg),
                              format="png")


def fg_calibration(image: Image) -> Any:
    """The image's pinhole intrinsics (no distortion) as CameraCalibration."""
    k: CameraIntrinsics = image.intrinsics
    return fg.CameraCalibration(
        timestamp=_fg_time(image.header.stamp), frame_id=f"camera_{image.camera}",
        width=k.width, height=k.height, distortion_model="plumb_bob", D=[0.0] * 5,
        K=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
        R=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        P=[k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0])


def _fg_cube_entity(entity_id: str, stamp: float, frame: str,
                    boxes: Sequence[tuple[np.ndarray, np.ndarray, Vector3, str]],
                    bgr: Sequence[tuple[int, int, int]], alpha: float) -> Any:
    """One entity of cubes (pose translation, rotation, size) each labelled."""
    cubes, texts = [], []
    for (t, r, size, label), colour in zip(boxes, bgr, strict=True):
        pose = _fg_pose(t, r)
        cubes.append(fg.CubePrimitive(pose=pose, size=fg.Vector3(x=size.x, y=size.y,
                                                                 z=size.z),
                                      color=_fg_color(colour, alpha)))
        top = _fg_pose(t + np.array([0.0, 0.0, size.z / 2 + 0.5]), np.eye(3))
        texts.append(fg.TextPrimitive(pose=top, billboard=True, font_size=14.0,
                                      scale_invariant=True, color=_fg_color(colour, 1.0),
                                      text=label))
    return fg.SceneUpdate(entities=[fg.SceneEntity(
        timestamp=_fg_time(stamp), frame_id=frame, id=entity_id, cubes=cubes, texts=texts)])


def fg_objects(objects: ObjectList) -> Any:
    """Perceived objects as cubes in the ego frame (one entity, replaced each frame)."""
    boxes = []
    for o in objects.objects:
        t = FLIP_Y @ np.array([o.position.x, o.position.y, o.position.z])
        r = FLIP_Y @ rotation_matrix(Rotation(yaw=o.yaw)) @ FLIP_Y
        boxes.append((t, r, o.size, f"#{o.track_id} {o.label}"))
    return _fg_cube_entity("objects", objects.header.stamp, EGO_FRAME, boxes,
                           [_CLASS_BGR[o.label] for o in objects.objects], 0.5)


def fg_ground_truth(truth: GroundTruth) -> Any:
    """Ground-truth actors as cubes in the world frame (one entity per message)."""
    boxes = []
    for a in truth.actors:
        bb = a.bounding_box
        m = transform_matrix(a.transform) @ transform_matrix(Transform(bb.location,
                                                                       bb.rotation))
        t, r = right_handed_pose(m)
        size = Vector3(2 * bb.extent.x, 2 * bb.extent.y, 2 * bb.extent.z)
        boxes.append((t, r, size, f"{a.id} {a.type_id}"))
    return _fg_cube_entity("actors", truth.header.stamp, WORLD_FRAME, boxes,
                           [_TRUTH_BGR] * len(boxes), 0.3)


def _fg_lines(entity_id: str, stamp: float, points: np.ndarray, line_type: Any,
              bgr: tuple[int, int, int], thickness: float) -> Any:
    """One entity of a line in the world frame; ``points`` N x 3 CARLA world (m)."""
    pts = [fg.Point3(x=float(x), y=float(-y), z=float(z)) for x, y, z in points]
    line = fg.LinePrimitive(type=line_type, thickness=thickness, points=pts,
                            color=_fg_color(bgr, 1.0))
    return fg.SceneUpdate(entities=[fg.SceneEntity(
        timestamp=_fg_time(stamp), frame_id=WORLD_FRAME, id=entity_id, lines=[line])])


def fg_trajectory(trajectory: Trajectory, z: float) -> Any:
    """The planned path as a line strip in the world frame at height ``z`` (m)."""
    pts = np.column_stack([trajectory.poses[:, :2], np.full(len(trajectory.poses), z)])
    return _fg_lines("trajectory", trajectory.header.stamp, pts,
                     fg.LinePrimitiveLineType.LineStrip, _TRAJECTORY_BGR, 0.3)


def lane_edges(loaded: LoadedMap, step_m: float = 2.0) -> np.ndarray:
    """The edges of every driving lane as M x 2 x 3 segments (world m), from
    ``carla.Map`` waypoints every ``step_m`` and their successors."""
    segments = []
    for wp in loaded.map.generate_waypoints(step_m):
        for nxt in wp.next(step_m):
            for side in (-1.0, 1.0):
                ends = []
                for w in (wp, nxt):
                    loc, yaw = w.transform.location, math.radians(w.transform.rotation.yaw)
                    half = side * w.lane_width / 2
                    ends.append((loc.x - math.sin(yaw) * half, loc.y + math.cos(yaw) * half,
                                 loc.z))
                segments.append(ends)
    return np.array(segments, float).reshape(-1, 2, 3)


def fg_map(map_msg: MapData, source: str) -> Any:
    """The map's lane edges as one line list in the world frame."""
    loaded = parse_map(map_msg.opendrive, map_msg.name or "map", source=source)
    return _fg_lines("lanes", map_msg.header.stamp, lane_edges(loaded).reshape(-1, 3),
                     fg.LinePrimitiveLineType.LineList, (200, 200, 200), 0.15)


def plain(value: Any) -> Any:
    """A message as JSON-ready values: structs as dicts, arrays as lists, non-finite
    floats as None (JSON has no NaN)."""
    if is_struct(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in struct_fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class FoxgloveResult:
    """What was written: per output topic, its schema name and message count."""

    path: Path
    topics: dict[str, tuple[str, int]]

    @property
    def messages(self) -> int:
        return sum(n for _, n in self.topics.values())


class FoxgloveOut:
    """The Foxglove channels of one output (an MCAP file, or a live WebSocket server),
    made on first use in that output's own context (so nothing else logged in this
    process reaches it), with a count of the messages logged on each."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.channels: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def log(self, topic: str, make: Callable[..., Any], message: Any, log_ns: int) -> None:
        """Log ``message`` on ``topic``; ``make(topic, context=...)`` makes its
        channel (a foxglove.channels class, or a JSON channel factory)."""
        ch = self.channels.get(topic)
        if ch is None:
            ch = self.channels[topic] = make(topic, context=self.context)
        ch.log(message, log_time=log_ns)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    @staticmethod
    def json_channel(name: str) -> Callable[..., Any]:
        """A factory of JSON channels whose schema is named after message ``name``."""

        def make(topic: str, context: Any) -> Any:
            schema = foxglove.Schema(name=f"drivestack.{name}", encoding="jsonschema",
                                     data=json.dumps({"title": name, "type": "object"}).encode())
            return foxglove.Channel(topic, schema=schema, message_encoding="json",
                                    context=context)

        return make


@dataclass
class FoxgloveConverter:
    """Decoded drivestack messages to Foxglove's schemas, one message at a time,
    logged to ``out`` (see the module doc for what each message becomes). The one
    conversion behind both views in Foxglove: :func:`to_foxglove` (a recording to
    a file) and ``launch.live`` (the running bus to a WebSocket server).

    Log times are sim time: ``clock``, the highest ``header.stamp`` seen so far
    (:meth:`advance`), so messages stamped with sim time keep their own and the
    rest (diagnostics carry no sim time) take the sim time of their moment in the
    stream. ``ego_z``: the height of the last ego state, at which the trajectory
    (2D poses) is drawn. ``map_scene``: the last map's SceneUpdate, kept so that
    a viewer can be sent it again (the map is published once)."""

    out: FoxgloveOut
    clock: float = 0.0
    ego_z: float = 0.0
    map_scene: Any = None

    @property
    def log_ns(self) -> int:
        """The current log time (ns of sim time)."""
        return round(self.clock * 1e9)

    def advance(self, msg: Any) -> float:
        """Move the clock to ``msg``'s stamp if that is later; the clock (s)."""
        self.clock = max(self.clock, msg.header.stamp)
        return self.clock

    def log(self, topic: str, msg: Any, source: str) -> None:
        """Log ``msg``, received on ``topic``, at the current clock; ``source`` names
        where it came from (a map's parse errors quote it)."""
        log_ns, out = self.log_ns, self.out
        if isinstance(msg, MapData):
            self.map_scene = fg_map(msg, source)
            self.log_map()
        elif isinstance(msg, Image):
            out.log(topic, fg_channels.CompressedImageChannel, fg_image(msg), log_ns)
            out.log(topic + "/calibration", fg_channels.CameraCalibrationChannel,
                    fg_calibration(msg), log_ns)
            out.log(_TF_TOPIC, fg_channels.FrameTransformsChannel,
                    fg.FrameTransforms(transforms=[fg_camera_transform(msg)]), log_ns)
        elif isinstance(msg, Segmentation):
            out.log(topic, fg_channels.CompressedImageChannel, fg_segmentation(msg), log_ns)
        elif isinstance(msg, ObjectList):
            out.log(topic, fg_channels.SceneUpdateChannel, fg_objects(msg), log_ns)
        elif isinstance(msg, GroundTruth):
            out.log(topic, fg_channels.SceneUpdateChannel, fg_ground_truth(msg), log_ns)
        elif isinstance(msg, Trajectory):
            out.log(topic, fg_channels.SceneUpdateChannel, fg_trajectory(msg, self.ego_z),
                    log_ns)
        elif isinstance(msg, EgoState):
            self.ego_z = msg.transform.location.z
            out.log(_TF_TOPIC, fg_channels.FrameTransformsChannel,
                    fg.FrameTransforms(transforms=[fg_ego_transform(msg)]), log_ns)
        if msg.MSG_NAME not in _CONVERTED:  # the registered message name
            out.log(topic, out.json_channel(msg.MSG_NAME), plain(msg), log_ns)

    def log_map(self) -> bool:
        """Log the last map at the current clock: when it comes, and again for a
        viewer that subscribed after that; False when no map has come yet."""
        if self.map_scene is None:
            return False
        self.out.log(MAP_SCENE_TOPIC, fg_channels.SceneUpdateChannel, self.map_scene,
                     self.log_ns)
        return True


def to_foxglove(recording: Path, output: Path, start_s: float | None = None,
                end_s: float | None = None) -> FoxgloveResult:
    """Convert ``recording`` to Foxglove's schemas in ``output`` (see the module
    doc and :class:`FoxgloveConverter`); ``start_s``/``end_s`` keep the sim-time
    window [start, end) (the map is always kept). Written to ``output``.tmp and
    renamed, so a failed conversion leaves no half file."""
    _check_range(start_s, end_s)
    _check_output(output, recording)
    if foxglove is None:
        raise VizError(f"--foxglove needs the foxglove-sdk package: {INSTALL_FOXGLOVE}")
    with open_recording(recording) as rec:
        tmp = output.with_name(output.name + ".tmp")
        context = foxglove.Context()
        try:
            writer = foxglove.open_mcap(
                tmp, allow_overwrite=True, context=context,
                writer_options=MCAPWriteOptions(compression=MCAPCompression.Lz4))
        except Exception as exc:  # the SDK raises its own error types
            raise VizError(f"cannot write {tmp}: {exc}") from None
        out = FoxgloveOut(context)
        try:
            _convert(rec, FoxgloveConverter(out), start_s, end_s)
            writer.close()
            tmp.replace(output)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
    schemas = {t: ch.schema_name() or "" for t, ch in out.channels.items()}
    return FoxgloveResult(output, {t: (schemas[t], n) for t, n in sorted(out.counts.items())})


def _convert(rec: Recording, converter: FoxgloveConverter, start_s: float | None,
             end_s: float | None) -> None:
    """The recording's messages in [start, end) of sim time through ``converter``;
    the map whenever it was recorded."""
    for m, msg in _decoded(rec, rec.messages()):
        clock = converter.advance(msg)
        if end_s is not None and clock >= end_s:
            return
        if isinstance(msg, MapData) or _in_range(clock, start_s, end_s):
            converter.log(m.topic, msg, f"{rec.path} {m.topic}")
