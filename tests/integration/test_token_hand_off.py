"""The token hand-off through the REST API, with Proxmox played by
requests-mock in the shapes of pve-access-control (``src/PVE/API2/User.pm``
token endpoints, ``src/PVE/API2/ACL.pm``): what is created, granted,
verified and stored, what a refusal answers, and that nothing is left on
the cluster or in the registry when a step fails."""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import parse_qs

import pytest

from clusters.domain import AuditAction
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-handoff-secret-8c1e"
TOKEN_NAME_RE = re.compile(r"^root@pam!proxmoxer-[0-9a-f]{8}$")


def register(api_client, **fields):
    body = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        "create_token": True,
        **fields,
    }
    return api_client.post(CLUSTERS, body, format="json")


def calls(m, method=None, path_part=""):
    return [
        call
        for call in pve.api_calls(m)
        if (method is None or call.method == method) and path_part in call.path
    ]


def form(call):
    return {key: values[0] for key, values in parse_qs(call.text).items()}


def assert_no_secret(response, caplog):
    for secret in (PASSWORD, pve.TOKEN_VALUE, pve.TICKET):
        assert_secret_absent(secret, response.content, "the answer")
        assert_secret_absent(secret, caplog.text, "the log")


def test_registering_with_create_token_creates_grants_verifies_and_keeps_only_the_token(
    api_client, pve_api, unit_of_work, caplog
):
    pve.token_hand_off(pve_api)
    with caplog.at_level(logging.INFO):
        response = register(api_client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["auth_method"], body["username"]) == ("token", None)
    assert TOKEN_NAME_RE.match(body["token_id"])
    token_name = body["token_id"].split("!")[1]

    [create] = calls(pve_api, "POST", "/token/")
    assert create.path == f"/api2/json/access/users/root@pam/token/{token_name}"
    assert form(create)["privsep"] == "1"
    assert body["id"] in form(create)["comment"]
    assert create.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN
    assert create.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"
    [grant] = calls(pve_api, "PUT", "/access/acl")
    assert form(grant) == {
        "path": "/",
        "roles": "PVEAuditor",
        "tokens": body["token_id"],
        "propagate": "1",
    }
    assert grant.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN
    reads = calls(pve_api, "GET")
    assert {call.path for call in reads} == {
        "/api2/json/version",
        "/api2/json/cluster/status",
        "/api2/json/nodes",
    }
    for read in reads:  # verified with the new token, not the ticket
        assert read.headers["Authorization"] == f"PVEAPIToken={body['token_id']}={pve.TOKEN_VALUE}"
        assert "Cookie" not in read.headers
    assert calls(pve_api, "DELETE") == []

    with unit_of_work() as uow:
        stored = uow.clusters.find_by_id(uuid.UUID(body["id"]))
        [event] = [e for e in uow.audit.list() if e.action == AuditAction.CLUSTER_REGISTER]
    assert stored.credentials.secret.reveal() == pve.TOKEN_VALUE
    assert stored.credentials.created_by_registry
    assert "password" not in event.changes
    assert_secret_absent(PASSWORD, repr(stored), "the stored cluster")
    assert "Proxmox API token created" in caplog.text
    assert_no_secret(response, caplog)


def test_a_later_check_uses_the_token(api_client, pve_api):
    pve.token_hand_off(pve_api)
    cluster = register(api_client).json()
    pve_api.reset_mock()

    assert api_client.post(f"{CLUSTERS}/{cluster['id']}/refresh").status_code == 200
    assert calls(pve_api, "POST") == [], "no login: the password is gone"
    for read in calls(pve_api, "GET"):
        assert read.headers["Authorization"].startswith(f"PVEAPIToken={cluster['token_id']}=")


def test_no_permissions_modify_is_403_with_proxmoxs_reason_and_the_token_is_deleted_again(
    api_client, pve_api, caplog
):
    pve.healthy_cluster(pve_api)
    pve.token_created(pve_api)
    pve.acl_refused(pve_api)
    pve.token_deleted(pve_api)

    with caplog.at_level(logging.INFO):
        response = register(api_client)

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "Forbidden"
    assert "Permission check failed (/, Permissions.Modify)" in body["message"]
    assert body["details"] == {"proxmox_reason": "Permission check failed (/, Permissions.Modify)"}
    [create] = calls(pve_api, "POST", "/token/")
    [delete] = calls(pve_api, "DELETE")
    assert delete.path == create.path, "the token made before the refusal is gone again"
    assert delete.headers["CSRFPreventionToken"] == pve.CSRF_TOKEN
    assert calls(pve_api, "GET") == [], "nothing was verified or read"
    assert api_client.get(CLUSTERS).json()["total"] == 0
    assert "Proxmox API token not created" in caplog.text
    assert_no_secret(response, caplog)


def test_an_account_that_may_not_create_tokens_is_403_and_nothing_else_is_tried(
    api_client, pve_api
):
    pve.healthy_cluster(pve_api)
    pve.token_refused(pve_api)
    response = register(api_client, username="monitor@pve")
    assert response.status_code == 403
    assert (
        "create an API token for monitor@pve: Permission check failed"
        in (response.json()["message"])
    )
    assert calls(pve_api, "PUT") == calls(pve_api, "DELETE") == []
    assert api_client.get(CLUSTERS).json()["total"] == 0


def test_a_refused_token_that_cannot_be_deleted_again_is_named_in_the_answer(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    pve.token_created(pve_api)
    pve.acl_refused(pve_api)
    pve_api.delete(
        re.compile(r".*/token/.*"), status_code=500, reason="deleting token failed", json={}
    )
    response = register(api_client)
    assert response.status_code == 403
    assert re.search(
        r"the token root@pam!proxmoxer-[0-9a-f]{8} it had created could not be deleted again",
        response.json()["message"],
    )


def test_an_acl_step_failing_otherwise_is_502_and_the_token_is_deleted_again(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    pve.token_created(pve_api)
    pve_api.put(f"{pve.API}/access/acl", status_code=500, reason="role 'PVEAuditor' does not exist")
    pve.token_deleted(pve_api)
    response = register(api_client)
    assert response.status_code == 502
    assert len(calls(pve_api, "DELETE")) == 1
    assert api_client.get(CLUSTERS).json()["total"] == 0


def test_a_token_name_taken_on_the_cluster_is_502_with_proxmoxs_reason_only(api_client, pve_api):
    pve.healthy_cluster(pve_api)
    pve.token_exists(pve_api)
    response = register(api_client)
    assert response.status_code == 502
    body = response.json()
    assert body["details"] is None, "no body text of a Proxmox answer is passed on"
    assert "Parameter verification failed" in body["message"]
    assert calls(pve_api, "DELETE") == []


def test_a_token_that_fails_its_verification_is_deleted_with_the_password(api_client, pve_api):
    pve.login_ok(pve_api)
    pve.token_created(pve_api)
    pve.acl_granted(pve_api)
    pve.token_deleted(pve_api)
    pve_api.get(f"{pve.API}/version", status_code=401, reason="invalid token value!")
    pve.cluster_status(pve_api, pve.three_node_cluster())

    response = register(api_client)

    assert response.status_code == 401
    [delete] = calls(pve_api, "DELETE")
    assert delete.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"
    assert api_client.get(CLUSTERS).json()["total"] == 0


def test_wrong_password_creates_nothing(api_client, pve_api):
    pve.login_refused(pve_api)
    pve.token_created(pve_api)
    response = register(api_client)
    assert response.status_code == 401
    assert calls(pve_api, "POST", "/token/") == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"username": None, "token_id": "root@pam!x1", "token_secret": "s"}, "create_token"),
        ({"password": None}, "password"),
    ],
)
def test_create_token_without_a_password_is_400_naming_the_field(
    api_client, pve_api, fields, named
):
    body = {
        "name": "p",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        "create_token": True,
        **fields,
    }
    response = api_client.post(
        CLUSTERS, {k: v for k, v in body.items() if v is not None}, format="json"
    )
    assert response.status_code == 400
    assert named in response.json()["details"]
    assert pve_api.call_count == 0


# -- an edit that hands off ---------------------------------------------------------------------


def test_a_patch_with_a_password_and_create_token_hands_off(api_client, pve_api):
    pve.token_hand_off(pve_api)
    created = register(api_client, create_token=False).json()
    assert created["auth_method"] == "password"

    response = api_client.patch(
        f"{CLUSTERS}/{created['id']}",
        {"username": "root@pam", "password": PASSWORD, "create_token": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert TOKEN_NAME_RE.match(body["token_id"])
    assert (body["auth_method"], body["version"], response["ETag"]) == ("token", 2, '"2"')


def test_create_token_in_a_patch_without_a_password_is_400(api_client, pve_api):
    pve.token_hand_off(pve_api)
    created = register(api_client, create_token=False).json()
    pve_api.reset_mock()
    response = api_client.patch(
        f"{CLUSTERS}/{created['id']}", {"create_token": True}, format="json"
    )
    assert response.status_code == 400
    assert "create_token" in response.json()["details"]
    assert pve_api.call_count == 0


# -- deregistering ------------------------------------------------------------------------------


def test_deregistering_with_the_owners_password_deletes_the_token(
    api_client, pve_api, unit_of_work
):
    pve.token_hand_off(pve_api)
    cluster = register(api_client).json()
    pve_api.reset_mock()

    response = api_client.delete(
        f"{CLUSTERS}/{cluster['id']}",
        {"username": "root@pam", "password": PASSWORD},
        format="json",
    )

    assert response.status_code == 204 and response.content == b""
    [login] = calls(pve_api, "POST")
    assert form(login) == {"username": "root@pam", "password": PASSWORD}
    [delete] = calls(pve_api, "DELETE")
    name = cluster["token_id"].split("!")[1]
    assert delete.path == f"/api2/json/access/users/root@pam/token/{name}"
    with unit_of_work() as uow:
        [event] = [e for e in uow.audit.list() if e.action == AuditAction.CLUSTER_DEREGISTER]
    assert event.changes["cluster_token"] == [cluster["token_id"], "deleted"]


def test_deregistering_without_a_password_tries_the_token_and_records_the_refusal(
    api_client, pve_api, unit_of_work, caplog
):
    pve.token_hand_off(pve_api)
    cluster = register(api_client).json()
    pve_api.reset_mock()
    pve.token_refused(pve_api, "DELETE")  # a token is never its own user

    with caplog.at_level(logging.INFO):
        response = api_client.delete(f"{CLUSTERS}/{cluster['id']}")

    assert response.status_code == 204
    [delete] = calls(pve_api, "DELETE")
    assert delete.headers["Authorization"].startswith(f"PVEAPIToken={cluster['token_id']}=")
    assert api_client.get(f"{CLUSTERS}/{cluster['id']}").status_code == 404
    with unit_of_work() as uow:
        [event] = [e for e in uow.audit.list() if e.action == AuditAction.CLUSTER_DEREGISTER]
    token_id, outcome = event.changes["cluster_token"]
    assert token_id == cluster["token_id"]
    assert "left on the cluster: PVE does not let an API token delete itself" in outcome
    assert "Proxmox API token not deleted" in caplog.text
    assert_no_secret(response, caplog)


def test_a_failed_deletion_never_blocks_deregistering(api_client, pve_api):
    pve.token_hand_off(pve_api)
    cluster = register(api_client).json()
    pve_api.post(f"{pve.API}/access/ticket", status_code=503, reason="Service Unavailable")
    response = api_client.delete(
        f"{CLUSTERS}/{cluster['id']}", {"username": "root@pam", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 204
    assert api_client.get(CLUSTERS).json()["total"] == 0


def test_a_half_given_owner_is_400_and_deregisters_nothing(api_client, pve_api):
    pve.token_hand_off(pve_api)
    cluster = register(api_client).json()
    response = api_client.delete(
        f"{CLUSTERS}/{cluster['id']}", {"password": PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()["details"]
    assert api_client.get(f"{CLUSTERS}/{cluster['id']}").status_code == 200
