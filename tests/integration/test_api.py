"""The REST contract of docs/product-contract.md §4 through the whole
Django/DRF stack, with Proxmox answering through requests-mock as real PVE
does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import requests
from django.db import connection, transaction
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from clusters.api_errors import exception_handler
from clusters.domain import ClusterNotFound
from clusters.repositories.memory import InMemoryUnitOfWork
from tests import pve_responses as pve
from tests.fakes import FakeProxmox
from tests.units_of_work import AutoCommit

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-api-secret-4b8f"


def registration(**overrides):
    body = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def register(client, **overrides):
    return client.post(CLUSTERS, registration(**overrides), format="json")


def assert_envelope(response, status, code, message=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    if message is not None:
        assert body["message"] == message
    return body


def assert_nothing_registered(client):
    assert client.get(CLUSTERS).json() == {
        "clusters": [],
        "total": 0,
        "next": None,
        "previous": None,
    }


# -- success paths -------------------------------------------------------------


def test_register_answers_201_with_the_cluster_and_its_location(api_client, healthy_pve):
    response = register(api_client, name="  prod  ", api_endpoint="pve.example.com/api2/json/")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "prod"
    assert body["api_endpoint"] == "https://pve.example.com:8006"
    assert (body["status"], body["proxmox_version"], body["node_count"]) == ("healthy", "8.2.4", 3)
    assert (body["auth_method"], body["username"], body["token_id"]) == (
        "password",
        "root@pam",
        None,
    )
    assert (body["verify_tls"], body["fingerprint"], body["last_error"]) == (True, None, None)
    assert body["created_at"].endswith("Z") and body["updated_at"] == body["created_at"]
    assert response["Location"] == f"http://testserver/api/v1/clusters/{body['id']}"
    assert set(body) == {
        "id", "name", "api_endpoint", "status", "proxmox_version", "node_count",
        "auth_method", "username", "token_id", "verify_tls", "fingerprint",
        "created_at", "updated_at", "last_checked_at", "last_error", "last_error_details",
        "version", "cluster_name", "nodes_online", "next_check_at", "endpoints",
        "discover_endpoints",
    }  # fmt: skip
    assert body["version"] == 1
    assert body["last_error_details"] is None
    assert response["ETag"] == '"1"'
    assert (body["cluster_name"], body["nodes_online"]) == ("prod", 3)
    assert body["next_check_at"] > body["last_checked_at"]


def test_register_with_verification_off_records_it(api_client, healthy_pve):
    body = register(api_client, verify_tls=False).json()
    assert body["verify_tls"] is False
    assert {call.verify for call in healthy_pve.request_history} == {False}


def test_unknown_fields_are_ignored(api_client, healthy_pve):
    assert register(api_client, colour="blue", id="chosen-by-client").status_code == 201


def test_list_orders_by_name_and_counts(api_client, pve_api):
    endpoints = pve.healthy_clusters(pve_api, ["beta", "Alpha", "gamma"])
    for name, endpoint in endpoints.items():
        assert register(api_client, name=name, api_endpoint=endpoint).status_code == 201
    body = api_client.get(CLUSTERS).json()
    assert body["total"] == 3
    assert [cluster["name"] for cluster in body["clusters"]] == ["Alpha", "beta", "gamma"]


def test_retrieve_returns_the_registered_cluster(api_client, healthy_pve):
    created = register(api_client).json()
    response = api_client.get(f"{CLUSTERS}/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_delete_answers_204_with_an_empty_body_and_forgets_the_cluster(api_client, healthy_pve):
    created = register(api_client).json()
    response = api_client.delete(f"{CLUSTERS}/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert api_client.get(f"{CLUSTERS}/{created['id']}").status_code == 404
    assert_nothing_registered(api_client)


@pytest.mark.parametrize("slash", ["", "/"])
def test_every_path_answers_with_and_without_a_trailing_slash(api_client, healthy_pve, slash):
    created = api_client.post(f"{CLUSTERS}{slash}", registration(), format="json")
    assert created.status_code == 201
    detail = f"{CLUSTERS}/{created.json()['id']}{slash}"
    assert api_client.get(f"{CLUSTERS}{slash}").status_code == 200
    assert api_client.get(detail).status_code == 200
    assert api_client.post(f"{detail.rstrip('/')}/refresh{slash}").status_code == 200
    assert api_client.delete(detail).status_code == 204
    assert api_client.get(f"/api/v1{slash}").status_code == 200


def test_health_needs_no_authentication(anonymous_client):
    for path in ("/health", "/health/"):
        response = anonymous_client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "healthy"}


# -- the health model ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_entries", "version", "expected_status", "expected_nodes"),
    [
        (pve.three_node_cluster(), "8.2.4", "healthy", 3),
        (pve.three_node_cluster(offline=1), "8.2.4", "degraded", 3),
        (pve.three_node_cluster(quorate=False), "8.2.4", "unhealthy", 3),
        (pve.three_node_cluster(offline=3), "8.2.4", "unhealthy", 3),
        (pve.STANDALONE_NODE, "7.4-13", "healthy", 1),
    ],
    ids=["healthy", "degraded", "no-quorum", "no-node-online", "standalone-pve7"],
)
def test_registration_records_the_health_proxmox_reports(
    api_client, pve_api, status_entries, version, expected_status, expected_nodes
):
    pve.login_ok(pve_api)
    pve.version(pve_api, version)
    pve.cluster_status(pve_api, status_entries)
    pve.nodes(pve_api, [])
    body = register(api_client).json()
    assert (body["status"], body["node_count"], body["proxmox_version"]) == (
        expected_status,
        expected_nodes,
        version,
    )


def test_a_later_check_of_an_unreachable_cluster_marks_it_unhealthy(api_client, healthy_pve):
    created = register(api_client).json()
    pve.unreachable(healthy_pve)

    response = api_client.post(f"{CLUSTERS}/{created['id']}/refresh")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["last_error"] == (
        "Could not connect to https://pve.example.com:8006: connection refused"
    )
    assert api_client.get(f"{CLUSTERS}/{created['id']}").json()["status"] == "unhealthy"


def test_a_later_check_with_refused_credentials_marks_it_unknown(api_client, healthy_pve):
    created = register(api_client).json()
    pve.ticket_refused(healthy_pve)
    body = api_client.post(f"{CLUSTERS}/{created['id']}/refresh").json()
    assert body["status"] == "unknown"
    assert "refused the credentials" in body["last_error"]
    # A refresh proves the stored password: it logs in, kept ticket or not.
    assert healthy_pve.last_request.method == "POST"
    assert healthy_pve.last_request.path == "/api2/json/access/ticket"


# -- the status table of docs/product-contract.md §4 -------------------------------


def test_missing_name_is_a_400_saying_so(api_client):
    response = api_client.post(CLUSTERS, {"api_endpoint": "pve.example.com"}, format="json")
    body = assert_envelope(response, 400, "BadRequest", "Cluster name is required")
    assert body["details"]["name"] == ["This field is required."]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "   "}, "name", "Cluster name is required"),
        ({"name": "a\tb"}, "name", "Cluster name must not contain control characters"),
        ({"name": "\u3164"}, "name", None),  # HANGUL FILLER: draws nothing
        ({"name": "\u2800\u2800"}, "name", None),  # BRAILLE PATTERN BLANK
        ({"name": "\ue000"}, "name", None),  # private use
        ({"name": "\u0301"}, "name", None),  # a combining accent alone
        ({"name": "x" * 256}, "name", None),
        ({"api_endpoint": "http://pve.example.com:8006"}, "api_endpoint", None),
        ({"api_endpoint": "https://root:pw@pve.example.com"}, "api_endpoint", None),
        ({"api_endpoint": "https://pve.example.com:8006/?a=1"}, "api_endpoint", None),
        (
            {"username": "root"},
            "username",
            "Username must include its realm, like root@pam or admin@pve",
        ),
        ({"password": ""}, "password", "Password is required"),
        ({"fingerprint": "12:34"}, "fingerprint", None),
        ({"token_id": "root@pam!ci", "token_secret": "s"}, "non_field_errors", None),
        ({"username": None, "password": None}, "non_field_errors", None),
        ({"verify_tls": "maybe"}, "verify_tls", None),
    ],
)
def test_invalid_registrations_are_400_with_field_details_and_store_nothing(
    api_client, pve_api, overrides, field, message
):
    response = register(api_client, **overrides)
    body = assert_envelope(response, 400, "BadRequest", message)
    assert field in body["details"]
    assert pve_api.call_count == 0, "nothing invalid is sent to Proxmox"
    assert_nothing_registered(api_client)


def test_malformed_json_is_a_400(api_client):
    response = api_client.post(CLUSTERS, '{"name": "prod",', content_type="application/json")
    body = assert_envelope(response, 400, "BadRequest")
    assert body["message"].startswith("Malformed request body: JSON parse error")


@pytest.mark.parametrize("payload", ["[1, 2]", '"prod"', "null"])
def test_json_that_is_not_an_object_is_a_400(api_client, payload):
    response = api_client.post(CLUSTERS, payload, content_type="application/json")
    assert_envelope(response, 400, "BadRequest")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_malformed_cluster_id_is_a_400(api_client, method):
    response = getattr(api_client, method)(f"{CLUSTERS}/not-a-uuid")
    assert_envelope(response, 400, "BadRequest", "Cluster id must be a UUID")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_cluster_id_is_a_404(api_client, method):
    missing = uuid.uuid4()
    response = getattr(api_client, method)(f"{CLUSTERS}/{missing}")
    assert_envelope(response, 404, "NotFound", f"Cluster {missing} is not registered")


def test_refresh_of_an_unknown_cluster_is_a_404(api_client):
    assert_envelope(api_client.post(f"{CLUSTERS}/{uuid.uuid4()}/refresh"), 404, "NotFound")


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v2/clusters", "/api/", "/api/v1/clusters/x/y/z"]
)
def test_unknown_api_urls_are_a_json_404(api_client, path):
    assert_envelope(api_client.get(path), 404, "NotFound")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", CLUSTERS),
        ("patch", CLUSTERS),
        ("delete", CLUSTERS),
        ("put", f"{CLUSTERS}/{uuid.uuid4()}"),
        ("post", f"{CLUSTERS}/{uuid.uuid4()}"),
    ],
)
def test_wrong_methods_are_a_405(api_client, method, path):
    response = getattr(api_client, method)(path, {}, format="json")
    assert_envelope(response, 405, "MethodNotAllowed")
    assert response["Allow"]


def test_a_name_registered_already_is_a_409_case_insensitively(api_client, healthy_pve):
    assert register(api_client, name="Prod").status_code == 201
    calls_before = healthy_pve.call_count
    response = register(api_client, name=" pROD ")
    assert_envelope(response, 409, "Conflict", "A cluster named 'pROD' is already registered")
    assert healthy_pve.call_count == calls_before, "a taken name costs no login at Proxmox"
    assert api_client.get(CLUSTERS).json()["total"] == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("prod", "\uff50\uff52\uff4f\uff44"),  # full-width
        ("caf\u00e9", "cafe\u0301"),  # NFC and NFD
    ],
)
def test_a_name_registered_already_is_a_409_after_unicode_normalisation(
    api_client, healthy_pve, first, second
):
    assert register(api_client, name=first).status_code == 201
    response = register(api_client, name=second)
    assert_envelope(response, 409, "Conflict")
    assert [c["name"] for c in api_client.get(CLUSTERS).json()["clusters"]] == [first]


def test_an_invisible_name_says_so(api_client, pve_api):
    response = register(api_client, name="\u3164\u3164")
    assert_envelope(
        response,
        400,
        "BadRequest",
        "Cluster name must contain a visible character: it is made only of invisible, "
        "unassigned, private-use or combining characters",
    )
    assert pve_api.call_count == 0


def test_unsupported_media_type_is_a_415(api_client):
    response = api_client.post(CLUSTERS, "name=prod", content_type="text/plain")
    assert_envelope(response, 415, "UnsupportedMediaType")


def test_an_oversized_body_is_a_413_and_never_reaches_proxmox(api_client, pve_api):
    response = api_client.post(CLUSTERS, registration(name="x" * 70_000), format="json")
    assert_envelope(response, 413, "PayloadTooLarge")
    assert pve_api.call_count == 0


def test_an_oversized_field_is_a_400_and_never_reaches_proxmox(api_client, pve_api):
    response = register(api_client, password="p" * 5_000)
    body = assert_envelope(response, 400, "BadRequest")
    assert "password" in body["details"]
    assert pve_api.call_count == 0


def test_unauthenticated_calls_are_401_on_every_endpoint(anonymous_client, pve_api):
    some_id = uuid.uuid4()
    calls = [
        ("get", CLUSTERS),
        ("post", CLUSTERS),
        ("get", f"{CLUSTERS}/{some_id}"),
        ("delete", f"{CLUSTERS}/{some_id}"),
        ("post", f"{CLUSTERS}/{some_id}/refresh"),
        ("get", "/api/v1/"),
    ]
    for method, path in calls:
        response = getattr(anonymous_client, method)(path, registration(), format="json")
        body = assert_envelope(response, 401, "Unauthorized")
        assert body["message"] == "Authentication credentials were not provided."
        assert response["WWW-Authenticate"] == "Token"
    assert pve_api.call_count == 0


def test_a_wrong_api_token_is_a_401(anonymous_client):
    anonymous_client.credentials(
        HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567"
    )
    assert_envelope(anonymous_client.get(CLUSTERS), 401, "Unauthorized", "Invalid token.")


def test_proxmox_refusing_the_credentials_is_a_401_that_says_so(api_client, pve_api):
    pve.login_refused(pve_api)
    response = register(api_client)
    assert_envelope(
        response,
        401,
        "Unauthorized",
        "Proxmox refused the credentials of root@pam (authentication failure)",
    )
    assert "WWW-Authenticate" not in response, "it is not this API's own login that failed"
    assert_nothing_registered(api_client)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            {
                "exc": requests.exceptions.ConnectionError(
                    ConnectionRefusedError(111, "Connection refused")
                )
            },
            "Could not connect to https://pve.example.com:8006: connection refused",
        ),
        (
            {"exc": requests.exceptions.ConnectTimeout("timed out")},
            "Timed out connecting to https://pve.example.com:8006 after 5 s",
        ),
        (
            {"exc": requests.exceptions.ReadTimeout("timed out")},
            "https://pve.example.com:8006 did not answer /access/ticket within 10 s",
        ),
        (
            {"status_code": 500, "reason": "Internal Server Error"},
            "https://pve.example.com:8006 answered /access/ticket with 500 Internal Server Error",
        ),
        ({"status_code": 200, "text": "<html>login portal</html>"}, None),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "5xx", "not-pve"],
)
def test_proxmox_failures_are_a_502_naming_what_failed(api_client, pve_api, failure, message):
    pve_api.post(f"{pve.API}/access/ticket", **failure)
    body = assert_envelope(register(api_client), 502, "BadGateway", message)
    assert body["message"]
    assert_nothing_registered(api_client)


def test_throttled_calls_are_a_429_with_retry_after(api_client, monkeypatch):
    # DRF reads the rates once, at import: patch the class, not the settings.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/minute"})
    statuses = [api_client.get(CLUSTERS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = api_client.get(CLUSTERS)
    assert_envelope(response, 429, "TooManyRequests")
    assert int(response["Retry-After"]) > 0


def test_a_crash_is_a_500_without_trace_or_secret(api_client, compose, caplog):
    compose(proxmox=FakeProxmox(error=RuntimeError(f"boom near {PASSWORD}")))
    response = register(api_client)
    body = assert_envelope(response, 500, "InternalServerError")
    assert "boom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["details"] is None
    assert any(record.exc_info for record in caplog.records), "the crash is in the log"


def test_a_refresh_that_an_edit_overtook_is_a_409_and_the_edit_stands(api_client, compose):
    unit_of_work = InMemoryUnitOfWork.factory()
    proxmox = FakeProxmox()
    compose(unit_of_work=unit_of_work, proxmox=proxmox)
    cluster_id = register(api_client).json()["id"]
    store = AutoCommit(unit_of_work)
    edited = store.find_by_id(uuid.UUID(cluster_id)).reconfigured(
        at=datetime.now(UTC), name="renamed-meanwhile"
    )
    proxmox.before_answer = lambda: store.update(edited)

    response = api_client.post(f"{CLUSTERS}/{cluster_id}/refresh")

    body = assert_envelope(response, 409, "Conflict")
    assert "changed by someone else" in body["message"]
    shown = api_client.get(f"{CLUSTERS}/{cluster_id}").json()
    assert (shown["name"], shown["version"]) == ("renamed-meanwhile", 2)


def test_a_domain_error_rolls_back_the_requests_transaction(monkeypatch):
    """With ATOMIC_REQUESTS, a request whose use case failed must not commit
    whatever it wrote before the failure: the handler marks the rollback,
    as DRF's own handler does for its errors."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with transaction.atomic():
        response = exception_handler(ClusterNotFound(uuid.uuid4()), {})
        assert transaction.get_rollback()
    assert response.status_code == 404


def test_an_account_without_a_role_is_forbidden_everything(django_user_model, healthy_pve):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user("no-role"))

    for response in (
        client.get(CLUSTERS),
        register(client),
        client.get(f"{CLUSTERS}/{uuid.uuid4()}"),
    ):
        body = assert_envelope(response, 403, "Forbidden")
        assert body["message"].startswith("no-role may not ")
    assert healthy_pve.call_count == 0, "nothing reached Proxmox"


def test_a_registration_through_the_api_is_audited_with_the_callers_address(
    api_client, healthy_pve, unit_of_work
):
    cluster_id = register(api_client).json()["id"]

    [event] = unit_of_work().audit.list()
    assert (str(event.cluster_id), event.actor, event.source_ip) == (
        cluster_id,
        "operator",
        "127.0.0.1",
    )
