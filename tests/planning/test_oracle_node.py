"""The oracle node with the sim node on the in-process bus: one ObjectList and one
TrafficLightState per sim frame."""

from __future__ import annotations

from bus import Executor, InProcessContext, Node
from bus.messages import (
    ControlCommand,
    EgoState,
    GroundTruth,
    Header,
    ObjectList,
    TrafficLightState,
)
from planning.oracle_node import OracleNode
from sim.node import SimNode


class Brake(Node):
    def __init__(self, name: str, **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.pub = self.create_publisher(ControlCommand, "/control/command")
        self.create_subscription(EgoState, "/ego/state",
                                 lambda m: self.pub.publish(ControlCommand(header=m.header)))


def test_oracle_publishes_per_frame(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("map: town_grid\nduration_s: 0.5\ntraffic: {vehicles: 5, pedestrians: 3}\n"
                 "cameras: [{name: front, image_size_x: 64, image_size_y: 32}]\n")
    ctx = InProcessContext()
    objs, lights = [], []
    tape = Node("tape", context=ctx, diagnostics=False)
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    tape.create_subscription(TrafficLightState, "/perception/traffic_light", lights.append)
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False})
    ex = Executor(ctx, [tape, OracleNode("oracle", context=ctx), Brake("control", context=ctx),
                        sim])
    assert ex.spin_until(lambda: sim.done, timeout_s=60)
    ex.spin_once(0)
    assert [o.header.frame for o in objs] == list(range(10))
    assert [t.header.frame for t in lights] == list(range(10))
    assert all(o.source == "oracle" for o in objs)
    assert any(o.objects for o in objs)


def test_a_frames_ground_truth_read_before_its_ego_state_is_still_answered():
    """Each topic has its own socket, so the oracle may read frame k's ground truth
    before its ego state although the simulator sent it second. The oracle once
    dropped such a frame, and at frame 0 the simulator waited for a command that
    never came (a two-route eval on a loaded machine)."""
    ctx = InProcessContext()
    feed = Node("sim", context=ctx, diagnostics=False)
    truth = feed.create_publisher(GroundTruth, "/sim/ground_truth")
    state = feed.create_publisher(EgoState, "/ego/state")
    objs: list[ObjectList] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    tape.create_subscription(ObjectList, "/perception/objects", objs.append)
    ex = Executor(ctx, [feed, OracleNode("oracle", context=ctx), tape])
    for frame in range(3):
        truth.publish(GroundTruth(header=Header(frame=frame)))
        ex.spin_once(0)
        state.publish(EgoState(header=Header(frame=frame)))
        ex.spin_once(0)
        ex.spin_once(0)
    assert [o.header.frame for o in objs] == [0, 1, 2]
