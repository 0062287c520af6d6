"""The control node: /ego/state and /planning/trajectory in, /control/command out.

For each sim frame k it waits until it has both the ego state and the trajectory of
frame k (the planner answers the same ego state), then publishes the command for
frame k: the simulator's lockstep waits for exactly that. Gains come from a YAML
file (``params_file``, default ``control/params/default.yaml``), validated at load.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Node
from bus.join import FrameJoin
from bus.messages import ControlCommand, EgoState, Trajectory
from control.controller import DEFAULT_PARAMS, Controller, load_params


@dataclass
class ControlNodeParams:
    params_file: str = ""  # controller gains; empty: control/params/default.yaml


class ControlNode(Node):
    Params = ControlNodeParams

    def __init__(self, name: str = "control", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.controller = Controller(load_params(self.params.params_file or DEFAULT_PARAMS))
        self.inputs = FrameJoin(("ego", "trajectory"))
        self.pub = self.create_publisher(ControlCommand, "/control/command")
        self.create_subscription(EgoState, "/ego/state", self.on_ego)
        self.create_subscription(Trajectory, "/planning/trajectory", self.on_trajectory)

    def on_ego(self, msg: EgoState) -> None:
        self._try(self.inputs.add("ego", msg))

    def on_trajectory(self, msg: Trajectory) -> None:
        self._try(self.inputs.add("trajectory", msg))

    def _try(self, frame: int) -> None:
        if not self.inputs.complete(frame):
            return
        slot = self.inputs.take(frame)
        ego: EgoState = slot["ego"]
        control = self.controller.step(ego, slot["trajectory"])
        self.pub.publish(ControlCommand(header=ego.header, control=control))
