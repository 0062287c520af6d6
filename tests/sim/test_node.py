"""The sim node on the in-process bus: lockstep with a controller, every topic
published per frame, the map latched, deadlines in strict and realtime modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import DeadlineMissed, Executor, InProcessContext, Node
from bus.messages import (
    ControlCommand,
    EgoState,
    GroundTruth,
    Image,
    MapData,
    RunEvent,
    VehicleControl,
)
from sim.node import SimNode

SCENARIO = """
map: town_grid
seed: 4
duration_s: {duration}
traffic: {{vehicles: 4, pedestrians: 3}}
cameras: [{{name: front, image_size_x: 160, image_size_y: 90}}]
lockstep: {{mode: {mode}, deadline_s: 0.5}}
"""


class Throttle(Node):
    """Answers each /ego/state with a ControlCommand for its frame (skipping some)."""

    def __init__(self, name: str, skip: set[int] = frozenset(), **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.skip = skip
        self.pub = self.create_publisher(ControlCommand, "/control/command")
        self.create_subscription(EgoState, "/ego/state", self.on_state)

    def on_state(self, msg: EgoState) -> None:
        if msg.header.frame not in self.skip:
            self.pub.publish(ControlCommand(header=msg.header,
                                            control=VehicleControl(throttle=0.4)))


class Tape(Node):
    def __init__(self, name: str, **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.got: dict[str, list] = {}
        for msg_type, topic in ((EgoState, "/ego/state"), (Image, "/sensors/camera/front"),
                                (GroundTruth, "/sim/ground_truth"),
                                (MapData, "/map/opendrive"), (RunEvent, "/run/events")):
            self.got[topic] = []
            self.create_subscription(msg_type, topic, self.got[topic].append)


def setup(tmp_path: Path, mode: str = "strict", duration: float = 2.0, skip=frozenset()):
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO.format(mode=mode, duration=duration))
    ctx = InProcessContext()
    tape = Tape("tape", context=ctx)
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False})
    ctrl = Throttle("control", skip, context=ctx)
    return sim, tape, Executor(ctx, [tape, ctrl, sim])


def test_sim_runs_in_lockstep_and_publishes_every_frame(tmp_path):
    sim, tape, ex = setup(tmp_path)
    assert ex.spin_until(lambda: sim.done, timeout_s=120)
    ex.spin_once(0)  # deliver what the last tick published
    frames = [m.header.frame for m in tape.got["/ego/state"]]
    assert frames == list(range(40))  # 2 s at 20 Hz
    assert [m.header.frame for m in tape.got["/sensors/camera/front"]] == frames
    assert [m.header.frame for m in tape.got["/sim/ground_truth"]] == frames
    assert tape.got["/sensors/camera/front"][0].data.shape == (90, 160, 3)
    (map_msg,) = tape.got["/map/opendrive"]
    assert map_msg.name == "town_grid" and "<OpenDRIVE" in map_msg.opendrive
    last = tape.got["/ego/state"][-1]
    assert last.speed > 2.0 and last.control.throttle == 0.4
    assert last.header.stamp == pytest.approx(39 * 0.05)
    assert tape.got["/run/events"][-1].kind == "scenario_end"


def test_strict_mode_names_the_late_node(tmp_path):
    sim, _, ex = setup(tmp_path, skip={5})
    with pytest.raises(DeadlineMissed, match=r"frame 5 .* late node: control"):
        ex.spin_until(lambda: sim.done, timeout_s=120)


def test_realtime_mode_reuses_the_last_command_and_counts_the_miss(tmp_path):
    sim, tape, ex = setup(tmp_path, mode="realtime", duration=1.0, skip={5, 6})
    assert ex.spin_until(lambda: sim.done, timeout_s=120)
    assert sim.stats.deadline_misses == 2
    assert len(tape.got["/ego/state"]) == 20


def test_sim_drives_a_carla_leaderboard_route(tmp_path, shared_dir):
    routes = shared_dir / "routes" / "carla_lb1_town01_town02.xml"
    f = tmp_path / "lb.yaml"
    f.write_text(f"map_dir: {shared_dir / 'maps' / 'carla'}\n"
                 f"route: {{file: {routes}, id: '0'}}\nduration_s: 0.5\n"
                 "cameras: [{name: front, image_size_x: 160, image_size_y: 90}]\n")
    ctx = InProcessContext()
    tape = Tape("tape", context=ctx)
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False})
    ex = Executor(ctx, [tape, Throttle("control", context=ctx), sim])
    assert ex.spin_until(lambda: sim.done, timeout_s=60)
    ex.spin_once(0)
    assert tape.got["/map/opendrive"][0].name == "Town01"
    first = tape.got["/ego/state"][0].transform.location
    assert (first.x, first.y) == pytest.approx((338.70, 226.75), abs=0.01)
