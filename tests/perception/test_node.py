"""The perception node on the in-process bus: Image in, ObjectList,
TrafficLightState and Segmentation out with the image's header; weights loading and
its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bus import Executor, InProcessContext, Node
from bus.messages import (
    EgoState,
    Header,
    Image,
    ObjectList,
    Rotation,
    Segmentation,
    TrafficLightState,
    Transform,
    Vector3,
)
from perception.classes import CARLA_TO_CLASS_LUT, CLASS_TO_CARLA, TrainClass
from perception.inference import (
    DEFAULT_WEIGHTS,
    OnnxPredictor,
    Predictor,
    WeightsError,
    load_weights,
    resolve_backend,
    save_weights,
    select_device,
    verify_checksum,
)
from perception.model import ModelConfig, build_model
from perception.node import PerceptionNode
from perception.objects import scale_intrinsics


def run_node(params: dict, frames: int = 2) -> tuple[list[ObjectList], list[TrafficLightState],
                                                     PerceptionNode]:
    ctx = InProcessContext()
    objs: list[ObjectList] = []
    lights: list[TrafficLightState] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    cam = tape.create_publisher(Image, "/sensors/camera/front")
    ego = tape.create_publisher(EgoState, "/ego/state")
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    tape.create_subscription(TrafficLightState, "/perception/traffic_light", lights.append)
    node = PerceptionNode("perception", context=ctx, params=params, diagnostics=False)
    ex = Executor(ctx, [tape, node])
    rng = np.random.default_rng(0)
    for k in range(frames):  # each frame's image before its ego state, as it may arrive
        header = Header(frame=k + 7, stamp=0.05 * (k + 7))
        cam.publish(Image(header=header,
                          data=rng.integers(0, 255, (180, 320, 3), dtype=np.uint8)))
        ego.publish(EgoState(header=header))
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


def test_a_frame_waits_for_its_own_ego_state_and_tracks_with_its_pose(tmp_path: Path
                                                                       ) -> None:
    """The image of frame 8 arrives before frame 8's ego state (each topic has its
    own socket): the node waits for it and hands the tracker frame 8's pose, not
    frame 7's, whichever socket delivers first (replay feeds them in the recorder's
    order). With ego_pose off it reads no ego state and tracks in the ego frame."""
    image = np.zeros((180, 320, 3), np.uint8)
    pose = {k: Transform(Vector3(10.0 * k, 0.0, 0.0), Rotation(yaw=k)) for k in (7, 8)}
    for ego_pose in (True, False):
        ctx = InProcessContext()
        tape = Node("tape", context=ctx, diagnostics=False)
        cam = tape.create_publisher(Image, "/sensors/camera/front")
        ego = tape.create_publisher(EgoState, "/ego/state")
        node = PerceptionNode("perception", context=ctx, diagnostics=False, params={
            "allow_untrained": True, "device": "cpu", "weights": str(tmp_path / "a.pt"),
            "ego_pose": ego_pose})
        steps: list[tuple[int, Transform | None]] = []
        real = node.pipeline.step

        def step(images, pose, steps=steps, real=real):  # type: ignore[no-untyped-def]
            steps.append((images[0].header.frame, pose))
            return real(images, pose)

        node.pipeline.step = step  # type: ignore[method-assign]
        ex = Executor(ctx, [tape, node])
        ego.publish(EgoState(header=Header(frame=7), transform=pose[7]))
        cam.publish(Image(header=Header(frame=8), data=image))
        done = ex.spin_until(lambda steps=steps: bool(steps), timeout_s=1.0)
        if not ego_pose:
            assert done and steps == [(8, None)]
            assert "/ego/state" not in {s.topic for s in node.subscriptions}
            continue
        assert not done  # frame 8 waits for its ego state
        ego.publish(EgoState(header=Header(frame=8), transform=pose[8]))
        assert ex.spin_until(lambda steps=steps: bool(steps), timeout_s=10)
        assert steps == [(8, pose[8])]


def test_inputs_open_only_once_the_outputs_have_their_readers(tmp_path: Path) -> None:
    """With start_when_subscribed the node subscribes to the cameras (which lets
    the simulator start) only once its outputs have that many subscribers."""
    ctx = InProcessContext()
    node = PerceptionNode("perception", context=ctx, diagnostics=False, params={
        "allow_untrained": True, "device": "cpu", "weights": str(tmp_path / "absent.pt"),
        "start_when_subscribed": {"/perception/objects": 1, "/perception/traffic_light": 1}})
    topics = lambda: {s.topic for s in node.subscriptions}  # noqa: E731
    reader = Node("planning", context=ctx, diagnostics=False)
    ex = Executor(ctx, [node, reader])

    def gate_checks() -> None:  # the node's gate timer runs on the context's clock
        ctx.clock.advance(0.1)
        ex.spin_once(0.0)

    gate_checks()
    assert "/sensors/camera/front" not in topics()
    reader.create_subscription(ObjectList, "/perception/objects", lambda m: None)
    gate_checks()
    assert "/sensors/camera/front" not in topics()  # the light has no reader yet
    reader.create_subscription(TrafficLightState, "/perception/traffic_light", lambda m: None)
    gate_checks()
    assert {"/sensors/camera/front", "/ego/state"} <= topics()


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


def _camera_image(frame: int, rng: np.random.Generator) -> Image:
    return Image(header=Header(frame=frame, stamp=0.05 * frame),
                 data=rng.integers(0, 255, (180, 320, 3), dtype=np.uint8))


def test_all_cameras_of_a_frame_go_through_in_one_batch(tmp_path: Path) -> None:
    ctx = InProcessContext()
    objs: list[ObjectList] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    front = tape.create_publisher(Image, "/sensors/camera/front")
    rear = tape.create_publisher(Image, "/sensors/camera/rear")
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    segs: dict[str, list[Segmentation]] = {"front": [], "rear": []}
    for camera, got in segs.items():
        tape.create_subscription(Segmentation, f"/perception/segmentation/{camera}", got.append)
    node = PerceptionNode("perception", context=ctx, diagnostics=False, params={
        "allow_untrained": True, "device": "cpu", "weights": str(tmp_path / "absent.pt"),
        "cameras": ["front", "rear"], "ego_pose": False})
    batches: list[int] = []
    infer = node.predictor.infer_batch
    node.predictor.infer_batch = lambda images, enc="bgr8": (  # type: ignore[method-assign]
        batches.append(len(images)) or infer(images, enc))
    ex = Executor(ctx, [tape, node])
    rng = np.random.default_rng(1)
    front.publish(_camera_image(3, rng))  # frame 3 never completes
    front_image, rear_image = _camera_image(4, rng), _camera_image(4, rng)
    front.publish(front_image)
    rear.publish(rear_image)
    assert ex.spin_until(lambda: len(objs) >= 1, timeout_s=30)
    ex.spin_once(0.05)
    assert [o.header.frame for o in objs] == [4]
    assert batches == [2] and node.inputs.dropped == 1 and not len(node.inputs)
    # each camera's segmentation: the network's input size, CARLA ids, its own header
    for camera, image in (("front", front_image), ("rear", rear_image)):
        assert [m.header.frame for m in segs[camera]] == [4]
        seg = segs[camera][0]
        assert seg.camera == camera and seg.labels.shape == (160, 320)
        assert seg.intrinsics == scale_intrinsics(image.intrinsics, 320, 160)
        expected = node.predictor.predict(image.data)["segmentation"]
        np.testing.assert_array_equal(seg.labels, CLASS_TO_CARLA[expected])


def test_segmentation_ids_are_carla_ids_of_the_classes() -> None:
    assert [int(CARLA_TO_CLASS_LUT[CLASS_TO_CARLA[c]]) for c in TrainClass] == \
        [int(c) for c in TrainClass]


def test_segmentation_off_publishes_none(tmp_path: Path) -> None:
    ctx = InProcessContext()
    got: list[Segmentation] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    cam = tape.create_publisher(Image, "/sensors/camera/front")
    objs: list[ObjectList] = []
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    tape.create_subscription(Segmentation, "/perception/segmentation/front", got.append)
    node = PerceptionNode("perception", context=ctx, diagnostics=False, params={
        "allow_untrained": True, "device": "cpu", "weights": str(tmp_path / "absent.pt"),
        "segmentation": False, "ego_pose": False})
    ex = Executor(ctx, [tape, node])
    cam.publish(_camera_image(1, np.random.default_rng(2)))
    assert ex.spin_until(lambda: len(objs) >= 1, timeout_s=30)
    ex.spin_once(0.05)
    assert not got and not node.segmentation_pubs


def test_onnx_backend_matches_torch(tmp_path: Path) -> None:
    from launch.cli import main

    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights, light_trained=True)
    assert main(["export-onnx", "--weights", str(weights), "--out",
                 str(tmp_path / "w.onnx")]) == 0
    verify_checksum(tmp_path / "w.onnx")
    onnx = OnnxPredictor(tmp_path / "w.onnx")
    assert (onnx.width, onnx.height, onnx.light_trained) == (320, 160, True)
    model, _ = load_weights(weights)
    ref = Predictor(model, torch.device("cpu"))
    images = [np.random.default_rng(i).integers(0, 255, (360, 640, 3), dtype=np.uint8)
              for i in range(2)]
    for a, b in zip(onnx.predict_batch(images), ref.predict_batch(images), strict=True):
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-4)
        np.testing.assert_allclose(a["depth"], b["depth"], rtol=1e-4)
        np.testing.assert_allclose(a["light"], b["light"], atol=1e-4)
    # the node runs on it
    objs, lights, node = run_node({"backend": "onnxruntime",
                                   "weights": str(tmp_path / "w.onnx")})
    assert node.trained and len(objs) == 2 and len(lights) == 2
    # a tampered file is refused, naming it
    (tmp_path / "w.onnx").write_bytes(b"junk")
    with pytest.raises(WeightsError, match=r"w\.onnx"):
        OnnxPredictor(tmp_path / "w.onnx")


def test_the_cpu_default_is_onnxruntime_on_the_weights_own_graph(tmp_path: Path) -> None:
    """Backend auto on the CPU runs the weights' ONNX graph, built in memory, in
    onnxruntime; its outputs are the PyTorch backend's."""
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights, light_trained=True)
    _, _, node = run_node({"weights": str(weights), "device": "cpu"}, frames=1)
    assert isinstance(node.predictor, OnnxPredictor) and node.light_trained
    _, _, torch_node = run_node({"weights": str(weights), "device": "cpu",
                                 "backend": "torch"}, frames=1)
    assert isinstance(torch_node.predictor, Predictor)
    image = np.random.default_rng(5).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    a, b = node.predictor.predict(image), torch_node.predictor.predict(image)
    np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-4)
    np.testing.assert_allclose(a["depth"], b["depth"], rtol=1e-4)
    np.testing.assert_allclose(a["light"], b["light"], atol=1e-4)


def test_backend_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu) == "onnxruntime"
    assert resolve_backend("auto", cuda) == "torch"
    assert resolve_backend("auto", cpu, compile=True) == "torch"
    assert resolve_backend("auto", cpu, batch=4) == "torch"  # slower batched
    assert resolve_backend("torch", cpu) == "torch"
    for device, compile in ((cuda, False), (cpu, True)):
        with pytest.raises(ValueError, match="onnxruntime backend runs on the CPU"):
            resolve_backend("onnxruntime", device, compile)
    with pytest.raises(ValueError, match="backend: expected one of 'auto'"):
        PerceptionNode("perception", context=InProcessContext(), diagnostics=False,
                       params={"backend": "tensorrt", "allow_untrained": True})


def test_auto_falls_back_to_torch_with_a_warning_when_no_graph_can_be_built(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import perception.onnx_graph
    from perception.inference import make_predictor

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("exporter removed")

    monkeypatch.setattr(perception.onnx_graph, "onnx_graph", broken)
    cpu = torch.device("cpu")
    with caplog.at_level("WARNING"):
        assert isinstance(make_predictor(build_model(ModelConfig()), False, cpu), Predictor)
    assert "exporter removed" in caplog.text
    with pytest.raises(WeightsError, match="no onnxruntime backend"):
        make_predictor(build_model(ModelConfig()), False, cpu, backend="onnxruntime")


def test_an_onnx_file_refuses_the_torch_backend(tmp_path: Path) -> None:
    from launch.cli import main

    weights = tmp_path / "w.pt"
    save_weights(build_model(ModelConfig()), weights)
    assert main(["export-onnx", "--weights", str(weights), "--out",
                 str(tmp_path / "w.onnx")]) == 0
    with pytest.raises(ValueError, match=r"w\.onnx is an ONNX file"):
        PerceptionNode("perception", context=InProcessContext(), diagnostics=False,
                       params={"weights": str(tmp_path / "w.onnx"), "backend": "torch",
                               "device": "cpu"})


def test_the_frozen_cpu_network_matches_eager_mode_for_a_batch() -> None:
    """The CPU default (TorchScript, frozen and optimised) gives the eager model's
    outputs, for one camera and for a batch of three."""
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    frozen = Predictor(model, torch.device("cpu"))
    eager = Predictor(build_model(ModelConfig()), torch.device("cpu"), jit=False)
    eager.model.load_state_dict(frozen.model.state_dict())
    assert not isinstance(frozen._forward, torch.nn.Module)  # it did freeze
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(3)]
    for batch in (images[:1], images):
        for a, b in zip(frozen.predict_batch(batch), eager.predict_batch(batch), strict=True):
            np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-4)
            np.testing.assert_allclose(a["depth"], b["depth"], rtol=1e-4)
            assert (a["seg"] == b["seg"]).mean() > 0.999


def test_the_device_segmentation_path_matches_the_host_one() -> None:
    """On CUDA the guided class map is made on the device from the preprocessed
    batch (perception.refine.guided_upsample_torch); run here on the CPU, that
    path gives the numpy one's classes (the images resized alike)."""
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped weights: random ones see one class everywhere")
    model, _ = load_weights(DEFAULT_WEIGHTS)
    host = Predictor(model, torch.device("cpu"), jit=False)
    device = Predictor(load_weights(DEFAULT_WEIGHTS)[0], torch.device("cpu"), jit=False)
    device.segmentation_on_device = True
    assert not host.segmentation_on_device  # the CPU default
    rng = np.random.default_rng(4)
    images = []
    for _ in range(2):  # sky, a grey road, blocks of colour on it
        image = np.full((360, 640, 3), (200, 170, 150), np.uint8)
        image[180:] = 90
        for _ in range(6):
            x, y = int(rng.integers(0, 600)), int(rng.integers(150, 320))
            image[y:y + 40, x:x + 40] = rng.integers(0, 255, 3, dtype=np.uint8)
        images.append(image)
    assert "segmentation" in device.infer_batch(images)
    for a, b in zip(device.predict_batch(images), host.predict_batch(images), strict=True):
        assert a["segmentation"].shape == (160, 320) and a["segmentation"].dtype == np.uint8
        assert len(np.unique(b["segmentation"])) >= 3
        assert (a["segmentation"] == b["segmentation"]).mean() > 0.99
        # the vehicle score at the camera's pixels, from the coefficients the
        # guided map was made with: on the device its RGB guide's, handed back in
        # the image's BGR order (their guides, the camera image or the input-size
        # one shrunk to the head's size, differ by rounding)
        rows, cols = (150, 300), (0, 640)
        np.testing.assert_allclose(a["vehicle_score"].window(rows, cols),
                                   b["vehicle_score"].window(rows, cols), atol=5e-3)
        assert a["vehicle_score"].image.shape == (360, 640, 3)
