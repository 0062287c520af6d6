"""``drivestack train``: train the perception network on one or more collected data
sets (:func:`perception.dataset.read_data_sets`: several are one set).

Split: by episode (~20 % of the episodes validate: the last episodes of each map
in turn, so every map with three or more episodes is validated) when there are several,
else the last ~20 % of the samples (at least one); a one-sample set validates on
itself. Augmentation (training only, the same crop on image, labels and depth):
a crop of 80-100 % of the image at its aspect ratio (resized back by the data set:
a zoom by 1 / s), vertically centred on the principal point (the collection
cameras' is the image centre) and anywhere across, with depth times s, which keeps
the two cues a fixed camera gives of distance, an object's size and how far below
the horizon it meets the ground, telling the same story (a crop anywhere, depth
unchanged, moved the horizon by up to 16 rows of 160 and taught the network that
neither cue can be trusted; two-epoch fine-tunes of the shipped weights, one with
each, reached held-out depth AbsRel 0.100 against 0.145 on the built-in maps and
0.095 against 0.129 on Town01/02); the far plane (sky) is not scaled; a
horizontal flip (half the samples), colour jitter (brightness, contrast,
saturation), Gaussian blur and Gaussian noise, all at the input size on
samples the data set keeps decoded in memory. Before the crop, with probability
``paste_walkers``, one or two walkers cut from other training samples are pasted
(:mod:`perception.paste`), three in four over a vehicle when the rows they span
show one. Class weights:
:func:`perception.model.class_weights` of the training labels' pixel counts; light
states by :func:`perception.model.light_state_weights` of the index's labels. AdamW,
learning rate warmed up linearly then cosine, a fixed seed (python, numpy, torch;
``torch.use_deterministic_algorithms`` is not forced).

Each epoch: validation mIoU (mean over road, road line, vehicle, pedestrian of the
classes present), IoU per class, depth AbsRel (pixels closer than 80 m) and the
light-state accuracy; the weights of the best mIoU go to ``out`` and the last
epoch's to ``<out stem>_last.pt``, both with their ``.sha256``
(:func:`perception.inference.save_weights`), and ``<out stem>_metrics.json``
holds the history.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from perception.classes import (
    CLASS_NAMES,
    LIGHT_STATES,
    NUM_CLASSES,
    TrainClass,
    light_state_index,
)
from perception.collect import INDEX_FILE
from perception.dataset import CollectedDataset, read_data_sets
from perception.inference import save_weights, select_device
from perception.model import (
    MAX_DEPTH,
    MIN_DEPTH,
    MODEL_PRESETS,
    build_model,
    class_weights,
    light_state_weights,
    multitask_loss,
)
from perception.paste import (
    WalkerCutout,
    paste_walker,
    place_over_vehicle,
    walker_cutouts,
)

MIOU_CLASSES = (TrainClass.ROAD, TrainClass.ROAD_LINE, TrainClass.VEHICLE,
                TrainClass.PEDESTRIAN)
ABSREL_MAX_DEPTH = 80.0


class TrainError(ValueError):
    """A user error in the training settings or data (one line)."""


@dataclass(frozen=True)
class TrainConfig:
    #: collected data set directories, trained on as one set
    data: tuple[Path, ...]
    out: Path
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    device: str = "auto"
    seed: int = 0
    input_size: tuple[int, int] = (320, 160)
    max_iters: int | None = None  # stop after this many optimiser steps (tests)
    cpu_threads: int | None = None
    augment: bool = True
    val_fraction: float = 0.2
    #: start from these weights (fine-tuning): every tensor whose name and shape
    #: match is copied, the rest (e.g. a head whose shape changed) starts fresh
    init: Path | None = None
    #: weight of the depth-gradient term (:func:`perception.model.depth_gradient_loss`);
    #: 0 turns it off
    depth_grad_weight: float = 1.0
    #: m: obstacle pixels count more in the depth loss with the square of their
    #: distance, out to this (:func:`perception.model.multitask_loss`); 0: off.
    #: One epoch with 30 from the shipped weights (session 16): vehicles within
    #: 30 m, held out, 0.60 / 0.64 -> 0.65 / 0.65 (built-in), 0.42 / 0.44 -> 0.45 /
    #: 0.48 (Town01/02)
    far_obstacles_m: float = 0.0
    #: probability that a training sample gets walkers pasted (perception.paste);
    #: off by default: at 0.5 it found the walker in front of a car but made false
    #: walkers (README, "Training")
    paste_walkers: float = 0.0
    #: the network's size, a name in :data:`perception.model.MODEL_PRESETS`
    model: str = "small"
    #: data-loading processes; 0 loads in the training process and keeps every
    #: sample decoded in memory (right for a CPU, whose cores the training uses).
    #: With workers each decodes and augments the samples it is given from disk
    #: (the operating system's file cache keeps the set in memory): a GPU is fed
    #: faster than one process augments, and a sample cache per worker would hold
    #: the set once per worker
    workers: int = 0


@dataclass
class TrainResult:
    weights: Path
    epochs: int
    iterations: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        return max(self.history, key=lambda h: h["miou"] if not math.isnan(h["miou"]) else -1)


# --------------------------------------------------------------------- augmentation
class Augment:
    """Training augmentation on the numpy arrays (rgb uint8, labels, depth);
    ``walkers`` to paste with probability ``paste_p`` (see the module doc)."""

    def __init__(self, seed: int, walkers: Sequence[WalkerCutout] = (),
                 paste_p: float = 0.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.walkers = list(walkers)
        self.paste_p = paste_p

    def __call__(self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb, labels, depth = arrays
        r = self.rng
        h, w = labels.shape
        if self.walkers and r.random() < self.paste_p:
            # the arrays may be the data set's cache: paste into copies
            rgb, labels, depth = rgb.copy(), labels.copy(), depth.astype(np.float32)
            for _ in range(int(r.integers(1, 3))):
                cut = self.walkers[int(r.integers(len(self.walkers)))]
                left = place_over_vehicle(labels, cut, r) if r.random() < 0.75 else None
                if left is None:
                    left = int(r.integers(0, w - cut.mask.shape[1] + 1))
                paste_walker(rgb, labels, depth, cut, left)
        s = r.uniform(0.8, 1.0)
        ch, cw = max(16, int(h * s)), max(16, int(w * s))
        y0, x0 = (h - ch) // 2, int(r.integers(0, w - cw + 1))  # see the module doc
        rgb = rgb[y0:y0 + ch, x0:x0 + cw]
        labels = labels[y0:y0 + ch, x0:x0 + cw]
        depth = depth[y0:y0 + ch, x0:x0 + cw]
        # the zoom brings everything nearer, but not the far plane (sky: no depth)
        depth = np.where(depth < MAX_DEPTH, depth * np.float32(ch / h), depth)
        if r.random() < 0.5:  # mirror: the same classes, lanes on the other side
            rgb, labels, depth = rgb[:, ::-1], labels[:, ::-1], depth[:, ::-1]
        labels, depth = np.ascontiguousarray(labels), np.ascontiguousarray(depth)
        x = rgb.astype(np.float32)
        x = x * r.uniform(0.7, 1.3)  # brightness
        mean = x.mean()
        x = (x - mean) * r.uniform(0.7, 1.3) + mean  # contrast
        grey = x.mean(2, keepdims=True)
        x = (x - grey) * r.uniform(0.7, 1.3) + grey  # saturation
        if r.random() < 0.3:
            x = cv2.GaussianBlur(x, (0, 0), r.uniform(0.3, 1.5))
        if r.random() < 0.3:
            x = x + r.normal(0.0, r.uniform(2.0, 8.0), x.shape).astype(np.float32)
        return np.clip(x, 0, 255).astype(np.uint8), labels, depth


# ------------------------------------------------------------------------- metrics
def confusion(pred: torch.Tensor, labels: torch.Tensor, n: int = NUM_CLASSES) -> torch.Tensor:
    k = (labels >= 0) & (labels < n)
    return torch.bincount(labels[k] * n + pred[k], minlength=n * n).reshape(n, n).cpu()


def iou_per_class(conf: torch.Tensor) -> np.ndarray:
    """IoU per class from a confusion matrix (rows truth); NaN where a class is in
    neither the truth nor the prediction."""
    c = conf.double().numpy()
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device
             ) -> dict[str, Any]:
    model.eval()
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    absrel_sum, absrel_n, light_ok, light_n = 0.0, 0, 0, 0
    for batch in loader:
        x = batch["image"].to(device)
        out = model(x)
        labels = batch["labels"].to(device)
        conf += confusion(out["seg"].argmax(1).flatten(), labels.flatten())
        d = batch["depth"].to(device)
        m = (d >= MIN_DEPTH) & (d < ABSREL_MAX_DEPTH)
        absrel_sum += float(((out["depth"][m] - d[m]).abs() / d[m]).sum())
        absrel_n += int(m.sum())
        if "light" in out:
            light_ok += int((out["light"].argmax(1).cpu() == batch["light"]).sum())
            light_n += len(batch["light"])
    iou = iou_per_class(conf)
    sel = [iou[int(c)] for c in MIOU_CLASSES]
    miou = float(np.nanmean(sel)) if not np.all(np.isnan(sel)) else float("nan")
    return {"miou": miou, "iou": {CLASS_NAMES[i]: (None if np.isnan(v) else round(float(v), 4))
                                  for i, v in enumerate(iou)},
            "depth_absrel": absrel_sum / absrel_n if absrel_n else float("nan"),
            "light_accuracy": light_ok / light_n if light_n else float("nan")}


# -------------------------------------------------------------------------- training
def split_rows(rows: list[dict[str, Any]], val_fraction: float
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    episodes = sorted({r.get("episode", "") for r in rows})
    if len(episodes) > 1:
        # the last episodes of every map, in turn, so that each map is validated
        by_map: dict[str, list[str]] = {}
        for r in rows:
            eps = by_map.setdefault(str(r.get("map", "")), [])
            if r.get("episode", "") not in eps:
                eps.append(r.get("episode", ""))
        n_val = max(1, round(len(episodes) * val_fraction),
                    sum(len(eps) > 2 for eps in by_map.values()))
        val_eps: set[str] = set()
        for depth in range(1, len(episodes)):
            for eps in by_map.values():
                if len(val_eps) < n_val and len(eps) > depth:
                    val_eps.add(sorted(eps)[-depth])
        if not val_eps:
            val_eps = {episodes[-1]}
        return ([r for r in rows if r.get("episode", "") not in val_eps],
                [r for r in rows if r.get("episode", "") in val_eps])
    if len(rows) == 1:
        return rows, rows
    n_val = max(1, round(len(rows) * val_fraction))
    return rows[:-n_val], rows[-n_val:]


def init_from(model: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Copy the tensors of a checksummed weights file whose name and shape match;
    returns (copied, tensors in the model)."""
    from perception.inference import load_weights

    source = load_weights(path)[0].state_dict()
    state = model.state_dict()
    match = {k: v for k, v in source.items() if k in state and state[k].shape == v.shape}
    state.update(match)
    model.load_state_dict(state)
    return len(match), len(state)


def _seed_worker(worker: int) -> None:
    """A data-loading worker's own augmentation stream: each starts with a copy of
    the training process's :class:`Augment`, whose generator would otherwise draw
    the same crops in every worker and every epoch. torch seeds each worker from
    the loader's generator (``--seed``) per epoch, plus its number."""
    info = torch.utils.data.get_worker_info()
    if info is not None and isinstance(info.dataset.transform, Augment):
        info.dataset.transform.rng = np.random.default_rng(torch.initial_seed() % 2 ** 63)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: TrainConfig, progress: bool = True,
          log: Callable[[str], None] = print) -> TrainResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise TrainError("--epochs and --batch-size must be >= 1")
    if not math.isfinite(cfg.depth_grad_weight) or cfg.depth_grad_weight < 0:
        raise TrainError(f"--depth-grad-weight must be >= 0, not {cfg.depth_grad_weight}")
    if not math.isfinite(cfg.far_obstacles_m) or cfg.far_obstacles_m < 0:
        raise TrainError(f"--far-obstacles must be >= 0 m, not {cfg.far_obstacles_m}")
    if not 0.0 <= cfg.paste_walkers <= 1.0:
        raise TrainError(f"--paste-walkers must be a probability in [0, 1], "
                         f"not {cfg.paste_walkers}")
    if cfg.model not in MODEL_PRESETS:
        raise TrainError(f"--model must be one of {', '.join(MODEL_PRESETS)}, not {cfg.model!r}")
    if cfg.workers < 0:
        raise TrainError(f"--workers must be >= 0, not {cfg.workers}")
    w, h = cfg.input_size
    if w % 32 or h % 32:
        raise TrainError(f"input size must be multiples of 32, not {w}x{h}")
    if not cfg.data:
        raise TrainError("no data set given")
    for root in cfg.data:
        if not (Path(root) / INDEX_FILE).is_file():
            raise TrainError(f"{root} is not a collected data set (no {INDEX_FILE}; "
                             "make one with `drivestack collect`)")
    _seed_all(cfg.seed)
    device = select_device(cfg.device, cfg.cpu_threads)
    data_names = ", ".join(str(root) for root in cfg.data)
    rows = read_data_sets(cfg.data)
    if not rows:
        raise TrainError(f"{data_names}: the data set is empty")
    train_rows, val_rows = split_rows(rows, cfg.val_fraction)
    # the rows' sample prefixes are absolute paths (read_data_sets): no common root
    train_ds = CollectedDataset("/", cfg.input_size, samples=train_rows,
                                cache=cfg.workers == 0)
    if cfg.augment:
        walkers: list[WalkerCutout] = []
        if cfg.paste_walkers > 0:  # from up to ~4000 training samples
            for i in range(0, len(train_ds), max(1, len(train_ds) // 4000)):
                walkers += walker_cutouts(*train_ds.input_arrays(i)[:3])
            log(f"{len(walkers)} walkers to paste")
        train_ds.transform = Augment(cfg.seed, walkers, cfg.paste_walkers)
    val_ds = CollectedDataset("/", cfg.input_size, samples=val_rows, cache=True)
    counts = torch.zeros(NUM_CLASSES, dtype=torch.long)
    lights = set()
    for i in range(0, len(train_rows), max(1, len(train_rows) // 256)):
        _, labels, _, light = train_ds.input_arrays(i)
        counts += torch.bincount(torch.from_numpy(labels.ravel()).long(), minlength=NUM_CLASSES)
        lights.add(LIGHT_STATES[light])
    weights = class_weights(counts + 1).to(device)
    light_counts = torch.bincount(torch.tensor(
        [light_state_index(r.get("traffic_light")) for r in train_rows]),
        minlength=len(LIGHT_STATES))
    light_weights = light_state_weights(light_counts + 1).to(device)
    light_trained = bool(lights & set(LIGHT_STATES[:3]))
    gen = torch.Generator().manual_seed(cfg.seed)
    cuda = device.type == "cuda"
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                        drop_last=len(train_ds) > cfg.batch_size, num_workers=cfg.workers,
                        worker_init_fn=_seed_worker, pin_memory=cuda)
    val_loader = DataLoader(val_ds, batch_size=cfg.batch_size)
    model = build_model(replace(MODEL_PRESETS[cfg.model], input_size=cfg.input_size))
    if cfg.init is not None:
        copied, total = init_from(model, cfg.init)
        log(f"initialised {copied} of {total} tensors from {cfg.init}")
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    if cfg.max_iters is not None:
        total = min(total, cfg.max_iters)
    warmup = max(1, total // 20)

    def lr_factor(i: int) -> float:  # linear warm-up, then cosine to 2 %
        if i < warmup:
            return (i + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (i - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    out = Path(cfg.out)
    last = out.with_name(out.stem + "_last" + out.suffix)
    metrics_path = out.with_name(out.stem + "_metrics.json")
    log(f"training on {device}: {len(train_ds)} training and {len(val_ds)} validation "
        f"samples, {total} steps")
    history: list[dict[str, Any]] = []
    step, best = 0, -1.0
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("train", total=total)
        for epoch in range(cfg.epochs):
            model.train()
            parts: dict[str, float] = {}
            for batch in loader:
                if step >= total:
                    break
                x = batch["image"].to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                    res = model(x)
                loss, parts = multitask_loss(
                    {k: v.float() for k, v in res.items()}, batch["labels"].to(device),
                    batch["depth"].to(device), batch["light"].to(device), weights,
                    light_weights=light_weights, depth_grad_weight=cfg.depth_grad_weight,
                    far_obstacles_m=cfg.far_obstacles_m)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                step += 1
                bar.update(task, advance=1, description=(
                    f"epoch {epoch + 1}/{cfg.epochs} loss {parts['total']:.3f}"))
            ev = evaluate(model, val_loader, device)
            ev.update(epoch=epoch + 1, step=step, loss=parts,
                      seconds=round(time.perf_counter() - t0, 1))
            history.append(ev)
            meta = {"epoch": epoch + 1, "miou": ev["miou"], "depth_absrel": ev["depth_absrel"],
                    "light_accuracy": ev["light_accuracy"], "seed": cfg.seed,
                    "data": data_names, "samples": len(train_ds)}
            save_weights(model, last, light_trained, meta)
            score = ev["miou"] if not math.isnan(ev["miou"]) else 0.0
            if score > best or epoch == 0:
                best = score
                save_weights(model, out, light_trained, meta)
            log(f"epoch {epoch + 1}: mIoU {ev['miou']:.3f} depth AbsRel "
                f"{ev['depth_absrel']:.3f} light acc {ev['light_accuracy']:.2f} "
                f"({ev['seconds']} s)")
            metrics_path.write_text(json.dumps(history, indent=1, default=str))
            if step >= total:
                break
    return TrainResult(out, len(history), step, history)
