"""Lockstep: wait for the message of a given simulator frame, with a deadline.

The simulator does not step to frame k+1 until it has the ControlCommand for frame
k. Two policies when the deadline passes:

  strict    raise :class:`DeadlineMissed` naming the topic and the node that should
            have published it (a reproducible run must not silently go on);
  realtime  go on with the last message received (or None), counting a miss.

Messages for older frames are discarded; messages for later frames are kept for
the next wait.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from bus.node import Node, Subscription

M = TypeVar("M")
Mode = Literal["strict", "realtime"]


class DeadlineMissed(RuntimeError):
    """No message for the awaited frame arrived in time (strict mode)."""


class FrameWaiter(Generic[M]):
    """Waits on one topic for ``header.frame == k``; spins the node's executor meanwhile,
    so the node's other callbacks and timers keep running."""

    def __init__(self, node: Node, msg_type: type[M], topic: str, *, deadline_s: float = 2.0,
                 mode: Mode = "strict", first_deadline_s: float | None = None) -> None:
        """``first_deadline_s``: the deadline of the first wait, when longer: the other
        nodes' start-up work (a map to parse, a route graph to build, a network to
        warm up) happens on the first frame."""
        if mode not in ("strict", "realtime"):
            raise ValueError(f"lockstep mode must be 'strict' or 'realtime', not {mode!r}")
        if deadline_s <= 0:
            raise ValueError(f"lockstep deadline must be > 0 s, not {deadline_s}")
        self.node, self.deadline_s, self.mode = node, deadline_s, mode
        self._next_deadline_s = max(deadline_s, first_deadline_s or 0.0)
        self.sub: Subscription[M] = node.create_subscription(msg_type, topic, None)
        self.topic = self.sub.topic
        self.last: M | None = None
        self.misses = 0

    def _take(self, frame: int) -> M | None:
        buf = self.sub.buffer
        while buf:
            msg = buf[0]
            f = msg.header.frame  # type: ignore[attr-defined]
            if f < frame:
                buf.popleft()
                self.last = msg
            elif f == frame:
                buf.popleft()
                self.last = msg
                return msg
            else:
                return None
        return None

    def wait(self, frame: int) -> M | None:
        """The message for ``frame``; on a missed deadline see the module docstring."""
        executor = self.node.executor
        if executor is None:
            raise RuntimeError(f"node {self.node.name} is not added to an executor")
        clock = self.node.context.clock
        allowed, self._next_deadline_s = self._next_deadline_s, self.deadline_s
        deadline = clock.now() + allowed
        while True:
            msg = self._take(frame)
            if msg is not None:
                return msg
            remaining = deadline - clock.now()
            if remaining <= 0:
                break
            executor.spin_once(min(remaining, 0.05))
        if self.mode == "strict":
            who = self.sub.last_publisher or ", ".join(self.sub.endpoint.publishers())
            raise DeadlineMissed(
                f"no {self.topic} for frame {frame} within {allowed:g} s: "
                f"late node: {who or 'none publishes ' + self.topic}"
            )
        self.misses += 1
        self.node.stats.deadline_misses += 1
        return self.last
