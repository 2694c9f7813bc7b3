"""ProxmoxClient (clusters/proxmox/client.py) against the PVE simulator over
real HTTPS on loopback: the status read's early connection, one round trip
after the login, each cluster state judged from real answers."""

from __future__ import annotations

import pytest

from clusters.domain import assess_health
from pve_simulator.server import PveSimulator
from tests.integration.proxmox.simulated import client, password, pinned, token

# -- the status read's connection ------------------------------------------------------


def test_the_read_connections_are_opened_during_the_login_without_credentials(sim):
    sim.configure(latency=0.1)
    client().inspect(pinned(sim), password(sim))
    by_path = {(r.method, r.path): r for r in sim.requests}
    login = by_path["POST", "/api2/json/access/ticket"]
    openers = [r for r in sim.requests if (r.method, r.path) == ("GET", "/api2/json/access/ticket")]
    version = by_path["GET", "/api2/json/version"]
    status = by_path["GET", "/api2/json/cluster/status"]
    nodes = by_path["GET", "/api2/json/nodes"]
    assert [(opener.auth, opener.status) for opener in openers] == [("none", 200)] * 2
    assert all(opener.started < login.answered for opener in openers)  # during the login
    assert {status.connection, nodes.connection} == {opener.connection for opener in openers}
    assert login.connection == version.connection not in {status.connection, nodes.connection}


def test_token_inspection_opens_no_connection_in_advance(sim):
    client().inspect(pinned(sim), token(sim))
    assert [r for r in sim.requests if r.path == "/api2/json/access/ticket"] == []


def test_sequential_client_uses_one_connection(sim):
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert [r.method for r in sim.requests] == ["POST", "GET", "GET", "GET"]
    assert len({r.connection for r in sim.requests}) == 1


# -- what the cluster reports ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "status", "nodes", "version"),
    [
        ("healthy", "healthy", 3, "8.2.4"),
        ("degraded", "degraded", 3, "8.2.4"),
        ("no-quorum", "unhealthy", 3, "8.2.4"),
        ("standalone-pve7", "healthy", 1, "7.4-13"),
        ("no-permission", "unknown", 3, "8.2.4"),  # /nodes lists every node (PVE/API2/Nodes.pm)
    ],
)
def test_each_cluster_state_is_judged_from_real_answers(sim, scenario, status, nodes, version):
    sim.set_scenario(scenario)
    report = client().inspect(pinned(sim), password(sim))
    health = assess_health(report)
    assert (health.status, health.node_count, report.version) == (status, nodes, version)


# -- one round trip after login --------------------------------------------------------


def _overlap(sim: PveSimulator, first: str = "/version", second: str = "/cluster/status") -> bool:
    one = next(r for r in sim.requests if r.path.endswith(first))
    other = next(r for r in sim.requests if r.path.endswith(second))
    return one.started < other.answered and other.started < one.answered


def test_version_status_and_nodes_are_read_in_parallel(sim):
    sim.configure(latency=0.2)
    client().inspect(pinned(sim), password(sim))
    assert _overlap(sim) and _overlap(sim, "/version", "/nodes")


def test_all_three_are_read_in_parallel_with_a_token(sim):
    sim.configure(latency=0.2)
    client().inspect(pinned(sim), token(sim))
    assert _overlap(sim) and _overlap(sim, "/nodes", "/cluster/status")


def test_sequential_client_reads_one_after_the_other(sim):
    sim.configure(latency=0.2)
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert not _overlap(sim)
