"""What checks leave behind, through the REST API (docs/product-contract.md
§8, §10, §11): the cluster's new fields, ``/nodes`` and ``/history`` with
their shapes, pagination and permissions, on the memory and the database
backend."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from clusters.domain import VIEWERS
from clusters.wiring import unit_of_work_from_settings
from tests import pve_responses as pve
from tests.conftest import with_role

CLUSTERS = "/api/v1/clusters"
REGISTRATION = {
    "name": "prod",
    "api_endpoint": "pve.example.com",
    "username": "root@pam",
    "password": "Pa55-api-checks-7f3e",
}


@pytest.fixture(params=["memory", pytest.param("django", marks=pytest.mark.django_db)])
def backend(request, compose):
    compose(unit_of_work=unit_of_work_from_settings(request.param))
    return request.param


@pytest.fixture
def cluster_id(api_client, healthy_pve, backend) -> str:
    response = api_client.post(CLUSTERS, REGISTRATION, format="json")
    assert response.status_code == 201
    return response.json()["id"]


@pytest.fixture
def viewer(django_user_model) -> APIClient:
    client = APIClient()
    client.force_authenticate(with_role(django_user_model.objects.create_user("viewer"), VIEWERS))
    return client


def degrade(m) -> None:
    pve.cluster_status(m, pve.three_node_cluster(offline=1))
    pve.nodes(m, pve.three_nodes(offline=1))


def recover(m) -> None:
    pve.cluster_status(m, pve.three_node_cluster())
    pve.nodes(m, pve.three_nodes())


# -- nodes ---------------------------------------------------------------------------------


def test_nodes_answer_what_the_last_check_read(api_client, healthy_pve, cluster_id, viewer):
    degrade(healthy_pve)
    refreshed = api_client.post(f"{CLUSTERS}/{cluster_id}/refresh").json()

    response = viewer.get(f"{CLUSTERS}/{cluster_id}/nodes")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"nodes", "total", "checked_at"}
    assert body["total"] == 3 and body["checked_at"] == refreshed["last_checked_at"]
    offline, online = body["nodes"][0], body["nodes"][1]
    assert offline == {
        "name": "pve1", "status": "offline", "ip": "127.0.0.1",
        "ssl_fingerprint": ":".join(["1A"] * 32),
        "cpu": None, "maxcpu": None, "mem": None, "maxmem": None, "uptime": None,
    }  # fmt: skip
    assert online == {
        "name": "pve2", "status": "online", "ip": "127.0.0.2",
        "ssl_fingerprint": ":".join(["2A"] * 32),
        "cpu": 0.031, "maxcpu": 16, "mem": 8_412_000_256, "maxmem": 67_316_121_600,
        "uptime": 1_209_600,
    }  # fmt: skip
    assert (refreshed["nodes_online"], refreshed["cluster_name"]) == (2, "prod")


def test_a_registration_stores_the_nodes_it_read(viewer, cluster_id):
    body = viewer.get(f"{CLUSTERS}/{cluster_id}/nodes/").json()
    assert [node["name"] for node in body["nodes"]] == ["pve1", "pve2", "pve3"]
    assert body["checked_at"] is not None


# -- history ---------------------------------------------------------------------------------


def test_history_holds_each_status_change_newest_first(api_client, healthy_pve, cluster_id):
    for change in (degrade, recover, degrade):
        change(healthy_pve)
        api_client.post(f"{CLUSTERS}/{cluster_id}/refresh")
    api_client.post(f"{CLUSTERS}/{cluster_id}/refresh")  # no change: no entry

    body = api_client.get(f"{CLUSTERS}/{cluster_id}/history").json()

    assert (body["total"], body["next"], body["previous"]) == (4, None, None)
    assert [(e["from"], e["to"]) for e in body["events"]] == [
        ("healthy", "degraded"),
        ("degraded", "healthy"),
        ("healthy", "degraded"),
        (None, "healthy"),
    ]
    newest = body["events"][0]
    assert set(newest) == {"at", "from", "to", "reason"}
    assert newest["reason"] == "2 of 3 nodes online; offline: pve1"
    assert newest["at"].endswith("Z")


def test_history_pages_link_to_each_other(api_client, healthy_pve, cluster_id):
    for change in (degrade, recover, degrade, recover):
        change(healthy_pve)
        api_client.post(f"{CLUSTERS}/{cluster_id}/refresh")
    url = f"http://testserver{CLUSTERS}/{cluster_id}/history"

    first = api_client.get(f"{CLUSTERS}/{cluster_id}/history?limit=2").json()
    middle = api_client.get(f"{CLUSTERS}/{cluster_id}/history?limit=2&offset=2").json()
    last = api_client.get(f"{CLUSTERS}/{cluster_id}/history?limit=2&offset=4").json()

    assert first["total"] == middle["total"] == last["total"] == 5
    assert (len(first["events"]), len(middle["events"]), len(last["events"])) == (2, 2, 1)
    assert first["next"] == f"{url}?limit=2&offset=2" and first["previous"] is None
    assert middle["next"] == f"{url}?limit=2&offset=4"
    assert middle["previous"] == f"{url}?limit=2"
    assert last["next"] is None and last["previous"] == f"{url}?limit=2&offset=2"
    assert last["events"][0]["from"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1"])
def test_a_bad_page_is_a_400(api_client, cluster_id, query):
    response = api_client.get(f"{CLUSTERS}/{cluster_id}/history?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequest"


# -- who may ask, and about what --------------------------------------------------------------


@pytest.mark.parametrize("what", ["nodes", "history"])
def test_an_unknown_cluster_is_a_404_and_a_malformed_id_a_400(api_client, backend, what):
    assert api_client.get(f"{CLUSTERS}/{uuid.uuid4()}/{what}").status_code == 404
    assert api_client.get(f"{CLUSTERS}/not-a-uuid/{what}").status_code == 400


@pytest.mark.parametrize("what", ["nodes", "history"])
def test_an_account_without_a_role_is_refused(django_user_model, cluster_id, what):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("nobody"))
    response = client.get(f"{CLUSTERS}/{cluster_id}/{what}")
    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"


@pytest.mark.parametrize("what", ["nodes", "history"])
def test_anonymous_callers_are_a_401(anonymous_client, cluster_id, what):
    assert anonymous_client.get(f"{CLUSTERS}/{cluster_id}/{what}").status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nodes_and_history_are_read_only(api_client, cluster_id, method):
    for what in ("nodes", "history"):
        response = getattr(api_client, method)(f"{CLUSTERS}/{cluster_id}/{what}")
        assert response.status_code == 405
