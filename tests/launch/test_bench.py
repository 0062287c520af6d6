"""``drivestack bench``: the runner on small scripts of known behaviour (figures,
crash, no figures, hang with a child process), and once on the real planning bench."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

from launch.bench import DEFAULT_BENCH_DIR, BenchRunner, discover, run_benches
from launch.cli import main
from tests.launch.processes import wait_gone

SCRIPTS = {
    "fast": """
        \"\"\"Benchmark: prints a table, then its figures.\"\"\"
        import json
        print("speed  2.0")
        print(json.dumps({"speed": 2.0, "speed_target_met": True, "ratio_target_met": False,
                          "rounds": 1}))
        """,
    "crash": """
        \"\"\"Benchmark: fails halfway.\"\"\"
        import sys
        print("started")
        sys.exit(3)
        """,
    "nojson": """
        \"\"\"Benchmark: forgets its figures.\"\"\"
        print("speed  2.0")
        """,
    "hang": """
        \"\"\"Benchmark: starts a child and never ends.\"\"\"
        import pathlib, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        pathlib.Path(sys.argv[0]).with_suffix(".pid").write_text(str(child.pid))
        print("waiting", flush=True)
        time.sleep(600)
        """,
}


def _write(bench_dir: Path, names: list[str]) -> None:
    bench_dir.mkdir(exist_ok=True)
    for name in names:
        body = textwrap.dedent(SCRIPTS[name])
        (bench_dir / f"{name}.py").write_text(body + '\nif __name__ == "__main__":\n    pass\n')
    (bench_dir / "measure.py").write_text('"""A helper, no script."""\nX = 1\n')


def test_discover_finds_scripts_not_helpers(tmp_path: Path) -> None:
    _write(tmp_path, ["fast", "crash"])
    assert list(discover(tmp_path)) == ["crash", "fast"]


def test_the_checkout_bench_folder_has_the_benchmarks() -> None:
    assert {"bus", "perception", "planning", "sim", "closed_loop"} <= set(
        discover(DEFAULT_BENCH_DIR))
    assert "measure" not in discover(DEFAULT_BENCH_DIR)


def test_figures_targets_and_failures(tmp_path: Path) -> None:
    _write(tmp_path, ["fast", "crash", "nojson"])
    lines: list[str] = []
    results, interrupted = run_benches(tmp_path, ["fast", "crash", "nojson"],
                                       echo=lines.append)
    assert not interrupted
    fast, crash, nojson = results
    assert fast.status == "ok" and fast.figures["speed"] == 2.0
    assert fast.targets == {"speed_target_met": True, "ratio_target_met": False}
    assert crash.status == "failed" and crash.returncode == 3
    assert nojson.status == "failed" and "no JSON" in nojson.detail
    # the tables reach the user; the figures' JSON line does not
    assert "speed  2.0" in lines and "started" in lines
    assert not any(line.startswith("{") for line in lines)


def test_a_hung_script_is_stopped_with_its_children(tmp_path: Path) -> None:
    _write(tmp_path, ["hang", "fast"])
    t0 = time.monotonic()
    results, _ = run_benches(tmp_path, ["hang", "fast"], timeout_s=1.0, echo=lambda _: None)
    assert time.monotonic() - t0 < 30
    assert results[0].status == "timed out"
    assert results[1].status == "ok"  # the next one still runs
    assert wait_gone([int((tmp_path / "hang.pid").read_text())], 5) == []


def test_stop_ends_the_running_script_and_starts_no_more(tmp_path: Path) -> None:
    _write(tmp_path, ["hang", "fast"])
    runner = BenchRunner(echo=lambda _: None)
    threading.Timer(1.0, runner.stop).start()
    hang = runner.run("hang", tmp_path / "hang.py", [])
    fast = runner.run("fast", tmp_path / "fast.py", [])
    assert hang.status == "interrupted" and hang.wall_s < 20
    assert fast.status == "interrupted" and fast.detail == "not started"


def test_cli_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, ["fast", "crash"])
    out = tmp_path / "bench.json"
    assert main(["bench", "--bench-dir", str(tmp_path), "fast", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fast" in printed and "targets 1/2 met, missed: ratio_target_met" in printed
    figures = json.loads(printed.strip().splitlines()[-1])
    assert figures == json.loads(out.read_text())
    assert figures["targets_missed"] == ["fast.ratio_target_met"]
    # --check makes a missed target an error; a crash always is
    assert main(["bench", "--bench-dir", str(tmp_path), "fast", "--check"]) == 1
    assert main(["bench", "--bench-dir", str(tmp_path)]) == 1
    assert "1 benchmark(s) failed: crash" in capsys.readouterr().err


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, ["fast"])
    assert main(["bench", "--bench-dir", str(tmp_path), "nope"]) == 2
    assert "unknown benchmark(s) nope; available: fast" in capsys.readouterr().err
    assert main(["bench", "--bench-dir", str(tmp_path / "missing")]) == 2
    assert "no bench folder at" in capsys.readouterr().err
    assert main(["bench", "--bench-dir", str(tmp_path), "--timeout", "0"]) == 2
    assert main(["bench", "--bench-dir", str(tmp_path), "--list"]) == 0
    assert "prints a table, then its figures" in capsys.readouterr().out


def test_the_real_planning_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "planning", "--quick"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    planning = figures["benchmarks"]["planning"]
    assert planning["status"] == "ok"
    assert set(planning["targets"]) == {"route_target_met", "steps_target_met",
                                        "ride_target_met"}
