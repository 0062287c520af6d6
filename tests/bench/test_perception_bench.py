"""bench/perception.py runs end to end (a smoke test: the figures are read from the
bench's output, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "perception.py"


@pytest.mark.timeout(180)
def test_perception_bench_quick_prints_its_figures_as_json():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("cpu_forward_p50_ms", "cpu_fp32_b1_p50_ms", "cpu_fp32_b1_p99_ms",
                "cpu_fp32_b4_p50_ms", "onnxruntime_b1_p50_ms", "onnxruntime_b4_p50_ms",
                "cpu_step_ratio"):
        assert figures[key] > 0, key
    assert isinstance(figures["cpu_target_met"], bool)
    assert figures["cpu_fp32_b4_fps"] > 0 and "cuda" in figures
