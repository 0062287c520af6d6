"""The server world without a client: frames of attached actors, spawn and destroy
rules, sensor timing and readings."""

from __future__ import annotations

import math

import carla
import msgpack
import numpy as np
import pytest

from bus.frames import rotation_matrix
from bus.messages import Rotation, Transform, Vector3, VehicleControl
from sim.carla_server import wire
from sim.carla_server.sensors import Sensors
from sim.carla_server.wire import Description, EpisodeSettings
from sim.carla_server.world import ServerWorld, SpawnError, compose, rotation_from_matrix
from sim.maps import load_map


@pytest.fixture(scope="module")
def town():  # type: ignore[no-untyped-def]
    return load_map("town_grid")


def make_world(town) -> ServerWorld:  # type: ignore[no-untyped-def]
    w = ServerWorld(town, seed=1, settings=EpisodeSettings(True, False, 0.05))
    w.sensors = Sensors(w, lambda _sid: True, eager=False)
    return w


def test_rotation_from_matrix_inverts_carlas_rotation() -> None:
    rng = np.random.default_rng(0)
    for p, y, r in rng.uniform([-89, -180, -180], [89, 180, 180], size=(50, 3)):
        back = rotation_from_matrix(rotation_matrix(Rotation(p, y, r)))
        assert np.allclose(rotation_matrix(back), rotation_matrix(Rotation(p, y, r)),
                           atol=1e-9)
        assert back.pitch == pytest.approx(p) and back.yaw == pytest.approx(y)


def test_compose_matches_carla_transform() -> None:
    parent = Transform(Vector3(10.0, -4.0, 0.0), Rotation(0.0, 30.0, 0.0))
    child = Transform(Vector3(1.5, 0.5, 2.4), Rotation(-15.0, 10.0, 0.0))
    out = compose(parent, child)
    want = carla.Transform(carla.Location(10.0, -4.0, 0.0), carla.Rotation(yaw=30.0)) \
        .transform(carla.Location(1.5, 0.5, 2.4))
    assert (out.location.x, out.location.y, out.location.z) == pytest.approx(
        (want.x, want.y, want.z), abs=1e-5)
    assert (out.rotation.pitch, out.rotation.yaw) == pytest.approx((-15.0, 40.0))


def _spawn_car(w: ServerWorld, i: int = 0):  # type: ignore[no-untyped-def]
    t = w.map_spawn_points()[i]
    return w.spawn(Description(0, "vehicle.lincoln.mkz_2020", {}), t)


def test_spawn_rules_and_destroy_cascade(town) -> None:  # type: ignore[no-untyped-def]
    w = make_world(town)
    car = _spawn_car(w)
    with pytest.raises(SpawnError, match="collision at spawn position"):
        _spawn_car(w)
    with pytest.raises(SpawnError, match="unknown blueprint"):
        w.spawn(Description(0, "vehicle.nope", {}), Transform())
    with pytest.raises(SpawnError, match="parent actor 999"):
        w.spawn(Description(0, "sensor.other.gnss", {}), Transform(), parent=999)
    with pytest.raises(SpawnError, match="image_size"):
        w.spawn(Description(0, "sensor.camera.rgb", {"image_size_x": (2, "0")}), Transform(),
                parent=car.id)
    gnss = w.spawn(Description(0, "sensor.other.gnss", {}), Transform(), parent=car.id)
    assert w.destroy(car.id) and gnss.id not in w.actors
    assert not w.destroy(car.id) and not w.destroy(w.spectator.id)
    assert not w.destroy(next(iter(w.light_actor.values())))


def test_sensor_tick_and_imu_gnss_readings(town) -> None:  # type: ignore[no-untyped-def]
    w = make_world(town)
    car = _spawn_car(w)
    gnss = w.spawn(Description(0, "sensor.other.gnss", {"sensor_tick": (3, "0.2")}),
                   Transform(), parent=car.id)
    imu = w.spawn(Description(0, "sensor.other.imu", {}), Transform(), parent=car.id)
    seen: dict[int, list[int]] = {gnss.id: [], imu.id: []}
    last: dict[int, bytes] = {}
    for _ in range(12):
        for stream, payload in w.tick().payloads:
            if stream in seen:
                seen[stream].append(struct_frame(payload))
                last[stream] = payload
    assert seen[imu.id] == list(range(1, 13))
    assert seen[gnss.id] == [1, 5, 9]  # every 0.2 s of sim time at dt 0.05
    accel, gyro, compass = msgpack.unpackb(last[imu.id][48:])
    assert accel[2] == pytest.approx(9.81) and gyro == [0.0, 0.0, 0.0]
    yaw = w.world_transform(car).rotation.yaw
    assert compass == pytest.approx(math.radians(yaw + 90.0) % (2 * math.pi))
    lat, lon, alt = msgpack.unpackb(last[gnss.id][48:])
    tf = w.world_transform(car)
    geo = town.map.transform_to_geolocation(carla.Location(tf.location.x, tf.location.y, 0))
    assert (lat, lon, alt) == pytest.approx((geo.latitude, geo.longitude, geo.altitude))


def struct_frame(payload: bytes) -> int:
    return wire.SENSOR_HEADER.unpack_from(payload)[1]


def test_autopilot_round_trip_and_collision_event(town) -> None:  # type: ignore[no-untyped-def]
    w = make_world(town)
    car = _spawn_car(w)
    w.set_autopilot(car.id, True)
    assert car.npc is not None and car.body is None
    start = w.world_transform(car).location
    for _ in range(60):  # 3 s from standstill at the traffic model's 1.5 m/s^2
        w.tick()
    assert math.dist((start.x, start.y), (w.world_transform(car).location.x,
                                          w.world_transform(car).location.y)) > 5.0
    w.set_autopilot(car.id, False)
    assert car.body is not None and car.body.params.type_id == "vehicle.lincoln.mkz_2020"
    # a second car put right in front of it: the collision sensor reports the other
    sensor = w.spawn(Description(0, "sensor.other.collision", {}), Transform(), parent=car.id)
    tf = w.world_transform(car)
    yaw = math.radians(tf.rotation.yaw)
    other = w.spawn(Description(0, "vehicle.audi.a2", {}), Transform(
        Vector3(tf.location.x + 8 * math.cos(yaw), tf.location.y + 8 * math.sin(yaw), 0),
        tf.rotation))
    hits = []
    for _ in range(60):
        w.apply_control(car.id, VehicleControl(throttle=1.0))
        hits += [p for s, p in w.tick().payloads if s == sensor.id]
        if hits:
            break
    assert hits, "no collision event"
    me, them, impulse = msgpack.unpackb(hits[0][48:])
    assert (me[0], them[0]) == (car.id, other.id) and them[2][1] == "vehicle.audi.a2"
    assert math.hypot(*impulse[:2]) > 0


def test_render_views_equal_a_renderer_built_for_that_camera(town) -> None:  # type: ignore[no-untyped-def]
    """Renderer.render_views (cameras added later, each on its own body) draws what a
    renderer constructed with that camera draws; hidden instances are left out."""
    from sim.render import Appearance, CameraSpec, Renderer, RenderObject
    from sim.scene import map_ground_raster

    ground = map_ground_raster(town.map, resolution=0.2)
    mount = Transform(Vector3(1.5, 0.0, 2.4), Rotation(-5.0, 0.0, 0.0))
    spec = CameraSpec("cam", 160, 120, 90.0, mount)
    body = Transform(Vector3(131.0, 1.75, 0.0), Rotation(0.0, 0.0, 0.0))  # on a lane
    car = RenderObject(7, 14, Transform(Vector3(body.location.x + 12, body.location.y, 0.75),
                                        Rotation()), (2.4, 1.0, 0.75))
    direct = Renderer(ground, [spec], Appearance.sample(3)).render(body, [car], tick=5)["cam"]
    late = Renderer(ground, [], Appearance.sample(3))
    late.add_camera(spec)
    views = late.render_views({"cam": (body, [])}, [car], tick=5)["cam"]
    assert np.array_equal(views.rgb, direct.rgb) and np.array_equal(views.depth, direct.depth)
    assert (views.instances == 7).any()
    hidden = late.render_views({"cam": (body, [7])}, [car], tick=5)["cam"]
    assert not (hidden.instances == 7).any()
    late.remove_camera("cam")
    with pytest.raises(KeyError):
        late.render_views({"cam": (body, [])}, [car])


def test_traffic_light_timing_follows_the_cycle(town) -> None:  # type: ignore[no-untyped-def]
    from sim.traffic_lights import TrafficLights

    lights = TrafficLights.from_map(town.map, seed=2)
    light = lights.lights[0]
    prev_state, prev_elapsed = lights.state_of(light.id), lights.timing(light.id)[3]
    changes = 0
    for _ in range(1200):  # 60 s at 20 Hz
        lights.tick(0.05)
        green, yellow, red, elapsed = lights.timing(light.id)
        state = lights.state_of(light.id)
        limit = {"green": green, "yellow": yellow, "red": red}[state]
        assert 0.0 <= elapsed <= limit + 1e-6
        if state != prev_state:
            changes += 1
            assert elapsed < 0.05 + 1e-6  # a new state starts its clock
        else:
            assert elapsed == pytest.approx(prev_elapsed + 0.05, abs=1e-6)
        prev_state, prev_elapsed = state, elapsed
    assert changes >= 3
    assert green + yellow + red == pytest.approx(
        len(lights._junctions[light.junction_id].phases) * lights.config.phase_s)
    lights.set_state(light.id, "red")
    assert lights.timing(light.id)[3] == 0.0
