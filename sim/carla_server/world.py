"""The server-side world: CARLA actors over the embedded simulator's own modules.

Vehicles the client spawns are driven by :mod:`sim.dynamics` under its
``VehicleControl``; NPC vehicles (and vehicles on autopilot) are
:mod:`sim.traffic` lane followers; walkers are :mod:`sim.pedestrians`; traffic
lights cycle in :mod:`sim.traffic_lights`; cameras are drawn by :mod:`sim.render`
(:mod:`sim.carla_server.sensors`). One :meth:`ServerWorld.tick` advances all of
them by ``dt`` and returns what each stream gets for the new frame.

Frames and units: CARLA's world frame (m, deg; z up, left-handed), velocities m/s,
angular velocities deg/s, accelerations m/s^2. The world is flat (z = 0 ground):
vehicles stand on it whatever z they were spawned at. Not thread-safe: the server
holds :attr:`ServerWorld.lock` around every call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import carla
import numpy as np

from bus.frames import rotation_matrix, transform_matrix
from bus.messages import Rotation, Transform, Vector3, VehicleControl
from sim import dynamics
from sim.carla_server import blueprints as bp
from sim.carla_server import wire
from sim.carla_server.wire import Description, EpisodeSettings, Weather
from sim.geometry import Box2D, overlaps
from sim.labels import Label
from sim.maps import LoadedMap
from sim.pedestrians import WALKER_HALF_SIZE, Pedestrians, Walker, sidewalk_beside
from sim.spawn import spawn_points
from sim.traffic import NPC, Obstacle, Traffic, road_speed_limits
from sim.traffic_lights import STOP_SIGN_TYPE, TrafficLight, TrafficLights, discover_traffic_lights
from sim.world import signal_ahead

log = logging.getLogger(__name__)

#: the episode stream's id (sensor streams use their actor's id)
EPISODE_STREAM = 0x7FFF_FFFF
#: default step when the client sets no fixed_delta_seconds (CARLA's variable step
#: has no meaning without a game clock; 20 Hz like the Leaderboard)
DEFAULT_DT = 0.05
#: a vehicle's light is the one governing its lane within this distance of the stop
#: line (CARLA's trigger volumes sit just before the line)
LIGHT_TRIGGER_M = 15.0
WALKER_HALF_HEIGHT = 0.9
LIGHT_EXTENT = Vector3(0.3, 0.3, 2.25)


class SpawnError(ValueError):
    """A spawn the server refuses (unknown blueprint, collision, bad parent)."""


@dataclass
class Body:
    """A vehicle under client control: dynamics model, state and last control."""

    params: dynamics.VehicleParams
    state: dynamics.VehicleState
    control: VehicleControl = field(default_factory=VehicleControl)


@dataclass
class ClientWalker:
    """A walker spawned by a client: it walks in ``direction`` at ``speed`` (a
    ``WalkerControl``), straight, on the flat ground."""

    x: float
    y: float
    yaw: float
    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    speed: float = 0.0


@dataclass
class SensorState:
    """A sensor's settings and what it keeps between ticks."""

    sensor_type: int
    tick_s: float = 0.0
    next_s: float = 0.0
    width: int = 0
    height: int = 0
    fov: float = 90.0
    mount: Transform | None = None  # a camera's mount as its renderer spec has it


@dataclass
class Actor:
    """One CARLA actor. ``transform`` is world for free actors and relative to the
    parent for attached ones. Exactly one of body / npc / walker / client_walker /
    light / sensor is set for vehicles, walkers, lights and sensors."""

    id: int
    description: Description
    transform: Transform = field(default_factory=Transform)
    parent: int = 0
    extent: Vector3 = field(default_factory=Vector3)
    box_location: Vector3 = field(default_factory=Vector3)
    tags: bytes = b""
    label: int = 0
    body: Body | None = None
    npc: NPC | None = None
    walker: Walker | None = None
    client_walker: ClientWalker | None = None
    light: TrafficLight | None = None
    sensor: SensorState | None = None
    params: dynamics.VehicleParams | None = None  # a client vehicle's model, kept on autopilot
    prev_yaw: float = 0.0
    yaw_rate: float = 0.0

    @property
    def type_id(self) -> str:
        return self.description.id

    @property
    def is_vehicle(self) -> bool:
        return self.body is not None or self.npc is not None


@dataclass
class TickOutput:
    """What a tick produced: payloads per stream id, in order."""

    frame: int
    payloads: list[tuple[int, bytes]]


class ServerWorld:
    """The world one server runs (one episode: a new map is a new ServerWorld)."""

    def __init__(self, loaded: LoadedMap, seed: int = 0, vehicles: int = 0,
                 walkers: int = 0, episode_id: int = 1, frame: int = 0,
                 settings: EpisodeSettings | None = None) -> None:
        self.lock = threading.RLock()
        self.loaded = loaded
        self.map = loaded.map
        self.seed = seed
        self.episode_id = episode_id
        self.frame = frame
        self.time = 0.0
        self.settings = settings or EpisodeSettings()
        self.weather = Weather()
        self.flags = wire.FLAG_MAP_CHANGE  # the first state of an episode says so
        self.spawn_transforms = spawn_points(self.map)
        self.speed_limits = road_speed_limits(loaded.xodr)
        self.lights = TrafficLights.from_map(self.map, seed=seed)
        self.stop_signs = TrafficLights(discover_traffic_lights(self.map,
                                                                signal_type=STOP_SIGN_TYPE))
        for sign in self.stop_signs.lights:
            self.stop_signs.set_state(sign.id, "red")
        self.traffic = Traffic(self.speed_limits)
        self.pedestrians = Pedestrians()
        self.actors: dict[int, Actor] = {}
        self._next_id = 1
        self._rng = np.random.default_rng([seed, 7])
        self.spectator = self._add(Actor(0, Description(0, bp.SPECTATOR_ID, {}),
                                         Transform(Vector3(0.0, 0.0, 50.0),
                                                   Rotation(-90.0, 0.0, 0.0))))
        self.light_actor: dict[int, int] = {}  # sim light id -> actor id
        self._light_heads: dict[int, bytes] = {}
        for light in self.lights.lights:
            head = light.transform
            tf = Transform(Vector3(head.location.x, head.location.y, head.location.z),
                           Rotation(0.0, light.heading_deg + 180.0, 0.0))
            a = self._add(Actor(0, Description(0, bp.TRAFFIC_LIGHT_ID, {
                "role_name": (wire.ATTR_STRING, "")}), tf, extent=LIGHT_EXTENT,
                box_location=Vector3(0.0, 0.0, LIGHT_EXTENT.z),
                tags=bytes([Label.TRAFFIC_LIGHT, Label.POLES]), label=int(Label.TRAFFIC_LIGHT),
                light=light))
            self.light_actor[light.id] = a.id
        self._spawn_npcs(vehicles)
        self._spawn_walkers(walkers)
        self.sensors = None  # set by the server: sim.carla_server.sensors.Sensors
        self.platform_start = time.monotonic()

    # ------------------------------------------------------------------ ids
    def _add(self, actor: Actor) -> Actor:
        actor.id = self._next_id
        self._next_id += 1
        self.actors[actor.id] = actor
        return actor

    @property
    def dt(self) -> float:
        return self.settings.fixed_delta_seconds or DEFAULT_DT

    # ------------------------------------------------------------------ NPCs
    def _spawn_npcs(self, n: int) -> None:
        """NPC vehicles on seeded spawn points, 15 m apart (like sim.world)."""
        rng = np.random.default_rng([self.seed, 1])
        taken: list[tuple[float, float]] = []
        for k in rng.permutation(len(self.spawn_transforms)):
            if len(self.traffic.npcs) >= n:
                break
            loc = self.spawn_transforms[int(k)].location
            if any(math.hypot(loc.x - x, loc.y - y) < 15.0 for x, y in taken):
                continue
            taken.append((loc.x, loc.y))
            i = len(self.traffic.npcs)
            wp = self.map.get_waypoint(loc)
            actor = self._add(Actor(0, Description(0, bp.NPC_VEHICLE_ID, {
                "role_name": (wire.ATTR_STRING, "autopilot")})))
            npc = self.traffic.spawn(actor.id, wp, np.random.default_rng([self.seed, 2, i]),
                                     speed_factor=float(rng.uniform(0.8, 1.0)))
            self._as_npc_vehicle(actor, npc)

    def _as_npc_vehicle(self, actor: Actor, npc: NPC) -> None:
        actor.npc, actor.body = npc, None
        actor.extent = Vector3(npc.half_length, npc.half_width, 0.75)
        actor.box_location = Vector3(0.0, 0.0, 0.75)
        actor.label = int(Label.CAR)
        actor.tags = bytes([Label.CAR])
        actor.prev_yaw = npc.yaw

    def _spawn_walkers(self, n: int) -> None:
        rng = np.random.default_rng([self.seed, 3])
        for k in rng.permutation(len(self.spawn_transforms)):
            if len(self.pedestrians.walkers) >= n:
                break
            sidewalk = sidewalk_beside(self.map.get_waypoint(
                self.spawn_transforms[int(k)].location))
            if sidewalk is None:
                continue
            i = len(self.pedestrians.walkers)
            actor = self._add(Actor(0, Description(0, bp.NPC_WALKER_ID, {
                "role_name": (wire.ATTR_STRING, "")}),
                extent=Vector3(WALKER_HALF_SIZE, WALKER_HALF_SIZE, WALKER_HALF_HEIGHT),
                box_location=Vector3(0.0, 0.0, WALKER_HALF_HEIGHT),
                tags=bytes([Label.PEDESTRIANS]), label=int(Label.PEDESTRIANS)))
            actor.walker = self.pedestrians.spawn(
                actor.id, sidewalk, np.random.default_rng([self.seed, 4, i]))

    # ------------------------------------------------------------------ spawning
    def spawn(self, desc: Description, tf: Transform, parent: int = 0) -> Actor:
        """Spawn an actor of a blueprint at ``tf`` (world, or relative to ``parent``).
        Raises SpawnError (CARLA's spawn_actor error) when refused."""
        try:
            blueprint = bp.blueprint(desc.id)
        except KeyError as exc:
            raise SpawnError(str(exc.args[0])) from None
        if parent and parent not in self.actors:
            raise SpawnError(f"spawn failed: parent actor {parent} not found")
        attrs = bp.resolve_attributes(blueprint, desc.attributes)
        description = Description(blueprint.uid, blueprint.id, attrs)
        actor = Actor(0, description, tf, parent=parent)
        if desc.id.startswith("vehicle."):
            if parent:
                raise SpawnError("spawn failed: a vehicle cannot be attached to an actor")
            params = dynamics.load_vehicle(blueprint.model)
            state = dynamics.VehicleState(x=tf.location.x, y=tf.location.y,
                                          yaw=_wrap(tf.rotation.yaw))
            box = Box2D(state.x, state.y, state.yaw, params.length / 2, params.width / 2)
            hit = self._overlapping(box, exclude=())
            if hit is not None:
                raise SpawnError(f"Spawn failed because of collision at spawn position "
                                 f"(with actor {hit})")
            actor.body = Body(params, state)
            actor.extent = Vector3(params.length / 2, params.width / 2, params.height / 2)
            actor.box_location = Vector3(0.0, 0.0, params.height / 2)
            actor.label = params.label
            actor.tags = bytes([params.label])
            actor.prev_yaw = state.yaw
        elif desc.id.startswith("walker."):
            if parent:
                raise SpawnError("spawn failed: a walker cannot be attached to an actor")
            actor.client_walker = ClientWalker(tf.location.x, tf.location.y,
                                               tf.rotation.yaw)
            actor.extent = Vector3(WALKER_HALF_SIZE, WALKER_HALF_SIZE, WALKER_HALF_HEIGHT)
            actor.box_location = Vector3(0.0, 0.0, WALKER_HALF_HEIGHT)
            actor.label = int(Label.PEDESTRIANS)
            actor.tags = bytes([Label.PEDESTRIANS])
        else:
            actor.sensor = _sensor_state(desc.id, attrs)
        self._add(actor)
        if actor.sensor is not None and self.sensors is not None:
            self.sensors.added(actor)
        return actor

    def _overlapping(self, box: Box2D, exclude: tuple[int, ...]) -> int | None:
        """The id of a vehicle or walker whose box overlaps ``box``, else None."""
        ids, boxes = self.collider_boxes(exclude)
        if not ids:
            return None
        hit = overlaps(box, boxes)
        return next((i for i, h in zip(ids, hit, strict=True) if h), None)

    def collider_boxes(self, exclude: tuple[int, ...] = ()) -> tuple[list[int], np.ndarray]:
        """Every vehicle's and walker's 2D box (x, y, yaw, half length, half width)."""
        ids, rows = [], []
        for a in self.actors.values():
            if a.id in exclude or not (a.is_vehicle or a.walker or a.client_walker):
                continue
            tf = self.world_transform(a)
            ids.append(a.id)
            rows.append((tf.location.x, tf.location.y, tf.rotation.yaw, a.extent.x,
                         a.extent.y))
        return ids, np.array(rows, float).reshape(-1, 5)

    def _vehicle_boxes(self) -> np.ndarray:
        """Every vehicle's 2D box, as :meth:`collider_boxes` gives them."""
        ids, boxes = self.collider_boxes()
        return boxes[[self.actors[i].is_vehicle for i in ids]]

    def destroy(self, actor_id: int) -> bool:
        """Destroy an actor and what is attached to it; False when there is none (or
        it is the spectator or a traffic light, which CARLA keeps)."""
        actor = self.actors.get(actor_id)
        if actor is None or actor is self.spectator or actor.light is not None:
            return False
        for child in [a.id for a in self.actors.values() if a.parent == actor_id]:
            self.destroy(child)
        if actor.npc is not None:
            self.traffic.npcs.remove(actor.npc)
        if actor.walker is not None:
            self.pedestrians.walkers.remove(actor.walker)
        if actor.sensor is not None and self.sensors is not None:
            self.sensors.removed(actor)
        del self.actors[actor_id]
        return True

    # ------------------------------------------------------------------ control
    def vehicle(self, actor_id: int) -> Actor:
        a = self.actors.get(actor_id)
        if a is None or not a.is_vehicle:
            raise KeyError(f"actor {actor_id} is not a vehicle of this episode")
        return a

    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        a = self.vehicle(actor_id)
        if a.body is not None:
            a.body.control = control

    def apply_walker_control(self, actor_id: int, direction: Vector3, speed: float) -> None:
        a = self.actors.get(actor_id)
        if a is None or a.client_walker is None:
            raise KeyError(f"actor {actor_id} is not a walker spawned by a client")
        n = math.hypot(direction.x, direction.y) or 1.0
        a.client_walker.direction = (direction.x / n, direction.y / n, 0.0)
        a.client_walker.speed = max(0.0, speed)

    def set_transform(self, actor_id: int, tf: Transform) -> None:
        """Teleport an actor (world frame; relative for attached ones). A vehicle
        keeps its speed along its new heading, like CARLA's physics; one on the
        traffic model goes on from the lane it lands on."""
        a = self.actors.get(actor_id)
        if a is None:
            raise KeyError(f"actor {actor_id} not found")
        if a.npc is not None:
            self.set_autopilot(actor_id, False)
            self.set_transform(actor_id, tf)
            self.set_autopilot(actor_id, True)
            return
        if a.body is not None:
            s = a.body.state
            s.x, s.y, s.yaw = tf.location.x, tf.location.y, _wrap(tf.rotation.yaw)
            a.prev_yaw = s.yaw
        elif a.client_walker is not None:
            w = a.client_walker
            w.x, w.y, w.yaw = tf.location.x, tf.location.y, tf.rotation.yaw
        elif a.walker is not None:
            a.walker.x, a.walker.y, a.walker.yaw = tf.location.x, tf.location.y, \
                tf.rotation.yaw
        else:
            a.transform = tf

    def set_target_velocity(self, actor_id: int, v: Vector3) -> None:
        """Set a vehicle's velocity now (world m/s): its speed becomes the velocity's
        component along the heading (the bicycle model has no side slip to hold)."""
        a = self.vehicle(actor_id)
        if a.body is not None:
            yaw = math.radians(a.body.state.yaw)
            a.body.state.speed = v.x * math.cos(yaw) + v.y * math.sin(yaw)
        elif a.npc is not None:
            a.npc.speed = max(0.0, math.hypot(v.x, v.y))

    def set_autopilot(self, actor_id: int, enabled: bool) -> None:
        """Hand a vehicle to the embedded traffic model (a lane-following NPC from
        the lane under it, at its speed) or take it back under client control."""
        a = self.vehicle(actor_id)
        if enabled and a.body is not None:
            s = a.body.state
            wp = self.map.get_waypoint(carla.Location(s.x, s.y, 0.0))
            npc = self.traffic.spawn(a.id, wp, np.random.default_rng(
                [self.seed, 5, a.id]), speed=max(0.0, s.speed))
            npc.type_id = a.type_id
            npc.half_length, npc.half_width = a.extent.x, a.extent.y
            a.npc, a.params, a.body = npc, a.body.params, None
        elif not enabled and a.npc is not None:
            npc = a.npc
            self.traffic.npcs.remove(npc)
            params = a.params or dynamics.load_vehicle("default_car")  # an NPC's: the sedan
            a.body = Body(params, dynamics.VehicleState(x=npc.x, y=npc.y, yaw=_wrap(npc.yaw),
                                                        speed=npc.speed))
            a.npc = None

    # ------------------------------------------------------------------ stepping
    def tick(self, episode_state: bool = True) -> TickOutput:
        """Advance everything by ``dt``; returns the new frame's stream payloads
        (episode state first, unless ``episode_state`` is False because nobody
        listens, then sensor data)."""
        dt = self.dt
        for a in self.actors.values():
            if a.body is not None:
                a.body.state = dynamics.step(a.body.state, a.body.control, a.body.params, dt)
            elif a.client_walker is not None:
                w = a.client_walker
                w.x += w.direction[0] * w.speed * dt
                w.y += w.direction[1] * w.speed * dt
                if w.speed > 0:
                    w.yaw = math.degrees(math.atan2(w.direction[1], w.direction[0]))
        self.lights.tick(dt)
        others = []
        for a in self.actors.values():
            if a.body is not None:
                s = a.body.state
                others.append(Obstacle(a.id, s.x, s.y, s.yaw, s.speed, a.extent.x))
            elif a.client_walker is not None:
                w = a.client_walker
                others.append(Obstacle(a.id, w.x, w.y, w.yaw, w.speed, WALKER_HALF_SIZE))
        others += [Obstacle(w.id, w.x, w.y, w.yaw, 0.0, WALKER_HALF_SIZE)
                   for w in self.pedestrians.walkers if w.crossing]
        self.traffic.step(dt, others, self._light_ahead)
        self.pedestrians.step(dt, self._vehicle_boxes)
        for a in self.actors.values():
            if a.npc is not None:
                a.yaw_rate = _wrap(a.npc.yaw - a.prev_yaw) / dt
                a.prev_yaw = a.npc.yaw
        self.frame += 1
        self.time += dt
        payloads = []
        if episode_state:
            payloads.append((EPISODE_STREAM, self.episode_state()))
            self.flags = 0  # the map-change flag stays until a client has seen it
        if self.sensors is not None:
            payloads += self.sensors.tick(self)
        return TickOutput(self.frame, payloads)

    def _light_ahead(self, wp: carla.Waypoint) -> tuple[str, float] | None:
        return signal_ahead(self.lights, self.stop_signs, wp)

    # ------------------------------------------------------------------ views
    def world_transform(self, a: Actor) -> Transform:
        """An actor's world transform now."""
        if a.body is not None:
            s = a.body.state
            return Transform(Vector3(s.x, s.y, 0.0), Rotation(0.0, s.yaw, 0.0))
        if a.npc is not None:
            n = a.npc
            return Transform(Vector3(n.x, n.y, n.z), Rotation(0.0, n.yaw, 0.0))
        if a.walker is not None:
            w = a.walker
            return Transform(Vector3(w.x, w.y, 0.0), Rotation(0.0, w.yaw, 0.0))
        if a.client_walker is not None:
            c = a.client_walker
            return Transform(Vector3(c.x, c.y, 0.0), Rotation(0.0, c.yaw, 0.0))
        if a.parent and a.parent in self.actors:
            return compose(self.world_transform(self.actors[a.parent]), a.transform)
        return a.transform

    def velocity(self, a: Actor) -> Vector3:
        if a.body is not None:
            vx, vy = a.body.state.velocity()
            return Vector3(vx, vy, 0.0)
        if a.npc is not None:
            yaw = math.radians(a.npc.yaw)
            return Vector3(a.npc.speed * math.cos(yaw), a.npc.speed * math.sin(yaw), 0.0)
        if a.walker is not None:
            yaw = math.radians(a.walker.yaw)
            return Vector3(a.walker.speed * math.cos(yaw), a.walker.speed * math.sin(yaw), 0.0)
        if a.client_walker is not None:
            c = a.client_walker
            return Vector3(c.direction[0] * c.speed, c.direction[1] * c.speed, 0.0)
        if a.parent and a.parent in self.actors:
            return self.velocity(self.actors[a.parent])
        return Vector3()

    def acceleration(self, a: Actor) -> Vector3:
        if a.body is not None:
            s = a.body.state
            yaw = math.radians(s.yaw)
            return Vector3(s.accel * math.cos(yaw) - s.lateral_accel * math.sin(yaw),
                           s.accel * math.sin(yaw) + s.lateral_accel * math.cos(yaw), 0.0)
        if a.npc is not None:
            yaw = math.radians(a.npc.yaw)
            lat = a.npc.speed * math.radians(a.yaw_rate)
            return Vector3(a.npc.accel * math.cos(yaw) - lat * math.sin(yaw),
                           a.npc.accel * math.sin(yaw) + lat * math.cos(yaw), 0.0)
        if a.parent and a.parent in self.actors:
            return self.acceleration(self.actors[a.parent])
        return Vector3()

    def angular_velocity(self, a: Actor) -> Vector3:
        """deg/s about the world axes (only yaw: the world is flat)."""
        if a.body is not None:
            return Vector3(0.0, 0.0, a.body.state.yaw_rate)
        if a.npc is not None:
            return Vector3(0.0, 0.0, a.yaw_rate)
        if a.parent and a.parent in self.actors:
            return self.angular_velocity(self.actors[a.parent])
        return Vector3()

    def control(self, a: Actor) -> VehicleControl:
        if a.body is not None:
            return a.body.control
        if a.npc is not None:  # what the traffic model did, as pedal positions
            acc = a.npc.accel
            return VehicleControl(throttle=min(1.0, max(0.0, acc / 3.0)),
                                  brake=min(1.0, max(0.0, -acc / 8.0)))
        return VehicleControl()

    def _waypoint(self, a: Actor) -> carla.Waypoint | None:
        """The driving-lane waypoint nearest the actor (projected onto the road)."""
        tf = self.world_transform(a)
        return self.map.get_waypoint(carla.Location(tf.location.x, tf.location.y, 0.0))

    def speed_limit_kmh(self, a: Actor, wp: carla.Waypoint | None = None) -> float:
        """The speed limit of the road under the actor, km/h (CARLA's unit); 30 km/h
        where the map gives none (junctions)."""
        wp = wp if wp is not None else self._waypoint(a)
        limit = self.speed_limits.get(wp.road_id) if wp is not None else None
        return (limit if limit is not None else 30 / 3.6) * 3.6

    def governing_light(self, a: Actor, wp: carla.Waypoint | None = None
                        ) -> TrafficLight | None:
        """The light whose stop line is ahead of the vehicle on its lane, within
        LIGHT_TRIGGER_M (CARLA's ``Vehicle.get_traffic_light``)."""
        tf = self.world_transform(a)
        wp = wp if wp is not None else self._waypoint(a)
        if wp is None:
            return None
        light = self.lights.light_for_lane(wp.road_id, wp.section_id, wp.lane_id)
        if light is None:
            return None
        stop = next(s for s in light.stop_waypoints
                    if (s.road_id, s.section_id, s.lane_id) ==
                    (wp.road_id, wp.section_id, wp.lane_id))
        d = stop.transform.location.distance(carla.Location(tf.location.x, tf.location.y,
                                                            stop.transform.location.z))
        return light if d <= LIGHT_TRIGGER_M else None

    def record(self, a: Actor) -> wire.ActorRecord:
        """The actor's 119-byte episode-state record."""
        data: wire.VehicleRecord | wire.LightRecord | wire.WalkerRecord | None = None
        if a.is_vehicle:
            wp = self._waypoint(a)
            light = self.governing_light(a, wp)
            data = wire.VehicleRecord(
                control=self.control(a), speed_limit=self.speed_limit_kmh(a, wp),
                light_state=wire.LIGHT_STATE_IDS[self.lights.state_of(light.id)]
                if light is not None else wire.LIGHT_STATE_IDS["green"],
                has_light=light is not None,
                light_id=self.light_actor[light.id] if light is not None else 0)
        elif a.light is not None:
            data = self._light_record(a.light)
        elif a.walker is not None or a.client_walker is not None:
            v = self.velocity(a)
            speed = math.hypot(v.x, v.y)
            direction = (v.x / speed, v.y / speed, 0.0) if speed > 0 else (1.0, 0.0, 0.0)
            data = wire.WalkerRecord(direction, speed)
        return wire.ActorRecord(a.id, self.world_transform(a), self.velocity(a),
                                self.angular_velocity(a), self.acceleration(a), data)

    def episode_state(self) -> bytes:
        """The world observer's payload for the current frame."""
        return wire.episode_state(self.episode_id, self.frame, self.time,
                                  time.monotonic() - self.platform_start, self.dt,
                                  [self._packed(a) for a in self.actors.values()], self.flags)

    def _packed(self, a: Actor) -> wire.ActorRecord | bytes:
        """A record, or its bytes: a traffic light's common part never changes, so it
        is packed once and only its light part is packed per tick."""
        if a.light is None:
            return self.record(a)
        head = self._light_heads.get(a.id)
        if head is None:
            head = self._light_heads[a.id] = wire.ActorRecord(
                a.id, self.world_transform(a)).pack()[:wire.ACTOR_COMMON.size]
        return head + self._light_record(a.light).pack()

    def _light_record(self, light: TrafficLight) -> wire.LightRecord:
        green, yellow, red, elapsed = self.lights.timing(light.id)
        return wire.LightRecord(
            sign_id=light.signal_ids[0],
            state=wire.LIGHT_STATE_IDS.get(self.lights.state_of(light.id), 4),
            green_time=green, yellow_time=yellow, red_time=red, elapsed_time=elapsed,
            pole_index=0, time_is_frozen=False)

    def actor_msg(self, a: Actor, token: bytes = b"") -> list:
        """The actor as ``rpc::Actor``."""
        return wire.actor_msg(a.id, a.parent, a.description,
                              wire.bbox_msg(a.box_location, a.extent), a.tags, token)

    def map_spawn_points(self) -> list[Transform]:
        return [Transform(Vector3(t.location.x, t.location.y, t.location.z),
                          Rotation(t.rotation.pitch, t.rotation.yaw, t.rotation.roll))
                for t in self.spawn_transforms]


# ---------------------------------------------------------------------- helpers
def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def compose(parent: Transform, child: Transform) -> Transform:
    """The world transform of ``child`` given relative to ``parent`` (CARLA's
    attachment: parent matrix times child matrix)."""
    m = transform_matrix(parent) @ transform_matrix(child)
    return Transform(Vector3(*(float(v) for v in m[:3, 3])), rotation_from_matrix(m[:3, :3]))


def rotation_from_matrix(r: np.ndarray) -> Rotation:
    """Inverse of :func:`bus.frames.rotation_matrix` (pitch, yaw, roll in degrees)."""
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(r[2, 0])))))
    yaw = math.degrees(math.atan2(float(r[1, 0]), float(r[0, 0])))
    roll = math.degrees(math.atan2(-float(r[2, 1]), float(r[2, 2])))
    return Rotation(pitch, yaw, roll)


def _sensor_state(type_id: str, attrs: dict[str, tuple[int, str]]) -> SensorState:
    def num(name: str, default: float) -> float:
        try:
            return float(attrs[name][1])
        except (KeyError, ValueError):
            return default

    kind = {"sensor.camera.rgb": wire.SENSOR_RGB, "sensor.camera.depth": wire.SENSOR_DEPTH,
            "sensor.camera.semantic_segmentation": wire.SENSOR_SEMANTIC,
            "sensor.other.collision": wire.SENSOR_COLLISION,
            "sensor.other.lane_invasion": wire.SENSOR_LANE_INVASION,
            "sensor.other.gnss": wire.SENSOR_GNSS, "sensor.other.imu": wire.SENSOR_IMU}[type_id]
    s = SensorState(kind, tick_s=max(0.0, num("sensor_tick", 0.0)))
    if type_id in bp.CAMERA_TYPES:
        s.width, s.height = int(num("image_size_x", 800)), int(num("image_size_y", 600))
        s.fov = num("fov", 90.0)
        if not (0 < s.width <= 8192 and 0 < s.height <= 8192 and 0 < s.fov < 180):
            raise SpawnError(f"{type_id}: image_size_x/y must be 1..8192 and fov in "
                             f"(0, 180), got {s.width}x{s.height} fov {s.fov}")
    return s


def rotate_to_local(tf: Transform, v: Vector3) -> Vector3:
    """A world vector in the frame of ``tf``'s rotation."""
    local = rotation_matrix(tf.rotation).T @ np.array([v.x, v.y, v.z])
    return Vector3(*(float(x) for x in local))
