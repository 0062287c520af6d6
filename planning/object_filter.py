"""Which perceived objects the planner reacts to: vehicles must be on a driving lane.

A camera's detections include false positives, and a persistent one ahead of the
car stops it for good: grass on the inside of a bend, a hedge or a wall taken for a
vehicle lies beside the road, where the bend brings it into the corridor the
behaviour layer checks (its box, fitted to a patch of grass, may even reach into
the lane). Autoware drops such objects with its map (``object_lanelet_filter``:
objects outside the lanelets are removed before planning). Here a vehicle is kept
when its centre is within ``margin_m`` (along its box's axes) of a driving lane of
the map, or when at least ``min_overlap`` of its footprint is on driving lanes
(sampled at the box's corners, edge midpoints and centre: a box that merges a car
with the kerb beside it); the rest are dropped. A vehicle that matters to the ego
is on a lane, driving, turning through a junction or stopped; the centre of a real
car placed a metre off is still in its lane, which is over 3 m wide. Pedestrians
are kept wherever they are: they walk beside the road and step into it.

Measured on the recordings of the built-in scenarios driven with the CNN (ground
truth within 3 m counts a detection as real): 2 of 677 real vehicle detections
dropped (both over 20 m away, beside the road), and 4434 of 11948 others.

A vehicle is also dropped when it is lower than ``min_vehicle_height_m``: the
network takes the asphalt round a painted stop bar (seen on Town01; the built-in
maps paint stop bars too) for a car, on the lane, and such a box is 0.6-1.0 m high, a car 1.1-1.5 m
(5th-95th percentiles, boxes kept by the lane test within 25 m ahead on the
recordings of six Town01 routes and the built-in scenarios: 1 m drops 2480 of
2799 false vehicles and 6 of 214 real ones, five of them over 20 m away). The
false car on a stop bar held Town01 route 2 for 107 s.

Frames: objects in the ego frame (as perceived), the map in the CARLA world frame
(metres, degrees, y to the right).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import carla
import numpy as np

from bus import frames
from bus.messages import DetectedObject, EgoState, ObjectList

#: the points tested around the centre, in units of ``margin_m`` along the box's
#: length and width axes
_AROUND_CENTRE = np.array([(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)])
#: the footprint's sample points, in units of the half length and half width
_FOOTPRINT = np.array([(sx, sy) for sx in (-1.0, 0.0, 1.0) for sy in (-1.0, 0.0, 1.0)])


@dataclass(frozen=True)
class ObjectFilterParams:
    #: drop vehicles off the driving lanes or too low (False: keep every object)
    vehicles_on_lanes: bool = True
    #: how far (m) the centre may be off a lane: a box fitted to the visible faces
    #: of a car is placed to within about this
    margin_m: float = 0.5
    #: or at least this share of its footprint's sample points on driving lanes
    min_overlap: float = 1.0 / 3.0
    #: m: a vehicle seen lower than this is a marking or kerb taken for a car
    min_vehicle_height_m: float = 1.0

    def __post_init__(self) -> None:
        if self.margin_m < 0:
            raise ValueError("object_filter.margin_m must be >= 0")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError("object_filter.min_overlap must be in [0, 1]")
        if self.min_vehicle_height_m < 0:
            raise ValueError("object_filter.min_vehicle_height_m must be >= 0")


class ObjectFilter:
    """The objects of one tick that the planner should react to (module doc)."""

    def __init__(self, carla_map: carla.Map, params: ObjectFilterParams | None = None) -> None:
        self.map = carla_map
        self.p = params or ObjectFilterParams()

    def plausible(self, obj: DetectedObject, ego: EgoState) -> bool:
        """Whether the planner should react to ``obj`` (module doc)."""
        if obj.label != "vehicle":
            return True
        return obj.size.z >= self.p.min_vehicle_height_m and self.on_a_lane(obj, ego)

    def on_a_lane(self, obj: DetectedObject, ego: EgoState) -> bool:
        """Whether ``obj`` is on the driving lanes (module doc)."""
        if any(self._on_lanes(obj, ego, _AROUND_CENTRE * self.p.margin_m)):
            return True
        half = np.array([obj.size.x / 2, obj.size.y / 2])
        on = list(self._on_lanes(obj, ego, _FOOTPRINT * half))
        return sum(on) / len(on) >= self.p.min_overlap

    def _on_lanes(self, obj: DetectedObject, ego: EgoState,
                  local: np.ndarray) -> Iterator[bool]:
        """For each of the points ``local`` (N x 2, m along the box's length and
        width axes from its centre), lazily: whether it is on a driving lane."""
        yaw = math.radians(obj.yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        xy = np.column_stack([obj.position.x + c * local[:, 0] - s * local[:, 1],
                              obj.position.y + s * local[:, 0] + c * local[:, 1]])
        world = frames.ego_to_world(np.column_stack([xy, np.zeros(len(xy))]), ego.transform)
        for x, y, _ in world:
            yield self.map.get_waypoint(carla.Location(float(x), float(y), 0.0),
                                        project_to_road=False,
                                        lane_type=carla.LaneType.Driving) is not None

    def apply(self, objects: ObjectList, ego: EgoState) -> ObjectList:
        """``objects`` without the vehicles off the driving lanes or too low."""
        if not self.p.vehicles_on_lanes or not objects.objects:
            return objects
        kept = [o for o in objects.objects if self.plausible(o, ego)]
        if len(kept) == len(objects.objects):
            return objects
        return replace(objects, objects=kept)
