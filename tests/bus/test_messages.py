"""Message types: construction, field validation, equality, repr, and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus import messages as m
from bus.schema import (
    SchemaError,
    from_dict,
    from_values,
    registered_messages,
    struct_fields,
    type_of,
)
from bus.serialization import decode, encode, from_bytes, to_bytes

ALL_TYPES = registered_messages()
EXPECTED_NAMES = {
    "Chatter", "ControlCommand", "EgoState", "GroundTruth", "Image", "MapData", "NodeStatus",
    "ObjectList", "RunEvent", "Segmentation", "TrafficLightState", "Trajectory",
}


def _vec(x: float, y: float, z: float) -> m.Vector3:
    return m.Vector3(x, y, z)


def _tf(x: float = 1.5, yaw: float = 30.0) -> m.Transform:
    return m.Transform(_vec(x, -2.0, 0.25), m.Rotation(pitch=-1.0, yaw=yaw, roll=0.5))


def _populated() -> dict[str, object]:
    """One instance of every message type with every field away from its default."""
    hdr = m.Header(frame=42, stamp=2.1)
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    n = 5
    return {
        "Chatter": m.Chatter(hdr, text="héllo ✓", count=-3),
        "ControlCommand": m.ControlCommand(
            hdr, m.VehicleControl(0.5, -0.25, 0.1, True, True, True, 3)
        ),
        "EgoState": m.EgoState(
            hdr, _tf(), _vec(3.0, 0.1, 0.0), _vec(-0.5, 0.0, 0.0), 3.0017, -4.5, 13.9,
            m.VehicleControl(throttle=0.3, steer=0.1),
        ),
        "GroundTruth": m.GroundTruth(
            hdr, ego_id=17,
            actors=[
                m.ActorState(1, "vehicle.tesla.model3", 14, _tf(5.0), _vec(1, 2, 3),
                             m.BoundingBox(_vec(0, 0, 0.7), _vec(2.4, 1.0, 0.75))),
                m.ActorState(2, "walker.pedestrian.0001", 12, _tf(-5.0)),
            ],
            traffic_lights=[
                m.TrafficLightInfo(9, "red", _tf(10.0), _vec(9.0, 1.0, 0.0),
                                   [m.LaneRef(4, 0, -1), m.LaneRef(4, 0, -2)]),
            ],
            ego_lane=m.LaneRef(4, 1, -1),
        ),
        "Image": m.Image(hdr, "left", "rgb8", img, m.CameraIntrinsics.from_fov(8, 6, 100.0),
                         _tf(1.2)),
        "MapData": m.MapData(hdr, "Town01", "<OpenDRIVE>...</OpenDRIVE>"),
        "NodeStatus": m.NodeStatus(hdr, "planner", 1234, "running", 7, 1.7e9, 1.0, 2.0, 3.0,
                                   10, 11, 2, 1, "ok"),
        "ObjectList": m.ObjectList(
            hdr, "oracle",
            [m.DetectedObject(3, "pedestrian", _vec(5, 1, 0), _vec(0.5, 0.5, 1.8), 12.0,
                              _vec(1, 0, 0), 0.75),
             m.DetectedObject()],
        ),
        "RunEvent": m.RunEvent(hdr, "red_light", 1, 2, _vec(1, 2, 3), 4.5, "ran a red"),
        "Segmentation": m.Segmentation(hdr, "left", img[..., 0] % 29,
                                       m.CameraIntrinsics.from_fov(8, 6, 100.0), _tf(1.2)),
        "TrafficLightState": m.TrafficLightState(hdr, "green", 12.5, 0.9, "oracle"),
        "Trajectory": m.Trajectory(
            hdr, poses=rng.normal(size=(n, 3)), speeds=rng.uniform(0, 10, n),
            times=np.cumsum(rng.uniform(0.05, 0.2, n)),
        ),
    }


POPULATED = _populated()


# --------------------------------------------------------------------------- registry
def test_registry_holds_every_message() -> None:
    assert {mt.name for mt in ALL_TYPES} == EXPECTED_NAMES
    assert set(POPULATED) == EXPECTED_NAMES
    for mt in ALL_TYPES:
        assert type_of(mt.cls) is mt
        assert mt.name == mt.cls.MSG_NAME
        assert mt.version == mt.cls.MSG_VERSION
        assert struct_fields(mt.cls)[0].name == "header"


def test_type_of_unregistered_struct() -> None:
    with pytest.raises(TypeError, match="Header is not a registered bus message"):
        type_of(m.Header)


@pytest.mark.parametrize("mt", ALL_TYPES, ids=lambda mt: mt.name)
def test_defaults_round_trip(mt) -> None:
    msg = mt.cls()
    assert msg == mt.cls()
    assert decode(encode(msg)) == msg
    assert decode(encode(msg), mt.cls) == msg
    assert from_bytes(to_bytes(msg)) == msg
    assert from_bytes(to_bytes(msg), mt.cls) == msg
    assert type(decode(encode(msg))) is mt.cls


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_populated_round_trip(name: str) -> None:
    msg = POPULATED[name]
    out = decode(encode(msg))
    assert out == msg
    assert from_bytes(to_bytes(msg)) == msg
    assert repr(out) == repr(msg)
    # bit-exact: re-encoding the decoded message gives the same bytes
    assert to_bytes(out) == to_bytes(msg)
    assert out != type(msg)()


# ------------------------------------------------------------------- field validation
@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: m.Header(frame=1.0), "Header.frame"),
        (lambda: m.Header(frame="1"), "Header.frame"),
        (lambda: m.Header(frame=True), "Header.frame"),
        (lambda: m.Header(stamp=False), "Header.stamp"),
        (lambda: m.Header(stamp="0.5"), "Header.stamp"),
        (lambda: m.Header(stamp=None), "Header.stamp"),
        (lambda: m.Chatter(text=b"bytes"), "Chatter.text"),
        (lambda: m.Chatter(count=np.bool_(True)), "Chatter.count"),
        (lambda: m.VehicleControl(hand_brake=1), "VehicleControl.hand_brake"),
        (lambda: m.VehicleControl(gear=2.0), "VehicleControl.gear"),
        (lambda: m.EgoState(transform="here"), "EgoState.transform"),
        (lambda: m.EgoState(velocity=[1.0, 2.0]), "Vector3"),
        (lambda: m.GroundTruth(actors=m.ActorState()), "GroundTruth.actors"),
        (lambda: m.GroundTruth(actors=[m.ActorState(), 5]), "GroundTruth.actors[1]"),
        (lambda: m.Image(data=np.zeros((4, 4), np.uint8)), "Image.data"),
        (lambda: m.Image(data=np.zeros((4, 4, 4), np.uint8)), "Image.data"),
        (lambda: m.Image(data=np.zeros((4, 4, 3), np.float32)), "Image.data"),
        (lambda: m.Image(data=[[[0, 0, 0]]]), "Image.data"),
        (lambda: m.Segmentation(labels=np.zeros((4, 4, 1), np.uint8)), "Segmentation.labels"),
        (lambda: m.Segmentation(labels=np.zeros((4, 4), np.int32)), "Segmentation.labels"),
        (lambda: m.Trajectory(poses=np.zeros((2, 2))), "Trajectory.poses"),
        (lambda: m.Trajectory(speeds=np.zeros(0, np.float32)), "Trajectory.speeds"),
        (lambda: m.Trajectory(times=np.zeros(0, ">f8")), "Trajectory.times"),
    ],
)
def test_wrong_types_are_refused(build, path: str) -> None:
    with pytest.raises(SchemaError) as info:
        build()
    assert path in str(info.value)
    assert path in info.value.path


def test_numpy_scalars_are_converted() -> None:
    h = m.Header(frame=np.int64(3), stamp=np.float32(0.5))
    assert type(h.frame) is int and h.frame == 3
    assert type(h.stamp) is float and h.stamp == 0.5
    assert type(m.Header(stamp=2).stamp) is float
    assert m.VehicleControl(hand_brake=np.bool_(True)).hand_brake is True


def test_schema_error_text_is_bounded() -> None:
    with pytest.raises(SchemaError) as info:
        m.Chatter(text=["x" * 500])
    assert len(str(info.value)) < 150
    assert str(info.value).startswith("Chatter.text: expected str, got ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"throttle": 1.01}, {"throttle": -0.01}, {"steer": -1.5}, {"steer": 1.0001},
        {"brake": 2.0}, {"brake": -1.0}, {"throttle": math.nan}, {"steer": math.inf},
    ],
)
def test_vehicle_control_range(kwargs: dict) -> None:
    with pytest.raises(SchemaError, match="VehicleControl"):
        m.VehicleControl(**kwargs)


def test_vehicle_control_limits_are_inclusive() -> None:
    m.VehicleControl(throttle=1.0, steer=-1.0, brake=1.0)
    m.VehicleControl(throttle=0.0, steer=1.0, brake=0.0)
    with pytest.raises(SchemaError):
        m.ControlCommand(control={"throttle": 3.0, "steer": 0.0, "brake": 0.0,
                                  "hand_brake": False, "reverse": False,
                                  "manual_gear_shift": False, "gear": 0})


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: m.DetectedObject(confidence=1.5), "DetectedObject.confidence"),
        (lambda: m.TrafficLightState(confidence=-0.1), "TrafficLightState.confidence"),
        (lambda: m.EgoState(speed=math.nan), "EgoState.speed"),
        (lambda: m.EgoState(yaw_rate=math.inf), "EgoState.speed"),
        (lambda: m.EgoState(speed_limit=-math.inf), "EgoState.speed"),
    ],
)
def test_post_init_checks(build, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        build()


def test_trajectory_lengths_must_match() -> None:
    with pytest.raises(SchemaError, match="one length"):
        m.Trajectory(poses=np.zeros((3, 3)), speeds=np.zeros(2), times=np.arange(3.0))
    with pytest.raises(SchemaError, match="one length"):
        m.Trajectory(poses=np.zeros((3, 3)), speeds=np.zeros(3), times=np.arange(4.0))
    with pytest.raises(SchemaError, match="one length"):
        m.Trajectory(poses=np.zeros((0, 3)), speeds=np.zeros(1), times=np.zeros(0))


@pytest.mark.parametrize(
    "times", [[0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 0.0], [0.0, math.nan], [0.0, 1.0, 1.0]]
)
def test_trajectory_times_must_rise(times: list[float]) -> None:
    n = len(times)
    with pytest.raises(SchemaError, match=r"Trajectory\.times"):
        m.Trajectory(poses=np.zeros((n, 3)), speeds=np.zeros(n), times=np.array(times))


def test_trajectory_valid_edge_cases() -> None:
    empty = m.Trajectory()
    assert empty.poses.shape == (0, 3) and empty.times.shape == (0,)
    one = m.Trajectory(poses=np.zeros((1, 3)), speeds=np.ones(1), times=np.array([5.0]))
    assert decode(encode(one)) == one
    neg = m.Trajectory(poses=np.zeros((2, 3)), speeds=np.ones(2), times=np.array([-1.0, 0.0]))
    assert decode(encode(neg)) == neg


def test_image_intrinsics_default_from_image_size() -> None:
    img = m.Image(data=np.zeros((480, 640, 3), np.uint8))
    assert img.intrinsics == m.CameraIntrinsics.from_fov(640, 480, 90.0)
    assert (img.intrinsics.width, img.intrinsics.height) == (640, 480)
    assert img.intrinsics.fx == pytest.approx(320.0)


def test_segmentation_intrinsics_size_mismatch() -> None:
    labels = np.zeros((4, 6), np.uint8)
    m.Segmentation(labels=labels, intrinsics=m.CameraIntrinsics(6, 4, 3.0, 3.0, 3.0, 2.0))
    with pytest.raises(SchemaError, match=r"Segmentation\.intrinsics"):
        m.Segmentation(labels=labels, intrinsics=m.CameraIntrinsics(4, 6, 3.0, 3.0, 2.0, 3.0))


def test_image_intrinsics_size_mismatch() -> None:
    data = np.zeros((4, 6, 3), np.uint8)
    m.Image(data=data, intrinsics=m.CameraIntrinsics(6, 4, 3.0, 3.0, 3.0, 2.0))
    with pytest.raises(SchemaError, match=r"Image\.intrinsics") as info:
        m.Image(data=data, intrinsics=m.CameraIntrinsics(4, 6, 3.0, 3.0, 2.0, 3.0))
    assert "6 x 4" in str(info.value)
    with pytest.raises(SchemaError, match=r"Image\.intrinsics"):
        m.Image(data=data, intrinsics=m.CameraIntrinsics(6, 0))
    with pytest.raises(SchemaError, match=r"Image\.intrinsics"):
        m.Image(intrinsics=m.CameraIntrinsics(1, 1))


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: m.Image(encoding="mono8"), "Image.encoding"),
        (lambda: m.Image(encoding="BGR8"), "Image.encoding"),
        (lambda: m.Image(encoding=None), "Image.encoding"),
        (lambda: m.ObjectList(source="lidar"), "ObjectList.source"),
        (lambda: m.DetectedObject(label="car"), "DetectedObject.label"),
        (lambda: m.TrafficLightState(state="blue"), "TrafficLightState.state"),
        (lambda: m.TrafficLightInfo(state=""), "TrafficLightInfo.state"),
        (lambda: m.NodeStatus(state="done"), "NodeStatus.state"),
        (lambda: m.RunEvent(kind="collision"), "RunEvent.kind"),
    ],
)
def test_choice_fields(build, path: str) -> None:
    with pytest.raises(SchemaError, match=path) as info:
        build()
    assert "one of" in str(info.value)


def test_choice_fields_accept_every_option() -> None:
    for state in m.LIGHT_STATES:
        assert m.TrafficLightState(state=state).state == state
    for kind in m.EVENT_KINDS:
        msg = m.RunEvent(kind=kind)
        assert decode(encode(msg)).kind == kind
    for label in m.OBJECT_CLASSES:
        assert m.DetectedObject(label=label).label == label


def test_nested_structs_from_dicts_and_lists() -> None:
    ego = m.EgoState(
        transform={"location": {"x": 1.0, "y": 2, "z": 3.0},
                   "rotation": {"pitch": 0.0, "yaw": 90.0, "roll": 0.0}},
        velocity=[1, 2, 3],
    )
    assert ego.transform == m.Transform(m.Vector3(1.0, 2.0, 3.0), m.Rotation(yaw=90.0))
    assert ego.velocity == m.Vector3(1.0, 2.0, 3.0)
    assert type(ego.velocity.x) is float
    with pytest.raises(SchemaError, match=r"Vector3\.w"):
        from_dict(m.Vector3, {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0})
    with pytest.raises(SchemaError, match=r"Vector3\.z"):
        from_dict(m.Vector3, {"x": 0.0, "y": 0.0})
    with pytest.raises(SchemaError, match="3 fields"):
        from_values(m.Vector3, [1.0, 2.0])
    with pytest.raises(SchemaError):
        from_values(m.VehicleControl, [2.0, 0.0, 0.0, False, False, False, 0])


def test_from_values_checks_choices() -> None:
    wire = [-1, "car", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.0, [0.0, 0.0, 0.0], 1.0]
    with pytest.raises(SchemaError, match=r"DetectedObject\.label"):
        from_values(m.DetectedObject, wire)


def test_huge_int_for_float_is_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"Header\.stamp"):
        m.Header(stamp=10**400)


# --------------------------------------------------------------------- CameraIntrinsics
def test_intrinsics_from_fov() -> None:
    k = m.CameraIntrinsics.from_fov(800, 600, 90.0)
    assert (k.width, k.height) == (800, 600)
    assert k.fx == pytest.approx(400.0) and k.fy == pytest.approx(400.0)
    assert (k.cx, k.cy) == (400.0, 300.0)
    assert type(k.fx) is float
    k60 = m.CameraIntrinsics.from_fov(640, 480, 60.0)
    assert k60.fx == pytest.approx(320.0 / math.tan(math.radians(30.0)))
    assert k60.fy == k60.fx
    assert m.CameraIntrinsics.from_fov(640, 480, 120.0).fx < k.fx
    mat = k.matrix()
    assert mat.shape == (3, 3)
    np.testing.assert_allclose(mat, [[400, 0, 400], [0, 400, 300], [0, 0, 1]])
    # the principal point projects straight ahead; a 45 deg ray reaches the image edge
    np.testing.assert_allclose(mat @ [1.0, 0.0, 1.0], [800.0, 300.0, 1.0])


# ------------------------------------------------------------------- equality and repr
def test_struct_equality_with_arrays() -> None:
    a = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    img = m.Image(data=a)
    assert img == m.Image(data=a.copy())
    assert img != m.Image(data=a[:, ::-1].copy())
    assert img != m.Image(data=np.zeros((2, 3, 3), np.uint8))
    assert img != m.Image(data=a, camera="rear")
    assert img != m.Image(data=a, header=m.Header(frame=1))
    traj = POPULATED["Trajectory"]
    same = m.Trajectory(traj.header, traj.poses.copy(), traj.speeds.copy(), traj.times.copy())
    assert traj == same
    other = traj.poses.copy()
    other[2, 1] += 1e-9
    assert traj != m.Trajectory(traj.header, other, traj.speeds, traj.times)
    nan = np.full((1, 3), np.nan)
    t1 = m.Trajectory(poses=nan, speeds=np.zeros(1), times=np.zeros(1))
    assert t1 != m.Trajectory(poses=nan.copy(), speeds=np.zeros(1), times=np.zeros(1))


def test_struct_equality_other_types_and_lists() -> None:
    assert m.Vector3(1, 2, 3) != m.Rotation(1, 2, 3)
    assert m.Vector3() != (0.0, 0.0, 0.0)
    assert m.Header() != None  # noqa: E711
    gt = POPULATED["GroundTruth"]
    assert gt == decode(encode(gt))
    changed = decode(encode(gt))
    changed = m.GroundTruth(changed.header, changed.ego_id, changed.actors[:1],
                            changed.traffic_lights, changed.ego_lane)
    assert gt != changed


def test_structs_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(m.Header())


def test_repr_shows_arrays_compactly() -> None:
    img = m.Image(data=np.zeros((360, 640, 3), np.uint8))
    r = repr(img)
    assert "data=uint8[360x640x3]" in r
    assert "array(" not in r and "0, 0, 0" not in r
    assert r.startswith("Image(header=Header(frame=0, stamp=0.0), camera='front'")
    assert len(r) < 400
    tr = repr(m.Trajectory())
    assert "poses=float64[0x3]" in tr and "speeds=float64[0]" in tr and "times=float64[0]" in tr
    assert repr(m.Vector3(1, 2, 3)) == "Vector3(x=1.0, y=2.0, z=3.0)"
    assert repr(m.Chatter(text="hi")) == (
        "Chatter(header=Header(frame=0, stamp=0.0), text='hi', count=0)"
    )
