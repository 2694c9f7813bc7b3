"""The REST API unchanged on the database backend (CLUSTER_REPOSITORY=django):
register, list, show and remove go through the same service and views,
the database's unique constraint answers 409, and a wrong credentials key
is a 500 whose log says which cluster and which setting, never a secret."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests_mock
from cryptography.fernet import Fernet
from django.db import connection
from rest_framework.test import APIClient

from clusters.domain import OPERATORS, PasswordCredentials, Secret
from clusters.encryption import CredentialCipher
from clusters.models import ClusterRecord
from clusters.wiring import unit_of_work_from_settings
from tests import pve_responses as pve
from tests.cluster_samples import make_cluster
from tests.conftest import assert_secret_absent, with_role
from tests.units_of_work import in_database

pytestmark = [pytest.mark.django_db]

PASSWORD = "s3cret-Proxmox-pässword"
REGISTRATION = {
    "name": "Prod-EU",
    "api_endpoint": "pve.example.com",
    "username": "root@pam",
    "password": PASSWORD,
}


@pytest.fixture(autouse=True)
def _django_backend(compose: Any) -> None:
    compose(unit_of_work=unit_of_work_from_settings("django"))


@pytest.fixture
def client(django_user_model: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(with_role(django_user_model.objects.create_user("operator"), OPERATORS))
    return api


def _raw_table() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM clusters_cluster")
        return repr(cursor.fetchall())


def test_register_list_show_and_remove_go_through_the_database(
    client: APIClient, requests_mock: requests_mock.Mocker
) -> None:
    pve.healthy_cluster(requests_mock)

    created = client.post("/api/v1/clusters", REGISTRATION, format="json")

    assert created.status_code == 201, created.content
    cluster_id = created.json()["id"]
    assert ClusterRecord.objects.filter(pk=cluster_id, name="Prod-EU").exists()
    listed = client.get("/api/v1/clusters")
    assert listed.status_code == 200
    assert listed.json()["total"] == 1
    assert listed.json()["clusters"][0] == created.json()
    shown = client.get(f"/api/v1/clusters/{cluster_id}")
    assert shown.status_code == 200 and shown.json() == created.json()
    for response in (created, listed, shown):
        assert_secret_absent(PASSWORD, response.content, "an API response")
    assert_secret_absent(PASSWORD, _raw_table(), "the clusters table")

    removed = client.delete(f"/api/v1/clusters/{cluster_id}")

    assert removed.status_code == 204 and removed.content == b""
    assert not ClusterRecord.objects.exists()
    assert client.get(f"/api/v1/clusters/{cluster_id}").status_code == 404


def test_stored_credentials_log_in_again_on_refresh(
    client: APIClient, requests_mock: requests_mock.Mocker
) -> None:
    pve.healthy_cluster(requests_mock)
    cluster_id = client.post("/api/v1/clusters", REGISTRATION, format="json").json()["id"]

    refreshed = client.post(f"/api/v1/clusters/{cluster_id}/refresh")

    assert refreshed.status_code == 200
    logins = [
        r
        for r in requests_mock.request_history
        if r.method == "POST" and r.path.endswith("/access/ticket")
    ]
    assert len(logins) == 2
    assert logins[1].text == logins[0].text  # the decrypted password, sent as registered


def test_registration_that_loses_the_race_in_the_database_is_a_conflict(
    client: APIClient, requests_mock: requests_mock.Mocker
) -> None:
    """Another process registers the name while this one talks to Proxmox:
    the service's early check passed, the unique constraint refuses."""
    pve.healthy_cluster(requests_mock)
    rival = make_cluster("PROD-eu")

    def version_while_a_rival_registers(request: Any, context: Any) -> dict[str, Any]:
        in_database().add(rival)
        return {"data": {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}}

    requests_mock.get(f"{pve.API}/version", json=version_while_a_rival_registers)

    response = client.post("/api/v1/clusters", REGISTRATION, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "Conflict",
        "message": "A cluster named 'Prod-EU' is already registered",
        "details": None,
    }
    assert list(ClusterRecord.objects.values_list("id", flat=True)) == [rival.id]
    assert_secret_absent(PASSWORD, response.content, "the conflict response")


def test_a_secret_under_an_unconfigured_key_is_a_500_with_a_clear_log_line(
    client: APIClient, requests_mock: requests_mock.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = CredentialCipher([Fernet.generate_key().decode()])
    cluster = make_cluster(credentials=PasswordCredentials("root@pam", Secret(PASSWORD)))
    in_database(cipher=foreign).add(cluster)
    pve.healthy_cluster(requests_mock)

    with caplog.at_level(logging.ERROR):
        response = client.post(f"/api/v1/clusters/{cluster.id}/refresh")

    assert response.status_code == 500
    assert response.json()["code"] == "InternalServerError"
    assert client.get(f"/api/v1/clusters/{cluster.id}").status_code == 200  # reads still work
    # No login: at most the client's credential-less warm-up call was sent.
    assert {(r.method, r.path) for r in requests_mock.request_history} <= {
        ("GET", "/api2/json/access/ticket")
    }
    logged = caplog.text
    assert f"The stored secret of cluster {cluster.id} does not decrypt" in logged
    assert "PROXMOXER_CREDENTIALS_KEYS" in logged
    assert_secret_absent(PASSWORD, logged, "the log")
    assert_secret_absent(PASSWORD, response.content, "the 500 response")
