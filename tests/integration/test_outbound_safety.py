"""What the service sends out and takes back, through the REST API
(docs/security.md): the network policy refuses a target with 400 naming the
rule and sends it nothing; what a foreign server answers comes back only as
a short reason phrase without any secret, in any encoding, in the response,
the log or the stored ``last_error``; a version string that is not PVE's is
never stored."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.test import override_settings

from clusters.proxmox import NetworkPolicy, ProxmoxClient
from clusters.wiring import install_services, services_from_settings, unit_of_work_from_settings
from pve_simulator.server import PveSimulator
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.listener import Listener

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
DENIED = "127.0.0.2"
ECHOED_PASSWORD = "Pa ss&word=SECRET"


@pytest.fixture
def denied_listener() -> Iterator[Listener]:
    listener = Listener(DENIED)
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def simulator() -> Iterator[PveSimulator]:
    with PveSimulator(auth_failure_delay=0.1) as running:
        yield running


def registration(endpoint: str, simulator: PveSimulator | None = None, **fields):
    return {
        "name": "policy-test",
        "api_endpoint": endpoint,
        "username": simulator.username if simulator else "root@pam",
        "password": simulator.password if simulator else "never-sent",
        **({"fingerprint": simulator.fingerprint} if simulator else {}),
        **fields,
    }


# -- the network policy --------------------------------------------------------------------


@override_settings(PROXMOXER_DENIED_NETWORKS=[f"{DENIED}/32"])
def test_registering_a_denied_address_is_400_naming_the_rule_and_sends_nothing(
    api_client, denied_listener
):
    install_services(services_from_settings())

    response = api_client.post(
        CLUSTERS, registration(f"https://{DENIED}:{denied_listener.port}"), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "BadRequest",
        "message": (
            f"The network policy refuses {DENIED}: {DENIED}/32 is a denied network "
            "(PROXMOXER_DENIED_NETWORKS)"
        ),
        "details": {"address": DENIED, "rule": f"PROXMOXER_DENIED_NETWORKS {DENIED}/32"},
    }
    assert denied_listener.connections() == 0
    assert api_client.get(CLUSTERS).json()["total"] == 0


@override_settings(PROXMOXER_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_registering_outside_the_allowed_networks_is_400(api_client, denied_listener):
    install_services(services_from_settings())

    response = api_client.post(
        CLUSTERS, registration(f"https://{DENIED}:{denied_listener.port}"), format="json"
    )

    assert response.status_code == 400
    assert response.json()["details"]["rule"] == "PROXMOXER_ALLOWED_NETWORKS"
    assert denied_listener.connections() == 0


def test_refreshing_a_cluster_whose_address_is_now_denied_is_400_and_records_nothing(
    api_client, compose, simulator, caplog
):
    store = unit_of_work_from_settings()
    compose(unit_of_work=store, proxmox=ProxmoxClient())
    created = api_client.post(
        CLUSTERS, registration(simulator.url_for("127.0.0.1"), simulator), format="json"
    )
    assert created.status_code == 201
    cluster = created.json()
    denying = ProxmoxClient(network_policy=NetworkPolicy(denied=["127.0.0.1/32"]))
    compose(unit_of_work=store, proxmox=denying)
    simulator.clear_requests()

    response = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")

    assert response.status_code == 400
    assert response.json()["details"]["rule"] == "PROXMOXER_DENIED_NETWORKS 127.0.0.1/32"
    assert simulator.requests == []
    stored = api_client.get(f"{CLUSTERS}/{cluster['id']}").json()
    assert (stored["status"], stored["last_checked_at"]) == (
        cluster["status"],
        cluster["last_checked_at"],
    )
    assert "Connection refused by the network policy" in caplog.text


# -- foreign text --------------------------------------------------------------------------


def test_a_password_echoed_form_encoded_reaches_no_message_log_or_last_error(
    api_client, pve_api, caplog
):
    """The measured case: a server that echoes the login form in its reason
    phrase sent back ``Pa+ss%26word%3DSECRET``."""
    caplog.set_level(logging.DEBUG)
    echo = "Login failed for Pa+ss%26word%3DSECRET"
    pve_api.post(f"{pve.API}/access/ticket", status_code=500, reason=echo)
    pve.ticket_page(pve_api)

    registered = api_client.post(
        CLUSTERS,
        {**registration(pve.ENDPOINT), "password": ECHOED_PASSWORD},
        format="json",
    )

    assert registered.status_code == 502
    assert registered.json()["message"] == (
        f"{pve.ENDPOINT} answered /access/ticket with 500 [reason withheld: it quoted a credential]"
    )
    assert_secret_absent(ECHOED_PASSWORD, registered.content, "the 502 answer")
    assert_secret_absent(ECHOED_PASSWORD, caplog.text, "the log")

    # The same echo on a later check: the stored last_error is clean too.
    pve.healthy_cluster(pve_api)
    created = api_client.post(
        CLUSTERS, {**registration(pve.ENDPOINT), "password": ECHOED_PASSWORD}, format="json"
    )
    assert created.status_code == 201
    pve_api.post(f"{pve.API}/access/ticket", status_code=500, reason=echo)
    refreshed = api_client.post(f"{CLUSTERS}/{created.json()['id']}/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["last_error"].endswith("[reason withheld: it quoted a credential]")
    listed = api_client.get(CLUSTERS)
    for text, where in ((refreshed.content, "refresh"), (listed.content, "the list")):
        assert_secret_absent(ECHOED_PASSWORD, text, where)
    assert_secret_absent(ECHOED_PASSWORD, caplog.text, "the log")


def test_a_ticket_echoed_by_a_later_call_is_withheld(api_client, pve_api):
    pve.login_ok(pve_api)
    pve.ticket_page(pve_api)
    pve_api.get(f"{pve.API}/version", status_code=500, reason=f"bad cookie {pve.TICKET}")
    pve.cluster_status(pve_api, pve.three_node_cluster())

    response = api_client.post(CLUSTERS, registration(pve.ENDPOINT), format="json")

    assert response.status_code == 502
    assert response.json()["message"].endswith("[reason withheld: it quoted a credential]")
    assert_secret_absent(pve.TICKET, response.content, "the 502 answer")


def test_a_version_string_that_is_not_pves_is_502_and_never_stored(api_client, pve_api):
    pve.login_ok(pve_api)
    pve.ticket_page(pve_api)
    pve.cluster_status(pve_api, pve.three_node_cluster())
    pve_api.get(
        f"{pve.API}/version",
        json={"data": {"version": "8.2.4 db=postgres://admin:hunter2@db", "release": "8.2"}},
    )

    response = api_client.post(CLUSTERS, registration(pve.ENDPOINT), format="json")

    assert response.status_code == 502
    assert response.json()["message"] == (
        f"{pve.ENDPOINT} answered /version without a Proxmox VE version string: "
        "not a Proxmox VE API"
    )
    assert "hunter2" not in response.content.decode()
    assert api_client.get(CLUSTERS).json()["total"] == 0


def test_a_refresh_that_meets_a_foreign_version_keeps_the_last_known_one(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    cluster = api_client.post(CLUSTERS, registration(pve.ENDPOINT), format="json").json()
    pve_api.get(
        f"{pve.API}/version", json={"data": {"version": "8.2.4 db=postgres://admin:hunter2@db"}}
    )

    refreshed = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh").json()

    assert refreshed["proxmox_version"] == "8.2.4"
    assert refreshed["status"] == "unhealthy"
    assert "not a Proxmox VE API" in refreshed["last_error"]
    assert "hunter2" not in str(api_client.get(CLUSTERS).json())


def test_redirects_and_error_bodies_of_a_foreign_server_are_not_passed_on(api_client, pve_api):
    pve_api.post(
        f"{pve.API}/access/ticket",
        status_code=302,
        headers={"Location": "https://10.9.8.7/steal?x=internal-only"},
    )
    pve.ticket_page(pve_api)
    redirected = api_client.post(CLUSTERS, registration(pve.ENDPOINT), format="json")
    pve_api.post(
        f"{pve.API}/access/ticket",
        status_code=400,
        reason="Parameter verification failed.",
        json={"data": None, "errors": {"username": "internal-only detail"}},
    )
    refused = api_client.post(CLUSTERS, registration(pve.ENDPOINT), format="json")

    assert (redirected.status_code, refused.status_code) == (502, 502)
    for response in (redirected, refused):
        assert "internal-only" not in response.content.decode()
        assert "10.9.8.7" not in response.content.decode()
    assert refused.json()["details"] is None
