"""The durable backend: clusters as rows of a Django model, on SQLite or
PostgreSQL (``CLUSTER_REPOSITORY=django``, ``DATABASE_URL``).

Every process sharing the database shares the registry. The case-insensitive
name rule is the database's unique constraint on ``name_key``, so of two
registrations racing in different processes exactly one is stored; the other
gets ``ClusterNameTaken``. Secrets are stored encrypted (clusters.encryption).

Every write runs inside a ``DjangoUnitOfWork``'s transaction; conditional
writes put the version they were based on into their ``WHERE`` clause, so
two processes racing over one cluster cannot both win.

Claims for the background checks are two columns of the cluster's row
(``claimed_until``, ``claim_token``): PostgreSQL picks due rows with
``SELECT … FOR UPDATE SKIP LOCKED``, so racing checkers skip each other's
rows instead of waiting; SQLite, which locks the whole database for a write,
claims with one conditional ``UPDATE``. A unit of work that writes starts
with its write where it can: on SQLite a transaction that read first and
then writes can fail at once ("database is locked") when another writes.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F, Q, QuerySet, Subquery
from django.db.models.functions import Lower

from clusters.domain import (
    NO_NODES,
    OBSERVATION_FIELDS,
    SCHEDULING_FIELDS,
    AuditEvent,
    AuditLog,
    AuditPage,
    AuditQuery,
    CheckOvertaken,
    Claim,
    Cluster,
    ClusterAlreadyRegistered,
    ClusterIdentities,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterPage,
    ClusterQuery,
    ClusterRepository,
    HistoryPage,
    NodeList,
    NodeLists,
    NodeState,
    PublicCluster,
    StaleCluster,
    StatusChange,
    StatusHistory,
    UnitOfWork,
    name_key,
    rfc3339,
    search_key,
)
from clusters.domain.endpoint_documents import public_endpoints
from clusters.encryption import CredentialCipher
from clusters.models import (
    NAME_KEY_CONSTRAINT,
    AuditEventRecord,
    ClusterIdentityRecord,
    ClusterRecord,
    NodeListRecord,
    StatusChangeRecord,
)

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
    "endpoints",
    "discover_endpoints",
    "registered_node",
    "version",
    "updated_at",
]
_RECORDED_FIELDS = sorted(OBSERVATION_FIELDS | SCHEDULING_FIELDS)
_DUE_FIRST = (F("next_check_at").asc(nulls_first=True), "pk")
# What a list reads of a row: every column of PublicCluster, in its order,
# with the principal where username/token_id go; never the secret.
_PUBLIC_COLUMNS = (
    "id", "name", "api_endpoint", "status", "proxmox_version", "node_count", "auth_method",
    "principal", "verify_tls", "fingerprint", "created_at", "updated_at", "last_checked_at",
    "last_error", "last_error_details", "version", "cluster_name", "nodes_online",
    "next_check_at", "endpoints", "discover_endpoints", "registered_node", "endpoint_health",
)  # fmt: skip
_PASSWORD = "password"


def _public_cluster(
    row: tuple[Any, ...],
    identifier: Callable[[Any], str] = str,
    moment: Callable[[Any], str] = rfc3339,
    document: Callable[[Any], Any] = lambda value: value,
) -> PublicCluster:
    """A row of _PUBLIC_COLUMNS (and whatever follows them) as a list shows
    it: read straight from the columns, with no model or domain object in
    between (a list of a thousand clusters spent most of its time building
    those). ``identifier``, ``moment`` and ``document`` turn the id, the
    timestamps and the JSON column from what the driver gives."""
    (
        cluster_id, name, api_endpoint, status, proxmox_version, node_count, auth_method,
        principal, verify_tls, fingerprint, created_at, updated_at, last_checked_at,
        last_error, last_error_details, version, cluster_name, nodes_online, next_check_at,
        endpoints, discover_endpoints, registered_node, endpoint_health, *_rest,
    ) = row  # fmt: skip
    password = auth_method == _PASSWORD
    return {
        "id": identifier(cluster_id),
        "name": name,
        "api_endpoint": api_endpoint,
        "status": status,
        "proxmox_version": proxmox_version,
        "node_count": node_count,
        "auth_method": auth_method,
        "username": principal if password else None,
        "token_id": None if password else principal,
        "verify_tls": bool(verify_tls),
        "fingerprint": fingerprint,
        "created_at": moment(created_at),
        "updated_at": moment(updated_at),
        "last_checked_at": None if last_checked_at is None else moment(last_checked_at),
        "last_error": last_error,
        "last_error_details": None if last_error_details is None else document(last_error_details),
        "version": version,
        "cluster_name": cluster_name,
        "nodes_online": nodes_online,
        "next_check_at": None if next_check_at is None else moment(next_check_at),
        "endpoints": public_endpoints(
            api_endpoint,
            registered_node,
            fingerprint,
            document(endpoints),
            document(endpoint_health),
        ),
        "discover_endpoints": bool(discover_endpoints),
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


_ALL = 2**63 - 1  # LIMIT without a limit, in a form both databases take


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own characters in ``text`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page_statement(query: ClusterQuery, columns: Sequence[str]) -> tuple[str, list[Any]]:
    """The SQL of ``DjangoClusterRepository.page`` and its parameters: the
    ``columns`` of the page's rows, and the count of every match last.

    The same on SQLite and PostgreSQL: both sides of the search are folded —
    ``name_key`` is ``name_key(name)``, and ``LOWER()`` of an endpoint is
    its casefold() since endpoints are ASCII — and the ``name_key`` column
    sorts by code point on both (its "C" collation on PostgreSQL).
    """
    conditions: list[str] = []
    params: list[Any] = []
    if query.statuses:
        conditions.append(f"status IN ({', '.join(['%s'] * len(query.statuses))})")
        params += sorted(query.statuses)
    if query.name is not None:
        conditions.append("name_key = %s")
        params.append(name_key(query.name))
    if query.search is not None:
        conditions.append(
            "(name_key LIKE %s ESCAPE '\\' OR LOWER(api_endpoint) LIKE %s ESCAPE '\\')"
        )
        params += [_like_pattern(search_key(query.search))] * 2
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # Only fixed fragments and placeholders are joined here; every value
    # the client gave is a parameter.
    sql = (
        f"SELECT {', '.join(columns)}, (SELECT COUNT(*) FROM {_TABLE}{where})"  # noqa: S608
        f" FROM {_TABLE}{where} ORDER BY name_key LIMIT %s OFFSET %s"
    )
    limit = _ALL if query.limit is None else query.limit
    return sql, [*params, *params, limit, query.offset]


def _fetch_binary(
    driver_connection: psycopg.Connection[Any], sql: str, params: list[Any], connection: Any
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` from PostgreSQL in the binary format, through
    psycopg's C loaders.

    Django reads results as text through client-side cursors and loads every
    timestamptz with a Python loader; for a page of a thousand clusters that
    was most of the request. Binary results (which need a server-side
    binding cursor) skip both: the server formats no text and psycopg parses
    none. (Timestamps come in the session's zone; rfc3339 writes them in
    UTC whatever it is.)
    """
    with connection.wrap_database_errors, psycopg.Cursor(driver_connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


# A row version: xmin is the transaction that wrote it, new on every UPDATE
# whoever makes it; version and updated_at make a coincidence of xmin after
# a transaction-id wraparound irrelevant.
_VERSION_COLUMNS = ("id::text", "xmin::text", "version", "updated_at")
_VERSION_COLUMN = _PUBLIC_COLUMNS.index("version")
_UPDATED_AT_COLUMN = _PUBLIC_COLUMNS.index("updated_at")
_BY_IDS = (
    f"SELECT {', '.join(_PUBLIC_COLUMNS)}, id::text, xmin::text "  # noqa: S608
    f"FROM {_TABLE} WHERE id = ANY(%s::uuid[])"
)


class _PublicFormCache:
    """Each cluster's public form by row version, per process and database.

    A page of a thousand clusters then reads two short columns a row
    instead of fifteen, and builds nothing for a cluster that has not
    changed. Entries are keyed by the row version the database reports, so
    any write, by any process or any code path, makes the next page read
    the row again. Only committed rows go in (see ``page``).
    """

    MAX_ENTRIES = 100_000  # past it (deregistered clusters pile up), start over

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[Any, ...], PublicCluster]] = {}

    def lookup(
        self, rows: Sequence[tuple[Any, ...]], driver_connection: Any, connection: Any
    ) -> list[PublicCluster]:
        entries = self._entries
        stale = [row[0] for row in rows if entries.get(row[0], ((),))[0] != row[1:4]]
        if stale:
            if len(entries) + len(stale) > self.MAX_ENTRIES:
                entries.clear()
            for full in _fetch_binary(driver_connection, _BY_IDS, [stale], connection):
                row_version = (full[-1], full[_VERSION_COLUMN], full[_UPDATED_AT_COLUMN])
                entries[full[-2]] = (row_version, _public_cluster(full))
        # A cluster deleted between the two statements is left out.
        found = (entries.get(row[0]) for row in rows)
        return [entry[1] for entry in found if entry is not None]


_PUBLIC_FORMS: defaultdict[str, _PublicFormCache] = defaultdict(_PublicFormCache)

_DATETIME_COLUMNS = [
    _PUBLIC_COLUMNS.index(c)
    for c in ("created_at", "updated_at", "last_checked_at", "next_check_at")
]


# Timestamps as their stored text: sqlite3 would otherwise hand each to the
# converter Django registers for the column type, a regular expression that
# took most of a long list's time.
_SQLITE_COLUMNS = tuple(
    f"CAST({column} AS TEXT)" if index in _DATETIME_COLUMNS else column
    for index, column in enumerate(_PUBLIC_COLUMNS)
)


# The JSON columns' text as sqlite3 hands it over. orjson, not json.loads: a
# row has three such columns, and a page of a thousand clusters with their
# endpoints spent a third of its time in json.loads (docs/benchmarks.md,
# "The cluster list"). What these documents hold (strings, nulls) loads the
# same either way; what orjson would refuse (NaN, a lone surrogate) the
# list's orjson renderer could not write anyway.
_sqlite_document = orjson.loads


def _sqlite_identifier(hex_digits: str) -> str:
    """Django stores a UUID on SQLite as its 32 lowercase hex digits."""
    h = hex_digits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sqlite_moment(stored: str) -> str:
    """Django stores a timestamp on SQLite as ``str()`` of it in UTC without
    the zone, "2026-03-14 15:09:26.535897" (no fraction when it is 0): the
    same digits rfc3339 writes, with a "T" and a "Z"."""
    return stored.replace(" ", "T") + "Z"


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
        """One statement, written out (docs/benchmarks.md, "The cluster
        list"): the page's rows and, as an uncorrelated subquery both
        databases evaluate once, the count of every match. Compiling the
        equivalent queryset cost more than running it.

        On PostgreSQL outside a transaction, the statement reads only each
        row's id and version (``xmin``) and the public forms come from
        this process's cache (``_PublicFormCache``).
        """
        connection = connections[self._using]
        with connection.cursor() as cursor:
            if connection.vendor != "postgresql":
                sql, params = _page_statement(query, _SQLITE_COLUMNS)
                cursor.execute(sql, params)
                rows = cursor.fetchall()
                clusters = [
                    _public_cluster(row, _sqlite_identifier, _sqlite_moment, _sqlite_document)
                    for row in rows
                ]
            elif connection.in_atomic_block:
                # A transaction may see its own uncommitted row versions,
                # which must not outlive it in a cache.
                sql, params = _page_statement(query, _PUBLIC_COLUMNS)
                rows = _fetch_binary(cursor.cursor.connection, sql, params, connection)
                clusters = [_public_cluster(row) for row in rows]
            else:
                sql, params = _page_statement(query, _VERSION_COLUMNS)
                rows = _fetch_binary(cursor.cursor.connection, sql, params, connection)
                clusters = _PUBLIC_FORMS[self._using].lookup(
                    rows, cursor.cursor.connection, connection
                )
        if rows:
            total = rows[0][-1]
        elif query.offset:  # past the end: no row carried the count
            total = self._matching(query).count()
        else:
            total = 0
        return ClusterPage(clusters, total, query)

    def _matching(self, query: ClusterQuery) -> QuerySet[ClusterRecord]:
        """The clusters ``query`` matches, as a queryset (what _page_statement
        says in SQL)."""
        matching = self._records()
        if query.statuses:
            matching = matching.filter(status__in=sorted(query.statuses))
        if query.name is not None:
            matching = matching.filter(name_key=name_key(query.name))
        if query.search is not None:
            key = search_key(query.search)
            matching = matching.annotate(endpoint_key=Lower("api_endpoint")).filter(
                Q(name_key__contains=key) | Q(endpoint_key__contains=key)
            )
        return matching

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

    def record_check(self, cluster: Cluster, *, claim: uuid.UUID | None = None) -> None:
        record = ClusterRecord.from_domain(cluster, self._cipher, with_secret=False)
        values = {field: getattr(record, field) for field in _RECORDED_FIELDS}
        values.update(claimed_until=None, claim_token=None)
        self._conditional_update(
            cluster,
            based_on=cluster.version,
            values=values,
            claim=claim,
            # No name is written, so no unique rule can fail: the savepoint
            # would cost two statements on every check.
            savepoint=False,
        )

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> Sequence[Claim]:
        self._require_transaction()
        if limit <= 0:
            return []
        token, until = uuid.uuid4(), now + lease
        due = (
            self._records()
            .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
            .order_by(*_DUE_FIRST)
        )
        if connections[self._using].features.has_select_for_update_skip_locked:
            # PostgreSQL: lock what is due and not locked by a racing claimer.
            records = list(due.select_for_update(skip_locked=True)[:limit])
            if records:
                self._records().filter(pk__in=[record.pk for record in records]).update(
                    claimed_until=until, claim_token=token
                )
        else:
            # SQLite: a write locks the database before it reads, so this one
            # statement picks and claims atomically; then read what it took.
            claimed = (
                self._records()
                .filter(pk__in=due.values("pk")[:limit])
                .update(claimed_until=until, claim_token=token)
            )
            records = (
                list(self._records().filter(claim_token=token).order_by(*_DUE_FIRST))
                if claimed
                else []
            )
        cipher = self._cipher
        return [Claim(record.to_domain(cipher), token, until) for record in records]

    def claim(self, cluster_id: uuid.UUID, now: datetime, *, lease: timedelta) -> Claim:
        self._require_transaction()
        token, until = uuid.uuid4(), now + lease
        if not self._records().filter(pk=cluster_id).update(claimed_until=until, claim_token=token):
            raise ClusterNotFound(cluster_id)
        return Claim(self.find_by_id(cluster_id), token, until)

    def schedule_all(self, next_check_at: datetime) -> None:
        self._require_transaction()
        self._records().update(next_check_at=next_check_at)

    def delete(self, cluster_id: uuid.UUID) -> None:
        self._require_transaction()
        # The cluster's row first: deleting it waits for a check that is
        # writing it, so that check's node list and history are there to be
        # deleted next (or the check finds the cluster gone and stores none).
        deleted, _ = self._records().filter(pk=cluster_id).delete()
        if not deleted:
            raise ClusterNotFound(cluster_id)
        NodeListRecord.objects.using(self._using).filter(cluster_id=cluster_id).delete()
        StatusChangeRecord.objects.using(self._using).filter(cluster_id=cluster_id).delete()
        ClusterIdentityRecord.objects.using(self._using).filter(cluster_id=cluster_id).delete()

    # -- helpers ---------------------------------------------------------------------

    def _conditional_update(
        self,
        cluster: Cluster,
        *,
        based_on: int,
        values: Mapping[str, Any],
        claim: uuid.UUID | None = None,
        savepoint: bool = True,
    ) -> None:
        """UPDATE … WHERE id = … AND version = based_on [AND claim_token =
        claim]; no row means someone else wrote first (StaleCluster), another
        check took over (CheckOvertaken) or it was deleted (ClusterNotFound)."""
        self._require_transaction()
        matching = self._records().filter(pk=cluster.id, version=based_on)
        if claim is not None:
            matching = matching.filter(claim_token=claim)
        try:
            with transaction.atomic(using=self._using, savepoint=savepoint):
                changed = matching.update(**values)
        except IntegrityError as error:
            if _violated_unique_column(error) == "name_key":
                raise ClusterNameTaken(cluster.name) from None
            raise
        if not changed:
            stored_version = (
                self._records().filter(pk=cluster.id).values_list("version", flat=True).first()
            )
            if stored_version is None:
                raise ClusterNotFound(cluster.id)
            if stored_version != based_on:
                raise StaleCluster(cluster.id, based_on)
            raise CheckOvertaken(cluster.id)

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


class DjangoClusterIdentities(ClusterIdentities):
    """Identity keys as rows whose primary key is the key: of two
    registrations of one cluster racing in different processes, the second
    insert fails and is told which cluster holds it."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self._using = using

    def holder(self, keys: Iterable[str]) -> uuid.UUID | None:
        return (
            ClusterIdentityRecord.objects.using(self._using)
            .filter(key__in=list(keys))
            .values_list("cluster_id", flat=True)
            .first()
        )

    def assign(self, cluster: Cluster, keys: Iterable[str]) -> None:
        _require_transaction(self._using)
        wanted = set(keys)
        rows = ClusterIdentityRecord.objects.using(self._using)
        held = set(rows.filter(cluster_id=cluster.id).values_list("key", flat=True))
        if held == wanted:
            return
        if held - wanted:
            rows.filter(cluster_id=cluster.id, key__in=sorted(held - wanted)).delete()
        try:
            with transaction.atomic(using=self._using):
                rows.bulk_create(
                    ClusterIdentityRecord(key=key, cluster_id=cluster.id)
                    for key in sorted(wanted - held)
                )
        except IntegrityError:
            holder = self.holder(wanted - held)
            if holder is None or holder == cluster.id:
                raise
            name = (
                ClusterRecord.objects.using(self._using)
                .filter(pk=holder)
                .values_list("name", flat=True)
                .first()
            )
            raise ClusterAlreadyRegistered(holder, name or str(holder)) from None


class DjangoNodeLists(NodeLists):
    """Node lists as one JSON row per cluster."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self._using = using

    def replace(
        self, cluster_id: uuid.UUID, nodes: Sequence[NodeState], checked_at: datetime
    ) -> None:
        _require_transaction(self._using)
        # One INSERT … ON CONFLICT DO UPDATE, on SQLite and PostgreSQL alike.
        NodeListRecord.objects.using(self._using).bulk_create(
            [NodeListRecord.from_domain(cluster_id, nodes, checked_at)],
            update_conflicts=True,
            unique_fields=["cluster_id"],
            update_fields=["checked_at", "nodes"],
        )

    def find(self, cluster_id: uuid.UUID) -> NodeList:
        record = NodeListRecord.objects.using(self._using).filter(cluster_id=cluster_id).first()
        return record.to_domain() if record is not None else NO_NODES


class DjangoStatusHistory(StatusHistory):
    """Status changes as rows, the newest found by the (cluster, sequence) index."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self._using = using

    def append(self, change: StatusChange, *, keep: int) -> None:
        _require_transaction(self._using)
        StatusChangeRecord.from_domain(change).save(force_insert=True, using=self._using)
        of_cluster = StatusChangeRecord.objects.using(self._using).filter(
            cluster_id=change.cluster_id
        )
        # Everything older than the keep-th newest (nothing while there are fewer).
        keep_th_newest = of_cluster.order_by("-sequence").values("sequence")[keep - 1 : keep]
        if keep > 0:
            of_cluster.filter(sequence__lt=Subquery(keep_th_newest)).delete()
        else:
            of_cluster.delete()

    def page(self, cluster_id: uuid.UUID, *, limit: int, offset: int = 0) -> HistoryPage:
        records = StatusChangeRecord.objects.using(self._using).filter(cluster_id=cluster_id)
        events = tuple(
            record.to_domain() for record in records.order_by("-sequence")[offset : offset + limit]
        )
        return HistoryPage(events, records.count())


def _fields_of(record: StatusChangeRecord) -> dict[str, Any]:
    return {
        field.attname: getattr(record, field.attname)
        for field in StatusChangeRecord._meta.concrete_fields
        if not field.primary_key
    }


def _require_transaction(using: str) -> None:
    if not connections[using].in_atomic_block:
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
        self.audit = DjangoAuditLog(using)
        self.nodes = DjangoNodeLists(using)
        self.history = DjangoStatusHistory(using)
        self.identities = DjangoClusterIdentities(using)

    def _begin(self) -> None:
        self._atomic = transaction.atomic(using=self._using)
        self._atomic.__enter__()

    def _end(self, *, keep: bool) -> None:
        if not keep:
            transaction.set_rollback(True, using=self._using)
        self._atomic.__exit__(None, None, None)
