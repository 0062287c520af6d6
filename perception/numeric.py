"""Small numeric helpers shared by the post-processing modules."""

from __future__ import annotations

import numpy as np


def median(values: np.ndarray) -> float:
    """The median of a non-empty array without NaNs, the same value as
    ``np.median`` (the mean of the two middle values for an even count), from one
    sort: ``np.median``'s own overhead is ten times the work on the few hundred
    pixels of a blob or a lamp, and it runs for many of them per frame."""
    s = np.sort(values, axis=None)
    mid = len(s) // 2
    if len(s) % 2:
        return float(s[mid])
    if s.dtype.kind != "f":  # integers: averaged in float64, as np.mean does
        s = s[mid - 1:mid + 1].astype(np.float64)
        mid = 1
    return float((s[mid - 1] + s[mid]) / 2)  # floats: in their own precision
