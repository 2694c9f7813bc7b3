"""A reverse proxy in front of a simulated cluster, as operators put nginx or
HAProxy in front of pveproxy: HTTPS on its own address and port, the API
optionally under a path prefix (``/pve/api2/json/…`` → the node's
``/api2/json/…``).

Like such proxies it keeps the client's connection open whatever the
status, passes bodies through untouched (compressed ones too), and, if
asked, replaces PVE's reason phrases (which carry its error messages) by
the standard ones, as HTTP/2 front ends and some proxies do; the JSON body,
with ``message`` on newer PVE, is all a client then has.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
from http import HTTPStatus
from typing import Any

from pve_simulator.certificates import ServerCertificate, self_signed_certificate
from pve_simulator.server import PveSimulator, _is_loopback
from pve_simulator.transport import Acceptor, PveHandler, bind_listener, tls_handshake

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_UPSTREAM_TIMEOUT = 60.0


class ReverseProxy:
    """HTTPS in front of ``simulator``; forwards to its first running node."""

    def __init__(
        self,
        simulator: PveSimulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prefix: str = "",
        standard_reasons: bool = False,
        certificate: ServerCertificate | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the proxy serves loopback addresses only, not {host}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("the prefix starts with / and does not end with one, e.g. /pve")
        self.simulator = simulator
        self.host = host
        self.port = port
        self.prefix = prefix
        self.standard_reasons = standard_reasons
        self.certificate = certificate or self_signed_certificate((host,))
        self._context = self.certificate.ssl_context()
        self._upstream_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._upstream_context.check_hostname = False
        self._upstream_context.verify_mode = ssl.CERT_NONE  # the simulator's own node
        self._listener: Any = None
        self._acceptor = Acceptor.shared()
        self._lock = threading.Lock()
        self.forwarded = 0

    @property
    def url(self) -> str:
        address = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 443 else f":{self.port}"
        return f"https://{address}{port}{self.prefix}"

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint

    def start(self) -> ReverseProxy:
        listener = bind_listener(self.host, self.port)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor.add(listener, self)
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._acceptor.remove(self._listener)
            self._listener = None

    def __enter__(self) -> ReverseProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve(self, connection: Any, address: Any) -> None:
        wrapped = tls_handshake(connection, self._context)
        if wrapped is None:
            return
        with wrapped:
            _ProxyHandler(wrapped, address, self)

    def upstream(self) -> tuple[str, int]:
        for node in self.simulator.nodes:
            if node.running:
                return node.hosts[0], self.simulator.port
        raise ConnectionRefusedError("no node of the cluster is running")

    def upstream_connection(self) -> http.client.HTTPSConnection:
        host, port = self.upstream()
        return http.client.HTTPSConnection(
            host, port, timeout=_UPSTREAM_TIMEOUT, context=self._upstream_context
        )


class _ProxyHandler(PveHandler):
    max_requests = 1000
    idle_timeout = 60.0

    def __init__(self, request: Any, client_address: Any, server: ReverseProxy) -> None:
        self.proxy = server
        super().__init__(request, client_address, server)

    def answer(self, method: str) -> None:
        proxy = self.proxy
        path = self.path
        if proxy.prefix:
            if not (path == proxy.prefix or path.startswith(proxy.prefix + "/")):
                body = b"<html><body><h1>404 Not Found</h1></body></html>"
                self.send(404, "Not Found", body, "text/html", keep_alive_on_error=True)
                return
            path = path[len(proxy.prefix) :] or "/"
        body = self.read_body()
        if body is None:
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = proxy.upstream_connection()
            with contextlib.closing(upstream):
                upstream.request(method, path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                status, reason = response.status, response.reason
                passed = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in _HOP_BY_HOP and k.lower() not in ("server", "date")
                }
        except (OSError, http.client.HTTPException):
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send(502, "Bad Gateway", page, "text/html", keep_alive_on_error=True)
            return
        with proxy._lock:
            proxy.forwarded += 1
        if proxy.standard_reasons:
            with contextlib.suppress(ValueError):
                reason = HTTPStatus(status).phrase
        content_type = passed.pop("Content-Type", None)
        self.send(
            status,
            reason,
            payload,
            content_type,
            passed,
            compress=False,
            keep_alive_on_error=True,
        )
