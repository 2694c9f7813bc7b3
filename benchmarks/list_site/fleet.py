"""The clusters the list benchmark serves: deterministic, so every gunicorn
worker's in-memory store holds exactly the same ones, and as varied as a
real fleet (both kinds of credentials, every status, errors, pins)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from clusters.domain import Cluster, ClusterStatus, PasswordCredentials, Secret, TokenCredentials

_NAMESPACE = uuid.UUID("5b0b6f0e-3d2c-4c61-9a57-3f7c1c0e2a11")
_EPOCH = datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=UTC)
# Most of a fleet is healthy; a few clusters are not.
_STATUSES = [ClusterStatus.HEALTHY] * 12 + [
    ClusterStatus.DEGRADED,
    ClusterStatus.DEGRADED,
    ClusterStatus.DEGRADED,
    ClusterStatus.UNHEALTHY,
    ClusterStatus.UNHEALTHY,
    ClusterStatus.UNKNOWN,
]
FILTERED_STATUS = ClusterStatus.DEGRADED


def bench_cluster(index: int) -> Cluster:
    status = _STATUSES[index % len(_STATUSES)]
    token = index % 3 == 0
    created = _EPOCH + timedelta(minutes=index, microseconds=index)
    return Cluster(
        id=uuid.uuid5(_NAMESPACE, str(index)),
        name=f"dc{index % 4}-cluster-{index:05d}",
        api_endpoint=f"https://pve{index:05d}.dc{index % 4}.example.com:8006",
        credentials=(
            TokenCredentials(f"monitor@pve!bench{index % 7}", Secret(f"token-secret-{index}"))
            if token
            else PasswordCredentials("root@pam", Secret(f"password-{index}"))
        ),
        verify_tls=index % 5 != 0,
        fingerprint=":".join([f"{index % 256:02X}"] * 32) if index % 5 == 0 else None,
        status=status,
        proxmox_version=f"8.{index % 5}.{index % 3}",
        node_count=1 + index % 7,
        created_at=created,
        updated_at=created + timedelta(hours=1),
        last_checked_at=created + timedelta(hours=1),
        last_error=(
            f"Proxmox unreachable at https://pve{index:05d}.dc{index % 4}.example.com:8006"
            if status is ClusterStatus.UNHEALTHY
            else None
        ),
        version=1 + index % 4,
    )


def fleet(count: int) -> list[Cluster]:
    return [bench_cluster(index) for index in range(count)]
