"""Byte layouts of CARLA 0.9.16's wire protocol: the msgpack shapes of the RPC
structs and the packed C structs of the streams.

The client validates nothing: a record one byte short aborts its whole process
(std::bad_alloc), so every size here is asserted at import and covered by golden
tests (tests/sim/carla_server/test_wire.py). Facts and sources:
../shared/design/CARLA_PROTOCOL.md.

Frames and units: CARLA's world frame (metres, left-handed, z up; rotations in
degrees as pitch, yaw, roll); velocities m/s, angular velocities deg/s,
accelerations m/s^2; timestamps sim seconds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bus.messages import Rotation, Transform, Vector3, VehicleControl

# ------------------------------------------------------------------ struct layouts
#: streaming token: u32 stream id, u16 port, u8 protocol, u8 address type, 16 address bytes
TOKEN = struct.Struct("<IHBB16s")
#: every sensor payload starts with: u64 sensor type, u64 frame, f64 timestamp,
#: sensor world transform as 6 f32 (x, y, z, pitch, yaw, roll)
SENSOR_HEADER = struct.Struct("<QQd6f")
#: episode state after the sensor header: u64 episode id, f64 platform timestamp,
#: f32 delta seconds, 3 i32 map origin, i32 simulation-state flags
EPISODE_HEADER = struct.Struct("<Qdf3ii")
#: one actor's dynamic state, common part: u32 id, u8 actor state, transform (6 f32),
#: velocity, angular velocity, acceleration (3 f32 each)
ACTOR_COMMON = struct.Struct("<IB6f3f3f3f")
#: the type-dependent union that follows (its largest member, the traffic light's)
UNION_SIZE = 54
ACTOR_RECORD_SIZE = ACTOR_COMMON.size + UNION_SIZE
#: union member of a vehicle: throttle, steer, brake, hand_brake, reverse,
#: manual_gear_shift, gear, speed_limit (km/h), light state, has light, light id,
#: failure state
VEHICLE_DATA = struct.Struct("<3f3BifBBIB")
#: union member of a traffic light: sign id, green/yellow/red/elapsed time (s),
#: pole index, time frozen, state
LIGHT_DATA = struct.Struct("<32s4fIBB")
#: union member of a walker: direction (3 f32), speed (m/s), jump
WALKER_DATA = struct.Struct("<3ffB")
#: camera image after the sensor header: u32 width, u32 height, f32 fov (deg)
IMAGE_HEADER = struct.Struct("<IIf")

assert TOKEN.size == 24
assert SENSOR_HEADER.size == 48
assert EPISODE_HEADER.size == 36
assert ACTOR_COMMON.size == 65
assert ACTOR_RECORD_SIZE == 119
assert LIGHT_DATA.size == UNION_SIZE
assert VEHICLE_DATA.size <= UNION_SIZE and WALKER_DATA.size <= UNION_SIZE

# Sensor type ids: indices in the 0.9.16 client's compiled sensor registry.
SENSOR_COLLISION = 0
SENSOR_DEPTH = 1
SENSOR_GNSS = 4
SENSOR_IMU = 5
SENSOR_LANE_INVASION = 6
SENSOR_RGB = 13
SENSOR_SEMANTIC = 14
SENSOR_EPISODE_STATE = 17

# carla.TrafficLightState
LIGHT_STATE_IDS = {"red": 0, "yellow": 1, "green": 2, "off": 3, "unknown": 4}
LIGHT_STATE_NAMES = {v: k for k, v in LIGHT_STATE_IDS.items()}

# ActorAttributeType, 1-based at run time in the 0.9.16 client
ATTR_BOOL, ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_RGBCOLOR = 1, 2, 3, 4, 5

# simulation-state flags of the episode header
FLAG_MAP_CHANGE = 1
FLAG_PENDING_LIGHT_UPDATE = 2

PROTOCOL_TCP = 1
ADDRESS_UNSET = 0  # the client uses the RPC host


def token(stream_id: int, port: int) -> bytes:
    """A streaming token: the stream on ``port`` of the RPC host, over TCP."""
    return TOKEN.pack(stream_id, port, PROTOCOL_TCP, ADDRESS_UNSET, bytes(16))


def parse_token(data: bytes) -> tuple[int, int]:
    """(stream id, port) of a token (the inverse of :func:`token`, for tests)."""
    stream_id, port, _, _, _ = TOKEN.unpack(data)
    return stream_id, port


def sensor_header(sensor_type: int, frame: int, timestamp: float, tf: Transform) -> bytes:
    """The 48-byte header every stream payload starts with; ``tf`` is the sensor's
    world transform at ``frame``."""
    return SENSOR_HEADER.pack(sensor_type, frame, timestamp, tf.location.x, tf.location.y,
                              tf.location.z, tf.rotation.pitch, tf.rotation.yaw,
                              tf.rotation.roll)


# ------------------------------------------------------------------ episode state
@dataclass(frozen=True)
class VehicleRecord:
    """The vehicle part of an actor record. ``speed_limit`` in km/h (CARLA's unit),
    ``light_state`` a :data:`LIGHT_STATE_IDS` value, ``light_id`` its actor id."""

    control: VehicleControl = field(default_factory=VehicleControl)
    speed_limit: float = 0.0
    light_state: int = LIGHT_STATE_IDS["green"]
    has_light: bool = False
    light_id: int = 0
    failure_state: int = 0

    def pack(self) -> bytes:
        c = self.control
        return VEHICLE_DATA.pack(c.throttle, c.steer, c.brake, c.hand_brake, c.reverse,
                                 c.manual_gear_shift, c.gear, self.speed_limit,
                                 self.light_state, self.has_light, self.light_id,
                                 self.failure_state)


@dataclass(frozen=True)
class LightRecord:
    """The traffic-light part of an actor record; times in seconds."""

    sign_id: str
    state: int
    green_time: float
    yellow_time: float
    red_time: float
    elapsed_time: float
    pole_index: int = 0
    time_is_frozen: bool = False

    def pack(self) -> bytes:
        return LIGHT_DATA.pack(self.sign_id.encode()[:31], self.green_time, self.yellow_time,
                               self.red_time, self.elapsed_time, self.pole_index,
                               self.time_is_frozen, self.state)


@dataclass(frozen=True)
class WalkerRecord:
    """The walker part of an actor record: walking direction (unit, world) and speed."""

    direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    speed: float = 0.0
    jump: bool = False

    def pack(self) -> bytes:
        return WALKER_DATA.pack(*self.direction, self.speed, self.jump)


@dataclass(frozen=True)
class ActorRecord:
    """One actor in the episode state: id, world transform, velocity (m/s), angular
    velocity (deg/s), acceleration (m/s^2), and its type-dependent part (None for
    sensors, the spectator and other actors: zeros)."""

    id: int
    transform: Transform
    velocity: Vector3 = field(default_factory=Vector3)
    angular_velocity: Vector3 = field(default_factory=Vector3)
    acceleration: Vector3 = field(default_factory=Vector3)
    data: VehicleRecord | LightRecord | WalkerRecord | None = None
    active: bool = True

    def pack(self) -> bytes:
        t, v, w, a = self.transform, self.velocity, self.angular_velocity, self.acceleration
        common = ACTOR_COMMON.pack(
            self.id, 1 if self.active else 0, t.location.x, t.location.y, t.location.z,
            t.rotation.pitch, t.rotation.yaw, t.rotation.roll, v.x, v.y, v.z, w.x, w.y, w.z,
            a.x, a.y, a.z)
        union = self.data.pack() if self.data is not None else b""
        return common + union.ljust(UNION_SIZE, b"\0")


def episode_state(episode_id: int, frame: int, timestamp: float, platform_time: float,
                  delta_seconds: float, actors: Sequence[ActorRecord | bytes],
                  flags: int = 0) -> bytes:
    """The world observer's payload (sensor type 17): header, episode header, then
    one 119-byte record per actor (a record, or one already packed). The header's
    transform is the identity."""
    head = sensor_header(SENSOR_EPISODE_STATE, frame, timestamp, Transform())
    ep = EPISODE_HEADER.pack(episode_id, platform_time, delta_seconds, 0, 0, 0, flags)
    records = [a if isinstance(a, bytes) else a.pack() for a in actors]
    bad = [len(r) for r in records if len(r) != ACTOR_RECORD_SIZE]
    if bad:
        raise ValueError(f"actor records must be {ACTOR_RECORD_SIZE} bytes, got {bad[0]}")
    return b"".join([head, ep, *records])


def parse_episode_state(payload: bytes) -> dict[str, Any]:
    """Decode an episode-state payload (tests and tools): header fields and
    per-actor (id, transform tuple, union bytes)."""
    stype, frame, ts, *_ = SENSOR_HEADER.unpack_from(payload, 0)
    ep_id, platform, delta, _, _, _, flags = EPISODE_HEADER.unpack_from(payload, 48)
    body = payload[48 + EPISODE_HEADER.size:]
    if len(body) % ACTOR_RECORD_SIZE:
        raise ValueError(f"actor records: {len(body)} bytes is not a multiple of "
                         f"{ACTOR_RECORD_SIZE}")
    actors = []
    for i in range(0, len(body), ACTOR_RECORD_SIZE):
        vals = ACTOR_COMMON.unpack_from(body, i)
        actors.append({"id": vals[0], "state": vals[1], "transform": vals[2:8],
                       "velocity": vals[8:11], "angular_velocity": vals[11:14],
                       "acceleration": vals[14:17],
                       "union": body[i + ACTOR_COMMON.size:i + ACTOR_RECORD_SIZE]})
    return {"type": stype, "frame": frame, "timestamp": ts, "episode_id": ep_id,
            "platform_timestamp": platform, "delta_seconds": delta, "flags": flags,
            "actors": actors}


def image_payload(sensor_type: int, frame: int, timestamp: float, tf: Transform,
                  fov: float, bgra: bytes | memoryview, width: int, height: int) -> bytes:
    """A camera image: header, width, height, fov, then W x H x 4 BGRA bytes."""
    if len(bgra) != width * height * 4:
        raise ValueError(f"image of {width}x{height} needs {width * height * 4} bytes, "
                         f"got {len(bgra)}")
    return b"".join([sensor_header(sensor_type, frame, timestamp, tf),
                     IMAGE_HEADER.pack(width, height, fov), bgra])


# ------------------------------------------------------------------ RPC shapes
def ok(value: Any) -> list:
    """``Response<T>`` holding a value."""
    return [[1, value]]


def ok_void() -> list:
    """``Response<void>`` success."""
    return [[False]]


def error(message: str, void: bool = False) -> list:
    """``Response<T>`` (or ``Response<void>``) holding an error; the client raises
    RuntimeError(message)."""
    return [[True, [message]]] if void else [[0, [message]]]


def optional(value: Any) -> list:
    return [False] if value is None else [True, value]


def vec(v: Vector3) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def rot(r: Rotation) -> list[float]:
    return [float(r.pitch), float(r.yaw), float(r.roll)]


def transform_msg(t: Transform) -> list:
    """``geom::Transform``: [[x, y, z], [pitch, yaw, roll]]."""
    return [vec(t.location), rot(t.rotation)]


def bbox_msg(location: Vector3, extent: Vector3, rotation: Rotation | None = None) -> list:
    """``geom::BoundingBox``: [location, extent, rotation] (actor frame)."""
    return [vec(location), vec(extent), rot(rotation or Rotation())]


def _floats(values: Any, n: int, what: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) < n:
        raise ValueError(f"{what}: expected an array of {n} numbers, got {values!r}")
    out = []
    for v in values[:n]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{what}: expected finite numbers, got {values!r}")
        out.append(float(v))
    return out


def parse_vector(msg: Any, what: str = "Vector3D") -> Vector3:
    return Vector3(*_floats(msg, 3, what))


def parse_transform(msg: Any) -> Transform:
    """A ``geom::Transform`` sent by the client."""
    if not isinstance(msg, (list, tuple)) or len(msg) < 2:
        raise ValueError(f"Transform: expected [location, rotation], got {msg!r}")
    loc = _floats(msg[0], 3, "Transform.location")
    r = _floats(msg[1], 3, "Transform.rotation")
    return Transform(Vector3(*loc), Rotation(*r))


def parse_control(msg: Any) -> VehicleControl:
    """A ``rpc::VehicleControl`` [throttle, steer, brake, hand_brake, reverse,
    manual_gear_shift, gear], clamped to CARLA's ranges as the server does."""
    if not isinstance(msg, (list, tuple)) or len(msg) < 3:
        raise ValueError(f"VehicleControl: expected an array, got {msg!r}")
    throttle, steer, brake = _floats(msg[:3], 3, "VehicleControl")
    flags = [bool(x) for x in msg[3:6]] + [False] * (3 - len(msg[3:6]))
    gear = int(msg[6]) if len(msg) > 6 and isinstance(msg[6], int) else 0
    return VehicleControl(min(max(throttle, 0.0), 1.0), min(max(steer, -1.0), 1.0),
                          min(max(brake, 0.0), 1.0), flags[0], flags[1], flags[2], gear)


@dataclass
class EpisodeSettings:
    """``rpc::EpisodeSettings`` (the 11 fields of 0.9.16, in wire order)."""

    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10
    max_culling_distance: float = 0.0
    deterministic_ragdolls: bool = True
    tile_stream_distance: float = 3000.0
    actor_active_distance: float = 2000.0
    spectator_as_ego: bool = True

    def to_msg(self) -> list:
        return [self.synchronous_mode, self.no_rendering_mode,
                optional(None if self.fixed_delta_seconds is None
                         else float(self.fixed_delta_seconds)),
                self.substepping, float(self.max_substep_delta_time), int(self.max_substeps),
                float(self.max_culling_distance), self.deterministic_ragdolls,
                float(self.tile_stream_distance), float(self.actor_active_distance),
                self.spectator_as_ego]

    @classmethod
    def from_msg(cls, msg: Any) -> EpisodeSettings:
        if not isinstance(msg, (list, tuple)) or len(msg) < 3:
            raise ValueError(f"EpisodeSettings: expected an array, got {msg!r}")
        fixed = msg[2]
        delta: float | None = None
        if isinstance(fixed, (list, tuple)) and fixed and fixed[0] is True and len(fixed) > 1:
            delta = float(fixed[1])
        elif isinstance(fixed, (int, float)) and not isinstance(fixed, bool):
            delta = float(fixed)
        if delta is not None and not (math.isfinite(delta) and delta > 0):
            delta = None  # CARLA treats 0 as variable time step
        s = cls(bool(msg[0]), bool(msg[1]), delta)
        rest = list(msg[3:11])
        names = ["substepping", "max_substep_delta_time", "max_substeps",
                 "max_culling_distance", "deterministic_ragdolls", "tile_stream_distance",
                 "actor_active_distance", "spectator_as_ego"]
        for name, value in zip(names, rest, strict=False):
            kind = type(getattr(s, name))
            try:
                setattr(s, name, kind(value))
            except (TypeError, ValueError):
                pass
        return s


@dataclass
class Weather:
    """``rpc::WeatherParameters`` in wire order (CARLA's units: percent, degrees,
    metres)."""

    cloudiness: float = 5.0
    precipitation: float = 0.0
    precipitation_deposits: float = 0.0
    wind_intensity: float = 10.0
    sun_azimuth_angle: float = -1.0
    sun_altitude_angle: float = 45.0
    fog_density: float = 2.0
    fog_distance: float = 0.75
    fog_falloff: float = 0.1
    wetness: float = 0.0
    scattering_intensity: float = 1.0
    mie_scattering_scale: float = 0.03
    rayleigh_scattering_scale: float = 0.0331
    dust_storm: float = 0.0

    FIELDS = ("cloudiness", "precipitation", "precipitation_deposits", "wind_intensity",
              "sun_azimuth_angle", "sun_altitude_angle", "fog_density", "fog_distance",
              "fog_falloff", "wetness", "scattering_intensity", "mie_scattering_scale",
              "rayleigh_scattering_scale", "dust_storm")

    def to_msg(self) -> list[float]:
        return [float(getattr(self, f)) for f in self.FIELDS]

    @classmethod
    def from_msg(cls, msg: Any) -> Weather:
        if not isinstance(msg, (list, tuple)):
            raise ValueError(f"WeatherParameters: expected an array, got {msg!r}")
        w = cls()
        for name, value in zip(cls.FIELDS, msg, strict=False):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(w, name, float(value))
        return w


@dataclass(frozen=True)
class Description:
    """``rpc::ActorDescription`` sent by the client: blueprint uid, id and the
    attribute values (id -> (type, value string))."""

    uid: int
    id: str
    attributes: dict[str, tuple[int, str]]

    @classmethod
    def from_msg(cls, msg: Any) -> Description:
        if not isinstance(msg, (list, tuple)) or len(msg) < 2 or not isinstance(msg[1], str):
            raise ValueError(f"ActorDescription: expected [uid, id, attributes], got {msg!r}")
        attrs: dict[str, tuple[int, str]] = {}
        for a in (msg[2] if len(msg) > 2 and isinstance(msg[2], (list, tuple)) else []):
            if isinstance(a, (list, tuple)) and len(a) >= 3 and isinstance(a[0], str):
                attrs[a[0]] = (int(a[1]), str(a[2]))
        return cls(int(msg[0]) if isinstance(msg[0], int) else 0, msg[1], attrs)

    def to_msg(self) -> list:
        return [self.uid, self.id, [[k, t, v] for k, (t, v) in self.attributes.items()]]


def actor_msg(actor_id: int, parent_id: int, description: Description, bbox: list,
              semantic_tags: bytes, stream_token: bytes) -> list:
    """``rpc::Actor``: [id, parent id, description, bounding box, semantic tags (bin),
    stream token (bin: empty, or 24 bytes for a sensor with a stream)]."""
    return [actor_id, parent_id, description.to_msg(), bbox, bytes(semantic_tags),
            bytes(stream_token)]
