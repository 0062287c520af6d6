"""The recorder node: records the live bus, survives SIGKILL with <= 1 s lost."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np

from bus import Executor, InProcessContext, Node, ZmqContext
from bus.messages import Chatter, Header, Image, MapData
from bus.recorder import Recorder
from bus.recording import Recording
from bus.serialization import encode


def test_recorder_keeps_exact_bytes_and_finds_new_camera_topics(tmp_path):
    ctx = InProcessContext()
    out = tmp_path / "drive.mcap"
    rec = Recorder("recorder", context=ctx, params={"output": str(out),
                                                    "metadata": {"git": "abc"}})
    sim = Node("sim", context=ctx, diagnostics=False)
    chatter = sim.create_publisher(Chatter, "/demo/chatter")
    ex = Executor(ctx, [rec, sim])
    cam = sim.create_publisher(Image, "/sensors/camera/front")  # appears after start
    ctx.clock.advance(1.0)
    ex.spin_once(0)  # the recorder's discovery timer subscribes to the camera
    img = Image(Header(1, 0.05), data=np.arange(360 * 640 * 3, dtype=np.uint8).reshape(
        360, 640, 3))
    cam.publish(img)
    sent = [Chatter(Header(i), f"m{i}", i) for i in range(5)]
    for m in sent:
        chatter.publish(m)
    ex.spin_until(lambda: rec.recorded == 6, timeout_s=1)
    ex.destroy()

    with Recording.open(out) as r:
        assert not r.recovered
        assert r.topics()["/sensors/camera/front"] == ("Image", 1, 1)
        assert r.metadata()["run"]["git"] == "abc"
        msgs = list(r.messages(["/demo/chatter"]))
        assert [m.decode() for m in msgs] == sent
        assert [bytes(f) for f in msgs[0].frames()] == [bytes(f) for f in encode(sent[0])]
        (frame,) = r.messages(["/sensors/camera/front"])
        assert frame.decode() == img


def test_a_stopped_recorder_records_what_already_reached_it(tmp_path):
    """Stopped with the rest of a run, the recorder is the slowest reader: what the
    others took already still waits in its queues, and is recorded before it
    closes (a loaded VM lost the last two control commands of a run)."""
    ctx = InProcessContext()
    out = tmp_path / "drive.mcap"
    rec = Recorder("recorder", context=ctx, params={"output": str(out)})
    sim = Node("sim", context=ctx, diagnostics=False)
    chatter = sim.create_publisher(Chatter, "/demo/chatter")
    ex = Executor(ctx, [rec, sim])
    sent = [Chatter(Header(i), f"m{i}", i) for i in range(5)]
    for m in sent:
        chatter.publish(m)
    ex.destroy()  # stopped before its executor served them
    with Recording.open(out) as r:
        assert [m.decode() for m in r.messages(["/demo/chatter"])] == sent


def test_sigkilled_recorder_loses_at_most_the_last_second(bus_env, tmp_path):
    out = tmp_path / "drive.mcap"
    ctx = ZmqContext()
    src = Node("src", context=ctx, diagnostics=False)
    pub = src.create_publisher(Chatter, "/demo/chatter")
    map_pub = src.create_publisher(MapData, "/map/opendrive")
    map_pub.publish(MapData(Header(0), "town", "<OpenDRIVE/>"))  # latched, before the recorder
    ex = Executor(ctx, [src])
    r, w = os.pipe()
    recorder = subprocess.Popen(
        [sys.executable, "-m", "launch.node_main", "--node", "bus.recorder:Recorder",
         "--name", "recorder", "--params-json", json.dumps({"output": str(out)})],
        env={**os.environ, "DRIVESTACK_READY_FD": str(w)}, pass_fds=[w])
    os.close(w)
    try:
        deadline = time.monotonic() + 20
        while not select.select([r], [], [], 0)[0]:
            assert time.monotonic() < deadline and recorder.poll() is None
            ex.spin_once(0.02)
        ex.spin_until(lambda: False, timeout_s=0.2)
        sent_at: dict[int, float] = {}
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 3.0:  # 100 Hz for 3 s
            i += 1
            sent_at[i] = time.monotonic()
            pub.publish(Chatter(Header(i, i * 0.01), "x" * 100, i))
            ex.spin_once(0.01)
        killed_at = time.monotonic()
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(5)
    finally:
        if recorder.poll() is None:
            recorder.kill()
        os.close(r)
        ex.destroy()
        ctx.close()

    with Recording.open(out) as rec:
        assert rec.recovered
        counts = [m.decode().count for m in rec.messages(["/demo/chatter"])]
        maps = [m.decode().name for m in rec.messages(["/map/opendrive"])]
    assert maps == ["town"]
    assert counts == list(range(1, len(counts) + 1))  # a prefix, in order, no gaps
    must_have = [k for k, t in sent_at.items() if t < killed_at - 1.0]
    assert len(counts) >= len(must_have), (len(counts), len(must_have), len(sent_at))


def test_a_recorder_without_cameras_subscribes_but_writes_no_image(tmp_path):
    """cameras=false (``--no-record-cameras``): camera topics are still followed (the
    simulator counts the recorder among their listeners) but no image is written,
    and the run metadata says so."""
    ctx = InProcessContext()
    out = tmp_path / "drive.mcap"
    rec = Recorder("recorder", context=ctx, params={"output": str(out), "cameras": False},
                   diagnostics=False)
    sim = Node("sim", context=ctx, diagnostics=False)
    chatter = sim.create_publisher(Chatter, "/demo/chatter")
    cam = sim.create_publisher(Image, "/sensors/camera/front")
    ex = Executor(ctx, [rec, sim])
    ctx.clock.advance(1.0)
    ex.spin_once(0)
    assert cam.subscription_count == 1
    cam.publish(Image(Header(1, 0.05), data=np.zeros((36, 64, 3), np.uint8)))
    chatter.publish(Chatter(Header(1), "after the image", 1))
    ex.spin_until(lambda: rec.recorded == 1, timeout_s=1)
    ex.destroy()
    with Recording.open(out) as r:
        assert "/sensors/camera/front" not in r.topics()
        assert r.topics()["/demo/chatter"][2] == 1
        assert r.metadata()["run"]["cameras_recorded"] == "false"
