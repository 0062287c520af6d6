"""The embedded world: map, ego vehicle, NPC traffic, traffic lights and
infractions, stepped at a fixed rate. No bus in here (the sim node wraps it).

One :meth:`World.step` is one simulator tick (``scenario.dt`` seconds, CARLA's
``fixed_delta_seconds``): the ego's VehicleControl is applied through the dynamics
model, lights advance, NPCs move, and the infraction checks run. Everything is
seeded from ``scenario.seed``; nothing reads the wall clock, so the same scenario
gives the same world, tick for tick. World frame: CARLA's (metres, degrees).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import carla
import numpy as np

from bus.messages import (
    ActorState,
    BoundingBox,
    EgoState,
    GroundTruth,
    Header,
    LaneRef,
    Rotation,
    RunEvent,
    Transform,
    Vector3,
    VehicleControl,
)
from sim import dynamics
from sim.events import ScenarioEvents
from sim.geometry import Box2D
from sim.infractions import Collider, InfractionMonitor
from sim.labels import Label
from sim.pedestrians import WALKER_HALF_SIZE, Pedestrians, sidewalk_beside
from sim.scenario import Pose, Scenario
from sim.spawn import spawn_points
from sim.traffic import Obstacle, Traffic, road_speed_limits
from sim.traffic_lights import STOP_SIGN_TYPE, TrafficLights, discover_traffic_lights

EGO_ID = 1
NPC_ID_BASE = 100
WALKER_ID_BASE = 10_000


@dataclass(frozen=True)
class MapSource:
    """A map as the world needs it: its name, OpenDRIVE text and carla.Map."""

    name: str
    opendrive: str
    carla_map: carla.Map


def spawn_waypoints(carla_map: carla.Map) -> list[carla.Waypoint]:
    """The map's spawn points (``sim.spawn``: driving lanes, clear of junctions,
    deterministic order) as the lane waypoints NPCs and the ego start on."""
    return [carla_map.get_waypoint(t.location) for t in spawn_points(carla_map)]


def signal_ahead(lights: TrafficLights, stop_signs: TrafficLights,
                 wp: carla.Waypoint) -> tuple[str, float] | None:
    """What governs the lane of ``wp`` at its end: a light's state or 'stop', and
    the distance (m) from ``wp`` to the stop line (the traffic model's light query)."""
    lane = (wp.road_id, wp.section_id, wp.lane_id)
    for signals, state in ((lights, None), (stop_signs, "stop")):
        light = signals.light_for_lane(*lane)
        if light is None:
            continue
        stop = next(s for s in light.stop_waypoints
                    if (s.road_id, s.section_id, s.lane_id) == lane)
        d = stop.transform.location.distance(wp.transform.location)
        return (state or signals.state_of(light.id)), d
    return None


class World:
    """The simulated world of one scenario."""

    def __init__(self, scenario: Scenario, source: MapSource) -> None:
        self.scenario = scenario
        self.map_name = source.name
        self.opendrive = source.opendrive
        self.map = source.carla_map
        self.dt = scenario.dt
        self.frame = 0
        self.time = 0.0
        self.spawn_points = spawn_waypoints(self.map)
        if not self.spawn_points:
            raise ValueError(f"map {source.name}: no driving lane to spawn on")
        self.ego_params = dynamics.load_vehicle(scenario.ego.vehicle)
        self.ego = self._ego_start()
        self.control = VehicleControl()
        self.lights = TrafficLights.from_map(self.map, seed=scenario.seed)
        # Stop signs group into approaches like lights; held red, their crossing test
        # finds the ego passing a stop line.
        self.stop_signs = TrafficLights(discover_traffic_lights(self.map,
                                                                signal_type=STOP_SIGN_TYPE))
        for sign in self.stop_signs.lights:
            self.stop_signs.set_state(sign.id, "red")
        self.speed_limits = road_speed_limits(self.opendrive)
        self.traffic = Traffic(self.speed_limits)
        self._spawn_npcs()
        self.pedestrians = Pedestrians()
        self._spawn_walkers()
        self.route = self._route_polyline()
        self.monitor = InfractionMonitor(self.map, EGO_ID, route=self.route)
        self.events: list[RunEvent] = []
        self.script = ScenarioEvents(scenario.events)

    # ------------------------------------------------------------------ set-up
    def _ego_start(self) -> dynamics.VehicleState:
        cfg = self.scenario.ego
        pose: Pose | None = cfg.spawn
        if pose is None and self.scenario.route.waypoints:
            pose = self.scenario.route.waypoints[0]
        if pose is not None:
            wp = self.map.get_waypoint(carla.Location(pose.x, pose.y, pose.z))
            yaw = pose.yaw if cfg.spawn is not None else wp.transform.rotation.yaw
            return dynamics.VehicleState(x=pose.x, y=pose.y, yaw=yaw)
        if cfg.spawn_index >= len(self.spawn_points):
            raise ValueError(f"ego.spawn_index {cfg.spawn_index}: the map has "
                             f"{len(self.spawn_points)} spawn points")
        t = self.spawn_points[cfg.spawn_index].transform
        return dynamics.VehicleState(x=t.location.x, y=t.location.y, yaw=t.rotation.yaw)

    def _spawn_order(self, rng: np.random.Generator) -> list[int]:
        """Spawn point indices in a seeded order, only those within the traffic's
        spawn radius of the ego when it has one."""
        order = [int(k) for k in rng.permutation(len(self.spawn_points))]
        radius = self.scenario.traffic.spawn_radius_m
        if radius <= 0:
            return order
        return [k for k in order if math.hypot(
            self.spawn_points[k].transform.location.x - self.ego.x,
            self.spawn_points[k].transform.location.y - self.ego.y) <= radius]

    def _spawn_npcs(self) -> None:
        """NPCs on seeded spawn points, none within 15 m of the ego or of each other."""
        n = self.scenario.traffic.vehicles
        rng = np.random.default_rng([self.scenario.seed, 1])
        taken = [(self.ego.x, self.ego.y)]
        for k in self._spawn_order(rng):
            if len(self.traffic.npcs) >= n:
                break
            wp = self.spawn_points[int(k)]
            loc = wp.transform.location
            if any(math.hypot(loc.x - x, loc.y - y) < 15.0 for x, y in taken):
                continue
            taken.append((loc.x, loc.y))
            i = len(self.traffic.npcs)
            self.traffic.spawn(NPC_ID_BASE + i, wp, np.random.default_rng(
                [self.scenario.seed, 2, i]), speed_factor=self.scenario.traffic.
                vehicle_max_speed_factor * float(rng.uniform(0.8, 1.0)))

    def _spawn_walkers(self) -> None:
        """Walkers on the sidewalks beside seeded spawn points."""
        n = self.scenario.traffic.pedestrians
        rng = np.random.default_rng([self.scenario.seed, 3])
        for k in self._spawn_order(rng):
            if len(self.pedestrians.walkers) >= n:
                break
            sidewalk = sidewalk_beside(self.spawn_points[int(k)])
            if sidewalk is None:
                continue
            i = len(self.pedestrians.walkers)
            self.pedestrians.spawn(WALKER_ID_BASE + i, sidewalk,
                                   np.random.default_rng([self.scenario.seed, 4, i]))

    def _route_polyline(self) -> np.ndarray | None:
        pts = self.scenario.route.waypoints
        if not pts:
            return None
        return np.array([[p.x, p.y] for p in pts], float)

    # ------------------------------------------------------------------ stepping
    def step(self, control: VehicleControl) -> list[RunEvent]:
        """Advance one tick under ``control``; return this tick's infractions."""
        self.control = control
        self.ego = dynamics.step(self.ego, control, self.ego_params, self.dt,
                                 self.scenario.substeps)
        self.lights.tick(self.dt)
        self.script.update(self)
        ego_obstacle = Obstacle(EGO_ID, self.ego.x, self.ego.y, self.ego.yaw,
                                self.ego.speed, self.ego_params.length / 2)
        walkers = [Obstacle(w.id, w.x, w.y, w.yaw, 0.0, WALKER_HALF_SIZE)
                   for w in self.pedestrians.walkers if w.crossing]
        self.traffic.step(self.dt, [ego_obstacle, *walkers], self._light_ahead)
        self.pedestrians.step(self.dt, self.vehicle_boxes)
        self.frame += 1
        self.time = self.frame * self.dt
        events = self.monitor.check(self.header(), self.ego_box(), abs(self.ego.speed),
                                    self.colliders(), self._red_light_crossed,
                                    self._stop_line_crossed)
        self.events.extend(events)
        return events

    def _light_ahead(self, wp: carla.Waypoint) -> tuple[str, float] | None:
        return signal_ahead(self.lights, self.stop_signs, wp)

    def _stop_line_crossed(self, prev: np.ndarray, cur: np.ndarray) -> int | None:
        sign = self.stop_signs.red_light_crossed(prev, cur)
        return None if sign is None else sign.id

    def _red_light_crossed(self, prev: np.ndarray, cur: np.ndarray) -> int | None:
        light = self.lights.red_light_crossed(prev, cur)
        return None if light is None else light.id

    # ------------------------------------------------------------------ views
    def header(self) -> Header:
        return Header(self.frame, self.time)

    def ego_box(self) -> Box2D:
        p = self.ego_params
        return Box2D(self.ego.x, self.ego.y, self.ego.yaw, p.length / 2, p.width / 2)

    def vehicle_boxes(self) -> np.ndarray:
        """N x 5 boxes (x, y, yaw_deg, half_length, half_width) of the ego and the
        NPC vehicles, as they are now."""
        e = self.ego_box()
        return np.array([(e.x, e.y, e.yaw, e.half_length, e.half_width),
                         *((n.x, n.y, n.yaw, n.half_length, n.half_width)
                           for n in self.traffic.npcs)], float)

    def colliders(self) -> list[Collider]:
        return [Collider(n.id, "vehicle", (n.x, n.y, n.yaw, n.half_length, n.half_width))
                for n in self.traffic.npcs] + [
            Collider(w.id, "pedestrian", (w.x, w.y, w.yaw, WALKER_HALF_SIZE,
                                          WALKER_HALF_SIZE))
            for w in self.pedestrians.walkers]

    def ego_waypoint(self) -> carla.Waypoint | None:
        return self.map.get_waypoint(carla.Location(self.ego.x, self.ego.y, 0.0),
                                     project_to_road=False)

    def ego_state(self) -> EgoState:
        vx, vy = self.ego.velocity()
        yaw = math.radians(self.ego.yaw)
        ax = self.ego.accel * math.cos(yaw) - self.ego.lateral_accel * math.sin(yaw)
        ay = self.ego.accel * math.sin(yaw) + self.ego.lateral_accel * math.cos(yaw)
        wp = self.ego_waypoint()
        limit = self.speed_limits.get(wp.road_id, 0.0) if wp is not None else 0.0
        return EgoState(
            header=self.header(),
            transform=Transform(Vector3(self.ego.x, self.ego.y, 0.0),
                                Rotation(0.0, self.ego.yaw, 0.0)),
            velocity=Vector3(vx, vy, 0.0), acceleration=Vector3(ax, ay, 0.0),
            speed=math.hypot(vx, vy), yaw_rate=self.ego.yaw_rate, speed_limit=limit,
            control=self.control)

    def ground_truth(self) -> GroundTruth:
        actors = []
        for n in self.traffic.npcs:
            yaw = math.radians(n.yaw)
            actors.append(ActorState(
                id=n.id, type_id=n.type_id, label=int(Label.CAR),
                transform=Transform(Vector3(n.x, n.y, n.z), Rotation(0.0, n.yaw, 0.0)),
                velocity=Vector3(n.speed * math.cos(yaw), n.speed * math.sin(yaw), 0.0),
                bounding_box=BoundingBox(Vector3(0.0, 0.0, 0.75),
                                         Vector3(n.half_length, n.half_width, 0.75))))
        for w in self.pedestrians.walkers:
            yaw = math.radians(w.yaw)
            v = w.speed
            actors.append(ActorState(
                id=w.id, type_id="walker.pedestrian.drivestack", label=int(Label.PEDESTRIANS),
                transform=Transform(Vector3(w.x, w.y, 0.0), Rotation(0.0, w.yaw, 0.0)),
                velocity=Vector3(v * math.cos(yaw), v * math.sin(yaw), 0.0),
                bounding_box=BoundingBox(Vector3(0.0, 0.0, 0.9),
                                         Vector3(WALKER_HALF_SIZE, WALKER_HALF_SIZE, 0.9))))
        wp = self.ego_waypoint()
        lane = LaneRef(wp.road_id, wp.section_id, wp.lane_id) if wp is not None else LaneRef()
        return GroundTruth(header=self.header(), ego_id=EGO_ID, actors=actors,
                           traffic_lights=self.lights.ground_truth(), ego_lane=lane)

    def state_hash(self) -> str:
        """A digest of the ego and every actor's pose and speed (determinism tests)."""
        h = hashlib.sha256()
        rows = [(self.ego.x, self.ego.y, self.ego.yaw, self.ego.speed)] + [
            (n.x, n.y, n.yaw, n.speed) for n in self.traffic.npcs] + [
            (w.x, w.y, w.yaw, w.speed) for w in self.pedestrians.walkers]
        h.update(np.array(rows, float).tobytes())
        h.update(",".join(self.lights.state_of(light.id) for light in self.lights.lights)
                 .encode())
        return h.hexdigest()
