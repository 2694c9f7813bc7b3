"""The audit log through the API (docs/product-contract.md §13): reading it
at GET /api/v1/audit-events (superusers only), and what the API records of
refusals and failures, with the status it answered and never a secret."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from clusters.domain import AuditAction, AuditEvent, AuditQuery, Outcome
from clusters.repositories.memory import InMemoryAuditLog, InMemoryUnitOfWork
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.fakes import FakeProxmox
from tests.roles import client_for

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
EVENTS = "/api/v1/audit-events"
PASSWORD = "Pa55-audit-api-secret-91c2"
EVENT_FIELDS = {
    "id",
    "at",
    "actor",
    "action",
    "outcome",
    "status_code",
    "cluster_id",
    "cluster_name",
    "source_ip",
    "changes",
}


def registration(**overrides):
    body = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
    }
    body.update(overrides)
    return body


@pytest.fixture
def admin():
    return client_for("superuser")


@pytest.fixture
def operator():
    return client_for("operator")


@pytest.fixture
def fake_proxmox(compose):
    proxmox = FakeProxmox()
    compose(proxmox=proxmox)
    return proxmox


def stored_events(unit_of_work):
    return list(unit_of_work().audit.list())


def read(client, **query):
    response = client.get(EVENTS, query)
    assert response.status_code == 200, response.content
    return response.json()


# -- reading --------------------------------------------------------------------------------


def test_the_log_reads_newest_first_in_the_shape_of_the_contract(admin, operator, fake_proxmox):
    cluster = operator.post(CLUSTERS, registration(), format="json").json()
    operator.post(f"{CLUSTERS}/{cluster['id']}/refresh")
    operator.delete(f"{CLUSTERS}/{cluster['id']}")

    body = read(admin)

    assert set(body) == {"events", "total", "next", "previous"}
    assert (body["total"], body["next"], body["previous"]) == (3, None, None)
    assert [event["action"] for event in body["events"]] == [
        "cluster.deregister",
        "cluster.refresh",
        "cluster.register",
    ]
    registered = body["events"][2]
    assert set(registered) == EVENT_FIELDS
    assert registered["id"] != registered["cluster_id"]
    assert {key: registered[key] for key in EVENT_FIELDS - {"id", "at", "changes"}} == {
        "actor": "operator",
        "action": "cluster.register",
        "outcome": "success",
        "status_code": 201,
        "cluster_id": cluster["id"],
        "cluster_name": "prod",
        "source_ip": "127.0.0.1",
    }
    assert registered["at"].endswith("Z")
    assert registered["changes"]["password"] == "changed"
    assert registered["changes"]["name"] == [None, "prod"]


def test_each_filter_of_the_query_string_selects(admin, operator, fake_proxmox, unit_of_work):
    prod = operator.post(CLUSTERS, registration(), format="json").json()
    lab = operator.post(
        CLUSTERS, registration(name="lab", api_endpoint="lab.example.com"), format="json"
    ).json()
    client_for("viewer").delete(f"{CLUSTERS}/{lab['id']}")  # refused: auth.forbidden
    operator.post(f"{CLUSTERS}/{prod['id']}/refresh")
    first = stored_events(unit_of_work)[-1]

    def actions(**query):
        return [event["action"] for event in read(admin, **query)["events"]]

    assert actions(action="cluster.register") == ["cluster.register"] * 2
    assert actions(actor="viewer") == ["auth.forbidden"]
    assert actions(outcome="failure") == ["auth.forbidden"]
    assert actions(cluster=prod["id"]) == ["cluster.refresh", "cluster.register"]
    assert actions(cluster="lab") == ["auth.forbidden", "cluster.register"]
    assert actions(cluster=prod["id"], action="cluster.refresh") == ["cluster.refresh"]
    later = (first.at + timedelta(microseconds=1)).isoformat()
    assert len(actions(since=first.at.isoformat())) == 4
    assert actions(until=first.at.isoformat()) == []
    assert len(actions(since=later)) < 4
    assert actions(since="2000-01-01T00:00:00Z", until="2000-01-02") == []


def test_pages_link_to_each_other_and_keep_the_filters(admin, fake_proxmox, unit_of_work):
    for number in range(5):
        admin.post(
            CLUSTERS,
            registration(name=f"c{number}", api_endpoint=f"c{number}.example.com"),
            format="json",
        )

    first = read(admin, limit=2, action="cluster.register")
    second = APIClient.get(admin, first["next"]).json()
    third = APIClient.get(admin, second["next"]).json()

    assert [e["cluster_name"] for e in first["events"]] == ["c4", "c3"]
    assert [e["cluster_name"] for e in second["events"]] == ["c2", "c1"]
    assert [e["cluster_name"] for e in third["events"]] == ["c0"]
    assert {first["total"], second["total"], third["total"]} == {5}
    assert "action=cluster.register" in first["next"] and "limit=2" in first["next"]
    assert first["previous"] is None and third["next"] is None
    assert first["next"].startswith("http://testserver/api/v1/audit-events?")
    assert APIClient.get(admin, third["previous"]).json()["events"] == second["events"]
    assert APIClient.get(admin, second["previous"]).json()["events"] == first["events"]
    assert "offset" not in second["previous"]


@pytest.mark.parametrize(
    "query",
    [
        {"action": "cluster.explode"},
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"until": "2026-13-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"offset": "99999999999999999999"},
        {"actor": "x" * 151},
        {"cluster": "x" * 256},
    ],
)
def test_a_bad_filter_value_is_a_400_naming_it(admin, query):
    response = admin.get(EVENTS, query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BadRequest"
    assert set(body["details"]) == set(query)


@pytest.mark.parametrize("role", ["no_role", "viewer", "operator"])
def test_only_superusers_read_the_log_and_a_refusal_is_recorded(role, unit_of_work):
    response = client_for(role).get(EVENTS)

    assert response.status_code == 403
    assert response.json()["message"].endswith("may not read the audit log: that takes a superuser")
    [event] = stored_events(unit_of_work)
    assert (event.action, event.outcome, event.status_code, event.actor) == (
        AuditAction.AUTH_FORBIDDEN,
        Outcome.FAILURE,
        403,
        role.replace("_", "-"),
    )


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_api_path_writes_or_deletes_an_event(admin, fake_proxmox, unit_of_work, method):
    admin.post(CLUSTERS, registration(), format="json")
    [event] = stored_events(unit_of_work)

    on_list = getattr(admin, method)(EVENTS, {"actor": "forged"}, format="json")
    on_event = getattr(admin, method)(f"{EVENTS}/{event.id}", {"actor": "forged"}, format="json")

    assert on_list.status_code == 405
    assert on_event.status_code == 404
    assert stored_events(unit_of_work) == [event]


# -- what the API records of refusals and failures -------------------------------------------


def test_a_refused_registration_is_recorded_and_its_password_appears_in_no_event(
    operator, admin, pve_api, unit_of_work, caplog
):
    pve.login_refused(pve_api)

    response = operator.post(CLUSTERS, registration(), format="json")

    assert response.status_code == 401
    [event] = stored_events(unit_of_work)
    assert (event.action, event.outcome, event.status_code) == (
        AuditAction.CLUSTER_REGISTER,
        Outcome.FAILURE,
        401,
    )
    assert (event.actor, event.cluster_id, event.cluster_name, event.changes) == (
        "operator",
        None,
        "prod",
        {},
    )
    listed = admin.get(EVENTS)
    assert_secret_absent(PASSWORD, listed.content, "the audit-events answer")
    assert_secret_absent(PASSWORD, repr(stored_events(unit_of_work)), "the stored events")
    assert_secret_absent(PASSWORD, caplog.text, "the log")


@pytest.mark.parametrize(
    ("call", "status", "action"),
    [
        (
            lambda c, cid: c.post(CLUSTERS, registration(name="\u3164"), format="json"),
            400,
            "register",
        ),
        (
            lambda c, cid: c.post(CLUSTERS, registration(name="PROD"), format="json"),
            409,
            "register",
        ),
        (lambda c, cid: c.delete(f"{CLUSTERS}/{uuid.UUID(int=7)}"), 404, "deregister"),
        (lambda c, cid: c.post(f"{CLUSTERS}/{uuid.UUID(int=7)}/refresh"), 404, "refresh"),
        (lambda c, cid: c.post(f"{CLUSTERS}/not-a-uuid/refresh"), 400, "refresh"),
        (lambda c, cid: c.post(CLUSTERS, "{", content_type="application/json"), 400, "register"),
        (
            lambda c, cid: c.patch(
                f"{CLUSTERS}/{cid}", {"name": "lab"}, format="json", HTTP_IF_MATCH='"9"'
            ),
            412,
            "edit",
        ),
        (
            lambda c, cid: c.patch(f"{CLUSTERS}/{cid}", {"name": "\u2800"}, format="json"),
            400,
            "edit",
        ),
    ],
    ids=[
        "invalid",
        "taken",
        "unknown-delete",
        "unknown-refresh",
        "bad-id",
        "bad-json",
        "stale-edit",
        "invisible-rename",
    ],
)
def test_a_failed_cluster_action_is_recorded_with_the_status_answered(
    operator, fake_proxmox, unit_of_work, call, status, action
):
    existing = operator.post(CLUSTERS, registration(), format="json").json()

    response = call(operator, existing["id"])

    assert response.status_code == status
    event = stored_events(unit_of_work)[0]
    assert (event.action, event.outcome, event.status_code) == (
        AuditAction(f"cluster.{action}"),
        Outcome.FAILURE,
        status,
    )
    assert len(stored_events(unit_of_work)) == 2, "the registration, then the failure"


def test_a_failed_refresh_names_the_cluster_it_was_for(operator, compose, unit_of_work):
    proxmox = FakeProxmox()
    compose(proxmox=proxmox)
    cluster = operator.post(CLUSTERS, registration(), format="json").json()
    proxmox.before_answer = lambda: _edit_meanwhile(unit_of_work, cluster["id"])

    assert operator.post(f"{CLUSTERS}/{cluster['id']}/refresh").status_code == 409

    event = stored_events(unit_of_work)[0]
    assert (event.action, event.status_code) == (AuditAction.CLUSTER_REFRESH, 409)
    assert (str(event.cluster_id), event.cluster_name) == (cluster["id"], "prod")


def _edit_meanwhile(unit_of_work, cluster_id):
    with unit_of_work() as uow:
        stored = uow.clusters.find_by_id(uuid.UUID(cluster_id))
        uow.clusters.update(stored.reconfigured(at=stored.updated_at, verify_tls=False))
        uow.commit()


def test_a_forbidden_action_is_recorded_as_auth_forbidden_with_the_cluster(
    operator, fake_proxmox, unit_of_work
):
    cluster = operator.post(CLUSTERS, registration(), format="json").json()
    viewer = client_for("viewer")

    assert viewer.delete(f"{CLUSTERS}/{cluster['id']}").status_code == 403
    assert viewer.post(CLUSTERS, registration(name="other"), format="json").status_code == 403

    registering, deleting = stored_events(unit_of_work)[:2]
    assert (deleting.action, deleting.status_code, deleting.actor) == (
        AuditAction.AUTH_FORBIDDEN,
        403,
        "viewer",
    )
    assert (str(deleting.cluster_id), deleting.cluster_name) == (cluster["id"], "prod")
    assert (registering.action, registering.cluster_name) == (AuditAction.AUTH_FORBIDDEN, None)
    assert fake_proxmox.calls == [fake_proxmox.calls[0]], "only the operator's registration"


def test_anonymous_and_successful_reads_are_not_recorded(operator, fake_proxmox, unit_of_work):
    cluster = operator.post(CLUSTERS, registration(), format="json").json()
    APIClient().delete(f"{CLUSTERS}/{cluster['id']}")
    APIClient().get(EVENTS)
    operator.get(CLUSTERS)
    operator.get(f"{CLUSTERS}/{uuid.UUID(int=9)}")  # a failed read: not an audited action

    assert [event.action for event in stored_events(unit_of_work)] == [AuditAction.CLUSTER_REGISTER]


class _BrokenAuditLog(InMemoryAuditLog):
    def append(self, event: AuditEvent) -> None:
        raise OSError("the audit store is full")


def test_a_failure_that_cannot_be_recorded_still_gets_its_answer(operator, compose, caplog):
    units = InMemoryUnitOfWork.factory()
    clusters = units().clusters
    broken = _BrokenAuditLog(clusters.batch)
    compose(proxmox=FakeProxmox(), unit_of_work=lambda: InMemoryUnitOfWork(clusters, broken))

    with caplog.at_level(logging.ERROR, logger="clusters.api"):
        response = operator.delete(f"{CLUSTERS}/{uuid.UUID(int=3)}")

    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"
    assert "Could not record an audit event, action=cluster.deregister" in caplog.text


def test_events_read_through_the_api_equal_the_stored_ones(admin, fake_proxmox, unit_of_work):
    admin.post(CLUSTERS, registration(), format="json")
    [stored] = unit_of_work().audit.query(AuditQuery()).events

    [listed] = read(admin)["events"]

    assert listed["id"] == str(stored.id)
    assert json.loads(json.dumps(listed["changes"])) == dict(stored.changes)
