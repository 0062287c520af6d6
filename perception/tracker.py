"""Multi-object tracker: a constant-velocity Kalman filter per track, gated greedy
nearest-neighbour association, track birth after ``birth_hits`` hits and deletion
after ``max_misses`` consecutive misses, stable integer ids.

Frame: tracks live in the **world** frame when the caller passes the ego's world
pose to :meth:`Tracker.update` (the ego's own motion then cancels out and the
velocities are over ground); without a pose they live in the ego frame of each
update, which is right only while the ego stands still (velocities are then
relative to the ego). Detections come in and tracked objects go out in the ego
frame of the update; the conversions are ``bus.frames``'.

Kalman filter: state (x, y, vx, vy), process noise from a white acceleration of
standard deviation ``accel_std`` (m/s^2), position measurement noise ``meas_std``
(m) growing with distance (``meas_std_per_m``: depth error grows with range).

Association: cost = Euclidean distance between the predicted track position and
the detection centre, same label only, gated at ``gate_m`` (plus 1 m per second
since the track was last seen); the pairs are taken greedily in increasing cost
(scipy's Hungarian solver is not a dependency; with gating the greedy choice is
the optimal one except for rare near-ties).

Yaw: a vehicle moving faster than ``yaw_from_velocity_speed`` gets the heading of
its velocity; otherwise the detection's yaw is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bus.frames import ego_to_world, vector_world_to_ego, world_to_ego
from bus.messages import DetectedObject, Transform, Vector3
from perception.objects import Detection


@dataclass(frozen=True)
class TrackerConfig:
    gate_m: float = 3.0
    birth_hits: int = 3
    max_misses: int = 5
    #: confirmed tracks are still output (predicted) for this many missed frames
    coast_frames: int = 2
    accel_std: float = 3.0
    meas_std: float = 0.4
    meas_std_per_m: float = 0.02
    init_speed_std: float = 5.0
    yaw_from_velocity_speed: float = 1.5
    size_smoothing: float = 0.3


@dataclass
class Track:
    id: int
    label: str
    x: np.ndarray  # (4,) x, y, vx, vy
    P: np.ndarray  # (4, 4)
    size: np.ndarray
    yaw_world: float
    confidence: float
    hits: int = 1
    misses: int = 0
    age: int = 1
    last_t: float = 0.0
    confirmed: bool = False
    z: float = 0.0
    history: list[int] = field(default_factory=list)


def _cv_matrices(dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    g = np.array([[dt * dt / 2, 0], [0, dt * dt / 2], [dt, 0], [0, dt]])
    return F, q * q * g @ g.T


_H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])


class Tracker:
    """See the module doc. :meth:`update` once per frame, in time order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.next_id = 1
        self.t: float | None = None

    def reset(self) -> None:
        self.tracks.clear()
        self.t = None

    def _predict(self, dt: float) -> None:
        if dt <= 0:
            return
        F, Q = _cv_matrices(dt, self.config.accel_std)
        for tr in self.tracks:
            tr.x = F @ tr.x
            tr.P = F @ tr.P @ F.T + Q

    def _correct(self, tr: Track, z: np.ndarray, r_std: float) -> None:
        R = np.eye(2) * r_std ** 2
        y = z - _H @ tr.x
        S = _H @ tr.P @ _H.T + R
        Kg = tr.P @ _H.T @ np.linalg.inv(S)
        tr.x = tr.x + Kg @ y
        tr.P = (np.eye(4) - Kg @ _H) @ tr.P

    def update(self, detections: list[Detection], t: float,
               ego_pose: Transform | None = None) -> list[DetectedObject]:
        """Fold in the detections (ego frame) of time ``t`` (s) and return the
        confirmed tracks as DetectedObjects in the ego frame, velocities included.
        ``ego_pose``: the ego's world pose at ``t`` (see the module doc)."""
        cfg = self.config
        dt = 0.0 if self.t is None else t - self.t
        if dt < 0:
            raise ValueError(f"tracker time went backwards: {self.t} -> {t}")
        self.t = t
        self._predict(dt)
        ego_yaw = ego_pose.rotation.yaw if ego_pose is not None else 0.0
        # detections into the tracking frame
        det_xy, det_yaw, det_range = [], [], []
        for d in detections:
            p = d.position
            det_range.append(float(math.hypot(p[0], p[1])))
            if ego_pose is not None:
                p = ego_to_world(p, ego_pose)
            det_xy.append(np.asarray(p[:2], float))
            det_yaw.append(d.yaw + ego_yaw)
        # gated greedy association
        pairs = []
        for i, tr in enumerate(self.tracks):
            gate = cfg.gate_m + (t - tr.last_t)
            for j, d in enumerate(detections):
                if d.label != tr.label:
                    continue
                c = float(np.hypot(*(det_xy[j] - tr.x[:2])))
                if c <= gate:
                    pairs.append((c, i, j))
        pairs.sort()
        used_t, used_d = set(), set()
        for _, i, j in pairs:
            if i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            tr, d = self.tracks[i], detections[j]
            self._correct(tr, det_xy[j], cfg.meas_std + cfg.meas_std_per_m * det_range[j])
            a = cfg.size_smoothing
            tr.size = (1 - a) * tr.size + a * d.size
            tr.z = (1 - a) * tr.z + a * float(d.position[2])
            tr.yaw_world = det_yaw[j]
            tr.confidence = d.confidence
            tr.hits += 1
            tr.misses = 0
            tr.last_t = t
            if tr.hits >= cfg.birth_hits:
                tr.confirmed = True
        for i, tr in enumerate(self.tracks):
            tr.age += 1
            if i not in used_t:
                tr.misses += 1
        self.tracks = [tr for tr in self.tracks
                       if tr.misses <= (cfg.max_misses if tr.confirmed else 0)]
        for j, d in enumerate(detections):
            if j in used_d:
                continue
            r = cfg.meas_std + cfg.meas_std_per_m * det_range[j]
            P = np.diag([r * r, r * r, cfg.init_speed_std ** 2, cfg.init_speed_std ** 2])
            self.tracks.append(Track(
                id=self.next_id, label=d.label, x=np.array([*det_xy[j], 0.0, 0.0]), P=P,
                size=np.asarray(d.size, float).copy(), yaw_world=det_yaw[j],
                confidence=d.confidence, last_t=t, z=float(d.position[2]),
                confirmed=cfg.birth_hits <= 1))
            self.next_id += 1
        return self.objects(ego_pose)

    def objects(self, ego_pose: Transform | None = None) -> list[DetectedObject]:
        """Confirmed tracks seen within ``coast_frames`` frames, in the ego frame."""
        cfg = self.config
        ego_yaw = ego_pose.rotation.yaw if ego_pose is not None else 0.0
        out = []
        for tr in self.tracks:
            if not tr.confirmed or tr.misses > cfg.coast_frames:
                continue
            p = np.array([tr.x[0], tr.x[1], tr.z])
            v = np.array([tr.x[2], tr.x[3], 0.0])
            if ego_pose is not None:
                p = world_to_ego(p, ego_pose)
                v = vector_world_to_ego(v, ego_pose)
            yaw_world = tr.yaw_world
            if (tr.label == "vehicle" and tr.hits >= 3
                    and math.hypot(tr.x[2], tr.x[3]) > cfg.yaw_from_velocity_speed):
                yaw_world = math.degrees(math.atan2(tr.x[3], tr.x[2]))
            yaw = (yaw_world - ego_yaw + 180.0) % 360.0 - 180.0
            conf = tr.confidence * (0.7 ** tr.misses)
            out.append(DetectedObject(
                track_id=tr.id, label=tr.label,
                position=Vector3(float(p[0]), float(p[1]), float(p[2])),
                size=Vector3(*(float(s) for s in tr.size)), yaw=float(yaw),
                velocity=Vector3(float(v[0]), float(v[1]), 0.0),
                confidence=float(min(max(conf, 0.0), 1.0))))
        return out
