"""The DRF browsable API in a browser: log in, see the register form with
every field, submit it as the page renders it, edit a cluster through the
detail page's PATCH form, and never see a secret echoed back."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from tests import pve_responses as pve
from tests.conftest import assert_secret_absent, with_role
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
    unticked = [pair for pair in form.submission(verify_tls=False) if pair[0] == "verify_tls"]
    ticked = [pair for pair in form.submission(verify_tls=True) if pair[0] == "verify_tls"]
    assert unticked == [("verify_tls", "false")]
    assert ticked == [("verify_tls", "false"), ("verify_tls", "true")]  # the last one wins


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_form_post_without_verify_tls_verifies(api_client, pve_api, encoding):
    """curl -d, http --form: a form-encoded client that never heard of the
    field gets the safe default, as JSON clients do."""
    pve.healthy_cluster(pve_api)
    fields = {"name": "curl", "api_endpoint": "pve.example.com", "username": "root@pam",
              "password": PASSWORD}  # fmt: skip
    if encoding == "urlencoded":
        response = api_client.post(
            "/api/v1/clusters", urlencode(fields), content_type="application/x-www-form-urlencoded"
        )
    else:
        response = api_client.post("/api/v1/clusters", fields, format="multipart")
    assert response.status_code == 201
    assert response.json()["verify_tls"] is True
    assert {call.verify for call in pve_api.request_history} == {True}


@pytest.mark.parametrize(("sent", "stored"), [("false", False), ("true", True), ("on", True)])
def test_a_form_post_with_verify_tls_keeps_what_it_says(api_client, pve_api, sent, stored):
    pve.healthy_cluster(pve_api)
    response = api_client.post(
        "/api/v1/clusters",
        {"name": "curl", "api_endpoint": "pve.example.com", "username": "root@pam",
         "password": PASSWORD, "verify_tls": sent},
        format="multipart",
    )  # fmt: skip
    assert response.json()["verify_tls"] is stored


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


# -- the edit form on a cluster's page ----------------------------------------------------------


def edit_form(browser, cluster_id):
    page = browser.get(f"/api/v1/clusters/{cluster_id}", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    return form_with(page.content.decode(), data_method="PATCH", enctype="multipart/form-data")


def submit_edit_form(browser, cluster_id, **typed):
    """What DRF's ajax-form.js does with the PATCH form: a multipart PATCH of
    the form's inputs, the CSRF token in its header."""
    form = edit_form(browser, cluster_id)
    body = encode_multipart(BOUNDARY, multipart(form.submission(**typed)))
    return browser.patch(
        f"/api/v1/clusters/{cluster_id}",
        body,
        content_type=MULTIPART_CONTENT,
        HTTP_ACCEPT="text/html",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )


def test_a_clusters_page_offers_a_patch_form_with_its_current_values_and_blank_secrets(
    browser, pve_api
):
    pve.healthy_cluster(pve_api)
    submit_register_form(browser, fingerprint="ab" * 32, verify_tls=True)
    cluster = registered(browser)[0]

    form = edit_form(browser, cluster["id"])

    assert form.attrs["action"] == f"/api/v1/clusters/{cluster['id']}"
    assert form.input("name")["value"] == "lab"
    assert form.input("api_endpoint")["value"] == "https://pve.example.com:8006"
    assert form.input("username")["value"] == "root@pam"
    assert form.input("fingerprint")["value"] == cluster["fingerprint"]
    assert form.input("token_id").get("value", "") == ""
    for secret in ("password", "token_secret"):
        assert form.input(secret)["type"] == "password"
        assert form.input(secret).get("value", "") == ""
    assert "checked" in form.input("verify_tls", "checkbox")
    assert form.input("verify_tls", "hidden")["value"] == "false"
    assert "checked" not in form.input("create_token", "checkbox")
    page = browser.get(f"/api/v1/clusters/{cluster['id']}", HTTP_ACCEPT="text/html")
    assert_secret_absent(PASSWORD, page.content, "the cluster's page")


def test_the_list_page_offers_no_patch_form(browser):
    page = browser.get("/api/v1/clusters", HTTP_ACCEPT="text/html").content.decode()
    assert 'data-method="PATCH"' not in page


def test_sending_the_edit_form_back_untouched_changes_nothing(browser, pve_api):
    pve.healthy_cluster(pve_api)
    submit_register_form(browser, verify_tls=True)
    cluster = registered(browser)[0]
    calls = pve_api.call_count

    response = submit_edit_form(browser, cluster["id"])

    assert response.status_code == 200
    assert registered(browser)[0]["version"] == 1
    assert pve_api.call_count == calls


def test_unticking_verify_in_the_edit_form_turns_verification_off(browser, pve_api):
    pve.healthy_cluster(pve_api)
    submit_register_form(browser, verify_tls=True)
    cluster = registered(browser)[0]

    response = submit_edit_form(browser, cluster["id"], name="renamed", verify_tls=False)

    assert response.status_code == 200
    edited = registered(browser)[0]
    assert (edited["name"], edited["verify_tls"], edited["version"]) == ("renamed", False, 2)


def test_a_new_password_typed_into_the_edit_form_is_proven_and_kept(browser, pve_api):
    pve.healthy_cluster(pve_api)
    submit_register_form(browser, verify_tls=True)
    cluster = registered(browser)[0]

    response = submit_edit_form(browser, cluster["id"], password="Pa55-typed-in-browser-1")

    assert response.status_code == 200
    assert_secret_absent("Pa55-typed-in-browser-1", response.content, "the answer page")
    assert pve_api.last_request.method == "GET"  # the proof read after the new login
    logins = [c for c in pve_api.request_history if c.method == "POST"]
    assert "Pa55-typed-in-browser-1" in logins[-1].text
    assert registered(browser)[0]["version"] == 2


@pytest.mark.parametrize(
    ("role", "cluster_id", "status"),
    [
        (None, "3f2a9c1b-0000-4000-8000-000000000000", 403),
        ("operators", "3f2a9c1b-0000-4000-8000-000000000000", 404),
        ("operators", "not-a-uuid", 400),
    ],
)
def test_the_page_of_a_cluster_that_cannot_be_read_is_its_error_not_a_crash(
    django_user_model, role, cluster_id, status
):
    user = django_user_model.objects.create_user("someone")
    if role:
        with_role(user, role)
    client = Client()
    client.force_login(user)
    page = client.get(f"/api/v1/clusters/{cluster_id}", HTTP_ACCEPT="text/html")
    assert page.status_code == status
    assert b"InternalServerError" not in page.content
