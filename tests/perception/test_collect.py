"""``drivestack collect``: files, index, resume, the Dataset reading them back, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from launch.cli import main
from perception.classes import NUM_CLASSES, TrainClass
from perception.collect import (
    DONE_FILE,
    CollectConfig,
    collect,
    decode_depth,
    encode_depth,
    light_label,
    plan_episodes,
)
from perception.dataset import CollectedDataset, DatasetError

FRAMES = 3


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "set"
    rc = main(["collect", "--out", str(out), "--maps", "town_grid", "--episodes", "1",
               "--frames-per-episode", str(FRAMES), "--image-size", "320x180", "--seed", "3",
               "--no-progress"])
    assert rc == 0
    return out


def test_collect_writes_samples_and_index(collected: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in (collected / "index.jsonl").read_text().splitlines()]
    assert len(rows) == FRAMES
    ep = collected / rows[0]["episode"]
    assert (ep / DONE_FILE).is_file() and (ep / "episode.json").is_file()
    for r in rows:
        assert r["map"] == "town_grid" and isinstance(r["seed"], int) and "weather" in r
        for suffix in ("_rgb.jpg", "_labels.png", "_depth.png", "_meta.json"):
            assert (collected / (r["sample"] + suffix)).is_file()
    meta = json.loads((collected / (rows[0]["sample"] + "_meta.json")).read_text())
    assert meta["camera"]["width"] == 320 and meta["camera"]["height"] == 180
    assert meta["traffic_light"]["state"] in ("red", "yellow", "green", "none")
    for r in rows:  # the governing lamp's pixels are traffic-light pixels of the image
        meta = json.loads((collected / (r["sample"] + "_meta.json")).read_text())
        labels = cv2.imread(str(collected / (r["sample"] + "_labels.png")), cv2.IMREAD_UNCHANGED)
        lamp = meta["traffic_light"]["lamp_pixels"]
        assert isinstance(lamp, int) and 0 <= lamp <= int(
            (labels == int(TrainClass.TRAFFIC_LIGHT)).sum())
    for a in meta["actors"]:
        assert a["kind"] in ("vehicle", "pedestrian") and len(a["extent"]) == 3


def test_dataset_reads_the_collection(collected: Path) -> None:
    ds = CollectedDataset(collected, input_size=(256, 128))
    assert len(ds) == FRAMES
    item = ds[0]
    assert item["image"].shape == (3, 128, 256) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (128, 256) and item["labels"].dtype == torch.long
    assert item["depth"].shape == (128, 256) and item["depth"].dtype == torch.float32
    assert int(item["labels"].min()) >= 0 and int(item["labels"].max()) < NUM_CLASSES
    assert len(item["labels"].unique()) >= 3  # road, background, ... are in view
    assert float(item["depth"].min()) > 0 and float(item["depth"].max()) == 1000.0
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 128, 256)


def test_dataset_labels_stay_on_the_image_when_resized(collected: Path) -> None:
    """Labels and depth resized to the input size are sampled at the output pixels'
    centres, as the image is: the road's depth at a pixel is where that pixel's ray
    meets the flat ground. (OpenCV's INTER_NEAREST sampled 0.5 px above at this
    scale, 180 -> 160 rows, and the road read 4 % far at 20 m.)"""
    ds = CollectedDataset(collected, input_size=(320, 160))
    ratios = []
    for i in range(len(ds)):
        _, labels, depth, _ = ds.input_arrays(i)
        cam = ds.read_arrays(i)[3]["camera"]
        assert cam["mount"]["pitch"] == 0.0  # a level camera: depth = fy h / (v - cy)
        fy = cam["fy"] * 160 / cam["height"]
        cy = (cam["cy"] + 0.5) * 160 / cam["height"] - 0.5
        vs, us = np.nonzero(labels == int(TrainClass.ROAD))
        d = depth[vs, us]
        near = (d > 8.0) & (d < 30.0)
        ratios.append(fy * cam["mount"]["z"] / (vs[near] - cy) / d[near])
    ratio = float(np.median(np.concatenate(ratios)))
    assert ratio == pytest.approx(1.0, abs=0.01)


def test_dataset_names_a_missing_or_corrupt_file(collected: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(collected, copy)
    ds = CollectedDataset(copy)
    prefix = copy / ds.rows[0]["sample"]
    depth = prefix.parent / (prefix.name + "_depth.png")
    depth.unlink()
    with pytest.raises(DatasetError, match=r"_depth\.png"):
        ds[0]
    labels = prefix.parent / (prefix.name + "_labels.png")
    labels.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"_labels\.png"):
        ds[0]
    with pytest.raises(DatasetError, match=r"index\.jsonl"):
        CollectedDataset(tmp_path / "nowhere")


def test_resume_skips_a_finished_episode(collected: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = CollectConfig(out=collected, maps=("town_grid",), episodes=1,
                        frames_per_episode=FRAMES, seed=3, image_size=(320, 180), resume=True)
    ep = collected / plan_episodes(cfg)[0].name
    before = {p.name: p.stat().st_mtime_ns for p in ep.iterdir()}
    result = collect(cfg, progress=False)
    assert (result.episodes_run, result.episodes_skipped, result.samples) == (0, 1, FRAMES)
    assert {p.name: p.stat().st_mtime_ns for p in ep.iterdir()} == before
    assert "3 samples" in capsys.readouterr().out
    # without --resume a non-empty directory is refused
    assert main(["collect", "--out", str(collected), "--maps", "town_grid",
                 "--no-progress"]) == 2


def test_episode_plans_are_deterministic() -> None:
    cfg = CollectConfig(out=Path("unused"), episodes=4, seed=11)
    plans = plan_episodes(cfg)
    assert plans == plan_episodes(cfg)
    assert [p.map for p in plans] == ["town_grid", "rural", "highway", "town_grid"]
    assert len({p.seed for p in plans}) == 4
    assert plans != plan_episodes(CollectConfig(out=Path("unused"), episodes=4, seed=12))


def test_a_light_is_labelled_with_its_state_only_when_its_lamp_is_readable() -> None:
    seen = {"state": "red", "id": 3, "distance": 20.0, "lamp_pixels": 40}
    assert light_label(seen, 640 * 360) == "red"
    assert light_label({**seen, "lamp_pixels": 0}, 640 * 360) == "none"  # out of view
    assert light_label({**seen, "lamp_pixels": 3}, 640 * 360) == "none"  # too small
    assert light_label({**seen, "lamp_pixels": 3}, 320 * 180) == "red"  # scaled by area
    assert light_label({"state": "none", "id": None, "distance": None, "lamp_pixels": 0},
                       640 * 360) == "none"
    assert light_label({"state": "green"}, 640 * 360) == "green"  # older data


def test_depth_encoding_round_trip() -> None:
    d = np.array([[0.5, 12.345, 655.0, 1000.0, np.inf]], np.float32)
    back = decode_depth(encode_depth(d))
    assert back[0, :3] == pytest.approx([0.5, 12.345, 655.0], abs=0.006)  # 1 cm steps
    assert back[0, 3] == back[0, 4] == 1000.0


def test_cli_help_and_bad_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["collect", "--help"])
    assert exc.value.code == 0
    assert "--frames-per-episode" in capsys.readouterr().out
    assert main(["collect", "--out", str(tmp_path / "o"), "--maps", "Town01"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Town01: expected a built-in map") and "\n" not in err
    assert "--map-dir" in err or "map_dir" in err
    assert not (tmp_path / "o").exists()
    assert main(["collect", "--out", str(tmp_path / "o"), "--maps", "Town01",
                 "--map-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "Town01.xodr") in err and "\n" not in err


def test_collects_a_map_from_map_dir(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "town02"
    assert main(["collect", "--out", str(out), "--maps", "Town02", "--map-dir",
                 str(shared_dir / "maps" / "carla"), "--episodes", "1",
                 "--frames-per-episode", "1", "--image-size", "160x96", "--no-progress"]) == 0
    row = json.loads((out / "index.jsonl").read_text())
    assert row["map"] == "Town02"


def test_parallel_jobs_give_the_same_data_set(tmp_path: Path) -> None:
    def run(jobs: int) -> Path:
        out = tmp_path / f"jobs{jobs}"
        collect(CollectConfig(out=out, maps=("town_grid", "rural"), episodes=2,
                              frames_per_episode=2, every=2, seed=5, image_size=(160, 96),
                              jobs=jobs), progress=False)
        return out

    one, two = run(1), run(2)
    assert (one / "index.jsonl").read_text() == (two / "index.jsonl").read_text()
    rows = [json.loads(line) for line in (one / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for r in rows:
        for suffix in ("_labels.png", "_depth.png", "_meta.json"):
            assert ((one / (r["sample"] + suffix)).read_bytes()
                    == (two / (r["sample"] + suffix)).read_bytes())


def test_traffic_is_spawned_near_the_ego(tmp_path: Path) -> None:
    collect(CollectConfig(out=tmp_path, maps=("highway",), episodes=1, frames_per_episode=1,
                          every=1, seed=2, image_size=(160, 96)), progress=False)
    ep = json.loads(next(tmp_path.glob("*/episode.json")).read_text())
    assert ep["vehicles"] > 0
    meta = json.loads(next(tmp_path.glob("*/*_meta.json")).read_text())
    cars = [a for a in meta["actors"] if a["kind"] == "vehicle"]
    assert len(cars) == ep["vehicles"]
    # spawned within 120 m, then 3 s of driving: nobody is far away
    assert max(math.hypot(a["x"], a["y"]) for a in cars) < 120.0 + 3.0 * 40.0


def test_traffic_density_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty"
    assert main(["collect", "--out", str(out), "--maps", "town_grid", "--episodes", "1",
                 "--frames-per-episode", "1", "--image-size", "160x96", "--seed", "2",
                 "--vehicle-density", "0", "0", "--pedestrian-density", "0.2", "0.2",
                 "--no-progress"]) == 0
    ep = json.loads(next(out.glob("*/episode.json")).read_text())
    assert ep["vehicle_density"] == 0.0 and ep["vehicles"] == 0
    assert ep["pedestrian_density"] == pytest.approx(0.2) and ep["pedestrians"] > 0
    meta = json.loads(next(out.glob("*/*_meta.json")).read_text())
    assert not [a for a in meta["actors"] if a["kind"] == "vehicle"]
    for bad in (["--vehicle-density", "0.5", "0.1"], ["--pedestrian-density", "-1", "1"]):
        assert main(["collect", "--out", str(tmp_path / "bad"), *bad, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert bad[0] in err and "LOW <= HIGH" in err and "\n" not in err
        assert not (tmp_path / "bad").exists()


def test_drop_crosswalks_leaves_zebras_out_of_the_ground(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--drop-crosswalks P``: a share P of the map's crosswalks is not painted in an
    episode (drawn from its seed); 1 leaves them all out, as episode.json says."""
    from perception.collect import CollectConfig, plan_episodes, run_episode

    cfg = CollectConfig(out=tmp_path / "bare", maps=("town_grid",), episodes=1,
                        frames_per_episode=1, image_size=(160, 96), drop_crosswalks=1.0)
    run_episode(cfg, plan_episodes(cfg)[0], lambda: None, {})
    ep = json.loads(next((tmp_path / "bare").glob("*/episode.json")).read_text())
    assert ep["crosswalks"] == {"painted": 0, "of": 40}
    half = CollectConfig(out=tmp_path / "half", maps=("town_grid",), episodes=1,
                         frames_per_episode=1, image_size=(160, 96), drop_crosswalks=0.5)
    run_episode(half, plan_episodes(half)[0], lambda: None, {})
    ep = json.loads(next((tmp_path / "half").glob("*/episode.json")).read_text())
    assert 10 <= ep["crosswalks"]["painted"] <= 30 and ep["crosswalks"]["of"] == 40
    assert main(["collect", "--out", str(tmp_path / "bad"), "--drop-crosswalks", "1.5",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--drop-crosswalks" in err and "[0, 1]" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()
    # a CARLA server paints its own ground: refused before it is asked anything
    assert main(["collect", "--sim", "carla", "--out", str(tmp_path / "bad"),
                 "--drop-crosswalks", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--drop-crosswalks" in err and "--sim carla" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()
