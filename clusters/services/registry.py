"""The registry's use cases: register, deregister, list and get.

``ClusterService`` receives a unit-of-work factory and a Proxmox gateway;
it never touches requests, the ORM or HTTP objects, so the REST API,
management commands and tests all drive it the same way. Each use case is
told who acts (``Actor``) and keeps its writes in one unit of work, never
held open while Proxmox is being asked.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    CheckSchedule,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    Permission,
    RegistrationRequest,
    StatusChange,
    assess_health,
    authorize,
    configuration_changes,
    node_states,
    parse_cluster_id,
)
from clusters.services.checks import DEFAULT_HISTORY_LIMIT, DEFAULT_SCHEDULE, inspect
from clusters.services.ports import Clock, ProxmoxGateway, Random, UnitOfWorkFactory

logger = logging.getLogger("clusters")


@dataclass(frozen=True)
class ClusterListing:
    clusters: Sequence[Cluster]
    total: int


class ClusterService:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        proxmox: ProxmoxGateway,
        clock: Clock,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        schedule: CheckSchedule = DEFAULT_SCHEDULE,
        random: Random = random.random,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._proxmox = proxmox
        self._clock = clock
        self._new_id = new_id
        self._schedule = schedule
        self._random = random
        self._history_limit = history_limit

    def register(self, request: RegistrationRequest, *, actor: Actor) -> Cluster:
        """Prove the credentials against the cluster, record what it reports:
        the cluster, its nodes and its first status (the start of its status
        history), due for its first background check an interval from now.

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
            nodes_online=health.nodes_online,
            cluster_name=health.cluster_name,
            next_check_at=self._schedule.next_check(now, self._random()),
        )
        first_status = StatusChange(
            cluster.id, now, None, cluster.status, f"registered: {health.reason}"
        )
        try:
            with self._unit_of_work() as uow:
                uow.clusters.add(cluster)
                uow.nodes.replace(cluster.id, node_states(report), now)
                uow.history.append(first_status, keep=self._history_limit)
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

    def list_clusters(self, *, actor: Actor) -> ClusterListing:
        authorize(actor, Permission.VIEW, "list clusters")
        with self._unit_of_work() as uow:
            clusters = uow.clusters.list()
        return ClusterListing(clusters=clusters, total=len(clusters))

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
