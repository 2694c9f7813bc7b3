"""The default backend: clusters in this process's memory.

Fast and dependency-free, but per process and forgotten on restart: two
gunicorn workers each see their own registry (the README says so; use the
Django backend to share and keep clusters).
"""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_left
from collections.abc import Sequence

from clusters.domain import Cluster, ClusterNameTaken, ClusterNotFound, ClusterRepository, name_key

_OrderKey = tuple[str, str, int]


def _order_key(cluster: Cluster) -> _OrderKey:
    # Unique per cluster (the id breaks ties), so bisect finds exactly it.
    return (name_key(cluster.name), cluster.name, cluster.id.int)


class InMemoryClusterRepository(ClusterRepository):
    """Thread-safe; O(1) save, delete and lookups by id and by name.

    One lock guards both indexes, so the name check and the insert in
    ``save`` are one step: of two concurrent registrations of one name,
    exactly one is stored.

    The name-ordered listing is not maintained on every write: a write
    appends to ``_pending`` (O(1)) and the next ``list()`` applies the
    pending writes to the sorted list by bisection, then hands out an
    immutable snapshot that later reads share until the next write.
    Clusters are keyed by ``UUID.int`` because hashing a UUID object runs
    Python code and an int's hash does not.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Cluster] = {}
        self._id_by_name: dict[str, int] = {}
        self._order_keys: list[_OrderKey] = []
        self._ordered: list[Cluster] = []
        self._pending: list[tuple[Cluster, bool]] = []  # (cluster, added?) in write order
        self._rebuild = False
        self._snapshot: tuple[Cluster, ...] | None = ()

    def save(self, cluster: Cluster) -> None:
        key = name_key(cluster.name)
        cluster_id = cluster.id.int
        by_id = self._by_id
        with self._lock:
            if key in self._id_by_name:
                raise ClusterNameTaken(cluster.name)
            if cluster_id in by_id:
                raise ValueError(f"cluster {cluster.id} is already stored; use update()")
            by_id[cluster_id] = cluster
            self._id_by_name[key] = cluster_id
            self._note_write(cluster, True)

    def update(self, cluster: Cluster) -> None:
        key = name_key(cluster.name)
        cluster_id = cluster.id.int
        with self._lock:
            previous = self._by_id.get(cluster_id)
            if previous is None:
                raise ClusterNotFound(cluster.id)
            previous_key = name_key(previous.name)
            if key != previous_key:
                if key in self._id_by_name:
                    raise ClusterNameTaken(cluster.name)
                del self._id_by_name[previous_key]
                self._id_by_name[key] = cluster_id
            self._by_id[cluster_id] = cluster
            self._note_write(previous, False)
            self._note_write(cluster, True)

    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        cluster = self._by_id.get(cluster_id.int)
        if cluster is None:
            raise ClusterNotFound(cluster_id)
        return cluster

    def find_by_name(self, name: str) -> Cluster | None:
        with self._lock:
            cluster_id = self._id_by_name.get(name_key(name))
            return None if cluster_id is None else self._by_id[cluster_id]

    def list(self) -> Sequence[Cluster]:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                if self._snapshot is None:
                    self._apply_pending_writes()
                    self._snapshot = tuple(self._ordered)
                snapshot = self._snapshot
        return snapshot

    def delete(self, cluster_id: uuid.UUID) -> None:
        with self._lock:
            cluster = self._by_id.pop(cluster_id.int, None)
            if cluster is None:
                raise ClusterNotFound(cluster_id)
            del self._id_by_name[name_key(cluster.name)]
            self._note_write(cluster, False)

    def exists(self, cluster_id: uuid.UUID) -> bool:
        return cluster_id.int in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    # -- the ordered listing (callers hold the lock) ---------------------------

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
