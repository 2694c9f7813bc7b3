"""Checking a registered cluster: ask its API, judge its health, and record
what was found without ever overwriting an edit made meanwhile.

A check reads the cluster, talks to Proxmox for up to seconds outside any
unit of work, then records its findings conditional on the configuration
version it checked: if an operator changed the configuration in between,
the findings are dropped (they describe a configuration that no longer
exists) and the next check uses the new one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    Cluster,
    ClusterStatus,
    ConnectionTarget,
    Credentials,
    NetworkPolicyRefused,
    Permission,
    ProxmoxAuthenticationFailed,
    ProxmoxError,
    ProxmoxReport,
    ProxmoxTLSError,
    StaleCluster,
    assess_health,
    authorize,
    parse_cluster_id,
)
from clusters.services.ports import (
    CheckObserver,
    CheckOutcome,
    Clock,
    IgnoreChecks,
    ProxmoxGateway,
    UnitOfWorkFactory,
)

logger = logging.getLogger("clusters")


def inspect(
    proxmox: ProxmoxGateway, target: ConnectionTarget, credentials: Credentials
) -> ProxmoxReport:
    """Ask the cluster's API, logging a failure with the lines of
    docs/product-contract.md §16."""
    try:
        return proxmox.inspect(target, credentials)
    except NetworkPolicyRefused as error:
        logger.warning(
            "Connection refused by the network policy, endpoint=%s, error=%s",
            target.api_endpoint,
            error.message,
        )
        raise
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


class CheckService:
    """Use cases that check clusters: ``refresh`` (one, on request)."""

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        proxmox: ProxmoxGateway,
        clock: Clock,
        observer: CheckObserver | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._proxmox = proxmox
        self._clock = clock
        self._observer = observer if observer is not None else IgnoreChecks()

    def refresh(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> Cluster:
        """Check a registered cluster again with its stored credentials.

        An unreachable cluster becomes ``unhealthy``; one that now refuses
        the stored credentials becomes ``unknown``. Either way the error is
        kept in ``last_error`` and the last known version and node count
        stay as they were. Raises StaleCluster when the configuration was
        edited while the check ran (the findings are dropped), and
        ClusterNotFound when the cluster was deregistered meanwhile.
        """
        authorize(actor, Permission.OPERATE, "refresh clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_id(parsed)
        checked = self._check(cluster)
        changes = (
            {}
            if checked.status == cluster.status
            else {"status": [str(cluster.status), str(checked.status)]}
        )
        try:
            with self._unit_of_work() as uow:
                uow.clusters.record_check(checked)
                uow.audit.append(
                    AuditEvent.success(
                        AuditAction.CLUSTER_REFRESH,
                        actor=actor,
                        at=self._clock(),
                        cluster=checked,
                        changes=changes,
                    )
                )
                uow.commit()
        except StaleCluster:
            logger.info(
                "Cluster check dropped, the configuration changed meanwhile, "
                "cluster_id=%s, name=%s",
                cluster.id,
                cluster.name,
            )
            raise
        logger.info(
            "Cluster checked, cluster_id=%s, name=%s, status=%s",
            checked.id,
            checked.name,
            checked.status,
        )
        return checked

    def _check(self, cluster: Cluster) -> Cluster:
        """The cluster with what its API says now (nothing stored yet)."""
        started = self._clock()
        try:
            report = inspect(self._proxmox, cluster.target, cluster.credentials)
        except ProxmoxAuthenticationFailed as error:
            self._finished(CheckOutcome.UNAUTHORIZED, started)
            return cluster.observed(
                at=started,
                status=ClusterStatus.UNKNOWN,
                last_error=error.message,
                last_error_details=None,
            )
        except ProxmoxError as error:
            self._finished(CheckOutcome.ERROR, started)
            return cluster.observed(
                at=started,
                status=ClusterStatus.UNHEALTHY,
                last_error=error.message,
                last_error_details=actionable_details(error),
            )
        self._finished(CheckOutcome.SUCCESS, started)
        health = assess_health(report)
        return cluster.observed(
            at=started,
            status=health.status,
            node_count=health.node_count,
            proxmox_version=report.version,
            last_error=None,
            last_error_details=None,
        )

    def _finished(self, outcome: CheckOutcome, started: datetime) -> None:
        # The wall clock may step back; a check never took negative time.
        seconds = max(0.0, (self._clock() - started).total_seconds())
        self._observer.check_finished(outcome, seconds)


def actionable_details(error: ProxmoxError) -> dict[str, str] | None:
    """What an operator may act on about a failed check: the fingerprint of
    the certificate a node presents now, to compare and pin
    (``PATCH {"fingerprint": …}``) when it no longer matches or is no longer
    trusted."""
    observed = (error.details or {}).get("fingerprint")
    if isinstance(error, ProxmoxTLSError) and isinstance(observed, str):
        return {"fingerprint": observed}
    return None
