"""``drivestack serve`` as a user runs it: starts, answers, Ctrl-C exits cleanly;
bad input is one error line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import msgpack

REPO = Path(__file__).resolve().parents[3]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def serve(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "launch.cli", "serve", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def ports_args(ports: list[int]) -> list[str]:
    return ["--port", str(ports[0]), "--streaming-port", str(ports[1]), "--tm-port",
            str(ports[2])]


def test_serve_answers_and_stops_on_ctrl_c() -> None:
    ports = free_ports(3)
    proc = serve("--map", "rural", "--vehicles", "2", *ports_args(ports))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "CARLA 0.9.16 server, map rural" in line and str(ports[0]) in line
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as s:
            s.sendall(msgpack.packb([0, 1, "version", [[False]]]))
            assert msgpack.unpackb(s.recv(1000)) == [1, 1, None, [[1, "0.9.16"]]]
        # the same ports again: one clear error line, exit 2
        busy = serve(*ports_args([ports[0], *free_ports(2)]))
        out, _ = busy.communicate(timeout=60)
        assert busy.returncode == 2
        assert out.strip().splitlines() == [
            f"error: cannot listen on the RPC port 127.0.0.1:{ports[0]}: Address already in "
            "use (another server running? choose --port, --streaming-port, --tm-port)"]
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest and "stopped" in rest


def test_bad_maps_are_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xodr"
    bad.write_text("<OpenDRIVE><road></OpenDRIVE>")
    for args, expect in ((["--map", "atlantis"], "atlantis"), (["--map", str(bad)], str(bad)),
                         (["--map-dir", str(tmp_path / "none")], "--map-dir")):
        proc = serve(*args, *ports_args(free_ports(3)))
        out, _ = proc.communicate(timeout=60)
        lines = out.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, out
        assert lines[0].startswith("error: ") and expect in lines[0]
