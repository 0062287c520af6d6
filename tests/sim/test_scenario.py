"""Scenario YAML and CARLA leaderboard route files: loading and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.config import ConfigError
from sim.routes import RouteError, load_route, load_routes
from sim.scenario import load_scenario

ROUTES = """<?xml version='1.0' encoding='UTF-8'?>
<routes>
  <route id="0" town="Town01">
    <weather cloudiness="0" sun_altitude_angle="70"/>
    <waypoint pitch="0" roll="0" x="338.7" y="226.75" yaw="269.98" z="0.0"/>
    <waypoint pitch="0" roll="0" x="321.9" y="194.6" yaw="179.8" z="0.0"/>
  </route>
  <route id="7" town="Town02">
    <waypoint x="1" y="2"/><waypoint x="4" y="6"/>
  </route>
</routes>
"""


def test_routes_load(tmp_path: Path):
    f = tmp_path / "r.xml"
    f.write_text(ROUTES)
    routes = load_routes(f)
    assert [(r.id, r.town, len(r.points)) for r in routes] == [("0", "Town01", 2),
                                                              ("7", "Town02", 2)]
    assert routes[0].points[0].yaw == pytest.approx(269.98)
    assert routes[0].weather["sun_altitude_angle"] == 70
    assert load_route(f, 7).length_m() == pytest.approx(5.0)


@pytest.mark.parametrize(("text", "message"), [
    ("", "not valid XML"),
    ("<routes/>", "no <route> elements"),
    ("<scenario/>", "expected a <routes> document"),
    ("<routes><route id='1' town='T'><waypoint x='1' y='2'/></route></routes>",
     "at least 2 waypoints"),
    ("<routes><route id='1' town='T'><waypoint x='a' y='2'/><waypoint x='1' y='2'/></route>"
     "</routes>", "x='a' is not a number"),
    ("<routes><route id='1' town='T'><waypoint y='2'/><waypoint x='1' y='2'/></route>"
     "</routes>", "without attribute 'x'"),
    ("<routes><route town='T'/></routes>", "needs id and town"),
])
def test_bad_route_files_name_the_file(tmp_path: Path, text: str, message: str):
    f = tmp_path / "bad.xml"
    f.write_text(text)
    with pytest.raises(RouteError, match=message) as exc:
        load_routes(f)
    assert str(f) in str(exc.value)


def test_missing_route_id_lists_the_ids(tmp_path: Path):
    f = tmp_path / "r.xml"
    f.write_text(ROUTES)
    with pytest.raises(RouteError, match=r"no route with id '3' \(ids: 0, 7\)"):
        load_route(f, "3")
    with pytest.raises(RouteError, match="cannot read"):
        load_routes(tmp_path / "none.xml")


def test_shared_leaderboard_routes_load(shared_dir: Path):
    routes = load_routes(shared_dir / "routes" / "carla_lb1_town01_town02.xml")
    assert len(routes) == 17
    assert {r.town for r in routes} == {"Town01", "Town02"}
    assert all(r.length_m() > 50 for r in routes)


def test_scenario_loads_with_defaults_and_resolves_paths(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("map: maps/custom.xodr\nseed: 3\nroute: {file: r.xml, id: '7'}\n"
                 "traffic: {vehicles: 5}\ncameras: [{name: front}, {name: left, yaw: -60}]\n"
                 "events: [{kind: lead_vehicle_brakes, at_route_m: 50}]\n")
    s = load_scenario(f)
    assert s.map == str(tmp_path / "maps" / "custom.xodr")
    assert s.route.file == str(tmp_path / "r.xml")
    assert s.traffic.vehicles == 5 and s.seed == 3 and s.dt == pytest.approx(0.05)
    assert [c.name for c in s.cameras] == ["front", "left"]
    assert s.events[0].kind == "lead_vehicle_brakes"
    assert s.lockstep.mode == "strict"


def test_builtin_map_name_is_not_a_path(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("map: highway\n")
    assert load_scenario(f).map == "highway"


@pytest.mark.parametrize(("text", "message"), [
    ("mapp: town_grid\n", "mapp: expected one of the keys"),
    ("traffic: {vehicles: -1}\n", "counts must be >= 0"),
    ("weather: {fog: 2}\n", r"weather.fog must be in \[0, 1\]"),
    ("cameras: [{name: a}, {name: a}]\n", "names must be unique"),
    ("route: {file: r.xml}\n", "needs an id"),
    ("events: [{kind: explode, at_time_s: 1}]\n", "events\\[0\\].kind: expected one of"),
    ("events: [{kind: cut_in}]\n", "set at_route_m or at_time_s"),
    ("lockstep: {mode: lazy}\n", "lockstep.mode"),
    ("cameras: [{name: a, fov: 0}]\n", "fov must be"),
])
def test_bad_scenarios_are_one_clear_error(tmp_path: Path, text: str, message: str):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as exc:
        load_scenario(f)
    assert str(f) in str(exc.value)


def test_a_leaderboard_route_file_gives_waypoints_and_town(shared_dir: Path, tmp_path: Path):
    from sim.scenario import resolve_route

    f = tmp_path / "s.yaml"
    routes = shared_dir / "routes" / "carla_lb1_town01_town02.xml"
    f.write_text(f"map_dir: {shared_dir / 'maps' / 'carla'}\n"
                 f"route: {{file: {routes}, id: '0'}}\n")
    s = resolve_route(load_scenario(f))
    assert s.map == str(shared_dir / "maps" / "carla" / "Town01.xodr")
    assert len(s.route.waypoints) == 11 and s.route.waypoints[0].x == pytest.approx(338.70,
                                                                                   abs=0.01)


def test_a_route_town_that_cannot_be_found_is_a_clear_error(tmp_path: Path):
    from sim.maps import MapError
    from sim.scenario import resolve_route

    routes = tmp_path / "r.xml"
    routes.write_text(ROUTES)
    f = tmp_path / "s.yaml"
    f.write_text(f"map_dir: {tmp_path}\nroute: {{file: {routes}, id: '0'}}\n")
    with pytest.raises(MapError, match="Town01"):
        resolve_route(load_scenario(f))


BUILT_IN = {"town_grid_route", "pedestrian_steps_out", "lead_vehicle_brakes",
            "stopped_vehicle", "cut_in"}


def test_built_in_scenarios_are_listed_and_found_by_name(tmp_path: Path, monkeypatch):
    from sim.scenario import SCENARIO_DIR, find_scenario, list_scenarios

    assert set(list_scenarios()) >= BUILT_IN
    assert find_scenario("cut_in") == SCENARIO_DIR / "cut_in.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("map: highway\n")
    assert find_scenario(str(own)) == own and find_scenario(own) == own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cut_in").write_text("map: rural\n")
    assert find_scenario("cut_in") == SCENARIO_DIR / "cut_in.yaml"  # the name wins
    s = load_scenario(own)
    assert s.name == "mine" and s.evaluation.blocked_time_s == 180.0


@pytest.mark.parametrize("name", ["no_such_scenario", "runs/x/none.yaml"])
def test_an_unknown_scenario_names_itself_and_lists_the_built_ins(name: str):
    from sim.scenario import find_scenario

    with pytest.raises(ConfigError, match=f"^{name}: expected a built-in scenario name") \
            as exc:
        find_scenario(name)
    assert all(b in str(exc.value) for b in BUILT_IN)


def test_the_blocked_time_is_a_scenario_setting(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("evaluation: {blocked_time_s: 2.5}\n")
    assert load_scenario(f).evaluation.blocked_time_s == 2.5
    f.write_text("evaluation: {blocked_time_s: 0}\n")
    with pytest.raises(ConfigError, match=r"evaluation\.blocked_time_s must be > 0"):
        load_scenario(f)


def test_duration_zero_means_until_the_route_ends_and_needs_a_route(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("duration_s: 0\nroute: {waypoints: [{x: 0, y: 0}, {x: 50, y: 0}]}\n")
    assert load_scenario(f).duration_s == 0
    f.write_text("duration_s: 0\n")
    with pytest.raises(ConfigError, match="duration_s: 0 \\(until the route ends\\) needs a route"):
        load_scenario(f)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_scenario_loads_and_drives_a_route_on_driving_lanes(name: str):
    carla = pytest.importorskip("carla")
    from sim.maps import load_map
    from sim.routes import trace_route
    from sim.scenario import resolve_route
    from sim.world import MapSource, World

    s = resolve_route(load_scenario(name))
    assert s.name == name
    loaded = load_map(s.map)
    assert loaded.name in ("town_grid", "highway", "rural")
    for i, p in enumerate(s.route.waypoints):
        wp = loaded.map.get_waypoint(carla.Location(p.x, p.y, 0.0), project_to_road=False,
                                     lane_type=carla.LaneType.Driving)
        assert wp is not None, f"{name}: route waypoint {i} is not on a driving lane"
        assert wp.transform.location.distance(carla.Location(p.x, p.y, 0.0)) < 0.5
    route = trace_route(loaded.map, [(p.x, p.y) for p in s.route.waypoints])
    assert route.chords == ()
    # The route's own end conditions (completed, blocked, timeout) end the run.
    assert s.duration_s == 0
    world = World(s, MapSource(loaded.name, loaded.xodr, loaded.map))
    if name == "town_grid_route":
        assert 300.0 <= route.length_m() <= 500.0
        assert 10 <= len(world.traffic.npcs) <= 20
        assert 10 <= len(world.pedestrians.walkers) <= 20
        assert len(world.lights.lights) > 0 and s.weather.time_of_day == "day"
    else:  # its event happens when the ego drives the route's (straight) start
        assert [e.kind for e in s.events] == [name]
        from bus.messages import VehicleControl

        while not world.script.fired and world.time < 30.0:
            world.step(VehicleControl(throttle=0.5 if world.ego.speed < 12.0 else 0.0))
        assert [kind for _, kind in world.script.fired] == [name]


def test_a_runs_overrides_replace_the_scenarios_and_a_route_file_drives_to_its_end(
        tmp_path: Path):
    """One override path for `drivestack run` and the sim node's parameters."""
    from sim.scenario import apply_overrides, find_scenario

    routes = tmp_path / "r.xml"
    routes.write_text(ROUTES)
    base = load_scenario(find_scenario("town_grid_route"))
    assert base.duration_s == 0.0 and base.route.waypoints
    kept = apply_overrides(load_scenario(find_scenario("town_grid_route")))
    assert (kept.map, kept.seed, kept.lockstep.mode) == (base.map, base.seed,
                                                         base.lockstep.mode)
    capped_scenario = load_scenario(find_scenario("pedestrian_steps_out"))
    capped_scenario.duration_s = 30.0  # a scenario with a cap for its own route
    s = apply_overrides(capped_scenario, map="town_grid", route_file=str(routes),
                        route_id="7", seed=11, mode="realtime")
    assert s.map == "town_grid" and s.seed == 11 and s.lockstep.mode == "realtime"
    assert [(p.x, p.y) for p in s.route.waypoints] == [(1.0, 2.0), (4.0, 6.0)]
    assert s.duration_s == 0.0  # until the route ends, not the scenario's own cap
    capped = apply_overrides(load_scenario(find_scenario("pedestrian_steps_out")),
                             map="town_grid", route_file=str(routes), route_id="7",
                             duration_s=12.5)
    assert capped.duration_s == 12.5
