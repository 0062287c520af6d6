"""CARLA's streaming server: sensor data and the episode state pushed to clients.

A client connects to the streaming port and sends the stream id of a token (u32,
little-endian); from then on the server pushes ``[u32 length][payload]`` frames of
that stream, with no acknowledgement. ``sensor.stop()`` closes the socket.

Each session has its own sender thread and queue, so a slow or dead client never
blocks the tick; a session whose queue overflows (a client that stopped reading)
is dropped, as is one whose socket fails.

A new session may be sent a first payload (``greeting``): the episode stream's
current state. A client subscribes on a connection of its own, so its subscription
can land just after the tick it then waits for (``apply_settings`` sends a tick
cue right after ``get_world`` subscribed); that tick went to no one, and in
synchronous mode no other comes. The greeting is taken and queued under the lock
the server publishes under, so it comes before every later payload.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable

from sim.carla_server.tcp import TcpAcceptor

log = logging.getLogger(__name__)

#: frames, and bytes, a session may have queued before it counts as stuck and is
#: dropped (a few seconds of one 800x600 camera at 20 Hz)
MAX_QUEUED = 512
MAX_QUEUED_BYTES = 128 * 1024 * 1024
HELLO_TIMEOUT_S = 10.0
#: an idle session checks this often whether its client has gone
IDLE_CHECK_S = 1.0


class _Session:
    def __init__(self, server: StreamServer, sock: socket.socket, stream_id: int) -> None:
        self.server, self.sock, self.stream_id = server, sock, stream_id
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name=f"carla-stream-{stream_id}",
                                       daemon=True)

    def push(self, payload: bytes) -> None:
        stuck = False
        with self.cond:
            if self.closed:
                return
            if len(self.queue) >= MAX_QUEUED or \
                    self.queued_bytes + len(payload) > MAX_QUEUED_BYTES:
                log.info("stream %d: client stopped reading, dropped", self.stream_id)
                self.closed = stuck = True
                self.queue.clear()
            else:
                self.queue.append(payload)
                self.queued_bytes += len(payload)
            self.cond.notify()
        if stuck:  # the sender may sit in sendall: break it out
            self.server._remove(self)
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def _peer_closed(self) -> bool:
        """Whether the client hung up (it never sends after its stream id: readable
        means closed, or bytes to discard)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and not self.sock.recv(4096)
        except OSError:
            return True

    def _run(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.closed:
                        if not self.cond.wait(IDLE_CHECK_S) and self._peer_closed():
                            self.closed = True
                    if self.closed:
                        return
                    payload = self.queue.popleft()
                    self.queued_bytes -= len(payload)
                self.sock.sendall(struct.pack("<I", len(payload)))
                self.sock.sendall(payload)
        except OSError:
            pass
        finally:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass
            self.server._remove(self)


class StreamServer(TcpAcceptor):
    """Serves every stream on one TCP port; :meth:`publish` sends a payload to every
    session subscribed to a stream id."""

    def __init__(self, host: str, port: int,
                 known: Callable[[int], bool] = lambda _stream_id: True,
                 greeting: Callable[[int], bytes | None] = lambda _stream_id: None,
                 publish_lock: threading.RLock | None = None) -> None:
        """``known(stream_id)``: whether a stream exists; a client asking for another
        is disconnected at once. ``greeting(stream_id)``: a new session's first
        payload, or None; called holding ``publish_lock``, the lock every
        :meth:`publish` caller holds (see the module doc)."""
        super().__init__(host, port, "carla-stream-accept")
        self.known = known
        self.greeting = greeting
        self._publish_lock = publish_lock or threading.RLock()
        self._sessions: dict[int, list[_Session]] = {}

    def _close_all(self) -> None:
        with self._lock:
            sessions = [s for ss in self._sessions.values() for s in ss]
        for s in sessions:
            s.close()
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def subscribers(self, stream_id: int) -> int:
        with self._lock:
            return len(self._sessions.get(stream_id, ()))

    def publish(self, stream_id: int, payload: bytes) -> None:
        with self._lock:
            sessions = list(self._sessions.get(stream_id, ()))
        for s in sessions:
            s.push(payload)

    def close_stream(self, stream_id: int) -> None:
        """Drop every session of a stream (its sensor was destroyed)."""
        with self._lock:
            sessions = self._sessions.pop(stream_id, [])
        for s in sessions:
            s.close()

    def _remove(self, session: _Session) -> None:
        with self._lock:
            ss = self._sessions.get(session.stream_id)
            if ss and session in ss:
                ss.remove(session)
                if not ss:
                    del self._sessions[session.stream_id]

    def _on_accept(self, sock: socket.socket, peer: tuple) -> None:
        threading.Thread(target=self._hello, args=(sock,), daemon=True).start()

    def _hello(self, sock: socket.socket) -> None:
        """Read the 4-byte stream id, then register the session."""
        try:
            sock.settimeout(HELLO_TIMEOUT_S)
            data = b""
            while len(data) < 4:
                chunk = sock.recv(4 - len(data))
                if not chunk:
                    raise OSError("closed before sending a stream id")
                data += chunk
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        stream_id = struct.unpack("<I", data)[0]
        if not self.known(stream_id):
            log.info("stream %d: no such stream, client dropped", stream_id)
            sock.close()
            return
        session = _Session(self, sock, stream_id)
        with self._publish_lock:
            with self._lock:
                self._sessions.setdefault(stream_id, []).append(session)
            first = self.greeting(stream_id)
            if first is not None:
                session.push(first)
        session.thread.start()
