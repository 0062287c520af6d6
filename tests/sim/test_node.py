"""The sim node on the in-process bus: lockstep with a controller, every topic
published per frame, the map latched, deadlines in strict and realtime modes; the
run scored and ended like the Leaderboard's, metrics.json written."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import ConfigError, DeadlineMissed, Executor, InProcessContext, Node
from bus.messages import (
    ControlCommand,
    EgoState,
    GroundTruth,
    Image,
    MapData,
    NodeStatus,
    RunEvent,
    VehicleControl,
)
from sim.node import SimNode
from sim.run_metrics import parse_progress

SCENARIO = """
map: town_grid
seed: 4
duration_s: {duration}
traffic: {{vehicles: 4, pedestrians: 3}}
cameras: [{{name: front, image_size_x: 160, image_size_y: 90}}]
lockstep: {{mode: {mode}, deadline_s: 0.5}}
"""


class Throttle(Node):
    """Answers each /ego/state with a ControlCommand for its frame (skipping some):
    ``throttle``, or full brake when it is 0. With ``report``, it also reports
    callback latencies of its own on /diagnostics, as a perception node would."""

    def __init__(self, name: str, skip: set[int] = frozenset(), throttle: float = 0.4,
                 report: bool = False, **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.skip, self.throttle, self.report = skip, throttle, report
        self.pub = self.create_publisher(ControlCommand, "/control/command")
        self.status = self.create_publisher(NodeStatus, "/diagnostics")
        self.create_subscription(EgoState, "/ego/state", self.on_state)

    def on_state(self, msg: EgoState) -> None:
        if self.report and msg.header.frame in (3, 6):
            self.status.publish(NodeStatus(header=msg.header, node="perception",
                                           latency_ms_p50=msg.header.frame,
                                           latency_ms_p99=10.0 + msg.header.frame,
                                           latency_ms_max=20.0, drops=1))
        if msg.header.frame not in self.skip:
            control = VehicleControl(throttle=self.throttle, brake=0.0 if self.throttle
                                     else 1.0)
            self.pub.publish(ControlCommand(header=msg.header, control=control))


class Tape(Node):
    def __init__(self, name: str, **kw) -> None:
        super().__init__(name, diagnostics=False, **kw)
        self.got: dict[str, list] = {}
        for msg_type, topic in ((EgoState, "/ego/state"), (Image, "/sensors/camera/front"),
                                (GroundTruth, "/sim/ground_truth"),
                                (MapData, "/map/opendrive"), (RunEvent, "/run/events"),
                                (NodeStatus, "/diagnostics")):
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
    # no route: no route score, the rest counted
    m = sim.metrics
    assert m["end_reason"] == "scenario_end" and m["driving_score"] is None
    assert m["route_completion"] is None and m["route_chords"] is None
    assert m["duration_s"] == pytest.approx(2.0) and m["ticks"] == 40
    assert m["infractions"]["counts"]["collision_vehicle"] == 0
    assert m["latency_ms"]["end_to_end"]["count"] == 40


@pytest.mark.parametrize("gt_first", [False, True])
def test_ego_state_first_then_cameras_and_ground_truth_in_the_asked_order(tmp_path, gt_first):
    """The images start the loop's critical path (perception); the ground truth goes
    after them, or before with ``ground_truth_first`` (the oracle's input)."""
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO.format(mode="strict", duration=0.2))
    ctx = InProcessContext()
    order: list[tuple[str, int]] = []
    tape = Node("order", context=ctx, diagnostics=False)
    for msg_type, topic in ((EgoState, "/ego/state"), (Image, "/sensors/camera/front"),
                            (GroundTruth, "/sim/ground_truth")):
        tape.create_subscription(msg_type, topic,
                                 lambda m, t=topic: order.append((t, m.header.frame)))
    sim = SimNode("sim", context=ctx, params={"scenario": str(f), "exit_when_done": False,
                                              "ground_truth_first": gt_first})
    ex = Executor(ctx, [tape, Throttle("control", context=ctx), sim])
    assert ex.spin_until(lambda: sim.done, timeout_s=60)
    ex.spin_once(0)
    middle = "/sim/ground_truth" if gt_first else "/sensors/camera/front"
    last = "/sensors/camera/front" if gt_first else "/sim/ground_truth"
    assert order == [(t, k) for k in range(4) for t in ("/ego/state", middle, last)]


def test_strict_mode_names_the_late_node(tmp_path):
    sim, _, ex = setup(tmp_path, skip={5})
    with pytest.raises(DeadlineMissed, match=r"frame 5 .* late node: control"):
        ex.spin_until(lambda: sim.done, timeout_s=120)


def test_realtime_mode_reuses_the_last_command_and_counts_the_miss(tmp_path):
    sim, tape, ex = setup(tmp_path, mode="realtime", duration=1.0, skip={5, 6})
    assert ex.spin_until(lambda: sim.done, timeout_s=120)
    assert sim.stats.deadline_misses == 2
    assert len(tape.got["/ego/state"]) == 20
    ex.spin_once(0)
    misses = [e for e in tape.got["/run/events"] if e.kind == "deadline_miss"]
    assert [e.header.frame for e in misses] == [5, 6]
    assert sim.metrics["deadline_misses"] == 2
    assert sim.metrics["latency_ms"]["end_to_end"]["count"] == 18


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


ROUTE_SCENARIO = """
map: town_grid
seed: 1
duration_s: 60
route: {{waypoints: [{route}]}}
cameras: [{{name: front, image_size_x: 64, image_size_y: 32}}]
{extra}
"""
#: 30 m eastbound on town_grid's inner road y = -100, clear of junctions
SHORT_ROUTE = "{x: 20.0, y: -98.25}, {x: 50.0, y: -98.25}"
METRICS_KEYS = {
    "driving_score", "route_completion", "infraction_penalty", "infractions", "duration_s",
    "distance_m", "ticks_per_s", "latency_ms", "deadline_misses", "scenario", "end_reason",
    "off_route_distance_m", "off_route_share", "route_length_m", "route_progress_m",
    "timeout_s", "comfort", "completed", "ticks", "sim_time_s", "wall_time_s",
    "route_chords", "error",
}


def drive_route(tmp_path: Path, throttle: float, route: str = SHORT_ROUTE, extra: str = "",
                params: dict | None = None, until=lambda sim: sim.done):
    """A SimNode on a route scenario writing to tmp_path/run, driven by a Throttle
    that also reports perception latencies; spun until ``until(sim)``."""
    f = tmp_path / "route.yaml"
    f.write_text(ROUTE_SCENARIO.format(route=route, extra=extra))
    ctx = InProcessContext()
    tape = Tape("tape", context=ctx)
    sim = SimNode("sim", context=ctx, params={
        "scenario": str(f), "exit_when_done": False, "out_dir": str(tmp_path / "run"),
        **(params or {})})
    ex = Executor(ctx, [tape, Throttle("control", throttle=throttle, report=True,
                                       context=ctx), sim])
    assert ex.spin_until(lambda: until(sim), timeout_s=120)
    ex.spin_once(0)
    return sim, tape, ex


def read_metrics(tmp_path: Path) -> dict:
    run = tmp_path / "run"
    assert [p.name for p in run.iterdir()] == ["metrics.json"]  # no temporary file left
    return json.loads((run / "metrics.json").read_text())


def test_a_driven_route_ends_completed_and_writes_the_metrics(tmp_path):
    sim, tape, ex = drive_route(tmp_path, throttle=1.0)
    kinds = [e.kind for e in tape.got["/run/events"]]
    assert kinds[-1] == "route_completed" and "scenario_end" not in kinds
    m = read_metrics(tmp_path)
    assert set(m) == METRICS_KEYS
    assert m["end_reason"] == "route_completed" and m["completed"] is True
    assert m["driving_score"] == 100.0 and m["route_completion"] == 100.0
    assert m["infraction_penalty"] == 1.0 and m["error"] is None
    assert m["route_length_m"] == pytest.approx(30.0, abs=0.01)
    assert 29.0 < m["distance_m"] < 40.0
    assert m["duration_s"] == pytest.approx(m["ticks"] * 0.05)
    assert m["timeout_s"] == 29.0  # int(0.8 s/m x 30 m + 5 s)
    assert m["ticks_per_s"] > 0 and m["route_chords"] == [] and m["deadline_misses"] == 0
    e2e = m["latency_ms"]["end_to_end"]
    assert e2e["count"] == m["ticks"] and 0 < e2e["p50"] <= e2e["p99"] <= e2e["max"]
    assert m["latency_ms"]["nodes"]["perception"] == {
        "p50": 4.5, "p99": 16.0, "max": 20.0, "reports": 2, "drops": 1, "deadline_misses": 0}
    assert m["scenario"] == {"name": "route", "source": str(tmp_path / "route.yaml"),
                             "map": "town_grid", "seed": 1, "route_id": "",
                             "duration_s": 60.0, "lockstep": "strict"}
    # the progress rides on the sim's /diagnostics message
    sim.publish_status()
    ex.spin_once(0)
    (status,) = [s for s in tape.got["/diagnostics"] if s.node == "sim"][-1:]
    progress = parse_progress(status.message)
    assert progress["route_pct"] == 100.0 and progress["duration_s"] == 60.0
    assert progress["distance_m"] == pytest.approx(m["distance_m"], abs=0.05)


def test_driving_on_where_the_route_turns_ends_as_route_deviation(tmp_path):
    # the route turns right at the junction (200, -100); the ego goes straight on
    sim, tape, _ = drive_route(
        tmp_path, throttle=0.6, route="{x: 150.0, y: -98.25}, {x: 198.25, y: -60.0}")
    assert tape.got["/run/events"][-1].kind == "route_deviation"
    m = read_metrics(tmp_path)
    assert m["end_reason"] == "route_deviation" and m["completed"] is False
    assert 0.0 < m["route_completion"] < 80.0
    assert sim.world.ego.x > 220.0  # past the junction, over 30 m from the route
    assert sim.world.monitor.route is sim.route.points  # measured from the traced route


def test_standing_still_ends_as_blocked_after_the_scenario_s_blocked_time(tmp_path):
    _, tape, _ = drive_route(tmp_path, throttle=0.0, extra="evaluation: {blocked_time_s: 1.0}")
    assert tape.got["/run/events"][-1].kind == "blocked"
    m = read_metrics(tmp_path)
    assert m["end_reason"] == "blocked" and m["infractions"]["counts"]["blocked"] == 1
    assert m["ticks"] == 21  # standing for more than 1 s after the start
    assert m["route_completion"] == 0.0


def test_a_run_stopped_early_writes_its_metrics_as_interrupted(tmp_path):
    _, _, ex = drive_route(tmp_path, throttle=0.3, until=lambda sim: sim.world.frame >= 5)
    ex.destroy()  # what the node process does on SIGINT/SIGTERM
    m = read_metrics(tmp_path)
    assert m["end_reason"] == "interrupted" and m["ticks"] >= 5
    assert 0.0 < m["route_completion"] < 100.0


def test_sigterm_writes_the_metrics_of_a_run_that_never_started(bus_env, tmp_path):
    """The node process: stopped while it waits for its listeners, exit status 0."""
    ctx_node = Node("control", diagnostics=False)
    ctx_node.create_publisher(ControlCommand, "/control/command")  # makes the sim ready
    ex = Executor(ctx_node.context, [ctx_node])
    r, w = os.pipe()
    params = {"scenario": "pedestrian_steps_out", "out_dir": str(tmp_path / "run")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.node_main", "--node", "sim.node:SimNode",
         "--name", "sim", "--params-json", json.dumps(params)],
        env={**os.environ, "DRIVESTACK_READY_FD": str(w)}, pass_fds=[w])
    os.close(w)
    try:
        deadline = time.monotonic() + 60
        while not select.select([r], [], [], 0)[0]:
            assert time.monotonic() < deadline and proc.poll() is None
            ex.spin_once(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(r)
        ex.destroy()
    m = read_metrics(tmp_path)
    assert m["end_reason"] == "interrupted" and m["ticks"] == 0
    assert m["scenario"]["name"] == "pedestrian_steps_out"
    assert m["route_length_m"] == pytest.approx(169.0, abs=1.0)


def test_a_leaderboard_route_given_as_parameters(tmp_path, shared_dir):
    sim, tape, _ = drive_route(tmp_path, throttle=0.4, params={
        "route_file": str(shared_dir / "routes" / "carla_lb1_town01_town02.xml"),
        "route_id": "1", "map_dir": str(shared_dir / "maps" / "carla"), "duration_s": 0.2})
    assert tape.got["/map/opendrive"][0].name == "Town01"
    m = read_metrics(tmp_path)
    assert m["end_reason"] == "scenario_end" and m["scenario"]["route_id"] == "1"
    assert m["scenario"]["map"] == "Town01"
    assert m["route_length_m"] == pytest.approx(sim.route.length_m())
    assert 1.0 < m["route_length_m"] / 737.0 < 1.1  # traced: longer than its chords
    assert m["timeout_s"] == int(0.8 * m["route_length_m"] + 5)


def test_a_route_file_drives_until_its_own_timeout_not_the_scenarios_duration(shared_dir):
    """town_grid_route's duration was made for its own route; a Leaderboard route in
    its place runs until the route ends, one tick past the route's timeout."""
    sim = SimNode("sim", context=InProcessContext(), params={
        "scenario": "town_grid_route", "exit_when_done": False,
        "route_file": str(shared_dir / "routes" / "carla_lb1_town01_town02.xml"),
        "route_id": "2", "map_dir": str(shared_dir / "maps" / "carla")})
    try:
        assert sim.evaluator.timeout_s > 400
        assert sim.scenario.duration_s == pytest.approx(sim.evaluator.timeout_s + 0.05)
    finally:
        sim.destroy()


def test_route_id_without_a_route_file_is_a_parameter_error():
    with pytest.raises(ConfigError, match="route_file and route_id"):
        SimNode("sim", context=InProcessContext(), params={"route_id": "3"})



def test_a_route_waypoint_off_the_lanes_names_the_scenario(tmp_path):
    f = tmp_path / "off.yaml"
    f.write_text(ROUTE_SCENARIO.format(route="{x: 20.0, y: -98.25}, {x: 50.0, y: -50.0}",
                                       extra=""))
    with pytest.raises(ValueError, match=f"^{f}: route waypoint 1 \\(50.0, -50.0\\): "
                                         r"4\d\.\d m from the nearest driving lane"):
        SimNode("sim", context=InProcessContext(), params={"scenario": str(f)})
