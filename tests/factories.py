"""Builders of domain objects for tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from clusters.domain import Cluster, ClusterStatus, PasswordCredentials, Secret

_counter = itertools.count(1)


def make_cluster(name: str | None = None, **overrides: Any) -> Cluster:
    number = next(_counter)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    cluster = Cluster(
        id=uuid.uuid4(),
        name=name or f"cluster-{number}",
        api_endpoint=f"https://pve{number}.example.com:8006",
        credentials=PasswordCredentials("root@pam", Secret(f"password-{number}")),
        verify_tls=True,
        fingerprint=None,
        status=ClusterStatus.HEALTHY,
        proxmox_version="8.2.4",
        node_count=3,
        created_at=now,
        updated_at=now,
    )
    return replace(cluster, **overrides)
