"""Golden tests of every byte layout the server sends (no client needed): a size
or field-order mistake here would abort a user's client process."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest

from bus.messages import Rotation, Transform, Vector3, VehicleControl
from sim.carla_server import blueprints as bp
from sim.carla_server import wire
from sim.carla_server.sensors import decode_depth, encode_depth, encode_semantic

TF = Transform(Vector3(1.5, -2.25, 3.0), Rotation(-10.0, 90.0, 5.0))


def test_token_golden() -> None:
    t = wire.token(0x01020304, 2001)
    assert t == bytes.fromhex("04030201" "d107" "01" "00") + bytes(16)
    assert wire.parse_token(t) == (0x01020304, 2001)


def test_sensor_header_golden() -> None:
    h = wire.sensor_header(13, 77, 3.85, TF)
    assert len(h) == 48
    assert h[:24] == struct.pack("<QQd", 13, 77, 3.85)
    assert struct.unpack("<6f", h[24:]) == (1.5, -2.25, 3.0, -10.0, 90.0, 5.0)


def test_episode_header_golden() -> None:
    payload = wire.episode_state(9, 120, 6.0, 1.25, 0.05, [], flags=wire.FLAG_MAP_CHANGE)
    assert len(payload) == 48 + 36
    assert struct.unpack("<QQd", payload[:24]) == (17, 120, 6.0)
    assert struct.unpack("<Qdf3ii", payload[48:]) == (9, 1.25, pytest.approx(0.05), 0, 0,
                                                      0, 1)


def test_vehicle_record_golden() -> None:
    rec = wire.ActorRecord(
        42, TF, Vector3(1.0, 2.0, 0.0), Vector3(0.0, 0.0, 9.0), Vector3(0.5, 0.0, 0.0),
        wire.VehicleRecord(VehicleControl(0.5, -0.25, 0.0, True, False, True, 3), 50.0,
                           wire.LIGHT_STATE_IDS["red"], True, 7, 0))
    b = rec.pack()
    assert len(b) == 119
    assert struct.unpack_from("<IB", b) == (42, 1)
    assert struct.unpack_from("<15f", b, 5) == (1.5, -2.25, 3.0, -10.0, 90.0, 5.0, 1.0, 2.0,
                                               0.0, 0.0, 0.0, 9.0, 0.5, 0.0, 0.0)
    union = b[65:]
    assert union[:12] == struct.pack("<3f", 0.5, -0.25, 0.0)
    assert union[12:15] == bytes([1, 0, 1])
    assert struct.unpack_from("<ifBBIB", union, 15) == (3, 50.0, 0, 1, 7, 0)
    assert union[15 + 15:] == bytes(54 - 30)


def test_light_and_walker_records_golden() -> None:
    light = wire.ActorRecord(5, TF, data=wire.LightRecord("sig_12", 2, 10.0, 3.0, 22.0, 4.5,
                                                          pole_index=1)).pack()
    assert len(light) == 119
    u = light[65:]
    assert u[:32] == b"sig_12".ljust(32, b"\0")
    assert struct.unpack_from("<4fIBB", u, 32) == (10.0, 3.0, 22.0, 4.5, 1, 0, 2)
    walker = wire.ActorRecord(6, TF, data=wire.WalkerRecord((0.0, 1.0, 0.0), 1.4)).pack()
    assert len(walker) == 119
    assert struct.unpack_from("<3ffB", walker, 65) == (0.0, 1.0, 0.0, pytest.approx(1.4), 0)
    assert walker[65 + 17:] == bytes(54 - 17)
    other = wire.ActorRecord(7, TF).pack()
    assert len(other) == 119 and other[65:] == bytes(54)


def test_episode_state_roundtrip() -> None:
    recs = [wire.ActorRecord(i, TF) for i in (1, 2, 3)]
    p = wire.episode_state(1, 5, 0.25, 0.0, 0.05, recs)
    parsed = wire.parse_episode_state(p)
    assert [a["id"] for a in parsed["actors"]] == [1, 2, 3]
    with pytest.raises(ValueError, match="multiple of 119"):
        wire.parse_episode_state(p[:-1])


def test_image_payload_golden() -> None:
    bgra = bytes(range(24))
    p = wire.image_payload(wire.SENSOR_RGB, 3, 0.15, TF, 90.0, bgra, 3, 2)
    assert len(p) == 48 + 12 + 24
    assert struct.unpack_from("<IIf", p, 48) == (3, 2, 90.0) and p[60:] == bgra
    with pytest.raises(ValueError, match="needs 24 bytes"):
        wire.image_payload(wire.SENSOR_RGB, 3, 0.15, TF, 90.0, bgra[:-1], 3, 2)


def test_depth_encoding_is_carlas() -> None:
    depth = np.array([[0.0, 1.0, 12.345], [999.0, 1000.0, 5000.0]], np.float32)
    img = encode_depth(depth)
    b, g, r = (img[..., i].astype(np.int64) for i in range(3))
    normalized = (r + g * 256 + b * 65536) / (256 ** 3 - 1)
    assert np.allclose(1000 * normalized, np.minimum(depth, 1000), atol=1000 / 2 ** 24)
    assert np.allclose(decode_depth(img), np.minimum(depth, 1000), atol=1000 / 2 ** 24)
    assert (img[..., 3] == 255).all()
    # 1 m is 1/1000 of the range: 16777 in 24 bits, R the low byte
    assert tuple(img[0, 1, :3]) == ((16777 >> 16) & 255, (16777 >> 8) & 255, 16777 & 255)


def test_semantic_encoding_red_channel() -> None:
    labels = np.array([[1, 14], [11, 24]], np.uint8)
    img = encode_semantic(labels)
    assert (img[..., 2] == labels).all() and (img[..., :2] == 0).all()


def test_rpc_shapes_golden() -> None:
    assert wire.ok(5) == [[1, 5]]
    assert wire.ok_void() == [[False]]
    assert wire.error("boom") == [[0, ["boom"]]]
    assert wire.error("boom", void=True) == [[True, ["boom"]]]
    assert wire.transform_msg(TF) == [[1.5, -2.25, 3.0], [-10.0, 90.0, 5.0]]
    assert wire.parse_transform([[1, 2, 3], [4, 5, 6]]) == Transform(Vector3(1, 2, 3),
                                                                    Rotation(4, 5, 6))
    with pytest.raises(ValueError):
        wire.parse_transform([[1, 2], [4, 5, 6]])
    with pytest.raises(ValueError):
        wire.parse_transform([[1, 2, float("nan")], [4, 5, 6]])
    c = wire.parse_control([2.0, -3.0, 0.5, True, False, False, 2])
    assert (c.throttle, c.steer, c.brake, c.hand_brake, c.gear) == (1.0, -1.0, 0.5, True, 2)


def test_episode_settings_roundtrip() -> None:
    msg = [True, False, [True, 0.05], True, 0.01, 10, 0.0, True, 3000.0, 2000.0, True]
    s = wire.EpisodeSettings.from_msg(msg)
    assert s.synchronous_mode and s.fixed_delta_seconds == 0.05
    assert s.to_msg() == msg
    assert wire.EpisodeSettings.from_msg([False, False, [False]]).fixed_delta_seconds is None
    assert len(wire.EpisodeSettings().to_msg()) == 11


def test_weather_and_description() -> None:
    w = wire.Weather.from_msg([float(i) for i in range(14)])
    assert w.to_msg() == [float(i) for i in range(14)] and len(wire.Weather.FIELDS) == 14
    d = wire.Description.from_msg([3, "vehicle.audi.a2", [["role_name", 4, "hero"]]])
    assert d.attributes == {"role_name": (4, "hero")}
    assert d.to_msg() == [3, "vehicle.audi.a2", [["role_name", 4, "hero"]]]
    msg = wire.actor_msg(9, 2, d, wire.bbox_msg(Vector3(), Vector3(1, 1, 1)), b"\x0e",
                         wire.token(9, 2001))
    packed = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
    assert packed[4] == b"\x0e" and len(packed[5]) == 24  # bin, not str


def test_blueprints_shape() -> None:
    ids = [b.id for b in bp.BLUEPRINTS]
    assert len(ids) == len(set(ids))
    assert [b.uid for b in bp.BLUEPRINTS] == list(range(1, len(ids) + 1))
    for b in bp.BLUEPRINTS:
        m = b.to_msg()
        assert len(m) == 4 and isinstance(m[2], str)
        for a in m[3]:
            assert len(a) == 6 and 1 <= a[1] <= 5 and isinstance(a[4], bool)
    rgb = bp.blueprint("sensor.camera.rgb")
    sizes = {a.id: a.value for a in rgb.attributes}
    assert (sizes["image_size_x"], sizes["image_size_y"], sizes["fov"]) == ("800", "600", "90.0")
    with pytest.raises(KeyError, match="unknown blueprint"):
        bp.blueprint("vehicle.nope")
