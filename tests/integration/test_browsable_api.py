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
from tests.fakes import FakeProxmox
from tests.html_forms import form_with
from tests.roles import account, client_for

pytestmark = pytest.mark.django_db

PASSWORD = "Pa55-browser-secret-6e2d"
DASH = "\u2013"  # the en dash between page and site in DRF's page titles


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


# -- the pages as a person reads them ----------------------------------------------


def page(browser, path):
    response = browser.get(path, HTTP_ACCEPT="text/html")
    return response, response.content.decode()


def crumb_names(html):
    trail = re.search(r'<ul class="breadcrumb">(.*?)</ul>', html, re.S).group(1)
    return [re.sub(r"\s+", " ", name).strip() for name in re.findall(r">([^<>]+)</a>", trail)]


def registered_cluster(browser, pve_api, name="lab"):
    pve.healthy_cluster(pve_api)
    assert submit_register_form(browser, name=name).status_code == 201
    return next(c for c in registered(browser) if c["name"] == name)


def test_the_browsable_api_is_named_proxmoxer(browser):
    response, html = page(browser, "/api/v1/clusters")

    assert response.status_code == 200
    assert f"<title>Clusters {DASH} proxmoxer</title>" in html
    assert re.search(r'<a class="navbar-brand"[^>]*href="/api/v1/"[^>]*>\s*proxmoxer\s*</a>', html)
    assert "Django REST framework" not in html


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1"])
def test_the_api_root_lists_the_clusters(browser, path):
    response = browser.get(path, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    clusters_url = response.json()["clusters"]
    assert clusters_url.startswith("http://testserver/api/v1/clusters")
    assert browser.get(clusters_url, HTTP_ACCEPT="application/json").status_code == 200
    _, html = page(browser, path)
    assert f"<title>proxmoxer API {DASH} proxmoxer</title>" in html
    assert crumb_names(html) == ["proxmoxer API"]


def test_breadcrumbs_lead_from_the_api_root_to_the_page(browser, pve_api):
    cluster = registered_cluster(browser, pve_api, name="Prod-EU")
    _, listing = page(browser, "/api/v1/clusters")
    _, detail = page(browser, f"/api/v1/clusters/{cluster['id']}")
    _, refresh = page(browser, f"/api/v1/clusters/{cluster['id']}/refresh")

    assert crumb_names(listing) == ["proxmoxer API", "Clusters"]
    assert crumb_names(detail) == ["proxmoxer API", "Clusters", "Prod-EU"]
    assert crumb_names(refresh) == ["proxmoxer API", "Clusters", "Cluster", "Refresh"]
    links = re.findall(
        r'href="([^"]+)"', re.search(r'<ul class="breadcrumb">(.*?)</ul>', detail, re.S).group(1)
    )
    assert links[:2] == ["/api/v1/", "/api/v1/clusters/"]


def test_a_clusters_page_is_titled_by_its_name_and_says_what_it_is(browser, pve_api):
    cluster = registered_cluster(browser, pve_api, name="<b>Lab</b> & co")

    _, detail = page(browser, f"/api/v1/clusters/{cluster['id']}")
    _, listing = page(browser, "/api/v1/clusters")

    assert f"<title>&lt;b&gt;Lab&lt;/b&gt; &amp; co {DASH} proxmoxer</title>" in detail
    assert "<b>Lab</b>" not in detail
    assert "One registered Proxmox VE cluster" in detail
    assert "lists them by name" not in detail
    assert "lists them by name" in listing and "One registered" not in listing


def test_refresh_offers_a_button_and_no_register_form(browser, pve_api):
    cluster = registered_cluster(browser, pve_api)

    response, html = page(browser, f"/api/v1/clusters/{cluster['id']}/refresh")

    assert response.status_code == 405  # GET; the page offers the POST
    assert "Check the cluster again with its stored credentials." in html
    assert 'name="api_endpoint"' not in html and 'name="password"' not in html
    assert re.search(r'<form[^>]+method="POST"', html)
    posted = browser.post(
        f"/api/v1/clusters/{cluster['id']}/refresh",
        {"csrfmiddlewaretoken": csrf_token(response)},
        HTTP_ACCEPT="text/html",
    )
    assert posted.status_code == 200
    assert 'name="api_endpoint"' not in posted.content.decode()


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_docs_send_a_visitor_who_is_not_logged_in_to_the_login_page():
    response = Client().get("/api/v1/docs", HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 302
    assert response["Location"] == "/api-auth/login/?next=/api/v1/docs"
    login = Client().get(response["Location"], HTTP_ACCEPT=BROWSER_ACCEPT)
    assert login.status_code == 200 and b'name="username"' in login.content


def test_the_docs_answer_a_client_that_is_no_browser_with_the_envelope():
    response = Client().get("/api/v1/docs", HTTP_ACCEPT="application/json, */*")

    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"


def test_the_docs_open_after_logging_in(browser):
    response = browser.get("/api/v1/docs")

    assert response.status_code == 200
    assert b"swagger-ui" in response.content


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
        "refresh_in_menu": '/refresh"' in html,
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
        "refresh_in_menu": False,
    }
    assert detail["buttons"] == (["DELETE", "OPTIONS", "PATCH"] if may_change else ["OPTIONS"])
    assert detail["extra_actions"], "nodes and history are listed for every role"
    assert detail["refresh_in_menu"] is may_change, "Refresh is listed for who may refresh"
    assert refresh["post_forms"] == (2 if may_change else 0)
    actions = {event.action for event in unit_of_work().audit.list()}
    assert "auth.forbidden" not in actions, "deciding what to show is no refusal to record"


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
