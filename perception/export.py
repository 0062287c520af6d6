"""``drivestack export-onnx``: the perception network as an ONNX file (the graph of
:mod:`perception.onnx_graph`), for ``backend: onnxruntime`` with ``weights:
FILE.onnx`` in the perception node or for any other ONNX runtime. A ``.sha256``
is written beside the file, as for weights.
"""

from __future__ import annotations

from pathlib import Path

from perception.inference import load_weights, range_scale_of, write_checksum
from perception.onnx_graph import onnx_graph


def export_onnx(weights: str | Path, out: str | Path) -> Path:
    """Write ``out`` (and ``out.sha256``) from a checksummed weights file; its
    calibration goes into the graph's metadata."""
    model, info = load_weights(weights)
    graph = onnx_graph(model, bool(info.get("light_trained")), Path(weights).name,
                       range_scale_of(info.get("calibration"), weights))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(graph)
    tmp.replace(out)
    write_checksum(out)
    return out
