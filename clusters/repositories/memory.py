"""The default backend: clusters in this process's memory.

Fast and dependency-free, but per process and forgotten on restart: two
gunicorn workers each see their own registry (docs/operations.md says so;
use the Django backend to share and keep clusters).
"""

from __future__ import annotations

import heapq
import threading
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from clusters.domain import (
    CONFIGURATION_FIELDS,
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
    public_cluster,
)

_OrderKey = tuple[str, str, int]
_Snapshot = tuple[tuple[Cluster, ...], tuple[PublicCluster, ...]]
_NEVER = datetime.min.replace(tzinfo=UTC)  # a cluster never scheduled is due first
_RECORDED_FIELDS = OBSERVATION_FIELDS | SCHEDULING_FIELDS


class _Dependent(Protocol):
    """A store keyed by cluster whose entries go when the cluster does."""

    def forget(self, cluster_id: int) -> Callable[[], object]:
        """Drop the cluster's entries; returns how to put them back."""
        ...


def _order_key(cluster: Cluster) -> _OrderKey:
    # Unique per cluster (the id breaks ties), so bisect finds exactly it.
    return (name_key(cluster.name), cluster.name, cluster.id.int)


class InMemoryBatch:
    """The lock and undo log shared by every in-memory store of one registry
    (clusters, audit events): a unit of work holds the lock from start to end
    and undoes its writes when it is not kept."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._thread: int | None = None
        self._undo: list[Callable[[], object]] = []

    def begin(self) -> None:
        self.lock.acquire()
        if self._thread is not None:
            self.lock.release()
            raise RuntimeError("a unit of work is already open in this thread")
        self._thread = threading.get_ident()
        self._undo = []

    def end(self, *, keep: bool) -> None:
        try:
            if not keep:
                for undo in reversed(self._undo):
                    undo()
        finally:
            self._undo = []
            self._thread = None
            self.lock.release()

    def record(self, undo: Callable[[], object]) -> None:
        """A write was made; ``undo`` reverts it if the batch is not kept."""
        self.require()
        self._undo.append(undo)

    def require(self) -> None:
        if self._thread != threading.get_ident():
            raise RuntimeError("repository writes happen inside a unit of work")


class InMemoryClusterRepository(ClusterRepository):
    """Thread-safe; O(1) writes and lookups by id and by name.

    One re-entrant lock guards every index. A unit of work
    (``InMemoryUnitOfWork``) holds it from start to end, so its writes are
    one step for every other thread: readers wait the few microseconds a
    batch takes and never see half of one, and a batch that is not kept is
    undone before the lock is let go. Use cases never hold a unit of work
    while they talk to Proxmox.

    The name-ordered listing is not maintained on every write: a write
    appends to ``_pending`` (O(1)) and the next ``list()`` applies the
    pending writes to the sorted list by bisection, then hands out an
    immutable snapshot that later reads share, without the lock, until the
    next write. Clusters are keyed by ``UUID.int`` because hashing a UUID
    object runs Python code and an int's hash does not.

    Each stored cluster's public form (what a list shows) is made once, by
    the first read that needs it after the cluster was stored (a write does
    not pay for it: checks store clusters far more often than anyone lists
    them), and the snapshot keeps those in order too: a page is a slice of
    it, with nothing built per request. They are shared by every reader, so
    nobody may change one.
    """

    def __init__(self, batch: InMemoryBatch | None = None) -> None:
        self.batch = batch if batch is not None else InMemoryBatch()
        self._lock = self.batch.lock
        self._by_id: dict[int, Cluster] = {}
        self._public_by_id: dict[int, PublicCluster] = {}
        self._id_by_name: dict[str, int] = {}
        self._order_keys: list[_OrderKey] = []
        self._ordered: list[Cluster] = []
        self._pending: list[tuple[Cluster, bool]] = []  # (cluster, added?) in write order
        self._rebuild = False
        self._snapshot: _Snapshot | None = ((), ())
        self._claims: dict[int, tuple[uuid.UUID, datetime]] = {}  # cluster → (token, until)
        self._dependents: list[_Dependent] = []

    def add_dependent(self, store: _Dependent) -> None:
        """Have ``store`` forget a cluster's entries when it is deleted."""
        self._dependents.append(store)

    # -- reads -------------------------------------------------------------------

    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        with self._lock:
            cluster = self._by_id.get(cluster_id.int)
        if cluster is None:
            raise ClusterNotFound(cluster_id)
        return cluster

    def find_by_name(self, name: str) -> Cluster | None:
        with self._lock:
            cluster_id = self._id_by_name.get(name_key(name))
            return None if cluster_id is None else self._by_id[cluster_id]

    def list(self) -> Sequence[Cluster]:
        return self._ordered_snapshot()[0]

    def page(self, query: ClusterQuery) -> ClusterPage:
        ordered = self._ordered_snapshot()[1]
        matches: Sequence[PublicCluster]
        if query.name is not None:
            with self._lock:
                cluster_id = self._id_by_name.get(name_key(query.name))
                found = None if cluster_id is None else self._public_of(self._by_id[cluster_id])
            matches = [found] if found is not None and query.matches(found) else []
        elif query.filtered:
            matches = [cluster for cluster in ordered if query.matches(cluster)]
        else:
            matches = ordered
        end = None if query.limit is None else query.offset + query.limit
        return ClusterPage(matches[query.offset : end], len(matches), query)

    def _ordered_snapshot(self) -> _Snapshot:
        """The clusters and their public forms in name order, as of the last
        write; rebuilt only by the first read after one."""
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                snapshot = self._snapshot
                if snapshot is None:
                    self._apply_pending_writes()
                    ordered = tuple(self._ordered)
                    snapshot = (ordered, tuple(self._public_of(c) for c in ordered))
                    self._snapshot = snapshot
        return snapshot

    def exists(self, cluster_id: uuid.UUID) -> bool:
        with self._lock:
            return cluster_id.int in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    # -- writes --------------------------------------------------------------------

    def add(self, cluster: Cluster) -> None:
        self._require_batch()
        if name_key(cluster.name) in self._id_by_name:
            raise ClusterNameTaken(cluster.name)
        if cluster.id.int in self._by_id:
            raise ValueError(f"cluster {cluster.id} is already stored; use update()")
        self._insert(cluster)
        self.batch.record(lambda: self._remove(cluster.id.int))

    def update(self, cluster: Cluster) -> None:
        self._require_batch()
        previous = self._stored(cluster.id, version=cluster.version - 1)
        # The configuration only: what a check recorded meanwhile stays.
        configured = {field: getattr(cluster, field) for field in CONFIGURATION_FIELDS}
        self._swap(
            previous,
            replace(previous, **configured, version=cluster.version, updated_at=cluster.updated_at),
        )

    def record_check(self, cluster: Cluster, *, claim: uuid.UUID | None = None) -> None:
        self._require_batch()
        previous = self._stored(cluster.id, version=cluster.version)
        held = self._claims.get(cluster.id.int)
        if claim is not None and (held is None or held[0] != claim):
            raise CheckOvertaken(cluster.id)
        recorded = {field: getattr(cluster, field) for field in _RECORDED_FIELDS}
        self._swap(previous, replace(previous, **recorded))
        self._set_claim(cluster.id.int, None)

    def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> Sequence[Claim]:
        self._require_batch()
        claims = self._claims

        def claimable(cluster: Cluster) -> bool:
            if cluster.next_check_at is not None and cluster.next_check_at > now:
                return False
            held = claims.get(cluster.id.int)
            return held is None or held[1] <= now

        due = filter(claimable, self._by_id.values())
        chosen = heapq.nsmallest(
            limit, due, key=lambda cluster: (cluster.next_check_at or _NEVER, cluster.id.int)
        )
        token, until = uuid.uuid4(), now + lease
        for cluster in chosen:
            self._set_claim(cluster.id.int, (token, until))
        return [Claim(cluster, token, until) for cluster in chosen]

    def claim(self, cluster_id: uuid.UUID, now: datetime, *, lease: timedelta) -> Claim:
        self._require_batch()
        cluster = self._by_id.get(cluster_id.int)
        if cluster is None:
            raise ClusterNotFound(cluster_id)
        granted = Claim(cluster, uuid.uuid4(), now + lease)
        self._set_claim(cluster_id.int, (granted.token, granted.expires_at))
        return granted

    def schedule_all(self, next_check_at: datetime) -> None:
        self._require_batch()
        for cluster in list(self._by_id.values()):
            self._swap(cluster, cluster.rescheduled(next_check_at))

    def delete(self, cluster_id: uuid.UUID) -> None:
        self._require_batch()
        if cluster_id.int not in self._by_id:
            raise ClusterNotFound(cluster_id)
        removed = self._remove(cluster_id.int)
        self.batch.record(lambda: self._insert(removed))
        self._set_claim(cluster_id.int, None)
        for store in self._dependents:
            self.batch.record(store.forget(cluster_id.int))

    def _require_batch(self) -> None:
        self.batch.require()

    # -- the indexes (callers hold the lock) ------------------------------------------

    def _stored(self, cluster_id: uuid.UUID, *, version: int) -> Cluster:
        stored = self._by_id.get(cluster_id.int)
        if stored is None:
            raise ClusterNotFound(cluster_id)
        if stored.version != version:
            raise StaleCluster(cluster_id, version)
        return stored

    def _set_claim(self, cluster_id: int, claim: tuple[uuid.UUID, datetime] | None) -> None:
        before = self._claims.get(cluster_id)
        if claim is None:
            self._claims.pop(cluster_id, None)
        else:
            self._claims[cluster_id] = claim
        self.batch.record(lambda: self._restore_claim(cluster_id, before))

    def _restore_claim(self, cluster_id: int, claim: tuple[uuid.UUID, datetime] | None) -> None:
        if claim is None:
            self._claims.pop(cluster_id, None)
        else:
            self._claims[cluster_id] = claim

    def _swap(self, previous: Cluster, replacement: Cluster) -> None:
        key = name_key(replacement.name)
        held_by = self._id_by_name.get(key)
        if held_by is not None and held_by != previous.id.int:
            raise ClusterNameTaken(replacement.name)
        self._remove(previous.id.int)
        self._insert(replacement)
        self.batch.record(lambda: self._restore(previous))

    def _restore(self, previous: Cluster) -> None:
        self._remove(previous.id.int)
        self._insert(previous)

    def _insert(self, cluster: Cluster) -> None:
        self._by_id[cluster.id.int] = cluster
        self._public_by_id.pop(cluster.id.int, None)
        self._id_by_name[name_key(cluster.name)] = cluster.id.int
        self._note_write(cluster, True)

    def _remove(self, cluster_id: int) -> Cluster:
        cluster = self._by_id.pop(cluster_id)
        self._public_by_id.pop(cluster_id, None)
        del self._id_by_name[name_key(cluster.name)]
        self._note_write(cluster, False)
        return cluster

    # -- the ordered listing -------------------------------------------------------------

    def _public_of(self, cluster: Cluster) -> PublicCluster:
        public = self._public_by_id.get(cluster.id.int)
        if public is None:
            public = self._public_by_id[cluster.id.int] = public_cluster(cluster)
        return public

    def _note_write(self, cluster: Cluster, added: bool) -> None:
        self._snapshot = None
        if self._rebuild:
            return
        self._pending.append((cluster, added))
        if len(self._pending) > len(self._by_id) // 4 + 64:
            # Many writes since the last read: one sort beats many bisections.
            self._pending.clear()
            self._rebuild = True

    def _apply_pending_writes(self) -> None:
        if self._rebuild:
            ordered = sorted(self._by_id.values(), key=_order_key)
            self._order_keys = [_order_key(cluster) for cluster in ordered]
            self._ordered = ordered
            self._rebuild = False
            return
        keys, ordered = self._order_keys, self._ordered
        for cluster, added in self._pending:
            key = _order_key(cluster)
            index = bisect_left(keys, key)
            if added:
                keys.insert(index, key)
                ordered.insert(index, cluster)
            else:
                del keys[index]
                del ordered[index]
        self._pending.clear()


class InMemoryAuditLog(AuditLog):
    """Audit events in this process's memory, beside the clusters they record."""

    def __init__(self, batch: InMemoryBatch | None = None) -> None:
        self.batch = batch if batch is not None else InMemoryBatch()
        self._events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        self.batch.require()
        self._events.append(event)
        self.batch.record(self._events.pop)

    def list(self) -> Sequence[AuditEvent]:
        with self.batch.lock:
            return tuple(reversed(self._events))

    def query(self, query: AuditQuery) -> AuditPage:
        with self.batch.lock:
            matching = [event for event in reversed(self._events) if event.matches(query)]
        page = matching[query.offset : query.offset + query.limit]
        return AuditPage(events=tuple(page), total=len(matching))

    def purge(self, before: datetime) -> int:
        self.batch.require()
        kept = [event for event in self._events if event.at >= before]
        removed = len(self._events) - len(kept)
        if removed:
            previous = list(self._events)
            self._events[:] = kept  # in place: appends' undo steps hold this list
            self.batch.record(lambda: self._events.__setitem__(slice(None), previous))
        return removed


class InMemoryNodeLists(NodeLists):
    """Each cluster's last node list, in this process's memory."""

    def __init__(self, batch: InMemoryBatch) -> None:
        self.batch = batch
        self._lists: dict[int, NodeList] = {}

    def replace(
        self, cluster_id: uuid.UUID, nodes: Sequence[NodeState], checked_at: datetime
    ) -> None:
        self.batch.require()
        key = cluster_id.int
        before = self._lists.get(key)
        self._lists[key] = NodeList(tuple(nodes), checked_at)
        self.batch.record(lambda: self._put_back(key, before))

    def find(self, cluster_id: uuid.UUID) -> NodeList:
        with self.batch.lock:
            return self._lists.get(cluster_id.int, NO_NODES)

    def forget(self, cluster_id: int) -> Callable[[], object]:
        before = self._lists.pop(cluster_id, None)
        return lambda: self._put_back(cluster_id, before)

    def _put_back(self, cluster_id: int, node_list: NodeList | None) -> None:
        if node_list is None:
            self._lists.pop(cluster_id, None)
        else:
            self._lists[cluster_id] = node_list


class InMemoryStatusHistory(StatusHistory):
    """Each cluster's status changes, oldest first, in this process's memory."""

    def __init__(self, batch: InMemoryBatch) -> None:
        self.batch = batch
        self._changes: dict[int, list[StatusChange]] = {}

    def append(self, change: StatusChange, *, keep: int) -> None:
        self.batch.require()
        key = change.cluster_id.int
        before = self._changes.get(key)
        changes = [*(before or ()), change]
        self._changes[key] = changes[-keep:] if keep > 0 else []
        self.batch.record(lambda: self._put_back(key, before))

    def page(self, cluster_id: uuid.UUID, *, limit: int, offset: int = 0) -> HistoryPage:
        with self.batch.lock:
            changes = self._changes.get(cluster_id.int, [])
            newest_first = changes[::-1]
            return HistoryPage(tuple(newest_first[offset : offset + limit]), len(changes))

    def forget(self, cluster_id: int) -> Callable[[], object]:
        before = self._changes.pop(cluster_id, None)
        return lambda: self._put_back(cluster_id, before)

    def _put_back(self, cluster_id: int, changes: list[StatusChange] | None) -> None:
        if changes is None:
            self._changes.pop(cluster_id, None)
        else:
            self._changes[cluster_id] = changes


class InMemoryClusterIdentities(ClusterIdentities):
    """Which cluster holds each identity key, in this process's memory."""

    def __init__(self, clusters: InMemoryClusterRepository) -> None:
        self.batch = clusters.batch
        self._clusters = clusters
        self._holders: dict[str, int] = {}
        self._keys: dict[int, frozenset[str]] = {}

    def holder(self, keys: Iterable[str]) -> uuid.UUID | None:
        with self.batch.lock:
            for key in keys:
                if key in self._holders:
                    return uuid.UUID(int=self._holders[key])
        return None

    def assign(self, cluster: Cluster, keys: Iterable[str]) -> None:
        self.batch.require()
        wanted = frozenset(keys)
        cluster_id = cluster.id.int
        for key in wanted:
            held_by = self._holders.get(key)
            if held_by is not None and held_by != cluster_id:
                holder = self._clusters.find_by_id(uuid.UUID(int=held_by))
                raise ClusterAlreadyRegistered(holder.id, holder.name)
        before = self._keys.get(cluster_id, frozenset())
        self._put_back(cluster_id, wanted)
        self.batch.record(lambda: self._put_back(cluster_id, before))

    def forget(self, cluster_id: int) -> Callable[[], object]:
        before = self._keys.get(cluster_id, frozenset())
        self._put_back(cluster_id, frozenset())
        return lambda: self._put_back(cluster_id, before)

    def _put_back(self, cluster_id: int, keys: frozenset[str]) -> None:
        for key in self._keys.pop(cluster_id, frozenset()):
            self._holders.pop(key, None)
        if keys:
            self._keys[cluster_id] = keys
            for key in keys:
                self._holders[key] = cluster_id


class InMemoryUnitOfWork(UnitOfWork):
    """A lock-scoped batch over one registry's in-memory stores."""

    def __init__(
        self,
        clusters: InMemoryClusterRepository,
        audit: InMemoryAuditLog,
        nodes: InMemoryNodeLists | None = None,
        history: InMemoryStatusHistory | None = None,
        identities: InMemoryClusterIdentities | None = None,
    ) -> None:
        if clusters.batch is not audit.batch:
            raise ValueError("the stores of one unit of work share one batch")
        self.clusters = clusters
        self.audit = audit
        self.nodes = nodes if nodes is not None else InMemoryNodeLists(clusters.batch)
        self.history = history if history is not None else InMemoryStatusHistory(clusters.batch)
        self.identities = (
            identities if identities is not None else InMemoryClusterIdentities(clusters)
        )
        if self.nodes.batch is not clusters.batch or self.history.batch is not clusters.batch:
            raise ValueError("the stores of one unit of work share one batch")
        self._batch = clusters.batch

    def _begin(self) -> None:
        self._batch.begin()

    def _end(self, *, keep: bool) -> None:
        self._batch.end(keep=keep)

    @classmethod
    def factory(
        cls, repository: InMemoryClusterRepository | None = None
    ) -> Callable[[], InMemoryUnitOfWork]:
        """Units of work over one registry (a new, empty one unless given)."""
        clusters = repository if repository is not None else InMemoryClusterRepository()
        audit = InMemoryAuditLog(clusters.batch)
        nodes = InMemoryNodeLists(clusters.batch)
        history = InMemoryStatusHistory(clusters.batch)
        identities = InMemoryClusterIdentities(clusters)
        clusters.add_dependent(nodes)
        clusters.add_dependent(history)
        clusters.add_dependent(identities)
        return lambda: cls(clusters, audit, nodes, history, identities)
