"""Matching sensor readings to the world frame they belong to.

CARLA delivers sensor data on its own streaming threads, after ``world.tick()``
has returned, and a camera can lag the world by a frame or more (or deliver two
frames out of order). Publishing "the latest image" would then pair frame k's
ego state with frame k-1's picture. :class:`SensorQueue` keeps every reading by
the CARLA frame (``data.frame``) it carries, and :meth:`SensorQueue.collect`
returns, for one frame, exactly that frame's reading of every required sensor,
waiting (bounded) for late ones and discarding stale ones.

Event sensors (collision, lane invasion) fire only on some frames and possibly
several times per frame: :meth:`SensorQueue.events` hands out every event up to
and including a frame, in frame order.

Pure Python and thread-safe; no ``carla`` import, so it is unit-tested with fake
callbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class SensorTimeout(TimeoutError):
    """A required sensor did not deliver the frame in time (names the sensors)."""


@dataclass
class SensorQueue:
    """Readings per sensor name and CARLA frame.

    ``required`` are the sensors that deliver every frame (cameras); ``put`` is
    what their callbacks call, from any thread. ``max_frames`` bounds what is kept
    per sensor (readings far ahead of the consumer are unexpected; far behind are
    dropped when a frame is collected)."""

    required: tuple[str, ...]
    max_frames: int = 64
    _data: dict[str, dict[int, Any]] = field(default_factory=dict, init=False)
    _events: list[tuple[int, int, str, Any]] = field(default_factory=list, init=False)
    _seq: int = field(default=0, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)

    def __post_init__(self) -> None:
        if len(set(self.required)) != len(self.required):
            raise ValueError(f"sensor names must be unique, got {self.required}")
        self._data = {name: {} for name in self.required}

    # ------------------------------------------------------------------ producers
    def put(self, name: str, frame: int, data: Any) -> None:
        """A reading of sensor ``name`` for CARLA frame ``frame`` (callback side)."""
        with self._cond:
            slots = self._data.get(name)
            if slots is None:
                raise KeyError(f"unknown sensor {name!r} (known: {', '.join(self.required)})")
            slots[int(frame)] = data
            while len(slots) > self.max_frames:
                del slots[min(slots)]
            self._cond.notify_all()

    def put_event(self, name: str, frame: int, data: Any) -> None:
        """An event of sensor ``name`` (collision, lane invasion) at ``frame``."""
        with self._cond:
            self._events.append((int(frame), self._seq, name, data))
            self._seq += 1
            self._cond.notify_all()

    def callback(self, name: str, convert: Callable[[Any], Any] = lambda d: d,
                 event: bool = False) -> Callable[[Any], None]:
        """A ``sensor.listen`` callback: stores ``convert(data)`` under ``data.frame``.
        The conversion runs on the delivering thread (copy the buffer there: CARLA
        may reuse it)."""
        put = self.put_event if event else self.put

        def on_data(data: Any) -> None:
            put(name, data.frame, convert(data))

        return on_data

    # ------------------------------------------------------------------ consumer
    def collect(self, frame: int, timeout_s: float) -> dict[str, Any]:
        """Every required sensor's reading of ``frame``, waiting up to ``timeout_s``
        for late ones. Readings of earlier frames are discarded (they can no longer
        be used); later ones are kept for their frame. Raises :class:`SensorTimeout`
        naming the sensors still missing."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                missing = [n for n in self.required if frame not in self._data[n]]
                if not missing:
                    break
                left = end - time.monotonic()
                if left <= 0:
                    have = {n: sorted(self._data[n])[-3:] for n in missing}
                    raise SensorTimeout(
                        f"no data for frame {frame} from {', '.join(missing)} within "
                        f"{timeout_s:g} s (latest frames seen: {have})")
                self._cond.wait(left)
            out = {n: self._data[n].pop(frame) for n in self.required}
            for slots in self._data.values():
                for f in [f for f in slots if f < frame]:
                    del slots[f]
            return out

    def first_frame(self, tick: Callable[[], int], timeout_s: float,
                    first_wait_s: float = 1.0) -> tuple[int, dict[str, Any]]:
        """Tick until one frame has every required reading; returns that frame and
        its readings.

        ``sensor.listen`` subscribes on a connection of its own, asynchronously: a
        tick right after it can go out before the server knows the listener, and
        that frame is then never sent (a server renders a camera only for its
        subscribers). Waiting for it would wait forever, so an incomplete frame is
        given up after a wait that doubles from ``first_wait_s`` and the world
        ticked again (the warm-up frames CARLA clients tick anyway), until
        ``timeout_s`` in all; then :class:`SensorTimeout` of the last frame."""
        end = time.monotonic() + timeout_s
        wait = first_wait_s
        while True:
            frame = tick()
            left = end - time.monotonic()
            try:
                return frame, self.collect(frame, max(0.0, min(wait, left)))
            except SensorTimeout as exc:
                if wait >= left:
                    raise SensorTimeout(f"{exc} (first frame, after {timeout_s:g} s of "
                                        f"ticking)") from None
            wait *= 2

    def events(self, up_to_frame: int) -> list[tuple[int, str, Any]]:
        """Every event at or before ``up_to_frame`` not yet handed out, as
        ``(frame, sensor name, data)`` in frame order (arrival order within a frame)."""
        with self._cond:
            take = sorted(e for e in self._events if e[0] <= up_to_frame)
            self._events = [e for e in self._events if e[0] > up_to_frame]
        return [(f, name, data) for f, _, name, data in take]

    def pending(self) -> dict[str, list[int]]:
        """The frames held per required sensor (diagnostics and tests)."""
        with self._cond:
            return {n: sorted(s) for n, s in self._data.items()}

