"""Sockets for the simulator: one acceptor for every listening socket of the
process, and pveproxy's connection behaviour on each connection.

One thread waits on all listening sockets with ``selectors`` (a thousand
simulated clusters need a thousand listeners, not a thousand threads) and
hands each accepted connection to a thread of its own, which does the TLS
handshake there, so one slow client cannot stall the rest. Idle, the
acceptor sleeps in the kernel and keep-alive connections in ``recv``.

On a connection, as pveproxy (proxmox/pve-http-server,
src/PVE/APIServer/AnyEvent.pm, with pve-manager's PVE/Service/pveproxy.pm
settings ``keep_alive => 100`` and the default ``timeout`` of 5 s):
- at most 100 requests, the last answered with ``Connection: close``;
- ``Connection: close`` after every answer with a status of 400 or more;
- a connection idle for 5 s is closed;
- bodies over 1024 bytes are gzip-compressed when the client accepts gzip
  (deflate when it accepts only that); compression is on by default;
- an answer without content carries no ``Content-Length`` (and closes).
"""

from __future__ import annotations

import contextlib
import gzip
import resource
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Protocol

_HANDSHAKE_TIMEOUT = 10.0
_MAX_REQUEST_BODY = 512 * 1024  # $limit_max_post
COMPRESS_ABOVE = 1024  # AnyEvent.pm ``response``: $content_length > 1024


class Site(Protocol):
    """Something a listening socket serves: a simulated node or a proxy."""

    def serve(self, connection: socket.socket, address: Any) -> None: ...


def raise_file_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Acceptor:
    """Accepts on every registered listening socket from one thread."""

    _shared: ClassVar[Acceptor | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls) -> Acceptor:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def __init__(self) -> None:
        self.file_limit = raise_file_limit()
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._pending: list[tuple[Callable[[], None], threading.Event]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pve-simulator-acceptor")
        self._thread.daemon = True
        self._thread.start()

    def add(self, listener: socket.socket, site: Site) -> None:
        listener.setblocking(False)
        self._call(lambda: self._selector.register(listener, selectors.EVENT_READ, site))

    def remove(self, listener: socket.socket) -> None:
        """Stop accepting on ``listener`` (it is closed when this returns)."""

        def unregister() -> None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(listener)
            listener.close()

        self._call(unregister)

    @property
    def listeners(self) -> int:
        return len(self._selector.get_map()) - 1

    def _call(self, operation: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            operation()
            return
        done = threading.Event()
        with self._lock:
            self._pending.append((operation, done))
        self._wake_writer.send(b"\0")
        done.wait()

    def _run(self) -> None:
        while True:
            for key, _events in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_reader.recv(4096)
                    continue
                self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
            with self._lock:
                pending, self._pending = self._pending, []
            for operation, done in pending:
                try:
                    operation()
                finally:
                    done.set()

    @staticmethod
    def _accept(listener: socket.socket, site: Site) -> None:
        for _ in range(64):  # a burst, then give the other listeners their turn
            try:
                connection, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of file descriptors: let connections finish
                time.sleep(0.05)
                return
            connection.setblocking(True)
            thread = threading.Thread(target=site.serve, args=(connection, address))
            thread.daemon = True
            thread.start()


def bind_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def tls_handshake(connection: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket | None:
    """The server side of the handshake, in the connection's own thread;
    None when the client hangs up or refuses the certificate."""
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        wrapped = context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        wrapped.settimeout(_HANDSHAKE_TIMEOUT)
        wrapped.do_handshake()
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            connection.close()
        return None
    return wrapped


class PveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 as pveproxy speaks it; subclasses answer the requests
    (``answer``), this class sends them."""

    protocol_version = "HTTP/1.1"
    max_requests = 100
    idle_timeout = 5.0

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.timeout = self.idle_timeout  # StreamRequestHandler applies it to every read
        self.served = 0
        super().__init__(request, client_address, server)

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the simulators log each request once, without header values

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError, OSError):
            super().handle()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._begin("GET")

    def do_POST(self) -> None:
        self._begin("POST")

    def do_PUT(self) -> None:
        self._begin("PUT")

    def do_DELETE(self) -> None:
        self._begin("DELETE")

    def do_HEAD(self) -> None:
        self._begin("HEAD")

    def _begin(self, method: str) -> None:
        self.served += 1
        # keep_alive counts down from 100 per request header read.
        if self.served >= self.max_requests:
            self.close_connection = True
        self.answer(method)

    def answer(self, method: str) -> None:
        raise NotImplementedError

    def read_body(self) -> bytes | None:
        """The request body, or None after answering that it cannot be read."""
        if self.headers.get("Transfer-Encoding"):
            encoding = self.headers["Transfer-Encoding"]
            text = (
                "chunked transfer encoding not supported"
                if encoding.lower() == "chunked"
                else f"Unknown transfer encoding '{encoding}'"
            )
            self.send(501, text, text.encode(), "text/plain")
            return None
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit():
            self.send(400, "bad request", b"bad request", "text/plain")
            return None
        if int(length) > _MAX_REQUEST_BODY:
            self.send(501, "for data too large", b"for data too large", "text/plain")
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def send(
        self,
        status: int,
        reason: str,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
        *,
        announce_length: bool = True,
        compress: bool = True,
        keep_alive_on_error: bool = False,
    ) -> None:
        if status >= 400 and not keep_alive_on_error:
            self.close_connection = True
        extra: dict[str, str] = dict(headers or {})
        if compress and len(body) > COMPRESS_ABOVE:
            accepted = (self.headers.get("Accept-Encoding") or "").lower()
            if "gzip" in accepted:
                body = gzip.compress(body)
                extra["Content-Encoding"] = "gzip"
            elif "deflate" in accepted:
                body = zlib.compress(body)
                extra["Content-Encoding"] = "deflate"
        if not body or not announce_length:
            self.close_connection = True
        self.send_response(status, reason)
        date = self.date_time_string()
        extra.setdefault("Expires", date)
        extra.setdefault("Cache-Control", "max-age=0")
        extra.setdefault("Pragma", "no-cache")
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in extra.items():
            self.send_header(name, value)
        if body and announce_length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close" if self.close_connection else "Keep-Alive")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
