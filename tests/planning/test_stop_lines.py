"""Perceived lights get their stop line from the map: the route's junction entries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bus.messages import TrafficLightState
from planning.route import RoutePlanner
from planning.stop_lines import (
    JunctionEntries,
    PerceivedLight,
    PerceivedLightParams,
    SignalHead,
    map_signal_heads,
)
from sim.maps import load_map

# town_grid: junction centres at (100 i, -100 j); the inner road y = -100 runs east
# with its eastbound lane at y = -98.25 (see sim/scenarios/town_grid_route.yaml)
START, END = (15.0, -98.25), (185.0, -98.25)


@pytest.fixture(scope="module")
def route_and_entries() -> tuple[np.ndarray, JunctionEntries, object]:
    loaded = load_map("town_grid")
    route = RoutePlanner(loaded.map).plan_through([START, END]).xy()
    return route, JunctionEntries(loaded.map, route), loaded.map


def test_the_entry_of_the_junction_crossed_is_found_to_a_centimetre(route_and_entries):
    route, entries, carla_map = route_and_entries
    assert len(entries.entries_m) == 1  # straight through the junction at (100, -100)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(route, axis=0).T))])
    entry = entries.entries_m[0]
    x = np.interp(entry, s, route[:, 0])
    assert 80.0 < x < 100.0  # before the junction's centre, eastbound
    import carla
    before = carla_map.get_waypoint(carla.Location(x=float(x) - 0.02, y=-98.25, z=0.0))
    after = carla_map.get_waypoint(carla.Location(x=float(x) + 0.02, y=-98.25, z=0.0))
    assert not before.is_junction and after.is_junction
    assert entries.next_after(entry) is None and entries.next_after(0.0) == entry


def test_a_perceived_light_is_placed_at_the_next_entry_within_the_lookahead(
        route_and_entries):
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    red = TrafficLightState(state="red", distance=-1.0, source="perception")
    lights = PerceivedLight(entries, PerceivedLightParams(lookahead_m=60.0, view_back_m=0.0))
    assert lights.place(red, entry - 30.0, 0.0).distance == pytest.approx(30.0)
    assert lights.place(red, entry - 80.0, 0.0).distance == -1.0  # too far
    assert lights.place(red, entry + 1.0, 0.0).distance == -1.0  # past it
    unknown = TrafficLightState(state="unknown", distance=-1.0)
    assert lights.place(unknown, entry - 30.0, 0.0).distance == -1.0
    oracle = TrafficLightState(state="red", distance=12.5, source="oracle")
    assert lights.place(oracle, entry - 30.0, 0.0).distance == 12.5  # its own


def test_a_perceived_light_is_stopped_for_before_the_entry_where_its_head_stays_in_view(
        route_and_entries):
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    red = TrafficLightState(state="red", distance=-1.0, source="perception")
    lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=4.0))
    assert lights.place(red, entry - 30.0, 0.0).distance == pytest.approx(26.0)
    # past that point (the light turned red late): the entry itself
    assert lights.place(red, entry - 3.0, 0.0).distance == pytest.approx(3.0)


def test_a_yellow_is_decided_once_against_the_line_and_stopped_for_short_of_it(
        route_and_entries):
    """27 m before the entry at 11 m/s: the line is a 2.6 m/s^2 stop, so the yellow
    is stopped for (handed on as a red), 6 m short of the entry (3.4 m/s^2, within
    the firm 4.5 allowed for keeping the head in view), and both stay decided
    while the car approaches. 15 m before it the line would take 5.2: driven
    through, and still so at the next read at that speed, until a green or another
    entry ends the decision, or the car, slowed for something else, can stop for
    the line comfortably after all."""
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    yellow = TrafficLightState(state="yellow", distance=-1.0, source="perception")
    unknown = replace(yellow, state="unknown")
    green = replace(yellow, state="green")
    lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=6.0),
                            comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    stop = lights.place(yellow, entry - 27.0, 0.0, speed=11.0)
    assert stop.state == "red" and stop.distance == pytest.approx(21.0)
    held = lights.place(unknown, entry - 20.0, 1.0, speed=11.0)  # braking late
    assert held.state == "red" and held.distance == pytest.approx(14.0)
    assert lights.place(green, entry - 15.0, 2.0, speed=6.0).state == "green"
    go = lights.place(yellow, entry - 15.0, 3.0, speed=11.0)
    assert go.state == "yellow" and go.distance == -1.0  # no stop point
    assert lights.place(yellow, entry - 12.0, 3.3, speed=11.0).distance == -1.0  # decided
    slowed = lights.place(yellow, entry - 10.0, 3.5, speed=6.0)  # 1.8 m/s^2 to the line
    assert slowed.state == "red" and slowed.distance >= 0.0


def test_a_yellow_driven_through_is_stopped_for_once_the_car_stopped_for_traffic(
        route_and_entries):
    """Town02 route 13: a yellow read 11 m before the entry at 8.8 m/s is driven
    through (a 4.6 m/s^2 stop); the car stopped anyway for traffic in the junction,
    4.3 m before the entry, under the head and blind to it, and the held yellow let
    it set off into the red. Stopped there, it can stop for the line: it waits."""
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    yellow = TrafficLightState(state="yellow", distance=-1.0, source="perception")
    unknown = replace(yellow, state="unknown")
    lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=6.0),
                            comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    assert lights.place(yellow, entry - 10.9, 0.0, speed=8.8).distance == -1.0
    # still too fast for the line at 8 m (6 m/s: 3.9 m/s^2): driven through
    assert lights.place(unknown, entry - 8.0, 0.5, speed=6.0).distance == -1.0
    wait = lights.place(unknown, entry - 4.3, 2.0, speed=0.0)
    # a stop where it stands: its front (``clearance_m`` ahead of its centre) there
    assert wait.state == "red" and wait.distance == pytest.approx(3.4)


def test_a_red_too_close_for_the_point_short_of_the_entry_is_stopped_for_at_it(
        route_and_entries):
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    red = TrafficLightState(state="red", distance=-1.0, source="perception")
    # 9 m short of the entry less 3.4 m of clearance at 11 m/s: 10.8 m/s^2; the entry
    for speed, where in ((11.0, 15.0), (5.0, 9.0)):
        lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=6.0),
                                comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
        assert lights.place(red, entry - 15.0, 0.0, speed=speed).distance == \
            pytest.approx(where)


def test_a_yellow_read_slowly_near_the_line_is_stopped_for_at_once_not_at_the_entry(
        route_and_entries):
    """Town01 route 4 starts 10 m before a light that turns yellow: read 9.2 m
    before the entry at 1.7 m/s, the point 6 m short of the entry is 3.2 m away,
    less than the 3.4 m clearance. It is stopped for as soon as the car can brake
    firmly (0.3 m on), where the head is still in view, not at the entry, where it
    is not (there the car waited blind, then drove into the red)."""
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    yellow = TrafficLightState(state="yellow", distance=-1.0, source="perception")
    lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=6.0),
                            comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    stop = lights.place(yellow, entry - 9.2, 0.0, speed=1.7)
    assert stop.state == "red"
    assert stop.distance == pytest.approx(3.4 + 1.7 ** 2 / 9.0)
    later = lights.place(yellow, entry - 9.0, 0.1, speed=1.0)  # decided: same point
    assert later.distance == pytest.approx(stop.distance - 0.2)


def test_a_read_too_close_to_the_entry_to_see_its_head_does_not_count(route_and_entries):
    """Town01 route 5: green read 7 m before the entry, then a crossing road's red,
    seen at an angle, 4.6 m before it. Inside ``blind_m`` a read is "unknown": the
    green stands (no stop point), as does a red read before (held)."""
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    green = TrafficLightState(state="green", distance=-1.0, source="perception")
    red = replace(green, state="red")
    lights = PerceivedLight(entries, PerceivedLightParams(blind_m=6.0))
    assert lights.place(green, entry - 7.0, 0.0, speed=2.0).state == "green"
    ignored = lights.place(red, entry - 4.6, 1.0, speed=3.5)
    assert ignored.state == "unknown" and ignored.distance == -1.0
    stop = lights.place(red, entry - 7.0, 2.0)  # another approach to the junction
    assert stop.state == "red"
    held = lights.place(green, entry - 5.0, 3.0)
    assert held.state == "red" and held.distance == pytest.approx(stop.distance - 2.0)


def test_a_red_is_held_through_unknown_reads_for_a_while_and_for_its_entry_only(
        route_and_entries):
    _, entries, _ = route_and_entries
    entry = entries.entries_m[0]
    red = TrafficLightState(state="red", distance=-1.0)
    unknown = TrafficLightState(state="unknown", distance=-1.0)
    green = TrafficLightState(state="green", distance=-1.0)
    lights = PerceivedLight(entries, PerceivedLightParams(view_back_m=4.0, hold_s=5.0))
    assert lights.place(red, entry - 10.0, 0.0).state == "red"
    held = lights.place(unknown, entry - 9.0, 3.0)
    assert held.state == "red" and held.distance == pytest.approx(5.0)
    assert lights.place(unknown, entry - 9.0, 5.5).state == "unknown"  # held too long
    assert lights.place(red, entry - 9.0, 6.0).state == "red"
    assert lights.place(green, entry - 9.0, 7.0).state == "green"
    assert lights.place(unknown, entry - 9.0, 7.5).state == "unknown"  # green ends it
    assert lights.place(red, entry - 9.0, 8.0).state == "red"
    assert lights.place(unknown, entry + 2.0, 8.5).state == "unknown"  # entry passed


def test_perceived_light_params_are_checked() -> None:
    with pytest.raises(ValueError, match="lookahead_m"):
        PerceivedLightParams(lookahead_m=0.0)
    with pytest.raises(ValueError, match="view_back_m"):
        PerceivedLightParams(view_back_m=-1.0)
    with pytest.raises(ValueError, match="blind_m"):
        PerceivedLightParams(blind_m=-1.0)
    with pytest.raises(ValueError, match="head_lost_m"):
        PerceivedLightParams(head_keep_m=-1.0)
    with pytest.raises(ValueError, match="yellow_margin_s"):
        PerceivedLightParams(yellow_s=-1.0)


def _along(route: np.ndarray, s_m: float, right_m: float = 0.0) -> tuple[float, float]:
    """The point ``s_m`` along ``route`` (m), ``right_m`` to the right of it."""
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(route, axis=0).T))])
    x, y = np.interp(s_m, s, route[:, 0]), np.interp(s_m, s, route[:, 1])
    k = min(int(np.searchsorted(s, s_m)), len(route) - 1)
    dx, dy = route[k] - route[k - 1]
    n = np.hypot(dx, dy)
    return float(x - dy / n * right_m), float(y + dx / n * right_m)  # CARLA: y right


def test_the_map_places_the_head_of_the_light_governing_an_entry(route_and_entries):
    """town_grid's heads stand 0.3 m before their entry; the entry's light is the one
    whose stop line the route crosses, not the crossing road's."""
    route, entries, carla_map = route_and_entries
    heads = map_signal_heads(carla_map)
    assert len(heads) == 40
    placed = JunctionEntries(carla_map, route, heads)
    assert placed.entries_m == entries.entries_m
    entry = entries.entries_m[0]
    assert entry - placed.head_of(entry) == pytest.approx(0.3, abs=0.2)
    assert entries.head_of(entry) is None  # no heads given: none known


def test_a_head_far_before_its_line_is_kept_in_view_and_read_only_while_in_view(
        route_and_entries):
    """Town02, leaderboard routes 13 and 15, light 18: its head stands 6.5 m before
    the entry, 2.7 m to the right. Stopped 6 m short of the entry the car stood
    3.2 m before the head, out of the camera's view, waited out the hold and drove
    into the red. Now it stops with its centre 8 m before the head (the stop point
    3.4 m of clearance ahead of that), and a read within 5 m of the head counts as
    "unknown"."""
    route, entries, carla_map = route_and_entries
    entry = entries.entries_m[0]
    head = SignalHead(_along(route, entry - 6.5, right_m=2.7), (_along(route, entry),))
    far = SignalHead(_along(route, entry - 20.0, right_m=2.7), ((0.0, 0.0),))  # not ours
    placed = JunctionEntries(carla_map, route, [head, far])
    assert entry - placed.head_of(entry) == pytest.approx(6.5, abs=0.05)
    red = TrafficLightState(state="red", distance=-1.0, source="perception")
    green = replace(red, state="green")
    lights = PerceivedLight(placed, PerceivedLightParams(view_back_m=6.0),
                            comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    stop = lights.place(red, entry - 50.0, 0.0, speed=8.0)
    assert stop.distance == pytest.approx(50.0 - 6.5 - 8.0 + 3.4, abs=0.05)
    # stopped there (centre 8 m before the head): the head's green is read
    assert lights.place(green, entry - 14.5, 30.0).state == "green"
    # within 5 m of the head (11.3 m from the entry) another head's green does not
    # count: the red stands, and its stop 0.2 m on
    lights.place(red, entry - 14.5, 31.0)
    held = lights.place(green, entry - 11.3, 32.0, speed=0.5)
    assert held.state == "red"
    assert held.distance == pytest.approx(11.3 - 6.5 - 8.0 + 3.4, abs=0.05)
    # Town01 route 4 starts 6.2 m before its head, 1.9 m before the entry: read
    head4 = SignalHead(_along(route, entry - 1.9, right_m=3.0), (_along(route, entry),))
    start4 = PerceivedLight(JunctionEntries(carla_map, route, [head4]),
                            PerceivedLightParams())
    assert start4.place(green, entry - 8.1, 0.0).state == "green"
    # without the map's head: 6 m short of the entry, as before
    plain = PerceivedLight(entries, PerceivedLightParams(view_back_m=6.0),
                           comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    assert plain.place(red, entry - 50.0, 0.0, speed=8.0).distance == pytest.approx(44.0)


def test_where_the_map_places_the_head_it_decides_with_the_entry_what_is_out_of_view(
        route_and_entries):
    """town_grid_route: stopped 7.5 m before an entry whose head stands 0.3 m before
    it, the car read the head's green right; inside ``blind_m`` of the entry it was
    ignored, and the held yellow ran out on the next red. 7.2 m before the head,
    the head is in view: the green counts. 5.5 m before it (and 5.8 m before the
    entry), it does not. Town01 routes 11 and 14: a head 4.4 m before its line is
    read 5.5 m before it, 9.9 m before the entry: the green counts."""
    route, entries, carla_map = route_and_entries
    placed = JunctionEntries(carla_map, route, map_signal_heads(carla_map))
    entry = entries.entries_m[0]
    yellow = TrafficLightState(state="yellow", distance=-1.0, source="perception")
    green = replace(yellow, state="green")
    lights = PerceivedLight(placed, PerceivedLightParams(),
                            comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
    assert lights.place(yellow, entry - 20.0, 0.0, speed=5.0).state == "red"
    assert lights.place(green, entry - 7.5, 40.0).state == "green"
    lights.place(yellow, entry - 7.5, 41.0)
    assert lights.place(green, entry - 5.8, 42.0, speed=1.0).state == "red"
    # without the map's heads the entry decides: 7.5 m is inside blind_m
    plain = PerceivedLight(entries, PerceivedLightParams())
    plain.place(yellow, entry - 20.0, 0.0, speed=5.0)
    assert plain.place(green, entry - 7.5, 40.0).state == "red"
    head14 = SignalHead(_along(route, entry - 4.4, right_m=2.7), (_along(route, entry),))
    route14 = PerceivedLight(JunctionEntries(carla_map, route, [head14]),
                             PerceivedLightParams())
    route14.place(yellow, entry - 20.0, 0.0, speed=5.0)
    assert route14.place(green, entry - 9.9, 40.0).state == "green"
    route14.place(yellow, entry - 9.9, 41.0)
    assert route14.place(green, entry - 9.3, 42.0).state == "red"  # 4.9 m: lost


def test_a_yellow_whose_stop_would_leave_the_head_out_of_view_is_cleared_in_time(
        route_and_entries):
    """Town02, leaderboard route 15, light 12 (head 6.5 m before the entry): the
    yellow read 13.9 m before the entry at 7.4 m/s, 0.05 s after a green read, was
    a 2.6 m/s^2 stop, but the soonest firm stop put the car's centre 1.3 m before
    the head, out of view; it waited there blind and set off on red when the hold
    ran out. Reaching the entry 1.9 s on (before the red, 3 s after the last
    green, less 0.5 s), the yellow is driven through. Not when the car would reach
    it too late, nor when no green was read for this entry (when the yellow began
    is not known), nor when the stop keeps the head in view."""
    route, entries, carla_map = route_and_entries
    entry = entries.entries_m[0]
    head = SignalHead(_along(route, entry - 6.5, right_m=2.7), (_along(route, entry),))
    placed = JunctionEntries(carla_map, route, [head])
    green = TrafficLightState(state="green", distance=-1.0, source="perception")
    yellow = replace(green, state="yellow")

    def light(first_green: bool = True) -> PerceivedLight:
        lights = PerceivedLight(placed, PerceivedLightParams(),
                                comfort_decel=3.0, firm_decel=4.5, clearance_m=3.4)
        if first_green:
            lights.place(green, entry - 14.3, 0.0, speed=7.4)
        return lights

    lights = light()
    go = lights.place(yellow, entry - 13.9, 0.05, speed=7.4)
    assert go.state == "yellow" and go.distance == -1.0
    assert lights.place(yellow, entry - 10.2, 0.55, speed=7.4).distance == -1.0
    # 5 m/s: 2.8 s to the entry, past 2.5 s: stopped for (blind, as before)
    late = light().place(yellow, entry - 13.9, 0.05, speed=5.0)
    assert late.state == "red" and late.distance >= 0.0
    assert light(first_green=False).place(yellow, entry - 13.9, 0.05,
                                          speed=7.4).state == "red"
    # 30 m out at 7.4 m/s the stop keeps the head in view: stopped for
    far = light().place(yellow, entry - 30.0, 0.05, speed=7.4)
    assert far.state == "red"
    assert far.distance == pytest.approx(30.0 - 6.5 - 8.0 + 3.4, abs=0.05)


def test_a_read_in_the_blind_zone_counts_when_its_lamp_is_where_the_map_puts_the_head(
        route_and_entries):
    """Town01, leaderboard route 4: the head stands 1.9 m before the entry, 3.0 m to
    the right; the route starts 10.4 m before the entry and the light turns yellow
    1.4 s in. Stopped 7.7 m before the entry, inside the blind zone, the car read
    the head's green right, ignored it, and set off through the red when the held
    yellow ran out. A lamp seen where the map puts the head (35 degrees right from
    the camera 1.5 m ahead of the centre) is that head's; one seen elsewhere, or
    without a bearing, is not."""
    from math import atan2, degrees

    from bus.messages import Rotation, Transform, Vector3

    route, entries, carla_map = route_and_entries
    entry = entries.entries_m[0]
    head = SignalHead(_along(route, entry - 1.9, right_m=3.0), (_along(route, entry),))
    placed = JunctionEntries(carla_map, route, [head])
    camera = Vector3(1.5, 0.0, 1.6)
    x, y = _along(route, entry - 7.7)
    pose = Transform(Vector3(x, y, 0.0), Rotation(yaw=0.0))  # town_grid's road runs east
    bearing = degrees(atan2(head.head_xy[1] - y, head.head_xy[0] - (x + 1.5)))
    assert bearing == pytest.approx(34.9, abs=0.2)
    yellow = TrafficLightState(state="yellow", distance=-1.0, source="perception",
                               lamp_seen=True, bearing=bearing + 1.0, origin=camera)

    def stopped_blind() -> PerceivedLight:
        lights = PerceivedLight(placed, PerceivedLightParams(), comfort_decel=3.0,
                                firm_decel=4.5, clearance_m=3.4)
        assert lights.place(yellow, entry - 9.2, 1.4, speed=2.0, pose=pose).state == "red"
        return lights

    green = replace(yellow, state="green", bearing=bearing - 2.5)
    assert stopped_blind().place(green, entry - 7.7, 37.0, pose=pose).state == "green"
    for elsewhere in (replace(green, bearing=bearing + 20.0),
                      replace(green, lamp_seen=False), green):
        lights = stopped_blind()
        got = lights.place(elsewhere, entry - 7.7, 37.0,
                           pose=None if elsewhere is green else pose)
        assert got.state == "red"  # the held yellow, stopped for
    # turned: the same lamp is then seen 30 degrees farther left
    turned = Transform(pose.location, Rotation(yaw=30.0))
    assert stopped_blind().place(green, entry - 7.7, 37.0, pose=turned).state == "red"
