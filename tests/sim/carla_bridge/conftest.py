"""Fixtures for the CARLA bridge tests: `drivestack serve` in its own process on
free loopback ports (the ``carla`` client must not share a process with the server
it waits on), killed at the end; a ``drivestack`` CLI runner; free ports."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("carla")

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
SHORT_ROUTE = HERE / "short_route.yaml"
#: the server's seed: the embedded renderer's look for the scenarios' seed 0
SERVER_SEED = 0


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def cli(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess:
    """``drivestack ARGS`` to its end (this source tree), output captured."""
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    tm_port: int

    def args(self) -> list[str]:
        return ["--sim", "carla", "--port", str(self.port), "--tm-port", str(self.tm_port)]


def stop(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL if it does not end (only this process)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def carla_server() -> Iterator[Server]:
    """`drivestack serve --map town_grid --seed 0`, no NPCs, ready (its first line)."""
    port, streaming, tm = free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.cli", "serve", "--map", "town_grid", "--seed",
         str(SERVER_SEED), "--port", str(port), "--streaming-port", str(streaming),
         "--tm-port", str(tm)], cwd=REPO, env=env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        line = proc.stdout.readline() if ready else ""
        if "Ctrl-C stops" not in line:
            stop(proc)
            pytest.fail(f"drivestack serve did not start: {line}{proc.stdout.read()}")
        yield Server(proc, port, tm)
    finally:
        stop(proc)


class Tools:
    """The helpers above as a fixture (test modules cannot import conftest)."""

    cli = staticmethod(cli)
    free_ports = staticmethod(free_ports)
    env = staticmethod(env)
    stop = staticmethod(stop)
    short_route = SHORT_ROUTE
    repo = REPO


@pytest.fixture
def tools() -> Tools:
    return Tools()
