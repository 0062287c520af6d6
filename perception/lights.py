"""The governing traffic light's state, read from its lamp's pixels.

A traffic-light head shows its lit lamp on the face towards the approach it
controls, so from the ego lane the lamps in view belong to lights that face the
ego: the governing light's head (at its stop line) and, smaller, those of the next
junctions ahead. The heads of crossing and oncoming approaches are seen from the
side or the back, without a lit lamp. So the state is the colour of the largest lit
lamp in view, as the classic colour-threshold detectors read it (an Apollo-style
pipeline crops the light's region, then classifies its colour):

1. where the lamps can be: the network's traffic-light pixels (probability at least
   ``min_probability``), brought to the camera image's size and dilated by
   ``dilate_px`` (the network's map is coarser than a distant head);
2. lit-lamp pixels inside: bright (HSV value >= ``min_value``) and saturated
   (saturation >= ``min_saturation``), with a hue in the red, yellow or green band
   (OpenCV hue, 0-180);
3. lamps: 8-connected groups of one colour whose centre is above the horizon by
   ``horizon_margin`` of the image height (lamps hang 3.4-4.5 m up, above a camera
   at car height, while cars, and so their tail lights and paint, are below it);
   and with darker pixels just above or below (one lamp height away: an unlit
   lamp of the head) than ``max_housing_ratio`` times the lamp's brightness (a
   bright wall the network took for a light is as bright there as inside);
   the largest decides; lamps under ``min_lamp_px`` pixels (at 640 x 360, scaled
   with the image's area) are too small to read, and with none left there is no
   readable light ("none"). Confidence: the largest lamp's share of the pixels of
   all readable lamps in view.

Why not the network's light head alone: trained on drives that mostly wait at red
lights, a classifier that also sees the whole scene learns to guess red near a
junction; the lamp's colour is the evidence a driver reads. Works on any BGR
image whose lamps are emissive colours (the embedded renderer's, CARLA's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from bus.frames import ego_to_camera, project
from bus.messages import CameraIntrinsics, Transform
from perception.numeric import median

REFERENCE_AREA = 640 * 360  # min_lamp_px is given at this image size
#: Lamp colours in OpenCV hue (0-180): (lo, hi) bands, red wrapping around 0.
HUE_BANDS: dict[str, tuple[tuple[int, int], ...]] = {
    "red": ((0, 10), (165, 180)), "yellow": ((15, 35), ()), "green": ((45, 95), ())}


@dataclass(frozen=True)
class LampReaderConfig:
    min_probability: float = 0.3
    dilate_px: int = 3
    min_value: int = 150  # 0-255
    min_saturation: int = 150  # 0-255
    min_lamp_px: int = 4
    horizon_margin: float = 0.01
    max_housing_ratio: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 < self.min_probability < 1.0:
            raise ValueError("min_probability must be in (0, 1)")
        if self.dilate_px < 0 or self.min_lamp_px < 1:
            raise ValueError("dilate_px must be >= 0 and min_lamp_px >= 1")


_STATES = tuple(HUE_BANDS)


class LampRead(NamedTuple):
    """What :func:`read_lamps` read: ``state`` ("red", "yellow", "green" or "none"),
    ``confidence`` 0..1 and the deciding lamp's centre in the image (``u``, ``v``,
    px; NaN for "none")."""

    state: str
    confidence: float
    u: float = math.nan
    v: float = math.nan


_NONE = LampRead("none", 0.0)


def _hue_lookup() -> np.ndarray:
    """OpenCV hue (0-255 index) -> 0 (no lamp colour) or 1 + index in _STATES."""
    lut = np.zeros(256, np.uint8)
    for i, state in enumerate(_STATES):
        for band in HUE_BANDS[state]:
            if band:
                lut[band[0]:band[1] + 1] = i + 1
    return lut


_HUE_STATE = _hue_lookup()


def horizon_row(K: CameraIntrinsics, mount: Transform) -> float:
    """Image row (px) of the horizon of a camera with intrinsics ``K`` mounted at
    ``mount`` (ego frame): where a point far ahead at the camera's height projects."""
    far = np.array([[mount.location.x + 1e4, mount.location.y, mount.location.z]])
    cam = ego_to_camera(far, mount)
    if cam[0, 2] <= 0:
        return float(K.height)  # looking away from the horizon: no limit
    return float(project(cam, K)[0][0][1])


def read_lamps(bgr: np.ndarray, light_probability: np.ndarray,
               config: LampReaderConfig | None = None,
               horizon: float | None = None) -> LampRead:
    """The state ("red", "yellow", "green" or "none": no readable lamp), its
    confidence and where the lamp that decided it is in the image.

    ``bgr``: (H, W, 3) uint8 camera image; ``light_probability``: (h, w) the
    network's traffic-light class probability, at any resolution (resized to the
    image's); ``horizon``: the image row of the horizon (:func:`horizon_row`),
    None for no height test."""
    cfg = config or LampReaderConfig()
    h, w = bgr.shape[:2]
    region = (np.asarray(light_probability, np.float32) >= cfg.min_probability)
    if not region.any():
        return _NONE
    region = cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    if cfg.dilate_px:
        k = 2 * cfg.dilate_px + 1
        region = cv2.dilate(region, np.ones((k, k), np.uint8))
    if horizon is not None:  # lamps hang above it; a lamp's lower half may reach it
        region[max(int(horizon - cfg.horizon_margin * h) + cfg.dilate_px + 4, 0):] = 0
        if not region.any():
            return _NONE
    # only the rows and columns the region spans are converted, with a margin for
    # the housing around a lamp at the region's edge
    ys, xs = np.nonzero(region.any(1))[0], np.nonzero(region.any(0))[0]
    pad = cfg.dilate_px + 4
    y0, x0 = max(int(ys[0]) - pad, 0), max(int(xs[0]) - pad, 0)
    box = (slice(y0, min(int(ys[-1]) + pad + 1, h)), slice(x0, min(int(xs[-1]) + pad + 1, w)))
    hsv = cv2.cvtColor(np.ascontiguousarray(bgr[box]), cv2.COLOR_BGR2HSV)
    hue, _, value = cv2.split(hsv)
    bright = cv2.inRange(hsv, (0, cfg.min_saturation, cfg.min_value), (255, 255, 255))
    lit = cv2.bitwise_and(bright, bright, mask=region[box])  # 255 where lit, else 0
    if not cv2.countNonZero(lit):
        return _NONE
    min_px = max(1, round(cfg.min_lamp_px * h * w / REFERENCE_AREA))
    # 0: not a lamp colour, else 1 + state index
    colour = cv2.bitwise_and(cv2.LUT(hue, _HUE_STATE), 255, mask=lit)
    n, blobs, stats, centres = cv2.connectedComponentsWithStats((colour > 0).astype(np.uint8),
                                                                connectivity=8)
    best, best_px, total, at = "none", 0, 0, (math.nan, math.nan)
    for j in range(1, n):
        bx, by, bw, bh, size = (int(v) for v in stats[j])
        if size < min_px:
            continue  # a speck: too small to read
        if horizon is not None and centres[j, 1] + y0 >= horizon - cfg.horizon_margin * h:
            continue  # at or below the horizon: not a lamp up on a pole
        win = (slice(by, by + bh), slice(bx, bx + bw))
        inside = blobs[win] == j
        # a lit lamp has an unlit lamp or the housing just above or below it
        lamp_v = median(value[win][inside])
        above = value[max(by - bh, 0):by, bx:bx + bw]
        below = value[by + bh:by + 2 * bh, bx:bx + bw]
        darker = min((median(a) for a in (above, below) if a.size), default=lamp_v)
        if darker > cfg.max_housing_ratio * lamp_v:
            continue  # as bright above and below: a sunlit wall, not a lit lamp
        total += size
        if size > best_px:  # its colour: the most common of its pixels
            votes = np.bincount(colour[win][inside], minlength=len(HUE_BANDS) + 1)[1:]
            best, best_px = _STATES[int(votes.argmax())], size
            at = (float(centres[j, 0]) + x0, float(centres[j, 1]) + y0)
    if best_px == 0:
        return _NONE
    return LampRead(best, best_px / total, *at)
