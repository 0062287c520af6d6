"""Lane-level route planner on a ``carla.Map``: a graph of lane waypoints, A* on it.

Why: the behaviour and local planners need to know which lanes lead to the goal and
where the car must turn or change lanes; this module answers that once per goal,
from the map alone. It works on any ``carla.Map`` built from OpenDRIVE text (the
planning node receives that text over the bus), so nothing here touches the
simulator.

How (as in CARLA's ``GlobalRoutePlanner``, at lane resolution):

1. ``carla_map.get_topology()`` gives one segment per lane: (entry waypoint of the
   lane, entry waypoint of a successor lane). Each lane is densified with
   ``waypoint.next(resolution)`` into a chain of graph nodes; the last node of a
   chain links to the first node of each successor lane. Edges cost their length.
2. Where the lane marking allows it (``right_lane_marking.lane_change`` /
   ``left_lane_marking.lane_change``) and the neighbour is a driving lane of the
   same direction, a lane-change edge goes from a node to the neighbour lane
   ``lane_change_length_m`` further on, costing its length plus a penalty.
3. A start or goal is projected onto the nearest lane (with a heading preference
   when a yaw is given) and joined to the graph by two virtual nodes; A* with the
   straight-line distance to the goal as heuristic finds the cheapest path.
4. The path becomes dense :class:`RouteWaypoint` s with a :class:`RoadOption` each:
   junction lanes are LEFT / RIGHT / STRAIGHT by their heading change (like
   CARLA's ``_turn_decision``), lane changes CHANGELANELEFT / CHANGELANERIGHT,
   everything else LANEFOLLOW.

Frame: CARLA's world frame throughout (metres; x, y, z with z up, left-handed;
yaw in degrees, positive turning from +x towards +y, i.e. to the right).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import carla
import numpy as np

__all__ = [
    "OffLaneError",
    "RoadOption",
    "Route",
    "RoutePlanner",
    "RouteWaypoint",
    "UnreachableError",
]


class UnreachableError(ValueError):
    """No route: the goal cannot be reached along driving lanes from the start."""


class OffLaneError(UnreachableError):
    """A start, goal or via point that is not on any driving lane."""


class RoadOption(IntEnum):
    """What the car does at a waypoint (CARLA's ``RoadOption``, same values)."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


@dataclass(frozen=True)
class RouteWaypoint:
    """One point of a dense route, on a lane centre (or between two lanes during a
    lane change). World frame: ``x, y, z`` in metres, ``yaw`` in degrees.
    ``road_id / section_id / lane_id`` name the OpenDRIVE lane it lies on (the lane
    being left, during a lane change); ``option`` is the manoeuvre that reaches this
    point; ``s`` the distance (m) along the route from its first point."""

    x: float
    y: float
    z: float
    yaw: float
    road_id: int
    section_id: int
    lane_id: int
    option: RoadOption
    s: float


@dataclass(frozen=True)
class Route:
    """A dense route: ``waypoints`` in driving order, ``length_m`` the polyline length
    (m) and ``cost`` what A* minimised (length plus lane-change penalties)."""

    waypoints: tuple[RouteWaypoint, ...]
    length_m: float
    cost: float

    def xy(self) -> np.ndarray:
        """The waypoints as an (N, 2) array of world x, y (m)."""
        return np.array([(w.x, w.y) for w in self.waypoints], dtype=float).reshape(-1, 2)

    def options(self) -> list[RoadOption]:
        """The road option of every waypoint, in order."""
        return [w.option for w in self.waypoints]


# ---------------------------------------------------------------------------------
# Graph


@dataclass
class _Node:
    """A lane waypoint of the graph (world frame, m / deg)."""

    x: float
    y: float
    z: float
    yaw: float
    road_id: int
    section_id: int
    lane_id: int
    lane_width: float


@dataclass
class _Chain:
    """One lane, densified: ``nodes`` in driving order from the lane's start, then
    ``successors`` (first nodes of the lanes it leads to). ``option`` is the turn
    made on it (LEFT / RIGHT / STRAIGHT in a junction, else LANEFOLLOW). ``along``
    is each node's OpenDRIVE s signed to grow in driving order (lanes with a
    positive id run against s), for finding a node by s."""

    nodes: list[int]
    along: list[float]
    successors: list[int] = field(default_factory=list)
    option: RoadOption = RoadOption.LANEFOLLOW


@dataclass(frozen=True)
class _Edge:
    """A directed edge ``to`` with its ``cost`` (m); ``via`` are the points strictly
    between its ends (a lane change's interpolated path), ``option`` what it does."""

    to: int
    cost: float
    option: RoadOption
    via: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class _Anchor:
    """A point projected onto a chain: between ``chain.nodes``-polyline points
    ``i`` and ``i + 1`` at fraction ``t``; ``x, y, z, yaw`` the projection."""

    chain: int
    i: int
    t: float
    x: float
    y: float
    z: float
    yaw: float
    distance: float


_START, _GOAL = -1, -2


def _lane_key(wp: carla.Waypoint) -> tuple[int, int, int]:
    return (wp.road_id, wp.section_id, wp.lane_id)


def _wp_key(wp: carla.Waypoint) -> tuple[int, int, int, float]:
    """Identity of a lane's first waypoint: a topology segment's exit waypoint is the
    successor lane's entry waypoint, so this joins the segments."""
    return (wp.road_id, wp.section_id, wp.lane_id, round(wp.s, 2))


def _wrap_deg(angle: float) -> float:
    """``angle`` (deg) wrapped into [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def _point_of(p: Any) -> tuple[float, float, float | None]:
    """(x, y, yaw or None) of a point given as (x, y), (x, y, z), a carla.Location,
    a carla.Transform / Waypoint, or anything with ``x, y`` (and maybe ``yaw``)
    attributes such as a leaderboard route point."""
    if isinstance(p, carla.Waypoint):
        p = p.transform
    if isinstance(p, carla.Transform):
        return (p.location.x, p.location.y, p.rotation.yaw)
    if hasattr(p, "x") and hasattr(p, "y"):
        yaw = getattr(p, "yaw", None)
        return (float(p.x), float(p.y), None if yaw is None else float(yaw))
    seq = tuple(p)
    if len(seq) < 2:
        raise TypeError(f"a point needs x and y, got {p!r}")
    return (float(seq[0]), float(seq[1]), None)


class RoutePlanner:
    """Lane-level A* route planner for one ``carla.Map`` (build once per map).

    ``resolution_m``: spacing of the dense waypoints (m). ``lane_change_length_m``:
    distance travelled along the lane while changing lanes (m).
    ``lane_change_penalty_m``: extra cost of a lane change (m of driving), so a
    route changes lanes only when that saves more than this. ``off_lane_tolerance_m``:
    how far outside a lane's half-width a start or goal may lie and still be
    snapped onto it.
    """

    def __init__(self, carla_map: carla.Map, resolution_m: float = 2.0,
                 lane_change_length_m: float = 10.0, lane_change_penalty_m: float = 10.0,
                 off_lane_tolerance_m: float = 0.5) -> None:
        if resolution_m <= 0:
            raise ValueError(f"resolution_m must be > 0, not {resolution_m}")
        self.map_name: str = carla_map.name
        self.resolution_m = resolution_m
        self.lane_change_length_m = lane_change_length_m
        self.lane_change_penalty_m = lane_change_penalty_m
        self.off_lane_tolerance_m = off_lane_tolerance_m
        self._nodes: list[_Node] = []
        self._chains: list[_Chain] = []
        self._chain_of_lane: dict[tuple[int, int, int], int] = {}
        self._node_of_entry: dict[tuple[int, int, int, float], int] = {}
        self._edges: list[list[_Edge]] = []
        self._build(carla_map)

    # -- building -------------------------------------------------------------

    def _add_node(self, wp: carla.Waypoint) -> int:
        t = wp.transform
        self._nodes.append(_Node(t.location.x, t.location.y, t.location.z, t.rotation.yaw,
                                 wp.road_id, wp.section_id, wp.lane_id, wp.lane_width))
        self._edges.append([])
        return len(self._nodes) - 1

    def _entry_node(self, wp: carla.Waypoint) -> int:
        key = _wp_key(wp)
        if key not in self._node_of_entry:
            self._node_of_entry[key] = self._add_node(wp)
        return self._node_of_entry[key]

    def _build(self, carla_map: carla.Map) -> None:
        """Chains from the topology, follow edges, then lane-change edges."""
        chain_wps: list[list[carla.Waypoint]] = []
        for entry, exit_ in carla_map.get_topology():
            if entry.lane_type != carla.LaneType.Driving:
                continue
            lane = _lane_key(entry)
            if lane not in self._chain_of_lane:
                wps = self._densify(entry)
                nodes = [self._entry_node(entry)] + [self._add_node(w) for w in wps[1:]]
                self._chain_of_lane[lane] = len(self._chains)
                sign = -1.0 if entry.lane_id > 0 else 1.0
                self._chains.append(_Chain(nodes=nodes, along=[sign * w.s for w in wps]))
                chain_wps.append(wps)
                if entry.is_junction:
                    self._chains[-1].option = self._turn_option(entry, exit_)
            chain = self._chains[self._chain_of_lane[lane]]
            succ = self._entry_node(exit_)
            if succ not in chain.successors:
                chain.successors.append(succ)

        for chain in self._chains:
            for a, b in itertools.pairwise(chain.nodes):
                self._edges[a].append(_Edge(b, self._dist(a, b), chain.option))
            for succ in chain.successors:
                self._edges[chain.nodes[-1]].append(self._join_edge(chain.nodes[-1], succ,
                                                                    chain.option))

        for chain, wps in zip(self._chains, chain_wps, strict=True):
            if chain.option != RoadOption.LANEFOLLOW:
                continue  # no lane changes inside junctions
            for node, wp in zip(chain.nodes, wps, strict=True):
                self._add_lane_changes(node, wp)

        self._build_index()

    def _densify(self, entry: carla.Waypoint) -> list[carla.Waypoint]:
        """The lane's waypoints from ``entry`` every ``resolution_m`` while the lane
        goes on (the last is less than ``resolution_m`` before the lane's end).

        ``next(d)`` steps ``d`` along the road's reference line, not the lane centre:
        on the outside of a tight curve (junction turns) the lane moves further, up
        to 1.3 times in CARLA's towns, so the step is shortened there to keep the
        points at most ``resolution_m`` apart."""
        lane = _lane_key(entry)
        wps = [entry]
        while True:
            here = wps[-1].transform.location
            step = self.resolution_m
            ahead: list[carla.Waypoint] = []
            for _ in range(3):
                ahead = [w for w in wps[-1].next(step) if _lane_key(w) == lane]
                if not ahead:
                    break
                moved = here.distance(ahead[0].transform.location)
                if moved <= self.resolution_m * 1.001:
                    break
                step *= 0.98 * self.resolution_m / moved
            if not ahead or ahead[0].s == wps[-1].s:
                return wps
            wps.append(ahead[0])

    @staticmethod
    def _turn_option(entry: carla.Waypoint, exit_: carla.Waypoint,
                     threshold_deg: float = 35.0) -> RoadOption:
        """LEFT / RIGHT / STRAIGHT for a junction lane, from the heading change between
        its entry and the lane it leads to (CARLA's ``_turn_decision`` threshold).
        Left-handed frame: a positive yaw change turns right."""
        change = _wrap_deg(exit_.transform.rotation.yaw - entry.transform.rotation.yaw)
        if abs(change) < threshold_deg:
            return RoadOption.STRAIGHT
        return RoadOption.RIGHT if change > 0 else RoadOption.LEFT

    def _add_lane_changes(self, node: int, wp: carla.Waypoint) -> None:
        """Edges to the neighbour lanes this node may change into: the marking on that
        side allows it, the neighbour is a driving lane of the same direction (same
        sign of lane id) and the change ends on that lane, outside any junction."""
        sides = ((wp.left_lane_marking, carla.LaneChange.Left, wp.get_left_lane,
                  RoadOption.CHANGELANELEFT),
                 (wp.right_lane_marking, carla.LaneChange.Right, wp.get_right_lane,
                  RoadOption.CHANGELANERIGHT))
        for marking, allowed, neighbour_of, option in sides:
            if marking is None or not (int(marking.lane_change) & int(allowed)):
                continue
            other = neighbour_of()
            if (other is None or other.lane_type != carla.LaneType.Driving
                    or other.lane_id * wp.lane_id <= 0):
                continue
            lane = _lane_key(other)
            ahead = [w for w in other.next(self.lane_change_length_m)
                     if _lane_key(w) == lane and not w.is_junction]
            if not ahead or lane not in self._chain_of_lane:
                continue
            target = self._nearest_in_chain(self._chain_of_lane[lane], ahead[0])
            if target is None:
                continue
            self._edges[node].append(self._lane_change_edge(node, target, option))

    def _nearest_in_chain(self, chain_id: int, wp: carla.Waypoint) -> int | None:
        """The chain's node nearest ``wp`` by s (binary search), if within a step."""
        chain = self._chains[chain_id]
        along = (-1.0 if wp.lane_id > 0 else 1.0) * wp.s
        k = bisect.bisect_left(chain.along, along)
        near = [j for j in (k - 1, k) if 0 <= j < len(chain.nodes)]
        if not near:
            return None
        j = min(near, key=lambda j: abs(chain.along[j] - along))
        return chain.nodes[j] if abs(chain.along[j] - along) <= self.resolution_m else None

    def _lane_change_edge(self, a: int, b: int, option: RoadOption) -> _Edge:
        """A straight blend from node ``a`` to node ``b`` with points every
        ``resolution_m`` or less, costing its length plus the penalty."""
        na, nb = self._nodes[a], self._nodes[b]
        length = self._dist(a, b)
        steps = max(1, math.ceil(length / self.resolution_m))
        yaw = na.yaw + _wrap_deg(nb.yaw - na.yaw)
        via = tuple((na.x + (nb.x - na.x) * k / steps, na.y + (nb.y - na.y) * k / steps,
                     na.z + (nb.z - na.z) * k / steps,
                     _wrap_deg(na.yaw + (yaw - na.yaw) * k / steps))
                    for k in range(1, steps))
        return _Edge(b, length + self.lane_change_penalty_m, option, via)

    def _join_edge(self, a: int, b: int, option: RoadOption) -> _Edge:
        """A lane's last node to a successor's first: the lane's last stretch, shorter
        than a step along the reference line but up to 1.3 steps along an outer
        lane, so split at its middle when longer than ``resolution_m``."""
        na, nb = self._nodes[a], self._nodes[b]
        length = self._dist(a, b)
        if length <= self.resolution_m:
            return _Edge(b, length, option)
        mid = ((na.x + nb.x) / 2, (na.y + nb.y) / 2, (na.z + nb.z) / 2,
               _wrap_deg(na.yaw + _wrap_deg(nb.yaw - na.yaw) / 2))
        return _Edge(b, length, option, (mid,))

    def _dist(self, a: int, b: int) -> float:
        na, nb = self._nodes[a], self._nodes[b]
        return math.sqrt((na.x - nb.x) ** 2 + (na.y - nb.y) ** 2 + (na.z - nb.z) ** 2)

    def _build_index(self) -> None:
        """Arrays of every chain piece (polyline segment) for fast projection."""
        ax, ay, bx, by, chain_ids, piece = [], [], [], [], [], []
        for c, chain in enumerate(self._chains):
            pts = chain.nodes + chain.successors[:1]
            for i, (a, b) in enumerate(itertools.pairwise(pts)):
                na, nb = self._nodes[a], self._nodes[b]
                ax.append(na.x)
                ay.append(na.y)
                bx.append(nb.x)
                by.append(nb.y)
                chain_ids.append(c)
                piece.append(i)
        self._pa = np.column_stack([ax, ay]) if ax else np.zeros((0, 2))
        self._pb = np.column_stack([bx, by]) if bx else np.zeros((0, 2))
        self._piece_chain = np.array(chain_ids, dtype=int)
        self._piece_index = np.array(piece, dtype=int)

    # -- public ---------------------------------------------------------------

    @property
    def node_count(self) -> int:
        """Number of lane waypoints in the graph."""
        return len(self._nodes)

    @property
    def edge_count(self) -> int:
        """Number of directed edges (lane following and lane changes)."""
        return sum(len(e) for e in self._edges)

    def plan(self, start: Any, goal: Any, *, heuristic: bool = True) -> Route:
        """The cheapest route from ``start`` to ``goal`` (world frame points: (x, y),
        carla.Location / Transform / Waypoint, or a route point with x, y, yaw; a
        yaw prefers lanes heading that way). ``heuristic=False`` runs plain
        Dijkstra (same result, slower; for checking). Raises :class:`OffLaneError`
        for a point off every driving lane and :class:`UnreachableError` when no
        lane path joins them."""
        a = self._localize(start, "start")
        b = self._localize(goal, "goal")
        return self._route([self._search(a, b, heuristic)])

    def plan_through(self, points: Sequence[Any]) -> Route:
        """One dense route through ``points`` in order (a leaderboard route's sparse
        waypoints, like the leaderboard's ``interpolate_trajectory``)."""
        if len(points) < 2:
            raise ValueError(f"plan_through needs at least 2 points, got {len(points)}")
        anchors = [self._localize(p, f"point {k}") for k, p in enumerate(points)]
        legs = []
        for a, b in itertools.pairwise(anchors):
            if math.hypot(a.x - b.x, a.y - b.y) < 1e-3 or self._just_behind(a, b):
                continue  # the same place twice: nothing to drive
            legs.append(self._search(a, b, True))
        if not legs:
            legs.append(self._search(anchors[0], anchors[-1], True))
        return self._route(legs)

    # -- localisation ---------------------------------------------------------

    def _localize(self, point: Any, what: str) -> _Anchor:
        """Project ``point`` onto the nearest lane piece (among those within the lane's
        half-width plus tolerance, the one heading most like the point's yaw)."""
        x, y, yaw = _point_of(point)
        if len(self._pa) == 0:
            raise OffLaneError(f"{what} ({x:.2f}, {y:.2f}) is off every driving lane: "
                               f"map {self.map_name!r} has no driving lanes")
        p = np.array([x, y])
        ab = self._pb - self._pa
        len2 = np.maximum((ab * ab).sum(axis=1), 1e-12)
        t = np.clip(((p - self._pa) * ab).sum(axis=1) / len2, 0.0, 1.0)
        proj = self._pa + ab * t[:, None]
        dist = np.hypot(proj[:, 0] - x, proj[:, 1] - y)
        order = np.argsort(dist)[:16]
        candidates = []
        for k in order:
            chain = self._chains[self._piece_chain[k]]
            node = self._nodes[chain.nodes[self._piece_index[k]]]
            if dist[k] > node.lane_width / 2 + self.off_lane_tolerance_m:
                continue
            heading = math.degrees(math.atan2(ab[k, 1], ab[k, 0]))
            turned = 0.0 if yaw is None else abs(_wrap_deg(heading - yaw))
            candidates.append((turned > 90.0, dist[k], k, heading))
        if not candidates:
            k = int(order[0])
            raise OffLaneError(
                f"{what} ({x:.2f}, {y:.2f}) is off every driving lane of map "
                f"{self.map_name!r}: the nearest lane centre is {dist[k]:.2f} m away")
        _, d, k, heading = min(candidates)
        c, i = int(self._piece_chain[k]), int(self._piece_index[k])
        pts = self._chains[c].nodes + self._chains[c].successors[:1]
        z = self._nodes[pts[i]].z + (self._nodes[pts[i + 1]].z - self._nodes[pts[i]].z) * t[k]
        return _Anchor(c, i, float(t[k]), float(proj[k, 0]), float(proj[k, 1]), float(z),
                       heading, float(d))

    def _just_behind(self, a: _Anchor, b: _Anchor) -> bool:
        """``b`` lies on ``a``'s lane less than one resolution step behind ``a`` (a
        repeated route point, not a wish to drive around the block)."""
        return (a.chain == b.chain and (b.i + b.t) <= (a.i + a.t)
                and math.hypot(a.x - b.x, a.y - b.y) < self.resolution_m)

    # -- search ---------------------------------------------------------------

    def _search(self, a: _Anchor, b: _Anchor, heuristic: bool) -> tuple[
            _Anchor, _Anchor, list[int], list[_Edge], float]:
        """A* from anchor ``a`` to anchor ``b``; returns (a, b, nodes, edges, cost)
        with ``nodes`` the graph path including the virtual _START and _GOAL."""
        chain_a, chain_b = self._chains[a.chain], self._chains[b.chain]
        pts_a = chain_a.nodes + chain_a.successors[:1]
        pts_b = chain_b.nodes + chain_b.successors[:1]

        # Virtual edges: the start joins the next node of its lane (every successor
        # when it is on the lane's last piece); the goal is reached from the node
        # before it; both on one lane, goal ahead: straight there.
        start_edges: list[_Edge] = []
        nxt = pts_a[a.i + 1]
        targets = chain_a.successors if a.i + 1 == len(chain_a.nodes) else [nxt]
        for n in targets:
            nn = self._nodes[n]
            start_edges.append(_Edge(n, math.hypot(nn.x - a.x, nn.y - a.y), chain_a.option))
        before_goal = pts_b[b.i]
        nb = self._nodes[before_goal]
        goal_edge = _Edge(_GOAL, math.hypot(b.x - nb.x, b.y - nb.y), chain_b.option)
        if a.chain == b.chain and (b.i + b.t) > (a.i + a.t) and b.i == a.i:
            start_edges.append(_Edge(_GOAL, math.hypot(b.x - a.x, b.y - a.y), chain_a.option))

        def h(n: int) -> float:
            if not heuristic:
                return 0.0
            node = self._nodes[n]
            return math.hypot(node.x - b.x, node.y - b.y)

        g: dict[int, float] = {_START: 0.0}
        came: dict[int, tuple[int, _Edge]] = {}
        heap: list[tuple[float, float, int]] = [(0.0, 0.0, _START)]
        closed: set[int] = set()
        while heap:
            _, cost, n = heapq.heappop(heap)
            if n == _GOAL:
                break
            if n in closed:
                continue
            closed.add(n)
            edges: Iterable[_Edge] = start_edges if n == _START else self._edges[n]
            if n == before_goal:
                edges = [*edges, goal_edge]
            for e in edges:
                new = cost + e.cost
                if new < g.get(e.to, math.inf):
                    g[e.to] = new
                    came[e.to] = (n, e)
                    heapq.heappush(heap, (new + (0.0 if e.to == _GOAL else h(e.to)), new, e.to))
        if _GOAL not in came:
            na = self._nodes[pts_a[a.i]]
            raise UnreachableError(
                f"no route on map {self.map_name!r} from ({a.x:.2f}, {a.y:.2f}) "
                f"[road {na.road_id} lane {na.lane_id}] to ({b.x:.2f}, {b.y:.2f}) "
                f"[road {nb.road_id} lane {nb.lane_id}]: no chain of driving lanes "
                f"(with allowed lane changes) leads from the start to the goal")
        nodes, edges_used = [_GOAL], []
        while nodes[-1] != _START:
            prev, e = came[nodes[-1]]
            nodes.append(prev)
            edges_used.append(e)
        nodes.reverse()
        edges_used.reverse()
        return a, b, nodes, edges_used, g[_GOAL]

    # -- output ---------------------------------------------------------------

    def _route(self, legs: list[tuple[_Anchor, _Anchor, list[int], list[_Edge], float]],
               ) -> Route:
        """Dense waypoints of the legs, joined (a leg's first point is the previous
        leg's last), with cumulative s."""
        rows: list[tuple[float, float, float, float, int, int, int, RoadOption]] = []
        total_cost = 0.0
        for a, b, nodes, edges, cost in legs:
            total_cost += cost
            first_lane = self._nodes[self._chains[a.chain].nodes[a.i]]
            last_lane = self._nodes[self._chains[b.chain].nodes[b.i]]
            lane_of = (first_lane.road_id, first_lane.section_id, first_lane.lane_id)
            first_option = edges[0].option if edges else RoadOption.LANEFOLLOW
            if not rows:
                rows.append((a.x, a.y, a.z, a.yaw, *lane_of, first_option))
            for n, e in zip(nodes[1:], edges, strict=True):
                for vx, vy, vz, vyaw in e.via:
                    rows.append((vx, vy, vz, vyaw, *lane_of, e.option))
                if n == _GOAL:
                    rows.append((b.x, b.y, b.z, b.yaw, last_lane.road_id,
                                 last_lane.section_id, last_lane.lane_id, e.option))
                else:
                    node = self._nodes[n]
                    lane_of = (node.road_id, node.section_id, node.lane_id)
                    rows.append((node.x, node.y, node.z, node.yaw, *lane_of, e.option))
        waypoints: list[RouteWaypoint] = []
        s = 0.0
        for k, (x, y, z, yaw, road, section, lane, option) in enumerate(rows):
            if k:
                px, py, pz = rows[k - 1][:3]
                step = math.sqrt((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2)
                if step < 1e-6:
                    continue  # a node that is also an anchor
                s += step
            waypoints.append(RouteWaypoint(x, y, z, yaw, road, section, lane, option, s))
        return Route(tuple(waypoints), s, total_cost)
