"""NPC vehicles: lane followers with seeded random turns, IDM car following, and
stopping for red and yellow lights.

An NPC is kinematic on its lane centre line (like a well-behaved Traffic Manager
vehicle): it holds a path of waypoints ahead, extended with ``Waypoint.next`` and a
seeded random choice where the lane splits (junctions), and moves along it at a
speed from the Intelligent Driver Model. Its leader is the nearest other vehicle
(NPC or ego) close to its path ahead, or the stop line of a red/yellow light that
governs its lane. World frame: CARLA's (metres, degrees).

Treiber, Hennecke, Helbing (2000), "Congested traffic states in empirical
observations and microscopic simulations": IDM acceleration
    a = a_max [1 - (v/v0)^4 - (s*(v, dv)/s)^2],  s* = s0 + v T + v dv / (2 sqrt(a_max b)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import carla

PATH_STEP_M = 2.0  # spacing of the waypoints an NPC follows
LOOKAHEAD_M = 50.0  # how far ahead an NPC keeps its path and looks for leaders
NPC_HALF_LENGTH = 2.3
LANE_CHANGE_S = 2.5  # an NPC's lane change takes this long
STOP_SIGN_WAIT_S = 1.5  # how long an NPC stands at a stop line before it goes
#: a vehicle braked by a scripted event drives on after standing this long, like the
#: lead of scenario_runner's FollowLeadingVehicle (else the ego is blocked for good)
BRAKE_EVENT_HOLD_S = 5.0
NPC_HALF_WIDTH = 0.95


#: Points of an obstacle's length axis tested against an NPC's lane corridor, as
#: fractions of its half length from its centre.
_AXIS_POINTS = np.array([0.0, -0.5, 0.5, -0.9, 0.9])


@dataclass(frozen=True)
class IDMParams:
    a_max: float = 1.5  # m/s^2, comfortable acceleration
    b: float = 3.0  # m/s^2, comfortable deceleration
    time_gap: float = 1.5  # s
    s0: float = 2.5  # m, jam distance (bumper to bumper)
    delta: float = 4.0
    b_max: float = 8.0  # m/s^2, physical braking limit


def idm_accel(v: float, v0: float, gap: float, dv: float, p: IDMParams) -> float:
    """IDM acceleration for speed ``v`` (m/s), desired speed ``v0``, bumper gap ``gap``
    (m, inf when free) and approach rate ``dv = v - v_leader`` (m/s)."""
    free = 1.0 - (v / max(v0, 0.1)) ** p.delta
    if math.isinf(gap):
        a = p.a_max * free
    else:
        s_star = p.s0 + max(0.0, v * p.time_gap + v * dv / (2 * math.sqrt(p.a_max * p.b)))
        a = p.a_max * (free - (s_star / max(gap, 0.1)) ** 2)
    return max(-p.b_max, min(p.a_max, a))


@dataclass
class NPC:
    """One NPC vehicle. ``path`` holds waypoints from the one behind it onwards;
    ``s`` is the distance travelled past ``path[0]`` (m)."""

    id: int
    path: list[carla.Waypoint]
    s: float
    speed: float
    rng: np.random.Generator
    color_seed: int = 0
    type_id: str = "vehicle.drivestack.sedan"
    half_length: float = NPC_HALF_LENGTH
    half_width: float = NPC_HALF_WIDTH
    speed_factor: float = 1.0
    limit: float = 30 / 3.6  # m/s, of the last road that had one (junctions have none)
    braking_event: float = 0.0  # scripted hard braking, m/s^2 (0: none)
    stopped: bool = False  # scripted: parked, never moves
    dead_end: bool = False  # its path ends (the lane leads nowhere)
    offset: float = 0.0  # m right of its path's centre line (during a lane change)
    stop_waited: float = 0.0  # s stood still at the current stop-sign line
    stop_cleared: tuple[int, int, int] | None = None  # the stop-sign lane it may now pass
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    accel: float = 0.0

    @property
    def waypoint(self) -> carla.Waypoint:
        """The waypoint at or just behind the NPC."""
        return self.path[min(int(self.s // PATH_STEP_M), len(self.path) - 1)]


@dataclass(frozen=True)
class Obstacle:
    """Something an NPC may have to follow: world position, speed along its heading,
    half length, and id (-1 for a stop line)."""

    id: int
    x: float
    y: float
    yaw: float
    speed: float
    half_length: float


class _Snapshot:
    """The obstacles of one step, as given and as arrays (id, x, y) for the
    vectorised distance test of :meth:`Traffic._leader`."""

    def __init__(self, obstacles: list[Obstacle]) -> None:
        self.obstacles = obstacles
        self.id = np.array([ob.id for ob in obstacles], np.int64)
        self.x = np.array([ob.x for ob in obstacles], float)
        self.y = np.array([ob.y for ob in obstacles], float)


LightQuery = Callable[["carla.Waypoint"], "tuple[str, float] | None"]
"""(carla.Waypoint of the lane ahead) -> (state, stop-line distance from that
waypoint in m) of the light or stop sign governing that lane, or None. States are a
light's ('red', 'yellow', 'green', ...) or 'stop' for a stop sign."""


class Traffic:
    """All NPC vehicles of a world, stepped together."""

    def __init__(self, speed_limits: dict[int, float], idm: IDMParams | None = None,
                 default_limit: float = 30 / 3.6) -> None:
        self.idm = idm or IDMParams()
        self.speed_limits, self.default_limit = speed_limits, default_limit
        self.npcs: list[NPC] = []
        # (x, y) of the waypoints on the NPCs' paths: libcarla computes a waypoint's
        # transform anew on every access, so each is read once while it is on a path
        self._path_xy: dict[carla.Waypoint, tuple[float, float]] = {}

    # ------------------------------------------------------------------ creation
    def spawn(self, npc_id: int, waypoint: carla.Waypoint, rng: np.random.Generator,
              speed: float = 0.0, speed_factor: float = 1.0) -> NPC:
        npc = NPC(npc_id, [waypoint], 0.0, speed, rng, int(rng.integers(1 << 30)),
                  speed_factor=speed_factor)
        self._extend(npc)
        self._place(npc)
        self.npcs.append(npc)
        return npc

    def _extend(self, npc: NPC) -> None:
        """Keep LOOKAHEAD_M of path ahead; at a split, a seeded random branch."""
        while (len(npc.path) - 1) * PATH_STEP_M - npc.s < LOOKAHEAD_M:
            options = npc.path[-1].next(PATH_STEP_M)
            if not options:
                npc.dead_end = True  # the lane ends: the NPC stops at the end of its path
                break
            options.sort(key=lambda w: (w.road_id, w.section_id, w.lane_id, w.s))
            npc.path.append(options[int(npc.rng.integers(len(options)))])
        # drop what is far behind, keeping s relative to path[0]
        drop = max(0, int(npc.s // PATH_STEP_M) - 1)
        if drop:
            del npc.path[:drop]
            npc.s -= drop * PATH_STEP_M

    def _place(self, npc: NPC) -> None:
        i = min(int(npc.s // PATH_STEP_M), len(npc.path) - 1)
        a = npc.path[i].transform
        if i + 1 < len(npc.path):
            b = npc.path[i + 1].transform
            t = (npc.s - i * PATH_STEP_M) / PATH_STEP_M
            npc.x = a.location.x + t * (b.location.x - a.location.x)
            npc.y = a.location.y + t * (b.location.y - a.location.y)
            npc.z = a.location.z + t * (b.location.z - a.location.z)
            npc.yaw = math.degrees(math.atan2(b.location.y - a.location.y,
                                              b.location.x - a.location.x))
        else:
            npc.x, npc.y, npc.z, npc.yaw = (a.location.x, a.location.y, a.location.z,
                                            a.rotation.yaw)
        if npc.offset:
            yaw = math.radians(npc.yaw)
            npc.x -= npc.offset * math.sin(yaw)
            npc.y += npc.offset * math.cos(yaw)

    def change_lane(self, npc: NPC, target: carla.Waypoint) -> None:
        """Move ``npc`` onto the lane of ``target`` (a waypoint beside it) smoothly:
        its path becomes the target lane and its lateral offset shrinks to zero over
        LANE_CHANGE_S."""
        yaw = math.radians(target.transform.rotation.yaw)
        dx = npc.x - target.transform.location.x
        dy = npc.y - target.transform.location.y
        npc.offset = -dx * math.sin(yaw) + dy * math.cos(yaw)  # m right of the target
        npc.path, npc.s, npc.dead_end = [target], 0.0, False
        self._extend(npc)
        self._place(npc)

    def path_length_ahead(self, npc: NPC) -> float:
        return max(0.0, (len(npc.path) - 1) * PATH_STEP_M - npc.s)

    # ------------------------------------------------------------------ stepping
    def step(self, dt: float, others: Sequence[Obstacle], lights: LightQuery) -> None:
        """Advance every NPC by ``dt`` seconds. ``others`` are non-NPC vehicles (the
        ego); NPCs see each other too. Deterministic: NPCs are updated in id order
        from the same snapshot of positions."""
        snapshot = _Snapshot([Obstacle(n.id, n.x, n.y, n.yaw, n.speed, n.half_length)
                              for n in self.npcs] + list(others))
        known = self._path_xy  # forget the waypoints no NPC holds any more
        self._path_xy = {w: known[w] for n in self.npcs for w in n.path if w in known}
        accels = [self._accel(n, snapshot, lights) for n in self.npcs]
        for npc, a in zip(self.npcs, accels, strict=True):
            if npc.stopped:
                npc.speed, npc.accel = 0.0, 0.0
                continue
            v = max(0.0, npc.speed + a * dt)
            npc.s += min(0.5 * (npc.speed + v) * dt, self.path_length_ahead(npc))
            npc.accel = (v - npc.speed) / dt
            npc.speed = v
            npc.stop_waited = npc.stop_waited + dt if v < 0.1 else 0.0
            if npc.braking_event > 0 and npc.stop_waited >= BRAKE_EVENT_HOLD_S:
                npc.braking_event = 0.0  # the scripted stop is over
            if npc.offset:
                shrink = 3.5 / LANE_CHANGE_S * dt
                npc.offset = 0.0 if abs(npc.offset) <= shrink else \
                    npc.offset - math.copysign(shrink, npc.offset)
            self._extend(npc)
            self._place(npc)

    def _accel(self, npc: NPC, obstacles: _Snapshot, lights: LightQuery) -> float:
        if npc.stopped:
            return 0.0
        if npc.braking_event > 0:
            return -npc.braking_event
        limit = self.speed_limits.get(npc.waypoint.road_id)
        if limit is not None:
            npc.limit = limit
        v0 = npc.speed_factor * npc.limit
        gap, v_lead = self._leader(npc, obstacles)
        stop = self._stop_line_gap(npc, lights)
        if stop is not None and stop < gap:
            gap, v_lead = stop, 0.0
        if npc.dead_end:
            end = self.path_length_ahead(npc) - npc.half_length
            if end < gap:
                gap, v_lead = max(end, 0.0), 0.0
        return idm_accel(npc.speed, v0, gap, npc.speed - v_lead, self.idm)

    def _path_points(self, npc: NPC) -> np.ndarray:
        """(len(path), 2) world x, y of the NPC's path waypoints."""
        rows = []
        for w in npc.path:
            xy = self._path_xy.get(w)
            if xy is None:
                loc = w.transform.location
                xy = self._path_xy[w] = (loc.x, loc.y)
            rows.append(xy)
        return np.array(rows)

    def _leader(self, npc: NPC, obstacles: _Snapshot) -> tuple[float, float]:
        """Bumper gap (m) and speed (m/s) of the nearest obstacle on the NPC's path.

        An obstacle is in the path when a point of its length axis (centre, and
        ``_AXIS_POINTS`` towards either end) is within the lane corridor: a car
        turning across the lane at an angle has its centre off the path while its
        back is on it. The gap is to the nearest such point, less what of the
        obstacle's half length lies beyond that point. Of equal gaps the first
        obstacle's wins. Those farther than the lookahead are dropped in one
        vectorised test first (most of them: a town is larger than that)."""
        dx, dy = obstacles.x - npc.x, obstacles.y - npc.y
        near = np.flatnonzero((obstacles.id != npc.id)
                              & ~(dx * dx + dy * dy > (LOOKAHEAD_M + 5) ** 2))
        best_gap, best_v = math.inf, 0.0
        if near.size == 0:
            return best_gap, best_v
        pts = self._path_points(npc)
        i0 = int(npc.s // PATH_STEP_M)
        for n in near.tolist():
            ob = obstacles.obstacles[n]
            d = np.hypot(pts[i0:, 0] - ob.x, pts[i0:, 1] - ob.y)
            k = int(np.argmin(d))
            if d[k] <= 1.8:  # its centre in the NPC's lane corridor: the common case
                along = (i0 + k) * PATH_STEP_M - npc.s
                if along <= 0:
                    continue  # behind (or beside) us
                gap = along - npc.half_length - ob.half_length
            elif d[k] > 1.8 + ob.half_length:
                continue  # no part of it can reach the corridor
            else:  # centre outside, an end maybe inside: test points of its axis
                c, s = math.cos(math.radians(ob.yaw)), math.sin(math.radians(ob.yaw))
                t = _AXIS_POINTS * ob.half_length  # (P,) along the obstacle's axis
                ax, ay = ob.x + t * c, ob.y + t * s
                da = np.hypot(pts[i0:, None, 0] - ax, pts[i0:, None, 1] - ay)
                ka = np.argmin(da, axis=0)  # nearest path point of each axis point
                along_a = (i0 + ka) * PATH_STEP_M - npc.s
                ok = (da[ka, np.arange(len(t))] <= 1.8) & (along_a > 0)
                if not ok.any():
                    continue
                gap = float((along_a - npc.half_length - (ob.half_length - np.abs(t)))[ok].min())
            heading = math.cos(math.radians(ob.yaw - npc.yaw))
            if gap < best_gap:
                best_gap, best_v = gap, max(0.0, ob.speed * heading)
        return max(best_gap, 0.0) if best_gap != math.inf else math.inf, best_v

    def _stop_line_gap(self, npc: NPC, lights: LightQuery) -> float | None:
        """Distance to the stop line ahead if its light says stop: red, or yellow
        when the NPC can still stop comfortably."""
        i0 = int(npc.s // PATH_STEP_M)
        for i in range(i0, len(npc.path)):
            wp = npc.path[i]
            if wp.is_junction:
                return None  # already inside (or past) the junction: go on
            res = lights(wp)
            if res is None:
                continue
            state, dist = res
            gap = (i * PATH_STEP_M - npc.s) + dist - npc.half_length
            if gap < -0.5:
                continue
            # IDM keeps s0 to a leader; a stop line is no car: stop ~0.5 m before it.
            gap += self.idm.s0 - 0.5
            if state == "stop":  # stand at the line for a while, then go
                lane = (wp.road_id, wp.section_id, wp.lane_id)
                if npc.stop_cleared == lane:
                    return None
                if gap < self.idm.s0 + 1.0 and npc.stop_waited >= STOP_SIGN_WAIT_S:
                    npc.stop_cleared = lane
                    return None
                return max(gap, 0.0)
            if state == "red" or (state == "yellow" and
                                  npc.speed ** 2 / (2 * self.idm.b) < max(gap, 0.0)):
                return max(gap, 0.0)
            return None
        return None


def road_speed_limits(opendrive: str) -> dict[int, float]:
    """Road id -> speed limit in m/s from OpenDRIVE ``<road><type><speed max unit>``
    (the first type record of each road; roads without one are absent)."""
    import xml.etree.ElementTree as ET

    factors = {"km/h": 1 / 3.6, "m/s": 1.0, "mph": 0.44704}
    out: dict[int, float] = {}
    for road in ET.fromstring(opendrive).iter("road"):
        speed = road.find("type/speed")
        if speed is None or speed.get("max") in (None, "no limit", "undefined"):
            continue
        try:
            out[int(road.get("id", ""))] = float(speed.get("max", "")) * factors.get(
                speed.get("unit", "m/s"), 1.0)
        except ValueError:
            continue
    return out
