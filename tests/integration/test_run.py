"""``drivestack run`` through real processes: a short route driven to its end, the
run directory it leaves, and one-line user errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bus.recording import Recording

SHORT_ROUTE = """\
    # 70 m eastbound on town_grid's inner road, between two junctions
    map: town_grid
    seed: 1
    duration_s: 40
    route:
      waypoints:
        - {x: 115.0, y: -98.25}
        - {x: 185.0, y: -98.25}
"""


def run(*args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launch.cli", "run", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_a_short_route_is_driven_to_its_end(bus_env, tmp_path: Path) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text(textwrap.dedent(SHORT_ROUTE))
    out = tmp_path / "run"
    proc = run("--scenario", str(scenario), "--oracle", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["end_reason"] == "route_completed", m
    assert m["route_completion"] == 100.0 and m["driving_score"] == 100.0
    assert m["infractions"]["counts"].get("collision_vehicle", 0) == 0
    assert 60.0 < m["distance_m"] < 90.0 and m["duration_s"] < 40.0
    assert m["latency_ms"]["end_to_end"]["count"] > 0
    assert "driving score" in proc.stdout and "100.0" in proc.stdout
    assert (out / "scenario.yaml").is_file() and (out / "log.txt").is_file()
    with Recording.open(out / "drive.mcap") as rec:
        topics = rec.topics()
    assert topics["/control/command"][2] > 100 and "/sensors/camera/front" in topics


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    proc = run("--scenario", "no_such_scenario", "--out", str(tmp_path / "a"))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "no_such_scenario" in err and "town_grid_route" in err and "\n" not in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    proc = run("--oracle", "--out", str(tmp_path / "full"))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    proc = run("--route", str(tmp_path / "none.xml"), "--out", str(tmp_path / "b"))
    assert proc.returncode == 2 and "--route-id" in proc.stderr
