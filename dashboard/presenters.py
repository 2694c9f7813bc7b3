"""What the pages show of a cluster, prepared for the templates.

A status becomes a colour, a symbol and a word (colour is never the only
cue); nodes online are shown out of the total; the sections of a cluster's
page that other parts of the registry fill in — nodes, endpoints, history
(docs/product-contract.md §8, §10, §11) — are read by their contract's field
names and say "not yet known" until there is something to show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clusters.domain import Cluster, ClusterStatus, public_cluster


@dataclass(frozen=True)
class StatusBadge:
    value: str  # the status as the API spells it; also the CSS class and filter value
    label: str
    symbol: str  # a shape per status, for readers who cannot tell the colours apart
    meaning: str


STATUS_BADGES: dict[str, StatusBadge] = {
    badge.value: badge
    for badge in (
        StatusBadge(
            ClusterStatus.HEALTHY,
            "Healthy",
            "●",
            "quorate (or a standalone node), every node online",
        ),
        StatusBadge(ClusterStatus.DEGRADED, "Degraded", "▲", "quorate, at least one node offline"),
        StatusBadge(
            ClusterStatus.UNHEALTHY,
            "Unhealthy",
            "✕",
            "not quorate, no node online, or unreachable at the last check",
        ),
        StatusBadge(
            ClusterStatus.UNKNOWN,
            "Unknown",
            "?",
            "the account may not read the cluster's status, or Proxmox refused it",
        ),
    )
}


def status_badge(status: str) -> StatusBadge:
    return STATUS_BADGES.get(str(status), STATUS_BADGES[ClusterStatus.UNKNOWN])


def field_of(item: Any, name: str) -> Any:
    """``name`` of a domain object or of a mapping with the API's field names;
    None where it has no such field (yet)."""
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def moment(value: datetime | str | None) -> datetime | None:
    """A time as a domain object holds it, or as a listed cluster carries it
    (RFC 3339, rendered once for JSON)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


@dataclass(frozen=True)
class ClusterRow:
    """One line of the clusters table."""

    id: uuid.UUID | str
    name: str
    status: StatusBadge
    proxmox_version: str
    nodes_online: int
    node_count: int
    api_endpoint: str
    last_checked_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, cluster: Any) -> ClusterRow:
        return cls(
            id=field_of(cluster, "id"),
            name=field_of(cluster, "name"),
            status=status_badge(field_of(cluster, "status")),
            proxmox_version=field_of(cluster, "proxmox_version") or "",
            nodes_online=field_of(cluster, "nodes_online") or 0,
            node_count=field_of(cluster, "node_count") or 0,
            api_endpoint=field_of(cluster, "api_endpoint"),
            last_checked_at=moment(field_of(cluster, "last_checked_at")),
            last_error=field_of(cluster, "last_error"),
        )


@dataclass(frozen=True)
class EndpointLine:
    url: str
    node: str | None
    fingerprint: str | None
    last_ok_at: datetime | None


def endpoints_of(cluster: Cluster | Mapping[str, Any]) -> list[EndpointLine]:
    """Every address the registry may use for ``cluster``, the registered one
    first, as the API lists them (a domain object is shown in its public
    form, which composes the registered endpoint and the learned ones)."""
    shown = cluster if isinstance(cluster, Mapping) else public_cluster(cluster)
    return [
        EndpointLine(
            url=endpoint["url"],
            node=endpoint.get("node"),
            fingerprint=endpoint.get("fingerprint"),
            last_ok_at=moment(endpoint.get("last_ok_at")),
        )
        for endpoint in shown["endpoints"]
    ]


def observed_fingerprint(cluster: Any) -> str | None:
    """The fingerprint of a certificate the last check found in place of the
    trusted one (a replaced certificate, or one no CA vouches for), for the
    operator to trust; None when the certificate is not the trouble."""
    details = field_of(cluster, "last_error_details") or {}
    observed = details.get("fingerprint")
    if not isinstance(observed, str) or observed == field_of(cluster, "fingerprint"):
        return None
    return observed


@dataclass(frozen=True)
class NodeLine:
    name: str
    status: str
    ip: str | None
    ssl_fingerprint: str | None
    cpu: float | None  # a fraction of maxcpu, as PVE reports it
    maxcpu: int | None
    mem: int | None
    maxmem: int | None
    uptime: int | None

    @classmethod
    def of(cls, node: Any) -> NodeLine:
        return cls(**{name: field_of(node, name) for name in cls.__dataclass_fields__})

    @property
    def memory_fraction(self) -> float | None:
        if self.mem is None or not self.maxmem:
            return None
        return self.mem / self.maxmem


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    from_status: StatusBadge | None  # None: the first status the cluster had
    to_status: StatusBadge
    reason: str | None

    @classmethod
    def of(cls, event: Any) -> HistoryLine:
        before = field_of(event, "from") or field_of(event, "from_status")
        after = field_of(event, "to") or field_of(event, "to_status")
        return cls(
            at=field_of(event, "at"),
            from_status=status_badge(before) if before else None,
            to_status=status_badge(after),
            reason=field_of(event, "reason"),
        )


@dataclass(frozen=True)
class Section:
    """A part of a cluster's page that the registry may not record yet:
    ``lines`` is None while it is not known, a list (maybe empty) once it is."""

    lines: list[Any] | None
    checked_at: datetime | None = None

    @property
    def known(self) -> bool:
        return self.lines is not None


def section(items: Iterable[Any] | None, line: Any, checked_at: datetime | None = None) -> Section:
    if items is None:
        return Section(None)
    return Section([line.of(item) for item in items], checked_at)
