"""The bridge without a server: argument checks, and a closed port failing within
the timeout with one clear line and nothing left running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sim.carla_bridge.client import BridgeConfig, BridgeError, CarlaSession, substepping, town_name
from sim.carla_bridge.node import CarlaSimParams, collision_kind


def test_config_validation() -> None:
    for kwargs, match in (({"port": 0}, "port 0"), ({"port": 70000}, "port 70000"),
                          ({"host": ""}, "host"), ({"timeout_s": 0}, "timeout"),
                          ({"dt": 0.5}, "fixed_delta_seconds")):
        with pytest.raises(ValueError, match=match):
            BridgeConfig(**kwargs)
    with pytest.raises(ValueError, match="tm_port"):
        CarlaSimParams(tm_port=0)
    with pytest.raises(ValueError, match="port 99999"):
        CarlaSimParams(port=99999)


def test_substepping_within_carla_limits() -> None:
    for dt in (0.05, 0.1, 0.01, 0.033):
        step, n = substepping(dt)
        assert 1 <= n <= 16 and step <= 0.01 + 1e-12
        assert step * n == pytest.approx(dt)  # CARLA: max_substep_delta * max_substeps >= dt
    assert substepping(0.05) == pytest.approx((0.01, 5))


def test_names_and_kinds() -> None:
    assert town_name("/Game/Carla/Maps/Town01") == "Town01"
    assert town_name("/x/maps/town_grid.xodr") == "town_grid"
    assert town_name("town_grid") == "town_grid"
    assert collision_kind("vehicle.tesla.model3") == "collision_vehicle"
    assert collision_kind("walker.pedestrian.0001") == "collision_pedestrian"
    assert collision_kind("static.prop.bench") == "collision_static"
    assert collision_kind("") == "collision_static"


def test_closed_port_fails_within_the_timeout(tools) -> None:  # type: ignore[no-untyped-def]
    (port,) = tools.free_ports(1)
    t0 = time.monotonic()
    with pytest.raises(BridgeError) as info, CarlaSession(BridgeConfig(port=port,
                                                                       timeout_s=1.0)):
        pass
    assert time.monotonic() - t0 < 5.0
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "no answer within 1 s" in msg
    assert "\n" not in msg


def _one_error_line(proc) -> str:  # type: ignore[no-untyped-def]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def test_run_on_a_closed_port_is_one_line_and_starts_nothing(tmp_path: Path,
                                                             tools) -> None:  # type: ignore[no-untyped-def]
    (port,) = tools.free_ports(1)
    out = tmp_path / "run"
    t0 = time.monotonic()
    proc = tools.cli("run", "--sim", "carla", "--port", str(port), "--timeout", "1",
                     "--scenario", str(tools.short_route), "--out", str(out), "--no-progress",
               timeout=60)
    line = _one_error_line(proc)
    assert f"CARLA server 127.0.0.1:{port}: no answer within 1 s" in line
    assert not out.exists()  # nothing written, no node started
    assert time.monotonic() - t0 < 30.0


@pytest.mark.parametrize(("args", "expect"), [
    (["--sim", "unreal"], "--sim unreal: expected one of embedded, carla"),
    (["--port", "2000"], "--port needs --sim carla"),
    (["--host", "10.0.0.1"], "--host needs --sim carla"),
    (["--sim", "carla", "--port", "0"], "--port 0: expected a port 1..65535"),
    (["--sim", "carla", "--timeout", "-1"], "--timeout -1.0: expected seconds > 0"),
    (["--sim", "carla", "--tm-port", "70000"], "--tm-port 70000: expected a port 1..65535"),
])
def test_run_argument_errors(tmp_path: Path, tools, args: list[str],  # type: ignore[no-untyped-def]
                            expect: str) -> None:
    out = tmp_path / "run"
    proc = tools.cli("run", *args, "--scenario", str(tools.short_route), "--out", str(out),
                     "--no-progress", timeout=60)
    assert expect in _one_error_line(proc)
    assert not out.exists()
