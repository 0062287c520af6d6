"""Running the perception network: device selection, weights on disk (checksummed),
preprocessing and one forward pass.

Weights file: a ``torch.save`` of a plain dict (``model``: the state dict;
``config``: the :class:`perception.model.ModelConfig` fields as lists/ints;
``light_trained``: whether the light head was trained; ``meta``: free JSON-like
facts such as validation metrics; optionally ``calibration``: ``{"range_scale":
{label: [[distance, factor], ...]}}``, written by ``drivestack calibrate``,
:func:`range_scale_of`),
read back with ``torch.load(weights_only=True)``.
Next to it, ``<file>.sha256`` holds ``<hex digest>  <file name>`` (``sha256sum``
format); loading refuses a file whose digest differs, naming both files.

Devices: ``auto`` is ``cuda`` when available, else ``cpu``. Backends
(:func:`make_predictor`): ``auto`` is onnxruntime on the CPU for one camera,
else PyTorch (several cameras in one batch, or CUDA).
On the CPU the thread count is set (default 2). onnxruntime runs the network's
ONNX graph, built in memory from the weights (:mod:`perception.onnx_graph`); its
forward pass at 320 x 160 takes about two thirds of TorchScript's (measured at
one thread: 18.8 against 28.5 ms on a loaded 2-core VM; outputs within 1e-4).
PyTorch on the CPU runs the network traced, frozen and optimised for inference by
TorchScript (oneDNN convolutions fused with their activations: about twice as
fast as eager mode). On CUDA the uint8 image goes through a pinned host buffer
with a non-blocking copy, is resized and normalised on the device, and the
network runs in fp16 autocast with channels_last memory; the guided class map
(:mod:`perception.refine`) is made there too, in float32, from the resized image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from perception.classes import TrainClass
from perception.model import (
    IMAGE_MEAN,
    IMAGE_STD,
    ModelConfig,
    PerceptionNet,
    build_model,
    fuse_batchnorm,
)
from perception.numeric import resize_nearest
from perception.objects import RangeCurve
from perception.refine import (
    GuidedScore,
    RefineConfig,
    class_coefficients_torch,
    confirm_blobs,
    guided_coefficients,
    guided_coefficients_torch,
    guided_labels,
    upsample_scores_torch,
)

#: the least fraction of a head pedestrian blob's pixels the guided segmentation
#: must label pedestrian for the object stage to see it (held out, pedestrians
#: within 20 m: precision 0.70 -> 0.80 built-in, 0.76 -> 0.85 seed 1002, 0.78 ->
#: 0.88 Town01/02, recall the same or higher; vehicles within 0.004)
CONFIRM_PEDESTRIAN = 0.5
CHECKSUM_SUFFIX = ".sha256"
#: The shipped weights (may be absent in a checkout that has not trained yet).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "perception.pt"


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not match its checksum."""


def select_device(name: str = "auto", cpu_threads: int | None = 2) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cpu', 'cuda', 'cuda:N' as given (an
    unavailable cuda is a ValueError). On the CPU, ``cpu_threads`` (when given)
    becomes torch's intra-op thread count."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r} (use auto, cpu or cuda)")
    if device.type == "cpu" and cpu_threads:
        torch.set_num_threads(int(cpu_threads))
    return device


# --------------------------------------------------------------------- weights files
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + CHECKSUM_SUFFIX)


def write_checksum(path: str | Path) -> Path:
    p = Path(path)
    out = checksum_path(p)
    out.write_text(f"{sha256_file(p)}  {p.name}\n")
    return out


def verify_checksum(path: str | Path) -> str:
    """The file's sha256, after checking it against ``<path>.sha256``."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {p} does not exist")
    cs = checksum_path(p)
    if not cs.is_file():
        raise WeightsError(f"weights file {p} has no checksum file {cs}")
    try:
        expected = cs.read_text().split()[0].lower()
    except (OSError, IndexError):
        raise WeightsError(f"checksum file {cs} is empty or unreadable") from None
    actual = sha256_file(p)
    if actual != expected:
        raise WeightsError(f"weights file {p} does not match its checksum {cs} "
                           f"(sha256 {actual[:12]}..., expected {expected[:12]}...)")
    return actual


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    return {k: (list(map(list, v)) if k == "stages" else list(v) if isinstance(v, tuple)
                else v) for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    d = dict(d)
    if "stages" in d:
        d["stages"] = tuple(tuple(int(x) for x in s) for s in d["stages"])
    if "input_size" in d:
        d["input_size"] = tuple(int(x) for x in d["input_size"])
    d.setdefault("fine_depth", False)  # checkpoints from before the option had 1/4 depth
    return ModelConfig(**d)


def save_weights(model: PerceptionNet, path: str | Path, light_trained: bool = False,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write the weights file and its checksum; returns the checksum file."""
    return save_checkpoint({"model": model.state_dict(), "config": config_to_dict(model.config),
                            "light_trained": bool(light_trained), "meta": dict(meta or {})},
                           path)


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write a weights file's dict (its ``model`` state on the CPU) through a
    temporary file, and its checksum; returns the checksum file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {**ckpt, "model": {k: v.detach().cpu() for k, v in ckpt["model"].items()}}
    tmp = p.with_name(p.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(p)
    return write_checksum(p)


#: labels a weights file's calibration may correct the range of (perception.objects)
CALIBRATED_LABELS = ("vehicle", "pedestrian")


def range_scale_of(calibration: Any, source: str | Path) -> dict[str, RangeCurve]:
    """The per-label range curves of a weights file's ``calibration`` entry (None:
    none; :attr:`perception.objects.ObjectsConfig.range_scale`), checked: labels
    of :data:`CALIBRATED_LABELS`, each a non-empty list of [distance, factor]
    knots, distances >= 0 and increasing, factors in [0.5, 2] (a larger correction
    is no calibration but other weights); ``source`` names the file in the error."""
    if calibration is None:
        return {}
    scale = calibration.get("range_scale") if isinstance(calibration, dict) else None

    def curve(knots: Any) -> RangeCurve | None:
        if not isinstance(knots, list | tuple) or not knots:
            return None
        out = []
        for k in knots:
            if (not isinstance(k, list | tuple) or len(k) != 2
                    or not all(isinstance(v, int | float) for v in k)
                    or not 0.5 <= k[1] <= 2.0 or k[0] < 0 or (out and k[0] <= out[-1][0])):
                return None
            out.append((float(k[0]), float(k[1])))
        return tuple(out)

    curves = ({str(k): curve(v) for k, v in scale.items()} if isinstance(scale, dict)
              else None)
    if curves is None or any(k not in CALIBRATED_LABELS or c is None
                             for k, c in curves.items()):
        raise WeightsError(f"{source}: calibration {calibration!r} is not "
                           "{'range_scale': {label: [[distance m, factor in [0.5, 2]], ...] "
                           "with distances increasing}} with labels among "
                           f"{', '.join(CALIBRATED_LABELS)}")
    return {k: c for k, c in curves.items() if c is not None}


def load_weights(path: str | Path) -> tuple[PerceptionNet, dict[str, Any]]:
    """The model (eval mode, CPU) and the file's other entries, checksum checked."""
    verify_checksum(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(config_from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise WeightsError(f"weights file {path} is not a perception checkpoint: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None
    range_scale_of(ckpt.get("calibration"), path)
    return model.eval(), {k: v for k, v in ckpt.items() if k != "model"}


# ------------------------------------------------------------------------ predictor
def with_guides(out: dict[str, torch.Tensor], guides: list[np.ndarray]
                ) -> dict[str, torch.Tensor]:
    """``out`` with ``guide`` (N, h, w, 3) uint8, the batch's images at the input
    size as :meth:`PredictorBase.preprocess_cpu` made them (none where CUDA
    resized the batch on the device): :meth:`PredictorBase.finish` filters with
    them instead of resizing each image again (0.6 ms a 640 x 360 camera)."""
    if not guides:
        return out
    return {**out, "guide": torch.from_numpy(np.stack(guides))}


class PredictorBase:
    """What every inference backend shares: the images of one tick, all cameras in
    one batch, in; per image numpy arrays out (:meth:`finish`): ``segmentation``
    (H, W) uint8 class ids at the input size, the head's probabilities upsampled
    with the image as guide (:mod:`perception.refine`, about 5 ms a camera on the
    CPU; on CUDA made on the device); and at the segmentation head's resolution (the input size /
    ``head_stride``), what the object stage reads: ``seg`` (h, w) uint8 class ids,
    the head's own except for pedestrian blobs ``segmentation`` (sampled at the
    head's pixel centres) does not confirm (:data:`CONFIRM_PEDESTRIAN`,
    :func:`perception.refine.confirm_blobs`), ``probs`` (C, h, w) float32,
    ``depth`` (h, w) float32 m, ``vehicle_score`` (:class:`perception.refine.
    GuidedScore`: the guided vehicle score at the camera image's pixels, or the
    input size's when the camera's image is smaller, where the object stage finds
    where vehicles meet the road; its coefficients are the guided map's own), and
    ``light`` (4,) probabilities when the model has a light head. A backend
    implements :meth:`infer_batch`."""

    width: int
    height: int
    has_light: bool
    refine: RefineConfig = RefineConfig()

    @staticmethod
    def _check(data: np.ndarray) -> None:
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 uint8 image, got {data.dtype} "
                             f"{data.shape}")

    def preprocess_cpu(self, images: list[np.ndarray], encoding: str = "bgr8",
                       guides: list[np.ndarray] | None = None) -> np.ndarray:
        """(N, 3, h, w) float32 normalised RGB, resized on the CPU (area averaging);
        each image at the input size (uint8, its own channel order) appended to
        ``guides`` when given, for :meth:`finish` (:func:`with_guides`)."""
        out = np.empty((len(images), 3, self.height, self.width), np.float32)
        mean = np.array(IMAGE_MEAN, np.float32) * 255.0
        scale = 1.0 / (np.array(IMAGE_STD, np.float32) * 255.0)
        # RGB plane c comes from image channel c, or 2 - c for BGR
        source = (2, 1, 0) if encoding == "bgr8" else (0, 1, 2)
        for i, data in enumerate(images):
            self._check(data)
            if data.shape[:2] != (self.height, self.width):
                data = cv2.resize(data, (self.width, self.height), interpolation=cv2.INTER_AREA)
            if guides is not None:
                guides.append(data)
            # plane by plane: numpy broadcasting over a trailing axis of 3 runs
            # ten times slower than these whole-plane operations (same arithmetic)
            planes = cv2.split(data)
            for c in range(3):
                np.subtract(planes[source[c]], mean[c], out=out[i, c], dtype=np.float32)
                out[i, c] *= scale[c]
        return out

    def infer_batch(self, images: list[np.ndarray], encoding: str = "bgr8"
                    ) -> dict[str, torch.Tensor]:
        """The network's raw outputs (head resolution, batch first) for the images."""
        raise NotImplementedError

    def infer(self, data: np.ndarray, encoding: str = "bgr8") -> dict[str, torch.Tensor]:
        return self.infer_batch([data], encoding)

    def finish(self, out: dict[str, torch.Tensor], i: int, image: np.ndarray
               ) -> dict[str, np.ndarray]:
        """Batch element ``i`` of :meth:`infer_batch`'s outputs, for its ``image``
        (the camera's, any size, any channel order), as the numpy arrays
        :meth:`predict` returns."""
        probs = out["seg"][i].float().softmax(0).cpu().numpy()
        if "guide" in out:  # resized by preprocess_cpu already
            guide = out["guide"][i].numpy()
        elif image.shape[:2] == (self.height, self.width):
            guide = image
        else:
            guide = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        # the vehicle score at the camera's resolution, or the input's if that is finer
        fine = image if (image.shape[0] >= self.height and image.shape[1] >= self.width) \
            else guide
        if "segmentation" in out:  # made on the device by infer_batch
            segmentation = out["segmentation"][i].cpu().numpy()
            vehicle_score = GuidedScore(
                out["vehicle_coefficients"][i].permute(1, 2, 0).float().cpu().numpy(), fine)
        else:
            a, b = guided_coefficients(probs, guide, self.refine)
            segmentation = guided_labels(a, b, guide)
            vehicle_score = GuidedScore.of_class(a, b, int(TrainClass.VEHICLE), fine)
        h, w = probs.shape[1:]
        # numpy's argmax over the class axis: torch's strided one takes 2 ms here
        seg = confirm_blobs(probs.argmax(0).astype(np.uint8),
                            resize_nearest(segmentation, (w, h)),
                            int(TrainClass.PEDESTRIAN), CONFIRM_PEDESTRIAN)
        result = {"segmentation": segmentation, "seg": seg, "probs": probs,
                  "depth": out["depth"][i].float().cpu().numpy(),
                  "vehicle_score": vehicle_score}
        if "light" in out:
            result["light"] = out["light"][i].float().softmax(0).cpu().numpy()
        return result

    def predict(self, data: np.ndarray, encoding: str = "bgr8") -> dict[str, np.ndarray]:
        return self.finish(self.infer(data, encoding), 0, data)

    def predict_batch(self, images: list[np.ndarray], encoding: str = "bgr8"
                      ) -> list[dict[str, np.ndarray]]:
        out = self.infer_batch(images, encoding)
        return [self.finish(out, i, image) for i, image in enumerate(images)]


class _FrozenForward:
    """The network traced and frozen by TorchScript for CPU inference, called like
    the module (``full_size=False`` only) and returning its dict of outputs.

    TorchScript is deprecated upstream in favour of ``torch.compile``, which on the
    CPU needs a C++ compiler at run time and a long first call; the pinned torch
    still runs it, and :class:`Predictor` falls back to eager mode if it fails."""

    def __init__(self, model: PerceptionNet, height: int, width: int) -> None:
        example = torch.zeros(1, 3, height, width)
        with torch.no_grad(), warnings.catch_warnings():
            # the input size is fixed, so the shape tests traced as constants hold;
            # and the deprecation is known (see the class doc)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.keys = tuple(model(example, full_size=False))
            traced = torch.jit.trace(_AsTuple(model, self.keys), example, check_trace=False)
            self.module = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def __call__(self, x: torch.Tensor, full_size: bool = False) -> dict[str, torch.Tensor]:
        if full_size:
            raise ValueError("the frozen network gives head-resolution outputs only")
        return dict(zip(self.keys, self.module(x), strict=True))


class _AsTuple(torch.nn.Module):
    """The network's head-resolution outputs as a tuple, in ``keys`` order (what
    tracing needs)."""

    def __init__(self, model: PerceptionNet, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, full_size=False)
        return tuple(out[k] for k in self.keys)


class Predictor(PredictorBase):
    """The PyTorch backend; see the module doc for the device paths. The model's
    BatchNorms are folded into its convolutions; on the CPU it runs frozen by
    TorchScript unless ``jit=False``; ``compile=True`` runs it through
    ``torch.compile`` instead (first call slow, later ones faster)."""

    def __init__(self, model: PerceptionNet, device: torch.device,
                 compile: bool = False, jit: bool = True) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.model = fuse_batchnorm(model.eval()).to(device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.width, self.height = model.config.input_size
        self.has_light = model.light_head is not None
        self._forward: Any = self.model
        if compile:
            self._forward = torch.compile(self.model)
        elif jit and not self.cuda:
            try:
                self._forward = _FrozenForward(self.model, self.height, self.width)
            except Exception as exc:  # TorchScript's own errors; eager mode still works
                logging.getLogger(__name__).warning(
                    "TorchScript could not freeze the network (%s: %s): running it in "
                    "eager mode, about half as fast", type(exc).__name__, exc)
        self.mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)
        self._pinned: torch.Tensor | None = None
        #: the guided class map made on the device (on the CPU numpy's is faster)
        self.segmentation_on_device = self.cuda

    def preprocess(self, images: list[np.ndarray], encoding: str = "bgr8",
                   guides: list[np.ndarray] | None = None) -> torch.Tensor:
        """(N, 3, h, w) normalised RGB on the device. On CUDA: one pinned uint8 upload
        of the whole batch (images of one size), resize and normalise on the GPU;
        else :meth:`preprocess_cpu` (``guides`` filled)."""
        if not self.cuda or len({im.shape for im in images}) != 1:
            return torch.from_numpy(self.preprocess_cpu(images, encoding, guides)
                                    ).to(self.device)
        for data in images:
            self._check(data)
        src = torch.from_numpy(np.stack(images))
        if self._pinned is None or self._pinned.shape != src.shape:
            self._pinned = torch.empty(src.shape, dtype=torch.uint8).pin_memory()
        self._pinned.copy_(src)
        x = self._pinned.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if encoding == "bgr8":
            x = x.flip(1)
        x = x.float().div_(255.0)
        if x.shape[-2:] != (self.height, self.width):
            x = F.interpolate(x, size=(self.height, self.width), mode="bilinear",
                              antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def infer_batch(self, images: list[np.ndarray], encoding: str = "bgr8"
                    ) -> dict[str, torch.Tensor]:
        """The network's outputs; with ``segmentation_on_device`` (CUDA) also the
        guided class map (N, H, W) uint8, made where the probabilities and the
        resized image already are (:mod:`perception.refine`'s torch filter), and
        the vehicle class's coefficients of it (N, 4, h, w; in the images' channel
        order), from which :meth:`finish` evaluates the vehicle score at the
        camera's pixels without filtering again on the host."""
        guides: list[np.ndarray] = []
        x = self.preprocess(images, encoding, guides)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda):
            out = self._forward(x, full_size=False)
        if self.segmentation_on_device:
            guide = x.float() * self.std + self.mean  # RGB in [0, 1] at the input size
            ab = guided_coefficients_torch(out["seg"].float().softmax(1), guide, self.refine)
            scores = upsample_scores_torch(ab, guide)
            # the vehicle class's, in the images' own channel order, for finish()
            vehicle = class_coefficients_torch(ab, int(TrainClass.VEHICLE),
                                               (2, 1, 0) if encoding == "bgr8" else (0, 1, 2))
            out = {**out, "segmentation": scores.argmax(1).to(torch.uint8),
                   "vehicle_coefficients": vehicle}
        return with_guides(out, guides)


class OnnxPredictor(PredictorBase):
    """The onnxruntime backend (CPU execution provider). ``source``: an ONNX file
    written by ``drivestack export-onnx`` (checksum checked like a weights file),
    or the serialised graph itself (:func:`perception.onnx_graph.onnx_graph`, built
    in memory from a checked weights file). The input size, whether the light
    head was trained and the weights' calibration (``range_scale``, JSON) come from
    the model's metadata."""

    def __init__(self, source: str | Path | bytes, cpu_threads: int | None = 2) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise WeightsError("the onnxruntime backend needs the onnxruntime package "
                               "(pip install onnxruntime, or use backend torch)") from None
        name = "the in-memory ONNX graph" if isinstance(source, bytes) else str(source)
        if not isinstance(source, bytes):
            verify_checksum(source)
            source = str(source)
        opts = ort.SessionOptions()
        if cpu_threads:
            opts.intra_op_num_threads = int(cpu_threads)
            opts.inter_op_num_threads = 1
        # idle pool threads sleep instead of spinning: the loop's other processes
        # share these cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(source, opts,
                                                providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.width, self.height = (int(v) for v in meta["input_size"].split("x"))
            self.light_trained = meta.get("light_trained") == "true"
            scale = json.loads(meta.get("range_scale", "{}"))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{name} is not an ONNX file from `drivestack export-onnx`: "
                               f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
        except Exception as exc:  # onnxruntime's own exception types
            raise WeightsError(f"{name}: onnxruntime cannot load it: "
                               f"{str(exc).splitlines()[0]}") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.has_light = "light" in self.outputs
        self.range_scale = range_scale_of({"range_scale": scale}, name)

    def infer_batch(self, images: list[np.ndarray], encoding: str = "bgr8"
                    ) -> dict[str, torch.Tensor]:
        guides: list[np.ndarray] = []
        x = self.preprocess_cpu(images, encoding, guides)
        values = self.session.run(self.outputs, {"image": x})
        return with_guides({name: torch.from_numpy(v)
                            for name, v in zip(self.outputs, values, strict=True)}, guides)


#: inference backends: ``auto`` is onnxruntime on the CPU and torch on CUDA (or
#: with ``compile``)
Backend = Literal["auto", "torch", "onnxruntime"]


def resolve_backend(backend: Backend, device: torch.device, compile: bool = False,
                    batch: int = 1) -> str:
    """The backend ``auto`` stands for on ``device`` for ``batch`` images a step
    (onnxruntime for one image on the CPU: at batch 4 its step measured 69.6 against
    TorchScript's 47.6 ms, idle, 2 threads); an explicit one as given, after
    checking it can run there."""
    if backend == "auto":
        return "torch" if device.type == "cuda" or compile or batch > 1 else "onnxruntime"
    if backend == "onnxruntime" and (device.type != "cpu" or compile):
        raise ValueError("the onnxruntime backend runs on the CPU without torch.compile; "
                         "use backend torch (or auto) for cuda or compile")
    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"unknown backend {backend!r} (use auto, torch or onnxruntime)")
    return backend


def make_predictor(model: PerceptionNet, light_trained: bool, device: torch.device,
                   backend: Backend = "auto", cpu_threads: int | None = None,
                   compile: bool = False, source: str = "", batch: int = 1) -> PredictorBase:
    """The inference backend for a loaded model (:func:`load_weights`) on
    ``device``. onnxruntime runs the model's ONNX graph, built in memory (about a
    second), on ``cpu_threads`` threads (None: torch's count): on two cores its
    forward pass takes about two thirds of TorchScript's, with outputs within 1e-4.
    ``source``: the weights file's name, kept in the graph's metadata; ``batch``:
    the images of one step (cameras of one tick). With
    ``auto``, a graph that cannot be built or loaded (an exporter or runtime this
    code does not know) falls back to PyTorch with a warning."""
    if resolve_backend(backend, device, compile, batch) == "onnxruntime":
        from perception.onnx_graph import onnx_graph

        threads = cpu_threads if cpu_threads else torch.get_num_threads()
        try:
            return OnnxPredictor(onnx_graph(model, light_trained, source), threads)
        except Exception as exc:  # the exporter's and onnxruntime's own errors
            if backend != "auto":
                raise WeightsError(f"{source or 'the model'}: no onnxruntime backend: "
                                   f"{type(exc).__name__}: {exc}") from None
            logging.getLogger(__name__).warning(
                "onnxruntime backend unavailable (%s: %s): running PyTorch on the CPU",
                type(exc).__name__, exc)
    return Predictor(model, device, compile=compile)
