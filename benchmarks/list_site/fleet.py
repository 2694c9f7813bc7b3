"""The clusters the list benchmark serves: deterministic, so every gunicorn
worker's in-memory store holds exactly the same ones, and as varied as a
real fleet (both kinds of credentials, every status, errors, pins, and the
topology of a 3-node cluster: two learned endpoints, the registered node,
each endpoint's health as registration and checks leave it)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from clusters.domain import Cluster, ClusterStatus, PasswordCredentials, Secret, TokenCredentials
from clusters.domain.topology import EndpointHealth, NodeEndpoint

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


# The registered node and the two others whose endpoints registration learns.
_NODES = ("pve1", "pve2", "pve3")


def _node_address(index: int, node: int) -> str:
    """A deterministic address in 127.0.0.0/8 for another node of cluster
    ``index``: nothing connects to it, but no benchmark should name an
    address off this machine."""
    number = 2 * index + node + 1
    return f"127.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def _node_fingerprint(index: int, node: str) -> str:
    digest = hashlib.sha256(f"{index}/{node}".encode()).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _learned_endpoints(index: int) -> tuple[NodeEndpoint, ...]:
    """The other two nodes, pinned to their certificates, as registration
    learns them from /cluster/status and /nodes."""
    return tuple(
        NodeEndpoint(
            f"https://{_node_address(index, offset)}:8006", node, _node_fingerprint(index, node)
        )
        for offset, node in enumerate(_NODES[1:])
    )


def _endpoint_health(
    api_endpoint: str,
    endpoints: tuple[NodeEndpoint, ...],
    status: ClusterStatus,
    registered_at: datetime,
    checked_at: datetime,
) -> dict[str, EndpointHealth]:
    """As registration (the registered endpoint answered) and the last
    check left it: through the registered endpoint when it answered; when
    nothing answered (unhealthy), every endpoint failed at that check."""
    if status is not ClusterStatus.UNHEALTHY:
        return {api_endpoint: EndpointHealth(last_ok_at=checked_at)}
    health = {api_endpoint: EndpointHealth(registered_at, checked_at)}
    health.update({endpoint.url: EndpointHealth(None, checked_at) for endpoint in endpoints})
    return health


def bench_cluster(index: int) -> Cluster:
    status = _STATUSES[index % len(_STATUSES)]
    token = index % 3 == 0
    created = _EPOCH + timedelta(minutes=index, microseconds=index)
    api_endpoint = f"https://pve{index:05d}.dc{index % 4}.example.com:8006"
    endpoints = _learned_endpoints(index)
    return Cluster(
        id=uuid.uuid5(_NAMESPACE, str(index)),
        name=f"dc{index % 4}-cluster-{index:05d}",
        api_endpoint=api_endpoint,
        credentials=(
            TokenCredentials(f"monitor@pve!bench{index % 7}", Secret(f"token-secret-{index}"))
            if token
            else PasswordCredentials("root@pam", Secret(f"password-{index}"))
        ),
        verify_tls=index % 5 != 0,
        fingerprint=":".join([f"{index % 256:02X}"] * 32) if index % 5 == 0 else None,
        status=status,
        proxmox_version=f"8.{index % 5}.{index % 3}",
        node_count=len(_NODES),
        created_at=created,
        updated_at=created + timedelta(hours=1),
        last_checked_at=created + timedelta(hours=1),
        last_error=(
            f"Proxmox unreachable at https://pve{index:05d}.dc{index % 4}.example.com:8006"
            if status is ClusterStatus.UNHEALTHY
            else None
        ),
        version=1 + index % 4,
        endpoints=endpoints,
        registered_node=_NODES[0],
        endpoint_health=_endpoint_health(
            api_endpoint, endpoints, status, created, created + timedelta(hours=1)
        ),
    )


def fleet(count: int) -> list[Cluster]:
    return [bench_cluster(index) for index in range(count)]
