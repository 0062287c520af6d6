"""Projecting a point on a route polyline: where along the route (m) a point is.

The route is ``xy`` (N, 2), world frame metres, with ``s`` (N,) the arc length at
each vertex. Both the local planner (the ego's position each tick, on the two
segments around its last match) and the stop-line finder (a light's head, on the
segments near a junction entry, once per route) ask it.
"""

from __future__ import annotations

import numpy as np


def foot_s(xy: np.ndarray, s: np.ndarray, segments: np.ndarray, p: np.ndarray
           ) -> float | None:
    """Route distance (m) of the foot of point ``p`` on the nearest of the route
    segments starting at the vertex indices ``segments`` (ends clamped; indices off
    the route ignored), or None when none is left. Ties go to the first segment
    listed."""
    segs = segments[(segments >= 0) & (segments < len(xy) - 1)]
    if not len(segs):
        return None
    a, b = xy[segs], xy[segs + 1]
    d = b - a
    length2 = np.maximum((d * d).sum(1), 1e-12)
    t = np.clip(((p - a) * d).sum(1) / length2, 0.0, 1.0)
    dist = np.hypot(*(a + t[:, None] * d - p).T)
    k = int(np.argmin(dist))
    return float(s[segs[k]] + t[k] * np.sqrt(length2[k]))
