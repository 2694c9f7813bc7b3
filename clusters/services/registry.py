"""The registry's use cases: register, deregister, list (a page, or
everything) and get.

``ClusterService`` receives a unit-of-work factory and a Proxmox gateway;
it never touches requests, the ORM or HTTP objects, so the REST API,
management commands and tests all drive it the same way. Each use case is
told who acts (``Actor``) and keeps its writes in one unit of work, never
held open while Proxmox is being asked.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterPage,
    ClusterQuery,
    Permission,
    RegistrationRequest,
    assess_health,
    authorize,
    configuration_changes,
    parse_cluster_id,
)
from clusters.services.checks import inspect
from clusters.services.ports import Clock, ProxmoxGateway, UnitOfWorkFactory

logger = logging.getLogger("clusters")


class ClusterService:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        proxmox: ProxmoxGateway,
        clock: Clock,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._proxmox = proxmox
        self._clock = clock
        self._new_id = new_id

    def register(self, request: RegistrationRequest, *, actor: Actor) -> Cluster:
        """Prove the credentials against the cluster, record what it reports.

        A failure at any step stores nothing.
        """
        authorize(actor, Permission.OPERATE, "register clusters")
        registration = request.validate()
        # Checked first so a taken name costs no login at Proxmox; add()
        # checks again atomically, for registrations racing this one.
        with self._unit_of_work() as uow:
            taken = uow.clusters.find_by_name(registration.name) is not None
        if taken:
            self._log_name_taken(registration.name)
            raise ClusterNameTaken(registration.name)

        report = inspect(self._proxmox, registration.target, registration.credentials)
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
            with self._unit_of_work() as uow:
                uow.clusters.add(cluster)
                uow.audit.append(
                    AuditEvent.success(
                        AuditAction.CLUSTER_REGISTER,
                        actor=actor,
                        at=now,
                        cluster=cluster,
                        changes=configuration_changes(None, cluster),
                    )
                )
                uow.commit()
        except ClusterNameTaken:
            self._log_name_taken(cluster.name)
            raise
        logger.info(
            "Cluster registered successfully, cluster_id=%s, name=%s", cluster.id, cluster.name
        )
        return cluster

    def deregister(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> None:
        authorize(actor, Permission.OPERATE, "deregister clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_id(parsed)
            uow.clusters.delete(parsed)
            uow.audit.append(
                AuditEvent.success(
                    AuditAction.CLUSTER_DEREGISTER,
                    actor=actor,
                    at=self._clock(),
                    cluster=cluster,
                    changes=configuration_changes(cluster, None),
                )
            )
            uow.commit()
        logger.info("Cluster deregistered successfully, cluster_id=%s", parsed)

    def list_clusters(self, query: ClusterQuery, *, actor: Actor) -> ClusterPage:
        """The page of clusters ``query`` asks for, as the API shows them."""
        authorize(actor, Permission.VIEW, "list clusters")
        # A read needs no batch: no transaction to open and commit around
        # it on a database, no lock to wait for in memory.
        return self._unit_of_work().clusters.page(query)

    def all_clusters(self, *, actor: Actor) -> Sequence[Cluster]:
        """Every registered cluster, by name (the command line's list)."""
        authorize(actor, Permission.VIEW, "list clusters")
        with self._unit_of_work() as uow:
            return uow.clusters.list()

    def get_cluster(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> Cluster:
        authorize(actor, Permission.VIEW, "see clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            return uow.clusters.find_by_id(parsed)

    def get_cluster_by_name(self, name: str, *, actor: Actor) -> Cluster:
        authorize(actor, Permission.VIEW, "see clusters")
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_name(name.strip())
        if cluster is None:
            raise ClusterNotFound(name.strip())
        return cluster

    @staticmethod
    def _log_name_taken(name: str) -> None:
        logger.warning("Cluster name already exists, name=%s", name)
