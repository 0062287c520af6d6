"""The oracle closed loop as real processes through the launcher: it runs to the
scenario's end, exits 0, and the recording holds every frame of every topic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bus.recording import Recording


@pytest.mark.timeout(240)
def test_oracle_loop_launch_runs_to_the_end_and_records_it(bus_env, tmp_path):
    out = tmp_path / "drive.mcap"
    proc = subprocess.run(
        [sys.executable, "-m", "launch.cli", "launch", "oracle_loop", "duration:=3.0",
         f"out:={out}", "--ns", bus_env], capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with Recording.open(out) as rec:
        topics = rec.topics()
        frames = [m.decode().header.frame for m in rec.messages(["/control/command"])]
    assert frames == list(range(60))  # 3 s at 20 Hz, none missed
    for topic in ("/ego/state", "/sim/ground_truth", "/perception/objects",
                  "/planning/trajectory", "/sensors/camera/front"):
        assert topics[topic][2] == 60, (topic, topics[topic])
    assert topics["/map/opendrive"][2] == 1
