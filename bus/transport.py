"""Moving frames between nodes: ZeroMQ across processes, or in memory inside one.

Both transports give the same thing to ``bus.node``: a publisher endpoint that
sends a list of frames, and a subscriber endpoint that hands back every delivery
since the last call, each tagged with its publishing node, a per-publisher
``session`` id and a sequence number (so the node layer can count gaps and drop
duplicates the same way for both).

ZeroMQ (``ZmqContext``) is brokerless. Each publisher binds its own XPUB socket, one
per (topic, node), and writes a small registry file in the run namespace's
directory naming its endpoint; subscribers find publishers by listing that
directory and connect to each. So two runs in different namespaces never meet,
and nothing sits in the middle of a message's path. Slow joiners: every XPUB has
a welcome message (``XPUB_WELCOME_MSG``), which a subscriber receives once its
subscription is registered at the publisher; from then on no message is lost,
and that is what "ready" means. Latched topics: the XPUB runs verbose, sees each
new subscription, and sends its last message again (existing subscribers drop the
repeat by its sequence number).

Wire: ``[envelope, *message_frames]`` where the envelope is ``<u32 session, u64 seq,
i64 send_time_ns>`` followed by the publisher's node name.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import random
import struct
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import zmq

from bus.topics import TopicSpec

Frame = bytes | memoryview

_ENVELOPE = struct.Struct("<IQq")
_WELCOME = b"\x00drivestack-welcome:"
_IPC_PATH_MAX = 100  # sun_path is 108 bytes on Linux
_RESCAN_S = 0.1


class TransportError(RuntimeError):
    """The bus could not be set up (endpoint in use, bad namespace, ...)."""


@dataclass
class Delivery:
    """One received message: its frames and where it came from."""

    frames: Sequence[Frame]
    publisher: str
    session: int
    seq: int
    send_ns: int


# ------------------------------------------------------------------------ interfaces
class PublisherEndpoint(ABC):
    spec: TopicSpec
    node: str

    @abstractmethod
    def send(self, frames: Sequence[Frame]) -> None: ...

    def service(self) -> None:
        """Handle connection events (latched resends); called by the executor."""

    @abstractmethod
    def subscription_count(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


class SubscriberEndpoint(ABC):
    spec: TopicSpec
    node: str

    @abstractmethod
    def take(self) -> list[Delivery]:
        """Every delivery received since the last call, oldest first (non-blocking)."""

    @abstractmethod
    def connected(self) -> bool:
        """True once a publisher has registered this subscription (no later loss)."""

    @abstractmethod
    def publishers(self) -> list[str]:
        """Names of the nodes publishing this topic, as far as is known."""

    @abstractmethod
    def close(self) -> None: ...


class Clock:
    """Wall-clock time for timers and deadlines (monotonic seconds)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """A clock that only moves when told to: timers in tests fire deterministically."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


class Context(ABC):
    """A bus: where publishers and subscribers of one run namespace meet."""

    namespace: str
    clock: Clock

    @abstractmethod
    def publisher(self, spec: TopicSpec, node: str) -> PublisherEndpoint: ...

    @abstractmethod
    def subscriber(self, spec: TopicSpec, node: str) -> SubscriberEndpoint: ...

    @abstractmethod
    def live_topics(self) -> dict[str, list[str]]:
        """Every topic with a live publisher -> the publishing nodes."""

    @abstractmethod
    def wait(
        self,
        subscribers: Sequence[SubscriberEndpoint],
        publishers: Sequence[PublisherEndpoint],
        timeout_s: float,
    ) -> set[SubscriberEndpoint | PublisherEndpoint]:
        """Block until a subscriber has data or a publisher has events (or timeout);
        return the endpoints that have."""

    def maintain(self) -> None:
        """Housekeeping between callbacks (ZeroMQ: find new publishers)."""

    def close(self) -> None:
        """Release what the context holds."""


# ----------------------------------------------------------------------- namespaces
_NS_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def runtime_root() -> Path:
    """Where namespaces keep their sockets and registry (per user, not shared)."""
    base = os.environ.get("DRIVESTACK_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    return Path(base or tempfile.gettempdir()) / f"drivestack-{os.getuid()}"


def resolve_namespace(explicit: str | None = None) -> str:
    """The namespace a tool should attach to: ``explicit``, else ``DRIVESTACK_NS``, else
    the only live one on this machine; several or none is an error listing them."""
    if explicit:
        return check_namespace(explicit)
    if os.environ.get("DRIVESTACK_NS"):
        return check_namespace(os.environ["DRIVESTACK_NS"])
    live = live_namespaces()
    if len(live) == 1:
        return live[0]
    if not live:
        raise TransportError("no live drivestack bus on this machine (start one with "
                             "`drivestack launch` or `drivestack run`, or pass --ns)")
    raise TransportError(f"several live buses ({', '.join(live)}): choose one with --ns")


def check_namespace(ns: str) -> str:
    if not ns or len(ns) > 40 or not set(ns) <= _NS_OK or ns.startswith("."):
        raise TransportError(
            f"bad bus namespace {ns!r}: expected 1-40 characters of letters, digits, _ - ."
        )
    return ns


def namespace_dir(ns: str) -> Path:
    return runtime_root() / check_namespace(ns)


def live_namespaces() -> list[str]:
    """Namespaces with at least one live publisher on this machine."""
    root = runtime_root()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        topics = d / "topics"
        if topics.is_dir() and any(_pid_alive(e.pid) for e in _read_registry_tree(topics)):
            out.append(d.name)
    return out


def _topic_slug(topic: str) -> str:
    return topic.strip("/").replace("/", ".")


@dataclass(frozen=True)
class RegistryEntry:
    topic: str
    node: str
    pid: int
    endpoint: str
    curve_public_key: str = ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_entry(path: Path) -> RegistryEntry | None:
    try:
        return RegistryEntry(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # half-written or removed meanwhile: the next scan sees it


def _read_registry_tree(topics_dir: Path) -> list[RegistryEntry]:
    entries = []
    for sub in topics_dir.iterdir():
        if sub.is_dir():
            entries += [e for p in sub.glob("*.json") if (e := _read_entry(p)) is not None]
    return entries


def registry(ns: str) -> list[RegistryEntry]:
    """Every live publisher registered in namespace ``ns``."""
    topics = namespace_dir(ns) / "topics"
    if not topics.is_dir():
        return []
    return [e for e in _read_registry_tree(topics) if _pid_alive(e.pid)]


# ---------------------------------------------------------------------------- zeromq
@dataclass(frozen=True)
class ZmqConfig:
    """How this process joins the bus. Loopback/ipc unless set otherwise.

    protocol     ipc (unix sockets, default) or tcp
    bind_host    tcp only: interface to bind (default 127.0.0.1)
    advertise    tcp only: host written in the registry for others (default bind_host)
    curve_secret_file  zmq certificate (``zmq.auth`` format) holding this process's
                 key pair; enables CURVE encryption and authentication
    curve_authorized_dir  directory of public certificates allowed to subscribe
    remote       {topic: [endpoint, ...]}: publishers on other machines to connect to
    """

    namespace: str = "default"
    protocol: Literal["ipc", "tcp"] = "ipc"
    bind_host: str = "127.0.0.1"
    advertise: str = ""
    curve_secret_file: str = ""
    curve_authorized_dir: str = ""
    remote: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def from_env(**overrides: object) -> ZmqConfig:
        """Settings from ``DRIVESTACK_NS``, ``DRIVESTACK_PROTOCOL``, ``DRIVESTACK_BIND``,
        ``DRIVESTACK_CURVE_SECRET``, ``DRIVESTACK_CURVE_AUTHORIZED``; then overrides."""
        env = os.environ
        values: dict[str, object] = {
            "namespace": env.get("DRIVESTACK_NS", "default"),
            "protocol": env.get("DRIVESTACK_PROTOCOL", "ipc"),
            "bind_host": env.get("DRIVESTACK_BIND", "127.0.0.1"),
            "curve_secret_file": env.get("DRIVESTACK_CURVE_SECRET", ""),
            "curve_authorized_dir": env.get("DRIVESTACK_CURVE_AUTHORIZED", ""),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return ZmqConfig(**values)  # type: ignore[arg-type]


class ZmqContext(Context):
    """The ZeroMQ bus of one namespace, as seen from this process."""

    def __init__(self, config: ZmqConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or ZmqConfig.from_env()
        if self.config.protocol not in ("ipc", "tcp"):
            raise TransportError(f"bus protocol must be ipc or tcp, not {self.config.protocol!r}")
        self.namespace = check_namespace(self.config.namespace)
        self.clock = clock or Clock()
        self.dir = namespace_dir(self.namespace)
        self.zmq = zmq.Context()
        self._poller_cache: tuple[tuple[int, ...], zmq.Poller, dict] | None = None
        self.endpoints: list[ZmqPublisher | ZmqSubscriber] = []  # open ones, for close()
        self._auth = None
        self._curve: tuple[bytes, bytes] | None = None
        if self.config.curve_secret_file:
            self._setup_curve()

    def _setup_curve(self) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        try:
            public, secret = zmq.auth.load_certificate(self.config.curve_secret_file)
        except (OSError, ValueError) as exc:
            raise TransportError(
                f"{self.config.curve_secret_file}: not a zmq secret certificate ({exc})"
            ) from None
        if secret is None:
            raise TransportError(f"{self.config.curve_secret_file}: holds no secret key")
        self._curve = (public, secret)
        if not os.path.isdir(self.config.curve_authorized_dir):
            raise TransportError(
                f"curve_authorized_dir {self.config.curve_authorized_dir!r}: expected a "
                "directory of public certificates"
            )
        self._auth = ThreadAuthenticator(self.zmq)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=self.config.curve_authorized_dir)

    # -- endpoints
    def _endpoint_for(self, topic: str, node: str) -> str:
        if self.config.protocol == "tcp":
            return f"tcp://{self.config.bind_host}:*"
        digest = hashlib.sha1(f"{topic}@{node}".encode()).hexdigest()[:16]
        path = self.dir / "s" / digest
        if len(str(path)) > _IPC_PATH_MAX:
            raise TransportError(
                f"ipc path {path} is too long for a unix socket: set DRIVESTACK_RUNTIME_DIR "
                "to a shorter directory"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"ipc://{path}"

    def topic_dir(self, topic: str) -> Path:
        return self.dir / "topics" / _topic_slug(topic)

    def _registry_path(self, topic: str, node: str) -> Path:
        return self.topic_dir(topic) / f"{node}.json"

    def publisher(self, spec: TopicSpec, node: str) -> ZmqPublisher:
        if not spec.multi_publisher:
            others = [e for e in self.entries(spec.name)
                      if e.node != node or e.pid != os.getpid()]
            if others:
                raise TransportError(
                    f"topic {spec.name} is already published by node '{others[0].node}' "
                    f"(pid {others[0].pid}) in namespace '{self.namespace}'; it takes one "
                    "publisher"
                )
        return ZmqPublisher(self, spec, node)

    def subscriber(self, spec: TopicSpec, node: str) -> ZmqSubscriber:
        return ZmqSubscriber(self, spec, node)

    def entries(self, topic: str) -> list[RegistryEntry]:
        """Live registered publishers of ``topic``; stale entries are removed."""
        try:
            paths = list(self.topic_dir(topic).glob("*.json"))
        except OSError:
            return []
        out = []
        for p in paths:
            e = _read_entry(p)
            if e is None:
                continue
            if _pid_alive(e.pid):
                out.append(e)
            else:  # a publisher that was killed: clean up after it
                with contextlib.suppress(OSError):
                    p.unlink()
        return out

    def live_topics(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in registry(self.namespace):
            out.setdefault(e.topic, []).append(e.node)
        return {t: sorted(n) for t, n in sorted(out.items())}

    def secure(self, sock: zmq.Socket, server: bool, server_key: str = "") -> None:
        if self._curve is None:
            return
        public, secret = self._curve
        sock.curve_publickey, sock.curve_secretkey = public, secret
        if server:
            sock.curve_server = True
        else:
            sock.curve_serverkey = (server_key or public.decode()).encode()

    def wait(self, subscribers, publishers, timeout_s):  # type: ignore[no-untyped-def]
        endpoints = [*subscribers, *publishers]
        key = tuple(id(e) for e in endpoints)
        if self._poller_cache is None or self._poller_cache[0] != key:
            poller = zmq.Poller()
            for e in endpoints:
                poller.register(e.sock, zmq.POLLIN)
            self._poller_cache = (key, poller, {e.sock: e for e in endpoints})
        _, poller, by_sock = self._poller_cache
        return {by_sock[s] for s, _ in poller.poll(max(0, int(timeout_s * 1000)))}

    def maintain(self) -> None:
        now = time.monotonic()
        for e in self.endpoints:
            if isinstance(e, ZmqSubscriber) and now >= e.next_scan:
                e.rescan(full=False)

    def close(self) -> None:
        """Close every endpoint still open (removing registry entries and sockets)."""
        self._poller_cache = None
        for endpoint in list(self.endpoints):
            endpoint.close()
        if self._auth is not None:
            self._auth.stop()
        self.zmq.term()


class ZmqPublisher(PublisherEndpoint):
    def __init__(self, ctx: ZmqContext, spec: TopicSpec, node: str) -> None:
        self.ctx, self.spec, self.node = ctx, spec, node
        self.session = random.getrandbits(32)
        self.seq = 0
        self._node_bytes = node.encode()
        self._last: list[Frame] | None = None
        self._subscribers = 0
        sock = ctx.zmq.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, 0)  # never drop silently; see topics.QoS
        sock.setsockopt(zmq.LINGER, 1000)
        # Every (un)subscription reaches us: latched resends and subscriber counts.
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        sock.setsockopt(zmq.XPUB_WELCOME_MSG, _WELCOME + self._node_bytes)
        ctx.secure(sock, server=True)
        endpoint = ctx._endpoint_for(spec.name, node)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise TransportError(f"cannot bind {endpoint} for {spec.name}: {exc}") from None
        self.sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if ctx.config.protocol == "tcp" and ctx.config.advertise:
            port = self.endpoint.rsplit(":", 1)[1]
            self.endpoint = f"tcp://{ctx.config.advertise}:{port}"
        self._register()
        ctx.endpoints.append(self)

    def _register(self) -> None:
        path = self.ctx._registry_path(self.spec.name, self.node)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = self.ctx._curve[0].decode() if self.ctx._curve else ""
        entry = RegistryEntry(self.spec.name, self.node, os.getpid(), self.endpoint, key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry.__dict__))
        os.replace(tmp, path)  # atomic: a reader never sees half a file
        self._registry_file = path

    def send(self, frames: Sequence[Frame]) -> None:
        self.seq += 1
        env = _ENVELOPE.pack(self.session, self.seq, time.time_ns()) + self._node_bytes
        self.sock.send_multipart([env, *frames], copy=False)
        if self.spec.latched:
            self._last = list(frames)

    def subscription_count(self) -> int:
        self.service()
        return self._subscribers

    def service(self) -> None:
        """Count subscriptions; resend the last latched message to a new one."""
        resend = False
        while self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = self.sock.recv()
            if event[:1] == b"\x01":
                self._subscribers += 1
                resend = True
            elif event[:1] == b"\x00":
                self._subscribers = max(0, self._subscribers - 1)
        if resend and self._last is not None:
            env = _ENVELOPE.pack(self.session, self.seq, time.time_ns()) + self._node_bytes
            self.sock.send_multipart([env, *self._last], copy=False)

    def close(self) -> None:
        if self not in self.ctx.endpoints:
            return
        self.ctx.endpoints.remove(self)
        with contextlib.suppress(OSError):
            self._registry_file.unlink()
        self.sock.close()
        if self.endpoint.startswith("ipc://"):
            with contextlib.suppress(OSError):
                os.unlink(self.endpoint[len("ipc://"):])


class ZmqSubscriber(SubscriberEndpoint):
    def __init__(self, ctx: ZmqContext, spec: TopicSpec, node: str) -> None:
        self.ctx, self.spec, self.node = ctx, spec, node
        sock = ctx.zmq.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)  # vanished publishers: retry slowly
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock = sock
        ctx.endpoints.append(self)
        self._connected: dict[str, str] = {}  # endpoint -> node
        self._welcomed: set[str] = set()  # nodes whose welcome arrived
        self._live: set[str] = set()  # nodes registered at the last scan
        self.next_scan = 0.0
        self._full_scan = 0.0
        self._dir_mtime = -1
        for endpoint in ctx.config.remote.get(spec.name, []):
            ctx.secure(sock, server=False)
            sock.connect(endpoint)
            self._connected[endpoint] = f"remote:{endpoint}"
            self._live.add(f"remote:{endpoint}")
        self.rescan()

    def rescan(self, full: bool = True) -> None:
        """Connect to newly registered publishers; forget the welcome of vanished ones.

        A vanished publisher's endpoint is deliberately not disconnected: an explicit
        ``disconnect`` can terminate the pipe while a multipart message is half read,
        which aborts libzmq (``Assertion failed: !_more (fq.cpp)``, libzmq #3663).
        Left connected, ZeroMQ retries quietly and picks up a restarted publisher.

        ``full=False`` skips the work when the topic's registry directory has not
        changed since the last scan (a killed publisher changes nothing there, so a
        full scan, which checks every publisher's pid, still runs every second)."""
        now = time.monotonic()
        self.next_scan = now + _RESCAN_S
        try:
            mtime = os.stat(self.ctx.topic_dir(self.spec.name)).st_mtime_ns
        except OSError:
            mtime = -1
        if not full and mtime == self._dir_mtime and now < self._full_scan:
            return
        self._dir_mtime, self._full_scan = mtime, now + 1.0
        live = {e.endpoint: e for e in self.ctx.entries(self.spec.name)}
        for endpoint, entry in live.items():
            if endpoint not in self._connected:
                self.ctx.secure(self.sock, server=False, server_key=entry.curve_public_key)
                self.sock.connect(endpoint)
            self._connected[endpoint] = entry.node
        now_live = {e.node for e in live.values()} | {
            n for n in self._connected.values() if n.startswith("remote:")}
        self._welcomed -= self._live - now_live  # a vanished publisher must welcome anew
        self._live = now_live

    def take(self) -> list[Delivery]:
        """Every whole message queued now. Frames 0 and 1 (envelope, metadata) are
        small and copied; array frames are received zero-copy. Queue state is read
        with EVENTS rather than by a recv that fails: no exception per call."""
        out = []
        sock = self.sock
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            parts = sock.recv_multipart(copy=False)
            head = parts[0].bytes
            if len(parts) == 1:
                if head.startswith(_WELCOME):
                    self._welcomed.add(head[len(_WELCOME):].decode(errors="replace"))
                continue  # a welcome, or nothing a drivestack publisher sends
            if len(head) < _ENVELOPE.size:
                continue  # not from a drivestack publisher
            frames: list[Frame] = [p.buffer if len(p) >= 65536 else p.bytes
                                   for p in parts[1:]]
            session, seq, send_ns = _ENVELOPE.unpack_from(head)
            publisher = head[_ENVELOPE.size:].decode(errors="replace")
            out.append(Delivery(frames, publisher, session, seq, send_ns))
        return out

    def connected(self) -> bool:
        if time.monotonic() >= self.next_scan:
            self.rescan()
        if self.spec.multi_publisher:
            return True
        return bool(self._welcomed)

    def publishers(self) -> list[str]:
        """Nodes registered as publishers at the last scan (and configured remote ones)."""
        return sorted(self._live)

    def close(self) -> None:
        if self in self.ctx.endpoints:
            self.ctx.endpoints.remove(self)
            self.sock.close(0)


# ------------------------------------------------------------------------- in-process
class InProcessContext(Context):
    """A bus inside one process: deliveries go straight into subscriber queues.

    Messages are still encoded and decoded (copied, so a publisher cannot change what
    a subscriber got), and delivered in publish order: with the in-process executor
    a run is deterministic. ``clock`` defaults to a :class:`ManualClock`."""

    def __init__(self, namespace: str = "inproc", clock: Clock | None = None) -> None:
        self.namespace = namespace
        self.clock = clock if clock is not None else ManualClock()
        self._subs: dict[str, list[InProcessSubscriber]] = collections.defaultdict(list)
        self._pubs: dict[str, list[InProcessPublisher]] = collections.defaultdict(list)
        self.order = 0  # global delivery counter: the executor serves oldest first

    def publisher(self, spec: TopicSpec, node: str) -> InProcessPublisher:
        others = [p.node for p in self._pubs[spec.name] if p.node != node]
        if others and not spec.multi_publisher:
            raise TransportError(
                f"topic {spec.name} is already published by node '{others[0]}' in namespace "
                f"'{self.namespace}'; it takes one publisher"
            )
        pub = InProcessPublisher(self, spec, node)
        self._pubs[spec.name].append(pub)
        return pub

    def subscriber(self, spec: TopicSpec, node: str) -> InProcessSubscriber:
        sub = InProcessSubscriber(self, spec, node)
        self._subs[spec.name].append(sub)
        for pub in self._pubs[spec.name]:
            if pub.last is not None:  # latched: the late joiner gets the last one
                sub.push(pub.last)
        return sub

    def live_topics(self) -> dict[str, list[str]]:
        return {t: sorted(p.node for p in pubs) for t, pubs in sorted(self._pubs.items()) if pubs}

    def deliver(self, spec: TopicSpec, delivery: Delivery) -> None:
        for sub in self._subs[spec.name]:
            sub.push(delivery)

    def wait(self, subscribers, publishers, timeout_s):  # type: ignore[no-untyped-def]
        ready = {s for s in subscribers if s.queue}
        if not ready:
            self.clock.sleep(timeout_s)
        return ready


class InProcessPublisher(PublisherEndpoint):
    def __init__(self, ctx: InProcessContext, spec: TopicSpec, node: str) -> None:
        self.ctx, self.spec, self.node = ctx, spec, node
        self.session = random.getrandbits(32)
        self.seq = 0
        self.last: Delivery | None = None

    def send(self, frames: Sequence[Frame]) -> None:
        self.seq += 1
        delivery = Delivery([bytes(f) for f in frames], self.node, self.session, self.seq,
                            time.time_ns())
        if self.spec.latched:
            self.last = delivery
        self.ctx.deliver(self.spec, delivery)

    def subscription_count(self) -> int:
        return len(self.ctx._subs[self.spec.name])

    def close(self) -> None:
        pubs = self.ctx._pubs[self.spec.name]
        if self in pubs:
            pubs.remove(self)


class InProcessSubscriber(SubscriberEndpoint):
    def __init__(self, ctx: InProcessContext, spec: TopicSpec, node: str) -> None:
        self.ctx, self.spec, self.node = ctx, spec, node
        self.queue: collections.deque[tuple[int, Delivery]] = collections.deque()

    def push(self, delivery: Delivery) -> None:
        self.ctx.order += 1
        self.queue.append((self.ctx.order, delivery))

    def oldest(self) -> int | None:
        """Global order of the oldest queued delivery (the executor's scheduling key)."""
        return self.queue[0][0] if self.queue else None

    def take(self) -> list[Delivery]:
        out = [d for _, d in self.queue]
        self.queue.clear()
        return out

    def take_one(self) -> list[Delivery]:
        return [self.queue.popleft()[1]] if self.queue else []

    def connected(self) -> bool:
        return True

    def publishers(self) -> list[str]:
        return sorted({p.node for p in self.ctx._pubs[self.spec.name]})

    def close(self) -> None:
        subs = self.ctx._subs[self.spec.name]
        if self in subs:
            subs.remove(self)
