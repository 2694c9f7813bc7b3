"""Renewing trust and the endpoint rules through the REST API
(docs/product-contract.md §4 and §9), with Proxmox played by requests-mock:
a replaced certificate shows up in the cluster with its fingerprint, which a
PATCH pins; a reverse proxy's port and path prefix are the ones called."""

from __future__ import annotations

import pytest
import requests

from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-trust-secret-4e0a"
PINNED = "AB:" * 31 + "AB"
OBSERVED = "12:" * 31 + "12"


@pytest.fixture(autouse=True)
def _observed_certificate(compose):
    """The certificate the cluster presents now, as the client fetches it
    after a failed handshake (requests-mock has none to show)."""
    compose(proxmox=ProxmoxClient(fingerprint_fetcher=lambda host, port, timeout: OBSERVED))


def register(api_client, **fields):
    body = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        **fields,
    }
    return api_client.post(CLUSTERS, body, format="json")


def certificate_replaced(m, endpoint=pve.ENDPOINT):
    for path in ("/access/ticket", "/version", "/cluster/status"):
        for method in ("GET", "POST"):
            m.register_uri(
                method,
                f"{endpoint}/api2/json{path}",
                exc=requests.exceptions.SSLError("certificate verify failed"),
            )


# -- trust renewal ------------------------------------------------------------------------------


def test_a_replaced_certificate_is_renewed_by_patching_the_observed_fingerprint(
    api_client, pve_api
):
    pve.healthy_cluster(pve_api)
    cluster = register(api_client, fingerprint=PINNED).json()
    certificate_replaced(pve_api)

    checked = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")

    assert checked.status_code == 200
    body = checked.json()
    assert body["status"] == "unhealthy"
    assert PINNED in body["last_error"] and OBSERVED in body["last_error"]
    assert body["last_error_details"] == {"fingerprint": OBSERVED}
    assert (body["version"], checked["ETag"]) == (1, '"1"'), "a check moves no version"
    assert api_client.get(f"{CLUSTERS}/{cluster['id']}").json() == body

    pve.healthy_cluster(pve_api)  # the operator checked the node: it is the new certificate
    renewed = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}",
        {"fingerprint": body["last_error_details"]["fingerprint"]},
        format="json",
        headers={"If-Match": checked["ETag"]},
    )

    assert renewed.status_code == 200, renewed.content
    assert (renewed.json()["status"], renewed.json()["fingerprint"]) == ("healthy", OBSERVED)
    assert (renewed.json()["last_error"], renewed.json()["last_error_details"]) == (None, None)
    assert renewed["ETag"] == '"2"'


def test_renewing_with_a_fingerprint_that_still_does_not_match_changes_nothing(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    cluster = register(api_client, fingerprint=PINNED).json()
    certificate_replaced(pve_api)
    api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")

    response = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}", {"fingerprint": "CD" * 32}, format="json"
    )

    assert response.status_code == 502
    assert response.json()["details"]["fingerprint"] == OBSERVED
    stored = api_client.get(f"{CLUSTERS}/{cluster['id']}").json()
    assert (stored["fingerprint"], stored["version"]) == (PINNED, 1)


def test_an_untrusted_registration_can_send_the_observed_fingerprint_back_as_is(
    api_client, pve_api
):
    certificate_replaced(pve_api)
    refused = register(api_client)
    assert refused.status_code == 502
    observed = refused.json()["details"]["fingerprint"]

    pve.healthy_cluster(pve_api)
    created = register(api_client, fingerprint=observed)

    assert created.status_code == 201, created.content
    assert (created.json()["fingerprint"], created.json()["status"]) == (OBSERVED, "healthy")


def test_other_failures_carry_no_details(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    cluster = register(api_client).json()
    pve_api.get(f"{pve.API}/version", status_code=500, reason="Internal Server Error")
    body = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh").json()
    assert body["status"] == "unhealthy"
    assert body["last_error_details"] is None


# -- endpoint rules -----------------------------------------------------------------------------


def test_https_without_a_port_is_443_and_443_is_called(api_client, pve_api):
    endpoint = "https://pve.example.com:443"
    pve.healthy_cluster(pve_api, endpoint=endpoint)
    response = register(api_client, api_endpoint="https://pve.example.com")
    assert response.status_code == 201, response.content
    assert response.json()["api_endpoint"] == endpoint
    assert {call.port for call in pve_api.request_history} == {443}


def test_a_reverse_proxys_prefix_is_kept_and_used_for_every_call(api_client, pve_api):
    endpoint = "https://proxy.example.com:443/pve/eu-1"
    pve.token_hand_off(pve_api, endpoint=endpoint)

    response = register(
        api_client, api_endpoint="https://proxy.example.com/pve/eu-1/api2/json/", create_token=True
    )

    assert response.status_code == 201, response.content
    assert response.json()["api_endpoint"] == endpoint
    paths = {call.path for call in pve_api.request_history}
    assert all(path.startswith("/pve/eu-1/api2/json/") for path in paths), paths
    assert "/pve/eu-1/api2/json/access/acl" in paths
    pve_api.reset_mock()
    api_client.post(f"{CLUSTERS}/{response.json()['id']}/refresh")
    assert {call.path for call in pve.api_calls(pve_api)} == {
        "/pve/eu-1/api2/json/version",
        "/pve/eu-1/api2/json/cluster/status",
        "/pve/eu-1/api2/json/nodes",
    }


def test_the_web_uis_address_bar_is_accepted(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    response = register(
        api_client, api_endpoint="https://pve.example.com:8006/#v1:0:=node%2Fpve1:4"
    )
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == pve.ENDPOINT


def test_an_edit_can_move_a_cluster_behind_a_proxy(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    cluster = register(api_client).json()
    pve.healthy_cluster(pve_api, endpoint="https://proxy.example.com:8443/pve")
    response = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}",
        {"api_endpoint": "https://proxy.example.com:8443/pve"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["api_endpoint"] == "https://proxy.example.com:8443/pve"


def nothing_listens_on_443(m):
    refused = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    for method in ("GET", "POST"):
        m.register_uri(method, "https://pve.example.com:443/api2/json/access/ticket", exc=refused)


def test_nothing_answering_on_an_implied_443_is_502_suggesting_8006(api_client, pve_api):
    nothing_listens_on_443(pve_api)

    response = register(api_client, api_endpoint="https://pve.example.com")

    assert response.status_code == 502
    body = response.json()
    assert "connection refused" in body["message"]
    assert "try https://pve.example.com:8006" in body["message"]
    assert body["details"] == {"suggested_endpoint": "https://pve.example.com:8006"}
    assert_secret_absent(PASSWORD, response.content, "the 502")


def test_no_hint_when_443_was_typed(api_client, pve_api):
    nothing_listens_on_443(pve_api)
    response = register(api_client, api_endpoint="https://pve.example.com:443")
    assert response.status_code == 502
    assert "8006" not in response.json()["message"]


@pytest.mark.parametrize(
    "typed",
    ["https://[fe80::1%eth0]:8006", "fe80::1%25eth0", "https://[fe80::a:b%enp3s0]"],
)
def test_a_link_local_address_with_a_zone_id_is_a_clear_400_and_stores_nothing(
    api_client, pve_api, typed
):
    response = register(api_client, api_endpoint=typed)
    assert response.status_code == 400
    assert "zone id" in response.json()["details"]["api_endpoint"][0]
    assert pve_api.call_count == 0
    assert api_client.get(CLUSTERS).json()["total"] == 0
