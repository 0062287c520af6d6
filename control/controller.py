"""The vehicle controller: an ego state and a Trajectory in, a VehicleControl out.

It tracks the trajectory's path and its speed profile by arc length (not by time):
the ego is projected onto the polyline, the lateral law steers onto the path, and
the longitudinal controller follows the profile's speed at the projection, with the
profile's acceleration a short preview ahead as feed-forward (to cover the one-step
actuation delay and the pedal ramps). The
trajectory's ``times`` are not used; a planner that replans every tick keeps them
consistent with the speeds anyway.

Frames: world frame of ``bus.messages`` (metres, yaw degrees, positive right).
Output: CARLA ``VehicleControl`` (throttle/brake 0..1, steer -1..1 positive right),
steer = road-wheel angle / ``max_steer_deg``, rate-limited per step like CARLA's
agents (``steer_rate``, 0.1 per tick).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.config import load_yaml
from bus.messages import Trajectory, VehicleControl
from control.lateral import LateralController, LateralParams, TrackPath, VehicleGeometry
from control.longitudinal import LongitudinalController, LongitudinalParams, rate_limit

#: Shipped parameters.
DEFAULT_PARAMS = Path(__file__).resolve().parent / "params" / "default.yaml"


@dataclass(frozen=True, slots=True)
class ControllerParams:
    """All controller parameters (``control/params/default.yaml``)."""

    dt: float = 0.05  #: control period, s (the sim's fixed step)
    steer_rate: float = 0.1  #: largest steer change per step (CARLA agents: 0.1)
    max_steer: float = 1.0  #: |steer| limit, 0..1
    vehicle: VehicleGeometry = field(default_factory=VehicleGeometry)
    longitudinal: LongitudinalParams = field(default_factory=LongitudinalParams)
    lateral: LateralParams = field(default_factory=LateralParams)

    def __post_init__(self) -> None:
        if not self.dt > 0:
            raise ValueError(f"dt > 0, got {self.dt!r}")
        if not 0 < self.steer_rate <= 2:
            raise ValueError(f"steer_rate in (0, 2], got {self.steer_rate!r}")
        if not 0 < self.max_steer <= 1:
            raise ValueError(f"max_steer in (0, 1], got {self.max_steer!r}")


def load_params(path: str | Path = DEFAULT_PARAMS) -> ControllerParams:
    """Load and validate controller parameters; errors are ``bus.config.ConfigError``
    naming the file and key."""
    return load_yaml(ControllerParams, path)


@dataclass(frozen=True, slots=True)
class EgoPose:
    """What the controller reads of the ego: origin position (m), yaw (deg), speed
    (m/s), world frame."""

    x: float
    y: float
    yaw: float
    speed: float

    @staticmethod
    def of(ego: Any) -> EgoPose:
        """From a ``bus.messages.EgoState`` (``transform``) or anything with ``x``,
        ``y``, ``yaw``, ``speed`` (e.g. ``sim.dynamics.VehicleState``)."""
        transform = getattr(ego, "transform", None)
        if transform is not None:
            loc, rot = transform.location, transform.rotation
            return EgoPose(loc.x, loc.y, rot.yaw, ego.speed)
        return EgoPose(ego.x, ego.y, ego.yaw, ego.speed)


class Controller:
    """Lateral + longitudinal control with rate limits; one :meth:`step` per tick."""

    def __init__(self, params: ControllerParams | None = None) -> None:
        self.params = params if params is not None else load_params()
        self.longitudinal = LongitudinalController(self.params.longitudinal)
        self.lateral = LateralController(self.params.lateral, self.params.vehicle,
                                         self.params.dt)
        self._path: TrackPath | None = None
        self._path_source: Trajectory | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the integrator and the last command (e.g. at a new episode)."""
        self.longitudinal.reset()
        self.steer = 0.0

    def path_of(self, trajectory: Trajectory) -> TrackPath:
        """The trajectory's TrackPath, rebuilt only when a new trajectory arrives."""
        if trajectory is not self._path_source or self._path is None:
            self._path = TrackPath(trajectory.poses, trajectory.speeds)
            self._path_source = trajectory
        return self._path

    def step(self, ego: Any, trajectory: Trajectory) -> VehicleControl:
        """The command for this tick. ``ego``: EgoState or VehicleState-like."""
        p = self.params
        pose = EgoPose.of(ego)
        if trajectory.poses.shape[0] < 2:  # nothing to follow: stop where we are
            throttle, brake = self.longitudinal.step(pose.speed, 0.0, 0.0, p.dt)
            return VehicleControl(throttle=throttle, steer=self.steer, brake=brake)
        path = self.path_of(trajectory)
        yaw = math.radians(pose.yaw)

        # Longitudinal: the profile's speed at the ego's projection, and its
        # acceleration a short preview ahead (the pedals act one step late and ramp).
        # The smaller of the two accelerations, so a preview that runs past the end
        # of a braking ramp (onto the standstill part) does not release the brake.
        here = path.project(pose.x, pose.y)
        s_preview = here.s + abs(pose.speed) * p.longitudinal.preview_time
        accel_ff = min(path.accel_at(here.s), path.accel_at(s_preview))
        throttle, brake = self.longitudinal.step(
            pose.speed, path.speed_at(here.s), accel_ff, p.dt)

        # Lateral: road-wheel angle -> normalised steer, then limits.
        wheel = self.lateral.step(path, pose.x, pose.y, yaw, pose.speed)
        steer = math.degrees(wheel) / p.vehicle.max_steer_deg
        steer = rate_limit(steer, self.steer, p.steer_rate)
        self.steer = min(max(steer, -p.max_steer), p.max_steer)
        return VehicleControl(throttle=throttle, steer=self.steer, brake=brake)
