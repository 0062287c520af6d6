"""``drivestack viz``: the video and the Foxglove conversion of a small recording
written here message by message, the drawing and frame helpers, and one-line
errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader

from bus.frames import quaternion_xyzw, right_handed_pose, rotation_matrix, transform_matrix
from bus.messages import (
    ActorState,
    BoundingBox,
    CameraIntrinsics,
    DetectedObject,
    EgoState,
    GroundTruth,
    Header,
    Image,
    MapData,
    ObjectList,
    Rotation,
    RunEvent,
    Segmentation,
    TrafficLightState,
    Trajectory,
    Transform,
    Vector3,
)
from bus.recording import RecordingWriter
from bus.serialization import encode
from launch import viz
from launch.cli import main
from sim.maps import load_map

FRAMES = 6
DT = 0.05
W, H = 128, 72
EGO_Y = -98.25  # town_grid's inner road, eastbound (as tests/integration/test_run.py)


def _ego_x(k: int) -> float:
    return 120.0 + 5.0 * DT * k


def write_recording(path: Path, cameras: tuple[str, ...] = ("front",)) -> Path:
    """A drive of FRAMES ticks in the order the closed loop records them: map, then
    per tick ego, ground truth, objects, light, image(s), trajectory; one collision
    at tick 3. A vehicle drives 15 m ahead of the ego."""
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000_000_000_000
    with RecordingWriter(path) as w:
        w.write("/map/opendrive", encode(MapData(Header(0, 0.0), "town_grid",
                                                 load_map("town_grid").xodr)), t0)
        for k in range(FRAMES):
            h = Header(k, k * DT)
            ex = _ego_x(k)
            ego_tf = Transform(Vector3(ex, EGO_Y, 0.0), Rotation())
            msgs: list[tuple[str, object]] = [
                ("/ego/state", EgoState(h, ego_tf, Vector3(5.0, 0, 0), speed=5.0,
                                        speed_limit=40 / 3.6)),
                ("/sim/ground_truth", GroundTruth(h, ego_id=1, actors=[ActorState(
                    id=2, type_id="vehicle.test", label=14,
                    transform=Transform(Vector3(ex + 15.0, EGO_Y, 0.0), Rotation()),
                    bounding_box=BoundingBox(Vector3(0, 0, 0.75), Vector3(2.25, 0.95, 0.75)))])),
                ("/perception/objects", ObjectList(h, "perception", [DetectedObject(
                    track_id=4, label="vehicle", position=Vector3(15.0, 0.2, 0.75),
                    size=Vector3(4.5, 1.9, 1.5), yaw=5.0, velocity=Vector3(0, 0, 0),
                    confidence=0.9)])),
                ("/perception/traffic_light", TrafficLightState(h, "red", 60.0, 0.8)),
            ]
            for cam in cameras:
                msgs.append((f"/sensors/camera/{cam}", Image(
                    h, cam, "bgr8", rng.integers(0, 255, (H, W, 3), np.uint8),
                    CameraIntrinsics.from_fov(W, H, 90.0),
                    Transform(Vector3(1.5, 0, 1.6), Rotation()))))
            labels = np.zeros((H // 2, W // 2), np.uint8)
            labels[H // 4:] = 1  # road
            labels[H // 4:, :8] = 14  # a car
            msgs.append(("/perception/segmentation/front", Segmentation(
                h, "front", labels, CameraIntrinsics.from_fov(W // 2, H // 2, 90.0),
                Transform(Vector3(1.5, 0, 1.6), Rotation()))))
            xs = ex + np.arange(10) * 2.0
            msgs.append(("/planning/trajectory", Trajectory(
                h, np.column_stack([xs, np.full(10, EGO_Y), np.zeros(10)]),
                np.full(10, 5.0), np.arange(10) * 0.4)))
            if k == 3:
                msgs.append(("/run/events", RunEvent(h, "collision_vehicle", 1, 2,
                                                     Vector3(ex + 2, EGO_Y, 0), 120.0)))
            for i, (topic, msg) in enumerate(msgs):
                w.write(topic, encode(msg), t0 + round((k * DT + 0.001 * (i + 1)) * 1e9))
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recording(tmp_path_factory.mktemp("viz") / "drive.mcap")


def _video(path: Path) -> tuple[int, int, int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = 0
    while cap.read()[0]:
        frames += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return frames, *size


# -------------------------------------------------------------------------- video
def test_video_without_shipped_weights_says_so(recording: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("perception.inference.DEFAULT_WEIGHTS", tmp_path / "none.pt")
    out = tmp_path / "drive.mp4"
    rc = main(["viz", str(recording), "-o", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "segmentation overlay: none: no shipped weights" in text
    assert f"{FRAMES} frames" in text
    # camera 128 x 72 | bird's-eye view 72 x 72, over a 24 px status line
    assert _video(out) == (FRAMES, W + H, H + 24)


def test_video_with_given_weights_in_a_window(recording: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from perception.inference import save_weights
    from perception.model import ModelConfig, build_model

    weights = tmp_path / "tiny.pt"
    save_weights(build_model(ModelConfig(input_size=(64, 32))), weights)
    out = tmp_path / "window.mp4"
    rc = main(["viz", str(recording), "-o", str(out), "--weights", str(weights),
               "--start", "0.1", "--end", "0.2", "--fps", "10", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert f"segmentation overlay: {weights}" in text
    assert _video(out)[0] == 2  # the frames at 0.10 and 0.15 s
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    cap.release()


def test_frame_states_pair_each_image_with_its_own_frame(recording: Path) -> None:
    with viz.open_recording(recording) as rec:
        states = list(viz.frame_states(rec, "/sensors/camera/front"))
    assert [s.image.header.frame for s in states] == list(range(FRAMES))
    for k, s in enumerate(states):
        assert s.ego is not None and s.ego.header.frame == k
        assert s.trajectory is not None and s.trajectory.header.frame == k  # recorded after
        assert s.objects is not None and s.ground_truth is not None and s.light is not None
        assert len(s.path) == k + 1 and s.path[-1, 0] == pytest.approx(_ego_x(k))
        assert [e.kind for e in s.events] == (["collision_vehicle"] if k >= 3 else [])
    assert "1 infractions" in viz.status_text(states[-1])
    assert "speed  18.0 km/h (limit 40)" in viz.status_text(states[0])


def test_box_projection_and_bird_eye_view_geometry() -> None:
    image = Image(Header(), "front", "bgr8", np.zeros((H, W, 3), np.uint8),
                  CameraIntrinsics.from_fov(W, H, 90.0), Transform(Vector3(0, 0, 1.0)))
    ahead = DetectedObject(track_id=1, label="vehicle", position=Vector3(10, 0, 1.0),
                           size=Vector3(4, 2, 2))
    corners = viz.box_corners_ego(ahead)
    assert corners.min(axis=0) == pytest.approx([8, -1, 0]) and corners.max(
        axis=0) == pytest.approx([12, 1, 2])
    px = np.concatenate(viz.box_edges_pixels(corners, image))
    assert px[:, 0].mean() == pytest.approx(W / 2)  # straight ahead: centred
    # A box that reaches behind the camera is clipped, not dropped or mirrored.
    across = DetectedObject(label="vehicle", position=Vector3(1, 0, 1.0), size=Vector3(6, 2, 2))
    edges = viz.box_edges_pixels(viz.box_corners_ego(across), image)
    assert edges and all(np.isfinite(e).all() for e in edges)

    bev = viz.BevView(side=120, view_m=60.0)
    assert bev.ego_to_pixels(np.array([[10.0, 0.0], [0.0, 5.0]])) == pytest.approx(
        np.array([[60, 40], [70, 60]]))  # forward is up, right is right
    facing_y = Transform(Vector3(100, 50, 0), Rotation(yaw=90))  # ego heading world +y
    assert bev.world_to_pixels(np.array([[100.0, 60.0]]), facing_y) == pytest.approx(
        np.array([[60, 40]]))
    state = viz.FrameState(image, objects=ObjectList(objects=[ahead]))
    frame = viz.render_frame(state, bev)
    assert frame.shape == (max(H, 120) + 24, W + 120, 3)


def test_segmentation_overlay_leaves_background_alone() -> None:
    bgr = np.full((4, 4, 3), 100, np.uint8)
    seg = np.array([[0, 1], [1, 0]], np.uint8)  # head resolution: half size
    palette = np.array([(0, 0, 0), (0, 0, 255)], np.uint8)
    out = viz.overlay_segmentation(bgr, seg, palette, alpha=0.5)
    assert (out[0, 0] == 100).all() and (out[3, 3] == 100).all()
    assert out[0, 3].tolist() == [50, 50, 178]


# ----------------------------------------------------------------------- Foxglove
def test_frames_convert_to_right_handed_foxglove_poses() -> None:
    yaw = 30.0
    q = quaternion_xyzw(rotation_matrix(Rotation(yaw=yaw)))
    # CARLA yaw turns right (left-handed); Foxglove's z-up right-handed frame: negative.
    t, r = right_handed_pose(transform_matrix(Transform(Vector3(1, 2, 3),
                                                                Rotation(yaw=yaw))))
    assert t == pytest.approx([1, -2, 3])
    assert quaternion_xyzw(r) == pytest.approx(
        (0, 0, -math.sin(math.radians(yaw) / 2), math.cos(math.radians(yaw) / 2)))
    assert q[2] == pytest.approx(math.sin(math.radians(yaw) / 2))
    # A camera looking forward: optical z (forward) is ego x, optical x (right) is
    # ego -y (Foxglove's y is left), optical y (down) is ego -z.
    t, r = right_handed_pose(transform_matrix(Transform(Vector3(1.5, 0, 1.6))),
                                 optical_child=True)
    assert t == pytest.approx([1.5, 0, 1.6])
    assert r @ [0, 0, 1] == pytest.approx([1, 0, 0])
    assert r @ [1, 0, 0] == pytest.approx([0, -1, 0])
    assert r @ [0, 1, 0] == pytest.approx([0, 0, -1])
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_foxglove_conversion(recording: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("foxglove")
    out = tmp_path / "foxglove.mcap"
    rc = main(["viz", str(recording), "--foxglove", str(out)])
    assert rc == 0, capsys.readouterr()
    with open(out, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        counts = summary.statistics.channel_message_counts
        got = {c.topic: (summary.schemas[c.schema_id].name, c.message_encoding, counts[cid])
               for cid, c in summary.channels.items()}
        ego = [json.loads(m.data) for _, c, m in reader.iter_messages(topics=["/ego/state"])]
        log_times = [m.log_time for _, _, m in reader.iter_messages(
            topics=["/sensors/camera/front"])]
    assert got == {
        "/sensors/camera/front": ("foxglove.CompressedImage", "protobuf", FRAMES),
        "/perception/segmentation/front": ("foxglove.CompressedImage", "protobuf", FRAMES),
        "/sensors/camera/front/calibration": ("foxglove.CameraCalibration", "protobuf",
                                              FRAMES),
        "/tf": ("foxglove.FrameTransforms", "protobuf", 2 * FRAMES),
        "/perception/objects": ("foxglove.SceneUpdate", "protobuf", FRAMES),
        "/sim/ground_truth": ("foxglove.SceneUpdate", "protobuf", FRAMES),
        "/planning/trajectory": ("foxglove.SceneUpdate", "protobuf", FRAMES),
        "/map": ("foxglove.SceneUpdate", "protobuf", 1),
        "/ego/state": ("drivestack.EgoState", "json", FRAMES),
        "/perception/traffic_light": ("drivestack.TrafficLightState", "json", FRAMES),
        "/run/events": ("drivestack.RunEvent", "json", 1),
    }
    assert ego[2]["speed"] == 5.0 and ego[2]["header"] == {"frame": 2, "stamp": 0.1}
    assert log_times == [round(k * DT * 1e9) for k in range(FRAMES)]  # sim time

    window = viz.to_foxglove(recording, tmp_path / "window.mcap", start_s=0.1, end_s=0.2)
    assert window.topics["/sensors/camera/front"] == ("foxglove.CompressedImage", 2)
    assert window.topics["/map"] == ("foxglove.SceneUpdate", 1)  # the map is always kept
    assert not list(tmp_path.glob("*.tmp"))


def test_a_segmentation_is_a_png_in_class_colours() -> None:
    from perception.classes import PALETTE, TrainClass

    labels = np.zeros((4, 6), np.uint8)
    labels[2:] = 1  # CARLA's road
    labels[2:, :2] = 14  # a car
    png = viz.segmentation_png(Segmentation(Header(3, 0.15), "front", labels,
                                            CameraIntrinsics.from_fov(6, 4, 90.0)))
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert (bgr[0, 0] == PALETTE[TrainClass.BACKGROUND]).all()
    assert (bgr[3, 5] == PALETTE[TrainClass.ROAD]).all()
    assert (bgr[3, 0] == PALETTE[TrainClass.VEHICLE]).all()


def test_foxglove_needs_the_sdk(recording: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(viz, "foxglove", None)
    rc = main(["viz", str(recording), "--foxglove", str(tmp_path / "f.mcap")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "foxglove-sdk" in err and "pip install" in err and "\n" not in err


# ------------------------------------------------------------------------- errors
def test_bad_input_is_one_line(recording: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    text_file = tmp_path / "notes.mcap"
    text_file.write_text("not a recording\n")
    no_camera = tmp_path / "no_camera.mcap"
    with RecordingWriter(no_camera) as w:
        w.write("/ego/state", encode(EgoState()), 1)
    out = str(tmp_path / "v.mp4")
    cases = [
        (["viz", str(tmp_path / "missing.mcap"), "-o", out], "no such file"),
        (["viz", str(text_file), "-o", out], "not an MCAP file"),
        (["viz", str(no_camera), "-o", out], "no images on /sensors/camera/front"),
        (["viz", str(recording), "-o", out, "--camera", "rear"], "cameras recorded: front"),
        (["viz", str(recording), "-o", out, "--start", "5"], "images span 0 .. 0.25 s"),
        (["viz", str(recording), "-o", out, "--weights", str(tmp_path / "no.pt")],
         "no.pt not found"),
        (["viz", str(recording)], "writes nothing"),
        (["viz", str(recording), "--foxglove", str(recording)], "is the recording itself"),
    ]
    for argv, expected in cases:
        rc = main([*argv, "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and expected in err and "\n" not in err, (argv, err)
    assert not list(tmp_path.glob("v*.mp4"))  # neither the video nor a partial one
