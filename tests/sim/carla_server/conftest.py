"""Fixtures for the CARLA-compatible server tests: a server on free loopback ports
in this process (so a test can look inside its world), and a runner for the real
``carla`` 0.9.16 client in a subprocess with a timeout, always killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.carla_server.server import CarlaServer, ServerConfig

CLIENT = Path(__file__).with_name("carla_client.py")

carla = pytest.importorskip("carla")


def client_env() -> dict[str, str]:
    """The client's environment: no drivestack on its path, one thread."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1")
    return env


def start_client(scenario: str, port: int, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(CLIENT), scenario, str(port), str(out)],
                            env=client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish_client(proc: subprocess.Popen, out: Path, timeout: float = 60.0) -> dict:
    """Wait for a client; fail with its output if it crashed or timed out."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"carla client timed out after {timeout} s:\n{output[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(f"carla client exited {proc.returncode}:\n{output[-3000:]}")
    return json.loads((out / "result.json").read_text())


def run_client(scenario: str, port: int, out: Path, timeout: float = 60.0) -> dict:
    return finish_client(start_client(scenario, port, out), out, timeout)


@pytest.fixture
def server() -> Iterator[CarlaServer]:
    srv = CarlaServer(ServerConfig(map="town_grid", seed=3, vehicles=4, walkers=4,
                                   port=0, streaming_port=0, tm_port=0), eager=False)
    # synchronous from the start: the NPCs stand on their seeded spawn points until a
    # client ticks, so a client's spawn never races a passing NPC
    srv.world.settings.synchronous_mode = True
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class ClientRunner:
    """The client helpers as a fixture (test modules cannot import conftest)."""

    start = staticmethod(start_client)
    finish = staticmethod(finish_client)
    run = staticmethod(run_client)


@pytest.fixture
def clients() -> ClientRunner:
    return ClientRunner()
