"""``drivestack eval-perception``: matching, counting, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from launch.cli import main
from perception.evaluate import (
    EvalConfig,
    _Counts,
    _placement_figures,
    _score_detections,
    match,
    phantoms_in_path,
)
from perception.inference import save_weights
from perception.model import ModelConfig, build_model
from perception.objects import Detection


def test_match_is_one_to_one_nearest_first_within_the_radius() -> None:
    det = np.array([[10.0, 0.0], [10.5, 0.0], [30.0, 5.0]])
    truth = np.array([[10.4, 0.0], [30.0, 7.0]])
    # det 1 is nearest truth 0; det 0 is left over; truth 1 is 2 m away: no match
    assert match(det, truth, 1.5) == [(1, 0)]
    assert match(det[:0], truth, 1.5) == []


def _det(label: str, x: float, y: float) -> Detection:
    return Detection(label, np.array([x, y, 0.7]), np.array([4.4, 1.8, 1.4]), 0.0, 0.9, 50)


def test_precision_and_recall_by_band() -> None:
    cfg = EvalConfig(data=Path("."), weights=Path("."), out=Path("."),
                     bands=((0.0, 20.0), (20.0, 40.0)))
    actors = [
        {"kind": "vehicle", "x": 10.0, "y": 0.0, "visible_pixels": 5000},   # found
        {"kind": "vehicle", "x": 25.0, "y": 3.0, "visible_pixels": 800},    # missed
        {"kind": "vehicle", "x": 15.0, "y": -4.0, "visible_pixels": 20},    # hidden
        {"kind": "pedestrian", "x": 8.0, "y": 3.0, "visible_pixels": 400},  # found
    ]
    dets = [_det("vehicle", 10.8, 0.3), _det("vehicle", 15.2, -4.5),  # the hidden car
            _det("vehicle", 35.0, 0.0),  # false positive
            _det("pedestrian", 8.4, 2.6), _det("vehicle", 8.0, 3.0)]  # wrong label
    counts = {(label, b): _Counts() for label in ("vehicle", "pedestrian") for b in cfg.bands}
    _score_detections(cfg, dets, actors, 1.0, counts)
    near, far = counts["vehicle", (0.0, 20.0)], counts["vehicle", (20.0, 40.0)]
    assert (near.truth, near.found) == (1, 1)  # the hidden car is not truth...
    assert (near.detections, near.correct) == (3, 2)  # ...nor a false positive
    assert (far.truth, far.found, far.detections, far.correct) == (1, 0, 1, 0)
    ped = counts["pedestrian", (0.0, 20.0)]
    assert (ped.truth, ped.found, ped.detections, ped.correct) == (1, 1, 1, 1)
    assert near.as_dict()["recall"] == 1.0 and far.as_dict()["precision"] == 0.0


def test_placement_splits_each_actors_nearest_detection_along_and_across_its_ray() -> None:
    """A car 20 m dead ahead with a detection 2 m farther and 0.5 m right: radial
    +2, across 0.5 (within 4 m; a miss of the 1.5 m match); a car with no detection
    within 4 m counts only in the share."""
    cfg = EvalConfig(data=Path("."), weights=Path("."), out=Path("."), bands=((0.0, 40.0),))
    camera = np.array([1.5, 0.0])
    actors = [{"kind": "vehicle", "x": 21.5, "y": 0.0, "visible_pixels": 900},
              {"kind": "vehicle", "x": 11.5, "y": 10.0, "visible_pixels": 900}]
    counts = {(label, b): _Counts() for label in ("vehicle", "pedestrian") for b in cfg.bands}
    _score_detections(cfg, [_det("vehicle", 23.5, 0.5)], actors, 1.0, counts, camera)
    (radial, across), = counts["vehicle", (0.0, 40.0)].offsets
    assert radial == pytest.approx(2.0) and abs(across) == pytest.approx(0.5)
    got = _placement_figures(cfg, counts)["vehicle"]["0-40m"]
    assert got["truth"] == 2 and got["near_share"] == 0.5
    assert got["radial_median"] == pytest.approx(2.0) and got["across_abs_p80"] == 0.5
    assert _placement_figures(cfg, counts)["pedestrian"]["0-40m"]["radial_median"] is None
    assert got["misses"] == {"off": 1, "merged": 0, "unseen": 1}
    assert got["false_positives"] == {"off": 1, "split": 0, "phantom": 0}


def test_misses_and_false_positives_are_told_apart_by_kind() -> None:
    """Two cars side by side seen as one box between them (merged: one matched, the
    other's nearest box taken), a car seen as two boxes (split), a box with no car
    within 4 m (phantom)."""
    cfg = EvalConfig(data=Path("."), weights=Path("."), out=Path("."), bands=((0.0, 40.0),))
    actors = [{"kind": "vehicle", "x": 20.0, "y": -1.0, "visible_pixels": 900},
              {"kind": "vehicle", "x": 20.0, "y": 1.6, "visible_pixels": 900},
              {"kind": "vehicle", "x": 10.0, "y": 8.0, "visible_pixels": 900}]
    dets = [_det("vehicle", 20.0, 0.0),                                 # merged pair
            _det("vehicle", 10.0, 8.2), _det("vehicle", 12.5, 8.0),    # split
            _det("vehicle", 30.0, -6.0)]                                # phantom
    counts = {(label, b): _Counts() for label in ("vehicle", "pedestrian") for b in cfg.bands}
    _score_detections(cfg, dets, actors, 1.0, counts, np.array([1.5, 0.0]))
    got = _placement_figures(cfg, counts)["vehicle"]["0-40m"]
    assert got["misses"] == {"off": 0, "merged": 1, "unseen": 0}
    assert got["false_positives"] == {"off": 0, "split": 1, "phantom": 1}


def test_phantoms_are_objects_in_the_path_with_no_actor_near() -> None:
    cfg = EvalConfig(data=Path("."), weights=Path("."), out=Path("."))
    actors = [{"kind": "vehicle", "x": 20.0, "y": 0.0},
              {"kind": "pedestrian", "x": 10.0, "y": 1.0, "visible_pixels": 0}]  # hidden
    xy = np.array([[8.0, 0.5],     # 2.1 m from the walker: not a phantom
                   [23.5, 0.0],    # the car placed 3.5 m too far: not a phantom
                   [13.0, -1.9],   # phantom: in the corridor, 4.2 m from the walker
                   [12.0, 2.5],    # beside the path
                   [-3.0, 0.0],    # behind the ego
                   [30.0, 0.0]])   # beyond the corridor
    assert phantoms_in_path(cfg, xy, actors) == 1
    assert phantoms_in_path(cfg, xy, []) == 3
    assert phantoms_in_path(cfg, np.zeros((0, 2)), actors) == 0
    assert phantoms_in_path(EvalConfig(data=Path("."), weights=Path("."), out=Path("."),
                                       phantom_m=3.0), xy, actors) == 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaldata") / "set"
    assert main(["collect", "--out", str(out), "--maps", "town_grid", "--episodes", "1",
                 "--frames-per-episode", "3", "--every", "2", "--seed", "9",
                 "--no-progress"]) == 0
    return out


def test_eval_perception_writes_metrics_and_examples(data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights, light_trained=True)
    out = tmp_path / "eval"
    assert main(["eval-perception", "--weights", str(weights), "--data", str(data),
                 "--out", str(out), "--threads", "2", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["samples"] == 3 and m["maps"] == ["town_grid"]
    assert set(m["iou"]) >= {"road", "road_line", "vehicle", "pedestrian"}
    assert m["depth_absrel"] is not None and m["depth_absrel"] > 0
    assert set(m["detection"]) == {"vehicle", "pedestrian"}
    assert set(m["detection"]["vehicle"]) == {"0-20m", "20-40m", "0-30m"}
    assert m["detection_true_depth"].keys() == m["detection"].keys()
    assert m["placement"]["vehicle"].keys() == m["detection"]["vehicle"].keys()
    # the same truth in both; the detections differ (the untrained network's depth)
    for label, bands in m["detection"].items():
        for band, c in bands.items():
            assert m["detection_true_depth"][label][band]["truth"] == c["truth"]
    assert 0.0 <= m["light_accuracy"] <= 1.0
    p = m["phantoms_in_path"]
    assert p["range_m"] == 30.0 and p["detections"]["count"] >= p["detections"]["samples_with"]
    assert 0.0 <= p["tracks"]["sample_rate"] <= 1.0
    grid = cv2.imread(str(out / "examples.png"))
    assert grid.shape == (3 * 160, 3 * 320, 3)
    assert "mIoU" in capsys.readouterr().out


def test_eval_perception_user_errors(data: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-perception", "--weights", str(tmp_path / "none.pt"), "--data",
                 str(tmp_path), "--no-progress"]) == 2
    assert "none.pt" in capsys.readouterr().err
    weights = tmp_path / "w.pt"
    save_weights(build_model(), weights)
    assert main(["eval-perception", "--weights", str(weights), "--data", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "index.jsonl" in err and "\n" not in err
    weights.write_bytes(b"garbage")  # no longer what its .sha256 says
    assert main(["eval-perception", "--weights", str(weights), "--data", str(data),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(weights) in err and "\n" not in err
