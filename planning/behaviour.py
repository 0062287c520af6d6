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

The result is a speed profile over the path: from the current speed, within
``accel``/``comfort_decel`` (or ``emergency_decel``), never above what lets the car
stop where it must: v(s) <= sqrt(2 a (s_stop - s)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString, Point, Polygon

from bus.messages import DetectedObject, ObjectList, TrafficLightState


@dataclass(frozen=True)
class BehaviourParams:
    max_speed: float = 0.0  # m/s; 0: the lane's speed limit
    accel: float = 2.0  # m/s^2, comfortable acceleration
    comfort_decel: float = 3.0  # m/s^2
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


@dataclass
class Decision:
    """What the behaviour layer decided this tick (for the speed profile and logs)."""

    target_speed: float
    stop_s: float = math.inf  # distance along the path to stop the front bumper at
    lead_s: float = math.inf  # distance to the lead vehicle's rear (bumper to bumper)
    lead_speed: float = 0.0
    emergency: bool = False
    reasons: list[str] = field(default_factory=list)


def path_s(points: np.ndarray) -> np.ndarray:
    """Cumulative distance (m) along a polyline (N x 2)."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def _along(path: LineString, obj: DetectedObject) -> tuple[float, float]:
    """(distance along the path, lateral distance from it) of an object's centre."""
    p = Point(obj.position.x, obj.position.y)
    return path.project(p), path.distance(p)


def decide(path_ego: np.ndarray, speed: float, speed_limit: float, objects: ObjectList,
           light: TrafficLightState, p: BehaviourParams) -> Decision:
    """The behaviour for one tick. ``path_ego``: N x 2 route points ahead, ego frame,
    starting at (about) the ego; ``speed``: ego speed (m/s)."""
    target = p.max_speed if p.max_speed > 0 else speed_limit
    if p.max_speed > 0 and speed_limit > 0:
        target = min(target, speed_limit)
    d = Decision(target_speed=target)
    if len(path_ego) < 2:
        d.stop_s, d.reasons = 0.0, ["no path ahead"]
        return d
    line = LineString(path_ego)
    corridor: Polygon = line.buffer(p.corridor_half_width, cap_style=2)
    front = p.ego_half_length

    # Traffic light: stop at the line for red, and for yellow if comfortable.
    if light.state in ("red", "yellow") and light.distance >= 0:
        gap = light.distance - front - p.stop_margin
        comfortable = speed * speed <= 2 * p.comfort_decel * max(gap, 0.0)
        if (light.state == "red" or comfortable) and gap > -front:  # line still ahead
            d.stop_s = min(d.stop_s, max(gap, 0.0))
            d.reasons.append(f"{light.state} light in {light.distance:.1f} m")

    for obj in objects.objects:
        s, lateral = _along(line, obj)
        if s <= 0.0 or obj.position.x < 0:
            continue  # behind us
        half_len = obj.size.x / 2
        if obj.label == "pedestrian":
            future = [Point(obj.position.x + obj.velocity.x * t,
                            obj.position.y + obj.velocity.y * t)
                      for t in np.linspace(0.0, p.pedestrian_horizon, 7)]
            if any(corridor.contains(q) for q in future):
                stop = s - front - p.pedestrian_margin
                d.stop_s = min(d.stop_s, max(stop, 0.0))
                d.reasons.append(f"pedestrian {obj.track_id} at {s:.1f} m")
            continue
        if lateral > p.corridor_half_width + obj.size.y / 2:
            crossing = _crossing(line, corridor, obj, speed, p)
            if crossing is not None:
                d.stop_s = min(d.stop_s, max(crossing - front - p.yield_margin, 0.0))
                d.reasons.append(f"yield to vehicle {obj.track_id} crossing at {crossing:.1f} m")
            continue  # beside the corridor
        gap = s - front - half_len
        if gap < d.lead_s:  # its speed along our heading (ego-frame x, over ground)
            d.lead_s, d.lead_speed = gap, max(0.0, obj.velocity.x)
    if d.lead_s < math.inf:
        closing = speed - d.lead_speed
        if closing > 0 and d.lead_s / closing < p.ttc_emergency:
            d.emergency = True
            d.reasons.append(f"time to collision {d.lead_s / closing:.1f} s")
        d.reasons.append(f"lead vehicle at {d.lead_s:.1f} m, {d.lead_speed:.1f} m/s")
    return d


def curvature(points: np.ndarray) -> np.ndarray:
    """|curvature| (1/m) at each point of a polyline (N x 2), from the turn of its
    heading per metre."""
    if len(points) < 3:
        return np.zeros(len(points))
    heading = np.unwrap(np.arctan2(*np.diff(points, axis=0).T[::-1]))
    seg = np.hypot(*np.diff(points, axis=0).T)
    k = np.abs(np.diff(heading)) / np.maximum((seg[:-1] + seg[1:]) / 2, 1e-6)
    return np.concatenate([[k[0]], k, [k[-1]]])


def _crossing(line: LineString, corridor: Polygon, obj: DetectedObject, speed: float,
              p: BehaviourParams) -> float | None:
    """Where (distance along the path) a vehicle moving in a straight line enters our
    corridor, if it does within ``yield_horizon`` and we would arrive there at about
    the same time (within ``yield_window``); else None."""
    v = math.hypot(obj.velocity.x, obj.velocity.y)
    if v < 1.0:
        return None
    for t in np.arange(0.5, p.yield_horizon + 1e-9, 0.5):
        q = Point(obj.position.x + obj.velocity.x * t, obj.position.y + obj.velocity.y * t)
        if corridor.distance(q) <= obj.size.y / 2:
            s_c = line.project(q)
            eta = s_c / max(speed, 2.0)
            return s_c if abs(eta - t) < p.yield_window and s_c > 0 else None
    return None


def speed_profile(s: np.ndarray, speed: float, d: Decision, p: BehaviourParams,
                  kappa: np.ndarray | None = None) -> np.ndarray:
    """Speeds (m/s) at the path distances ``s`` (m the ego's centre travels; ``stop_s``
    and ``lead_s`` are measured the same way, for the front bumper).

    Caps: the target speed; in curves (``kappa``, 1/m), sqrt(a_lat / kappa); before a
    stop, sqrt(2 a (s_stop - s)); behind a lead, its speed plus what closes the gap to
    the desired time gap; then a forward pass limits acceleration from the current
    speed and a backward pass deceleration."""
    decel = p.emergency_decel if d.emergency else p.comfort_decel
    cap = np.full_like(s, d.target_speed)
    if kappa is not None:  # curves: |a_lat| = v^2 kappa <= lateral_accel
        cap = np.minimum(cap, np.sqrt(p.lateral_accel / np.maximum(kappa, 1e-9)))
    if d.stop_s < math.inf:
        cap = np.minimum(cap, np.sqrt(2 * decel * np.clip(d.stop_s - s, 0.0, None)))
    if d.lead_s < math.inf:
        room = d.lead_s - s - p.min_gap
        # Speed that a time gap allows at each point, and braking room behind it.
        allowed = np.maximum(0.0, room / p.time_gap)
        stop_behind = np.sqrt(2 * decel * np.clip(room, 0.0, None) + d.lead_speed ** 2)
        cap = np.minimum(cap, np.maximum(np.minimum(allowed, stop_behind),
                                         np.where(room > 0, d.lead_speed, 0.0)))
    v = cap.copy()
    v[0] = min(cap[0], max(speed, 0.0)) if not d.emergency else min(cap[0], speed)
    ds = np.diff(s)
    for i in range(1, len(s)):  # forward: accelerate no faster than p.accel
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * p.accel * ds[i - 1]))
    for i in range(len(s) - 2, -1, -1):  # backward: decelerate no harder than decel
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * decel * ds[i]))
    return v


def profile_times(s: np.ndarray, v: np.ndarray, v_floor: float = 0.05) -> np.ndarray:
    """Time (s) to reach each point at the profile's speeds (trapezoid rule); a
    standstill point gets the time of a crawl at ``v_floor`` so times keep rising."""
    ds = np.diff(s)
    vm = np.maximum((v[:-1] + v[1:]) / 2, v_floor)
    return np.concatenate([[0.0], np.cumsum(ds / vm)])
