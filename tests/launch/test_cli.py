"""The drivestack command line: help, the topic table, user errors, and the live-bus
tools (echo, hz, record, launch) against real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bus.recording import Recording
from launch.cli import RateMeter, build_parser, main

CLI = [sys.executable, "-m", "launch.cli"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ["bench", "topics", "echo", "hz", "launch", "record"]:
        assert cmd in out
    assert "not yet available" not in out


def test_topics_prints_the_table(capsys):
    assert main(["topics"]) == 0
    out = capsys.readouterr().out
    assert "/control/command" in out and "ControlCommand" in out and "/map/opendrive" in out


def test_user_errors_are_one_line_and_exit_2(bus_env):
    for argv, expected in (
        (["echo", "/no/topic"], "unknown topic '/no/topic'"),
        (["launch", "no_such_launch_file"], "no_such_launch_file"),
        (["echo", "/demo/chatter", "--ns", "bad/ns"], "bad bus namespace"),
        (["record", "-o", "/proc/no/such/dir/x.mcap", "--ns", bus_env],
         "cannot write the recording /proc/no/such/dir/x.mcap"),
    ):
        proc = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert expected in proc.stderr
        assert "Traceback" not in proc.stderr


def test_tools_need_a_live_bus(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DRIVESTACK_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("DRIVESTACK_NS", raising=False)
    assert main(["hz", "/demo/chatter"]) == 2
    assert "no live drivestack bus" in capsys.readouterr().err


def test_rate_meter():
    m = RateMeter(window=10)
    assert m.stats() is None
    for i in range(20):
        m.tick(i * 0.1)
    rate, lo, hi, std, n = m.stats()
    assert rate == pytest.approx(10.0) and n == 10
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1) and std < 1e-9


def test_parser_rejects_unknown_options():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["echo"])


@pytest.mark.timeout(90)
def test_live_tools_against_a_launched_demo(bus_env, tmp_path):
    """launch demo, then echo, hz and record attach to it by namespace, and Ctrl-C
    stops each cleanly with the recording intact."""
    launcher = subprocess.Popen([*CLI, "launch", "demo", "rate:=40", "--ns", bus_env],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        for line in launcher.stdout:
            if "ready" in line and "up:" in line:
                break
        else:
            pytest.fail("launch did not come up")

        echo = subprocess.run([*CLI, "echo", "/demo/relay", "-n", "2"], capture_output=True,
                              text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        assert echo.stdout.count("---") == 2 and "text: HELLO" in echo.stdout

        out = tmp_path / "rec" / "drive.mcap"
        tools = [subprocess.Popen([*CLI, "hz", "/demo/chatter"], stdout=subprocess.PIPE,
                                  text=True),
                 subprocess.Popen([*CLI, "record", "-o", str(out)], stdout=subprocess.PIPE,
                                  text=True)]
        # wait for record to say it is recording (its start, imports included, is
        # not the test's to time), then about 3 s of the demo
        assert "recording namespace" in tools[1].stdout.readline()
        time.sleep(3.5)
        for t in tools:
            t.send_signal(signal.SIGINT)
        outputs = [t.communicate(timeout=10)[0] for t in tools]
        assert [t.returncode for t in tools] == [0, 0]
        rates = [float(line.split(":")[1]) for line in outputs[0].splitlines()
                 if line.startswith("average rate")]
        assert rates and abs(rates[-1] - 40.0) < 4.0, outputs[0]
        with Recording.open(out) as rec:
            assert not rec.recovered
            topics = rec.topics()
            assert topics["/demo/chatter"][2] >= 80  # ~3 s at 40 Hz
            assert "/diagnostics" in topics
            assert "record" in rec.metadata()["run"]["command"]
            counts = [m.decode().count for m in rec.messages(["/demo/relay"])]
            assert counts == list(range(counts[0], counts[0] + len(counts)))
    finally:
        os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(10)
    assert launcher.returncode == 0
