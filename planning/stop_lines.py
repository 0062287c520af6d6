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

A head stands near the stop line (0-6.5 m before it in Town01/02), 2.5-2.9 m to the
right and 3.4-4.5 m up, and the front camera (1.6 m up, 29 degrees above its axis at
640x360) loses it when closer than about 5 m. So the planner stops for a perceived
light where the head stays in view and its turning green is seen: ``view_back_m``
before the entry and, where the map places the light's head (its signal landmark,
:func:`map_signal_heads`, as Autoware's lanelet map places a light), with the ego's
centre ``head_keep_m`` before the head. It holds a red or yellow read through
"unknown" reads for ``hold_s`` (:class:`PerceivedLight`). The network is trained to
answer "none" for a head out of view (:func:`perception.collect.light_label`), not
to guess; but there another junction's head, seen at an angle, can be read instead
(Town01, leaderboard route 5: a crossing road's red read 4.6 m before the line
stopped the car on the line, and that head's green sent it into its own red; route
2: a red read 6.6 m before it held the car there until its own light was red). So a
read does not count once the governing head is out of view (within ``head_lost_m``
of the head, or within ``blind_m`` of the entry and, where the map places the
head, ``head_blind_m`` of it): what was read before it stands. Unless the lamp
read was seen where the map puts the governing head (perception reports the
bearing of the lamp it read, ``bearing_tol_deg``), as Autoware's recogniser
looks for a light only where the map projects it into the image.

A yellow is decided against the line itself (stopped for when the car can stop
before it comfortably, else driven through) and a stop for it is then placed like
a red's, once per entry: short of the entry when the car can brake for that
firmly, else as soon as it can brake for firmly, at the entry at the latest. A
decision to stop stands; one to drive through is taken back as soon as the car,
slowed for something else, can stop comfortably after all (Town02, leaderboard
route 13: going through a yellow at 9 m/s, the car stopped for traffic 4 m before
the line, under the head and blind to it, and set off through the red that
followed). Nor is a yellow stopped for where the stop would leave the head out of
view, when the car reaches the entry with time to spare before the red: waiting
there blind, it could only guess when to go.

Every junction entry is a candidate: whether a junction has lights at all is not
asked of the map, so a red read while approaching an unsignalised junction stops
the car there (it waits for the state perception reports).

Frames and units: CARLA world frame, metres along the route polyline.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import carla
import numpy as np

from bus.frames import ego_to_world, normalize_angle_deg, yaw_world_to_ego
from bus.messages import TrafficLightState, Transform
from planning.polyline import foot_s

#: Halvings of a route segment when locating a junction's entry on it (1 m / 2^7:
#: under a centimetre)
_REFINE_STEPS = 7
#: m: a light's head is looked for on the route this far either side of its entry
_HEAD_SEARCH_M = 30.0


@dataclass(frozen=True)
class SignalHead:
    """A traffic light in the map: where its head stands and where the lanes it
    governs stop (world x, y, m): the landmark and stop waypoints of
    :func:`sim.traffic_lights.discover_traffic_lights`."""

    head_xy: tuple[float, float]
    stops_xy: tuple[tuple[float, float], ...]


def map_signal_heads(carla_map: carla.Map) -> list[SignalHead]:
    """Every traffic light of ``carla_map`` as a :class:`SignalHead` (one head per
    light: the first, the one the embedded simulator draws)."""
    from sim.traffic_lights import discover_traffic_lights

    return [SignalHead((light.transform.location.x, light.transform.location.y),
                       tuple((wp.transform.location.x, wp.transform.location.y)
                             for wp in light.stop_waypoints))
            for light in discover_traffic_lights(carla_map)]


class JunctionEntries:
    """The route distances (m) at which a route (N x 2 world points, the local
    planner's) enters a junction of ``carla_map`` and, for an entry that a light of
    ``heads`` governs (one of its stop points within ``match_m`` of where the route
    enters), the route distance of the light's head projected on the route
    (``head_m``, parallel to ``entries_m``; None for an entry without a light)."""

    def __init__(self, carla_map: carla.Map, route_xy: np.ndarray,
                 heads: Sequence[SignalHead] = (), match_m: float = 2.0) -> None:
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
        found = [self._head(xy, s, e, heads, match_m) for e in self.entries_m]
        self.head_m: list[float | None] = [None if f is None else f[0] for f in found]
        #: world x, y (m) of each entry's head, parallel to ``head_m``
        self.head_xy: list[tuple[float, float] | None] = [None if f is None else f[1]
                                                           for f in found]

    @staticmethod
    def _head(xy: np.ndarray, s: np.ndarray, entry_m: float, heads: Sequence[SignalHead],
              match_m: float) -> tuple[float, tuple[float, float]] | None:
        """Route distance and world x, y of the head of the light that governs the
        entry at ``entry_m`` (the farthest, should two match), projected on the
        route within ``_HEAD_SEARCH_M`` of the entry, or None."""
        at = np.array([np.interp(entry_m, s, xy[:, 0]), np.interp(entry_m, s, xy[:, 1])])
        near = np.flatnonzero(np.abs(s - entry_m) <= _HEAD_SEARCH_M)
        best: tuple[float, tuple[float, float]] | None = None
        for head in heads:
            stops = np.asarray(head.stops_xy, dtype=float).reshape(-1, 2)
            if not len(stops) or np.hypot(*(stops - at).T).min() > match_m:
                continue
            head_s = foot_s(xy, s, near, np.asarray(head.head_xy, dtype=float))
            if head_s is not None and (best is None or head_s > best[0]):
                best = (head_s, head.head_xy)
        return best

    @staticmethod
    def _in_junction(carla_map: carla.Map, x: float, y: float) -> bool:
        wp = carla_map.get_waypoint(carla.Location(x=float(x), y=float(y), z=0.0))
        return wp is not None and wp.is_junction

    def next_after(self, s_m: float) -> float | None:
        """The first entry strictly after route distance ``s_m`` (m), or None."""
        i = bisect.bisect_right(self.entries_m, s_m)
        return self.entries_m[i] if i < len(self.entries_m) else None

    def head_of(self, entry_m: float) -> float | None:
        """Route distance (m) of the head of the light governing the entry at
        ``entry_m`` (a value of :attr:`entries_m`), or None when none does."""
        i = bisect.bisect_left(self.entries_m, entry_m)
        return self.head_m[i] if i < len(self.entries_m) else None

    def head_xy_of(self, entry_m: float) -> tuple[float, float] | None:
        """World x, y (m) of that head, or None."""
        i = bisect.bisect_left(self.entries_m, entry_m)
        return self.head_xy[i] if i < len(self.entries_m) else None


@dataclass(frozen=True)
class PerceivedLightParams:
    #: m: a light applies at the next junction entry along the route within this
    lookahead_m: float = 60.0
    #: m: perception's lights are stopped for this far before the entry, so that the
    #: camera keeps the head (at the line, 3.4-4.5 m up) in view while waiting and
    #: sees it turn green; an ego that cannot brake for it firmly (the behaviour
    #: layer's ``firm_decel``) stops as soon as it can, at the entry at the latest
    view_back_m: float = 6.0
    #: m: with its centre this close to the entry (and, where the map places the
    #: head, ``head_blind_m`` of the head) the ego's camera cannot see the head
    #: governing it; a read there is another's and is ignored. Measured on Town01:
    #: heads 0.8 and 2 m before the line were lost 6.6 and 7.3-7.8 m before it
    #: (5.3-5.8 m before the head), and another head read in their place (routes
    #: 2 and 5)
    blind_m: float = 8.0
    #: m: see ``blind_m``. Not more: on town_grid_route the car stopped 7.5 m
    #: before an entry, 7.2 m before its head, read the head's green right and,
    #: inside ``blind_m`` alone, ignored it until the held yellow ran out on the
    #: next red. The entry counts as well as the head: Town01's head 4.4 m before
    #: its line on leaderboard routes 11 and 14 is read 5.5 m before it, 9.9 m
    #: before the entry (a 6 m ``head_lost_m`` ignored its green there and the
    #: hold ran out on red)
    head_blind_m: float = 6.5
    #: s: a red or yellow read is held through "unknown" reads (a lamp lost for a
    #: few frames, the red lamp cut off by the top of the image, or the head out of
    #: view) for at most this long, for the same junction entry: a red lasts up to
    #: 45 s at a four-way junction under CARLA's default cycle (three other
    #: approaches of 10 s green, 3 s yellow, 2 s all red). 10 s let the car drive
    #: into the red three times on Town02 route 13: stopped 9.5 m before the line
    #: it read the green and yellow lamps but not the red one above them. Longer
    #: costs a wait at a junction without lights after a false red read
    hold_s: float = 45.0
    #: m: where the map places the governing light's head, the ego stops with its
    #: centre this far before it (along the route), where the front camera (1.5 m
    #: ahead of the centre, 1.6 m up, 29.4 degrees above its axis) has the red
    #: lamp (4.3 m up) 23 degrees up, well in view; if that is short of
    #: ``view_back_m``'s point. Town02's heads stand up to 6.5 m before their line:
    #: on leaderboard routes 13 and 15 the car stopped 6 m short of the entry under
    #: light 18, 3.2 m before its head, waited out the hold blind and drove into
    #: the red
    head_keep_m: float = 8.0
    #: m: with its centre this close to the head (along the route) the camera has
    #: lost the whole head (at 5 m even the green lamp, 3.6 m up, is above the
    #: image); a read then is another head's and counts as "unknown", wherever
    #: the entry is
    head_lost_m: float = 5.0
    #: s: how long a yellow lasts (CARLA's default cycle, and the embedded
    #: simulator's). A yellow whose stop would leave the head out of view is driven
    #: through when the ego reaches the entry at its speed with ``yellow_margin_s``
    #: of it to spare, counted from the last green read (see :meth:`PerceivedLight.place`)
    yellow_s: float = 3.0
    #: s: see ``yellow_s``
    yellow_margin_s: float = 0.5
    #: deg: a read in the blind zone counts after all when its lamp was seen
    #: (``TrafficLightState.bearing``) within this of where the map puts the
    #: governing head, seen from the camera: the camera has lost the head's red
    #: lamp there but not always its green one, and a head read where the map's
    #: is, is the map's. Leaderboard route 4 (Town01) starts 10.4 m before a
    #: light that turned yellow 1.4 s in; the car stopped 7.7 m before the entry
    #: (5.8 m before the head), read its green right at 37-46 s, ignored it, and
    #: set off through the red when the held yellow ran out. The rendered lamp
    #: is seen within 1 degree of the map's head (its face is 0.15 m in front of
    #: the landmark); a head of another approach is tens of degrees away
    bearing_tol_deg: float = 4.0

    def __post_init__(self) -> None:
        if self.lookahead_m <= 0:
            raise ValueError("lookahead_m must be > 0")
        if min(self.view_back_m, self.blind_m, self.head_blind_m, self.hold_s,
               self.head_keep_m, self.head_lost_m, self.yellow_s,
               self.yellow_margin_s, self.bearing_tol_deg) < 0:
            raise ValueError("view_back_m, blind_m, head_blind_m, hold_s, head_keep_m, "
                             "head_lost_m, yellow_s, yellow_margin_s and bearing_tol_deg "
                             "must be >= 0")


class PerceivedLight:
    """Perception's light state placed at its stop line on the route, held through
    brief losses (see the module doc and :class:`PerceivedLightParams`)."""

    def __init__(self, entries: JunctionEntries, params: PerceivedLightParams,
                 comfort_decel: float = 3.0, firm_decel: float = 4.5,
                 clearance_m: float = 3.4) -> None:
        """The behaviour layer's ``comfort_decel`` (m/s^2: a yellow is stopped for
        when the line can be reached braking at most this), ``firm_decel`` (the most
        braked to stop short of the entry) and ``clearance_m`` (m from the ego's
        centre to where its front stops before a stop point)."""
        self.entries = entries
        self.params = params
        self.comfort_decel = comfort_decel
        self.firm_decel = firm_decel
        self.clearance_m = clearance_m
        self._held: tuple[str, float, float] | None = None  # state, stamp, entry (m)
        #: entry (m) whose yellow was decided a stop; driving through one is not
        #: kept: it holds only while the line is not a comfortable stop
        self._yellow_stop: float | None = None
        self._stop: tuple[float, float] | None = None  # entry, where to stop (route m)
        self._green: tuple[float, float] | None = None  # entry, stamp of its last green

    def place(self, light: TrafficLightState, ego_s_m: float, stamp: float,
              speed: float = 0.0, pose: Transform | None = None) -> TrafficLightState:
        """``light`` with the distance (m, from the ego's centre at route distance
        ``ego_s_m``) to where to stop for it, if it has no distance of its own
        (perception's: -1) and a junction entry is within the lookahead; else as it
        is. ``stamp``: the light's time (s); ``speed``: the ego's (m/s). An entry the
        ego's centre has passed is behind it, as is the light.

        A yellow is decided here against the line itself: stopped for when the ego
        can stop before the entry braking at ``comfort_decel`` (handed on as a red:
        a stop the behaviour layer makes), else driven through (handed on without
        a stop point) until the ego, slowed for something else, can stop so after
        all; a stop stands. Where to stop is decided once per entry
        too: ``view_back_m`` short of it (and, where the map places the light's
        head, far enough before the head to keep it in view: ``head_keep_m``)
        when the ego can brake for that at ``firm_decel``, else as soon as it can
        at ``firm_decel`` (the head may still be in view there), at the entry at
        the latest. Deciding
        a yellow against the point short of the entry, as the behaviour layer did,
        turned a 2.6 m/s^2 stop (27 m before the line at 11 m/s) into "too late":
        the car drove on, slowed for the turn beyond, and reached the line on red
        (Town01, leaderboard routes 0 and 1); deciding where to stop anew each tick
        moved the stop point to the entry while the car braked late. A yellow
        whose stop would leave the head out of view is driven through when the
        ego clears it with time to spare (:meth:`_clears_yellow_rather_than_wait_blind`).
        A read with the ego's centre where the camera has lost the head
        (:meth:`_blind`) counts as "unknown", unless its lamp was seen where the
        map puts the head (:meth:`_reads_head`; ``pose``: the ego's world pose)."""
        if light.distance >= 0:
            return light  # the oracle's: its own stop line
        p = self.params
        entry = self.entries.next_after(ego_s_m)
        if entry is None or entry - ego_s_m > p.lookahead_m:
            self._held = self._yellow_stop = self._stop = None
            return light
        head = self.entries.head_of(entry)
        if (light.state != "unknown" and self._blind(entry, head, ego_s_m)
                and not self._reads_head(entry, light, pose)):
            light = replace(light, state="unknown", confidence=0.0)
        if light.state in ("red", "yellow"):
            self._held = (light.state, stamp, entry)
        elif light.state == "green":
            self._held = self._yellow_stop = self._stop = None
            self._green = (entry, stamp)
        elif self._held is not None:  # unknown: the last red or yellow, for a while
            state, since, held_entry = self._held
            if held_entry != entry or stamp - since > p.hold_s:
                self._held = None
            else:
                light = replace(light, state=state)
        if light.state not in ("red", "yellow", "green"):
            return light
        distance = entry - ego_s_m
        if light.state == "green":
            return replace(light, distance=distance)
        if light.state == "yellow":
            room = max(distance - self.clearance_m, 0.0)
            if self._yellow_stop != entry and (
                    speed * speed > 2.0 * self.comfort_decel * room
                    or self._clears_yellow_rather_than_wait_blind(entry, head, ego_s_m,
                                                                  stamp, speed)):
                return light  # driven through: no stop point
            self._yellow_stop = entry
            light = replace(light, state="red")
        stop = self._stop_point(entry, head, ego_s_m, speed)
        return replace(light, distance=stop - ego_s_m)

    def _blind(self, entry: float, head: float | None, centre_s_m: float) -> bool:
        """Whether the camera, with the ego's centre at route distance
        ``centre_s_m``, has lost the head governing ``entry``: within
        ``head_lost_m`` of the head, or within ``blind_m`` of the entry and, where
        the map places the head, ``head_blind_m`` of it."""
        p = self.params
        if head is None:
            return entry - centre_s_m < p.blind_m
        return (head - centre_s_m < p.head_lost_m
                or (entry - centre_s_m < p.blind_m and head - centre_s_m < p.head_blind_m))

    def _reads_head(self, entry: float, light: TrafficLightState,
                    pose: Transform | None) -> bool:
        """Whether ``light``'s lamp was seen (``lamp_seen``: its ``bearing`` from its ``origin``,
        the camera in the ego frame) within ``bearing_tol_deg`` of where the map
        puts the head governing ``entry``, the ego at world ``pose``."""
        head = self.entries.head_xy_of(entry)
        if head is None or pose is None or not light.lamp_seen:
            return False
        o = light.origin
        cam_x, cam_y, _ = ego_to_world([o.x, o.y, o.z], pose)
        seen = yaw_world_to_ego(math.degrees(math.atan2(head[1] - cam_y, head[0] - cam_x)),
                                pose.rotation.yaw)
        return abs(normalize_angle_deg(seen - light.bearing)) <= self.params.bearing_tol_deg

    def _stop_point(self, entry: float, head: float | None, ego_s_m: float,
                    speed: float) -> float:
        """Where (route m) the ego's front stops for the red at ``entry``: decided
        at the first red (see :meth:`place`); the entry once that point is passed."""
        if self._stop is None or self._stop[0] != entry:
            self._stop = (entry, self._best_stop(entry, head, ego_s_m, speed))
        return self._stop[1] if self._stop[1] >= ego_s_m else entry

    def _best_stop(self, entry: float, head: float | None, ego_s_m: float,
                   speed: float) -> float:
        """The stop point (route m, for the ego's front) chosen now: ``view_back_m``
        short of the entry and ``head_keep_m`` before the head, or as soon as the
        ego brakes for it at ``firm_decel``; the entry at the latest."""
        p = self.params
        want = entry - p.view_back_m
        if head is not None:  # the head in view: the ego's centre keep_m before it
            want = min(want, head - p.head_keep_m + self.clearance_m)
        soonest = ego_s_m + self.clearance_m + speed * speed / (2.0 * self.firm_decel)
        return min(max(want, soonest), entry)

    def _clears_yellow_rather_than_wait_blind(self, entry: float, head: float | None,
                                              ego_s_m: float, stamp: float,
                                              speed: float) -> bool:
        """Whether a yellow the ego could stop for is better driven through: its
        stop would leave the head out of view (a wait there ends only when the
        hold runs out, at a guess), and at its speed the ego's centre reaches the
        entry ``yellow_margin_s`` before the red, the yellow having begun after the
        last green read for this entry (none read: not known, stopped for).
        Town02, leaderboard route 15: the yellow read 13.9 m before the entry at
        7.4 m/s (1.9 s to it, the green read 0.05 s before) was stopped for 4.3 m
        before the head; the car waited out the hold blind and set off on red."""
        p = self.params
        if self._green is None or self._green[0] != entry or speed <= 0.0:
            return False
        centre_at_stop = self._best_stop(entry, head, ego_s_m, speed) - self.clearance_m
        if not self._blind(entry, head, centre_at_stop):
            return False
        red_at = self._green[1] + p.yellow_s
        return stamp + (entry - ego_s_m) / speed <= red_at - p.yellow_margin_s
