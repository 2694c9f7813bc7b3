"""Which addresses the Proxmox client may connect to, checked on the address
it actually connects to (docs/product-contract.md §13).

A registry that logs in wherever it is told is a request-forgery tool: it
would carry credentials to, and report on, cloud metadata services,
link-local devices or anything else its host can reach. So every connection
the client opens goes through ``NetworkPolicy``:

- a host name is resolved once, every address it resolves to is checked,
  and the connection goes to a checked address; the host name is still what
  TLS sends (SNI) and verifies the certificate against, and what the Host
  header says. A name cannot resolve to an allowed address for the check and
  to a denied one for the connection (DNS rebinding): there is no second
  look-up.
- an address is refused when it lies in a denied network, outside the
  allowed networks (when those are set), or is no host at all (unspecified,
  multicast); IPv4-mapped IPv6 addresses are judged as the IPv4 address
  they carry.
- a refusal raises ``NetworkPolicyRefused`` before a socket is opened: no
  packet reaches the refused address.

``PolicyHTTPSConnection`` is where urllib3 (under requests) asks for its
socket; ``NetworkPolicy.connect`` is the same for the certificate fetch
that reports the fingerprint of a refused certificate.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from clusters.domain import NetworkPolicyRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

# Cloud metadata services (169.254.169.254, and AWS's IPv6 fd00:ec2::254)
# and link-local addresses: never a Proxmox VE API, often a credential store.
DEFAULT_DENIED_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
DENIED_SETTING = "PROXMOXER_DENIED_NETWORKS"
ALLOWED_SETTING = "PROXMOXER_ALLOWED_NETWORKS"


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Networks from their text (``10.0.0.0/8``, ``fd00::/8``, a bare
    address); host bits are allowed and dropped. Raises ValueError naming
    the first that is not a network."""
    networks: list[IPNetwork] = []
    for value in values:
        if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            networks.append(value)
            continue
        text = value.strip()
        if text:
            networks.append(ipaddress.ip_network(text, strict=False))
    return tuple(networks)


def _system_resolver(host: str, port: int) -> list[str]:
    # socket.getaddrinfo is looked up at each call, not bound at import: the
    # test suite's loopback guard replaces it.
    return [
        str(sockaddr[0]) for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


class NetworkPolicy:
    """Denied and allowed networks, and the one way the client turns a host
    into sockets under them. Immutable, so thread-safe."""

    def __init__(
        self,
        *,
        denied: Iterable[str | IPNetwork] = DEFAULT_DENIED_NETWORKS,
        allowed: Iterable[str | IPNetwork] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """``allowed`` None (or empty) allows every address not denied.
        ``resolver`` maps a host name and port to addresses; the system's by
        default (tests pass a table)."""
        self.denied = parse_networks(denied)
        allowed_networks = parse_networks(allowed or ())
        self.allowed = allowed_networks or None
        self._resolve = resolver or _system_resolver

    def __repr__(self) -> str:
        allowed = ",".join(map(str, self.allowed)) if self.allowed else "everything"
        return f"NetworkPolicy(denied={','.join(map(str, self.denied))}, allowed={allowed})"

    def check(self, address: str, *, host: str | None = None) -> None:
        """Raise NetworkPolicyRefused unless ``address`` may be connected
        to; ``host`` is the name it was resolved from, for the message."""
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
        judged: list[IPAddress] = [parsed]
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            judged.append(parsed.ipv4_mapped)
        where = f"{host} at {parsed}" if host and host != address else f"{parsed}"
        if any(candidate.is_unspecified or candidate.is_multicast for candidate in judged):
            raise NetworkPolicyRefused(
                f"The network policy refuses {where}: it is not the address of a host",
                address=str(parsed),
                rule="not a host address",
            )
        for network in self.denied:
            if any(candidate in network for candidate in judged):
                raise NetworkPolicyRefused(
                    f"The network policy refuses {where}: {network} is a denied network "
                    f"({DENIED_SETTING})",
                    address=str(parsed),
                    rule=f"{DENIED_SETTING} {network}",
                )
        if self.allowed is not None and not any(
            candidate in network for network in self.allowed for candidate in judged
        ):
            raise NetworkPolicyRefused(
                f"The network policy refuses {where}: it is outside {ALLOWED_SETTING}",
                address=str(parsed),
                rule=ALLOWED_SETTING,
            )

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, each checked, in the
        resolver's order; an address literal is its own only address.
        Raises NetworkPolicyRefused if any address is refused, and
        socket.gaierror (an OSError) when the name does not resolve."""
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            resolved = list(dict.fromkeys(self._resolve(host, port)))
        else:
            resolved = [host]
        if not resolved:
            raise socket.gaierror(socket.EAI_NONAME, "host name could not be resolved")
        for address in resolved:
            self.check(address, host=host)
        return resolved

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to a checked address of ``host``: the first that
        accepts, as ``socket.create_connection`` would."""
        last_error: OSError | None = None
        for address in self.addresses(host, port):
            try:
                return socket.create_connection((address, port), timeout=timeout)
            except OSError as error:
                last_error = error
        assert last_error is not None  # addresses() is never empty
        raise last_error


class PolicyHTTPSConnection(HTTPSConnection):
    """urllib3's HTTPS connection whose socket goes to an address the policy
    checked. Only the TCP connect is replaced: TLS, SNI and the certificate's
    hostname check still use the host name of the URL (``self.host``)."""

    network_policy: NetworkPolicy

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.network_policy.addresses(self._dns_host, self.port)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        last_error: Exception | None = None
        for address in addresses:
            try:
                return create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as error:
                last_error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
                last_error.__cause__ = error
            except OSError as error:
                last_error = NewConnectionError(
                    self, f"Failed to establish a new connection: {error}"
                )
                last_error.__cause__ = error
        assert last_error is not None  # addresses() is never empty
        raise last_error


def pool_classes(policy: NetworkPolicy) -> dict[str, Any]:
    """The urllib3 pool classes, by scheme, whose connections obey
    ``policy`` (a requests adapter installs them in its pool manager). Only
    https: the client speaks nothing else."""
    connection_class = type(
        "PolicyHTTPSConnection", (PolicyHTTPSConnection,), {"network_policy": policy}
    )
    pool_class = type(
        "PolicyHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": connection_class}
    )
    return {"https": pool_class}
