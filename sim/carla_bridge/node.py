"""The simulator node on a CARLA server: the same topics, lockstep and scoring as
the embedded :class:`sim.node.SimNode`, with the world stepped by CARLA.

:class:`CarlaSimNode` is a ``SimNode`` whose world is a :class:`CarlaWorld` (an
adapter with the embedded ``World``'s interface: ``frame``, ``time``,
``header()``, ``ego_state()``, ``ground_truth()``, ``step(control)`` and the
infraction ``monitor``) and whose scene hands out the CARLA camera images of the
current frame. The tick, lockstep, evaluation, metrics.json and shutdown are
SimNode's own code, so both backends score a run the same way.

One tick k: the images of CARLA frame f0 + k (matched by ``image.frame``, see
:mod:`sim.carla_bridge.sync`) and the ego and actors of that frame's snapshot are
published with ``header.frame = k`` and ``stamp = k * dt``; the ControlCommand of
frame k is applied as a ``carla.VehicleControl``; ``world.tick(timeout)`` steps to
f0 + k + 1. Infractions: collisions from the collision sensor, lane invasions
from the lane-invasion sensor, red lights, stop signs, off-route and route
deviation from :class:`sim.infractions.InfractionMonitor` on the ego's box (the
same checks as the embedded world), with the lights' states read from the
server's light actors.

The server session (:class:`sim.carla_bridge.client.CarlaSession`) is closed when
the node is destroyed (end of run, SIGINT/SIGTERM, error) and when its set-up
fails: our actors are destroyed and the world's settings restored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import carla

from bus import Node
from bus.messages import (
    CameraIntrinsics,
    EgoState,
    GroundTruth,
    Header,
    Image,
    RunEvent,
    Transform,
    Vector3,
    VehicleControl,
)
from bus.messages import Rotation as BusRotation
from sim.carla_bridge import actors as spawn
from sim.carla_bridge import truth
from sim.carla_bridge.client import BridgeConfig, BridgeError, CarlaSession, town_name
from sim.carla_bridge.sync import SensorQueue, SensorTimeout
from sim.infractions import COLLISION_REPEAT_S, InfractionMonitor
from sim.node import SimNode, SimParams, build_scenario
from sim.scenario import Scenario
from sim.traffic_lights import STOP_SIGN_TYPE, TrafficLights, discover_traffic_lights
from sim.world import EGO_ID

log = logging.getLogger(__name__)


@dataclass
class CarlaSimParams(SimParams):
    host: str = "127.0.0.1"
    port: int = 2000
    timeout_s: float = 10.0  # every RPC, every tick, every wait for a camera frame
    ego_blueprint: str = spawn.DEFAULT_EGO_BLUEPRINT
    tm_port: int = 8000  # the Traffic Manager's port (NPC traffic)
    #: the town to load: "" the scenario's map (loaded when the server has it and
    #: it is not the current one), "current" whatever the server has loaded
    town: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        BridgeConfig(self.host, self.port, self.timeout_s)  # validates them
        if not 1 <= self.tm_port <= 65535:
            raise ValueError(f"tm_port {self.tm_port}: expected 1..65535")


def to_carla_control(c: VehicleControl) -> carla.VehicleControl:
    return carla.VehicleControl(throttle=float(c.throttle), steer=float(c.steer),
                                brake=float(c.brake), hand_brake=bool(c.hand_brake),
                                reverse=bool(c.reverse),
                                manual_gear_shift=bool(c.manual_gear_shift), gear=int(c.gear))


def collision_kind(other_type: str) -> str:
    """The RunEvent kind of a collision with an actor of CARLA type ``other_type``."""
    if other_type.startswith("vehicle."):
        return "collision_vehicle"
    if other_type.startswith("walker."):
        return "collision_pedestrian"
    return "collision_static"


class CarlaWorld:
    """The CARLA world of one run behind the embedded ``World``'s interface."""

    def __init__(self, session: CarlaSession, scenario: Scenario, ego_blueprint: str,
                 tm_port: int, camera_kinds: tuple[str, ...] = ("rgb",),
                 event_sensors: bool = True) -> None:
        self.session = session
        self.scenario = scenario
        self.dt = scenario.dt
        self.timeout_s = session.config.timeout_s
        self.map = session.world.get_map()
        self.map_name = town_name(self.map.name)
        self.opendrive = self.map.to_opendrive()
        self.cameras = scenario.cameras
        self.camera_kinds = camera_kinds
        self.queue = SensorQueue(tuple(spawn.sensor_name(c.name, k) for c in self.cameras
                                       for k in camera_kinds))
        weather = spawn.weather_parameters(scenario.weather)
        if weather is not None:
            session.world.set_weather(weather)
        self.ego = spawn.spawn_ego(session, scenario, ego_blueprint)
        spawn.attach_cameras(session, self.ego, self.cameras, self.queue, camera_kinds)
        if event_sensors:
            spawn.attach_event_sensors(session, self.ego, self.queue)
        self.npcs = spawn.spawn_traffic(session, scenario, self.ego.get_transform().location,
                                        tm_port)
        self.lights = truth.LightStates(self.map)
        self.stop_signs = TrafficLights(discover_traffic_lights(self.map,
                                                                signal_type=STOP_SIGN_TYPE))
        for sign in self.stop_signs.lights:
            self.stop_signs.set_state(sign.id, "red")
        self.route = None
        self.monitor = InfractionMonitor(self.map, EGO_ID)
        self.control = VehicleControl()
        self._last_hit: dict[int, float] = {}
        # frame 0: the first with everything spawned and every camera delivering
        try:
            self.f0, self.readings = self.queue.first_frame(session.tick, self.timeout_s)
        except SensorTimeout as exc:
            raise self.session.fail(str(exc)) from None
        self.carla_frame = self.f0
        self.frame = 0
        self.time = 0.0
        self._light_actors = [a for a in session.world.get_actors()
                              if a.type_id.startswith("traffic.traffic_light")]
        self._read_world()

    # ------------------------------------------------------------------ stepping
    def _refresh(self) -> None:
        """Read the current frame: camera data (matched by frame), light states."""
        try:
            self.readings = self.queue.collect(self.carla_frame, self.timeout_s)
        except SensorTimeout as exc:
            raise self.session.fail(str(exc)) from None
        self._read_world()

    def _read_world(self) -> None:
        """The current frame's light states; the ego state is read again on demand."""
        self.lights.update(self._light_actors)
        self._ego_state: EgoState | None = None

    def step(self, control: VehicleControl) -> list[RunEvent]:
        """Apply ``control``, tick, and return this tick's infractions."""
        self.control = control
        try:
            self.ego.apply_control(to_carla_control(control))
        except RuntimeError as exc:
            raise self.session.fail("apply_control failed", exc) from None
        self.carla_frame = self.session.tick()
        self.frame = self.carla_frame - self.f0
        self.time = self.frame * self.dt
        self._refresh()
        header = self.header()
        ego = self.ego_state()
        events = [e for e in self.monitor.check(
            header, truth.ego_box(self.ego), ego.speed, [], self.lights.red_light_crossed,
            self._stop_line_crossed) if e.kind != "lane_invasion"]
        events += self._sensor_events(header, ego)
        return events

    def _stop_line_crossed(self, prev: Any, cur: Any) -> int | None:
        sign = self.stop_signs.red_light_crossed(prev, cur)
        return None if sign is None else sign.id

    def _sensor_events(self, header: Header, ego: EgoState) -> list[RunEvent]:
        """Collision and lane-invasion sensor events up to this frame; a collision
        with the same actor counts again only after COLLISION_REPEAT_S."""
        out = []
        loc = Vector3(ego.transform.location.x, ego.transform.location.y, 0.0)
        for _, _name, data in self.queue.events(self.carla_frame):
            if isinstance(data, spawn.CollisionReading):
                last = self._last_hit.get(data.other_id)
                self._last_hit[data.other_id] = header.stamp
                if last is not None and header.stamp - last < COLLISION_REPEAT_S:
                    continue
                kind = collision_kind(data.other_type)
                out.append(RunEvent(header=header, kind=kind, actor_id=EGO_ID,
                                    other_id=data.other_id, location=loc,
                                    description=f"hit {data.other_type or 'something'} "
                                                f"{data.other_id}"))
            elif isinstance(data, spawn.LaneInvasionReading):
                out.append(RunEvent(header=header, kind="lane_invasion", actor_id=EGO_ID,
                                    location=loc,
                                    description="crossed " + ", ".join(data.markings)))
        return out

    # ------------------------------------------------------------------ views
    def header(self) -> Header:
        return Header(self.frame, self.time)

    def ego_state(self) -> EgoState:
        if self._ego_state is None:
            self._ego_state = truth.ego_state(self.ego, self.header(), self.control)
        return self._ego_state

    def ground_truth(self) -> GroundTruth:
        try:
            return truth.ground_truth(self.session.world.get_actors(), self.ego,
                                      self.header(), self.lights, self.map)
        except RuntimeError as exc:  # the client's error for a failed call
            raise self.session.fail("reading the actors failed", exc) from None

    def images(self) -> dict[str, Image]:
        """The RGB image of every camera for the current frame (bgr8)."""
        out = {}
        for c in self.cameras:
            bgra = self.readings[spawn.sensor_name(c.name, "rgb")]
            out[c.name] = Image(
                header=self.header(), camera=c.name, encoding="bgr8",
                data=bgra[..., :3].copy(),
                intrinsics=CameraIntrinsics.from_fov(c.image_size_x, c.image_size_y, c.fov),
                mount=Transform(Vector3(c.x, c.y, c.z), BusRotation(c.pitch, c.yaw, 0.0)))
        return out


class _CarlaScene:
    """SimNode's ``scene``: the CARLA images of the world's current frame."""

    def render(self, world: CarlaWorld) -> dict[str, Image]:
        return world.images()


class CarlaSimNode(SimNode):
    """SimNode on a CARLA server (module docstring)."""

    Params = CarlaSimParams

    def __init__(self, name: str = "sim", **kwargs) -> None:
        Node.__init__(self, name, **kwargs)  # not SimNode's: no embedded world here
        p: CarlaSimParams = self.params
        self.scenario = build_scenario(p)
        town = "" if p.town == "current" else (p.town or town_name(self.scenario.map))
        self.session = CarlaSession(BridgeConfig(p.host, p.port, p.timeout_s,
                                                 self.scenario.dt, town))
        try:
            self.session.open()
            try:
                self.world: Any = CarlaWorld(self.session, self.scenario, p.ego_blueprint,
                                             p.tm_port)
            except RuntimeError as exc:  # a carla call failed (the client's error type)
                raise self.session.fail("setting up the run failed", exc) from None
            self._setup_evaluation(self.world.map)
            self.scene: Any = _CarlaScene()
            self._setup_bus(self.world.map_name, self.world.opendrive)
            self.get_logger().info(
                "on the CARLA server %s: map %s, ego %s (id %d), %d cameras, %d NPC "
                "vehicles", self.session.config.address, self.world.map_name,
                p.ego_blueprint, self.world.ego.id, len(self.scenario.cameras),
                len(self.world.npcs))
        except BaseException:
            self.session.close()
            raise

    def tick(self) -> None:
        """SimNode's tick; a failure of the server (gone, stalled, a sensor silent)
        ends the process with one error line naming it (exit status 1) rather than a
        traceback: SimNode has recorded it in the metrics as the run's error, and
        :meth:`destroy` still cleans up."""
        try:
            super().tick()
        except BridgeError as exc:
            self.get_logger().error("%s", exc)
            raise SystemExit(1) from None

    def destroy(self) -> None:
        """The run's metrics (SimNode), then our actors destroyed and the server's
        settings restored, whatever happened."""
        try:
            if hasattr(self, "world"):
                super().destroy()
            else:
                Node.destroy(self)
        finally:
            self.session.close()
