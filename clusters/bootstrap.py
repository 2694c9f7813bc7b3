"""The composition root: the one function that builds the service layer.

Everything the use cases depend on is an argument — how to open a unit of
work (which also picks the storage backend), the Proxmox gateway, the clock,
the id generator and who hears about checks (the metrics) — so tests and
benchmarks compose exactly what they need. Django calls it once per process
with what the settings choose (clusters/wiring.py); nothing else builds
services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from clusters.services import (
    DEFAULT_RETENTION_DAYS,
    AuditService,
    CheckObserver,
    CheckService,
    Clock,
    ClusterService,
    ProxmoxGateway,
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
    check_observer: CheckObserver | None = None,
    audit_retention_days: int = DEFAULT_RETENTION_DAYS,
) -> Services:
    return Services(
        clusters=ClusterService(
            unit_of_work=unit_of_work, proxmox=proxmox, clock=clock, new_id=new_id
        ),
        checks=CheckService(
            unit_of_work=unit_of_work, proxmox=proxmox, clock=clock, observer=check_observer
        ),
        audit=AuditService(
            unit_of_work=unit_of_work, clock=clock, retention_days=audit_retention_days
        ),
    )
