"""What the bridge spawns on the CARLA server: the ego at the route start, its
cameras, collision and lane-invasion sensors, and seeded NPC traffic.

Every actor goes through :meth:`sim.carla_bridge.client.CarlaSession.spawn`, so the
session destroys it whatever ends the run. Camera images are converted on the
delivering thread (CARLA may reuse the buffer) and queued by ``image.frame``
(:mod:`sim.carla_bridge.sync`).

Frames: CARLA's world frame (m, deg). A camera's mount is given in the ego frame
(x forward, y right, z up), which is also CARLA's attachment frame, so it is passed
through unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import carla
import numpy as np

from sim.carla_bridge.client import CarlaSession
from sim.carla_bridge.sync import SensorQueue
from sim.scenario import CameraConfig, Scenario, WeatherConfig
from sim.spawn import spawn_points

log = logging.getLogger(__name__)

DEFAULT_EGO_BLUEPRINT = "vehicle.lincoln.mkz_2020"
#: the ego is spawned this far above the road (CARLA drops it onto the ground;
#: spawning at z = 0 collides with the road mesh on a real server)
SPAWN_LIFT_M = 0.3
CAMERA_BLUEPRINTS = {"rgb": "sensor.camera.rgb", "depth": "sensor.camera.depth",
                     "semantic": "sensor.camera.semantic_segmentation"}


def bgra_array(image: Any) -> np.ndarray:
    """A CARLA image's raw BGRA bytes as an owned (H, W, 4) uint8 array."""
    return np.frombuffer(image.raw_data, dtype=np.uint8).reshape(
        image.height, image.width, 4).copy()


@dataclass(frozen=True)
class CollisionReading:
    """A collision sensor event: the other actor's id and CARLA type id."""

    other_id: int
    other_type: str


@dataclass(frozen=True)
class LaneInvasionReading:
    """A lane-invasion event: the marking types crossed (CARLA's names)."""

    markings: tuple[str, ...]


def camera_transform(c: CameraConfig) -> carla.Transform:
    """The camera's attachment transform (ego frame = CARLA's attachment frame)."""
    return carla.Transform(carla.Location(x=c.x, y=c.y, z=c.z),
                           carla.Rotation(pitch=c.pitch, yaw=c.yaw))


def sensor_name(camera: str, kind: str) -> str:
    """The queue name of one camera's stream: ``front`` for RGB, ``front/depth``."""
    return camera if kind == "rgb" else f"{camera}/{kind}"


def ego_start(scenario: Scenario, carla_map: carla.Map) -> carla.Transform:
    """Where the ego starts, as the embedded world places it: the scenario's spawn
    pose, else the route's first point with its lane's heading, else the
    ``spawn_index``-th of the map's spawn points (:mod:`sim.spawn`'s order)."""
    cfg = scenario.ego
    pose = cfg.spawn if cfg.spawn is not None else (
        scenario.route.waypoints[0] if scenario.route.waypoints else None)
    if pose is not None:
        wp = carla_map.get_waypoint(carla.Location(pose.x, pose.y, pose.z))
        yaw = pose.yaw if cfg.spawn is not None else wp.transform.rotation.yaw
        z = wp.transform.location.z if wp is not None else pose.z
        return carla.Transform(carla.Location(pose.x, pose.y, z + SPAWN_LIFT_M),
                               carla.Rotation(yaw=yaw))
    points = spawn_points(carla_map)
    if cfg.spawn_index >= len(points):
        raise ValueError(f"ego.spawn_index {cfg.spawn_index}: the map has {len(points)} "
                         "spawn points")
    t = points[cfg.spawn_index]
    return carla.Transform(carla.Location(t.location.x, t.location.y,
                                          t.location.z + SPAWN_LIFT_M), t.rotation)


#: the sun's altitude (deg) for each time of day of a scenario's weather
SUN_ALTITUDE = {"day": 45.0, "dusk": 5.0, "night": -30.0}


def weather_parameters(w: WeatherConfig) -> carla.WeatherParameters | None:
    """CARLA's weather for a scenario's (fog and rain 0..1 as CARLA's percentages,
    the time of day as the sun's altitude); None when the scenario samples its
    weather from the seed (the server's weather is kept then)."""
    if w.sample:
        return None
    return carla.WeatherParameters(
        cloudiness=20.0 + 60.0 * w.rain, precipitation=100.0 * w.rain,
        precipitation_deposits=60.0 * w.rain, wetness=100.0 * w.rain,
        sun_altitude_angle=SUN_ALTITUDE[w.time_of_day], fog_density=100.0 * w.fog,
        fog_distance=0.0 if w.fog > 0 else 0.75)


def _blueprint(library: Any, type_id: str, session: CarlaSession) -> Any:
    try:
        return library.find(type_id)
    except (RuntimeError, IndexError) as exc:
        raise session.fail(f"has no blueprint {type_id}", exc) from None


def spawn_ego(session: CarlaSession, scenario: Scenario, blueprint_id: str) -> Any:
    """The ego vehicle (role_name ``hero``) at :func:`ego_start`."""
    library = session.world.get_blueprint_library()
    bp = _blueprint(library, blueprint_id, session)
    if not bp.id.startswith("vehicle."):
        raise ValueError(f"ego blueprint {blueprint_id}: expected a vehicle.* blueprint")
    if bp.has_attribute("role_name"):
        bp.set_attribute("role_name", "hero")
    return session.spawn(bp, ego_start(scenario, session.world.get_map()))


def attach_cameras(session: CarlaSession, ego: Any, cameras: list[CameraConfig],
                   queue: SensorQueue, kinds: tuple[str, ...] = ("rgb",)) -> list[Any]:
    """One CARLA camera per configured camera and kind, listening into ``queue``
    under :func:`sensor_name` (BGRA arrays)."""
    library = session.world.get_blueprint_library()
    out = []
    for c in cameras:
        for kind in kinds:
            bp = _blueprint(library, CAMERA_BLUEPRINTS[kind], session)
            bp.set_attribute("image_size_x", str(c.image_size_x))
            bp.set_attribute("image_size_y", str(c.image_size_y))
            bp.set_attribute("fov", f"{c.fov:g}")
            if bp.has_attribute("sensor_tick"):
                bp.set_attribute("sensor_tick", "0.0")  # every tick
            cam = session.spawn(bp, camera_transform(c), attach_to=ego)
            cam.listen(queue.callback(sensor_name(c.name, kind), bgra_array))
            out.append(cam)
    return out


def attach_event_sensors(session: CarlaSession, ego: Any, queue: SensorQueue) -> list[Any]:
    """Collision and lane-invasion sensors on the ego, their events into ``queue``
    (names ``collision`` and ``lane_invasion``)."""
    library = session.world.get_blueprint_library()
    collision = session.spawn(_blueprint(library, "sensor.other.collision", session),
                              carla.Transform(), attach_to=ego)
    collision.listen(queue.callback("collision", lambda e: CollisionReading(
        int(e.other_actor.id) if e.other_actor is not None else -1,
        str(e.other_actor.type_id) if e.other_actor is not None else ""), event=True))
    invasion = session.spawn(_blueprint(library, "sensor.other.lane_invasion", session),
                             carla.Transform(), attach_to=ego)
    invasion.listen(queue.callback("lane_invasion", lambda e: LaneInvasionReading(
        tuple(sorted(str(m.type) for m in e.crossed_lane_markings))), event=True))
    return [collision, invasion]


def spawn_traffic(session: CarlaSession, scenario: Scenario, ego_location: carla.Location,
                  tm_port: int) -> list[Any]:
    """``scenario.traffic.vehicles`` NPC vehicles on seeded spawn points at least
    15 m from the ego and each other (within ``spawn_radius_m`` when set), handed
    to the Traffic Manager on ``tm_port`` in synchronous mode with the scenario's
    seed (on `drivestack serve`, to its traffic model). Pedestrians are not
    spawned: they need CARLA's walker AI controller."""
    n = scenario.traffic.vehicles
    if n <= 0:
        return []
    if scenario.traffic.pedestrians:
        log.warning("traffic.pedestrians %d: the CARLA bridge spawns no pedestrians",
                    scenario.traffic.pedestrians)
    tm = session.client.get_trafficmanager(tm_port)
    tm.set_synchronous_mode(True)
    tm.set_random_device_seed(scenario.seed)
    session.traffic_manager = tm
    library = session.world.get_blueprint_library()
    cars = [bp for bp in library.filter("vehicle.*")
            if not bp.has_attribute("number_of_wheels")
            or int(bp.get_attribute("number_of_wheels")) == 4]
    cars.sort(key=lambda bp: bp.id)
    if not cars:
        raise session.fail("has no 4-wheeled vehicle blueprints for traffic")
    rng = np.random.default_rng([scenario.seed, 1])
    points = session.world.get_map().get_spawn_points()
    taken = [(ego_location.x, ego_location.y)]
    radius = scenario.traffic.spawn_radius_m
    out = []
    for k in rng.permutation(len(points)):
        if len(out) >= n:
            break
        t = points[int(k)]
        loc = t.location
        if radius > 0 and math.hypot(loc.x - ego_location.x, loc.y - ego_location.y) > radius:
            continue
        if any(math.hypot(loc.x - x, loc.y - y) < 15.0 for x, y in taken):
            continue
        bp = cars[int(rng.integers(len(cars)))]
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "autopilot")
        actor = session.world.try_spawn_actor(bp, t)
        if actor is None:
            continue
        session.adopt(actor)
        taken.append((loc.x, loc.y))
        actor.set_autopilot(True, tm_port)
        out.append(actor)
    if len(out) < n:
        log.warning("spawned %d of %d NPC vehicles (free spawn points ran out)", len(out), n)
    return out
