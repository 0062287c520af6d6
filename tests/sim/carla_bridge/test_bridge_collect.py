"""``drivestack collect --sim carla`` against `drivestack serve`: the RGB, labels
and depth it writes, decoded from CARLA's encodings, match what the embedded
renderer draws for the same view (the server draws its cameras with that renderer,
so any difference is in the encoding, decoding or frame matching)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.frames import ego_to_world
from bus.messages import Rotation, Transform, Vector3
from perception.classes import carla_to_class
from perception.collect import INDEX_FILE, decode_depth
from sim.carla_bridge.decode import bgr_from_bgra, depth_from_bgra, labels_from_bgra
from sim.labels import Label
from sim.maps import load_map
from sim.render import Appearance, CameraSpec, Renderer, RenderObject
from sim.render.scenery import place_scenery
from sim.scene import light_objects, map_ground_raster
from sim.traffic_lights import TrafficLights

SERVER_SEED = 0  # conftest's server


def test_decoders_invert_carlas_encodings() -> None:
    rng = np.random.default_rng(0)
    metres = rng.uniform(0.0, 999.0, (4, 5))
    v = np.rint(metres / 1000.0 * (256 ** 3 - 1)).astype(np.uint32)
    bgra = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255, np.full_like(v, 255)],
                    axis=-1).astype(np.uint8)
    assert np.abs(depth_from_bgra(bgra) - metres).max() < 1e-4  # 1000 m / 2^24 steps
    assert (labels_from_bgra(bgra) == bgra[..., 2]).all()
    assert (bgr_from_bgra(bgra) == bgra[..., :3]).all() and bgr_from_bgra(bgra).flags.c_contiguous
    with pytest.raises(ValueError, match="BGRA"):
        depth_from_bgra(bgra[..., :3])


def _objects(meta: dict, ego_tf: Transform) -> list[RenderObject]:
    """The sample's vehicles as the server draws them (ids are the server's)."""
    out = []
    for a in meta["actors"]:
        p = ego_to_world([a["x"], a["y"], a["z"]], ego_tf)
        ex, ey, ez = a["extent"]
        label = Label.TRUCK if ez > 1.0 else Label.CAR
        out.append(RenderObject(a["id"], int(label), Transform(
            Vector3(float(p[0]), float(p[1]), float(p[2]) + ez),
            Rotation(0.0, a["yaw"] + ego_tf.rotation.yaw, 0.0)), (ex, ey, ez)))
    return out


def test_collect_matches_the_embedded_renderer(carla_server, tools, tmp_path: Path  # type: ignore[no-untyped-def]
                                               ) -> None:
    out = tmp_path / "data"
    proc = tools.cli("collect", "--sim", "carla", "--port", str(carla_server.port),
                     "--tm-port", str(carla_server.tm_port), "--out", str(out), "--maps",
                     "town_grid", "--episodes", "1", "--frames-per-episode", "2", "--every",
                     "4", "--image-size", "320x180", "--no-progress", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / INDEX_FILE).read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["frame"] - rows[0]["frame"] == 4
    loaded = load_map("town_grid")
    ground = map_ground_raster(loaded.map)
    lights = TrafficLights.from_map(loaded.map, seed=SERVER_SEED)
    for row in rows:
        stem = out / row["sample"]
        meta = json.loads(Path(f"{stem}_meta.json").read_text())
        cam = meta["camera"]
        mount = Transform(Vector3(cam["mount"]["x"], cam["mount"]["y"], cam["mount"]["z"]),
                          Rotation(cam["mount"]["pitch"], cam["mount"]["yaw"], 0.0))
        renderer = Renderer(ground, [CameraSpec("front", cam["width"], cam["height"],
                                                cam["fov"], mount)],
                            Appearance.sample(SERVER_SEED), place_scenery(ground, SERVER_SEED))
        e = meta["ego"]
        ego_tf = Transform(Vector3(e["x"], e["y"], e["z"]), Rotation(0.0, e["yaw"], 0.0))
        objects = _objects(meta, ego_tf) + light_objects(lights, {})
        frame = renderer.render(ego_tf, objects, tick=meta["frame"])["front"]

        labels = cv2.imread(f"{stem}_labels.png", cv2.IMREAD_UNCHANGED)
        depth = decode_depth(cv2.imread(f"{stem}_depth.png", cv2.IMREAD_UNCHANGED))
        rgb = cv2.imread(f"{stem}_rgb.jpg")
        want_labels = carla_to_class(frame.labels)
        same = labels == want_labels
        assert same.mean() > 0.995, f"{row['sample']}: labels agree on {same.mean():.4f}"
        finite = np.isfinite(frame.depth) & (frame.depth < 600)
        close = np.abs(depth - frame.depth) <= 0.02  # cm PNG steps, float32 poses
        assert (close | ~finite).mean() > 0.995, f"depth agrees on {close[finite].mean():.4f}"
        # RGB is JPEG (quality 95): close, not equal; the lamps' colours follow the
        # server's light cycle, so light heads and poles are left out
        keep = ~np.isin(frame.labels, [int(Label.TRAFFIC_LIGHT), int(Label.POLES)]) & same
        diff = np.abs(rgb.astype(int) - frame.rgb.astype(int))[keep]
        assert diff.mean() < 3.0, f"mean RGB difference {diff.mean():.2f}"
        print(f"\n{row['sample']}: labels {same.mean():.5f}, depth "
              f"{(close | ~finite).mean():.5f}, mean RGB difference {diff.mean():.3f}")
    # a wrong port is one error line, nothing written
    (port,) = tools.free_ports(1)
    bad = tools.cli("collect", "--sim", "carla", "--port", str(port), "--timeout", "1",
                    "--out", str(tmp_path / "bad"), "--no-progress", timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert f"127.0.0.1:{port}" in bad.stderr and not (tmp_path / "bad").exists()
