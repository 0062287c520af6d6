"""bench/carla_server.py runs end to end with the real carla client (a smoke test:
the figures are read from the bench's output, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "carla_server.py"


@pytest.mark.timeout(180)
def test_carla_server_bench_prints_its_figures_as_json():
    pytest.importorskip("carla")
    proc = subprocess.run([sys.executable, str(BENCH), "--ticks", "20", "--rounds", "1"],
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("client_ticks_per_s", "direct_ticks_per_s", "client_camera_fps",
                "direct_camera_fps", "client_vs_direct", "camera_client_vs_direct"):
        assert figures[key] > 0, key
    assert figures["camera_every_frame_received"] is True
    assert figures["camera"] == "800x600"
