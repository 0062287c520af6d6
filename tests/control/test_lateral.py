"""Lateral control pieces: path projection, steering signs, LQR gains, params."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bus.config import ConfigError
from bus.messages import Trajectory
from control.controller import (
    DEFAULT_PARAMS,
    Controller,
    ControllerParams,
    EgoPose,
    load_params,
)
from control.lateral import (
    LateralController,
    LateralParams,
    TrackPath,
    VehicleGeometry,
    lqr_gain,
)
from sim.dynamics import load_vehicle


def line_path(n: int = 41, ds: float = 0.5, speed: float = 10.0) -> TrackPath:
    poses = np.zeros((n, 3))
    poses[:, 0] = np.arange(n) * ds
    return TrackPath(poses, np.full(n, speed))


def test_projection_interpolates_and_signs_the_error() -> None:
    path = line_path()
    right = path.project(3.3, 0.7)  # +y is right of a path heading +x (CARLA)
    assert right.s == pytest.approx(3.3) and right.error == pytest.approx(0.7)
    assert (right.x, right.y) == pytest.approx((3.3, 0.0))
    assert path.project(3.3, -0.7).error == pytest.approx(-0.7)
    assert path.project(-2.0, 0.0).s == 0.0  # clamped at the start


def test_profile_acceleration_is_read_between_segment_middles() -> None:
    """v dv/ds per segment, interpolated between the segments' middles, so the
    feed-forward does not step where one segment meets the next."""
    poses = np.zeros((4, 3))
    poses[:, 0] = [0.0, 1.0, 2.0, 3.0]
    speeds = np.sqrt([100.0, 98.0, 94.0, 94.0])  # a = -1, -2, 0 m/s^2 per segment
    path = TrackPath(poses, speeds)
    assert path.accel_at(0.2) == pytest.approx(-1.0)  # before the first middle
    assert path.accel_at(1.0) == pytest.approx(-1.5)  # halfway between two middles
    assert path.accel_at(1.5) == pytest.approx(-2.0)
    assert path.accel_at(2.0) == pytest.approx(-1.0)
    assert path.accel_at(9.0) == pytest.approx(0.0)  # clamped past the end


def test_projection_on_an_arc_gives_heading_and_curvature() -> None:
    radius, n = 50.0, 200
    a = np.linspace(0.0, 1.0, n)  # rad travelled, right turn about (0, 50)
    poses = np.column_stack([radius * np.sin(a), radius - radius * np.cos(a), np.degrees(a)])
    path = TrackPath(poses, np.full(n, 10.0))
    p = path.project(radius * math.sin(0.5) * 0.98, radius - radius * math.cos(0.5) * 0.98)
    assert p.kappa == pytest.approx(1.0 / radius, rel=1e-3)
    assert p.yaw == pytest.approx(0.5, abs=0.01)
    assert p.error == pytest.approx(1.0, abs=0.01)  # 1 m inside the right turn = right


@pytest.mark.parametrize("method", ["stanley", "pure_pursuit", "lqr"])
def test_steers_back_towards_the_path(method: str) -> None:
    ctl = LateralController(LateralParams(method=method), VehicleGeometry(), 0.05)
    path = line_path()
    assert ctl.step(path, 2.0, 0.5, 0.0, 5.0) < 0  # right of the path: steer left
    assert ctl.step(path, 2.0, -0.5, 0.0, 5.0) > 0
    assert ctl.step(path, 2.0, 0.0, math.radians(5.0), 5.0) < 0  # heading right
    assert ctl.step(path, 2.0, 0.0, 0.0, 5.0) == pytest.approx(0.0, abs=1e-9)


def test_lqr_gain_stabilises_the_error_model() -> None:
    geometry, dt = VehicleGeometry(), 0.05
    for v in (1.0, 10.0, 30.0):
        k = lqr_gain(v, dt, geometry, LateralParams(method="lqr"))
        a = np.array([[1.0, v * dt], [0.0, 1.0]])
        b = np.array([[v * dt * dt / (2 * geometry.wheelbase)], [v * dt / geometry.wheelbase]])
        assert np.max(np.abs(np.linalg.eigvals(a - b @ k))) < 1.0
        assert k[0, 0] > 0 and k[0, 1] > 0


def test_steer_rate_limit_and_mapping_to_vehicle_control() -> None:
    """A 2 m offset asks for a large steer; the command moves 0.1 per step and is
    the road-wheel angle over max_steer_deg."""
    ctl = Controller()
    poses = np.zeros((41, 3))
    poses[:, 0] = np.arange(41) * 0.5
    trajectory = Trajectory(poses=poses, speeds=np.full(41, 5.0), times=np.arange(41) * 0.1)
    ego = EgoPose(x=2.0, y=2.0, yaw=0.0, speed=5.0)
    steers = [ctl.step(ego, trajectory).steer for _ in range(5)]
    assert steers == pytest.approx([-0.1, -0.2, -0.3, -0.4, -0.5])


def test_default_params_load_and_match_the_default_car() -> None:
    params = load_params()
    vehicle = load_vehicle("default_car")
    assert params.vehicle.wheelbase == vehicle.wheelbase
    assert params.vehicle.rear_axle_to_origin == vehicle.rear_axle_to_origin
    assert params.vehicle.max_steer_deg == vehicle.max_steer_deg
    assert params.longitudinal.pedal_map.brake_decel == vehicle.max_brake_decel
    assert params == ControllerParams()  # the dataclass defaults are the YAML's


def test_misspelled_key_is_an_error_naming_file_and_key(tmp_path) -> None:
    text = DEFAULT_PARAMS.read_text().replace("stanley_gain:", "stanly_gain:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml: lateral\.stanly_gain"):
        load_params(bad)
    bad.write_text(DEFAULT_PARAMS.read_text().replace("method: stanley", "method: mpc"))
    with pytest.raises(ConfigError, match=r"lateral\.method"):
        load_params(bad)
