"""Project-level behaviour: the admin bootstrap of `make run`, tokens from
manage.py, the backend choice, and the envelope for errors Django answers
before any DRF view runs."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from clusters import wiring
from clusters.checks import check_cluster_repository
from clusters.domain import VIEWERS
from clusters.repositories.database import DjangoUnitOfWork
from clusters.repositories.memory import InMemoryUnitOfWork
from tests.conftest import with_role

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_bootstrap_admin_creates_the_account_and_prints_password_and_token_once():
    first = run("bootstrap_admin")
    password = re.search(r"password: (\S+)", first).group(1)
    token = re.search(r"API token of admin\s+(\w+)", first).group(1)

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert Token.objects.get(user=admin).key == token

    second = run("bootstrap_admin")
    assert password not in second and token not in second
    assert "already exist" in second
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_bootstrap_admin_gives_an_existing_admin_without_token_a_token():
    get_user_model().objects.create_superuser("admin", password="kept-password")
    output = run("bootstrap_admin")
    assert "password:" not in output
    token = re.search(r"API token of admin\s+(\w+)", output).group(1)
    assert Token.objects.get(user__username="admin").key == token


def test_a_token_from_drf_create_token_authenticates_a_rest_client(django_user_model):
    with_role(django_user_model.objects.create_user("ci-bot", password="irrelevant-pw-1"), VIEWERS)
    output = run("drf_create_token", "ci-bot")
    token = re.search(r"token (\w+) for user", output).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/clusters").status_code == 200


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
