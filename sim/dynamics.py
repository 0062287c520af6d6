"""Vehicle dynamics: a CARLA ``VehicleControl`` in, the vehicle's next state out.

The model, and why it is enough here:

* **Lateral: a kinematic bicycle** referenced at the vehicle origin (CARLA puts the
  actor transform at the bounding-box centre, which we take as the centre of mass).
  Below the tyre limit a road car's path at urban and highway speeds is very close
  to the kinematic one, and the kinematic model is exact at low speed, where tight
  turns happen. Above the limit the **friction circle** takes over: the combined
  longitudinal and lateral acceleration is clipped to ``tyre_friction * g``, so a
  car braking hard cannot stop faster than its tyres allow and a sharp turn at speed
  understeers onto a wider circle (lateral acceleration saturates at ~mu*g).
* **Longitudinal: forces.** Engine torque from a torque curve versus rpm, times
  throttle, through an automatic gearbox (throttle-dependent shift points) and the
  final drive to the wheels; minus aerodynamic drag ``0.5 rho Cd A v^2``, rolling
  resistance ``Crr m g``, engine braking when the throttle is released, the service
  brake (``brake * max_brake_decel``) and the hand brake. Resistive forces only
  ever slow the car to a stop: they never push it backwards, so a braked car at
  standstill stays put.
* **Steering actuator**: ``VehicleControl.steer`` in [-1, 1] maps linearly to the
  road-wheel angle ``steer * max_steer_deg``; the actual angle follows it at no more
  than ``max_steer_rate_deg_s``. (CARLA's physics uses ~70 deg as the wheel's
  ``max_steer_angle`` but real front wheels turn ~35-40 deg; ``max_steer_deg`` is
  the real, effective road-wheel angle, and its turning circle matches a real car.)

Conventions (CARLA's world frame, see ``bus.messages``): metres, x forward at yaw 0,
y to the right (left-handed, z up); yaw in degrees, positive turning +x towards +y
(clockwise seen from above); a positive steer (right) increases yaw. Speeds are
m/s, accelerations m/s^2, angular rates deg/s.

Integration: each :func:`step` of ``dt`` (20 Hz by default) runs ``substeps`` fixed
substeps. The powertrain (gear, rpm, engine force) is evaluated once per step and
held over its substeps (in 50 ms the rpm changes by under ~2 %); speed, drag,
steering, the friction circle and the pose are integrated every substep. The pose
advances at the substep's mean speed along its midpoint heading, so circles close
accurately. Everything is plain float arithmetic with no randomness and no clock:
the same inputs give bit-identical outputs.

:func:`step` moves one vehicle (pure ``math``, for the ego); :func:`step_many` moves
N vehicles sharing one parameter set with numpy (for NPCs). They run the same
algorithm and agree to rounding (transcendental functions may differ in the last
bit between ``math`` and numpy).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bus.config import load_yaml
from bus.messages import VehicleControl

#: Standard gravity, m/s^2.
GRAVITY = 9.81
#: rad/s to rev/min.
_RPM_PER_RAD_S = 60.0 / (2.0 * math.pi)

#: Shipped vehicle parameter files: ``sim/vehicles/<name>.yaml``.
VEHICLES_DIR = Path(__file__).resolve().parent / "vehicles"


# ------------------------------------------------------------------------- parameters
@dataclass(frozen=True, slots=True)
class VehicleParams:
    """One vehicle model's physical parameters (SI units, angles in degrees).

    Loaded from YAML with :func:`load_vehicle`; every key below is required except
    ``label`` and ``air_density``, so a vehicle file cannot silently inherit another
    car's numbers. The fields after ``air_density`` are derived in ``__post_init__``
    (not config keys) so the hot path reads precomputed constants.
    """

    type_id: str  #: CARLA blueprint id this approximates, e.g. vehicle.lincoln.mkz_2020
    mass: float  #: kg, with driver
    length: float  #: m, bounding box (CARLA extent.x * 2)
    width: float  #: m, bounding box (CARLA extent.y * 2)
    height: float  #: m, bounding box (CARLA extent.z * 2)
    wheelbase: float  #: m, front to rear axle
    rear_axle_to_origin: float  #: m, from the rear axle forward to the vehicle origin (CG)
    wheel_radius: float  #: m, driven wheels
    max_steer_deg: float  #: road-wheel angle at steer = 1, degrees
    max_steer_rate_deg_s: float  #: fastest road-wheel angle change, deg/s
    torque_curve: tuple[tuple[float, ...], ...]  #: ((rpm, N m), ...), rpm increasing
    idle_rpm: float  #: engine speed when the clutch slips (standstill, crawling)
    engine_brake_torque: float  #: N m of drag torque at the last curve rpm, throttle 0
    gear_ratios: tuple[float, ...]  #: forward gears, first to top, decreasing
    reverse_ratio: float  #: reverse gear ratio (positive number)
    final_drive: float  #: differential ratio
    drivetrain_efficiency: float  #: 0..1, engine to wheel
    upshift_rpm: tuple[float, ...]  #: (at throttle 0, at throttle 1)
    downshift_rpm: tuple[float, ...]  #: (at throttle 0, at throttle 1)
    drag_coefficient: float  #: Cd, dimensionless
    frontal_area: float  #: A, m^2
    rolling_resistance: float  #: Crr, dimensionless
    max_brake_decel: float  #: m/s^2 from the service brake at brake = 1
    hand_brake_decel: float  #: m/s^2 from the hand brake (rear wheels locked)
    tyre_friction: float  #: mu, peak tyre-road friction coefficient
    label: int = 14  #: CARLA CityObjectLabel id (14 Car, 15 Truck, ...)
    air_density: float = 1.225  #: rho, kg/m^3 (sea level, 15 C)

    # Derived constants (not config keys).
    redline_rpm: float = field(init=False, repr=False, compare=False)
    mu_g: float = field(init=False, repr=False, compare=False)
    curve_rpm: tuple[float, ...] = field(init=False, repr=False, compare=False)
    curve_torque: tuple[float, ...] = field(init=False, repr=False, compare=False)
    overall_ratios: tuple[float, ...] = field(init=False, repr=False, compare=False)
    drag_per_v2: float = field(init=False, repr=False, compare=False)
    rolling_decel: float = field(init=False, repr=False, compare=False)
    accel_per_torque: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Reject physically meaningless values (the loader reports them against the
        file), then derive the constants the integrator uses."""
        positive = ("mass", "length", "width", "height", "wheelbase", "wheel_radius",
                    "max_steer_rate_deg_s", "idle_rpm", "reverse_ratio", "final_drive",
                    "drag_coefficient", "frontal_area", "max_brake_decel",
                    "hand_brake_decel", "tyre_friction", "air_density")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} > 0, got {value!r}")
        _check(0 < self.rear_axle_to_origin < self.wheelbase, "rear_axle_to_origin",
               f"between 0 and wheelbase ({self.wheelbase})", self.rear_axle_to_origin)
        _check(0 < self.max_steer_deg < 80, "max_steer_deg", "between 0 and 80 degrees",
               self.max_steer_deg)
        _check(0 < self.drivetrain_efficiency <= 1, "drivetrain_efficiency",
               "in (0, 1]", self.drivetrain_efficiency)
        _check(0 <= self.rolling_resistance < 0.1, "rolling_resistance", "in [0, 0.1)",
               self.rolling_resistance)
        _check(self.engine_brake_torque >= 0, "engine_brake_torque", ">= 0",
               self.engine_brake_torque)

        curve = self.torque_curve
        _check(len(curve) >= 2 and all(len(p) == 2 for p in curve), "torque_curve",
               "at least two [rpm, torque] pairs", curve)
        rpms = tuple(p[0] for p in curve)
        torques = tuple(p[1] for p in curve)
        _check(all(a < b for a, b in itertools.pairwise(rpms)) and rpms[0] >= 0,
               "torque_curve", "rpm values >= 0 and strictly increasing", rpms)
        _check(all(t >= 0 for t in torques), "torque_curve", "torques >= 0", torques)
        _check(self.idle_rpm < rpms[-1], "idle_rpm",
               f"below the last torque_curve rpm ({rpms[-1]})", self.idle_rpm)

        ratios = self.gear_ratios
        _check(len(ratios) >= 1 and all(r > 0 for r in ratios)
               and all(a > b for a, b in itertools.pairwise(ratios)),
               "gear_ratios", "positive ratios, strictly decreasing", ratios)
        for name in ("upshift_rpm", "downshift_rpm"):
            pair = getattr(self, name)
            _check(len(pair) == 2 and all(self.idle_rpm <= r <= rpms[-1] for r in pair),
                   name, f"[at throttle 0, at throttle 1] between idle_rpm and {rpms[-1]}",
                   pair)
        # No gear hunting: after any upshift the rpm must still be above the downshift
        # point, and after any downshift still below the upshift point (at both ends
        # of the throttle range; the points are linear in throttle, so in between too).
        steps = [b / a for a, b in itertools.pairwise(ratios)]
        if steps:
            worst = min(steps)
            for i in (0, 1):
                up, down = self.upshift_rpm[i], self.downshift_rpm[i]
                _check(up * worst > down, "downshift_rpm",
                       f"below upshift_rpm x the largest gear step ({up * worst:.0f} at "
                       f"throttle {i}) so the gearbox does not hunt", self.downshift_rpm)

        derived = {
            "redline_rpm": rpms[-1],
            "mu_g": self.tyre_friction * GRAVITY,
            "curve_rpm": rpms,
            "curve_torque": torques,
            # Indexed by gear + 1: reverse (-1) drives backwards, neutral (0) not at all.
            "overall_ratios": (-self.reverse_ratio * self.final_drive, 0.0,
                               *(r * self.final_drive for r in ratios)),
            "drag_per_v2": 0.5 * self.air_density * self.drag_coefficient
                           * self.frontal_area / self.mass,
            "rolling_decel": self.rolling_resistance * GRAVITY,
            "accel_per_torque": self.drivetrain_efficiency / (self.wheel_radius * self.mass),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def gears(self) -> int:
        """Number of forward gears."""
        return len(self.gear_ratios)

    def torque(self, rpm: float) -> float:
        """Full-throttle engine torque (N m) at ``rpm``: linear between curve points,
        the first point's torque below it, zero above the last (the rev limiter)."""
        xs, ys = self.curve_rpm, self.curve_torque
        if rpm > xs[-1]:
            return 0.0
        if rpm <= xs[0]:
            return ys[0]
        j = bisect.bisect_right(xs, rpm) - 1
        if j >= len(xs) - 1:
            return ys[-1]
        slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
        return slope * (rpm - xs[j]) + ys[j]


def _check(ok: bool, key: str, expected: str, got: object) -> None:
    if not ok:
        raise ValueError(f"{key} {expected}, got {got!r}")


def vehicle_names() -> list[str]:
    """Names of the shipped vehicle parameter files (``sim/vehicles/*.yaml``)."""
    return sorted(p.stem for p in VEHICLES_DIR.glob("*.yaml"))


def load_vehicle(name_or_path: str | Path = "default_car") -> VehicleParams:
    """Load vehicle parameters by shipped name (``default_car``, ``truck``) or from a
    YAML path. Errors are :class:`bus.config.ConfigError` naming the file and key."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and (VEHICLES_DIR / f"{path}.yaml").is_file():
        path = VEHICLES_DIR / f"{path}.yaml"
    return load_yaml(VehicleParams, path)


# ------------------------------------------------------------------------------ state
@dataclass(slots=True)
class VehicleState:
    """One vehicle at one instant, in CARLA's world frame.

    x, y: position of the vehicle origin (bounding-box centre on the ground), m.
    yaw: heading in degrees, wrapped to [-180, 180); positive turns +x towards +y.
    speed: signed speed of the origin, m/s (negative when reversing). Its direction
        is ``yaw + slip`` (see :meth:`velocity`).
    steer: actual road-wheel angle, degrees, positive right.
    accel: longitudinal acceleration over the last step (d speed/dt), m/s^2.
    lateral_accel: centripetal acceleration the tyres delivered at the end of the
        step, m/s^2, positive towards the vehicle's right (ego frame +y).
        ``hypot(accel, lateral_accel)`` stays within ``tyre_friction * g``.
    yaw_rate: deg/s, positive clockwise seen from above (CARLA angular velocity z).
    slip: body slip angle, degrees: direction of travel relative to the heading.
    gear: -1 reverse, 0 neutral, 1..n forward.
    rpm: engine speed, rev/min.
    odometer: distance travelled (either direction), m.

    :func:`step` returns a new state and never mutates the one passed in.
    """

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    steer: float = 0.0
    accel: float = 0.0
    lateral_accel: float = 0.0
    yaw_rate: float = 0.0
    slip: float = 0.0
    gear: int = 1
    rpm: float = 0.0
    odometer: float = 0.0

    def velocity(self) -> tuple[float, float]:
        """World-frame velocity (vx, vy) in m/s."""
        a = math.radians(self.yaw + self.slip)
        return self.speed * math.cos(a), self.speed * math.sin(a)


def _wrap_deg(angle: float) -> float:
    """Wrap degrees to [-180, 180), CARLA's range for yaw."""
    return (angle + 180.0) % 360.0 - 180.0


# ------------------------------------------------------------------- one vehicle step
def select_gear(gear: int, speed: float, control: VehicleControl,
                params: VehicleParams) -> int:
    """The gear for the coming step: reverse when ``control.reverse``; the requested
    gear (clamped to 0..n) under ``manual_gear_shift``; otherwise an automatic box
    that shifts at most one gear per step at throttle-dependent rpm points (early
    upshifts when cruising, late ones and kickdown at full throttle)."""
    if control.reverse:
        return -1
    if control.manual_gear_shift:
        return min(max(control.gear, 0), params.gears)
    if gear < 1:
        return 1
    t = control.throttle
    up = params.upshift_rpm[0] + t * (params.upshift_rpm[1] - params.upshift_rpm[0])
    down = params.downshift_rpm[0] + t * (params.downshift_rpm[1] - params.downshift_rpm[0])
    rpm = abs(speed) / params.wheel_radius * params.overall_ratios[gear + 1] * _RPM_PER_RAD_S
    if rpm > up and gear < params.gears:
        return gear + 1
    if rpm < down and gear > 1:
        return gear - 1
    return gear


def step(state: VehicleState, control: VehicleControl, params: VehicleParams,
         dt: float = 0.05, substeps: int = 10) -> VehicleState:
    """Advance one vehicle by ``dt`` seconds under ``control`` (held for the step),
    integrating ``substeps`` fixed substeps. Returns a new :class:`VehicleState`."""
    if not dt > 0 or substeps < 1:
        raise ValueError(f"dt must be > 0 and substeps >= 1, got dt={dt}, substeps={substeps}")
    p = params
    h = dt / substeps
    throttle = control.throttle

    # 1. Powertrain, held over the step: gear, engine rpm, drive and engine braking.
    gear = select_gear(state.gear, state.speed, control, p)
    ratio = p.overall_ratios[gear + 1]  # signed: < 0 in reverse, 0 in neutral
    rpm = max(p.idle_rpm, abs(state.speed) / p.wheel_radius * abs(ratio) * _RPM_PER_RAD_S)
    if control.hand_brake:  # clutch out, rear wheels locked
        a_drive = 0.0
        a_resist_fixed = p.hand_brake_decel
    else:
        a_drive = throttle * p.torque(rpm) * ratio * p.accel_per_torque
        rev_share = min(max((rpm - p.idle_rpm) / (p.redline_rpm - p.idle_rpm), 0.0), 1.0)
        a_resist_fixed = ((1.0 - throttle) * p.engine_brake_torque * rev_share
                          * abs(ratio) * p.accel_per_torque)
    a_resist_fixed = a_resist_fixed + control.brake * p.max_brake_decel + p.rolling_decel

    # 2. Steering actuator: rate-limited ramp towards the commanded road-wheel angle.
    steer0 = state.steer
    steer_err = control.steer * p.max_steer_deg - steer0
    rate_h = p.max_steer_rate_deg_s * h

    L, lr, mu_g, k_drag = p.wheelbase, p.rear_axle_to_origin, p.mu_g, p.drag_per_v2
    L2, lr2, half_h = L * L, lr * lr, 0.5 * h
    x, y, v, odo = state.x, state.y, state.speed, state.odometer
    yaw = math.radians(state.yaw)
    for k in range(1, substeps + 1):
        # Road-wheel angle and the kinematic path curvature it demands at the origin
        # (1/m, > 0 turning right): kappa = sin(beta)/lr, tan(beta) = lr/L tan(delta).
        lim = rate_h * k
        steer = steer0 + min(max(steer_err, -lim), lim)
        tan_d = math.tan(math.radians(steer))
        kappa_d = tan_d / math.sqrt(L2 + lr2 * tan_d * tan_d)

        # Longitudinal demand: the drive, then the resistances (brakes, rolling,
        # engine braking, drag), which shrink the speed towards zero but never
        # through it, so a braked car stops and stays stopped.
        vv = v * v
        v_free = v + a_drive * h
        slowed = max(abs(v_free) - (a_resist_fixed + k_drag * vv) * h, 0.0)
        dv = math.copysign(slowed, v_free) - v

        # Friction circle: scale both demands so |a| <= mu g (ABS-like braking,
        # understeer in a turn taken too fast).
        a_long, a_lat = dv / h, vv * kappa_d
        scale = mu_g / max(math.sqrt(a_long * a_long + a_lat * a_lat), mu_g)
        v_new = v + dv * scale
        kappa = kappa_d * scale

        # Pose: travel at the mean speed along the midpoint heading plus the slip
        # angle beta (the origin's velocity is not along the body axis).
        ds = (v + v_new) * half_h
        dyaw = ds * kappa
        course = yaw + 0.5 * dyaw + math.asin(kappa * lr)
        x += ds * math.cos(course)
        y += ds * math.sin(course)
        yaw += dyaw
        odo += abs(ds)
        v = v_new

    return VehicleState(
        x=x, y=y, yaw=_wrap_deg(math.degrees(yaw)), speed=v, steer=steer,
        accel=(v - state.speed) / dt, lateral_accel=a_lat * scale,
        yaw_rate=math.degrees(v * kappa), slip=math.degrees(math.asin(kappa * lr)),
        gear=gear, rpm=rpm, odometer=odo,
    )


# ---------------------------------------------------------------- N vehicles (numpy)
@dataclass(slots=True)
class FleetState:
    """N vehicles' states as float64 arrays (``gear`` int64), one field per
    :class:`VehicleState` field, same frames and units."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    steer: np.ndarray
    accel: np.ndarray
    lateral_accel: np.ndarray
    yaw_rate: np.ndarray
    slip: np.ndarray
    gear: np.ndarray
    rpm: np.ndarray
    odometer: np.ndarray

    @staticmethod
    def from_states(states: Sequence[VehicleState]) -> FleetState:
        cols = {f.name: [getattr(s, f.name) for s in states]
                for f in dataclasses.fields(FleetState)}
        return FleetState(**{name: np.array(v, dtype=np.int64 if name == "gear"
                                             else np.float64)
                             for name, v in cols.items()})

    def __len__(self) -> int:
        return len(self.x)

    def state(self, i: int) -> VehicleState:
        """Vehicle ``i`` as a :class:`VehicleState` (plain Python numbers)."""
        return VehicleState(**{f.name: getattr(self, f.name)[i].item()
                               for f in dataclasses.fields(FleetState)})


@dataclass(slots=True)
class FleetControls:
    """N vehicles' controls as arrays, CARLA VehicleControl semantics: throttle,
    brake in [0, 1], steer in [-1, 1] (out-of-range values are clipped), hand_brake
    and reverse as booleans. (No manual gear: NPCs drive automatics.)"""

    throttle: np.ndarray
    steer: np.ndarray
    brake: np.ndarray
    hand_brake: np.ndarray
    reverse: np.ndarray

    @staticmethod
    def from_controls(controls: Sequence[VehicleControl]) -> FleetControls:
        return FleetControls(
            throttle=np.array([c.throttle for c in controls], np.float64),
            steer=np.array([c.steer for c in controls], np.float64),
            brake=np.array([c.brake for c in controls], np.float64),
            hand_brake=np.array([c.hand_brake for c in controls], bool),
            reverse=np.array([c.reverse for c in controls], bool),
        )


def step_many(states: FleetState, controls: FleetControls, params: VehicleParams,
              dt: float = 0.05, substeps: int = 10) -> FleetState:
    """:func:`step` for N vehicles sharing ``params``, vectorised with numpy: the
    same algorithm, line for line (the gearbox's branches become masks). Returns a
    new state; out-of-range controls are clipped."""
    if not dt > 0 or substeps < 1:
        raise ValueError(f"dt must be > 0 and substeps >= 1, got dt={dt}, substeps={substeps}")
    p = params
    h = dt / substeps
    throttle = np.minimum(np.maximum(controls.throttle, 0.0), 1.0)
    brake = np.minimum(np.maximum(controls.brake, 0.0), 1.0)
    hand_brake = controls.hand_brake
    v0 = states.speed
    abs_v0 = np.abs(v0)
    ratios = np.asarray(p.overall_ratios)

    # 1. Powertrain: automatic gearbox (see select_gear), rpm, drive, engine braking.
    fresh = states.gear < 1
    gear = np.where(fresh, 1, states.gear)
    up = p.upshift_rpm[0] + throttle * (p.upshift_rpm[1] - p.upshift_rpm[0])
    down = p.downshift_rpm[0] + throttle * (p.downshift_rpm[1] - p.downshift_rpm[0])
    gear_rpm = abs_v0 / p.wheel_radius * ratios[gear + 1] * _RPM_PER_RAD_S
    shifted = gear + ((gear_rpm > up) & (gear < p.gears)) - ((gear_rpm < down) & (gear > 1))
    gear = np.where(controls.reverse, -1, np.where(fresh, 1, shifted))
    ratio = ratios[gear + 1]
    abs_ratio = np.abs(ratio)
    rpm = np.maximum(p.idle_rpm, abs_v0 / p.wheel_radius * abs_ratio * _RPM_PER_RAD_S)
    torque = np.interp(rpm, p.curve_rpm, p.curve_torque, right=0.0)
    a_drive = np.where(hand_brake, 0.0, throttle * torque * ratio * p.accel_per_torque)
    rev_share = np.minimum(np.maximum((rpm - p.idle_rpm) / (p.redline_rpm - p.idle_rpm),
                                      0.0), 1.0)
    engine_brake = ((1.0 - throttle) * p.engine_brake_torque * rev_share
                    * abs_ratio * p.accel_per_torque)
    a_resist_fixed = np.where(hand_brake, p.hand_brake_decel, engine_brake)
    a_resist_fixed = a_resist_fixed + brake * p.max_brake_decel + p.rolling_decel

    # 2. Steering ramps for all substeps at once (rows: substeps), and the curvature.
    steer0 = states.steer
    steer_err = np.minimum(np.maximum(controls.steer, -1.0), 1.0) * p.max_steer_deg - steer0
    lim = p.max_steer_rate_deg_s * h * np.arange(1, substeps + 1)[:, None]
    steers = steer0 + np.minimum(np.maximum(steer_err, -lim), lim)
    tan_d = np.tan(np.radians(steers))
    L, lr = p.wheelbase, p.rear_axle_to_origin
    kappa_ds = tan_d / np.sqrt(L * L + lr * lr * tan_d * tan_d)

    mu_g, k_drag, half_h = p.mu_g, p.drag_per_v2, 0.5 * h
    x, y, v, odo = states.x, states.y, v0, states.odometer
    yaw = np.radians(states.yaw)
    drive_h = a_drive * h
    for k in range(substeps):
        kappa_d = kappa_ds[k]
        vv = v * v
        v_free = v + drive_h
        slowed = np.maximum(np.abs(v_free) - (a_resist_fixed + k_drag * vv) * h, 0.0)
        dv = np.copysign(slowed, v_free) - v

        a_long, a_lat = dv / h, vv * kappa_d
        scale = mu_g / np.maximum(np.sqrt(a_long * a_long + a_lat * a_lat), mu_g)
        v_new = v + dv * scale
        kappa = kappa_d * scale

        ds = (v + v_new) * half_h
        dyaw = ds * kappa
        course = yaw + 0.5 * dyaw + np.arcsin(kappa * lr)
        x = x + ds * np.cos(course)
        y = y + ds * np.sin(course)
        yaw = yaw + dyaw
        odo = odo + np.abs(ds)
        v = v_new

    return FleetState(
        x=x, y=y, yaw=(np.degrees(yaw) + 180.0) % 360.0 - 180.0, speed=v,
        steer=steers[-1], accel=(v - v0) / dt, lateral_accel=a_lat * scale,
        yaw_rate=np.degrees(v * kappa), slip=np.degrees(np.arcsin(kappa * lr)),
        gear=gear.astype(np.int64), rpm=rpm, odometer=odo,
    )
