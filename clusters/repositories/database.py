"""The durable backend: clusters as rows of a Django model, on SQLite or
PostgreSQL (``CLUSTER_REPOSITORY=django``, ``DATABASE_URL``).

Every process sharing the database shares the registry. The case-insensitive
name rule is the database's unique constraint on ``name_key``, so of two
registrations racing in different processes exactly one is stored; the other
gets ``ClusterNameTaken``. Secrets are stored encrypted (clusters.encryption).

Every write runs inside a ``DjangoUnitOfWork``'s transaction; conditional
writes put the version they were based on into their ``WHERE`` clause, so
two processes racing over one cluster cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import QuerySet

from clusters.domain import (
    OBSERVATION_FIELDS,
    AuditEvent,
    AuditLog,
    AuditPage,
    AuditQuery,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterRepository,
    StaleCluster,
    UnitOfWork,
    name_key,
)
from clusters.encryption import CredentialCipher
from clusters.models import NAME_KEY_CONSTRAINT, AuditEventRecord, ClusterRecord

_TABLE = ClusterRecord._meta.db_table
# What an edit writes: the configuration's columns (CONFIGURATION_FIELDS),
# its version and time; what a check recorded meanwhile stays.
_CONFIGURED_FIELDS = [
    "name",
    "name_key",
    "api_endpoint",
    "auth_method",
    "principal",
    "secret_token",
    "token_created_by_registry",
    "verify_tls",
    "fingerprint",
    "version",
    "updated_at",
]
_OBSERVED_FIELDS = sorted(OBSERVATION_FIELDS)


def _violated_unique_column(error: IntegrityError) -> str | None:
    """Which unique rule a write broke: "name_key", "id", or None (another rule)."""
    diagnostics = getattr(error.__cause__, "diag", None)
    if diagnostics is not None:  # psycopg: the server names the constraint
        return {NAME_KEY_CONSTRAINT: "name_key", f"{_TABLE}_pkey": "id"}.get(
            diagnostics.constraint_name
        )
    # sqlite3 names the column: "UNIQUE constraint failed: clusters_cluster.name_key"
    for column in ("name_key", "id"):
        if str(error) == f"UNIQUE constraint failed: {_TABLE}.{column}":
            return column
    return None


class DjangoClusterRepository(ClusterRepository):
    """Clusters in the database of alias ``using`` (by default ``default``).

    Ordered listing uses the name_key column's code-point collation, which
    is exactly the in-memory backend's order (name_key is unique, so its
    tie-breakers never decide). Secrets come back as StoredSecret and are
    decrypted only when revealed.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS, *, cipher: CredentialCipher) -> None:
        self._using = using
        self._cipher = cipher

    # -- reads -------------------------------------------------------------------

    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        try:
            record = self._records().get(pk=cluster_id)
        except ClusterRecord.DoesNotExist:
            raise ClusterNotFound(cluster_id) from None
        return record.to_domain(self._cipher)

    def find_by_name(self, name: str) -> Cluster | None:
        try:
            record = self._records().get(name_key=name_key(name))
        except ClusterRecord.DoesNotExist:
            return None
        return record.to_domain(self._cipher)

    def list(self) -> Sequence[Cluster]:
        cipher = self._cipher
        return tuple(record.to_domain(cipher) for record in self._records().order_by("name_key"))

    def exists(self, cluster_id: uuid.UUID) -> bool:
        return self._records().filter(pk=cluster_id).exists()

    def __len__(self) -> int:
        return self._records().count()

    # -- writes --------------------------------------------------------------------

    def add(self, cluster: Cluster) -> None:
        self._require_transaction()
        record = ClusterRecord.from_domain(cluster, self._cipher)
        try:
            # A savepoint: on PostgreSQL a failed statement would otherwise
            # abort the whole unit of work, which may still want to write.
            with transaction.atomic(using=self._using):
                record.save(force_insert=True, using=self._using)
        except IntegrityError as error:
            violated = _violated_unique_column(error)
            # The memory backend checks the name first; so does this, when an
            # already stored cluster is saved again under a held name.
            if violated == "name_key" or (violated == "id" and self._name_held(cluster.name)):
                raise ClusterNameTaken(cluster.name) from None
            if violated == "id":
                raise ValueError(f"cluster {cluster.id} is already stored; use update()") from None
            raise

    def update(self, cluster: Cluster) -> None:
        record = ClusterRecord.from_domain(cluster, self._cipher)
        values = {field: getattr(record, field) for field in _CONFIGURED_FIELDS}
        self._conditional_update(cluster, based_on=cluster.version - 1, values=values)

    def record_check(self, cluster: Cluster) -> None:
        record = ClusterRecord.from_domain(cluster, self._cipher, with_secret=False)
        values = {field: getattr(record, field) for field in _OBSERVED_FIELDS}
        self._conditional_update(cluster, based_on=cluster.version, values=values)

    def delete(self, cluster_id: uuid.UUID) -> None:
        self._require_transaction()
        deleted, _ = self._records().filter(pk=cluster_id).delete()
        if not deleted:
            raise ClusterNotFound(cluster_id)

    # -- helpers ---------------------------------------------------------------------

    def _conditional_update(
        self, cluster: Cluster, *, based_on: int, values: Mapping[str, Any]
    ) -> None:
        """UPDATE … WHERE id = … AND version = based_on; no row means someone
        else wrote first (StaleCluster) or deleted it (ClusterNotFound)."""
        self._require_transaction()
        try:
            with transaction.atomic(using=self._using):
                changed = self._records().filter(pk=cluster.id, version=based_on).update(**values)
        except IntegrityError as error:
            if _violated_unique_column(error) == "name_key":
                raise ClusterNameTaken(cluster.name) from None
            raise
        if not changed:
            if self.exists(cluster.id):
                raise StaleCluster(cluster.id, based_on)
            raise ClusterNotFound(cluster.id)

    def _records(self) -> QuerySet[ClusterRecord]:
        return ClusterRecord.objects.using(self._using)

    def _name_held(self, name: str) -> bool:
        return self._records().filter(name_key=name_key(name)).exists()

    def _require_transaction(self) -> None:
        if not connections[self._using].in_atomic_block:
            raise RuntimeError("repository writes happen inside a unit of work")


class DjangoAuditLog(AuditLog):
    """Audit events as rows beside the clusters, in the same transaction."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self._using = using

    def append(self, event: AuditEvent) -> None:
        if not connections[self._using].in_atomic_block:
            raise RuntimeError("repository writes happen inside a unit of work")
        AuditEventRecord.from_domain(event).save(using=self._using)

    def list(self) -> Sequence[AuditEvent]:
        records = AuditEventRecord.objects.using(self._using).order_by("-sequence")
        return tuple(record.to_domain() for record in records)

    def query(self, query: AuditQuery) -> AuditPage:
        # The conditions of AuditEvent.matches, in SQL.
        conditions: dict[str, Any] = {
            "action": query.action,
            "outcome": query.outcome,
            "actor": query.actor,
            "cluster_id": query.cluster_id,
            "cluster_name": query.cluster_name,
            "at__gte": query.since,
            "at__lt": query.until,
        }
        records = AuditEventRecord.objects.using(self._using).filter(
            **{lookup: value for lookup, value in conditions.items() if value is not None}
        )
        page = records.order_by("-sequence")[query.offset : query.offset + query.limit]
        return AuditPage(events=tuple(record.to_domain() for record in page), total=records.count())

    def purge(self, before: datetime) -> int:
        if not connections[self._using].in_atomic_block:
            raise RuntimeError("repository writes happen inside a unit of work")
        removed, _ = AuditEventRecord.objects.using(self._using).filter(at__lt=before).delete()
        return removed


class DjangoUnitOfWork(UnitOfWork):
    """One database transaction (``transaction.atomic``) per use case.

    ``commit()`` marks the work to be kept; the transaction commits when the
    block ends (or, nested in an outer atomic block such as a test's, when
    that one does) and rolls back otherwise.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS, *, cipher: CredentialCipher) -> None:
        self._using = using
        self.clusters = DjangoClusterRepository(using, cipher=cipher)
        self.audit = DjangoAuditLog(using)

    def _begin(self) -> None:
        self._atomic = transaction.atomic(using=self._using)
        self._atomic.__enter__()

    def _end(self, *, keep: bool) -> None:
        if not keep:
            transaction.set_rollback(True, using=self._using)
        self._atomic.__exit__(None, None, None)
