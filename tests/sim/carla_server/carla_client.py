"""Client scripts the integration tests run in a subprocess with the real, unmodified
``carla`` 0.9.16 client (a crash of the client, e.g. on a wrong layout, must fail
the test and nothing else). Usage: ``python carla_client.py SCENARIO PORT OUT_DIR``;
each scenario writes ``OUT_DIR/result.json`` (and arrays as .npy) for the test to
check. Imports only carla and numpy: no drivestack code runs in here.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import carla
import numpy as np


def _connect(port: int) -> tuple[carla.Client, carla.World]:
    client = carla.Client("127.0.0.1", port)
    client.set_timeout(60.0)  # a loaded CI machine can take long over a first camera tick
    return client, client.get_world()


def _sync(world: carla.World, on: bool = True, dt: float = 0.05) -> None:
    s = world.get_settings()
    s.synchronous_mode = on
    s.fixed_delta_seconds = dt if on else None
    world.apply_settings(s)


def _wait(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def drive(port: int, out: Path) -> dict:
    """Connect, read the map, spawn a vehicle with rgb/depth/semantic cameras, run
    200 synchronous ticks with control and record every image's frame."""
    client, world = _connect(port)
    res: dict = {"version": client.get_server_version(), "client": client.get_client_version()}
    cmap = world.get_map()
    res["map_name"] = cmap.name
    wps = cmap.generate_waypoints(5.0)
    res["waypoints"] = [[w.road_id, w.lane_id, round(w.s, 3), round(w.transform.location.x, 3),
                         round(w.transform.location.y, 3)] for w in wps]
    res["topology"] = len(cmap.get_topology())
    lib = world.get_blueprint_library()
    res["blueprints"] = sorted(b.id for b in lib)
    _sync(world)
    sp = cmap.get_spawn_points()
    res["spawn_points"] = len(sp)
    vehicle = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), sp[0])
    res["vehicle"] = {"id": vehicle.id, "type": vehicle.type_id,
                      "extent": [vehicle.bounding_box.extent.x, vehicle.bounding_box.extent.y,
                                 vehicle.bounding_box.extent.z]}
    mount = carla.Transform(carla.Location(x=1.5, y=0.0, z=2.4), carla.Rotation(pitch=-5.0))
    images: dict[str, list] = {"rgb": [], "depth": [], "semantic": []}
    last: dict[str, carla.Image] = {}
    cams = {}
    for name, bp_id in (("rgb", "sensor.camera.rgb"), ("depth", "sensor.camera.depth"),
                        ("semantic", "sensor.camera.semantic_segmentation")):
        bp = lib.find(bp_id)
        bp.set_attribute("image_size_x", "320")
        bp.set_attribute("image_size_y", "240")
        bp.set_attribute("fov", "90")
        cam = world.spawn_actor(bp, mount, attach_to=vehicle)
        cams[name] = cam

        def cb(image: carla.Image, name: str = name) -> None:
            images[name].append([image.frame, image.width, image.height, image.fov,
                                 image.timestamp])
            last[name] = image

        cam.listen(cb)
    time.sleep(1.0)  # let the stream sessions connect before the first tick
    frames, poses = [], []
    for k in range(200):
        vehicle.apply_control(carla.VehicleControl(throttle=0.4, steer=0.0 if k < 180 else 0.03))
        frames.append(world.tick())
        tf = vehicle.get_transform()
        poses.append([tf.location.x, tf.location.y, tf.rotation.yaw,
                      vehicle.get_velocity().x, vehicle.get_velocity().y])
        n = len(frames)
        _wait(lambda n=n: all(len(v) >= n for v in images.values()), 5.0)
    res["frames"] = frames
    res["poses"] = poses
    res["images"] = images
    res["control"] = [vehicle.get_control().throttle, vehicle.get_control().steer]
    cam_tf = cams["rgb"].get_transform()
    res["camera_transform"] = [cam_tf.location.x, cam_tf.location.y, cam_tf.location.z,
                               cam_tf.rotation.pitch, cam_tf.rotation.yaw, cam_tf.rotation.roll]
    res["camera_ids"] = {k: c.id for k, c in cams.items()}
    res["last_frame"] = {k: v.frame for k, v in last.items()}
    for name, image in last.items():
        raw = np.frombuffer(image.raw_data, np.uint8).reshape(image.height, image.width, 4)
        np.save(out / f"{name}.npy", raw)
    # CARLA's own conversions of the same images
    depth_img = last["depth"]
    depth_img.convert(carla.ColorConverter.Depth)
    np.save(out / "depth_gray.npy", np.frombuffer(depth_img.raw_data, np.uint8).reshape(
        depth_img.height, depth_img.width, 4).copy())
    sem = last["semantic"]
    sem.convert(carla.ColorConverter.CityScapesPalette)
    np.save(out / "semantic_palette.npy", np.frombuffer(sem.raw_data, np.uint8).reshape(
        sem.height, sem.width, 4).copy())
    for cam in cams.values():
        cam.stop()
    res["actors"] = sorted({a.type_id for a in world.get_actors()})
    res["vehicles_filter"] = [a.id for a in world.get_actors().filter("vehicle.*")]
    res["snapshot_frame"] = world.get_snapshot().frame
    return res


def sensors(port: int, out: Path) -> dict:
    """Collision on a scripted crash, lane invasion, GNSS and IMU."""
    _client, world = _connect(port)
    _sync(world)
    cmap = world.get_map()
    lib = world.get_blueprint_library()
    sp = cmap.get_spawn_points()[0]
    ahead = cmap.get_waypoint(sp.location).next(14.0)[0].transform
    ahead.location.z += 0.5
    ego = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), sp)
    target = world.spawn_actor(lib.find("vehicle.tesla.model3"), ahead)
    events: dict[str, list] = {"collision": [], "lane": [], "gnss": [], "imu": []}
    col = world.spawn_actor(lib.find("sensor.other.collision"), carla.Transform(), attach_to=ego)
    col.listen(lambda e: events["collision"].append([e.frame, e.other_actor.id, e.actor.id,
                                                     e.normal_impulse.x]))
    lane = world.spawn_actor(lib.find("sensor.other.lane_invasion"), carla.Transform(),
                             attach_to=ego)
    lane.listen(lambda e: events["lane"].append([e.frame, [str(m.type) for m in
                                                           e.crossed_lane_markings]]))
    gnss = world.spawn_actor(lib.find("sensor.other.gnss"), carla.Transform(), attach_to=ego)
    gnss.listen(lambda e: events["gnss"].append([e.frame, e.latitude, e.longitude, e.altitude]))
    imu = world.spawn_actor(lib.find("sensor.other.imu"), carla.Transform(), attach_to=ego)
    imu.listen(lambda e: events["imu"].append([e.frame, e.accelerometer.z, e.gyroscope.z,
                                               e.compass]))
    time.sleep(1.0)
    frames = []
    for _k in range(120):
        ego.apply_control(carla.VehicleControl(throttle=1.0))
        frames.append(world.tick())
        if events["collision"]:
            break
    # now a lane change: steer left off the lane
    ego.set_transform(sp)
    ego.set_target_velocity(carla.Vector3D(0.0, 0.0, 0.0))
    target.destroy()
    for _ in range(80):
        ego.apply_control(carla.VehicleControl(throttle=0.5, steer=-0.15))
        frames.append(world.tick())
    time.sleep(0.5)
    geo = cmap.transform_to_geolocation(ego.get_transform().location)
    return {"frames": frames, "events": events, "ego": ego.id, "target": target.id,
            "geo_now": [geo.latitude, geo.longitude, geo.altitude],
            "speed_limit": ego.get_speed_limit()}


def batch(port: int, out: Path) -> dict:
    """apply_batch_sync with the Traffic Manager's command types, autopilot."""
    client, world = _connect(port)
    _sync(world)
    lib = world.get_blueprint_library()
    sp = world.get_map().get_spawn_points()
    C = carla.command
    bp = lib.find("vehicle.tesla.model3")
    spawn = client.apply_batch_sync(
        [C.SpawnActor(bp, sp[i]).then(C.SetAutopilot(C.FutureActor, True, 8000))
         for i in (0, 4, 8)], True)
    ids = [r.actor_id for r in spawn]
    errors = [r.error for r in spawn]
    start = {i: world.get_actor(i).get_location() for i in ids}
    for _ in range(60):
        world.tick()
    moved = {i: world.get_actor(i).get_location().distance(start[i]) for i in ids}
    manual = world.spawn_actor(lib.find("vehicle.audi.a2"), sp[12])
    cmds = [C.ApplyVehicleControl(manual.id, carla.VehicleControl(throttle=0.8)),
            C.ApplyTargetVelocity(manual.id, carla.Vector3D(0, 0, 0)),
            C.ApplyTransform(manual.id, sp[12]), C.DestroyActor(999_999)]
    resp = client.apply_batch_sync(cmds, False)
    for _ in range(20):
        world.tick()
    vehicle_api = manual.get_location().distance(sp[12].location)
    manual.set_autopilot(True)
    loc0 = manual.get_location()
    for _ in range(40):
        world.tick()
    auto_moved = manual.get_location().distance(loc0)
    manual.set_autopilot(False)
    speed0 = manual.get_velocity().length()
    for _ in range(30):
        manual.apply_control(carla.VehicleControl(brake=1.0))
        world.tick()
    released = [speed0, manual.get_velocity().length(), manual.get_control().brake]
    destroyed = client.apply_batch_sync([C.DestroyActor(i) for i in ids], True)
    return {"ids": ids, "errors": errors, "moved": moved,
            "batch_errors": [r.error for r in resp], "manual_moved": vehicle_api,
            "autopilot_moved": auto_moved, "released": released,
            "destroy_errors": [r.error for r in destroyed],
            "alive": [a.id for a in world.get_actors().filter("vehicle.*")]}


def asynchronous(port: int, out: Path) -> dict:
    """Asynchronous mode: wait_for_tick and on_tick callbacks as the server runs."""
    _client, world = _connect(port)
    _sync(world, on=False)
    seen: list[int] = []
    cid = world.on_tick(lambda snap: seen.append(snap.frame))
    first = world.wait_for_tick(10.0).frame
    time.sleep(1.0)
    world.remove_on_tick(cid)
    return {"first": first, "seen": seen}


def stream_forever(port: int, out: Path) -> dict:
    """Listen to a camera while ticking until killed (the killed-client test)."""
    _client, world = _connect(port)
    _sync(world)
    lib = world.get_blueprint_library()
    sp = world.get_map().get_spawn_points()
    v = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), sp[1])
    bp = lib.find("sensor.camera.rgb")
    bp.set_attribute("image_size_x", "200")
    bp.set_attribute("image_size_y", "100")
    cam = world.spawn_actor(bp, carla.Transform(carla.Location(x=1.5, z=2.4)), attach_to=v)
    cam.listen(lambda im: None)
    (out / "ready").write_text("1")
    while True:
        world.tick()


def errors(port: int, out: Path) -> dict:
    """Methods the server does not support raise RuntimeError; the client goes on."""
    client, world = _connect(port)
    res = {}
    for name, call in (("get_environment_objects", lambda: world.get_environment_objects()),
                       ("get_physics_control", None)):
        if call is None:
            v = world.spawn_actor(world.get_blueprint_library().find("vehicle.audi.a2"),
                                  world.get_map().get_spawn_points()[2])
            call = v.get_physics_control
        try:
            call()
            res[name] = "no error"
        except RuntimeError as exc:
            res[name] = str(exc)
    res["after"] = client.get_server_version()
    return res


def ticker(port: int, out: Path) -> dict:
    """One of two clients at once: tick 50 times, record frames and actor count."""
    _client, world = _connect(port)
    lib = world.get_blueprint_library()
    sp = world.get_map().get_spawn_points()
    idx = int((out / "index").read_text())
    v = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), sp[20 + idx * 5])
    frames = []
    for _ in range(50):
        v.apply_control(carla.VehicleControl(throttle=0.5))
        frames.append(world.tick())
    return {"frames": frames, "vehicle": v.id,
            "vehicles": len(world.get_actors().filter("vehicle.*"))}


def world_api(port: int, out: Path) -> dict:
    """Settings, weather, spectator, debug helpers, traffic lights, actor filters,
    snapshots, then load_world. ``OUT/in.json`` has a pose before a stop line."""
    client, world = _connect(port)
    given = json.loads((out / "in.json").read_text())
    res: dict = {"maps": client.get_available_maps()}
    _sync(world)
    settings = world.get_settings()
    res["settings"] = [settings.synchronous_mode, settings.fixed_delta_seconds]
    weather = carla.WeatherParameters(cloudiness=40.0, precipitation=30.0, fog_density=7.0)
    world.set_weather(weather)
    world.tick()
    w = world.get_weather()
    res["weather"] = [w.cloudiness, w.precipitation, w.fog_density]
    spectator = world.get_spectator()
    spectator.set_transform(carla.Transform(carla.Location(10, 20, 30), carla.Rotation(-30, 45, 0)))
    world.debug.draw_point(carla.Location(0, 0, 1), life_time=1.0)
    world.debug.draw_line(carla.Location(0, 0, 1), carla.Location(5, 0, 1))
    world.debug.draw_string(carla.Location(0, 0, 2), "hi")
    world.tick()
    st = spectator.get_transform()
    res["spectator"] = [st.location.x, st.location.y, st.location.z, st.rotation.pitch,
                        st.rotation.yaw]
    lib = world.get_blueprint_library()
    x, y, yaw = given["pose"]
    v = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"),
                          carla.Transform(carla.Location(x, y, 0.5), carla.Rotation(yaw=yaw)))
    for _ in range(3):
        world.tick()
    light = v.get_traffic_light()
    res["vehicle_light"] = None if light is None else light.id
    res["vehicle_light_state"] = str(v.get_traffic_light_state())
    res["at_light"] = v.is_at_traffic_light()
    res["speed_limit"] = v.get_speed_limit()
    lights = world.get_actors().filter("traffic.traffic_light")
    res["lights"] = len(lights)
    tl = lights[0] if light is None else light
    res["light"] = {"id": tl.id, "state": str(tl.get_state()), "green": tl.get_green_time(),
                    "yellow": tl.get_yellow_time(), "red": tl.get_red_time(),
                    "elapsed": tl.get_elapsed_time(), "opendrive_id": tl.get_opendrive_id(),
                    "group": [g.id for g in tl.get_group_traffic_lights()]}
    tl.set_state(carla.TrafficLightState.Red)
    world.tick()
    res["forced_state"] = str(tl.get_state())
    res["walkers"] = len(world.get_actors().filter("walker.*"))
    res["vehicles"] = len(world.get_actors().filter("vehicle.*"))
    snap = world.get_snapshot()
    res["snapshot"] = [snap.frame, snap.timestamp.elapsed_seconds, len(snap),
                       snap.find(v.id) is not None]
    res["accel"] = [v.get_acceleration().z, v.get_angular_velocity().z]
    res["ego"] = v.id
    walker = world.spawn_actor(lib.find("walker.pedestrian.0001"),
                               carla.Transform(carla.Location(x + 3.0, y + 3.0, 1.0)))
    walker.apply_control(carla.WalkerControl(direction=carla.Vector3D(0, 1, 0), speed=1.5))
    for _ in range(20):
        world.tick()
    wl = walker.get_location()
    res["walker"] = [wl.x - (x + 3.0), wl.y - (y + 3.0), walker.get_velocity().y]
    world = client.load_world("rural")
    res["loaded"] = world.get_map().name
    res["after_load_settings"] = world.get_settings().synchronous_mode
    res["after_load_actors"] = [a.id for a in world.get_actors().filter("vehicle.*")]
    try:
        client.load_world("no_such_town")
        res["bad_load"] = "no error"
    except RuntimeError as exc:
        res["bad_load"] = str(exc)
    return res


SCENARIOS = {f.__name__: f for f in (drive, sensors, batch, asynchronous, stream_forever,
                                     errors, ticker, world_api)}

if __name__ == "__main__":
    scenario, port, out_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    threading.excepthook = lambda args: None
    result = SCENARIOS[scenario](port, out_dir)
    (out_dir / "result.json").write_text(json.dumps(result))
