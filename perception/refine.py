"""Segmentation at the network's input resolution: the segmentation head's class
probabilities (half the input size) upsampled with the camera image as guide.

Upsampling the head's output bilinearly blurs every outline over two input pixels
and thins away what is only a pixel or two wide at the head's resolution (a
pedestrian 30 m away, a far car's roof line, a road line); the camera image has
those outlines sharp. The guided filter (He, Sun, Tang, "Guided Image Filtering",
TPAMI 2013, with a colour guide: eq. 19-21) models each class's probability, in
every window of (2r + 1)^2 pixels, as an affine function of the guide's three
colour channels, fitted by least squares with a ridge ``eps``:

    a_k = (Sigma_k + eps U)^-1 cov_k(I, p),   b_k = mean_k(p) - a_k . mean_k(I)
    q_i = mean over windows k containing i of (a_k . I_i + b_k)

so an edge of the guide inside a window becomes an edge of the output, and where
the guide is flat the output is the smoothed input. The fast guided filter (He,
Sun, "Fast Guided Filter", arXiv:1505.00996, 2015) fits ``a`` and ``b`` at the
head's resolution, against the guide shrunk to it, and applies them, upsampled
bilinearly, to the full-resolution guide: the fit costs a quarter, and the head's
resolution is where the probabilities are anyway.

The filter is linear in the probabilities, so the filtered scores of all classes
still sum to 1 at every pixel; a class's score may leave [0, 1] slightly (the
affine model overshoots at edges), which an argmax does not mind. Guide values are
the image's 8-bit channels / 255, in any channel order (the filter is the same for
a permutation of them). ``radius`` is in head pixels; ``eps`` (the guide's squared
units) sets how small a colour step still counts as an edge: 1e-4 is a step of
about 3 of 255 levels.

:func:`guided_upsample` runs on the CPU (numpy, OpenCV's box filters);
:func:`guided_upsample_torch` is the same filter for a batch of tensors, for CUDA,
where the probabilities and the resized image already are. :func:`confirm_blobs`
lets the guided map judge the head's blobs of a class for the object stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RefineConfig:
    """The guided filter's window radius (head pixels; 6 = a 13 x 13 window, 26
    input pixels across at stride 2) and ridge (guide intensities in [0, 1]).
    Chosen on a tuning set of the built-in maps (``--seed 2000``) that is neither
    trained on nor used for the reported figures."""

    radius: int = 6
    eps: float = 1e-4

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise ValueError(f"radius must be >= 1 head pixel, not {self.radius}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, not {self.eps}")


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r + 1)^2 window around each pixel (edges reflected), of each
    plane of ``x`` (k, h, w)."""
    out = np.empty_like(x)
    for i in range(len(x)):
        cv2.boxFilter(x[i], -1, (2 * r + 1, 2 * r + 1), dst=out[i], normalize=True,
                      borderType=cv2.BORDER_REFLECT)
    return out


#: the six distinct entries (i, j) of a symmetric 3 x 3 matrix: 00 01 02 11 12 22
_UPPER_I, _UPPER_J = [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]


def _ridge_inverse(s: Sequence[Any], eps: float) -> tuple[tuple[tuple[Any, ...], ...], Any]:
    """(Sigma + eps U)^-1 per pixel for the entries ``s`` (00 01 02 11 12 22) of a
    symmetric 3 x 3 covariance, as its adjugate (3 x 3 nested, symmetric) and 1 /
    determinant: positive definite, so always invertible. Plain arithmetic on
    numpy arrays or torch tensors alike."""
    s00, s01, s02, s11, s12, s22 = s
    s00, s11, s22 = s00 + eps, s11 + eps, s22 + eps
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    return ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22)), inv_det


def _coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The window-averaged affine coefficients for guide (3, h, w) and inputs
    (C, h, w), plane by plane (numpy's arithmetic over a trailing axis of a few
    channels runs several times slower than over whole planes): A (3 C, h, w),
    the C coefficients of guide channel 0, then 1, 2; and B (C, h, w)."""
    n = len(p)
    mean_i = _box(guide, r)
    s = _box(guide[_UPPER_I] * guide[_UPPER_J], r) - mean_i[_UPPER_I] * mean_i[_UPPER_J]
    inverse, inv_det = _ridge_inverse(list(s), eps)
    # cov_k(I_c, p) for each guide channel c
    mean_p = _box(p, r)
    mean_ip = _box((guide[:, None] * p[None]).reshape(3 * n, *p.shape[1:]), r)
    cov = [mean_ip[c * n:(c + 1) * n] - mean_i[c] * mean_p for c in range(3)]
    a = np.empty((3 * n, *p.shape[1:]), np.float32)
    b = mean_p
    for c in range(3):
        row = inverse[c]
        a_c = a[c * n:(c + 1) * n]
        np.multiply(row[0] * inv_det, cov[0], out=a_c)
        a_c += (row[1] * inv_det) * cov[1]
        a_c += (row[2] * inv_det) * cov[2]
        b = b - a_c * mean_i[c]
    return _box(a, r), _box(b, r)


def guided_coefficients(probs: np.ndarray, image: np.ndarray,
                        config: RefineConfig = RefineConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The filter's coefficients at the probabilities' resolution: A (3 C, h, w),
    the C coefficients of guide channel 0, then 1, 2, and B (C, h, w), for ``probs``
    (C, h, w) float32 and the guide ``image`` (H, W, 3) uint8, any channel order,
    H and W at least h and w (area-averaged to h x w)."""
    if probs.ndim != 3 or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (C, h, w) probabilities and an H x W x 3 uint8 image, "
                         f"got {probs.shape} and {image.dtype} {image.shape}")
    n, h, w = probs.shape
    if n < 2:
        raise ValueError(f"expected the probabilities of at least 2 classes, got {n}")
    big_h, big_w = image.shape[:2]
    if big_h < h or big_w < w:
        raise ValueError(f"the image ({big_w} x {big_h}) is smaller than the "
                         f"probabilities ({w} x {h})")
    guide = image.astype(np.float32) * np.float32(1.0 / 255.0)
    if (h, w) != (big_h, big_w):  # as the CUDA path's F.interpolate(mode="area")
        guide = cv2.resize(guide, (w, h), interpolation=cv2.INTER_AREA)
    return _coefficients(np.ascontiguousarray(guide.transpose(2, 0, 1)),
                         np.ascontiguousarray(probs, dtype=np.float32), config.radius,
                         config.eps)


def _class_scores(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> Iterator[np.ndarray]:
    """Each class's filtered score (H, W) float32 at the size of ``image``, in class
    order, from the coefficients of :func:`guided_coefficients` resized bilinearly
    to it (copied when they are that size already): b + a_0 I_0 + a_1 I_1 + a_2 I_2
    on whole planes (numpy's arithmetic over a trailing axis of a few channels runs
    several times slower)."""
    big_h, big_w = image.shape[:2]
    n = len(b)
    if a.shape[1:] == (big_h, big_w):
        plane: Callable[[np.ndarray], np.ndarray] = np.copy
    else:
        def plane(x: np.ndarray) -> np.ndarray:
            return cv2.resize(x, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    guide = [g.astype(np.float32) * np.float32(1.0 / 255.0) for g in cv2.split(image)]
    for k in range(n):
        q = plane(b[k])
        for c in range(3):
            q += plane(a[c * n + k]) * guide[c]
        yield q


def upsample_scores(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Filtered class scores (H, W, C) float32 at the size of ``image`` from the
    coefficients of :func:`guided_coefficients`, resized bilinearly to it."""
    return np.stack(list(_class_scores(a, b, image)), -1)


def guided_labels(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Class ids (H, W) uint8 at the size of ``image``: the argmax of
    :func:`upsample_scores` for the same coefficients (the same scores), taken
    class by class with a running maximum (first class on ties, as ``argmax``),
    without the (H, W, C) scores: on the 2-core CPU it took 2.3 ms against 3.7
    for the scores interleaved and their argmax (320 x 160, 7 classes)."""
    labels = np.zeros(image.shape[:2], np.uint8)
    best = None
    for k, q in enumerate(_class_scores(a, b, image)):
        if best is None:
            best = q
            continue
        labels[q > best] = k
        np.maximum(best, q, out=best)
    return labels


def guided_upsample(probs: np.ndarray, image: np.ndarray,
                    config: RefineConfig = RefineConfig()) -> np.ndarray:
    """Filtered class scores (H, W, C) float32 at the size of ``image``.

    ``probs``: (C, h, w) float32 class probabilities (the head's softmax);
    ``image``: (H, W, 3) uint8, the camera image at the output size (the network's
    input size), any channel order. H and W are at least h and w."""
    return upsample_scores(*guided_coefficients(probs, image, config), image)


class GuidedScore:
    """One class's guided score (:func:`guided_upsample`'s channel of that class)
    at the pixels of an image of any size at least the head's, evaluated only in
    the windows asked for: the object stage finds where a vehicle meets the road
    at the camera's own resolution, 2-4 times finer than the head's map
    (:func:`perception.objects.detect_objects`), from coefficients made once, at
    the head's resolution (the guided class map's own, :meth:`of_class`).

    ``ab``: (h, w, 4) the class's coefficients of the guide's three channels and
    its offset; ``image``: (H, W, 3) uint8, any channel order (the guide)."""

    def __init__(self, ab: np.ndarray, image: np.ndarray) -> None:
        if ab.ndim != 3 or ab.shape[2] != 4 or image.ndim != 3 or image.shape[2] != 3 \
                or image.dtype != np.uint8:
            raise ValueError(f"expected (h, w, 4) coefficients and an H x W x 3 uint8 "
                             f"image, got {ab.shape} and {image.dtype} {image.shape}")
        h, w = ab.shape[:2]
        big_h, big_w = image.shape[:2]
        if big_h < h or big_w < w:
            raise ValueError(f"the image ({big_w} x {big_h}) is smaller than the "
                             f"coefficients ({w} x {h})")
        self.image = image
        self._ab = np.ascontiguousarray(ab, np.float32)
        self._scale = (w / big_w, h / big_h)

    @classmethod
    def of_class(cls, a: np.ndarray, b: np.ndarray, k: int, image: np.ndarray
                 ) -> GuidedScore:
        """Class ``k``'s score from all classes' :func:`guided_coefficients`."""
        n = len(b)
        return cls(np.stack([a[k], a[n + k], a[2 * n + k], b[k]], -1), image)

    @classmethod
    def of_probability(cls, prob: np.ndarray, image: np.ndarray,
                       config: RefineConfig = RefineConfig()) -> GuidedScore:
        """The score of one class's (h, w) probability, filtered on its own."""
        p = np.asarray(prob, np.float32)
        if p.ndim != 2:
            raise ValueError(f"expected an (h, w) probability, got {p.shape}")
        # with its complement: OpenCV's filters drop a single channel's axis
        a, b = guided_coefficients(np.stack([p, 1.0 - p]), image, config)
        return cls.of_class(a, b, 0, image)

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The score at the image's pixels of rows [r0, r1) and columns [c0, c1)
        (clipped to the image): the coefficients sampled bilinearly at those
        pixels' centres, as :func:`guided_upsample` resizes them."""
        big_h, big_w = self.image.shape[:2]
        r0, r1 = max(rows[0], 0), min(rows[1], big_h)
        c0, c1 = max(cols[0], 0), min(cols[1], big_w)
        if r0 >= r1 or c0 >= c1:
            return np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), np.float32)
        sx, sy = self._scale
        map_x = ((np.arange(c0, c1, dtype=np.float32) + 0.5) * sx - 0.5).clip(min=0)
        map_y = ((np.arange(r0, r1, dtype=np.float32) + 0.5) * sy - 0.5).clip(min=0)
        ab = cv2.remap(self._ab, np.broadcast_to(map_x, (r1 - r0, c1 - c0)).copy(),
                       np.broadcast_to(map_y[:, None], (r1 - r0, c1 - c0)).copy(),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        guide = self.image[r0:r1, c0:c1].astype(np.float32) * np.float32(1.0 / 255.0)
        return (ab[..., :3] * guide).sum(-1) + ab[..., 3]


def _box_torch(x: torch.Tensor, r: int) -> torch.Tensor:
    """:func:`_box` for (N, K, h, w) tensors: edges reflected as OpenCV's
    BORDER_REFLECT, a row then a column mean. (Not by cumulative sums: their
    float32 rounding, over a row of 170, reaches the variances that the ridge
    1e-4 is compared with.)"""
    k = 2 * r + 1
    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], -1)
    x = torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], -2)
    return F.avg_pool2d(F.avg_pool2d(x, (1, k), stride=1), (k, 1), stride=1)


def guided_upsample_torch(probs: torch.Tensor, guide: torch.Tensor,
                          config: RefineConfig = RefineConfig()) -> torch.Tensor:
    """:func:`guided_upsample` on tensors of any device, for a batch: where the
    probabilities and the resized image already are on CUDA (on the CPU numpy
    and OpenCV take a tenth of the time). ``probs`` (N, C, h, w) float32;
    ``guide`` (N, 3, H, W) float32 in [0, 1], H and W multiples of h and w.
    Returns the scores (N, C, H, W)."""
    return upsample_scores_torch(guided_coefficients_torch(probs, guide, config), guide)


def guided_coefficients_torch(probs: torch.Tensor, guide: torch.Tensor,
                              config: RefineConfig = RefineConfig()) -> torch.Tensor:
    """:func:`guided_upsample_torch`'s coefficients at the probabilities' (h, w):
    (N, 4 C, h, w), each guide channel's C classes in turn, then the C offsets
    (:func:`class_coefficients_torch` picks one class's four)."""
    c, h, w = probs.shape[1:]
    r, eps = config.radius, config.eps
    small = guide if guide.shape[-2:] == (h, w) else F.interpolate(guide, size=(h, w),
                                                                    mode="area")
    mean_i = _box_torch(small, r)
    s = (_box_torch(small[:, _UPPER_I] * small[:, _UPPER_J], r)
         - mean_i[:, _UPPER_I] * mean_i[:, _UPPER_J])
    inverse, inv_det = _ridge_inverse(s.unbind(1), eps)
    mean_p = _box_torch(probs, r)
    mean_ip = _box_torch((small[:, :, None] * probs[:, None]).flatten(1, 2), r)
    cov = mean_ip.unflatten(1, (3, c)) - mean_i[:, :, None] * mean_p[:, None]
    a = torch.stack([(row[0][:, None] * cov[:, 0] + row[1][:, None] * cov[:, 1]
                      + row[2][:, None] * cov[:, 2]) * inv_det[:, None] for row in inverse], 1)
    b = mean_p - (a * mean_i[:, :, None]).sum(1)
    return _box_torch(torch.cat([a.flatten(1, 2), b], 1), r)


def upsample_scores_torch(ab: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """The scores (N, C, H, W) of :func:`guided_coefficients_torch`'s coefficients
    at the pixels of ``guide`` (N, 3, H, W): resized bilinearly, applied to it."""
    c = ab.shape[1] // 4
    if guide.shape[-2:] != ab.shape[-2:]:
        ab = F.interpolate(ab, size=guide.shape[-2:], mode="bilinear", align_corners=False)
    return ab[:, 3 * c:] + (ab[:, :3 * c].unflatten(1, (3, c)) * guide[:, :, None]).sum(1)


def class_coefficients_torch(ab: torch.Tensor, k: int, channels: tuple[int, int, int]
                             = (0, 1, 2)) -> torch.Tensor:
    """Class ``k``'s coefficients (N, 4, h, w) of :func:`guided_coefficients_torch`'s
    ``ab``: of the guide's ``channels`` in that order (``(2, 1, 0)`` for an image
    in the other channel order than the guide), then the offset: a
    :class:`GuidedScore` of that image's pixels, once moved to the host (channels
    last)."""
    c = ab.shape[1] // 4
    return ab[:, [i * c + k for i in channels] + [3 * c + k]]


def confirm_blobs(seg: np.ndarray, guided: np.ndarray, class_id: int,
                  min_fraction: float) -> np.ndarray:
    """``seg`` with each 8-connected blob of ``class_id`` that ``guided`` (the same
    size) labels ``class_id`` at fewer than ``min_fraction`` of its pixels given
    ``guided``'s classes there; a copy when any is, else ``seg`` itself.

    Why: the head's own classes keep a blob's extent (a pedestrian's feet, where
    it meets the ground), which the colour fit can give to a car of a similar tone
    behind them; but a blob the image does not bear out is mostly the head's
    blur or a guess, and the guided map, a better segmentation, is the judge."""
    n, blobs = cv2.connectedComponents((seg == class_id).astype(np.uint8), connectivity=8)
    if n <= 1:
        return seg
    size = np.bincount(blobs.ravel(), minlength=n)
    agree = np.bincount(blobs.ravel(), weights=(guided == class_id).ravel(), minlength=n)
    rejected = agree < min_fraction * size
    rejected[0] = False  # not a blob
    if not rejected.any():
        return seg
    out = seg.copy()
    drop = rejected[blobs]
    out[drop] = guided[drop]
    return out


def refine_segmentation(probs: np.ndarray, image: np.ndarray,
                        config: RefineConfig = RefineConfig()) -> np.ndarray:
    """Class ids (H, W) uint8 at the size of ``image``: the argmax of
    :func:`guided_upsample` (:func:`guided_labels`)."""
    return guided_labels(*guided_coefficients(probs, image, config), image)
