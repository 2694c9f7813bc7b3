"""The audit record beyond the changes themselves (docs/product-contract.md
§13): reading it, recording what was refused or failed, logins, and the
retention period.

A change's own event is appended by its use case in the change's unit of
work (registry.py, checks.py). What did not change anything — a refused
request, a failed registration, a login — is recorded here, each in a unit
of work of its own, by whichever edge knows how it ended (the API's
exception handler, Django's login signals).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    AuditPage,
    AuditQuery,
    ClusterNotFound,
    Permission,
    authorize,
)
from clusters.services.ports import Clock, UnitOfWorkFactory

logger = logging.getLogger("clusters")

DEFAULT_RETENTION_DAYS = 365


class AuditService:
    """Use cases of the audit log: ``events`` (read), ``record_failure``,
    ``record_login`` and ``apply_retention``."""

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        clock: Clock,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        if retention_days < 0:
            raise ValueError("retention_days must be 0 (keep every event) or more")
        self._unit_of_work = unit_of_work
        self._clock = clock
        self.retention_days = retention_days

    def events(self, query: AuditQuery, *, actor: Actor) -> AuditPage:
        """One page of the log, newest first (superusers only)."""
        authorize(actor, Permission.AUDIT, "read the audit log")
        with self._unit_of_work() as uow:
            return uow.audit.query(query)

    def record_failure(
        self,
        action: AuditAction,
        *,
        actor: Actor,
        status_code: int | None,
        cluster_id: uuid.UUID | None = None,
        cluster_name: str | None = None,
    ) -> AuditEvent:
        """Record that ``actor``'s ``action`` was refused or failed with
        ``status_code``. Nothing changed, so the event is all this unit of
        work keeps. The cluster's name is looked up when only its id is
        known and it is still registered."""
        with self._unit_of_work() as uow:
            if cluster_id is not None and cluster_name is None:
                with contextlib.suppress(ClusterNotFound):  # deregistered: no name to add
                    cluster_name = uow.clusters.find_by_id(cluster_id).name
            event = AuditEvent.failure(
                action,
                actor=actor,
                at=self._clock(),
                status_code=status_code,
                cluster_id=cluster_id,
                cluster_name=cluster_name,
            )
            uow.audit.append(event)
            uow.commit()
        return event

    def record_login(self, actor: Actor) -> AuditEvent:
        """Record that ``actor`` logged in (a browser session)."""
        event = AuditEvent.success(AuditAction.AUTH_LOGIN, actor=actor, at=self._clock())
        with self._unit_of_work() as uow:
            uow.audit.append(event)
            uow.commit()
        return event

    def apply_retention(self, *, actor: Actor, days: int | None = None) -> int:
        """Remove the events older than the retention period (``days``, or
        the configured PROXMOXER_AUDIT_RETENTION_DAYS; 0 keeps everything).
        For ``manage.py audit_retention`` and the background scheduler
        (``Actor.system()``). Returns how many events were removed."""
        authorize(actor, Permission.AUDIT, "apply the audit retention period")
        days = self.retention_days if days is None else days
        if days < 0:
            raise ValueError("days must be 0 (keep every event) or more")
        if days == 0:
            return 0
        before = self._clock() - timedelta(days=days)
        with self._unit_of_work() as uow:
            removed = uow.audit.purge(before)
            uow.commit()
        logger.info(
            "Audit events past retention removed, count=%s, before=%s, retention_days=%s",
            removed,
            before.isoformat(),
            days,
        )
        return removed
