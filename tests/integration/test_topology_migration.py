"""The migration that gives clusters registered before topology their
identity keys (clusters/migrations/0010_topology.py), from what their last
check stored: a cluster registered again afterwards through another node
is refused, as one registered after the migration would be."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from clusters.domain import (
    ClusterStatusEntry,
    NodeEntry,
    NodeState,
    ProxmoxReport,
    identity_keys,
)
from clusters.encryption import CredentialCipher
from clusters.models import ClusterIdentityRecord, ClusterRecord, NodeListRecord
from tests.cluster_samples import make_cluster

pytestmark = pytest.mark.django_db

CHECKED = datetime(2026, 11, 1, tzinfo=UTC)
FINGERPRINTS = {f"pve{i}": ":".join([f"{i}A"] * 32) for i in (1, 2, 3)}


def stored_before(name: str, cluster_name: str | None, nodes: dict[str, str | None]):
    """A cluster and its node list as the release before topology kept them."""
    cluster = make_cluster(name, cluster_name=cluster_name)
    ClusterRecord.from_domain(cluster, CredentialCipher.from_settings()).save(force_insert=True)
    NodeListRecord.from_domain(
        cluster.id,
        [NodeState(node, "online", ssl_fingerprint=fp) for node, fp in nodes.items()],
        CHECKED,
    ).save(force_insert=True)
    return cluster


def migrate_forward() -> None:
    migration = importlib.import_module("clusters.migrations.0010_topology")
    migration.identify_registered_clusters(apps, SimpleNamespace(connection=connection))


def keys_of(cluster) -> set[str]:
    return set(
        ClusterIdentityRecord.objects.filter(cluster_id=cluster.id).values_list("key", flat=True)
    )


def test_clusters_registered_before_get_the_keys_a_registration_now_takes():
    prod = stored_before("prod", "prod", FINGERPRINTS)
    standalone = stored_before("lab", None, {"pve": FINGERPRINTS["pve1"]})

    migrate_forward()

    now_registered = ProxmoxReport(
        "8.2.4",
        [ClusterStatusEntry("cluster", "prod", quorate=True)]
        + [ClusterStatusEntry("node", n, online=True) for n in FINGERPRINTS],
        [NodeEntry(n, "online", ssl_fingerprint=fp) for n, fp in FINGERPRINTS.items()],
    )
    assert keys_of(prod) == set(identity_keys(now_registered))
    assert len(keys_of(standalone)) == 1


def test_two_registrations_of_one_cluster_from_before_leave_the_keys_to_the_older():
    older = stored_before("first", "prod", FINGERPRINTS)
    newer = stored_before("second", "prod", FINGERPRINTS)
    ClusterRecord.objects.filter(pk=newer.id).update(created_at=datetime(2026, 12, 1, tzinfo=UTC))

    migrate_forward()

    assert len(keys_of(older)) == 2
    assert keys_of(newer) == set()


def test_a_cluster_no_check_ever_read_gets_no_key():
    cluster = make_cluster("never-checked")
    ClusterRecord.from_domain(cluster, CredentialCipher.from_settings()).save(force_insert=True)

    migrate_forward()

    assert keys_of(cluster) == set()
