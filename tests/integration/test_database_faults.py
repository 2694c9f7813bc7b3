"""A database (or a shared cache) that cannot be reached or answers too slowly is a 503 with
Retry-After in the envelope, wherever the request meets it; the probes tell
liveness (/health, which never touches the database) from readiness
(/health/ready). The real outage, on a real server process with PostgreSQL
behind a loopback port that closes, blackholes and reopens:
tests/e2e/test_database_faults_e2e.py."""

from __future__ import annotations

import json
import socket

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from clusters.api_errors import server_error
from tests import redis_server

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
UNAVAILABLE = {
    "code": "ServiceUnavailable",
    "message": (
        "The database is unreachable or too slow; the service recovers by itself when it "
        "answers again"
    ),
    "details": {"retry_after": 5},
}


class UnreachableDatabase:
    """A unit of work whose database refuses every connection, as psycopg
    reports it through Django."""

    def __call__(self):
        raise OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 1 failed: '
            "Connection refused"
        )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", CLUSTERS),
        ("get", f"{CLUSTERS}/12345678-1234-1234-1234-123456789012"),
        ("delete", f"{CLUSTERS}/12345678-1234-1234-1234-123456789012"),
        ("post", f"{CLUSTERS}/12345678-1234-1234-1234-123456789012/refresh"),
    ],
)
def test_an_unreachable_database_is_503_with_retry_after(api_client, compose, method, path, caplog):
    compose(unit_of_work=UnreachableDatabase())

    response = getattr(api_client, method)(path)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == UNAVAILABLE
    assert "Database unavailable, error=OperationalError: connection failed" in caplog.text


def test_a_database_error_outside_the_api_views_is_503_too(caplog):
    """Django's handler500 sees what a middleware or a plain Django view
    raised (a session saved after the view, the login form)."""
    request = RequestFactory().get("/api-auth/login/")
    try:
        raise OperationalError("canceling statement due to statement timeout")
    except OperationalError:
        response = server_error(request)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert json.loads(response.content)["code"] == "ServiceUnavailable"


def test_any_other_error_outside_the_api_views_is_the_envelopes_500():
    try:
        raise ValueError("unexpected")
    except ValueError:
        response = server_error(RequestFactory().get("/admin/"))

    assert response.status_code == 500
    assert json.loads(response.content)["code"] == "InternalServerError"


def test_liveness_never_touches_the_database(anonymous_client, api_client, user):
    anonymous_client.force_login(user)  # a session cookie the probe could be tempted to read

    with CaptureQueriesContext(connection) as queries:
        for client in (anonymous_client, api_client):
            response = client.get("/health")
            assert response.status_code == 200
            assert response.json() == {"status": "healthy"}

    assert len(queries) == 0


def test_readiness_reports_the_database(anonymous_client):
    response = anonymous_client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readiness_is_503_when_the_configured_cache_does_not_answer(anonymous_client):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    with override_settings(CACHE_URL=url, CACHES={"default": cache}):
        response = anonymous_client.get("/health/ready")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "cache": "unreachable"},
    }


@override_settings(PROXMOXER_MONITOR="celery")
def test_readiness_with_celery_is_503_when_the_broker_does_not_answer(anonymous_client):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = anonymous_client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unreachable"}


@pytest.mark.redis
@override_settings(PROXMOXER_MONITOR="celery")
def test_readiness_with_celery_checks_the_broker(anonymous_client):
    with override_settings(CELERY_BROKER_URL=redis_server.URL):
        response = anonymous_client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_an_unreachable_shared_cache_is_503_not_500(api_client):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    with override_settings(CACHE_URL=url, CACHES={"default": cache}):
        response = api_client.get(CLUSTERS)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["message"].startswith("The shared cache (CACHE_URL) is unreachable")
