"""The composition root: the one function that builds the service layer.

Everything the use cases depend on is an argument — how to open a unit of
work (which also picks the storage backend), the Proxmox gateway, the clock,
the id generator, how checks are scheduled (interval and claim lease,
concurrency, history bound, the randomness of the jitter) and who hears
about checks (the metrics) — so tests and
benchmarks compose exactly what they need. Django calls it once per process
with what the settings choose (clusters/wiring.py); nothing else builds
services.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from clusters.domain import CheckSchedule
from clusters.services import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SCHEDULE,
    AuditService,
    CheckObserver,
    CheckService,
    Clock,
    ClusterService,
    ProxmoxGateway,
    Random,
    UnitOfWorkFactory,
    utc_now,
)


@dataclass(frozen=True)
class Services:
    """The use cases of one composition, sharing their collaborators."""

    clusters: ClusterService
    checks: CheckService
    audit: AuditService


def bootstrap(
    *,
    unit_of_work: UnitOfWorkFactory,
    proxmox: ProxmoxGateway,
    clock: Clock = utc_now,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    schedule: CheckSchedule = DEFAULT_SCHEDULE,
    check_concurrency: int = DEFAULT_CONCURRENCY,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    random: Random = random.random,
    check_observer: CheckObserver | None = None,
    audit_retention_days: int = DEFAULT_RETENTION_DAYS,
) -> Services:
    return Services(
        clusters=ClusterService(
            unit_of_work=unit_of_work,
            proxmox=proxmox,
            clock=clock,
            new_id=new_id,
            schedule=schedule,
            random=random,
            history_limit=history_limit,
        ),
        checks=CheckService(
            unit_of_work=unit_of_work,
            proxmox=proxmox,
            clock=clock,
            schedule=schedule,
            concurrency=check_concurrency,
            history_limit=history_limit,
            random=random,
            observer=check_observer,
        ),
        audit=AuditService(
            unit_of_work=unit_of_work, clock=clock, retention_days=audit_retention_days
        ),
    )
