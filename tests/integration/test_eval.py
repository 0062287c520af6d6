"""``drivestack eval``: a suite of two short routes on two workers, each a real
closed loop in its own process and bus namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
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



@pytest.mark.timeout(400)
def test_a_suite_runs_as_ray_tasks(tmp_path: Path) -> None:
    """``--ray local`` starts a Ray instance on this machine and runs each route as
    a Ray task (the extra ``drivestack[ray]``; skipped without it)."""
    pytest.importorskip("ray")
    (tmp_path / "east.yaml").write_text(textwrap.dedent(ROUTE.format(seed=1, y=-98.25,
                                                                     x_end=175.0)))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent("""\
        name: ray
        oracle: true
        runs:
          - {name: east, scenario: east.yaml}
    """))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "eval",
                           str(tmp_path / "suite.yaml"), "--ray", "local", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=380,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    [run] = report["runs"]
    assert run["returncode"] == 0 and run["metrics"]["end_reason"] == "route_completed", run
    assert (out / "east" / "drive.mcap").is_file()

def _processes_mentioning(text: str) -> list[str]:
    """Command lines of this machine's processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_evaluation_and_its_runs(tmp_path: Path, sig: int) -> None:
    # three long runs one at a time: the signal comes while the first one drives,
    # held behind a car stopped in its lane (the route alone took 3.5 s of wall
    # time on a fast machine, which finished it before the signal came)
    (tmp_path / "east.yaml").write_text(textwrap.dedent(ROUTE.format(
        seed=1, y=-98.25, x_end=175.0)).replace("duration_s: 40", "duration_s: 600")
        + "events:\n  - {kind: stopped_vehicle, at_time_s: 0.0, ahead_m: 30.0}\n")
    (tmp_path / "suite.yaml").write_text(textwrap.dedent("""\
        oracle: true
        runs:
          - {name: a, scenario: east.yaml}
          - {name: b, scenario: east.yaml}
          - {name: c, scenario: east.yaml}
    """))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "eval",
                             str(tmp_path / "suite.yaml"), "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        log = out / "a" / "log.txt"
        while not (log.is_file() and "nodes ready" in log.read_text()):  # run a drives
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(2.0)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "interrupted" in stderr
    report = json.loads((out / "results.json").read_text())
    a, b, c = report["runs"]
    assert a["metrics"] is not None and a["metrics"]["end_reason"] == "interrupted", a
    assert (out / "a" / "drive.mcap").is_file()
    for r in (b, c):
        assert r["returncode"] is None and r["error"].startswith("not run"), r
        assert not (out / r["name"]).exists()
    assert report["not_run"] == ["b", "c"] and report["failed"] == []
    assert _processes_mentioning(str(out)) == []  # nothing left behind
