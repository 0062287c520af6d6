"""Route evaluation as the CARLA Leaderboard 1.0 scores it, plus ride comfort.

Fed once per tick with the ego (:class:`EgoSample`, or an ``EgoState``) and that
tick's ``RunEvent`` messages, :class:`RouteEvaluator` keeps what a run is scored on
and returns the end-condition events it detects itself (``route_completed``,
``blocked``, ``route_timeout``). No bus in here: the evaluation node is a thin
adapter from ``/ego/state`` and ``/run/events`` to this class.

Frames and units: the route and every position are in the world frame (CARLA's,
metres, yaw in degrees); times are simulation seconds (``header.stamp``), never
wall time; accelerations m/s^2 and jerk m/s^3 in the ego frame (x forward, y right).

The Leaderboard 1.0 rules matched here (leaderboard ``route_scenario.py`` and
``statistics_manager.py``, scenario_runner ``atomic_criteria.py`` of that release):

* Route completion RC (%): route length progressed / route length. The Leaderboard
  counts the points of its 1 m route passed, looking only a few points ahead of the
  last one passed, so a route that loops back near itself or runs beside itself
  (the opposite lane) cannot be jumped. Here the progress is the arc length of the
  ego's closest point on the route within ``window_m`` ahead of the progress so far:
  the same count on a route of infinitely dense points. Monotonic.
* Route completed: RC > 99 % and the ego within 10 m of the route's last point; RC
  is then 100.
* Infraction penalty IP: the product of 0.50 per pedestrian collision, 0.60 per
  vehicle, 0.65 per static object, 0.70 per red light, 0.80 per stop sign, times
  (1 - off-route share). The off-route share is, like ``OutsideRouteLanesTest``,
  the route length progressed while outside the route's lanes divided by the route
  length progressed in all (the completed part of the route, not the whole route).
  Lane invasions, route deviation, blocked and timeout carry no penalty.
* Driving score DS = RC x IP, in 0..100.
* End conditions: route deviation (the simulator reports it, > 30 m from the
  route); blocked, speed below 0.1 m/s for more than 180 s; route timeout, more than
  ``int(0.8 s/m x route length + 5 s)`` since the start; route completed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bus.frames import vector_world_to_ego
from bus.messages import EgoState, Header, RunEvent, Vector3

#: Leaderboard 1.0 penalty factor of each infraction kind (statistics_manager.py).
PENALTIES: dict[str, float] = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
}
#: Everything the run records as an infraction (the Leaderboard's record has the
#: same kinds: collisions, red light, stop, outside route lanes, route deviation,
#: timeout, blocked), plus lane invasions, which it does not penalise either.
INFRACTION_KINDS: tuple[str, ...] = (
    *PENALTIES, "off_route", "lane_invasion", "route_deviation", "blocked", "route_timeout",
)
#: Kinds that end the run; the first one seen is the end reason.
END_KINDS: tuple[str, ...] = (
    "route_completed", "route_deviation", "blocked", "route_timeout", "scenario_end",
)

SECONDS_PER_METRE = 0.8  # route timeout budget per metre of route (route_scenario.py)
TIMEOUT_DELAY_S = 5.0  # plus this, for the start (route_scenario.py)
BLOCKED_SPEED = 0.1  # m/s: slower than this counts as standing (AgentBlockedTest)
BLOCKED_TIME_S = 180.0  # s standing before the run ends as blocked
COMPLETION_PERCENT = 99.0  # RC above this ...
COMPLETION_DISTANCE_M = 10.0  # ... and this close to the last point: completed


def route_timeout_s(route_length_m: float) -> float:
    """The Leaderboard's time budget (s) for a route of ``route_length_m`` metres:
    ``int(0.8 * length + 5)``, whole seconds as it computes them."""
    return float(int(SECONDS_PER_METRE * route_length_m + TIMEOUT_DELAY_S))


def infraction_penalty(counts: Mapping[str, int], off_route_share: float = 0.0) -> float:
    """IP in 0..1: each penalised infraction multiplies its factor in once per
    occurrence, and the off-route share (0..1) multiplies in ``1 - share``."""
    ip = 1.0
    for kind, factor in PENALTIES.items():
        ip *= factor ** int(counts.get(kind, 0))
    return ip * (1.0 - min(max(off_route_share, 0.0), 1.0))


@dataclass(frozen=True)
class EgoSample:
    """The ego at one tick, as evaluation needs it.

    ``stamp``: sim seconds; ``x, y``: world position (m); ``yaw``: world yaw (deg);
    ``speed``: m/s; ``accel_lon`` / ``accel_lat``: acceleration in the ego frame
    (m/s^2, forward / right); ``yaw_rate``: deg/s.
    """

    frame: int
    stamp: float
    x: float
    y: float
    yaw: float = 0.0
    speed: float = 0.0
    accel_lon: float = 0.0
    accel_lat: float = 0.0
    yaw_rate: float = 0.0

    @classmethod
    def from_ego_state(cls, ego: EgoState) -> EgoSample:
        """From the simulator's ``EgoState``: its world-frame acceleration rotated
        into the ego frame (the vehicle's own axes, so braking in a bend shows up as
        longitudinal and the centripetal part as lateral)."""
        t = ego.transform
        a = ego.acceleration
        lon, lat, _ = vector_world_to_ego(np.array([a.x, a.y, a.z]), t)
        return cls(frame=ego.header.frame, stamp=ego.header.stamp, x=t.location.x,
                   y=t.location.y, yaw=t.rotation.yaw, speed=ego.speed,
                   accel_lon=float(lon), accel_lat=float(lat), yaw_rate=ego.yaw_rate)


@dataclass(frozen=True)
class Infraction:
    """One recorded infraction: sim time (s), tick, kind, world position (m), the
    other actor (-1 when none) and the event's description."""

    time_s: float
    frame: int
    kind: str
    x: float
    y: float
    other_id: int = -1
    value: float = 0.0
    description: str = ""


class RoutePolyline:
    """A route as a world-frame polyline (m) with the arc length at each vertex, so
    that positions can be matched to a stretch of it."""

    def __init__(self, points: np.ndarray) -> None:
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
            raise ValueError(f"route: expected an (N, 2) array of world x, y with N >= 2, "
                             f"got shape {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("route: points must be finite")
        keep = np.concatenate([[True], np.any(np.diff(pts, axis=0) != 0.0, axis=1)])
        pts = pts[keep]  # repeated points make zero-length segments
        if len(pts) < 2:
            raise ValueError("route: all points coincide; it has no length")
        self.points = pts
        self.seg_len = np.hypot(*np.diff(pts, axis=0).T)
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])  # arc length at vertices
        self.length = float(self.s[-1])

    def match(self, p: np.ndarray, s_lo: float, s_hi: float) -> tuple[float, float]:
        """The point of the route between arc lengths ``s_lo`` and ``s_hi`` (m)
        closest to ``p`` (world x, y): its arc length and its distance (m). Ties go
        to the lower arc length, so progress never guesses ahead."""
        n = len(self.points)
        i0 = min(max(int(np.searchsorted(self.s, s_lo, side="right")) - 1, 0), n - 2)
        i1 = min(max(int(np.searchsorted(self.s, s_hi, side="left")), i0 + 1), n - 1)
        a, b = self.points[i0:i1], self.points[i0 + 1:i1 + 1]
        s0, length = self.s[i0:i1], self.seg_len[i0:i1]
        ab = b - a
        t = np.einsum("ij,ij->i", p - a, ab) / (length * length)
        t = np.clip(t, np.clip((s_lo - s0) / length, 0.0, 1.0),
                    np.clip((s_hi - s0) / length, 0.0, 1.0))
        d = np.hypot(*(a + t[:, None] * ab - p).T)
        k = int(np.argmin(d))
        return float(s0[k] + t[k] * length[k]), float(d[k])


@dataclass
class ComfortStats:
    """Ride comfort over a run: ego-frame accelerations (m/s^2) per tick and jerk
    (m/s^3), the change of the (longitudinal, lateral) acceleration between two
    consecutive ticks over their time step."""

    accel_lon: list[float] = field(default_factory=list)
    accel_lat: list[float] = field(default_factory=list)
    yaw_rate: list[float] = field(default_factory=list)
    jerk: list[float] = field(default_factory=list)
    jerk_lon: list[float] = field(default_factory=list)

    def add(self, sample: EgoSample, prev: EgoSample | None, max_step_s: float) -> None:
        """Add one tick; a jerk sample needs the previous tick no more than
        ``max_step_s`` before (a dropped tick would blur the difference)."""
        self.accel_lon.append(sample.accel_lon)
        self.accel_lat.append(sample.accel_lat)
        self.yaw_rate.append(sample.yaw_rate)
        if prev is None:
            return
        step = sample.stamp - prev.stamp
        if not 0.0 < step <= max_step_s:
            return
        d_lon = sample.accel_lon - prev.accel_lon
        d_lat = sample.accel_lat - prev.accel_lat
        self.jerk.append(math.hypot(d_lon, d_lat) / step)
        self.jerk_lon.append(d_lon / step)

    def summary(self) -> dict[str, float]:
        """The figures of the run (0 where there were no samples)."""

        def peak(values: list[float]) -> float:
            return float(np.max(np.abs(values))) if values else 0.0

        return {
            "max_abs_accel_lon_mps2": peak(self.accel_lon),
            "max_abs_accel_lat_mps2": peak(self.accel_lat),
            "max_abs_jerk_mps3": peak(self.jerk),
            "p99_abs_jerk_mps3": float(np.percentile(np.abs(self.jerk), 99))
            if self.jerk else 0.0,
            "max_abs_jerk_lon_mps3": peak(self.jerk_lon),
            "max_abs_yaw_rate_dps": peak(self.yaw_rate),
        }


class RunTally:
    """What every run is scored on, with a route or without: infractions by kind
    (with where and when), deadline misses, distance driven, duration, comfort, and
    the first end event. ``dt``: the simulator's tick (s), to tell consecutive ticks
    for the jerk."""

    def __init__(self, dt: float) -> None:
        if not dt > 0.0:
            raise ValueError(f"dt: expected a positive tick in seconds, got {dt}")
        self.dt = float(dt)
        self.distance_m = 0.0  # driven, along the ego's own path
        self.counts: dict[str, int] = dict.fromkeys(INFRACTION_KINDS, 0)
        self.infractions: list[Infraction] = []
        self.deadline_misses = 0
        self.comfort = ComfortStats()
        self.completed = False
        self.end_reason: str | None = None
        self._first: EgoSample | None = None
        self._last: EgoSample | None = None

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def duration_s(self) -> float:
        if self._first is None or self._last is None:
            return 0.0
        return self._last.stamp - self._first.stamp

    def _track(self, sample: EgoSample) -> None:
        """Distance driven and comfort up to ``sample``."""
        prev = self._last
        if prev is None:
            self._first = sample
        else:
            self.distance_m += math.hypot(sample.x - prev.x, sample.y - prev.y)
        self.comfort.add(sample, prev, max_step_s=1.5 * self.dt)
        self._last = sample

    def _record(self, event: RunEvent) -> None:
        kind = event.kind
        if kind == "deadline_miss":
            self.deadline_misses += 1
        if kind in self.counts:
            self.counts[kind] += 1
            loc = event.location
            self.infractions.append(Infraction(
                time_s=float(event.header.stamp), frame=int(event.header.frame), kind=kind,
                x=float(loc.x), y=float(loc.y), other_id=int(event.other_id),
                value=float(event.value), description=event.description))
        if kind in END_KINDS and not self.ended:
            self.end_reason = kind
            if kind == "route_completed":  # the Leaderboard scores RC 100 on this event
                self.completed = True


class RouteEvaluator(RunTally):
    """Scores one run along one route, tick by tick (see the module docstring).

    ``route``: (N, 2) world x, y (m), the route in driving order (the denser it is,
    the closer its length is to the driven one; the Leaderboard interpolates its
    routes at 1 m). ``dt``: the simulator's tick (s). ``window_m``: how far ahead of
    the progress so far (m, along the route) the ego may be matched; it must exceed
    the distance driven in one tick, and be shorter than the route takes to come
    back near itself. ``match_radius_m``: no progress while farther from the route
    than this (m). ``timeout_s``: None for the Leaderboard's budget from the route
    length. ``ego_id``: actor id put on the events this class emits.
    """

    def __init__(self, route: np.ndarray, dt: float, *, window_m: float = 10.0,
                 match_radius_m: float = 30.0, timeout_s: float | None = None,
                 blocked_time_s: float = BLOCKED_TIME_S, blocked_speed: float = BLOCKED_SPEED,
                 ego_id: int = 1) -> None:
        super().__init__(dt)
        if not window_m > 0.0:
            raise ValueError(f"window_m: expected a positive distance, got {window_m}")
        self.route = RoutePolyline(route)
        self.window_m = float(window_m)
        self.match_radius_m = float(match_radius_m)
        self.timeout_s = route_timeout_s(self.route.length) if timeout_s is None \
            else float(timeout_s)
        self.blocked_time_s = float(blocked_time_s)
        self.blocked_speed = float(blocked_speed)
        self.ego_id = ego_id

        self.progress_m = 0.0  # arc length of the route progressed
        self.off_route_m = 0.0  # of which while outside the route's lanes
        self._last_moving = 0.0  # sim time (s) the ego last went at least blocked_speed

    # ------------------------------------------------------------------ scores
    @property
    def route_length_m(self) -> float:
        return self.route.length

    @property
    def route_completion(self) -> float:
        """RC in percent (0..100)."""
        return 100.0 if self.completed else 100.0 * self.progress_m / self.route.length

    @property
    def off_route_share(self) -> float:
        """Route progressed outside the route's lanes / route progressed (0..1)."""
        return self.off_route_m / self.progress_m if self.progress_m > 0.0 else 0.0

    @property
    def infraction_penalty(self) -> float:
        return infraction_penalty(self.counts, self.off_route_share)

    @property
    def driving_score(self) -> float:
        """DS = RC x IP, 0..100."""
        return max(self.route_completion * self.infraction_penalty, 0.0)

    # ------------------------------------------------------------------ input
    def update_ego(self, ego: EgoState, events: Sequence[RunEvent] = (), *,
                   off_route: bool | None = None) -> list[RunEvent]:
        """:meth:`update` from the simulator's ``EgoState``."""
        return self.update(EgoSample.from_ego_state(ego), events, off_route=off_route)

    def update(self, sample: EgoSample, events: Sequence[RunEvent] = (), *,
               off_route: bool | None = None) -> list[RunEvent]:
        """One tick: the ego now and the events of this tick. Returns the end event
        this evaluator detected (route_completed, blocked or route_timeout), if any.

        ``off_route``: whether the ego is outside its route's lanes this tick (off the
        road or against the lane direction). The simulator's ``off_route`` event
        marks only where that starts, so pass the state when it is known; when None,
        only a tick that carries an ``off_route`` event counts as off route.

        After the run has ended nothing more is counted, so events this evaluator
        emitted and that come back over the bus are not counted twice.
        """
        if self.ended:
            return []
        if self._last is not None and sample.stamp < self._last.stamp:
            raise ValueError(f"tick at {sample.stamp} s comes after {self._last.stamp} s: "
                             f"sim time must not go back")
        if off_route is None:
            off_route = any(e.kind == "off_route" for e in events)
        self._advance(sample, off_route)
        for event in events:
            self._record(event)
        out: list[RunEvent] = []
        if not self.ended:
            out = self._end_conditions(sample)
        return out

    def _advance(self, sample: EgoSample, off_route: bool) -> None:
        """Route progress, off-route progress, distance driven and comfort."""
        if self._first is None:
            self._last_moving = sample.stamp
        p = np.array([sample.x, sample.y])
        s, d = self.route.match(p, self.progress_m, self.progress_m + self.window_m)
        if d <= self.match_radius_m and s > self.progress_m:
            if off_route:
                self.off_route_m += s - self.progress_m
            self.progress_m = s
        self._track(sample)

    def _end_conditions(self, sample: EgoSample) -> list[RunEvent]:
        """Completion, then blocked, then timeout (the Leaderboard's order)."""
        assert self._first is not None
        to_end = math.hypot(sample.x - self.route.points[-1, 0],
                            sample.y - self.route.points[-1, 1])
        rc = 100.0 * self.progress_m / self.route.length
        if rc > COMPLETION_PERCENT and to_end < COMPLETION_DISTANCE_M:
            event = self._event(sample, "route_completed", 100.0,
                                f"route completed ({rc:.2f} % progressed, {to_end:.1f} m "
                                f"from its end)")
        elif sample.speed >= self.blocked_speed:
            self._last_moving = sample.stamp
            event = None
        elif sample.stamp - self._last_moving > self.blocked_time_s:
            standing = sample.stamp - self._last_moving
            event = self._event(sample, "blocked", standing,
                                f"below {self.blocked_speed:g} m/s for {standing:.1f} s")
        else:
            event = None
        if event is None and sample.stamp - self._first.stamp > self.timeout_s:
            event = self._event(sample, "route_timeout", self.timeout_s,
                                f"route not completed within {self.timeout_s:g} s")
        if event is None:
            return []
        self._record(event)
        return [event]

    def _event(self, sample: EgoSample, kind: str, value: float,
               description: str) -> RunEvent:
        return RunEvent(header=Header(sample.frame, sample.stamp), kind=kind,
                        actor_id=self.ego_id, location=Vector3(sample.x, sample.y, 0.0),
                        value=value, description=description)

    # ------------------------------------------------------------------ output
    def metrics(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything the run is scored on, as plain JSON-able values (percentages
        0..100, metres, seconds). ``extra`` adds the caller's own fields (latencies,
        ticks per second, ...); a key that clashes with one of these is an error."""
        out: dict[str, Any] = {
            "driving_score": self.driving_score,
            "route_completion": self.route_completion,
            "infraction_penalty": self.infraction_penalty,
            "infractions": {
                "counts": dict(self.counts),
                "events": [asdict(i) for i in self.infractions],
            },
            "off_route_distance_m": self.off_route_m,
            "off_route_share": self.off_route_share,
            "route_length_m": self.route.length,
            "route_progress_m": self.progress_m,
            "timeout_s": self.timeout_s,
            "duration_s": self.duration_s,
            "distance_m": self.distance_m,
            "comfort": self.comfort.summary(),
            "deadline_misses": self.deadline_misses,
            "completed": self.completed,
            "end_reason": self.end_reason,
        }
        for key, value in (extra or {}).items():
            if key in out:
                raise ValueError(f"metrics: extra field {key!r} would replace a computed one")
            out[key] = value
        return out
