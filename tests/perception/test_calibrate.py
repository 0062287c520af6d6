"""``drivestack calibrate``: the range ratio of matched detections, the fit on a
collected data set with the shipped weights, and the calibration carried by the
weights file into the object stage (torch and ONNX)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from launch.cli import main
from perception.calibrate import (
    CalibrateConfig,
    CalibrateError,
    calibrate,
    fit_curve,
    range_ratios,
)
from perception.inference import (
    DEFAULT_WEIGHTS,
    OnnxPredictor,
    WeightsError,
    load_weights,
    range_scale_of,
    save_weights,
    verify_checksum,
)
from perception.model import ModelConfig, build_model
from perception.objects import Detection


def _det(label: str, x: float, y: float) -> Detection:
    return Detection(label, np.array([x, y, 0.7]), np.array([4.6, 1.9, 1.5]), 0.0, 0.9, 50)


def test_range_ratios_are_true_over_detected_distance_from_the_camera_of_matches_only(
        ) -> None:
    actors = [{"kind": "vehicle", "x": 21.8, "y": 0.0}, {"kind": "vehicle", "x": 50.0, "y": 0.0},
              {"kind": "pedestrian", "x": 10.0, "y": 2.0}]
    dets = [_det("vehicle", 21.0, 0.0),   # matched: (21.8 - 1) / (21 - 1)
            _det("vehicle", 48.0, 0.0),   # matched, but beyond 40 m
            _det("vehicle", 5.0, 5.0),    # no actor within 4 m
            _det("pedestrian", 10.0, 2.0)]  # another label
    camera = np.array([1.0, 0.0])
    np.testing.assert_allclose(range_ratios(dets, actors, "vehicle", camera, 4.0, 40.0),
                               [[20.0, 1.04]])
    assert len(range_ratios(dets, actors, "vehicle", camera, 0.5, 40.0)) == 0


def test_the_curve_has_a_knot_per_band_with_enough_matches() -> None:
    """Each 10 m band of detected distance with 3 matches gives its median distance
    and ratio; a band with fewer gives none."""
    ratios = np.array([[4.0, 1.10], [6.0, 1.12], [8.0, 1.30],      # 0-10 m
                       [12.0, 1.05], [18.0, 1.01],                 # 10-20 m: too few
                       [25.0, 0.97], [21.0, 0.99], [29.0, 0.90]])  # 20-30 m
    assert fit_curve(ratios, 10.0, 40.0, 3) == ((6.0, 1.12), (25.0, 0.97))
    assert fit_curve(ratios, 10.0, 40.0, 4) == ()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calibdata") / "set"
    assert main(["collect", "--out", str(out), "--maps", "town_grid", "--episodes", "1",
                 "--frames-per-episode", "4", "--every", "4", "--seed", "11",
                 "--vehicle-density", "0.6", "0.6", "--no-progress"]) == 0
    return out


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")
def test_calibrate_fits_the_shipped_weights_and_writes_a_copy(data: Path, tmp_path: Path,
                                                              capsys) -> None:
    weights = tmp_path / "w.pt"
    for suffix in ("", ".sha256"):
        shutil.copy(str(DEFAULT_WEIGHTS) + suffix, str(weights) + suffix)
    out = tmp_path / "calibrated.pt"
    result = calibrate(CalibrateConfig(weights=weights, data=(data,), out=out, min_pairs=1,
                                       min_band_pairs=1, labels=("vehicle",), cpu_threads=2),
                       progress=False)
    scale = result.range_scale["vehicle"]
    assert scale and all(0.8 < f < 1.25 for _, f in scale) and result.pairs["vehicle"] >= 1
    _, info = load_weights(out)  # checksummed, and carries it
    before = load_weights(weights)[1]["calibration"]
    # the label fitted is replaced, the others kept with where they were fitted
    assert range_scale_of(info["calibration"], out) == {
        **range_scale_of(before, weights), "vehicle": scale}
    assert info["calibration"]["pairs"] == {**before["pairs"], **result.pairs}
    fits = info["calibration"]["fits"]
    assert fits["vehicle"] == {"data": [str(data)], "samples_per_set": 400,
                               "pairs": result.pairs["vehicle"]}
    assert fits["pedestrian"]["pairs"] == before["pairs"]["pedestrian"]
    verify_checksum(weights)  # the input is left as it was
    # four samples are too few for the command's 30 matches: one line, nothing written
    assert main(["calibrate", "--weights", str(weights), "--data", str(data),
                 "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "matched an actor within 4 m" in err and "\n" not in err
    assert not (tmp_path / "x.pt").exists()


def test_calibrate_user_errors(tmp_path: Path, capsys) -> None:
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights)
    assert main(["calibrate", "--weights", str(weights), "--data", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "index.jsonl" in err and str(tmp_path) in err and "\n" not in err
    with pytest.raises(CalibrateError, match="samples"):
        CalibrateConfig(weights=weights, data=(tmp_path,), samples=0)
    with pytest.raises(CalibrateError, match="labels"):
        CalibrateConfig(weights=weights, data=(tmp_path,), labels=("bicycle",))


def test_a_calibration_reaches_the_object_stage_and_a_bad_one_is_refused(tmp_path: Path
                                                                          ) -> None:
    from bus import InProcessContext
    from perception.calibrate import write_calibration
    from perception.node import PerceptionNode

    def range_scale_in_node(path: Path) -> dict[str, float]:
        node = PerceptionNode("perception", context=InProcessContext(),
                              params={"weights": str(path)}, diagnostics=False)
        try:
            return node.pipeline.objects_config.range_scale
        finally:
            node.destroy()

    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights, light_trained=True)
    curve = {"vehicle": ((5.0, 1.1), (25.0, 1.03))}
    calibrated = write_calibration(weights, tmp_path / "c.pt",
                                   {"range_scale": {"vehicle": [[5.0, 1.1], [25, 1.03]]}})
    assert range_scale_in_node(calibrated) == curve
    # the ONNX export carries it in its metadata, and so into the node
    assert main(["export-onnx", "--weights", str(calibrated), "--out",
                 str(tmp_path / "c.onnx")]) == 0
    assert OnnxPredictor(tmp_path / "c.onnx").range_scale == curve
    assert range_scale_in_node(tmp_path / "c.onnx") == curve
    assert range_scale_in_node(weights) == {}
    for bad in ({"vehicle": 1.03}, {"vehicle": [[5.0, 7.0]]}, {"vehicle": []},
                {"vehicle": [[25.0, 1.0], [5.0, 1.1]]}, {"bicycle": [[5.0, 1.1]]}):
        path = write_calibration(weights, tmp_path / "bad.pt", {"range_scale": bad})
        with pytest.raises(WeightsError, match=r"bad\.pt.*calibration"):
            load_weights(path)
