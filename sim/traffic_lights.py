"""Traffic lights of the embedded simulator: found in any ``carla.Map``, cycled per
junction in simulation time, queried by traffic, ground truth and infractions.

Discovery. A map's signal landmarks of type ``1000001`` (OpenDRIVE's traffic light,
as CARLA spawns its ``TrafficLight`` actors from) say which lanes they govern through
their lane validity (into which carla.Map folds the orientation). CARLA's towns put these
landmarks on the junction's connecting roads, as signal references, one per turn
from an approach; other maps put them on the incoming road before the junction. Both
are resolved to the same thing: the incoming driving lane, the junction it enters
and the point where it enters it (the stop line, like CARLA's
``TrafficLight.get_stop_waypoints``). Landmarks that land on the same (junction,
approach road, travel direction) are one :class:`TrafficLight`, so a signal
referenced from several connecting roads, or several heads on one approach, give
one light with one state.

Cycling. Each junction runs its lights like CARLA's default traffic-light group: one
approach (or, with ``pair_opposing``, one pair of opposing approaches) at a time
gets green, then yellow, then every light of the junction is red for the clearance
time before the next approach's green. A seed chooses each junction's position in
its cycle at time 0; :meth:`TrafficLights.tick` advances simulation time, never the
wall clock, so a run is reproducible.

Frames and units: positions and transforms are CARLA world frame (metres, degrees,
left-handed, z up); times are simulation seconds; states are the names in
``bus.messages.LIGHT_STATES``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import carla
import numpy as np

from bus.frames import from_carla_transform
from bus.messages import LIGHT_STATES, LaneRef, TrafficLightInfo, Transform, Vector3

__all__ = [
    "STOP_SIGN_TYPE",
    "TRAFFIC_LIGHT_TYPE",
    "LaneKey",
    "TrafficLight",
    "TrafficLightConfig",
    "TrafficLights",
    "discover_traffic_lights",
]

#: OpenDRIVE signal type of a traffic light (CARLA's ``get_all_landmarks_of_type``).
TRAFFIC_LIGHT_TYPE = "1000001"
STOP_SIGN_TYPE = "206"  # OpenDRIVE/CARLA stop sign: the same approach grouping applies

#: A lane as (road_id, section_id, lane_id), the fields of ``bus.messages.LaneRef``;
#: a tuple so it can key a dict (LaneRef is a mutable struct).
LaneKey = tuple[int, int, int]

_log = logging.getLogger(__name__)

# Step (m) when walking along a lane to or from its junction: short enough not to
# skip a whole lane section, long enough to walk 60 m in a few dozen calls.
_WALK_STEP_M = 1.0
# How far before the junction entry the stop waypoint sits (m). carla's Waypoint
# has no "lane end" accessor; stepping back this little from the junction's first
# waypoint gives a waypoint on the incoming lane, at the junction boundary.
_STOP_BACKOFF_M = 0.01
# Approaches whose travel directions differ by more than this (deg) are opposing.
_OPPOSING_MIN_DEG = 150.0


@dataclass
class TrafficLightConfig:
    """Cycle timings (simulation seconds) shared by every junction. Defaults are
    CARLA's (green 10 s, yellow 3 s, red 2 s). ``red_clearance_s`` is the all-red
    time after each yellow. ``pair_opposing`` gives opposing approaches green
    together instead of one approach at a time (CARLA's default)."""

    green_s: float = 10.0
    yellow_s: float = 3.0
    red_clearance_s: float = 2.0
    pair_opposing: bool = False

    def __post_init__(self) -> None:
        for name in ("green_s", "yellow_s", "red_clearance_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number of seconds")
        if self.green_s <= 0:
            raise ValueError("green_s must be > 0")
        if self.yellow_s < 0 or self.red_clearance_s < 0:
            raise ValueError("yellow_s and red_clearance_s must be >= 0")

    @property
    def phase_s(self) -> float:
        """Length of one approach's turn: green, yellow and the all-red clearance."""
        return self.green_s + self.yellow_s + self.red_clearance_s


@dataclass(frozen=True, eq=False)
class TrafficLight:
    """One approach's light: every signal landmark governing the incoming lanes of
    ``road_id`` that travel into ``junction_id`` in one direction.

    ``id`` is this light's index in :func:`discover_traffic_lights`'s result.
    ``signal_ids`` are the OpenDRIVE signal ids merged into it (CARLA's
    ``TrafficLight.get_opendrive_id``), ``heads`` the world transform of each
    (the landmark's, one per signal id, in ``signal_ids`` order).
    ``stop_waypoints`` has one waypoint per governed lane, on that lane where it
    enters the junction, ordered by lane id."""

    id: int
    junction_id: int
    road_id: int
    signal_ids: tuple[str, ...]
    heads: tuple[carla.Transform, ...]
    stop_waypoints: tuple[carla.Waypoint, ...]

    @property
    def transform(self) -> carla.Transform:
        """World transform of the light's first head (the ground-truth pose)."""
        return self.heads[0]

    @property
    def lanes(self) -> tuple[LaneKey, ...]:
        """The governed incoming lanes, as (road_id, section_id, lane_id)."""
        return tuple(_key(wp) for wp in self.stop_waypoints)

    @property
    def stop_line(self) -> carla.Location:
        """World location (m) of the middle of the stop line across all its lanes."""
        locs = [wp.transform.location for wp in self.stop_waypoints]
        n = len(locs)
        return carla.Location(x=sum(p.x for p in locs) / n, y=sum(p.y for p in locs) / n,
                              z=sum(p.z for p in locs) / n)

    @property
    def heading_deg(self) -> float:
        """Direction of travel (world yaw, deg) of the governed lanes at the stop line."""
        return float(self.stop_waypoints[0].transform.rotation.yaw)


def _key(wp: carla.Waypoint) -> LaneKey:
    return (int(wp.road_id), int(wp.section_id), int(wp.lane_id))


def _signal_order(signal_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order ("99" before "360"), any others after them."""
    return (len(signal_id), signal_id) if signal_id.isdigit() else (1 << 30, signal_id)


def _landmark_lanes(carla_map: carla.Map, landmark: carla.Landmark) -> list[carla.Waypoint]:
    """Waypoints at the landmark's s on each driving lane its validity names.

    carla.Map has already folded the orientation into the validity: a ``<signal>``
    without ``<validity>`` comes back valid for every lane on one side, CARLA's way
    (``+`` gives the positive lane ids, ``-`` the negative ones, the reverse of
    OpenDRIVE's direction of travel; CARLA's towns are written that way), and one
    with ``fromLane=0 toLane=0`` is no landmark at all. So an empty validity governs
    nothing here, as it does for CARLA's ``TrafficLight.get_affected_lane_waypoints``."""
    lane_ids: set[int] = set()
    for lo, hi in landmark.get_lane_validities():
        lane_ids.update(i for i in range(min(lo, hi), max(lo, hi) + 1) if i != 0)
    found = (carla_map.get_waypoint_xodr(landmark.road_id, i, landmark.s) for i in sorted(lane_ids))
    return [wp for wp in found if wp is not None and wp.lane_type == carla.LaneType.Driving]


def _junction_entry(wp: carla.Waypoint, max_walk_m: float) -> carla.Waypoint | None:
    """A waypoint on the lane of the junction that ``wp``'s lane enters (or lies in),
    within ``_WALK_STEP_M`` of its entry: walking back from inside a junction, or
    forward along the incoming lane. None when no junction is within ``max_walk_m``."""
    walked = 0.0
    if wp.is_junction:
        while walked <= max_walk_m:
            before = wp.previous(_WALK_STEP_M)
            if not before:
                return None
            if any(not b.is_junction for b in before):
                return wp
            wp, walked = before[0], walked + _WALK_STEP_M
        return None
    while walked <= max_walk_m:
        ahead = wp.next(_WALK_STEP_M)
        if not ahead:
            return None
        inside = [a for a in ahead if a.is_junction]
        if inside:
            return inside[0]
        wp, walked = ahead[0], walked + _WALK_STEP_M
    return None


def _stop_waypoint(near_entry: carla.Waypoint,
                   entries: dict[LaneKey, carla.Waypoint]) -> carla.Waypoint | None:
    """The incoming lane's waypoint at the junction boundary, from a junction waypoint
    near the entry of its connecting lane (the map's topology knows that entry
    exactly; ``near_entry`` is the fallback)."""
    entry = entries.get(_key(near_entry), near_entry)
    before = [b for b in entry.previous(_STOP_BACKOFF_M) if not b.is_junction]
    driving = [b for b in before if b.lane_type == carla.LaneType.Driving]
    return driving[0] if driving else None


def discover_traffic_lights(carla_map: carla.Map, max_walk_m: float = 60.0,
                            signal_type: str = TRAFFIC_LIGHT_TYPE) -> list[TrafficLight]:
    """Every signalised approach of ``carla_map``, one :class:`TrafficLight` each.
    (``signal_type=STOP_SIGN_TYPE`` finds the stop-sign approaches the same way.)

    Each landmark of type 1000001 governs some lanes (:func:`_landmark_lanes`);
    each lane is followed to the junction it enters (at most ``max_walk_m`` metres
    ahead, or back to the entry when the landmark is inside the junction) and
    resolved to its stop waypoint. Lanes are then grouped by (junction id, incoming
    road id, sign of the lane id): the sign is the travel direction on that road, so
    each group is one approach. Landmarks that resolve to nothing (no driving lane,
    no junction ahead) are skipped with a debug log, as CARLA would not give them a
    stop line either. Ids follow the sorted (junction, road, direction) order."""
    entries = {_key(a): a for a, _ in carla_map.get_topology() if a.is_junction}
    stops: dict[tuple[int, int, int], dict[LaneKey, carla.Waypoint]] = {}
    heads: dict[tuple[int, int, int], dict[str, carla.Transform]] = {}
    for landmark in carla_map.get_all_landmarks_of_type(signal_type):
        resolved = False
        for lane_wp in _landmark_lanes(carla_map, landmark):
            near_entry = _junction_entry(lane_wp, max_walk_m)
            stop = _stop_waypoint(near_entry, entries) if near_entry is not None else None
            if stop is None:
                continue
            group = (int(near_entry.junction_id), int(stop.road_id), 1 if stop.lane_id > 0 else -1)
            stops.setdefault(group, {})[_key(stop)] = stop
            heads.setdefault(group, {}).setdefault(str(landmark.id), landmark.transform)
            resolved = True
        if not resolved:
            _log.debug("traffic-light landmark %s on road %d governs no junction approach",
                       landmark.id, landmark.road_id)
    lights = []
    for light_id, group in enumerate(sorted(stops)):
        signal_ids = tuple(sorted(heads[group], key=_signal_order))
        lanes = stops[group]
        lights.append(TrafficLight(
            id=light_id, junction_id=group[0], road_id=group[1], signal_ids=signal_ids,
            heads=tuple(heads[group][s] for s in signal_ids),
            stop_waypoints=tuple(lanes[k] for k in sorted(lanes, key=lambda k: abs(k[2]))),
        ))
    return lights


def _phases(lights: Sequence[TrafficLight], pair_opposing: bool) -> list[tuple[int, ...]]:
    """A junction's lights in the order they get green: by heading, so the turn goes
    round the junction; with ``pair_opposing``, each light shares its turn with the
    first later light travelling the opposite way."""
    order = sorted(lights, key=lambda lt: (lt.heading_deg % 360.0, lt.id))
    phases: list[tuple[int, ...]] = []
    taken: set[int] = set()
    for i, light in enumerate(order):
        if light.id in taken:
            continue
        phase = [light.id]
        if pair_opposing:
            for other in order[i + 1:]:
                diff = abs((other.heading_deg - light.heading_deg + 180.0) % 360.0 - 180.0)
                if other.id not in taken and diff > _OPPOSING_MIN_DEG:
                    phase.append(other.id)
                    break
        taken.update(phase)
        phases.append(tuple(phase))
    return phases


@dataclass
class _Junction:
    """One junction's cycle: ``phases`` in green order, ``offset_s`` the cycle
    position at simulation time 0 (seconds into the cycle)."""

    phases: list[tuple[int, ...]]
    offset_s: float


class TrafficLights:
    """All traffic lights of a map, cycling in simulation time.

    Build with :meth:`from_map`; call :meth:`tick` once per simulation step. States
    are recomputed on each tick, so queries are dictionary look-ups."""

    def __init__(self, lights: Sequence[TrafficLight], config: TrafficLightConfig | None = None,
                 seed: int = 0) -> None:
        self.config = config or TrafficLightConfig()
        self.lights: tuple[TrafficLight, ...] = tuple(lights)
        self._by_id = {light.id: light for light in self.lights}
        self._by_lane = {lane: light for light in self.lights for lane in light.lanes}
        self._junctions: dict[int, _Junction] = {}
        for junction_id in sorted({light.junction_id for light in self.lights}):
            members = [light for light in self.lights if light.junction_id == junction_id]
            phases = _phases(members, self.config.pair_opposing)
            cycle = len(phases) * self.config.phase_s
            # A string seed is hashed with SHA-512: the same in every process.
            offset = random.Random(f"{seed}/{junction_id}").uniform(0.0, cycle)
            self._junctions[junction_id] = _Junction(phases, offset)
        self._forced: dict[int, str] = {}
        self._frozen = False
        self._time_s = 0.0
        self._states: dict[int, str] = {}
        # Stop lines as arrays, one row per governed lane, for the crossing test.
        rows = [(light.id, wp) for light in self.lights for wp in light.stop_waypoints]
        self._line_light = np.array([light_id for light_id, _ in rows], dtype=np.int64)
        self._line_centre = np.array(
            [(wp.transform.location.x, wp.transform.location.y) for _, wp in rows],
            dtype=np.float64).reshape(-1, 2)
        yaw = np.radians([wp.transform.rotation.yaw for _, wp in rows])
        self._line_forward = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1).reshape(-1, 2)
        self._line_half_width = np.array([wp.lane_width / 2.0 for _, wp in rows], dtype=np.float64)
        # (id, head pose, stop-line centre, lanes) per light, for ground_truth
        self._gt_places: list[tuple[int, Transform, Vector3, list[LaneRef]]] | None = None
        self._update()

    @classmethod
    def from_map(cls, carla_map: carla.Map, config: TrafficLightConfig | None = None,
                 seed: int = 0) -> TrafficLights:
        """The lights :func:`discover_traffic_lights` finds in ``carla_map``."""
        return cls(discover_traffic_lights(carla_map), config, seed)

    # ------------------------------------------------------------------ time
    @property
    def time_s(self) -> float:
        """Simulation seconds the cycles have run (frozen time excluded)."""
        return self._time_s

    def tick(self, dt: float) -> None:
        """Advance the cycles by ``dt`` simulation seconds (no time while frozen)."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f"dt must be a finite number of seconds >= 0, got {dt!r}")
        if not self._frozen:
            self._time_s += dt
        self._update()

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) every junction's cycle where it is, like CARLA's
        ``World.freeze_all_traffic_lights``."""
        self._frozen = frozen

    def set_state(self, light_id: int, state: str) -> None:
        """Force a light to ``state`` until :meth:`release`, whatever its junction's
        cycle does: CARLA's ``TrafficLight.set_state`` followed by ``freeze(True)``.
        Scenarios use it; nothing stops them forcing conflicting greens."""
        if state not in LIGHT_STATES:
            raise ValueError(f"state must be one of {', '.join(LIGHT_STATES)}, got {state!r}")
        self._light(light_id)
        self._forced[light_id] = state
        self._states[light_id] = state

    def release(self, light_id: int) -> None:
        """Return a forced light to its junction's cycle."""
        self._light(light_id)
        self._forced.pop(light_id, None)
        self._update()

    def _update(self) -> None:
        cfg = self.config
        for junction in self._junctions.values():
            cycle = len(junction.phases) * cfg.phase_s
            into = (self._time_s + junction.offset_s) % cycle
            turn = min(int(into // cfg.phase_s), len(junction.phases) - 1)
            into_turn = into - turn * cfg.phase_s
            active = ("green" if into_turn < cfg.green_s
                      else "yellow" if into_turn < cfg.green_s + cfg.yellow_s else "red")
            for i, phase in enumerate(junction.phases):
                for light_id in phase:
                    self._states[light_id] = active if i == turn else "red"
        self._states.update(self._forced)

    # --------------------------------------------------------------- queries
    def _light(self, light_id: int) -> TrafficLight:
        try:
            return self._by_id[light_id]
        except KeyError:
            raise KeyError(f"no traffic light with id {light_id}") from None

    def state_of(self, light_id: int) -> str:
        """The light's state now: 'green', 'yellow' or 'red' (or a forced state)."""
        self._light(light_id)
        return self._states[light_id]

    def timing(self, light_id: int) -> tuple[float, float, float, float]:
        """CARLA's view of a light's cycle: green, yellow and red times (s; red is
        the rest of its junction's cycle) and the seconds spent in its current state
        (0 for a forced state)."""
        light = self._light(light_id)
        cfg = self.config
        junction = self._junctions[light.junction_id]
        cycle = len(junction.phases) * cfg.phase_s
        red = cycle - cfg.green_s - cfg.yellow_s
        if light_id in self._forced:
            return cfg.green_s, cfg.yellow_s, red, 0.0
        turn = next(i for i, phase in enumerate(junction.phases) if light_id in phase)
        since_green = (self._time_s + junction.offset_s - turn * cfg.phase_s) % cycle
        if since_green < cfg.green_s:
            elapsed = since_green
        elif since_green < cfg.green_s + cfg.yellow_s:
            elapsed = since_green - cfg.green_s
        else:
            elapsed = since_green - cfg.green_s - cfg.yellow_s
        return cfg.green_s, cfg.yellow_s, red, elapsed

    def light_for_lane(self, road_id: int, section_id: int, lane_id: int) -> TrafficLight | None:
        """The light governing this incoming lane, i.e. the lane section that ends at
        its stop line; None for any other lane (earlier sections included)."""
        return self._by_lane.get((road_id, section_id, lane_id))

    def ground_truth(self) -> list[TrafficLightInfo]:
        """Every light with its state, head pose, stop-line centre and lanes. The
        lights' places are converted once (they stand still); each tick shares them
        and adds the states, as messages are not changed once built."""
        if self._gt_places is None:
            self._gt_places = []
            for light in self.lights:
                c = light.stop_line
                self._gt_places.append((
                    light.id, from_carla_transform(light.transform),
                    Vector3(float(c.x), float(c.y), float(c.z)),
                    [LaneRef(*lane) for lane in light.lanes]))
        return [TrafficLightInfo(id=i, state=self._states[i], transform=tf, stop_line=line,
                                 lanes=lanes)
                for i, tf, line, lanes in self._gt_places]

    def red_light_crossed(self, prev_xy: Sequence[float],
                          cur_xy: Sequence[float]) -> TrafficLight | None:
        """The red light whose stop line a vehicle crossed moving from ``prev_xy`` to
        ``cur_xy`` (world x, y in m, e.g. its positions at two consecutive ticks),
        else None.

        Each governed lane's stop line is a segment through its stop waypoint,
        perpendicular to the lane and as wide as it. A crossing is the step going
        from strictly before the line to on or past it, in the lane's direction of
        travel, at a point within the segment; reversing over it is not running the
        light, and a line is only crossed once per pass."""
        p = np.asarray(prev_xy, dtype=np.float64)[:2] - self._line_centre
        q = np.asarray(cur_xy, dtype=np.float64)[:2] - self._line_centre
        along_p = np.einsum("ij,ij->i", p, self._line_forward)
        along_q = np.einsum("ij,ij->i", q, self._line_forward)
        hits = np.flatnonzero((along_p < 0.0) & (along_q >= 0.0))
        for i in hits:
            u = along_p[i] / (along_p[i] - along_q[i])
            at = p[i] + u * (q[i] - p[i])
            lateral = at[0] * -self._line_forward[i, 1] + at[1] * self._line_forward[i, 0]
            light_id = int(self._line_light[i])
            if abs(lateral) <= self._line_half_width[i] and self._states[light_id] == "red":
                return self._by_id[light_id]
        return None
