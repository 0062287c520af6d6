"""``drivestack export-onnx``: the perception network as an ONNX graph, for the
onnxruntime backend (``backend: onnxruntime`` in the perception node) or any other
ONNX runtime.

The graph is the inference network: BatchNorms folded, outputs at the heads'
resolution (``full_size=False``), in the order of
:data:`perception.inference.ONNX_OUTPUTS`: ``seg`` logits (N, C, h, w), ``depth``
metres (N, h, w) and, with a light head, ``light`` logits (N, 4); input ``image``
(N, 3, H, W) float32, RGB normalised with the model's mean and std, N dynamic (all
cameras of a tick in one batch). The model's metadata holds ``input_size`` ("WxH"),
``head_stride`` and ``light_trained``; a ``.sha256`` is written beside the file,
as for weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from perception.inference import ONNX_OUTPUTS, load_weights, write_checksum
from perception.model import PerceptionNet, fuse_batchnorm

OPSET = 17


class _InferenceGraph(nn.Module):
    def __init__(self, model: PerceptionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, full_size=False)
        return tuple(out[k] for k in ONNX_OUTPUTS if k in out)


def export_onnx(weights: str | Path, out: str | Path) -> Path:
    """Write ``out`` (and ``out.sha256``) from a checksummed weights file."""
    import onnx

    model, info = load_weights(weights)
    fuse_batchnorm(model)
    w, h = model.config.input_size
    names = [k for k in ONNX_OUTPUTS if k != "light" or model.light_head is not None]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _InferenceGraph(model), (torch.zeros(1, 3, h, w),), str(tmp), dynamo=False,
            input_names=["image"], output_names=names, opset_version=OPSET,
            dynamic_axes={"image": {0: "batch"}, **{k: {0: "batch"} for k in names}})
    graph = onnx.load(str(tmp))
    onnx.helper.set_model_props(graph, {
        "input_size": f"{w}x{h}", "head_stride": str(model.config.head_stride),
        "light_trained": "true" if info.get("light_trained") else "false",
        "source_weights": Path(weights).name})
    onnx.save(graph, str(tmp))
    tmp.replace(out)
    write_checksum(out)
    return out
