"""The simulator node: the embedded world on the bus, in lockstep with control, and
the run scored as the CARLA Leaderboard 1.0 scores it.

Each tick k it publishes /ego/state, /sensors/camera/<name> and /sim/ground_truth
for frame k, in that order (and /map/opendrive once, latched), waits for the /control/command of
frame k (``bus.lockstep``: strict fails naming the late node; realtime reuses the
last command, counts a miss and publishes a ``deadline_miss`` event), applies it,
steps the world to frame k+1 and publishes that tick's infractions on /run/events.

Evaluation. The scenario's route waypoints are traced along the lanes
(:func:`sim.routes.trace_route`), so route completion, the route timeout and the
30 m deviation check use the road driven, not chords between sparse waypoints. A
:class:`sim.evaluation.RouteEvaluator` gets the ego and the events every tick; the
end events it detects (route_completed, blocked, route_timeout) go out on
/run/events as well. The first end event ends the run: those, route_deviation, or
scenario_end at the scenario's duration. A scenario without a route has no route
completion or driving score (:class:`sim.run_metrics.FreeDriveEvaluator`) and ends
at its duration.

Measured besides: the end-to-end latency (wall time from publishing frame k's
camera images to receiving frame k's command), ticks per second (wall), deadline
misses, and every node's callback latencies as reported on /diagnostics. With
``out_dir`` set the node writes ``OUT_DIR/metrics.json`` when the run ends, and
also when it is stopped before (SIGINT/SIGTERM: end_reason ``interrupted``; a
failure such as a strict-mode deadline: ``error``). Its own /diagnostics message
carries the progress (:func:`sim.run_metrics.format_progress`).

It starts ticking once every topic in ``start_when_subscribed`` has that many
subscribers, so the first frames are not lost to nodes still connecting, and stops
when the run ends (``exit_when_done``: the process ends, and with it a launch whose
sim node is required).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import carla

from bus import FrameWaiter, Node
from bus.messages import (
    ControlCommand,
    EgoState,
    GroundTruth,
    Header,
    Image,
    MapData,
    NodeStatus,
    RunEvent,
    VehicleControl,
)
from bus.node import ShutdownRequested
from sim.evaluation import END_KINDS, RouteEvaluator
from sim.maps import load_map
from sim.routes import DenseRoute, trace_route
from sim.run_metrics import (
    FreeDriveEvaluator,
    NodeLatencies,
    format_progress,
    latency_summary,
    write_json_atomic,
)
from sim.scenario import Scenario, apply_overrides, load_scenario
from sim.scene import SceneRenderer
from sim.world import EGO_ID, MapSource, World

METRICS_FILE = "metrics.json"


@dataclass
class SimParams:
    # built-in scenario name or YAML path; empty: the defaults of sim.scenario.Scenario
    scenario: str = ""
    map: str = ""  # overrides the scenario's map (built-in name or .xodr path)
    seed: int = -1  # overrides the scenario's seed when >= 0
    # overrides the scenario's duration when > 0; a route file without it drives
    # until the route ends (the scenario's duration was meant for its own route)
    duration_s: float = 0.0
    mode: Literal["", "strict", "realtime"] = ""  # overrides the lockstep mode
    # a CARLA leaderboard route file and the id of the route in it to drive instead of
    # the scenario's route; its town is the map unless ``map`` is set
    route_file: str = ""
    route_id: str = ""
    map_dir: str = ""  # overrides the scenario's map_dir (where <town>.xodr is found)
    out_dir: str = ""  # when set: OUT_DIR/metrics.json at the end of the run
    # topic -> subscribers it must have before the first tick (a launch knows how
    # many nodes listen; frames published before they connect would be lost)
    start_when_subscribed: dict[str, int] = field(default_factory=lambda: {"/ego/state": 1})
    #: publish /sim/ground_truth before the cameras: with the oracle it, not the
    #: images, starts the loop's critical path (the oracle's objects for planning)
    ground_truth_first: bool = False
    exit_when_done: bool = True

    def __post_init__(self) -> None:
        if bool(self.route_file) != bool(self.route_id):
            raise ValueError("route_file and route_id: give both or neither")


def build_scenario(p: SimParams) -> Scenario:
    """The scenario the parameters name, their overrides applied, its route resolved."""
    scenario = load_scenario(p.scenario) if p.scenario else Scenario()
    return apply_overrides(scenario, map=p.map, map_dir=p.map_dir, route_file=p.route_file,
                           route_id=p.route_id, seed=p.seed if p.seed >= 0 else None,
                           duration_s=p.duration_s if p.duration_s > 0 else None,
                           mode=p.mode)


class SimNode(Node):
    """Runs a scenario's world, publishes it and scores the run (module docstring)."""

    Params = SimParams

    def __init__(self, name: str = "sim", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.scenario = build_scenario(self.params)
        loaded = load_map(self.scenario.map)
        self.world = World(self.scenario, MapSource(loaded.name, loaded.xodr, loaded.map))
        self._setup_evaluation(loaded.map)
        self.scene = SceneRenderer(self.world, self.scenario.cameras, self.scenario.weather,
                                   self.scenario.seed)
        self._setup_bus(loaded.name, loaded.xodr)

    def _setup_evaluation(self, carla_map: carla.Map) -> None:
        """The route traced on ``carla_map`` and the evaluator scoring it (a free
        drive without a route). Shared with the CARLA bridge's node
        (:mod:`sim.carla_bridge.node`), whose world has the same ``route`` and
        ``monitor`` attributes."""
        self.route: DenseRoute | None = None
        self.evaluator: RouteEvaluator | FreeDriveEvaluator = FreeDriveEvaluator(
            self.scenario.dt)
        if self.scenario.route.waypoints:
            p = self.params
            try:
                self.route = trace_route(carla_map, [(w.x, w.y) for w in
                                                     self.scenario.route.waypoints])
            except ValueError as exc:  # a waypoint off the map's lanes
                source = f"{p.route_file} route {p.route_id}" if p.route_file else \
                    p.scenario
                raise ValueError(f"{source}: {exc}") from None
            # The deviation check measures from the lanes to drive, like the score.
            self.world.route = self.world.monitor.route = self.route.points
            self.evaluator = RouteEvaluator(
                self.route.points, self.scenario.dt, ego_id=EGO_ID,
                blocked_time_s=self.scenario.evaluation.blocked_time_s)
            if self.scenario.duration_s == 0:  # until the route ends: one tick past
                # its timeout, so the timeout, not the duration, ends the run
                self.scenario.duration_s = self.evaluator.timeout_s + self.scenario.dt

    def _setup_bus(self, map_name: str, opendrive: str) -> None:
        """Publishers, the lockstep command waiter, the latched map and the tick
        timer (shared with the CARLA bridge's node)."""
        self.map_pub = self.create_publisher(MapData, "/map/opendrive")
        self.ego_pub = self.create_publisher(EgoState, "/ego/state")
        self.gt_pub = self.create_publisher(GroundTruth, "/sim/ground_truth")
        self.event_pub = self.create_publisher(RunEvent, "/run/events")
        self.camera_pubs = {c.name: self.create_publisher(Image, f"/sensors/camera/{c.name}")
                            for c in self.scenario.cameras}
        lock = self.scenario.lockstep
        self.commands = FrameWaiter(self, ControlCommand, "/control/command",
                                    deadline_s=lock.deadline_s, mode=lock.mode,
                                    first_deadline_s=lock.first_deadline_s)
        self.node_latencies = NodeLatencies()
        self.create_subscription(NodeStatus, "/diagnostics", self.node_latencies.add)
        self.map_pub.publish(MapData(Header(0, 0.0), map_name, opendrive))
        self.started = False
        self.done = False
        self.ticks_per_s = 0.0
        self.end_to_end_ms: list[float] = []  # per frame answered in time
        self.metrics: dict[str, Any] | None = None  # set when the run ends
        self._error = ""
        self._t_start = 0.0
        period = self.scenario.dt if lock.mode == "realtime" else 1e-4
        self.create_timer(period, self.tick)

    def status_header(self) -> Header:
        return self.world.header()

    def publish_status(self, message: str = "") -> None:
        """/diagnostics, with the run's progress as the message."""
        super().publish_status(message or format_progress(
            self.world.time, self.scenario.duration_s, self.evaluator.distance_m,
            self.evaluator.route_completion, self.ticks_per_s))

    def _may_start(self) -> bool:
        return self.subscribed(self.params.start_when_subscribed)

    def tick(self) -> None:
        """Publish frame k, wait for its command, step to k+1, score the tick."""
        if self.done:
            return
        if not self.started:
            if not self._may_start():
                return
            self.started, self._t_start = True, time.monotonic()
            self.state = "running"
            self._evaluate([])  # the start (frame 0): where the run's time and path begin
        if not self.done:
            try:
                self._step()
            except ShutdownRequested:
                raise
            except Exception as exc:
                self._error = f"{type(exc).__name__}: {exc}"
                self._finish("error")
                raise
        if self.done and self.params.exit_when_done and self.executor is not None:
            self.executor.shutdown()

    def _step(self) -> None:
        """One tick. The node's latency on /diagnostics is its own work in it
        (render, publish, step, score), not the wait for the command.

        The ego state goes out first (perception reads the latest one at an image's
        frame), then the images, which start the loop's critical path (perception,
        planning, control, and back); the ground truth is built and published after
        them, while the others work: its readers (recorder, evaluation, the oracle,
        which pairs it with /ego/state by frame) only need it within the frame. With
        the oracle (``ground_truth_first``) the ground truth goes before the images:
        it is what the oracle's objects, and so planning, wait for."""
        t0 = time.perf_counter()
        world = self.world
        frame = world.frame
        self.ego_pub.publish(world.ego_state())
        gt_first = self.params.ground_truth_first
        if self.scenario.ground_truth and gt_first:
            self.gt_pub.publish(world.ground_truth())
        images = self.scene.render(world)
        sent = time.perf_counter()
        for name, image in images.items():
            self.camera_pubs[name].publish(image)
        if self.scenario.ground_truth and not gt_first:
            self.gt_pub.publish(world.ground_truth())
        published = time.perf_counter()
        misses = self.commands.misses
        command = self.commands.wait(frame)
        answered = time.perf_counter()
        events: list[RunEvent] = []
        if self.commands.misses > misses:
            deadline = self.commands.deadline_s
            events.append(RunEvent(
                header=world.header(), kind="deadline_miss", actor_id=EGO_ID, value=deadline,
                description=f"no {self.commands.topic} for frame {frame} within "
                            f"{deadline:g} s: the last command was applied again"))
        else:
            self.end_to_end_ms.append((answered - sent) * 1e3)
        control = command.control if command is not None else VehicleControl()
        events += world.step(control)
        elapsed = time.monotonic() - self._t_start
        self.ticks_per_s = world.frame / elapsed if elapsed > 0 else 0.0
        # At the duration the run ends, unless this tick ended it already (a tie
        # with an end the evaluator detects goes to the duration).
        if (world.time >= self.scenario.duration_s - 1e-9
                and not any(e.kind in END_KINDS for e in events)):
            events.append(RunEvent(
                header=world.header(), kind="scenario_end", actor_id=EGO_ID,
                value=world.time, description=f"{self.scenario.duration_s:g} s simulated"))
        self._evaluate(events)
        self.stats.record_latency((published - t0) + (time.perf_counter() - answered))

    def _evaluate(self, events: list[RunEvent]) -> None:
        """Score the world as it is now with this tick's events; publish them and any
        end the evaluator detects; the first end event ends the run."""
        # The monitor knows whether the ego is outside its lanes now; its off_route
        # event only marks where that starts, and the score needs the whole stretch.
        off_route = self.world.monitor.off_route
        ends = self.evaluator.update_ego(self.world.ego_state(), events, off_route=off_route)
        for event in [*events, *ends]:
            self.event_pub.publish(event)
        if self.evaluator.ended:
            self._finish(self.evaluator.end_reason or "")

    def _finish(self, reason: str) -> None:
        """The run is over (``reason``: its end event, or interrupted / error): keep
        the metrics, write them when ``out_dir`` is set, and log the result."""
        self.done = True
        self.metrics = self.run_metrics(reason)
        if self.params.out_dir:
            write_json_atomic(Path(self.params.out_dir) / METRICS_FILE, self.metrics)
        m = self.metrics

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        self.get_logger().info(
            "run ended (%s): %d ticks, %.1f s simulated, %.1f ticks/s; DS %s, RC %s, "
            "IP %.2f", m["end_reason"], self.world.frame, self.world.time, self.ticks_per_s,
            pct(m["driving_score"]), pct(m["route_completion"]), m["infraction_penalty"])

    def run_metrics(self, reason: str) -> dict[str, Any]:
        """What metrics.json holds: the evaluator's metrics plus ticks, wall time,
        latencies and the scenario; ``reason`` is the end reason when the evaluator
        saw no end event (interrupted, error)."""
        sc = self.scenario
        wall = time.monotonic() - self._t_start if self.started else 0.0
        out = self.evaluator.metrics(extra={
            "ticks": self.world.frame,
            "sim_time_s": self.world.time,
            "wall_time_s": wall,
            "ticks_per_s": self.ticks_per_s,
            "latency_ms": {"end_to_end": latency_summary(self.end_to_end_ms),
                           "nodes": self.node_latencies.summary()},
            "scenario": {"name": sc.name, "source": self.params.scenario,
                         "map": self.world.map_name, "seed": sc.seed, "route_id": sc.route.id,
                         "duration_s": sc.duration_s, "lockstep": sc.lockstep.mode},
            "route_chords": None if self.route is None else list(self.route.chords),
            "error": self._error or None,
        })
        out["end_reason"] = out["end_reason"] or reason
        return out

    def destroy(self) -> None:
        """Stopped before the run ended (SIGINT/SIGTERM, or torn down): the metrics
        so far are still written, as an interrupted run."""
        if not self.done:
            self._finish("interrupted")
        super().destroy()
