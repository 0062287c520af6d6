"""Shared fixtures: an isolated bus namespace per test, and the ../shared data."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def bus_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh namespace in a private runtime dir (short path: ipc socket limit);
    child processes inherit it through the environment. Yields the namespace."""
    root = tempfile.mkdtemp(prefix="ds", dir="/tmp")
    ns = "t" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("DRIVESTACK_RUNTIME_DIR", root)
    monkeypatch.setenv("DRIVESTACK_NS", ns)
    yield ns
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (CARLA maps and routes); tests that need it skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED

