"""Spawn points for vehicles, from a ``carla.Map``'s driving lanes.

CARLA keeps its spawn points in the Unreal level, so an offline ``carla.Map`` built
from OpenDRIVE text has none (``get_spawn_points()`` returns an empty list). These
are made the way CARLA's look: on driving lanes, facing the direction of travel,
half a metre above the road (a vehicle dropped there settles onto it), never in a
junction, never just before one (a spawned car must not start across a stop line or
inside a crossing) and never right after one.

They are ``carla.Transform`` (CARLA world frame: metres, degrees), so the same code
handles spawn points from a live CARLA server and from here; ``bus.frames``
converts to the bus's Transform where a message needs one.
"""

from __future__ import annotations

import carla

__all__ = ["spawn_points"]

# Step (m) when looking along a lane for a junction or a dead end. Shorter than any
# junction lane in CARLA's towns or ours, so none is stepped over.
_LOOK_STEP_M = 2.0


def spawn_points(carla_map: carla.Map, spacing_m: float = 20.0,
                 junction_clearance_m: float = 10.0, after_junction_m: float = 5.0,
                 z_offset_m: float = 0.5, min_lane_width_m: float = 2.5,
                 ) -> list[carla.Transform]:
    """Spawn points every ``spacing_m`` metres along each driving lane.

    A point is kept when its lane is at least ``min_lane_width_m`` wide, it is not
    in a junction, the lane goes on for ``junction_clearance_m`` without entering a
    junction or ending, and no junction lies within ``after_junction_m`` behind it.
    The transform is the lane centre raised by ``z_offset_m`` (m) with the lane's
    yaw (deg) and no pitch or roll. The order is deterministic: by road, lane and s.
    """
    if spacing_m <= 0:
        raise ValueError(f"spacing_m must be > 0, not {spacing_m}")
    keep: list[tuple[tuple[int, int, int, float], carla.Transform]] = []
    for wp in carla_map.generate_waypoints(spacing_m):
        if (wp.lane_type != carla.LaneType.Driving or wp.is_junction
                or wp.lane_width < min_lane_width_m):
            continue
        if not _clear(wp, junction_clearance_m, forward=True):
            continue
        if not _clear(wp, after_junction_m, forward=False):
            continue
        t = wp.transform
        loc = carla.Location(t.location.x, t.location.y, t.location.z + z_offset_m)
        keep.append(((wp.road_id, wp.section_id, wp.lane_id, round(wp.s, 3)),
                     carla.Transform(loc, carla.Rotation(pitch=0.0, yaw=t.rotation.yaw,
                                                         roll=0.0))))
    keep.sort(key=lambda item: item[0])
    return [t for _, t in keep]


def _clear(wp: carla.Waypoint, distance: float, forward: bool) -> bool:
    """No junction within ``distance`` m ahead (or behind) of ``wp``; ahead, the lane
    must also not end within it. A lane that starts (nothing behind) is clear."""
    if distance <= 0:
        return True
    steps = [k * _LOOK_STEP_M for k in range(1, int(distance / _LOOK_STEP_M) + 1)]
    if not steps or steps[-1] < distance - 1e-6:
        steps.append(distance)
    for d in steps:
        found = wp.next(d) if forward else wp.previous(d)
        if not found:
            return not forward
        if any(w.is_junction for w in found):
            return False
    return True
