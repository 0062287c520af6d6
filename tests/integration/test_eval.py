"""``drivestack eval``: a suite of two short routes on two workers, each a real
closed loop in its own process and bus namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROUTE = """\
    map: town_grid
    seed: {seed}
    duration_s: 40
    route:
      waypoints:
        - {{x: 115.0, y: {y}}}
        - {{x: {x_end}, y: {y}}}
"""


@pytest.mark.timeout(400)
def test_two_routes_on_two_workers(tmp_path: Path) -> None:
    # eastbound on y = -98.25, westbound on y = -101.75, between two junctions
    (tmp_path / "east.yaml").write_text(textwrap.dedent(ROUTE.format(seed=1, y=-98.25,
                                                                     x_end=175.0)))
    (tmp_path / "west.yaml").write_text(textwrap.dedent(ROUTE.format(
        seed=2, y=-101.75, x_end=175.0)).replace("x: 115.0", "x: 185.0").replace(
        "x: 175.0", "x: 125.0"))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent("""\
        name: two
        oracle: true
        runs:
          - {name: east, scenario: east.yaml}
          - {name: west, scenario: west.yaml}
    """))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "eval",
                           str(tmp_path / "suite.yaml"), "--workers", "2", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["east", "west"]
    for r in report["runs"]:
        assert r["returncode"] == 0 and r["metrics"]["end_reason"] == "route_completed", r
        assert (out / r["name"] / "drive.mcap").is_file()
    assert report["mean"]["driving_score"] == 100.0 and report["collisions"] == 0
    assert "mean" in proc.stdout and "east" in proc.stdout
