"""Longitudinal control: a speed PID with acceleration feed-forward, anti-windup,
a calibrated pedal map and pedal rate limits.

Units: speeds m/s, accelerations m/s^2 (positive speeding up), pedals 0..1 as in
CARLA's ``VehicleControl``. One :meth:`LongitudinalController.step` per sim tick.

The algorithm, top to bottom:

1. Speed error ``e = v_target - v``.
2. Acceleration command ``a = a_ff + kp e + ki integral(e) + kd de/dt``, clamped to
   ``[-decel_limit, accel_limit]``. ``a_ff`` is the acceleration the planner's speed
   profile asks for, so the PID only corrects model error and disturbances.
3. Anti-windup by conditional integration (clamping): the integral is not advanced
   while the command is saturated and the error would push it further into
   saturation; it is also bounded by ``integral_limit``.
4. Inverse vehicle response (:class:`PedalMap`): the throttle that gives ``a`` at the
   current speed comes from a table measured offline on ``sim.dynamics``'s default car
   (steady-state acceleration per throttle and speed, gear settled); below the
   coasting acceleration the service brake supplies the rest, ``brake =
   (a_coast - a) / brake_decel``. A deadband below the coasting line uses neither
   pedal, so the controller does not flicker between throttle and brake.
5. Standstill hold: when the target is (near) zero, the profile does not set off
   (no positive acceleration) and the car is nearly stopped, hold a fixed brake so
   it stays put. At a standstill the integral is cleared, holding or setting off:
   what it gathered while the car was moving is not the car at rest, and a
   negative one from braking (the speed above the profile's on the way down)
   would cancel the profile's set-off acceleration for good, since the speed error
   at a standstill on a profile that starts at zero is zero and never moves it
   (Town01, leaderboard route 10: stopped hard for an object that vanished as the
   car came to rest, the car stood 60 s with 0.001 throttle on a profile asking
   for 0.7 m/s^2). While the car still rolls the brake moves to the hold at only
   ``hold_rate`` per step: the planner's profile releases the brake as the car
   comes to rest, and pressing it then would stop the car with a jolt (its
   deceleration drops to zero in one step at the moment it stops).
6. Rate limits on each pedal (change per step), then the pedal limits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class PedalMapParams:
    """Steady-state acceleration table of the vehicle (m/s^2) at ``throttles`` x
    ``speeds`` with the brake released: ``accel[i][j]`` at ``throttles[i]`` and
    ``speeds[j]`` (m/s). Row 0 (throttle 0) is the coasting line. ``brake_decel`` is the
    extra deceleration at brake = 1 (m/s^2).

    The shipped numbers were measured on ``sim.dynamics.load_vehicle("default_car")``
    by holding each (throttle, speed) for 0.5 s (gear settles) and reading the next
    step's acceleration; re-measure them for another vehicle. The table need not be
    exact: the PID absorbs what it misses.
    """

    speeds: tuple[float, ...]
    throttles: tuple[float, ...]
    accel: tuple[tuple[float, ...], ...]
    brake_decel: float = 8.0

    def __post_init__(self) -> None:
        if len(self.speeds) < 2 or any(b <= a for a, b in itertools.pairwise(self.speeds)):
            raise ValueError("speeds: at least two, strictly increasing")
        if (len(self.throttles) < 2 or self.throttles[0] != 0.0
                or any(b <= a for a, b in itertools.pairwise(self.throttles))):
            raise ValueError("throttles: strictly increasing, starting at 0")
        if len(self.accel) != len(self.throttles) or any(
                len(row) != len(self.speeds) for row in self.accel):
            raise ValueError("accel: one row per throttle, one column per speed")
        if not self.brake_decel > 0:
            raise ValueError(f"brake_decel > 0, got {self.brake_decel!r}")


class PedalMap:
    """The inverse of the vehicle's longitudinal response: acceleration -> pedals."""

    def __init__(self, params: PedalMapParams) -> None:
        self.params = params
        self._speeds = np.asarray(params.speeds, dtype=float)
        self._throttles = np.asarray(params.throttles, dtype=float)
        # Rows must rise with throttle for the inverse to exist; enforce it.
        self._accel = np.maximum.accumulate(np.asarray(params.accel, dtype=float), axis=0)

    def coast_accel(self, speed: float) -> float:
        """Acceleration (m/s^2, <= 0) with both pedals released at ``speed``."""
        return float(np.interp(speed, self._speeds, self._accel[0]))

    def throttle_for(self, accel: float, speed: float) -> float:
        """Throttle 0..1 that gives ``accel`` at ``speed`` (0 at or below coasting)."""
        column = [float(np.interp(speed, self._speeds, row)) for row in self._accel]
        return float(np.interp(accel, column, self._throttles))

    def brake_for(self, accel: float, speed: float) -> float:
        """Brake 0..1 (unclipped above 1) that gives ``accel`` below coasting."""
        return max(self.coast_accel(speed) - accel, 0.0) / self.params.brake_decel


@dataclass(frozen=True, slots=True)
class LongitudinalParams:
    """Gains and limits of the speed controller (SI units; rates per control step)."""

    kp: float = 1.0  #: m/s^2 per m/s of speed error
    ki: float = 0.1  #: m/s^2 per (m/s * s)
    kd: float = 0.0  #: m/s^2 per m/s^2
    integral_limit: float = 10.0  #: |integral of error| bound, m
    accel_limit: float = 3.0  #: largest commanded acceleration, m/s^2
    decel_limit: float = 8.0  #: largest commanded deceleration, m/s^2 (positive)
    deadband: float = 0.15  #: m/s^2 below coasting where neither pedal is pressed
    preview_time: float = 0.2  #: s ahead along the profile for the feed-forward acceleration
    max_throttle: float = 0.75  #: CARLA agents' limit
    max_brake: float = 1.0
    throttle_rate: float = 0.1  #: largest throttle change per step
    brake_rate: float = 0.2  #: largest brake change per step
    stop_speed: float = 0.1  #: target speed (m/s) below which the car should stand
    hold_speed: float = 0.5  #: actual speed (m/s) below which standstill hold engages
    hold_brake: float = 0.3  #: brake held at standstill
    hold_rate: float = 0.01  #: largest brake change per step towards the hold while rolling
    pedal_map: PedalMapParams = field(default_factory=lambda: DEFAULT_PEDAL_MAP)

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "integral_limit", "accel_limit", "decel_limit",
                     "deadband", "preview_time", "stop_speed", "hold_speed"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} >= 0, got {value!r}")
        for name in ("max_throttle", "max_brake", "throttle_rate", "brake_rate",
                     "hold_brake", "hold_rate"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} in (0, 1], got {value!r}")


#: Measured on sim.dynamics' default_car (see PedalMapParams); also in default.yaml.
DEFAULT_PEDAL_MAP = PedalMapParams(
    speeds=(0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0),
    throttles=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0),
    accel=(
        (0.0, -0.16, -0.32, -0.26, -0.33, -0.27, -0.3, -0.38, -0.47, -0.68),
        (0.26, 0.27, 0.31, 0.14, 0.08, -0.03, -0.12, -0.19, -0.27, -0.48),
        (0.66, 0.71, 0.94, 0.83, 0.48, 0.27, 0.12, 0.0, -0.08, -0.28),
        (1.06, 1.14, 1.56, 1.49, 0.89, 0.56, 0.35, 0.18, 0.11, -0.08),
        (1.47, 1.58, 2.19, 2.15, 1.29, 0.86, 0.8, 0.52, 0.3, 0.12),
        (1.87, 2.01, 2.82, 2.8, 2.78, 1.66, 1.11, 0.77, 0.49, 0.33),
        (2.88, 3.1, 4.4, 4.45, 4.5, 2.73, 1.89, 1.85, 1.32, 0.83),
        (3.89, 4.19, 5.97, 6.1, 6.22, 3.8, 3.58, 2.66, 2.26, 1.33),
    ),
    brake_decel=8.0,
)


def rate_limit(value: float, previous: float, max_change: float) -> float:
    """``value`` moved no further than ``max_change`` from ``previous``."""
    return min(max(value, previous - max_change), previous + max_change)


class LongitudinalController:
    """Speed PID with feed-forward; keeps its integral and last pedals between steps."""

    def __init__(self, params: LongitudinalParams) -> None:
        self.params = params
        self.pedals = PedalMap(params.pedal_map)
        self.reset()

    def reset(self) -> None:
        """Forget the integral, the last error and the last pedals."""
        self.integral = 0.0
        self.last_error: float | None = None
        self.throttle = 0.0
        self.brake = 0.0

    def step(self, speed: float, target_speed: float, target_accel: float,
             dt: float) -> tuple[float, float]:
        """Pedals (throttle, brake) for this step. ``speed`` is the car's (m/s),
        ``target_speed`` and ``target_accel`` the profile's (m/s, m/s^2)."""
        p = self.params

        # Standstill: stand on the brake, keep the PID from winding up -- unless the
        # profile sets off from here (zero speed now, accelerating). Either way the
        # integral starts afresh (see the module doc).
        if target_speed <= p.stop_speed and speed <= p.hold_speed:
            self.integral = 0.0
            if target_accel <= 0.0:
                self.last_error = None
                rate = p.hold_rate if speed > 0.0 else p.brake_rate
                return self._output(0.0, rate_limit(p.hold_brake, self.brake, rate))

        # 1-2. PID on the speed error plus the profile's acceleration.
        error = target_speed - speed
        derivative = 0.0 if self.last_error is None else (error - self.last_error) / dt
        self.last_error = error
        unclamped = (target_accel + p.kp * error + p.ki * self.integral
                     + p.kd * derivative)
        accel = min(max(unclamped, -p.decel_limit), p.accel_limit)

        # 3. Anti-windup: integrate unless saturated and the error deepens it.
        saturated_high = unclamped >= p.accel_limit or self.throttle >= p.max_throttle
        saturated_low = unclamped <= -p.decel_limit or self.brake >= p.max_brake
        if not ((saturated_high and error > 0) or (saturated_low and error < 0)):
            self.integral = min(max(self.integral + error * dt, -p.integral_limit),
                                p.integral_limit)

        # 4. Inverse response: throttle above coasting, brake below it minus deadband.
        coast = self.pedals.coast_accel(speed)
        if accel >= coast:
            throttle, brake = self.pedals.throttle_for(accel, speed), 0.0
        elif accel >= coast - p.deadband:
            throttle, brake = 0.0, 0.0
        else:
            throttle, brake = 0.0, self.pedals.brake_for(accel, speed)
        return self._output(throttle, brake)

    def _output(self, throttle: float, brake: float) -> tuple[float, float]:
        """6. Rate limits, then pedal limits; remembers the result."""
        p = self.params
        throttle = min(max(rate_limit(throttle, self.throttle, p.throttle_rate), 0.0),
                       p.max_throttle)
        brake = min(max(rate_limit(brake, self.brake, p.brake_rate), 0.0), p.max_brake)
        self.throttle, self.brake = throttle, brake
        return throttle, brake
