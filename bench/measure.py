"""What the bench scripts share: run each measurement, print a table, then the
figures as one JSON object on the last line (the contract of every bench script)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

Measurement = Callable[[int, int], dict[str, Any]]


def run_and_report(measurements: Mapping[str, Measurement], n: int, rounds: int,
                   figures: dict[str, Any]) -> dict[str, Any]:
    """Run every ``measurement(n, rounds)``, merge its figures into ``figures``, print
    them as a table and as JSON on the last line; returns the figures."""
    for name, measure in measurements.items():
        t0 = time.perf_counter()
        figures.update(measure(n, rounds))
        print(f"{name}: measured in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return figures
