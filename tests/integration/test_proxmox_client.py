"""ProxmoxClient against requests-mock answering as real PVE does (SPEC §5)."""

from __future__ import annotations

import certifi
import pytest
import requests
import requests_mock

from clusters.domain import (
    ClusterStatusEntry,
    ConnectionTarget,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxUnreachable,
    Secret,
    TokenCredentials,
)
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

PASSWORD = "Pa55-client-secret-7d1e"
TOKEN_SECRET = "8d9e3a70-1f1b-4c4e-9a51-client-token"
PASSWORD_LOGIN = PasswordCredentials("root@pam", Secret(PASSWORD))
TOKEN_LOGIN = TokenCredentials("root@pam!proxmoxer", Secret(TOKEN_SECRET))
TARGET = ConnectionTarget(pve.ENDPOINT)
OBSERVED = ":".join(["3F"] * 32)


@pytest.fixture
def client():
    return ProxmoxClient(
        connect_timeout=2,
        read_timeout=3,
        fingerprint_fetcher=lambda host, port, timeout: OBSERVED,
    )


@pytest.fixture
def m():
    with requests_mock.Mocker() as mocker:
        yield mocker


def test_password_login_posts_form_fields_and_sends_the_ticket_as_a_cookie(client, m):
    pve.healthy_cluster(m)

    report = client.inspect(TARGET, PASSWORD_LOGIN)

    calls = pve.api_calls(m)
    login = calls[0]
    assert login.method == "POST"
    assert login.url == f"{pve.API}/access/ticket"
    assert login.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sorted(login.body.split("&")) == sorted(["username=root%40pam", f"password={PASSWORD}"])
    for call in calls[1:]:
        assert call.method == "GET"
        assert call.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"
        assert "Authorization" not in call.headers, "the seed's PVEAPIToken={ticket} is wrong"
        assert "CSRFPreventionToken" not in call.headers, "GETs need no CSRF token"
    assert report.version == "8.2.4"
    assert [entry.type for entry in report.cluster_status] == ["cluster", "node", "node", "node"]


def test_every_call_carries_the_configured_timeouts(client, m):
    pve.healthy_cluster(m)
    client.inspect(TARGET, PASSWORD_LOGIN)
    assert {call.timeout for call in m.request_history} == {(2, 3)}
    assert len(m.request_history) == 4, "login, version, status and the connection opener"


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


def test_standalone_pve7_node_reports_its_version_and_single_node(client, m):
    pve.login_ok(m)
    pve.version(m, "7.4-13")
    pve.cluster_status(m, pve.STANDALONE_NODE)
    report = client.inspect(TARGET, PASSWORD_LOGIN)
    assert report.version == "7.4-13"
    assert report.cluster_status == [ClusterStatusEntry("node", "pve", online=True, quorate=None)]


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


def test_parameter_errors_carry_pves_field_messages(client, m):
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
    assert "400 Parameter verification failed." in caught.value.message
    assert caught.value.details == {
        "proxmox_errors": {
            "username": "invalid format - value does not look like a valid user name"
        }
    }


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
    ("error", "message"),
    [
        (
            requests.exceptions.ConnectTimeout("timed out"),
            "Timed out connecting to https://pve.example.com:8006 after 2 s",
        ),
        (
            requests.exceptions.ReadTimeout("read timed out"),
            "https://pve.example.com:8006 did not answer /access/ticket within 3 s",
        ),
        (
            requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
            "Could not connect to https://pve.example.com:8006: connection refused",
        ),
    ],
    ids=["connect-timeout", "read-timeout", "refused"],
)
def test_network_failures_become_unreachable_with_what_failed(client, m, error, message):
    m.post(f"{pve.API}/access/ticket", exc=error)
    with pytest.raises(ProxmoxUnreachable) as caught:
        client.inspect(TARGET, PASSWORD_LOGIN)
    assert caught.value.message == message


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
