"""The network policy on real sockets, on loopback only: a denied loopback
address (127.0.0.2, denied through the policy's own settings) gets no
connection at all; a name is connected at the address that was checked,
while TLS still names the host (SNI) and verifies the certificate against
it; the fingerprint fetch after a failed handshake obeys the same policy.
Names resolve through a table passed to the policy: no resolver is asked."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from clusters.domain import (
    ConnectionTarget,
    NetworkPolicyRefused,
    PasswordCredentials,
    ProxmoxTLSError,
    Secret,
    TokenCredentials,
)
from clusters.proxmox import NetworkPolicy, fetch_server_fingerprint
from clusters.proxmox.transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from pve_simulator.certificates import self_signed_certificate
from tests.integration.proxmox.simulated import client, password, pinned, token
from tests.listener import Listener

DENIED = "127.0.0.2"
# Credentials for targets that must never be reached.
NOBODY_PASSWORD = PasswordCredentials("root@pam", Secret("never-sent"))
NOBODY_TOKEN = TokenCredentials("root@pam!probe", Secret("never-sent-token"))


@pytest.fixture
def listener_on_denied() -> Iterator[Listener]:
    listener = Listener(DENIED)
    yield listener
    listener.close()


class RecordingTLSServer:
    """A TLS server on 127.0.0.1 that records the name each client sends in
    its handshake (SNI) and the Host header, and answers every request with
    PVE's version answer."""

    BODY = b'{"data": {"version": "8.2.4", "release": "8.2"}}'

    def __init__(self) -> None:
        certificate = self_signed_certificate()
        self.fingerprint = certificate.fingerprint
        self.server_names: list[str | None] = []
        self.host_headers: list[str] = []
        self._context = certificate.ssl_context()
        self._context.sni_callback = self._record_sni
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(5)
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    def _serve_one(self) -> None:
        with contextlib.suppress(OSError):
            raw, _ = self._socket.accept()
            with self._context.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                for line in request.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("host:"):
                        self.host_headers.append(line.split(":", 1)[1].strip())
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(self.BODY)}\r\nConnection: close\r\n\r\n".encode()
                    + self.BODY
                )

    def close(self) -> None:
        self._socket.close()
        self._thread.join(timeout=5)


def transport(policy: NetworkPolicy) -> Transport:
    return Transport(
        connect_timeout=2.0,
        read_timeout=2.0,
        ca_bundle=None,
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
        fingerprint_fetcher=lambda host, port, timeout: None,
        network_policy=policy,
    )


class Table:
    """Answers look-ups from a dict, in turn when a name has several answers."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self._answers = {name.replace("_", "."): list(turns) for name, turns in answers.items()}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        turns = self._answers[host]
        return turns.pop(0) if len(turns) > 1 else turns[0]


# -- refused targets get no packet -------------------------------------------------------


def test_a_denied_address_gets_no_connection(listener_on_denied, sim):
    policy = NetworkPolicy(denied=[f"{DENIED}/32"])
    target = ConnectionTarget(f"https://{DENIED}:{listener_on_denied.port}", True, sim.fingerprint)

    with pytest.raises(NetworkPolicyRefused) as refused:
        client(network_policy=policy).inspect(target, password(sim))

    assert refused.value.rule == f"PROXMOXER_DENIED_NETWORKS {DENIED}/32"
    assert listener_on_denied.connections() == 0


def test_a_name_with_one_denied_address_gets_no_connection_at_any_of_them(listener_on_denied):
    allowed = Listener("127.0.0.1")
    table = Table(pve1_test=[["127.0.0.1", DENIED]])
    policy = NetworkPolicy(denied=[f"{DENIED}/32"], resolver=table)
    try:
        target = ConnectionTarget(f"https://pve1.test:{allowed.port}", False)
        with pytest.raises(NetworkPolicyRefused, match=f"pve1.test at {DENIED}"):
            client(network_policy=policy).inspect(target, NOBODY_PASSWORD)
        assert allowed.connections() == 0
        assert listener_on_denied.connections() == 0
    finally:
        allowed.close()


def test_an_address_outside_the_allowed_networks_gets_no_connection(listener_on_denied, sim):
    policy = NetworkPolicy(allowed=["127.0.0.1/32", "::1/128"])
    target = ConnectionTarget(f"https://{DENIED}:{listener_on_denied.port}", True, sim.fingerprint)

    with pytest.raises(NetworkPolicyRefused, match="outside PROXMOXER_ALLOWED_NETWORKS"):
        client(network_policy=policy).inspect(target, token(sim))

    assert listener_on_denied.connections() == 0


def test_an_allowed_loopback_cluster_is_reached_as_before(sim):
    policy = NetworkPolicy(denied=[f"{DENIED}/32"], allowed=["127.0.0.0/8"])

    report = client(network_policy=policy).inspect(pinned(sim), password(sim))

    assert report.version == "8.2.4"


# -- names: the checked address, the host's name -------------------------------------------


def test_a_name_is_connected_at_its_checked_address_and_named_in_sni_and_host():
    server = RecordingTLSServer()
    table = Table(pve1_test=[["127.0.0.1"]])
    target = ConnectionTarget(f"https://pve1.test:{server.port}", True, server.fingerprint)
    try:
        with transport(NetworkPolicy(resolver=table)).connect(target, NOBODY_TOKEN) as conn:
            data = conn.call("GET", "/version")
    finally:
        server.close()

    assert data == {"version": "8.2.4", "release": "8.2"}
    assert server.server_names == ["pve1.test"]
    assert server.host_headers == [f"pve1.test:{server.port}"]
    assert table.lookups == ["pve1.test"]


def test_a_name_that_rebinds_after_its_check_is_still_connected_where_it_was_checked(
    listener_on_denied,
):
    """A resolver that answers an allowed address and then a denied one
    (DNS rebinding) never gets the connection to the denied one: each
    connection looks the name up once and connects where that answer was
    checked."""
    server = RecordingTLSServer()
    table = Table(pve1_test=[["127.0.0.1"], [DENIED]])
    policy = NetworkPolicy(denied=[f"{DENIED}/32"], resolver=table)
    target = ConnectionTarget(f"https://pve1.test:{server.port}", True, server.fingerprint)
    try:
        with transport(policy).connect(target, NOBODY_TOKEN) as connection:
            assert connection.call("GET", "/version")["version"] == "8.2.4"
        with (
            pytest.raises(NetworkPolicyRefused),
            transport(policy).connect(target, NOBODY_TOKEN) as connection,
        ):
            connection.call("GET", "/version")
    finally:
        server.close()

    assert table.lookups == ["pve1.test", "pve1.test"]
    assert listener_on_denied.connections() == 0


def test_certificates_are_verified_against_the_name_not_the_address_connected_to(
    private_ca,
):
    simulator, ca_file = private_ca
    # The CA's certificate names localhost and 127.0.0.1, not pve1.test.
    table = Table(localhost=[["127.0.0.1"]], pve1_test=[["127.0.0.1"]])
    verifying = client(ca_bundle=str(ca_file), network_policy=NetworkPolicy(resolver=table))

    report = verifying.inspect(
        ConnectionTarget(f"https://localhost:{simulator.port}"), password(simulator)
    )
    with pytest.raises(ProxmoxTLSError):
        verifying.inspect(
            ConnectionTarget(f"https://pve1.test:{simulator.port}"), password(simulator)
        )

    assert report.version == "8.2.4"


# -- the fingerprint fetch ------------------------------------------------------------------


def test_the_fingerprint_fetch_obeys_the_policy(listener_on_denied, sim):
    policy = NetworkPolicy(denied=[f"{DENIED}/32"])

    with pytest.raises(NetworkPolicyRefused):
        fetch_server_fingerprint(DENIED, listener_on_denied.port, 1.0, network_policy=policy)
    observed = fetch_server_fingerprint("127.0.0.1", sim.port, 1.0, network_policy=policy)

    assert listener_on_denied.connections() == 0
    assert observed == sim.fingerprint


def test_a_failed_handshake_fetches_no_fingerprint_from_where_the_policy_refuses(
    listener_on_denied, sim
):
    """The handshake's connection went to an allowed address; by the time
    the fingerprint is fetched the name points at a denied one: the fetch is
    refused rather than sent there."""
    table = Table(pve1_test=[["127.0.0.1"], [DENIED]])
    policy = NetworkPolicy(denied=[f"{DENIED}/32"], resolver=table)
    unpinned = ConnectionTarget(f"https://pve1.test:{sim.port}")

    with pytest.raises(NetworkPolicyRefused):
        client(network_policy=policy, parallel=False).inspect(unpinned, token(sim))

    assert listener_on_denied.connections() == 0
    assert table.lookups == ["pve1.test", "pve1.test"]
