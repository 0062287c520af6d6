"""CARLA's camera encodings, decoded (raw ``carla.Image`` bytes are BGRA, H x W x 4).

- RGB camera: the first three channels are BGR.
- Depth camera: the distance along the optical axis as a 24-bit fraction of the
  far plane, 1000 m, R the least significant byte:
  ``metres = 1000 * (R + G * 256 + B * 256**2) / (256**3 - 1)``.
- Semantic segmentation camera: CARLA's CityObjectLabel id in the red channel.
"""

from __future__ import annotations

import numpy as np

DEPTH_FAR_M = 1000.0
DEPTH_SCALE = float(256 ** 3 - 1)


def _check(bgra: np.ndarray) -> None:
    if bgra.dtype != np.uint8 or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise ValueError(f"expected a BGRA image (H, W, 4) uint8, got {bgra.shape} "
                         f"{bgra.dtype}")


def bgr_from_bgra(bgra: np.ndarray) -> np.ndarray:
    """The RGB camera's image as a contiguous BGR (H, W, 3) uint8 array."""
    _check(bgra)
    return np.ascontiguousarray(bgra[..., :3])


def depth_from_bgra(bgra: np.ndarray) -> np.ndarray:
    """The depth camera's image in metres (float32, along the optical axis)."""
    _check(bgra)
    b, g, r = (bgra[..., i].astype(np.float64) for i in range(3))
    return (DEPTH_FAR_M * (r + g * 256.0 + b * 65536.0) / DEPTH_SCALE).astype(np.float32)


def labels_from_bgra(bgra: np.ndarray) -> np.ndarray:
    """The semantic camera's CityObjectLabel ids (uint8, the red channel)."""
    _check(bgra)
    return np.ascontiguousarray(bgra[..., 2])
