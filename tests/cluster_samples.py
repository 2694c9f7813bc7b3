"""Sample clusters for the repository tests: every field set, both kinds of
credentials, non-ASCII text and microsecond timestamps, so a backend that
drops or mangles anything shows it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from clusters.domain import Cluster, ClusterStatus, PasswordCredentials, Secret, TokenCredentials

NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
FINGERPRINT = ":".join(["AB", "CD"] * 16)


def make_cluster(name: str = "Prod-EU", **changes: object) -> Cluster:
    cluster = Cluster(
        id=uuid.uuid4(),
        name=name,
        api_endpoint="https://pve1.example.com:8006",
        credentials=PasswordCredentials("root@pam", Secret("hunter2-Ünïcode")),
        verify_tls=True,
        fingerprint=None,
        status=ClusterStatus.HEALTHY,
        proxmox_version="8.2.4",
        node_count=3,
        created_at=NOW,
        updated_at=NOW,
        last_checked_at=None,
        last_error=None,
    )
    return replace(cluster, **changes)


def token_cluster(name: str = "Lab") -> Cluster:
    return make_cluster(
        name,
        credentials=TokenCredentials("root@pam!proxmoxer", Secret("5f1c0d9e-8b7a-6f5e-4d3c")),
        verify_tls=False,
        fingerprint=FINGERPRINT,
        status=ClusterStatus.UNKNOWN,
        last_checked_at=NOW + timedelta(microseconds=1),
        last_error="Permission check failed (/, Sys.Audit) — ünïcode",
    )
