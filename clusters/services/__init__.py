"""The service layer: use cases that the REST API, management commands and
background jobs drive alike (docs/architecture.md, "Layers").

- ``registry.ClusterService`` — register, edit, deregister, list, get.
- ``checks.CheckService`` — check clusters against their API: the
  background engine (``check_due``), bulk and single refreshes, and the
  nodes and status history checks leave behind.
- ``audit.AuditService`` — read the audit log, record failures and logins,
  apply the retention period.
- ``ports`` — what the use cases need from outside: a Proxmox gateway, a
  clock, randomness, a unit-of-work factory, an observer of checks.
"""

from clusters.services.audit import DEFAULT_RETENTION_DAYS, AuditService
from clusters.services.checks import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_SCHEDULE,
    CheckListener,
    CheckResult,
    CheckService,
    FinishedCheck,
)
from clusters.services.ports import (
    CheckObserver,
    CheckOutcome,
    Clock,
    IgnoreChecks,
    ProxmoxGateway,
    Random,
    UnitOfWorkFactory,
    utc_now,
)
from clusters.services.registry import ClusterService

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_SCHEDULE",
    "AuditService",
    "CheckListener",
    "CheckObserver",
    "CheckOutcome",
    "CheckResult",
    "CheckService",
    "Clock",
    "ClusterService",
    "FinishedCheck",
    "IgnoreChecks",
    "ProxmoxGateway",
    "Random",
    "UnitOfWorkFactory",
    "utc_now",
]
