"""``drivestack collect``: perception training data from the embedded simulator.

Episodes
    ``--episodes N`` episodes in all, map ``maps[i % len(maps)]`` for episode i.
    Each episode's seed is drawn from ``--seed`` and its index
    (``numpy.random.default_rng([seed, i])``), so the same command gives the same
    data set. From the episode seed: the ego's spawn point, the traffic density
    (NPC vehicles and pedestrians per spawn point within ``spawn_radius_m`` of the
    ego, and spawned only there, so that a small town and a 7 km highway are both
    busy in view; capped by ``max_vehicles``/``max_pedestrians``),
    the ego's speed factor, the look
    (``WeatherConfig(sample=True)``: time of day, fog, rain, textures, sun), and
    which of the map's crosswalks are painted (``drop_crosswalks``).

Autopilot
    The ego is driven like an NPC: a private :class:`sim.traffic.Traffic` holds one
    lane follower (seeded turns at junctions, IDM car following that sees the
    world's NPCs and crossing walkers, stopping for red lights and stop signs via
    the world's own light query). Each tick the world steps (NPCs, walkers,
    lights), then the driver steps and its pose (x, y, yaw, speed) is copied onto
    ``world.ego``. It is an oracle driver: it never leaves its lane centre, which is
    what a data-collection autopilot needs (the planner and controller are not in
    the loop). Any backend that gives a renderer plus a world with these views can
    be collected the same way.

On-disk format (``OUT/``)
    ``index.jsonl``: one JSON object per sample: ``sample`` (path prefix relative to
    OUT), ``episode``, ``map``, ``seed``, ``frame``, ``weather``.
    ``<episode>/episode.json``: the episode's map, seed, traffic, weather, camera.
    ``<episode>/done``: written last; an episode without it is redone on resume.
    Per sample ``<episode>/<frame:06d>``:
      ``_rgb.jpg``    BGR image, JPEG quality 95;
      ``_labels.png`` uint8 training class ids (:mod:`perception.classes`);
      ``_depth.png``  uint16 depth along the optical axis in cm;
                      65535 = at or beyond 655.35 m (sky, far plane);
      ``_meta.json``  ego pose (world), camera intrinsics and mount, actors
                      (vehicles, pedestrians: ego-frame position, yaw, size,
                      velocity, visible pixels), the ego lane's traffic light
                      (state, id, distance to its stop line, ``lamp_pixels``:
                      visible pixels of its lit lamp; see :func:`light_label`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perception.classes import CLASS_NAMES, TrainClass, carla_to_class

DEPTH_SCALE = 100.0  # depth PNG units per metre (cm)
DEPTH_FAR = 65535  # depth PNG value for >= 655.35 m (sky)
JPEG_QUALITY = 95
INDEX_FILE = "index.jsonl"
DONE_FILE = "done"
WARMUP_TICKS = 60  # 3 s: traffic gets moving before the first sample
LIGHT_LOOKAHEAD_M = 60.0
#: fewest visible pixels (at 640 x 360; scaled with the image area) of the
#: governing light's lit lamp for the sample's light label to be its state: a lamp
#: out of view (stopped at the line, the head is above the image), hidden or too
#: small to read (about 40 m away) is labelled "none": what a camera can show
LIGHT_MIN_LAMP_PIXELS = 4
#: most NPCs (vehicles or pedestrians) per spawn point a collection may ask for
MAX_DENSITY = 5.0


class CollectError(ValueError):
    """A user error in the collect settings (one line)."""


@dataclass(frozen=True)
class CollectConfig:
    out: Path
    maps: tuple[str, ...] = ("town_grid", "rural", "highway")
    episodes: int = 6
    frames_per_episode: int = 50
    seed: int = 0
    every: int = 5  # ticks between samples
    image_size: tuple[int, int] = (640, 360)  # (width, height)
    fov: float = 90.0
    max_vehicles: int = 100
    max_pedestrians: int = 120
    #: NPC vehicles / pedestrians per spawn point of the map, drawn per episode
    #: uniformly in [low, high] (low traffic: empty junctions and stop lines, the
    #: road a network must not see cars on)
    vehicle_density: tuple[float, float] = (0.4, 1.0)
    pedestrian_density: tuple[float, float] = (0.5, 1.0)
    #: share of the map's crosswalks left unpainted, drawn per episode: junctions
    #: differ from town to town (Town01's arms have a stop bar and no zebra; all
    #: the built-in maps' arms have one); a network that saw junctions only with
    #: zebras took Town01's bare junction asphalt for a waiting car (leaderboard
    #: route 5, its first junction)
    drop_crosswalks: float = 0.0
    spawn_radius_m: float = 120.0
    resume: bool = False
    jobs: int = 1  # episodes collected in parallel (one process each)
    #: where maps that are not built in are found, as <name>.xodr (evaluation data on
    #: CARLA's towns: never train on those)
    map_dir: Path | None = None

    def validate(self, local_maps: bool = True) -> None:
        """Check the settings; ``local_maps``: every map must be found here (not for
        a CARLA server, which has its own)."""
        from sim.maps import MapError, resolve_town

        for name in self.maps if local_maps else ():
            try:
                resolve_town(name, self.map_dir)
            except MapError as exc:
                raise CollectError(str(exc)) from None
        if not self.maps:
            raise CollectError("no maps given")
        if (self.episodes < 1 or self.frames_per_episode < 1 or self.every < 1
                or self.jobs < 1):
            raise CollectError("--episodes, --frames-per-episode, --every and --jobs "
                               "must be >= 1")
        for name, (lo, hi) in (("--vehicle-density", self.vehicle_density),
                               ("--pedestrian-density", self.pedestrian_density)):
            if not 0.0 <= lo <= hi <= MAX_DENSITY:
                raise CollectError(f"{name} LOW HIGH must satisfy 0 <= LOW <= HIGH <= "
                                   f"{MAX_DENSITY:g} (per spawn point), not {lo:g} {hi:g}")
        if not 0.0 <= self.drop_crosswalks <= 1.0:
            raise CollectError(f"--drop-crosswalks must be in [0, 1], not "
                               f"{self.drop_crosswalks:g}")
        w, h = self.image_size
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise CollectError(f"image size must be 16..4096 px, not {w}x{h}")
        if self.out.exists() and not self.out.is_dir():
            raise CollectError(f"--out {self.out} exists and is not a directory")
        if (self.out.is_dir() and any(self.out.iterdir()) and not self.resume):
            raise CollectError(f"--out {self.out} is not empty (use --resume to continue it)")


@dataclass(frozen=True)
class EpisodePlan:
    index: int
    name: str
    map: str
    seed: int
    vehicle_density: float  # NPC vehicles per spawn point
    pedestrian_density: float  # pedestrians per spawn point
    max_vehicles: int
    max_pedestrians: int
    speed_factor: float
    spawn_draw: float  # in [0, 1): which spawn point (fraction of the map's list)

    def traffic(self, n_spawn: int) -> tuple[int, int]:
        """(NPC vehicles, pedestrians) for ``n_spawn`` spawn points near the ego."""
        return (min(self.max_vehicles, round(self.vehicle_density * n_spawn)),
                min(self.max_pedestrians, round(self.pedestrian_density * n_spawn)))


def plan_episodes(cfg: CollectConfig) -> list[EpisodePlan]:
    """Deterministic episode plans from ``cfg.seed``."""
    plans = []
    for i in range(cfg.episodes):
        rng = np.random.default_rng([cfg.seed, i])
        name = cfg.maps[i % len(cfg.maps)]
        plans.append(EpisodePlan(
            index=i, name=f"ep{i:05d}_{name}", map=name,
            seed=int(rng.integers(2**31 - 1)),
            vehicle_density=float(rng.uniform(*cfg.vehicle_density)),
            pedestrian_density=float(rng.uniform(*cfg.pedestrian_density)),
            max_vehicles=cfg.max_vehicles, max_pedestrians=cfg.max_pedestrians,
            speed_factor=float(rng.uniform(0.6, 1.0)),
            spawn_draw=float(rng.random())))
    return plans


# ------------------------------------------------------------------ ego autopilot
class EgoAutopilot:
    """Drives ``world.ego`` as an NPC lane follower (see the module doc)."""

    def __init__(self, world: Any, spawn_index: int, seed: int, speed_factor: float) -> None:
        from sim.traffic import Traffic
        from sim.world import EGO_ID

        self.world = world
        self.traffic = Traffic(world.speed_limits)
        self.npc = self.traffic.spawn(EGO_ID, world.spawn_points[spawn_index],
                                      np.random.default_rng([seed, 0xE60]),
                                      speed_factor=speed_factor)
        self.npc.half_length = world.ego_params.length / 2
        self._copy_pose()

    def _copy_pose(self) -> None:
        n = self.npc
        self.world.ego = dataclasses.replace(self.world.ego, x=n.x, y=n.y, yaw=n.yaw,
                                             speed=n.speed, accel=n.accel)

    def step(self) -> None:
        from bus.messages import VehicleControl
        from sim.pedestrians import WALKER_HALF_SIZE
        from sim.traffic import Obstacle

        w = self.world
        w.step(VehicleControl())
        others = [Obstacle(n.id, n.x, n.y, n.yaw, n.speed, n.half_length)
                  for n in w.traffic.npcs]
        others += [Obstacle(p.id, p.x, p.y, p.yaw, 0.0, WALKER_HALF_SIZE)
                   for p in w.pedestrians.walkers if p.crossing]
        self.traffic.step(w.dt, others, w._light_ahead)
        self._copy_pose()

    def light_ahead(self) -> dict[str, Any]:
        """The traffic light governing the ego's lane ahead (before the next
        junction, within LIGHT_LOOKAHEAD_M): state, id, distance to its stop line."""
        from sim.traffic import PATH_STEP_M

        n, lights = self.npc, self.world.lights
        i0 = int(n.s // PATH_STEP_M)
        for i in range(i0, len(n.path)):
            wp = n.path[i]
            along = i * PATH_STEP_M - n.s
            if wp.is_junction or along > LIGHT_LOOKAHEAD_M:
                break
            light = lights.light_for_lane(wp.road_id, wp.section_id, wp.lane_id)
            if light is None:
                continue
            stop = next(s for s in light.stop_waypoints
                        if (s.road_id, s.section_id, s.lane_id) ==
                        (wp.road_id, wp.section_id, wp.lane_id))
            d = along + stop.transform.location.distance(wp.transform.location)
            return {"state": lights.state_of(light.id), "id": light.id,
                    "distance": round(float(d), 3)}
        return {"state": "none", "id": None, "distance": None}


# ------------------------------------------------------------------ per sample
def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 cm, DEPTH_FAR for >= 655.35 m or non-finite."""
    d = np.nan_to_num(depth_m.astype(np.float32), nan=np.inf, posinf=np.inf)
    cm = np.rint(np.minimum(d * DEPTH_SCALE, DEPTH_FAR))
    return np.clip(cm, 0, DEPTH_FAR).astype(np.uint16)


def decode_depth(png: np.ndarray, far: float = 1000.0) -> np.ndarray:
    """uint16 cm -> float32 metres, ``far`` where the PNG says DEPTH_FAR."""
    d = png.astype(np.float32) / DEPTH_SCALE
    d[png == DEPTH_FAR] = far
    return d


def _write_image(path: Path, img: np.ndarray, params: Sequence[int] = ()) -> None:
    if not cv2.imwrite(str(path), img, list(params)):
        raise OSError(f"cannot write {path}")


def sample_meta(world: Any, autopilot: EgoAutopilot, frame: Any, camera: Any,
                plan: EpisodePlan) -> dict[str, Any]:
    """Ground truth of one sample as plain JSON."""
    from bus.messages import CameraIntrinsics, Rotation, Transform, Vector3

    ego = world.ego
    ego_tf = Transform(Vector3(ego.x, ego.y, 0.0), Rotation(0.0, ego.yaw, 0.0))
    gt = world.ground_truth()
    visible = np.bincount(frame.instances.ravel().clip(0),
                          minlength=1) if frame.instances.size else np.zeros(1, int)
    actors = [actor_record(a, ego_tf, int(visible[a.id]) if a.id < len(visible) else 0)
              for a in gt.actors if a.id != gt.ego_id]
    K = CameraIntrinsics.from_fov(camera.image_size_x, camera.image_size_y, camera.fov)
    light = autopilot.light_ahead()
    lamp_pixels = (_lamp_pixels(world, light["id"], light["state"], frame, camera, ego_tf, K)
                   if light["id"] is not None else 0)
    return {
        "episode": plan.name, "map": plan.map, "seed": plan.seed,
        "frame": int(world.frame), "time": round(float(world.time), 4),
        "ego": {"x": ego.x, "y": ego.y, "yaw": ego.yaw, "speed": ego.speed},
        "camera": camera_record(camera),
        "actors": actors,
        "traffic_light": {**light, "lamp_pixels": lamp_pixels},
    }


def _lamp_pixels(world: Any, light_id: int, state: str, frame: Any, camera: Any,
                 ego_tf: Any, K: Any) -> int:
    """Visible pixels of the lit lamp of light ``light_id`` in ``frame``: its
    instance's traffic-light pixels within the lamp's projected radius of the lamp's
    projected centre (0 when no lamp is lit, or it is behind the camera, outside the
    image, hidden or under two pixels across)."""
    from bus.frames import ego_to_camera, project, world_to_ego
    from bus.messages import Rotation, Transform, Vector3
    from sim.labels import Label
    from sim.render.objects import LAMP_HEIGHTS, lamp_radius
    from sim.render.scenery import LIGHT_HEAD_HALF, lamp_position
    from sim.scene import LIGHT_ID_BASE, light_pole

    if state not in LAMP_HEIGHTS:
        return 0
    light = next(lt for lt in world.lights.lights if lt.id == light_id)
    p = lamp_position(light_pole(light), state)
    mount = Transform(Vector3(camera.x, camera.y, camera.z),
                      Rotation(camera.pitch, camera.yaw, 0.0))
    cam = ego_to_camera(world_to_ego(np.array([[p.x, p.y, p.z]]), ego_tf), mount)
    if cam[0, 2] <= 0.3:
        return 0
    u, v = project(cam, K)[0][0]
    radius = float(lamp_radius(*LIGHT_HEAD_HALF[1:])) * K.fx / cam[0, 2]
    if radius < 1.0:
        return 0  # under two pixels across: no colour to read
    h, w = frame.instances.shape
    u0, u1 = max(int(u - radius), 0), min(int(u + radius) + 1, w)
    v0, v1 = max(int(v - radius), 0), min(int(v + radius) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return 0
    box = (slice(v0, v1), slice(u0, u1))
    return int(((frame.instances[box] == LIGHT_ID_BASE + light_id)
                & (frame.labels[box] == int(Label.TRAFFIC_LIGHT))).sum())


def camera_record(camera: Any) -> dict[str, Any]:
    """A camera (``sim.scenario.CameraConfig``) as the sample JSON holds it: size,
    field of view, intrinsics (px) and its mount in the ego frame (m, deg)."""
    from bus.messages import CameraIntrinsics

    K = CameraIntrinsics.from_fov(camera.image_size_x, camera.image_size_y, camera.fov)
    return {"name": camera.name, "width": camera.image_size_x,
            "height": camera.image_size_y, "fov": camera.fov,
            "fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy,
            "mount": {"x": camera.x, "y": camera.y, "z": camera.z,
                      "pitch": camera.pitch, "yaw": camera.yaw}}


def actor_record(actor: Any, ego_tf: Any, visible_pixels: int) -> dict[str, Any]:
    """One ground-truth actor (a bus ``ActorState``) as the sample JSON holds it:
    ego-frame position (m), yaw (deg), extent (m), velocity (m/s), visible pixels.
    ``ego_tf``: the ego's world pose (its yaw the frame's)."""
    from bus.frames import vector_world_to_ego, world_to_ego, yaw_world_to_ego
    from sim.labels import Label

    t, vel, e = actor.transform.location, actor.velocity, actor.bounding_box.extent
    p = world_to_ego([t.x, t.y, t.z], ego_tf)
    v = vector_world_to_ego([vel.x, vel.y, vel.z], ego_tf)
    return {
        "id": actor.id,
        "kind": "pedestrian" if actor.label == int(Label.PEDESTRIANS) else "vehicle",
        "x": round(float(p[0]), 3), "y": round(float(p[1]), 3), "z": round(float(p[2]), 3),
        "yaw": round(float(yaw_world_to_ego(actor.transform.rotation.yaw,
                                            ego_tf.rotation.yaw)), 3),
        "extent": [round(float(e.x), 3), round(float(e.y), 3), round(float(e.z), 3)],
        "velocity": [round(float(v[0]), 3), round(float(v[1]), 3)],
        "visible_pixels": int(visible_pixels),
    }


def light_label(traffic_light: dict[str, Any], image_area: int) -> str:
    """The light state a camera image can show: the governing light's state when
    at least :data:`LIGHT_MIN_LAMP_PIXELS` of its lit lamp are visible, else
    "none". ``traffic_light``: a sample's ``_meta.json`` entry (data collected
    before ``lamp_pixels`` was recorded is labelled with the state whatever the
    view)."""
    state = str(traffic_light.get("state") or "none")
    pixels = traffic_light.get("lamp_pixels")
    if pixels is None:
        return state
    return state if pixels >= LIGHT_MIN_LAMP_PIXELS * image_area / (640 * 360) else "none"


def _weather_json(appearance: Any) -> dict[str, Any]:
    g = appearance.gain
    return {"brightness": round(float(sum(g) / 3), 4), "night": bool(sum(g) / 3 < 0.5),
            "fog_density": round(float(appearance.fog_density), 5),
            "rain": round(float(appearance.rain), 4),
            "noise_sigma": round(float(appearance.noise_sigma), 3)}


# ------------------------------------------------------------------ episodes
def run_episode(cfg: CollectConfig, plan: EpisodePlan, on_sample: Callable[[], None],
                map_cache: dict[str, Any]) -> list[dict[str, Any]]:
    """Collect one episode into ``cfg.out/plan.name``; returns its index rows."""
    from sim.maps import crosswalk_polygons, load_map, resolve_town
    from sim.scenario import CameraConfig, EgoConfig, Scenario, TrafficConfig, WeatherConfig
    from sim.scene import SceneRenderer, appearance_for
    from sim.world import MapSource, World, spawn_waypoints

    if plan.map not in map_cache:
        loaded = load_map(resolve_town(plan.map, cfg.map_dir))
        map_cache[plan.map] = (loaded, np.array([
            [wp.transform.location.x, wp.transform.location.y]
            for wp in spawn_waypoints(loaded.map)]), len(crosswalk_polygons(loaded.map)))
    loaded, spawn_xy, n_crosswalks = map_cache[plan.map]
    spawn_index = min(int(plan.spawn_draw * len(spawn_xy)), len(spawn_xy) - 1)
    n_near = int((np.hypot(*(spawn_xy - spawn_xy[spawn_index]).T) <= cfg.spawn_radius_m
                  ).sum())
    w, h = cfg.image_size
    camera = CameraConfig(name="front", image_size_x=w, image_size_y=h, fov=cfg.fov)
    weather = WeatherConfig(sample=True)
    vehicles, pedestrians = plan.traffic(n_near)
    scenario = Scenario(map=plan.map, seed=plan.seed, duration_s=1e6,
                        ego=EgoConfig(spawn_index=spawn_index),
                        traffic=TrafficConfig(vehicles, pedestrians,
                                              spawn_radius_m=cfg.spawn_radius_m),
                        weather=weather, cameras=[camera])
    world = World(scenario, MapSource(loaded.name, loaded.xodr, loaded.map))
    # its own stream: the plan's draws (and so older data sets) stay as they were
    keep = np.random.default_rng([plan.seed, 1]).random(n_crosswalks) >= cfg.drop_crosswalks
    crosswalks = np.flatnonzero(keep).tolist()
    scene = SceneRenderer(world, [camera], weather, plan.seed, crosswalks=crosswalks)
    autopilot = EgoAutopilot(world, spawn_index, plan.seed, plan.speed_factor)
    weather_info = _weather_json(appearance_for(weather, plan.seed))

    ep_dir = cfg.out / plan.name
    if ep_dir.exists():
        shutil.rmtree(ep_dir)  # an unfinished episode: start it again
    ep_dir.mkdir(parents=True)
    rows = []
    for _ in range(WARMUP_TICKS):
        autopilot.step()
    from bus.messages import Rotation, Transform, Vector3

    for _ in range(cfg.frames_per_episode):
        for _ in range(cfg.every):
            autopilot.step()
        ego = world.ego
        ego_tf = Transform(Vector3(ego.x, ego.y, 0.0), Rotation(0.0, ego.yaw, 0.0))
        frame = scene.renderer.render(ego_tf, scene.objects(world), tick=world.frame)[
            camera.name]
        stem = f"{world.frame:06d}"
        _write_image(ep_dir / f"{stem}_rgb.jpg", frame.rgb,
                     (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
        _write_image(ep_dir / f"{stem}_labels.png", carla_to_class(frame.labels),
                     (cv2.IMWRITE_PNG_COMPRESSION, 1))
        _write_image(ep_dir / f"{stem}_depth.png", encode_depth(frame.depth),
                     (cv2.IMWRITE_PNG_COMPRESSION, 1))
        meta = sample_meta(world, autopilot, frame, camera, plan)
        (ep_dir / f"{stem}_meta.json").write_text(json.dumps(meta))
        rows.append({"sample": f"{plan.name}/{stem}", "episode": plan.name, "map": plan.map,
                     "seed": plan.seed, "frame": int(world.frame), "weather": weather_info,
                     "traffic_light": light_label(meta["traffic_light"], w * h)})
        on_sample()
    (ep_dir / "episode.json").write_text(json.dumps({
        **dataclasses.asdict(plan), "spawn_index": spawn_index,
        # what was spawned (the density asks for more than fits near some spawn points)
        "vehicles": len(world.traffic.npcs), "pedestrians": len(world.pedestrians.walkers),
        "crosswalks": {"painted": len(crosswalks), "of": n_crosswalks},
        "weather": weather_info,
        "camera": dataclasses.asdict(camera), "every": cfg.every,
        "classes": list(CLASS_NAMES), "samples": rows}, indent=1))
    (ep_dir / DONE_FILE).write_text("ok\n")
    return rows


def _done_rows(ep_dir: Path) -> list[dict[str, Any]] | None:
    if not (ep_dir / DONE_FILE).is_file():
        return None
    try:
        return list(json.loads((ep_dir / "episode.json").read_text())["samples"])
    except (OSError, ValueError, KeyError):
        return None  # done but unreadable: redo it


@dataclass
class CollectResult:
    samples: int
    episodes_run: int
    episodes_skipped: int
    bytes: int
    seconds: float

    @property
    def megabytes(self) -> float:
        return self.bytes / 1e6


def collect(cfg: CollectConfig, progress: bool = True,
            log: Callable[[str], None] = print,
            episode: Callable[..., list[dict[str, Any]]] | None = None) -> CollectResult:
    """Run the collection; writes ``cfg.out`` and returns what it did. ``episode``
    collects one episode in place of :func:`run_episode` (same arguments), e.g.
    from a CARLA server (:func:`perception.collect_carla.episode_runner`); such a
    collection runs one episode at a time and finds its maps on its server."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cfg.validate(local_maps=episode is None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    plans = plan_episodes(cfg)
    t0 = time.perf_counter()
    rows_of: dict[int, list[dict[str, Any]]] = {}
    todo: list[EpisodePlan] = []
    for plan in plans:
        rows = _done_rows(cfg.out / plan.name) if cfg.resume else None
        if rows is None:
            todo.append(plan)
        else:
            rows_of[plan.index] = rows
    skipped = len(rows_of)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("collect", total=len(plans) * cfg.frames_per_episode)
        bar.advance(task, sum(len(r) for r in rows_of.values()))
        if cfg.jobs == 1 or len(todo) <= 1 or episode is not None:
            map_cache: dict[str, Any] = {}
            for plan in todo:
                bar.update(task, description=f"{plan.name}")
                rows_of[plan.index] = (episode or run_episode)(
                    cfg, plan, lambda: bar.advance(task), map_cache)
        else:
            _run_parallel(cfg, todo, rows_of, lambda n: bar.advance(task, n))
    run = len(todo)
    all_rows = [r for i in sorted(rows_of) for r in rows_of[i]]
    tmp = cfg.out / (INDEX_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in all_rows))
    tmp.replace(cfg.out / INDEX_FILE)
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    result = CollectResult(len(all_rows), run, skipped, size, time.perf_counter() - t0)
    log(f"data set {cfg.out}: {result.samples} samples, {result.megabytes:.1f} MB "
        f"({run} episodes collected, {skipped} already done, {result.seconds:.1f} s)")
    return result


_WORKER_MAPS: dict[str, Any] = {}  # a worker process's loaded maps


def _episode_in_worker(cfg: CollectConfig, plan: EpisodePlan) -> list[dict[str, Any]]:
    return run_episode(cfg, plan, lambda: None, _WORKER_MAPS)


def _run_parallel(cfg: CollectConfig, todo: Sequence[EpisodePlan],
                  rows_of: dict[int, list[dict[str, Any]]],
                  advance: Callable[[int], None]) -> None:
    """Episodes in ``cfg.jobs`` worker processes (spawned: no state forked from the
    parent). An episode's data depend only on its plan, so the data set is the same
    as with one job."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_episode_in_worker, cfg, plan): plan for plan in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    for p in pending:
                        p.cancel()
                    raise f.exception()  # type: ignore[misc]
                rows_of[futures[f].index] = f.result()
                advance(len(rows_of[futures[f].index]))


def class_pixel_counts(labels: np.ndarray) -> np.ndarray:
    """Pixel count per training class of a label image (for class weights)."""
    return np.bincount(labels.ravel(), minlength=len(TrainClass))[:len(TrainClass)]
