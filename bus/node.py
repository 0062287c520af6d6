"""Nodes shaped like rclpy: publishers, subscriptions, timers, parameters, a logger.

A node is a thin adapter from topics to an algorithm: subclass :class:`Node`, create
publishers and subscriptions in ``__init__``, do the work in callbacks. The same node
runs in its own process over ZeroMQ (``drivestack launch``) or with others in one
process on the in-process bus (tests, replay), through the same API:

    ctx = InProcessContext()
    talker, listener = Talker("talker", context=ctx), Listener("listener", context=ctx)
    executor = Executor(ctx, [talker, listener])
    executor.spin_until(lambda: listener.count >= 10, timeout_s=5)

Every message crossing a subscription is decoded strictly: a malformed one is logged
with its topic and publisher, counted as a drop, and skipped; it never reaches the
callback. An exception raised by a callback itself propagates out of ``spin``: a
node with a bug stops, and the launcher reports it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from bus import config as cfg
from bus.messages import Header, NodeStatus
from bus.serialization import DecodeError, decode, encode
from bus.topics import QoS, TopicSpec, check_type
from bus.transport import (
    Context,
    Delivery,
    InProcessContext,
    InProcessSubscriber,
    PublisherEndpoint,
    SubscriberEndpoint,
    ZmqContext,
)

M = TypeVar("M")

_default_context: Context | None = None
_default_lock = threading.Lock()


def default_context() -> Context:
    """The process-wide ZeroMQ bus (namespace from ``DRIVESTACK_NS``), like rclpy.init()."""
    global _default_context
    with _default_lock:
        if _default_context is None:
            _default_context = ZmqContext()
        return _default_context


# ----------------------------------------------------------------------- publishing
class Publisher(Generic[M]):
    """Publishes messages of one type on one topic."""

    def __init__(self, node: Node, msg_type: type[M], spec: TopicSpec,
                 endpoint: PublisherEndpoint) -> None:
        self.node, self.msg_type, self.spec, self.endpoint = node, msg_type, spec, endpoint
        self.topic = spec.name

    def publish(self, msg: M) -> None:
        if type(msg) is not self.msg_type:
            raise TypeError(f"{self.topic} carries {self.msg_type.__name__}, "
                            f"not {type(msg).__name__}")
        self.endpoint.send(encode(msg))
        self.node.stats.messages_out += 1

    @property
    def subscription_count(self) -> int:
        """Subscribers connected to this publisher (like rclpy's get_subscription_count);
        in-process, every subscription of the topic."""
        return self.endpoint.subscription_count()

    def publish_frames(self, frames: list) -> None:
        """Publish already-encoded frames as they are (replay: bit-exact)."""
        self.endpoint.send(frames)
        self.node.stats.messages_out += 1


class Subscription(Generic[M]):
    """Receives one topic. With a callback, the executor calls it per message; with
    ``callback=None`` messages wait in :attr:`buffer` for the owner to take (lockstep).

    QoS ``keep_all`` hands over every message in order; ``latest`` only the newest
    when the executor gets to it, counting the skipped ones as drops."""

    def __init__(self, node: Node, msg_type: type[M], spec: TopicSpec,
                 callback: Callable[[M], Any] | None, qos: QoS,
                 endpoint: SubscriberEndpoint, raw: bool = False) -> None:
        self.node, self.msg_type, self.spec = node, msg_type, spec
        self.topic = spec.name
        self.callback, self.qos, self.endpoint, self.raw = callback, qos, endpoint, raw
        self.buffer: deque[M] = deque()
        self.last_publisher = ""
        self._seen: dict[tuple[str, int], int] = {}  # (publisher, session) -> last seq
        self.busy = False  # re-entrancy guard: a callback that spins is not re-entered

    def _accept(self, d: Delivery) -> bool:
        """Drop repeats (latched resends), count sequence gaps as drops."""
        key = (d.publisher, d.session)
        last = self._seen.get(key)
        if last is not None:
            if d.seq <= last:
                return False
            if d.seq > last + 1:
                self.node.stats.drops += d.seq - last - 1
        self._seen[key] = d.seq
        return True

    def _decode(self, d: Delivery) -> Any | None:
        if self.raw:
            return d
        try:
            return decode(d.frames, self.msg_type)
        except DecodeError as exc:
            self.node.stats.drops += 1
            self.node.get_logger().error(
                "dropped a bad message on %s from node '%s': %s", self.topic, d.publisher, exc)
            return None

    def poll(self, one: bool = False) -> int:
        """Take what arrived and hand it on (callback or buffer). Returns how many."""
        if self.busy:
            return 0
        if one and isinstance(self.endpoint, InProcessSubscriber):
            deliveries = self.endpoint.take_one()
        else:
            deliveries = self.endpoint.take()
        deliveries = [d for d in deliveries if self._accept(d)]
        if not deliveries:
            return 0
        if self.qos.history == "latest" and len(deliveries) > 1:
            self.node.stats.drops += len(deliveries) - 1
            deliveries = deliveries[-1:]
        handled = 0
        for d in deliveries:
            msg = self._decode(d)
            if msg is None:
                continue
            self.node.stats.messages_in += 1
            self.last_publisher = d.publisher
            handled += 1
            if self.callback is None:
                if self.qos.history == "latest":
                    self.buffer.clear()
                self.buffer.append(msg)
            else:
                stats = self.node.stats
                sent = stats.messages_out
                t0 = time.perf_counter()
                self.busy = True
                try:
                    self.callback(msg)
                finally:
                    self.busy = False
                stats.record_latency(time.perf_counter() - t0, stats.messages_out > sent)
        return handled

    def connected(self) -> bool:
        return self.endpoint.connected()


class Timer:
    """Calls ``callback`` every ``period_s`` seconds of the context's clock."""

    def __init__(self, period_s: float, callback: Callable[[], Any], clock_now: float) -> None:
        if period_s <= 0:
            raise ValueError(f"timer period must be > 0 s, not {period_s}")
        self.period_s, self.callback = period_s, callback
        self.next_due = clock_now + period_s
        self.running = False  # re-entrancy guard: a callback that spins cannot re-enter
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class NodeStats:
    """What a node reports on /diagnostics.

    Latency is a node's work per output: the time of its callbacks that publish
    (an input to the output it causes: a camera frame to the objects, a trajectory
    to the command). Callbacks that only buffer an input (the ego state for the
    next frame) take microseconds; counted in, they would make the median of a
    25 ms perception node read 0.03 ms. A node that never publishes from a
    callback (the recorder) reports all its callbacks."""

    def __init__(self) -> None:
        self.messages_in = self.messages_out = self.drops = self.deadline_misses = 0
        self.heartbeat = 0
        self._producing: list[float] = []  # s, callbacks that published
        self._quiet: list[float] = []  # s, callbacks that did not
        self._produces = False  # has any callback published yet

    def record_latency(self, seconds: float, produced: bool = True) -> None:
        """One callback's (or one unit of work's) time; ``produced``: it published."""
        if produced:
            self._produces = True
            self._producing.append(seconds)
        else:
            self._quiet.append(seconds)

    def take_latencies_ms(self) -> tuple[float, float, float]:
        """p50, p99, max (nearest rank) of the latencies since the last call (see
        the class doc), in ms. Plain Python: numpy's percentile imports numpy.ma on
        first use, a 30 ms stall in the middle of a run."""
        taken = self._producing if self._produces else self._quiet
        a = sorted(taken)
        self._producing.clear()
        self._quiet.clear()
        if not a:
            return 0.0, 0.0, 0.0
        n = len(a)
        return a[(n - 1) // 2] * 1e3, a[min(n - 1, round(0.99 * (n - 1)))] * 1e3, a[-1] * 1e3


# ----------------------------------------------------------------------------- nodes
class Node:
    """Base class of every drivestack node.

    ``Params``: a dataclass of the node's parameters; ``params`` given to the
    constructor (from a launch file or YAML) are validated against it, and a bad or
    unknown key raises ``bus.config.ConfigError`` naming ``params_source``.
    ``remaps``: {topic in code: topic on the bus}, like ROS remapping.
    """

    Params: ClassVar[type | None] = None
    DIAGNOSTICS_PERIOD_S: ClassVar[float] = 1.0

    def __init__(self, name: str, *, context: Context | None = None,
                 params: dict[str, Any] | None = None, params_source: str = "parameters",
                 remaps: dict[str, str] | None = None, diagnostics: bool = True) -> None:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"bad node name {name!r}: use letters, digits, _ and -")
        self.name = name
        self.context = context or default_context()
        self.remaps = dict(remaps or {})
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.timers: list[Timer] = []
        self.stats = NodeStats()
        self.executor: Executor | None = None
        self.state = "starting"
        self._logger = logging.getLogger(f"drivestack.{name}")
        if self.Params is not None:
            self.params = cfg.load(self.Params, params or {}, params_source)
        elif params:
            raise cfg.ConfigError(params_source, next(iter(params)),
                                  f"no parameters ({type(self).__name__} takes none)")
        self._status_pub = None
        if diagnostics:
            self._status_pub = self.create_publisher(NodeStatus, "/diagnostics")
            self.create_timer(self.DIAGNOSTICS_PERIOD_S, self.publish_status)

    # -- creation
    def _resolve(self, msg_type: type, topic: str) -> TopicSpec:
        bus_topic = self.remaps.get(topic, topic)
        spec = check_type(bus_topic, msg_type)
        return spec

    def create_publisher(self, msg_type: type[M], topic: str) -> Publisher[M]:
        spec = self._resolve(msg_type, topic)
        pub = Publisher(self, msg_type, spec, self.context.publisher(spec, self.name))
        self.publishers.append(pub)
        return pub

    def create_subscription(self, msg_type: type[M], topic: str,
                            callback: Callable[[M], Any] | None,
                            qos: QoS | None = None, *, raw: bool = False) -> Subscription[M]:
        """Subscribe; ``qos`` defaults to the topic table's. ``raw=True`` hands the
        callback the undecoded :class:`bus.transport.Delivery` (recorder)."""
        spec = self._resolve(msg_type, topic)
        sub = Subscription(self, msg_type, spec, callback, qos or spec.qos,
                           self.context.subscriber(spec, self.name), raw)
        self.subscriptions.append(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], Any]) -> Timer:
        timer = Timer(period_s, callback, self.context.clock.now())
        self.timers.append(timer)
        return timer

    def get_logger(self) -> logging.Logger:
        return self._logger

    # -- start gates: nothing published before its readers connect
    def subscribed(self, want: dict[str, int]) -> bool:
        """Whether each of this node's publishers named in ``want`` (topic ->
        count) has at least that many subscribers."""
        return all(pub.subscription_count >= want[pub.topic] for pub in self.publishers
                   if pub.topic in want)

    def when_subscribed(self, want: dict[str, int], then: Callable[[], Any],
                        period_s: float = 0.05) -> None:
        """Call ``then`` once, when :meth:`subscribed` (``want``): at once when
        ``want`` is empty, else from a timer of ``period_s``. A node that opens its
        inputs this way holds back whoever waits for its subscriptions (the
        simulator's start) until its own outputs have their readers."""
        if not want:
            then()
            return

        def check() -> None:
            if not timer.cancelled and self.subscribed(want):
                timer.cancel()
                then()

        timer = self.create_timer(period_s, check)

    # -- readiness and status
    def is_ready(self) -> bool:
        """Ready once every subscription is connected (no slow-joiner loss);
        subclasses may add their own condition (weights loaded, ...)."""
        return all(s.connected() for s in self.subscriptions)

    def unready_topics(self) -> list[str]:
        return [s.topic for s in self.subscriptions if not s.connected()]

    def publish_status(self, message: str = "") -> None:
        if self._status_pub is None:
            return
        self.stats.heartbeat += 1
        p50, p99, mx = self.stats.take_latencies_ms()
        s = self.stats
        # Sent past Publisher.publish so that messages_out counts the node's own work.
        self._status_pub.endpoint.send(encode(NodeStatus(
            header=self.status_header(), node=self.name, pid=os.getpid(), state=self.state,
            heartbeat=s.heartbeat, wall_time=time.time(), latency_ms_p50=p50,
            latency_ms_p99=p99, latency_ms_max=mx, messages_in=s.messages_in,
            messages_out=s.messages_out, drops=s.drops, deadline_misses=s.deadline_misses,
            message=message)))

    def status_header(self) -> Header:
        """Header for /diagnostics; nodes that follow the sim clock override it."""
        return Header()

    def destroy(self) -> None:
        for p in self.publishers:
            p.endpoint.close()
        for s in self.subscriptions:
            s.endpoint.close()
        self.publishers.clear()
        self.subscriptions.clear()
        self.timers.clear()
        if self.executor is not None:
            self.executor.remove_node(self)


class BusFollower(Node):
    """Base of the nodes that follow the whole bus (the recorder, the live view).

    Camera topics are a pattern (``/sensors/camera/<name>``), so no list made at
    start names them all: :meth:`discover` looks for topics with live publishers
    and follows those the subclass :meth:`wants` (:meth:`follow_bus` runs it every
    ``period_s``). A subclass says which topics it wants and subscribes in
    :meth:`follow`; :meth:`follow` records the topic as followed.
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.followed: set[str] = set()

    def wants(self, topic: str) -> bool:
        """Whether to follow ``topic`` (a live topic not followed yet)."""
        raise NotImplementedError

    def follow(self, topic: str) -> None:
        """Subscribe to ``topic``; a subclass subscribes, then calls this."""
        self.followed.add(topic)

    def follow_bus(self, period_s: float) -> None:
        """Follow the wanted live topics now, and look for new ones every ``period_s``."""
        self.discover()
        self.create_timer(period_s, self.discover)

    def discover(self) -> None:
        """Follow the wanted topics that appeared since the last look (new cameras)."""
        for topic in self.context.live_topics():
            if topic not in self.followed and self.wants(topic):
                self.follow(topic)

    def is_ready(self) -> bool:
        """Ready once connected to every followed topic that has a publisher (a
        topic nobody publishes must not hold up a launch)."""
        return all(s.connected() for s in self.subscriptions if s.endpoint.publishers())


# -------------------------------------------------------------------------- executor
class ShutdownRequested(Exception):
    """Raised inside spin when SIGINT/SIGTERM asked the process to stop."""


class Executor:
    """Runs the callbacks of one or more nodes sharing a context.

    With the in-process context, deliveries are served strictly in publish order and
    timers by the context's clock: the same inputs give the same run. With ZeroMQ,
    it polls every subscription socket of its nodes at once."""

    def __init__(self, context: Context, nodes: Iterable[Node] = ()) -> None:
        self.context = context
        self._inprocess = isinstance(context, InProcessContext)
        self.nodes: list[Node] = []
        self._stop = False
        for n in nodes:
            self.add_node(n)

    def add_node(self, node: Node) -> None:
        if node.context is not self.context:
            raise ValueError(f"node {node.name} belongs to another context")
        node.executor = self
        self.nodes.append(node)

    def remove_node(self, node: Node) -> None:
        if node in self.nodes:
            self.nodes.remove(node)
            node.executor = None

    def _subscriptions(self) -> list[Subscription]:
        return [s for n in self.nodes for s in n.subscriptions]

    def _timers(self) -> list[Timer]:
        return [t for n in self.nodes for t in n.timers if not t.cancelled]

    def spin_once(self, timeout_s: float = 0.1) -> bool:
        """Serve what is ready, waiting up to ``timeout_s`` for something; True if
        any callback ran (or a buffered subscription received)."""
        if self._stop:
            raise ShutdownRequested
        clock = self.context.clock
        subs = self._subscriptions()
        # Publisher sockets are polled too: serving them is when ZeroMQ attaches a new
        # subscriber and sends it the welcome (and a latched topic its last message).
        pubs = [p.endpoint for n in self.nodes for p in n.publishers]
        worked = self._run_due_timers()
        wait = 0.0
        if not worked:
            timers = [t for t in self._timers() if not t.running]  # not the one we are in
            wait = timeout_s
            if timers:
                wait = max(0.0, min(wait, min(t.next_due for t in timers) - clock.now()))
        ready = self.context.wait([s.endpoint for s in subs], pubs, wait)
        if ready:
            for p in pubs:
                if p in ready:
                    p.service()
            if self._inprocess:
                worked = self._serve_inprocess(subs) or worked
            else:
                for s in subs:
                    if s.endpoint in ready:
                        worked = bool(s.poll()) or worked
        worked = self._run_due_timers() or worked
        self.context.maintain()
        return worked

    def _serve_inprocess(self, subs: list[Subscription]) -> bool:
        """In-process: deliver one message at a time, oldest first across all
        subscriptions, so the order is the publish order whatever the node layout."""
        worked = False
        while True:
            pending = [(s.endpoint.oldest(), i) for i, s in enumerate(subs)
                       if not s.busy and s.endpoint.oldest() is not None]
            if not pending:
                return worked
            _, i = min(pending)
            subs[i].poll(one=True)
            worked = True

    def _run_due_timers(self) -> bool:
        now = self.context.clock.now()
        ran = False
        for t in self._timers():
            if t.running or now < t.next_due:
                continue
            # Catch up without bursts: skip periods missed entirely.
            t.next_due += t.period_s * max(1, int((now - t.next_due) // t.period_s) + 1)
            t.running = True
            try:
                t.callback()
            finally:
                t.running = False
            ran = True
        return ran

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Spin until ``predicate()`` holds (True) or ``timeout_s`` passes (False)."""
        clock = self.context.clock
        deadline = None if timeout_s is None else clock.now() + timeout_s
        while not predicate():
            if deadline is not None and clock.now() >= deadline:
                return False
            remaining = 0.05 if deadline is None else min(0.05, deadline - clock.now())
            self.spin_once(max(remaining, 0.0))
        return True

    def spin(self) -> None:
        """Spin until :meth:`shutdown` (or a signal handler installed by
        :func:`install_signal_handlers`) stops it."""
        try:
            while True:
                self.spin_once(0.1)
        except ShutdownRequested:
            pass

    def shutdown(self) -> None:
        self._stop = True

    def destroy(self) -> None:
        for n in list(self.nodes):
            n.destroy()


def install_signal_handlers(executor: Executor) -> None:
    """SIGINT/SIGTERM stop ``executor.spin`` cleanly at the next callback boundary."""

    def handler(signum: int, frame: Any) -> None:
        executor.shutdown()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)

