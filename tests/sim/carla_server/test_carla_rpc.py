"""The transport without the carla client: raw msgpack-rpc requests, garbage,
unknown methods, disconnects mid-request and mid-stream, a busy port, commands."""

from __future__ import annotations

import socket
import struct
import time

import msgpack
import pytest

from sim.carla_server import commands, wire
from sim.carla_server.server import CarlaServer, ServerConfig, ServerStartError
from sim.carla_server.world import EPISODE_STREAM


def call(sock: socket.socket, method: str, *args: object, msgid: int = 1) -> list:
    sock.sendall(msgpack.packb([0, msgid, method, [[False], *args]], use_bin_type=True))
    unpacker = msgpack.Unpacker(raw=False)
    sock.settimeout(10.0)
    while True:
        unpacker.feed(sock.recv(1 << 16))
        for msg in unpacker:
            return msg


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10.0)


def test_replies_and_errors(server: CarlaServer) -> None:
    with connect(server.port) as s:
        assert call(s, "version") == [1, 1, None, [[1, "0.9.16"]]]
        # a method the 0.9.16 client knows but the server does not implement
        kind, _, err, result = call(s, "get_environment_objects", 0, msgid=2)
        assert err is None and result[0][0] == 0
        assert "not supported" in result[0][1][0]
        # a void one waited on: Response<void>'s error shape
        assert call(s, "load_map_layer", 1, msgid=3)[3][0][0] is True
        # a name no 0.9.16 client sends: rpclib's error, naming the version
        kind, msgid, err, result = call(s, "make_coffee", msgid=4)
        assert (kind, msgid, result) == (1, 4, None) and "0.9.16" in err
        # wrong arguments: an error reply, not a dropped connection
        r = call(s, "spawn_actor", "nonsense", [[0, 0, 0], [0, 0, 0]], msgid=5)
        assert r[3][0][0] == 0 and "ActorDescription" in r[3][0][1][0]
        assert "number of arguments" in call(s, "destroy_actor", msgid=6)[3][0][1][0]
        r = call(s, "apply_control_to_vehicle", 999, [0.5, 0.0, 0.0], msgid=7)
        assert r[3] == [[True, ["apply_control_to_vehicle: actor 999 is not a vehicle of "
                                "this episode"]]]
        assert call(s, "version", msgid=8)[3] == [[1, "0.9.16"]]


def test_garbage_and_disconnects_leave_server_serving(server: CarlaServer) -> None:
    for junk in (b"\xc1\xc1\xc1\xc1", msgpack.packb({"not": "rpc"}), msgpack.packb([7, 1]),
                 b"\x93\x00\x01"):  # invalid byte, wrong shape, wrong kind, truncated
        with connect(server.port) as s:
            s.sendall(junk)
            s.settimeout(2.0)
            try:
                data = s.recv(100)
            except TimeoutError:
                data = b"timeout"
            assert data in (b"", b"timeout")  # dropped (or still waiting for the rest)
    s = connect(server.port)
    s.sendall(msgpack.packb([0, 1, "get_map_data", [[False]]])[:-3])  # half a request
    s.close()
    with connect(server.port) as s:
        assert call(s, "version")[3] == [[1, "0.9.16"]]
    deadline = time.monotonic() + 5
    while server.rpc.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.rpc.connections == 0


def test_streams_sync_tick_and_dead_subscriber(server: CarlaServer) -> None:
    with connect(server.port) as s:
        settings = wire.EpisodeSettings(synchronous_mode=True, fixed_delta_seconds=0.1)
        call(s, "set_episode_settings", settings.to_msg())
        token = call(s, "get_sensor_token", EPISODE_STREAM)[3][0][1][0]
        stream_id, port = wire.parse_token(token)
        assert (stream_id, port) == (EPISODE_STREAM, server.streaming_port)
        dead = socket.create_connection(("127.0.0.1", port))
        dead.sendall(struct.pack("<I", stream_id))
        live = socket.create_connection(("127.0.0.1", port), timeout=10)
        live.sendall(struct.pack("<I", stream_id))
        time.sleep(0.3)
        dead.close()  # a subscriber gone mid-stream
        # a new subscriber is first sent the current state
        assert _read_state(live)["frame"] == server.world.frame
        frame = call(s, "tick_cue", msgid=2)[3][0][1]
        state = _read_state(live)
        assert state["frame"] == frame and state["episode_id"] == server.world.episode_id
        assert state["timestamp"] == pytest.approx(server.world.time)
        assert state["delta_seconds"] == pytest.approx(0.1)
        assert len(state["actors"]) == len(server.world.actors)
        assert call(s, "tick_cue", msgid=3)[3][0][1] == frame + 1
        live.close()
        # a stream nobody offers: disconnected at once
        stray = socket.create_connection(("127.0.0.1", port), timeout=10)
        stray.sendall(struct.pack("<I", 123456))
        assert stray.recv(10) == b""
        stray.close()
        # an idle subscriber that hangs up is noticed without a tick
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(struct.pack("<I", stream_id))
        deadline = time.monotonic() + 5
        while server.streams.subscribers(stream_id) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        idle.close()
        while server.streams.subscribers(stream_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.streams.subscribers(stream_id) == 0


def test_a_subscriber_after_the_tick_it_waits_for_still_gets_its_state(
        server: CarlaServer) -> None:
    """The carla client subscribes to the episode stream on a connection of its own
    and then waits, after apply_settings' tick cue, for that tick's state: when the
    subscription lands after the tick (a loaded machine), the state must still come
    (the client waited 60 s and failed, in CI)."""
    with connect(server.port) as s:
        settings = wire.EpisodeSettings(synchronous_mode=True, fixed_delta_seconds=0.05)
        call(s, "set_episode_settings", settings.to_msg())
        assert server.streams.subscribers(EPISODE_STREAM) == 0
        frame = call(s, "tick_cue", msgid=2)[3][0][1]  # published to no one
        stream_id, port = wire.parse_token(call(s, "get_sensor_token", EPISODE_STREAM,
                                                msgid=3)[3][0][1][0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as late:
            late.sendall(struct.pack("<I", stream_id))
            assert _read_state(late)["frame"] == frame
            assert call(s, "tick_cue", msgid=4)[3][0][1] == frame + 1
            assert _read_state(late)["frame"] == frame + 1


def _read_state(sock: socket.socket) -> dict:
    size = struct.unpack("<I", _read(sock, 4))[0]
    return wire.parse_episode_state(_read(sock, size))


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "stream closed"
        data += chunk
    return data


def test_busy_port_names_it(server: CarlaServer) -> None:
    with pytest.raises(ServerStartError, match=f"RPC port 127.0.0.1:{server.port}"):
        CarlaServer(ServerConfig(map="town_grid", port=server.port, streaming_port=0,
                                 tm_port=0))


def test_commands_unwrap_and_errors(server: CarlaServer) -> None:
    assert commands.unwrap([[1, [5]]]) == (1, [5])
    with pytest.raises(ValueError):
        commands.unwrap([["x", 1]])
    out = commands.apply_batch(server, [[[1, [424242]]], [[99, [1]]], "junk"])
    assert out[0][0][0] == 0 and "424242" in out[0][0][1][0]
    assert "not supported" in out[1][0][1][0]
    assert "malformed" in out[2][0][1][0]


def _load_world(port: int, name: str) -> tuple[list, list]:
    with connect(port) as s:
        loaded = call(s, "load_new_episode", name, True, 0)
        info = call(s, "get_map_info", msgid=2)
        return loaded[3], info[3]


def test_load_world_from_a_map_dir(tmp_path) -> None:
    from sim.maps import builtin_maps

    (tmp_path / "mytown.xodr").write_text(builtin_maps()["rural"].read_text())
    srv = CarlaServer(ServerConfig(map="town_grid", map_dir=str(tmp_path), port=0,
                                   streaming_port=0, tm_port=0), eager=False)
    with srv, connect(srv.port) as s:
        assert "mytown" in call(s, "get_available_maps")[3][0][1]
        loaded, info = _load_world(srv.port, "mytown")
        assert loaded == [[False]] and info[0][1][0] == "mytown"
        assert srv.world.episode_id == 2
        missing = call(s, "load_new_episode", "atlantis", True, 0, msgid=3)[3]
        assert missing[0][0] is True and "atlantis" in missing[0][1][0]  # Response<void>


def test_load_carla_town_from_shared(shared_dir) -> None:
    srv = CarlaServer(ServerConfig(map="town_grid", map_dir=str(shared_dir / "maps" / "carla"),
                                   port=0, streaming_port=0, tm_port=0), eager=False)
    with srv:
        loaded, info = _load_world(srv.port, "Town01")
        assert loaded == [[False]] and info[0][1][0] == "Town01"
        assert len(info[0][1][1]) > 100  # spawn points along Town01's lanes
        assert len(srv.world.lights.lights) > 0


def test_a_subscriber_that_stops_reading_is_dropped(monkeypatch) -> None:
    from sim.carla_server import streaming

    monkeypatch.setattr(streaming, "MAX_QUEUED_BYTES", 4 * 1024 * 1024)
    srv = streaming.StreamServer("127.0.0.1", 0)
    srv.start()
    try:
        reader = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        reader.sendall(struct.pack("<I", 5))
        stuck = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(struct.pack("<I", 5))
        deadline = time.monotonic() + 5
        while srv.subscribers(5) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        payload = bytes(1024 * 1024)
        for i in range(64):  # 64 MB: far more than the socket buffers and the limit
            srv.publish(5, payload)
            assert len(_read(reader, 4 + len(payload))) == 4 + len(payload), i
        while srv.subscribers(5) > 1 and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        assert srv.subscribers(5) == 1  # the reader stays, the stuck one is gone
        reader.close()
        stuck.close()
    finally:
        srv.stop()


def test_wrong_types_and_server_bugs_answer_errors(server: CarlaServer, monkeypatch) -> None:
    with connect(server.port) as s:
        r = call(s, "get_actors_by_id", "not a list of ids")
        assert r[3][0][0] == 0 and "get_actors_by_id" in r[3][0][1][0]

        def broken() -> list:
            raise RuntimeError("boom")

        monkeypatch.setitem(server.methods, "get_map_data", broken)
        r = call(s, "get_map_data", msgid=2)
        assert r[3] == [[0, ["get_map_data: internal error of the drivestack server: "
                             "RuntimeError: boom"]]]
        assert call(s, "version", msgid=3)[3] == [[1, "0.9.16"]]
