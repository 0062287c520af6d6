"""``drivestack calibrate``: how far the object stage misplaces each class's
objects with given weights, measured on collected data and written into the
weights file (``calibration``: :func:`perception.inference.range_scale_of`),
where the object stage applies it (:attr:`perception.objects.ObjectsConfig.range_scale`).

Why: the distance of an object from the camera is not right on average. A
pedestrian's comes mostly from where its blob meets the ground, and the network
draws a small class's blob a little too big, its foot below the real one: the
shipped weights place pedestrians within 20 m 6-8 % near (median true / detected
distance 1.076 and 1.065 in the 0-10 and 10-20 m bands of their training data),
0.8 m at 15 m, half of the 1.5 m that eval-perception's match allows. A
session-15 fine-tune placed vehicles 1-4 % near. The error is a property of the
weights, so it is fitted for them and travels with them (a re-trained network
gets its own).

How: the node's object stage, uncalibrated, runs on ``samples`` samples evenly
spread over each data set; each detection of a label is matched one-to-one,
nearest first, to the sample's actors of that label within ``match_m``
(:func:`perception.evaluate.match`), and for the matches nearer than
``max_range_m`` the ratio of the actor's distance from the camera over the
detection's (ego x-y, metres) is taken. The error depends on the distance (a
pedestrian's ground contact, which places it near, counts less the farther it
is), so the matches are split into ``band_m`` bands of the detected distance,
and each band with at least ``min_band_pairs`` of them gives a knot of the
label's curve (:data:`perception.objects.RangeCurve`): the band's median
distance and median ratio. The median keeps a knot from the occasional wrong
match a wide radius lets in; at least ``min_pairs`` matches per label are asked
for. Fit it on the weights' training data: held-out data sets and the Town01/02
maps measure it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.dataset import CollectedDataset, read_index
from perception.evaluate import camera_of, match
from perception.inference import (
    CALIBRATED_LABELS,
    load_weights,
    make_predictor,
    save_checkpoint,
    select_device,
)
from perception.objects import Detection, RangeCurve, detect_objects, scale_intrinsics


class CalibrateError(ValueError):
    """Calibration cannot be fitted (no data, too few matches): one line for the user."""


@dataclass(frozen=True)
class CalibrateConfig:
    weights: Path
    data: tuple[Path, ...]
    out: Path | None = None  # None: the weights file itself (and its .sha256)
    samples: int = 400  # per data set, evenly spread
    labels: tuple[str, ...] = ("vehicle", "pedestrian")
    match_m: float = 4.0
    max_range_m: float = 40.0
    band_m: float = 10.0
    min_pairs: int = 30
    min_band_pairs: int = 20
    device: str = "auto"
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise CalibrateError("calibrate needs at least one data set (--data)")
        if self.samples < 1:
            raise CalibrateError(f"--samples must be >= 1, not {self.samples}")
        unknown = [x for x in self.labels if x not in CALIBRATED_LABELS]
        if unknown:
            raise CalibrateError(f"cannot calibrate {unknown}: labels are "
                                 f"{', '.join(CALIBRATED_LABELS)}")


@dataclass
class CalibrationResult:
    range_scale: dict[str, RangeCurve]
    pairs: dict[str, int]
    out: Path
    seconds: float = 0.0
    summary: list[str] = field(default_factory=list)


def range_ratios(dets: Sequence[Detection], actors: Sequence[dict[str, Any]], label: str,
                 camera_xy: np.ndarray, match_m: float, max_range_m: float) -> np.ndarray:
    """(detected distance, true / detected distance) from the camera (ego x-y
    ``camera_xy``), (N, 2), of each ``label`` detection matched to an actor of that
    label within ``match_m`` and nearer than ``max_range_m``."""
    d_xy = np.array([d.position[:2] for d in dets if d.label == label]).reshape(-1, 2)
    a_xy = np.array([[a["x"], a["y"]] for a in actors if a["kind"] == label]).reshape(-1, 2)
    ratios = []
    for i, j in match(d_xy, a_xy, match_m):
        r = float(np.hypot(*(d_xy[i] - camera_xy)))
        if 0.0 < r < max_range_m:
            ratios.append((r, float(np.hypot(*(a_xy[j] - camera_xy))) / r))
    return np.array(ratios).reshape(-1, 2)


def fit_curve(ratios: np.ndarray, band_m: float, max_range_m: float,
              min_band_pairs: int) -> RangeCurve:
    """The knots (see the module doc) of ``ratios`` from :func:`range_ratios`;
    empty when no band has ``min_band_pairs`` matches."""
    knots = []
    for lo in np.arange(0.0, max_range_m, band_m):
        band = ratios[(ratios[:, 0] >= lo) & (ratios[:, 0] < lo + band_m)]
        if len(band) >= min_band_pairs:
            knots.append((round(float(np.median(band[:, 0])), 2),
                          round(float(np.median(band[:, 1])), 4)))
    return tuple(knots)


def fit_range_scale(cfg: CalibrateConfig, progress: bool = True
                    ) -> tuple[dict[str, RangeCurve], dict[str, int]]:
    """The per-label curves (see the module doc) and the matches behind each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    model, info = load_weights(cfg.weights)
    device = select_device(cfg.device, cfg.cpu_threads)
    predictor = make_predictor(model, bool(info.get("light_trained")), device,
                               cpu_threads=cfg.cpu_threads, source=Path(cfg.weights).name)
    sets = []
    for root in cfg.data:
        if not (Path(root) / "index.jsonl").is_file():
            raise CalibrateError(f"{root} is not a collected data set (no index.jsonl)")
        rows = read_index(root)
        picked = np.unique(np.linspace(0, len(rows) - 1, min(cfg.samples, len(rows)))
                           .astype(int)) if rows else []
        sets.append(CollectedDataset(root, (predictor.width, predictor.height),
                                     samples=[rows[i] for i in picked]))
    ratios: dict[str, list[np.ndarray]] = {label: [] for label in cfg.labels}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("calibrate", total=sum(len(ds) for ds in sets))
        for ds in sets:
            for i in range(len(ds)):
                rgb, _, _, meta = ds.read_arrays(i)
                with torch.inference_mode():
                    out = predictor.predict(np.ascontiguousarray(rgb[..., ::-1]))
                K, mount = camera_of(meta)
                oh, ow = out["seg"].shape
                dets = detect_objects(out["seg"], out["depth"], scale_intrinsics(K, ow, oh),
                                      mount, out["probs"],
                                      vehicle_score=out["vehicle_score"])
                camera_xy = np.array([mount.location.x, mount.location.y])
                for label in cfg.labels:
                    ratios[label].append(range_ratios(dets, meta["actors"], label, camera_xy,
                                                      cfg.match_m, cfg.max_range_m))
                bar.advance(task)
    scale, pairs = {}, {}
    for label, parts in ratios.items():
        r = np.concatenate(parts) if parts else np.zeros((0, 2))
        curve = fit_curve(r, cfg.band_m, cfg.max_range_m, cfg.min_band_pairs)
        if len(r) < cfg.min_pairs or not curve:
            raise CalibrateError(
                f"only {len(r)} {label} detections matched an actor within {cfg.match_m:g} m "
                f"in {', '.join(map(str, cfg.data))}; calibrating needs {cfg.min_pairs}, "
                f"{cfg.min_band_pairs} in one {cfg.band_m:g} m band of distance (more "
                "samples or data sets with traffic)")
        scale[label], pairs[label] = curve, len(r)
    return scale, pairs


def write_calibration(weights: Path, out: Path, calibration: dict[str, Any]) -> Path:
    """Copy the checksummed weights file ``weights`` to ``out`` (the same path:
    in place) with ``calibration`` as its entry of that name, and write its
    checksum; returns ``out``."""
    model, info = load_weights(weights)
    save_checkpoint({**info, "model": model.state_dict(), "calibration": calibration}, out)
    return out


def calibrate(cfg: CalibrateConfig, progress: bool = True,
              log: Callable[[str], None] = print) -> CalibrationResult:
    """Fit the calibration of ``cfg.weights`` and write it (see the module doc)."""
    t0 = time.perf_counter()
    scale, pairs = fit_range_scale(cfg, progress)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.weights)
    # the labels not fitted now keep their curves (and where those were fitted)
    before = load_weights(cfg.weights)[1].get("calibration") or {}
    kept = {label: curve for label, curve in before.get("range_scale", {}).items()
            if label not in scale}
    earlier = before.get("fits") or {label: {  # a calibration from before "fits"
        "data": before.get("data"), "samples_per_set": before.get("samples_per_set"),
        "pairs": before.get("pairs", {}).get(label)} for label in kept}
    fits = {label: fit for label, fit in earlier.items() if label in kept}
    fits.update({label: {"data": [str(p) for p in cfg.data], "samples_per_set": cfg.samples,
                         "pairs": pairs[label]} for label in scale})
    write_calibration(Path(cfg.weights), out, {
        "range_scale": {**kept, **{label: [list(k) for k in curve]
                                   for label, curve in scale.items()}},
        "pairs": {**{k: v for k, v in before.get("pairs", {}).items() if k in kept}, **pairs},
        "match_m": cfg.match_m, "max_range_m": cfg.max_range_m, "band_m": cfg.band_m,
        "fits": fits})
    result = CalibrationResult(scale, pairs, out, time.perf_counter() - t0)
    result.summary = [
        f"{label}: range x " + ", ".join(f"{f:.3f} at {r:.1f} m" for r, f in scale[label])
        + f" (median true / detected distance per {cfg.band_m:g} m band, {pairs[label]} "
        f"matches within {cfg.match_m:g} m, nearer than {cfg.max_range_m:g} m)"
        for label in scale]
    for line in result.summary:
        log(line)
    return result
