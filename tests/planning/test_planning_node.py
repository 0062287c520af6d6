"""The planning node on the in-process bus: one trajectory per frame, whatever order
a frame's inputs and the latched map arrive in; vehicles off the lanes ignored."""

from __future__ import annotations

import pytest

from bus import Executor, InProcessContext, Node
from bus.messages import (
    DetectedObject,
    EgoState,
    Header,
    MapData,
    ObjectList,
    Rotation,
    TrafficLightState,
    Trajectory,
    Transform,
    Vector3,
)
from bus.node import Publisher
from planning.node import PlanningNode
from sim.maps import load_map
from sim.spawn import spawn_points

#: on town_grid's straight road at y = -98.25, in the middle of the eastbound lane
EGO = EgoState(header=Header(0, 0.0),
               transform=Transform(Vector3(130.0, -98.25, 0.0), Rotation(0.0, 0.0, 0.0)),
               speed_limit=8.0)


def _ego(frame: int, tf: Transform) -> EgoState:
    return EgoState(header=Header(frame, 0.05 * frame), transform=tf, speed_limit=8.0)


def _planning_bus(params: dict | None = None
                  ) -> tuple[Executor, dict[str, Publisher], list[Trajectory]]:
    """A planning node on the in-process bus: the executor, publishers of its
    inputs, and the trajectories it publishes."""
    ctx = InProcessContext()
    tape = Node("tape", context=ctx, diagnostics=False)
    pubs = {t: tape.create_publisher(m, t) for t, m in (
        ("/ego/state", EgoState), ("/perception/objects", ObjectList),
        ("/perception/traffic_light", TrafficLightState), ("/map/opendrive", MapData))}
    out: list[Trajectory] = []
    tape.create_subscription(Trajectory, "/planning/trajectory", out.append)
    node = PlanningNode("planning", context=ctx, diagnostics=False, params=params or {})
    return Executor(ctx, [tape, node]), pubs, out


def test_a_frame_that_arrives_before_the_map_is_planned_when_the_map_comes() -> None:
    """Frame 0's inputs first, the map after (its own socket: seen under load in a
    Town02 route, which then missed its first deadline): frame 0 is still planned."""
    loaded = load_map("town_grid")
    spawn = spawn_points(loaded.map)[0]
    loc, rot = spawn.location, spawn.rotation
    tf = Transform(Vector3(loc.x, loc.y, 0.0), Rotation(0.0, rot.yaw, 0.0))
    ex, pubs, out = _planning_bus()
    header = Header(0, 0.0)
    pubs["/ego/state"].publish(_ego(0, tf))
    pubs["/perception/objects"].publish(ObjectList(header=header))
    pubs["/perception/traffic_light"].publish(TrafficLightState(header=header))
    ex.spin_until(lambda: False, timeout_s=0.2)
    assert out == []  # no map yet: nothing to plan on
    pubs["/map/opendrive"].publish(MapData(Header(0, 0.0), loaded.name, loaded.xodr))
    assert ex.spin_until(lambda: len(out) == 1, timeout_s=10)
    assert out[0].header.frame == 0 and len(out[0].poses) >= 2
    # later frames as usual, one trajectory each
    pubs["/ego/state"].publish(_ego(1, tf))
    pubs["/perception/objects"].publish(ObjectList(header=Header(1, 0.05)))
    pubs["/perception/traffic_light"].publish(TrafficLightState(header=Header(1, 0.05)))
    assert ex.spin_until(lambda: len(out) == 2, timeout_s=10)
    assert [t.header.frame for t in out] == [0, 1]
    ex.destroy()


@pytest.mark.parametrize("filtered", [True, False])
def test_the_node_drives_past_a_phantom_vehicle_on_the_verge(filtered: bool) -> None:
    """A false vehicle on the sidewalk 8 m ahead, its box reaching into the lane
    (planning.object_filter): the node drives on; with the filter off it stops
    behind it as behind a car."""
    loaded = load_map("town_grid")
    ex, pubs, out = _planning_bus({"object_filter": {"vehicles_on_lanes": filtered}})
    pubs["/map/opendrive"].publish(MapData(Header(0, 0.0), loaded.name, loaded.xodr))
    pubs["/ego/state"].publish(EGO)
    phantom = DetectedObject(track_id=1, label="vehicle", position=Vector3(8.0, 3.0, 0.75),
                             size=Vector3(4.6, 3.4, 1.5), yaw=45.0, confidence=0.9)
    pubs["/perception/objects"].publish(ObjectList(header=EGO.header, objects=[phantom]))
    pubs["/perception/traffic_light"].publish(TrafficLightState(header=EGO.header))
    assert ex.spin_until(lambda: len(out) == 1, timeout_s=10)
    ex.destroy()
    top_speed = max(out[0].speeds)
    if filtered:
        assert top_speed > 5.0  # on towards the speed limit
    else:
        assert top_speed < 2.0  # a stopped lead 3 m ahead: stand
