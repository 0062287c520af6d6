"""Behaviour and speed planning along the route ahead: how fast to go, where to stop.

Everything is in the ego frame (x forward, y right, metres; speeds m/s), the frame
ObjectList arrives in: the route ahead is converted once per tick. The planner
looks at a corridor around the path (a shapely buffer of the path polyline) and:

  - drives at the speed limit (or ``max_speed``),
  - stops at the stop line for red, and for yellow when it can stop comfortably,
  - stops before pedestrians in the corridor or about to enter it,
  - follows the nearest vehicle in the corridor with a time gap (ACC),
  - yields to a vehicle about to cross the path (junctions): if it reaches the
    corridor within ``yield_horizon`` s and we would get there within
    ``yield_window`` s of it, stop short of the crossing point,
  - brakes hard (up to ``emergency_decel``) when time-to-collision is too short.

The result is a speed profile over the path (:func:`speed_profile`): from the
current speed and acceleration, within ``accel``/``comfort_decel`` (or
``firm_decel``, or ``emergency_decel``) and with the acceleration changing no faster
than ``jerk`` (or ``emergency_jerk``) m/s^3, never above what lets the car stop where it must. Why
jerk matters: the controller follows the profile's acceleration as feed-forward,
so a step in it (the start of braking, the moment of stopping) is a step in the
car's acceleration.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from bus.messages import ObjectList, TrafficLightState


@dataclass(frozen=True)
class BehaviourParams:
    max_speed: float = 0.0  # m/s; 0: the lane's speed limit
    # m/s, the speed limit taken where the ego's lane has none (EgoState.speed_limit
    # 0: OpenDRIVE roads without a <type><speed>, such as CARLA towns' junctions)
    # and none was seen before; CARLA's own default limit, 30 km/h
    unknown_speed_limit: float = 30 / 3.6
    accel: float = 2.0  # m/s^2, comfortable acceleration
    comfort_decel: float = 3.0  # m/s^2
    # m/s^2, what a limit too close for comfort_decel is braked for, before
    # emergency_decel: without it a stop needing 3.5 planned at 8, braking late
    firm_decel: float = 4.5
    emergency_decel: float = 8.0  # m/s^2
    time_gap: float = 1.8  # s, to a lead vehicle
    min_gap: float = 5.0  # m, bumper to bumper when stopped behind a vehicle
    stop_margin: float = 1.0  # m, before a stop line (front bumper)
    pedestrian_margin: float = 4.0  # m, stop this far before a pedestrian
    corridor_half_width: float = 1.6  # m each side of the path
    pedestrian_horizon: float = 3.0  # s, a walker entering the corridor within this
    ttc_emergency: float = 2.0  # s
    ego_half_length: float = 2.45  # m, centre to front bumper
    lateral_accel: float = 2.5  # m/s^2, the most the speed profile allows in curves
    yield_horizon: float = 4.0  # s, how far ahead crossing vehicles are predicted
    yield_window: float = 2.5  # s, arrival times closer than this conflict
    yield_margin: float = 3.0  # m, stop this far before the crossing point
    jerk: float = 2.5  # m/s^3, fastest change of the profile's acceleration (comfort)
    firm_jerk: float = 10.0  # m/s^3, the same when a limit is too close for comfort
    emergency_jerk: float = 30.0  # m/s^3, the same when braking for an emergency
    limit_tolerance: float = 0.2  # m/s over a hard limit that still counts as meeting it
    profile_dt: float = 0.1  # s, time step the speed profile is integrated with
    profile_horizon: float = 7.0  # s, longest the speed profile is integrated for
    envelope_time: float = 0.5  # s, time constant of the approach to a target or limit
    decel_reserve: float = 0.5  # m/s^2 of the decel limit the envelope leaves for catching up
    align_m: float = 0.3  # m: path points closer than this to a limit point give way to it
    # m after the path's start and before a stop where extra path points go (align_grid)
    refine_m: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.35, 0.55, 0.8)


@dataclass
class Decision:
    """What the behaviour layer decided this tick (for the speed profile and logs)."""

    target_speed: float
    stop_s: float = math.inf  # distance along the path to stop the front bumper at
    lead_s: float = math.inf  # distance to the lead vehicle's rear (bumper to bumper)
    lead_speed: float = 0.0
    lead_confidence: float = 0.0  # the perception's confidence in the lead vehicle
    emergency: bool = False
    reasons: list[str] = field(default_factory=list)


def path_s(points: np.ndarray) -> np.ndarray:
    """Cumulative distance (m) along a polyline (N x 2)."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def decide(path_ego: np.ndarray, speed: float, speed_limit: float, objects: ObjectList,
           light: TrafficLightState, p: BehaviourParams) -> Decision:
    """The behaviour for one tick. ``path_ego``: N x 2 route points ahead, ego frame,
    starting at (about) the ego; ``speed``: ego speed (m/s); ``speed_limit``: the
    lane's (m/s; 0 or less: unknown, then ``unknown_speed_limit``).

    The geometry (each object's place along and beside the path, the walkers'
    and the crossing vehicles' predicted points against the corridor) is done for
    all objects at once in shapely's array functions: per object it would cost
    more than the rest of the planner tick."""
    if speed_limit <= 0:
        speed_limit = p.unknown_speed_limit
    target = min(p.max_speed, speed_limit) if p.max_speed > 0 else speed_limit
    d = Decision(target_speed=target)
    if len(path_ego) < 2:
        d.stop_s, d.reasons = 0.0, ["no path ahead"]
        return d
    line = LineString(path_ego)
    front = p.ego_half_length

    # Traffic light: stop at the line for red, and for yellow if comfortable.
    if light.state in ("red", "yellow") and light.distance >= 0:
        gap = light.distance - front - p.stop_margin
        comfortable = speed * speed <= 2 * p.comfort_decel * max(gap, 0.0)
        if (light.state == "red" or comfortable) and gap > -front:  # line still ahead
            d.stop_s = min(d.stop_s, max(gap, 0.0))
            d.reasons.append(f"{light.state} light in {light.distance:.1f} m")

    objs = objects.objects
    if objs:
        pos = np.array([(o.position.x, o.position.y) for o in objs])
        vel = np.array([(o.velocity.x, o.velocity.y) for o in objs])
        centres = shapely.points(pos)
        along = shapely.line_locate_point(line, centres)
        beside = shapely.distance(line, centres)
        ahead = (along > 0.0) & (pos[:, 0] >= 0.0)
        walker = np.array([o.label == "pedestrian" for o in objs])
        half_width = np.array([o.size.y / 2 for o in objs])
        # Only objects that can reach the corridor within their horizon are tested
        # against it, and the corridor (a buffer: most of this function's time) is
        # built only if there are any; most ticks have none.
        moving = np.hypot(vel[:, 0], vel[:, 1])
        walkers = ahead & walker & _may_reach(beside, moving, p.pedestrian_horizon,
                                              p.corridor_half_width)
        crossers = (ahead & ~walker & (beside > p.corridor_half_width + half_width)
                    & _may_reach(beside, moving, p.yield_horizon,
                                 p.corridor_half_width + half_width))
        corridor = _corridor(line, p) if (walkers | crossers).any() else None
        entering = _entering(corridor, pos, vel, walkers, p)
        crossing = _crossing(line, corridor, pos, vel, half_width, speed, p, crossers)
    for i, obj in enumerate(objs):
        s = float(along[i])
        if not ahead[i]:
            continue  # behind us
        if walker[i]:
            if entering[i]:
                d.stop_s = min(d.stop_s, max(s - front - p.pedestrian_margin, 0.0))
                d.reasons.append(f"pedestrian {obj.track_id} at {s:.1f} m")
            continue
        if beside[i] > p.corridor_half_width + half_width[i]:
            if not math.isnan(crossing[i]):
                d.stop_s = min(d.stop_s, max(crossing[i] - front - p.yield_margin, 0.0))
                d.reasons.append(
                    f"yield to vehicle {obj.track_id} crossing at {crossing[i]:.1f} m")
            continue  # beside the corridor
        gap = s - front - obj.size.x / 2
        if gap < d.lead_s:  # its speed along our heading (ego-frame x, over ground)
            d.lead_s, d.lead_speed = gap, max(0.0, obj.velocity.x)
            d.lead_confidence = obj.confidence
    if d.lead_s < math.inf:
        closing = speed - d.lead_speed
        if closing > 0 and d.lead_s / closing < p.ttc_emergency:
            d.emergency = True
            d.reasons.append(f"time to collision {d.lead_s / closing:.1f} s")
        d.reasons.append(f"lead vehicle at {d.lead_s:.1f} m, {d.lead_speed:.1f} m/s")
    return d


#: m added to the reach of :func:`_may_reach`, for the rounding of the buffer's
#: vertices: a test that skips an object must never skip one that would count.
_REACH_MARGIN = 0.01


def _may_reach(beside: np.ndarray, moving: np.ndarray, horizon: float,
               reach: np.ndarray | float) -> np.ndarray:
    """Whether each object (``beside``: its distance to the path, m; ``moving``: its
    speed, m/s) can come within ``reach`` (m) of the path within ``horizon`` (s),
    moving straight on. The corridor lies within ``corridor_half_width`` of the
    path, so an object for which this is False is neither in the corridor nor
    within its own half width of it at any time up to ``horizon``."""
    return beside - moving * horizon <= reach + _REACH_MARGIN


def _corridor(line: LineString, p: BehaviourParams) -> Polygon:
    """The corridor: the path buffered ``corridor_half_width`` each side, flat ends,
    indexed (prepared) for the many point tests against it."""
    corridor: Polygon = line.buffer(p.corridor_half_width, cap_style=2)
    shapely.prepare(corridor)
    return corridor


def _entering(corridor: Polygon | None, pos: np.ndarray, vel: np.ndarray,
              which: np.ndarray, p: BehaviourParams) -> np.ndarray:
    """For each object (positions and velocities N x 2, ego frame), whether it is
    in the corridor or will be within ``pedestrian_horizon`` walking straight on
    (7 points in time); False where ``which`` is False (``corridor`` may be None
    where ``which`` is all False)."""
    out = np.zeros(len(pos), dtype=bool)
    if not which.any():
        return out
    assert corridor is not None
    times = np.linspace(0.0, p.pedestrian_horizon, 7)
    future = pos[which, None, :] + vel[which, None, :] * times[None, :, None]
    inside = shapely.contains_xy(corridor, future[..., 0], future[..., 1])
    out[which] = inside.any(axis=1)
    return out


def _crossing(line: LineString, corridor: Polygon | None, pos: np.ndarray,
              vel: np.ndarray, half_width: np.ndarray, speed: float, p: BehaviourParams,
              which: np.ndarray) -> np.ndarray:
    """For each vehicle (positions and velocities N x 2, ego frame; half its width,
    m) moving in a straight line: where (distance along the path, m) it enters our
    corridor, if it does within ``yield_horizon`` and we would arrive there at about
    the same time (within ``yield_window``); else NaN, and NaN where ``which`` is
    False (``corridor`` may be None where ``which`` is all False)."""
    out = np.full(len(pos), np.nan)
    which = which & (np.hypot(vel[:, 0], vel[:, 1]) >= 1.0)
    if not which.any():
        return out
    assert corridor is not None
    times = np.arange(0.5, p.yield_horizon + 1e-9, 0.5)
    future = pos[which, None, :] + vel[which, None, :] * times[None, :, None]
    near = shapely.dwithin(corridor, shapely.points(future), half_width[which, None])
    hit = near.any(axis=1)
    first = np.argmax(near, axis=1)
    rows = np.nonzero(hit)[0]
    if len(rows) == 0:
        return out
    s_c = shapely.line_locate_point(line, shapely.points(future[rows, first[rows]]))
    eta = s_c / max(speed, 2.0)
    conflict = (np.abs(eta - times[first[rows]]) < p.yield_window) & (s_c > 0)
    idx = np.nonzero(which)[0][rows]
    out[idx[conflict]] = s_c[conflict]
    return out


def curvature(points: np.ndarray, base: float) -> np.ndarray:
    """|curvature| (1/m) at each point of a polyline (N x 2): the turn of its
    heading over ``base`` metres centred on the point (fewer at the ends), per
    metre. Why over a baseline: a polyline turns only at its vertices, and where
    they are unevenly spaced (lane and junction seams) the turn per vertex is
    noisy; a curve's speed limit taken from it would ripple, and the speed
    profile with it, while a car's lateral acceleration follows the bend over a
    few metres. Headings are those of the segments, interpolated between their
    middles."""
    seg = np.diff(points, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    real = length > 1e-9
    if np.count_nonzero(real) < 2:
        return np.zeros(len(points))
    s = path_s(points)
    mid = ((s[:-1] + s[1:]) / 2.0)[real]
    heading = np.unwrap(np.arctan2(seg[real, 1], seg[real, 0]))
    ahead = np.clip(s + base / 2.0, mid[0], mid[-1])
    behind = np.clip(s - base / 2.0, mid[0], mid[-1])
    turn = np.abs(np.interp(ahead, mid, heading) - np.interp(behind, mid, heading))
    return turn / np.maximum(ahead - behind, 1e-6)


@dataclass(frozen=True)
class SpeedProfile:
    """A speed profile over a path: ``speeds`` (m/s) at the path's distances, and the
    samples in time it was integrated as (distance m, increasing; acceleration
    m/s^2), which give the acceleration anywhere exactly (the speeds at the path's
    points, 1 m apart, give it only as an average over a metre)."""

    speeds: np.ndarray
    sample_s: np.ndarray
    sample_accel: np.ndarray

    def accel_at(self, s: float) -> float:
        """The profile's acceleration (m/s^2) at path distance ``s`` (m)."""
        return float(np.interp(s, self.sample_s, self.sample_accel))


def speed_profile(s: np.ndarray, speed: float, d: Decision, p: BehaviourParams,
                  kappa: np.ndarray | None = None, accel: float = 0.0,
                  aligned: bool = False) -> SpeedProfile:
    """The speed profile over the path distances ``s`` (m the ego's centre travels;
    ``stop_s`` and ``lead_s`` are measured the same way, for the front bumper),
    starting at ``speed`` (m/s) and ``accel`` (m/s^2). ``aligned``: ``s`` is already
    :func:`align_grid`'s grid for this decision (as the local planner's is), which
    aligning again would give back unchanged, so it is used as it is.

    Hard limits (:func:`hard_limits`): curves (``kappa``, 1/m), stops, and arriving
    behind a lead at its speed; :func:`speed_envelope` is the most the car can go
    everywhere and still meet them. Soft targets, approached as fast as the limits
    allow: the target speed, and behind a lead the speed that closes the gap to
    ``time_gap`` (the lead predicted at its current speed). The profile is
    integrated in time (``profile_dt``, up to ``profile_horizon``) with the
    acceleration moving at most ``jerk`` per second towards the lower of what the
    soft target asks for (a square-root law, linear near the target, that lands on
    it with the acceleration fading out) and what keeps it under the envelope (its
    slope where the profile is, or its mean slope over what lies ahead in the
    approach if lower -- so braking starts early enough to meet a bend in it
    without a step -- plus the same square-root law on the gap to it). The
    envelope brakes ``decel_reserve`` short of the decel limit, so the profile (and
    the car, a step behind it) can catch up with it after a late start. The
    profile starts again from the measured speed every tick, so the law is also
    what closes the loop: its inputs must not jitter from tick to tick (see the
    local planner's grid and curvature).

    A limit too close to meet this way (a light turning red, a pedestrian
    stepping out) escalates: ``comfort_decel`` at ``firm_jerk``, ``firm_decel``
    at ``firm_jerk``, then ``emergency_decel`` at ``emergency_jerk`` (straight away
    in an emergency; the envelope of a harder stage brakes later, so a stop just
    beyond comfort must not go straight to the emergency one); the
    first profile that meets every hard limit (within ``limit_tolerance``) wins.
    The result never exceeds a hard limit: where even the last one would, it is
    cut to the limit and the controller brakes harder."""
    v0 = max(speed, 0.0)
    ceiling = max(d.target_speed, v0)
    cap, points = hard_limits(s, ceiling, d, p, kappa)
    # The envelope on a grid fine enough to show the brake released before a stop.
    fine, fine_cap = s, cap
    if not aligned:
        fine = align_grid(s, points, p.align_m, p.refine_m)
        fine_cap, _ = hard_limits(fine, ceiling, d, p,
                                  None if kappa is None else np.interp(fine, s, kappa))
    stages = [(p.emergency_decel, p.emergency_jerk)]
    if not d.emergency:
        stages = [(p.comfort_decel, p.jerk), (p.comfort_decel, p.firm_jerk),
                  (p.firm_decel, p.firm_jerk), *stages]
    for decel, jerk in stages:
        w = speed_envelope(fine, fine_cap, points, decel - p.decel_reserve, jerk)
        xs, vs, accels = _integrate(fine, w, v0, accel, d, p, decel, jerk)
        # v^2 is what is linear in distance at a constant acceleration; past the
        # integration's reach (profile_horizon) the envelope caps the last speed
        reached = s <= xs[-1]
        v = np.where(reached, np.sqrt(np.interp(s, xs, np.square(vs))),
                     np.minimum(vs[-1], np.interp(s, fine, w)))
        if np.all(v[reached] <= cap[reached] + p.limit_tolerance):
            break
    return SpeedProfile(np.minimum(v, cap), np.array(xs), np.array(accels))


def hard_limits(s: np.ndarray, ceiling: float, d: Decision, p: BehaviourParams,
                kappa: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The speed (m/s) the car must not exceed at each of the distances ``s`` --
    ``ceiling``; in curves sqrt(lateral_accel / kappa); zero from ``stop_s`` on; the
    lead's speed from ``min_gap`` behind it on -- and the points (distance m, speed
    m/s) where the stop and the lead limits begin, exactly (between points of
    ``s``)."""
    cap = np.full(len(s), ceiling, dtype=float)
    if kappa is not None:  # curves: |a_lat| = v^2 kappa <= lateral_accel
        cap = np.minimum(cap, np.sqrt(p.lateral_accel / np.maximum(kappa, 1e-9)))
    points = limit_points(d, p)
    for where, v_end in points:
        beyond = s >= where
        cap[beyond] = np.minimum(cap[beyond], v_end)
    return cap, points


def limit_points(d: Decision, p: BehaviourParams) -> list[tuple[float, float]]:
    """Where (distance along the path, m) a speed limit begins and its speed (m/s):
    the stop (0) and ``min_gap`` behind the lead (the lead's speed)."""
    points: list[tuple[float, float]] = []
    if d.stop_s < math.inf:
        points.append((d.stop_s, 0.0))
    if d.lead_s < math.inf:
        points.append((d.lead_s - p.min_gap, d.lead_speed))
    return points


def align_grid(s: np.ndarray, points: list[tuple[float, float]], clearance: float,
               refine: tuple[float, ...]) -> np.ndarray:
    """The path distances ``s`` (m, increasing) with points added: ``refine`` (m)
    after the first; each limit point (distance m, speed m/s) inside ``s``, and
    for a stop (speed 0) also ``refine`` metres before it. Points of ``s`` nearer
    than ``clearance`` (m) to a limit point are dropped (the first is kept).

    Why: the profile is read between points, its speed interpolated and its
    acceleration an average per segment. On a 1 m grid a stop would be read up to
    a metre late, the last metre before it as one constant deceleration (where the
    profile releases the brake as the car comes to rest, within half a metre at
    comfort jerk), and the first metre when setting off as one average
    acceleration (where the profile ramps it up from zero)."""
    added = [s[0] + r for r in refine if s[0] + r < s[-1]]
    for x, v_end in points:
        if not s[0] < x < s[-1]:
            continue
        s = s[(np.abs(s - x) >= clearance) | (s == s[0])]
        added.append(x)
        if v_end == 0:
            added.extend(x - r for r in refine if x - r > s[0])
    return _sorted_unique(np.concatenate([s, added]))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for a 1-D float array, the same way (sort, then drop
    each value equal to the one before) without its generic overhead, which is
    most of the cost on arrays this short (two calls a planner tick)."""
    values = np.sort(values)
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def speed_envelope(s: np.ndarray, cap: np.ndarray, points: list[tuple[float, float]],
                   decel: float, jerk: float) -> np.ndarray:
    """The highest speed (m/s) at each of the distances ``s`` from which the car can
    still keep under ``cap`` (m/s at ``s``) and reach each of ``points`` (distance
    m, speed m/s) at its speed, braking at up to ``decel`` (m/s^2) and releasing
    the brake at ``jerk`` (m/s^3) as it arrives at a lower limit (so it stops, or
    settles on a lower speed, with no step in its deceleration)."""
    sl, w = s.tolist(), cap.tolist()
    # The points inside each segment (sl[k], sl[k + 1]], in the order given, by k.
    inside: dict[int, list[tuple[float, float]]] = {}
    for where, v_end in points:
        k = bisect.bisect_left(sl, where) - 1
        if 0 <= k < len(sl) - 1:
            inside.setdefault(k, []).append((where, v_end))
    d_back = 0.0  # deceleration at the point after this one
    for k in range(len(sl) - 2, -1, -1):
        here = inside.get(k, ())
        if w[k] <= w[k + 1] and not here:
            d_back = 0.0  # the limit here binds (braking only ever raises the speed)
            continue
        v, dk = _release(w[k + 1], d_back, sl[k + 1] - sl[k], decel, jerk)
        for where, v_end in here:
            vp, dp = _release(v_end, 0.0, where - sl[k], decel, jerk)
            if vp < v:
                v, dk = vp, dp
        if w[k] < v:  # the limit here binds: from here on brake as it falls
            ds = sl[k + 1] - sl[k]
            v, dk = w[k], min(max((w[k] ** 2 - w[k + 1] ** 2) / (2.0 * ds), 0.0), decel)
        w[k], d_back = v, dk
    return np.array(w)


def _release(v: float, d: float, ds: float, decel: float, jerk: float) -> tuple[float, float]:
    """Backwards along a braking manoeuvre: the speed (m/s) and deceleration (m/s^2)
    ``ds`` metres before a point passed at speed ``v`` with deceleration ``d``, when
    the deceleration is at most ``decel`` and changes by at most ``jerk`` (m/s^3).

    In reversed time tau the deceleration grows, d + jerk tau, until ``decel``; the
    speed is v + d tau + jerk tau^2 / 2 and the distance v tau + d tau^2/2 +
    jerk tau^3 / 6 (solved for tau by Newton's method from above: the cubic is
    increasing and convex for tau >= 0, so it converges monotonically)."""
    ramp = max(decel - d, 0.0) / jerk  # s until the deceleration reaches decel
    ramp_ds = v * ramp + d * ramp * ramp / 2 + jerk * ramp ** 3 / 6
    if ds >= ramp_ds:  # ramp done: constant deceleration for the rest
        v_ramp = v + d * ramp + jerk * ramp * ramp / 2
        return math.sqrt(v_ramp * v_ramp + 2.0 * decel * (ds - ramp_ds)), decel
    tau = min(ramp, (6.0 * ds / jerk) ** (1.0 / 3.0))
    if v > 0:
        tau = min(tau, ds / v)
    for _ in range(8):
        f = v * tau + d * tau * tau / 2 + jerk * tau ** 3 / 6 - ds
        slope = v + d * tau + jerk * tau * tau / 2
        if f <= 1e-9 or slope <= 0:
            break
        tau -= f / slope
    return v + d * tau + jerk * tau * tau / 2, d + jerk * tau


def _integrate(s: np.ndarray, w: np.ndarray, v0: float, a0: float, d: Decision,
               p: BehaviourParams, decel: float, jerk: float,
               ) -> tuple[list[float], list[float], list[float]]:
    """The profile in time from (``v0`` m/s, ``a0`` m/s^2) at ``s[0]``, under the
    envelope ``w`` (m/s at ``s``): the distances (m, increasing), speeds (m/s) and
    accelerations (m/s^2) of its samples, until the end of ``s``,
    ``profile_horizon``, a standstill the envelope holds, or a cruise at the target
    speed that no limit ahead interrupts (then one last sample at the end of ``s``),
    or a standstill that the next steps would only repeat. See :func:`speed_profile`
    for the law."""
    sl = s.tolist()
    last = len(sl) - 2  # index of the last segment
    # Envelope acceleration per segment (v^2 is linear in s on a segment), and the
    # lowest envelope speed from each point on.
    w2 = np.square(w)
    slope = ((w2[1:] - w2[:-1]) / (2.0 * np.maximum(s[1:] - s[:-1], 1e-9))).tolist()
    w2 = w2.tolist()
    floor = np.minimum.accumulate(w[::-1])[::-1].tolist()
    dt, tau, accel, end = p.profile_dt, p.envelope_time, p.accel, sl[-1]
    horizon, min_gap, time_gap = p.profile_horizon, p.min_gap, p.time_gap
    target_speed, lead_s, lead_speed = d.target_speed, d.lead_s, d.lead_speed
    step = jerk * dt  # largest change of the acceleration per step
    two_jerk = 2.0 * jerk
    # The approach law, on a speed gap (target minus speed, m/s): the square-root
    # law sqrt(2 jerk |gap|), under which the acceleration can be taken out at
    # ``jerk`` by the time the gap closes, and near the target the gentler linear
    # law |gap| / tau, which does not chatter on a small gap; with the gap's sign.
    root, inv_tau = 2.0 * jerk, 1.0 / tau
    lead = lead_s < math.inf
    # Whether a step depends on the time only through the state: then a step that
    # neither moves the car nor changes its acceleration repeats to the horizon.
    timeless = not lead or lead_speed == 0.0
    after = bisect.bisect_right
    sqrt = math.sqrt
    t, x, v, a = 0.0, sl[0], v0, a0
    xs, vs, accels = [x], [v], [a]
    # Written for speed (this loop is most of a planner tick): no calls but sqrt
    # and bisect, and min and abs written out (as min and abs compare); each line
    # is the formula named in its comment.
    while x < end and t < horizon:
        # Both laws look at the end of the step (where the new acceleration applies),
        # predicted at the present one, so the brake is released on time at a stop.
        v1 = v + a * dt
        v1 = v1 if v1 > 0.0 else 0.0
        x1 = x + v * dt + 0.5 * a * dt * dt
        x1 = x1 if x1 > x else x
        k = after(sl, x1) - 1
        k = 0 if k < 0 else (last if k > last else k)
        e2 = w2[k] + 2.0 * slope[k] * (x1 - sl[k])
        w_1 = sqrt(e2) if e2 > 0.0 else 0.0  # envelope speed there
        # The envelope's mean slope over what lies ahead in the approach: half a
        # ramp to full braking (so braking starts early enough for a bend in it),
        # or the time the square-root law takes to close the gap, if longer.
        gap = w_1 - v1
        half_ramp = ((a if a > 0.0 else 0.0) + decel) / two_jerk
        closing = sqrt(2.0 * gap / jerk) if gap > 0.0 else 0.0
        ahead = v1 * (half_ramp if half_ramp > closing else closing)
        if ahead > 1e-3:
            kp = after(sl, x1 + ahead) - 1
            kp = 0 if kp < 0 else (last if kp > last else kp)
            e2p = w2[kp] + 2.0 * slope[kp] * (x1 + ahead - sl[kp])
            mean = ((e2p if e2p > 0.0 else 0.0) - w_1 * w_1) / (2.0 * ahead)
            w_slope = mean if mean < slope[k] else slope[k]
        else:
            w_slope = slope[k]
        target = target_speed
        if lead:
            room = lead_s + lead_speed * (t + dt) - x1 - min_gap
            follow = (room if room > 0.0 else 0.0) / time_gap
            target = follow if follow < target else target
        elif abs(target - v) < 1e-3 and abs(a) < 1e-3 and floor[k] >= target:
            xs.append(end)  # cruising at the target, and no limit below it ahead
            vs.append(v)
            accels.append(0.0)
            break
        g = target - v1  # the square-root law on the gap to the target...
        size = g if g >= 0.0 else -g
        law, linear = sqrt(root * size), size * inv_tau
        want_target = linear if linear < law else law
        want_target = want_target if g >= 0.0 else -want_target
        # ... and on the gap to the envelope, plus the envelope's own slope
        size = gap if gap >= 0.0 else -gap
        law, linear = sqrt(root * size), size * inv_tau
        want_env = linear if linear < law else law
        want_env = w_slope + (want_env if gap >= 0.0 else -want_env)
        a_want = want_env if want_env < want_target else want_target
        a_want = accel if accel < a_want else a_want
        a_want = a_want if a_want > -decel else -decel
        lo, hi = a - step, a + step  # the jerk limit
        a_new = lo if a_want < lo else (hi if a_want > hi else a_want)
        v_new = v + 0.5 * (a + a_new) * dt
        if v_new <= 0.0:  # comes to a stop within this step
            x_new = x + 0.5 * v * dt
            v_new = a_new = 0.0
        else:  # exact for an acceleration linear in time over the step
            x_new = x + dt * (v + dt * (2.0 * a + a_new) / 6.0)
        if x_new <= x and a_new == a and timeless:
            break  # standing still, and every step to the horizon would be this one
        t, a = t + dt, a_new
        if x_new > x:
            x, v = x_new, v_new
            xs.append(x)
            vs.append(v)
            accels.append(a)
        elif w_1 == 0.0 and a <= 0.0:  # held at a standstill by the envelope
            break
    return xs, vs, accels


def profile_times(s: np.ndarray, v: np.ndarray, v_floor: float = 0.05) -> np.ndarray:
    """Time (s) to reach each point at the profile's speeds (trapezoid rule); a
    standstill point gets the time of a crawl at ``v_floor`` so times keep rising."""
    ds = np.diff(s)
    vm = np.maximum((v[:-1] + v[1:]) / 2, v_floor)
    return np.concatenate([[0.0], np.cumsum(ds / vm)])
