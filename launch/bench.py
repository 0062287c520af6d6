"""``drivestack bench``: run the benchmark scripts of ``bench/`` and gather their figures.

Each script measures against a baseline in the same run and prints its figures as
one JSON object on its last line (the contract of ``bench/measure.py``). The runner
starts each as its own process (``python bench/<name>.py``, in the checkout's root,
so the scripts import the same source tree), shows its table as it prints it, takes
the JSON line, and sums up: per script whether it ran, how long it took, and its
targets (every top-level boolean figure named ``*target_met*`` or ``targets_met``).
The scripts live in the source checkout, not in the installed packages: ``bench/``
beside ``launch/`` (an editable install), or any folder given.

A script that crashes, times out or prints no JSON object last is a failed
benchmark, reported with its exit status; the others still run. Ctrl-C or SIGTERM
stops the running script's whole process group (the bus and closed-loop benches
start processes of their own) and ends the run with what was measured so far.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from launch.signals import handled_signals, kill_group

#: where the scripts are in a source checkout: bench/ beside the packages
DEFAULT_BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
#: s between SIGTERM to a script's process group and SIGKILL
STOP_GRACE_S = 5.0


class BenchError(Exception):
    """A user error: no bench folder, an unknown benchmark name."""


@dataclass
class BenchResult:
    """One script's run. ``status``: ok, failed (exit status, or no JSON object on
    its last line), timed out or interrupted; ``detail`` says why when not ok."""

    name: str
    command: list[str]
    status: str
    wall_s: float
    returncode: int | None
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    @property
    def targets(self) -> dict[str, bool]:
        """Its targets: the top-level boolean figures named for one."""
        return {k: v for k, v in self.figures.items()
                if isinstance(v, bool) and ("target_met" in k or k == "targets_met")}


def discover(bench_dir: Path) -> dict[str, Path]:
    """The benchmark scripts of ``bench_dir`` by name (file stem), sorted: its Python
    files that run as a script (a ``__main__`` guard; helpers such as measure.py
    have none)."""
    if not bench_dir.is_dir():
        raise BenchError(f"no bench folder at {bench_dir}: the benchmarks live in the "
                         "source checkout (pip install -e .); pass --bench-dir DIR")
    scripts = {p.stem: p for p in sorted(bench_dir.glob("*.py"))
               if not p.name.startswith("_")
               and "__name__ == \"__main__\"" in p.read_text(errors="replace")}
    if not scripts:
        raise BenchError(f"{bench_dir} holds no benchmark scripts (Python files with a "
                         "__main__ guard)")
    return scripts


def describe(script: Path) -> str:
    """The first line of a script's docstring (what it measures)."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(errors="replace")))
    except SyntaxError:
        return "(not valid Python)"
    return doc.strip().splitlines()[0] if doc else ""


def select(scripts: dict[str, Path], names: Sequence[str]) -> list[str]:
    """``names`` in the order given (every script when empty), each known once."""
    unknown = [n for n in names if n not in scripts]
    if unknown:
        raise BenchError(f"unknown benchmark(s) {', '.join(unknown)}; available: "
                         f"{', '.join(scripts)}")
    return list(dict.fromkeys(names)) if names else list(scripts)


def last_json_object(line: str) -> dict[str, Any] | None:
    """The figures on a script's last line, or None when it is no JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _exited(pid: int, timeout_s: float) -> bool:
    """Whether child ``pid`` has exited within ``timeout_s``, without reaping it (the
    unreaped zombie keeps its pid, so its process group id stays safe to signal)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:
            return True  # already reaped
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _stop_group(pid: int) -> None:
    """SIGTERM a script's process group, SIGKILL it after :data:`STOP_GRACE_S`.
    Signals only: the thread running the script reaps it."""
    kill_group(pid, signal.SIGTERM)
    _exited(pid, STOP_GRACE_S)
    kill_group(pid, signal.SIGKILL)


class BenchRunner:
    """Runs scripts one after another; :meth:`stop` (a signal handler) ends the
    running one and every later one."""

    def __init__(self, timeout_s: float | None = None,
                 echo: Callable[[str], None] = print) -> None:
        self.timeout_s = timeout_s
        self.echo = echo
        self.interrupted = False
        self._lock = threading.RLock()  # stop() may run while run() holds it
        self._proc: subprocess.Popen[str] | None = None

    def run(self, name: str, script: Path, args: Sequence[str]) -> BenchResult:
        """Run ``script`` with ``args`` in the folder above its own, each line it
        prints but the figures passed to ``echo``; never raises for what the script
        does (a crash, no figures, a hang past the timeout: its result says so)."""
        command = [sys.executable, str(script), *args]
        if self.interrupted:
            return BenchResult(name, command, "interrupted", 0.0, None,
                               detail="not started")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        t0 = time.monotonic()
        with self._lock:
            proc = subprocess.Popen(command, cwd=script.parent.parent, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    text=True, errors="replace", start_new_session=True)
            self._proc = proc
        if self.interrupted:  # the signal came while it was starting
            threading.Thread(target=_stop_group, args=(proc.pid,), daemon=True).start()
        timer = None
        timed_out = threading.Event()
        if self.timeout_s is not None:
            def expire() -> None:
                timed_out.set()
                _stop_group(proc.pid)
            timer = threading.Timer(self.timeout_s, expire)
            timer.daemon = True
            timer.start()
        last = ""
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if last:
                    self.echo(last)
                last = line.rstrip("\n")
            while not _exited(proc.pid, 0.5):  # the timer or a signal still stops it
                pass
        finally:
            if timer is not None:
                timer.cancel()
            if not _exited(proc.pid, 0.0):
                _stop_group(proc.pid)  # an error here (the echo's pipe closed)
            kill_group(proc.pid, signal.SIGKILL)  # whatever it left running
            proc.wait()
            with self._lock:
                self._proc = None
        wall = time.monotonic() - t0
        figures = last_json_object(last)
        if figures is None and last:
            self.echo(last)
        rc = proc.returncode
        if self.interrupted:
            return BenchResult(name, command, "interrupted", wall, rc, figures or {},
                               "stopped by a signal")
        if timed_out.is_set():
            return BenchResult(name, command, "timed out", wall, rc, figures or {},
                               f"still running after {self.timeout_s:g} s: stopped")
        if rc != 0:
            return BenchResult(name, command, "failed", wall, rc, figures or {},
                               f"exited with status {rc}")
        if figures is None:
            return BenchResult(name, command, "failed", wall, rc, {},
                               "its last line is no JSON object of figures")
        return BenchResult(name, command, "ok", wall, rc, figures)

    def stop(self, *_: object) -> None:
        """The signal handler: stop the running script and run no more."""
        self.interrupted = True
        with self._lock:
            proc = self._proc
        if proc is not None:
            threading.Thread(target=_stop_group, args=(proc.pid,), daemon=True).start()


def run_benches(bench_dir: Path, names: Sequence[str], quick: bool = False,
                timeout_s: float | None = None,
                echo: Callable[[str], None] = print) -> tuple[list[BenchResult], bool]:
    """Run the chosen scripts of ``bench_dir`` (every one when ``names`` is empty),
    each with ``--quick`` when asked; returns their results and whether a signal
    interrupted the run."""
    scripts = discover(bench_dir)
    chosen = select(scripts, names)
    runner = BenchRunner(timeout_s, echo)
    results = []
    with handled_signals(runner.stop):
        for name in chosen:
            args = ["--quick"] if quick else []
            where = os.path.relpath(scripts[name]) if scripts[name].is_relative_to(
                Path.cwd()) else str(scripts[name])
            echo(f"== {name}: python {where} {' '.join(args)}".rstrip())
            results.append(runner.run(name, scripts[name], args))
    return results, runner.interrupted


def summary_lines(results: Sequence[BenchResult]) -> list[str]:
    """A line per script: status, wall time, targets met (the missed ones named)."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        met = [k for k, v in r.targets.items() if v]
        missed = [k for k, v in r.targets.items() if not v]
        targets = (f"targets {len(met)}/{len(r.targets)} met"
                   + (f", missed: {', '.join(missed)}" if missed else "")
                   if r.targets else "no targets")
        status = r.status if r.status == "ok" else f"{r.status.upper()} ({r.detail})"
        lines.append(f"{r.name:<{width}}  {r.wall_s:7.1f} s  {status}; {targets}")
    return lines


def report(results: Sequence[BenchResult], interrupted: bool) -> dict[str, Any]:
    """Everything measured, as written to ``--out`` and printed last."""
    return {
        "benchmarks": {r.name: {**asdict(r), "targets": r.targets} for r in results},
        "failed": [r.name for r in results if r.status not in ("ok", "interrupted")],
        "targets_missed": [f"{r.name}.{k}" for r in results for k, v in r.targets.items()
                           if not v],
        "interrupted": interrupted,
    }
