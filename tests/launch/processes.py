"""What the launch tests ask of processes they started: are they gone."""

from __future__ import annotations

import time
from pathlib import Path


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie (it ran no more code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The ``pids`` still alive after waiting up to ``timeout`` s for all to go."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if not is_gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive
