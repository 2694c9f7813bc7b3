"""A Proxmox VE API simulator: HTTPS on loopback, answering as PVE 7/8 does.

Enough of ``/api2/json`` for the registry to be tried and tested without a
cluster: ticket and API-token authentication with PVE's rules (401 after a
deliberate delay, the message in the reason phrase, ``No ticket`` without
credentials, the CSRF header on non-GET calls made with a ticket),
``/version``, ``/cluster/status`` and ``/nodes``, and the failures a real
deployment produces (see ``scenarios.py``).

Usable in-thread (``with PveSimulator(...) as sim:``) and as a process
(``manage.py pve_simulator``). The scenario and timings can be switched at
run time, by method or through ``/_simulator`` (``GET`` shows the state,
``PUT`` a JSON object changes it), so one simulator serves many tests.

Standard library only (``http.server`` and ``ssl``); TLS handshakes run in
the connection's own thread, so one slow client cannot stall the rest.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from pve_simulator.certificates import ServerCertificate, self_signed_certificate
from pve_simulator.scenarios import SCENARIOS, Failure, Scenario, get_scenario

API_ROOT = "/api2/json"
CONTROL_PATH = "/_simulator"
TRAP_PATH = "/trap"
TICKET_LIFETIME = 2 * 3600  # PVE tickets live two hours
OVERSIZED_BYTES = 2 << 20
_MAX_REQUEST_BODY = 64 * 1024
_HANDSHAKE_TIMEOUT = 10.0
_IDLE_TIMEOUT = 15.0  # how long an idle keep-alive connection is kept open
_COOKIE_RE = re.compile(r"(?:^|[;\s])PVEAuthCookie=([^;\s]*)")
_INDEX_PAGE = b"<html><body>Proxmox VE API simulator: the API is under /api2/json</body></html>"
_TUNABLES = ("latency", "connect_latency", "auth_failure_delay", "slow_delay", "trickle_interval")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator saw it (no header values: they hold secrets)."""

    method: str
    path: str
    auth: str  # "ticket", "token" or "none"
    csrf_header: bool
    status: int  # 0: the simulator never answered (the client left first)
    started: float  # time.monotonic()
    answered: float  # when the answer began: recorded before the client can see it
    connection: int  # which connection it came on, numbered from 1 in order of arrival


class _Reply(Exception):
    """Ends request handling with a PVE-style answer: ``{"data": null}`` and
    the message in the reason phrase."""

    def __init__(self, status: int, reason: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _new_ticket(prefix: str) -> str:
    # Shaped like PVE's: PVE:<user>:<hex time>::<base64 RSA-2048 signature>.
    signature = base64.b64encode(secrets.token_bytes(256)).decode()
    return f"PVE:{prefix}:{int(time.time()):08X}::{signature}"


def _new_csrf_token() -> str:
    digest = base64.b64encode(secrets.token_bytes(20)).decode().rstrip("=")
    return f"{int(time.time()):08X}:{digest}"


class PveSimulator:
    """One simulated PVE API, serving every loopback address it was given on
    one port. Thread-safe; every setting can change while it runs."""

    def __init__(
        self,
        *,
        scenario: str = "healthy",
        hosts: Iterable[str] | None = None,
        port: int = 0,
        certificate: ServerCertificate | None = None,
        username: str = "root@pam",
        password: str | None = None,
        token_name: str = "proxmoxer",  # noqa: S107 - a name, not a secret
        token_secret: str | None = None,
        auth_failure_delay: float = 3.0,
        latency: float = 0.0,
        connect_latency: float = 0.0,
        slow_delay: float = 30.0,
        trickle_interval: float = 0.5,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.hosts = tuple(hosts) if hosts is not None else self._default_hosts()
        if not self.hosts:
            raise ValueError("the simulator needs at least one address to listen on")
        for host in self.hosts:
            if not _is_loopback(host):
                raise ValueError(
                    f"the simulator serves loopback addresses only (127.0.0.1, ::1), not {host}"
                )
        self.port = port
        self.certificate = certificate or self_signed_certificate()
        self.username = username
        self.token_id = f"{username}!{token_name}"
        self._lock = threading.Lock()
        self._scenario = get_scenario(scenario)
        self._password = password or secrets.token_urlsafe(18)
        self._token_secret = token_secret or str(uuid.uuid4())
        self.latency = latency  # added to every API request, as a network round trip
        self.connect_latency = connect_latency  # added to every new connection (TCP + TLS set-up)
        self.auth_failure_delay = auth_failure_delay
        self.slow_delay = slow_delay
        self.trickle_interval = trickle_interval
        self.log = log
        self._tickets: dict[str, tuple[str, str, float, bool]] = {}
        self._requests: list[RecordedRequest] = []
        self._cleared_at = 0.0
        self._servers: list[_TLSServer] = []
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._connection_count = 0
        self._stopping = threading.Event()
        self._context = self.certificate.ssl_context()

    @staticmethod
    def _default_hosts() -> tuple[str, ...]:
        return ("127.0.0.1", "::1") if ipv6_available() else ("127.0.0.1",)

    # -- what a client needs to know --------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for(self.hosts[0])

    def url_for(self, host: str) -> str:
        address = f"[{host}]" if ":" in host else host
        return f"https://{address}:{self.port}"

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint

    @property
    def password(self) -> str:
        return self._password

    @property
    def token_secret(self) -> str:
        return self._token_secret

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @property
    def issued_tickets(self) -> list[str]:
        """Every ticket and CSRF token handed out, for secret-leak checks."""
        with self._lock:
            entries = list(self._tickets.items())
        return [value for ticket, entry in entries for value in (ticket, entry[1])]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the requests so far, including those still being answered
        (a slow answer from an earlier test must not show up in the next)."""
        with self._lock:
            self._requests.clear()
            self._cleared_at = time.monotonic()

    # -- switching at run time ---------------------------------------------------

    def set_scenario(self, name: str) -> Scenario:
        scenario = get_scenario(name)
        with self._lock:
            self._scenario = scenario
        return scenario

    def configure(self, **settings: Any) -> None:
        """Change ``scenario``, ``latency``, ``connect_latency``,
        ``auth_failure_delay``, ``slow_delay``, ``trickle_interval``,
        ``password`` or ``token_secret``."""
        unknown = set(settings) - {"scenario", "password", "token_secret", *_TUNABLES}
        if unknown:
            raise ValueError(f"unknown simulator settings: {', '.join(sorted(unknown))}")
        if "scenario" in settings:
            self.set_scenario(str(settings["scenario"]))
        for name in _TUNABLES:
            if name in settings:
                value = float(settings[name])
                if not 0 <= value <= 3600:
                    raise ValueError(f"{name} must be between 0 and 3600 seconds")
                setattr(self, name, value)
        with self._lock:
            if settings.get("password"):
                self._password = str(settings["password"])
            if settings.get("token_secret"):
                self._token_secret = str(settings["token_secret"])

    def state(self) -> dict[str, Any]:
        """The switchable state, as ``GET /_simulator`` shows it (no secrets)."""
        return {
            "scenario": self._scenario.name,
            "description": self._scenario.description,
            "scenarios": {name: s.description for name, s in SCENARIOS.items()},
            **{name: getattr(self, name) for name in _TUNABLES},
        }

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> PveSimulator:
        """Listen on every host, on one port (the same one again after a stop)."""
        if self._servers:
            raise RuntimeError("the simulator is already running")
        self._stopping = threading.Event()
        for _attempt in range(20):
            try:
                self._bind_all()
                break
            except OSError:
                if self.port:  # a port the caller chose: report, do not wander off
                    raise
        else:
            raise OSError("found no port free on every simulator address")
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"pve-simulator-{server.server_address[0]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _bind_all(self) -> None:
        port = self.port
        servers: list[_TLSServer] = []
        try:
            for host in self.hosts:
                server = _TLSServer(host, port, self)
                port = server.server_address[1]
                servers.append(server)
        except OSError:
            for server in servers:
                server.server_close()
            raise
        self.port = port
        self._servers = servers

    def stop(self) -> None:
        """Stop listening and cut open connections: the port refuses from now on."""
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers = []
        self._threads = []

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (for the management command)."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> PveSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the request handler ------------------------------------------------

    def _track(self, connection: socket.socket, open_: bool) -> int:
        with self._lock:
            if open_:
                self._connections.add(connection)
                self._connection_count += 1
            else:
                self._connections.discard(connection)
            return self._connection_count

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            if entry.started < self._cleared_at:
                return
            self._requests.append(entry)
        if self.log is not None:
            self.log(f"{entry.method} {entry.path} {entry.status} auth={entry.auth}")

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake when the simulator stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _login(self, form: dict[str, list[str]], scenario: Scenario) -> dict[str, Any]:
        username = (form.get("username") or [""])[0]
        password = (form.get("password") or [""])[0]
        realm = (form.get("realm") or [""])[0]
        if not username or "password" not in form:
            missing = [name for name in ("username", "password") if name not in form]
            raise _Reply(
                400,
                "Parameter verification failed.",
                dict.fromkeys(missing, "property is missing and it is not optional"),
            )
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        with self._lock:
            valid = username == self.username and hmac.compare_digest(
                password.encode(), self._password.encode()
            )
        if not valid:
            # PVE does not say whether the user or the password was wrong.
            raise _Reply(401, "authentication failure")
        second_factor = scenario.second_factor
        ticket = _new_ticket(f"!tfa!{username}" if second_factor else username)
        csrf_token = _new_csrf_token()
        with self._lock:
            self._tickets[ticket] = (username, csrf_token, time.time(), second_factor)
        return scenario.login_data(username, ticket, csrf_token)

    def _authenticate(
        self, method: str, authorization: str | None, cookie: str | None, csrf: str | None
    ) -> str:
        """The authentication kind of a call, or a 401 _Reply as PVE words it."""
        if authorization and authorization.startswith("PVEAPIToken"):
            value = authorization[len("PVEAPIToken") :].lstrip("= ")
            token_id, separator, secret = value.partition("=")
            if not separator or "!" not in token_id:
                raise _Reply(401, "no tokenid specified")
            user, _, name = token_id.partition("!")
            with self._lock:
                expected = self._token_secret
            if token_id != self.token_id:
                raise _Reply(401, f"no such token '{name}' for user '{user}'")
            if not hmac.compare_digest(secret.encode(), expected.encode()):
                raise _Reply(401, "invalid token value!")
            return "token"  # tokens need no CSRF token, whatever the method

        match = _COOKIE_RE.search(cookie or "")
        if match is None or not match.group(1):
            raise _Reply(401, "No ticket")
        ticket = unquote(match.group(1))
        with self._lock:
            entry = self._tickets.get(ticket)
        if entry is None or entry[3] or time.time() - entry[2] > TICKET_LIFETIME:
            raise _Reply(401, "permission denied - invalid PVE ticket")
        if method != "GET" and not (csrf and hmac.compare_digest(csrf, entry[1])):
            raise _Reply(401, "Permission denied - invalid csrf token")
        return "ticket"


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, host: str, port: int, simulator: PveSimulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.simulator = simulator
        self._connection_number = threading.local()  # each connection has its own thread
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the address up in DNS (getfqdn).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        # Headers and body go out as separate TLS records; with Nagle on, the
        # body would wait for the client's delayed ACK (~40 ms a response).
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.simulator._context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        self._connection_number.value = self.simulator._track(request, True)
        try:
            self.simulator._wait(self.simulator.connect_latency)
            request.settimeout(_HANDSHAKE_TIMEOUT)
            try:
                request.do_handshake()
            except (OSError, ValueError):
                return  # a client that does not trust the certificate hangs up here
            super().finish_request(request, client_address)
        finally:
            self.simulator._track(request, False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # clients that hang up mid-answer are part of the job
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT
    server: _TLSServer

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # PveSimulator._record logs each request once, without header values

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing ---------------------------------------------------------------------

    @property
    def simulator(self) -> PveSimulator:
        return self.server.simulator

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        path = self.path.split("?", 1)[0]
        self._request = (method, path, started)
        self._recorded = False
        self._auth = "none"
        try:
            body = self._read_body()
            if path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/"):
                self._control(method, body)
            elif path.startswith(TRAP_PATH):
                self._send_json(200, "OK", None)  # reaching here means a redirect was followed
            elif path == API_ROOT or path.startswith(API_ROOT + "/"):
                self._api(method, path[len(API_ROOT) :] or "/", body, started)
            elif path == "/" and method == "GET":
                self._send(200, "OK", _INDEX_PAGE, "text/html")
            else:
                self._send_json(404, "Not Found", None)
        except _Reply as reply:
            extra = {"errors": reply.errors} if reply.errors else {}
            self._send_json(reply.status, reply.reason, None, **extra)
        finally:
            self._record(0)

    def _record(self, status: int) -> None:
        """Log the request once, as its answer begins: a client that has
        seen the answer can rely on finding the request in the log."""
        if self._recorded:
            return
        self._recorded = True
        method, path, started = self._request
        csrf_header = "CSRFPreventionToken" in self.headers
        connection = self.server._connection_number.value
        self.simulator._record(
            RecordedRequest(
                method,
                path,
                self._auth,
                csrf_header,
                status,
                started,
                time.monotonic(),
                connection,
            )
        )

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True
            raise _Reply(400, "bad Content-Length")
        if int(length) > _MAX_REQUEST_BODY:
            self.close_connection = True
            raise _Reply(413, "request too large")
        return self.rfile.read(int(length)) if int(length) else b""

    def _send(
        self,
        status: int,
        reason: str,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        announce_length: bool = True,
    ) -> None:
        self._record(status)
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if announce_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, reason: str, data: Any, **extra: Any) -> None:
        body = json.dumps({"data": data, **extra}, separators=(",", ":")).encode()
        self._send(status, reason, body, "application/json;charset=UTF-8")

    # -- the control endpoint --------------------------------------------------------

    def _control(self, method: str, body: bytes) -> None:
        if method in ("PUT", "POST"):
            try:
                settings = json.loads(body or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("send a JSON object")
                self.simulator.configure(**settings)
            except (ValueError, KeyError, TypeError) as error:
                message = str(error).strip("'\"")
                payload = json.dumps({"error": message}).encode()
                self._send(400, "Bad Request", payload, "application/json")
                return
        elif method != "GET":
            self._send(405, "Method Not Allowed", b"{}", "application/json")
            return
        self._send(200, "OK", json.dumps(self.simulator.state()).encode(), "application/json")

    # -- the PVE API -------------------------------------------------------------------

    def _api(self, method: str, path: str, body: bytes, started: float) -> None:
        simulator = self.simulator
        scenario = simulator.scenario
        simulator._wait(simulator.latency)
        try:
            self._api_answer(method, path, body, scenario)
        except _Reply as reply:
            if reply.status == 401:
                # PVE answers every 401 only after a delay from the start of
                # the request, to slow down password guessing.
                simulator._wait(simulator.auth_failure_delay - (time.monotonic() - started))
            raise

    def _api_answer(self, method: str, path: str, body: bytes, scenario: Scenario) -> None:
        failure = scenario.failure
        if failure is Failure.SLOW:
            self.simulator._wait(self.simulator.slow_delay)
        elif failure is Failure.GARBAGE:
            page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works</body>"
            self._send(200, "OK", page + b"</html>", "text/html")
            return
        elif failure is Failure.REDIRECT:
            host = self.headers.get("Host", f"127.0.0.1:{self.simulator.port}")
            location = f"https://{host}{TRAP_PATH}{API_ROOT}{path}"
            self._send(302, "Found", b"", "text/html", {"Location": location})
            return

        if path == "/access/ticket":
            if method == "POST":
                content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
                form = (
                    parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                    if content_type == "application/x-www-form-urlencoded"
                    else {}
                )
                self._send_json(200, "OK", self.simulator._login(form, scenario))
            else:
                self._send_json(200, "OK", None)  # PVE's GET /access/ticket: a no-op
            return

        self._auth = self.simulator._authenticate(
            method,
            self.headers.get("Authorization"),
            self.headers.get("Cookie"),
            self.headers.get("CSRFPreventionToken"),
        )
        if failure is Failure.SERVER_ERROR:
            raise _Reply(500, "Internal Server Error")
        if method == "GET" and path == "/version":
            self._version(scenario)
        elif method == "GET" and path == "/cluster/status":
            if not scenario.sys_audit:
                raise _Reply(403, "Permission check failed (/, Sys.Audit)")
            self._send_json(200, "OK", scenario.cluster_status())
        elif method == "GET" and path == "/nodes":
            self._send_json(200, "OK", scenario.nodes_listing(self.simulator.fingerprint))
        else:
            raise _Reply(501, f"Method '{method} {path}' not implemented")

    def _version(self, scenario: Scenario) -> None:
        failure = scenario.failure
        if failure in (Failure.OVERSIZED, Failure.OVERSIZED_UNANNOUNCED):
            padding = "x" * OVERSIZED_BYTES
            body = json.dumps({"data": {**scenario.version, "padding": padding}}).encode()
            self._send(
                200,
                "OK",
                body,
                "application/json;charset=UTF-8",
                announce_length=failure is Failure.OVERSIZED,
            )
        elif failure is Failure.TRICKLE:
            self._trickle(json.dumps({"data": scenario.version}).encode())
        else:
            self._send_json(200, "OK", scenario.version)

    def _trickle(self, body: bytes) -> None:
        self._record(200)
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for index in range(len(body)):
            if self.simulator._stopping.is_set():
                break
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            self.simulator._wait(self.simulator.trickle_interval)
