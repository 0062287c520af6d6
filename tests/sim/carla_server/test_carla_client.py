"""The real ``carla`` 0.9.16 client against the server, in a subprocess: every
layout mistake would crash the client process and fail these tests."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from sim.carla_server import wire
from sim.carla_server.sensors import decode_depth
from sim.labels import Label

# CARLA's CityScapes palette (BGR as raw_data holds it) for a few labels
PALETTE_RGB = {int(Label.ROADS): (128, 64, 128), int(Label.SKY): (70, 130, 180),
               int(Label.CAR): (0, 0, 142)}


def test_drive_sync_cameras(server, clients, tmp_path) -> None:
    res = clients.run("drive", server.port, tmp_path, timeout=120)
    assert res["version"] == "0.9.16"
    # the client's waypoints are computed from our OpenDRIVE: they match our map
    ours = server.world.map.generate_waypoints(5.0)
    assert len(res["waypoints"]) == len(ours) > 100
    for (road, lane, s, x, y), w in zip(res["waypoints"], ours, strict=True):
        assert (road, lane, s) == (w.road_id, w.lane_id, pytest.approx(w.s, abs=1e-3))
        assert abs(x - w.transform.location.x) < 1e-3 and abs(y - w.transform.location.y) < 1e-3
    assert res["topology"] == len(server.world.map.get_topology())
    assert res["spawn_points"] == len(server.world.spawn_transforms)
    assert {"vehicle.lincoln.mkz_2020", "sensor.camera.rgb", "sensor.camera.depth",
            "sensor.camera.semantic_segmentation", "sensor.other.collision",
            "sensor.other.lane_invasion", "sensor.other.gnss", "sensor.other.imu",
            "walker.pedestrian.0001"} <= set(res["blueprints"])
    assert res["vehicle"]["extent"] == pytest.approx([2.45, 1.06, 0.76], abs=1e-3)

    # 200 synchronous ticks: consecutive frames, the car drove under its control
    frames = res["frames"]
    assert frames == list(range(frames[0], frames[0] + 200))
    poses = np.array(res["poses"])
    assert math.hypot(poses[-1, 0] - poses[0, 0], poses[-1, 1] - poses[0, 1]) > 20
    assert abs(poses[179, 2] - poses[0, 2]) < 0.01  # straight for 180 ticks
    assert abs(poses[-1, 2] - poses[179, 2]) > 1.0  # then it turned
    assert res["control"] == pytest.approx([0.4, 0.03], abs=1e-6)

    # one image per camera per tick, stamped with that tick's frame
    for name in ("rgb", "depth", "semantic"):
        got = res["images"][name]
        assert [g[0] for g in got] == frames, name
        assert all(g[1:4] == [320, 240, 90.0] for g in got)
        assert res["last_frame"][name] == frames[-1]
    dt = 0.05
    ts = [g[4] for g in res["images"]["rgb"]]
    assert np.allclose(np.diff(ts), dt)

    # the camera's transform: the vehicle's, composed with the mount
    x, y, yaw = poses[-1, :3]
    cx, cy, cz, pitch, cyaw, _ = res["camera_transform"]
    assert cx == pytest.approx(x + 1.5 * math.cos(math.radians(yaw)), abs=1e-3)
    assert cy == pytest.approx(y + 1.5 * math.sin(math.radians(yaw)), abs=1e-3)
    assert (cz, pitch, cyaw) == pytest.approx((2.4, -5.0, yaw), abs=1e-3)

    # pixels: what the embedded renderer draws for that frame, byte for byte
    world = server.world
    assert world.frame == frames[-1]
    cams = {k: world.actors[v] for k, v in res["camera_ids"].items()}
    rendered = world.sensors.render(world, list(cams.values()))
    rgb = np.load(tmp_path / "rgb.npy")
    f = rendered[cams["rgb"].id]
    assert np.array_equal(rgb[..., :3], f.rgb) and (rgb[..., 3] == 255).all()
    depth = np.load(tmp_path / "depth.npy")
    metres = decode_depth(depth)
    want = rendered[cams["depth"].id].depth
    assert np.abs(metres - want).max() <= 1000.0 / (256 ** 3 - 1)
    # CARLA's own Depth converter: gray = 255 * normalized depth
    gray = np.load(tmp_path / "depth_gray.npy")[..., 2].astype(float)
    assert np.abs(gray - 255.0 * np.clip(want / 1000.0, 0, 1)).max() <= 1.0
    sem = np.load(tmp_path / "semantic.npy")
    labels = rendered[cams["semantic"].id].labels
    assert np.array_equal(sem[..., 2], labels)
    assert {int(Label.ROADS), int(Label.SKY)} <= set(np.unique(labels).tolist())
    palette = np.load(tmp_path / "semantic_palette.npy")
    for label, (r, g, b) in PALETTE_RGB.items():
        mask = labels == label
        if mask.any():
            assert (palette[mask][:, :3] == (b, g, r)).all(), label

    assert {"vehicle.lincoln.mkz_2020", "traffic.traffic_light", "spectator",
            "walker.pedestrian.0001", "sensor.camera.rgb"} <= set(res["actors"])
    npcs = [a.id for a in world.actors.values() if a.npc is not None]
    assert len(npcs) == 4 and set(npcs) < set(res["vehicles_filter"])
    assert res["snapshot_frame"] == frames[-1]


def test_sensors_collision_lane_gnss_imu(server, clients, tmp_path) -> None:
    res = clients.run("sensors", server.port, tmp_path, timeout=90)
    ev = res["events"]
    assert ev["collision"], "no collision event on the scripted crash"
    frame, other, me, _ = ev["collision"][0]
    assert other == res["target"] and me == res["ego"] and frame in res["frames"]
    assert ev["lane"], "no lane invasion while steering across the lane"
    assert all(frame in res["frames"] for frame, _ in ev["lane"])
    gnss_frames = [g[0] for g in ev["gnss"]]
    assert gnss_frames == res["frames"][-len(gnss_frames):] and len(gnss_frames) >= 80
    assert ev["gnss"][-1][1:] == pytest.approx(res["geo_now"], abs=1e-9)
    imu = np.array(ev["imu"])
    assert len(imu) == len(ev["gnss"])
    assert np.allclose(imu[:, 1], 9.81, atol=0.5)  # gravity on the accelerometer's z
    assert (imu[:, 3] >= 0).all() and (imu[:, 3] < 2 * math.pi).all()
    assert res["speed_limit"] > 0


def test_apply_batch_and_autopilot(server, clients, tmp_path) -> None:
    res = clients.run("batch", server.port, tmp_path, timeout=90)
    assert res["errors"] == ["", "", ""] and len(set(res["ids"])) == 3
    assert all(d > 5.0 for d in res["moved"].values()), res["moved"]
    assert res["batch_errors"][:3] == ["", "", ""]
    assert "999999" in res["batch_errors"][3]
    assert res["autopilot_moved"] > 3.0
    speed0, speed1, brake = res["released"]  # back under apply_control: it brakes
    assert speed0 > 1.0 and speed1 < 0.1 and brake == 1.0
    assert res["destroy_errors"] == ["", "", ""]
    assert not set(res["ids"]) & set(res["alive"])


def test_asynchronous_on_tick(server, clients, tmp_path) -> None:
    res = clients.run("asynchronous", server.port, tmp_path, timeout=60)
    seen = res["seen"]
    assert res["first"] > 0 and len(seen) >= 10  # 20 Hz for ~1 s
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_two_clients_at_once(server, clients, tmp_path) -> None:
    server.world.settings.synchronous_mode = True
    server.world.settings.fixed_delta_seconds = 0.05
    procs = []
    for i in range(2):
        out = tmp_path / f"c{i}"
        out.mkdir()
        (out / "index").write_text(str(i))
        procs.append((clients.start("ticker", server.port, out), out))
    results = [clients.finish(p, out, timeout=90) for p, out in procs]
    all_frames = [f for r in results for f in r["frames"]]
    assert len(set(all_frames)) == 100  # every tick of either client advanced the world
    for r in results:
        assert r["frames"] == sorted(r["frames"])
        assert r["vehicles"] >= 5


def test_killed_client_and_unknown_methods(server, clients, tmp_path) -> None:
    proc = clients.start("stream_forever", server.port, tmp_path / "killed")
    try:
        deadline = time.monotonic() + 40
        while not (tmp_path / "killed" / "ready").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    frame = server.world.frame
    res = clients.run("errors", server.port, tmp_path / "errors", timeout=60)
    assert "get_environment_objects is not supported" in res["get_environment_objects"]
    assert "get_physics_control is not supported" in res["get_physics_control"]
    assert res["after"] == "0.9.16"
    assert frame > 0 and server.rpc.connections <= 1


def test_episode_state_layout_read_by_client(server) -> None:
    """The payload the client parsed in the tests above has exactly these sizes."""
    payload = server.world.episode_state()
    parsed = wire.parse_episode_state(payload)
    assert parsed["type"] == wire.SENSOR_EPISODE_STATE
    assert len(payload) == 48 + 36 + 119 * len(server.world.actors)


def test_world_api_lights_and_load_world(server, clients, tmp_path) -> None:
    world = server.world
    light = world.lights.lights[0]
    stop = light.stop_waypoints[0].transform
    yaw = math.radians(stop.rotation.yaw)
    pose = [stop.location.x - 6.0 * math.cos(yaw), stop.location.y - 6.0 * math.sin(yaw),
            stop.rotation.yaw]
    (tmp_path / "in.json").write_text(json.dumps({"pose": pose}))
    res = clients.run("world_api", server.port, tmp_path, timeout=90)
    assert {"town_grid", "highway", "rural"} <= set(res["maps"])
    assert res["settings"] == [True, pytest.approx(0.05)]
    assert res["weather"] == pytest.approx([40.0, 30.0, 7.0])
    assert res["spectator"] == pytest.approx([10, 20, 30, -30, 45], abs=1e-4)
    assert res["lights"] == len(world.lights.lights) > 0
    assert res["vehicle_light"] == world.light_actor[light.id] and res["at_light"]
    assert res["vehicle_light_state"] in ("Red", "Yellow", "Green")
    assert res["speed_limit"] == pytest.approx(world.speed_limits[stop_road(light)] * 3.6)
    info = res["light"]
    assert (info["green"], info["yellow"]) == (10.0, 3.0) and info["red"] > 0
    assert 0 <= info["elapsed"] <= max(info["green"], info["red"])
    assert info["opendrive_id"] == light.signal_ids[0]
    assert info["id"] in info["group"] and len(info["group"]) > 1
    assert res["forced_state"] == "Red"
    assert res["walkers"] == 4 and res["vehicles"] == 5  # NPCs, and the client's car
    frame, elapsed, n, found = res["snapshot"]
    assert found and n == len(world.actors) - 1  # the walker was spawned after it
    assert elapsed == pytest.approx(frame * 0.05, rel=0.1)
    assert res["accel"] == [0.0, 0.0]
    assert res["walker"] == pytest.approx([0.0, 1.5, 1.5], abs=1e-3)  # 20 ticks at 1.5 m/s
    assert res["loaded"] == "rural" and server.world.loaded.name == "rural"
    assert res["after_load_settings"] is False  # load_world resets the settings
    assert res["ego"] not in res["after_load_actors"]
    assert len(res["after_load_actors"]) == 4  # the new episode's NPCs
    assert "no_such_town" in res["bad_load"]


def stop_road(light) -> int:  # type: ignore[no-untyped-def]
    return light.stop_waypoints[0].road_id
