"""The service layer: use cases that the REST API, management commands and
background jobs drive alike (docs/architecture.md, "Layers").

- ``registry.ClusterService`` — register, edit, deregister, list, get.
- ``checks.CheckService`` — check clusters against their API (refresh).
- ``audit.AuditService`` — read the audit log, record failures and logins,
  apply the retention period.
- ``ports`` — what the use cases need from outside: a Proxmox gateway, a
  clock, a unit-of-work factory.
"""

from clusters.services.audit import DEFAULT_RETENTION_DAYS, AuditService
from clusters.services.checks import CheckService
from clusters.services.ports import Clock, ProxmoxGateway, UnitOfWorkFactory, utc_now
from clusters.services.registry import ClusterListing, ClusterService

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "AuditService",
    "CheckService",
    "Clock",
    "ClusterListing",
    "ClusterService",
    "ProxmoxGateway",
    "UnitOfWorkFactory",
    "utc_now",
]
