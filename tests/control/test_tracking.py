"""Closed-loop lateral tracking against sim.dynamics (default_car, dt 0.05 s, 10
substeps): every steering law on a straight, a 50 m radius arc and an S-bend at 10
and 20 m/s. The car starts on the path at speed; the error of the vehicle origin
is measured after the first 2 s (the transient of starting an arc with the wheels
straight)."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from bus.messages import Trajectory
from control.controller import Controller, load_params
from control.lateral import TrackPath
from sim.dynamics import VehicleState, load_vehicle, step

RADIUS = 50.0
ARC_60 = RADIUS * math.pi / 3  # a 60 degree arc
PATHS = {
    "straight": [(400.0, 0.0)],
    "arc": [(300.0, 1.0 / RADIUS)],  # constant curvature, right turn
    "s_bend": [(ARC_60, 1.0 / RADIUS), (ARC_60, -1.0 / RADIUS), (300.0, 0.0)],
}
TARGET_RMS = {10.0: 0.15, 20.0: 0.30}


def path_poses(segments: list[tuple[float, float]], ds: float = 0.5) -> np.ndarray:
    """Poses (N x 3: x, y, yaw deg) along (length m, curvature 1/m) pieces, exact
    arcs, from the origin heading +x. Positive curvature turns right (+y)."""
    x = y = yaw = 0.0
    points = [(x, y, yaw)]
    for length, kappa in segments:
        n = max(1, round(length / ds))
        h = length / n
        for _ in range(n):
            if kappa == 0.0:
                x, y = x + h * math.cos(yaw), y + h * math.sin(yaw)
            else:
                x += (math.sin(yaw + kappa * h) - math.sin(yaw)) / kappa
                y += (math.cos(yaw) - math.cos(yaw + kappa * h)) / kappa
            yaw += kappa * h
            points.append((x, y, yaw))
    poses = np.array(points)
    poses[:, 2] = np.degrees(poses[:, 2])
    return poses


def constant_speed(poses: np.ndarray, speed: float) -> Trajectory:
    n = poses.shape[0]
    s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(poses[:, :2], axis=0).T))))
    return Trajectory(poses=poses, speeds=np.full(n, speed), times=s / speed)


def controller(method: str) -> Controller:
    params = load_params()
    lateral = dataclasses.replace(params.lateral, method=method)
    return Controller(dataclasses.replace(params, lateral=lateral))


def track(method: str, path: str, speed: float, seconds: float = 12.0,
          skip: float = 2.0, offset: float = 0.0) -> np.ndarray:
    """Lateral errors (m) of the vehicle origin after ``skip`` seconds."""
    vehicle = load_vehicle("default_car")
    poses = path_poses(PATHS[path])
    trajectory = constant_speed(poses, speed)
    reference = TrackPath(poses, trajectory.speeds)
    ctl = controller(method)
    state = VehicleState(x=0.0, y=offset, yaw=0.0, speed=speed, gear=3)
    errors = []
    for k in range(round(seconds / 0.05)):
        state = step(state, ctl.step(state, trajectory), vehicle, dt=0.05, substeps=10)
        if (k + 1) * 0.05 > skip:
            errors.append(reference.project(state.x, state.y).error)
    return np.array(errors)


@pytest.mark.parametrize("speed", [10.0, 20.0])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("method", ["stanley", "pure_pursuit", "lqr"])
def test_tracking_error_rms(method: str, path: str, speed: float) -> None:
    errors = track(method, path, speed)
    rms = float(np.sqrt(np.mean(errors**2)))
    assert rms <= TARGET_RMS[speed], f"{method} {path} {speed} m/s: RMS {rms:.3f} m"
    assert np.max(np.abs(errors)) < 0.6


@pytest.mark.parametrize("method", ["stanley", "pure_pursuit", "lqr"])
def test_converges_from_a_lateral_offset(method: str) -> None:
    """1 m left of a straight at 10 m/s: back within 10 cm by 6 s, no big overshoot."""
    errors = track(method, "straight", 10.0, seconds=10.0, skip=0.0, offset=-1.0)
    assert np.max(errors) < 0.3  # overshoot to the right
    assert np.max(np.abs(errors[120:])) < 0.1


def test_step_time_is_well_under_a_millisecond() -> None:
    """Controller.step on a 7 s, 0.5 m-spaced planner trajectory (a new one each
    tick, as the planner sends)."""
    poses = path_poses([(70.0, 1.0 / RADIUS)])
    trajectories = [constant_speed(poses, 10.0) for _ in range(2)]
    ctl = controller("stanley")
    state = VehicleState(x=0.3, y=0.1, yaw=1.0, speed=10.0)
    times = []
    for i in range(400):
        start = time.perf_counter()
        ctl.step(state, trajectories[i % 2])
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 1e-3
