"""Oracle perception: ground truth turned into what perception would publish.

In oracle mode the planner runs on /sim/ground_truth instead of the CNN, through
the same ObjectList and TrafficLightState messages, so that a planning failure can
be told apart from a perception failure. Nothing else in planning reads ground
truth.

Frames: GroundTruth is in the world frame (CARLA: metres, degrees, left-handed);
ObjectList is in the ego frame (x forward, y right, z up), conversions from
``bus.frames``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bus import frames
from bus.messages import (
    DetectedObject,
    EgoState,
    GroundTruth,
    ObjectList,
    TrafficLightInfo,
    TrafficLightState,
    Vector3,
)

if TYPE_CHECKING:
    import carla

# CARLA CityObjectLabel ids -> ObjectList classes.
_CLASS_OF_LABEL = {14: "vehicle", 15: "vehicle", 16: "vehicle", 17: "vehicle",
                   18: "cyclist", 19: "cyclist", 12: "pedestrian", 13: "cyclist"}
MAX_RANGE_M = 80.0  # objects farther than this are not "seen"
LIGHT_LOOKAHEAD_M = 80.0
LIGHT_STEP_M = 2.0


def oracle_objects(gt: GroundTruth, ego: EgoState, max_range: float = MAX_RANGE_M
                   ) -> ObjectList:
    """Every actor of ``gt`` within ``max_range`` of the ego, in the ego frame, with
    its id as track id and confidence 1."""
    objects = []
    for actor in gt.actors:
        box = actor.bounding_box
        loc = actor.transform.location
        centre_world = np.array([loc.x, loc.y, loc.z + box.location.z])
        p = frames.world_to_ego(centre_world, ego.transform)
        if math.hypot(p[0], p[1]) > max_range:
            continue
        v = frames.vector_world_to_ego(
            np.array([actor.velocity.x, actor.velocity.y, actor.velocity.z]), ego.transform)
        objects.append(DetectedObject(
            track_id=actor.id, label=_CLASS_OF_LABEL.get(actor.label, "static"),
            position=Vector3(*map(float, p)),
            size=Vector3(2 * box.extent.x, 2 * box.extent.y, 2 * box.extent.z),
            yaw=float(frames.yaw_world_to_ego(actor.transform.rotation.yaw,
                                              ego.transform.rotation.yaw)),
            velocity=Vector3(*map(float, v)), confidence=1.0))
    return ObjectList(header=gt.header, source="oracle", objects=objects)


def oracle_traffic_light(gt: GroundTruth, ego: EgoState,
                         carla_map: carla.Map | None = None) -> TrafficLightState:
    """The state of the light governing the ego's lane ahead and the distance (m) to
    its stop line; 'unknown' with distance -1 when none is within LIGHT_LOOKAHEAD_M.

    With the map, the ego's lane is followed ahead (through later lane sections) as
    a car would see the light before it reaches the last section; without it, only
    the lane the ego is on counts."""
    by_lane: dict[tuple[int, int, int], TrafficLightInfo] = {
        (lane.road_id, lane.section_id, lane.lane_id): light
        for light in gt.traffic_lights for lane in light.lanes}
    ego_loc = ego.transform.location
    light: TrafficLightInfo | None = None
    if carla_map is not None:
        light = _light_ahead(carla_map, ego, by_lane)
    else:
        lane = gt.ego_lane
        light = by_lane.get((lane.road_id, lane.section_id, lane.lane_id))
    if light is None:
        return TrafficLightState(header=gt.header, state="unknown", distance=-1.0,
                                 confidence=1.0, source="oracle")
    d = math.hypot(light.stop_line.x - ego_loc.x, light.stop_line.y - ego_loc.y)
    return TrafficLightState(header=gt.header, state=light.state, distance=d,
                             confidence=1.0, source="oracle")


def _light_ahead(carla_map: carla.Map, ego: EgoState,
                 by_lane: dict[tuple[int, int, int], TrafficLightInfo]
                 ) -> TrafficLightInfo | None:
    import carla

    loc = ego.transform.location
    wp = carla_map.get_waypoint(carla.Location(loc.x, loc.y, loc.z))
    travelled = 0.0
    while wp is not None and travelled <= LIGHT_LOOKAHEAD_M:
        light = by_lane.get((wp.road_id, wp.section_id, wp.lane_id))
        if light is not None:
            return light
        if wp.is_junction:
            return None  # inside the junction: its light is behind us
        ahead = wp.next(LIGHT_STEP_M)
        wp = ahead[0] if ahead else None
        travelled += LIGHT_STEP_M
    return None
