"""A server that goes away mid-run: the next tick fails within the timeout with a
message naming host and port, and the cleanup does not hang."""

from __future__ import annotations

import select
import subprocess
import sys
import time

import pytest

from sim.carla_bridge.client import BridgeConfig, BridgeError, CarlaSession


def test_server_loss_ends_the_tick_with_a_clear_error(tools) -> None:  # type: ignore[no-untyped-def]
    port, streaming, tm = tools.free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.cli", "serve", "--map", "town_grid", "--port",
         str(port), "--streaming-port", str(streaming), "--tm-port", str(tm)],
        cwd=tools.repo, env=tools.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        assert ready and "Ctrl-C stops" in proc.stdout.readline()
        session = CarlaSession(BridgeConfig(port=port, timeout_s=2.0))
        with pytest.raises(BridgeError) as info, session:
            first = session.tick()
            assert session.tick() == first + 1
            proc.kill()
            proc.wait()
            t0 = time.monotonic()
            session.tick()
        # the failed tick and the cleanup (each call failing within the timeout)
        elapsed = time.monotonic() - t0
        assert elapsed < 12.0, elapsed
        assert "\n" not in str(info.value)
        assert f"CARLA server 127.0.0.1:{port}: tick got no answer within 2 s" in str(info.value)
        assert session.client is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
