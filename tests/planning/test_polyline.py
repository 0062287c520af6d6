"""foot_s: a point's distance along a route polyline."""

from __future__ import annotations

import numpy as np
import pytest

from planning.polyline import foot_s

# an L: 10 m east, then 10 m north (a zero-length segment at the corner)
XY = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
S = np.array([0.0, 10.0, 10.0, 20.0])
ALL = np.arange(len(XY))


def test_the_foot_on_the_nearest_segment_is_interpolated():
    assert foot_s(XY, S, ALL, np.array([4.0, 1.5])) == pytest.approx(4.0)
    assert foot_s(XY, S, ALL, np.array([9.0, 7.0])) == pytest.approx(17.0)


def test_ends_are_clamped_and_only_the_segments_asked_count():
    assert foot_s(XY, S, ALL, np.array([-5.0, 0.5])) == pytest.approx(0.0)
    assert foot_s(XY, S, ALL, np.array([10.5, 30.0])) == pytest.approx(20.0)
    # only the first segment: a point beside the second has its foot on the first
    assert foot_s(XY, S, np.array([0]), np.array([9.0, 7.0])) == pytest.approx(9.0)


def test_indices_off_the_route_are_ignored():
    assert foot_s(XY, S, np.array([-1, 0]), np.array([3.0, 0.0])) == pytest.approx(3.0)
    assert foot_s(XY, S, np.array([-1, 3, 9]), np.array([3.0, 0.0])) is None
