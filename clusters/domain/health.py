"""What a visit to a cluster's API reports, and the health the registry
judges from it (docs/product-contract.md §4, "Health status"; the node list
of §10)."""

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
    ip: str | None = None
    local: bool = False  # the node that answered


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One entry of ``GET /nodes``. PVE leaves the usage figures out for
    offline nodes and for nodes the account may not audit."""

    node: str
    status: str
    cpu: float | None = None
    maxcpu: int | None = None
    mem: int | None = None
    maxmem: int | None = None
    uptime: int | None = None
    ssl_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class ProxmoxReport:
    """What one visit to a cluster's API learned.

    ``cluster_status`` is None when the account may not read it (no
    Sys.Audit on ``/``); ``nodes`` is what ``GET /nodes`` showed (None when
    it was not read, empty when it was refused).
    """

    version: str
    cluster_status: Sequence[ClusterStatusEntry] | None
    nodes: Sequence[NodeEntry] | None = None


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node as a check saw it, both reads merged: the address from
    ``/cluster/status``, the rest from ``/nodes`` (docs/product-contract.md
    §10). Usage figures are None where PVE gave none."""

    name: str
    status: str  # online, offline or unknown
    ip: str | None = None
    ssl_fingerprint: str | None = None
    cpu: float | None = None
    maxcpu: int | None = None
    mem: int | None = None
    maxmem: int | None = None
    uptime: int | None = None


@dataclass(frozen=True, slots=True)
class Health:
    status: ClusterStatus
    node_count: int
    nodes_online: int = 0
    cluster_name: str | None = None
    reason: str = ""


def assess_health(report: ProxmoxReport) -> Health:
    """Judge a cluster's health from what its API reported; ``reason`` says
    why in words an operator reads in the status history."""
    if report.cluster_status is None:
        visible = report.nodes or ()
        online = sum(1 for node in visible if node.status == "online")
        return Health(
            ClusterStatus.UNKNOWN,
            len(visible),
            online,
            None,
            "the account may not read the cluster status (Sys.Audit on /)",
        )

    nodes = [entry for entry in report.cluster_status if entry.type == "node"]
    cluster = next((e for e in report.cluster_status if e.type == "cluster"), None)
    online = sum(1 for node in nodes if node.online)
    offline = sorted(node.name for node in nodes if not node.online)
    counted = f"{online} of {len(nodes)} nodes online"

    if cluster is not None and not cluster.quorate:
        status, reason = ClusterStatus.UNHEALTHY, f"the cluster is not quorate ({counted})"
    elif online == 0:
        status, reason = ClusterStatus.UNHEALTHY, f"no node online ({counted})"
    elif offline:
        status, reason = ClusterStatus.DEGRADED, f"{counted}; offline: {', '.join(offline)}"
    else:
        status, reason = ClusterStatus.HEALTHY, counted
    cluster_name = cluster.name if cluster is not None and cluster.name else None
    return Health(status, len(nodes), online, cluster_name, reason)


def node_states(report: ProxmoxReport) -> tuple[NodeState, ...]:
    """Every node either read named, by name: what ``/nodes`` says of it,
    with its address and, where ``/nodes`` lacks it, its state from
    ``/cluster/status``."""
    members = {entry.name: entry for entry in report.cluster_status or () if entry.type == "node"}
    listed = {entry.node: entry for entry in report.nodes or ()}
    states = []
    for name in sorted(members.keys() | listed.keys()):
        member, entry = members.get(name), listed.get(name)
        if entry is not None:
            status = entry.status
        elif member is not None and member.online is not None:
            status = "online" if member.online else "offline"
        else:
            status = "unknown"
        states.append(
            NodeState(
                name=name,
                status=status,
                ip=member.ip if member is not None else None,
                ssl_fingerprint=entry.ssl_fingerprint if entry is not None else None,
                cpu=entry.cpu if entry is not None else None,
                maxcpu=entry.maxcpu if entry is not None else None,
                mem=entry.mem if entry is not None else None,
                maxmem=entry.maxmem if entry is not None else None,
                uptime=entry.uptime if entry is not None else None,
            )
        )
    return tuple(states)
