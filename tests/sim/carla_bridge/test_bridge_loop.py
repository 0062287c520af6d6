"""The closed loop through the CARLA bridge against `drivestack serve` (started by
the fixture in its own process): a short route with CNN perception scores like the
embedded simulator on the same scenario, and Ctrl-C mid-run leaves nothing behind
on the server.

Agreement tolerance (documented in the README): both backends step the same
vehicle model at 20 Hz from the same start, and the server draws the camera with
the embedded renderer, so the CNN sees (nearly) the same images; what differs is
float32 on the wire (poses, velocities) and the images' brightness (the server's
look is sampled from its seed, the embedded one follows the scenario's weather).
Route completion and driving score must agree within 2 points, the infraction
penalty within 0.01, the end reason and the infraction counts exactly, the
duration within 1 s and the distance within 2 m (measured: 10.15 / 10.15 s; for a
while the embedded run crept its last metre to the route's end, 11.75 s, which
this session's planning changes removed, not bisected further)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import carla
import pytest

from bus.recording import Recording, split_frames
from bus.serialization import decode


def server_state(port: int) -> tuple[list[str], bool]:
    """A second client's view: the type ids of every actor but the spectator and the
    traffic lights, and whether the world is in synchronous mode."""
    client = carla.Client("127.0.0.1", port)
    client.set_timeout(10.0)
    world = client.get_world()
    # a fresh client knows the actors once it has seen a tick (in synchronous mode
    # the run's own client ticks; in asynchronous mode the server does)
    world.wait_for_tick(10.0)
    kinds = sorted(a.type_id for a in world.get_actors()
                   if a.type_id != "spectator" and not a.type_id.startswith("traffic."))
    return kinds, bool(world.get_settings().synchronous_mode)


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.timeout(300)  # two closed-loop runs with the CNN on a shared 2-core VM
def test_closed_loop_cnn_agrees_with_embedded(carla_server, tools, tmp_path: Path  # type: ignore[no-untyped-def]
                                              ) -> None:
    common = ["--scenario", str(tools.short_route), "--no-progress", "--cpu-threads", "1"]
    bridge_out, direct_out = tmp_path / "bridge", tmp_path / "direct"
    bridge = tools.cli("run", *carla_server.args(), *common, "--out", str(bridge_out),
                       timeout=150)
    assert bridge.returncode == 0, bridge.stdout + bridge.stderr + (
        bridge_out / "log.txt").read_text()
    assert f"CARLA 0.9.16 server at 127.0.0.1:{carla_server.port}" in bridge.stdout
    direct = tools.cli("run", *common, "--out", str(direct_out), timeout=150)
    assert direct.returncode == 0, direct.stdout + direct.stderr
    b, d = _metrics(bridge_out), _metrics(direct_out)
    assert b["end_reason"] == d["end_reason"] == "route_completed", (b, d)
    assert b["error"] is None
    assert abs(b["route_completion"] - d["route_completion"]) <= 2.0
    assert abs(b["driving_score"] - d["driving_score"]) <= 2.0
    assert abs(b["infraction_penalty"] - d["infraction_penalty"]) <= 0.01
    assert b["infractions"]["counts"] == d["infractions"]["counts"]
    assert abs(b["duration_s"] - d["duration_s"]) <= 1.0
    assert abs(b["distance_m"] - d["distance_m"]) <= 2.0
    assert b["scenario"]["map"] == "town_grid" and b["deadline_misses"] == 0
    print(f"\nbridge vs direct: DS {b['driving_score']:.2f}/{d['driving_score']:.2f}, RC "
          f"{b['route_completion']:.2f}/{d['route_completion']:.2f}, duration "
          f"{b['duration_s']:.2f}/{d['duration_s']:.2f} s, distance {b['distance_m']:.2f}/"
          f"{d['distance_m']:.2f} m")

    # the same topics, every camera image with the frame of the ego state it goes with
    with Recording.open(bridge_out / "drive.mcap") as rec:
        topics = set(rec.topics())
        with Recording.open(direct_out / "drive.mcap") as drec:
            assert topics == set(drec.topics())
        frames: dict[str, list[int]] = {"/ego/state": [], "/sensors/camera/front": [],
                                        "/sim/ground_truth": []}
        for m in rec.messages(topics=list(frames)):
            msg = decode(split_frames(m.data))
            frames[m.topic].append(msg.header.frame)
            if m.topic == "/sensors/camera/front":
                assert msg.data.shape == (360, 640, 3) and msg.encoding == "bgr8"
    assert frames["/ego/state"] == frames["/sensors/camera/front"] == \
        frames["/sim/ground_truth"] == list(range(b["ticks"] + 1))[:len(frames["/ego/state"])]
    assert len(frames["/ego/state"]) >= b["ticks"]
    # the run's actors are gone and the server is asynchronous again
    assert server_state(carla_server.port) == ([], False)


def test_ctrl_c_mid_run_leaves_no_actors(carla_server, tools, tmp_path: Path  # type: ignore[no-untyped-def]
                                         ) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group:
    the CLI and every node. Two NPC vehicles go to the Traffic Manager as well."""
    scenario = tmp_path / "traffic.yaml"
    scenario.write_text(tools.short_route.read_text().replace(
        "traffic: {vehicles: 0, pedestrians: 0}", "traffic: {vehicles: 2, pedestrians: 0}"))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.cli", "run", *carla_server.args(), "--oracle",
         "--scenario", str(scenario), "--out", str(out), "--no-progress"],
        cwd=tools.repo, env=tools.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        # wait until the loop runs: our ego, cameras and NPCs on the server, ticking
        deadline = time.monotonic() + 90
        seen: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            seen, sync = server_state(carla_server.port)
            if sync and "sensor.other.collision" in seen and len(
                    [k for k in seen if k.startswith("vehicle.")]) == 3:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the run did not start (actors {seen}):\n"
                        f"{proc.stdout.read() if proc.poll() is not None else ''}")
        time.sleep(2.0)  # mid-run
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert server_state(carla_server.port) == ([], False), output
    m = _metrics(out)
    assert m["end_reason"] == "interrupted" and m["ticks"] > 0, m
    assert "Traceback" not in (out / "log.txt").read_text()
