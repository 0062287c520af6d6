"""The control node: /ego/state and /planning/trajectory in, /control/command out.

For each sim frame k it waits until it has both the ego state and the trajectory of
frame k (the planner answers the same ego state), then publishes the command for
frame k: the simulator's lockstep waits for exactly that. Gains come from a YAML
file (``params_file``, default ``control/params/default.yaml``), validated at load.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Node
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
        self.ego: dict[int, EgoState] = {}
        self.trajectories: dict[int, Trajectory] = {}
        self.pub = self.create_publisher(ControlCommand, "/control/command")
        self.create_subscription(EgoState, "/ego/state", self.on_ego)
        self.create_subscription(Trajectory, "/planning/trajectory", self.on_trajectory)

    def on_ego(self, msg: EgoState) -> None:
        self.ego[msg.header.frame] = msg
        self._try(msg.header.frame)

    def on_trajectory(self, msg: Trajectory) -> None:
        self.trajectories[msg.header.frame] = msg
        self._try(msg.header.frame)

    def _try(self, frame: int) -> None:
        ego, traj = self.ego.get(frame), self.trajectories.get(frame)
        if ego is None or traj is None:
            return
        control = self.controller.step(ego, traj)
        self.pub.publish(ControlCommand(header=ego.header, control=control))
        # what is older than this frame can no longer be answered
        self.ego = {f: e for f, e in self.ego.items() if f > frame}
        self.trajectories = {f: t for f, t in self.trajectories.items() if f > frame}
