"""bench/bus.py runs end to end (a smoke test: figures are checked by reading the
bench's output, not here; timing assertions do not belong in the test suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bus.py"


@pytest.mark.timeout(120)
def test_bus_bench_quick_prints_its_figures_as_json():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["lost_total"] == 0
    for key in ("latency_ratio_p50_small", "latency_ratio_p50_image",
                "latency_ratio_p99_small", "latency_ratio_p99_image",
                "throughput_ratio_small", "throughput_ratio_image"):
        assert figures[key] > 0, key
    assert set(figures["target_met"]) == {"latency_p50_small", "latency_p50_image"}
