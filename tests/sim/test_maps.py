"""Maps: the built-in OpenDRIVE maps (generated, deterministic, drivable through
carla.Map), loading and its errors, spawn points, the top-down raster and the
``drivestack maps`` command; CARLA's Town01/Town02 from ../shared when present."""

from __future__ import annotations

import collections
import math

import cv2
import numpy as np
import pytest

carla = pytest.importorskip("carla")

from launch.cli import main  # noqa: E402
from sim.labels import Label  # noqa: E402
from sim.maps import (  # noqa: E402
    MapError,
    builtin_maps,
    crosswalk_polygons,
    load_map,
    map_info,
    parse_map,
    resolve_town,
)
from sim.maps.generate import BUILDERS, generate  # noqa: E402
from sim.maps.render import rasterize, render_png  # noqa: E402
from sim.spawn import spawn_points  # noqa: E402

BUILTIN = ("highway", "rural", "town_grid")
NO_DEAD_ENDS = ("highway", "town_grid", "rural")
LIGHT = "1000001"


@pytest.fixture(scope="module")
def maps():
    return {name: load_map(name) for name in BUILTIN}


def _key(wp):
    return (wp.road_id, wp.section_id, wp.lane_id)


def _follow(wp, steps: int = 200, step_m: float = 1.0) -> int:
    """Steps taken along ``waypoint.next`` before a dead end (``steps`` if none);
    a stand-in for driving 200 ticks."""
    for i in range(steps):
        ahead = wp.next(step_m)
        if not ahead:
            return i
        wp = ahead[0]
    return steps


# ------------------------------------------------------------------------ generator


def test_builtin_maps_are_the_generator_output():
    assert tuple(builtin_maps()) == BUILTIN == tuple(sorted(BUILDERS))
    for name, path in builtin_maps().items():
        text = generate(name)
        assert text == generate(name), f"{name}: generator is not deterministic"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m sim.maps.generate")


def test_generator_cli_writes_files(tmp_path):
    from sim.maps.generate import main as gen_main

    assert gen_main(["--out", str(tmp_path), "rural"]) == 0
    assert (tmp_path / "rural.xodr").read_text() == generate("rural")


# ------------------------------------------------------------------- built-in maps


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_map_is_drivable(maps, name):
    m = maps[name].map
    wps = m.generate_waypoints(2.0)
    assert len(wps) > 1000
    assert all(w.lane_type == carla.LaneType.Driving for w in wps)
    # Waypoints lie on driving lanes, not on a sidewalk or shoulder next to them.
    for w in wps[::7]:
        here = m.get_waypoint(w.transform.location, project_to_road=False,
                              lane_type=carla.LaneType.Any)
        assert here is not None and here.lane_type == carla.LaneType.Driving
    assert m.get_topology()
    if name in NO_DEAD_ENDS:
        dead = [(_key(w), w.s) for w in wps if not w.next(2.0)]
        assert not dead, f"{name}: dead ends at {dead[:5]}"


def _lane_graph(m):
    graph = collections.defaultdict(set)
    for a, b in m.get_topology():
        graph[_key(a)].add(_key(b))
        graph.setdefault(_key(b), set())
    return graph


def _reachable(graph, start):
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("name", ["town_grid", "rural"])
def test_every_driving_lane_reaches_every_other(maps, name):
    m = maps[name].map
    graph = _lane_graph(m)
    lanes = {_key(w) for w in m.generate_waypoints(2.0)}
    assert lanes <= set(graph)
    reverse = collections.defaultdict(set)
    for a, bs in graph.items():
        for b in bs:
            reverse[b].add(a)
    start = min(graph)
    assert _reachable(graph, start) == set(graph)
    assert _reachable(reverse, start) == set(graph)


def test_town_grid_junctions_lights_and_crosswalks(maps):
    loaded = maps["town_grid"]
    m = loaded.map
    info = map_info(loaded)
    assert (info.junctions, info.traffic_lights, info.crosswalks) == (12, 40, 40)
    # One light per approach: 4 at each of the 4 crossroads, 3 at each T-junction.
    per_junction = collections.Counter()
    for lm in m.get_all_landmarks_of_type(LIGHT):
        (lane, to_lane), = lm.get_lane_validities()
        assert lane == to_lane != 0
        wp = m.get_waypoint_xodr(lm.road_id, lane, lm.s)
        assert wp.lane_type == carla.LaneType.Driving and not wp.is_junction
        # Right of the lane it governs, facing its traffic, at the junction.
        right = wp.transform.get_right_vector()
        offset = lm.transform.location - wp.transform.location
        assert offset.x * right.x + offset.y * right.y > wp.lane_width / 2
        yaw_diff = (lm.transform.rotation.yaw - wp.transform.rotation.yaw) % 360
        assert min(yaw_diff, 360 - yaw_diff) < 1.0
        ahead = wp.next(1.0)
        assert ahead and all(a.is_junction for a in ahead)
        per_junction[ahead[0].junction_id] += 1
        # The approach sees its own light ahead.
        before = wp.previous(20.0)[0]
        assert lm.id in [x.id for x in before.get_landmarks_of_type(25.0, LIGHT, False)]
    assert sorted(collections.Counter(per_junction.values()).items()) == [(3, 8), (4, 4)]
    # Crosswalks: rectangles across a 7 m road, 3 m deep.
    for poly in crosswalk_polygons(m):
        xs, ys = [p.x for p in poly], [p.y for p in poly]
        assert sorted((round(max(xs) - min(xs), 3), round(max(ys) - min(ys), 3))) == [3.0, 7.0]


def test_town_sidewalks_are_continuous(maps):
    """Pedestrians can walk every sidewalk round the blocks: round corners with the
    right turns, across the closed side of T-junctions."""
    m = maps["town_grid"].map
    starts = []
    for road in range(1, 400):
        for lane in (-2, 2):
            wp = m.get_waypoint_xodr(road, lane, 1.0)
            if wp is not None and wp.lane_type == carla.LaneType.Sidewalk and not wp.is_junction:
                starts.append(wp)
    assert len(starts) == 40  # both sides of the 20 roads between junctions
    for wp in starts:
        assert _follow(wp, steps=400) == 400, (wp.road_id, wp.lane_id)


def test_lane_markings(maps):
    def marks(w):
        return (str(w.left_lane_marking.type), str(w.left_lane_marking.color),
                str(w.right_lane_marking.type), str(w.right_lane_marking.color))

    town = maps["town_grid"].map
    found = {marks(w) for w in town.generate_waypoints(5.0) if not w.is_junction}
    assert found == {("Solid", "Yellow", "Solid", "White"),
                     ("SolidSolid", "Yellow", "Solid", "White")}
    highway = maps["highway"].map
    by_lane = {abs(w.lane_id): marks(w) for w in highway.generate_waypoints(50.0)}
    assert by_lane == {2: ("Solid", "Yellow", "Broken", "White"),
                       3: ("Broken", "White", "Broken", "White"),
                       4: ("Broken", "White", "Solid", "White")}
    middle = next(w for w in highway.generate_waypoints(50.0) if w.lane_id == -3)
    assert middle.lane_change == carla.LaneChange.Both  # lane changes either way
    outer = middle.get_right_lane()
    assert outer.lane_id == -4 and outer.lane_change == carla.LaneChange.Left
    rural = maps["rural"].map
    centre = {str(w.left_lane_marking.type) for w in rural.generate_waypoints(5.0)
              if not w.is_junction}
    assert centre == {"Solid", "Broken"}  # no overtaking in bends


def test_map_sizes_and_speed_limits(maps):
    infos = {name: map_info(loaded) for name, loaded in maps.items()}
    assert infos["highway"].driving_km / 6 > 5.0  # a loop of several km, 3 lanes each way
    assert infos["highway"].speed_kmh == (90.0, 110.0)
    assert infos["rural"].driving_km / 2 > 3.0
    assert infos["rural"].stop_signs == 4 and infos["rural"].junctions == 1
    assert 60.0 <= infos["rural"].speed_kmh[1] <= 80.0
    assert infos["town_grid"].speed_kmh == (30.0, 50.0)


def test_highway_is_a_closed_loop_a_few_minutes_long(maps):
    m = maps["highway"].map
    start = m.get_waypoint(carla.Location(0.0, 5.0, 0.0))
    wp, travelled = start, 0.0
    while travelled < 20000:
        wp = wp.next(10.0)[0]
        travelled += 10.0
        if travelled > 100 and wp.transform.location.distance(start.transform.location) < 6:
            break
    assert 5000 < travelled < 20000  # back at the start: > 2.5 min at 110 km/h


# -------------------------------------------------------------------------- loading


def test_load_by_name_path_and_town(tmp_path, maps):
    town = maps["town_grid"]
    assert town.name == "town_grid" and town.path == builtin_maps()["town_grid"]
    assert town.xodr.startswith("<?xml")
    copy = tmp_path / "mytown.xodr"
    copy.write_text(town.xodr)
    loaded = load_map(copy)
    assert loaded.name == "mytown" and loaded.path == copy
    assert load_map(str(copy)).name == "mytown"
    assert resolve_town("mytown", tmp_path) == copy
    assert resolve_town("rural") == builtin_maps()["rural"]
    with pytest.raises(MapError, match="Town05"):
        resolve_town("Town05", tmp_path)


BAD_FILES = {
    "empty.xodr": ("", "empty"),
    "blank.xodr": ("  \n\n", "empty"),
    "notxml.xodr": ("this is not xml", "malformed XML"),
    "truncated.xodr": ("<OpenDRIVE><road id='1'", "malformed XML"),
    "html.xodr": ("<html><body/></html>", "<OpenDRIVE> root"),
    "noroads.xodr": ("<OpenDRIVE><header/></OpenDRIVE>", "at least one <road>"),
    # carla.Map crashes the process on this one unless it is caught first.
    "noplanview.xodr": ('<OpenDRIVE><road id="1" length="10" junction="-1"><lanes>'
                        '<laneSection s="0"><center><lane id="0" type="none"/></center>'
                        '</laneSection></lanes></road></OpenDRIVE>', "planView"),
    "sidewalkonly.xodr": (
        '<OpenDRIVE><road id="1" length="10" junction="-1"><planView><geometry s="0" '
        'x="0" y="0" hdg="0" length="10"><line/></geometry></planView><lanes>'
        '<laneSection s="0"><center><lane id="0" type="none"/></center><right>'
        '<lane id="-1" type="sidewalk"><width sOffset="0" a="2" b="0" c="0" d="0"/>'
        '</lane></right></laneSection></lanes></road></OpenDRIVE>', "driving lane"),
}


@pytest.mark.parametrize("filename", sorted(BAD_FILES))
def test_bad_files_give_one_line_map_errors(tmp_path, filename):
    text, expected = BAD_FILES[filename]
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(MapError) as exc:
        load_map(path)
    message = str(exc.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_files_and_names(tmp_path):
    with pytest.raises(MapError, match="no such file"):
        load_map(tmp_path / "missing.xodr")
    with pytest.raises(MapError, match="built-in map name"):
        load_map("no_such_map")
    with pytest.raises(MapError, match="a directory"):
        load_map(tmp_path)
    (tmp_path / "bin.xodr").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MapError, match="UTF-8"):
        load_map(tmp_path / "bin.xodr")


def test_parse_map_from_text(straight_xodr):
    loaded = parse_map(straight_xodr, name="straight", source="/map/opendrive")
    assert loaded.path is None and len(loaded.map.generate_waypoints(10.0)) > 10
    with pytest.raises(MapError, match=r"^/map/opendrive: "):
        parse_map("<nope/>", source="/map/opendrive")


# --------------------------------------------------------------------- spawn points


def _check_spawn_points(m, points):
    assert points
    for t in points:
        wp = m.get_waypoint(t.location, project_to_road=False)
        assert wp is not None and wp.lane_type == carla.LaneType.Driving
        assert not wp.is_junction
        assert all(not a.is_junction for a in wp.next(9.0))
        diff = (t.rotation.yaw - wp.transform.rotation.yaw) % 360
        assert min(diff, 360 - diff) < 1.0
        assert t.location.z == pytest.approx(wp.transform.location.z + 0.5, abs=1e-3)


@pytest.mark.parametrize("name", BUILTIN)
def test_spawn_points_and_200_steps(maps, name):
    m = maps[name].map
    points = spawn_points(m)
    _check_spawn_points(m, points)
    again = spawn_points(m)
    assert [(p.location.x, p.location.y, p.rotation.yaw) for p in points] == [
        (p.location.x, p.location.y, p.rotation.yaw) for p in again]
    for t in points[:: max(1, len(points) // 8)]:
        assert _follow(m.get_waypoint(t.location)) == 200


def test_spawn_point_spacing(maps):
    m = maps["town_grid"].map
    dense, sparse = spawn_points(m, spacing_m=10.0), spawn_points(m, spacing_m=40.0)
    assert len(dense) > 1.8 * len(sparse)
    with pytest.raises(ValueError):
        spawn_points(m, spacing_m=0.0)


@pytest.mark.parametrize("town", ["Town01", "Town02"])
def test_carla_towns_load_spawn_and_drive(shared_dir, town):
    path = resolve_town(town, shared_dir / "maps" / "carla")
    loaded = load_map(path)
    assert loaded.name == town
    assert len(loaded.map.get_all_landmarks_of_type(LIGHT)) > 0
    points = spawn_points(loaded.map)
    assert len(points) > 50
    _check_spawn_points(loaded.map, points)
    for t in points[:: max(1, len(points) // 8)]:
        assert _follow(loaded.map.get_waypoint(t.location)) == 200


# ------------------------------------------------------------------------ rendering


def test_raster_layers_and_transform(maps):
    loaded = maps["town_grid"]
    raster = rasterize(loaded, resolution=0.5)
    h, w = raster.shape
    assert raster.color.shape == (h, w, 3) and raster.labels.dtype == np.uint8
    counts = np.bincount(raster.labels.ravel(), minlength=32)
    for label in (Label.ROADS, Label.SIDEWALKS, Label.TERRAIN, Label.ROAD_LINES):
        assert counts[label] > 0, label.name
    assert set(np.flatnonzero(counts)) <= {Label.ROADS, Label.SIDEWALKS, Label.TERRAIN,
                                            Label.ROAD_LINES}
    assert raster.junctions.sum() > 0
    m = loaded.map

    def label_at(loc):
        u, v = raster.to_pixels(np.array([[loc.x, loc.y]]))[0]
        # The affine matrix says the same as to_pixels.
        uv1 = raster.world_to_pixel @ np.array([loc.x, loc.y, 1.0])
        assert np.allclose(uv1[:2], (u, v))
        return raster.labels[round(v), round(u)]

    # Away from junctions (stop lines, crosswalks), 0.8 m right of a lane centre is
    # road and 3.5 m right of it (1.75 m past the curb) sidewalk.
    for t in spawn_points(m)[::5]:
        wp = m.get_waypoint(t.location)
        loc, right = wp.transform.location, wp.transform.get_right_vector()
        assert label_at(loc + right * 0.8) == Label.ROADS
        assert label_at(loc + right * 3.5) == Label.SIDEWALKS
    assert np.allclose(raster.pixel_to_world @ raster.world_to_pixel, np.eye(3))


def test_raster_bounds_and_limits(maps):
    raster = rasterize(maps["town_grid"], resolution=0.1, bounds=(90.0, -10.0, 110.0, 10.0))
    assert raster.shape == (200, 200) and raster.origin == (90.0, -10.0)
    assert (raster.labels == Label.ROAD_LINES).sum() > 100  # crosswalks, stop lines
    assert raster.junctions[100, 100]
    with pytest.raises(ValueError, match="coarser resolution"):
        rasterize(maps["highway"], resolution=0.01)


def test_raster_paints_only_the_crosswalks_asked_for(maps):
    """``crosswalks`` picks which zebras are painted (data collection leaves some
    out); everything else on the ground is as with all of them."""
    m = maps["town_grid"].map
    polys = crosswalk_polygons(m)
    pts = np.array([(p.x, p.y) for p in polys[0]])
    lo, hi = pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0
    bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    every, but_first = (rasterize(m, resolution=0.1, bounds=bounds, crosswalks=c)
                        for c in (None, range(1, len(polys))))
    inside = np.zeros(every.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(every.to_pixels(pts)).astype(np.int32)], 1)
    zebra = (inside == 1) & (every.labels == Label.ROAD_LINES)
    assert zebra.sum() > 0.3 * inside.sum()  # bars over about half of the crossing
    assert not ((but_first.labels == Label.ROAD_LINES) & (inside == 1)).any()
    assert (but_first.labels[zebra] == Label.ROADS).all()
    outside = inside == 0
    assert np.array_equal(but_first.labels[outside], every.labels[outside])


def test_render_png(tmp_path, maps):
    out = tmp_path / "rural.png"
    w, h = render_png(maps["rural"], out, resolution=2.0,
                      spawn_points=spawn_points(maps["rural"].map))
    img = cv2.imread(str(out))
    assert img.shape == (h, w, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10


# ------------------------------------------------------------------------------ CLI


def test_cli_lists_maps(capsys):
    assert main(["maps"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert name in out
    assert "traffic lights" in out and "40" in out


def test_cli_renders_a_map(tmp_path, capsys):
    out = tmp_path / "town.png"
    assert main(["maps", "render", "town_grid", "-o", str(out), "--resolution", "1"]) == 0
    assert out.stat().st_size > 1000 and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["maps", "render", "no_such_map"], "no_such_map: expected a built-in map name"),
    (["maps", "render", "{bad}"], "expected an <OpenDRIVE> root element"),
    (["maps", "render", "rural", "--resolution", "0"], "--resolution must be > 0"),
    (["maps", "render", "rural", "-o", "/proc/no/such/dir/x.png"], "cannot write"),
])
def test_cli_map_errors_are_one_line(tmp_path, capsys, argv, expected):
    bad = tmp_path / "bad.xodr"
    bad.write_text("<html/>")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_geometry_helpers_close_loops():
    from sim.maps.generate import Pose, advance, turn, walk

    # A full circle of spirals and arcs comes back where it started.
    segs = turn(math.pi, 50.0, 20.0) * 2
    end = walk(Pose(1.0, 2.0, 0.3), segs)[-1]
    assert (end.x, end.y) == pytest.approx((1.0, 2.0), abs=1e-9)
    assert math.remainder(end.hdg - 0.3, 2 * math.pi) == pytest.approx(0.0, abs=1e-12)
    quarter = advance(Pose(0.0, 0.0, 0.0), turn(math.pi / 2, 10.0, 0.0)[0], 10 * math.pi / 2)
    assert (quarter.x, quarter.y) == pytest.approx((10.0, 10.0))
