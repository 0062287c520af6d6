"""Wire format: zero-copy encoding, strict decoding, the joined form, and fuzzing.

The fuzz tests hold the decoder to its contract: whatever the bytes, ``decode``
returns a message of a registered type or raises ``DecodeError``, and never runs
code from the data (no pickle).
"""

from __future__ import annotations

import builtins
import contextlib
import pickle
import struct
import sys
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bus.serialization as ser
from bus import messages as m
from bus.schema import ALLOWED_DTYPES, registered_messages
from bus.serialization import (
    WIRE_DTYPES,
    DecodeError,
    decode,
    encode,
    from_bytes,
    join_frames,
    peek_type,
    split_frames,
    to_bytes,
)

REGISTERED = {mt.cls for mt in registered_messages()}
NAMES = [mt.name for mt in registered_messages()]
VERSIONS = {mt.name: mt.version for mt in registered_messages()}
NFIELDS = {mt.name: len(mt.cls.__dataclass_fields__) for mt in registered_messages()}


# --------------------------------------------------------------------------- helpers
def _b(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


def _meta(frames: list) -> list:
    """Frame 0 unpacked with array references left as ExtType."""
    return msgpack.unpackb(bytes(frames[0]), raw=False)


def _pack(meta: list) -> bytes:
    return msgpack.packb(meta, use_bin_type=True)


def _ref(index: Any, dtype: Any, shape: Any) -> msgpack.ExtType:
    """An array reference as the encoder writes it (frame index, dtype code, dims).
    A dtype that is not a wire dtype gets an unassigned code; values the binary form
    cannot hold (negative, bool, float, str, ...) give a reference too short to parse."""
    code = WIRE_DTYPES.index(dtype) if dtype in WIRE_DTYPES else 250
    try:
        if type(index) is not int or not all(type(d) is int for d in shape):
            raise TypeError
        return msgpack.ExtType(1, struct.pack(f"<HBB{len(shape)}Q", index, code, len(shape),
                                              *shape))
    except (TypeError, struct.error):
        return msgpack.ExtType(1, b"bad")


def _traj(n: int = 4) -> m.Trajectory:
    return m.Trajectory(
        m.Header(3, 0.15),
        poses=np.arange(n * 3, dtype=np.float64).reshape(n, 3),
        speeds=np.linspace(1.0, 2.0, n),
        times=np.arange(n, dtype=np.float64) * 0.1,
    )


def _img(h: int = 4, w: int = 5) -> m.Image:
    return m.Image(data=np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3))


def _decode_error(frames: list, match: str | None = None, expected: type | None = None) -> str:
    with pytest.raises(DecodeError, match=match) as info:
        decode(frames, expected)
    return str(info.value)


# ------------------------------------------------------------------------ zero copy
def test_encode_does_not_copy_contiguous_arrays() -> None:
    img = m.Image(data=np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    frames = encode(img)
    assert len(frames) == 2
    view = np.frombuffer(frames[1], dtype=np.uint8)
    assert np.shares_memory(view, img.data)
    assert view.nbytes == img.data.nbytes
    assert bytes(frames[1]) == img.data.tobytes()

    traj = _traj(6)
    frames = encode(traj)
    assert len(frames) == 4
    for frame, arr in zip(frames[1:], (traj.poses, traj.speeds, traj.times), strict=True):
        assert np.shares_memory(np.frombuffer(frame, dtype=np.uint8), arr)
        np.testing.assert_array_equal(np.frombuffer(frame, dtype="<f8"), arr.ravel())


def test_decode_returns_views_of_the_frames() -> None:
    img = _img(8, 8)
    buf = to_bytes(img)
    out = from_bytes(buf)
    assert np.shares_memory(out.data, np.frombuffer(buf, dtype=np.uint8))
    frames = _b(encode(img))
    out = decode(frames)
    assert np.shares_memory(out.data, np.frombuffer(frames[1], dtype=np.uint8))


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::2, ::3],
        lambda a: a[:, ::-1],
        lambda a: a[::-1],
        lambda a: np.asfortranarray(a),
        lambda a: a.transpose(1, 0, 2),
        lambda a: a[1:3, 2:5],
    ],
    ids=["strided", "reversed_cols", "reversed_rows", "fortran", "transposed", "window"],
)
def test_non_contiguous_arrays(make) -> None:
    base = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    data = make(base)
    img = m.Image(data=data)
    frames = encode(img)
    assert bytes(frames[1]) == np.ascontiguousarray(data).tobytes()
    out = decode(frames)
    np.testing.assert_array_equal(out.data, data)
    assert out == img
    assert out.data.flags.c_contiguous


def test_non_contiguous_trajectory_columns() -> None:
    wide = np.arange(40.0).reshape(10, 4)
    t = m.Trajectory(poses=wide[:, :3], speeds=wide[:, 3], times=np.arange(10.0))
    out = from_bytes(to_bytes(t))
    np.testing.assert_array_equal(out.poses, wide[:, :3])
    np.testing.assert_array_equal(out.speeds, wide[:, 3])


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 7, 3), (5, 0, 3)])
def test_empty_image(shape: tuple[int, ...]) -> None:
    img = m.Image(data=np.zeros(shape, np.uint8))
    frames = encode(img)
    assert bytes(frames[1]) == b""
    out = decode(_b(frames))
    assert out.data.shape == shape and out.data.dtype == np.uint8
    assert out == img
    assert from_bytes(to_bytes(img)) == img


def test_empty_trajectory() -> None:
    frames = encode(m.Trajectory())
    assert [bytes(f) for f in frames[1:]] == [b"", b"", b""]
    out = decode(frames)
    assert out.poses.shape == (0, 3) and out.speeds.shape == (0,)
    assert out == m.Trajectory()


def test_big_image_round_trip() -> None:
    data = np.random.default_rng(2).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    img = m.Image(m.Header(10, 0.5), data=data)
    frames = encode(img)
    assert memoryview(frames[1]).nbytes == 1080 * 1920 * 3
    assert len(frames[0]) < 300  # metadata stays small: the pixels travel out of band
    out = decode(frames, m.Image)
    assert out == img
    buf = to_bytes(img)
    assert len(buf) == 4 + 2 * 8 + len(frames[0]) + data.nbytes
    assert from_bytes(buf, m.Image) == img


def test_decoded_arrays_are_read_only() -> None:
    for frames in (encode(_traj()), [bytearray(f) for f in encode(_traj())]):
        out = decode(frames)
        for arr in (out.poses, out.speeds, out.times):
            assert not arr.flags.writeable
            with pytest.raises(ValueError):
                arr[0] = 1.0
    out = from_bytes(bytearray(to_bytes(_img())))
    with pytest.raises(ValueError):
        out.data[0, 0, 0] = 1


def test_decoded_message_re_encodes_identically() -> None:
    for msg in (_img(), _traj(), m.Chatter(text="x"), m.GroundTruth(actors=[m.ActorState()])):
        frames = encode(msg)
        assert _b(encode(decode(frames))) == _b(frames)


def test_all_allowed_dtypes_survive_the_wire() -> None:
    """Every allowed dtype decodes to itself (hand-built frames: no message has all)."""
    for name in sorted(ALLOWED_DTYPES):
        arr = (np.arange(6) % 2).astype(name).reshape(2, 3)
        meta = _meta(encode(_traj(2)))
        meta[3] = _ref(1, name, [2, 3])
        frames = [_pack(meta), arr.tobytes(), *_b(encode(_traj(2)))[2:]]
        if name == "float64":
            out = decode(frames)
            np.testing.assert_array_equal(out.poses, arr)
        else:  # decodes the array, then refuses the wrong dtype for the field
            err = _decode_error(frames, "Trajectory.poses")
            assert name in err


def test_encode_big_endian_array_assigned_after_construction() -> None:
    """Fields are mutable; encode turns a big-endian array little-endian on the wire."""
    t = _traj(3)
    t.speeds = t.speeds.astype(">f8")
    out = decode(encode(t))
    assert out.speeds.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(out.speeds, [1.0, 1.5, 2.0])


def test_encode_refuses_unregistered_structs() -> None:
    with pytest.raises(TypeError, match="not a registered bus message"):
        encode(m.Header())


# ------------------------------------------------------------------ strict decoding
def test_expected_type_mismatch() -> None:
    frames = encode(m.Chatter(text="hi"))
    assert decode(frames, m.Chatter).text == "hi"
    _decode_error(frames, "expected Image, received Chatter", expected=m.Image)
    with pytest.raises(DecodeError, match="expected Trajectory"):
        from_bytes(to_bytes(m.Chatter()), m.Trajectory)


def test_unknown_name() -> None:
    err = _decode_error([_pack(["NoSuchMessage", 1, [0, 0.0]])], "unknown message type")
    assert "NoSuchMessage" in err
    _decode_error([_pack(["chatter", 1, [0, 0.0], "", 0])], "unknown message type")
    _decode_error([_pack(["Header", 1, 0, 0.0])], "unknown message type")


@pytest.mark.parametrize("version", [0, 2, -1, 2**40])
def test_wrong_version(version: int) -> None:
    meta = _meta(encode(m.Chatter()))
    meta[1] = version
    err = _decode_error([_pack(meta)], "version")
    assert f"version {version} received" in err


@pytest.mark.parametrize(
    "meta",
    [
        {"name": "Chatter"}, "Chatter", 1, None, [], ["Chatter"], [1, 1, [0, 0.0], "", 0],
        ["Chatter", "1", [0, 0.0], "", 0], ["Chatter", 1.0, [0, 0.0], "", 0],
        [b"Chatter", 1, [0, 0.0], "", 0], ["Chatter", None, [0, 0.0], "", 0],
    ],
    ids=repr,
)
def test_bad_metadata_shape(meta: Any) -> None:
    _decode_error([_pack(meta)])


def test_empty_and_malformed_frame0() -> None:
    _decode_error([], "empty message")
    _decode_error([b""], "malformed")
    _decode_error([b"\xc1"], "malformed")  # never-used msgpack byte
    _decode_error([b"\x93\x01"], "malformed")  # truncated array
    good = bytes(encode(m.Chatter())[0])
    _decode_error([good + b"\x00"], "malformed")  # trailing data
    _decode_error([_pack({1: 2})], "malformed")  # non-str map key


@pytest.mark.parametrize(
    "dtype", ["object", "O", "complex64", "complex128", ">f4", "<f4", ">f8", "float128",
              "U4", "S4", "V8", "datetime64", "f8", "uint8 ", "", 7, None]
)
def test_dtype_not_allowed(dtype: Any) -> None:
    meta = _meta(encode(_traj(2)))
    meta[3] = _ref(1, dtype, [2, 3])
    frames = _b(encode(_traj(2)))
    frames[0] = _pack(meta)
    _decode_error(frames, "not allowed|malformed")


def test_dtype_list_is_refused_not_crashing() -> None:
    meta = _meta(encode(_traj(2)))
    meta[3] = _ref(1, ["float64"], [2, 3])  # unhashable dtype name
    frames = _b(encode(_traj(2)))
    frames[0] = _pack(meta)
    _decode_error(frames)


@pytest.mark.parametrize("delta", [-1, 1, -8, 8, -48])
def test_frame_size_mismatch(delta: int) -> None:
    frames = _b(encode(_traj(2)))  # poses: 2 x 3 float64 = 48 bytes
    frames[1] = frames[1][:delta] if delta < 0 else frames[1] + b"\x00" * delta
    err = _decode_error(frames, "needs 48 bytes")
    assert f"has {48 + delta}" in err


@pytest.mark.parametrize(
    "shape", [[2, -3], [6], [3, 2], [2, 3, 1], [True, 3], [2.0, 3], "23", None, {"a": 1},
              [1] * 9, [2, 3, 0, 0, 0, 0, 0, 0, 0]],
    ids=repr,
)
def test_bad_or_wrong_shape(shape: Any) -> None:
    meta = _meta(encode(_traj(2)))
    meta[3] = _ref(1, "float64", shape)
    frames = _b(encode(_traj(2)))
    frames[0] = _pack(meta)
    _decode_error(frames)


def test_zero_sized_shapes_in_a_reference() -> None:
    """A zero-size array needs an empty frame, whatever its other dimensions."""
    meta = _meta(encode(m.Trajectory()))
    meta[3] = _ref(1, "float64", [0, 2**62])
    _decode_error([_pack(meta), b"", b"", b""], "Trajectory.poses|malformed")
    meta[3] = _ref(1, "float64", [0, 2**64 - 1])
    _decode_error([_pack(meta), b"", b"", b""])


def test_frame_referenced_twice() -> None:
    frames = _b(encode(_traj(2)))
    meta = _meta(frames)
    meta[4] = _ref(2, "float64", [2])
    meta[5] = _ref(2, "float64", [2])
    _decode_error([_pack(meta), *frames[1:]], "frame 2 referenced twice")


def test_unused_frames() -> None:
    frames = _b(encode(_traj(2)))
    _decode_error([*frames, b"extra"], r"frames \[4\] unused")
    _decode_error([*frames, b""], "unused")
    chatter = _b(encode(m.Chatter()))
    _decode_error([*chatter, b"x", b"y"], r"frames \[1, 2\] unused")


@pytest.mark.parametrize("index", [0, 4, 5, -1, "1", None, 1.0, 2**64 - 1, -(2**63)])
def test_reference_to_missing_frame(index: Any) -> None:
    frames = _b(encode(_traj(2)))
    meta = _meta(frames)
    meta[3] = _ref(index, "float64", [2, 3])
    _decode_error([_pack(meta), *frames[1:]], "refers to frame|malformed|bad array reference")


def test_missing_array_frames() -> None:
    frames = _b(encode(_traj(2)))
    _decode_error(frames[:1], "refers to frame 1, message has 1")
    _decode_error(frames[:3], "refers to frame 3")


def test_too_many_frames() -> None:
    frames = _b(encode(m.Chatter()))
    _decode_error(frames + [b""] * 1024, "1025 frames, at most 1024")
    _decode_error(frames + [b""] * 1023, "unused")  # 1024 frames: counted, then unused


@pytest.mark.parametrize(
    "ext", [msgpack.ExtType(0, b""), msgpack.ExtType(2, b"\x90"), msgpack.ExtType(127, b"ab")]
)
def test_unknown_extension_type(ext: msgpack.ExtType) -> None:
    _decode_error([_pack(["Chatter", 1, [0, 0.0], ext, 0])], "extension type")


@pytest.mark.parametrize(
    "payload", [b"", b"\xc1", b"\x92\x01\xa5uint8", b"\x01", b"\x94\x01\xa5uint8\x90\x00"]
)
def test_malformed_array_reference(payload: bytes) -> None:
    _decode_error([_pack(["Chatter", 1, [0, 0.0], msgpack.ExtType(1, payload), 0]), b""])


def test_timestamp_extension_is_a_field_type_error() -> None:
    ts = msgpack.Timestamp(1, 2)
    _decode_error([msgpack.packb(["Chatter", 1, [0, 0.0], ts, 0], datetime=False)],
                  "Chatter.text")
    bad_ts = b"\x95\xa7Chatter\x01\x92\x00\x00\xd4\xff\x00\x00"  # ext -1 of 1 byte
    _decode_error([bad_ts])


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([[0, 0.0], "hi"], "3 fields"),
        ([[0, 0.0], "hi", 0, "extra"], "3 fields"),
        ([[0, 0.0]], "3 fields"),
        ([], "3 fields"),
        ([[0], "hi", 0], "Header"),
        ([[0, 0.0, 1], "hi", 0], "Header"),
        ([{"frame": 0, "stamp": 0.0, "x": 1}, "hi", 0], "Header"),
        ([[0, 0.0], "hi", "0"], "Chatter.count"),
        ([[0, 0.0], "hi", True], "Chatter.count"),
        ([[0, 0.0], "hi", 1.0], "Chatter.count"),
        ([[0, 0.0], b"hi", 0], "Chatter.text"),
        ([[0, 0.0], None, 0], "Chatter.text"),
        ([[0, False], "hi", 0], "Header.stamp"),
        ([None, "hi", 0], "Chatter.header"),
        (["header", "hi", 0], "Chatter.header"),
    ],
)
def test_extra_missing_or_mistyped_fields(values: list, match: str) -> None:
    _decode_error([_pack(["Chatter", 1, *values])], match)


def test_wire_accepts_int_for_float_and_dict_structs() -> None:
    out = decode([_pack(["Chatter", 1, [3, 2], "hi", 5])])
    assert out.header.stamp == 2.0 and type(out.header.stamp) is float
    out = decode([_pack(["Chatter", 1, {"frame": 3, "stamp": 0.5}, "hi", 5])])
    assert out.header == m.Header(3, 0.5)


def test_post_init_violations_on_the_wire() -> None:
    meta = _meta(encode(m.ControlCommand()))
    meta[3][0] = 1.5  # throttle
    _decode_error([_pack(meta)], "VehicleControl.throttle")

    t = _traj(3)
    frames = _b(encode(t))
    frames[3] = np.array([0.0, 0.2, 0.1]).tobytes()
    _decode_error(frames, "rising")
    frames = _b(encode(t))
    meta = _meta(frames)
    meta[4] = _ref(2, "float64", [1])
    _decode_error([_pack(meta), frames[1], frames[2][:8], frames[3]], "one length")

    meta = _meta(encode(_img(4, 5)))
    meta[6][0] = 6  # intrinsics.width
    _decode_error([_pack(meta), *_b(encode(_img(4, 5)))[1:]], "Image.intrinsics")
    meta = _meta(encode(m.EgoState()))
    meta[6] = float("nan")
    _decode_error([_pack(meta)], "EgoState.speed")


def test_list_of_structs_error_names_the_item() -> None:
    meta = _meta(encode(m.ObjectList(objects=[m.DetectedObject(), m.DetectedObject()])))
    meta[4][1][6] = 2.0  # second object's confidence
    err = _decode_error([_pack(meta)], r"ObjectList.objects\[1\]")
    assert "confidence" in err


CHOICE_FIELDS = [
    (m.Image(), 4, "mono8"),
    (m.ObjectList(), 3, "lidar"),
    (m.TrafficLightState(), 3, "blue"),
    (m.TrafficLightState(), 6, "both"),
    (m.NodeStatus(), 5, "done"),
    (m.RunEvent(), 3, "collision"),
]


@pytest.mark.parametrize(("msg", "index", "bad"), CHOICE_FIELDS,
                         ids=[f"{type(c[0]).__name__}-{c[2]}" for c in CHOICE_FIELDS])
def test_choice_field_checked_on_the_wire(msg: Any, index: int, bad: str) -> None:
    frames = _b(encode(msg))
    meta = _meta(frames)
    meta[index] = bad
    _decode_error([_pack(meta), *frames[1:]], "one of")


def test_nested_choice_field_checked_on_the_wire() -> None:
    meta = _meta(encode(m.ObjectList(objects=[m.DetectedObject()])))
    meta[4][0][1] = "car"
    _decode_error([_pack(meta)], "DetectedObject.label")


def test_bool_version_is_refused() -> None:
    meta = _meta(encode(m.Chatter()))
    meta[1] = True
    with pytest.raises(DecodeError):
        peek_type([_pack(meta)])
    _decode_error([_pack(meta)], "version")


def test_bool_frame_index_is_refused() -> None:
    frames = _b(encode(_traj(2)))
    meta = _meta(frames)
    meta[3] = _ref(True, "float64", [2, 3])
    _decode_error([_pack(meta), *frames[1:]], "bad array reference")


# ---------------------------------------------------------------- joined form / peek
def test_join_split_round_trip() -> None:
    for msg in (_img(), _traj(), m.Chatter(text="x" * 1000), m.Trajectory()):
        frames = encode(msg)
        joined = join_frames(frames)
        assert [bytes(f) for f in split_frames(joined)] == _b(frames)
        assert joined == to_bytes(msg)
        assert from_bytes(joined) == msg
        assert from_bytes(memoryview(joined)) == msg
        assert from_bytes(bytearray(joined)) == msg


def test_join_layout() -> None:
    frames = [b"abc", b"", b"de"]
    joined = join_frames(frames)
    assert joined == struct.pack("<IQQQ", 3, 3, 0, 2) + b"abcde"
    parts = split_frames(joined)
    assert all(isinstance(p, memoryview) for p in parts)
    assert [bytes(p) for p in parts] == frames
    assert split_frames(join_frames([b""])) == [b""]


def test_split_returns_views() -> None:
    buf = to_bytes(_img())
    parts = split_frames(buf)
    assert np.shares_memory(np.frombuffer(parts[1], np.uint8), np.frombuffer(buf, np.uint8))


def test_split_every_truncation_fails() -> None:
    joined = to_bytes(_traj(2))
    for n in range(len(joined)):
        with pytest.raises(DecodeError):
            split_frames(joined[:n])
    with pytest.raises(DecodeError, match="stray bytes"):
        split_frames(joined + b"\x00")
    with pytest.raises(DecodeError, match="7 stray bytes"):
        split_frames(joined + b"1234567")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter"),
        (b"\x01\x00\x00", "shorter"),
        (struct.pack("<I", 0), "claims 0 frames"),
        (struct.pack("<I", 1025), "claims 1025 frames"),
        (struct.pack("<I", 2**32 - 1), "claims"),
        (struct.pack("<IQ", 2, 0), "frame table"),
        (struct.pack("<IQ", 1, 2**64 - 1), "truncated in frame 0"),
        (struct.pack("<IQQ", 2, 1, 5) + b"abc", "truncated in frame 1"),
    ],
)
def test_split_malformed(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        split_frames(data)
    with pytest.raises(DecodeError):
        from_bytes(data)


@pytest.mark.parametrize("mt", registered_messages(), ids=lambda mt: mt.name)
def test_peek_type(mt) -> None:
    assert peek_type(encode(mt.cls())) == (mt.name, mt.version)
    assert peek_type(split_frames(to_bytes(mt.cls()))) == (mt.name, mt.version)


def test_peek_type_does_not_check_fields() -> None:
    assert peek_type([_pack(["Anything", 9, "garbage"])]) == ("Anything", 9)
    assert peek_type([_pack(["Chatter", 1])]) == ("Chatter", 1)


@pytest.mark.parametrize(
    "frame0",
    [b"", b"\xc1", _pack({"a": 1}), _pack("Chatter"), _pack(["Chatter"]), _pack([]),
     _pack([1, 1]), _pack(["Chatter", "1"]), _pack(["Chatter", None, 3]), b"\x93\xa7Chatter",
     _pack([{1: 2}, 1])],
    ids=repr,
)
def test_peek_type_malformed(frame0: bytes) -> None:
    with pytest.raises(DecodeError):
        peek_type([frame0])


def test_peek_type_empty() -> None:
    with pytest.raises(DecodeError, match="empty"):
        peek_type([])


# ===================================================================== fuzz testing
class CodeFromData(BaseException):
    """Raised by the pickle/eval traps. A BaseException, so the decoder's own
    ``except Exception`` handlers cannot turn it into a DecodeError."""


def _trap(*_: Any, **__: Any) -> Any:
    raise CodeFromData("the decoder tried to run code from the data")


@contextlib.contextmanager
def no_code_from_data() -> Iterator[None]:
    names = [(pickle, n) for n in ("loads", "load", "Unpickler", "_loads", "_load",
                                   "_Unpickler") if hasattr(pickle, n)]
    names += [(builtins, "eval"), (builtins, "exec"), (np, "load")]
    with pytest.MonkeyPatch.context() as mp:
        for mod, name in names:
            mp.setattr(mod, name, _trap)
        yield


def check_decoder(frames: list, expected: type | None = None) -> Any:
    """decode() returns a registered message or raises DecodeError; anything else (any
    other exception, CodeFromData) fails the test. A decoded message must re-encode
    to frames that decode to the same bytes again."""
    with no_code_from_data():
        try:
            msg = decode(frames, expected)
        except DecodeError:
            msg = None
        try:
            peek_type(frames)
        except DecodeError:
            pass
        try:
            from_bytes(join_frames(frames))
        except DecodeError:
            pass
    if msg is None:
        return None
    assert type(msg) in REGISTERED
    if expected is not None:
        assert type(msg) is expected
    again = to_bytes(msg)
    assert to_bytes(from_bytes(again)) == again
    return msg


def test_traps_are_armed() -> None:
    with no_code_from_data():
        with pytest.raises(CodeFromData):
            pickle.loads(pickle.dumps(1))
        with pytest.raises(CodeFromData):
            eval("1")
        assert decode(encode(m.Chatter(text="ok"))).text == "ok"
    assert eval("1") == 1


def test_no_pickle_in_the_serializer() -> None:
    assert "pickle" not in vars(ser)
    assert "msgpack_numpy" not in sys.modules
    assert not any(name.startswith("msgpack_numpy") for name in sys.modules)


FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- message strategies
i64 = st.integers(-(2**63), 2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit = st.floats(0.0, 1.0)
text = st.text(max_size=12)

headers = st.builds(m.Header, i64, finite)
vectors = st.builds(m.Vector3, finite, finite, finite)
rotations = st.builds(m.Rotation, finite, finite, finite)
transforms = st.builds(m.Transform, vectors, rotations)
lanes = st.builds(m.LaneRef, i64, i64, i64)
controls = st.builds(m.VehicleControl, unit, st.floats(-1.0, 1.0), unit, st.booleans(),
                     st.booleans(), st.booleans(), i64)


@st.composite
def images(draw: st.DrawFn) -> m.Image:
    h, w = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    data = draw(hnp.arrays(np.uint8, (h, w, 3)))
    if draw(st.booleans()) and h > 1:  # a non-contiguous view
        data = data[::-1]
    intr = draw(st.one_of(
        st.just(m.CameraIntrinsics()),
        st.floats(10.0, 170.0).map(lambda fov: m.CameraIntrinsics.from_fov(w, h, fov)),
        st.builds(m.CameraIntrinsics, st.just(w), st.just(h), finite, finite, finite, finite),
    ))
    if (w, h) == (0, 0):
        intr = m.CameraIntrinsics()
    return m.Image(draw(headers), draw(text), draw(st.sampled_from(["bgr8", "rgb8"])), data,
                   intr, draw(transforms))


@st.composite
def trajectories(draw: st.DrawFn) -> m.Trajectory:
    n = draw(st.integers(0, 6))
    poses = draw(hnp.arrays(np.float64, (n, 3), elements=finite))
    speeds = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-50, 50)))
    steps = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.01, 1.0)))
    return m.Trajectory(draw(headers), poses, speeds, np.cumsum(steps) + draw(st.floats(-5, 5)))


detected = st.builds(m.DetectedObject, i64, st.sampled_from(m.OBJECT_CLASSES), vectors,
                     vectors, finite, vectors, unit)
actors = st.builds(m.ActorState, i64, text, i64, transforms, vectors,
                   st.builds(m.BoundingBox, vectors, vectors, rotations))
lights = st.builds(m.TrafficLightInfo, i64, st.sampled_from(m.LIGHT_STATES), transforms,
                   vectors, st.lists(lanes, max_size=3))

messages = st.one_of(
    images(),
    trajectories(),
    st.builds(m.Chatter, headers, text, i64),
    st.builds(m.ControlCommand, headers, controls),
    st.builds(m.EgoState, headers, transforms, vectors, vectors, finite, finite, finite,
              controls),
    st.builds(m.MapData, headers, text, text),
    st.builds(m.ObjectList, headers, st.sampled_from(["perception", "oracle"]),
              st.lists(detected, max_size=3)),
    st.builds(m.GroundTruth, headers, i64, st.lists(actors, max_size=2),
              st.lists(lights, max_size=2), lanes),
    st.builds(m.TrafficLightState, headers, st.sampled_from(m.LIGHT_STATES), finite, unit,
              st.sampled_from(["perception", "oracle"])),
    st.builds(m.RunEvent, headers, st.sampled_from(m.EVENT_KINDS), i64, i64, vectors, finite,
              text),
)


@FUZZ
@given(messages)
def test_random_messages_round_trip(msg: Any) -> None:
    frames = encode(msg)
    assert decode(frames) == msg
    assert decode(_b(frames), type(msg)) == msg
    assert from_bytes(to_bytes(msg)) == msg
    assert peek_type(frames) == (msg.MSG_NAME, msg.MSG_VERSION)
    assert _b(encode(decode(frames))) == _b(frames)


# --------------------------------------------------------------------- fuzz: bytes
@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_single_frame(data: bytes) -> None:
    check_decoder([data])
    with no_code_from_data():
        try:
            split_frames(data)
        except DecodeError:
            pass


@FUZZ
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=6))
def test_fuzz_random_bytes_several_frames(frames: list[bytes]) -> None:
    check_decoder(frames)
    check_decoder(frames, m.Trajectory)


@FUZZ
@given(st.sampled_from(NAMES), st.binary(max_size=120), st.lists(st.binary(max_size=48),
                                                                  max_size=4))
def test_fuzz_registered_name_then_random_bytes(name: str, tail: bytes,
                                                 extra: list[bytes]) -> None:
    """A valid prefix (array header, a registered name and version) so that the random
    bytes reach the field decoding more often than pure noise would."""
    n = 2 + NFIELDS[name]
    head = msgpack.packb([name, VERSIONS[name]])[1:]
    prefix = (bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")) + head
    check_decoder([prefix + tail, *extra])


# ------------------------------------------------------------- fuzz: mutated encodings
def _mutate(data: st.DataObject, frames: list[bytes]) -> list[bytes]:
    frames = list(frames)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(
            ["flip", "insert", "delete", "truncate", "extend", "drop", "dup", "swap",
             "set_byte"]))
        f0 = frames[0] if frames else b""
        if op in ("flip", "set_byte", "insert", "delete") and f0:
            i = data.draw(st.integers(0, len(f0) - 1))
            if op == "flip":
                f0 = f0[:i] + bytes([f0[i] ^ data.draw(st.integers(1, 255))]) + f0[i + 1:]
            elif op == "set_byte":  # interesting msgpack type bytes
                b = data.draw(st.sampled_from([0xC0, 0xC2, 0xC3, 0xC7, 0xD4, 0xD5, 0xD9,
                                               0xDC, 0xDE, 0x90, 0x80, 0xA0, 0xCF, 0xD3]))
                f0 = f0[:i] + bytes([b]) + f0[i + 1:]
            elif op == "insert":
                f0 = f0[:i] + data.draw(st.binary(min_size=1, max_size=4)) + f0[i:]
            else:
                j = data.draw(st.integers(i + 1, min(len(f0), i + 4)))
                f0 = f0[:i] + f0[j:]
            frames[0] = f0
        elif op in ("truncate", "extend") and len(frames) > 1:
            k = data.draw(st.integers(1, len(frames) - 1))
            if op == "truncate":
                frames[k] = frames[k][: data.draw(st.integers(0, max(0, len(frames[k]) - 1)))]
            else:
                frames[k] = frames[k] + data.draw(st.binary(min_size=1, max_size=16))
        elif op == "drop" and len(frames) > 1:
            del frames[data.draw(st.integers(0, len(frames) - 1))]
        elif op == "dup" and frames:
            k = data.draw(st.integers(0, len(frames) - 1))
            frames.insert(data.draw(st.integers(0, len(frames))), frames[k])
        elif op == "swap" and len(frames) > 1:
            a = data.draw(st.integers(0, len(frames) - 1))
            b = data.draw(st.integers(0, len(frames) - 1))
            frames[a], frames[b] = frames[b], frames[a]
    return frames


@settings(FUZZ, max_examples=400)
@given(messages, st.data())
def test_fuzz_mutated_encodings(msg: Any, data: st.DataObject) -> None:
    frames = _mutate(data, _b(encode(msg)))
    check_decoder(frames)
    check_decoder(frames, type(msg))


# ------------------------------------------------------- fuzz: random msgpack values
ARRAY_DTYPES = [*sorted(ALLOWED_DTYPES), "object", "complex64", ">f4", "<f8", "U3", "V2"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), text,
    st.binary(max_size=16),
)
array_refs = st.builds(
    _ref,
    st.one_of(st.integers(-1, 5), st.booleans(), text, st.none()),
    st.one_of(st.sampled_from(ARRAY_DTYPES), text, i64, st.lists(text, max_size=2)),
    st.one_of(st.lists(st.integers(-2, 4), max_size=9), st.lists(scalars, max_size=3), scalars),
)
extensions = st.one_of(
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16)),
    st.builds(msgpack.ExtType, st.just(1), st.binary(max_size=16)),
    array_refs,
    st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)),
)
# leaves: mostly plain values, an extension one time in five (any bad one ends decoding)
leaves = st.sampled_from([scalars] * 4 + [extensions]).flatmap(lambda s: s)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(text, inner, max_size=4),
    ),
    max_leaves=10,
)
# a field: a plain value most of the time, a random tree otherwise
field_values = st.sampled_from([scalars, scalars, values]).flatmap(lambda s: s)


def _pack_random(meta: Any) -> bytes:
    return msgpack.packb(meta, use_bin_type=True, datetime=False, strict_types=False)


# extra frames: none most of the time (an unused frame ends decoding before the fields)
extra_frames = st.sampled_from(
    [st.just([]), st.just([]), st.just([b""]), st.lists(st.binary(max_size=48), max_size=4)]
).flatmap(lambda s: s)


@FUZZ
@given(st.sampled_from(NAMES), st.data(), extra_frames)
def test_fuzz_random_msgpack_after_a_registered_name(
    name: str, data: st.DataObject, extra: list[bytes]
) -> None:
    version = data.draw(
        st.sampled_from([st.just(VERSIONS[name])] * 3 + [st.sampled_from([0, 2]), field_values])
        .flatmap(lambda s: s)
    )
    n = NFIELDS[name] + data.draw(st.sampled_from([0, 0, 0, -1, 1]))
    fields = data.draw(st.lists(field_values, min_size=max(n, 0), max_size=max(n, 0)))
    if fields and data.draw(st.integers(0, 15)) == 11:  # a map with a non-str key: refused
        fields[-1] = {data.draw(st.integers(-3, 3)): fields[-1]}
    check_decoder([_pack_random([name, version, *fields]), *extra])


def _replace_random_subtree(data: st.DataObject, wire: Any, top: bool = False) -> Any:
    """Replace one node of the decoded wire tree (a field, an item, a nested field)."""
    if isinstance(wire, list) and wire and (top or data.draw(st.integers(0, 3)) > 0):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire = list(wire)
        wire[i] = _replace_random_subtree(data, wire[i])
        return wire
    return data.draw(values)


@FUZZ
@given(messages, st.data())
def test_fuzz_valid_message_with_a_random_subtree(msg: Any, data: st.DataObject) -> None:
    frames = _b(encode(msg))
    meta = _meta(frames)
    body = _replace_random_subtree(data, meta[2:], top=True)
    check_decoder([_pack_random([*meta[:2], *body]), *frames[1:]])
