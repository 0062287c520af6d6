"""The recorder node: every recorded topic of the run into one MCAP file.

It subscribes to each topic the topic table marks ``recorded`` and, since camera
topics are a pattern (``/sensors/camera/<name>``), it looks for new topics with
live publishers every ``discover_period_s`` and subscribes to those too
(``bus.node.BusFollower``). Messages
are stored as received (the exact bus bytes, see ``bus.recording``), with the
receive wall time as log time and the publisher's send time and sequence number.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Literal

from bus.node import BusFollower
from bus.recording import RecordingWriter
from bus.topics import CAMERA_PREFIX, TOPICS, UnknownTopicError, lookup
from bus.transport import Delivery

#: "run" metadata key: whether the recording holds the camera images ("true"/"false")
CAMERAS_KEY = "cameras_recorded"
#: s: on stopping, the recorder takes what its sockets still hold until nothing more
#: arrives for this long, for at most ``DRAIN_LIMIT_S`` (:meth:`Recorder.drain`)
DRAIN_QUIET_S = 0.2
DRAIN_LIMIT_S = 2.0


@dataclass
class RecorderParams:
    output: str = "drive.mcap"
    topics: list[str] = field(default_factory=list)  # empty: every recorded topic
    compression: Literal["lz4", "zstd", "none"] = "lz4"
    discover_period_s: float = 0.5
    metadata: dict[str, str] = field(default_factory=dict)  # stored as "run" metadata
    # false: camera images (/sensors/camera/*) are received but not written; a
    # camera frame is most of a recording (about 0.5 MB a tick at 640x360)
    cameras: bool = True

    def __post_init__(self) -> None:
        for t in self.topics:
            try:
                lookup(t)
            except UnknownTopicError as exc:
                raise ValueError(f"topics: {exc}") from None
        if self.discover_period_s <= 0:
            raise ValueError("discover_period_s must be > 0")


class Recorder(BusFollower):
    """Records the bus into ``params.output`` until stopped (SIGINT/SIGTERM)."""

    Params = RecorderParams

    def __init__(self, name: str = "recorder", **kwargs) -> None:
        super().__init__(name, **kwargs)
        p: RecorderParams = self.params
        out_dir = os.path.dirname(os.path.abspath(p.output))
        os.makedirs(out_dir, exist_ok=True)
        meta = {"namespace": self.context.namespace, "started": time.strftime("%FT%T%z"),
                CAMERAS_KEY: "true" if p.cameras else "false", **p.metadata}
        self.writer = RecordingWriter(p.output, metadata=meta, compression=p.compression)
        self.recorded = 0
        for t in p.topics or [t for t, s in TOPICS.items() if s.recorded and "<" not in t]:
            self.follow(t)
        self.follow_bus(p.discover_period_s)

    def wants(self, topic: str) -> bool:
        if self.params.topics:
            return topic in self.params.topics
        try:
            return lookup(topic).recorded
        except UnknownTopicError:
            return False

    def follow(self, topic: str) -> None:
        spec = lookup(topic)
        self.create_subscription(spec.msg_type, topic,
                                 lambda d, t=topic: self._write(t, d), raw=True)
        super().follow(topic)

    def _write(self, topic: str, d: Delivery) -> None:
        if not self.params.cameras and topic.startswith(CAMERA_PREFIX):
            return  # still subscribed: the simulator's start counts its listeners
        self.writer.write(topic, d.frames, time.time_ns(), d.send_ns, d.seq)
        self.recorded += 1

    def drain(self, quiet_s: float = DRAIN_QUIET_S, limit_s: float = DRAIN_LIMIT_S) -> None:
        """Record what has reached the recorder's sockets but not its callbacks, until
        nothing arrives for ``quiet_s`` (at most ``limit_s``). Stopped with the rest of
        a run, it is the slowest reader: the last ticks' messages, already taken
        by the others, still wait in its queues (a loaded 2-core VM lost the last
        two control commands of a 60-tick run)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            subs = [s for s in self.subscriptions if not s.busy]
            ready = self.context.wait([s.endpoint for s in subs], [], quiet_s)
            if not ready:
                return
            for s in subs:
                if s.endpoint in ready:
                    s.poll()

    def destroy(self) -> None:
        self.drain()
        super().destroy()
        self.writer.close()
