"""The transport's rules (clusters/proxmox/transport.py and tls.py) through
ProxmoxClient against requests-mock with real PVE shapes: error mapping,
redirects, body caps, TLS failures (with a fake fingerprint fetcher passed to
the constructor), the SSLContexts. The same rules over real TLS:
tests/integration/proxmox/test_transport_over_tls.py."""

from __future__ import annotations

import io

import pytest
import requests

from clusters.domain import (
    ConnectionTarget,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxTLSError,
)
from clusters.proxmox import ProxmoxClient, tls
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.unit.proxmox.conftest import (
    PASSWORD_CREDENTIALS,
    TARGET,
    TOKEN_CREDENTIALS,
    TOKEN_SECRET,
    client,
    messages,
)

OBSERVED = "AB:" * 31 + "AB"
PINNED = "12:" * 31 + "12"


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


# -- status mapping --------------------------------------------------------------------


def test_refused_token_is_an_authentication_failure_naming_the_token_not_its_secret(m):
    m.get(f"{pve.API}/version", status_code=401, reason="invalid token value!", json={"data": None})
    pve.cluster_status(m, pve.three_node_cluster())
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert raised.value.message == (
        "Proxmox refused the credentials of root@pam!proxmoxer (invalid token value!)"
    )
    assert_secret_absent(TOKEN_SECRET, messages(raised.value), "the error")


# -- hygiene ---------------------------------------------------------------------------


def test_redirects_are_reported_not_followed_and_their_target_is_not_quoted(m):
    m.post(
        f"{pve.API}/access/ticket",
        status_code=302,
        headers={"Location": "https://elsewhere.example.net/login?db=postgres://admin:hunter2@db"},
    )
    with pytest.raises(ProxmoxBadResponse) as raised:
        client().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert raised.value.message == (
        f"{pve.ENDPOINT} answered /access/ticket with a redirect (302); redirects are not "
        "followed, register the API's own address"
    )
    assert "elsewhere" not in messages(raised.value)
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
    pve.nodes(m, [])
    assert client(max_response_bytes=1024).inspect(TARGET, TOKEN_CREDENTIALS).version == "8.2.4"


# -- TLS failures ----------------------------------------------------------------------


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
    built: list[str | None] = []
    real = tls._verifying_context

    def counting(ca_bundle: str | None):
        built.append(ca_bundle)
        return real(ca_bundle)

    monkeypatch.setattr(tls, "_verifying_context", counting)
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    pve.nodes(m, pve.three_nodes())
    shared = ProxmoxClient()  # parallel: three sessions per inspect
    for _ in range(3):
        shared.inspect(TARGET, TOKEN_CREDENTIALS)
    assert built == [None]
