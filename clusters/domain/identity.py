"""What identifies a PVE cluster whichever of its nodes, or whatever name,
it is registered under (docs/product-contract.md §10, "One cluster, one
registration"): keys a registration holds in storage, one registration per
key (``ClusterIdentities``)."""

from __future__ import annotations

import hashlib

from clusters.domain.health import ProxmoxReport
from clusters.domain.topology import node_fingerprint


def identity_keys(report: ProxmoxReport) -> frozenset[str]:
    """What makes this PVE cluster the same whichever node or name it is
    registered under (docs/product-contract.md §10):

    - a cluster: its name and node set (``/cluster/status``);
    - a standalone node: its name and certificate fingerprint;
    - without Sys.Audit (no ``/cluster/status``): the node set of
      ``/nodes``, each node with its fingerprint, which a registration with
      Sys.Audit records too so that the two meet.

    Digests, so that a key is short whatever the names. Empty when nothing
    identifies the cluster (no node reported a fingerprint, say).
    """
    keys: set[str] = set()
    listed = {node.node: node_fingerprint(node.ssl_fingerprint) for node in report.nodes or ()}
    if report.cluster_status is not None:
        cluster = next((e for e in report.cluster_status if e.type == "cluster"), None)
        members = sorted(e.name for e in report.cluster_status if e.type == "node")
        if cluster is not None and cluster.name:
            keys.add(_digest("cluster", cluster.name, *members))
        elif len(members) == 1 and listed.get(members[0]):
            keys.add(_digest("node", members[0], listed[members[0]] or ""))
    if len(listed) == 1:
        [(name, fingerprint)] = listed.items()
        if fingerprint:
            keys.add(_digest("node", name, fingerprint))
    elif listed and all(listed.values()):
        keys.add(_digest("nodes", *(f"{name}={listed[name]}" for name in sorted(listed))))
    return frozenset(keys)


def _digest(kind: str, *parts: str) -> str:
    text = "\n".join(parts).encode("utf-8", "surrogatepass")
    return f"{kind}:{hashlib.sha256(text).hexdigest()}"
