"""A registered cluster: what the operator configured, and what the last
check observed.

The two halves change differently. An edit of the configuration moves
``version`` on by one and is conditional on the version it was based on; a
check's observations leave ``version`` alone, so an operator's edit is
never refused because a background check happened to run.

A third kind of field is neither: ``next_check_at``, when the background
checks look next, is the scheduler's bookkeeping. A check writes it with its
findings, and moving it (``rescheduled``) never moves ``version``. Claims on
a cluster by a checker (``monitoring.Claim``) are kept by the repository
beside the cluster, not in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from clusters.domain.credentials import AuthMethod, Credentials
from clusters.domain.fields import name_key

if TYPE_CHECKING:
    from clusters.domain.topology import EndpointHealth, NodeEndpoint


class ClusterStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ConnectionTarget:
    """Where and how to reach one cluster's API."""

    api_endpoint: str
    verify_tls: bool = True
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class Cluster:
    """A registered Proxmox VE cluster (or standalone node).

    Frozen: a repository may hand the same object to many readers at once;
    changes make a new object (``reconfigured``, ``observed``) that a
    repository then stores.
    """

    id: uuid.UUID
    name: str
    api_endpoint: str
    credentials: Credentials
    verify_tls: bool
    fingerprint: str | None
    status: ClusterStatus
    proxmox_version: str
    node_count: int
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None = None
    last_error: str | None = None
    version: int = 1
    # What an operator may act on about ``last_error``, e.g. the certificate
    # fingerprint a node presents now: {"fingerprint": "AB:…"} to pin.
    last_error_details: Mapping[str, Any] | None = None
    cluster_name: str | None = None
    nodes_online: int = 0
    next_check_at: datetime | None = None
    # Further addresses of the cluster's API (other nodes'), tried when the
    # registered one does not answer; learned at registration unless
    # ``discover_endpoints`` is off, or set by hand (domain/topology.py).
    endpoints: tuple[NodeEndpoint, ...] = ()
    discover_endpoints: bool = True
    registered_node: str | None = None  # the node behind api_endpoint, as it said
    # Per endpoint url: when a check last got an answer through it, and not.
    endpoint_health: Mapping[str, EndpointHealth] = field(default_factory=dict)

    @property
    def name_key(self) -> str:
        return name_key(self.name)

    @property
    def target(self) -> ConnectionTarget:
        return ConnectionTarget(self.api_endpoint, self.verify_tls, self.fingerprint)

    @property
    def auth_method(self) -> AuthMethod:
        return self.credentials.auth_method

    @property
    def username(self) -> str | None:
        return getattr(self.credentials, "username", None)

    @property
    def token_id(self) -> str | None:
        return getattr(self.credentials, "token_id", None)

    def reconfigured(self, *, at: datetime, **changes: Any) -> Cluster:
        """This cluster with changed configuration: the next version.

        Only configuration fields may change here; a check's findings go
        through ``observed``.
        """
        unknown = set(changes) - CONFIGURATION_FIELDS
        if unknown:
            raise ValueError(f"not configuration: {', '.join(sorted(unknown))}")
        return replace(self, **changes, version=self.version + 1, updated_at=at)

    def observed(self, *, at: datetime, **findings: Any) -> Cluster:
        """This cluster with what a check found; the version stays."""
        unknown = set(findings) - (OBSERVATION_FIELDS - {"last_checked_at", "updated_at"})
        if unknown:
            raise ValueError(f"not an observation: {', '.join(sorted(unknown))}")
        return replace(self, **findings, last_checked_at=at, updated_at=at)

    def rescheduled(self, next_check_at: datetime | None) -> Cluster:
        """This cluster to be checked next at ``next_check_at`` (None: as soon
        as a checker is free); configuration and findings stay."""
        return replace(self, next_check_at=next_check_at)


# What the operator configures: a change is a new version.
CONFIGURATION_FIELDS = frozenset(
    {
        "name",
        "api_endpoint",
        "credentials",
        "verify_tls",
        "fingerprint",
        "endpoints",
        "discover_endpoints",
        "registered_node",
    }
)
# What a check writes, conditional on the configuration it checked.
OBSERVATION_FIELDS = frozenset(
    {
        "status",
        "proxmox_version",
        "node_count",
        "nodes_online",
        "cluster_name",
        "last_checked_at",
        "last_error",
        "last_error_details",
        "endpoint_health",
        "updated_at",
    }
)
# The checks' schedule: written with a check's findings or on its own, never
# a reason to move the version.
SCHEDULING_FIELDS = frozenset({"next_check_at"})
_IDENTITY_FIELDS = frozenset({"id", "created_at", "version"})
assert {f.name for f in fields(Cluster)} == (
    CONFIGURATION_FIELDS | OBSERVATION_FIELDS | SCHEDULING_FIELDS | _IDENTITY_FIELDS
), "every Cluster field is configuration, observation, scheduling or identity"
