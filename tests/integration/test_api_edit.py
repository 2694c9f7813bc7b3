"""``PATCH /api/v1/clusters/{id}``, ``ETag`` and ``If-Match`` through the
whole Django/DRF stack (docs/product-contract.md §8, §9), with Proxmox
played by requests-mock in real PVE shapes; racing edits through the API on
every storage backend."""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.conf import settings
from django.db import connections
from rest_framework.test import APIClient

from clusters.domain import AuditAction
from clusters.encryption import CredentialCipher
from clusters.repositories.database import DjangoUnitOfWork
from clusters.repositories.memory import InMemoryUnitOfWork
from clusters.wiring import proxmox_client_from_settings
from tests import postgres
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-patch-secret-2b7d"
NEW_PASSWORD = "Pa55-rotated-secret-9f31"
TOKEN_SECRET = "tok-patch-secret-6a0c"
OBSERVED = "12:" * 31 + "12"


def register(client, **fields):
    body = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        **fields,
    }
    response = client.post(CLUSTERS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def patch(client, cluster, body: Any, **headers):
    return client.patch(f"{CLUSTERS}/{cluster['id']}", body, format="json", headers=headers)


def show(client, cluster):
    return client.get(f"{CLUSTERS}/{cluster['id']}").json()


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code
    return body


@pytest.fixture
def cluster(api_client, healthy_pve):
    created = register(api_client)
    healthy_pve.reset_mock()
    return created


# -- ETag ---------------------------------------------------------------------------------------


def test_retrieve_patch_and_refresh_carry_the_configurations_etag(api_client, cluster):
    assert api_client.get(f"{CLUSTERS}/{cluster['id']}")["ETag"] == '"1"'
    assert patch(api_client, cluster, {"name": "renamed"})["ETag"] == '"2"'
    refreshed = api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")
    assert (refreshed.status_code, refreshed["ETag"]) == (200, '"2"')


# -- what a PATCH changes -----------------------------------------------------------------------


def test_a_rename_is_200_with_the_cluster_and_calls_no_proxmox(api_client, cluster, pve_api):
    response = patch(api_client, cluster, {"name": "  prod-eu  "})

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["version"]) == ("prod-eu", 2)
    assert body["updated_at"] >= cluster["updated_at"]
    assert pve_api.call_count == 0
    assert show(api_client, cluster) == body


def test_an_empty_patch_is_200_and_changes_nothing(api_client, cluster, pve_api):
    response = patch(api_client, cluster, {})
    assert response.status_code == 200
    assert response.json() == cluster
    assert response["ETag"] == '"1"'
    assert pve_api.call_count == 0


def test_a_rotated_password_is_proven_at_proxmox_before_it_is_stored(api_client, cluster, pve_api):
    response = patch(api_client, cluster, {"username": "root@pam", "password": NEW_PASSWORD})

    assert response.status_code == 200
    assert response.json()["version"] == 2
    [login] = [call for call in pve_api.request_history if call.method == "POST"]
    assert parse_qs(login.text) == {"username": ["root@pam"], "password": [NEW_PASSWORD]}
    pve_api.reset_mock()
    api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh")
    [relogin] = [call for call in pve_api.request_history if call.method == "POST"]
    assert parse_qs(relogin.text)["password"] == [NEW_PASSWORD], "the new password is the one kept"


def test_a_refused_password_is_401_and_changes_nothing(api_client, cluster, pve_api):
    pve.login_refused(pve_api)
    response = patch(
        api_client, cluster, {"name": "renamed", "username": "root@pam", "password": "Wrong-1x"}
    )
    assert_error(response, 401, "Unauthorized")
    assert show(api_client, cluster) == cluster


def test_a_new_endpoint_that_does_not_answer_as_pve_is_502_and_changes_nothing(
    api_client, cluster, pve_api
):
    pve_api.post(
        "https://pve2.example.com:8006/api2/json/access/ticket", status_code=500, reason="boom"
    )
    pve.ticket_page(pve_api, endpoint="https://pve2.example.com:8006")
    response = patch(api_client, cluster, {"api_endpoint": "pve2.example.com"})
    assert_error(response, 502, "BadGateway")
    assert show(api_client, cluster) == cluster


def test_switching_to_a_token_proves_it_and_forgets_the_password(api_client, cluster, pve_api):
    response = patch(api_client, cluster, {"token_id": "root@pam!ci", "token_secret": TOKEN_SECRET})
    body = response.json()
    assert response.status_code == 200
    assert (body["auth_method"], body["username"], body["token_id"]) == (
        "token",
        None,
        "root@pam!ci",
    )
    reads = pve.api_calls(pve_api)
    assert reads and all(
        call.headers["Authorization"] == f"PVEAPIToken=root@pam!ci={TOKEN_SECRET}" for call in reads
    )


def test_fingerprint_null_removes_the_pin(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    pinned = register(api_client, fingerprint=OBSERVED)
    response = patch(api_client, pinned, {"fingerprint": None})
    assert response.status_code == 200
    assert (response.json()["fingerprint"], response.json()["version"]) == (None, 2)


def test_the_edit_is_audited_with_secrets_only_as_changed(api_client, cluster, unit_of_work):
    patch(api_client, cluster, {"token_id": "root@pam!ci", "token_secret": TOKEN_SECRET})
    with unit_of_work() as uow:
        [event] = [e for e in uow.audit.list() if e.action == AuditAction.CLUSTER_EDIT]
    assert (event.actor, event.source_ip, event.status_code) == ("operator", "127.0.0.1", 200)
    assert event.changes["password"] == event.changes["token_secret"] == "changed"
    for secret in (PASSWORD, TOKEN_SECRET):
        assert_secret_absent(secret, repr(event), "the audit event")


def test_no_answer_or_log_line_shows_an_old_or_new_secret(api_client, cluster, pve_api, caplog):
    with caplog.at_level(logging.DEBUG):
        answers = [
            patch(api_client, cluster, {"username": "root@pam", "password": NEW_PASSWORD}),
            patch(api_client, cluster, {"token_id": "root@pam!ci", "token_secret": TOKEN_SECRET}),
            patch(api_client, cluster, {"password": "Pa55-half-given-77"}),
        ]
        pve.login_refused(pve_api)
        answers.append(patch(api_client, cluster, {"username": "a@pve", "password": "Wrong-pw-1"}))
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN_SECRET, "Pa55-half-given-77", "Wrong-pw-1"):
        for answer in answers:
            assert_secret_absent(secret, answer.content, "a PATCH answer")
        assert_secret_absent(secret, caplog.text, "the log")


# -- what a PATCH refuses -----------------------------------------------------------------------


def test_put_is_405(api_client, cluster):
    response = api_client.put(f"{CLUSTERS}/{cluster['id']}", {"name": "x"}, format="json")
    body = assert_error(response, 405, "MethodNotAllowed")
    assert "PATCH" in response["Allow"] and "PUT" not in response["Allow"]
    assert body["message"] == 'Method "PUT" not allowed.'


def test_unknown_fields_are_400_naming_them_and_change_nothing(api_client, cluster, pve_api):
    response = patch(api_client, cluster, {"name": "renamed", "verify": False, "nmae": "x"})
    body = assert_error(response, 400, "BadRequest")
    assert set(body["details"]) == {"nmae", "verify"}
    assert "nmae, verify" in body["message"]
    assert show(api_client, cluster) == cluster


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"username": "root@pam", "password": NEW_PASSWORD, "token_id": "root@pam!ci"},
            "non_field_errors",
        ),
        ({"password": NEW_PASSWORD}, "username"),
        ({"token_secret": TOKEN_SECRET}, "token_id"),
        ({"token_id": "root@pam!ci"}, "token_secret"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"api_endpoint": "http://pve.example.com"}, "api_endpoint"),
        ({"verify_tls": "perhaps"}, "verify_tls"),
        ({"fingerprint": "AB:CD"}, "fingerprint"),
        ({"create_token": True}, "create_token"),
    ],
)
def test_bad_patches_are_400_naming_the_field_and_change_nothing(
    api_client, cluster, pve_api, body, field
):
    response = patch(api_client, cluster, body)
    assert field in assert_error(response, 400, "BadRequest")["details"]
    assert pve_api.call_count == 0
    assert show(api_client, cluster) == cluster


@pytest.mark.parametrize("payload", ['["name"]', '"prod"', "null"])
def test_a_patch_body_that_is_not_an_object_is_400(api_client, cluster, payload):
    response = api_client.patch(
        f"{CLUSTERS}/{cluster['id']}", payload, content_type="application/json"
    )
    assert_error(response, 400, "BadRequest")


def test_the_name_of_another_cluster_in_any_case_is_409(api_client, cluster, healthy_pve):
    [lab_endpoint] = pve.healthy_clusters(healthy_pve, ["Lab"]).values()
    assert register(api_client, name="Lab", api_endpoint=lab_endpoint)["name"] == "Lab"
    healthy_pve.reset_mock()
    response = patch(api_client, cluster, {"name": "lAB", "verify_tls": False})
    assert_error(response, 409, "Conflict")
    assert healthy_pve.call_count == 0
    assert show(api_client, cluster) == cluster


def test_patching_an_unknown_or_malformed_id(api_client):
    assert_error(patch(api_client, {"id": "nope"}, {"name": "x"}), 400, "BadRequest")
    missing = {"id": "3f2a9c1b-0000-4000-8000-000000000000"}
    assert_error(patch(api_client, missing, {"name": "x"}), 404, "NotFound")


def test_a_viewer_may_not_patch(cluster, django_user_model):
    from clusters.domain import VIEWERS
    from tests.conftest import with_role

    viewer = APIClient()
    viewer.force_authenticate(with_role(django_user_model.objects.create_user("viewer"), VIEWERS))
    assert_error(patch(viewer, cluster, {"name": "x"}), 403, "Forbidden")


# -- If-Match -----------------------------------------------------------------------------------


def test_a_matching_if_match_lets_the_patch_through(api_client, cluster):
    response = patch(api_client, cluster, {"name": "a"}, **{"If-Match": '"1"'})
    assert (response.status_code, response["ETag"]) == (200, '"2"')
    assert patch(api_client, cluster, {"name": "b"}, **{"If-Match": "*"}).status_code == 200


def test_a_stale_if_match_is_412_and_changes_nothing(api_client, cluster, pve_api):
    patch(api_client, cluster, {"name": "first"})
    response = patch(api_client, cluster, {"verify_tls": False}, **{"If-Match": '"1"'})
    body = assert_error(response, 412, "PreconditionFailed")
    assert body["details"] == {"version": 2}
    assert "version 2, not 1" in body["message"]
    assert pve_api.call_count == 0
    stored = show(api_client, cluster)
    assert (stored["verify_tls"], stored["version"]) == (True, 2)


def test_a_stale_if_match_fails_an_empty_patch_too(api_client, cluster):
    patch(api_client, cluster, {"name": "first"})
    assert_error(patch(api_client, cluster, {}, **{"If-Match": '"1"'}), 412, "PreconditionFailed")


@pytest.mark.parametrize("header", ["1", '"abc"', 'W/"1"', '"1", "2"', '"1', ""])
def test_a_malformed_if_match_is_400_naming_it(api_client, cluster, header):
    response = patch(api_client, cluster, {"name": "x"}, **{"If-Match": header})
    body = assert_error(response, 400, "BadRequest")
    assert "If-Match" in body["details"]
    assert show(api_client, cluster) == cluster


# -- racing edits, through the API, on every backend --------------------------------------------


def _race_backend(backend: str) -> Any:
    # Committed rows (the user, its group), which the racers' own database
    # connections see, whichever backend keeps the clusters.
    if backend in ("memory", "sqlite"):
        return pytest.param(backend, marks=pytest.mark.django_db(transaction=True), id=backend)
    marks = [pytest.mark.postgres]
    if postgres.ALIAS in settings.DATABASES:
        marks.append(pytest.mark.django_db(transaction=True, databases=["default", postgres.ALIAS]))
    return pytest.param(backend, marks=marks, id=backend)


class ProvingTogether:
    """The real Proxmox client, but each proof waits at a barrier until the
    other racer is proving too: both have read version 1 and passed the
    precondition before either can store. (requests-mock answers one
    request at a time, so the barrier cannot sit in a mocked answer.)"""

    def __init__(self, racers: int) -> None:
        self._client = proxmox_client_from_settings()
        self._barrier = threading.Barrier(racers, timeout=10)

    def inspect(self, target, credentials):
        self._barrier.wait()
        return self._client.inspect(target, credentials)


def _units_of_work(backend: str):
    if backend == "memory":
        return InMemoryUnitOfWork.factory()
    alias = "default" if backend == "sqlite" else postgres.ALIAS
    vendor = connections[alias].vendor
    if vendor != {"sqlite": "sqlite", "postgres": "postgresql"}[backend]:
        pytest.skip(f"database alias {alias!r} is {vendor} (DATABASE_URL)")
    cipher = CredentialCipher.from_settings()
    return lambda: DjangoUnitOfWork(alias, cipher=cipher)


@pytest.mark.parametrize("backend", [_race_backend(b) for b in ("memory", "sqlite", "postgres")])
def test_two_patches_with_the_same_if_match_one_wins_the_other_is_412(
    backend, compose, user, pve_api
):
    unit_of_work = _units_of_work(backend)
    pve.healthy_cluster(pve_api)
    compose(unit_of_work=unit_of_work)
    setup = APIClient()
    setup.force_authenticate(user)
    cluster = register(setup)
    compose(unit_of_work=unit_of_work, proxmox=ProvingTogether(racers=2))
    answers: dict[str, Any] = {}

    def racer(fingerprint: str) -> None:
        client = APIClient()
        client.force_authenticate(user)
        try:
            answers[fingerprint] = patch(
                client, cluster, {"fingerprint": fingerprint}, **{"If-Match": '"1"'}
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer, args=(fp,)) for fp in ("AA" * 32, "BB" * 32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 412], {fp: a.content for fp, a in answers.items()}
    [winner] = [fp for fp, answer in answers.items() if answer.status_code == 200]
    stored = show(setup, cluster)
    assert (stored["version"], stored["fingerprint"].replace(":", "")) == (2, winner)
    [loser] = [answer for answer in answers.values() if answer.status_code == 412]
    assert loser.json()["details"] == {"version": 2}
