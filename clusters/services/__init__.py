"""The service layer: use cases that the REST API, management commands and
background jobs drive alike (docs/architecture.md, "Layers").

- ``registry.ClusterService`` — register, edit, deregister, list, get.
- ``checks.CheckService`` — check clusters against their API (refresh).
- ``audit.AuditService`` — read the audit log, record failures and logins,
  apply the retention period.
- ``ports`` — what the use cases need from outside: a Proxmox gateway, a
  clock, a unit-of-work factory, an observer of checks.
"""

from clusters.services.audit import DEFAULT_RETENTION_DAYS, AuditService
from clusters.services.checks import CheckService
from clusters.services.ports import (
    CheckObserver,
    CheckOutcome,
    Clock,
    IgnoreChecks,
    ProxmoxGateway,
    UnitOfWorkFactory,
    utc_now,
)
from clusters.services.registry import ClusterService

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "AuditService",
    "CheckObserver",
    "CheckOutcome",
    "CheckService",
    "Clock",
    "ClusterService",
    "IgnoreChecks",
    "ProxmoxGateway",
    "UnitOfWorkFactory",
    "utc_now",
]
