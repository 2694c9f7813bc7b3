"""The DRF browsable API in a browser: log in, see the register form with
every field, submit it, and never see a secret echoed back."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.fakes import FakeProxmox
from tests.roles import account, client_for

pytestmark = pytest.mark.django_db

PASSWORD = "Pa55-browser-secret-6e2d"


@pytest.fixture
def browser(user):
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/api-auth/login/?next=/api/v1/clusters")
    assert login_page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content.decode())
    response = client.post(
        "/api-auth/login/?next=/api/v1/clusters",
        {
            "username": "operator",
            "password": "operator-login-pw",
            "csrfmiddlewaretoken": token.group(1),
            "next": "/api/v1/clusters",
        },
    )
    assert response.status_code == 302
    return client


def csrf_token(page):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def submit_register_form(browser, **fields):
    """Fill in the register form under the cluster list and send it, as a
    browser does: multipart, with the page's CSRF token, an unticked box absent."""
    page = browser.get("/api/v1/clusters", HTTP_ACCEPT="text/html")
    form = {
        "csrfmiddlewaretoken": csrf_token(page),
        "name": "lab",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        **fields,
    }
    return browser.post("/api/v1/clusters", form, HTTP_ACCEPT="text/html")


def registered(browser):
    return browser.get("/api/v1/clusters", HTTP_ACCEPT="application/json").json()["clusters"]


def test_cluster_list_shows_a_register_form_with_every_field(browser):
    page = browser.get("/api/v1/clusters", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    html = page.content.decode()
    for field in ("name", "api_endpoint", "username", "token_id", "fingerprint"):
        assert re.search(rf'<input[^>]+name="{field}"[^>]+type="text"', html), field
    for field in ("password", "token_secret"):
        assert re.search(rf'<input[^>]+name="{field}"[^>]+type="password"', html), field
    assert re.search(r'<input[^>]+type="checkbox"[^>]+name="verify_tls"[^>]+checked', html)


def test_submitting_the_form_registers_a_cluster(browser, pve_api):
    pve.healthy_cluster(pve_api)
    response = submit_register_form(browser, name="from-the-browser", verify_tls="on")
    assert response.status_code == 201
    assert_secret_absent(PASSWORD, response.content, "the 201 page")
    clusters = registered(browser)
    assert [c["name"] for c in clusters] == ["from-the-browser"]
    assert clusters[0]["verify_tls"] is True


def test_an_unchecked_verify_box_turns_verification_off(browser, pve_api):
    pve.healthy_cluster(pve_api)
    assert submit_register_form(browser).status_code == 201
    assert registered(browser)[0]["verify_tls"] is False


def test_a_refused_submission_does_not_echo_the_password(browser, pve_api):
    pve.login_refused(pve_api)
    response = submit_register_form(browser)
    assert response.status_code == 401
    assert "Proxmox refused the credentials" in response.content.decode()
    assert_secret_absent(PASSWORD, response.content, "the error page")


def test_a_form_post_without_the_csrf_token_is_refused(browser, pve_api):
    response = browser.post(
        "/api/v1/clusters",
        {"name": "lab", "api_endpoint": "pve.example.com", "username": "root@pam", "password": "x"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"
    assert "CSRF" in response.json()["message"]
    assert pve_api.call_count == 0


def test_the_detail_page_offers_delete(browser, pve_api):
    pve.healthy_cluster(pve_api)
    submit_register_form(browser)
    cluster = registered(browser)[0]
    detail = browser.get(f"/api/v1/clusters/{cluster['id']}", HTTP_ACCEPT="text/html")
    assert detail.status_code == 200
    assert 'data-method="DELETE"' in detail.content.decode()


# -- what each role is shown ------------------------------------------------------------------


def _page_controls(client, path):
    """What a browsable API page offers: its write forms, its buttons, its
    extra-action menu."""
    html = client.get(path, HTTP_ACCEPT="text/html").content.decode()
    return {
        "post_forms": len(
            re.findall(r'<form [^>]*method="POST" [^>]*class="form-horizontal', html)
        ),
        "buttons": sorted(set(re.findall(r'data-method="([A-Z]+)"', html))),
        "raw_data": "Raw data" in html,
        "extra_actions": "Extra Actions" in html,
    }


@pytest.fixture
def cluster_id(compose):
    compose(proxmox=FakeProxmox())
    response = client_for("operator").post(
        "/api/v1/clusters",
        {"name": "prod", "api_endpoint": "pve.example.com", "username": "root@pam",
         "password": PASSWORD},
        format="json",
    )  # fmt: skip
    return response.json()["id"]


@pytest.mark.parametrize("role", ["viewer", "operator", "superuser"])
def test_write_forms_and_buttons_are_shown_only_to_who_may_use_them(role, cluster_id, unit_of_work):
    client = Client()
    client.force_login(account(role))
    may_change = role != "viewer"

    listing = _page_controls(client, "/api/v1/clusters")
    detail = _page_controls(client, f"/api/v1/clusters/{cluster_id}")
    refresh = _page_controls(client, f"/api/v1/clusters/{cluster_id}/refresh")

    assert listing == {
        "post_forms": 2 if may_change else 0,  # the HTML form and the raw-data form
        "buttons": ["OPTIONS"],
        "raw_data": may_change,
        "extra_actions": False,
    }
    assert detail["buttons"] == (["DELETE", "OPTIONS"] if may_change else ["OPTIONS"])
    assert detail["extra_actions"] is may_change, "Refresh is listed for who may refresh"
    assert refresh["post_forms"] == (2 if may_change else 0)
    actions = {event.action for event in unit_of_work().audit.list()}
    assert "auth.forbidden" not in actions, "deciding what to show is no refusal to record"
