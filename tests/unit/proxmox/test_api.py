"""The PVE API layer (clusters/proxmox/api.py) against requests-mock with
real PVE shapes: how each kind of credentials authenticates, the second
factor, a refused password login in an OpenID Connect realm, and
PveSession's calls on a transport connection (a ticket's CSRF token only
where PVE wants it, nothing secret in its repr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from clusters.domain import (
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxPermissionDenied,
    ProxmoxSecondFactorRequired,
    Secret,
    TokenCredentials,
)
from clusters.proxmox import ProxmoxClient
from clusters.proxmox.api import PveSession
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.unit.proxmox.conftest import (
    PASSWORD,
    PASSWORD_CREDENTIALS,
    TARGET,
    TOKEN_CREDENTIALS,
    TOKEN_SECRET,
    client,
    messages,
)

# -- API tokens ----------------------------------------------------------------------------------


def test_token_is_sent_as_pveapitoken_header_without_a_ticket_call(m):
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    pve.nodes(m, pve.three_nodes())
    report = client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert report.version == "8.2.4"
    assert sorted(request.path for request in m.request_history) == [
        "/api2/json/cluster/status",
        "/api2/json/nodes",
        "/api2/json/version",
    ]
    for request in m.request_history:
        assert request.headers["Authorization"] == f"PVEAPIToken=root@pam!proxmoxer={TOKEN_SECRET}"
        assert "Cookie" not in request.headers
        assert "CSRFPreventionToken" not in request.headers


# -- second factor ------------------------------------------------------------------------------


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


# -- OpenID Connect realms ------------------------------------------------------------------------

ALICE = PasswordCredentials("alice@oidc", Secret(PASSWORD))
OPENID_REFUSAL = (
    "Proxmox refused the password of alice@oidc: oidc is an OpenID Connect realm, where a "
    "password login cannot work; register with an API token of alice@oidc "
    "(alice@oidc!<name>) instead"
)
PASSWORD_LOGINS: dict[str, Callable[[ProxmoxClient], Any]] = {
    "inspect": lambda proxmox: proxmox.inspect(TARGET, ALICE),
    "check": lambda proxmox: proxmox.check(TARGET, ALICE),
    "issue_token": lambda proxmox: proxmox.issue_token(TARGET, ALICE, name="x", comment="x"),
    "delete_token": lambda proxmox: proxmox.delete_token(TARGET, ALICE, "alice@oidc!x"),
}


def domain_lookups(m) -> list:
    return [call for call in m.request_history if call.path == "/api2/json/access/domains"]


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
@pytest.mark.parametrize("login", PASSWORD_LOGINS.values(), ids=PASSWORD_LOGINS.keys())
def test_a_refused_password_login_in_an_openid_realm_says_to_use_an_api_token(m, login, parallel):
    pve.login_refused(m, pve9=True)
    pve.domains(m)
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        login(ProxmoxClient(parallel=parallel))
    assert raised.value.message == OPENID_REFUSAL
    assert_secret_absent(PASSWORD, messages(raised.value), "the error")
    (lookup,) = domain_lookups(m)
    assert lookup.method == "GET"
    assert "Cookie" not in lookup.headers and "Authorization" not in lookup.headers


def test_a_refused_password_login_in_another_realm_keeps_proxmoxs_reason(m):
    pve.login_refused(m)
    pve.domains(m, [*pve.REALMS, {"realm": "corp", "type": "ad"}])
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(TARGET, PasswordCredentials("bob@corp", Secret(PASSWORD)))
    assert raised.value.message == (
        "Proxmox refused the credentials of bob@corp (authentication failure)"
    )
    assert len(domain_lookups(m)) == 1


@pytest.mark.parametrize("username", ["root@pam", "admin@pve"])
def test_the_realms_every_pve_has_are_not_looked_up(m, username):
    pve.login_refused(m)
    pve.domains(m, [{"realm": "pam", "type": "openid"}, {"realm": "pve", "type": "openid"}])
    with pytest.raises(ProxmoxAuthenticationFailed, match=r"\(authentication failure\)$"):
        client().inspect(TARGET, PasswordCredentials(username, Secret(PASSWORD)))
    assert domain_lookups(m) == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status_code": 500, "reason": "Internal Server Error"},
        {"status_code": 401, "reason": "No ticket", "content": b""},
        {"exc": requests.exceptions.ConnectionError("Connection reset by peer")},
        {"exc": requests.exceptions.ReadTimeout("read timed out")},
        {"json": {"data": None}},
        {"json": {"data": {"realm": "oidc", "type": "openid"}}},
        {"json": {"data": [{"realm": "oidc"}, "oidc", None]}},
        {"json": {"data": [{"realm": "oidc", "type": ["openid"]}]}},
        {"json": {"data": [{"realm": "OIDC", "type": "openid"}]}},
        {"text": "<html>openid</html>"},
    ],
    ids=[
        "500",
        "401",
        "reset",
        "timeout",
        "no-data",
        "not-a-list",
        "no-type",
        "type-not-text",
        "other-realm",
        "not-json",
    ],
)
def test_a_failed_or_unclear_realm_lookup_leaves_the_refusal_as_it_was(m, answer):
    pve.login_refused(m)
    m.get(f"{pve.API}/access/domains", **answer)
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(TARGET, ALICE)
    assert raised.value.message == (
        "Proxmox refused the credentials of alice@oidc (authentication failure)"
    )
    assert len(domain_lookups(m)) == 1


def test_a_refused_token_of_an_openid_user_looks_nothing_up(m):
    pve.token_refused_pve9(m)
    pve.domains(m)
    token = TokenCredentials("alice@oidc!registry", Secret(TOKEN_SECRET))
    with pytest.raises(ProxmoxAuthenticationFailed, match="Authentication failed!"):
        client().inspect(TARGET, token)
    assert domain_lookups(m) == []


# -- the session --------------------------------------------------------------------------------

ACL = {"path": "/", "roles": "PVEAuditor", "tokens": "root@pam!proxmoxer"}


def test_a_ticket_goes_with_every_call_and_the_csrf_token_with_every_call_but_a_get(m, transport):
    pve.login_ok(m)
    pve.version(m)
    m.put(f"{pve.API}/access/acl", json={"data": None})
    with transport.connect(TARGET, PASSWORD_CREDENTIALS) as connection:
        session = PveSession.login(connection, PASSWORD_CREDENTIALS)
        assert session.version() == "8.2.4"
        assert session.call("PUT", "/access/acl", form=ACL) is None
    login, read, write = m.request_history
    assert "Cookie" not in login.headers and "CSRFPreventionToken" not in login.headers
    assert read.headers["Cookie"] == write.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"
    assert "CSRFPreventionToken" not in read.headers
    assert write.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN
    assert sorted(write.body.split("&")) == [
        "path=%2F",
        "roles=PVEAuditor",
        "tokens=root%40pam%21proxmoxer",
    ]


def test_a_token_goes_with_every_call_without_a_login_or_csrf_token(m, transport):
    pve.version(m)
    m.put(f"{pve.API}/access/acl", json={"data": None})
    with transport.connect(TARGET, TOKEN_CREDENTIALS) as connection:
        session = PveSession.login(connection, TOKEN_CREDENTIALS)
        session.version()
        session.call("PUT", "/access/acl", form=ACL)
    assert [request.method for request in m.request_history] == ["GET", "PUT"]
    for request in m.request_history:
        assert request.headers["Authorization"] == f"PVEAPIToken=root@pam!proxmoxer={TOKEN_SECRET}"
        assert "CSRFPreventionToken" not in request.headers
        assert "Cookie" not in request.headers


@pytest.mark.parametrize("credentials", [PASSWORD_CREDENTIALS, TOKEN_CREDENTIALS])
def test_a_sessions_repr_names_endpoint_and_account_but_no_secret(m, transport, credentials):
    pve.login_ok(m)
    with transport.connect(TARGET, credentials) as connection:
        session = PveSession.login(connection, credentials)
        text = f"{session!r} {session} {session.on(connection)!r}"
    assert pve.ENDPOINT in text and credentials.principal in text
    for secret in (PASSWORD, TOKEN_SECRET, pve.TICKET, pve.CSRF_TOKEN):
        assert_secret_absent(secret, text, "a session's repr")


def test_a_login_carries_over_to_another_connection_to_read_the_nodes(m, transport):
    pve.login_ok(m)
    pve.nodes(m)
    connect = transport.connect
    with (
        connect(TARGET, PASSWORD_CREDENTIALS) as first,
        connect(TARGET, PASSWORD_CREDENTIALS) as second,
    ):
        session = PveSession.login(first, PASSWORD_CREDENTIALS).on(second)
        assert session.connection is second
        assert session.nodes() == [
            NodeEntry("pve1", "online", 0.031, 16, 8_412_000_256, 67_316_121_600, 1_209_600,
                      "AB:" * 31 + "AB"),
            NodeEntry("pve2", "offline"),
        ]  # fmt: skip
    assert m.last_request.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"


@pytest.mark.parametrize(
    "data",
    [
        {"release": "8.2"},
        {"version": ""},
        None,
        ["8.2.4"],
        {"version": 8.2},
        {"version": "8.2.4 db=postgres://admin:hunter2@db"},
        {"version": "8.2.4\n"},
        {"version": "v8.2.4"},
        {"version": "8"},
        {"version": "8.2."},
        {"version": "\u0668.\u0662"},  # Arabic-Indic digits are digits to \d, not to PVE
        {"version": "8." + "1" * 40},
    ],
)
def test_a_version_answer_without_a_pve_version_is_not_a_proxmox_ve_api(m, transport, data):
    m.get(f"{pve.API}/version", json={"data": data})
    with transport.connect(TARGET, TOKEN_CREDENTIALS) as connection:
        session = PveSession.login(connection, TOKEN_CREDENTIALS)
        with pytest.raises(ProxmoxBadResponse) as raised:
            session.version()
    assert raised.value.message == (
        f"{pve.ENDPOINT} answered /version without a Proxmox VE version string: "
        "not a Proxmox VE API"
    )
    assert "hunter2" not in messages(raised.value)


@pytest.mark.parametrize("version", ["8.2.4", "7.4-13", "9.1.2", "6.4-15", "8.0"])
def test_pve_version_strings_are_kept_as_they_are(m, transport, version):
    m.get(f"{pve.API}/version", json={"data": {"version": version, "release": "x"}})
    with transport.connect(TARGET, TOKEN_CREDENTIALS) as connection:
        assert PveSession.login(connection, TOKEN_CREDENTIALS).version() == version


# -- API tokens and ACLs (pve-access-control src/PVE/API2/User.pm, ACL.pm) ----------------------


@pytest.fixture
def session(m, transport):
    """A ticket login, on which the token and ACL calls are made."""
    pve.login_ok(m)
    with transport.connect(TARGET, PASSWORD_CREDENTIALS) as connection:
        yield PveSession.login(connection, PASSWORD_CREDENTIALS)


def test_create_token_posts_privsep_with_the_tickets_csrf_and_returns_the_token(m, session):
    pve.token_created(m)
    token = session.create_token("root@pam", "proxmoxer-0a1b2c3d", comment="registry")

    assert token == TokenCredentials(
        "root@pam!proxmoxer-0a1b2c3d", Secret(pve.TOKEN_VALUE), created_by_registry=True
    )
    request = m.last_request
    assert (request.method, request.path) == (
        "POST",
        "/api2/json/access/users/root@pam/token/proxmoxer-0a1b2c3d",
    )
    assert parse_qs(request.text) == {"privsep": ["1"], "comment": ["registry"]}
    assert request.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN
    assert_secret_absent(pve.TOKEN_VALUE, repr(token), "the token's repr")


def test_a_user_id_is_escaped_in_the_token_path(m, session):
    pve.token_created(m)
    session.create_token("ops#1@pve", "proxmoxer-0a1b2c3d", comment="")
    assert m.last_request.path == "/api2/json/access/users/ops%231@pve/token/proxmoxer-0a1b2c3d"


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"full-tokenid": "root@pam!proxmoxer-0a1b2c3d"},
        {"full-tokenid": "root@pam!other", "value": "x"},
        {"full-tokenid": "root@pam!proxmoxer-0a1b2c3d", "value": ""},
        ["not", "an", "object"],
    ],
)
def test_a_creation_answer_without_the_token_is_a_bad_response(m, session, data):
    m.post(f"{pve.API}/access/users/root@pam/token/proxmoxer-0a1b2c3d", json={"data": data})
    with pytest.raises(ProxmoxBadResponse, match="without the new token"):
        session.create_token("root@pam", "proxmoxer-0a1b2c3d", comment="")


def test_grant_token_role_puts_the_acl_for_the_token_with_propagation(m, session):
    pve.acl_granted(m)
    session.grant_token_role("root@pam!proxmoxer-0a1b2c3d", "PVEAuditor")
    request = m.last_request
    assert (request.method, request.path) == ("PUT", "/api2/json/access/acl")
    assert parse_qs(request.text) == {
        "path": ["/"],
        "roles": ["PVEAuditor"],
        "tokens": ["root@pam!proxmoxer-0a1b2c3d"],
        "propagate": ["1"],
    }
    assert request.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN


def test_a_refused_grant_carries_proxmoxs_reason(m, session):
    pve.acl_refused(m)
    with pytest.raises(ProxmoxPermissionDenied) as raised:
        session.grant_token_role("root@pam!proxmoxer-0a1b2c3d", "PVEAuditor")
    assert raised.value.reason == "Permission check failed (/, Permissions.Modify)"
    assert "may not change /access/acl" in raised.value.message


def test_delete_token_deletes_by_user_and_name(m, session):
    pve.token_deleted(m)
    session.delete_token("root@pam!proxmoxer-0a1b2c3d")
    assert (m.last_request.method, m.last_request.path) == (
        "DELETE",
        "/api2/json/access/users/root@pam/token/proxmoxer-0a1b2c3d",
    )
