"""Generator of drivestack's built-in OpenDRIVE maps: ``python -m sim.maps.generate``.

Writes ``town_grid.xodr``, ``highway.xodr`` and ``rural.xodr`` (default: next to
this file, where :func:`sim.maps.builtin_maps` finds them). The files are committed,
so nothing here runs at install time; rerun it after changing a map. Output is
deterministic: the same code writes the same bytes (no dates, fixed number format,
fixed element and attribute order).

The XML is written directly rather than through a road-network library: the maps
only need lines, arcs and spirals, one lane each way at junctions, signals and
crosswalks, and writing them here keeps every choice that ``carla.Map`` depends on
visible (lane links, signal validity, crosswalk outlines).

Frames and units. Everything here is OpenDRIVE's frame: x east, y north,
right-handed, headings in radians counter-clockwise from +x, curvature in 1/m
(positive turns left), lengths in metres, speeds in km/h. ``carla.Map`` turns it
into CARLA's world frame (y negated, yaw in degrees). Right-hand traffic: lanes with
negative ids drive along the reference line, positive ids against it.
"""

from __future__ import annotations

import argparse
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Pose:
    """A point of a reference line: x, y (m) and heading (rad), OpenDRIVE frame."""

    x: float
    y: float
    hdg: float


@dataclass(frozen=True)
class Seg:
    """One planView primitive of ``length`` m whose curvature (1/m, positive left)
    goes linearly from ``k0`` to ``k1``: a line (both 0), an arc (equal) or a spiral
    (clothoid)."""

    length: float
    k0: float = 0.0
    k1: float = 0.0

    @property
    def kind(self) -> str:
        if self.k0 == self.k1:
            return "line" if self.k0 == 0.0 else "arc"
        return "spiral"

    def heading_change(self) -> float:
        return self.length * (self.k0 + self.k1) / 2.0


def line(length: float) -> Seg:
    return Seg(length)


def arc(length: float, curvature: float) -> Seg:
    return Seg(length, curvature, curvature)


def turn(angle: float, radius: float, spiral: float) -> list[Seg]:
    """A bend that changes the heading by ``angle`` (rad, positive left): a spiral of
    ``spiral`` m into an arc of ``radius`` m and a spiral out (no spirals when 0)."""
    k = math.copysign(1.0 / radius, angle)
    arc_len = (abs(angle) - spiral / radius) * radius
    if arc_len < -1e-9:
        raise ValueError(f"a {angle:.3f} rad turn is too small for {spiral} m spirals")
    segs = [Seg(spiral, 0.0, k)] if spiral else []
    if arc_len > 1e-9:
        segs.append(arc(arc_len, k))
    if spiral:
        segs.append(Seg(spiral, k, 0.0))
    return segs


# 5-point Gauss-Legendre nodes and weights on [-1, 1], for the clothoid's integrals.
_GL = ((0.0, 128 / 225),
       (-math.sqrt(5 - 2 * math.sqrt(10 / 7)) / 3, (322 + 13 * math.sqrt(70)) / 900),
       (math.sqrt(5 - 2 * math.sqrt(10 / 7)) / 3, (322 + 13 * math.sqrt(70)) / 900),
       (-math.sqrt(5 + 2 * math.sqrt(10 / 7)) / 3, (322 - 13 * math.sqrt(70)) / 900),
       (math.sqrt(5 + 2 * math.sqrt(10 / 7)) / 3, (322 - 13 * math.sqrt(70)) / 900))


def advance(p: Pose, seg: Seg, s: float) -> Pose:
    """The pose ``s`` m along ``seg`` starting at ``p``."""
    if seg.kind == "line":
        return Pose(p.x + s * math.cos(p.hdg), p.y + s * math.sin(p.hdg), p.hdg)
    if seg.kind == "arc":
        k = seg.k0
        h = p.hdg + k * s
        return Pose(p.x + (math.sin(h) - math.sin(p.hdg)) / k,
                    p.y - (math.cos(h) - math.cos(p.hdg)) / k, h)
    dk = (seg.k1 - seg.k0) / seg.length

    def heading(u: float) -> float:
        return p.hdg + seg.k0 * u + dk * u * u / 2.0

    # Composite Gauss-Legendre: error far below a micrometre for these curvatures.
    panels = max(8, math.ceil(s / 2.0))
    step = s / panels
    x = y = 0.0
    for i in range(panels):
        mid = (i + 0.5) * step
        for node, weight in _GL:
            h = heading(mid + node * step / 2.0)
            x += weight * math.cos(h)
            y += weight * math.sin(h)
    return Pose(p.x + x * step / 2.0, p.y + y * step / 2.0, heading(s))


def walk(start: Pose, segs: list[Seg]) -> list[Pose]:
    """The start pose of every segment, then the end pose."""
    poses = [start]
    for seg in segs:
        poses.append(advance(poses[-1], seg, seg.length))
    return poses


def sample(start: Pose, segs: list[Seg], step: float) -> list[Pose]:
    """Poses about every ``step`` m along the segments (ends included)."""
    out = [start]
    p = start
    for seg in segs:
        n = max(1, math.ceil(seg.length / step))
        out.extend(advance(p, seg, seg.length * i / n) for i in range(1, n + 1))
        p = out[-1]
    return out


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


def _close(a: Pose, b: Pose, tol: float = 1e-6) -> bool:
    return math.hypot(a.x - b.x, a.y - b.y) < tol and abs(_wrap(a.hdg - b.hdg)) < tol


# ---------------------------------------------------------------------------- lanes


@dataclass(frozen=True)
class Mark:
    """A roadMark on a lane's outer edge (the centre lane's: the centre line).
    ``type`` and ``color`` are OpenDRIVE's (``solid``, ``broken``, ``solid solid``,
    ``none``; ``standard`` is white); ``lane_change`` says whether it may be crossed
    (``both`` or ``none``)."""

    type: str = "none"
    color: str = "standard"
    width: float = 0.15
    lane_change: str = "none"


NO_MARK = Mark()
SOLID_WHITE = Mark("solid", "white")
BROKEN_WHITE = Mark("broken", "white", lane_change="both")
SOLID_YELLOW = Mark("solid", "yellow")
DOUBLE_YELLOW = Mark("solid solid", "yellow")
BROKEN_YELLOW = Mark("broken", "yellow", lane_change="both")

Marks = tuple[tuple[float, Mark], ...]  # (s where it starts, mark), s ascending from 0


@dataclass(frozen=True)
class LaneSpec:
    """One lane of a road side: OpenDRIVE lane ``type`` (driving, sidewalk,
    shoulder, median), constant ``width`` (m), the marks on its outer edge, and a
    curb ``height`` (m above the road, sidewalks only)."""

    type: str
    width: float
    marks: Marks = ((0.0, NO_MARK),)
    height: float = 0.0


@dataclass(frozen=True)
class Link:
    """A road's predecessor or successor: ``road`` or ``junction`` and its id;
    ``contact`` (``start``/``end``) for roads."""

    element: str
    id: int
    contact: str | None = None


@dataclass(frozen=True)
class Signal:
    """An OpenDRIVE signal at (s, t) of its road, valid for one lane.

    ``orientation`` ``+`` governs traffic along the reference line (lane ids < 0),
    ``-`` against it. carla.Map gives a landmark the road's heading plus
    ``hOffset``; ``-`` signals get hOffset pi so that, as in CARLA's towns, every
    landmark's yaw is the travel direction of the lane it governs (its head faces
    the other way, towards that traffic). ``z_offset`` is the height (m) of the
    head's bottom above the road, ``height``/``width`` the head's size (m)."""

    id: int
    name: str
    s: float
    t: float
    orientation: str
    lane: int
    type: str
    dynamic: bool
    z_offset: float
    height: float
    width: float


@dataclass(frozen=True)
class Crosswalk:
    """A crosswalk object: a rectangle of the road-local frame at ``s`` on the
    reference line, ``u`` (along the road, m) and ``v`` (across it, m) ranges.
    CARLA reads only ``cornerLocal`` outlines (``carla.Map.get_crosswalks``)."""

    id: int
    s: float
    u: tuple[float, float]
    v: tuple[float, float]


@dataclass
class Road:
    """One OpenDRIVE road: reference line, lanes (``left`` = ids 1, 2, ... and
    ``right`` = -1, -2, ..., from the centre outwards), links, speed limit."""

    id: int
    name: str
    start: Pose
    segs: list[Seg]
    left: list[LaneSpec]
    right: list[LaneSpec]
    centre: Marks
    road_type: str
    speed_kmh: float
    junction: int = -1
    predecessor: Link | None = None
    successor: Link | None = None
    # lane id -> (predecessor lane id, successor lane id); None: no link
    lane_links: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    crosswalks: list[Crosswalk] = field(default_factory=list)

    @property
    def length(self) -> float:
        return sum(seg.length for seg in self.segs)

    def end(self) -> Pose:
        return walk(self.start, self.segs)[-1]

    def pose_at(self, contact: str) -> Pose:
        return self.start if contact == "start" else self.end()


@dataclass(frozen=True)
class Connection:
    incoming: int
    connecting: int
    lane_links: tuple[tuple[int, int], ...]  # (incoming lane id, connecting lane id)


@dataclass
class Junction:
    id: int
    name: str
    connections: list[Connection]
    controllers: list[int]  # controller ids, in cycle order


@dataclass
class Network:
    """A map under construction; every id (road, junction, signal, object,
    controller) comes from one counter, so ids never collide."""

    name: str
    roads: list[Road] = field(default_factory=list)
    junctions: list[Junction] = field(default_factory=list)
    controllers: list[tuple[int, int]] = field(default_factory=list)  # (id, signal id)
    _next: int = 1

    def new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def add_road(self, **kw: object) -> Road:
        road = Road(id=self.new_id(), **kw)  # type: ignore[arg-type]
        self.roads.append(road)
        return road


def _same_lane_links(road: Road, pred: bool, succ: bool) -> None:
    """Link every lane to the same id on the neighbouring road (end-to-start joins)."""
    for i in [*range(1, len(road.left) + 1), *range(-1, -len(road.right) - 1, -1)]:
        road.lane_links[i] = (i if pred else None, i if succ else None)


def chain_loop(net: Network, roads: list[Road]) -> None:
    """Join roads end to start in a closed loop, checking the geometry meets."""
    for a, b in zip(roads, roads[1:] + roads[:1], strict=True):
        if not _close(a.end(), b.start, 1e-5):
            raise AssertionError(f"{net.name}: road {a.id} does not end where {b.id} starts")
        a.successor = Link("road", b.id, "start")
        b.predecessor = Link("road", a.id, "end")
    for r in roads:
        _same_lane_links(r, True, True)


# ------------------------------------------------------------------------ junctions


@dataclass(frozen=True)
class Arm:
    """A road meeting a junction: which end (``contact``) touches it."""

    road: Road
    contact: str  # "start" | "end"

    @property
    def incoming_lane(self) -> int:
        """The driving lane that travels into the junction."""
        return -1 if self.contact == "end" else 1

    @property
    def outgoing_lane(self) -> int:
        return 1 if self.contact == "end" else -1


def add_junction(net: Network, centre: tuple[float, float], rotation: float,
                 half_size: float, arms: dict[int, Arm], *, lane_width: float,
                 sidewalk: LaneSpec | None, control: str | None, curb_gap: float,
                 crosswalk_width: float = 0.0, speed_kmh: float = 30.0,
                 turn_speed_kmh: float = 30.0) -> Junction:
    """A junction whose arms leave ``centre`` every 90 deg from ``rotation`` (rad):
    arm k ends (or starts) ``half_size`` m from the centre, heading away at
    ``rotation + k * pi/2``. Every arm connects to every other (straight: a line,
    turns: quarter circles of radius ``half_size``), one driving lane each.

    Right turns carry the sidewalk round the corner; at a T-junction the straight
    connection along the closed side carries it across. ``control`` is
    ``"lights"`` (a 1000001 traffic light per approach, one controller each, cycled
    in arm order), ``"stop"`` (a 206 stop sign per approach) or None. Signals stand
    at the end of the incoming road, ``curb_gap`` m right of its driving lane.
    ``crosswalk_width`` > 0 puts a crosswalk across each arm inside the junction.
    Straight connections take the lowest of ``speed_kmh`` and the two roads' limits,
    turns ``turn_speed_kmh``."""
    jid = net.new_id()
    cx, cy = centre
    for k, arm in arms.items():
        a = rotation + k * math.pi / 2
        here = Pose(cx + half_size * math.cos(a), cy + half_size * math.sin(a),
                    a + (math.pi if arm.contact == "end" else 0.0))
        if not _close(arm.road.pose_at(arm.contact), here, 1e-5):
            raise AssertionError(f"{net.name}: road {arm.road.id} misses junction arm {k}")
        link = Link("junction", jid)
        if arm.contact == "end":
            arm.road.successor = link
        else:
            arm.road.predecessor = link

    connections: list[Connection] = []
    for i, a_in in sorted(arms.items()):
        a = rotation + i * math.pi / 2
        start = Pose(cx + half_size * math.cos(a), cy + half_size * math.sin(a), a + math.pi)
        for j, a_out in sorted(arms.items()):
            kind = (j - i) % 4  # 1 right, 2 straight, 3 left
            if kind == 0:
                continue
            if kind == 2:
                segs = [line(2 * half_size)]
            else:
                k = (-1.0 if kind == 1 else 1.0) / half_size
                segs = [arc(half_size * math.pi / 2, k)]
            right = [LaneSpec("driving", lane_width)]
            # The sidewalk goes round the corner with a right turn, and straight
            # across along the closed side of a T-junction.
            flat_side = kind == 2 and (i + 1) % 4 not in arms
            if sidewalk is not None and (kind == 1 or flat_side):
                right.append(sidewalk)
            speed = turn_speed_kmh if kind != 2 else min(
                speed_kmh, a_in.road.speed_kmh, a_out.road.speed_kmh)
            road = net.add_road(
                name=f"j{jid} {i}->{j}", start=start, segs=segs, left=[], right=right,
                centre=((0.0, NO_MARK),), road_type=a_in.road.road_type, speed_kmh=speed,
                junction=jid, predecessor=Link("road", a_in.road.id, a_in.contact),
                successor=Link("road", a_out.road.id, a_out.contact))
            exp = Pose(cx + half_size * math.cos(rotation + j * math.pi / 2),
                       cy + half_size * math.sin(rotation + j * math.pi / 2),
                       rotation + j * math.pi / 2)
            if not _close(road.end(), exp, 1e-5):
                raise AssertionError(f"{net.name}: connecting road {road.id} misses its exit")
            road.lane_links[-1] = (a_in.incoming_lane, a_out.outgoing_lane)
            lane_links = [(a_in.incoming_lane, -1)]
            if len(right) > 1:  # the sidewalk round the corner
                road.lane_links[-2] = (2 * a_in.incoming_lane, 2 * a_out.outgoing_lane)
                lane_links.append((2 * a_in.incoming_lane, -2))
            connections.append(Connection(a_in.road.id, road.id, tuple(lane_links)))
        if crosswalk_width > 0:
            # Across the arm, just inside the junction; anchored at the arm's road end
            # (u along that road's reference line, beyond its end).
            s = a_in.road.length if a_in.contact == "end" else 0.0
            sign = 1.0 if a_in.contact == "end" else -1.0
            u = sorted((sign * 0.5, sign * (0.5 + crosswalk_width)))
            a_in.road.crosswalks.append(
                Crosswalk(net.new_id(), s, (u[0], u[1]), (-lane_width, lane_width)))

    controllers: list[int] = []
    if control is not None:
        for _i, arm in sorted(arms.items()):
            road = arm.road
            at_end = arm.contact == "end"
            s = road.length - 0.5 if at_end else 0.5
            side = lane_width + curb_gap
            t = -side if at_end else side
            sid = net.new_id()
            if control == "lights":
                sig = Signal(sid, "traffic_light", s, t, "+" if at_end else "-",
                             arm.incoming_lane, "1000001", True, 2.6, 1.0, 0.4)
                cid = net.new_id()
                net.controllers.append((cid, sid))
                controllers.append(cid)
            else:
                sig = Signal(sid, "stop_sign", s, t, "+" if at_end else "-",
                             arm.incoming_lane, "206", False, 1.5, 0.75, 0.75)
            road.signals.append(sig)
    junction = Junction(jid, f"junction {jid}", connections, controllers)
    net.junctions.append(junction)
    return junction


# --------------------------------------------------------------------------- maps

TOWN_LANE = 3.5
TOWN_SIDEWALK = LaneSpec("sidewalk", 3.0, height=0.15)


def town_grid(nodes: int = 4, spacing: float = 100.0) -> Network:
    """``nodes`` x ``nodes`` junction grid (``nodes - 1`` squared blocks) of two-way
    town roads: one 3.5 m lane each way, 3 m sidewalks. Interior nodes are
    signalised 4-way junctions, edge nodes signalised T-junctions, corners are
    bends of the outer ring. Ring roads 50 km/h with a double yellow centre line,
    inner roads 40 km/h with a single one; crosswalks on every junction arm."""
    net = Network("town_grid")
    half = 11.0  # junction half-size: lane + sidewalk + crosswalk + margin
    bend = 20.0  # corner radius of the ring
    last = nodes - 1
    arms: dict[tuple[int, int], dict[int, Arm]] = {}

    def centre(i: int, j: int) -> tuple[float, float]:
        return (i * spacing, j * spacing)

    def is_corner(i: int, j: int) -> bool:
        return i in (0, last) and j in (0, last)

    def lanes(ring: bool) -> dict[str, object]:
        edge = LaneSpec("driving", TOWN_LANE, ((0.0, SOLID_WHITE),))
        return {"left": [edge, TOWN_SIDEWALK], "right": [edge, TOWN_SIDEWALK],
                "centre": ((0.0, DOUBLE_YELLOW if ring else SOLID_YELLOW),),
                "road_type": "town", "speed_kmh": 50.0 if ring else 40.0}

    def register(node: tuple[int, int], k: int, road: Road, contact: str) -> None:
        arms.setdefault(node, {})[k] = Arm(road, contact)

    # Straight roads between neighbouring non-corner nodes: along x (arm 0 -> arm 2)
    # and along y (arm 1 -> arm 3).
    for j in range(nodes):
        for i in range(last):
            if is_corner(i, j) or is_corner(i + 1, j):
                continue
            x, y = centre(i, j)
            r = net.add_road(name=f"x{i}-{i + 1} y{j}", start=Pose(x + half, y, 0.0),
                             segs=[line(spacing - 2 * half)], **lanes(j in (0, last)))
            register((i, j), 0, r, "start")
            register((i + 1, j), 2, r, "end")
    for i in range(nodes):
        for j in range(last):
            if is_corner(i, j) or is_corner(i, j + 1):
                continue
            x, y = centre(i, j)
            r = net.add_road(name=f"x{i} y{j}-{j + 1}", start=Pose(x, y + half, math.pi / 2),
                             segs=[line(spacing - 2 * half)], **lanes(i in (0, last)))
            register((i, j), 1, r, "start")
            register((i, j + 1), 3, r, "end")
    # Ring corners: from the x-neighbour's arm to the corner, a bend, on to the
    # y-neighbour's arm.
    for ci, cj in ((0, 0), (last, 0), (last, last), (0, last)):
        ai = 1 if ci == 0 else last - 1
        bj = 1 if cj == 0 else last - 1
        ax, ay = centre(ai, cj)
        cx, cy = centre(ci, cj)
        bx, by = centre(ci, bj)
        h0 = math.atan2(cy - ay, cx - ax)
        h1 = math.atan2(by - cy, bx - cx)
        start = Pose(ax + half * math.cos(h0), ay + half * math.sin(h0), h0)
        segs = [line(spacing - half - bend), *turn(_wrap(h1 - h0), bend, 0.0),
                line(spacing - half - bend)]
        r = net.add_road(name=f"corner x{ci} y{cj}", start=start, segs=segs, **lanes(True))
        k_a = 0 if cx > ax else 2
        k_b = 1 if cy > by else 3
        register((ai, cj), k_a, r, "start")
        register((ci, bj), k_b, r, "end")

    for (i, j), node_arms in sorted(arms.items()):
        add_junction(net, centre(i, j), 0.0, half, node_arms, lane_width=TOWN_LANE,
                     sidewalk=TOWN_SIDEWALK, control="lights", curb_gap=1.0,
                     crosswalk_width=3.0)
    return net


def highway() -> Network:
    """A closed motorway loop of about 7.5 km: three 3.75 m lanes each way (broken
    lines between them, solid edges), a 3 m median, 3 m shoulders. Straights with a
    gentle S-bend (110 km/h) and two 180 deg bends (spiral, R 500 m arc, spiral;
    90 km/h). Built from two identical halves, so it closes exactly."""
    net = Network("highway")
    median = LaneSpec("median", 1.5, ((0.0, SOLID_YELLOW),))
    inner = LaneSpec("driving", 3.75, ((0.0, BROKEN_WHITE),))
    outer = LaneSpec("driving", 3.75, ((0.0, SOLID_WHITE),))
    shoulder = LaneSpec("shoulder", 3.0)
    side = [median, inner, inner, outer, shoulder]
    straight = [line(400.0), *turn(0.25, 1500.0, 100.0), line(300.0),
                *turn(-0.25, 1500.0, 100.0), line(400.0)]
    bend = turn(math.pi, 500.0, 150.0)
    pose = Pose(0.0, 0.0, 0.0)
    roads = []
    for part, (segs, speed) in enumerate(((straight, 110.0), (bend, 90.0)) * 2):
        r = net.add_road(name=f"highway {part}", start=pose, segs=list(segs), left=side,
                         right=side, centre=((0.0, NO_MARK),), road_type="motorway",
                         speed_kmh=speed)
        roads.append(r)
        pose = r.end()
    chain_loop(net, roads)
    return net


RURAL_LANE = LaneSpec("driving", 3.25, ((0.0, SOLID_WHITE),))
RURAL_SHOULDER = LaneSpec("shoulder", 1.0)


def _lobe(start: Pose, body: list[Seg], last_radius: float,
          last_spiral: float) -> tuple[list[Seg], list[Seg]]:
    """The two halves of a figure-eight lobe leaving the crossing's arm ``start``
    (x = y > 0, heading 45 deg): ``body``, a final left bend sized so the half turns
    135 deg in all, and a straight to the mirror axis x = 0 (heading west); then
    the mirror image of all that (about x = 0), which brings it back to the arm at
    135 deg. Two roads, so neither touches the crossing at both ends (carla.Map
    mislinks such a road)."""
    need = 3 * math.pi / 4 - sum(s.heading_change() for s in body)
    half = [*body, *turn(need, last_radius, last_spiral)]
    end = walk(start, half)[-1]
    if end.x <= 0:
        raise AssertionError("lobe half ends beyond its mirror axis")
    mirrored = [Seg(s.length, s.k1, s.k0) for s in reversed(half)]
    return [*half, line(end.x)], [line(end.x), *mirrored]


def _centre_marks(segs: list[Seg]) -> Marks:
    """Broken yellow (overtaking allowed) on straights, solid yellow in bends."""
    marks: list[tuple[float, Mark]] = []
    s = 0.0
    for seg in segs:
        mark = BROKEN_YELLOW if seg.kind == "line" and seg.length >= 60.0 else SOLID_YELLOW
        if not marks or marks[-1][1] != mark:
            marks.append((s, mark))
        s += seg.length
    return tuple(marks)


def rural() -> Network:
    """A figure-eight country road of about 5 km: narrow 3.25 m lanes and 1 m
    shoulders, spirals and arcs, a broken centre line on straights and a solid one
    in bends. Its two lobes meet at a 4-way crossing with a stop sign on every
    approach. North lobe 80 km/h, twistier south lobe 60 km/h."""
    net = Network("rural")
    half = 9.0
    c45 = half * math.cos(math.pi / 4)
    canonical = Pose(c45, c45, math.pi / 4)
    common: dict[str, object] = {"left": [RURAL_LANE, RURAL_SHOULDER],
                                 "right": [RURAL_LANE, RURAL_SHOULDER], "road_type": "rural"}
    lobes = {
        "north": (canonical, 80.0, _lobe(canonical, [
            line(150.0), *turn(-0.5, 150.0, 50.0), line(100.0), *turn(1.6, 160.0, 60.0),
            line(120.0), *turn(-0.45, 150.0, 50.0), line(60.0)], 120.0, 60.0)),
        # The south lobe is a canonical one turned 180 deg about the crossing.
        "south": (Pose(-c45, -c45, -3 * math.pi / 4), 60.0, _lobe(canonical, [
            line(80.0), *turn(-0.7, 70.0, 35.0), line(50.0), *turn(1.7, 60.0, 35.0),
            line(70.0), *turn(-0.9, 60.0, 30.0), line(50.0), *turn(0.6, 70.0, 30.0),
            line(40.0)], 60.0, 30.0)),
    }
    ends: list[Arm] = []
    for name, (start, speed, (first, second)) in lobes.items():
        a = net.add_road(name=f"{name} lobe out", start=start, segs=first,
                         centre=_centre_marks(first), speed_kmh=speed, **common)
        b = net.add_road(name=f"{name} lobe back", start=a.end(), segs=second,
                         centre=_centre_marks(second), speed_kmh=speed, **common)
        a.successor = Link("road", b.id, "start")
        b.predecessor = Link("road", a.id, "end")
        _same_lane_links(a, False, True)
        _same_lane_links(b, True, False)
        ends += [Arm(a, "start"), Arm(b, "end")]
    arms = dict(enumerate(ends))
    add_junction(net, (0.0, 0.0), math.pi / 4, half, arms, lane_width=RURAL_LANE.width,
                 sidewalk=None, control="stop", curb_gap=1.5, speed_kmh=50.0)
    return net


BUILDERS = {"town_grid": town_grid, "highway": highway, "rural": rural}


# ------------------------------------------------------------------------------ XML


def _num(v: float) -> str:
    """Fixed, platform-independent number text (nm precision, no '-0')."""
    text = f"{v:.12g}"
    return "0" if text in ("-0", "0") else text


def _sub(parent: ET.Element, tag: str, **attrs: object) -> ET.Element:
    return ET.SubElement(parent, tag, {k.rstrip("_"): (_num(v) if isinstance(v, float) else str(v))
                                       for k, v in attrs.items()})


def _lane_xml(parent: ET.Element, lane_id: int, spec: LaneSpec,
              link: tuple[int | None, int | None] | None) -> None:
    lane = _sub(parent, "lane", id=lane_id, type=spec.type, level="false")
    lk = _sub(lane, "link")
    if link is not None:
        if link[0] is not None:
            _sub(lk, "predecessor", id=link[0])
        if link[1] is not None:
            _sub(lk, "successor", id=link[1])
    _sub(lane, "width", sOffset=0.0, a=spec.width, b=0.0, c=0.0, d=0.0)
    for s, mark in spec.marks:
        _mark_xml(lane, s, mark)
    if spec.height:
        _sub(lane, "height", sOffset=0.0, inner=spec.height, outer=spec.height)


def _mark_xml(lane: ET.Element, s: float, mark: Mark) -> None:
    _sub(lane, "roadMark", sOffset=s, type=mark.type, weight="standard", color=mark.color,
         material="standard", width=mark.width if mark.type != "none" else 0.0,
         laneChange=mark.lane_change)


def _road_xml(root: ET.Element, road: Road) -> None:
    el = _sub(root, "road", name=road.name, length=road.length, id=road.id,
              junction=road.junction)
    link = _sub(el, "link")
    for tag, lk in (("predecessor", road.predecessor), ("successor", road.successor)):
        if lk is not None:
            attrs: dict[str, object] = {"elementType": lk.element, "elementId": lk.id}
            if lk.contact is not None:
                attrs["contactPoint"] = lk.contact
            _sub(link, tag, **attrs)
    rtype = _sub(el, "type", s=0.0, type=road.road_type)
    _sub(rtype, "speed", max=_num(road.speed_kmh), unit="km/h")
    plan = _sub(el, "planView")
    s = 0.0
    for pose, seg in zip(walk(road.start, road.segs), road.segs, strict=False):
        geo = _sub(plan, "geometry", s=s, x=pose.x, y=pose.y, hdg=_wrap(pose.hdg),
                   length=seg.length)
        if seg.kind == "line":
            _sub(geo, "line")
        elif seg.kind == "arc":
            _sub(geo, "arc", curvature=seg.k0)
        else:
            _sub(geo, "spiral", curvStart=seg.k0, curvEnd=seg.k1)
        s += seg.length
    elev = _sub(el, "elevationProfile")
    _sub(elev, "elevation", s=0.0, a=0.0, b=0.0, c=0.0, d=0.0)
    _sub(el, "lateralProfile")
    lanes = _sub(el, "lanes")
    _sub(lanes, "laneOffset", s=0.0, a=0.0, b=0.0, c=0.0, d=0.0)
    section = _sub(lanes, "laneSection", s=0.0)
    if road.left:
        left = _sub(section, "left")
        for i in range(len(road.left), 0, -1):
            _lane_xml(left, i, road.left[i - 1], road.lane_links.get(i))
    centre = _sub(section, "center")
    c = _sub(centre, "lane", id=0, type="none", level="false")
    _sub(c, "link")
    for s0, mark in road.centre:
        _mark_xml(c, s0, mark)
    if road.right:
        right = _sub(section, "right")
        for i in range(1, len(road.right) + 1):
            _lane_xml(right, -i, road.right[i - 1], road.lane_links.get(-i))
    objects = _sub(el, "objects")
    for cw in road.crosswalks:
        (u0, u1), (v0, v1) = cw.u, cw.v
        obj = _sub(objects, "object", id=cw.id, name="crosswalk", type="crosswalk", s=cw.s,
                   t=0.0, zOffset=0.0, hdg=0.0, pitch=0.0, roll=0.0, orientation="none",
                   length=u1 - u0, width=v1 - v0, height=0.0)
        outline = _sub(obj, "outline", id=0, fillType="paint", outer="true", closed="true",
                       laneType="driving")
        for k, (u, v) in enumerate(((u0, v0), (u1, v0), (u1, v1), (u0, v1), (u0, v0))):
            _sub(outline, "cornerLocal", u=u, v=v, z=0.0, height=0.0, id=k)
    signals = _sub(el, "signals")
    for sig in road.signals:
        se = _sub(signals, "signal", s=sig.s, t=sig.t, id=sig.id, name=sig.name,
                  dynamic="yes" if sig.dynamic else "no", orientation=sig.orientation,
                  zOffset=sig.z_offset, country="OpenDRIVE", type=sig.type, subtype="-1",
                  value=-1.0, height=sig.height, width=sig.width,
                  hOffset=0.0 if sig.orientation == "+" else math.pi, pitch=0.0, roll=0.0)
        _sub(se, "validity", fromLane=sig.lane, toLane=sig.lane)


def to_xodr(net: Network) -> str:
    """The network as OpenDRIVE 1.4 text."""
    pts = [p for r in net.roads for p in sample(r.start, r.segs, 10.0)]
    root = ET.Element("OpenDRIVE")
    _sub(root, "header", revMajor=1, revMinor=4, name=net.name, version="1.00",
         north=max(p.y for p in pts), south=min(p.y for p in pts),
         east=max(p.x for p in pts), west=min(p.x for p in pts), vendor="drivestack")
    geo = root.find("header")
    assert geo is not None
    ET.SubElement(geo, "geoReference").text = (
        "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs")
    for road in net.roads:
        _road_xml(root, road)
    for cid, sid in net.controllers:
        ctrl = _sub(root, "controller", name=f"controller {cid}", id=cid, sequence=0)
        _sub(ctrl, "control", signalId=sid, type="0")
    for j in net.junctions:
        je = _sub(root, "junction", id=j.id, name=j.name)
        for n, conn in enumerate(j.connections):
            ce = _sub(je, "connection", id=n, incomingRoad=conn.incoming,
                      connectingRoad=conn.connecting, contactPoint="start")
            for a, b in conn.lane_links:
                _sub(ce, "laneLink", **{"from": a, "to": b})
        for seq, cid in enumerate(j.controllers):
            _sub(je, "controller", id=cid, type="0", sequence=seq)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def generate(name: str) -> str:
    """OpenDRIVE text of the built-in map ``name``."""
    return to_xodr(BUILDERS[name]())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.maps.generate",
                                     description="Write drivestack's built-in OpenDRIVE maps.")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="output folder (default: %(default)s)")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"maps to write (default: all of {', '.join(BUILDERS)})")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BUILDERS]
    if unknown:
        parser.error(f"unknown map {unknown[0]!r} (expected one of {', '.join(BUILDERS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or BUILDERS:
        path = args.out / f"{name}.xodr"
        path.write_text(generate(name), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
