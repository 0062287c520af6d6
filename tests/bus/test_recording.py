"""Recordings: bit-exact round trips, filters, metadata, and surviving a killed writer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from bus import messages as m
from bus.recording import PROFILE, Recording, RecordingError, RecordingWriter
from bus.serialization import encode, join_frames

REPO = Path(__file__).resolve().parents[2]
TICK_NS = 50_000_000
CAMERA, COMMAND, MAP = "/sensors/camera/front", "/control/command", "/map/opendrive"


def _image(frame: int) -> m.Image:
    data = np.random.default_rng(frame).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return m.Image(header=m.Header(frame, frame * 0.05), data=data)


def _command(frame: int) -> m.ControlCommand:
    return m.ControlCommand(header=m.Header(frame, frame * 0.05),
                            control=m.VehicleControl(throttle=0.5, steer=-0.25 * (frame % 3)))


def _write_drive(path: Path, ticks: int = 10, **writer_args: object) -> list[tuple]:
    """A small drive; returns (topic, log_time, joined bytes, message) in write order.

    Each tick writes the command before the image although the image has the
    earlier log time, so the reader must sort; images go in as frames, the rest as
    joined bytes, the two forms ``write`` accepts."""
    written = []
    with RecordingWriter(path, metadata={"command": "drivestack run", "git": "abc123"},
                         chunk_size=16 * 1024, **writer_args) as w:
        opendrive = m.MapData(header=m.Header(0, 0.0), name="Town01",
                              opendrive="<OpenDRIVE><header/></OpenDRIVE>")
        w.write(MAP, join_frames(encode(opendrive)), 0)
        written.append((MAP, 0, join_frames(encode(opendrive)), opendrive))
        for k in range(ticks):
            cmd, img = _command(k), _image(k)
            w.write(COMMAND, join_frames(encode(cmd)), k * TICK_NS + 2, sequence=k)
            w.write(CAMERA, encode(img), k * TICK_NS + 1, publish_time_ns=k * TICK_NS)
            written.append((COMMAND, k * TICK_NS + 2, join_frames(encode(cmd)), cmd))
            written.append((CAMERA, k * TICK_NS + 1, join_frames(encode(img)), img))
    return written


def _by_log_time(written: list[tuple]) -> list[tuple]:
    return sorted(written, key=lambda x: x[1])


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_round_trip_is_bit_exact_and_in_log_time_order(tmp_path: Path,
                                                      compression: str) -> None:
    path = tmp_path / "drive.mcap"
    written = _write_drive(path, compression=compression)
    with Recording.open(path) as rec:
        assert not rec.recovered
        assert rec.message_count == len(written) == 21
        assert rec.topics() == {MAP: ("MapData", 1, 1), COMMAND: ("ControlCommand", 1, 10),
                                CAMERA: ("Image", 1, 10)}
        got = list(rec.messages())
    expected = _by_log_time(written)
    assert [(r.topic, r.log_time_ns, r.data) for r in got] == [e[:3] for e in expected]
    for r, (_, _, _, msg) in zip(got, expected, strict=True):
        assert r.decode() == msg
        assert b"".join(bytes(f) for f in r.frames()) == b"".join(
            bytes(f) for f in encode(msg))
    images = [r for r in got if r.topic == CAMERA]
    assert [r.publish_time_ns for r in images] == [k * TICK_NS for k in range(10)]
    assert [r.sequence for r in got if r.topic == COMMAND] == list(range(10))
    assert np.array_equal(images[3].decode().data, _image(3).data)


def test_filters_by_topic_and_time_window(tmp_path: Path) -> None:
    path = tmp_path / "drive.mcap"
    written = _write_drive(path)
    start, end = 3 * TICK_NS, 6 * TICK_NS + 1  # end is exclusive: image 6 is out
    with Recording.open(path) as rec:
        commands = list(rec.messages(topics=[COMMAND]))
        window = list(rec.messages(start_ns=start, end_ns=end))
        both = list(rec.messages(topics=[CAMERA, MAP], start_ns=0, end_ns=2 * TICK_NS))
        assert list(rec.messages(topics=["/no/such/topic"])) == []
    assert [r.decode().header.frame for r in commands] == list(range(10))
    assert [(r.topic, r.log_time_ns) for r in window] == [
        e[:2] for e in _by_log_time(written) if start <= e[1] < end]
    assert [(r.topic, r.log_time_ns) for r in both] == [
        (MAP, 0), (CAMERA, 1), (CAMERA, TICK_NS + 1)]


def test_metadata_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "meta.mcap"
    with RecordingWriter(path, metadata={"argv": "drivestack run --sim embedded"}) as w:
        w.add_metadata("config", {"launch.yaml": "nodes:\n  - planning\n", "seed": "7"})
        with pytest.raises(ValueError, match="already written"):
            w.add_metadata("config", {})
        with pytest.raises(TypeError, match="must be str"):
            w.add_metadata("bad", {"seed": 7})  # type: ignore[dict-item]
    with Recording.open(path) as rec:
        assert rec.metadata() == {
            "run": {"argv": "drivestack run --sim embedded"},
            "config": {"launch.yaml": "nodes:\n  - planning\n", "seed": "7"},
        }
        assert rec.topics() == {} and list(rec.messages()) == []


def test_schemas_and_channels_describe_the_bytes(tmp_path: Path) -> None:
    """What other MCAP tools see: profile, one schema per type, channel metadata."""
    path = tmp_path / "drive.mcap"
    _write_drive(path, ticks=2)
    with open(path, "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == PROFILE
        summary = reader.get_summary()
    assert summary is not None
    schemas = {s.name: s for s in summary.schemas.values()}
    assert sorted(schemas) == ["ControlCommand", "Image", "MapData"]
    described = json.loads(schemas["Image"].data)
    assert described["version"] == 1
    assert [f["name"] for f in described["fields"]][:4] == ["header", "camera", "encoding",
                                                            "data"]
    assert all(s.encoding == "drivestack-msgpack" for s in schemas.values())
    camera = next(c for c in summary.channels.values() if c.topic == CAMERA)
    assert camera.message_encoding == "drivestack-msgpack"
    assert camera.metadata == {"version": "1", "msg_type": "Image"}


def test_truncated_file_yields_the_intact_prefix(tmp_path: Path) -> None:
    """Cut a recording anywhere after its header: opening never raises, and what
    comes back is a bit-exact prefix holding at least everything flushed before the cut."""
    path = tmp_path / "full.mcap"
    written: list[tuple] = []
    flushed_at: list[tuple[int, int]] = []  # (file size, messages written) per flush
    with RecordingWriter(path, chunk_size=1 << 20) as w:
        header_end = path.stat().st_size  # the header is on disk from the start
        for k in range(8):
            for topic, msg in ((CAMERA, _image(k)), (COMMAND, _command(k))):
                w.write(topic, encode(msg), k * TICK_NS)
                written.append((topic, k * TICK_NS, join_frames(encode(msg))))
            w.flush()
            flushed_at.append((path.stat().st_size, len(written)))
    data = path.read_bytes()
    cut_path = tmp_path / "cut.mcap"
    cuts = [*range(header_end, len(data) - 1, 211), *(size for size, _ in flushed_at)]
    for cut in cuts:
        cut_path.write_bytes(data[:cut])
        with Recording.open(cut_path) as rec:
            got = [(r.topic, r.log_time_ns, r.data) for r in rec.messages()]
            assert rec.recovered
        # Everything flushed before the cut is back; a chunk complete before the cut
        # but missing its trailing message index may add more.
        flushed = max((count for size, count in flushed_at if size <= cut), default=0)
        assert flushed <= rec.message_count == len(got), cut
        assert got == written[:len(got)], cut  # written in log-time order: a prefix
        if (cut, flushed) in flushed_at:
            assert len(got) == flushed


def test_background_flush_persists_messages_when_writes_stop(tmp_path: Path) -> None:
    path, snapshot = tmp_path / "live.mcap", tmp_path / "snapshot.mcap"
    with RecordingWriter(path, flush_interval_s=0.05, fsync=True) as w:
        w.write(COMMAND, encode(_command(1)), 123)
        time.sleep(0.3)
        shutil.copyfile(path, snapshot)  # what a SIGKILL now would leave
    with Recording.open(snapshot) as rec:
        assert rec.recovered
        assert [r.decode() for r in rec.messages()] == [_command(1)]


_CRASH_WRITER = """
import sys, time
import numpy as np
from bus import messages as m
from bus.recording import RecordingWriter
from bus.serialization import encode

w = RecordingWriter(sys.argv[1], metadata={"argv": "crash test"})
print("ready", flush=True)
frame = 0
while True:
    img = m.Image(header=m.Header(frame, 0.0), data=np.full((48, 64, 3), frame % 256, np.uint8))
    w.write("/sensors/camera/front", encode(img), time.time_ns())
    cmd = m.ControlCommand(header=m.Header(frame, 0.0))
    w.write("/control/command", encode(cmd), time.time_ns())
    frame += 1
    time.sleep(0.005)
"""


def test_sigkilled_writer_loses_at_most_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _CRASH_WRITER, str(path)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(3.0)
        killed_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with Recording.open(path) as rec:
        assert rec.recovered
        assert rec.metadata() == {"run": {"argv": "crash test"}}
        got = list(rec.messages())
    assert rec.message_count == len(got) > 100
    assert [r.log_time_ns for r in got] == sorted(r.log_time_ns for r in got)
    for topic in (CAMERA, COMMAND):
        msgs = [r.decode() for r in got if r.topic == topic]
        assert [x.header.frame for x in msgs] == list(range(len(msgs)))  # a prefix
        last_ns = max(r.log_time_ns for r in got if r.topic == topic)
        assert killed_ns - last_ns < 1_200_000_000, f"lost {(killed_ns - last_ns) / 1e9:.2f} s"
    for r in got:  # none corrupted: each decodes and re-encodes to the recorded bytes
        msg = r.decode()
        assert join_frames(encode(msg)) == r.data
        if r.topic == CAMERA:
            assert np.all(msg.data == msg.header.frame % 256)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file, expected an MCAP recording"),
        (b"PK\x03\x04 this is a zip file, not a recording" * 10, "not an MCAP file"),
        (bytes([137, 77, 67, 65, 80, 48, 13, 10]), "ends before its header"),
    ],
)
def test_unreadable_files_raise_recording_error(tmp_path: Path, content: bytes,
                                                expected: str) -> None:
    path = tmp_path / "bad.mcap"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=expected) as info:
        Recording.open(path)
    assert str(path) in str(info.value)


def test_foreign_mcap_profile_is_refused(tmp_path: Path) -> None:
    from mcap.writer import Writer

    path = tmp_path / "ros.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="ros2")
        w.finish()
    with pytest.raises(RecordingError, match="profile 'ros2', expected 'drivestack'"):
        Recording.open(path)


def test_writer_refuses_what_it_could_not_describe(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path / "w.mcap")
    w.write(COMMAND, encode(_command(0)), 1)
    with pytest.raises(ValueError, match="recorded as ControlCommand v1, got Image v1"):
        w.write(COMMAND, encode(_image(0)), 2)
    with pytest.raises(ValueError, match="times must be >= 0"):
        w.write(COMMAND, encode(_command(0)), -1)
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="is closed"):
        w.write(COMMAND, encode(_command(0)), 3)
    with Recording.open(tmp_path / "w.mcap") as rec:
        assert rec.message_count == 1


def test_open_names_a_missing_file_or_a_directory(tmp_path):
    with pytest.raises(RecordingError, match=r"absent\.mcap: no such file"):
        Recording.open(tmp_path / "absent.mcap")
    with pytest.raises(RecordingError, match="not a file"):
        Recording.open(tmp_path)
