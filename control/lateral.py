"""Lateral control: path projection, then Stanley, pure pursuit or LQR steering.

Frames and signs (CARLA's world frame, see ``bus.messages``): metres, yaw in
degrees internally converted to radians here, positive yaw turns +x towards +y
(right, seen from above). A positive road-wheel angle steers right and increases
yaw. Path curvature ``kappa`` (1/m) is positive for a right turn. The signed
lateral error ``e`` (m) of a point is positive when it lies to the right of the
path (along the path's right normal ``(-sin yaw, cos yaw)``).

Every steering law returns the road-wheel angle in radians; the controller maps it
to ``VehicleControl.steer`` through the vehicle's ``max_steer_deg``.

* **Stanley** (Thrun et al. 2006, as in PythonRobotics): front-axle reference,
  ``delta = psi_e + atan(-k e_f / (k_soft + v))`` with ``psi_e`` the path heading
  minus the vehicle heading. Exact in steady state on a circle for a kinematic car.
* **Pure pursuit**: rear-axle reference; the goal point lies ``L_d = k v + L_min``
  ahead along the path; ``delta = atan(2 L sin(alpha) / d)`` with ``alpha`` the
  goal's bearing from the heading and ``d`` its distance.
* **LQR**: kinematic bicycle error model at the rear axle, state ``[e, psi]``
  (lateral error and heading error, vehicle minus path), input ``u = tan(delta) -
  L kappa`` around the curvature feed-forward. Discrete (dt of the controller):
  ``e+ = e + v dt psi + v dt^2/(2L) u``, ``psi+ = psi + v dt/L u``. The discrete
  Riccati equation is solved by fixed-point iteration (numpy only) for a table of
  speeds at construction, so a step just interpolates the gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True, slots=True)
class VehicleGeometry:
    """What the lateral laws need of the vehicle (``sim.dynamics.VehicleParams``
    names; default_car's values): metres and degrees."""

    wheelbase: float = 2.87  #: front to rear axle, m
    rear_axle_to_origin: float = 1.40  #: rear axle forward to the vehicle origin, m
    max_steer_deg: float = 37.0  #: road-wheel angle at steer = 1, degrees

    def __post_init__(self) -> None:
        if not self.wheelbase > 0:
            raise ValueError(f"wheelbase > 0, got {self.wheelbase!r}")
        if not 0 <= self.rear_axle_to_origin <= self.wheelbase:
            raise ValueError("rear_axle_to_origin between 0 and wheelbase, got "
                             f"{self.rear_axle_to_origin!r}")
        if not 0 < self.max_steer_deg < 80:
            raise ValueError(f"max_steer_deg in (0, 80), got {self.max_steer_deg!r}")


@dataclass(frozen=True, slots=True)
class LateralParams:
    """Steering law and its gains. Which law runs is ``method``."""

    method: Literal["stanley", "pure_pursuit", "lqr"] = "stanley"
    stanley_gain: float = 2.5  #: k, 1/s: cross-track gain
    stanley_softening: float = 1.0  #: k_soft, m/s: keeps the gain finite at low speed
    lookahead_gain: float = 0.4  #: pure pursuit: s of lookahead per m/s
    lookahead_min: float = 3.0  #: pure pursuit: m
    lqr_q_lateral: float = 1.0  #: weight on e^2 (1/m^2)
    lqr_q_heading: float = 1.0  #: weight on psi^2 (1/rad^2)
    lqr_r: float = 10.0  #: weight on u^2
    lqr_max_speed: float = 50.0  #: m/s, top of the gain table
    lqr_iterations: int = 2000  #: Riccati iteration cap
    lqr_tolerance: float = 1e-9  #: Riccati convergence (max |dP|)

    def __post_init__(self) -> None:
        for name in ("stanley_gain", "stanley_softening", "lookahead_gain",
                     "lqr_q_lateral", "lqr_q_heading"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} >= 0, got {getattr(self, name)!r}")
        for name in ("lookahead_min", "lqr_r", "lqr_max_speed", "lqr_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} > 0, got {getattr(self, name)!r}")
        if self.lqr_iterations < 1:
            raise ValueError(f"lqr_iterations >= 1, got {self.lqr_iterations!r}")


# ---------------------------------------------------------------------------- path
@dataclass(frozen=True, slots=True)
class Projection:
    """A point's foot on the path: arc length ``s`` (m), segment ``index``, foot
    position ``x, y`` (m), path heading ``yaw`` (rad) and curvature ``kappa`` (1/m)
    there, and the point's signed lateral ``error`` (m, positive right of the path)."""

    s: float
    index: int
    x: float
    y: float
    yaw: float
    kappa: float
    error: float


class TrackPath:
    """A polyline (world frame) with arc length, headings and curvature, built once
    per trajectory. Headings come from the trajectory's yaw column (unwrapped);
    curvature is d(yaw)/ds per segment, so it is exact for sampled arcs."""

    def __init__(self, poses: np.ndarray, speeds: np.ndarray) -> None:
        poses = np.asarray(poses, dtype=float)
        if poses.ndim != 2 or poses.shape[0] < 2 or poses.shape[1] < 3:
            raise ValueError("a path needs at least two poses [x, y, yaw_deg]")
        self.x = poses[:, 0].copy()
        self.y = poses[:, 1].copy()
        self.yaw = np.unwrap(np.radians(poses[:, 2]))
        self.speeds = np.asarray(speeds, dtype=float)
        self.dx = np.diff(self.x)
        self.dy = np.diff(self.y)
        self.seg_len = np.hypot(self.dx, self.dy)
        self.seg_len2 = np.maximum(self.seg_len**2, 1e-12)
        self.s = np.concatenate(([0.0], np.cumsum(self.seg_len)))
        self.kappa = np.diff(self.yaw) / np.maximum(self.seg_len, 1e-9)  # per segment
        # Profile acceleration per segment: a = v dv/ds = d(v^2/2)/ds, and the
        # segment middles it is read at.
        self.accel = np.diff(self.speeds**2) / (2.0 * np.maximum(self.seg_len, 1e-9))
        self.mid_s = (self.s[:-1] + self.s[1:]) / 2.0

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def project(self, px: float, py: float) -> Projection:
        """The nearest point of the polyline to ``(px, py)`` (nearest segment,
        interpolated along it; the ends are clamped)."""
        t = ((px - self.x[:-1]) * self.dx + (py - self.y[:-1]) * self.dy) / self.seg_len2
        t = np.clip(t, 0.0, 1.0)
        fx = self.x[:-1] + t * self.dx
        fy = self.y[:-1] + t * self.dy
        i = int(np.argmin((px - fx) ** 2 + (py - fy) ** 2))
        ti = float(t[i])
        yaw = float(self.yaw[i] + ti * (self.yaw[i + 1] - self.yaw[i]))
        ex, ey = px - float(fx[i]), py - float(fy[i])
        error = -math.sin(yaw) * ex + math.cos(yaw) * ey
        return Projection(s=float(self.s[i]) + ti * float(self.seg_len[i]), index=i,
                          x=float(fx[i]), y=float(fy[i]), yaw=yaw,
                          kappa=float(self.kappa[i]), error=error)

    def point_at(self, s: float) -> tuple[float, float]:
        """World position at arc length ``s`` (clamped; extrapolated straight past
        the end so a lookahead never collapses onto the last point)."""
        if s >= self.s[-1]:
            over = s - self.s[-1]
            return (float(self.x[-1]) + over * math.cos(self.yaw[-1]),
                    float(self.y[-1]) + over * math.sin(self.yaw[-1]))
        s = max(s, 0.0)
        return float(np.interp(s, self.s, self.x)), float(np.interp(s, self.s, self.y))

    def speed_at(self, s: float) -> float:
        """Profile speed (m/s) at arc length ``s`` (clamped to the ends)."""
        return float(np.interp(s, self.s, self.speeds))

    def accel_at(self, s: float) -> float:
        """Profile acceleration (m/s^2) at ``s``: the segments' accelerations,
        interpolated linearly between their middles (clamped at the ends), so that it
        changes smoothly as the car moves along (a segment's own value is an average
        over it; stepping from one to the next would step the feed-forward)."""
        return float(np.interp(s, self.mid_s, self.accel))


# -------------------------------------------------------------------- steering laws
def wrap_angle(angle: float) -> float:
    """Radians wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def stanley(path: TrackPath, x: float, y: float, yaw: float, speed: float,
            geometry: VehicleGeometry, params: LateralParams) -> float:
    """Stanley road-wheel angle (rad) for the vehicle origin at ``(x, y)``, heading
    ``yaw`` (rad), ``speed`` (m/s)."""
    to_front = geometry.wheelbase - geometry.rear_axle_to_origin
    front = path.project(x + to_front * math.cos(yaw), y + to_front * math.sin(yaw))
    heading_error = wrap_angle(front.yaw - yaw)
    cross_track = math.atan2(-params.stanley_gain * front.error,
                             params.stanley_softening + abs(speed))
    return heading_error + cross_track


def pure_pursuit(path: TrackPath, x: float, y: float, yaw: float, speed: float,
                 geometry: VehicleGeometry, params: LateralParams) -> float:
    """Pure-pursuit road-wheel angle (rad), rear-axle reference."""
    rx = x - geometry.rear_axle_to_origin * math.cos(yaw)
    ry = y - geometry.rear_axle_to_origin * math.sin(yaw)
    rear = path.project(rx, ry)
    lookahead = params.lookahead_gain * abs(speed) + params.lookahead_min
    gx, gy = path.point_at(rear.s + lookahead)
    alpha = math.atan2(gy - ry, gx - rx) - yaw
    distance = max(math.hypot(gx - rx, gy - ry), 1e-6)
    return math.atan2(2.0 * geometry.wheelbase * math.sin(alpha), distance)


def solve_dare(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray,
               iterations: int, tolerance: float) -> np.ndarray:
    """Discrete algebraic Riccati equation by fixed-point iteration:
    ``P = Q + A'PA - A'PB (R + B'PB)^-1 B'PA``, from ``P = Q``."""
    p = q.copy()
    for _ in range(iterations):
        bp = b.T @ p
        nxt = q + a.T @ p @ a - a.T @ p @ b @ np.linalg.solve(r + bp @ b, bp @ a)
        if np.max(np.abs(nxt - p)) < tolerance:
            return nxt
        p = nxt
    return p


def lqr_gain(speed: float, dt: float, geometry: VehicleGeometry,
             params: LateralParams) -> np.ndarray:
    """State-feedback gain K (1 x 2) for the kinematic error model at ``speed``;
    ``u = -K [e, psi]``."""
    v, length = max(abs(speed), 0.1), geometry.wheelbase
    a = np.array([[1.0, v * dt], [0.0, 1.0]])
    b = np.array([[v * dt * dt / (2.0 * length)], [v * dt / length]])
    q = np.diag([params.lqr_q_lateral, params.lqr_q_heading])
    r = np.array([[params.lqr_r]])
    p = solve_dare(a, b, q, r, params.lqr_iterations, params.lqr_tolerance)
    return np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)


class LqrSteering:
    """LQR steering with a gain table over speed (built once, interpolated)."""

    def __init__(self, dt: float, geometry: VehicleGeometry, params: LateralParams) -> None:
        self.geometry = geometry
        self.speeds = np.linspace(0.0, params.lqr_max_speed, 101)
        gains = np.array([lqr_gain(v, dt, geometry, params)[0] for v in self.speeds])
        self.k_lateral, self.k_heading = gains[:, 0], gains[:, 1]

    def __call__(self, path: TrackPath, x: float, y: float, yaw: float,
                 speed: float) -> float:
        """LQR road-wheel angle (rad), rear-axle reference."""
        g = self.geometry
        rear = path.project(x - g.rear_axle_to_origin * math.cos(yaw),
                            y - g.rear_axle_to_origin * math.sin(yaw))
        heading_error = wrap_angle(yaw - rear.yaw)
        v = abs(speed)
        k_e = float(np.interp(v, self.speeds, self.k_lateral))
        k_psi = float(np.interp(v, self.speeds, self.k_heading))
        u = -(k_e * rear.error + k_psi * heading_error)
        return math.atan(g.wheelbase * rear.kappa + u)


class LateralController:
    """Selects the steering law by ``params.method``; returns road-wheel radians."""

    def __init__(self, params: LateralParams, geometry: VehicleGeometry, dt: float) -> None:
        self.params, self.geometry = params, geometry
        self._lqr = LqrSteering(dt, geometry, params) if params.method == "lqr" else None

    def step(self, path: TrackPath, x: float, y: float, yaw: float, speed: float) -> float:
        """Road-wheel angle (rad) for the vehicle origin at ``(x, y)``, ``yaw`` (rad)."""
        if self._lqr is not None:
            return self._lqr(path, x, y, yaw, speed)
        law = stanley if self.params.method == "stanley" else pure_pursuit
        return law(path, x, y, yaw, speed, self.geometry, self.params)
