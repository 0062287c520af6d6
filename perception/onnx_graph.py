"""The perception network as an ONNX graph: what ``drivestack export-onnx`` writes
to a file and what the onnxruntime backend builds in memory from a weights file.

The graph is the inference network: BatchNorms folded, outputs at the heads'
resolution (``full_size=False``), in the order of :data:`ONNX_OUTPUTS`: ``seg``
logits (N, C, h, w), ``depth`` metres (N, h, w) and, with a light head, ``light``
logits (N, 4); input ``image`` (N, 3, H, W) float32, RGB normalised with the
model's mean and std, N dynamic (all cameras of a tick in one batch). The model's
metadata holds ``input_size`` ("WxH"), ``head_stride``, ``light_trained``,
``source_weights`` and ``range_scale`` (the weights' calibration, JSON: label ->
[[distance, factor], ...]; ``{}`` for none).
"""

from __future__ import annotations

import io
import json
import warnings

import torch
from torch import nn

from perception.model import PerceptionNet, fuse_batchnorm
from perception.objects import RangeCurve

#: graph outputs, in order
ONNX_OUTPUTS = ("seg", "depth", "light")
OPSET = 17


class _InferenceGraph(nn.Module):
    def __init__(self, model: PerceptionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, full_size=False)
        return tuple(out[k] for k in ONNX_OUTPUTS if k in out)


def onnx_graph(model: PerceptionNet, light_trained: bool, source_weights: str = "",
               range_scale: dict[str, RangeCurve] | None = None) -> bytes:
    """The serialised ONNX model of ``model`` (put in eval mode, its BatchNorms
    folded in place) with the metadata of the module doc."""
    import onnx

    model = fuse_batchnorm(model.eval())
    w, h = model.config.input_size
    names = [k for k in ONNX_OUTPUTS if k != "light" or model.light_head is not None]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _InferenceGraph(model), (torch.zeros(1, 3, h, w),), buf, dynamo=False,
            input_names=["image"], output_names=names, opset_version=OPSET,
            dynamic_axes={"image": {0: "batch"}, **{k: {0: "batch"} for k in names}})
    graph = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(graph, {
        "input_size": f"{w}x{h}", "head_stride": str(model.config.head_stride),
        "light_trained": "true" if light_trained else "false",
        "source_weights": source_weights,
        "range_scale": json.dumps(dict(range_scale or {}), sort_keys=True)})
    return graph.SerializeToString()
