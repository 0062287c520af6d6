"""A listening TCP socket with an accept thread: what the RPC port and the
streaming port share. Each accepted connection goes to :meth:`TcpAcceptor._on_accept`
(in the accept thread: hand it on quickly); :meth:`TcpAcceptor.stop` closes the
listener, then every open connection (:meth:`TcpAcceptor._close_all`), then joins
the accept thread."""

from __future__ import annotations

import socket
import threading


class TcpAcceptor:
    def __init__(self, host: str, port: int, thread_name: str) -> None:
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._close_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self.sock.accept()
            except OSError:
                return  # the listener was closed: stopping
            self._on_accept(sock, peer)

    def _on_accept(self, sock: socket.socket, peer: tuple) -> None:
        raise NotImplementedError

    def _close_all(self) -> None:
        raise NotImplementedError
