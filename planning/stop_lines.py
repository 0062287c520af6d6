"""Where a perceived traffic light's stop line is: the map's junction entries along
the route.

Perception reports the state of the light that governs the ego lane (red, yellow,
green) but not where its stop line is: a camera sees the head, several metres past
the line and up in the air. The map knows: in CARLA's towns and ours, a light's
stop line is where its incoming lane enters the junction (CARLA's
``TrafficLight.get_stop_waypoints``). So, as Autoware pairs a recognised light
with its lanelet's stop line, the planner takes the state from perception and the
place from the map: the first junction entry ahead along the route, within
``lookahead_m`` (farther than the camera reads a light).

What this leaves to perception: a head stands at the stop line, 3.4-4.5 m up, and
the front camera (1.6 m up, 29 degrees above its axis at 640x360) loses it when
closer than about 5 m, so stopped at the line the state must come from what the
network still sees. The shipped network then reads red whatever the lamps show
(stopped at 1, 4.5 and 9 m before a green light alike, in pedestrian_steps_out):
the car waits at a light that has turned green until the route's timeout.

Every junction entry is a candidate: whether a junction has lights at all is not
asked of the map, so a red read while approaching an unsignalised junction stops
the car there (it waits for the state perception reports).

Frames and units: CARLA world frame, metres along the route polyline.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

import carla
import numpy as np

from bus.messages import TrafficLightState

#: Halvings of a route segment when locating a junction's entry on it (1 m / 2^7:
#: under a centimetre)
_REFINE_STEPS = 7


class JunctionEntries:
    """The route distances (m) at which a route (N x 2 world points, the local
    planner's) enters a junction of ``carla_map``."""

    def __init__(self, carla_map: carla.Map, route_xy: np.ndarray) -> None:
        xy = np.asarray(route_xy, dtype=float)
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        inside = [self._in_junction(carla_map, x, y) for x, y in xy]
        self.entries_m: list[float] = []
        for i in range(1, len(xy)):
            if inside[i] and not inside[i - 1]:
                lo, hi = 0.0, 1.0  # fractions of segment i-1 -> i: outside, inside
                for _ in range(_REFINE_STEPS):
                    mid = (lo + hi) / 2
                    p = xy[i - 1] + mid * (xy[i] - xy[i - 1])
                    if self._in_junction(carla_map, p[0], p[1]):
                        hi = mid
                    else:
                        lo = mid
                self.entries_m.append(float(s[i - 1] + hi * (s[i] - s[i - 1])))

    @staticmethod
    def _in_junction(carla_map: carla.Map, x: float, y: float) -> bool:
        wp = carla_map.get_waypoint(carla.Location(x=float(x), y=float(y), z=0.0))
        return wp is not None and wp.is_junction

    def next_after(self, s_m: float) -> float | None:
        """The first entry strictly after route distance ``s_m`` (m), or None."""
        i = bisect.bisect_right(self.entries_m, s_m)
        return self.entries_m[i] if i < len(self.entries_m) else None


def place_light(light: TrafficLightState, entries: JunctionEntries, ego_s_m: float,
                lookahead_m: float) -> TrafficLightState:
    """``light`` with the distance (m, from the ego's centre at route distance
    ``ego_s_m``) to the next junction entry along the route, if it has no distance
    of its own (perception's: -1) and an entry is within ``lookahead_m``; else as
    it is. An entry the ego's centre has passed is behind it, as is the light."""
    if light.distance >= 0 or light.state not in ("red", "yellow", "green"):
        return light
    entry = entries.next_after(ego_s_m)
    if entry is None or entry - ego_s_m > lookahead_m:
        return light
    return replace(light, distance=entry - ego_s_m)
