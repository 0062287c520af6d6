"""Perception node: /sensors/camera/<camera> Image in; /perception/objects ObjectList
and /perception/traffic_light TrafficLightState out, both with the image's header.

Per image: :class:`perception.inference.Predictor` (preprocess, network), then
:func:`perception.objects.detect_objects` on the predicted classes and depth (at
the network's input size, intrinsics scaled to it) and the
:class:`perception.tracker.Tracker`. The tracker runs in the world frame when an
/ego/state of the image's frame (or the latest one before it) has arrived, else
in the ego frame (see :mod:`perception.tracker`). The traffic-light state comes
from the light head when the weights say it was trained ("none" -> "unknown"),
else it is "unknown" with confidence 0.

Parameters: ``camera`` (default front), ``device`` (auto/cpu/cuda), ``cpu_threads``
(2), ``weights`` (default the shipped perception/weights/perception.pt; its
.sha256 is checked), ``allow_untrained`` (start with random weights when there is
no weights file: for tests only), ``max_range_m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bus import Node
from bus.messages import EgoState, Image, ObjectList, TrafficLightState
from perception.classes import LIGHT_STATES
from perception.inference import DEFAULT_WEIGHTS, Predictor, load_weights, select_device
from perception.model import build_model
from perception.objects import ObjectsConfig, detect_objects, scale_intrinsics
from perception.tracker import Tracker


@dataclass
class PerceptionParams:
    camera: str = "front"
    device: str = "auto"
    cpu_threads: int = 2
    weights: str = ""
    allow_untrained: bool = False
    max_range_m: float = 80.0

    def __post_init__(self) -> None:
        if not self.camera or "/" in self.camera:
            raise ValueError(f"bad camera name {self.camera!r}")
        if self.cpu_threads < 1:
            raise ValueError("cpu_threads must be >= 1")
        if self.max_range_m <= 0:
            raise ValueError("max_range_m must be > 0")


class PerceptionNode(Node):
    Params = PerceptionParams

    def __init__(self, name: str = "perception", **kwargs) -> None:
        super().__init__(name, **kwargs)
        p = self.params
        device = select_device(p.device, p.cpu_threads)
        weights = Path(p.weights) if p.weights else DEFAULT_WEIGHTS
        self.light_trained = False
        if weights.is_file():
            model, info = load_weights(weights)
            self.light_trained = bool(info.get("light_trained", False))
            self.trained = True
        elif p.allow_untrained:
            model, self.trained = build_model(), False
            self.get_logger().warning("no weights file %s: running UNTRAINED (random) "
                                      "weights (allow_untrained)", weights)
        else:
            raise FileNotFoundError(
                f"perception weights {weights} not found: train them with `drivestack "
                f"train` and pass weights:=PATH (or allow_untrained:=true for tests)")
        self.predictor = Predictor(model, device)
        self.objects_config = ObjectsConfig(max_range_m=p.max_range_m)
        self.tracker = Tracker()
        self.ego: list[EgoState] = []
        self.objects_pub = self.create_publisher(ObjectList, "/perception/objects")
        self.light_pub = self.create_publisher(TrafficLightState, "/perception/traffic_light")
        self.create_subscription(EgoState, "/ego/state", self.on_ego)
        self.create_subscription(Image, f"/sensors/camera/{p.camera}", self.on_image)

    def on_ego(self, msg: EgoState) -> None:
        self.ego = [e for e in self.ego[-4:] if e.header.frame < msg.header.frame] + [msg]

    def _ego_pose(self, frame: int):  # type: ignore[no-untyped-def]
        before = [e for e in self.ego if e.header.frame <= frame]
        return before[-1].transform if before else None

    def on_image(self, msg: Image) -> None:
        out = self.predictor.predict(msg.data, msg.encoding)
        h, w = out["seg"].shape
        K = scale_intrinsics(msg.intrinsics, w, h)
        dets = detect_objects(out["seg"], out["depth"], K, msg.mount, out["probs"],
                              self.objects_config)
        objects = self.tracker.update(dets, msg.header.stamp,
                                      self._ego_pose(msg.header.frame))
        self.objects_pub.publish(ObjectList(header=msg.header, source="perception",
                                            objects=objects))
        state, conf = "unknown", 0.0
        if self.light_trained and "light" in out:
            probs: np.ndarray = out["light"]
            i = int(probs.argmax())
            state = LIGHT_STATES[i] if LIGHT_STATES[i] != "none" else "unknown"
            conf = float(probs[i])
        self.light_pub.publish(TrafficLightState(header=msg.header, state=state,
                                                 confidence=min(max(conf, 0.0), 1.0),
                                                 source="perception"))
