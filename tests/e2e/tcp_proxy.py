"""A loopback TCP port in front of another loopback port, that a test can
close, turn into a black hole, and open again: a database outage on
demand, without touching the database server.

- ``forward()``: connections are passed through to the target.
- ``close()``: nothing listens on the port any more and every connection
  through it is cut (a database host that went away: connection refused).
- ``blackhole()``: connections are accepted and never answered (a host
  whose packets are dropped: the client waits for its connect timeout).
"""

from __future__ import annotations

import contextlib
import socket
import threading

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target = (host, target_port)
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._mode = "closed"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- modes ----------------------------------------------------------------------------

    def forward(self) -> None:
        self._set_mode("forward")

    def blackhole(self) -> None:
        self._set_mode("blackhole")

    def close(self) -> None:
        self._set_mode("closed")

    def _set_mode(self, mode: str) -> None:
        with self._lock:
            self._mode = mode
            sockets, self._sockets = self._sockets, set()
            listener, self._listener = self._listener, None
        for sock in sockets:
            _close(sock)
        if listener is not None:
            _close(listener)
        if mode != "closed":
            self._listen()

    # -- serving --------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by a mode change
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    return
                self._sockets.add(client)
                mode = self._mode
            if mode == "forward":
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()
            # blackhole: the connection is held, unanswered, until a mode change

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.add(upstream)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
