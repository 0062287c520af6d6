"""Local planner: the route ahead of the ego, a speed profile on it, a Trajectory.

Each tick: find where the ego is on the dense route (nearest point, never going
backwards along it), take the next ``horizon_m`` metres, convert them to the ego
frame for the behaviour layer, plan speeds, and publish poses, speeds and times
for the next ``horizon_s`` seconds in the world frame (CARLA: metres, degrees).
The path itself is the route's lane centre line: smooth lane changes and obstacle
avoidance are not planned here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bus import frames
from bus.messages import EgoState, Header, ObjectList, TrafficLightState, Trajectory
from planning.behaviour import (
    BehaviourParams,
    Decision,
    curvature,
    decide,
    path_s,
    profile_times,
    speed_profile,
)


@dataclass(frozen=True)
class LocalPlannerParams:
    horizon_m: float = 80.0  # route ahead considered
    horizon_s: float = 6.0  # trajectory length in time
    step_m: float = 1.0  # spacing of trajectory points
    search_m: float = 30.0  # how far ahead of the last match to look for the ego
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)


class LocalPlanner:
    """Follows one dense route (M x 2 world points, plus yaw in degrees)."""

    def __init__(self, route_xy: np.ndarray, params: LocalPlannerParams | None = None) -> None:
        if len(route_xy) < 2:
            raise ValueError("a route needs at least 2 points")
        self.p = params or LocalPlannerParams()
        self.route = np.asarray(route_xy, float)
        self.s = path_s(self.route)
        self.index = 0  # nearest route point to the ego at the last tick
        self.decision: Decision | None = None

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def progress(self) -> float:
        """Distance along the route (m) at the ego's last known position."""
        return float(self.s[self.index])

    def locate(self, x: float, y: float) -> int:
        """Nearest route point to (x, y), searching forward from the last match."""
        hi = int(np.searchsorted(self.s, self.s[self.index] + self.p.search_m)) + 1
        window = self.route[self.index:hi]
        k = int(np.argmin(np.hypot(window[:, 0] - x, window[:, 1] - y)))
        self.index += k
        return self.index

    def plan(self, ego: EgoState, objects: ObjectList, light: TrafficLightState) -> Trajectory:
        loc = ego.transform.location
        i = self.locate(loc.x, loc.y)
        end = int(np.searchsorted(self.s, self.s[i] + self.p.horizon_m)) + 1
        ahead = self.route[i:end]
        if len(ahead) < 2:  # at the end of the route: stand still where we are
            ahead = np.array([[loc.x, loc.y], [loc.x + 1e-3, loc.y]])
        # resample evenly so the profile and times are smooth
        s_ahead = path_s(ahead)
        s_new = np.arange(0.0, s_ahead[-1] + 1e-9, self.p.step_m)
        if len(s_new) < 2:
            s_new = np.array([0.0, s_ahead[-1]])
        xy = np.stack([np.interp(s_new, s_ahead, ahead[:, 0]),
                       np.interp(s_new, s_ahead, ahead[:, 1])], axis=1)
        xyz = np.column_stack([xy, np.zeros(len(xy))])
        path_ego = frames.world_to_ego(xyz, ego.transform)[:, :2]
        b = self.p.behaviour
        d = decide(path_ego, ego.speed, ego.speed_limit, objects, light, b)
        if end >= len(self.route):  # the route ends: stop at its end
            d.stop_s = min(d.stop_s, max(0.0, s_new[-1] - b.ego_half_length))
        self.decision = d
        v = speed_profile(s_new, ego.speed, d, b, curvature(xy))
        t = profile_times(s_new, v)
        keep = max(2, int(np.searchsorted(t, self.p.horizon_s)) + 1)
        xy, v, t = xy[:keep], v[:keep], t[:keep]
        yaw = np.degrees(np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0])))
        poses = np.column_stack([xy, yaw])
        return Trajectory(header=Header(ego.header.frame, ego.header.stamp), poses=poses,
                          speeds=v.astype(float), times=t.astype(float))

    def finished(self, tolerance_m: float = 3.0) -> bool:
        return self.length - self.progress() <= tolerance_m

