"""Perception node: /sensors/camera/<name> Image in, for every camera in ``cameras``;
/perception/objects ObjectList and /perception/traffic_light TrafficLightState out,
both with the first camera's header; and, unless ``segmentation`` is off,
/perception/segmentation/<name> Segmentation per camera (the network's classes at
its input size as CARLA ids, the camera image's header).

Per tick (:class:`perception.pipeline.PerceptionPipeline`): the images of all
cameras of one frame through the network in one batch, objects per camera, merged,
tracked; the light head's state. A frame waits until every camera's image of it
and, with ``ego_pose`` (the default), its /ego/state have arrived; when a later
frame completes first, the unfinished older one is dropped (counted). The tracker
runs in the world frame with that tick's ego pose (``ego_pose``), else in the ego
frame.

Parameters: ``cameras`` (default [front]), ``device`` (auto/cpu/cuda),
``cpu_threads`` (2), ``backend`` (auto: onnxruntime on the cpu for one camera,
else torch;
or torch, onnxruntime: see :mod:`perception.inference`), ``compile``
(torch.compile the network; backend torch), ``weights`` (default the shipped
perception/weights/perception.pt, its .sha256 checked; or an .onnx file from
``drivestack export-onnx``, for onnxruntime),
``allow_untrained`` (start with random weights when there is no weights file: for
tests only), ``max_range_m``, ``segmentation`` (publish it), ``ego_pose``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bus import Node
from bus.join import FrameJoin
from bus.messages import (
    EgoState,
    Image,
    ObjectList,
    Segmentation,
    TrafficLightState,
    Transform,
)
from perception.classes import CLASS_TO_CARLA
from perception.inference import (
    DEFAULT_WEIGHTS,
    Backend,
    OnnxPredictor,
    PredictorBase,
    load_weights,
    make_predictor,
    range_scale_of,
    resolve_backend,
    select_device,
)
from perception.model import build_model
from perception.objects import ObjectsConfig, scale_intrinsics
from perception.pipeline import PerceptionPipeline

#: the key of a frame's ego state among its cameras' images (no camera name has a "/")
_EGO = "/ego"


@dataclass
class PerceptionParams:
    cameras: list[str] = field(default_factory=lambda: ["front"])
    device: str = "auto"
    cpu_threads: int = 2
    backend: Backend = "auto"
    compile: bool = False
    weights: str = ""
    allow_untrained: bool = False
    max_range_m: float = 80.0
    #: how the governing light's state is read: "lamps", the colour of the largest
    #: lit lamp in the network's traffic-light pixels (perception.lights), or
    #: "head", the network's light classifier
    light_reader: Literal["lamps", "head"] = "lamps"
    #: publish each camera's segmentation (perception.refine) on
    #: /perception/segmentation/<camera>
    segmentation: bool = True
    #: subscribe to the cameras and the ego state only once each of these own
    #: topics has that many subscribers (e.g. planning and the recorder): the
    #: simulator starts when perception subscribes, so frame 0's objects are not
    #: published before their readers connect. Empty: subscribe at once
    start_when_subscribed: dict[str, int] = field(default_factory=dict)
    #: join each frame's images with that frame's /ego/state, whose pose the
    #: tracker keeps its tracks in (world frame). Taking whichever ego state had
    #: arrived used the previous tick's pose whenever the images' socket delivered
    #: first: 7 of 12 replays' outputs of bench/closed_loop.py differed once. False:
    #: no ego state is read, tracks are kept in the ego frame
    ego_pose: bool = True

    def __post_init__(self) -> None:
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct names, got {self.cameras}")
        for name in self.cameras:
            if not name or "/" in name:
                raise ValueError(f"bad camera name {name!r}")
        if self.cpu_threads < 1:
            raise ValueError("cpu_threads must be >= 1")
        if self.max_range_m <= 0:
            raise ValueError("max_range_m must be > 0")


class PerceptionNode(Node):
    Params = PerceptionParams

    def __init__(self, name: str = "perception", **kwargs) -> None:
        super().__init__(name, **kwargs)
        p = self.params
        self.predictor: PredictorBase
        self.light_trained = False
        weights = Path(p.weights) if p.weights else DEFAULT_WEIGHTS
        device = select_device(p.device, p.cpu_threads)
        if weights.suffix == ".onnx":
            if resolve_backend(p.backend, device, p.compile) != "onnxruntime":
                raise ValueError(f"weights {weights} is an ONNX file: it runs with backend "
                                 "onnxruntime (or auto) on the cpu only")
            onnx = OnnxPredictor(weights, p.cpu_threads)
            self.predictor, self.light_trained, self.trained = onnx, onnx.light_trained, True
            range_scale = onnx.range_scale
        else:
            range_scale = {}
            if weights.is_file():
                model, info = load_weights(weights)
                self.light_trained = bool(info.get("light_trained", False))
                self.trained = True
                range_scale = range_scale_of(info.get("calibration"), weights)
            elif p.allow_untrained:
                model, self.trained = build_model(), False
                self.get_logger().warning("no weights file %s: running UNTRAINED (random) "
                                          "weights (allow_untrained)", weights)
            else:
                raise FileNotFoundError(
                    f"perception weights {weights} not found: train them with `drivestack "
                    f"train` and pass weights:=PATH (or allow_untrained:=true for tests)")
            self.predictor = make_predictor(model, self.light_trained, device, p.backend,
                                            p.cpu_threads, p.compile, weights.name,
                                            batch=len(p.cameras))
        self.pipeline = PerceptionPipeline(self.predictor, self.light_trained,
                                           ObjectsConfig(max_range_m=p.max_range_m,
                                                         range_scale=range_scale),
                                           light_reader=p.light_reader)
        #: each frame's camera images (and its ego state, keyed _EGO), until all are in
        self.inputs = FrameJoin([*p.cameras, *([_EGO] if p.ego_pose else [])])
        self.objects_pub = self.create_publisher(ObjectList, "/perception/objects")
        self.light_pub = self.create_publisher(TrafficLightState, "/perception/traffic_light")
        self.segmentation_pubs = {
            camera: self.create_publisher(Segmentation, f"/perception/segmentation/{camera}")
            for camera in (p.cameras if p.segmentation else [])}
        self.when_subscribed(p.start_when_subscribed, self._open_inputs)

    def _open_inputs(self) -> None:
        if self.params.ego_pose:
            self.create_subscription(EgoState, "/ego/state", self.on_ego)
        for camera in self.params.cameras:
            self.create_subscription(Image, f"/sensors/camera/{camera}",
                                     lambda msg, c=camera: self.on_image(c, msg))

    def on_ego(self, msg: EgoState) -> None:
        self._add(_EGO, msg)

    def on_image(self, camera: str, msg: Image) -> None:
        self._add(camera, msg)

    def _add(self, key: str, msg: Image | EgoState) -> None:
        """Keeps ``msg``; processes its frame once every camera's image (and, with
        ``ego_pose``, its ego state) is in, older unfinished frames dropped."""
        frame = self.inputs.add(key, msg)
        if not self.inputs.complete(frame):
            return
        slot = self.inputs.take(frame)
        ego = slot.get(_EGO)
        self.process([slot[c] for c in self.params.cameras],
                     ego.transform if isinstance(ego, EgoState) else None)

    def process(self, images: list[Image], ego_pose: Transform | None = None) -> None:
        """One tick: every camera's image of one frame, in ``cameras`` order, and the
        ego's world pose then (None: tracks in the ego frame)."""
        header = images[0].header
        out = self.pipeline.step(images, ego_pose)
        self.objects_pub.publish(ObjectList(header=header, source="perception",
                                            objects=out.objects))
        self.light_pub.publish(TrafficLightState(header=header, state=out.light_state,
                                                 confidence=out.light_confidence,
                                                 source="perception",
                                                 lamp_seen=out.light_bearing is not None,
                                                 bearing=out.light_bearing or 0.0,
                                                 origin=images[0].mount.location))
        if not self.params.segmentation:
            return
        for camera, image, labels in zip(self.params.cameras, images, out.segmentation,
                                         strict=True):
            self.segmentation_pubs[camera].publish(Segmentation(
                header=image.header, camera=camera, labels=CLASS_TO_CARLA[labels],
                intrinsics=scale_intrinsics(image.intrinsics, labels.shape[1],
                                            labels.shape[0]),
                mount=image.mount))
