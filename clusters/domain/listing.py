"""Reading the registry a page at a time: which clusters a list asks for
(``ClusterQuery``), what it gets back (``ClusterPage``), and the form in
which a listed cluster travels (``PublicCluster``) — docs/product-contract.md
§12.

A listed cluster is not a ``Cluster``: a list only shows, so it carries the
fields anyone who may read the registry sees and nothing else — no secret,
not even an encrypted one. Backends build it the cheapest way they can (the
memory store keeps one per cluster, the database reads the columns straight
into it) and the API renders it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from clusters.domain.cluster import Cluster, ClusterStatus
from clusters.domain.endpoint_documents import (
    endpoints_document,
    health_document,
    public_endpoints,
)
from clusters.domain.errors import ValidationFailed
from clusters.domain.fields import has_control_characters, name_key
from clusters.domain.moments import rfc3339

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Far beyond any registry, and inside every database's integer range: an
# offset past it would overflow OFFSET rather than find nothing.
MAX_OFFSET = 2**31 - 1
SEARCH_MAX_LENGTH = 255


class PublicCluster(TypedDict):
    """A cluster as the API shows it, in the API's field order, every value
    ready for JSON: the id as its canonical string, times as RFC 3339 in UTC
    ending in ``Z`` (``rfc3339``), exactly as the cluster serializer writes
    them. A backend that keeps these keeps them rendered once."""

    id: str
    name: str
    api_endpoint: str
    status: str
    proxmox_version: str
    node_count: int
    auth_method: str
    username: str | None
    token_id: str | None
    verify_tls: bool
    fingerprint: str | None
    created_at: str
    updated_at: str
    last_checked_at: str | None
    last_error: str | None
    last_error_details: dict[str, Any] | None
    version: int
    cluster_name: str | None
    nodes_online: int
    next_check_at: str | None
    endpoints: list[dict[str, str | None]]
    discover_endpoints: bool


def public_cluster(cluster: Cluster) -> PublicCluster:
    """What a list shows of ``cluster``."""
    credentials = cluster.credentials
    password = credentials.auth_method == "password"
    checked = cluster.last_checked_at
    return {
        "id": str(cluster.id),
        "name": cluster.name,
        "api_endpoint": cluster.api_endpoint,
        "status": cluster.status.value,
        "proxmox_version": cluster.proxmox_version,
        "node_count": cluster.node_count,
        "auth_method": credentials.auth_method.value,
        "username": credentials.principal if password else None,
        "token_id": None if password else credentials.principal,
        "verify_tls": cluster.verify_tls,
        "fingerprint": cluster.fingerprint,
        "created_at": rfc3339(cluster.created_at),
        "updated_at": rfc3339(cluster.updated_at),
        "last_checked_at": None if checked is None else rfc3339(checked),
        "last_error": cluster.last_error,
        "last_error_details": (
            None if cluster.last_error_details is None else dict(cluster.last_error_details)
        ),
        "version": cluster.version,
        "cluster_name": cluster.cluster_name,
        "nodes_online": cluster.nodes_online,
        "next_check_at": None if cluster.next_check_at is None else rfc3339(cluster.next_check_at),
        "endpoints": public_endpoints(
            cluster.api_endpoint,
            cluster.registered_node,
            cluster.fingerprint,
            endpoints_document(cluster.endpoints),
            health_document(cluster.endpoint_health),
        ),
        "discover_endpoints": cluster.discover_endpoints,
    }


def search_key(text: str) -> str:
    """The form in which a search term and the fields it looks in are
    compared: the name rule's case folding, for names and endpoints alike."""
    return name_key(text)


@dataclass(frozen=True, slots=True)
class ClusterQuery:
    """Which clusters a list asks for, checked on construction.

    Every filter given must hold: ``statuses`` (any of them; empty means
    any status), ``search`` (a case-insensitive substring of the name or the
    endpoint), ``name`` (the name, compared as names are for uniqueness).
    Matches are ordered by name as ``ClusterRepository.list`` orders them;
    the page is ``limit`` of them from ``offset`` on. ``limit=None`` is for
    callers inside the registry that want every match (metrics); the API
    always gives one.
    """

    limit: int | None = DEFAULT_LIMIT
    offset: int = 0
    statuses: frozenset[ClusterStatus] = field(default_factory=frozenset)
    search: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            errors["limit"] = [f"limit must be between 1 and {MAX_LIMIT}"]
        if not 0 <= self.offset <= MAX_OFFSET:
            errors["offset"] = [f"offset must be between 0 and {MAX_OFFSET}"]
        for field_name, text in (("search", self.search), ("name", self.name)):
            if text is None:
                continue
            if len(text) > SEARCH_MAX_LENGTH:
                errors[field_name] = [
                    f"{field_name} must be at most {SEARCH_MAX_LENGTH} characters"
                ]
            elif has_control_characters(text):
                errors[field_name] = [f"{field_name} must not contain control characters"]
        if errors:
            raise ValidationFailed(errors)
        # An empty filter is no filter: "?search=" lists everything.
        if not self.search:
            object.__setattr__(self, "search", None)
        if self.name is not None:
            object.__setattr__(self, "name", self.name.strip() or None)

    def matches(self, cluster: PublicCluster) -> bool:
        """Whether ``cluster`` passes every filter (the memory backend's
        rule; the database backend says the same in SQL)."""
        if self.statuses and cluster["status"] not in self.statuses:
            return False
        if self.name is not None and name_key(cluster["name"]) != name_key(self.name):
            return False
        if self.search is not None:
            key = search_key(self.search)
            return key in search_key(cluster["name"]) or key in search_key(cluster["api_endpoint"])
        return True

    @property
    def filtered(self) -> bool:
        return bool(self.statuses) or self.search is not None or self.name is not None


def parse_statuses(values: Iterable[str]) -> frozenset[ClusterStatus]:
    """Statuses as a client spells them: each value one status or a comma
    list, any case; empty items are ignored. Raises ValidationFailed naming
    every value that is not a status."""
    statuses: set[ClusterStatus] = set()
    unknown: list[str] = []
    for value in values:
        for item in value.split(","):
            spelled = item.strip().lower()
            if not spelled:
                continue
            try:
                statuses.add(ClusterStatus(spelled))
            except ValueError:
                unknown.append(item.strip())
    if unknown:
        choices = ", ".join(status.value for status in ClusterStatus)
        names = ", ".join(repr(item[:40]) for item in unknown)
        raise ValidationFailed({"status": [f"Unknown status {names}; choose from {choices}"]})
    return frozenset(statuses)


@dataclass(frozen=True, slots=True)
class ClusterPage:
    """One page of a list: the clusters on it and how many match in all."""

    clusters: Sequence[PublicCluster]
    total: int
    query: ClusterQuery

    @property
    def has_next(self) -> bool:
        return self.query.offset + len(self.clusters) < self.total

    @property
    def has_previous(self) -> bool:
        return self.query.offset > 0
