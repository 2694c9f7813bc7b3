"""Project-level behaviour: the backend choice, and the envelope for errors
Django answers before any DRF view runs. (The admin bootstrap of `make run`
and API tokens: test_api_tokens.py.)"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from rest_framework.test import APIClient

from clusters import wiring
from clusters.checks import check_cluster_repository
from clusters.repositories.database import DjangoUnitOfWork
from clusters.repositories.memory import InMemoryUnitOfWork

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("backend", "unit_of_work"), [("memory", InMemoryUnitOfWork), ("django", DjangoUnitOfWork)]
)
def test_the_backend_comes_from_the_setting_at_first_use(settings, backend, unit_of_work):
    settings.CLUSTER_REPOSITORY = backend
    wiring.install_services(None)

    assert isinstance(wiring.unit_of_work_from_settings()(), unit_of_work)
    services = wiring.services()
    assert wiring.services() is services, "one composition, one store per process"


def test_an_unknown_backend_fails_loudly(settings):
    settings.CLUSTER_REPOSITORY = "redis"
    wiring.install_services(None)
    with pytest.raises(ImproperlyConfigured, match="'redis' is not a backend"):
        wiring.services()
    assert [message.id for message in check_cluster_repository()] == ["clusters.E001"]


def test_a_request_for_an_unknown_host_gets_the_envelope_too():
    response = APIClient().get("/api/v1/clusters", HTTP_HOST="evil.example.net")
    assert response.status_code == 400
    assert response.json() == {"code": "BadRequest", "message": "Bad request", "details": None}


def test_a_non_numeric_content_length_is_a_400_envelope():
    response = APIClient().generic(
        "POST", "/api/v1/clusters", b"{}", "application/json", CONTENT_LENGTH="12x"
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Content-Length must be a number"


def test_pages_outside_the_api_keep_djangos_own_errors():
    response = APIClient().get("/no-such-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_the_openapi_schema_is_valid_and_describes_every_endpoint(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in (
        "/api/v1/clusters/:",
        "/api/v1/clusters/{id}/:",
        "/api/v1/clusters/{id}/refresh/:",
        "/api/v1/audit-events/:",
    ):
        assert path in schema
    assert "password:" in schema and "writeOnly: true" in schema


def test_schema_and_swagger_ui_are_served_to_authenticated_users_only(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "proxmoxer"
    docs = api_client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content and b"cdn.jsdelivr" not in docs.content
    assert APIClient().get("/api/v1/schema").status_code == 401


def test_the_role_groups_exist_after_migrating():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"viewers", "operators"}
