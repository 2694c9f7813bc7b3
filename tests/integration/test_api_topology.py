"""Topology through the API (docs/product-contract.md §10), with PVE's own
answers on requests-mock: the endpoints a registration learns, failover and
``degraded``, endpoints set by PATCH, and 409 for a cluster registered
twice."""

from __future__ import annotations

import pytest

from tests import pve_responses as pve

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-topology-api-3b9d"
NODE2, NODE3 = "https://127.0.0.2:8006", "https://127.0.0.3:8006"

pytestmark = pytest.mark.django_db


def register(api, **fields):
    body = {
        "name": "prod",
        "api_endpoint": pve.ENDPOINT,
        "username": "root@pam",
        "password": PASSWORD,
        **fields,
    }
    return api.post(CLUSTERS, body, format="json")


def test_a_registration_shows_every_endpoint_it_may_use(api_client, healthy_pve):
    response = register(api_client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["endpoints"] == [
        {
            "url": pve.ENDPOINT,
            "node": "pve1",
            "fingerprint": None,
            "last_ok_at": body["created_at"],
        },
        {"url": NODE2, "node": "pve2", "fingerprint": ":".join(["2A"] * 32), "last_ok_at": None},
        {"url": NODE3, "node": "pve3", "fingerprint": ":".join(["3A"] * 32), "last_ok_at": None},
    ]
    assert body["discover_endpoints"] is True
    listed = api_client.get(CLUSTERS).json()["clusters"]
    assert listed[0]["endpoints"] == body["endpoints"]


def test_discovery_turned_off_keeps_the_registered_endpoint_alone(api_client, healthy_pve):
    body = register(api_client, discover_endpoints=False).json()

    assert [e["url"] for e in body["endpoints"]] == [pve.ENDPOINT]
    assert body["discover_endpoints"] is False


def test_the_same_cluster_through_another_node_is_409_naming_the_first(api_client, healthy_pve):
    first = register(api_client).json()
    pve.healthy_cluster(healthy_pve, endpoint=NODE3)

    response = register(api_client, name="prod-again", api_endpoint=NODE3)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "Conflict"
    assert body["details"] == {"existing_id": first["id"], "existing_name": "prod"}
    assert "already registered as 'prod'" in body["message"]
    assert PASSWORD not in response.content.decode()
    assert api_client.get(CLUSTERS).json()["total"] == 1


def test_a_registered_node_down_is_degraded_answered_through_the_next(api_client, healthy_pve):
    cluster = register(api_client).json()
    pve.unreachable(healthy_pve)
    pve.healthy_cluster(healthy_pve, endpoint=NODE2)

    response = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["last_error"].endswith(f"; answered through {NODE2}")
    assert body["last_error"].startswith(f"Could not connect to {pve.ENDPOINT}")
    [registered, node2, node3] = body["endpoints"]
    assert registered["last_ok_at"] == cluster["last_checked_at"]  # not since
    assert node2["last_ok_at"] == body["last_checked_at"]
    assert node3["last_ok_at"] is None
    assert body["version"] == cluster["version"]
    assert response["ETag"] == f'"{cluster["version"]}"'


def test_every_endpoint_down_is_unhealthy_with_the_registered_ones_error(api_client, healthy_pve):
    cluster = register(api_client).json()
    pve.unreachable(healthy_pve)  # and the nodes' own addresses refuse, as the fixture has it

    body = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh").json()

    assert body["status"] == "unhealthy"
    assert body["last_error"] == f"Could not connect to {pve.ENDPOINT}: connection refused"


def test_endpoints_set_by_patch(api_client, healthy_pve):
    cluster = register(api_client).json()
    pin = "ab" * 32

    response = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}",
        {"endpoints": [{"url": "127.0.0.3", "fingerprint": pin}]},
        format="json",
        HTTP_IF_MATCH=f'"{cluster["version"]}"',
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert [(e["url"], e["node"]) for e in body["endpoints"]] == [
        (pve.ENDPOINT, "pve1"),
        (NODE3, "pve3"),
    ]
    assert body["endpoints"][1]["fingerprint"] == ":".join(["AB"] * 32)
    assert (body["discover_endpoints"], body["version"]) == (False, 2)


@pytest.mark.parametrize(
    "endpoints",
    [
        "https://127.0.0.3:8006",
        [{"url": "ftp://127.0.0.3"}],
        [{"url": "127.0.0.3", "fingerprint": "not-one"}],
        [{"url": "127.0.0.3", "weight": 2}],
    ],
)
def test_endpoints_that_break_a_rule_are_400_and_change_nothing(api_client, healthy_pve, endpoints):
    cluster = register(api_client).json()
    calls = healthy_pve.call_count

    response = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}", {"endpoints": endpoints}, format="json"
    )

    assert response.status_code == 400
    assert "endpoints" in response.json()["details"]
    assert healthy_pve.call_count == calls
    assert api_client.get(f"{CLUSTERS}/{cluster['id']}").json() == cluster
