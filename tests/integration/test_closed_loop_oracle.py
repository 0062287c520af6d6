"""The whole loop on the in-process bus in oracle mode: sim -> oracle -> planning ->
control -> sim. The ego drives along its lane on town_grid, stops for what it must,
and never collides."""

from __future__ import annotations

import numpy as np

from bus import Executor, InProcessContext, Node
from bus.messages import EgoState, RunEvent
from control.node import ControlNode
from planning.node import PlanningNode
from planning.oracle_node import OracleNode
from sim.node import SimNode


def test_oracle_loop_drives_without_infractions(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("map: town_grid\nseed: 2\nduration_s: 30\n"
                 "traffic: {vehicles: 6, pedestrians: 4}\n"
                 "cameras: [{name: front, image_size_x: 64, image_size_y: 32}]\n")
    ctx = InProcessContext()
    states: list[EgoState] = []
    events: list[RunEvent] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    tape.create_subscription(EgoState, "/ego/state", states.append)
    tape.create_subscription(RunEvent, "/run/events", events.append)
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False})
    ex = Executor(ctx, [tape, OracleNode("oracle", context=ctx),
                        PlanningNode("planning", context=ctx, params={"scenario": str(f)}),
                        ControlNode("control", context=ctx), sim])
    assert ex.spin_until(lambda: sim.done, timeout_s=600)
    ex.spin_once(0)
    assert len(states) == 600
    odometer = sum(s.speed for s in states) * 0.05
    assert odometer > 50.0, odometer  # it drove (it also waits at a red light)
    kinds = [e.kind for e in events]
    assert not [k for k in kinds if k.startswith("collision") or k in ("red_light",
                                                                        "off_route")], kinds


def test_oracle_loop_passes_a_stopped_vehicle_on_the_highway(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("map: highway\nseed: 1\nduration_s: 25\n"
                 "events: [{kind: stopped_vehicle, at_time_s: 1.0, ahead_m: 70}]\n"
                 "cameras: [{name: front, image_size_x: 64, image_size_y: 32}]\n")
    ctx = InProcessContext()
    events: list[RunEvent] = []
    tape = Node("tape", context=ctx, diagnostics=False)
    tape.create_subscription(RunEvent, "/run/events", events.append)
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False})
    ex = Executor(ctx, [tape, OracleNode("oracle", context=ctx),
                        PlanningNode("planning", context=ctx, params={"scenario": str(f)}),
                        ControlNode("control", context=ctx), sim])
    assert ex.spin_until(lambda: sim.done, timeout_s=600)
    ex.spin_once(0)
    (blocker,) = [n for n in sim.world.traffic.npcs if n.stopped]
    ego = sim.world.ego
    yaw = np.radians(ego.yaw)
    ahead = (ego.x - blocker.x) * np.cos(yaw) + (ego.y - blocker.y) * np.sin(yaw)
    assert ahead > 20.0  # the ego is past the stopped vehicle
    assert not [e.kind for e in events if e.kind.startswith("collision")]
