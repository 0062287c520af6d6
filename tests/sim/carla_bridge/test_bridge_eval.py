"""``drivestack eval --sim carla``: a suite's runs go to the CARLA server (here
`drivestack serve`), one at a time; bad combinations are one error line."""

from __future__ import annotations

import json
from pathlib import Path


def test_eval_suite_on_the_server(carla_server, tools, tmp_path: Path  # type: ignore[no-untyped-def]
                                  ) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: bridge\nruns:\n  - {{name: short, scenario: {tools.short_route}, "
                     "oracle: true}\n")
    out = tmp_path / "eval"
    proc = tools.cli("eval", str(suite), *carla_server.args(), "--out", str(out),
                     "--no-progress", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "results.json").read_text())
    (run,) = report["runs"]
    assert run["options"]["sim"] == "carla" and run["options"]["port"] == carla_server.port
    assert run["metrics"]["end_reason"] == "route_completed"
    assert run["metrics"]["route_completion"] == 100.0
    log = (out / "short" / "log.txt").read_text()
    assert f"on the CARLA server 127.0.0.1:{carla_server.port}: map town_grid" in log


def test_eval_argument_errors(tools, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"runs:\n  - {{scenario: {tools.short_route}}}\n")
    (port,) = tools.free_ports(1)
    for args, expect in (
            (["--sim", "carla", "--workers", "2"], "--workers 1"),
            (["--port", "2000"], "--port needs --sim carla"),
            (["--sim", "carla", "--port", str(port), "--timeout", "1"],
             f"CARLA server 127.0.0.1:{port}: no answer within 1 s")):
        out = tmp_path / "out"
        proc = tools.cli("eval", str(suite), *args, "--out", str(out), "--no-progress",
                         timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expect in lines[0], proc.stderr
        assert not out.exists()
