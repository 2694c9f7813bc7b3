"""A Proxmox VE API simulator: HTTPS on loopback, answering as PVE 7, 8 or 9.

One ``PveSimulator`` is one simulated cluster: its access control (users,
realms, API tokens, ACLs, tickets; ``access.py``), its calls (``api.py``),
its release (``profiles.py``) and its situation (``scenarios.py``). It
serves either

- one node on every loopback address it is given, on one port (the
  default: 127.0.0.1 and ::1), the other nodes of the scenario being only
  reported; or
- several nodes (``nodes=N``), each on its own loopback address
  (127.0.K.1, 127.0.K.2, …; Linux routes all of 127/8 to ``lo``) and the
  same port, each with its own certificate; a node can be stopped and
  started, and the others then report it offline.

Many simulators can run in one process (``fleet.py`` makes a thousand);
they share one acceptor thread (``transport.py``). Everything can be
switched at run time, by method or through ``/_simulator`` (``GET`` shows
the state, ``PUT`` a JSON object changes it), so one simulator serves many
tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pve_simulator.access import ROLES, TICKET_LIFETIME, AccessControl, Token
from pve_simulator.api import ApiRequest, PveApi, Reply, render
from pve_simulator.certificates import ServerCertificate, self_signed_certificate
from pve_simulator.profiles import CONSOLES, DEFAULT_PROFILE, PROFILES, Profile, get_profile
from pve_simulator.scenarios import SCENARIOS, Failure, Scenario, get_scenario
from pve_simulator.transport import Acceptor, PveHandler, bind_listener, tls_handshake

if TYPE_CHECKING:
    from pve_simulator.fleet import VirtualClusters

API_ROOT = "/api2/json"
CONTROL_PATH = "/_simulator"
TRAP_PATH = "/trap"
OVERSIZED_BYTES = 2 << 20
_INDEX_PAGE = b"<html><body>Proxmox VE API simulator: the API is under /api2/json</body></html>"
_TUNABLES = (
    "latency",
    "connect_latency",
    "auth_failure_delay",
    "slow_delay",
    "trickle_interval",
    "keepalive_timeout",
    "ticket_lifetime",
)
_LOG_KEPT = 20_000
_TOTP_SECRET_BYTES = 20

# What a node reports as its usage when it may (pve-manager PVE/API2Tools.pm
# extract_node_stats): a mid-sized host, mostly idle.
_NODE_USAGE = {
    "uptime": 1_209_600,
    "cpu": 0.0123,
    "mem": 8_412_000_256,
    "disk": 5_368_709_120,
    "maxcpu": 16,
    "maxmem": 67_316_121_600,
    "maxdisk": 100_861_726_720,
}


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
    node: str = ""  # which node's listener took it


@dataclass
class SimulatedNode:
    """A node with a listener: its addresses, certificate and state."""

    name: str
    nodeid: int
    hosts: tuple[str, ...]
    certificate: ServerCertificate
    running: bool = False
    listeners: list[socket.socket] = field(default_factory=list, repr=False)
    connections: set[socket.socket] = field(default_factory=set, repr=False)
    context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """The address /cluster/status reports for it (its first IPv4 one)."""
        return next((host for host in self.hosts if ":" not in host), self.hosts[0])

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint


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


def _roles_map(roles: str | Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """``"PVEAuditor"`` → that role on /; ``None``/``""``/``"none"`` → no privilege;
    a mapping → path -> role or roles."""
    if roles is None or (isinstance(roles, str) and roles.strip().lower() in ("", "none")):
        return {}
    if isinstance(roles, str):
        mapping: Mapping[str, Any] = {"/": roles}
    else:
        mapping = roles
    result: dict[str, tuple[str, ...]] = {}
    for path, value in mapping.items():
        names = (value,) if isinstance(value, str) else tuple(value)
        for name in names:
            if name not in ROLES:
                raise ValueError(f"unknown role {name!r}; choose from {', '.join(sorted(ROLES))}")
        result[str(path)] = names
    return result


class PveSimulator:
    """One simulated PVE cluster. Thread-safe; every setting can change while
    it runs."""

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
        profile: str = DEFAULT_PROFILE,
        nodes: int | None = None,
        node_network: str | None = None,
        roles: str | Mapping[str, Any] | None = "Administrator",
        ticket_lifetime: float = TICKET_LIFETIME,
        keepalive_timeout: float = 5.0,
        max_keepalive_requests: int = 100,
        cluster_name: str = "sim",
        console: str | None = None,
        fleet: VirtualClusters | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._scenario = get_scenario(scenario)
        self._profile = get_profile(profile)
        self._roles = _roles_map(roles)
        self.cluster_name = cluster_name
        self.console = console
        self.port = port
        self.fleet = fleet
        self.log = log
        self.latency = latency  # added to every API request, as a network round trip
        self.connect_latency = connect_latency  # added to every new connection (TCP + TLS)
        self.auth_failure_delay = auth_failure_delay
        self.slow_delay = slow_delay
        self.trickle_interval = trickle_interval
        self.keepalive_timeout = keepalive_timeout
        self.max_keepalive_requests = max_keepalive_requests
        self.multi_node = nodes is not None
        if self.multi_node:
            if hosts is not None:
                raise ValueError("in multi-node mode each node has its own address: omit hosts")
            if not nodes or not 1 <= nodes <= 254:
                raise ValueError("nodes must be between 1 and 254")
            network = node_network or "127.0.10"
            self._nodes = [
                SimulatedNode(
                    f"pve{index}",
                    index,
                    (f"{network}.{index}",),
                    certificate
                    if certificate is not None and index == 1
                    else self_signed_certificate((f"{network}.{index}",)),
                )
                for index in range(1, nodes + 1)
            ]
        else:
            chosen = tuple(hosts) if hosts is not None else self._default_hosts()
            if not chosen:
                raise ValueError("the simulator needs at least one address to listen on")
            self._nodes = [
                SimulatedNode("", 0, chosen, certificate or self_signed_certificate(chosen))
            ]
        for node in self._nodes:
            for host in node.hosts:
                if not _is_loopback(host):
                    raise ValueError(
                        "the simulator serves loopback addresses only (127.0.0.0/8, ::1), "
                        f"not {host}"
                    )
            node.context = node.certificate.ssl_context()
        self.access = AccessControl(ticket_lifetime=ticket_lifetime)
        self.username = username
        self.token_name = token_name
        self._password = password or secrets.token_urlsafe(18)
        self.access.add_user(username, self._password)
        self.access.users[username].tokens[token_name] = Token(
            token_secret or str(uuid.uuid4()), privsep=0, comment="made by the simulator"
        )
        if username != "root@pam":  # every PVE has root@pam; nobody here knows its password
            self.access.add_user("root@pam", secrets.token_urlsafe(24))
        self.access.add_user("alice@oidc", None)  # an OpenID account: no password logins
        self.totp_secret = "".join(
            secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(32)
        )
        self._apply_roles()
        self.api = PveApi(self)
        self._requests: deque[RecordedRequest] = deque(maxlen=_LOG_KEPT)
        self._cleared_at = 0.0
        self._counts = {"logins": 0, "reads": 0, "requests": 0}
        self._connection_count = 0
        self._stopping = threading.Event()
        self._virtual_fingerprints: dict[str, str] = {}
        self._acceptor = Acceptor.shared()

    @staticmethod
    def _default_hosts() -> tuple[str, ...]:
        return ("127.0.0.1", "::1") if ipv6_available() else ("127.0.0.1",)

    # -- what a client needs to know --------------------------------------------

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(host for node in self._nodes for host in node.hosts)

    @property
    def nodes(self) -> list[SimulatedNode]:
        """The nodes with a listener (one, unless in multi-node mode)."""
        return list(self._nodes)

    def node(self, name: str) -> SimulatedNode:
        for node in self._nodes:
            if node.name == name or (not self.multi_node and name in ("", self.local_name)):
                return node
        raise KeyError(f"no node {name!r}; the nodes are {', '.join(self.node_names())}")

    def node_names(self) -> list[str]:
        return [n.name for n in self._nodes] if self.multi_node else [self.local_name]

    @property
    def local_name(self) -> str:
        return self._nodes[0].name or self.scenario.nodes[0].name

    @property
    def url(self) -> str:
        return self.url_for(self.hosts[0])

    def url_for(self, host: str) -> str:
        address = f"[{host}]" if ":" in host else host
        return f"https://{address}:{self.port}"

    @property
    def fingerprint(self) -> str:
        return self._nodes[0].fingerprint

    @property
    def certificate(self) -> ServerCertificate:
        return self._nodes[0].certificate

    @property
    def password(self) -> str:
        return self._password

    @property
    def token_id(self) -> str:
        return f"{self.username}!{self.token_name}"

    @property
    def token_secret(self) -> str:
        token = self.access.token(self.token_id)
        return token.secret if token else ""

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @property
    def profile(self) -> Profile:
        """The release answering: the scenario's, if it pins one."""
        pinned = self._scenario.profile
        return get_profile(pinned) if pinned else self._profile

    @property
    def clustered(self) -> bool:
        return self.multi_node or self._scenario.clustered

    @property
    def issued_tickets(self) -> list[str]:
        """The latest tickets and CSRF signatures handed out, for secret-leak checks."""
        return self.access.issued

    @property
    def tokens(self) -> list[str]:
        """Every API token that exists now (full ids)."""
        return self.access.token_ids()

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

    def counts(self) -> dict[str, int]:
        """Logins (``POST /access/ticket``), authenticated reads (GETs
        outside /access) and requests since the last reset."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)

    # -- switching at run time ---------------------------------------------------

    def set_scenario(self, name: str) -> Scenario:
        scenario = get_scenario(name)
        with self._lock:
            self._scenario = scenario
            self._apply_roles()
        return scenario

    def set_profile(self, name: str) -> Profile:
        profile = get_profile(name)
        with self._lock:
            self._profile = profile
        return profile

    def configure(self, **settings: Any) -> None:
        """Change ``scenario``, ``profile``, ``roles``, ``password``,
        ``token_secret``, ``console``, ``max_keepalive_requests`` or a tunable
        (``latency``, ``connect_latency``, ``auth_failure_delay``,
        ``slow_delay``, ``trickle_interval``, ``keepalive_timeout``,
        ``ticket_lifetime``, in seconds)."""
        known = {
            "scenario",
            "profile",
            "roles",
            "password",
            "token_secret",
            "console",
            "max_keepalive_requests",
            *_TUNABLES,
        }
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown simulator settings: {', '.join(sorted(unknown))}")
        scenario = get_scenario(str(settings["scenario"])) if "scenario" in settings else None
        profile = get_profile(str(settings["profile"])) if "profile" in settings else None
        roles = _roles_map(settings["roles"]) if "roles" in settings else None
        values: dict[str, float] = {}
        for name in _TUNABLES:
            if name in settings:
                value = float(settings[name])
                limit = 7 * 86400 if name == "ticket_lifetime" else 3600
                if not 0 <= value <= limit:
                    raise ValueError(f"{name} must be between 0 and {limit} seconds")
                values[name] = value
        if "console" in settings and settings["console"] not in (None, "", *CONSOLES):
            raise ValueError(f"console must be one of {', '.join(CONSOLES)}")
        if "max_keepalive_requests" in settings:
            requests = int(settings["max_keepalive_requests"])
            if not 1 <= requests <= 100_000:
                raise ValueError("max_keepalive_requests must be between 1 and 100000")
            self.max_keepalive_requests = requests
        with self._lock:
            if scenario is not None:
                self._scenario = scenario
            if profile is not None:
                self._profile = profile
            if roles is not None:
                self._roles = roles
            self._apply_roles()
            if "console" in settings:
                self.console = settings["console"] or None
            for name, value in values.items():
                if name == "ticket_lifetime":
                    self.access.ticket_lifetime = value
                else:
                    setattr(self, name, value)
            if settings.get("password"):
                self._password = str(settings["password"])
                self.access.users[self.username].password = self._password
            if settings.get("token_secret"):
                token = self.access.token(self.token_id)
                if token is not None:
                    token.secret = str(settings["token_secret"])

    def _apply_roles(self) -> None:
        grants = self._scenario.account_roles
        self.access.set_roles(self.username, self._roles if grants is None else grants)

    def state(self) -> dict[str, Any]:
        """The switchable state, as ``GET /_simulator`` shows it (no secrets)."""
        roles = self._scenario.account_roles
        return {
            "cluster": self.cluster_name,
            "scenario": self._scenario.name,
            "description": self._scenario.description,
            "scenarios": {name: s.description for name, s in SCENARIOS.items()},
            "profile": self.profile.name,
            "profiles": {name: p.description for name, p in PROFILES.items()},
            "version": self.profile.version_data(self.console),
            "username": self.username,
            "token_id": self.token_id,
            "roles": {p: list(r) for p, r in (self._roles if roles is None else roles).items()},
            "console": self.console,
            "max_keepalive_requests": self.max_keepalive_requests,
            "nodes": [
                {
                    "name": node.name or self.local_name,
                    "url": self.url_for(node.hosts[0]),
                    "fingerprint": node.fingerprint,
                    "running": node.running,
                }
                for node in self._nodes
            ],
            **{name: getattr(self, name) for name in _TUNABLES if name != "ticket_lifetime"},
            "ticket_lifetime": self.access.ticket_lifetime,
        }

    # -- the cluster as PVE reports it ----------------------------------------------

    def _members(self) -> list[tuple[str, int, str, str, bool]]:
        """(name, nodeid, ip, ssl fingerprint, online) for each node of the cluster."""
        scenario = self._scenario
        if self.multi_node:
            return [
                (
                    n.name,
                    n.nodeid,
                    n.address,
                    n.fingerprint,
                    n.running and not scenario.offline(n.name),
                )
                for n in self._nodes
            ]
        local = self._nodes[0]
        members = []
        for index, spec in enumerate(scenario.nodes):
            if index == 0:
                members.append((spec.name, spec.nodeid, local.address, local.fingerprint, True))
            else:
                ip = _neighbour_address(local.address, index)
                members.append(
                    (spec.name, spec.nodeid, ip, self._fingerprint_of(spec.name, ip), spec.online)
                )
        return members

    def _fingerprint_of(self, name: str, ip: str) -> str:
        """A node without a listener still has a certificate of its own."""
        with self._lock:
            if name not in self._virtual_fingerprints:
                self._virtual_fingerprints[name] = self_signed_certificate((ip,)).fingerprint
            return self._virtual_fingerprints[name]

    def local_node_name(self, node: SimulatedNode) -> str:
        return node.name or self.local_name

    def cluster_status(self, answering: SimulatedNode) -> list[dict[str, Any]]:
        """``GET /cluster/status`` (pve-manager PVE/API2/Cluster.pm ``get_status``)."""
        members = self._members()
        local = self.local_node_name(answering)
        if not self.clustered:
            name, _nodeid, ip, _fp, _online = members[0]
            return [
                {
                    "type": "node",
                    "id": f"node/{name}",
                    "name": name,
                    "ip": ip,
                    "local": 1,
                    "nodeid": 0,
                    "online": 1,
                    "level": "",
                }
            ]
        online = sum(1 for member in members if member[4])
        entries: list[dict[str, Any]] = [
            {
                "type": "cluster",
                "id": "cluster",
                "nodes": len(members),
                "version": len(members) + 2,
                "name": self.cluster_name,
                "quorate": int(online * 2 > len(members)),  # votequorum: a majority
            }
        ]
        for name, nodeid, ip, _fp, is_online in members:
            entries.append(
                {
                    "type": "node",
                    "id": f"node/{name}",
                    "name": name,
                    "nodeid": nodeid,
                    "local": int(name == local),
                    "online": int(is_online),
                    "ip": ip,
                    "level": "",
                }
            )
        return entries

    def nodes_listing(self, can_audit: Callable[[str], bool]) -> list[dict[str, Any]]:
        """``GET /nodes`` (pve-manager PVE/API2/Nodes.pm ``index``): every node;
        usage figures only for online nodes the caller has Sys.Audit on."""
        listing = []
        for name, _nodeid, _ip, fingerprint, online in self._members():
            entry: dict[str, Any] = {
                "id": f"node/{name}",
                "node": name,
                "type": "node",
                "status": "online" if online else "offline",
            }
            if online:
                if can_audit(name):
                    entry.update(_NODE_USAGE)
                entry["level"] = ""
            entry["ssl_fingerprint"] = fingerprint
            listing.append(entry)
        return listing

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> PveSimulator:
        """Listen on every node's addresses, on one port (the same one again after a stop)."""
        if any(node.running for node in self._nodes):
            raise RuntimeError("the simulator is already running")
        self._stopping = threading.Event()
        chosen = self.port
        for _attempt in range(20):
            self.port = chosen
            try:
                for node in self._nodes:
                    self._bind(node)
                return self
            except OSError:
                for node in self._nodes:
                    self._unbind(node)
                if chosen:  # a port the caller chose: report, do not wander off
                    raise
        raise OSError("found no port free on every simulator address")

    def _bind(self, node: SimulatedNode) -> None:
        listeners = []
        try:
            for host in node.hosts:
                listener = bind_listener(host, self.port)
                if not self.port:
                    self.port = listener.getsockname()[1]
                listeners.append(listener)
        except OSError:
            for listener in listeners:
                listener.close()
            raise
        node.listeners = listeners
        site = _NodeSite(self, node)
        for listener in listeners:
            self._acceptor.add(listener, site)
        node.running = True

    def _unbind(self, node: SimulatedNode) -> None:
        for listener in node.listeners:
            self._acceptor.remove(listener)
        node.listeners = []
        node.running = False
        with self._lock:
            connections, node.connections = node.connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def stop_node(self, name: str) -> None:
        """Stop one node: its address refuses connections, the others report it offline."""
        node = self.node(name)
        if node.running:
            self._unbind(node)

    def start_node(self, name: str) -> None:
        node = self.node(name)
        if not node.running:
            self._bind(node)

    def stop(self) -> None:
        """Stop listening and cut open connections: every port refuses from now on."""
        self._stopping.set()
        for node in self._nodes:
            self._unbind(node)

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (for the management command)."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            if self.fleet is not None:
                self.fleet.stop()

    def __enter__(self) -> PveSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the request handler ------------------------------------------------

    def _track(self, node: SimulatedNode, connection: socket.socket, open_: bool) -> int:
        with self._lock:
            if open_:
                node.connections.add(connection)
                self._connection_count += 1
            else:
                node.connections.discard(connection)
            return self._connection_count

    def _retrack(self, node: SimulatedNode, old: socket.socket, new: socket.socket) -> None:
        with self._lock:
            node.connections.discard(old)
            node.connections.add(new)
            running = node.running
        if not running:  # stopped during the handshake
            with contextlib.suppress(OSError):
                new.shutdown(socket.SHUT_RDWR)

    def _count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            if entry.started < self._cleared_at:
                return
            self._requests.append(entry)
        if self.log is not None:
            where = f" node={entry.node}" if self.multi_node else ""
            self.log(f"{entry.method} {entry.path} {entry.status} auth={entry.auth}{where}")

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake when the simulator stops."""
        if seconds > 0:
            self._stopping.wait(seconds)


def _neighbour_address(address: str, offset: int) -> str:
    """Where a node without a listener would be: the next loopback addresses."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = ipaddress.ip_address("127.0.0.1")
    if ip.version != 4:
        ip = ipaddress.ip_address("127.0.0.1")
    last = (int(ip) & 0xFF) + offset
    return str(ipaddress.ip_address((int(ip) & ~0xFF) | (last % 254 or 254)))


class _NodeSite:
    """A node's listeners: TLS, then pveproxy's HTTP for each connection."""

    def __init__(self, simulator: PveSimulator, node: SimulatedNode) -> None:
        self.simulator = simulator
        self.node = node

    def serve(self, connection: socket.socket, address: Any) -> None:
        simulator, node = self.simulator, self.node
        number = simulator._track(node, connection, True)
        tracked: socket.socket = connection
        try:
            simulator._wait(simulator.connect_latency)
            assert node.context is not None
            wrapped = tls_handshake(connection, node.context)
            if wrapped is None:
                return  # a client that does not trust the certificate hangs up here
            # The TLS socket took the file descriptor over: track it instead,
            # so that stopping the node can cut the connection.
            simulator._retrack(node, connection, wrapped)
            tracked = wrapped
            with wrapped:
                handler = type(
                    "_Handler",
                    (_NodeHandler,),
                    {
                        "idle_timeout": simulator.keepalive_timeout,
                        "max_requests": simulator.max_keepalive_requests,
                    },
                )
                handler(wrapped, address, (self, number))
        finally:
            simulator._track(node, tracked, False)
            with contextlib.suppress(OSError):
                connection.close()


class _NodeHandler(PveHandler):
    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.site, self.connection_number = server
        super().__init__(request, client_address, server)

    @property
    def simulator(self) -> PveSimulator:
        return self.site.simulator  # type: ignore[no-any-return]

    def answer(self, method: str) -> None:
        started = time.monotonic()
        raw_path, _, query = self.path.partition("?")
        path = unquote(raw_path)
        self._request = (method, path, started)
        self._recorded = False
        self._auth = "none"
        try:
            body = self.read_body()
            if body is None:
                return
            if path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/"):
                self._control(method, path[len(CONTROL_PATH) :], body)
            elif path.startswith(TRAP_PATH):
                self._send_json(200, "OK", {"data": None})  # a followed redirect lands here
            elif path == API_ROOT or path.startswith(API_ROOT + "/"):
                self._api(method, path[len(API_ROOT) :] or "/", query, body, started)
            elif path == "/" and method in ("GET", "HEAD"):
                self._send(200, "OK", _INDEX_PAGE, "text/html; charset=utf-8")
            else:
                self._send(501, "no such uri", b"no such uri", "text/plain")
        finally:
            self._record(0)

    def _record(self, status: int) -> None:
        """Log the request once, as its answer begins: a client that has
        seen the answer can rely on finding the request in the log."""
        if self._recorded:
            return
        self._recorded = True
        method, path, started = self._request
        self.simulator._record(
            RecordedRequest(
                method,
                path,
                self._auth,
                "CSRFPreventionToken" in self.headers,
                status,
                started,
                time.monotonic(),
                self.connection_number,
                self.simulator.local_node_name(self.site.node),
            )
        )

    def _send(
        self, status: int, reason: str, body: bytes, content_type: str | None, **kwargs: Any
    ) -> None:
        self._record(status)
        self.send(status, reason, body, content_type, **kwargs)

    def _send_json(self, status: int, reason: str, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, reason, body, "application/json;charset=UTF-8")

    # -- the control endpoint --------------------------------------------------------

    def _control(self, method: str, sub: str, body: bytes) -> None:
        simulator = self.simulator
        try:
            settings = json.loads(body or b"{}")
            if not isinstance(settings, dict):
                raise ValueError("send a JSON object")
            answer = self._control_answer(method, sub.strip("/"), settings)
        except (ValueError, KeyError, TypeError, OSError) as error:
            message = str(error).strip("'\"")
            self._send(
                400, "Bad Request", json.dumps({"error": message}).encode(), "application/json"
            )
            return
        if answer is None:
            self._send(405, "Method Not Allowed", b"{}", "application/json")
            return
        del simulator
        self._send(
            200, "OK", json.dumps(answer).encode(), "application/json", keep_alive_on_error=True
        )

    def _control_answer(self, method: str, sub: str, settings: dict[str, Any]) -> Any:
        simulator = self.simulator
        fleet = simulator.fleet
        if sub == "":
            if method in ("PUT", "POST"):
                simulator.configure(**settings)
            elif method != "GET":
                return None
            return simulator.state()
        if sub == "tokens" and method == "GET":
            return {"tokens": simulator.tokens}
        if sub == "counts":
            clusters = fleet.clusters if fleet is not None else [simulator]
            if method == "DELETE":
                for cluster in clusters:
                    cluster.reset_counts()
            elif method != "GET":
                return None
            return {cluster.cluster_name: cluster.counts() for cluster in clusters}
        if sub == "clusters" and fleet is not None:
            if method in ("PUT", "POST"):
                fleet.configure(**settings)
            elif method != "GET":
                return None
            return fleet.summary()
        if sub.startswith("nodes/") and method in ("PUT", "POST"):
            name = sub[len("nodes/") :]
            running = settings.get("running")
            if not isinstance(running, bool):
                raise ValueError('send {"running": true} or {"running": false}')
            (simulator.start_node if running else simulator.stop_node)(name)
            return simulator.state()
        return None

    # -- the PVE API -------------------------------------------------------------------

    def _api(self, method: str, path: str, query: str, body: bytes, started: float) -> None:
        simulator = self.simulator
        simulator._count("requests")
        scenario = simulator.scenario
        simulator._wait(simulator.latency)
        failure = scenario.failure
        if failure is Failure.SLOW:
            simulator._wait(simulator.slow_delay)
        elif failure is Failure.GARBAGE:
            page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works</body>"
            self._send(200, "OK", page + b"</html>", "text/html")
            return
        elif failure is Failure.REDIRECT:
            host = self.headers.get("Host", f"127.0.0.1:{simulator.port}")
            location = f"https://{host}{TRAP_PATH}{API_ROOT}{path}"
            self._send(302, "Found", b"", "text/html", headers={"Location": location})
            return
        request = ApiRequest(
            method if method != "HEAD" else "GET",
            path,
            query,
            self.headers,
            body,
            self.site.node,
            started,
        )
        reply = simulator.api.answer(request)
        self._auth = reply.auth
        if (
            reply.status == 200
            and path == "/version"
            and failure
            in (
                Failure.OVERSIZED,
                Failure.OVERSIZED_UNANNOUNCED,
                Failure.TRICKLE,
            )
        ):
            self._broken_version(reply, failure)
            return
        simulator._wait(reply.delay)
        payload = render(reply, simulator.profile.message_in_body)
        self._send(
            reply.status,
            reply.reason,
            payload,
            "application/json;charset=UTF-8" if reply.body is None else None,
        )

    def _broken_version(self, reply: Reply, failure: Failure) -> None:
        if failure is Failure.TRICKLE:
            self._trickle(json.dumps({"data": reply.data}).encode())
            return
        padding = "x" * OVERSIZED_BYTES
        body = json.dumps({"data": {**reply.data, "padding": padding}}).encode()
        self._send(
            200,
            "OK",
            body,
            "application/json;charset=UTF-8",
            announce_length=failure is Failure.OVERSIZED,
            compress=False,
        )

    def _trickle(self, body: bytes) -> None:
        self._record(200)
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        simulator = self.simulator
        for index in range(len(body)):
            if simulator._stopping.is_set():
                break
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            simulator._wait(simulator.trickle_interval)
