"""ProxmoxClient's orchestration (clusters/proxmox/client.py) against
requests-mock with real PVE shapes: the status read's early connection, the
sequential baseline, the /nodes fallback without Sys.Audit."""

from __future__ import annotations

import threading

import pytest
import requests

from clusters.domain import (
    ProxmoxAuthenticationFailed,
    ProxmoxPermissionDenied,
    TokenHandOffRefused,
    assess_health,
)
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.unit.proxmox.conftest import (
    LOGIN_PATH,
    PASSWORD,
    PASSWORD_CREDENTIALS,
    TARGET,
    TOKEN_CREDENTIALS,
    client,
    messages,
)

# -- the parallel client's head start ------------------------------------------------------------


def test_parallel_client_opens_its_status_connection_without_credentials(m):
    pve.healthy_cluster(m)
    m.get(f"{pve.API}/access/ticket", json={"data": None})
    report = ProxmoxClient().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert assess_health(report).status == "healthy"
    opener = next(r for r in m.request_history if (r.method, r.path) == ("GET", LOGIN_PATH))
    assert "Cookie" not in opener.headers and "Authorization" not in opener.headers
    assert opener.body is None
    assert [r.method for r in m.request_history if r.path == LOGIN_PATH].count("POST") == 1


def test_a_failing_head_start_does_not_fail_the_inspection(m):
    pve.healthy_cluster(m)
    m.get(f"{pve.API}/access/ticket", exc=requests.exceptions.ConnectionError("reset"))
    assert ProxmoxClient().inspect(TARGET, PASSWORD_CREDENTIALS).version == "8.2.4"


def test_a_refused_login_ends_the_waiting_status_read(m):
    pve.login_refused(m)
    m.get(f"{pve.API}/access/ticket", json={"data": None})
    pve.cluster_status(m, pve.three_node_cluster())
    client = ProxmoxClient()
    with pytest.raises(ProxmoxAuthenticationFailed):
        client.inspect(TARGET, PASSWORD_CREDENTIALS)
    assert client._executor is not None
    # The executor shuts down only once the status read has ended.
    shutdown = threading.Thread(target=client._executor.shutdown)
    shutdown.start()
    shutdown.join(timeout=5)
    assert not shutdown.is_alive(), "the status read is still waiting for a ticket"
    assert "/api2/json/cluster/status" not in [r.path for r in m.request_history]


def test_sequential_client_makes_exactly_the_four_calls(m):
    pve.healthy_cluster(m)
    client().inspect(TARGET, PASSWORD_CREDENTIALS)  # client() is sequential
    assert [(r.method, r.path) for r in m.request_history] == [
        ("POST", LOGIN_PATH),
        ("GET", "/api2/json/version"),
        ("GET", "/api2/json/cluster/status"),
        ("GET", "/api2/json/nodes"),
    ]


# -- permissions --------------------------------------------------------------------------------


def test_without_sys_audit_the_visible_nodes_are_counted(m):
    pve.login_ok(m)
    pve.version(m)
    pve.cluster_status_forbidden(m)
    pve.nodes(m)
    health = assess_health(client().inspect(TARGET, PASSWORD_CREDENTIALS))
    assert (health.status, health.node_count) == ("unknown", 2)


# -- the token hand-off -------------------------------------------------------------------------


def test_issue_token_logs_in_creates_and_grants_in_that_order(m):
    pve.token_hand_off(m)
    token = client().issue_token(
        TARGET, PASSWORD_CREDENTIALS, name="proxmoxer-0a1b2c3d", comment="c"
    )
    assert token.token_id == "root@pam!proxmoxer-0a1b2c3d" and token.created_by_registry
    assert [(r.method, r.path) for r in m.request_history] == [
        ("POST", LOGIN_PATH),
        ("POST", "/api2/json/access/users/root@pam/token/proxmoxer-0a1b2c3d"),
        ("PUT", "/api2/json/access/acl"),
    ]


def test_a_refused_creation_is_a_refused_hand_off_with_proxmoxs_reason(m):
    pve.login_ok(m)
    pve.token_refused(m)
    with pytest.raises(TokenHandOffRefused) as raised:
        client().issue_token(TARGET, PASSWORD_CREDENTIALS, name="proxmoxer-0a1b2c3d", comment="")
    assert raised.value.message.startswith(
        "Proxmox refused to create an API token for root@pam: Permission check failed."
    )
    assert [r.method for r in m.request_history] == ["POST", "POST"]


def test_a_refused_grant_deletes_the_token_before_it_is_reported(m):
    pve.login_ok(m)
    pve.token_created(m)
    pve.acl_refused(m)
    pve.token_deleted(m)
    with pytest.raises(TokenHandOffRefused) as raised:
        client().issue_token(TARGET, PASSWORD_CREDENTIALS, name="proxmoxer-0a1b2c3d", comment="")
    assert "grant PVEAuditor on / to root@pam!proxmoxer-0a1b2c3d" in raised.value.message
    assert raised.value.details == {
        "proxmox_reason": "Permission check failed (/, Permissions.Modify)"
    }
    assert m.last_request.method == "DELETE"
    assert_secret_absent(PASSWORD, messages(raised.value), "the error")


def test_delete_token_logs_in_with_the_credentials_given(m):
    pve.login_ok(m)
    pve.token_deleted(m)
    client().delete_token(TARGET, PASSWORD_CREDENTIALS, "root@pam!proxmoxer-0a1b2c3d")
    assert [(r.method, r.path) for r in m.request_history] == [
        ("POST", LOGIN_PATH),
        ("DELETE", "/api2/json/access/users/root@pam/token/proxmoxer-0a1b2c3d"),
    ]


def test_a_token_deleting_itself_is_refused_as_pve_refuses_it(m):
    pve.token_refused(m, "DELETE")
    with pytest.raises(ProxmoxPermissionDenied):
        client().delete_token(TARGET, TOKEN_CREDENTIALS, TOKEN_CREDENTIALS.token_id)
    assert m.last_request.headers["Authorization"].startswith("PVEAPIToken=root@pam!proxmoxer=")
