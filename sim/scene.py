"""What the cameras see of a world: the map rasterised as ground, seeded scenery,
and the world's actors and traffic lights as boxes, drawn by ``sim.render``.

The ground raster and the scenery are built once per world; per tick only the
actors and the lights' lamps change. World frame: CARLA's (m, deg).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection

import carla
import numpy as np

from bus.messages import CameraIntrinsics, Image, Rotation, Transform, Vector3
from sim.labels import Label
from sim.maps.render import rasterize
from sim.render import Appearance, CameraSpec, GroundRaster, Renderer, RenderObject
from sim.render.objects import Boxes
from sim.render.scenery import place_scenery, traffic_light_objects
from sim.scenario import CameraConfig, WeatherConfig
from sim.traffic_lights import TrafficLight, TrafficLights
from sim.world import World

MAX_GROUND_PIXELS = 40_000_000  # ~120 MB of raster layers; coarser beyond that
LIGHT_ID_BASE = 20_000


def ground_raster(world: World, resolution: float = 0.1,
                  crosswalks: Collection[int] | None = None) -> GroundRaster:
    """The map top-down (labels and BGR colours) at ``resolution`` m/px, or coarser
    if the map is too large for MAX_GROUND_PIXELS; ``crosswalks``: which of the
    map's crosswalks are painted (``sim.maps.render.rasterize``; all when None)."""
    return map_ground_raster(world.map, resolution, crosswalks)


def map_ground_raster(carla_map: carla.Map, resolution: float = 0.1,
                      crosswalks: Collection[int] | None = None) -> GroundRaster:
    """:func:`ground_raster` of a bare ``carla.Map`` (no world around it)."""
    x0, y0, x1, y1 = _map_bounds(carla_map)
    area = (x1 - x0 + 20) * (y1 - y0 + 20)
    resolution = max(resolution, math.sqrt(area / MAX_GROUND_PIXELS))
    r = rasterize(carla_map, resolution=resolution, max_pixels=MAX_GROUND_PIXELS + 10**6,
                  crosswalks=crosswalks)
    half = r.resolution / 2  # GroundRaster's origin is a pixel centre
    return GroundRaster(r.labels, np.ascontiguousarray(r.color[..., ::-1]),
                        r.origin[0] + half, r.origin[1] + half, r.resolution)


def _map_bounds(carla_map: carla.Map) -> tuple[float, float, float, float]:
    pts = np.array([[w.transform.location.x, w.transform.location.y]
                    for w in carla_map.generate_waypoints(10.0)])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(
        pts[:, 1].max())


def appearance_for(weather: WeatherConfig, seed: int) -> Appearance:
    """The episode's look: textures, colours and sun from ``seed``; time of day, fog
    and rain as the scenario says (``weather.sample`` draws those from the seed too).
    The sky follows the scenario's time of day and rain: a seed that draws night
    gave a day scenario a night sky over daylit streets, a look never trained on."""
    if weather.sample:
        return Appearance.sample(seed)
    look = Appearance.sample(seed, night=weather.time_of_day == "night", rain=weather.rain)
    gain = {"day": 1.0, "dusk": 0.7, "night": 0.38}[weather.time_of_day]
    tint = {"day": (1.0, 1.0, 1.0), "dusk": (0.85, 1.0, 1.15), "night": (1.12, 0.98, 0.85)}[
        weather.time_of_day]
    rain_dark = 1.0 - 0.35 * weather.rain
    return dataclasses.replace(
        look, gain=tuple(gain * t * rain_dark for t in tint),  # type: ignore[arg-type]
        fog_density=0.04 * weather.fog, rain=weather.rain)


def camera_spec(c: CameraConfig) -> CameraSpec:
    return CameraSpec(c.name, c.image_size_x, c.image_size_y, c.fov,
                      Transform(Vector3(c.x, c.y, c.z), Rotation(c.pitch, c.yaw, 0.0)))


def light_pole(light: TrafficLight) -> Transform:
    """World pose of the foot of a light's pole as the scene draws it: at the head's
    position on the ground, yawed so the lamps face the approaching vehicles."""
    head = light.transform.location
    return Transform(Vector3(head.x, head.y, 0.0), Rotation(0.0, light.heading_deg + 180.0, 0.0))


def light_objects(lights: TrafficLights, cache: dict[tuple[int, str], list[RenderObject]],
                  instance_ids: dict[int, int] | None = None) -> list[RenderObject]:
    """Every traffic light's pole and head with its lamp now. ``cache`` keeps the
    boxes per (light id, lamp): lights stand still, only their lamps change.
    ``instance_ids`` maps a light id to its instance id (default LIGHT_ID_BASE + id)."""
    objs: list[RenderObject] = []
    for light in lights.lights:
        lamp = lights.state_of(light.id)
        boxes = cache.get((light.id, lamp))
        if boxes is None:
            instance = (instance_ids[light.id] if instance_ids is not None
                        else LIGHT_ID_BASE + light.id)
            boxes = cache[light.id, lamp] = traffic_light_objects(instance, light_pole(light),
                                                                  lamp)
        objs += boxes
    return objs


class SceneRenderer:
    """Camera images of one world, as bus ``Image`` messages."""

    def __init__(self, world: World, cameras: list[CameraConfig], weather: WeatherConfig,
                 seed: int, crosswalks: Collection[int] | None = None) -> None:
        """``crosswalks``: which of the map's crosswalks the ground shows (all when
        None; :func:`ground_raster`)."""
        self.ground = ground_raster(world, crosswalks=crosswalks)
        self.specs = [camera_spec(c) for c in cameras]
        self.renderer = Renderer(self.ground, self.specs, appearance_for(weather, seed),
                                 place_scenery(self.ground, seed))
        # (light id, lamp) -> its boxes: lights stand still, only their lamps change
        self._light_boxes: dict[tuple[int, str], list[RenderObject]] = {}
        # every light's lamp, and all the lights' boxes built for those lamps
        self._lamps: tuple[str, ...] | None = None
        self._lights = Boxes.build([], self.renderer.appearance)

    def objects(self, world: World) -> list[RenderObject]:
        """The world's dynamic boxes: NPC vehicles, walkers, traffic lights."""
        return [*self._actors(world), *light_objects(world.lights, self._light_boxes)]

    def boxes(self, world: World) -> Boxes:
        """:meth:`objects` built for the renderer. The lights are most of them and
        stand still: their boxes are built again only when a lamp changes."""
        lamps = tuple(world.lights.state_of(light.id) for light in world.lights.lights)
        if lamps != self._lamps:
            self._lamps = lamps
            self._lights = self.renderer.boxes(light_objects(world.lights, self._light_boxes))
        return Boxes.concat(self.renderer.boxes(self._actors(world)), self._lights)

    def _actors(self, world: World) -> list[RenderObject]:
        """The NPC vehicles and the walkers."""
        objs = []
        for n in world.traffic.npcs:
            objs.append(RenderObject(n.id, int(Label.CAR), Transform(
                Vector3(n.x, n.y, n.z + 0.75), Rotation(0.0, n.yaw, 0.0)),
                (n.half_length, n.half_width, 0.75)))
        for w in world.pedestrians.walkers:
            objs.append(RenderObject(w.id, int(Label.PEDESTRIANS), Transform(
                Vector3(w.x, w.y, 0.9), Rotation(0.0, w.yaw, 0.0)), (0.25, 0.3, 0.9)))
        return objs

    def render(self, world: World) -> dict[str, Image]:
        ego = Transform(Vector3(world.ego.x, world.ego.y, 0.0), Rotation(0.0, world.ego.yaw,
                                                                         0.0))
        # an Image carries the colour only: no labels, depth or instance ids to make
        images = self.renderer.render_rgb(ego, self.boxes(world), tick=world.frame)
        out = {}
        for spec in self.specs:
            out[spec.name] = Image(
                header=world.header(), camera=spec.name, encoding="bgr8",
                data=images[spec.name],
                intrinsics=CameraIntrinsics.from_fov(spec.image_size_x, spec.image_size_y,
                                                     spec.fov),
                mount=spec.mount)
        return out
