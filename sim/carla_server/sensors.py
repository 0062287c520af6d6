"""Sensor data in CARLA's encodings, made from the server world each tick.

- Cameras (rgb, depth, semantic_segmentation) are drawn by the embedded renderer
  (:class:`sim.render.Renderer`) from the sensor's parent pose and its attachment
  transform, and sent as CARLA images: BGRA bytes; depth as CARLA encodes it in RGB
  (``metres = 1000 * (R + G*256 + B*256^2) / (256^3 - 1)``, the renderer's depth is
  metres along the optical axis, as CARLA's); semantic labels (CARLA's
  CityObjectLabel ids) in the red channel.
- Collision: each tick, the parent's box against every other vehicle's and walker's
  (2D boxes on the flat ground); one event per other actor per tick in contact.
  ``normal_impulse`` is an estimate: the parent's mass times the closing speed
  along the line between the two centres (N s), pointing from the other actor.
- GNSS: ``carla.Map.transform_to_geolocation`` of the sensor's location (the
  map's geo reference), in degrees and metres.
- IMU: accelerometer (m/s^2, sensor frame, gravity included: +9.81 up at rest),
  gyroscope (rad/s, sensor frame), compass (rad, 0 = north = CARLA's -y, clockwise).
- Lane invasion: computed by the 0.9.16 client itself from the episode state and
  the map (it is a client-side sensor), so the server only hosts the actor.

Only cameras with a subscriber are rendered (the others would be drawn for no one).
Every payload carries the frame and sim time of the tick it belongs to and the
sensor's world transform then.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import carla
import cv2
import msgpack
import numpy as np

from bus.messages import Transform, Vector3
from sim.carla_server import wire
from sim.carla_server.world import Actor, compose, rotate_to_local
from sim.geometry import Box2D, overlaps
from sim.render import Appearance, CameraSpec, Renderer, RenderObject
from sim.render.renderer import Frame
from sim.render.scenery import place_scenery
from sim.scene import light_objects, map_ground_raster

if TYPE_CHECKING:
    from sim.carla_server.world import ServerWorld

log = logging.getLogger(__name__)

GRAVITY = 9.81
DEPTH_SCALE = float(256 ** 3 - 1)
CAMERA_KINDS = (wire.SENSOR_RGB, wire.SENSOR_DEPTH, wire.SENSOR_SEMANTIC)


def encode_rgb(frame: Frame) -> np.ndarray:
    """BGRA (H, W, 4) uint8 of the renderer's BGR image, alpha 255."""
    return cv2.cvtColor(frame.rgb, cv2.COLOR_BGR2BGRA)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """CARLA's depth image: metres (along the optical axis, 1000 = far plane)
    as a 24-bit fraction of 1000 m, R the least significant byte; BGRA order."""
    v = np.rint(np.clip(depth_m / 1000.0, 0.0, 1.0) * DEPTH_SCALE).astype(np.uint32)
    out = np.empty((*depth_m.shape, 4), np.uint8)
    out[..., 2] = v & 0xFF
    out[..., 1] = (v >> 8) & 0xFF
    out[..., 0] = (v >> 16) & 0xFF
    out[..., 3] = 255
    return out


def decode_depth(bgra: np.ndarray) -> np.ndarray:
    """Metres from a CARLA depth image (the inverse of :func:`encode_depth`)."""
    b, g, r = (bgra[..., i].astype(np.float64) for i in range(3))
    return 1000.0 * (r + g * 256.0 + b * 65536.0) / DEPTH_SCALE


def encode_semantic(labels: np.ndarray) -> np.ndarray:
    """CARLA's raw semantic image: the label id in the red channel (BGRA)."""
    out = np.zeros((*labels.shape, 4), np.uint8)
    out[..., 2] = labels
    out[..., 3] = 255
    return out


class Sensors:
    """The sensors of one world. The renderer (ground raster and scenery: seconds on
    a town) is built in the background from the start when ``eager``, else by the
    first camera that needs it."""

    def __init__(self, world: ServerWorld, has_subscriber: Callable[[int], bool],
                 eager: bool = True) -> None:
        self.has_subscriber = has_subscriber
        self._renderer: Renderer | None = None
        self._error: Exception | None = None
        self._light_cache: dict[tuple[int, str], list[RenderObject]] = {}
        self._light_ids = dict(world.light_actor)
        self._lock = threading.Lock()
        self._build = threading.Thread(target=self._make_renderer, args=(world,),
                                       name="carla-renderer-build", daemon=True)
        if eager:
            self._build.start()

    def _make_renderer(self, world: ServerWorld) -> None:
        try:
            ground = map_ground_raster(world.map)
            self._renderer = Renderer(ground, [], Appearance.sample(world.seed),
                                      place_scenery(ground, world.seed))
        except Exception as exc:  # reported when a camera needs it
            log.exception("renderer")
            self._error = exc

    def close(self) -> None:
        """Wait for a background build: a thread still inside the carla library when
        the interpreter exits aborts the process."""
        with self._lock:
            if self._build.is_alive():
                self._build.join()

    def wait_ready(self) -> None:
        """Build the renderer now if need be (RuntimeError if that fails)."""
        _ = self.renderer

    @property
    def renderer(self) -> Renderer:
        with self._lock:
            if self._build.ident is None:  # lazy: build it in this thread
                self._build.start()
            self._build.join()
        if self._renderer is None:
            raise RuntimeError(f"the renderer could not be built: {self._error}")
        return self._renderer

    # -------------------------------------------------------------- lifecycle
    def added(self, actor: Actor) -> None:
        s = actor.sensor
        assert s is not None
        if s.sensor_type in CAMERA_KINDS:
            s.mount = actor.transform if actor.parent else Transform()
            self.renderer.add_camera(CameraSpec(str(actor.id), s.width, s.height, s.fov,
                                                s.mount))

    def removed(self, actor: Actor) -> None:
        if actor.sensor is not None and actor.sensor.sensor_type in CAMERA_KINDS \
                and self._renderer is not None:
            self._renderer.remove_camera(str(actor.id))

    # -------------------------------------------------------------- per tick
    def tick(self, world: ServerWorld) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        cameras: list[Actor] = []
        for a in list(world.actors.values()):
            s = a.sensor
            if s is None:
                continue
            if s.tick_s > 0:
                if world.time + 1e-9 < s.next_s:
                    continue
                s.next_s = world.time + s.tick_s
            if s.sensor_type in CAMERA_KINDS:
                if self.has_subscriber(a.id):
                    cameras.append(a)
            elif s.sensor_type == wire.SENSOR_COLLISION:
                out += self._collisions(world, a)
            elif s.sensor_type == wire.SENSOR_GNSS and self.has_subscriber(a.id):
                out.append((a.id, self._gnss(world, a)))
            elif s.sensor_type == wire.SENSOR_IMU and self.has_subscriber(a.id):
                out.append((a.id, self._imu(world, a)))
        if cameras:
            out += self._cameras(world, cameras)
        return out

    def render(self, world: ServerWorld, cameras: list[Actor]) -> dict[int, Frame]:
        """The renderer's frames of ``cameras`` for the world as it is now."""
        views = {}
        for a in cameras:
            parent = world.actors.get(a.parent) if a.parent else None
            body = world.world_transform(parent if parent is not None else a)
            mount = a.transform if parent is not None else Transform()
            hidden = [parent.id] if parent is not None and _inside(parent, mount) else []
            views[str(a.id)] = (body, hidden)
            s = a.sensor
            assert s is not None
            if s.mount != mount:  # moved (set_transform, or a free camera): new spec
                self.renderer.remove_camera(str(a.id))
                self.renderer.add_camera(CameraSpec(str(a.id), s.width, s.height, s.fov,
                                                    mount))
                s.mount = mount
        frames = self.renderer.render_views(views, self.objects(world), tick=world.frame)
        return {int(k): v for k, v in frames.items()}

    def objects(self, world: ServerWorld) -> list[RenderObject]:
        """Every vehicle and walker as a box, and the traffic lights."""
        objs = []
        for a in world.actors.values():
            if not (a.is_vehicle or a.walker is not None or a.client_walker is not None):
                continue
            tf = world.world_transform(a)
            centre = compose(tf, Transform(a.box_location))
            objs.append(RenderObject(a.id, a.label, centre, (a.extent.x, a.extent.y,
                                                             a.extent.z)))
        objs += light_objects(world.lights, self._light_cache, self._light_ids)
        return objs

    def _cameras(self, world: ServerWorld, cameras: list[Actor]) -> list[tuple[int, bytes]]:
        frames = self.render(world, cameras)
        out = []
        for a in cameras:
            s = a.sensor
            assert s is not None
            f = frames[a.id]
            if s.sensor_type == wire.SENSOR_RGB:
                img = encode_rgb(f)
            elif s.sensor_type == wire.SENSOR_DEPTH:
                img = encode_depth(f.depth)
            else:
                img = encode_semantic(f.labels)
            out.append((a.id, wire.image_payload(s.sensor_type, world.frame, world.time,
                                                 world.world_transform(a), s.fov,
                                                 img.tobytes(), s.width, s.height)))
        return out

    def _collisions(self, world: ServerWorld, a: Actor) -> list[tuple[int, bytes]]:
        parent = world.actors.get(a.parent)
        if parent is None or not (parent.is_vehicle or parent.client_walker is not None
                                  or parent.walker is not None):
            return []
        tf = world.world_transform(parent)
        box = Box2D(tf.location.x, tf.location.y, tf.rotation.yaw, parent.extent.x,
                    parent.extent.y)
        ids, boxes = world.collider_boxes(exclude=(parent.id,))
        if not ids:
            return []
        out = []
        for other_id, hit in zip(ids, overlaps(box, boxes), strict=True):
            if not hit:
                continue
            other = world.actors[other_id]
            impulse = _impulse(world, parent, other)
            data = [world.actor_msg(parent), world.actor_msg(other), wire.vec(impulse)]
            out.append((a.id, wire.sensor_header(wire.SENSOR_COLLISION, world.frame,
                                                 world.time, world.world_transform(a))
                        + msgpack.packb(data, use_bin_type=True)))
        return out

    def _gnss(self, world: ServerWorld, a: Actor) -> bytes:
        tf = world.world_transform(a)
        geo = world.map.transform_to_geolocation(carla.Location(
            tf.location.x, tf.location.y, tf.location.z))
        data = [float(geo.latitude), float(geo.longitude), float(geo.altitude)]
        return wire.sensor_header(wire.SENSOR_GNSS, world.frame, world.time, tf) + \
            msgpack.packb(data, use_bin_type=True)

    def _imu(self, world: ServerWorld, a: Actor) -> bytes:
        tf = world.world_transform(a)
        acc = world.acceleration(a)
        local = rotate_to_local(tf, Vector3(acc.x, acc.y, acc.z + GRAVITY))
        w = world.angular_velocity(a)
        gyro = rotate_to_local(tf, Vector3(*(math.radians(c) for c in (w.x, w.y, w.z))))
        compass = math.radians(tf.rotation.yaw + 90.0) % (2 * math.pi)
        data = [wire.vec(local), wire.vec(gyro), float(compass)]
        return wire.sensor_header(wire.SENSOR_IMU, world.frame, world.time, tf) + \
            msgpack.packb(data, use_bin_type=True)


def _inside(parent: Actor, mount: Transform) -> bool:
    """Whether a mount point (parent frame) lies inside the parent's box."""
    loc, c, e = mount.location, parent.box_location, parent.extent
    return (abs(loc.x - c.x) < e.x and abs(loc.y - c.y) < e.y and abs(loc.z - c.z) < e.z)


def _impulse(world: ServerWorld, a: Actor, other: Actor) -> Vector3:
    ta, tb = world.world_transform(a), world.world_transform(other)
    dx, dy = ta.location.x - tb.location.x, ta.location.y - tb.location.y
    n = math.hypot(dx, dy) or 1.0
    va, vb = world.velocity(a), world.velocity(other)
    closing = max(0.0, -((va.x - vb.x) * dx + (va.y - vb.y) * dy) / n)
    mass = a.body.params.mass if a.body is not None else 1500.0
    return Vector3(mass * closing * dx / n, mass * closing * dy / n, 0.0)

