"""Longitudinal control: pedal map, anti-windup, deadband, rate limits, and closed
loop against sim.dynamics (speed step, stopping at a line)."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import Trajectory, VehicleControl
from control.controller import Controller
from control.longitudinal import (
    DEFAULT_PEDAL_MAP,
    LongitudinalController,
    LongitudinalParams,
    PedalMap,
)
from sim.dynamics import VehicleState, load_vehicle, step

DT = 0.05


def straight(speeds: np.ndarray, ds: float) -> Trajectory:
    n = speeds.shape[0]
    poses = np.zeros((n, 3))
    poses[:, 0] = np.arange(n) * ds
    return Trajectory(poses=poses, speeds=speeds.astype(float), times=np.arange(n) * 0.1)


@pytest.mark.parametrize(("accel", "speed"), [(1.0, 5.0), (0.5, 12.0), (2.0, 8.0),
                                              (0.3, 20.0)])
def test_pedal_map_inverts_the_vehicle(accel: float, speed: float) -> None:
    """The map's throttle gives about the asked acceleration on sim.dynamics once
    the gear has settled (the map was measured that way)."""
    vehicle = load_vehicle("default_car")
    throttle = PedalMap(DEFAULT_PEDAL_MAP).throttle_for(accel, speed)
    state = VehicleState(speed=speed, gear=1)
    for _ in range(10):
        state = step(state, VehicleControl(throttle=throttle), vehicle)
        state.speed = speed
    state = step(state, VehicleControl(throttle=throttle), vehicle)
    assert state.accel == pytest.approx(accel, abs=0.35)


def test_brake_below_coasting_and_deadband() -> None:
    pedals = PedalMap(DEFAULT_PEDAL_MAP)
    coast = pedals.coast_accel(10.0)
    assert coast < 0
    assert pedals.throttle_for(coast - 1.0, 10.0) == 0.0
    assert pedals.brake_for(coast - 4.0, 10.0) == pytest.approx(0.5)
    # In the deadband just below coasting neither pedal is pressed.
    ctl = LongitudinalController(LongitudinalParams(kp=0.0, ki=0.0))
    assert ctl.step(10.0, 10.0, coast - 0.05, DT) == (0.0, 0.0)
    throttle, brake = ctl.step(10.0, 10.0, coast - 1.0, DT)
    assert throttle == 0.0 and brake > 0.0


def test_rate_limits_and_pedal_limits() -> None:
    params = LongitudinalParams()
    ctl = LongitudinalController(params)
    throttles = [ctl.step(0.0 + 0.01, 30.0, 0.0, DT)[0] for _ in range(20)]
    assert np.max(np.diff([0.0, *throttles])) <= params.throttle_rate + 1e-12
    assert max(throttles) == pytest.approx(params.max_throttle)
    brakes = [ctl.step(20.0, 0.0 + 5.0, -8.0, DT)[1] for _ in range(20)]
    assert np.max(np.diff([0.0, *brakes])) <= params.brake_rate + 1e-12
    assert ctl.throttle == 0.0


def test_anti_windup_bounds_the_integral_while_saturated() -> None:
    """A long saturated stretch (car stuck far below target) must not wind the
    integral up: it stops at the saturation, so the release is immediate."""
    ctl = LongitudinalController(LongitudinalParams(ki=0.5))
    for _ in range(400):  # 20 s at full demand
        ctl.step(0.0 + 1.0, 20.0, 0.0, DT)
    assert abs(ctl.integral) < 1.0
    # Speed reached: throttle falls away within a few steps.
    for _ in range(8):
        throttle, _ = ctl.step(21.0, 20.0, 0.0, DT)
    assert throttle < 0.1


def test_standstill_hold() -> None:
    ctl = LongitudinalController(LongitudinalParams())
    for _ in range(10):
        throttle, brake = ctl.step(0.0, 0.0, 0.0, DT)
    assert throttle == 0.0 and brake == pytest.approx(ctl.params.hold_brake)


def test_standstill_hold_engages_gently_while_the_car_still_rolls() -> None:
    """Coming to rest, the brake moves to the hold at hold_rate per step (a jump
    would stop the car with a jolt); once it stands, the hold is applied."""
    params = LongitudinalParams()
    ctl = LongitudinalController(params)
    ctl.brake = 0.05  # the planner's profile has all but released the brake
    brakes = [ctl.step(0.08, 0.0, 0.0, DT)[1] for _ in range(3)]
    assert np.diff([0.05, *brakes]) == pytest.approx([params.hold_rate] * 3)
    for _ in range(3):
        throttle, brake = ctl.step(0.0, 0.0, 0.0, DT)
    assert throttle == 0.0 and brake == pytest.approx(params.hold_brake)


def test_sets_off_after_braking_behind_the_profile() -> None:
    """Slowing down behind the profile (the car 2 m/s faster than it for 5 s) winds
    the integral to its negative limit. When the car stands and the profile sets off
    (zero speed here, 0.7 m/s^2), the throttle must be what a fresh controller
    gives: before the integral was cleared at a standstill, it cancelled the set-off
    acceleration and the car stood with no throttle for good (the speed error of a
    car at rest on a profile starting at zero is zero, so it never unwound)."""
    params = LongitudinalParams()
    ctl, fresh = LongitudinalController(params), LongitudinalController(params)
    for i in range(100):
        speed = 8.0 - 0.06 * i
        ctl.step(speed, speed - 2.0, -1.0, DT)
    assert ctl.integral == pytest.approx(-params.integral_limit)
    for _ in range(10):
        throttle, brake = ctl.step(0.0, 0.0, 0.7, DT)
        expected, _ = fresh.step(0.0, 0.0, 0.7, DT)
    assert brake == 0.0 and throttle == pytest.approx(expected) and throttle > 0.1


def test_speed_step_0_to_10() -> None:
    """Overshoot < 1 m/s; within 0.3 m/s of the target from 6 s on."""
    vehicle = load_vehicle("default_car")
    trajectory = straight(np.full(2000, 10.0), 0.5)
    ctl, state, speeds = Controller(), VehicleState(), []
    for _ in range(300):
        state = step(state, ctl.step(state, trajectory), vehicle, dt=DT, substeps=10)
        speeds.append(state.speed)
    speeds = np.array(speeds)
    assert speeds.max() < 11.0
    assert np.max(np.abs(speeds[120:] - 10.0)) < 0.3  # settled by 6 s
    assert speeds[60] > 7.0  # and not sluggish: > 7 m/s at 3 s


def test_stops_within_a_metre_before_the_line() -> None:
    """From 50 km/h on a profile v(s) = sqrt(2 a (s_stop - s)), a = 3.5 m/s^2, that
    brings the front bumper to 0.5 m before the line: the bumper stops 0..1 m
    before it, braking no harder than 4 m/s^2, and stays stopped."""
    vehicle = load_vehicle("default_car")
    v0, decel, line = 50.0 / 3.6, 3.5, 60.0
    half_length = vehicle.length / 2
    s_stop = line - half_length - 0.5  # where the origin should come to rest
    s = np.arange(0.0, line + 20.0, 0.25)
    speeds = np.minimum(v0, np.sqrt(2.0 * decel * np.maximum(s_stop - s, 0.0)))
    trajectory = straight(speeds, 0.25)
    ctl, state, accels = Controller(), VehicleState(speed=v0, gear=3), []
    for _ in range(300):  # 15 s
        state = step(state, ctl.step(state, trajectory), vehicle, dt=DT, substeps=10)
        accels.append(state.accel)
    gap = line - (state.x + half_length)
    assert state.speed == 0.0
    assert 0.0 <= gap <= 1.0, f"gap {gap:.2f} m"
    assert -min(accels) <= 4.0, f"max decel {-min(accels):.2f}"
