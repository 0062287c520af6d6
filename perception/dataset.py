"""A torch Dataset over a directory written by ``drivestack collect``
(format: :mod:`perception.collect`).

Each item is a dict: ``image`` float32 (3, H, W) RGB normalised with the model's
IMAGE_MEAN/IMAGE_STD, ``labels`` int64 (H, W) training class ids, ``depth``
float32 (H, W) metres (MAX_DEPTH = 1000 for sky / beyond 655 m), ``light`` int64
index into LIGHT_STATES (the state the image can show: :func:`perception.collect.
light_label`), ``sample`` the sample's path prefix. (H, W) is the model
input size (default 160 x 320): images are resized with area averaging, labels and
depth with nearest neighbour (no blended class ids or depths at edges).

Strict: a missing, unreadable or inconsistent file raises :class:`DatasetError`
naming the file. ``transform`` (optional, for augmentation) is applied to the numpy
arrays (rgb HxWx3 uint8 RGB, labels, depth) at the input size; what it returns is
resized back to the input size. ``cache=True`` keeps every sample decoded and resized
in memory (about 250 kB each at 320 x 160) after its first read: decoding a 640 x 360
JPEG and two PNGs costs more than a training step of the network on its pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from perception.classes import NUM_CLASSES, light_state_index
from perception.collect import INDEX_FILE, decode_depth, light_label
from perception.model import DEFAULT_INPUT_SIZE, IMAGE_MEAN, IMAGE_STD, MAX_DEPTH
from perception.numeric import resize_nearest

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class DatasetError(ValueError):
    """A collected data set is missing a file or has a corrupt one."""


def read_index(root: str | Path) -> list[dict[str, Any]]:
    path = Path(root) / INDEX_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the index {path}: {exc.strerror or exc}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            str(row["sample"])
        except (ValueError, KeyError, TypeError):
            raise DatasetError(f"{path}:{n}: not a sample record") from None
        rows.append(row)
    return rows


def read_data_sets(roots: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The index rows of several collected directories as one data set (e.g. two
    collections with different seeds): each row's ``sample`` becomes its path
    prefix under its directory (:class:`CollectedDataset` joins it to its root, and
    joining keeps an absolute path as it is) and, when there are several
    directories, its ``episode`` is qualified with the directory, so that two
    collections' ``ep00000_town_grid`` stay two episodes in the train/validation
    split."""
    resolved = [Path(r).resolve() for r in roots]
    if len(set(resolved)) != len(resolved):
        raise DatasetError("a data set directory is given twice: "
                           + ", ".join(str(r) for r in roots))
    rows = []
    for root, where in zip(roots, resolved, strict=True):
        for row in read_index(root):
            row = dict(row, sample=str(where / row["sample"]))
            if len(roots) > 1:
                row["episode"] = f"{where}/{row.get('episode', '')}"
            rows.append(row)
    return rows


def _imread(path: Path, flags: int) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    img = cv2.imread(str(path), flags)
    if img is None:
        raise DatasetError(f"corrupt or unreadable image {path}")
    return img


def normalize_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return (x - mean) / std


class CollectedDataset(Dataset):
    """Samples of a collected directory; ``filter`` keeps index rows it accepts
    (e.g. by map or episode, for train/validation splits)."""

    def __init__(self, root: str | Path, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                 filter: Callable[[dict[str, Any]], bool] | None = None,
                 transform: Callable[[Arrays], Arrays] | None = None,
                 samples: Sequence[dict[str, Any]] | None = None, cache: bool = False) -> None:
        self.root = Path(root)
        rows = list(samples) if samples is not None else read_index(self.root)
        self.rows = [r for r in rows if filter is None or filter(r)]
        self.input_size = input_size
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] | None = (
            {} if cache else None)

    def __len__(self) -> int:
        return len(self.rows)

    def read_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Full-size (rgb RGB uint8, labels uint8, depth float32 m, meta) of sample i."""
        prefix = self.root / self.rows[i]["sample"]
        rgb_path = prefix.parent / (prefix.name + "_rgb.jpg")
        lab_path = prefix.parent / (prefix.name + "_labels.png")
        dep_path = prefix.parent / (prefix.name + "_depth.png")
        meta_path = prefix.parent / (prefix.name + "_meta.json")
        bgr = _imread(rgb_path, cv2.IMREAD_COLOR)
        labels = _imread(lab_path, cv2.IMREAD_UNCHANGED)
        depth_png = _imread(dep_path, cv2.IMREAD_UNCHANGED)
        if labels.dtype != np.uint8 or labels.ndim != 2:
            raise DatasetError(f"{lab_path}: expected a uint8 single-channel PNG")
        if labels.max(initial=0) >= NUM_CLASSES:
            raise DatasetError(f"{lab_path}: class id {int(labels.max())} >= {NUM_CLASSES}")
        if depth_png.dtype != np.uint16 or depth_png.ndim != 2:
            raise DatasetError(f"{dep_path}: expected a uint16 single-channel PNG")
        if not (bgr.shape[:2] == labels.shape == depth_png.shape):
            raise DatasetError(f"{prefix}: image {bgr.shape[:2]}, labels {labels.shape} and "
                               f"depth {depth_png.shape} sizes differ")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"missing file {meta_path}") from None
        except (OSError, ValueError) as exc:
            raise DatasetError(f"corrupt JSON {meta_path}: {exc}") from None
        return bgr[..., ::-1], labels, decode_depth(depth_png, MAX_DEPTH), meta

    def _resize(self, rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray,
                interpolation: int) -> Arrays:
        """To the input size: images with ``interpolation``, labels and depth with
        :func:`resize_nearest`."""
        w, h = self.input_size
        if rgb.shape[:2] == (h, w):
            return rgb, labels, depth
        return (cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interpolation),
                resize_nearest(labels, (w, h)), resize_nearest(depth, (w, h)))

    def input_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Sample i at the input size: (rgb, labels, depth m, light state index)."""
        if self._cache is not None and i in self._cache:
            rgb, labels, depth, light = self._cache[i]
            return rgb, labels, depth.astype(np.float32), light
        rgb, labels, depth, meta = self.read_arrays(i)
        light = light_state_index(light_label(meta.get("traffic_light", {}),
                                              rgb.shape[0] * rgb.shape[1]))
        rgb, labels, depth = self._resize(rgb, labels, depth, cv2.INTER_AREA)
        if self._cache is not None:  # float16: 0.05 % steps, and 1000 m is exact enough
            self._cache[i] = (rgb, labels, depth.astype(np.float16), light)
        return rgb, labels, depth, light

    def __getitem__(self, i: int) -> dict[str, Any]:
        rgb, labels, depth, light = self.input_arrays(i)
        if self.transform is not None:
            rgb, labels, depth = self.transform((rgb, labels, depth))
            rgb, labels, depth = self._resize(rgb, labels, depth, cv2.INTER_LINEAR)
        return {"image": normalize_image(rgb),
                "labels": torch.from_numpy(np.ascontiguousarray(labels)).long(),
                "depth": torch.from_numpy(np.ascontiguousarray(depth)).float(),
                "light": torch.tensor(light, dtype=torch.long),
                "sample": self.rows[i]["sample"]}
