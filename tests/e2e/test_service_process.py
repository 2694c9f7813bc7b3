"""The service as a real process: starts from the environment alone, serves
the API over a socket, and guards it with token authentication."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.servers import prepare_database, runserver, service_environment

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("service")
    env = service_environment(f"sqlite:///{workdir / 'db.sqlite3'}")
    token = prepare_database(env)
    server = runserver(env, workdir / "server.log")
    yield server, token
    server.stop()


def test_health_answers_without_authentication(service):
    server, _ = service
    response = requests.get(f"{server.base_url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_api_refuses_calls_without_a_token(service):
    server, _ = service
    response = requests.get(f"{server.base_url}/api/v1/clusters", timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == "Token"


def test_api_lists_nothing_for_a_new_registry(service):
    server, token = service
    response = requests.get(
        f"{server.base_url}/api/v1/clusters",
        headers={"Authorization": f"Token {token}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {"clusters": [], "total": 0, "next": None, "previous": None}


def test_every_request_leaves_one_access_line(service):
    server, token = service
    requests.get(
        f"{server.base_url}/api/v1/clusters/",
        headers={"Authorization": f"Token {token}"},
        timeout=5,
    )
    lines = [line for line in server.log().splitlines() if "GET /api/v1/clusters/ " in line]
    assert len(lines) == 1
    assert lines[0].endswith("user=operator")
