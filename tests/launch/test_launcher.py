"""The launcher with real processes: readiness, output, failures, restarts, signals, cleanup.

Most tests run a stand-in for ``launch.node_main`` (same command line and environment
contract, behaviour chosen by its params) so that crashes, slow readiness and ignored
SIGTERMs are deterministic; the last test runs the real demo nodes over the real bus.
Signal tests run the launcher in its own subprocess (and session), as a terminal would.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bus.transport import namespace_dir
from launch.launcher import Launcher, _Output, describe_exit, launch_main, node_command
from launch.launchfile import NodeSpec, load_launch_file
from tests.launch.processes import wait_gone

pytestmark = [pytest.mark.timeout(30), pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process checks read /proc")]

REPO = Path(__file__).resolve().parents[2]
NS = "launchtest"

FAKE_NODE_MAIN = textwrap.dedent('''
    """Stand-in for launch.node_main: the same contract, behaviour from --params-json.

    ready_after: s before writing ready   never_ready: true   ignore_sigterm: true
    exit_after: s, exit_code: n           fail_starts: n with counter: file (exit 3)
    """
    import argparse, json, os, signal, sys, time
    from pathlib import Path

    parser = argparse.ArgumentParser()
    for opt in ("--node", "--name", "--params-json"):
        parser.add_argument(opt, required=True)
    parser.add_argument("--params-source", default="parameters")
    parser.add_argument("--remap", action="append", default=[])
    args = parser.parse_args()
    params = json.loads(args.params_json)
    root = Path(os.environ["DRIVESTACK_RUNTIME_DIR"]) / f"drivestack-{os.getuid()}"
    sock = root / os.environ["DRIVESTACK_NS"] / f"{args.name}.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.touch()


    def stop(signum, frame):
        print(f"{args.name} stopping", flush=True)
        sock.unlink()
        sys.exit(0)


    signal.signal(signal.SIGTERM, signal.SIG_IGN if params.get("ignore_sigterm") else stop)
    print(json.dumps({"name": args.name, "node": args.node, "params": params,
                      "remaps": args.remap}))
    print(f"{args.name} starting", file=sys.stderr)
    starts = 1
    if "counter" in params:
        counter = Path(params["counter"])
        starts = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(starts))
    time.sleep(params.get("ready_after", 0))
    if not params.get("never_ready"):
        os.write(int(os.environ["DRIVESTACK_READY_FD"]), b"ready\\n")
    if starts <= params.get("fail_starts", 0):
        time.sleep(0.1)
        print(f"{args.name} giving up, start {starts}", file=sys.stderr)
        sys.exit(3)
    if "exit_after" in params:
        time.sleep(params["exit_after"])
        sys.exit(params.get("exit_code", 0))
    while True:
        time.sleep(1)
''')


# ------------------------------------------------------------------------ helpers
@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The stand-in importable by node processes; a short private bus runtime dir
    (ipc socket paths are limited to ~100 characters, so not under tmp_path)."""
    (tmp_path / "fake_node_main.py").write_text(FAKE_NODE_MAIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO)]))
    monkeypatch.setenv("NO_COLOR", "1")
    runtime = Path(tempfile.mkdtemp(prefix="ds"))
    monkeypatch.setenv("DRIVESTACK_RUNTIME_DIR", str(runtime))
    yield tmp_path
    shutil.rmtree(runtime, ignore_errors=True)


def launch_file(tmp_path: Path, **nodes: dict) -> Path:
    """A launch file of stand-in nodes: name -> node entry keys (params, restart, ...)."""
    path = tmp_path / "test_launch.yaml"
    entries = [{"node": "fake.module:StandIn", "name": name, **entry}
               for name, entry in nodes.items()]
    path.write_text(yaml.safe_dump({"nodes": entries}))
    return path


def started_pids(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"started (\w+) \(pid (\d+)\)", output)}


class LaunchProcess:
    """A launcher in a subprocess of its own session (like a shell job), output collected."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> None:
        with self._changed:
            ok = self._changed.wait_for(lambda: re.search(pattern, "".join(self.lines))
                                        or self.proc.poll() is not None, timeout)
        assert ok and re.search(pattern, self.output), f"no {pattern!r} in:\n{self.output}"

    def finish(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(2)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def launch_process() -> Iterator[type[LaunchProcess]]:
    started: list[LaunchProcess] = []

    class Tracked(LaunchProcess):
        def __init__(self, code: str) -> None:
            super().__init__(code)
            started.append(self)

    yield Tracked
    for lp in started:
        lp.kill()


def stand_in_launcher(file: Path, ready_timeout: float = 10.0) -> str:
    return (
        "import sys\n"
        "from launch.launcher import Launcher\n"
        "from launch.launchfile import load_launch_file\n"
        f"sys.exit(Launcher(load_launch_file({str(file)!r}), namespace={NS!r}, "
        f"ready_timeout={ready_timeout}, entry_module='fake_node_main').run())\n"
    )


def run_in_process(file: Path, ready_timeout: float = 10.0) -> int:
    return Launcher(load_launch_file(file), namespace=NS, ready_timeout=ready_timeout,
                    entry_module="fake_node_main").run()


THREE = {"a": {"params": {"x": 1}, "remaps": {"/in": "/out"}}, "b": {}, "c": {}}


# -------------------------------------------------------------------------- units
def test_node_command_follows_the_node_main_contract() -> None:
    spec = NodeSpec(name="t", node="m.n:C", params={"r": 2}, remaps={"/a": "/b", "/c": "/d"})
    assert node_command(spec) == [
        sys.executable, "-m", "launch.node_main", "--node", "m.n:C", "--name", "t",
        "--params-json", '{"r": 2}', "--params-source", "parameters", "--remap", "/a:=/b",
        "--remap", "/c:=/d"]


def test_describe_exit() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "killed by SIGKILL"


def test_prefix_is_coloured_only_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, pipe = Tty(), io.StringIO()
    _Output().line(tty, "talker", 36, "hi")
    _Output().line(pipe, "talker", 36, "hi")
    assert tty.getvalue() == "\033[36m[talker]\033[0m hi\n"
    assert pipe.getvalue() == "[talker] hi\n"


def test_launch_main_reports_bad_input_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert launch_main(str(tmp_path / "none.yaml")) == 2
    assert "none.yaml: no such launch file" in capsys.readouterr().err
    assert launch_main("demo", ["rat:=3"]) == 2
    assert "args.rat: not declared" in capsys.readouterr().err
    assert launch_main("demo", namespace="../etc") == 2
    assert "bad bus namespace" in capsys.readouterr().err


# ------------------------------------------------------------- stand-in processes
def test_three_nodes_come_up_and_sigterm_stops_them_cleanly(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    lp = launch_process(stand_in_launcher(launch_file(env, **THREE)))
    lp.wait_for(r"up: 3 nodes ready")
    pids = started_pids(lp.output)
    assert sorted(pids) == ["a", "b", "c"]
    # each node's stdout and stderr are forwarded by their own readers, so a node's
    # lines may arrive after the launcher's "up" line: wait for them, do not assume
    lp.wait_for(r"(?m)^\[a\] \{.*\}$")
    lp.wait_for(r"(?m)^\[b\] b starting$")  # stderr, prefixed too
    a = json.loads(re.search(r"^\[a\] (\{.*\})$", lp.output, re.M)[1])
    assert a == {"name": "a", "node": "fake.module:StandIn", "params": {"x": 1},
                 "remaps": ["/in:=/out"]}
    ns_dir = namespace_dir(NS)
    assert sorted(p.name for p in ns_dir.iterdir()) == ["a.sock", "b.sock", "c.sock"]

    t0 = time.monotonic()
    lp.proc.send_signal(signal.SIGTERM)
    assert lp.finish(5) == 0, lp.output
    assert time.monotonic() - t0 < 5
    for name in pids:  # said in each node's SIGTERM handler: output drained to the end
        assert f"[{name}] {name} stopping" in lp.output
    assert "SIGTERM received: stopping" in lp.output
    assert wait_gone(list(pids.values()), 1) == []
    assert not ns_dir.exists()


def test_sigkilled_node_ends_the_run_naming_it(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    lp = launch_process(stand_in_launcher(launch_file(env, **THREE)))
    lp.wait_for(r"up: 3 nodes ready")
    pids = started_pids(lp.output)
    os.kill(pids["b"], signal.SIGKILL)
    assert lp.finish(5) == 1
    out = lp.output
    assert re.search(r"error: required node b \(fake.module:StandIn, .*test_launch.yaml "
                     r"nodes\[1\]\) died: killed by SIGKILL; "
                     r"its last stderr lines:\n  \| b starting", out), out
    assert "[a] a stopping" in out and "[c] c stopping" in out
    assert wait_gone(list(pids.values()), 1) == []
    assert not namespace_dir(NS).exists()  # b's socket file included


def test_sigint_to_launcher_group_is_ordered_shutdown(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    """Ctrl-C signals the whole foreground group; nodes are not in it, so they stop
    once, by the launcher's SIGTERM (they would print no 'stopping' on SIGINT)."""
    lp = launch_process(stand_in_launcher(launch_file(env, **THREE)))
    lp.wait_for(r"up: 3 nodes ready")
    pids = started_pids(lp.output)
    assert all(os.getpgid(pid) == pid for pid in pids.values())  # each its own group
    os.killpg(lp.proc.pid, signal.SIGINT)
    assert lp.finish(5) == 0, lp.output
    assert "SIGINT received: stopping" in lp.output
    assert all(f"[{n}] {n} stopping" in lp.output for n in pids)
    assert wait_gone(list(pids.values()), 1) == []


def test_node_ignoring_sigterm_is_killed_within_5_s(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    file = launch_file(env, stubborn={"params": {"ignore_sigterm": True}}, fine={})
    lp = launch_process(stand_in_launcher(file))
    lp.wait_for(r"up: 2 nodes ready")
    pids = started_pids(lp.output)
    t0 = time.monotonic()
    lp.proc.send_signal(signal.SIGTERM)
    assert lp.finish(6) == 1  # a node that does not stop cleanly is a failure
    assert time.monotonic() - t0 < 5
    assert "stubborn still running 3 s after SIGTERM: killing it" in lp.output
    assert wait_gone(list(pids.values()), 1) == []
    assert not namespace_dir(NS).exists()


def test_sigkilled_launcher_takes_its_nodes_along(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    lp = launch_process(stand_in_launcher(launch_file(env, **THREE)))
    lp.wait_for(r"up: 3 nodes ready")
    pids = started_pids(lp.output)
    lp.proc.kill()  # only the launcher, not its session: PR_SET_PDEATHSIG does the rest
    lp.proc.wait()
    assert wait_gone(list(pids.values()), 2) == []


def test_restart_on_failure_restarts_the_node(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = launch_file(
        env,
        flaky={"params": {"fail_starts": 2, "counter": str(env / "starts")},
               "restart": "on-failure"},
        main={"params": {"exit_after": 2.0}},
    )
    assert run_in_process(file) == 0
    out = capsys.readouterr()
    assert (env / "starts").read_text() == "3"
    assert "flaky failed (exit code 3); restarting in 0.25 s (restart 1/3)" in out.err
    assert "flaky failed (exit code 3); restarting in 0.5 s (restart 2/3)" in out.err
    assert re.search(r"started flaky \(pid \d+\) \(restart 2/3\)", out.out)
    assert "flaky ready again" in out.out
    assert "required node main exited (exit code 0): stopping" in out.out


def test_restarts_run_out(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = launch_file(
        env,
        flaky={"params": {"fail_starts": 99, "counter": str(env / "starts")},
               "restart": "on-failure", "max_restarts": 1},
        other={},
    )
    assert run_in_process(file) == 1
    err = capsys.readouterr().err
    assert "died: exit code 3 after 1 restarts" in err
    assert "  | flaky giving up, start 2" in err  # the tail of the last run, not the first
    assert "start 1" not in err.split("after 1 restarts")[1]


def test_ready_timeout_names_the_late_node(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = launch_file(env, quick={}, late={"params": {"never_ready": True}},
                       slow={"params": {"ready_after": 0.3}})
    t0 = time.monotonic()
    assert run_in_process(file, ready_timeout=1.0) == 1
    assert time.monotonic() - t0 < 4
    out = capsys.readouterr()
    assert re.search(r"error: not ready after 1 s: late \(", out.err), out.err
    assert "up:" not in out.out
    assert not namespace_dir(NS).exists()


def test_optional_node_failure_does_not_end_the_run(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = launch_file(env, optional={"required": False, "params": {"exit_code": 5,
                                                                   "exit_after": 0.2}},
                       main={"params": {"exit_after": 1.0}})
    assert run_in_process(file) == 1  # the run went on, but a node failed
    out = capsys.readouterr()
    assert "error: node optional (" in out.err and "died: exit code 5" in out.err
    assert "required node main exited (exit code 0): stopping" in out.out


def test_all_nodes_exiting_0_ends_the_run_with_0(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = launch_file(env, one={"required": False, "params": {"exit_after": 0.1}},
                       two={"required": False, "params": {"exit_after": 0.3}})
    assert run_in_process(file) == 0
    assert "every node has exited" in capsys.readouterr().out


# -------------------------------------------------------------------- real nodes
DEMO = ("import sys\nfrom launch.launcher import launch_main\n"
        f"sys.exit(launch_main('demo', ['rate:=50', 'text:=ping'], namespace={NS!r}))\n")


def test_demo_with_real_nodes_relays_and_stops_on_ctrl_c(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    lp = launch_process(DEMO)
    lp.wait_for(r"up: 3 nodes ready", timeout=20)
    lp.wait_for(r"\[listener\] .*heard: PING \d+")  # talker -> relay -> listener
    pids = started_pids(lp.output)
    assert namespace_dir(NS).is_dir()
    os.killpg(lp.proc.pid, signal.SIGINT)
    assert lp.finish(5) == 0, lp.output
    assert wait_gone(list(pids.values()), 1) == []
    assert not namespace_dir(NS).exists()


def test_demo_with_a_real_node_killed_ends_with_an_error_and_no_orphans(
    env: Path, launch_process: type[LaunchProcess]
) -> None:
    lp = launch_process(DEMO)
    lp.wait_for(r"up: 3 nodes ready", timeout=20)
    lp.wait_for(r"\[listener\] .*heard: PING \d+")
    pids = started_pids(lp.output)
    os.kill(pids["relay"], signal.SIGKILL)
    assert lp.finish(5) == 1, lp.output
    assert re.search(r"error: required node relay \(launch.demo_nodes:Relay, .*demo.yaml "
                     r"nodes\[1\]\) died: killed by SIGKILL", lp.output), lp.output
    assert wait_gone(list(pids.values()), 1) == []
    assert not namespace_dir(NS).exists()


def test_demo_record_launch_records_the_pipeline(
    env: Path, tmp_path: Path, launch_process: type[LaunchProcess]
) -> None:
    from bus.recording import Recording

    out = tmp_path / "drive.mcap"
    lp = launch_process(
        "import sys\nfrom launch.launcher import launch_main\n"
        f"sys.exit(launch_main('demo_record', ['rate:=50', 'out:={out}'], "
        f"namespace={NS!r}))\n")
    lp.wait_for(r"up: 4 nodes ready", timeout=20)
    lp.wait_for(r"\[listener\] .*heard: HELLO 1\d\d")  # 2 s at 50 Hz
    os.killpg(lp.proc.pid, signal.SIGINT)
    assert lp.finish(5) == 0, lp.output
    with Recording.open(out) as rec:
        assert not rec.recovered
        topics = rec.topics()
        assert topics["/demo/chatter"][2] >= 50 and topics["/demo/relay"][2] >= 50
        relayed = [m.decode().text for m in rec.messages(["/demo/relay"])]
    assert relayed[0].startswith("HELLO")


def test_a_node_process_exits_with_its_code_after_its_exit_handlers() -> None:
    """``launch.node_main`` skips the interpreter's finalization (seconds with torch
    loaded, past the launcher's SIGTERM grace) but still runs the atexit handlers
    and flushes its output."""
    code = ("import atexit, sys\n"
            "from launch.node_main import exit_now\n"
            "atexit.register(lambda: print('handler ran'))\n"
            "sys.stdout.write('buffered ')\n"
            "exit_now(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout == "buffered handler ran\n"


def test_a_missed_lockstep_deadline_ends_the_node_with_one_line(tmp_path: Path) -> None:
    """A strict deadline miss is a failed run, not a crash: its message names the
    late node, and a traceback would bury it."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("map: town_grid\nlockstep: {first_deadline_s: 0.3, deadline_s: 0.3}\n"
                        "cameras: [{name: front, image_size_x: 64, image_size_y: 32}]\n")
    params = {"scenario": str(scenario), "start_when_subscribed": {}}
    proc = subprocess.run(
        [sys.executable, "-m", "launch.node_main", "--node", "sim.node:SimNode",
         "--name", "sim", "--params-json", json.dumps(params)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DRIVESTACK_NS": f"{NS}-deadline{os.getpid()}"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"^error: node sim: no /control/command for frame 0 within 0.3 s: "
                     r"late node: none publishes /control/command$", proc.stderr, re.M)
