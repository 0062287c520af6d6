"""The live view: the running bus served to Foxglove over a WebSocket
(``drivestack run --live``).

:class:`FoxgloveLiveNode` subscribes to every topic of the bus namespace (the topic
table's, and, like the recorder, new ones such as extra cameras as they appear),
decodes each message and converts it with :class:`launch.viz.FoxgloveConverter`,
the same conversion as ``drivestack viz --foxglove``, into a foxglove-sdk
WebSocket server it starts. Open ``ws://HOST:PORT`` in Foxglove (Open connection
-> Foxglove WebSocket). Log times are sim time, and the server broadcasts the sim
time too (Foxglove's Time capability), so the app's clock follows the simulation
rather than the wall clock of the message's arrival.

Passive by design: it is not part of the lockstep, and nothing waits for it.

* The simulator starts ticking once its topics have the subscriber counts that
  the launch file gives it (``start_when_subscribed``, compared with >=). Counted
  there, an early viewer could stand in for a loop node still connecting, and the
  loop would lose its first frames. So the node subscribes at first only to
  ``after_topic`` (the loop's /control/command, published by no simulator) and to
  the rest of the bus once its first message arrives: the simulator has started
  by then, and it starts exactly when it would without the viewer. The view misses
  the drive's first ticks (while its subscriptions connect, some 0.5 s of sim
  time); the map is latched and still comes.
* Camera images (the costly part: a JPEG encoding each) are taken with QoS
  ``latest``: when the node falls behind, it converts only the newest frame of
  each camera and drops the older ones (counted as drops on /diagnostics). Other
  topics are small and kept whole. Publishers never block on a subscriber (ZeroMQ
  queues for it), and the server drops the oldest messages of a client that reads
  too slowly, so a slow viewer slows neither the simulator nor Foxglove's other
  clients.
* ``niceness`` lowers the process's CPU priority (the launch file sets it), so on
  a busy machine the loop's nodes come first.

The map goes out once, so a viewer that subscribes to /map later is sent it again.
On shutdown the server is stopped, closing its clients' connections.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from bus import LATEST, TOPICS, BusFollower
from bus.messages import Image
from bus.topics import UnknownTopicError, lookup
from launch import viz
from launch.viz import INSTALL_FOXGLOVE, FoxgloveConverter, FoxgloveOut, VizError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_MAP_CHECK_S = 0.2  # how soon a viewer that subscribed to /map is sent it again


def live_url(host: str, port: int) -> str:
    """The address to open in Foxglove."""
    return f"ws://{host}:{port}"


@dataclass
class LiveParams:
    host: str = DEFAULT_HOST  # loopback by default; anything else is an explicit choice
    port: int = DEFAULT_PORT  # 0: any free port (``FoxgloveLiveNode.port`` says which)
    # subscribe to the rest of the bus only after the first message here (see the
    # module doc: the simulator's start counts never see the viewer); empty: at once
    after_topic: str = "/control/command"
    discover_period_s: float = 0.5  # how often to look for new topics
    niceness: int = 0  # added to the process's nice value (0: unchanged)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        if self.after_topic:
            try:
                lookup(self.after_topic)
            except UnknownTopicError as exc:
                raise ValueError(f"after_topic: {exc}") from None
        if self.discover_period_s <= 0:
            raise ValueError("discover_period_s must be > 0")
        if not 0 <= self.niceness <= 19:
            raise ValueError(f"niceness must be 0..19, not {self.niceness}")


# The SDK's listener protocol, whose default methods do nothing (none without the SDK).
_ServerListener: type = viz.foxglove.ServerListener if viz.foxglove is not None else object


class _MapRequests(_ServerListener):
    """Notes that a client subscribed to /map. The server calls it on its own
    thread and before the subscription takes effect, so it only sets a flag; the
    node's timer sends the map a moment later."""

    def __init__(self) -> None:
        self.wanted = threading.Event()

    def on_subscribe(self, client: Any, channel: Any) -> None:
        if channel.topic == viz.MAP_SCENE_TOPIC:
            self.wanted.set()


class FoxgloveLiveNode(BusFollower):
    """Serves the bus to Foxglove until stopped (module doc). ``attached``: True once
    it subscribes to the whole bus; ``port``: the port the server listens on."""

    Params = LiveParams

    def __init__(self, name: str = "live", **kwargs: Any) -> None:
        if viz.foxglove is None:
            raise VizError(f"the live view needs the foxglove-sdk package: {INSTALL_FOXGLOVE}")
        super().__init__(name, **kwargs)
        p: LiveParams = self.params
        if p.niceness:
            os.nice(p.niceness)  # before the server starts: its threads inherit it
        self._requests = _MapRequests()
        context = viz.foxglove.Context()  # its own: nothing else logged here reaches it
        try:
            self.server = viz.foxglove.start_server(
                name=f"drivestack {self.context.namespace}", host=p.host, port=p.port,
                capabilities=[viz.foxglove.Capability.Time], server_listener=self._requests,
                context=context)
        except RuntimeError as exc:  # the SDK's FoxgloveError arrives as RuntimeError
            super().destroy()
            if "in use" in str(exc):
                raise VizError(f"cannot serve the live view: port {p.port} on {p.host} is "
                               "already in use (another live view or program): choose "
                               "another port") from None
            raise VizError(f"cannot serve the live view on {p.host}:{p.port}: {exc}") \
                from None
        self.port: int = self.server.port
        self.url = live_url(p.host, self.port)
        self.converter = FoxgloveConverter(FoxgloveOut(context))
        self._sent_ns = -1  # the last sim time broadcast
        self.attached = False
        if p.after_topic:
            self.follow(p.after_topic)
        else:
            self._attach()
        self.follow_bus(p.discover_period_s)
        self.create_timer(_MAP_CHECK_S, self._send_map_again)
        self.get_logger().info("serving the bus to Foxglove at %s", self.url)

    # -- subscriptions
    def wants(self, topic: str) -> bool:
        """Every topic this build can decode, once attached."""
        try:
            lookup(topic)
        except UnknownTopicError:
            return False
        return self.attached

    def follow(self, topic: str) -> None:
        spec = lookup(topic)
        qos = LATEST if spec.msg_type is Image else None
        self.create_subscription(spec.msg_type, topic,
                                 lambda msg, t=topic: self._on_message(t, msg), qos)
        super().follow(topic)

    def _attach(self) -> None:
        """Follow the whole bus: every concrete topic of the table (as the recorder
        does, so none loses its first messages to discovery), and the live ones."""
        self.attached = True
        for topic in TOPICS:
            if "<" not in topic and topic not in self.followed:
                self.follow(topic)
        self.discover()

    # -- conversion
    def _on_message(self, topic: str, msg: Any) -> None:
        conv = self.converter
        conv.advance(msg)
        conv.log(topic, msg, f"{topic} on bus {self.context.namespace}")
        if conv.log_ns > self._sent_ns:
            self._sent_ns = conv.log_ns
            self.server.broadcast_time(conv.log_ns)
        if not self.attached:
            self._attach()  # the first command: the loop runs, so the sim has started

    def _send_map_again(self) -> None:
        if self._requests.wanted.is_set():
            self._requests.wanted.clear()
            self.converter.log_map()

    # -- shutdown
    def destroy(self) -> None:
        """Stop the server (its clients are disconnected), then leave the bus."""
        self.server.stop()
        super().destroy()
