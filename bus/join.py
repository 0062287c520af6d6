"""Joining one frame's messages from several topics.

Each topic comes over its own socket (``bus.transport``), so messages of one frame
reach a node in any order across topics, whatever order they were sent in: a node
that needs several inputs per frame collects them by ``header.frame`` and acts once
all are in. Frames older than the one taken are dropped (and counted): the
simulator, in lockstep, has moved past them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class FrameJoin:
    """Messages by frame and input name, until every ``needed`` input of a frame is in."""

    def __init__(self, needed: Iterable[str]) -> None:
        self.needed = tuple(needed)
        if not self.needed:
            raise ValueError("a frame join needs at least one input")
        self._slots: dict[int, dict[str, Any]] = {}
        #: older frames forgotten unfinished by :meth:`take` (a node's diagnostics)
        self.dropped = 0

    def add(self, name: str, msg: Any) -> int:
        """Keep ``msg`` (which has ``header.frame``) as input ``name``; its frame."""
        frame: int = msg.header.frame
        self._slots.setdefault(frame, {})[name] = msg
        return frame

    def complete(self, frame: int) -> bool:
        """Whether every needed input of ``frame`` is in."""
        slot = self._slots.get(frame, {})
        return all(name in slot for name in self.needed)

    def complete_frames(self) -> list[int]:
        """The complete frames, oldest first."""
        return sorted(f for f in self._slots if self.complete(f))

    def take(self, frame: int) -> dict[str, Any]:
        """``frame``'s inputs by name (optional ones too, when in); forgets it and
        every older frame."""
        slot = self._slots.pop(frame)
        self.dropped += sum(f < frame for f in self._slots)
        self._slots = {f: s for f, s in self._slots.items() if f > frame}
        return slot

    def __len__(self) -> int:
        return len(self._slots)
