"""ProxmoxClient's connectivity rules against requests-mock with real PVE
shapes: API tokens, second factor, redirects, body caps, TLS failures (with a
fake fingerprint fetcher passed to the constructor). The same rules over real
TLS: tests/integration/test_proxmox_client_over_tls.py."""

from __future__ import annotations

import io
import threading

import pytest
import requests
import requests_mock

from clusters.domain import (
    ConnectionTarget,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxSecondFactorRequired,
    ProxmoxTLSError,
    Secret,
    TokenCredentials,
    assess_health,
)
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

PASSWORD = "correct horse battery staple"
TOKEN_SECRET = "5c1b7e0e-3f57-4c43-a7a4-2a8a1b7f5d11"
OBSERVED = "AB:" * 31 + "AB"
PINNED = "12:" * 31 + "12"
TARGET = ConnectionTarget(pve.ENDPOINT)
LOGIN_PATH = "/api2/json/access/ticket"
PASSWORD_CREDENTIALS = PasswordCredentials("root@pam", Secret(PASSWORD))
TOKEN_CREDENTIALS = TokenCredentials("root@pam!proxmoxer", Secret(TOKEN_SECRET))


class FakeFetcher:
    """Stands in for fetching the certificate a server presents."""

    def __init__(self, fingerprint: str | None) -> None:
        self.fingerprint = fingerprint
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int, timeout: float) -> str | None:
        self.calls.append((host, port))
        return self.fingerprint


class CountingBody(io.BytesIO):
    """A response body that remembers how much of it was read."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def read1(self, size: int | None = -1) -> bytes:
        chunk = super().read1(size)
        self.bytes_read += len(chunk)
        return chunk


@pytest.fixture
def m():
    with requests_mock.Mocker() as mocker:
        yield mocker


def client(**kwargs) -> ProxmoxClient:
    return ProxmoxClient(parallel=False, **kwargs)


def messages(error: Exception) -> str:
    return f"{error} {error!r} {getattr(error, 'details', '')}"


# -- API tokens ------------------------------------------------------------------------


def test_token_is_sent_as_pveapitoken_header_without_a_ticket_call(m):
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    report = client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert report.version == "8.2.4"
    assert sorted(request.path for request in m.request_history) == [
        "/api2/json/cluster/status",
        "/api2/json/version",
    ]
    for request in m.request_history:
        assert request.headers["Authorization"] == f"PVEAPIToken=root@pam!proxmoxer={TOKEN_SECRET}"
        assert "Cookie" not in request.headers
        assert "CSRFPreventionToken" not in request.headers


def test_refused_token_is_an_authentication_failure_naming_the_token_not_its_secret(m):
    m.get(f"{pve.API}/version", status_code=401, reason="invalid token value!", json={"data": None})
    pve.cluster_status(m, pve.three_node_cluster())
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert raised.value.message == (
        "Proxmox refused the credentials of root@pam!proxmoxer (invalid token value!)"
    )
    assert_secret_absent(TOKEN_SECRET, messages(raised.value), "the error")


# -- the parallel client's head start --------------------------------------------------------


def test_parallel_client_opens_its_status_connection_without_credentials(m):
    pve.healthy_cluster(m)
    m.get(f"{pve.API}/access/ticket", json={"data": None})
    report = ProxmoxClient().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert assess_health(report).status == "healthy"
    opener = next(r for r in m.request_history if (r.method, r.path) == ("GET", LOGIN_PATH))
    assert "Cookie" not in opener.headers and "Authorization" not in opener.headers
    assert opener.body is None
    assert [r.method for r in m.request_history if r.path == LOGIN_PATH].count("POST") == 1


def test_a_failing_head_start_does_not_fail_the_inspection(m):
    pve.healthy_cluster(m)
    m.get(f"{pve.API}/access/ticket", exc=requests.exceptions.ConnectionError("reset"))
    assert ProxmoxClient().inspect(TARGET, PASSWORD_CREDENTIALS).version == "8.2.4"


def test_a_refused_login_ends_the_waiting_status_read(m):
    pve.login_refused(m)
    m.get(f"{pve.API}/access/ticket", json={"data": None})
    pve.cluster_status(m, pve.three_node_cluster())
    client = ProxmoxClient()
    with pytest.raises(ProxmoxAuthenticationFailed):
        client.inspect(TARGET, PASSWORD_CREDENTIALS)
    assert client._executor is not None
    # The executor shuts down only once the status read has ended.
    shutdown = threading.Thread(target=client._executor.shutdown)
    shutdown.start()
    shutdown.join(timeout=5)
    assert not shutdown.is_alive(), "the status read is still waiting for a ticket"
    assert "/api2/json/cluster/status" not in [r.path for r in m.request_history]


def test_sequential_client_makes_exactly_the_three_calls(m):
    pve.healthy_cluster(m)
    client().inspect(TARGET, PASSWORD_CREDENTIALS)  # client() is sequential
    assert [(r.method, r.path) for r in m.request_history] == [
        ("POST", LOGIN_PATH),
        ("GET", "/api2/json/version"),
        ("GET", "/api2/json/cluster/status"),
    ]


# -- second factor ------------------------------------------------------------------------


def test_need_tfa_is_a_second_factor_error_suggesting_a_token(m):
    pve.login_needs_tfa(m)
    with pytest.raises(ProxmoxSecondFactorRequired) as raised:
        client().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert "second factor" in raised.value.message
    assert "API token" in raised.value.message
    assert len(m.request_history) == 1  # the half-ticket is never used
    assert_secret_absent(PASSWORD, messages(raised.value), "the error")


def test_a_tfa_ticket_without_need_tfa_is_a_second_factor_error_too(m):
    data = {"username": "root@pam", "ticket": "PVE:!tfa!root@pam:6745A1B2::c2ln", "cap": {}}
    m.post(f"{pve.API}/access/ticket", json={"data": data})
    with pytest.raises(ProxmoxSecondFactorRequired):
        client().inspect(TARGET, PASSWORD_CREDENTIALS)


# -- permissions -------------------------------------------------------------------------


def test_without_sys_audit_the_visible_nodes_are_counted(m):
    pve.login_ok(m)
    pve.version(m)
    pve.cluster_status_forbidden(m)
    pve.nodes(m)
    health = assess_health(client().inspect(TARGET, PASSWORD_CREDENTIALS))
    assert (health.status, health.node_count) == ("unknown", 2)


# -- hygiene -------------------------------------------------------------------------------


def test_redirects_are_reported_not_followed(m):
    m.post(
        f"{pve.API}/access/ticket",
        status_code=302,
        headers={"Location": "https://elsewhere.example.net/login"},
    )
    with pytest.raises(ProxmoxBadResponse, match=r"redirect \(302\) to https://elsewhere"):
        client().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert len(m.request_history) == 1


def test_a_declared_oversized_body_is_refused_before_it_is_read(m):
    body = CountingBody(b"{}")
    m.get(f"{pve.API}/version", body=body, headers={"Content-Length": str(2 << 20)})
    pve.cluster_status(m, [])
    with pytest.raises(ProxmoxBadResponse, match="more than 1048576 bytes"):
        client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert body.bytes_read == 0


def test_an_undeclared_oversized_body_is_cut_off_at_the_cap(m):
    body = CountingBody(b'{"data": {"version": "8.2.4", "pad": "' + b"x" * (2 << 20) + b'"}}')
    m.get(f"{pve.API}/version", body=body)
    pve.cluster_status(m, [])
    with pytest.raises(ProxmoxBadResponse, match="more than 1024 bytes"):
        client(max_response_bytes=1024).inspect(TARGET, TOKEN_CREDENTIALS)
    assert body.bytes_read < 256 * 1024  # stopped reading soon after the cap


def test_a_body_just_under_the_cap_is_read_whole(m):
    padding = "x" * 900
    m.get(f"{pve.API}/version", json={"data": {"version": "8.2.4", "pad": padding}})
    pve.cluster_status(m, [])
    assert client(max_response_bytes=1024).inspect(TARGET, TOKEN_CREDENTIALS).version == "8.2.4"


# -- TLS failures --------------------------------------------------------------------------


def test_untrusted_certificate_reports_the_fingerprint_to_pin(m):
    m.get(f"{pve.API}/version", exc=requests.exceptions.SSLError("certificate verify failed"))
    m.get(f"{pve.API}/cluster/status", exc=requests.exceptions.SSLError("verify failed"))
    fetcher = FakeFetcher(OBSERVED)
    with pytest.raises(ProxmoxTLSError) as raised:
        client(fingerprint_fetcher=fetcher).inspect(TARGET, TOKEN_CREDENTIALS)
    assert raised.value.details == {"fingerprint": OBSERVED}
    assert "not trusted" in raised.value.message
    assert f'"fingerprint": {OBSERVED}' in raised.value.message
    assert fetcher.calls[0] == ("pve.example.com", 8006)


def test_pin_mismatch_names_both_fingerprints(m):
    m.get(
        f"{pve.API}/cluster/status", exc=requests.exceptions.SSLError("Fingerprints did not match")
    )
    m.get(f"{pve.API}/version", exc=requests.exceptions.SSLError("Fingerprints did not match"))
    pinned = ConnectionTarget(pve.ENDPOINT, True, PINNED)
    with pytest.raises(ProxmoxTLSError) as raised:
        client(fingerprint_fetcher=FakeFetcher(OBSERVED)).inspect(pinned, TOKEN_CREDENTIALS)
    assert raised.value.details == {"expected_fingerprint": PINNED, "fingerprint": OBSERVED}
    assert PINNED in raised.value.message and OBSERVED in raised.value.message


def test_tls_failure_without_an_observable_certificate_says_the_handshake_failed(m):
    m.get(f"{pve.API}/cluster/status", exc=requests.exceptions.SSLError("wrong version number"))
    m.get(f"{pve.API}/version", exc=requests.exceptions.SSLError("wrong version number"))
    with pytest.raises(ProxmoxTLSError) as raised:
        client(fingerprint_fetcher=FakeFetcher(None)).inspect(TARGET, TOKEN_CREDENTIALS)
    assert raised.value.message == f"TLS handshake with {pve.ENDPOINT} failed"
    assert raised.value.details is None


def test_an_unreadable_ca_bundle_is_a_tls_error_naming_the_setting(tmp_path):
    not_a_bundle = tmp_path / "bundle.pem"
    not_a_bundle.write_text("not a certificate\n")
    for bundle in (not_a_bundle, tmp_path / "missing.pem"):
        with pytest.raises(ProxmoxTLSError, match="PROXMOX_CA_BUNDLE"):
            client(ca_bundle=str(bundle)).inspect(TARGET, TOKEN_CREDENTIALS)


def test_verification_contexts_are_built_once_per_client(m, monkeypatch):
    from clusters.proxmox import tls as proxmox

    built: list[str | None] = []
    real = proxmox._verifying_context

    def counting(ca_bundle: str | None):
        built.append(ca_bundle)
        return real(ca_bundle)

    monkeypatch.setattr(proxmox, "_verifying_context", counting)
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    shared = ProxmoxClient()  # parallel: two sessions per inspect
    for _ in range(3):
        shared.inspect(TARGET, TOKEN_CREDENTIALS)
    assert built == [None]
