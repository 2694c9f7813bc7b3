"""Registering through the REST API (DRF's APIClient) with Proxmox played by
requests-mock in real PVE shapes: API tokens, second factor, certificate
trust and pinning, endpoint rules, accounts without Sys.Audit."""

from __future__ import annotations

import pytest
import requests
import requests_mock
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from clusters.domain import OPERATORS
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent, with_role

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
TOKEN_SECRET = "5c1b7e0e-3f57-4c43-a7a4-2a8a1b7f5d11"
OBSERVED = "AB:" * 31 + "AB"
OTHER = "12:" * 31 + "12"


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(
        with_role(get_user_model().objects.create_user("operator"), OPERATORS)
    )
    return client


@pytest.fixture
def m():
    with requests_mock.Mocker() as mocker:
        pve.nodes_refuse_connections(mocker)
        yield mocker


@pytest.fixture
def observed_certificate(compose):
    """What the cluster's certificate looks like when the client fetches it
    after a failed handshake (requests-mock has no certificate to show)."""
    compose(proxmox=ProxmoxClient(fingerprint_fetcher=lambda host, port, timeout: OBSERVED))


def register(api: APIClient, **fields):
    body = {"name": "prod", "api_endpoint": pve.ENDPOINT, **fields}
    return api.post("/api/v1/clusters", body, format="json")


def with_password(**fields):
    return {"username": "root@pam", "password": PASSWORD, **fields}


def with_token(**fields):
    return {"token_id": "root@pam!proxmoxer", "token_secret": TOKEN_SECRET, **fields}


def logins(m: requests_mock.Mocker) -> list:
    """The calls that carried the credentials (not the parallel client's
    credential-less GET /access/ticket that opens its second connection)."""
    return [request for request in m.request_history if request.method == "POST"]


def assert_nothing_stored(api: APIClient) -> None:
    assert api.get("/api/v1/clusters").json() == {
        "clusters": [],
        "total": 0,
        "next": None,
        "previous": None,
    }


def fail_tls(m: requests_mock.Mocker) -> None:
    for path in ("/access/ticket", "/version", "/cluster/status", "/nodes"):
        for method in ("GET", "POST"):
            m.register_uri(
                method, f"{pve.API}{path}", exc=requests.exceptions.SSLError("verify failed")
            )


# -- API tokens ------------------------------------------------------------------------------


def test_registers_with_an_api_token_without_a_ticket_call(api, m):
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    pve.nodes(m, pve.three_nodes())
    response = register(api, **with_token())
    assert response.status_code == 201
    body = response.json()
    assert (body["auth_method"], body["token_id"], body["username"]) == (
        "token",
        "root@pam!proxmoxer",
        None,
    )
    assert "token_secret" not in body
    assert_secret_absent(TOKEN_SECRET, response.content, "the registration response")
    assert {request.path for request in m.request_history} == {
        "/api2/json/version",
        "/api2/json/cluster/status",
        "/api2/json/nodes",
    }
    assert {request.headers["Authorization"] for request in m.request_history} == {
        f"PVEAPIToken=root@pam!proxmoxer={TOKEN_SECRET}"
    }
    detail = api.get(response["Location"])
    assert detail.json()["auth_method"] == "token"
    assert_secret_absent(TOKEN_SECRET, detail.content, "the cluster's detail")


def test_refused_token_is_401_and_stores_nothing(api, m):
    for path in ("/version", "/cluster/status"):
        m.get(
            f"{pve.API}{path}", status_code=401, reason="invalid token value!", json={"data": None}
        )
    response = register(api, **with_token())
    assert response.status_code == 401
    assert response.json() == {
        "code": "Unauthorized",
        "message": "Proxmox refused the credentials of root@pam!proxmoxer (invalid token value!)",
        "details": None,
    }
    assert_nothing_stored(api)


def test_a_token_pve_9_1_5_refuses_is_401_saying_what_that_can_mean(api, m):
    pve.token_refused_pve9(m)
    response = register(api, **with_token())
    assert response.status_code == 401
    assert response.json() == {
        "code": "Unauthorized",
        "message": (
            "Proxmox refused the credentials of root@pam!proxmoxer (Authentication failed!): "
            "the token id or secret is wrong, or the token expired or was removed on the "
            "cluster; register or edit the cluster with a valid API token"
        ),
        "details": None,
    }
    assert_secret_absent(TOKEN_SECRET, response.content, "the answer")
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (with_token(token_id="root@pam"), "token_id"),
        (with_token(token_id="root!name"), "token_id"),
        (with_token(token_secret=""), "token_secret"),
        ({**with_token(), **with_password()}, "non_field_errors"),
    ],
)
def test_malformed_token_credentials_are_400_without_calling_proxmox(api, m, fields, field):
    response = register(api, **fields)
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert m.call_count == 0


# -- second factor ---------------------------------------------------------------------------


def test_an_account_with_a_second_factor_is_401_suggesting_a_token(api, m):
    pve.login_needs_tfa(m)
    response = register(api, **with_password())
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "Unauthorized"
    assert "second factor" in body["message"]
    assert "API token" in body["message"]
    assert [(r.method, r.path) for r in logins(m)] == [("POST", "/api2/json/access/ticket")]
    assert_nothing_stored(api)


# -- certificate trust -------------------------------------------------------------------------


def test_untrusted_certificate_is_502_with_the_fingerprint_to_pin(api, m, observed_certificate):
    fail_tls(m)
    response = register(api, **with_password())
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "BadGateway"
    assert body["details"] == {"fingerprint": OBSERVED}
    assert "fingerprint" in body["message"] and OBSERVED in body["message"]
    assert_nothing_stored(api)


def test_pin_mismatch_is_502_naming_both_fingerprints(api, m, observed_certificate):
    fail_tls(m)
    response = register(api, **with_password(fingerprint=OTHER))
    assert response.status_code == 502
    assert response.json()["details"] == {"expected_fingerprint": OTHER, "fingerprint": OBSERVED}
    assert_nothing_stored(api)


def test_pin_is_stored_normalised_and_checked_again_on_refresh(api, m, observed_certificate):
    pve.healthy_cluster(m)
    spelled = OTHER.replace(":", "").lower()
    response = register(api, **with_password(fingerprint=spelled))
    assert response.status_code == 201
    assert (response.json()["fingerprint"], response.json()["verify_tls"]) == (OTHER, True)

    fail_tls(m)  # the node now presents another certificate
    refreshed = api.post(f"{response['Location']}/refresh")
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert body["status"] == "unhealthy"
    assert OTHER in body["last_error"] and OBSERVED in body["last_error"]
    assert body["fingerprint"] == OTHER


@pytest.mark.parametrize("fingerprint", ["AB:CD", "zz" * 32, "AB" * 31, "AB" * 33])
def test_malformed_fingerprints_are_400(api, m, fingerprint):
    response = register(api, **with_password(fingerprint=fingerprint))
    assert response.status_code == 400
    assert "fingerprint" in response.json()["details"]
    assert m.call_count == 0


# -- endpoint rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "pve.example.com",
        "pve.example.com:8006",
        "PVE.Example.COM:8006/",
        "https://pve.example.com:8006/api2/json",
        "https://pve.example.com:8006/api2/json/",
        " https://pve.example.com:8006/#v1:0:18:4::::::: ",
    ],
)
def test_endpoints_are_normalised_before_the_first_call(api, m, typed):
    pve.healthy_cluster(m)
    response = register(api, **with_password(api_endpoint=typed))
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == "https://pve.example.com:8006"
    assert logins(m)[0].url == "https://pve.example.com:8006/api2/json/access/ticket"


def test_ipv6_literal_endpoints_get_brackets_and_the_default_port(api, m):
    pve.healthy_cluster(m, endpoint="https://[2001:db8::10]:8006")
    response = register(api, **with_password(api_endpoint="2001:db8:0::10"))
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == "https://[2001:db8::10]:8006"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("http://pve.example.com:8006", "https://"),
        ("ftp://pve.example.com", "https://"),
        ("https://root:secret@pve.example.com:8006", "credentials"),
        ("https://pve.example.com:8006/?node=pve1", "query"),
        ("https://pve.example.com:8006/#summary", "fragment"),
        ("https://pve.example.com:8006/api2/json/nodes", "/api2/json begins"),
        ("https://[fe80::1%eth0]:8006", "zone id"),
        ("https://pve.example.com:99999", "port"),
    ],
)
def test_endpoints_that_could_leak_or_mislead_are_400(api, m, typed, says):
    response = register(api, **with_password(api_endpoint=typed))
    assert response.status_code == 400
    body = response.json()
    assert says in body["message"]
    assert "api_endpoint" in body["details"]
    assert m.call_count == 0
    assert_secret_absent("secret", response.content, "the validation error")


# -- permissions ------------------------------------------------------------------------------


def test_an_account_without_sys_audit_registers_as_unknown_with_the_nodes_it_sees(api, m):
    pve.login_ok(m)
    pve.version(m)
    pve.cluster_status_forbidden(m)
    pve.nodes(m)
    response = register(api, **with_password())
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["node_count"]) == ("unknown", 2)
