"""``drivestack train`` on a tiny collected set: runs, writes weights whose checksum
verifies and that load; augmentation keeps image, labels and depth aligned."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from launch.cli import main
from perception.collect import CollectConfig, collect
from perception.dataset import read_data_sets
from perception.inference import load_weights, verify_checksum
from perception.model import MAX_DEPTH, MODEL_PRESETS
from perception.train import Augment, _seed_worker, confusion, iou_per_class, split_rows


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "set"
    collect(CollectConfig(out=out, maps=("town_grid",), episodes=1, frames_per_episode=3,
                          image_size=(320, 180), seed=5), progress=False, log=lambda _s: None)
    return out


def test_train_two_iterations_writes_verified_weights(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.pt"
    rc = main(["train", "--data", str(tiny_set), "--out", str(out), "--epochs", "1",
               "--max-iters", "2", "--batch-size", "1", "--device", "cpu", "--seed", "1",
               "--input-size", "256x128", "--no-progress"])
    assert rc == 0
    assert len(verify_checksum(out)) == 64
    verify_checksum(tmp_path / "w_last.pt")
    model, info = load_weights(out)
    assert model.config.input_size == (256, 128) and info["meta"]["epoch"] == 1
    history = json.loads((tmp_path / "w_metrics.json").read_text())
    assert history[0]["step"] == 2 and "depth_absrel" in history[0]


def test_train_the_large_network_with_loading_workers(tiny_set: Path, tmp_path: Path) -> None:
    """The GPU recipe's settings, on the CPU: the large network, its samples
    decoded and augmented by two loading processes."""
    out = tmp_path / "large.pt"
    rc = main(["train", "--data", str(tiny_set), "--out", str(out), "--epochs", "1",
               "--max-iters", "2", "--batch-size", "1", "--device", "cpu", "--model", "large",
               "--workers", "2", "--input-size", "256x128", "--no-progress"])
    assert rc == 0
    model, _ = load_weights(out)
    assert model.config == replace(MODEL_PRESETS["large"], input_size=(256, 128))


def test_seeded_workers_draw_their_own_augmentation() -> None:
    """Each loading worker reseeds its copy of the augmentation from its torch seed
    (different per worker and per epoch), instead of repeating the others' crops."""
    from torch.utils.data import DataLoader, Dataset

    class Draws(Dataset):
        transform = Augment(0, [], 0.0)

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> float:
            return float(self.transform.rng.random())

    draws = [float(x) for x in DataLoader(Draws(), batch_size=1, num_workers=2,
                                          worker_init_fn=_seed_worker)]
    assert len(set(draws)) == 4


def test_train_rejects_an_unknown_model_and_negative_workers(
        tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["train", "--data", str(tiny_set), "--out", str(tmp_path / "w.pt")]
    assert main([*base, "--model", "huge"]) == 2
    assert "--model must be one of small, large, not 'huge'" in capsys.readouterr().err
    assert main([*base, "--workers", "-1"]) == 2
    assert "--workers must be >= 0" in capsys.readouterr().err


def test_train_rejects_a_directory_that_is_not_a_data_set(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "w.pt")]) == 2
    assert "not a collected data set" in capsys.readouterr().err


def test_train_rejects_a_negative_depth_gradient_weight(tiny_set: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "w.pt"),
                 "--depth-grad-weight", "-1"]) == 2
    assert "--depth-grad-weight must be >= 0" in capsys.readouterr().err


def test_augment_crops_consistently() -> None:
    """The same crop of image, labels and depth, centred vertically (the horizon
    stays on its row), with depth scaled like the zoom the crop is resized by."""
    h, w = 90, 160
    rgb = np.zeros((h, w, 3), np.uint8)
    labels = np.tile(np.arange(w, dtype=np.uint8) % 7, (h, 1))
    depth = np.tile(np.arange(1, w + 1, dtype=np.float32), (h, 1))
    rows = np.tile(np.arange(h, dtype=np.uint8)[:, None], (1, w))
    for seed in range(5):
        _, lab, dep = Augment(seed)((rgb, labels, depth))
        ch = lab.shape[0]
        assert lab.shape == dep.shape and ch >= 72
        column = np.rint(dep * h / ch).astype(np.int64) - 1
        assert np.array_equal(lab, column % 7)
        _, centre, _ = Augment(seed)((rgb, rows, depth))
        assert centre[0, 0] + centre[-1, 0] in (h - 2, h - 1)  # centred to a row
        _, _, sky = Augment(seed)((rgb, labels, np.full((h, w), MAX_DEPTH, np.float32)))
        assert (sky == MAX_DEPTH).all()  # the far plane is not brought nearer


def test_metrics_and_split() -> None:
    import torch

    pred = torch.tensor([1, 1, 4, 4, 0])
    truth = torch.tensor([1, 1, 4, 0, 0])
    iou = iou_per_class(confusion(pred, truth))
    assert iou[1] == 1.0 and iou[4] == 0.5 and np.isnan(iou[5])
    rows = [{"sample": f"e{i // 3}/{i}", "episode": f"e{i // 3}"} for i in range(9)]
    tr, va = split_rows(rows, 0.2)
    assert {r["episode"] for r in va} == {"e2"} and len(tr) == 6
    rows = [{"sample": f"e{i:02d}/0", "episode": f"e{i:02d}", "map": "abc"[i % 3]}
            for i in range(12)]
    _, va = split_rows(rows, 0.2)
    assert {r["episode"] for r in va} == {"e09", "e10", "e11"}  # one per map


def test_init_copies_the_tensors_whose_shape_matches(tmp_path: Path) -> None:
    import torch

    from perception.inference import save_weights
    from perception.model import ModelConfig, build_model
    from perception.train import init_from

    torch.manual_seed(0)
    old = build_model(ModelConfig(fine_depth=False))  # a depth head of another shape
    save_weights(old, tmp_path / "old.pt")
    new = build_model(ModelConfig())
    copied, total = init_from(new, tmp_path / "old.pt")
    assert 0 < copied < total
    assert torch.equal(new.stem[0].weight, old.stem[0].weight)
    assert new.depth_head[0][0][0].weight.shape != old.depth_head[0][0][0].weight.shape


def test_two_data_sets_train_as_one(tiny_set: Path, tmp_path: Path) -> None:
    """Two collections (their episodes have the same names) are one set: each
    episode stays its own in the split and every sample is read from its own
    directory."""
    other = tmp_path / "other"
    collect(CollectConfig(out=other, maps=("town_grid",), episodes=1, frames_per_episode=2,
                          image_size=(320, 180), seed=6), progress=False, log=lambda _s: None)
    rows = read_data_sets([tiny_set, other])
    assert len(rows) == 5 and len({r["episode"] for r in rows}) == 2
    train_rows, val_rows = split_rows(rows, 0.2)
    assert len({r["episode"] for r in val_rows}) == 1 and len(val_rows) in (2, 3)
    assert all(Path(r["sample"]).is_absolute() for r in rows)
    out = tmp_path / "w.pt"
    assert main(["train", "--data", str(tiny_set), str(other), "--out", str(out), "--epochs", "1",
                 "--max-iters", "1", "--batch-size", "1", "--device", "cpu",
                 "--input-size", "256x128", "--no-progress"]) == 0
    assert load_weights(out)[1]["meta"]["samples"] == len(train_rows)


def test_train_rejects_a_data_set_given_twice(tiny_set: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tiny_set), str(tiny_set), "--out",
                 str(tmp_path / "w.pt")]) == 2
    assert "given twice" in capsys.readouterr().err
