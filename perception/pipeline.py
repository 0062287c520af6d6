"""One perception tick without a bus: camera images in, tracked objects and the
traffic-light state out. The perception node is a thin adapter around it; the
bench and replay call it directly.

Per tick: the images of all cameras go through the network in one batch (any
:class:`perception.inference.PredictorBase` backend: its outputs include each
camera's class map at the input size, guided by the image, :mod:`perception.
refine`, returned as they are), then per camera
:func:`perception.objects.detect_objects` on the predicted classes and depth
(intrinsics scaled to the head's resolution), the cameras' detections merged
(:func:`perception.objects.merge_detections`: overlapping views see one object
twice), and the :class:`perception.tracker.Tracker` (world frame when the ego's
world pose is given). The light state is read on the first camera (the front one):
by default from its lit lamps' colour inside the network's traffic-light pixels
(``light_reader="lamps"``, :func:`perception.lights.read_lamps`), or from the
network's light head (``"head"``, when the weights say it was trained); "none"
becomes "unknown", as does a head that was not trained (confidence 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bus.frames import pixel_bearing
from bus.messages import DetectedObject, Image, Transform
from perception.classes import LIGHT_STATES, TrainClass
from perception.inference import PredictorBase
from perception.lights import horizon_row, read_lamps
from perception.objects import (
    Detection,
    ObjectsConfig,
    detect_objects,
    merge_detections,
    scale_intrinsics,
)
from perception.tracker import Tracker


@dataclass
class PerceptionOutput:
    objects: list[DetectedObject]  # ego frame, tracked
    light_state: str  # red, yellow, green, unknown
    light_confidence: float  # 0..1
    detections: list[Detection]  # this tick's, before tracking
    #: per camera, class ids (H, W) at the network's input size
    segmentation: list[np.ndarray] = field(default_factory=list)
    #: deg from ego x, positive right: where the lamp read was seen from the first
    #: camera (``TrafficLightState.bearing``); None when none was
    light_bearing: float | None = None


class PerceptionPipeline:
    def __init__(self, predictor: PredictorBase, light_trained: bool,
                 objects_config: ObjectsConfig | None = None,
                 light_reader: str = "lamps") -> None:
        if light_reader not in ("lamps", "head"):
            raise ValueError(f"light_reader must be 'lamps' or 'head', not {light_reader!r}")
        self.predictor = predictor
        self.light_trained = light_trained
        self.light_reader = light_reader
        self.objects_config = objects_config or ObjectsConfig()
        self.tracker = Tracker()

    def step(self, images: list[Image], ego_pose: Transform | None) -> PerceptionOutput:
        """``images``: every camera's image of one frame (the first one's stamp is
        the tick's time); ``ego_pose``: the ego's world pose then, if known."""
        encodings = {m.encoding for m in images}
        if len(encodings) == 1:
            outs = self.predictor.predict_batch([m.data for m in images], encodings.pop())
        else:
            outs = [self.predictor.predict(m.data, m.encoding) for m in images]
        dets: list[Detection] = []
        for msg, out in zip(images, outs, strict=True):
            h, w = out["seg"].shape
            K = scale_intrinsics(msg.intrinsics, w, h)
            dets += detect_objects(out["seg"], out["depth"], K, msg.mount, out["probs"],
                                   self.objects_config,
                                   vehicle_score=out["vehicle_score"])
        if len(images) > 1:
            dets = merge_detections(dets)
        objects = self.tracker.update(dets, images[0].header.stamp, ego_pose)
        state, conf, bearing = self.read_light(images[0], outs[0])
        return PerceptionOutput(objects, state, conf, dets,
                                [out["segmentation"] for out in outs], bearing)

    def read_light(self, image: Image, out: dict[str, np.ndarray]
                   ) -> tuple[str, float, float | None]:
        """(state, confidence, bearing) of the governing light in one camera's image
        and its network outputs: red, yellow, green or unknown; the bearing (deg from
        ego x, positive right) of the lamp read, seen from the camera, None when
        unknown or read by the light head (which sees the whole image)."""
        state, conf, bearing = "none", 0.0, None
        if self.light_reader == "lamps":
            bgr = image.data if image.encoding == "bgr8" else image.data[..., ::-1]
            read = read_lamps(bgr, out["probs"][int(TrainClass.TRAFFIC_LIGHT)],
                              horizon=horizon_row(image.intrinsics, image.mount))
            state, conf = read.state, read.confidence
            if state != "none":
                bearing = pixel_bearing(read.u, read.v, image.intrinsics, image.mount)
        elif self.light_trained and "light" in out:
            probs: np.ndarray = out["light"]
            i = int(probs.argmax())
            state, conf = LIGHT_STATES[i], float(probs[i])
        if state == "none":
            return "unknown", 0.0, None
        return state, min(max(conf, 0.0), 1.0), bearing
