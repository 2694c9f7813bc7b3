"""What a visit to a cluster's API reports, and the health the registry
judges from it (docs/product-contract.md §4, "Health status")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clusters.domain.cluster import ClusterStatus


@dataclass(frozen=True, slots=True)
class ClusterStatusEntry:
    """One entry of ``GET /cluster/status``: the cluster itself or a node."""

    type: str
    name: str
    online: bool | None = None
    quorate: bool | None = None


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One entry of ``GET /nodes``."""

    node: str
    status: str


@dataclass(frozen=True, slots=True)
class ProxmoxReport:
    """What one visit to a cluster's API learned.

    ``cluster_status`` is None when the account may not read it (no
    Sys.Audit on ``/``); ``nodes`` is then what ``GET /nodes`` showed.
    """

    version: str
    cluster_status: Sequence[ClusterStatusEntry] | None
    nodes: Sequence[NodeEntry] | None = None


@dataclass(frozen=True, slots=True)
class Health:
    status: ClusterStatus
    node_count: int


def assess_health(report: ProxmoxReport) -> Health:
    """Judge a cluster's health from what its API reported."""
    if report.cluster_status is None:
        visible_nodes = len(report.nodes or ())
        return Health(ClusterStatus.UNKNOWN, visible_nodes)

    nodes = [entry for entry in report.cluster_status if entry.type == "node"]
    cluster = next((e for e in report.cluster_status if e.type == "cluster"), None)
    online = sum(1 for node in nodes if node.online)

    if (cluster is not None and not cluster.quorate) or online == 0:
        status = ClusterStatus.UNHEALTHY
    elif online < len(nodes):
        status = ClusterStatus.DEGRADED
    else:
        status = ClusterStatus.HEALTHY
    return Health(status, len(nodes))
