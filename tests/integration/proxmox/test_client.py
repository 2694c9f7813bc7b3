"""ProxmoxClient (clusters/proxmox/client.py) against requests-mock answering
as real PVE does (docs/product-contract.md §5)."""

from __future__ import annotations

from clusters.domain import ClusterStatusEntry
from tests import pve_responses as pve
from tests.integration.proxmox.conftest import PASSWORD_LOGIN, TARGET


def test_standalone_pve7_node_reports_its_version_and_single_node(client, m):
    pve.login_ok(m)
    pve.version(m, "7.4-13")
    pve.cluster_status(m, pve.STANDALONE_NODE)
    pve.nodes(m, [pve.node_entry("pve")])
    report = client.inspect(TARGET, PASSWORD_LOGIN)
    assert report.version == "7.4-13"
    assert report.cluster_status == [
        ClusterStatusEntry("node", "pve", online=True, quorate=None, ip="127.0.0.1", local=True)
    ]
