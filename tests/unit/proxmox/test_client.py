"""ProxmoxClient's orchestration (clusters/proxmox/client.py) against
requests-mock with real PVE shapes: the status read's early connection, the
sequential baseline, the /nodes fallback without Sys.Audit."""

from __future__ import annotations

import threading

import pytest
import requests

from clusters.domain import ProxmoxAuthenticationFailed, assess_health
from clusters.proxmox import ProxmoxClient
from tests import pve_responses as pve
from tests.unit.proxmox.conftest import LOGIN_PATH, PASSWORD_CREDENTIALS, TARGET, client

# -- the parallel client's head start --------------------------------------------------


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


# -- permissions -----------------------------------------------------------------------


def test_without_sys_audit_the_visible_nodes_are_counted(m):
    pve.login_ok(m)
    pve.version(m)
    pve.cluster_status_forbidden(m)
    pve.nodes(m)
    health = assess_health(client().inspect(TARGET, PASSWORD_CREDENTIALS))
    assert (health.status, health.node_count) == ("unknown", 2)
