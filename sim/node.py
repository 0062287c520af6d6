"""The simulator node: the embedded world on the bus, in lockstep with control.

Each tick k it publishes /ego/state, /sensors/camera/<name> and /sim/ground_truth
for frame k (and /map/opendrive once, latched), waits for the /control/command of
frame k (``bus.lockstep``: strict fails naming the late node; realtime reuses the
last command and counts a miss), applies it, steps the world to frame k+1 and
publishes that tick's infractions on /run/events.

It starts ticking once every topic in ``start_when_subscribed`` has that many
subscribers, so the first frames are not lost to nodes still connecting, and stops
after the scenario's duration (``exit_when_done``: the process ends, and with it a
launch whose sim node is required).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from bus import FrameWaiter, Node
from bus.messages import (
    ControlCommand,
    EgoState,
    GroundTruth,
    Header,
    Image,
    MapData,
    RunEvent,
    VehicleControl,
)
from sim.maps import load_map
from sim.scenario import Scenario, load_scenario, resolve_route
from sim.scene import SceneRenderer
from sim.world import MapSource, World


@dataclass
class SimParams:
    scenario: str = ""  # scenario YAML; empty: the defaults of sim.scenario.Scenario
    map: str = ""  # overrides the scenario's map (built-in name or .xodr path)
    seed: int = -1  # overrides the scenario's seed when >= 0
    duration_s: float = 0.0  # overrides the scenario's duration when > 0
    mode: Literal["", "strict", "realtime"] = ""  # overrides the lockstep mode
    # topic -> subscribers it must have before the first tick (a launch knows how
    # many nodes listen; frames published before they connect would be lost)
    start_when_subscribed: dict[str, int] = field(default_factory=lambda: {"/ego/state": 1})
    exit_when_done: bool = True


def build_scenario(p: SimParams) -> Scenario:
    scenario = load_scenario(p.scenario) if p.scenario else Scenario()
    if p.map:
        scenario.map = p.map
    if p.seed >= 0:
        scenario.seed = p.seed
    if p.duration_s > 0:
        scenario.duration_s = p.duration_s
    if p.mode:
        scenario.lockstep.mode = p.mode
    return resolve_route(scenario)


class SimNode(Node):
    """Runs a scenario's world and publishes it (see the module docstring)."""

    Params = SimParams

    def __init__(self, name: str = "sim", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.scenario = build_scenario(self.params)
        loaded = load_map(self.scenario.map)
        self.world = World(self.scenario, MapSource(loaded.name, loaded.xodr, loaded.map))
        self.scene = SceneRenderer(self.world, self.scenario.cameras, self.scenario.weather,
                                   self.scenario.seed)
        self.map_pub = self.create_publisher(MapData, "/map/opendrive")
        self.ego_pub = self.create_publisher(EgoState, "/ego/state")
        self.gt_pub = self.create_publisher(GroundTruth, "/sim/ground_truth")
        self.event_pub = self.create_publisher(RunEvent, "/run/events")
        self.camera_pubs = {c.name: self.create_publisher(Image, f"/sensors/camera/{c.name}")
                            for c in self.scenario.cameras}
        lock = self.scenario.lockstep
        self.commands = FrameWaiter(self, ControlCommand, "/control/command",
                                    deadline_s=lock.deadline_s, mode=lock.mode)
        self.map_pub.publish(MapData(Header(0, 0.0), loaded.name, loaded.xodr))
        self.started = False
        self.done = False
        self.ticks_per_s = 0.0
        self._t_start = 0.0
        period = self.scenario.dt if lock.mode == "realtime" else 1e-4
        self.create_timer(period, self.tick)

    def status_header(self) -> Header:
        return self.world.header()

    def _may_start(self) -> bool:
        want = self.params.start_when_subscribed
        return all(pub.subscription_count >= want[pub.topic] for pub in self.publishers
                   if pub.topic in want)

    def tick(self) -> None:
        """Publish frame k, wait for its command, step to k+1."""
        if self.done:
            return
        if not self.started:
            if not self._may_start():
                return
            self.started, self._t_start = True, time.monotonic()
            self.state = "running"
        world = self.world
        frame = world.frame
        self.ego_pub.publish(world.ego_state())
        if self.scenario.ground_truth:
            self.gt_pub.publish(world.ground_truth())
        for name, image in self.scene.render(world).items():
            self.camera_pubs[name].publish(image)
        command = self.commands.wait(frame)
        control = command.control if command is not None else VehicleControl()
        for event in world.step(control):
            self.event_pub.publish(event)
        elapsed = time.monotonic() - self._t_start
        self.ticks_per_s = world.frame / elapsed if elapsed > 0 else 0.0
        if world.time >= self.scenario.duration_s - 1e-9:
            self.done = True
            self.event_pub.publish(RunEvent(
                header=world.header(), kind="scenario_end", actor_id=1,
                value=world.time, description=f"{self.scenario.duration_s:g} s simulated"))
            self.get_logger().info("scenario done: %d ticks, %.1f ticks/s", world.frame,
                                   self.ticks_per_s)
            if self.params.exit_when_done and self.executor is not None:
                self.executor.shutdown()
