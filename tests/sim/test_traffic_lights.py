"""Traffic lights: discovery on CARLA's towns (and the project town when generated),
junction cycling, forcing, ground truth and the red-light crossing test."""

from __future__ import annotations

import collections
import functools
import math
import re
from pathlib import Path

import carla
import pytest

from bus.config import ConfigError, load
from bus.messages import LIGHT_STATES, TrafficLightInfo
from sim.traffic_lights import (
    TRAFFIC_LIGHT_TYPE,
    TrafficLight,
    TrafficLightConfig,
    TrafficLights,
    discover_traffic_lights,
)

TOWN_GRID = Path(__file__).resolve().parents[2] / "sim" / "maps" / "town_grid.xodr"
DT = 0.05  # the leaderboard's 20 Hz step


@functools.cache
def _map(path: Path) -> carla.Map:
    return carla.Map(path.stem, path.read_text(encoding="utf-8"))


def _town(shared_dir: Path, name: str) -> carla.Map:
    return _map(shared_dir / "maps" / "carla" / f"{name}.xodr")


def _by_junction(lights: list[TrafficLight]) -> dict[int, list[TrafficLight]]:
    out: dict[int, list[TrafficLight]] = collections.defaultdict(list)
    for light in lights:
        out[light.junction_id].append(light)
    return out


def _distance_to_box_edge(loc: carla.Location, box: carla.BoundingBox) -> float:
    """Distance (m, 2D) from ``loc`` to the outline of ``box``, inside or outside."""
    yaw = math.radians(box.rotation.yaw)
    dx, dy = loc.x - box.location.x, loc.y - box.location.y
    u = abs(dx * math.cos(yaw) + dy * math.sin(yaw)) - box.extent.x
    v = abs(-dx * math.sin(yaw) + dy * math.cos(yaw)) - box.extent.y
    if u <= 0 and v <= 0:
        return -max(u, v)
    return math.hypot(max(u, 0.0), max(v, 0.0))


def _heading_diff(a: TrafficLight, b: TrafficLight) -> float:
    return abs((a.heading_deg - b.heading_deg + 180.0) % 360.0 - 180.0)


def _check_geometry(carla_map: carla.Map, lights: list[TrafficLight]) -> None:
    """What every map's lights must satisfy, whoever wrote the map."""
    assert lights
    for junction_id, members in _by_junction(lights).items():
        assert len(members) >= 3, f"junction {junction_id}: {len(members)} approaches"
    for light in lights:
        assert light.lanes and len(light.lanes) == len(set(light.lanes))
        for wp in light.stop_waypoints:
            assert wp.lane_type == carla.LaneType.Driving and not wp.is_junction
            assert wp.road_id == light.road_id
            ahead = wp.next(1.0)
            assert ahead and all(a.is_junction and a.junction_id == light.junction_id
                                 for a in ahead), f"light {light.id} lane {wp.lane_id}"
            box = ahead[0].get_junction().bounding_box
            assert _distance_to_box_edge(wp.transform.location, box) < 3.0
        on_road = carla_map.get_waypoint(light.stop_line, project_to_road=False,
                                         lane_type=carla.LaneType.Driving)
        assert on_road is not None


def _trace(lights: TrafficLights, seconds: float) -> list[tuple[str, ...]]:
    out = []
    for _ in range(round(seconds / DT)):
        lights.tick(DT)
        out.append(tuple(lights.state_of(lt.id) for lt in lights.lights))
    return out


def _runs(states: list[str]) -> list[tuple[str, float]]:
    """(state, duration s) of each complete run, dropping the partial first and last."""
    runs: list[list] = []
    for s in states:
        if runs and runs[-1][0] == s:
            runs[-1][1] += DT
        else:
            runs.append([s, DT])
    return [(s, d) for s, d in runs[1:-1]]


# ------------------------------------------------------------------ discovery
@pytest.mark.parametrize("town, landmarks, junctions", [("Town01", 72, 12), ("Town02", 48, 8)])
def test_carla_towns_give_one_light_per_approach(shared_dir: Path, town: str, landmarks: int,
                                                  junctions: int) -> None:
    # CARLA's Town01/02 reference each of their signals (36 / 24) from the two
    # connecting roads leaving its approach, and every junction is a signalised T:
    # so twice as many landmarks as lights, three lights per junction, and every
    # junction of the map signalised.
    carla_map = _town(shared_dir, town)
    assert len(carla_map.get_all_landmarks_of_type(TRAFFIC_LIGHT_TYPE)) == landmarks
    lights = discover_traffic_lights(carla_map)
    assert len(lights) == landmarks // 2
    assert [lt.id for lt in lights] == list(range(len(lights)))
    assert all(len(lt.signal_ids) == 1 and len(lt.lanes) == 1 for lt in lights)
    assert len({lt.signal_ids for lt in lights}) == len(lights)
    by_junction = _by_junction(lights)
    assert len(by_junction) == junctions
    assert all(len(m) == 3 for m in by_junction.values())
    in_map = {w.junction_id for pair in carla_map.get_topology() for w in pair if w.is_junction}
    assert set(by_junction) == in_map
    _check_geometry(carla_map, lights)


def test_signals_on_incoming_roads_resolve_like_their_references(shared_dir: Path) -> None:
    # The same town with its signals left on the incoming roads (references removed,
    # so carla.Map derives each validity from the orientation): walking forward to
    # the junction must give the lights the references give, except the three
    # signals CARLA placed on connecting roads whose validity comes back empty.
    text = (shared_dir / "maps" / "carla" / "Town01.xodr").read_text(encoding="utf-8")
    text = re.sub(r"<signalReference .*?</signalReference>", "", text, flags=re.S)
    text = re.sub(r'\s*<validity fromLane="0" toLane="0"/>', "", text)
    on_roads = carla.Map("Town01_signals_on_roads", text)
    assert len(on_roads.get_all_landmarks_of_type(TRAFFIC_LIGHT_TYPE)) == 36
    expected = {lt.signal_ids: (lt.junction_id, lt.lanes)
                for lt in discover_traffic_lights(_town(shared_dir, "Town01"))}
    got = {lt.signal_ids: (lt.junction_id, lt.lanes) for lt in discover_traffic_lights(on_roads)}
    assert len(got) == 33
    assert all(expected[ids] == value for ids, value in got.items())


def test_project_town_grid() -> None:
    if not TOWN_GRID.is_file():
        pytest.skip("sim/maps/town_grid.xodr has not been generated")
    carla_map = _map(TOWN_GRID)
    _check_geometry(carla_map, discover_traffic_lights(carla_map))


def test_lane_lookup_and_ground_truth(shared_dir: Path) -> None:
    lights = TrafficLights.from_map(_town(shared_dir, "Town01"), seed=3)
    for light in lights.lights:
        for lane in light.lanes:
            assert lights.light_for_lane(*lane) is light
    first = lights.lights[0]
    road, section, lane = first.lanes[0]
    assert lights.light_for_lane(road, section, -lane) is None  # the outgoing lane
    infos = lights.ground_truth()
    assert [i.id for i in infos] == [lt.id for lt in lights.lights]
    info = infos[0]
    assert isinstance(info, TrafficLightInfo) and info.state == lights.state_of(first.id)
    assert (info.lanes[0].road_id, info.lanes[0].section_id, info.lanes[0].lane_id) == (
        road, section, lane)
    assert info.stop_line.x == pytest.approx(first.stop_line.x)
    assert info.transform.location.y == pytest.approx(first.transform.location.y)


# -------------------------------------------------------------------- cycling
@pytest.mark.parametrize("pair_opposing", [False, True])
def test_no_conflicting_greens(shared_dir: Path, pair_opposing: bool) -> None:
    lights = TrafficLights.from_map(_town(shared_dir, "Town01"),
                                    TrafficLightConfig(pair_opposing=pair_opposing), seed=7)
    by_junction = _by_junction(list(lights.lights))
    seen_green: set[int] = set()
    saw_pair = False
    for _ in range(round(120.0 / DT)):
        lights.tick(DT)
        for members in by_junction.values():
            green = [lt for lt in members if lights.state_of(lt.id) == "green"]
            seen_green.update(lt.id for lt in green)
            assert len(green) <= (2 if pair_opposing else 1)
            if len(green) == 2:
                assert _heading_diff(*green) > 150.0  # opposing, never perpendicular
                saw_pair = True
    assert seen_green == {lt.id for lt in lights.lights}  # nobody starves in 120 s
    assert saw_pair == pair_opposing  # each Town01 T has one straight-through pair


def test_cycle_follows_configured_timings(shared_dir: Path) -> None:
    config = load(TrafficLightConfig, {"green_s": 7, "yellow_s": 2.5, "red_clearance_s": 1})
    lights = TrafficLights.from_map(_town(shared_dir, "Town01"), config, seed=1)
    trace = _trace(lights, 120.0)
    cycle = 3 * (7 + 2.5 + 1)  # a T junction: three approaches, one at a time
    for i, light in enumerate(lights.lights):
        runs = _runs([states[i] for states in trace])
        assert [s for s, _ in runs][:3] in (["green", "yellow", "red"], ["yellow", "red", "green"],
                                             ["red", "green", "yellow"])
        expected = {"green": 7.0, "yellow": 2.5, "red": cycle - 9.5}
        for state, duration in runs:
            assert duration == pytest.approx(expected[state], abs=DT + 1e-9), (light.id, state)
    # The all-red clearance: every light of a junction red at once, 1 s per turn.
    junction = lights.lights[0].junction_id
    members = [i for i, lt in enumerate(lights.lights) if lt.junction_id == junction]
    all_red = _runs(["red" if all(states[i] == "red" for i in members) else "go"
                     for states in trace])
    clearances = [d for s, d in all_red if s == "red"]
    assert len(clearances) >= 10
    assert all(d == pytest.approx(1.0, abs=DT + 1e-9) for d in clearances)


def test_seed_sets_the_offsets(shared_dir: Path) -> None:
    carla_map = _town(shared_dir, "Town01")
    found = discover_traffic_lights(carla_map)
    a = _trace(TrafficLights(found, seed=11), 30.0)
    assert a == _trace(TrafficLights(found, seed=11), 30.0)
    b = _trace(TrafficLights(found, seed=12), 30.0)
    assert a != b
    at_start = [TrafficLights(found, seed=s).ground_truth() for s in range(4)]
    assert len({tuple(i.state for i in gt) for gt in at_start}) > 1


def test_forcing_and_freezing(shared_dir: Path) -> None:
    found = discover_traffic_lights(_town(shared_dir, "Town01"))
    lights, free = TrafficLights(found, seed=5), TrafficLights(found, seed=5)
    lights.set_state(4, "off")
    for _ in range(round(60.0 / DT)):
        lights.tick(DT)
        free.tick(DT)
        assert lights.state_of(4) == "off"
    lights.release(4)
    assert [lights.state_of(lt.id) for lt in found] == [free.state_of(lt.id) for lt in found]
    lights.freeze()
    before, t = [lights.state_of(lt.id) for lt in found], lights.time_s
    _trace(lights, 30.0)
    assert [lights.state_of(lt.id) for lt in found] == before and lights.time_s == t
    lights.freeze(False)
    lights.tick(DT)
    assert lights.time_s == pytest.approx(t + DT)
    with pytest.raises(ValueError, match="state must be one of"):
        lights.set_state(4, "blue")
    with pytest.raises(KeyError):
        lights.set_state(len(found), "red")
    with pytest.raises(KeyError):
        lights.state_of(-1)
    with pytest.raises(ValueError):
        lights.tick(-DT)
    assert set(LIGHT_STATES) >= {lights.state_of(lt.id) for lt in found}


# ------------------------------------------------------------------ red light
def test_red_light_crossing(shared_dir: Path) -> None:
    lights = TrafficLights.from_map(_town(shared_dir, "Town01"), seed=2)
    light = lights.lights[7]
    wp = light.stop_waypoints[0]
    c, yaw = wp.transform.location, math.radians(wp.transform.rotation.yaw)
    fwd, left = (math.cos(yaw), math.sin(yaw)), (math.sin(yaw), -math.cos(yaw))

    def at(along: float, across: float = 0.0) -> tuple[float, float]:
        return (c.x + along * fwd[0] + across * left[0], c.y + along * fwd[1] + across * left[1])

    lights.set_state(light.id, "red")
    assert lights.red_light_crossed(at(-0.6), at(0.4)) is light
    assert lights.red_light_crossed(at(-0.6, 1.5), at(0.4, 1.2)) is light  # off-centre, in lane
    assert lights.red_light_crossed(at(-0.6), at(0.0)) is light  # front reaches the line
    assert lights.red_light_crossed(at(-3.0), at(-1.0)) is None  # still before it
    assert lights.red_light_crossed(at(0.5), at(2.5)) is None  # already past it
    assert lights.red_light_crossed(at(0.4), at(-0.6)) is None  # reversing over it
    # The opposite (outgoing) lane beside it has no stop line.
    assert lights.red_light_crossed(at(-0.6, wp.lane_width), at(0.4, wp.lane_width)) is None
    for state in ("green", "yellow"):
        lights.set_state(light.id, state)
        assert lights.red_light_crossed(at(-0.6), at(0.4)) is None
    # Another approach's line crossed on red: that light is the one reported.
    other = lights.lights[8]
    lights.set_state(other.id, "red")
    o = other.stop_waypoints[0].transform
    oyaw = math.radians(o.rotation.yaw)
    prev = (o.location.x - 0.5 * math.cos(oyaw), o.location.y - 0.5 * math.sin(oyaw))
    cur = (o.location.x + 0.5 * math.cos(oyaw), o.location.y + 0.5 * math.sin(oyaw))
    assert lights.red_light_crossed(prev, cur) is other


# --------------------------------------------------------------------- config
@pytest.mark.parametrize("data", [
    {"green_s": 0},
    {"green_s": -1.0},
    {"yellow_s": -0.5},
    {"red_clearance_s": float("nan")},
    {"green_s": "ten"},
    {"green": 10},
    {"pair_opposing": "yes"},
])
def test_bad_timing_config(data: dict) -> None:
    with pytest.raises(ConfigError):
        load(TrafficLightConfig, data, "lights.yaml")


def test_timing_config_defaults_are_carlas() -> None:
    config = load(TrafficLightConfig, None)
    assert (config.green_s, config.yellow_s, config.red_clearance_s) == (10.0, 3.0, 2.0)
    assert not config.pair_opposing
