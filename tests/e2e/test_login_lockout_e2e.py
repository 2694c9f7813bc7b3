"""Login throttling and the audit log in the production arrangement: gunicorn
with two worker processes over one database, a browser's login form with its
CSRF token, and the record read back through the API."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import assert_secret_absent
from tests.e2e.servers import gunicorn, prepare_database, service_environment

pytestmark = pytest.mark.e2e

LOGIN = "/api-auth/login/"
PASSWORD = "e2e-operator-password"  # prepare_database's


def login(base_url: str, username: str, password: str) -> requests.Response:
    """One login as a browser makes it: the form's page, then its POST."""
    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(f"{base_url}{LOGIN}", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return browser.post(
        f"{base_url}{LOGIN}",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=30,
    )


def test_five_failures_lock_the_login_across_workers_and_are_recorded(tmp_path):
    env = service_environment(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CLUSTER_REPOSITORY="django",
        DJANGO_SECURE_COOKIES="0",  # plain HTTP on loopback: the CSRF cookie must come back
    )
    token = prepare_database(env)
    server = gunicorn(env, tmp_path / "service.log", workers=2)
    try:
        answers = [login(server.base_url, "operator", "wrong").status_code for _ in range(5)]
        locked = login(server.base_url, "operator", PASSWORD)
        other = login(server.base_url, "nobody-else", "wrong")

        events = requests.get(
            f"{server.base_url}/api/v1/audit-events",
            params={"action": "auth.login_failed", "actor": "operator"},
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        ).json()
    finally:
        server.stop()

    assert answers == [200, 200, 200, 200, 429]
    assert locked.status_code == 429 and "sessionid" not in locked.cookies
    assert other.status_code == 200, "another username is not locked"
    assert events["total"] == 6
    assert [event["status_code"] for event in events["events"]] == [429, 429, 200, 200, 200, 200]
    assert {event["source_ip"] for event in events["events"]} == {"127.0.0.1"}
    assert_secret_absent(PASSWORD, server.log(), "the service's log")
