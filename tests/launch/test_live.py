"""``drivestack run --live``: the live Foxglove node seen through a minimal
WebSocket client (the channels it advertises, a message and the sim time it
sends), its one-line errors, and the options that put it in the closed loop."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bus import Executor, InProcessContext, Node
from bus.messages import (
    CameraIntrinsics,
    ControlCommand,
    DetectedObject,
    EgoState,
    Header,
    Image,
    MapData,
    ObjectList,
    Rotation,
    Transform,
    Vector3,
    VehicleControl,
)
from launch import run as run_mod
from launch import viz
from launch.cli import main
from launch.launchfile import load_launch_file
from launch.run import RunError, RunOptions, check_live, launch_args
from sim.maps import load_map

needs_foxglove = pytest.mark.skipif(importlib.util.find_spec("foxglove") is None,
                                    reason="foxglove-sdk is not installed (drivestack[viz])")
W, H = 64, 36
FRONT = "/sensors/camera/front"
SUBPROTOCOL = "foxglove.sdk.v1"  # what the SDK's server accepts ("foxglove.websocket.v1": 400)


# ---------------------------------------------------------------- a WebSocket client
@dataclass
class WsClient:
    """The client side of RFC 6455, just enough for the Foxglove protocol: the
    upgrade handshake, unmasked server frames in, masked text frames out."""

    port: int
    sock: socket.socket = field(init=False)
    buf: bytes = b""

    def __post_init__(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().lower().split("\r\n")
        assert lines[0].startswith("http/1.1 101"), head
        assert f"sec-websocket-protocol: {SUBPROTOCOL}" in lines, head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        """The next whole message: (opcode 1 text or 2 binary, payload)."""
        opcode, payload = None, b""
        while True:
            b0, b1 = self._take(2)
            assert not b1 & 0x80, "server frames are never masked"
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8))[0]
            data = self._take(n)
            if b0 & 0x0F == 0x8:
                raise ConnectionError("the server closed the connection")
            if b0 & 0x0F in (0x9, 0xA):  # ping / pong
                continue
            opcode = opcode or b0 & 0x0F
            payload += data
            if b0 & 0x80:  # FIN
                return opcode, payload

    def send_json(self, obj: Any) -> None:
        data, mask = json.dumps(obj).encode(), os.urandom(4)
        assert len(data) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + masked)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Seen:
    """What the client has been told: channels by topic, message data by
    subscription id (log time ns, payload), broadcast times (ns)."""

    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    times: list[int] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)


def read_until(client: WsClient, seen: Seen, done: Callable[[], bool],
               spin: Callable[[], None], timeout_s: float = 10.0) -> None:
    """Spin the bus and read the server's frames until ``done()``."""
    client.sock.settimeout(0.05)
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out; seen {sorted(seen.channels)}"
        spin()
        try:
            opcode, payload = client.frame()
        except TimeoutError:
            continue
        if opcode == 1:
            msg = json.loads(payload)
            seen.ops.append(msg)
            if msg["op"] == "advertise":
                seen.channels.update({c["topic"]: c for c in msg["channels"]})
        elif payload[0] == 0x01:  # message data: u32 subscription, u64 log time
            sub, log_ns = struct.unpack_from("<IQ", payload, 1)
            seen.data.setdefault(sub, []).append((log_ns, payload[13:]))
        elif payload[0] == 0x02:  # time
            seen.times.append(struct.unpack_from("<Q", payload, 1)[0])


# -------------------------------------------------------------------- the node
def _header(k: int) -> Header:
    return Header(k, 0.05 * k)


def _image(k: int) -> Image:
    rng = np.random.default_rng(k)
    return Image(_header(k), "front", "bgr8", rng.integers(0, 255, (H, W, 3), np.uint8),
                 CameraIntrinsics.from_fov(W, H, 90.0), Transform(Vector3(1.5, 0, 1.6),
                                                                   Rotation()))


@pytest.fixture
def loop() -> Iterator[tuple[Any, Node, Executor]]:
    """The live node on an in-process bus, beside a node playing the loop's
    publishers; both destroyed (the server stopped) afterwards."""
    from launch.live import FoxgloveLiveNode

    ctx = InProcessContext()
    live = FoxgloveLiveNode("live", context=ctx, params={"port": 0})
    sim = Node("sim", context=ctx, diagnostics=False)
    ex = Executor(ctx, [live, sim])
    yield live, sim, ex
    ex.destroy()


@needs_foxglove
def test_live_node_serves_the_bus_in_foxglove_schemas(loop) -> None:
    live, sim, ex = loop
    ctx = live.context
    pubs = {t: sim.create_publisher(mt, t) for t, mt in (
        ("/ego/state", EgoState), ("/perception/objects", ObjectList),
        ("/control/command", ControlCommand), (FRONT, Image))}
    map_pub = sim.create_publisher(MapData, "/map/opendrive")
    map_pub.publish(MapData(Header(0, 0.0), "town_grid", load_map("town_grid").xodr))
    client = WsClient(live.port)
    seen = Seen()

    def spin() -> None:
        ex.spin_once(0)

    try:
        read_until(client, seen, lambda: any(m["op"] == "serverInfo" for m in seen.ops), spin)
        info = next(m for m in seen.ops if m["op"] == "serverInfo")
        assert "time" in info["capabilities"]

        # Passive: nothing but the gate topic until the loop's first command, so the
        # simulator's start counts (subscribers of its topics) never include it.
        ex.spin_once(0)
        assert not live.attached
        assert pubs["/ego/state"].subscription_count == 0
        assert pubs[FRONT].subscription_count == 0
        pubs["/control/command"].publish(ControlCommand(_header(0), VehicleControl(0.5)))
        ex.spin_until(lambda: live.attached, timeout_s=1)
        assert pubs["/ego/state"].subscription_count == 1
        ctx.clock.advance(1.0)  # the discovery timer: the camera, a pattern topic
        ex.spin_once(0)
        assert pubs[FRONT].subscription_count == 1

        for k in (1, 2):
            pubs["/ego/state"].publish(EgoState(_header(k), Transform(
                Vector3(120.0 + k, -98.25, 0.3), Rotation(yaw=10.0)), Vector3(5.0, 0, 0),
                speed=5.0))
            pubs[FRONT].publish(_image(k))
            pubs["/perception/objects"].publish(ObjectList(_header(k), "perception", [
                DetectedObject(track_id=4, label="vehicle", position=Vector3(15.0, 0.2, 0.75),
                               size=Vector3(4.5, 1.9, 1.5), yaw=5.0,
                               velocity=Vector3(0, 0, 0), confidence=0.9)]))
            pubs["/control/command"].publish(ControlCommand(_header(k), VehicleControl(0.5)))
        expected = {
            FRONT: ("foxglove.CompressedImage", "protobuf"),
            f"{FRONT}/calibration": ("foxglove.CameraCalibration", "protobuf"),
            "/tf": ("foxglove.FrameTransforms", "protobuf"),
            "/perception/objects": ("foxglove.SceneUpdate", "protobuf"),
            "/map": ("foxglove.SceneUpdate", "protobuf"),
            "/ego/state": ("drivestack.EgoState", "json"),
            "/control/command": ("drivestack.ControlCommand", "json"),
        }
        read_until(client, seen, lambda: expected.keys() <= seen.channels.keys(), spin)
        for topic, (schema, encoding) in expected.items():
            ch = seen.channels[topic]
            assert (ch["schemaName"], ch["encoding"]) == (schema, encoding), topic
        assert "/map/opendrive" not in seen.channels  # the map goes out as lane lines
        # the sim time follows the stamps (the map's 0 first, then frame 2's 0.1 s)
        read_until(client, seen, lambda: bool(seen.times) and seen.times[-1] == 100_000_000,
                   spin)
        assert seen.times == sorted(seen.times)

        # A subscriber gets the images that follow, logged at their sim time; one
        # that subscribes to /map after it went out is sent it again.
        client.send_json({"op": "subscribe", "subscriptions": [
            {"id": 7, "channelId": seen.channels[FRONT]["id"]},
            {"id": 8, "channelId": seen.channels["/map"]["id"]}]})
        published = [0.05, 0.1]

        def next_frame() -> None:  # until the subscription reaches the server's thread
            k = len(published) + 1
            pubs[FRONT].publish(_image(k))
            published.append(0.05 * k)
            ctx.clock.advance(0.25)  # the node's timer looks for /map subscriptions
            ex.spin_once(0)

        read_until(client, seen, lambda: 7 in seen.data and 8 in seen.data, next_frame)
        log_ns, payload = seen.data[7][0]
        assert log_ns in [round(t * 1e9) for t in published[2:]]
        assert b"jpeg" in payload and b"\xff\xd8\xff" in payload  # a JPEG inside
        assert b"lanes" in seen.data[8][0][1]
    finally:
        client.close()
    assert live.converter.out.counts[FRONT] == len(published)  # in-process: none dropped


@needs_foxglove
def test_stopping_the_node_closes_the_server(loop) -> None:
    live, _, ex = loop
    port = live.port
    client = WsClient(port)
    ex.destroy()
    client.sock.settimeout(5)
    with pytest.raises((ConnectionError, OSError)):
        while True:
            client.frame()
    client.close()
    # the server's listening socket closes on its own thread: allow it a moment
    # (a CI run beside two evaluations still connected right after destroy)
    deadline = time.monotonic() + 10.0
    with pytest.raises(OSError):
        while time.monotonic() < deadline:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            time.sleep(0.1)


@needs_foxglove
def test_a_port_in_use_is_one_clear_error() -> None:
    from launch.live import FoxgloveLiveNode

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ctx = InProcessContext()
        with pytest.raises(viz.VizError) as err:
            FoxgloveLiveNode("live", context=ctx, params={"port": port})
        msg = str(err.value)
        assert f"port {port} on 127.0.0.1 is already in use" in msg and "\n" not in msg
        assert not ctx.live_topics()  # the node left the bus (its /diagnostics publisher)
        with pytest.raises(RunError, match=f"--live-port {port}: port {port} on 127.0.0.1 "
                                           "is already in use"):
            check_live(RunOptions(live=True, live_port=port))


def test_without_the_sdk_the_live_view_says_how_to_install_it(monkeypatch) -> None:
    from launch.live import FoxgloveLiveNode

    monkeypatch.setattr(viz, "foxglove", None)
    with pytest.raises(viz.VizError, match=r"foxglove-sdk.*pip install"):
        FoxgloveLiveNode("live", context=InProcessContext())
    with pytest.raises(RunError, match=r"--live needs the foxglove-sdk package.*pip install"):
        check_live(RunOptions(live=True))


# --------------------------------------------------------------- run --live wiring
def _nodes(opts: RunOptions, tmp_path: Path) -> dict[str, Any]:
    args = launch_args(opts, tmp_path / "scenario.yaml", tmp_path)
    return {n.name: n for n in load_launch_file(run_mod.RUN_LAUNCH_FILE, args).nodes}


@pytest.mark.parametrize("oracle", [False, True])
def test_live_adds_a_passive_node_and_leaves_the_sim_start_alone(tmp_path: Path,
                                                                 oracle: bool) -> None:
    plain = _nodes(RunOptions(oracle=oracle), tmp_path)
    live = _nodes(RunOptions(oracle=oracle, live=True, live_port=9123), tmp_path)
    assert "live" not in plain
    assert set(live) - set(plain) == {"live"}
    node = live["live"]
    assert node.node == "launch.live:FoxgloveLiveNode" and not node.required
    assert node.params["port"] == 9123 and node.params["after_topic"] == "/control/command"
    # the live node subscribes to them after the start, so the counts are unchanged
    assert live["sim"].params == plain["sim"].params


def test_run_options_for_live(monkeypatch, capsys) -> None:
    got: list[RunOptions] = []
    monkeypatch.setattr(run_mod, "run_closed_loop", lambda opts: got.append(opts) or 0)
    assert main(["run", "--live", "--live-port", "9123", "--oracle"]) == 0
    assert main(["run", "--live"]) == 0
    assert main(["run"]) == 0
    assert [(o.live, o.live_port) for o in got] == [(True, 9123), (True, 8765), (False, 8765)]
    assert main(["run", "--live-port", "9000"]) == 2
    assert "--live-port needs --live" in capsys.readouterr().err


@needs_foxglove
def test_run_live_prints_the_address_and_launches_the_view(monkeypatch, bus_env,
                                                           tmp_path: Path, capsys) -> None:
    """`drivestack run --live` up to the launch (the launcher is stubbed)."""
    import launch.launcher

    launched: list[Any] = []

    class FakeLauncher:
        def __init__(self, description: Any, **kwargs: Any) -> None:
            launched.append(description)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(launch.launcher, "Launcher", FakeLauncher)
    with socket.socket() as free:  # a port free now
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    out = tmp_path / "run"
    rc = main(["run", "--live", "--live-port", str(port), "--no-progress", "--oracle",
               "--out", str(out)])
    assert rc == 1  # the stub left no metrics
    stdout = capsys.readouterr().out
    assert f"live view: open ws://127.0.0.1:{port} in Foxglove" in stdout
    (description,) = launched
    live = next(n for n in description.nodes if n.name == "live")
    assert live.params["port"] == port
