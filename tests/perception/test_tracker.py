"""Tracker: velocity of a constant-velocity target, ids through an occlusion and
through crossing targets, ego-motion compensation with a world pose."""

from __future__ import annotations

import numpy as np

from bus.messages import Rotation, Transform, Vector3
from perception.objects import Detection
from perception.tracker import Tracker

DT = 0.05


def det(x: float, y: float, label: str = "vehicle") -> Detection:
    return Detection(label, np.array([x, y, 0.75]), np.array([4.5, 1.9, 1.5]), 0.0, 0.9,
                     100)


def test_constant_velocity_target_speed_within_0_5_m_s_after_1_s() -> None:
    rng = np.random.default_rng(0)
    tr = Tracker()
    v = np.array([4.0, -1.5])
    for k in range(21):  # 0 .. 1 s
        p = np.array([10.0, 2.0]) + v * k * DT + rng.normal(0, 0.15, 2)
        out = tr.update([det(*p)], k * DT)
    (obj,) = out
    err = float(np.hypot(obj.velocity.x - v[0], obj.velocity.y - v[1]))
    assert err < 0.5, err
    assert obj.track_id == 1


def test_birth_needs_hits_and_ids_survive_a_3_frame_occlusion() -> None:
    tr = Tracker()
    assert tr.update([det(10, 0)], 0.0) == []  # tentative
    tr.update([det(10.2, 0)], DT)
    out = tr.update([det(10.4, 0)], 2 * DT)
    assert [o.track_id for o in out] == [1]
    for k in range(3, 6):  # occluded
        tr.update([], k * DT)
    out = tr.update([det(10 + 0.2 * 6, 0)], 6 * DT)
    assert [o.track_id for o in out] == [1]
    # gone for good after max_misses
    for k in range(7, 14):
        out = tr.update([], k * DT)
    assert out == [] and tr.tracks == []


def test_crossing_targets_keep_their_ids() -> None:
    tr = Tracker()
    ids_a, ids_b = set(), set()
    for k in range(40):
        t = k * DT
        a = (10.0 + 5 * t, -3.0 + 3 * t)  # crosses b at t = 1 s
        b = (10.0 + 5 * t, 3.0 - 3 * t)
        out = tr.update([det(*a), det(*b)], t)
        for o in out:
            if abs(a[1] - b[1]) < 1.0:
                continue  # too close to tell apart
            if abs(o.position.y - a[1]) < 0.3:
                ids_a.add(o.track_id)
            elif abs(o.position.y - b[1]) < 0.3:
                ids_b.add(o.track_id)
        if k > 25:  # after the crossing, the ids are where they were
            assert len(out) == 2
    assert ids_a == {1} and ids_b == {2}


def test_labels_do_not_mix_and_ego_motion_is_compensated() -> None:
    tr = Tracker()
    for k in range(21):
        t = k * DT
        ego = Transform(Vector3(8.0 * t, 0.0, 0.0), Rotation(yaw=0.0))
        # a parked car at world x = 30 seen from an ego driving at 8 m/s
        out = tr.update([det(30.0 - 8.0 * t, 2.0), det(15.0, -3.0, "pedestrian")], t, ego)
    car = next(o for o in out if o.label == "vehicle")
    ped = next(o for o in out if o.label == "pedestrian")
    assert abs(car.velocity.x) < 0.3 and abs(car.position.x - 22.0) < 0.3
    assert abs(ped.velocity.x - 8.0) < 0.5  # keeps pace with the ego in its frame
    assert car.track_id != ped.track_id
