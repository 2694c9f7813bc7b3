"""The registry's use cases: register, deregister, list, get and refresh.

``ClusterService`` receives its repository and Proxmox client; it never
touches requests, the ORM or HTTP objects, so the REST API, management
commands and tests all drive it the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from clusters.domain import (
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterRepository,
    ClusterStatus,
    ConnectionTarget,
    Credentials,
    ProxmoxAuthenticationFailed,
    ProxmoxError,
    ProxmoxReport,
    RegistrationRequest,
    assess_health,
    parse_cluster_id,
)

logger = logging.getLogger("clusters")


class ProxmoxGateway(Protocol):
    """What the service needs from a Proxmox client (a fake in unit tests)."""

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport: ...


@dataclass(frozen=True)
class ClusterListing:
    clusters: Sequence[Cluster]
    total: int


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClusterService:
    def __init__(
        self,
        *,
        repository: ClusterRepository,
        proxmox: ProxmoxGateway,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._repository = repository
        self._proxmox = proxmox
        self._clock = clock
        self._new_id = new_id

    def register(self, request: RegistrationRequest) -> Cluster:
        """Prove the credentials against the cluster, record what it reports.

        A failure at any step stores nothing.
        """
        registration = request.validate()
        # Checked first so a taken name costs no login at Proxmox; save()
        # checks again atomically, for registrations racing this one.
        if self._repository.find_by_name(registration.name) is not None:
            self._log_name_taken(registration.name)
            raise ClusterNameTaken(registration.name)

        report = self._inspect(registration.target, registration.credentials)
        health = assess_health(report)
        now = self._clock()
        cluster = Cluster(
            id=self._new_id(),
            name=registration.name,
            api_endpoint=registration.target.api_endpoint,
            credentials=registration.credentials,
            verify_tls=registration.target.verify_tls,
            fingerprint=registration.target.fingerprint,
            status=health.status,
            proxmox_version=report.version,
            node_count=health.node_count,
            created_at=now,
            updated_at=now,
            last_checked_at=now,
        )
        try:
            self._repository.save(cluster)
        except ClusterNameTaken:
            self._log_name_taken(cluster.name)
            raise
        logger.info(
            "Cluster registered successfully, cluster_id=%s, name=%s", cluster.id, cluster.name
        )
        return cluster

    def deregister(self, cluster_id: str | uuid.UUID) -> None:
        parsed = parse_cluster_id(cluster_id)
        self._repository.delete(parsed)
        logger.info("Cluster deregistered successfully, cluster_id=%s", parsed)

    def list_clusters(self) -> ClusterListing:
        clusters = self._repository.list()
        return ClusterListing(clusters=clusters, total=len(clusters))

    def get_cluster(self, cluster_id: str | uuid.UUID) -> Cluster:
        return self._repository.find_by_id(parse_cluster_id(cluster_id))

    def get_cluster_by_name(self, name: str) -> Cluster:
        cluster = self._repository.find_by_name(name.strip())
        if cluster is None:
            raise ClusterNotFound(name.strip())
        return cluster

    def refresh(self, cluster_id: str | uuid.UUID) -> Cluster:
        """Check a registered cluster again with its stored credentials.

        An unreachable cluster becomes ``unhealthy``; one that now refuses
        the stored credentials becomes ``unknown``. Either way the error is
        kept in ``last_error`` and the last known version and node count
        stay as they were.
        """
        cluster = self._repository.find_by_id(parse_cluster_id(cluster_id))
        now = self._clock()
        try:
            report = self._inspect(cluster.target, cluster.credentials)
        except ProxmoxAuthenticationFailed as error:
            checked = replace(cluster, status=ClusterStatus.UNKNOWN, last_error=error.message)
        except ProxmoxError as error:
            checked = replace(cluster, status=ClusterStatus.UNHEALTHY, last_error=error.message)
        else:
            health = assess_health(report)
            checked = replace(
                cluster,
                status=health.status,
                node_count=health.node_count,
                proxmox_version=report.version,
                last_error=None,
            )
        checked = replace(checked, updated_at=now, last_checked_at=now)
        self._repository.update(checked)
        logger.info(
            "Cluster checked, cluster_id=%s, name=%s, status=%s",
            checked.id,
            checked.name,
            checked.status,
        )
        return checked

    def _inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        try:
            return self._proxmox.inspect(target, credentials)
        except ProxmoxAuthenticationFailed as error:
            logger.error("Proxmox authentication failed, error=%s", error.message)
            raise
        except ProxmoxError as error:
            logger.error(
                "Proxmox API request failed, endpoint=%s, error=%s",
                target.api_endpoint,
                error.message,
            )
            raise

    @staticmethod
    def _log_name_taken(name: str) -> None:
        logger.warning("Cluster name already exists, name=%s", name)
