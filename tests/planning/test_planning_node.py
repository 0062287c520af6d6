"""The planning node on the in-process bus: one trajectory per frame, whatever order
a frame's inputs and the latched map arrive in."""

from __future__ import annotations

from bus import Executor, InProcessContext, Node
from bus.messages import (
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
from planning.node import PlanningNode
from sim.maps import load_map
from sim.spawn import spawn_points


def _ego(frame: int, tf: Transform) -> EgoState:
    return EgoState(header=Header(frame, 0.05 * frame), transform=tf, speed_limit=8.0)


def test_a_frame_that_arrives_before_the_map_is_planned_when_the_map_comes() -> None:
    """Frame 0's inputs first, the map after (its own socket: seen under load in a
    Town02 route, which then missed its first deadline): frame 0 is still planned."""
    loaded = load_map("town_grid")
    spawn = spawn_points(loaded.map)[0]
    loc, rot = spawn.location, spawn.rotation
    tf = Transform(Vector3(loc.x, loc.y, 0.0), Rotation(0.0, rot.yaw, 0.0))
    ctx = InProcessContext()
    tape = Node("tape", context=ctx, diagnostics=False)
    pubs = {t: tape.create_publisher(m, t) for t, m in (
        ("/ego/state", EgoState), ("/perception/objects", ObjectList),
        ("/perception/traffic_light", TrafficLightState), ("/map/opendrive", MapData))}
    out: list[Trajectory] = []
    tape.create_subscription(Trajectory, "/planning/trajectory", out.append)
    node = PlanningNode("planning", context=ctx, diagnostics=False)
    ex = Executor(ctx, [tape, node])
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
