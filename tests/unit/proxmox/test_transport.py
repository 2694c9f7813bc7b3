"""The transport's rules (clusters/proxmox/transport.py and tls.py) through
ProxmoxClient against requests-mock with real PVE shapes: error mapping,
which of an error's texts is quoted (the body's message, else the reason
phrase) and how PVE 9's "Authentication failed!" reads, redirects, body caps,
TLS failures (with a fake fingerprint fetcher passed to the constructor), the
SSLContexts. The same rules over real TLS:
tests/integration/proxmox/test_transport_over_tls.py."""

from __future__ import annotations

import io
import json

import pytest
import requests

from clusters.domain import (
    ClusterError,
    ConnectionTarget,
    Credentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxPermissionDenied,
    ProxmoxTLSError,
)
from clusters.proxmox import ProxmoxClient, tls
from clusters.proxmox.api import PveSession
from clusters.proxmox.redaction import REASON_MAX_LENGTH
from clusters.proxmox.transport import Transport
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent, secret_encodings
from tests.unit.proxmox.conftest import (
    PASSWORD,
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


# -- which text of an error is quoted --------------------------------------------------

TOKEN = "root@pam!proxmoxer"
PROXY_REASON = "Error"  # a reverse proxy put its own phrase in place of PVE's


def message_body(message: str) -> bytes:
    """An error body of pve-http-server 5.2 and later."""
    return json.dumps({"data": None, "message": message}).encode()


def refusal(
    m,
    transport: Transport,
    *,
    status: int,
    reason: str,
    body: bytes = b"",
    credentials: Credentials = TOKEN_CREDENTIALS,
) -> ClusterError:
    """The error one ``GET /version`` answered so raises."""
    m.get(f"{pve.API}/version", status_code=status, reason=reason, content=body)
    with (
        transport.connect(TARGET, credentials) as connection,
        pytest.raises(ClusterError) as raised,
    ):
        connection.call("GET", "/version")
    return raised.value


@pytest.mark.parametrize(
    ("status", "said", "kind", "expected"),
    [
        (
            400,
            "Parameter verification failed.",
            ProxmoxBadResponse,
            f"{pve.ENDPOINT} refused /version with 400 Parameter verification failed.",
        ),
        (
            401,
            "authentication failure",
            ProxmoxAuthenticationFailed,
            f"Proxmox refused the credentials of {TOKEN} (authentication failure)",
        ),
        (
            403,
            "Permission check failed (/, Sys.Audit)",
            ProxmoxPermissionDenied,
            f"{TOKEN} may not read /version on {pve.ENDPOINT} "
            "(Permission check failed (/, Sys.Audit))",
        ),
        (
            404,
            "Method 'GET /version' not implemented",
            ProxmoxBadResponse,
            f"{pve.ENDPOINT} refused /version with 404 Method 'GET /version' not implemented",
        ),
        (
            500,
            "unable to read file '/etc/pve/nodes/pve1/lrm_status'",
            ProxmoxBadResponse,
            f"{pve.ENDPOINT} answered /version with 500 "
            "unable to read file '/etc/pve/nodes/pve1/lrm_status'",
        ),
        (
            596,
            "Connection timed out",
            ProxmoxBadResponse,
            f"{pve.ENDPOINT} answered /version with 596 Connection timed out",
        ),
    ],
    ids=["400", "401", "403", "404", "500", "596"],
)
def test_an_error_bodys_message_is_quoted_rather_than_the_reason_phrase(
    m, transport, status, said, kind, expected
):
    error = refusal(
        m, transport, status=status, reason=PROXY_REASON, body=message_body(f"{said}\n")
    )
    assert type(error) is kind
    assert error.message == expected
    assert PROXY_REASON not in error.message.replace(said, "")
    if isinstance(error, ProxmoxPermissionDenied):
        assert error.reason == said


def test_pves_empty_401_body_leaves_the_reason_phrase_to_quote(m, transport):
    error = refusal(m, transport, status=401, reason="invalid token value!", body=b"")
    assert error.message == f"Proxmox refused the credentials of {TOKEN} (invalid token value!)"


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": null}',
        b'{"data": null, "errors": {"username": "value does not match the regex pattern"}}',
        b'{"data": null, "message": null}',
        b'{"data": null, "message": ["not", "text"]}',
        b'{"data": null, "message": ""}',
        b'{"data": null, "message": "\\n  \\n"}',
        b'{"data": null, "message": "\\u0007\\u001b"}',
        b'["message"]',
        b"<html><body>message: from some other server</body></html>",
    ],
    ids=[
        "pve8",
        "errors",
        "null",
        "list",
        "empty",
        "blank-first-line",
        "unprintable",
        "not-an-object",
        "not-json",
    ],
)
def test_without_a_usable_body_message_the_reason_phrase_is_quoted(m, transport, body):
    error = refusal(m, transport, status=400, reason="Parameter verification failed.", body=body)
    assert error.message == (
        f"{pve.ENDPOINT} refused /version with 400 Parameter verification failed."
    )


def test_below_400_a_body_message_is_not_read(m, transport):
    error = refusal(m, transport, status=202, reason="Accepted", body=message_body("from the body"))
    assert error.message == f"{pve.ENDPOINT} refused /version with 202 Accepted"


def secret_echoes(secret: str) -> dict[str, bytes]:
    """Error bodies whose message holds ``secret``, in every encoding."""
    spelled_out = "".join(f"\\u{ord(char):04x}" for char in secret)
    return {
        **{
            kind: message_body(f"no such user or bad value {form}")
            for kind, form in secret_encodings(secret).items()
        },
        "escaped in the body's JSON": (
            b'{"data": null, "message": "bad value ' + spelled_out.encode() + b'"}'
        ),
        "on the second line": message_body(f"authentication failure\nfor {secret}\n"),
        "beyond where a long message is cut": message_body(f"{'x' * 200} {secret}"),
    }


@pytest.mark.parametrize(
    ("credentials", "secret"),
    [(TOKEN_CREDENTIALS, TOKEN_SECRET), (PASSWORD_CREDENTIALS, PASSWORD)],
    ids=["token", "password"],
)
def test_a_body_message_holding_the_secret_is_not_quoted(m, transport, credentials, secret):
    for kind, body in secret_echoes(secret).items():
        error = refusal(
            m, transport, status=403, reason="Forbidden", body=body, credentials=credentials
        )
        assert error.message.endswith("(Forbidden)"), kind
        assert_secret_absent(secret, messages(error), f"the error ({kind})")


def test_a_body_message_holding_the_ticket_is_not_quoted(m, transport):
    pve.login_ok(m)
    for kind, body in secret_echoes(pve.TICKET).items():
        m.get(f"{pve.API}/version", status_code=500, reason="Internal Server Error", content=body)
        with transport.connect(TARGET, PASSWORD_CREDENTIALS) as connection:
            session = PveSession.login(connection, PASSWORD_CREDENTIALS)
            with pytest.raises(ProxmoxBadResponse) as raised:
                session.version()
        assert raised.value.message == (
            f"{pve.ENDPOINT} answered /version with 500 Internal Server Error"
        ), kind
        assert_secret_absent(pve.TICKET, messages(raised.value), f"the error ({kind})")


def test_a_long_or_multi_line_body_message_is_cut_to_a_short_first_line(m, transport):
    multi_line = refusal(
        m,
        transport,
        status=403,
        reason=PROXY_REASON,
        body=message_body("Permission check failed (/, Sys.Audit)\nat PVE/RPCEnvironment.pm\n"),
    )
    long = refusal(m, transport, status=403, reason=PROXY_REASON, body=message_body("word " * 200))
    unprintable = refusal(
        m, transport, status=403, reason=PROXY_REASON, body=message_body("caf\u00e9\t\u001b[31mred")
    )
    assert isinstance(multi_line, ProxmoxPermissionDenied)
    assert multi_line.reason == "Permission check failed (/, Sys.Audit)"
    assert isinstance(long, ProxmoxPermissionDenied)
    assert len(long.reason) <= REASON_MAX_LENGTH
    assert long.reason.startswith("word word") and long.reason.endswith("...")
    assert isinstance(unprintable, ProxmoxPermissionDenied)
    assert unprintable.reason == "caf [31mred"


# -- PVE 9.1.5 and later: "Authentication failed!" -------------------------------------


def test_authentication_failed_for_a_token_says_what_it_can_mean_and_what_to_do(m):
    pve.token_refused_pve9(m)
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert raised.value.message == (
        f"Proxmox refused the credentials of {TOKEN} (Authentication failed!): the token id or "
        "secret is wrong, or the token expired or was removed on the cluster; register or "
        "edit the cluster with a valid API token"
    )
    assert_secret_absent(TOKEN_SECRET, messages(raised.value), "the error")


def test_authentication_failed_for_a_ticket_says_the_registry_logs_in_again(m, transport):
    pve.login_ok(m)
    m.get(f"{pve.API}/version", status_code=401, reason="Authentication failed!", content=b"")
    with transport.connect(TARGET, PASSWORD_CREDENTIALS) as connection:
        session = PveSession.login(connection, PASSWORD_CREDENTIALS)
        with pytest.raises(ProxmoxAuthenticationFailed) as raised:
            session.version()
    assert raised.value.message == (
        "Proxmox refused the credentials of root@pam (Authentication failed!): the ticket of "
        "its login expired or the cluster no longer accepts it; the registry logs in with the "
        "password again on the next attempt"
    )
    for secret in (PASSWORD, pve.TICKET, pve.CSRF_TOKEN):
        assert_secret_absent(secret, messages(raised.value), "the error")


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
