"""What a check judges from a report (clusters/domain/health.py): the
status with its reason, the nodes online, the PVE cluster's name, and the
node list of docs/product-contract.md §10, both reads merged."""

from __future__ import annotations

import pytest

from clusters.domain import (
    ClusterStatus,
    ClusterStatusEntry,
    NodeEntry,
    NodeState,
    ProxmoxReport,
    assess_health,
    node_states,
)
from tests.fakes import DEGRADED_REPORT, HEALTHY_REPORT


def _status(*, quorate: bool = True, online: tuple[bool, ...] = (True, True, True)) -> list:
    return [
        ClusterStatusEntry("cluster", "prod", quorate=quorate),
        *(
            ClusterStatusEntry("node", f"pve{i}", online=up, ip=f"127.0.31.{i}")
            for i, up in enumerate(online, start=1)
        ),
    ]


@pytest.mark.parametrize(
    ("entries", "status", "online", "reason"),
    [
        (_status(), "healthy", 3, "3 of 3 nodes online"),
        (_status(online=(True, False, False)), "degraded", 1,
         "1 of 3 nodes online; offline: pve2, pve3"),
        (_status(quorate=False, online=(True, False, False)), "unhealthy", 1,
         "the cluster is not quorate (1 of 3 nodes online)"),
        (_status(online=(False, False, False)), "unhealthy", 0,
         "no node online (0 of 3 nodes online)"),
    ],
    ids=["healthy", "degraded", "no-quorum", "none-online"],
)  # fmt: skip
def test_health_says_why_and_how_many_nodes_are_online(entries, status, online, reason):
    health = assess_health(ProxmoxReport("8.2.4", entries, []))
    assert (health.status, health.nodes_online, health.reason) == (status, online, reason)
    assert (health.node_count, health.cluster_name) == (3, "prod")


def test_a_standalone_node_has_no_cluster_name():
    report = ProxmoxReport("8.2.4", [ClusterStatusEntry("node", "pve", online=True)], [])
    health = assess_health(report)
    assert (health.status, health.cluster_name, health.nodes_online) == ("healthy", None, 1)


def test_without_the_cluster_status_the_visible_nodes_count():
    report = ProxmoxReport(
        "8.2.4", None, [NodeEntry("pve1", "online"), NodeEntry("pve2", "offline")]
    )
    health = assess_health(report)
    assert (health.status, health.node_count, health.nodes_online) == (
        ClusterStatus.UNKNOWN,
        2,
        1,
    )
    assert "Sys.Audit" in health.reason


def test_node_states_merge_the_address_with_what_nodes_reports():
    [first, _, offline] = node_states(DEGRADED_REPORT)
    assert first == NodeState(
        name="pve1",
        status="online",
        ip="127.0.31.1",
        ssl_fingerprint=":".join(["1A"] * 32),
        cpu=0.5,
        maxcpu=8,
        mem=1 << 30,
        maxmem=1 << 34,
        uptime=3600,
    )
    assert offline == NodeState(
        name="pve3", status="offline", ip="127.0.31.3", ssl_fingerprint=":".join(["3A"] * 32)
    )


def test_a_node_in_one_read_only_is_listed_with_what_that_read_gave():
    report = ProxmoxReport(
        "8.2.4",
        [
            ClusterStatusEntry("cluster", "prod", quorate=True),
            ClusterStatusEntry("node", "only-in-status", online=False, ip="127.0.31.9"),
        ],
        [NodeEntry("only-in-nodes", "unknown")],
    )
    assert node_states(report) == (
        NodeState("only-in-nodes", "unknown"),
        NodeState("only-in-status", "offline", ip="127.0.31.9"),
    )


def test_without_the_cluster_status_nodes_have_no_address():
    report = ProxmoxReport("8.2.4", None, HEALTHY_REPORT.nodes)
    assert [(n.name, n.ip, n.status) for n in node_states(report)] == [
        ("pve1", None, "online"),
        ("pve2", None, "online"),
        ("pve3", None, "online"),
    ]
