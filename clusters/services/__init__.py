"""The service layer: use cases that the REST API, management commands and
background jobs drive alike (docs/architecture.md, "Layers").

- ``registry.ClusterService`` — register, edit, deregister, list, get.
- ``checks.CheckService`` — check clusters against their API: the
  background engine (``check_due``), bulk and single refreshes, and the
  nodes and status history checks leave behind.
- ``ports`` — what the use cases need from outside: a Proxmox gateway, a
  clock, randomness, a unit-of-work factory.
"""

from clusters.services.checks import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_SCHEDULE,
    CheckListener,
    CheckOutcome,
    CheckResult,
    CheckService,
)
from clusters.services.ports import Clock, ProxmoxGateway, Random, UnitOfWorkFactory, utc_now
from clusters.services.registry import ClusterListing, ClusterService

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_SCHEDULE",
    "CheckListener",
    "CheckOutcome",
    "CheckResult",
    "CheckService",
    "Clock",
    "ClusterListing",
    "ClusterService",
    "ProxmoxGateway",
    "Random",
    "UnitOfWorkFactory",
    "utc_now",
]
