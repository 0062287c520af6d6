"""``drivestack collect --sim carla``: the same data set from a CARLA server.

Each planned episode (:func:`perception.collect.plan_episodes`, the same plans as
the embedded collection) connects through :class:`sim.carla_bridge.client.
CarlaSession` (the episode's map is loaded when the server has it; synchronous,
20 Hz; every actor destroyed at the end), spawns the ego at the planned share of
the map's spawn points with RGB, depth and semantic-segmentation cameras, hands it
and the planned NPC vehicles to the Traffic Manager (seeded), warms up, and every
``every`` ticks writes a sample. The three images of a sample are those of one
CARLA frame (matched by ``image.frame``) and are decoded from CARLA's encodings
(:mod:`sim.carla_bridge.decode`): BGRA -> BGR, depth RGB -> metres, semantic red
channel -> our training classes (:func:`perception.classes.carla_to_class`).

The on-disk format is :mod:`perception.collect`'s. Differences in the metadata:
``frame`` is CARLA's frame number; ``ego`` adds ``z`` and the CARLA actor ``id``;
an actor's ``visible_pixels`` is an estimate (CARLA's instance segmentation is not
used): the pixels inside its projected box whose label is its class and whose
depth lies within its box; pedestrians are not spawned (they need CARLA's walker
AI); the weather is the server's (``WeatherParameters``: sun altitude, fog,
precipitation).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import carla
import cv2
import numpy as np

from bus.frames import (
    ego_to_camera,
    project,
    world_to_ego,
)
from bus.messages import CameraIntrinsics, Header, Rotation, Transform, Vector3
from perception.classes import CLASS_NAMES, carla_to_class
from perception.collect import (
    DONE_FILE,
    JPEG_QUALITY,
    LIGHT_LOOKAHEAD_M,
    WARMUP_TICKS,
    CollectConfig,
    CollectError,
    EpisodePlan,
    _write_image,
    actor_record,
    camera_record,
    encode_depth,
)
from sim.carla_bridge import actors as spawn
from sim.carla_bridge import truth
from sim.carla_bridge.client import BridgeConfig, BridgeError, CarlaSession, town_name
from sim.carla_bridge.decode import bgr_from_bgra, depth_from_bgra, labels_from_bgra
from sim.carla_bridge.sync import SensorQueue, SensorTimeout
from sim.labels import Label
from sim.scenario import CameraConfig, EgoConfig, Pose, Scenario, TrafficConfig

KINDS = ("rgb", "depth", "semantic")
VEHICLE_LABELS = {int(Label.CAR), int(Label.TRUCK), int(Label.BUS), int(Label.MOTORCYCLE),
                  int(Label.BICYCLE)}


@dataclass(frozen=True)
class CarlaTarget:
    """The CARLA server to collect from."""

    host: str = "127.0.0.1"
    port: int = 2000
    timeout_s: float = 10.0
    tm_port: int = 8000

    def config(self, town: str) -> BridgeConfig:
        return BridgeConfig(self.host, self.port, self.timeout_s, 0.05, town)


def light_ahead(carla_map: carla.Map, lights: truth.LightStates,
                location: carla.Location) -> dict[str, Any]:
    """The light governing the ego's lane ahead, before the next junction and within
    LIGHT_LOOKAHEAD_M (as the embedded collection's autopilot reports it)."""
    wp = carla_map.get_waypoint(location)
    along = 0.0
    while wp is not None and along <= LIGHT_LOOKAHEAD_M and not wp.is_junction:
        light = lights.lights.light_for_lane(wp.road_id, wp.section_id, wp.lane_id)
        if light is not None:
            stop = next(s for s in light.stop_waypoints
                        if (s.road_id, s.section_id, s.lane_id) ==
                        (wp.road_id, wp.section_id, wp.lane_id))
            d = along + stop.transform.location.distance(wp.transform.location)
            return {"state": lights.lights.state_of(light.id), "id": light.id,
                    "distance": round(float(d), 3)}
        nxt = wp.next(1.0)
        wp = nxt[0] if nxt else None
        along += 1.0
    return {"state": "none", "id": None, "distance": None}


def visible_pixels(box_world: np.ndarray, label: int, ego_tf: Transform,
                   camera: CameraConfig, labels: np.ndarray, depth: np.ndarray) -> int:
    """Pixels of an actor, estimated: inside the bounding rectangle of its projected
    box corners (``box_world`` 8 x 3, world m), labelled as its class (any vehicle
    class for a vehicle) and with a depth within the box's depth range (+-0.5 m)."""
    mount = Transform(Vector3(camera.x, camera.y, camera.z),
                      Rotation(camera.pitch, camera.yaw, 0.0))
    cam = ego_to_camera(world_to_ego(box_world, ego_tf), mount)
    if not (cam[:, 2] > 0.1).any():
        return 0
    cam = cam[cam[:, 2] > 0.1]
    K = CameraIntrinsics.from_fov(camera.image_size_x, camera.image_size_y, camera.fov)
    px, _ = project(cam, K)
    h, w = labels.shape
    u0, v0 = max(0, math.floor(px[:, 0].min())), max(0, math.floor(px[:, 1].min()))
    u1, v1 = min(w, math.ceil(px[:, 0].max()) + 1), min(h, math.ceil(px[:, 1].max()) + 1)
    if u0 >= u1 or v0 >= v1:
        return 0
    lab = labels[v0:v1, u0:u1]
    dep = depth[v0:v1, u0:u1]
    classes = VEHICLE_LABELS if label in VEHICLE_LABELS else {label}
    near, far = float(cam[:, 2].min()) - 0.5, float(cam[:, 2].max()) + 0.5
    return int((np.isin(lab, list(classes)) & (dep >= near) & (dep <= far)).sum())


def _box_corners(a: Any) -> np.ndarray:
    """A CARLA actor's bounding box corners in the world (8 x 3, m)."""
    return np.array([[v.x, v.y, v.z] for v in a.bounding_box.get_world_vertices(
        a.get_transform())], float)


def sample_meta(world: Any, ego: Any, lights: truth.LightStates, carla_map: carla.Map,
                camera: CameraConfig, plan: EpisodePlan, frame: int,
                labels: np.ndarray, depth: np.ndarray) -> dict[str, Any]:
    """Ground truth of one sample, in :func:`perception.collect.sample_meta`'s form."""
    tf = ego.get_transform()
    v = ego.get_velocity()
    ego_tf = Transform(Vector3(tf.location.x, tf.location.y, tf.location.z),
                       Rotation(0.0, tf.rotation.yaw, 0.0))
    carla_actors = {a.id: a for a in world.get_actors()}
    gt = truth.ground_truth(carla_actors.values(), ego, Header(frame, 0.0), lights, carla_map)
    actors = [actor_record(a, ego_tf, visible_pixels(_box_corners(carla_actors[a.id]),
                                                      a.label, ego_tf, camera, labels, depth))
              for a in gt.actors]
    return {
        "episode": plan.name, "map": plan.map, "seed": plan.seed, "frame": int(frame),
        "time": round(float(world.get_snapshot().timestamp.elapsed_seconds), 4),
        "ego": {"x": tf.location.x, "y": tf.location.y, "z": tf.location.z,
                "yaw": tf.rotation.yaw, "speed": math.hypot(v.x, v.y, v.z), "id": ego.id},
        "camera": camera_record(camera),
        "actors": actors,
        "traffic_light": light_ahead(carla_map, lights, tf.location),
    }


def _weather_json(w: Any) -> dict[str, Any]:
    return {"sun_altitude": round(float(w.sun_altitude_angle), 2),
            "night": bool(w.sun_altitude_angle < 0), "fog_density": round(
                float(w.fog_density), 2), "rain": round(float(w.precipitation), 2)}


def run_carla_episode(cfg: CollectConfig, plan: EpisodePlan, on_sample: Callable[[], None],
                      target: CarlaTarget) -> list[dict[str, Any]]:
    """Collect one episode from the server into ``cfg.out/plan.name``."""
    w, h = cfg.image_size
    camera = CameraConfig(name="front", image_size_x=w, image_size_y=h, fov=cfg.fov)
    ep_dir = cfg.out / plan.name
    with CarlaSession(target.config(town_name(plan.map))) as session:
        world = session.world
        carla_map = world.get_map()
        points = carla_map.get_spawn_points()
        if not points:
            raise session.fail(f"map {plan.map} has no spawn points")
        spawn_index = min(int(plan.spawn_draw * len(points)), len(points) - 1)
        start = points[spawn_index].location
        n_near = sum(1 for t in points if math.hypot(t.location.x - start.x, t.location.y
                                                     - start.y) <= cfg.spawn_radius_m)
        vehicles, _ = plan.traffic(n_near)
        s = points[spawn_index]
        scenario = Scenario(
            map=plan.map, seed=plan.seed, duration_s=1e6, cameras=[camera],
            ego=EgoConfig(spawn=Pose(s.location.x, s.location.y, s.location.z,
                                     s.rotation.yaw)),
            traffic=TrafficConfig(vehicles, 0, spawn_radius_m=cfg.spawn_radius_m))
        queue = SensorQueue(tuple(spawn.sensor_name(camera.name, k) for k in KINDS))
        ego = spawn.spawn_ego(session, scenario, spawn.DEFAULT_EGO_BLUEPRINT)
        spawn.attach_cameras(session, ego, [camera], queue, KINDS)
        npcs = spawn.spawn_traffic(session, scenario, start, target.tm_port)
        ego.set_autopilot(True, target.tm_port)
        if session.traffic_manager is None:
            session.traffic_manager = session.client.get_trafficmanager(target.tm_port)
            session.traffic_manager.set_synchronous_mode(True)
            session.traffic_manager.set_random_device_seed(plan.seed)
        session.traffic_manager.vehicle_percentage_speed_difference(
            ego, 100.0 * (1.0 - plan.speed_factor))
        lights = truth.LightStates(carla_map)
        light_actors = [a for a in world.get_actors()
                        if a.type_id.startswith("traffic.traffic_light")]
        weather_info = _weather_json(world.get_weather())

        def step() -> tuple[int, dict[str, np.ndarray]]:
            frame = session.tick()
            try:
                return frame, queue.collect(frame, target.timeout_s)
            except SensorTimeout as exc:
                raise session.fail(str(exc)) from None

        if ep_dir.exists():
            shutil.rmtree(ep_dir)  # an unfinished episode: start it again
        ep_dir.mkdir(parents=True)
        try:  # the first frame every camera delivers (their subscriptions land late)
            queue.first_frame(session.tick, target.timeout_s)
        except SensorTimeout as exc:
            raise session.fail(str(exc)) from None
        for _ in range(WARMUP_TICKS - 1):
            step()
        rows = []
        for _ in range(cfg.frames_per_episode):
            for _ in range(cfg.every):
                frame, images = step()
            lights.update(light_actors)
            bgr = bgr_from_bgra(images[spawn.sensor_name(camera.name, "rgb")])
            labels = labels_from_bgra(images[spawn.sensor_name(camera.name, "semantic")])
            depth = depth_from_bgra(images[spawn.sensor_name(camera.name, "depth")])
            stem = f"{frame:06d}"
            _write_image(ep_dir / f"{stem}_rgb.jpg", bgr,
                         (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
            _write_image(ep_dir / f"{stem}_labels.png", carla_to_class(labels),
                         (cv2.IMWRITE_PNG_COMPRESSION, 1))
            _write_image(ep_dir / f"{stem}_depth.png", encode_depth(depth),
                         (cv2.IMWRITE_PNG_COMPRESSION, 1))
            meta = sample_meta(world, ego, lights, carla_map, camera, plan, frame, labels,
                               depth)
            (ep_dir / f"{stem}_meta.json").write_text(json.dumps(meta))
            rows.append({"sample": f"{plan.name}/{stem}", "episode": plan.name,
                         "map": plan.map, "seed": plan.seed, "frame": frame,
                         "weather": weather_info,
                         "traffic_light": meta["traffic_light"]["state"]})
            on_sample()
        (ep_dir / "episode.json").write_text(json.dumps({
            **dataclasses.asdict(plan), "spawn_index": spawn_index, "vehicles": len(npcs),
            "pedestrians": 0, "weather": weather_info, "camera": dataclasses.asdict(camera),
            "every": cfg.every, "classes": list(CLASS_NAMES), "samples": rows,
            "server": f"{target.host}:{target.port}"}, indent=1))
    (ep_dir / DONE_FILE).write_text("ok\n")
    return rows


def episode_runner(target: CarlaTarget) -> Callable[..., list[dict[str, Any]]]:
    """:func:`perception.collect.collect`'s ``run_episode`` for a CARLA server."""

    def run(cfg: CollectConfig, plan: EpisodePlan, on_sample: Callable[[], None],
            _cache: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return run_carla_episode(cfg, plan, on_sample, target)
        except BridgeError as exc:
            raise CollectError(str(exc)) from None

    return run


def check_target(cfg: CollectConfig, target: CarlaTarget) -> None:
    """Before anything is written: one job, and the server answers and has every
    map of the collection (CollectError naming what is wrong)."""
    from sim.carla_bridge.client import probe

    if cfg.jobs != 1:
        raise CollectError("--sim carla collects from one server: --jobs must be 1")
    if cfg.drop_crosswalks:
        raise CollectError("--drop-crosswalks paints the embedded simulator's ground; "
                           "a CARLA server draws its own: leave it out with --sim carla")
    try:
        for name in dict.fromkeys(cfg.maps):
            probe(target.config(town_name(name)))
    except (BridgeError, ValueError) as exc:
        raise CollectError(str(exc)) from None

