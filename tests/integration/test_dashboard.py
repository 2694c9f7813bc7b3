"""The dashboard (docs/dashboard.md) through Django's test client: every page
and form path, for each role, with CSRF enforced as a browser meets it, and
no secret in any page. Proxmox answers through requests-mock in PVE's
shapes, or, for the certificate-trust flow, as a simulator on loopback."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest
import requests
from django.test import Client

from clusters.domain import (
    OPERATORS,
    VIEWERS,
    Actor,
    AuditAction,
    ClusterStatus,
    EditRequest,
    Outcome,
    ProxmoxTLSError,
    Secret,
    TokenCredentials,
)
from clusters.services import utc_now
from dashboard import pending
from pve_simulator.server import PveSimulator
from tests import pve_responses as pve
from tests.cluster_samples import FINGERPRINT, make_cluster
from tests.conftest import assert_secret_absent, with_role
from tests.fakes import FakeProxmox
from tests.units_of_work import AutoCommit

pytestmark = pytest.mark.django_db

PASSWORD = "Pa55-dashboard-secret-71c3"
TOKEN_SECRET = "0f1e2d3c-dashboard-token-secret-9a8b"
LOGIN_PASSWORD = "dashboard-login-pw-5e6f"
NEW_CLUSTER = "/clusters/new/"


# -- clients --------------------------------------------------------------------------------------


def csrf_token(page) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert match, "the page has no CSRF token"
    return match.group(1)


class Browser:
    """A test client that enforces CSRF as a browser meets it: every POST
    carries the token of the page its form came from."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.pages: list[bytes] = []

    def get(self, path: str, **extra):
        response = self.client.get(path, **extra)
        self.pages.append(response.content)
        return response

    def submit(self, page_path: str, action: str, data: dict, **extra):
        token = csrf_token(self.get(page_path))
        response = self.client.post(action, {"csrfmiddlewaretoken": token, **data}, **extra)
        self.pages.append(response.content)
        return response

    def follow(self, response):
        assert response.status_code == 302, response.content[:500]
        return self.get(response["Location"])

    def assert_secrets_absent(self, *secrets: str) -> None:
        for page in self.pages:
            for secret in secrets:
                assert_secret_absent(secret, page, "a dashboard page")


def signed_in(django_user_model, username: str, role: str | None = None) -> Browser:
    user = django_user_model.objects.create_user(username, password=LOGIN_PASSWORD)
    if role is not None:
        with_role(user, role)
    browser = Browser()
    browser.client.force_login(user)
    return browser


@pytest.fixture
def operator(django_user_model) -> Browser:
    return signed_in(django_user_model, "olga", OPERATORS)


@pytest.fixture
def viewer(django_user_model) -> Browser:
    return signed_in(django_user_model, "victor", VIEWERS)


@pytest.fixture
def stored(unit_of_work) -> AutoCommit:
    """The registry the dashboard's services read, for a test to fill."""
    return AutoCommit(unit_of_work)


def text_of(response) -> str:
    """The page's visible text, tags stripped and whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    html = html.replace("<wbr>", "")  # a place to wrap, not a space
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def field_block(response, field: str) -> str:
    """The HTML of one field of a form: its label, input, help and errors."""
    html = response.content.decode()
    at = html.find(f'id="id_{field}"')
    assert at >= 0, f"no field {field} in the page"
    starts = [m.start() for m in re.finditer(r'<div class="field[ "]', html)]
    begin = max(start for start in starts if start < at)
    ends = [start for start in starts if start > at]
    ends += [html.find(mark, at) for mark in ("</fieldset>", "form-actions")]
    return html[begin : min(end for end in ends if end >= 0)]


def input_value(response, field: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{field}"[^>]*>', response.content.decode())
    assert match, f"no input {field}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return unescape(value.group(1)) if value else None


def register_form(**fields) -> dict:
    form = {
        "name": "lab",
        "api_endpoint": "pve.example.com",
        "auth_method": "password",
        "username": "root@pam",
        "password": PASSWORD,
        "verify_tls": "on",
    }
    form.update(fields)
    return {key: value for key, value in form.items() if value is not None}


# -- anonymous visitors --------------------------------------------------------------------------


def test_the_root_is_a_login_page_for_anonymous_visitors():
    response = Browser().get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<form method="post" action="/login/"' in html
    assert re.search(r'<label for="id_username">Username</label>', html)
    assert re.search(r'<input[^>]+type="password"[^>]+name="password"', html)
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Content-Security-Policy" in response
    assert "Register a cluster" not in html


def test_logging_in_through_the_form_leads_to_the_clusters(django_user_model):
    with_role(django_user_model.objects.create_user("vera", password=LOGIN_PASSWORD), VIEWERS)
    browser = Browser()

    response = browser.submit(
        "/", "/login/", {"username": "vera", "password": LOGIN_PASSWORD, "next": "/"}
    )

    assert response.status_code == 302 and response["Location"] == "/"
    page = browser.follow(response)
    assert "<h1>Clusters</h1>" in page.content.decode()
    assert "vera" in text_of(page)
    browser.assert_secrets_absent(LOGIN_PASSWORD)


def test_a_wrong_password_shows_the_login_form_again_with_an_error(django_user_model):
    django_user_model.objects.create_user("vera", password=LOGIN_PASSWORD)
    browser = Browser()

    response = browser.submit("/", "/login/", {"username": "vera", "password": "wrong-guess-1"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in text_of(response)
    assert "_auth_user_id" not in browser.client.session
    assert_secret_absent("wrong-guess-1", response.content, "the login page")


def test_logging_in_without_the_csrf_token_is_refused(django_user_model):
    django_user_model.objects.create_user("vera", password=LOGIN_PASSWORD)
    browser = Browser()

    response = browser.client.post("/login/", {"username": "vera", "password": LOGIN_PASSWORD})

    assert response.status_code == 403
    assert "_auth_user_id" not in browser.client.session


@pytest.mark.parametrize(
    "path",
    ["/clusters/new/", f"/clusters/{uuid.uuid4()}/", f"/clusters/{uuid.uuid4()}/deregister/"],
)
def test_pages_send_anonymous_visitors_to_the_login_page_and_back(path):
    response = Browser().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_the_way_back_after_logging_in_keeps_the_whole_address():
    page = Browser().get("/clusters/new/?from=table&x=1")

    assert page["Location"] == "/login/?next=/clusters/new/%3Ffrom%3Dtable%26x%3D1"


def test_the_table_contents_answer_anonymous_pollers_401_not_a_login_page():
    response = Browser().get("/clusters/rows/")

    assert response.status_code == 401


def test_logging_out_takes_a_post_with_the_csrf_token(operator):
    refused = operator.client.post("/logout/")
    assert refused.status_code == 403

    response = operator.submit("/", "/logout/", {})

    assert response.status_code == 302 and response["Location"] == "/"
    assert "<h1>Log in</h1>" in operator.follow(response).content.decode()


# -- the clusters table --------------------------------------------------------------------------


def rows(response) -> dict[str, str]:
    """Each cluster row's text, by cluster name."""
    found = {}
    for row in re.findall(r"<tr data-cluster=.*?</tr>", response.content.decode(), flags=re.S):
        name = re.search(r'<a href="/clusters/[^"]+/">([^<]+)</a>', row).group(1)
        found[unescape(name)] = row
    return found


@pytest.fixture
def fleet(stored) -> dict[str, object]:
    now = utc_now()
    clusters = {
        "alpha": make_cluster(
            "alpha", status=ClusterStatus.HEALTHY, nodes_online=3, last_checked_at=now
        ),
        "bravo": make_cluster(
            "bravo",
            status=ClusterStatus.DEGRADED,
            api_endpoint="https://10-0-0-7.pve.test:8006",
            last_checked_at=now - timedelta(minutes=5),
        ),
        "charlie": make_cluster(
            "charlie",
            status=ClusterStatus.UNHEALTHY,
            last_error="https://pve1.example.com:8006 did not answer within 5 s",
            last_checked_at=now - timedelta(hours=2),
        ),
        "delta": make_cluster("delta", status=ClusterStatus.UNKNOWN, proxmox_version="9.1.2"),
    }
    for cluster in clusters.values():
        stored.add(cluster)
    return clusters


def test_the_table_shows_each_cluster_with_its_status_in_colour_and_words(viewer, fleet):
    response = viewer.get("/")

    assert response.status_code == 200
    found = rows(response)
    assert list(found) == ["alpha", "bravo", "charlie", "delta"]
    for name, label in [
        ("alpha", "Healthy"),
        ("bravo", "Degraded"),
        ("charlie", "Unhealthy"),
        ("delta", "Unknown"),
    ]:
        status = label.lower()
        assert f'class="status status-{status}"' in found[name]
        assert f"</span> {label}</span>" in found[name]
    assert "8.2.4" in found["alpha"] and "9.1.2" in found["delta"]
    assert "https://10-0-0-7.pve.test:8006" in found["bravo"]
    assert "did not answer within 5 s" in found["charlie"]
    assert "3 of 3" in found["alpha"]
    assert "4 clusters" in text_of(response)


def test_the_fleet_is_counted_by_status_above_the_table_whatever_the_filters(viewer, fleet, stored):
    stored.add(make_cluster("echo", status=ClusterStatus.HEALTHY))

    response = viewer.get("/?status=degraded")

    counts = re.search(r'<ul class="counts".*?</ul>', response.content.decode(), re.S).group(0)
    assert [
        (status, number)
        for status, number in re.findall(r'href="/\?status=(\w+)".*?</span> (\d+) ', counts)
    ] == [("healthy", "2"), ("degraded", "1"), ("unhealthy", "1"), ("unknown", "1")]
    assert 'status-degraded current" href="/?status=degraded" aria-current="true"' in counts


def test_an_empty_registry_shows_no_counts(viewer):
    assert 'class="counts"' not in viewer.get("/").content.decode()


def test_the_last_check_is_relative_with_the_absolute_time_on_hover(viewer, fleet):
    row = rows(viewer.get("/"))["bravo"]
    at = fleet["bravo"].last_checked_at

    assert f'<time datetime="{at.isoformat()}"' in row
    assert f'title="{at:%Y-%m-%d %H:%M:%S} UTC">5\xa0minutes ago</time>' in row
    assert "never" in rows(viewer.get("/"))["delta"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=degraded", ["bravo"]),
        ("?status=unhealthy", ["charlie"]),
        ("?search=CHAR", ["charlie"]),
        ("?search=10-0-0-7", ["bravo"]),  # the endpoint is searched too
        ("?status=healthy&search=bravo", []),
        ("?status=", ["alpha", "bravo", "charlie", "delta"]),
    ],
)
def test_filters_by_status_and_search(viewer, fleet, query, expected):
    page = viewer.get(f"/{query}")
    polled = viewer.get(f"/clusters/rows/{query}")

    assert list(rows(page)) == expected
    assert list(rows(polled)) == expected
    if not expected:
        assert "No cluster matches these filters." in text_of(page)


def test_an_unknown_status_filter_is_named_and_ignored(viewer, fleet):
    response = viewer.get("/?status=purple")

    assert response.status_code == 200
    assert "Select a valid choice. purple is not one of the available choices." in text_of(response)
    assert list(rows(response)) == ["alpha", "bravo", "charlie", "delta"]


def test_a_search_the_list_refuses_is_named_and_ignored(viewer, fleet):
    response = viewer.get("/?search=al%07pha&status=healthy")

    assert response.status_code == 200
    assert "search must not contain control characters" in text_of(response)
    assert list(rows(response)) == ["alpha"]  # the status filter still holds


def test_the_polled_contents_are_the_table_alone(viewer, fleet):
    response = viewer.get("/clusters/rows/?status=healthy")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<table" in html
    assert list(rows(response)) == ["alpha"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_long_list_comes_a_page_at_a_time(viewer, stored):
    for number in range(105):
        stored.add(make_cluster(f"node-{number:03d}"))

    first = viewer.get("/")
    second = viewer.get("/?offset=100")

    assert len(rows(first)) == 100
    assert "1\N{EN DASH}100 of 105 clusters" in text_of(first)
    assert 'href="/?offset=100">Next</a>' in first.content.decode()
    assert list(rows(second)) == [f"node-{n:03d}" for n in range(100, 105)]
    assert 'href="/?offset=0">Previous</a>' in second.content.decode()


def test_an_empty_registry_invites_an_operator_to_register(operator):
    response = operator.get("/")

    assert "No cluster is registered yet." in text_of(response)
    assert response.content.decode().count('href="/clusters/new/"') == 2


@pytest.mark.parametrize(("interval", "polled"), [(60.0, 15), (8.0, 8), (0.5, 1)])
def test_the_page_polls_no_less_often_than_the_checks_run(viewer, settings, interval, polled):
    settings.PROXMOXER_CHECK_INTERVAL = interval

    html = viewer.get("/").content.decode()

    assert 'data-poll-url="/clusters/rows/"' in html
    assert f'data-poll-seconds="{polled}"' in html


# -- roles ---------------------------------------------------------------------------------------


def test_a_viewer_sees_no_write_controls(viewer, fleet):
    cluster_id = fleet["alpha"].id
    table = viewer.get("/").content.decode()
    page = viewer.get(f"/clusters/{cluster_id}/").content.decode()

    assert "Register a cluster" not in table
    assert page.count("<form") == 1  # logging out only
    assert "Check now" not in page and "Deregister" not in page and "/edit/" not in page


def test_an_operator_sees_the_write_controls(operator, fleet):
    cluster_id = fleet["alpha"].id
    table = operator.get("/").content.decode()
    page = operator.get(f"/clusters/{cluster_id}/").content.decode()

    assert 'href="/clusters/new/">Register a cluster</a>' in table
    assert f'action="/clusters/{cluster_id}/refresh/"' in page
    assert f'href="/clusters/{cluster_id}/deregister/"' in page
    assert f'href="/clusters/{cluster_id}/edit/">Edit</a>' in page


def test_a_viewer_is_refused_every_write_and_nothing_changes(viewer, fleet, stored):
    cluster_id = fleet["alpha"].id

    assert viewer.get(NEW_CLUSTER).status_code == 403
    assert viewer.get(f"/clusters/{cluster_id}/deregister/").status_code == 403
    for path in (f"/clusters/{cluster_id}/refresh/", f"/clusters/{cluster_id}/deregister/"):
        response = viewer.submit("/", path, {})
        assert response.status_code == 403
        assert "may not" in text_of(response) and "operators" in text_of(response)
    refused = viewer.submit("/", NEW_CLUSTER, register_form(name="sneaky"))
    assert refused.status_code == 403
    assert stored.exists(cluster_id)
    assert stored.find_by_name("sneaky") is None


def test_an_account_in_no_group_is_told_it_has_no_role(django_user_model):
    browser = signed_in(django_user_model, "nobody")

    response = browser.get("/")

    assert response.status_code == 403
    assert "nobody may not list clusters" in text_of(response)
    assert "viewers" in text_of(response)


# -- a cluster's page ----------------------------------------------------------------------------


def test_the_cluster_page_shows_its_fields_and_says_what_is_not_yet_known(viewer, stored):
    cluster = make_cluster(
        "Prod-EU",
        fingerprint=FINGERPRINT,
        status=ClusterStatus.DEGRADED,
        last_error=None,
        last_checked_at=utc_now() - timedelta(minutes=1),
    )
    stored.add(cluster)

    response = viewer.get(f"/clusters/{cluster.id}/")

    assert response.status_code == 200
    text = text_of(response)
    assert "<title>Prod-EU · proxmoxer</title>" in response.content.decode()
    assert "Degraded quorate, at least one node offline" in text
    assert "Proxmox VE 8.2.4" in text
    assert "Signs in with user root@pam and password" in text
    assert f"Certificate pinned to {FINGERPRINT}" in text
    assert "Nodes Not yet known" in text
    assert "History No status change recorded yet." in text
    assert f"https://pve1.example.com:8006 (registered) — {FINGERPRINT}" in text
    assert 'data-copy="pinned-fingerprint"' in response.content.decode()
    viewer.assert_secrets_absent("hunter2-Ünïcode")


def test_a_checked_clusters_page_shows_its_nodes_and_history(operator, stored, healthy_pve):
    operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(name="lab"))
    cluster = stored.find_by_name("lab")

    response = operator.get(f"/clusters/{cluster.id}/")

    text = text_of(response)
    assert "Nodes 3 online of 3" in text
    nodes = re.search(r'<h2 id="nodes-heading">.*?</section>', response.content.decode(), re.S)
    assert re.findall(r'<th scope="row" data-label="Node">(\w+)</th>', nodes.group(0)) == [
        "pve1",
        "pve2",
        "pve3",
    ]
    assert "online" in nodes.group(0) and "Not yet known" not in nodes.group(0)
    assert "registered as ● Healthy" in text
    operator.assert_secrets_absent(PASSWORD)


def test_a_token_cluster_page_names_the_token_and_never_its_secret(viewer, stored):
    cluster = make_cluster(
        "Lab", credentials=TokenCredentials("root@pam!proxmoxer", Secret(TOKEN_SECRET))
    )
    stored.add(cluster)

    response = viewer.get(f"/clusters/{cluster.id}/")

    assert "Signs in with API token root@pam!proxmoxer" in text_of(response)
    viewer.assert_secrets_absent(TOKEN_SECRET)


@pytest.mark.parametrize("cluster_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_cluster_is_a_404_page(viewer, cluster_id):
    response = viewer.get(f"/clusters/{cluster_id}/")

    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.content.decode()


# -- registering ---------------------------------------------------------------------------------


def test_the_register_form_has_every_field_labelled(operator):
    response = operator.get(NEW_CLUSTER)

    html = response.content.decode()
    for field in ("name", "api_endpoint", "token_id", "token_secret", "username", "password"):
        assert re.search(rf'<label for="id_{field}">', html), field
    assert re.search(r'<input[^>]+type="password"[^>]+name="token_secret"', html)
    assert re.search(r'<input[^>]+type="checkbox"[^>]+name="verify_tls"[^>]+checked', html)
    assert re.search(r'<input[^>]+name="auth_method"[^>]+value="token"[^>]+checked', html)


def test_registering_stores_the_cluster_and_opens_its_page(operator, stored, healthy_pve):
    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(name="lab"))

    cluster = stored.find_by_name("lab")
    assert cluster is not None
    assert response.status_code == 302
    assert response["Location"] == f"/clusters/{cluster.id}/"
    page = operator.follow(response)
    assert "Registered lab: Healthy." in text_of(page)
    assert cluster.credentials.password.reveal() == PASSWORD
    assert (cluster.verify_tls, cluster.api_endpoint) == (True, pve.ENDPOINT)
    operator.assert_secrets_absent(PASSWORD)


def test_only_the_chosen_way_of_signing_in_is_sent(operator, stored, healthy_pve):
    # A token typed, then "User and password" chosen: the token is not used.
    form = register_form(name="chosen", token_id="root@pam!left-over", token_secret="left-over-1")

    operator.submit(NEW_CLUSTER, NEW_CLUSTER, form)

    cluster = stored.find_by_name("chosen")
    assert cluster.auth_method == "password" and cluster.username == "root@pam"


def test_an_unticked_verify_box_turns_verification_off(operator, stored, healthy_pve):
    operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(name="lab", verify_tls=None))

    assert stored.find_by_name("lab").verify_tls is False


def test_field_errors_appear_beside_their_fields_and_keep_what_was_typed(operator, stored):
    form = register_form(
        name="  kept-name  ", api_endpoint="ftp://pve1", username="root", fingerprint="zz"
    )

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, form)

    assert response.status_code == 200
    assert "must use https://" in field_block(response, "api_endpoint")
    assert "must include its realm" in field_block(response, "username")
    assert "Fingerprint must be a SHA-256 fingerprint" in field_block(response, "fingerprint")
    assert 'aria-invalid="true"' in field_block(response, "username")
    assert "field-error" not in field_block(response, "name")
    assert input_value(response, "name") == "  kept-name  "
    assert input_value(response, "api_endpoint") == "ftp://pve1"
    assert input_value(response, "username") == "root"
    assert input_value(response, "password") is None
    assert re.search(
        r'<input[^>]+name="auth_method"[^>]+value="password"[^>]+checked', response.content.decode()
    )
    assert len(stored) == 0
    operator.assert_secrets_absent(PASSWORD)


def test_errors_about_the_whole_form_appear_above_it(operator):
    response = operator.submit(
        NEW_CLUSTER, NEW_CLUSTER, register_form(username=None, password=None)
    )

    alert = re.search(
        r'<div class="form-errors" role="alert">(.*?)</div>', response.content.decode(), re.S
    )
    assert alert and "Credentials are required" in alert.group(1)


def test_a_taken_name_is_shown_beside_the_name(operator, stored, healthy_pve):
    stored.add(make_cluster("lab"))

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(name="LAB"))

    assert "A cluster named &#x27;LAB&#x27; is already registered" in field_block(response, "name")
    assert pve.api_calls(healthy_pve) == []


def test_refused_credentials_are_shown_beside_the_secret(operator, pve_api, stored):
    pve.login_refused(pve_api)

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form())

    assert "Proxmox refused the credentials" in field_block(response, "password")
    assert input_value(response, "password") is None
    assert len(stored) == 0
    operator.assert_secrets_absent(PASSWORD)


def test_refused_token_credentials_are_shown_beside_the_token_secret(operator, pve_api):
    pve_api.get(f"{pve.API}/version", status_code=401, reason="invalid token value!")
    form = register_form(
        auth_method="token",
        username=None,
        password=None,
        token_id="root@pam!proxmoxer",
        token_secret=TOKEN_SECRET,
    )

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, form)

    assert "refused" in field_block(response, "token_secret")
    assert input_value(response, "token_id") == "root@pam!proxmoxer"
    operator.assert_secrets_absent(TOKEN_SECRET)


def test_an_unreachable_endpoint_is_shown_beside_the_endpoint(operator, pve_api):
    pve_api.post(
        f"{pve.API}/access/ticket", exc=requests.exceptions.ConnectionError("connection refused")
    )

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form())

    assert "pve.example.com" in field_block(response, "api_endpoint")
    assert input_value(response, "api_endpoint") == "pve.example.com"


def test_a_certificate_that_differs_from_the_pin_is_no_offer_to_trust(operator, compose):
    observed = ":".join(["12"] * 32)
    compose(
        proxmox=FakeProxmox(
            error=ProxmoxTLSError(
                f"The certificate does not match the pinned fingerprint: expected {FINGERPRINT}, "
                f"got {observed}",
                details={"expected_fingerprint": FINGERPRINT, "fingerprint": observed},
            )
        )
    )

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(fingerprint=FINGERPRINT))

    assert "does not match the pinned fingerprint" in field_block(response, "fingerprint")
    assert "Trust this certificate" not in response.content.decode()
    assert pending.SESSION_KEY not in operator.client.session


def test_registering_without_the_csrf_token_is_refused(operator, stored, healthy_pve):
    response = operator.client.post(NEW_CLUSTER, register_form())

    assert response.status_code == 403
    assert len(stored) == 0


# -- trusting a certificate ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulator() -> Iterator[PveSimulator]:
    """A PVE API on loopback with its own self-signed certificate."""
    with PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=0.05) as simulator:
        yield simulator


def simulator_form(simulator: PveSimulator, **fields) -> dict:
    typed = {
        "name": "simulated",
        "api_endpoint": simulator.url,
        "username": simulator.username,
        "password": simulator.password,
        **fields,
    }
    return register_form(**typed)


def offered_handle(response) -> str:
    match = re.search(
        r'<input type="hidden" name="handle" value="([^"]+)">', response.content.decode()
    )
    assert match, "no offer to trust the certificate"
    return match.group(1)


def test_an_untrusted_certificate_is_offered_for_trust_with_its_fingerprint(
    operator, stored, simulator
):
    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator))

    assert response.status_code == 200
    html = response.content.decode().replace("<wbr>", "")
    assert f'<code id="observed-fingerprint">{simulator.fingerprint}</code>' in html
    assert 'data-copy="observed-fingerprint"' in html
    assert ">Trust this certificate and register</button>" in html
    assert 'action="/clusters/new/trust/"' in html
    assert input_value(response, "name") == "simulated"
    assert input_value(response, "password") is None
    assert len(stored) == 0
    operator.assert_secrets_absent(simulator.password, *simulator.issued_tickets)


def test_trusting_the_certificate_registers_with_it_pinned(operator, stored, simulator):
    offer = operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator))

    response = operator.submit(
        NEW_CLUSTER, "/clusters/new/trust/", {"handle": offered_handle(offer)}
    )

    cluster = stored.find_by_name("simulated")
    assert cluster is not None, text_of(response)
    assert response["Location"] == f"/clusters/{cluster.id}/"
    assert (cluster.fingerprint, cluster.verify_tls) == (simulator.fingerprint, True)
    assert cluster.status == ClusterStatus.HEALTHY
    assert pending.SESSION_KEY not in operator.client.session
    operator.follow(response)
    operator.assert_secrets_absent(simulator.password, *simulator.issued_tickets)


def test_a_trust_offer_is_taken_once(operator, stored, simulator):
    handle = offered_handle(operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator)))
    operator.submit(NEW_CLUSTER, "/clusters/new/trust/", {"handle": handle})
    stored.delete(stored.find_by_name("simulated").id)

    again = operator.submit(NEW_CLUSTER, "/clusters/new/trust/", {"handle": handle})

    assert again["Location"] == NEW_CLUSTER
    assert "no longer waiting" in text_of(operator.follow(again))
    assert stored.find_by_name("simulated") is None


def test_a_forged_handle_registers_nothing(operator, stored, simulator):
    operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator))

    response = operator.submit(NEW_CLUSTER, "/clusters/new/trust/", {"handle": "guessed"})

    assert response["Location"] == NEW_CLUSTER
    assert len(stored) == 0


def test_an_offer_left_too_long_asks_for_the_secret_again(operator, stored, simulator):
    handle = offered_handle(operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator)))
    session = operator.client.session
    session[pending.SESSION_KEY]["expires"] = (utc_now() - timedelta(seconds=1)).timestamp()
    session.save()

    response = operator.submit(NEW_CLUSTER, "/clusters/new/trust/", {"handle": handle})

    assert response.status_code == 200
    assert "typing the secret again" in field_block(response, "password")
    assert input_value(response, "fingerprint") == simulator.fingerprint
    assert input_value(response, "name") == "simulated"
    assert len(stored) == 0


def test_the_waiting_secret_is_encrypted_in_the_session(operator, simulator):
    operator.submit(NEW_CLUSTER, NEW_CLUSTER, simulator_form(simulator))

    session = operator.client.session
    kept = session[pending.SESSION_KEY]
    assert_secret_absent(simulator.password, repr(dict(session.items())), "the session")
    assert kept["secret"] and "password" not in kept["typed"]


def test_a_failure_after_trusting_is_shown_beside_its_field(operator, stored, simulator):
    form = simulator_form(simulator, password="not-the-simulators-password")
    handle = offered_handle(operator.submit(NEW_CLUSTER, NEW_CLUSTER, form))

    response = operator.submit(NEW_CLUSTER, "/clusters/new/trust/", {"handle": handle})

    assert response.status_code == 200
    assert "refused the credentials" in field_block(response, "password")
    assert input_value(response, "fingerprint") == simulator.fingerprint
    assert len(stored) == 0
    operator.assert_secrets_absent("not-the-simulators-password")


# -- refresh and deregister ----------------------------------------------------------------------


def test_checking_a_cluster_now_shows_what_it_found(operator, stored, pve_api):
    cluster = make_cluster("lab", api_endpoint=pve.ENDPOINT)
    stored.add(cluster)
    pve.login_ok(pve_api)
    pve.version(pve_api)
    pve.cluster_status(pve_api, pve.three_node_cluster(offline=1))
    pve.nodes(pve_api)

    response = operator.submit(f"/clusters/{cluster.id}/", f"/clusters/{cluster.id}/refresh/", {})

    assert response["Location"] == f"/clusters/{cluster.id}/"
    assert "Checked lab: Degraded." in text_of(operator.follow(response))
    assert stored.find_by_id(cluster.id).status == ClusterStatus.DEGRADED


def test_deregistering_asks_first_then_forgets_the_cluster(operator, stored):
    cluster = make_cluster("lab")
    stored.add(cluster)

    confirm = operator.get(f"/clusters/{cluster.id}/deregister/")
    assert confirm.status_code == 200
    assert "Deregister lab?" in text_of(confirm)
    assert stored.exists(cluster.id)

    response = operator.submit(
        f"/clusters/{cluster.id}/deregister/", f"/clusters/{cluster.id}/deregister/", {}
    )

    assert response["Location"] == "/"
    assert "Deregistered lab." in text_of(operator.follow(response))
    assert not stored.exists(cluster.id)


def test_deregistering_without_the_csrf_token_is_refused(operator, stored):
    cluster = make_cluster("lab")
    stored.add(cluster)

    response = operator.client.post(f"/clusters/{cluster.id}/deregister/")

    assert response.status_code == 403
    assert stored.exists(cluster.id)


def test_deregistering_an_unknown_cluster_is_a_404_page(operator):
    response = operator.submit("/", f"/clusters/{uuid.uuid4()}/deregister/", {})

    assert response.status_code == 404


# -- what every page is made of ------------------------------------------------------------------


def test_pages_load_nothing_from_elsewhere(operator, fleet):
    cluster_id = fleet["alpha"].id
    for path in (
        "/",
        NEW_CLUSTER,
        f"/clusters/{cluster_id}/",
        f"/clusters/{cluster_id}/deregister/",
    ):
        response = operator.get(path)
        html = response.content.decode()
        assert not re.search(r'(src|href|action)="(https?:)?//', html), path
        assert "<script>" not in html and " style=" not in html and "<style" not in html, path
        policy = response["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert response["Cache-Control"].startswith("max-age=0")


# -- editing -------------------------------------------------------------------------------------


def edit_path(cluster) -> str:
    return f"/clusters/{cluster.id}/edit/"


def edit_form(cluster, **fields) -> dict:
    """The edit form as the page shows it for ``cluster``, with ``fields``
    changed, as a browser sends it (an unticked box absent)."""
    form = {
        "name": cluster.name,
        "api_endpoint": cluster.api_endpoint,
        "auth_method": str(cluster.auth_method),
        "username": cluster.username or "",
        "token_id": cluster.token_id or "",
        "verify_tls": "on" if cluster.verify_tls else None,
        "fingerprint": cluster.fingerprint or "",
        "version": cluster.version,
    }
    form.update(fields)
    return {key: value for key, value in form.items() if value is not None}


def test_the_edit_form_shows_the_configuration_and_no_secret(operator, stored):
    cluster = make_cluster("lab", fingerprint=FINGERPRINT)
    stored.add(cluster)

    response = operator.get(edit_path(cluster))

    assert response.status_code == 200
    assert input_value(response, "name") == "lab"
    assert input_value(response, "api_endpoint") == cluster.api_endpoint
    assert input_value(response, "username") == "root@pam"
    assert input_value(response, "fingerprint") == FINGERPRINT
    assert input_value(response, "version") == "1"
    assert input_value(response, "password") is None
    assert "Leave empty to keep the stored one" in field_block(response, "password")
    operator.assert_secrets_absent("hunter2-Ünïcode")


def test_a_viewer_may_not_edit(viewer, stored):
    cluster = make_cluster("lab")
    stored.add(cluster)

    page = viewer.get(edit_path(cluster))
    sent = viewer.submit(
        f"/clusters/{cluster.id}/", edit_path(cluster), edit_form(cluster, name="x")
    )

    assert (page.status_code, sent.status_code) == (403, 403)
    assert "victor may not edit clusters" in text_of(page)
    assert stored.find_by_id(cluster.id).name == "lab"


def test_a_rename_is_saved_without_asking_proxmox(operator, stored, pve_api):
    cluster = make_cluster("lab")
    stored.add(cluster)

    response = operator.submit(
        edit_path(cluster), edit_path(cluster), edit_form(cluster, name="lab-2")
    )

    assert response["Location"] == f"/clusters/{cluster.id}/"
    assert "Saved lab-2." in text_of(operator.follow(response))
    edited = stored.find_by_id(cluster.id)
    assert (edited.name, edited.version) == ("lab-2", 2)
    assert edited.credentials.password.reveal() == "hunter2-Ünïcode"  # kept, never re-typed
    assert pve.api_calls(pve_api) == []


def test_a_form_sent_back_unchanged_changes_nothing(operator, stored, pve_api):
    cluster = make_cluster("lab")
    stored.add(cluster)

    response = operator.submit(edit_path(cluster), edit_path(cluster), edit_form(cluster))

    assert "Nothing to change." in text_of(operator.follow(response))
    assert stored.find_by_id(cluster.id).version == 1


def test_an_edit_error_is_shown_beside_its_field_keeping_what_was_typed(operator, stored):
    stored.add(make_cluster("taken"))
    cluster = make_cluster("lab")
    stored.add(cluster)

    response = operator.submit(
        edit_path(cluster), edit_path(cluster), edit_form(cluster, name="TAKEN", username="bad")
    )

    assert response.status_code == 200
    assert "must include its realm" in field_block(response, "username")
    assert input_value(response, "name") == "TAKEN"
    assert stored.find_by_id(cluster.id).version == 1


def test_new_credentials_are_proven_first_and_refused_ones_change_nothing(
    operator, stored, pve_api
):
    cluster = make_cluster("lab", api_endpoint=pve.ENDPOINT)
    stored.add(cluster)
    pve.login_refused(pve_api)

    response = operator.submit(
        edit_path(cluster), edit_path(cluster), edit_form(cluster, password=PASSWORD)
    )

    assert "Proxmox refused the credentials" in field_block(response, "password")
    assert input_value(response, "password") is None
    assert stored.find_by_id(cluster.id).credentials.password.reveal() == "hunter2-Ünïcode"
    operator.assert_secrets_absent(PASSWORD)


def test_new_credentials_that_work_are_stored(operator, stored, healthy_pve):
    cluster = make_cluster("lab", api_endpoint=pve.ENDPOINT)
    stored.add(cluster)

    response = operator.submit(
        edit_path(cluster), edit_path(cluster), edit_form(cluster, password=PASSWORD)
    )

    assert response.status_code == 302
    assert stored.find_by_id(cluster.id).credentials.password.reveal() == PASSWORD
    operator.follow(response)
    operator.assert_secrets_absent(PASSWORD)


def test_an_edit_made_meanwhile_is_not_overwritten_unseen(operator, stored, services):
    cluster = make_cluster("lab")
    stored.add(cluster)
    opened = edit_form(cluster, name="mine")
    services.clusters.edit(
        cluster.id, EditRequest(name="theirs"), actor=Actor.command_line("someone")
    )

    response = operator.submit(edit_path(cluster), edit_path(cluster), opened)

    assert response.status_code == 200
    assert "Someone changed this cluster since this form was opened" in text_of(response)
    assert input_value(response, "name") == "mine"
    assert input_value(response, "version") == "2"
    assert stored.find_by_id(cluster.id).name == "theirs"

    again = operator.submit(edit_path(cluster), edit_path(cluster), {**opened, "version": 2})
    assert again.status_code == 302
    assert stored.find_by_id(cluster.id).name == "mine"


def test_editing_without_the_csrf_token_is_refused(operator, stored):
    cluster = make_cluster("lab")
    stored.add(cluster)

    response = operator.client.post(edit_path(cluster), edit_form(cluster, name="x"))

    assert response.status_code == 403
    assert stored.find_by_id(cluster.id).name == "lab"


@pytest.fixture
def simulated(operator, stored, simulator):
    """The simulator registered through the dashboard, pinned."""
    form = simulator_form(simulator, fingerprint=simulator.fingerprint)
    operator.submit(NEW_CLUSTER, NEW_CLUSTER, form)
    cluster = stored.find_by_name("simulated")
    assert cluster is not None and cluster.fingerprint == simulator.fingerprint
    return cluster


def test_an_edit_meeting_an_untrusted_certificate_offers_to_trust_it_and_save(
    operator, stored, simulator, simulated
):
    unpinned = edit_form(simulated, name="renamed", fingerprint="", password=simulator.password)

    offer = operator.submit(edit_path(simulated), edit_path(simulated), unpinned)

    assert ">Trust this certificate and save</button>" in offer.content.decode()
    assert f'action="/clusters/{simulated.id}/edit/trust/"' in offer.content.decode()
    assert stored.find_by_id(simulated.id).version == 1
    response = operator.submit(
        edit_path(simulated),
        f"/clusters/{simulated.id}/edit/trust/",
        {"handle": offered_handle(offer)},
    )
    assert response["Location"] == f"/clusters/{simulated.id}/"
    edited = stored.find_by_id(simulated.id)
    assert (edited.name, edited.fingerprint, edited.version) == (
        "renamed",
        simulator.fingerprint,
        2,
    )
    operator.follow(response)
    operator.assert_secrets_absent(simulator.password, *simulator.issued_tickets)


def test_an_edit_trust_offer_is_for_its_own_cluster_only(operator, stored, simulator, simulated):
    other = make_cluster("other")
    stored.add(other)
    offer = operator.submit(
        edit_path(simulated), edit_path(simulated), edit_form(simulated, fingerprint="")
    )

    response = operator.submit(
        edit_path(other), f"/clusters/{other.id}/edit/trust/", {"handle": offered_handle(offer)}
    )

    assert response["Location"] == edit_path(other)
    assert stored.find_by_id(other.id).version == 1


def pin_replaced(stored, cluster, observed: str):
    """``cluster`` as a check leaves it when its certificate no longer
    matches the pin: unhealthy, naming the certificate it found."""
    replaced = dataclasses.replace(
        cluster,
        fingerprint=FINGERPRINT,
        status=ClusterStatus.UNHEALTHY,
        last_error="The certificate does not match the pinned fingerprint",
        last_error_details={"expected_fingerprint": FINGERPRINT, "fingerprint": observed},
    )
    stored.delete(cluster.id)
    stored.add(replaced)
    return replaced


def test_a_replaced_certificate_is_shown_with_a_button_to_trust_it(
    operator, stored, simulator, simulated
):
    cluster = pin_replaced(stored, simulated, simulator.fingerprint)

    page = operator.get(f"/clusters/{cluster.id}/")

    assert "The certificate has changed" in text_of(page)
    html = page.content.decode()
    assert f'name="fingerprint" value="{simulator.fingerprint}"' in html
    response = operator.submit(
        f"/clusters/{cluster.id}/",
        f"/clusters/{cluster.id}/trust/",
        {"fingerprint": simulator.fingerprint},
    )
    assert response["Location"] == f"/clusters/{cluster.id}/"
    assert "Trusted the new certificate of simulated: Healthy." in text_of(
        operator.follow(response)
    )
    renewed = stored.find_by_id(cluster.id)
    assert (renewed.fingerprint, renewed.status) == (simulator.fingerprint, ClusterStatus.HEALTHY)


def test_only_the_certificate_the_page_showed_is_trusted(operator, stored, simulator, simulated):
    cluster = pin_replaced(stored, simulated, simulator.fingerprint)

    response = operator.submit(
        f"/clusters/{cluster.id}/", f"/clusters/{cluster.id}/trust/", {"fingerprint": "AA:BB"}
    )

    assert "has changed since the page was shown" in text_of(operator.follow(response))
    assert stored.find_by_id(cluster.id).fingerprint == FINGERPRINT


def test_a_viewer_sees_a_replaced_certificate_but_no_button(viewer, stored):
    cluster = make_cluster(
        "lab",
        fingerprint=FINGERPRINT,
        last_error_details={"expected_fingerprint": FINGERPRINT, "fingerprint": "12:34"},
    )
    stored.add(cluster)

    page = viewer.get(f"/clusters/{cluster.id}/")

    assert "The certificate has changed" in text_of(page)
    assert "/trust/" not in page.content.decode()


def test_registering_can_hand_off_to_an_api_token(operator, stored, simulator):
    form = simulator_form(simulator, fingerprint=simulator.fingerprint, create_token="on")

    response = operator.submit(NEW_CLUSTER, NEW_CLUSTER, form)

    cluster = stored.find_by_name("simulated")
    assert cluster is not None, text_of(response)
    assert cluster.auth_method == "token" and cluster.credentials.created_by_registry
    confirm = operator.get(f"/clusters/{cluster.id}/deregister/")
    assert f"The API token {cluster.token_id} that proxmoxer created" in text_of(confirm)
    operator.submit(confirm.wsgi_request.path, confirm.wsgi_request.path, {})
    assert not stored.exists(cluster.id)
    operator.assert_secrets_absent(simulator.password, cluster.credentials.secret.reveal())


# -- login throttling and the audit record -------------------------------------------------------


def test_the_dashboards_login_is_throttled_like_every_other(django_user_model, unit_of_work):
    django_user_model.objects.create_user("vera", password=LOGIN_PASSWORD)
    answers = []
    for _ in range(5):
        browser = Browser()
        answers.append(
            browser.submit("/", "/login/", {"username": "vera", "password": "wrong-1"}).status_code
        )

    browser = Browser()
    response = browser.submit("/", "/login/", {"username": "vera", "password": LOGIN_PASSWORD})

    assert answers == [200, 200, 200, 200, 429]
    assert response.status_code == 429
    assert "_auth_user_id" not in browser.client.session
    actions = [event.action for event in unit_of_work().audit.list()]
    assert actions == [AuditAction.AUTH_LOGIN_FAILED] * 6


def test_a_login_at_the_dashboard_is_recorded(django_user_model, unit_of_work):
    with_role(django_user_model.objects.create_user("vera", password=LOGIN_PASSWORD), VIEWERS)

    Browser().submit("/", "/login/", {"username": "vera", "password": LOGIN_PASSWORD})

    [event] = unit_of_work().audit.list()
    assert (event.action, event.actor) == (AuditAction.AUTH_LOGIN, "vera")


def failures(unit_of_work) -> list[tuple]:
    return [
        (event.action, event.status_code, event.actor, event.cluster_name)
        for event in reversed(unit_of_work().audit.list())
        if event.outcome == Outcome.FAILURE
    ]


def test_what_the_dashboard_refuses_is_recorded_as_the_api_records_it(viewer, fleet, unit_of_work):
    cluster = fleet["alpha"]

    viewer.submit("/", f"/clusters/{cluster.id}/refresh/", {})
    viewer.get(NEW_CLUSTER)

    assert failures(unit_of_work) == [
        (AuditAction.AUTH_FORBIDDEN, 403, "victor", "alpha"),
        (AuditAction.AUTH_FORBIDDEN, 403, "victor", None),
    ]


def test_a_failed_registration_edit_or_deregistration_is_recorded(
    operator, stored, pve_api, unit_of_work, services
):
    pve.login_refused(pve_api)
    cluster = make_cluster("lab")
    stored.add(cluster)
    opened = edit_form(cluster, name="mine")
    services.clusters.edit(cluster.id, EditRequest(name="theirs"), actor=Actor.command_line())

    operator.submit(NEW_CLUSTER, NEW_CLUSTER, register_form(name="new-one"))
    operator.submit(edit_path(cluster), edit_path(cluster), opened)
    operator.submit("/", f"/clusters/{uuid.uuid4()}/deregister/", {})

    assert failures(unit_of_work) == [
        (AuditAction.CLUSTER_REGISTER, 401, "olga", "new-one"),
        (AuditAction.CLUSTER_EDIT, 412, "olga", "theirs"),
        (AuditAction.CLUSTER_DEREGISTER, 404, "olga", None),
    ]
