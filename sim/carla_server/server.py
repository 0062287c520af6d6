"""The CARLA-compatible server: RPC methods over a :class:`ServerWorld`, the
streaming server, and the clock of asynchronous mode.

Synchronous mode (``settings.synchronous_mode``): the world steps only on a
client's ``tick_cue``. Asynchronous mode: a ticker thread steps it every ``dt``
of wall time (``fixed_delta_seconds``, else 0.05 s), like a server running in
real time. Every step publishes the episode state and the sensor data of the new
frame before the ``tick_cue`` reply, so a client waiting for frame N finds it.

Every RPC answer is CARLA's ``Response`` shape; a method this server does not
implement answers an error the client raises as ``RuntimeError`` naming it, and
a method the 0.9.16 client does not know either gets rpclib's error reply. A bad
argument is an error reply, never a dropped connection or a dead server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.messages import Vector3
from sim.carla_server import CARLA_VERSION, wire
from sim.carla_server import blueprints as bp
from sim.carla_server.commands import apply_batch
from sim.carla_server.rpc import Connection, RpcServer, UnknownMethod
from sim.carla_server.sensors import Sensors
from sim.carla_server.streaming import StreamServer
from sim.carla_server.world import EPISODE_STREAM, Actor, ServerWorld, SpawnError
from sim.maps import LoadedMap, MapError, builtin_maps, load_map

log = logging.getLogger(__name__)

#: RPC methods the 0.9.16 client calls (LibCarla's client/detail/Client.cpp). One this
#: server does not implement answers CARLA's error Response naming it; a name outside
#: this set (another client version) gets rpclib's error reply.
CLIENT_METHODS = frozenset({
    "is_traffic_manager_running", "get_traffic_manager_running", "add_traffic_manager_running",
    "destroy_traffic_manager", "version", "load_new_episode", "load_map_layer",
    "unload_map_layer", "copy_opendrive_to_file", "apply_color_texture_to_objects",
    "apply_float_color_texture_to_objects", "get_names_of_all_objects", "get_episode_info",
    "get_map_info", "get_map_data", "get_navigation_mesh", "get_required_files",
    "request_file", "get_available_maps", "get_actor_definitions", "get_spectator",
    "get_episode_settings", "set_episode_settings", "get_weather_parameters",
    "set_weather_parameters", "get_actors_by_id", "get_physics_control",
    "get_vehicle_light_state", "apply_physics_control", "set_vehicle_light_state",
    "open_vehicle_door", "close_vehicle_door", "set_wheel_steer_direction",
    "get_wheel_steer_angle", "spawn_actor", "spawn_actor_with_parent", "destroy_actor",
    "set_actor_location", "set_actor_transform", "set_actor_target_velocity",
    "set_actor_target_angular_velocity", "enable_actor_constant_velocity",
    "disable_actor_constant_velocity", "add_actor_impulse", "add_actor_impulse_at_location",
    "add_actor_force", "add_actor_force_at_location", "add_actor_angular_impulse",
    "add_actor_torque", "set_actor_simulate_physics", "set_actor_enable_gravity",
    "set_actor_autopilot", "show_vehicle_debug_telemetry", "apply_control_to_vehicle",
    "apply_ackermann_control_to_vehicle", "get_ackermann_controller_settings",
    "apply_ackermann_controller_settings", "enable_carsim", "use_carsim_road",
    "enable_chrono_physics", "apply_control_to_walker", "get_bones_transform",
    "set_bones_transform", "blend_pose", "get_pose_from_animation", "set_traffic_light_state",
    "set_traffic_light_green_time", "set_traffic_light_yellow_time",
    "set_traffic_light_red_time", "freeze_traffic_light", "reset_traffic_light_group",
    "reset_all_traffic_lights", "freeze_all_traffic_lights", "get_light_boxes",
    "get_vehicle_light_states", "get_group_traffic_lights", "start_recorder", "stop_recorder",
    "show_recorder_file_info", "show_recorder_collisions", "show_recorder_actors_blocked",
    "replay_file", "stop_replayer", "set_replayer_time_factor", "set_replayer_ignore_hero",
    "set_replayer_ignore_spectator", "get_sensor_token", "draw_debug_shape", "apply_batch",
    "tick_cue", "query_lights_state", "update_lights_state", "update_day_night_cycle",
    "get_all_level_BBs", "get_environment_objects", "enable_environment_objects",
    "project_point", "cast_ray", "get_actor_bounding_box", "set_actor_collisions",
    "set_actor_dead", "enable_sensor_for_ros", "disable_sensor_for_ros",
    "is_sensor_enabled_for_ros", "get_actor_component_world_transform",
    "get_actor_component_relative_transform", "get_actor_bone_world_transforms",
    "get_actor_bone_relative_transforms", "get_actor_component_names", "get_actor_bone_names",
    "get_actor_socket_world_transforms", "get_actor_socket_relative_transforms",
    "get_actor_socket_names", "get_telemetry_data", "get_gbuffer_token", "set_walker_state",
})

#: the methods whose reply is ``Response<void>`` (their error has another shape than a
#: valued method's); the client waits on the first eight, the rest are fire-and-forget
VOID_METHODS = frozenset({
    "load_new_episode", "load_map_layer", "unload_map_layer", "copy_opendrive_to_file",
    "apply_color_texture_to_objects", "apply_float_color_texture_to_objects",
    "set_actor_simulate_physics", "reset_all_traffic_lights", "destroy_traffic_manager",
    "set_weather_parameters", "apply_physics_control", "set_vehicle_light_state",
    "open_vehicle_door", "close_vehicle_door", "set_wheel_steer_direction",
    "set_actor_location", "set_actor_transform", "set_actor_target_velocity",
    "set_actor_target_angular_velocity", "enable_actor_constant_velocity",
    "disable_actor_constant_velocity", "add_actor_impulse", "add_actor_impulse_at_location",
    "add_actor_force", "add_actor_force_at_location", "add_actor_angular_impulse",
    "add_actor_torque", "set_actor_enable_gravity", "set_actor_autopilot",
    "show_vehicle_debug_telemetry", "apply_control_to_vehicle",
    "apply_ackermann_control_to_vehicle", "apply_ackermann_controller_settings",
    "enable_carsim", "use_carsim_road", "enable_chrono_physics", "apply_control_to_walker",
    "set_bones_transform", "blend_pose", "get_pose_from_animation", "set_traffic_light_state",
    "set_traffic_light_green_time", "set_traffic_light_yellow_time",
    "set_traffic_light_red_time", "freeze_traffic_light", "reset_traffic_light_group",
    "freeze_all_traffic_lights", "stop_recorder", "stop_replayer", "set_replayer_time_factor",
    "set_replayer_ignore_hero", "set_replayer_ignore_spectator", "draw_debug_shape",
    "update_lights_state", "update_day_night_cycle", "enable_environment_objects",
    "set_actor_collisions", "set_actor_dead", "enable_sensor_for_ros",
    "disable_sensor_for_ros", "set_walker_state",
})


class ServerStartError(Exception):
    """The server cannot start: a port in use or not allowed (one line, names it)."""


def _bind(what: str, host: str, port: int, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ServerStartError(f"cannot listen on {what} port {host}:{port}: "
                               f"{reason}") from None


@dataclass
class ServerConfig:
    """What ``drivestack serve`` starts: map (built-in name or .xodr path),
    ``map_dir`` of more .xodr maps for load_world, seed, NPC traffic, where to bind."""

    map: str = "town_grid"
    map_dir: str = ""
    seed: int = 0
    vehicles: int = 0
    walkers: int = 0
    host: str = "127.0.0.1"
    port: int = 2000
    streaming_port: int = 2001
    tm_port: int = 8000  # the Traffic Manager endpoint (clients ask for it by port)


class CarlaServer:
    """One server: start() binds both ports and serves until stop(). ``eager``: build
    each world's renderer from the start (in the background; load_world returns
    once it is built) rather than when the first camera is spawned."""

    def __init__(self, config: ServerConfig, eager: bool = True) -> None:
        self.config = config
        self.eager = eager
        self._calling = threading.local()  # the connection of the call being handled
        self._lock = threading.RLock()
        self._all_sensors: list[Sensors] = []
        loaded = self._load(config.map)
        host = config.host
        self.streams = _bind("the streaming", host, config.streaming_port,
                             lambda: StreamServer(host, config.streaming_port,
                                                  self._stream_known, self._greeting,
                                                  self._lock))
        try:
            self.rpc = _bind("the RPC", host, config.port,
                             lambda: RpcServer(host, config.port, self._handle))
        except ServerStartError:
            self.streams.stop()
            raise
        try:
            self.tm = _bind("the traffic manager", host, config.tm_port,
                            lambda: RpcServer(host, config.tm_port, self._handle_tm))
        except ServerStartError:
            self.streams.stop()
            self.rpc.stop()
            raise
        self.world = self._new_world(loaded, episode_id=1, frame=0)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="carla-ticker",
                                        daemon=True)
        self.methods: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")}

    @property
    def port(self) -> int:
        return self.rpc.port

    @property
    def streaming_port(self) -> int:
        return self.streams.port

    def start(self) -> None:
        self.streams.start()
        self.rpc.start()
        self.tm.start()
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self.rpc.stop()
        self.tm.stop()
        self.streams.stop()
        if self._ticker.is_alive():
            self._ticker.join(timeout=2.0)
        for sensors in self._all_sensors:
            sensors.close()

    def __enter__(self) -> CarlaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ maps
    def _load(self, name: str) -> LoadedMap:
        """A built-in map, a file, or ``<map_dir>/<name>.xodr``; MapError otherwise."""
        if self.config.map_dir and name not in builtin_maps():
            candidate = Path(self.config.map_dir) / f"{Path(name).stem}.xodr"
            if candidate.is_file():
                return load_map(candidate)
        return load_map(name)

    def available_maps(self) -> list[str]:
        names = list(builtin_maps())
        if self.config.map_dir and Path(self.config.map_dir).is_dir():
            names += sorted(p.stem for p in Path(self.config.map_dir).glob("*.xodr"))
        return names

    def _new_world(self, loaded: LoadedMap, episode_id: int, frame: int,
                   settings: wire.EpisodeSettings | None = None) -> ServerWorld:
        world = ServerWorld(loaded, seed=self.config.seed, vehicles=self.config.vehicles,
                            walkers=self.config.walkers, episode_id=episode_id, frame=frame,
                            settings=settings)
        world.lock = self._lock  # one lock for every episode: load_world swaps worlds
        world.sensors = Sensors(world, lambda sid: self.streams.subscribers(sid) > 0,
                                eager=self.eager)
        self._all_sensors.append(world.sensors)
        return world

    # ------------------------------------------------------------------ ticking
    def step(self) -> int:
        """One world step; publishes its payloads; returns the new frame."""
        with self._lock:
            out = self.world.tick(episode_state=self.streams.subscribers(EPISODE_STREAM) > 0)
            for stream_id, payload in out.payloads:
                self.streams.publish(stream_id, payload)
            return out.frame

    def _tick_loop(self) -> None:
        """Asynchronous mode's clock: a step every dt of wall time."""
        next_t = time.monotonic()
        while not self._stop.is_set():
            world = self.world
            if world.settings.synchronous_mode:
                self._stop.wait(0.02)
                next_t = time.monotonic()
                continue
            next_t += world.dt
            try:
                self.step()
            except Exception:
                log.exception("asynchronous tick failed")
            delay = next_t - time.monotonic()
            if delay < -1.0:  # far behind (a slow machine): do not try to catch up
                next_t = time.monotonic()
            self._stop.wait(max(0.0, delay))

    # ------------------------------------------------------------------ dispatch
    def _handle(self, method: str, args: list, conn: Connection) -> Any:
        fn = self.methods.get(method)
        void = method in VOID_METHODS
        if fn is None:
            if method in CLIENT_METHODS:
                return wire.error(f"{method} is not supported by the drivestack server "
                                  f"(CARLA {CARLA_VERSION} protocol)", void=void)
            log.warning("unknown method %r (%d arguments)", method, len(args))
            raise UnknownMethod(f"unknown method {method!r}: this server speaks CARLA "
                                f"{CARLA_VERSION}'s protocol (is the client carla=="
                                f"{CARLA_VERSION}?)")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s%r", method, args if len(repr(args)) < 300 else "(...)")
        self._calling.conn = conn
        try:
            return fn(*args)
        except TypeError as exc:
            if "positional argument" in str(exc):
                return wire.error(f"{method}: wrong number of arguments ({len(args)}) for "
                                  f"CARLA {CARLA_VERSION}'s protocol; is the client carla=="
                                  f"{CARLA_VERSION}?", void=void)
            log.exception("%s failed", method)
            return wire.error(f"{method}: bad argument types: {exc}", void=void)
        except (KeyError, ValueError, SpawnError, MapError, IndexError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return wire.error(f"{method}: {message}", void=void)
        except Exception as exc:  # a server bug: the user still reads what failed
            log.exception("%s failed", method)
            return wire.error(f"{method}: internal error of the drivestack server: "
                              f"{type(exc).__name__}: {exc}", void=void)

    def _stream_known(self, stream_id: int) -> bool:
        """The episode stream, or a sensor of the current world with a stream."""
        if stream_id == EPISODE_STREAM:
            return True
        a = self.world.actors.get(stream_id)
        return a is not None and a.sensor is not None

    def _greeting(self, stream_id: int) -> bytes | None:
        """A new session's first payload: the episode stream's current state (a
        client that subscribed just after a tick waits for that tick's state)."""
        return self.world.episode_state() if stream_id == EPISODE_STREAM else None

    def _token(self, stream_id: int) -> bytes:
        return wire.token(stream_id, self.streams.port)

    # ------------------------------------------------------------------ episode
    def rpc_version(self) -> list:
        return wire.ok(CARLA_VERSION)

    def rpc_get_episode_info(self) -> list:
        return wire.ok([self.world.episode_id, [self._token(EPISODE_STREAM)]])

    def rpc_get_sensor_token(self, stream_id: int) -> list:
        stream_id = int(stream_id)
        if stream_id != EPISODE_STREAM:
            a = self.world.actors.get(stream_id)
            if a is None or a.sensor is None:
                raise KeyError(f"no sensor with id {stream_id}")
        return wire.ok([self._token(stream_id)])

    def rpc_get_episode_settings(self) -> list:
        return wire.ok(self.world.settings.to_msg())

    def rpc_set_episode_settings(self, settings: Any) -> list:
        new = wire.EpisodeSettings.from_msg(settings)
        with self.world.lock:
            self.world.settings = new
            return wire.ok(self.world.frame)

    def rpc_tick_cue(self) -> list:
        if not self.world.settings.synchronous_mode:
            return wire.ok(self.world.frame)
        return wire.ok(self.step())

    def rpc_get_required_files(self, folder: str = "", download: bool = True) -> list:
        return wire.ok([])

    def rpc_query_lights_state(self, client: str = "") -> list:
        return wire.ok([])

    def rpc_get_map_info(self) -> list:
        w = self.world
        return wire.ok([w.loaded.name, [wire.transform_msg(t) for t in w.map_spawn_points()]])

    def rpc_get_map_data(self) -> list:
        return wire.ok(self.world.loaded.xodr)

    def rpc_get_available_maps(self) -> list:
        return wire.ok(self.available_maps())

    def rpc_get_navigation_mesh(self) -> list:
        return wire.ok(b"")

    def rpc_load_new_episode(self, map_name: str, reset_settings: bool = True,
                             map_layers: int = 0) -> list:
        loaded = self._load(str(map_name).split("/")[-1])
        old = self.world
        with old.lock:
            settings = wire.EpisodeSettings() if reset_settings else old.settings
            world = self._new_world(loaded, episode_id=old.episode_id + 1, frame=old.frame,
                                    settings=settings)
            if self.eager:
                world.sensors.wait_ready()  # ready for cameras when load_world returns
            for a in old.actors.values():
                if a.sensor is not None:
                    self.streams.close_stream(a.id)
            self.world = world
        return wire.ok_void()

    def rpc_load_world_if_different(self, map_name: str, reset_settings: bool = True,
                                    map_layers: int = 0) -> list:
        if str(map_name).split("/")[-1] == self.world.loaded.name:
            return wire.ok_void()
        return self.rpc_load_new_episode(map_name, reset_settings, map_layers)

    def rpc_copy_opendrive_to_file(self, *args: Any) -> list:
        return wire.error("generate_opendrive_world is not supported by the drivestack "
                          "server: start it with --map FILE.xodr instead", void=True)

    def rpc_get_weather_parameters(self) -> list:
        return wire.ok(self.world.weather.to_msg())

    def rpc_set_weather_parameters(self, weather: Any) -> list:
        self.world.weather = wire.Weather.from_msg(weather)
        return wire.ok_void()

    def rpc_get_actor_definitions(self) -> list:
        return wire.ok([b.to_msg() for b in bp.BLUEPRINTS])

    def rpc_get_spectator(self) -> list:
        return wire.ok(self.world.actor_msg(self.world.spectator))

    def rpc_is_traffic_manager_running(self, port: int = 8000) -> list:
        return wire.ok(True)  # ours, whatever port is asked: see _handle_tm

    def rpc_get_traffic_manager_running(self, port: int = 8000) -> list:
        return wire.ok([self._tm_host, self.tm.port])

    def rpc_add_traffic_manager_running(self, *args: Any) -> list:
        return wire.ok(True)

    def rpc_destroy_traffic_manager(self, *args: Any) -> list:
        return wire.ok_void()

    @property
    def _tm_host(self) -> str:
        """The address this client reached us at (right for remote clients too)."""
        conn = getattr(self._calling, "conn", None)
        if conn is not None:
            try:
                return str(conn.sock.getsockname()[0])
            except OSError:
                pass
        host = self.config.host
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    def _handle_tm(self, method: str, args: list, conn: Connection) -> Any:
        """The Traffic Manager's RPC (plain rpclib values, no Response): the 0.9.16
        client finds a running TM here and becomes its remote, so
        ``vehicle.set_autopilot(True)`` and the batch ``SetAutopilot`` hand vehicles
        to the embedded traffic model. Tuning calls (speed difference, lane
        changes, ...) are accepted and have no effect."""
        if method in ("register_vehicle", "unregister_vehicle"):
            enabled = method == "register_vehicle"
            with self.world.lock:
                for actor in args[0] if args else []:
                    try:
                        self.world.set_autopilot(int(actor[0]), enabled)
                    except (KeyError, TypeError, ValueError, IndexError) as exc:
                        log.info("traffic manager %s: %s", method, exc)
            return None
        if method == "synchronous_tick":
            return True
        if method in ("get_next_action", "get_all_actions"):
            return []
        return None

    def rpc_draw_debug_shape(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_freeze_all_traffic_lights(self, frozen: bool) -> list:
        with self.world.lock:
            self.world.lights.freeze(bool(frozen))
        return wire.ok_void()

    def rpc_set_traffic_light_state(self, actor_id: int, state: int) -> list:
        with self.world.lock:
            a = self._light(actor_id)
            name = wire.LIGHT_STATE_NAMES.get(int(state), "off")
            if name in ("red", "yellow", "green"):
                self.world.lights.set_state(a.light.id, name)
            else:
                self.world.lights.release(a.light.id)
        return wire.ok_void()

    def _light(self, actor_id: Any) -> Actor:
        a = self.world.actors.get(int(actor_id))
        if a is None or a.light is None:
            raise KeyError(f"actor {actor_id} is not a traffic light")
        return a

    def rpc_freeze_traffic_light(self, actor_id: int, freeze: bool) -> list:
        """Hold one light in its current state (or hand it back to its cycle)."""
        with self.world.lock:
            light = self._light(actor_id).light
            lights = self.world.lights
            if freeze:
                lights.set_state(light.id, lights.state_of(light.id))
            else:
                lights.release(light.id)
        return wire.ok_void()

    def rpc_reset_all_traffic_lights(self) -> list:
        with self.world.lock:
            for light in self.world.lights.lights:
                self.world.lights.release(light.id)
            self.world.lights.freeze(False)
        return wire.ok_void()

    def rpc_reset_traffic_light_group(self, actor_id: int) -> list:
        with self.world.lock:
            junction = self._light(actor_id).light.junction_id
            for light in self.world.lights.lights:
                if light.junction_id == junction:
                    self.world.lights.release(light.id)
        return wire.ok_void()

    def rpc_get_light_boxes(self, actor_id: int) -> list:
        """The light's head as one world-frame box (CARLA gives one per lamp head)."""
        a = self._light(actor_id)
        tf = self.world.world_transform(a)
        head = Vector3(tf.location.x, tf.location.y, 4.5 - 0.55)
        return wire.ok([wire.bbox_msg(head, Vector3(0.18, 0.22, 0.55), tf.rotation)])

    def rpc_get_vehicle_light_states(self) -> list:
        """Every vehicle with its lights off (the embedded vehicles have none)."""
        return wire.ok([[a.id, 0] for a in self.world.actors.values() if a.is_vehicle])

    def rpc_show_vehicle_debug_telemetry(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_update_lights_state(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_update_day_night_cycle(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_get_group_traffic_lights(self, actor_id: int) -> list:
        w = self.world
        a = self._light(actor_id)
        return wire.ok([w.light_actor[li.id] for li in w.lights.lights
                        if li.junction_id == a.light.junction_id])

    # ------------------------------------------------------------------ actors
    def _actor(self, actor_id: Any) -> Actor:
        a = self.world.actors.get(int(actor_id))
        if a is None:
            raise KeyError(f"actor {actor_id} not found")
        return a

    def _actor_reply(self, a: Actor) -> list:
        token = self._token(a.id) if a.sensor is not None and \
            a.sensor.sensor_type != wire.SENSOR_LANE_INVASION else b""
        return self.world.actor_msg(a, token)

    def rpc_spawn_actor(self, description: Any, transform: Any) -> list:
        desc = wire.Description.from_msg(description)
        tf = wire.parse_transform(transform)
        with self.world.lock:
            return wire.ok(self._actor_reply(self.world.spawn(desc, tf)))

    def rpc_spawn_actor_with_parent(self, description: Any, transform: Any, parent: int,
                                    attachment_type: int = 0, socket_name: str = "") -> list:
        desc = wire.Description.from_msg(description)
        tf = wire.parse_transform(transform)
        with self.world.lock:
            return wire.ok(self._actor_reply(self.world.spawn(desc, tf, int(parent))))

    def rpc_destroy_actor(self, actor_id: int) -> list:
        with self.world.lock:
            a = self.world.actors.get(int(actor_id))
            ids = [a.id] + [c.id for c in self.world.actors.values() if c.parent == a.id] \
                if a is not None else []
            ok = self.world.destroy(int(actor_id))
        for i in ids:
            self.streams.close_stream(i)
        return wire.ok(ok)

    def rpc_get_actors_by_id(self, ids: list) -> list:
        with self.world.lock:
            return wire.ok([self._actor_reply(self.world.actors[int(i)]) for i in ids
                            if int(i) in self.world.actors])

    def rpc_get_actor_bounding_box(self, actor_id: int) -> list:
        a = self._actor(actor_id)
        return wire.ok(wire.bbox_msg(a.box_location, a.extent))

    def rpc_apply_control_to_vehicle(self, actor_id: int, control: Any) -> list:
        with self.world.lock:
            self.world.apply_control(int(actor_id), wire.parse_control(control))
        return wire.ok_void()

    def rpc_apply_control_to_walker(self, actor_id: int, control: Any) -> list:
        direction = wire.parse_vector(control[0], "WalkerControl.direction")
        speed = float(control[1]) if len(control) > 1 else 0.0
        with self.world.lock:
            self.world.apply_walker_control(int(actor_id), direction, speed)
        return wire.ok_void()

    def rpc_set_actor_transform(self, actor_id: int, transform: Any) -> list:
        with self.world.lock:
            self.world.set_transform(int(actor_id), wire.parse_transform(transform))
        return wire.ok_void()

    def rpc_set_actor_location(self, actor_id: int, location: Any) -> list:
        with self.world.lock:
            a = self._actor(actor_id)
            tf = self.world.world_transform(a) if not a.parent else a.transform
            tf = type(tf)(wire.parse_vector(location, "Location"), tf.rotation)
            self.world.set_transform(a.id, tf)
        return wire.ok_void()

    def rpc_set_actor_target_velocity(self, actor_id: int, velocity: Any) -> list:
        with self.world.lock:
            self.world.set_target_velocity(int(actor_id), wire.parse_vector(velocity))
        return wire.ok_void()

    def rpc_set_actor_target_angular_velocity(self, actor_id: int, velocity: Any) -> list:
        self._actor(actor_id)
        return wire.ok_void()  # the bicycle model's yaw rate follows from its steering

    def rpc_set_actor_autopilot(self, actor_id: int, enabled: bool, *rest: Any) -> list:
        with self.world.lock:
            self.world.set_autopilot(int(actor_id), bool(enabled))
        return wire.ok_void()

    def rpc_set_actor_simulate_physics(self, actor_id: int, enabled: bool) -> list:
        self._actor(actor_id)
        return wire.ok_void()

    def rpc_set_actor_enable_gravity(self, actor_id: int, enabled: bool) -> list:
        self._actor(actor_id)
        return wire.ok_void()

    def rpc_set_actor_collisions(self, actor_id: int, enabled: bool) -> list:
        self._actor(actor_id)
        return wire.ok_void()

    def rpc_enable_sensor_for_ros(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_disable_sensor_for_ros(self, *args: Any) -> list:
        return wire.ok_void()

    def rpc_is_sensor_enabled_for_ros(self, *args: Any) -> list:
        return wire.ok(False)

    def rpc_apply_batch(self, commands: list, do_tick_cue: bool = False) -> list:
        with self.world.lock:
            responses = apply_batch(self, commands)
        if do_tick_cue and self.world.settings.synchronous_mode:
            self.step()
        return responses  # a bare vector<CommandResponse>, not a Response

    # apply_batch_sync calls the same RPC with the client waiting for the reply
