"""The bus's EgoState and GroundTruth from CARLA actors.

Everything is read from the client's snapshot of the frame just ticked (CARLA's
``get_transform``/``get_velocity``/... read the latest episode state, not an RPC),
so all of it belongs to that frame. World frame: CARLA's (m, deg); velocities m/s,
accelerations m/s^2, angular velocity deg/s; CARLA's speed limit is km/h and the
bus's m/s.

Traffic lights: the lights are found in the map as the embedded simulator finds
them (:func:`sim.traffic_lights.discover_traffic_lights`, so ids, stop lines and
governed lanes are the same on both backends); their states come from the server's
``traffic.traffic_light`` actors, matched by OpenDRIVE signal id.
"""

from __future__ import annotations

import math
from typing import Any

import carla

from bus.frames import from_carla_transform
from bus.messages import (
    ActorState,
    BoundingBox,
    EgoState,
    GroundTruth,
    Header,
    LaneRef,
    Vector3,
    VehicleControl,
)
from sim.geometry import Box2D
from sim.labels import Label
from sim.traffic_lights import TrafficLights

#: CARLA TrafficLightState names -> the bus's light states
LIGHT_STATE_NAMES = {"Red": "red", "Yellow": "yellow", "Green": "green", "Off": "off",
                     "Unknown": "unknown"}
#: semantic tags that name a vehicle's class (else Car)
VEHICLE_LABELS = (Label.TRUCK, Label.BUS, Label.MOTORCYCLE, Label.BICYCLE, Label.CAR)


def _vec(v: Any) -> Vector3:
    return Vector3(float(v.x), float(v.y), float(v.z))


def ego_state(vehicle: Any, header: Header, control: VehicleControl) -> EgoState:
    """The ego as CARLA has it now; ``control`` is what was applied in the last step."""
    tf = vehicle.get_transform()
    v = vehicle.get_velocity()
    return EgoState(
        header=header, transform=from_carla_transform(tf), velocity=_vec(v),
        acceleration=_vec(vehicle.get_acceleration()),
        speed=math.hypot(float(v.x), float(v.y), float(v.z)),
        yaw_rate=float(vehicle.get_angular_velocity().z),
        speed_limit=float(vehicle.get_speed_limit()) / 3.6, control=control)


def ego_box(vehicle: Any) -> Box2D:
    """The ego's 2D box on the ground (world x, y, yaw and half sizes, m/deg)."""
    tf = vehicle.get_transform()
    bb = vehicle.bounding_box
    yaw = math.radians(tf.rotation.yaw)
    # the box centre is offset from the actor origin in the vehicle frame
    cx = tf.location.x + bb.location.x * math.cos(yaw) - bb.location.y * math.sin(yaw)
    cy = tf.location.y + bb.location.x * math.sin(yaw) + bb.location.y * math.cos(yaw)
    return Box2D(cx, cy, tf.rotation.yaw, float(bb.extent.x), float(bb.extent.y))


def actor_label(actor: Any) -> int:
    """CARLA's CityObjectLabel of a vehicle or walker (semantic tags when given)."""
    if actor.type_id.startswith("walker."):
        return int(Label.PEDESTRIANS)
    tags = set(getattr(actor, "semantic_tags", []) or [])
    return int(next((lab for lab in VEHICLE_LABELS if int(lab) in tags), Label.CAR))


class LightStates:
    """The map's traffic lights (:class:`TrafficLights`, never cycling on their own)
    with their states copied from the server's light actors each frame."""

    def __init__(self, carla_map: carla.Map) -> None:
        self.lights = TrafficLights.from_map(carla_map)
        self._by_signal = {sid: light.id for light in self.lights.lights
                           for sid in light.signal_ids}

    def update(self, actors: Any) -> int:
        """Copy each light actor's state (by OpenDRIVE id); returns how many matched."""
        matched = 0
        for actor in actors:
            if not actor.type_id.startswith("traffic.traffic_light"):
                continue
            light_id = self._by_signal.get(str(actor.get_opendrive_id()))
            if light_id is None:
                continue
            state = LIGHT_STATE_NAMES.get(str(actor.get_state()).rsplit(".", 1)[-1], "unknown")
            self.lights.set_state(light_id, state)
            matched += 1
        return matched

    def red_light_crossed(self, prev: Any, cur: Any) -> int | None:
        light = self.lights.red_light_crossed(prev, cur)
        return None if light is None else light.id


def ground_truth(actors: Any, ego: Any, header: Header, lights: LightStates,
                 carla_map: carla.Map) -> GroundTruth:
    """Every vehicle and walker but the ego, every light, and the ego's lane."""
    out = []
    for a in actors:
        if a.id == ego.id or not a.type_id.startswith(("vehicle.", "walker.")):
            continue
        bb = a.bounding_box
        out.append(ActorState(
            id=int(a.id), type_id=str(a.type_id), label=actor_label(a),
            transform=from_carla_transform(a.get_transform()), velocity=_vec(a.get_velocity()),
            bounding_box=BoundingBox(_vec(bb.location), _vec(bb.extent))))
    loc = ego.get_transform().location
    wp = carla_map.get_waypoint(carla.Location(loc.x, loc.y, loc.z), project_to_road=False)
    lane = LaneRef(wp.road_id, wp.section_id, wp.lane_id) if wp is not None else LaneRef()
    return GroundTruth(header=header, ego_id=int(ego.id), actors=out,
                       traffic_lights=lights.lights.ground_truth(), ego_lane=lane)
