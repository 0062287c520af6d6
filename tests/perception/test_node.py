"""The perception node on the in-process bus: Image in, ObjectList and
TrafficLightState out with the image's header; weights loading and its errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bus import Executor, InProcessContext, Node
from bus.messages import Header, Image, ObjectList, TrafficLightState
from perception.inference import (
    Predictor,
    WeightsError,
    load_weights,
    save_weights,
    select_device,
    verify_checksum,
)
from perception.model import ModelConfig, build_model
from perception.node import PerceptionNode


def run_node(params: dict, frames: int = 2) -> tuple[list[ObjectList], list[TrafficLightState],
                                                     PerceptionNode]:
    ctx = InProcessContext()
    objs: list[ObjectList] = []
    lights: list[TrafficLightState] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    cam = tape.create_publisher(Image, "/sensors/camera/front")
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    tape.create_subscription(TrafficLightState, "/perception/traffic_light", lights.append)
    node = PerceptionNode("perception", context=ctx, params=params, diagnostics=False)
    ex = Executor(ctx, [tape, node])
    rng = np.random.default_rng(0)
    for k in range(frames):
        cam.publish(Image(header=Header(frame=k + 7, stamp=0.05 * (k + 7)),
                          data=rng.integers(0, 255, (180, 320, 3), dtype=np.uint8)))
    assert ex.spin_until(lambda: len(objs) >= frames and len(lights) >= frames, timeout_s=30)
    return objs, lights, node


def test_image_in_objects_and_light_out_with_the_same_header(tmp_path: Path) -> None:
    objs, lights, node = run_node({"allow_untrained": True, "device": "cpu",
                                   "weights": str(tmp_path / "absent.pt")})
    assert not node.trained
    assert [o.header.frame for o in objs] == [7, 8]
    assert [t.header.frame for t in lights] == [7, 8]
    assert objs[1].header.stamp == pytest.approx(0.4)
    assert all(o.source == "perception" for o in objs)
    assert all(t.state == "unknown" and t.confidence == 0.0 for t in lights)


def test_no_weights_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="allow_untrained"):
        PerceptionNode("perception", context=InProcessContext(), diagnostics=False,
                       params={"weights": str(tmp_path / "none.pt"), "device": "cpu"})


def test_weights_round_trip_and_checksum_mismatch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_size=(320, 160)))
    path = tmp_path / "w.pt"
    cs = save_weights(model, path, light_trained=True, meta={"miou": 0.5})
    assert cs.name == "w.pt.sha256" and len(verify_checksum(path)) == 64
    loaded, info = load_weights(path)
    assert info["light_trained"] is True and info["meta"]["miou"] == 0.5
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _, lights, node = run_node({"weights": str(path), "device": "cpu"}, frames=1)
    assert node.light_trained and lights[0].state in ("red", "yellow", "green", "unknown")
    cs.write_text("0" * 64 + "  w.pt\n")
    with pytest.raises(WeightsError, match=r"w\.pt\.sha256"):
        load_weights(path)
    cs.unlink()
    with pytest.raises(WeightsError, match="no checksum file"):
        load_weights(path)


def test_device_selection() -> None:
    assert select_device("cpu", 2).type == "cpu" and torch.get_num_threads() == 2
    assert select_device("auto", None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        select_device("tpu")


def test_cpu_step_time_320x160(tmp_path: Path) -> None:
    """The whole step (preprocess, network, objects, tracker) on 2 CPU threads;
    printed for the record (the 25 ms target is for the bench, not asserted)."""
    node_params = {"allow_untrained": True, "device": "cpu", "cpu_threads": 2,
                   "weights": str(tmp_path / "absent.pt")}
    _, _, node = run_node(node_params, frames=1)
    assert isinstance(node.predictor, Predictor)
    img = np.random.default_rng(1).integers(0, 255, (160, 320, 3), dtype=np.uint8)
    times = []
    for k in range(10):
        msg = Image(header=Header(frame=100 + k, stamp=5.0 + 0.05 * k), data=img)
        t0 = time.perf_counter()
        node.on_image(msg)
        times.append(time.perf_counter() - t0)
    print(f"node step p50 {sorted(times)[5] * 1e3:.1f} ms")


def test_shipped_weights_load_when_present() -> None:
    from perception.inference import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped weights in perception/weights/")
    assert DEFAULT_WEIGHTS.stat().st_size < 10_000_000
    model, info = load_weights(DEFAULT_WEIGHTS)
    assert model.config.input_size == (320, 160) and "miou" in info["meta"]
