"""The storage contract every backend keeps, and the unit of work that
scopes a use case's writes.

Reads may happen anywhere; writes happen only inside a unit of work, which
either keeps all of them (``commit``) or none (leaving the block without
committing, or with an exception). One contract suite holds the in-memory
and the Django backends to this (tests/integration/test_repository_contract.py).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from clusters.domain.audit import AuditEvent, AuditPage, AuditQuery
from clusters.domain.cluster import Cluster
from clusters.domain.listing import ClusterPage, ClusterQuery


class ClusterRepository(ABC):
    """Where registered clusters live."""

    # -- reads ---------------------------------------------------------------

    @abstractmethod
    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        """Raises ClusterNotFound."""

    @abstractmethod
    def find_by_name(self, name: str) -> Cluster | None:
        """Case-insensitive; None when no cluster holds the name."""

    @abstractmethod
    def list(self) -> Sequence[Cluster]:
        """Every cluster, ordered by name (case-insensitively)."""

    @abstractmethod
    def page(self, query: ClusterQuery) -> ClusterPage:
        """The clusters ``query`` asks for, in ``list()``'s order, as the
        API shows them; ``total`` counts every match, not only this page's."""

    @abstractmethod
    def exists(self, cluster_id: uuid.UUID) -> bool: ...

    # -- writes (inside a unit of work) ----------------------------------------

    @abstractmethod
    def add(self, cluster: Cluster) -> None:
        """Store a newly registered cluster.

        Atomic: raises ClusterNameTaken when another cluster holds the name
        (compared case-insensitively), also between concurrent calls and,
        for shared backends, between processes.
        """

    @abstractmethod
    def update(self, cluster: Cluster) -> None:
        """Store a new version of a cluster's configuration
        (``CONFIGURATION_FIELDS``, ``version`` and ``updated_at``), leaving
        what checks observed as it is stored: an edit never undoes a check's
        findings recorded meanwhile (findings of its own go through
        ``record_check`` in the same unit of work).

        Conditional: the stored cluster must still be at ``cluster.version - 1``,
        the version the change was based on; otherwise StaleCluster, and
        nothing changes. Raises ClusterNotFound when it was deleted,
        ClusterNameTaken when the new name is held by another cluster.
        """

    @abstractmethod
    def record_check(self, cluster: Cluster) -> None:
        """Store what a check observed (``OBSERVATION_FIELDS``), leaving the
        configuration as it is.

        Conditional: the stored cluster must still be at ``cluster.version``,
        the configuration that was checked; otherwise StaleCluster and the
        observation is dropped. Raises ClusterNotFound when the cluster was
        deleted meanwhile, so a check never brings a cluster back.
        """

    @abstractmethod
    def delete(self, cluster_id: uuid.UUID) -> None:
        """Raises ClusterNotFound."""


class AuditLog(ABC):
    """Where audit events are kept: appended inside the unit of work of the
    change they record, never edited or deleted through the registry."""

    @abstractmethod
    def append(self, event: AuditEvent) -> None:
        """Keep ``event`` (inside a unit of work)."""

    @abstractmethod
    def list(self) -> Sequence[AuditEvent]:
        """Every event, newest first."""

    @abstractmethod
    def query(self, query: AuditQuery) -> AuditPage:
        """The events ``query`` selects, newest first (the order they were
        appended in, reversed), one page of them, and how many matched."""

    @abstractmethod
    def purge(self, before: datetime) -> int:
        """Remove every event that happened before ``before`` (inside a unit
        of work): the retention period, and the only way an event goes.
        Returns how many were removed."""


class UnitOfWork(ABC):
    """One use case's writes, kept together or not at all.

    ``with uow: …; uow.commit()`` — leaving the block keeps the writes when
    ``commit()`` was called and discards them otherwise (an exception, a
    forgotten commit). A unit of work is for one thread and one block at a
    time; the service makes a new one for each use case.
    """

    clusters: ClusterRepository
    audit: AuditLog

    _commit_requested = False

    def __enter__(self) -> Self:
        self._commit_requested = False
        self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._end(keep=exc is None and self._commit_requested)

    def commit(self) -> None:
        """Keep this block's writes when it ends."""
        self._commit_requested = True

    @abstractmethod
    def _begin(self) -> None:
        """Start the batch (open a transaction, take a lock)."""

    @abstractmethod
    def _end(self, *, keep: bool) -> None:
        """Finish the batch: keep or discard its writes, release what _begin took."""
