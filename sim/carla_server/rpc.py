"""The msgpack-rpc transport CARLA's client speaks (rpclib): a TCP server whose
connections carry concatenated msgpack objects, no length prefix.

A request is ``[0, msgid, method, params]`` and is answered ``[1, msgid, error,
result]``; a notification ``[2, method, params]`` gets no answer. CARLA puts a
``Metadata`` array first in ``params`` (``[False]`` for calls the client waits on,
``[True]`` for fire-and-forget ones, which are answered all the same); the handler
receives the arguments after it.

Robustness: each connection has its own thread; bytes that are not msgpack, a
message of the wrong shape or an oversized buffer drop that connection only; an
exception in a handler becomes an error reply. The server keeps serving.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from sim.carla_server.tcp import TcpAcceptor

log = logging.getLogger(__name__)

REQUEST, RESPONSE, NOTIFY = 0, 1, 2
#: largest msgpack object a client may send (the largest real one is an OpenDRIVE
#: map in ``copy_opendrive_to_file`` style calls; requests are small)
MAX_BUFFER = 64 * 1024 * 1024


class UnknownMethod(Exception):
    """No handler for this method name: answered with an rpclib-level error."""


@dataclass(eq=False)
class Connection:
    """One client connection: its socket, peer address and a lock for replies."""

    sock: socket.socket
    peer: tuple
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def send(self, obj: Any) -> None:
        data = msgpack.packb(obj, use_bin_type=True)
        with self.lock:
            self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[str, list, Connection], Any]


class RpcServer(TcpAcceptor):
    """Accepts connections on ``(host, port)`` and calls ``handler(method, args,
    connection)`` for each request; its return value is the reply's result (a CARLA
    ``Response`` shape, see :mod:`sim.carla_server.wire`)."""

    def __init__(self, host: str, port: int, handler: Handler,
                 on_disconnect: Callable[[Connection], None] | None = None) -> None:
        super().__init__(host, port, "carla-rpc-accept")
        self.handler = handler
        self.on_disconnect = on_disconnect
        self._conns: set[Connection] = set()

    def _close_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _on_accept(self, sock: socket.socket, peer: tuple) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock, peer)
        with self._lock:
            self._conns.add(conn)
        threading.Thread(target=self._serve, args=(conn,), name=f"carla-rpc-{peer}",
                         daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                    max_buffer_size=MAX_BUFFER)
        try:
            while not self._stopping.is_set():
                data = conn.sock.recv(1 << 16)
                if not data:
                    break
                unpacker.feed(data)
                for msg in unpacker:
                    if not self._dispatch(conn, msg):
                        return
        except (OSError, ValueError, msgpack.UnpackException, msgpack.ExtraData,
                msgpack.FormatError, msgpack.StackError, msgpack.BufferFull) as exc:
            if not conn.closed:
                log.info("dropped client %s: %s", conn.peer, exc)
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)
            if self.on_disconnect is not None:
                self.on_disconnect(conn)

    def _dispatch(self, conn: Connection, msg: Any) -> bool:
        """Handle one message; False drops the connection (a malformed message)."""
        if not isinstance(msg, list) or not msg or msg[0] not in (REQUEST, NOTIFY):
            log.info("dropped client %s: not a msgpack-rpc message", conn.peer)
            return False
        if msg[0] == REQUEST:
            if len(msg) != 4 or not isinstance(msg[1], int) or not isinstance(msg[2], str) \
                    or not isinstance(msg[3], list):
                log.info("dropped client %s: malformed request", conn.peer)
                return False
            msgid, method, params = msg[1], msg[2], msg[3]
        else:
            if len(msg) != 3 or not isinstance(msg[1], str) or not isinstance(msg[2], list):
                return False
            msgid, method, params = None, msg[1], msg[2]
        args = params[1:] if params and _is_metadata(params[0]) else params
        error: Any = None
        result: Any = None
        try:
            result = self.handler(method, args, conn)
        except UnknownMethod as exc:
            error = str(exc)
        except Exception as exc:  # a handler bug must not take the server down
            log.exception("%s failed", method)
            error = f"{method}: internal server error: {exc}"
        if msgid is not None:
            try:
                conn.send([RESPONSE, msgid, error, result])
            except OSError:
                return False
        return True


def _is_metadata(value: Any) -> bool:
    """CARLA's ``rpc::Metadata``: a one-element array holding a bool."""
    return isinstance(value, list) and len(value) == 1 and isinstance(value[0], bool)
