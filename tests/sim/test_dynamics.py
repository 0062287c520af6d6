"""Vehicle dynamics against physics: step response, braking, turning circle, steering
rate, CARLA's yaw convention, reverse, hand brake, standstill, friction limit,
determinism, the vectorised path and parameter loading. Each runs in milliseconds.

World frame is CARLA's: x forward at yaw 0, y right, yaw in degrees clockwise from
above; speeds m/s unless a name says km/h.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from bus.config import ConfigError
from bus.messages import VehicleControl
from sim.dynamics import (
    VEHICLES_DIR,
    FleetControls,
    FleetState,
    VehicleParams,
    VehicleState,
    load_vehicle,
    step,
    step_many,
    vehicle_names,
)

DT = 0.05  # 20 Hz, the leaderboard's fixed_delta_seconds
KMH = 1 / 3.6


@pytest.fixture(scope="module")
def car() -> VehicleParams:
    return load_vehicle("default_car")


def drive(state: VehicleState, control: VehicleControl, params: VehicleParams,
          seconds: float) -> list[VehicleState]:
    """Hold ``control`` for ``seconds``; every state after each step."""
    out = []
    for _ in range(round(seconds / DT)):
        state = step(state, control, params, DT)
        out.append(state)
    return out


def cruising(speed: float) -> VehicleState:
    """Straight ahead along +x at ``speed`` in a sensible gear."""
    return VehicleState(speed=speed, gear=3)


# ----------------------------------------------------------------- parameters, YAML
def test_shipped_vehicles_load_with_plausible_figures() -> None:
    assert {"default_car", "truck"} <= set(vehicle_names())
    car = load_vehicle("default_car")
    assert car.type_id == "vehicle.lincoln.mkz_2020" and car.label == 14
    assert 1700 <= car.mass <= 1950 and 2.8 <= car.wheelbase <= 3.0
    assert 4.7 <= car.length <= 5.0 and 2.0 <= car.width <= 2.2 and 1.4 <= car.height <= 1.6
    assert 35 <= car.max_steer_deg <= 40
    assert car.max_brake_decel == pytest.approx(8.0)
    assert 0.9 <= car.tyre_friction <= 1.0
    truck = load_vehicle(VEHICLES_DIR / "truck.yaml")  # by path too
    assert truck.label == 15 and truck.mass > car.mass


def _write_car_yaml(tmp_path: Path, replace: dict[str, str]) -> Path:
    """The default car's YAML with some lines' values replaced (key -> new line)."""
    lines = (VEHICLES_DIR / "default_car.yaml").read_text().splitlines()
    out = []
    for line in lines:
        key = line.split(":", 1)[0]
        out.append(replace.pop(key) if key in replace else line)
    out.extend(replace.values())  # keys not in the file are appended
    path = tmp_path / "car.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.mark.parametrize(("edit", "key"), [
    ({"mass": "mas: 1800"}, "mas"),                           # misspelled key
    ({"mass": "mass: heavy"}, "mass"),                        # wrong type
    ({"mass": ""}, "mass"),                                   # missing
    ({"max_steer_deg": "max_steer_deg: 95"}, "max_steer_deg"),  # out of range
    ({"tyre_friction": "tyre_friction: -1"}, "tyre_friction"),
    ({"downshift_rpm": "downshift_rpm: [1200.0, 5000.0]"}, "downshift_rpm"),  # hunting
    ({"gear_ratios": "gear_ratios: [1.0, 2.0]"}, "gear_ratios"),
    ({"extra": "turbo: true"}, "turbo"),
])
def test_bad_yaml_gives_config_error_naming_file_and_key(
        tmp_path: Path, edit: dict[str, str], key: str) -> None:
    path = _write_car_yaml(tmp_path, dict(edit))
    with pytest.raises(ConfigError) as err:
        load_vehicle(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_unreadable_vehicle_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_vehicle(tmp_path / "nope.yaml")


def test_bad_step_arguments_are_rejected(car: VehicleParams) -> None:
    with pytest.raises(ValueError):
        step(VehicleState(), VehicleControl(), car, dt=0.0)
    with pytest.raises(ValueError):
        step(VehicleState(), VehicleControl(), car, DT, substeps=0)


# ---------------------------------------------------------------- longitudinal
def test_full_throttle_from_rest_0_100_and_top_speed(car: VehicleParams) -> None:
    states = drive(VehicleState(), VehicleControl(throttle=1.0), car, 120.0)
    speeds = np.array([s.speed for s in states])
    t100 = (np.argmax(speeds >= 100 * KMH) + 1) * DT
    assert 6.0 <= t100 <= 12.0, f"0-100 km/h in {t100:.2f} s"
    top = speeds[-1] / KMH
    assert 150 <= top <= 200, f"top speed {top:.1f} km/h"
    assert speeds[-1] - speeds[-200] < 0.1  # settled
    # The automatic box climbs through every gear and never over-revs.
    gears = [s.gear for s in states]
    assert gears[0] == 1 and gears[-1] == car.gears and all(np.diff(gears) >= 0)
    assert max(s.rpm for s in states) <= car.redline_rpm
    # Accelerations are a real car's: under the tyre limit, positive until top speed.
    accels = np.array([s.accel for s in states])
    assert accels.max() <= car.mu_g and accels[:100].min() > 0


def test_half_throttle_is_slower_and_settles_lower(car: VehicleParams) -> None:
    full = drive(VehicleState(), VehicleControl(throttle=1.0), car, 150.0)
    half = drive(VehicleState(), VehicleControl(throttle=0.5), car, 150.0)
    at_10s = round(10 / DT) - 1
    assert half[at_10s].speed < 0.85 * full[at_10s].speed
    assert half[-1].speed < full[-1].speed - 5 * KMH
    assert abs(half[-1].speed - half[-200].speed) < 0.1  # settled


def test_coasting_slows_the_car_by_drag_rolling_and_engine_braking(car: VehicleParams) -> None:
    states = drive(cruising(100 * KMH), VehicleControl(), car, 5.0)
    decel = -np.mean([s.accel for s in states])
    # 100 km/h: drag ~0.26 m/s^2, rolling ~0.15, plus a little engine braking (the
    # box upshifts when the throttle is released).
    assert 0.35 < decel < 1.5
    assert all(b.speed < a.speed for a, b in itertools.pairwise(states))


def test_stopping_distance_from_50_kmh(car: VehicleParams) -> None:
    v0 = 50 * KMH
    states = drive(cruising(v0), VehicleControl(brake=1.0), car, 4.0)
    stop = next(i for i, s in enumerate(states) if s.speed == 0.0)
    distance = states[stop].x
    # Physics: at best mu*g, at worst the brakes' 8 m/s^2 (12.06 m) plus a margin.
    assert v0**2 / (2 * car.mu_g) <= distance <= v0**2 / (2 * 8.0) * 1.05
    assert distance == pytest.approx(11.7, abs=0.3)
    assert (stop + 1) * DT == pytest.approx(v0 / 8.2, abs=2 * DT)
    # Once stopped it stays exactly where it is.
    assert all(s.speed == 0.0 and s.x == distance for s in states[stop:])


# --------------------------------------------------------------------- steering
def _circle_radius(xs: np.ndarray, ys: np.ndarray) -> float:
    """Least-squares (Kasa) circle fit; the radius in metres."""
    a = np.column_stack([xs, ys, np.ones_like(xs)])
    b = xs**2 + ys**2
    cx2, cy2, c = np.linalg.lstsq(a, b, rcond=None)[0]
    cx, cy = cx2 / 2, cy2 / 2
    return float(math.sqrt(c + cx**2 + cy**2))


@pytest.mark.parametrize("steer", [1.0, 0.5, -0.25])
def test_turning_radius_at_low_speed_is_the_bicycle_geometry(
        car: VehicleParams, steer: float) -> None:
    state = VehicleState(speed=2.0)
    control = VehicleControl(throttle=0.0, steer=steer)
    for _ in range(40):  # 2 s: steering settles at its target
        state = step(state, control, car, DT)
    rear_x, rear_y, centre_x, centre_y = [], [], [], []
    for _ in range(400):  # 20 s at ~2 m/s: more than a full circle
        throttle = min(max(0.5 * (2.0 - state.speed), 0.0), 1.0)  # hold ~2 m/s
        state = step(state, VehicleControl(throttle=throttle, steer=steer), car, DT)
        yaw = math.radians(state.yaw)
        rear_x.append(state.x - car.rear_axle_to_origin * math.cos(yaw))
        rear_y.append(state.y - car.rear_axle_to_origin * math.sin(yaw))
        centre_x.append(state.x)
        centre_y.append(state.y)
    delta = math.radians(abs(steer) * car.max_steer_deg)
    expected_rear = car.wheelbase / math.tan(delta)
    rear = _circle_radius(np.array(rear_x), np.array(rear_y))
    centre = _circle_radius(np.array(centre_x), np.array(centre_y))
    assert rear == pytest.approx(expected_rear, rel=0.01)
    assert centre == pytest.approx(math.hypot(expected_rear, car.rear_axle_to_origin),
                                   rel=0.01)
    assert 1.5 < state.speed < 2.5
    # The reported lateral acceleration and yaw rate match the circle.
    assert abs(state.lateral_accel) == pytest.approx(state.speed**2 / centre, rel=0.05)
    assert abs(state.yaw_rate) == pytest.approx(math.degrees(state.speed / centre), rel=0.05)


def test_steering_rate_is_limited(car: VehicleParams) -> None:
    rate = car.max_steer_rate_deg_s
    state = VehicleState(speed=5.0)
    angles = [state.steer]
    for command in (1.0,) * 20 + (-1.0,) * 30:
        state = step(state, VehicleControl(steer=command), car, DT)
        angles.append(state.steer)
    assert max(abs(d) for d in np.diff(angles)) <= rate * DT + 1e-9
    lock_time = car.max_steer_deg / rate
    assert angles[round(lock_time / DT) - 1] < car.max_steer_deg
    assert angles[math.ceil(lock_time / DT)] == pytest.approx(car.max_steer_deg)
    assert angles[20 + math.ceil(2 * lock_time / DT)] == pytest.approx(-car.max_steer_deg)
    assert 0.5 <= lock_time <= 1.0


def test_yaw_convention_steer_right_turns_clockwise_towards_plus_y(car: VehicleParams) -> None:
    start = VehicleState(speed=10.0, gear=2)
    right = drive(start, VehicleControl(throttle=0.2, steer=0.3), car, 2.0)
    assert all(b.yaw > a.yaw for a, b in itertools.pairwise(right))
    assert right[-1].yaw > 10 and right[-1].y > 1.0 and right[-1].yaw_rate > 0
    assert right[-1].lateral_accel > 0 and right[-1].slip > 0
    left = drive(start, VehicleControl(throttle=0.2, steer=-0.3), car, 2.0)
    assert left[-1].yaw == pytest.approx(-right[-1].yaw)
    assert left[-1].y == pytest.approx(-right[-1].y)
    # Heading 90 degrees drives along +y; velocity() agrees with the motion.
    north = drive(VehicleState(yaw=90.0, speed=10.0, gear=2), VehicleControl(), car, 1.0)
    assert north[-1].y > 9 and abs(north[-1].x) < 1e-6
    vx, vy = north[-1].velocity()
    assert abs(vx) < 1e-9 and vy == pytest.approx(north[-1].speed)


def test_yaw_wraps_to_carla_range(car: VehicleParams) -> None:
    states = drive(VehicleState(speed=3.0), VehicleControl(throttle=0.1, steer=1.0), car, 30.0)
    yaws = [s.yaw for s in states]
    assert all(-180.0 <= y < 180.0 for y in yaws) and min(yaws) < -170 and max(yaws) > 170


# ------------------------------------------------------- reverse, hand brake, hold
def test_reverse_drives_backwards(car: VehicleParams) -> None:
    states = drive(VehicleState(), VehicleControl(throttle=0.5, reverse=True), car, 3.0)
    assert states[-1].gear == -1 and states[-1].speed < -2.0 and states[-1].x < -3.0
    assert all(s.speed <= 0.0 for s in states)
    assert states[-1].odometer == pytest.approx(-states[-1].x)
    # Backing up with the wheel turned right swings the nose left: yaw decreases.
    turning = drive(states[-1], VehicleControl(throttle=0.3, steer=0.5, reverse=True), car, 2.0)
    assert turning[-1].yaw < -5.0
    # Releasing reverse selects first gear again.
    forward = step(turning[-1], VehicleControl(brake=1.0), car, DT)
    assert forward.gear == 1


def test_hand_brake_stops_the_car_and_holds_it(car: VehicleParams) -> None:
    states = drive(cruising(30 * KMH), VehicleControl(throttle=1.0, hand_brake=True), car, 4.0)
    stop = next(i for i, s in enumerate(states) if s.speed == 0.0)
    assert (stop + 1) * DT == pytest.approx(30 * KMH / (car.hand_brake_decel + 0.15), abs=0.15)
    assert all(s.speed == 0.0 and s.x == states[stop].x for s in states[stop:])


@pytest.mark.parametrize("reverse", [False, True])
def test_no_creep_at_standstill_with_brake(car: VehicleParams, reverse: bool) -> None:
    # Brake held with a little throttle, in drive and in reverse: nothing moves.
    held = drive(VehicleState(), VehicleControl(throttle=0.2, brake=1.0, reverse=reverse),
                 car, 5.0)
    assert all(s.speed == 0.0 and s.x == 0.0 and s.y == 0.0 for s in held)
    # Braking to a stop from forward motion never rolls back.
    stopping = drive(cruising(5.0), VehicleControl(brake=0.3), car, 5.0)
    assert all(s.speed >= 0.0 for s in stopping) and stopping[-1].speed == 0.0
    assert all(b.x >= a.x for a, b in itertools.pairwise(stopping))


def test_idle_car_does_not_creep(car: VehicleParams) -> None:
    states = drive(VehicleState(), VehicleControl(), car, 2.0)
    assert all(s.speed == 0.0 and s.x == 0.0 for s in states)


def test_manual_neutral_gives_no_drive(car: VehicleParams) -> None:
    control = VehicleControl(throttle=1.0, manual_gear_shift=True, gear=0)
    states = drive(VehicleState(), control, car, 2.0)
    assert states[-1].gear == 0 and states[-1].speed == 0.0


# -------------------------------------------------------------------- friction
def test_braking_never_exceeds_the_tyre_limit(car: VehicleParams) -> None:
    slippery = dataclasses.replace(car, tyre_friction=0.5)  # wet: mu*g < brake decel
    v0 = 100 * KMH
    states = drive(cruising(v0), VehicleControl(brake=1.0), slippery, 8.0)
    assert states[-1].speed == 0.0
    assert max(-s.accel for s in states) <= slippery.mu_g * (1 + 1e-9)
    assert -states[0].accel == pytest.approx(slippery.mu_g, rel=0.01)
    stop = next(s for s in states if s.speed == 0.0)
    assert stop.x >= v0**2 / (2 * slippery.mu_g)
    # On the dry default the brakes, not the tyres, set the deceleration.
    dry = drive(cruising(v0), VehicleControl(brake=1.0), car, 1.0)
    assert -dry[0].accel < car.mu_g


def test_sharp_turn_at_speed_saturates_lateral_acceleration(car: VehicleParams) -> None:
    states = drive(cruising(60 * KMH), VehicleControl(steer=1.0), car, 2.0)
    lateral = np.array([s.lateral_accel for s in states])
    total = np.hypot([s.accel for s in states], lateral)
    assert total.max() <= car.mu_g * 1.01
    assert lateral[-1] == pytest.approx(car.mu_g, rel=0.02)
    # Understeer: the circle is far wider than full lock would give at walking pace.
    radius = states[-1].speed**2 / lateral[-1]
    assert radius > 5 * car.wheelbase / math.tan(math.radians(car.max_steer_deg))
    # A gentle curve stays kinematic (under the limit): a = v^2 * kappa(delta).
    gentle = drive(cruising(60 * KMH), VehicleControl(throttle=0.15, steer=0.02), car, 3.0)
    tan_d = math.tan(math.radians(0.02 * car.max_steer_deg))
    kappa = tan_d / math.hypot(car.wheelbase, car.rear_axle_to_origin * tan_d)
    assert gentle[-1].lateral_accel == pytest.approx(gentle[-1].speed**2 * kappa, rel=1e-3)
    assert gentle[-1].lateral_accel < 0.5 * car.mu_g


def test_friction_limit_lets_throttle_and_turning_share_the_grip() -> None:
    sticky = dataclasses.replace(load_vehicle(), tyre_friction=0.3)
    states = drive(VehicleState(), VehicleControl(throttle=1.0), sticky, 2.0)
    assert max(s.accel for s in states) <= sticky.mu_g * (1 + 1e-9)


# --------------------------------------------------- determinism and vectorised path
def _scripted_controls(n: int) -> list[VehicleControl]:
    """A varied but fixed drive: accelerate, weave, brake, reverse, hand brake."""
    out = []
    for i in range(n):
        phase = (i // 50) % 6
        out.append(VehicleControl(
            throttle=[1.0, 0.4, 0.0, 0.0, 0.6, 0.3][phase],
            steer=math.sin(i * 0.07) * [0.1, 0.8, 0.3, 0.0, 1.0, 0.5][phase],
            brake=[0.0, 0.0, 0.7, 1.0, 0.0, 0.0][phase],
            reverse=phase == 4,
            hand_brake=phase == 5 and i % 50 > 40,
        ))
    return out


def test_determinism_bit_for_bit(car: VehicleParams) -> None:
    controls = _scripted_controls(500)

    def run() -> list[VehicleState]:
        state, out = VehicleState(x=3.0, y=-2.0, yaw=45.0), []
        for c in controls:
            state = step(state, c, car, DT)
            out.append(state)
        return out

    first, second = run(), run()
    assert first == second  # dataclass equality compares every float exactly
    assert any(s.gear == -1 for s in first) and any(s.gear >= 3 for s in first)


def test_step_many_matches_step_for_a_mixed_fleet(car: VehicleParams) -> None:
    n = 12
    scripts = [_scripted_controls(300)[i * 7:] + _scripted_controls(i * 7) for i in range(n)]
    singles = [VehicleState(x=float(i), yaw=30.0 * i - 170, speed=float(i % 4))
               for i in range(n)]
    fleet = FleetState.from_states(singles)
    for t in range(200):
        controls = [scripts[i][t] for i in range(n)]
        singles = [step(s, c, car, DT) for s, c in zip(singles, controls, strict=True)]
        fleet = step_many(fleet, FleetControls.from_controls(controls), car, DT)
    for i, single in enumerate(singles):
        vector = fleet.state(i)
        for f in dataclasses.fields(VehicleState):
            assert getattr(vector, f.name) == pytest.approx(getattr(single, f.name),
                                                            rel=1e-9, abs=1e-9), f.name
    again = FleetState.from_states([s for s in (fleet.state(i) for i in range(n))])
    assert len(again) == n


def test_step_many_is_deterministic_and_does_not_mutate(car: VehicleParams) -> None:
    fleet = FleetState.from_states([VehicleState(speed=float(i)) for i in range(5)])
    controls = FleetControls.from_controls([VehicleControl(throttle=0.5, steer=0.3)] * 5)
    before = fleet.x.copy(), fleet.speed.copy()
    a = step_many(fleet, controls, car, DT)
    b = step_many(fleet, controls, car, DT)
    assert np.array_equal(fleet.x, before[0]) and np.array_equal(fleet.speed, before[1])
    for f in dataclasses.fields(FleetState):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name))


def test_substeps_converge(car: VehicleParams) -> None:
    """More substeps change the answer only slightly: the integration is converged."""
    def end(substeps: int) -> VehicleState:
        state = VehicleState(speed=10.0, gear=2)
        for c in _scripted_controls(200):
            state = step(state, c, car, DT, substeps)
        return state

    coarse, fine = end(10), end(40)
    assert math.hypot(coarse.x - fine.x, coarse.y - fine.y) < 0.05 * fine.odometer / 100
