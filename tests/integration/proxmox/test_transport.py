"""The transport (clusters/proxmox/transport.py and tls.py) through
ProxmoxClient against requests-mock answering as real PVE does
(docs/product-contract.md §5): timeouts, trust settings, status and error
mapping, the envelope, secrets kept out of errors."""

from __future__ import annotations

import certifi
import pytest
import requests

from clusters.domain import (
    ConnectionTarget,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxNoAnswer,
    ProxmoxUnreachable,
)
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.integration.proxmox.conftest import (
    OBSERVED,
    PASSWORD,
    PASSWORD_LOGIN,
    TARGET,
    TOKEN_LOGIN,
    TOKEN_SECRET,
)


def test_every_call_carries_the_configured_timeouts(client, m):
    pve.healthy_cluster(m)
    client.inspect(TARGET, PASSWORD_LOGIN)
    assert {call.timeout for call in m.request_history} == {(2, 3)}
    assert len(m.request_history) == 6, "login, version, status, nodes and two connection openers"


@pytest.mark.parametrize(
    ("target", "ca_bundle", "expected_verify"),
    [
        (ConnectionTarget(pve.ENDPOINT), None, True),
        (ConnectionTarget(pve.ENDPOINT), certifi.where(), True),
        (ConnectionTarget(pve.ENDPOINT, verify_tls=False), None, False),
        (ConnectionTarget(pve.ENDPOINT, fingerprint=OBSERVED), None, False),
    ],
    ids=["default", "private-ca", "verify-off", "pinned"],
)
def test_verify_tls_holds_whatever_requests_ca_bundle_says(
    m, monkeypatch, target, ca_bundle, expected_verify
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    pve.healthy_cluster(m)

    ProxmoxClient(ca_bundle=ca_bundle).inspect(target, PASSWORD_LOGIN)

    assert {call.verify for call in m.request_history} == {expected_verify}


def test_refused_credentials_raise_authentication_failed_naming_the_account(client, m):
    pve.login_refused(m)
    with pytest.raises(ProxmoxAuthenticationFailed) as caught:
        client.inspect(TARGET, PASSWORD_LOGIN)
    assert caught.value.message == (
        "Proxmox refused the credentials of root@pam (authentication failure)"
    )
    assert len(pve.api_calls(m)) == 1


def test_refused_token_raises_authentication_failed(client, m):
    for path in ("version", "cluster/status"):
        m.get(
            f"{pve.API}/{path}", status_code=401, reason="invalid token value!", json={"data": None}
        )
    with pytest.raises(ProxmoxAuthenticationFailed, match="root@pam!proxmoxer"):
        client.inspect(TARGET, TOKEN_LOGIN)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "Internal Server Error"), (595, "Connection refused"), (596, "Connection timed out")],
)
def test_server_errors_become_bad_response_with_the_reason(client, m, status, reason):
    pve.login_ok(m)
    pve.version(m)
    m.get(f"{pve.API}/cluster/status", status_code=status, reason=reason, json={"data": None})
    with pytest.raises(ProxmoxBadResponse) as caught:
        client.inspect(TARGET, PASSWORD_LOGIN)
    assert caught.value.message == f"{pve.ENDPOINT} answered /cluster/status with {status} {reason}"


def test_parameter_errors_quote_the_reason_phrase_but_not_the_errors_body(client, m):
    m.post(
        f"{pve.API}/access/ticket",
        status_code=400,
        reason="Parameter verification failed.",
        json={
            "data": None,
            "errors": {"username": "invalid format - value does not look like a valid user name"},
        },
    )
    with pytest.raises(ProxmoxBadResponse) as caught:
        client.inspect(TARGET, PASSWORD_LOGIN)
    assert caught.value.message == (
        f"{pve.ENDPOINT} refused /access/ticket with 400 Parameter verification failed."
    )
    assert caught.value.details is None


@pytest.mark.parametrize(
    "answer",
    [
        {"text": "<html><body>Welcome to nginx!</body></html>"},
        {"json": {"version": "8.2.4"}},
        {"json": ["data"]},
        {"content": b"\xff\xfe not json"},
    ],
    ids=["html", "no-data-key", "list", "binary"],
)
def test_an_answer_that_is_not_the_pve_envelope_is_a_bad_response(client, m, answer):
    m.post(f"{pve.API}/access/ticket", status_code=200, **answer)
    with pytest.raises(ProxmoxBadResponse, match="not the Proxmox VE API's JSON envelope"):
        client.inspect(TARGET, PASSWORD_LOGIN)


@pytest.mark.parametrize(
    ("error", "message", "nothing_answered"),
    [
        (
            requests.exceptions.ConnectTimeout("timed out"),
            "Timed out connecting to https://pve.example.com:8006 after 2 s",
            True,
        ),
        (
            requests.exceptions.ReadTimeout("read timed out"),
            "https://pve.example.com:8006 did not answer /access/ticket within 3 s",
            False,
        ),
        (
            requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
            "Could not connect to https://pve.example.com:8006: connection refused",
            True,
        ),
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset")),
            "Could not connect to https://pve.example.com:8006: connection failed",
            False,
        ),
    ],
    ids=["connect-timeout", "read-timeout", "refused", "reset"],
)
def test_network_failures_become_unreachable_with_what_failed(
    client, m, error, message, nothing_answered
):
    """Nothing accepting the connection (refused, or timed out connecting)
    is ProxmoxNoAnswer: where https:// implied 443, the service suggests 8006."""
    m.post(f"{pve.API}/access/ticket", exc=error)
    with pytest.raises(ProxmoxUnreachable) as caught:
        client.inspect(TARGET, PASSWORD_LOGIN)
    assert caught.value.message == message
    assert isinstance(caught.value, ProxmoxNoAnswer) is nothing_answered


@pytest.mark.parametrize(
    ("credentials", "secret"), [(PASSWORD_LOGIN, PASSWORD), (TOKEN_LOGIN, TOKEN_SECRET)]
)
def test_no_error_message_carries_the_secret_even_if_proxmox_echoes_it(
    client, m, credentials, secret
):
    failures = [
        {"status_code": 401, "reason": f"authentication failure {secret}"},
        {"status_code": 500, "reason": f"internal error {secret}"},
        {"status_code": 302, "headers": {"Location": f"https://x.example.net/?s={secret}"}},
        {"exc": requests.exceptions.InvalidHeader(f"bad header value {secret!r}")},
        {"exc": requests.exceptions.ConnectionError(f"refused {secret}")},
    ]
    for failure in failures:
        m.post(f"{pve.API}/access/ticket", **failure)
        m.get(f"{pve.API}/version", **failure)
        m.get(f"{pve.API}/cluster/status", **failure)
        with pytest.raises(Exception) as caught:  # any error: checked below
            client.inspect(TARGET, credentials)
        assert_secret_absent(secret, str(caught.value), "a client error message")
        assert_secret_absent(secret, repr(caught.value.details), "a client error's details")
