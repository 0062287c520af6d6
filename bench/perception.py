#!/usr/bin/env python
"""Benchmark: the perception node's step on this machine, now.

    python bench/perception.py [--quick] [--frames N] [--weights FILE] [--threads T]

For each available configuration, the time of the whole node step on 640 x 360
camera images (preprocess, network, post-processing to objects, tracker, and each
camera's segmentation at the input size: ``perception.pipeline.PerceptionPipeline.
step``, the node's tick without the bus, its default parameters), p50 and p99 over
``frames`` steps after a warm-up, and frames/s (images per second, batch included):

- ``onnxruntime_b1``: the node's CPU default (backend auto: onnxruntime, the
  graph built in memory from the weights) on ``threads`` CPU threads (default 2),
  one camera. Target: p50 <= 25 ms at 320 x 160 on 2 threads (``cpu_target_met``).
  ``guided_segmentation_p50_ms``: its share for the class map at the input size
  (``perception.refine``'s guided upsampling; the pedestrian confirmation, one
  connected-components pass at the head's resolution, is not in it, nor the
  vehicle score's windows, which the object stage evaluates).
- ``onnxruntime_b4``: four cameras of one tick in one batch.
- ``cpu_fp32_b1``, ``cpu_fp32_b4``: the PyTorch backend (TorchScript) on the CPU.
- ``cuda_fp16_b1``, ``cuda_fp16_b4``, ``cuda_compiled_b4``: on CUDA when present
  (fp16 autocast, channels_last, pinned uploads; torch.compile).

Baseline, measured in the same run: the bare network forward pass of the same
model at batch 1 on the CPU, PyTorch eager (``cpu_forward_p50_ms``);
``cpu_step_ratio`` is the default backend's whole step over it.
Weights: ``--weights`` or the shipped ones, else random weights of the same
architecture (the timing does not depend on the values, except the number of
detected objects; this is reported as ``weights``).

Prints a table, then one JSON object with every figure on the last line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.measure import run_and_report  # noqa: E402
from bus.messages import CameraIntrinsics, Header, Image, Transform, Vector3  # noqa: E402
from perception.inference import (  # noqa: E402
    DEFAULT_WEIGHTS,
    Predictor,
    PredictorBase,
    load_weights,
    make_predictor,
    range_scale_of,
    save_weights,
)
from perception.model import build_model  # noqa: E402
from perception.objects import ObjectsConfig  # noqa: E402
from perception.pipeline import PerceptionPipeline  # noqa: E402
from perception.refine import guided_coefficients, guided_labels  # noqa: E402

CPU_TARGET_MS = 25.0


def _images(n: int, seed: int = 0) -> list[Image]:
    """n camera images of a rendered-looking scene (random blocks on grey)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = np.full((360, 640, 3), 110, np.uint8)
        img[200:] = 70  # road
        for _ in range(6):
            x, y = int(rng.integers(0, 600)), int(rng.integers(150, 320))
            img[y:y + 40, x:x + 40] = rng.integers(0, 255, 3, dtype=np.uint8)
        out.append(Image(header=Header(frame=k, stamp=0.05 * k), data=img,
                         intrinsics=CameraIntrinsics.from_fov(640, 360, 90.0),
                         mount=Transform(Vector3(1.5, 0.0, 1.6))))
    return out


def _time_steps(predictor: PredictorBase, cameras: int, frames: int, warmup: int,
                objects: ObjectsConfig) -> dict[str, float]:
    """The pipeline's step (what the node does per tick, without the bus), with the
    object stage the node gives these weights (their calibration)."""
    step = PerceptionPipeline(predictor, light_trained=True, objects_config=objects).step
    imgs = _images(frames + warmup)
    times = []
    for k in range(frames + warmup):
        batch = []
        for c in range(cameras):
            m = imgs[(k + c) % len(imgs)]
            batch.append(Image(header=Header(frame=k, stamp=0.05 * k), data=m.data,
                               intrinsics=m.intrinsics, mount=m.mount))
        t0 = time.perf_counter()
        step(batch, None)
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    a = np.sort(np.asarray(times)) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "fps": round(cameras * 1e3 / float(a.mean()), 1)}


def _segmentation_p50(predictor: PredictorBase, frames: int, warmup: int) -> float:
    """What the guided class map costs in :meth:`PredictorBase.finish` on the CPU:
    its filter's coefficients and their upsampling to the input size, argmax
    included (:mod:`perception.refine`), on the network's probabilities of a
    camera image (the vehicle score the object stage reads reuses those
    coefficients: its own cost is in the object stage's)."""
    image = _images(1)[0].data
    probs = predictor.finish(predictor.infer(image), 0, image)["probs"]
    guide = cv2.resize(image, (predictor.width, predictor.height),
                       interpolation=cv2.INTER_AREA)
    times = []
    for k in range(frames + warmup):
        t0 = time.perf_counter()
        guided_labels(*guided_coefficients(probs, guide, predictor.refine), guide)
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 2)


def _forward_p50(model: torch.nn.Module, frames: int, warmup: int) -> float:
    x = torch.randn(1, 3, 160, 320)
    times = []
    with torch.inference_mode():
        for k in range(frames + warmup):
            t0 = time.perf_counter()
            model(x, full_size=False)
            if k >= warmup:
                times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 2)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    ap.add_argument("--frames", type=int, default=200, help="timed steps per configuration")
    ap.add_argument("--weights", help="weights file (default: shipped, else random)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = ap.parse_args(argv)
    frames = 10 if args.quick else args.frames
    warmup = 3 if args.quick else 20
    torch.set_num_threads(args.threads)
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    with tempfile.TemporaryDirectory(prefix="bench-perception-") as tmp:
        if weights.is_file():
            label = str(weights)
        else:
            weights, label = Path(tmp) / "random.pt", "random (no shipped weights)"
            save_weights(build_model(), weights, light_trained=True)
        return _measure(weights, label, frames, warmup, args.threads)


def _measure(weights: Path, label: str, frames: int, warmup: int,
             threads: int) -> dict[str, Any]:
    """Every configuration's figures for the model in ``weights``."""

    def model() -> torch.nn.Module:
        return load_weights(weights)[0]

    objects = ObjectsConfig(range_scale=range_scale_of(
        load_weights(weights)[1].get("calibration"), weights))

    figures: dict[str, Any] = {"weights": label, "threads": threads,
                               "input": "640x360 -> 320x160", "frames": frames}

    def cpu(n: int, rounds: int) -> dict[str, Any]:
        from perception.model import fuse_batchnorm

        out: dict[str, Any] = {"cpu_forward_p50_ms": _forward_p50(
            fuse_batchnorm(model().eval()), n, warmup)}
        cpu = torch.device("cpu")
        for backend, key in (("onnxruntime", "onnxruntime"), ("torch", "cpu_fp32")):
            predictor = make_predictor(model(), True, cpu, backend, threads)
            for b in (1, 4):
                r = _time_steps(predictor, b, n, warmup, objects)
                out.update({f"{key}_b{b}_{k}": v for k, v in r.items()})
            if backend == "onnxruntime":
                out["guided_segmentation_p50_ms"] = _segmentation_p50(predictor, n, warmup)
        out["cpu_step_ratio"] = round(out["onnxruntime_b1_p50_ms"]
                                      / out["cpu_forward_p50_ms"], 3)
        out["cpu_target_met"] = out["onnxruntime_b1_p50_ms"] <= CPU_TARGET_MS
        return out

    def cuda(n: int, rounds: int) -> dict[str, Any]:
        if not torch.cuda.is_available():
            return {"cuda": None}
        dev = torch.device("cuda")
        out: dict[str, Any] = {"cuda": torch.cuda.get_device_name(0)}
        for b in (1, 4):
            r = _time_steps(Predictor(model(), dev), b, n, warmup, objects)
            out.update({f"cuda_fp16_b{b}_{k}": v for k, v in r.items()})
        r = _time_steps(Predictor(model(), dev, compile=True), 4, n, warmup + 10,
                        objects)
        out.update({f"cuda_compiled_b4_{k}": v for k, v in r.items()})
        return out

    return run_and_report({"cpu": cpu, "cuda": cuda}, frames, 1, figures)


if __name__ == "__main__":
    main()
