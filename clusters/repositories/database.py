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
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from clusters.domain import (
    OBSERVATION_FIELDS,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterPage,
    ClusterQuery,
    ClusterRepository,
    PublicCluster,
    StaleCluster,
    UnitOfWork,
    name_key,
    search_key,
)
from clusters.encryption import CredentialCipher
from clusters.models import NAME_KEY_CONSTRAINT, ClusterRecord

_TABLE = ClusterRecord._meta.db_table
_UPDATED_FIELDS = [
    field.attname
    for field in ClusterRecord._meta.concrete_fields
    if not field.primary_key and field.attname != "created_at"
]
_OBSERVED_FIELDS = sorted(OBSERVATION_FIELDS)
# What a list reads of a row: every column of PublicCluster, in its order,
# with the principal where username/token_id go; never the secret.
_PUBLIC_COLUMNS = (
    "id", "name", "api_endpoint", "status", "proxmox_version", "node_count", "auth_method",
    "principal", "verify_tls", "fingerprint", "created_at", "updated_at", "last_checked_at",
    "last_error", "version",
)  # fmt: skip
_PASSWORD = "password"


def _public_cluster(row: tuple[Any, ...]) -> PublicCluster:
    """A row of _PUBLIC_COLUMNS as a list shows it: read straight from the
    columns, with no model or domain object in between (a list of a
    thousand clusters would spend most of its time building those)."""
    (
        cluster_id, name, api_endpoint, status, proxmox_version, node_count, auth_method,
        principal, verify_tls, fingerprint, created_at, updated_at, last_checked_at,
        last_error, version,
    ) = row  # fmt: skip
    password = auth_method == _PASSWORD
    return {
        "id": cluster_id,
        "name": name,
        "api_endpoint": api_endpoint,
        "status": status,
        "proxmox_version": proxmox_version,
        "node_count": node_count,
        "auth_method": auth_method,
        "username": principal if password else None,
        "token_id": None if password else principal,
        "verify_tls": verify_tls,
        "fingerprint": fingerprint,
        "created_at": created_at,
        "updated_at": updated_at,
        "last_checked_at": last_checked_at,
        "last_error": last_error,
        "version": version,
    }


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

    def page(self, query: ClusterQuery) -> ClusterPage:
        matching = self._records()
        if query.statuses:
            matching = matching.filter(status__in=sorted(query.statuses))
        if query.name is not None:
            matching = matching.filter(name_key=name_key(query.name))
        if query.search is not None:
            # Both sides folded: name_key is, and the endpoint's LOWER() is
            # its casefold() (endpoints are ASCII), on SQLite as on PostgreSQL.
            key = search_key(query.search)
            matching = matching.annotate(endpoint_key=Lower("api_endpoint")).filter(
                Q(name_key__contains=key) | Q(endpoint_key__contains=key)
            )
        offset, limit = query.offset, query.limit
        rows = matching.order_by("name_key").values_list(*_PUBLIC_COLUMNS)
        rows = rows[offset : offset + limit] if limit is not None else rows[offset:]
        clusters = [_public_cluster(row) for row in rows]
        short_page = limit is None or len(clusters) < limit
        if (clusters and short_page) or (not clusters and not offset):
            # The last page (or an empty registry): its end is the total.
            total = offset + len(clusters)
        else:
            total = matching.count()
        return ClusterPage(clusters, total, query)

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
        values = {field: getattr(record, field) for field in _UPDATED_FIELDS}
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


class DjangoUnitOfWork(UnitOfWork):
    """One database transaction (``transaction.atomic``) per use case.

    ``commit()`` marks the work to be kept; the transaction commits when the
    block ends (or, nested in an outer atomic block such as a test's, when
    that one does) and rolls back otherwise.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS, *, cipher: CredentialCipher) -> None:
        self._using = using
        self.clusters = DjangoClusterRepository(using, cipher=cipher)

    def _begin(self) -> None:
        self._atomic = transaction.atomic(using=self._using)
        self._atomic.__enter__()

    def _end(self, *, keep: bool) -> None:
        if not keep:
            transaction.set_rollback(True, using=self._using)
        self._atomic.__exit__(None, None, None)
