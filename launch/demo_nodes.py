"""The demo pipeline (talker -> relay -> listener), like ROS's demo_nodes.

Small but real nodes: they show the node API, and the launcher and bus tests run
them as separate processes (``drivestack launch demo``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import Node
from bus.messages import Chatter, Header


class Talker(Node):
    """Publishes ``Chatter`` on /demo/chatter at ``rate_hz``."""

    @dataclass
    class Params:
        rate_hz: float = 10.0
        text: str = "hello"
        count: int = 0  # stop after this many messages (0: never)

        def __post_init__(self) -> None:
            if self.rate_hz <= 0:
                raise ValueError(f"rate_hz must be > 0, not {self.rate_hz}")

    def __init__(self, name: str = "talker", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.pub = self.create_publisher(Chatter, "/demo/chatter")
        self.sent = 0
        self.timer = self.create_timer(1.0 / self.params.rate_hz, self.tick)

    def tick(self) -> None:
        if self.params.count and self.sent >= self.params.count:
            return
        self.sent += 1
        self.pub.publish(Chatter(Header(frame=self.sent), f"{self.params.text} {self.sent}",
                                 self.sent))


class Relay(Node):
    """Republishes /demo/chatter on /demo/relay, upper-cased."""

    def __init__(self, name: str = "relay", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.pub = self.create_publisher(Chatter, "/demo/relay")
        self.create_subscription(Chatter, "/demo/chatter", self.on_chatter)

    def on_chatter(self, msg: Chatter) -> None:
        self.pub.publish(Chatter(msg.header, msg.text.upper(), msg.count))


class Listener(Node):
    """Logs what arrives on /demo/relay and keeps it (tests read ``received``)."""

    @dataclass
    class Params:
        quiet: bool = False

    def __init__(self, name: str = "listener", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.received: list[Chatter] = []
        self.create_subscription(Chatter, "/demo/relay", self.on_relay)

    def on_relay(self, msg: Chatter) -> None:
        self.received.append(msg)
        if not self.params.quiet:
            self.get_logger().info("heard: %s", msg.text)
