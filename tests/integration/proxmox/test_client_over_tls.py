"""ProxmoxClient (clusters/proxmox/client.py) against the PVE simulator over
real HTTPS on loopback: the status read's early connection, one round trip
after the login, each cluster state judged from real answers."""

from __future__ import annotations

import pytest

from clusters.domain import assess_health
from pve_simulator.server import PveSimulator
from tests.integration.proxmox.simulated import client, password, pinned, token

# -- the status read's connection ------------------------------------------------------


def test_the_status_connection_is_opened_during_the_login_without_credentials(sim):
    sim.configure(latency=0.1)
    client().inspect(pinned(sim), password(sim))
    by_path = {(r.method, r.path): r for r in sim.requests}
    login = by_path["POST", "/api2/json/access/ticket"]
    opener = by_path["GET", "/api2/json/access/ticket"]
    version = by_path["GET", "/api2/json/version"]
    status = by_path["GET", "/api2/json/cluster/status"]
    assert (opener.auth, opener.status) == ("none", 200)
    assert opener.started < login.answered  # while the login was under way
    assert status.connection == opener.connection != login.connection == version.connection


def test_token_inspection_opens_no_connection_in_advance(sim):
    client().inspect(pinned(sim), token(sim))
    assert [r for r in sim.requests if r.path == "/api2/json/access/ticket"] == []


def test_sequential_client_uses_one_connection(sim):
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert [r.method for r in sim.requests] == ["POST", "GET", "GET"]
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


def _overlap(sim: PveSimulator) -> bool:
    version = next(r for r in sim.requests if r.path.endswith("/version"))
    status = next(r for r in sim.requests if r.path.endswith("/cluster/status"))
    return version.started < status.answered and status.started < version.answered


def test_version_and_status_are_read_in_parallel(sim):
    sim.configure(latency=0.2)
    client().inspect(pinned(sim), password(sim))
    assert _overlap(sim)


def test_sequential_client_reads_one_after_the_other(sim):
    sim.configure(latency=0.2)
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert not _overlap(sim)
