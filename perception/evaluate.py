"""``drivestack eval-perception``: how well trained weights see, on a collected data set.

Run it on data the weights never trained on: seeds and weathers held out from
training (``drivestack collect --seed`` with another seed), and maps never trained
on (``--maps Town01 Town02 --map-dir ../shared/maps/carla``). Every sample goes
through the perception node's own path (:func:`perception.inference.make_predictor`,
:func:`perception.objects.detect_objects`, :class:`perception.tracker.Tracker`), so
the figures are those of the node.

Figures
    ``miou`` over road, road line, vehicle, pedestrian (:data:`perception.train.
    MIOU_CLASSES`), IoU per class, of the node's segmentation at the network's
    input size (the head's probabilities upsampled with the image as guide,
    :mod:`perception.refine`; labels resized nearest-neighbour); ``miou_head`` the
    same of the network alone (its logits upsampled bilinearly);
    ``depth_absrel`` mean |d - d*| / d* over pixels closer than 80 m;
    detection precision and recall per label and distance band: a truth actor counts
    when at least ``min_visible_px`` of its pixels are in view (at 640 x 360; scaled
    with the image area), a detection matches a truth actor of its label whose
    centre (ego frame, x-y) is within ``match_m`` (1.5 m), one to one, nearest
    first. Recall is per truth actor in the band (by its distance), precision per
    detection in the band (by the detection's distance); a detection of an actor
    hidden behind others (too few pixels to count as truth) is not a false positive;
    ``detection_true_depth``: the same with the network's segmentation but the true
    depth (sampled at the head's pixel centres; no ground contact, which only
    corrects the network's depth): how much of what detection misses is the depth's
    doing rather than the segmentation's;
    ``velocity_error``: tracked objects (the tracker run over each episode's samples
    in order, world frame from the recorded ego pose) matched to truth as above,
    the norm of the ground-velocity error (m/s), mean / median / p90;
    ``phantoms_in_path``: what would stop or mislead the car: detections, and the
    tracker's confirmed tracks, in the ego's path (ego frame, straight ahead:
    0 <= x < ``phantom_range_m``, |y| <= ``phantom_half_width_m``) with no actor of
    any kind, seen or hidden, centred within ``phantom_m`` (a real car placed a
    few metres off by the depth is a localisation error, not a phantom): the
    fraction of samples with at least one, and the count. Per-frame precision does
    not weigh a phantom car 8 m ahead at a junction above a real car placed 2 m off
    at 25 m; driving does;
    ``placement``: per label and band, of the visible actors the share with a
    detection within ``placement_m`` (4 m) and its offset along the camera's line
    of sight and across it; what the misses are (placed off, merged with another
    actor's, unseen) and what the false positives are (placed off, a second box of
    a matched actor, phantom): :data:`MISS_KINDS`, :data:`FALSE_KINDS`;
    ``light_accuracy``: the state the node reads from the lamps
    (:func:`perception.lights.read_lamps`: red, yellow, green, none) against the
    state of the light governing the ego lane as the image shows it
    (:func:`perception.collect.light_label`: "none" when its lit lamp is out of
    view or too small); ``light_head_accuracy`` the same for the network's light
    head, when trained.

Outputs: ``OUT/metrics.json`` and ``OUT/examples.png`` (rows of camera image with
detections, predicted segmentation, true segmentation).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bus.messages import CameraIntrinsics, Rotation, Transform, Vector3
from perception.classes import (
    CLASS_NAMES,
    NUM_CLASSES,
    PALETTE,
    TrainClass,
    light_state_index,
)
from perception.collect import light_label
from perception.dataset import CollectedDataset, read_index
from perception.inference import (
    load_weights,
    make_predictor,
    range_scale_of,
    select_device,
)
from perception.lights import horizon_row, read_lamps
from perception.numeric import resize_nearest
from perception.objects import (
    OBSTACLE_CLASSES,
    ObjectsConfig,
    detect_objects,
    scale_intrinsics,
)
from perception.tracker import Tracker
from perception.train import ABSREL_MAX_DEPTH, MIOU_CLASSES, confusion, iou_per_class

REFERENCE_AREA = 640 * 360  # min_visible_px is given at this image size
#: Colours (BGR) of the training classes in the example grid.
class EvalError(ValueError):
    """A user error in the evaluation settings or data (one line)."""


@dataclass(frozen=True)
class EvalConfig:
    data: Path
    weights: Path
    out: Path
    device: str = "auto"
    cpu_threads: int | None = None
    #: distance bands (m) for precision and recall, each [lo, hi)
    bands: tuple[tuple[float, float], ...] = ((0.0, 20.0), (20.0, 40.0), (0.0, 30.0))
    match_m: float = 1.5
    min_visible_px: int = 150
    max_samples: int | None = None
    examples: int = 6
    #: the ego's path corridor and the actor-free radius of a phantom (m)
    phantom_range_m: float = 30.0
    phantom_half_width_m: float = 2.0
    phantom_m: float = 4.0
    #: placement: each visible actor's nearest detection of its label within this (m)
    placement_m: float = 4.0


#: A visible actor not matched: its nearest detection within ``placement_m`` is
#: placed off (matched to nothing), merged (matched to another actor: one box for
#: two), or there is none within it (unseen).
MISS_KINDS = ("off", "merged", "unseen")
#: A detection not matched: the nearest actor of its label within ``placement_m``
#: (seen or hidden) is matched to nothing (off: the same error as a miss "off"),
#: or to another detection (split: two boxes for one), or there is none (phantom).
FALSE_KINDS = ("off", "split", "phantom")


@dataclass
class _Counts:
    truth: int = 0
    found: int = 0
    detections: int = 0
    correct: int = 0
    #: (radial, across) offset (m) of each visible actor's nearest detection within
    #: ``placement_m``: along the camera's line of sight to the actor (+ farther)
    #: and across it
    offsets: list[tuple[float, float]] = field(default_factory=list)
    #: what the misses and the false positives are (:data:`MISS_KINDS`,
    #: :data:`FALSE_KINDS`): counts by kind
    misses: Counter[str] = field(default_factory=Counter)
    false_positives: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"truth": self.truth, "detections": self.detections,
                "recall": self.found / self.truth if self.truth else None,
                "precision": self.correct / self.detections if self.detections else None}


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    metrics_path: Path
    examples_path: Path | None
    seconds: float = 0.0
    summary: list[str] = field(default_factory=list)


def match(det_xy: np.ndarray, truth_xy: np.ndarray, max_m: float) -> list[tuple[int, int]]:
    """One-to-one (detection, truth) pairs closer than ``max_m``, nearest first."""
    if len(det_xy) == 0 or len(truth_xy) == 0:
        return []
    d = np.linalg.norm(det_xy[:, None, :] - truth_xy[None, :, :], axis=2)
    pairs, used_d, used_t = [], set(), set()
    for flat in np.argsort(d, axis=None):
        i, j = divmod(int(flat), d.shape[1])
        if d[i, j] > max_m:
            break
        if i in used_d or j in used_t:
            continue
        pairs.append((i, j))
        used_d.add(i)
        used_t.add(j)
    return pairs


def _band_key(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}m"


def camera_of(meta: dict[str, Any]) -> tuple[CameraIntrinsics, Transform]:
    """A collected sample's camera: intrinsics and mount (ego frame), from its meta."""
    c, m = meta["camera"], meta["camera"]["mount"]
    K = CameraIntrinsics(c["width"], c["height"], c["fx"], c["fy"], c["cx"], c["cy"])
    mount = Transform(Vector3(m["x"], m["y"], m["z"]), Rotation(pitch=m["pitch"], yaw=m["yaw"]))
    return K, mount


def _colour(labels: np.ndarray) -> np.ndarray:
    return PALETTE[np.clip(labels, 0, NUM_CLASSES - 1)]


def _example_row(bgr: np.ndarray, pred: np.ndarray, truth: np.ndarray,
                 boxes: Sequence[tuple[str, float, float]], K: CameraIntrinsics,
                 mount: Transform, size: tuple[int, int]) -> np.ndarray:
    """Camera image (detections marked at their ground position) | prediction | truth."""
    from bus.frames import ego_to_camera, project

    w, h = size
    img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    Ks = scale_intrinsics(K, w, h)
    for label, x, y in boxes:
        cam = ego_to_camera(np.array([[x, y, 0.0]]), mount)
        if cam[0, 2] <= 0.5:
            continue
        u, v = project(cam, Ks)[0][0]
        colour = (0, 0, 255) if label == "pedestrian" else (255, 128, 0)
        cv2.drawMarker(img, (int(u), int(v)), colour, cv2.MARKER_TILTED_CROSS, 10, 2)
    p = cv2.resize(_colour(pred), (w, h), interpolation=cv2.INTER_NEAREST)
    t = cv2.resize(_colour(truth), (w, h), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([img, p, t], axis=1)


def evaluate_perception(cfg: EvalConfig, progress: bool = True,
                        log: Callable[[str], None] = print) -> EvalResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if not (Path(cfg.data) / "index.jsonl").is_file():
        raise EvalError(f"{cfg.data} is not a collected data set (no index.jsonl; make one "
                        "with `drivestack collect`)")
    t0 = time.perf_counter()
    device = select_device(cfg.device, cfg.cpu_threads)
    model, info = load_weights(cfg.weights)
    light_trained = bool(info.get("light_trained", False))
    predictor = make_predictor(model, light_trained, device, cpu_threads=cfg.cpu_threads,
                               source=Path(cfg.weights).name)
    w, h = predictor.width, predictor.height
    rows = read_index(cfg.data)
    if cfg.max_samples is not None:
        rows = rows[:cfg.max_samples]
    if not rows:
        raise EvalError(f"{cfg.data}: the data set is empty")
    ds = CollectedDataset(cfg.data, (w, h), samples=rows)
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    conf_head = torch.zeros_like(conf)
    absrel_sum, absrel_n = 0.0, 0
    light_ok = light_n = head_ok = head_n = 0
    counts = {(label, b): _Counts() for label in OBSTACLE_CLASSES.values() for b in cfg.bands}
    counts_true_depth = {key: _Counts() for key in counts}
    # the node's object stage with the weights' calibration; with the true depth,
    # without either (no network depth to correct, no contact to fuse it with)
    objects = ObjectsConfig(range_scale=range_scale_of(info.get("calibration"), cfg.weights))
    true_depth_objects = ObjectsConfig(ground_contact=())
    vel_err: list[float] = []
    phantoms = {"detections": _Phantoms(), "tracks": _Phantoms()}
    trackers: dict[str, Tracker] = {}
    pick = set(np.linspace(0, len(rows) - 1, min(cfg.examples, len(rows))).astype(int).tolist())
    grid: list[np.ndarray] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("eval-perception", total=len(rows))
        for i, row in enumerate(rows):
            rgb, labels_full, depth_full, meta = ds.read_arrays(i)
            labels, depth = resize_nearest(labels_full, (w, h)), resize_nearest(depth_full, (w, h))
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            raw = predictor.infer(bgr)
            out = predictor.finish(raw, 0, bgr)
            # segmentation (the node's) and depth at the input size
            seg_full = out["segmentation"]
            truth_ids = torch.from_numpy(labels).long().flatten()
            conf += confusion(torch.from_numpy(seg_full).long().flatten(), truth_ids)
            # the network alone: its logits upsampled bilinearly
            conf_head += confusion(F.interpolate(raw["seg"].float(), size=(h, w),
                                                 mode="bilinear", align_corners=False
                                                 ).argmax(1).flatten().cpu(), truth_ids)
            d_pred = F.interpolate(raw["depth"].float().log()[:, None], size=(h, w),
                                   mode="bilinear", align_corners=False)[0, 0].exp().cpu().numpy()
            m = (depth >= 0.1) & (depth < ABSREL_MAX_DEPTH)
            absrel_sum += float((np.abs(d_pred[m] - depth[m]) / depth[m]).sum())
            absrel_n += int(m.sum())
            # objects, the node's way
            K, mount = camera_of(meta)
            oh, ow = out["seg"].shape
            K_out = scale_intrinsics(K, ow, oh)
            dets = detect_objects(out["seg"], out["depth"], K_out, mount, out["probs"], objects,
                                  vehicle_score=out["vehicle_score"])
            scale = (K.width * K.height) / REFERENCE_AREA
            _score_detections(cfg, dets, meta["actors"], scale, counts,
                              np.array([mount.location.x, mount.location.y]))
            true_depth = resize_nearest(depth_full, (ow, oh))
            _score_detections(cfg, detect_objects(out["seg"], true_depth, K_out, mount,
                                                  out["probs"], true_depth_objects),
                              meta["actors"], scale, counts_true_depth)
            # tracking over the episode's samples in order
            ego = meta["ego"]
            pose = Transform(Vector3(ego["x"], ego["y"], 0.0), Rotation(yaw=ego["yaw"]))
            tracker = trackers.setdefault(str(row.get("episode", "")), Tracker())
            tracks = tracker.update(dets, float(meta["time"]), pose)
            vel_err += _velocity_errors(cfg, tracks, meta["actors"])
            phantoms["detections"].add(phantoms_in_path(
                cfg, np.array([d.position[:2] for d in dets]), meta["actors"]))
            phantoms["tracks"].add(phantoms_in_path(
                cfg, np.array([[t.position.x, t.position.y] for t in tracks]), meta["actors"]))
            truth = light_state_index(light_label(meta["traffic_light"],
                                                  rgb.shape[0] * rgb.shape[1]))
            state = read_lamps(bgr, out["probs"][int(TrainClass.TRAFFIC_LIGHT)],
                               horizon=horizon_row(K, mount)).state
            light_ok += int(light_state_index(state) == truth)
            light_n += 1
            if light_trained and "light" in out:
                head_ok += int(int(out["light"].argmax()) == truth)
                head_n += 1
            if i in pick:
                grid.append(_example_row(bgr, seg_full, labels_full, [
                    (d.label, float(d.position[0]), float(d.position[1])) for d in dets],
                    K, mount, (w, h)))
            bar.advance(task)
    iou = iou_per_class(conf)
    metrics: dict[str, Any] = {
        "data": str(cfg.data), "weights": str(cfg.weights), "samples": len(rows),
        "maps": sorted({str(r.get("map", "")) for r in rows}),
        "miou": _miou(iou), "miou_head": _miou(iou_per_class(conf_head)),
        "miou_classes": [CLASS_NAMES[int(c)] for c in MIOU_CLASSES],
        "iou": {CLASS_NAMES[k]: (None if np.isnan(v) else round(float(v), 4))
                for k, v in enumerate(iou)},
        "depth_absrel": round(absrel_sum / absrel_n, 4) if absrel_n else None,
        "detection": _detection_figures(cfg, counts),
        "detection_true_depth": _detection_figures(cfg, counts_true_depth),
        "placement": _placement_figures(cfg, counts), "placement_m": cfg.placement_m,
        "match_m": cfg.match_m, "min_visible_px": cfg.min_visible_px,
        "velocity_error": _summary(vel_err),
        "phantoms_in_path": {
            "range_m": cfg.phantom_range_m, "half_width_m": cfg.phantom_half_width_m,
            "no_actor_within_m": cfg.phantom_m,
            **{k: v.as_dict() for k, v in phantoms.items()}},
        "light_accuracy": round(light_ok / light_n, 4) if light_n else None,
        "light_head_accuracy": round(head_ok / head_n, 4) if head_n else None,
        "light_trained": light_trained,
    }
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=1))
    examples_path = None
    if grid:
        examples_path = out_dir / "examples.png"
        if not cv2.imwrite(str(examples_path), np.concatenate(grid, axis=0)):
            raise OSError(f"cannot write {examples_path}")
    result = EvalResult(metrics, metrics_path, examples_path, time.perf_counter() - t0)
    result.summary = summary_lines(metrics)
    for line in result.summary:
        log(line)
    return result


@dataclass
class _Phantoms:
    samples: int = 0
    with_phantom: int = 0
    count: int = 0

    def add(self, n: int) -> None:
        self.samples += 1
        self.with_phantom += int(n > 0)
        self.count += n

    def as_dict(self) -> dict[str, Any]:
        return {"samples_with": self.with_phantom, "count": self.count,
                "sample_rate": round(self.with_phantom / self.samples, 4)
                if self.samples else None}


def phantoms_in_path(cfg: EvalConfig, xy: np.ndarray, actors: Sequence[dict[str, Any]]
                     ) -> int:
    """How many objects at ``xy`` ((N, 2) ego frame, m) are in the ego's path
    corridor with no actor centred within ``cfg.phantom_m``."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    in_path = ((xy[:, 0] >= 0.0) & (xy[:, 0] < cfg.phantom_range_m)
               & (np.abs(xy[:, 1]) <= cfg.phantom_half_width_m))
    a_xy = np.array([[a["x"], a["y"]] for a in actors], float).reshape(-1, 2)
    if len(a_xy):
        gap = np.linalg.norm(xy[:, None, :] - a_xy[None, :, :], axis=2).min(axis=1)
        in_path &= gap > cfg.phantom_m
    return int(in_path.sum())


def _detection_figures(cfg: EvalConfig, counts: dict[tuple[str, tuple[float, float]], _Counts]
                       ) -> dict[str, dict[str, dict[str, Any]]]:
    return {label: {_band_key(*b): counts[label, b].as_dict() for b in cfg.bands}
            for label in OBSTACLE_CLASSES.values()}


def _placement_figures(cfg: EvalConfig,
                       counts: dict[tuple[str, tuple[float, float]], _Counts]
                       ) -> dict[str, dict[str, dict[str, Any]]]:
    """Where the detections land, per label and band: of the visible actors, the
    share with a detection of their label within ``placement_m``, and for those the
    nearest one's offset along the camera's line of sight (signed median, + is
    farther; |radial| p50, p80) and across it (|across| p50, p80), in metres, and
    the misses and false positives by kind: what a miss of the 1.5 m match is made
    of."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label in OBSTACLE_CLASSES.values():
        out[label] = {}
        for b in cfg.bands:
            c = counts[label, b]
            off = np.array(c.offsets, float).reshape(-1, 2)
            rad, acr = off[:, 0], np.abs(off[:, 1])

            def q(x: np.ndarray, p: float) -> float | None:
                return round(float(np.percentile(x, p)), 3) if len(x) else None

            out[label][_band_key(*b)] = {
                "truth": c.truth, "near_share": round(len(off) / c.truth, 4) if c.truth else None,
                "radial_median": q(rad, 50), "radial_abs_p50": q(np.abs(rad), 50),
                "radial_abs_p80": q(np.abs(rad), 80), "across_abs_p50": q(acr, 50),
                "across_abs_p80": q(acr, 80),
                "misses": {k: c.misses[k] for k in MISS_KINDS},
                "false_positives": {k: c.false_positives[k] for k in FALSE_KINDS}}
    return out


def _score_detections(cfg: EvalConfig, dets: Sequence[Any], actors: Sequence[dict[str, Any]],
                      scale: float, counts: dict[tuple[str, tuple[float, float]], _Counts],
                      camera_xy: np.ndarray | None = None) -> None:
    """Adds one sample's detections to ``counts``; with ``camera_xy`` (ego x-y of
    the camera, m) also each visible actor's placement offset (``_Counts.offsets``)."""
    for label in OBSTACLE_CLASSES.values():
        d_xy = np.array([d.position[:2] for d in dets if d.label == label]).reshape(-1, 2)
        every = [a for a in actors if a["kind"] == label]
        a_xy = np.array([[a["x"], a["y"]] for a in every]).reshape(-1, 2)
        visible = np.array([a["visible_pixels"] >= cfg.min_visible_px * scale for a in every],
                           bool)
        pairs = match(d_xy, a_xy, cfg.match_m)
        det_ok = {i for i, _ in pairs}
        found = {j for _, j in pairs}
        d_r = np.hypot(d_xy[:, 0], d_xy[:, 1])
        a_r = np.hypot(a_xy[:, 0], a_xy[:, 1])
        for b in cfg.bands:
            c = counts[label, b]
            lo, hi = b
            for j in np.nonzero(visible & (a_r >= lo) & (a_r < hi))[0]:
                c.truth += 1
                c.found += int(j in found)
                gap = d_xy - a_xy[j]
                k = int(np.argmin(np.hypot(gap[:, 0], gap[:, 1]))) if len(gap) else -1
                near = k >= 0 and float(np.hypot(*gap[k])) <= cfg.placement_m
                if j not in found:
                    c.misses["unseen" if not near else "merged" if k in det_ok else "off"] += 1
                if camera_xy is None or not near:
                    continue
                ray = a_xy[j] - camera_xy
                ray = ray / max(float(np.hypot(*ray)), 1e-6)
                c.offsets.append((float(gap[k] @ ray),
                                  float(gap[k] @ np.array([-ray[1], ray[0]]))))
            for i in np.nonzero((d_r >= lo) & (d_r < hi))[0]:
                c.detections += 1
                c.correct += int(i in det_ok)
                if i in det_ok:
                    continue
                gap = np.hypot(*(a_xy - d_xy[i]).T) if len(a_xy) else np.zeros(0)
                j = int(np.argmin(gap)) if len(gap) else -1
                c.false_positives["phantom" if j < 0 or gap[j] > cfg.placement_m
                                  else "split" if j in found else "off"] += 1


def _velocity_errors(cfg: EvalConfig, tracks: Sequence[Any],
                     actors: Sequence[dict[str, Any]]) -> list[float]:
    errs = []
    for label in OBSTACLE_CLASSES.values():
        mine = [t for t in tracks if t.label == label]
        truth = [a for a in actors if a["kind"] == label]
        t_xy = np.array([[t.position.x, t.position.y] for t in mine]).reshape(-1, 2)
        a_xy = np.array([[a["x"], a["y"]] for a in truth]).reshape(-1, 2)
        for i, j in match(t_xy, a_xy, cfg.match_m):
            v = mine[i].velocity
            errs.append(float(math.hypot(v.x - truth[j]["velocity"][0],
                                         v.y - truth[j]["velocity"][1])))
    return errs


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    a = np.asarray(values)
    return {"count": len(a), "mean": round(float(a.mean()), 3),
            "median": round(float(np.median(a)), 3),
            "p90": round(float(np.percentile(a, 90)), 3)}


def _miou(iou: np.ndarray) -> float | None:
    sel = [iou[int(c)] for c in MIOU_CLASSES]
    return None if np.all(np.isnan(sel)) else round(float(np.nanmean(sel)), 4)


def summary_lines(m: dict[str, Any]) -> list[str]:
    """A short human-readable summary of :func:`evaluate_perception`'s metrics."""
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    per_class = ", ".join(f"{k} {f(m['iou'][k])}" for k in m["miou_classes"])
    lines = [f"{m['samples']} samples ({', '.join(m['maps'])}): mIoU {f(m['miou'])} "
             f"({per_class}; the head's alone, upsampled bilinearly: "
             f"{f(m.get('miou_head'))}), "
             f"depth AbsRel {f(m['depth_absrel'])}, light accuracy {f(m['light_accuracy'])} "
             f"(the network's light head {f(m.get('light_head_accuracy'))})"]
    for label, bands in m["detection"].items():
        lines.append(f"{label}: " + "; ".join(
            f"{band} recall {f(c['recall'])} precision {f(c['precision'])} "
            f"({c['truth']} truth, {c['detections']} detections)" for band, c in bands.items()))
    if "detection_true_depth" in m:
        lines.append("with the true depth: " + "; ".join(
            f"{label} {band} {f(c['recall'])}/{f(c['precision'])}"
            for label, bands in m["detection_true_depth"].items()
            for band, c in bands.items()) + " (recall/precision)")
    for label, bands in m.get("placement", {}).items():
        lines.append(f"{label} placement, nearest detection within {m['placement_m']:g} m: "
                     + "; ".join(
                         f"{band} {f(c['near_share'])} of {c['truth']}, radial median "
                         f"{f(c['radial_median'])} |p50| {f(c['radial_abs_p50'])} |p80| "
                         f"{f(c['radial_abs_p80'])}, across |p50| {f(c['across_abs_p50'])} "
                         f"|p80| {f(c['across_abs_p80'])}" for band, c in bands.items()))
        lines.append(f"{label} errors: " + "; ".join(
            f"{band} misses " + ", ".join(f"{k} {n}" for k, n in c["misses"].items())
            + ", false positives " + ", ".join(f"{k} {n}"
                                               for k, n in c["false_positives"].items())
            for band, c in bands.items() if "misses" in c))
    v = m["velocity_error"]
    lines.append(f"tracked velocity error: mean {f(v['mean'])} m/s, median {f(v['median'])}, "
                 f"p90 {f(v['p90'])} ({v['count']} matches)")
    if "phantoms_in_path" in m:
        p = m["phantoms_in_path"]
        lines.append(
            f"phantoms in the ego's path (0-{p['range_m']:g} m ahead, within "
            f"{p['half_width_m']:g} m of its axis, no actor within {p['no_actor_within_m']:g} m): "
            + "; ".join(f"{k} in {f(p[k]['sample_rate'])} of the samples ({p[k]['count']})"
                        for k in ("detections", "tracks")))
    return lines

