"""Copy-paste augmentation of walkers (after Ghiasi et al., "Simple Copy-Paste is a
Strong Data Augmentation Method for Instance Segmentation", CVPR 2021).

Why: a walker crossing in front of a car is rare in collected data (walkers cross
at junctions, cars queue elsewhere) and the network, trained on more of the same,
labels such a walker vehicle (the scene test: a walker 12 m ahead in front of a car
stopped at 22 m). Pasting walkers cut from other training samples over vehicles
makes the case common.

Geometry: every sample comes from the same camera (height, pitch, intrinsics), at
the same input size, so a walker pasted at the rows it was cut from stands on the
ground at the same distance; shifting it sideways keeps its depth along the optical
axis. The paste is depth-tested: a pasted pixel shows only where the walker is
nearer than what the target sample has there (a car in front of it hides it),
and it carries the walker's depth and the pedestrian label. Arrays are at the
model's input size: rgb (H, W, 3) uint8, labels (H, W) uint8 training class ids,
depth (H, W) float32 metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception.classes import TrainClass

#: smallest walker cut out (pixels at the input size): smaller ones are a few
#: pixels of colour that teach nothing about a walker's shape
MIN_WALKER_PIXELS = 40


@dataclass(frozen=True)
class WalkerCutout:
    """One walker's pixels: its box's top-left (row, column) in the sample it came
    from, and within the box the mask, colours and depth (m)."""

    top: int
    left: int
    mask: np.ndarray
    rgb: np.ndarray
    depth: np.ndarray


def walker_cutouts(rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray,
                   min_pixels: int = MIN_WALKER_PIXELS) -> list[WalkerCutout]:
    """The whole walkers of one sample: connected pedestrian regions of at least
    ``min_pixels`` that do not touch the image border (cut by it, a walker is not
    whole)."""
    h, w = labels.shape
    n, comp, stats, _ = cv2.connectedComponentsWithStats(
        (labels == TrainClass.PEDESTRIAN).astype(np.uint8), connectivity=8)
    cutouts = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < min_pixels or x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        box = np.s_[y:y + bh, x:x + bw]
        cutouts.append(WalkerCutout(top=y, left=x, mask=comp[box] == k,
                                    rgb=rgb[box].copy(),
                                    depth=depth[box].astype(np.float32)))
    return cutouts


def paste_walker(rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray,
                 cutout: WalkerCutout, left: int) -> int:
    """Paste ``cutout`` at its own rows with its box's left column at ``left``
    (clipped to the image), depth-tested; in place. Returns the pixels pasted."""
    h, w = labels.shape
    bh, bw = cutout.mask.shape
    left = int(np.clip(left, 0, w - bw))
    box = np.s_[cutout.top:cutout.top + bh, left:left + bw]
    if cutout.top + bh > h:
        return 0
    front = cutout.mask & (cutout.depth < depth[box])
    rgb[box][front] = cutout.rgb[front]
    labels[box][front] = TrainClass.PEDESTRIAN
    depth[box][front] = cutout.depth[front]
    return int(front.sum())


def place_over_vehicle(labels: np.ndarray, cutout: WalkerCutout,
                       rng: np.random.Generator) -> int | None:
    """A left column that centres ``cutout`` on a random vehicle pixel in the rows
    it spans, or None when those rows show no vehicle."""
    bh, bw = cutout.mask.shape
    _, cols = np.nonzero(labels[cutout.top:cutout.top + bh] == TrainClass.VEHICLE)
    if not len(cols):
        return None
    return int(cols[rng.integers(len(cols))]) - bw // 2
