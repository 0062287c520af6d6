"""Local planner: the route ahead of the ego, a speed profile on it, a Trajectory.

Each tick: find where the ego is on the dense route (nearest point, never going
backwards along it), take the next ``horizon_m`` metres, convert them to the ego
frame for the behaviour layer, plan speeds, and publish poses, speeds and times
for the next ``horizon_s`` seconds in the world frame (CARLA: metres, degrees).
The path is the route's lane centre line, except around a stopped obstacle in the
lane: when the caller says an adjacent lane of the same direction may be changed
into (``adjacent``) and it is free, the path swings over into it, passes, and comes
back (smoothstep ramps anchored on the route, so the manoeuvre is the same plan
from tick to tick); otherwise the car waits behind the obstacle.
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
class Overtake:
    """A pass of a stopped obstacle: the lateral offset (m, + right) and the route
    distances (m) where the path starts and ends moving over and back."""

    offset: float
    in_start: float
    in_end: float
    out_start: float
    out_end: float

    def lateral(self, s: np.ndarray) -> np.ndarray:
        up = _smoothstep((s - self.in_start) / (self.in_end - self.in_start))
        down = _smoothstep((s - self.out_start) / (self.out_end - self.out_start))
        return self.offset * (up - down)


def _right_normals(path: np.ndarray) -> np.ndarray:
    """Unit vectors to the right of a path (N x 2), world frame (CARLA: left-handed,
    so right of heading h is (-sin h, cos h))."""
    heading = np.arctan2(np.gradient(path[:, 1]), np.gradient(path[:, 0]))
    return np.stack([-np.sin(heading), np.cos(heading)], axis=1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class LocalPlannerParams:
    horizon_m: float = 80.0  # route ahead considered
    horizon_s: float = 6.0  # trajectory length in time
    step_m: float = 1.0  # spacing of trajectory points
    search_m: float = 30.0  # how far ahead of the last match to look for the ego
    pass_within_m: float = 40.0  # consider passing a stopped obstacle this close
    pass_lateral_m: float = 25.0  # the target lane must be free this far ahead/behind
    stopped_speed: float = 0.5  # m/s: a lead slower than this is a stopped obstacle
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
        self.overtake: Overtake | None = None

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

    def plan(self, ego: EgoState, objects: ObjectList, light: TrafficLightState,
             adjacent: dict[str, float] | None = None) -> Trajectory:
        """The trajectory for this tick. ``adjacent``: lanes the car may change into
        here, as {'left' | 'right': lateral offset in m, + right}."""
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
        centre = np.stack([np.interp(s_new, s_ahead, ahead[:, 0]),
                           np.interp(s_new, s_ahead, ahead[:, 1])], axis=1)
        b = self.p.behaviour
        s_route = self.s[i] + s_new
        if self.overtake is not None and s_route[0] > self.overtake.out_end:
            self.overtake = None
        xy = self._offset(centre, s_route)
        d = decide(self._to_ego(xy, ego), ego.speed, ego.speed_limit, objects, light, b)
        if self.overtake is None and adjacent and self._blocked(d):
            self._try_overtake(centre, s_route, ego, objects, light, d, adjacent)
            if self.overtake is not None:
                xy = self._offset(centre, s_route)
                d = decide(self._to_ego(xy, ego), ego.speed, ego.speed_limit, objects,
                           light, b)
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

    @staticmethod
    def _to_ego(xy: np.ndarray, ego: EgoState) -> np.ndarray:
        return frames.world_to_ego(np.column_stack([xy, np.zeros(len(xy))]),
                                   ego.transform)[:, :2]

    def _offset(self, centre: np.ndarray, s_route: np.ndarray) -> np.ndarray:
        """The path: the lane centre, moved sideways where an overtake says so."""
        if self.overtake is None:
            return centre
        return centre + self.overtake.lateral(s_route)[:, None] * _right_normals(centre)

    def _blocked(self, d: Decision) -> bool:
        return d.lead_s < self.p.pass_within_m and d.lead_speed < self.p.stopped_speed

    def _try_overtake(self, centre: np.ndarray, s_route: np.ndarray, ego: EgoState,
                      objects: ObjectList, light: TrafficLightState, d: Decision,
                      adjacent: dict[str, float]) -> None:
        """Plan a pass into the first adjacent lane that is free around the obstacle."""
        rear = s_route[0] + d.lead_s + self.p.behaviour.ego_half_length
        for offset in adjacent.values():
            candidate = Overtake(offset, max(s_route[0], rear - 25.0), rear - 6.0,
                                 rear + 14.0, rear + 34.0)
            if candidate.in_end - candidate.in_start < 8.0:
                continue  # too close to swing out comfortably: wait instead
            self.overtake = candidate
            lane = self._to_ego(centre + offset * _right_normals(centre), ego)
            if self._lane_free(lane, objects):
                return
            self.overtake = None

    def _lane_free(self, lane_ego: np.ndarray, objects: ObjectList) -> bool:
        """No object within the target lane from pass_lateral_m behind to the end of
        the path ahead (pedestrians anywhere near it count too)."""
        from shapely.geometry import LineString, Point

        line = LineString(lane_ego)
        half = self.p.behaviour.corridor_half_width
        for obj in objects.objects:
            x = obj.position.x
            if x < -self.p.pass_lateral_m:
                continue
            dist = line.distance(Point(x, obj.position.y))
            if dist <= half + obj.size.y / 2 or (x < 0 and dist <= half + 2.0):
                return False
        return True

    def finished(self, tolerance_m: float = 3.0) -> bool:
        return self.length - self.progress() <= tolerance_m

