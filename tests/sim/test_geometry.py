"""Box overlap and segment crossing: the building blocks of collision and red-light checks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.geometry import Box2D, overlaps, segments_cross


def boxes(*rows: tuple[float, ...]) -> np.ndarray:
    return np.array(rows, float)


def test_axis_aligned_overlap_and_gap():
    ego = Box2D(0, 0, 0, 2.4, 1.0)
    got = overlaps(ego, boxes((4.7, 0, 0, 2.4, 1.0), (4.9, 0, 0, 2.4, 1.0), (0, 2.1, 0, 2.4, 1.0),
                              (0, 1.9, 0, 2.4, 1.0)))
    assert got.tolist() == [True, False, False, True]


def test_rotated_boxes_use_all_four_axes():
    ego = Box2D(0, 0, 0, 2.0, 1.0)
    # A box rotated 45 deg whose corner would enter the AABB gap but not the box.
    diag = np.sqrt(2) * 0.5
    near_corner = boxes((2.0 + diag + 1.05, 1.0 + diag + 0.05, 45.0, 1.0, 1.0))
    assert not overlaps(ego, near_corner)[0]
    assert overlaps(ego, boxes((2.5, 0, 45.0, 1.0, 1.0)))[0]


def test_corners_follow_carla_yaw():
    # yaw 90: the box's front points to +y (CARLA, left-handed).
    c = Box2D(0, 0, 90, 2.0, 1.0).corners()
    assert c[:, 1].max() == pytest.approx(2.0) and c[:, 0].max() == pytest.approx(1.0)


def test_empty_others():
    assert overlaps(Box2D(0, 0, 0, 1, 1), np.zeros((0, 5))).shape == (0,)


def test_segments_cross():
    a, b = np.array([0.0, -1]), np.array([0.0, 1])
    assert segments_cross(a, b, np.array([-1.0, 0]), np.array([1.0, 0]))
    assert not segments_cross(a, b, np.array([0.5, 0]), np.array([1.0, 0]))
    assert not segments_cross(a, b, np.array([-1.0, 2]), np.array([1.0, 2]))

