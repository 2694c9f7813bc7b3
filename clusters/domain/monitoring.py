"""Background checks in the domain's terms (docs/product-contract.md §11):
when a cluster is due, a checker's claim on it, what a check leaves behind
(the node list, a status change), and the record of changes.

A claim is a lease: the claiming checker may check the cluster until
``expires_at``, and its findings are stored only while the claim is still
the cluster's. A checker that dies leaves a claim that simply runs out; a
check that outlives its claim finds it taken and drops what it found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from clusters.domain.cluster import Cluster, ClusterStatus
from clusters.domain.health import NodeState

JITTER = 0.1  # ±10 % of the interval, so a thousand clusters do not all fire in one second


@dataclass(frozen=True, slots=True)
class CheckSchedule:
    """How often clusters are checked, and how long a claim holds.

    ``lease`` must be longer than a check can take (the Proxmox client bounds
    that); ``tick`` is how often an idle checker looks for due clusters.
    """

    interval: timedelta
    lease: timedelta
    jitter: float = JITTER

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.lease <= timedelta(0):
            raise ValueError("the check interval and the claim lease must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("the jitter is a fraction of the interval, below 1")

    def next_check(self, after: datetime, draw: float) -> datetime:
        """When to check again after a check at ``after``: one interval on,
        moved by up to ±jitter of it; ``draw`` is uniform in [0, 1)."""
        factor = 1 + self.jitter * (2 * draw - 1)
        return after + self.interval * factor

    @property
    def tick(self) -> timedelta:
        return check_tick(self.interval)


def check_tick(interval: timedelta) -> timedelta:
    """How often a checker looks for due clusters: a twentieth of the
    interval, between half a second and five seconds, so a cluster is
    checked at most that late and an idle checker asks storage seldom."""
    return min(max(interval / 20, timedelta(seconds=0.5)), timedelta(seconds=5))


@dataclass(frozen=True, slots=True)
class Claim:
    """A checker's hold on one cluster for one check, as the repository
    granted it: ``cluster`` as stored when claimed, ``token`` naming this
    claim (recording is conditional on it), held until ``expires_at``."""

    cluster: Cluster
    token: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NodeList:
    """The nodes of one cluster as its last successful check read them."""

    nodes: tuple[NodeState, ...]
    checked_at: datetime | None


NO_NODES = NodeList((), None)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One change of a cluster's status; ``from_status`` is None for the
    status a cluster was registered with."""

    cluster_id: uuid.UUID
    at: datetime
    from_status: ClusterStatus | None
    to_status: ClusterStatus
    reason: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Some of a cluster's status changes, newest first, and how many there are."""

    events: Sequence[StatusChange]
    total: int
