"""Suite files for ``drivestack eval``: what they hold, and one clear error each."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from launch.suite import SuiteError, load_suite, run_command, table_lines, threads_per_run


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_suite_yaml_defaults_and_paths(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    suite = load_suite(write(tmp_path / "s.yaml", """\
        oracle: true
        duration: 30
        map_dir: maps
        runs:
          - {scenario: town_grid_route, seed: 3}
          - {name: mine, scenario: my.yaml, oracle: false, duration: 5}
          - {route: r.xml, route_id: "7"}
    """))
    assert suite.name == "s" and [r.name for r in suite.runs] == [
        "00_town_grid_route_s3", "mine", "02_route7"]
    a, b, c = (r.options for r in suite.runs)
    assert a.oracle and a.duration == 30.0 and a.seed == 3
    assert b.scenario == str(tmp_path / "my.yaml") and not b.oracle and b.duration == 5.0
    assert c.route == str(tmp_path / "r.xml") and c.map_dir == str(tmp_path / "maps")
    cmd = run_command(a, tmp_path / "out")
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--duration") + 1] == "30.0"
    assert "--oracle" in cmd and "--no-progress" in cmd and "--no-record-cameras" not in cmd
    lean = load_suite(tmp_path / "s.yaml", record_cameras=False)
    assert all(not r.options.record_cameras for r in lean.runs)
    assert "--no-record-cameras" in run_command(lean.runs[0].options, tmp_path / "out")
    assert cmd[cmd.index("--cpu-threads") + 1] == "1"  # a run's own default
    shared = load_suite(tmp_path / "s.yaml", cpu_threads=threads_per_run(2, cpus=2))
    cmd = run_command(shared.runs[0].options, tmp_path / "out")
    assert cmd[cmd.index("--cpu-threads") + 1] == "1"  # two runs on two cores: one each
    assert threads_per_run(1, cpus=2) == 1  # alone on two cores: one, as `run`
    assert threads_per_run(2, cpus=8) == 3 and threads_per_run(1, cpus=16) == 4
    assert threads_per_run(8, cpus=2) == 1
    with pytest.raises(SuiteError, match="--cpu-threads must be >= 1"):
        load_suite(tmp_path / "s.yaml", cpu_threads=0)


@pytest.mark.parametrize(("text", "needle"), [
    ("runs: []", "non-empty list"),
    ("runz: [{scenario: x}]", "unknown key 'runz'"),
    ("runs: [{scenario: x, speed: 3}]", "runs[0].speed: unknown key"),
    ("runs: [{route: r.xml}]", "runs[0].route_id"),
    ("runs: [{name: a}, {name: a}]", "repeated: a"),
    ("runs: [{seed: many}]", "runs[0]"),
])
def test_bad_suites_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path / "bad.yaml", text))
    assert needle in str(info.value) and "bad.yaml" in str(info.value)
    assert "\n" not in str(info.value)


def test_route_xml_runs_the_routes_whose_town_is_found(shared_dir: Path) -> None:
    routes = shared_dir / "routes" / "carla_lb1_town01_town02.xml"
    suite = load_suite(routes, map_dir=str(shared_dir / "maps" / "carla"), duration=20.0)
    assert len(suite.runs) == 17 and not suite.skipped
    assert all(r.options.route_id and r.options.duration == 20.0 for r in suite.runs)
    with pytest.raises(SuiteError, match="no route whose town"):
        load_suite(routes)  # Town01/Town02 are not built in


def test_table_has_a_row_per_run_and_the_mean() -> None:
    report = {"runs": [{"name": "a", "metrics": {"driving_score": 80.0, "route_completion":
                                                 100.0, "infraction_penalty": 0.8,
                                                 "infractions": {"counts": {"stop_sign": 1}},
                                                 "end_reason": "route_completed"},
                        "returncode": 0, "error": None, "wall_s": 12.0},
                       {"name": "b", "metrics": None, "returncode": 1,
                        "error": "error: boom", "wall_s": 3.0}],
              "mean": {"driving_score": 80.0, "route_completion": 100.0,
                       "infraction_penalty": 0.8},
              "collisions": 0, "wall_s": 15.0, "skipped": ["route 9: town X not found"]}
    lines = table_lines(report)
    assert lines[1].split()[:3] == ["a", "80.0", "100.0"] and "stop_sign:1" in lines[1]
    assert "error: boom" in lines[2] and lines[3].startswith("mean")
    assert lines[-1] == "skipped route 9: town X not found"
