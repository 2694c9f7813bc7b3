"""The DRF browsable API in a browser: log in, see the register form with
every field, submit it as the page renders it, edit a cluster through the
detail page's PATCH form, and never see a secret echoed back."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.html_forms import form_with

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


def submit_register_form(browser, **typed):
    """Fill in the register form under the cluster list and send it, as a
    browser does: multipart, every input the page renders (its CSRF token,
    the hidden ones), an unticked box absent."""
    page = browser.get("/api/v1/clusters", HTTP_ACCEPT="text/html")
    form = form_with(page.content.decode(), method="POST", enctype="multipart/form-data")
    fields = {
        "name": "lab",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        **typed,
    }
    return browser.post(
        "/api/v1/clusters", multipart(form.submission(**fields)), HTTP_ACCEPT="text/html"
    )


def multipart(pairs):
    """Django's test client sends a list value as repeated fields, in order."""
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return data


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
    response = submit_register_form(browser, name="from-the-browser", verify_tls=True)
    assert response.status_code == 201
    assert_secret_absent(PASSWORD, response.content, "the 201 page")
    clusters = registered(browser)
    assert [c["name"] for c in clusters] == ["from-the-browser"]
    assert clusters[0]["verify_tls"] is True


def test_an_unchecked_verify_box_turns_verification_off(browser, pve_api):
    pve.healthy_cluster(pve_api)
    assert submit_register_form(browser, verify_tls=False).status_code == 201
    assert registered(browser)[0]["verify_tls"] is False


def test_the_verify_box_is_told_apart_from_an_absent_field_by_a_hidden_false(browser):
    page = browser.get("/api/v1/clusters", HTTP_ACCEPT="text/html")
    form = form_with(page.content.decode(), method="POST", enctype="multipart/form-data")
    hidden, box = (e for e in form.inputs if e.get("name") == "verify_tls")
    assert (hidden["type"], hidden["value"]) == ("hidden", "false")
    assert (box["type"], box["value"], "checked" in box) == ("checkbox", "true", True)
    assert ("verify_tls", "false") in form.submission(verify_tls=False)
    assert form.submission(verify_tls=True)[-1:] != [("verify_tls", "false")]


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
