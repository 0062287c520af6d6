"""The process launcher: one OS process per node, supervised, like ``ros2 launch``.

Why it is built this way:

* Every node runs ``python -m launch.node_main`` in its own session (``setsid``). Ctrl-C
  makes the terminal signal its whole foreground process group; if nodes were in it,
  each would stop on its own, in any order, and the launcher would see a storm of
  "failures". In their own sessions only the launcher gets the signal, and it orders
  the shutdown: SIGTERM to each node's group, SIGKILL to what is left after
  ``STOP_GRACE_S``, all within ``STOP_TOTAL_S``.
* On Linux each node also gets ``PR_SET_PDEATHSIG = SIGKILL``: if the launcher itself is
  SIGKILLed it cannot order anything, and the kernel then kills the nodes for it. The
  signal fires when the *thread* that started the child exits, so nodes are only ever
  started from the thread running :meth:`Launcher.run`.
* When a node exits, its process group is SIGKILLed before the node is reaped (while
  its zombie still holds the pid, so the group id cannot have been reused): whatever
  the node started and left behind goes with it.
* Readiness comes through an inherited pipe (``DRIVESTACK_READY_FD``) on which the node
  writes ``ready`` once its subscriptions are connected, so "up" means no message
  published from then on is lost to a slow joiner.
* One thread per node output pipe prefixes lines with the node's name; they run until
  end-of-file and are joined before an exit is reported, so nothing is lost and the
  error message can quote the node's last stderr lines.
* The main loop sleeps in ``select`` on the ready pipes and a signal wakeup fd
  (SIGCHLD, SIGINT, SIGTERM all write to it): no polling interval, no missed exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from bus.transport import TransportError, check_namespace, namespace_dir
from launch.launchfile import (
    LaunchDescription,
    LaunchFileError,
    NodeSpec,
    load_launch_file,
    parse_overrides,
)
from launch.signals import kill_group

NODE_MAIN = "launch.node_main"
#: a node must say it is ready within this (s): about 7 s on an idle 2-core machine;
#: a loaded one (an evaluation with more runs than cores) took over 30 s
DEFAULT_READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 3.0  # SIGTERM -> SIGKILL
STOP_TOTAL_S = 5.0  # the whole shutdown, reaping and output draining included
RESTART_BACKOFF_S = 0.25  # before the first restart; doubles with each further one
STDERR_TAIL_LINES = 15

_REPO_ROOT = Path(__file__).resolve().parents[1]
_COLORS = (36, 32, 33, 35, 34, 96, 92, 93, 95, 94)
_PR_SET_PDEATHSIG = 1


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``killed by SIGKILL``, from a Popen returncode."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def default_namespace() -> str:
    """A bus namespace of its own for each run, so parallel runs never share sockets."""
    return f"run{os.getpid()}-{os.urandom(2).hex()}"


def node_command(spec: NodeSpec, entry_module: str = NODE_MAIN) -> list[str]:
    """The command line of one node process (the contract of ``launch.node_main``)."""
    cmd = [sys.executable, "-m", entry_module, "--node", spec.node, "--name", spec.name,
           "--params-json", json.dumps(spec.params), "--params-source", spec.params_source]
    for src, dst in spec.remaps.items():
        cmd += ["--remap", f"{src}:={dst}"]
    return cmd


def _die_with_launcher() -> Callable[[], None] | None:
    """A preexec_fn giving the child PR_SET_PDEATHSIG=SIGKILL (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    launcher_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != launcher_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return preexec


class _Output:
    """Writes whole lines from the reader threads and the launcher, never interleaved.
    With a ``log`` file, every line goes there instead of the terminal, except the
    launcher's errors, which go to both."""

    def __init__(self, log: TextIO | None = None) -> None:
        self._lock = threading.Lock()
        self.log = log

    def line(self, stream: TextIO, tag: str, color: int, text: str,
             also_terminal: bool = False) -> None:
        prefix = f"[{tag}]"
        with self._lock:
            if self.log is not None:
                self.log.write(f"{prefix} {text}\n")
                self.log.flush()
            if self.log is None or also_terminal:
                if "NO_COLOR" not in os.environ and stream.isatty():
                    prefix = f"\033[{color}m{prefix}\033[0m"
                stream.write(f"{prefix} {text}\n")
                stream.flush()

    def info(self, text: str) -> None:
        self.line(sys.stdout, "launch", 1, text)

    def error(self, text: str) -> None:
        self.line(sys.stderr, "launch", 31, text, also_terminal=True)


@dataclass
class _Node:
    """Run-time state of one node of the launch (across its restarts)."""

    spec: NodeSpec
    color: int
    proc: subprocess.Popen[bytes] | None = None  # None: not running
    started_at: float = 0.0
    ready_fd: int | None = None
    ready_buf: bytes = b""
    ready: bool = False
    readers: list[threading.Thread] = field(default_factory=list)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    restarts: int = 0
    restart_at: float | None = None  # when an on-failure restart is due


class Launcher:
    """Starts the nodes of a :class:`LaunchDescription` and supervises them until the end.

    ``log``: a text file that takes the nodes' output and the launcher's messages
    instead of the terminal (errors still reach stderr). ``run()`` returns the exit
    code: 0 when stopped by SIGINT/SIGTERM or when every node exited 0; 1 when a
    node failed, was not ready in ``ready_timeout`` seconds, or did not stop cleanly.
    ``entry_module`` is the module each node process runs with ``python -m`` (any
    module that honours the ``launch.node_main`` contract).
    """

    def __init__(
        self,
        description: LaunchDescription,
        namespace: str | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
        entry_module: str = NODE_MAIN,
        log: TextIO | None = None,
    ) -> None:
        self.description = description
        self.namespace = check_namespace(namespace) if namespace else default_namespace()
        self.ready_timeout = ready_timeout
        self.entry_module = entry_module
        self._nodes = [_Node(spec, _COLORS[i % len(_COLORS)])
                       for i, spec in enumerate(description.nodes)]
        self._out = _Output(log)
        self._signals: list[int] = []
        self._failed = False
        self._up = False
        self._selector: selectors.BaseSelector = selectors.DefaultSelector()
        self._wake_fd = -1
        self._preexec: Callable[[], None] | None = None

    # ------------------------------------------------------------------------ run
    def run(self) -> int:
        """Start every node, supervise, stop everything; return the exit code.

        Call it once, from the main thread: it handles SIGINT and SIGTERM itself.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Launcher.run() must be called from the main thread")
        wake_r, wake_w = os.pipe()
        for fd in (wake_r, wake_w):
            os.set_blocking(fd, False)
        self._wake_fd = wake_r
        self._selector.register(wake_r, selectors.EVENT_READ)
        self._preexec = _die_with_launcher()
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        old_handlers = {sig: signal.signal(sig, self._on_signal)
                        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
        try:
            code = self._supervise()
        finally:
            stop_code = self._stop_all()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            self._selector.close()
            os.close(wake_r)
            os.close(wake_w)
            shutil.rmtree(namespace_dir(self.namespace), ignore_errors=True)
        return code or stop_code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:  # SIGCHLD only has to wake select (via the wakeup fd)
            self._signals.append(signum)

    def _supervise(self) -> int:
        names = ", ".join(n.spec.name for n in self._nodes)
        self._out.info(f"launching {len(self._nodes)} nodes in bus namespace "
                       f"{self.namespace}: {names}")
        t0 = time.monotonic()
        for node in self._nodes:
            self._start(node)
        while True:
            self._wait(self._next_deadline())
            verdicts = [self._on_exit(n) for n in self._nodes
                        if n.proc is not None and self._exited(n.proc)]
            if any(v is not None for v in verdicts):  # all exits reported, then the worst
                return max(v for v in verdicts if v is not None)
            if self._signals:
                self._out.info(f"{signal.Signals(self._signals[0]).name} received: stopping")
                return 0
            now = time.monotonic()
            for node in self._nodes:
                if node.restart_at is not None and now >= node.restart_at:
                    self._start(node)
            late = [n.spec.name for n in self._nodes if n.proc is not None and not n.ready
                    and now - n.started_at >= self.ready_timeout]
            if late:
                self._out.error(
                    f"error: not ready after {self.ready_timeout:g} s: {', '.join(late)} "
                    "(no 'ready' on DRIVESTACK_READY_FD; see their output above)"
                )
                return 1
            if not self._up and all(n.ready for n in self._nodes):
                self._up = True
                self._out.info(f"up: {len(self._nodes)} nodes ready in {now - t0:.1f} s "
                               f"(bus namespace {self.namespace})")
            if all(n.proc is None and n.restart_at is None for n in self._nodes):
                self._out.info("every node has exited")
                return 1 if self._failed else 0

    def _next_deadline(self) -> float | None:
        deadlines = [n.restart_at for n in self._nodes if n.restart_at is not None]
        deadlines += [n.started_at + self.ready_timeout for n in self._nodes
                      if n.proc is not None and not n.ready]
        return min(deadlines, default=None)

    def _wait(self, deadline: float | None) -> None:
        """Sleep until a signal (SIGCHLD included), a ready pipe, or ``deadline``."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_fd:
                with contextlib.suppress(BlockingIOError):  # drained
                    while os.read(self._wake_fd, 512):
                        pass
            else:
                self._read_ready(key.data, key.fd)

    # ---------------------------------------------------------------- processes
    def _start(self, node: _Node) -> None:
        spec = node.spec
        read_fd, write_fd = os.pipe()
        pythonpath = [str(_REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        env = {
            **os.environ,
            "DRIVESTACK_NS": self.namespace,
            "DRIVESTACK_READY_FD": str(write_fd),
            "PYTHONUNBUFFERED": "1",  # node output reaches the terminal as it is written
            "PYTHONPATH": os.pathsep.join(pythonpath),  # nodes run this same source tree
        }
        try:
            proc = subprocess.Popen(
                node_command(spec, self.entry_module), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, pass_fds=(write_fd,),
                start_new_session=True, preexec_fn=self._preexec,
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the node holds the only write end: its exit means EOF
        node.proc, node.started_at = proc, time.monotonic()
        node.ready, node.ready_buf, node.ready_fd = False, b"", read_fd
        node.restart_at = None
        node.stderr_tail.clear()
        self._selector.register(read_fd, selectors.EVENT_READ, node)
        node.readers = [
            threading.Thread(target=self._pump, args=(pipe, node, stream), daemon=True,
                             name=f"launch-{spec.name}-{stream}")
            for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for reader in node.readers:
            reader.start()
        again = f" (restart {node.restarts}/{spec.max_restarts})" if node.restarts else ""
        self._out.info(f"started {spec.name} (pid {proc.pid}){again}")

    def _pump(self, pipe: IO[bytes], node: _Node, stream: str) -> None:
        """Copy one output pipe of a node to ours, each line prefixed with its name."""
        with pipe:
            for raw in iter(pipe.readline, b""):
                text = raw.decode(errors="replace").rstrip("\r\n")
                if stream == "stderr":
                    node.stderr_tail.append(text)
                self._out.line(getattr(sys, stream), node.spec.name, node.color, text)

    def _read_ready(self, node: _Node, fd: int) -> None:
        chunk = os.read(fd, 64)
        node.ready_buf += chunk
        if chunk and b"ready\n" not in node.ready_buf:
            return  # partial line: wait for the rest
        if chunk:
            node.ready = True
            if self._up:  # after a restart; the first time, the "up" line says it all
                self._out.info(f"{node.spec.name} ready again")
        self._close_ready(node)  # ready, or EOF: the node exits or times out

    def _close_ready(self, node: _Node) -> None:
        if node.ready_fd is not None:
            self._selector.unregister(node.ready_fd)
            os.close(node.ready_fd)
            node.ready_fd = None

    @staticmethod
    def _exited(proc: subprocess.Popen[bytes]) -> bool:
        """Whether ``proc`` exited; if so, SIGKILL its group, then reap it."""
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return False
        kill_group(proc.pid, signal.SIGKILL)  # the zombie still holds the pid: safe
        proc.wait()
        return True

    def _finish(self, node: _Node, deadline: float) -> None:
        """Forget an exited node's process once its output is drained."""
        for reader in node.readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        self._close_ready(node)
        node.proc, node.ready = None, False

    def _on_exit(self, node: _Node) -> int | None:
        """Apply the node's policy to its exit: None to go on, else the run's exit code."""
        assert node.proc is not None
        spec, code = node.spec, node.proc.returncode
        self._finish(node, time.monotonic() + 1.0)
        how = describe_exit(code)
        if code != 0 and spec.restart == "on-failure" and node.restarts < spec.max_restarts:
            delay = RESTART_BACKOFF_S * 2 ** node.restarts
            node.restarts += 1
            node.restart_at = time.monotonic() + delay
            self._out.error(f"{spec.name} failed ({how}); restarting in {delay:g} s "
                            f"(restart {node.restarts}/{spec.max_restarts})")
            return None
        if code == 0:
            if spec.required:
                self._out.info(f"required node {spec.name} exited ({how}): stopping")
                return 1 if self._failed else 0
            self._out.info(f"{spec.name} exited ({how})")
            return None
        self._failed = True
        used = f" after {node.restarts} restarts" if spec.restart == "on-failure" else ""
        tail = "".join(f"\n  | {line}" for line in node.stderr_tail) or " (none)"
        what = "required node" if spec.required else "node"
        self._out.error(f"error: {what} {spec.name} ({spec.node}, {spec.source or 'no file'}) "
                        f"died: {how}{used}; its last stderr lines:{tail}")
        return 1 if spec.required else None

    def _stop_all(self) -> int:
        """SIGTERM every node's group, SIGKILL what is left; 1 unless all exited 0."""
        deadline = time.monotonic() + STOP_TOTAL_S
        for node in self._nodes:
            node.restart_at = None
        running = [(n, n.proc) for n in self._nodes if n.proc is not None]
        for _, proc in running:
            kill_group(proc.pid, signal.SIGTERM)
        clean = True
        signals_before = len(self._signals)
        grace_end = time.monotonic() + STOP_GRACE_S
        while running and time.monotonic() < grace_end and len(self._signals) == signals_before:
            self._wait(grace_end)
            for node, proc in [(n, p) for n, p in running if self._exited(p)]:
                if proc.returncode != 0:
                    how = describe_exit(proc.returncode)
                    self._out.error(f"{node.spec.name} did not stop cleanly: {how} "
                                    "(expected exit code 0 on SIGTERM)")
                    clean = False
                self._finish(node, deadline)
                running.remove((node, proc))
        for node, proc in running:
            why = ("second signal" if len(self._signals) > signals_before
                   else f"still running {STOP_GRACE_S:g} s after SIGTERM")
            self._out.error(f"{node.spec.name} {why}: killing it")
            clean = False
            kill_group(proc.pid, signal.SIGKILL)
        for node, proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._out.error(f"{node.spec.name} (pid {proc.pid}) survived SIGKILL")
                continue
            self._finish(node, deadline)
        return 0 if clean else 1


def launch_main(
    file: str,
    overrides: Sequence[str] = (),
    namespace: str | None = None,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
) -> int:
    """``drivestack launch FILE name:=value ...``: 2 for a bad launch file or namespace."""
    try:
        description = load_launch_file(file, parse_overrides(overrides))
        launcher = Launcher(description, namespace=namespace, ready_timeout=ready_timeout)
    except (LaunchFileError, TransportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return launcher.run()
