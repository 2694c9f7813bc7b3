"""The default backend: a dictionary in this process's memory.

Fast and dependency-free, but per process and forgotten on restart: two
gunicorn workers each see their own registry (the README says so; use the
Django backend to share and keep clusters).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from operator import attrgetter

from clusters.domain import Cluster, ClusterNameTaken, ClusterNotFound, ClusterRepository, name_key

_listing_order = attrgetter("name_key", "name")


class InMemoryClusterRepository(ClusterRepository):
    """Thread-safe, O(1) by id and by name.

    One lock guards both indexes, so the name check and the insert in
    ``save`` are a single step: of two concurrent registrations of one name,
    exactly one is stored. The ordered listing is rebuilt lazily, on the
    first ``list()`` after a change, because registrations are rare and
    reads are many.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[uuid.UUID, Cluster] = {}
        self._id_by_name: dict[str, uuid.UUID] = {}
        self._listing: tuple[Cluster, ...] | None = ()

    def save(self, cluster: Cluster) -> None:
        key = cluster.name_key
        with self._lock:
            if key in self._id_by_name:
                raise ClusterNameTaken(cluster.name)
            if cluster.id in self._by_id:
                raise ValueError(f"cluster {cluster.id} is already stored; use update()")
            self._by_id[cluster.id] = cluster
            self._id_by_name[key] = cluster.id
            self._listing = None

    def update(self, cluster: Cluster) -> None:
        key = cluster.name_key
        with self._lock:
            previous = self._by_id.get(cluster.id)
            if previous is None:
                raise ClusterNotFound(cluster.id)
            if key != previous.name_key:
                if key in self._id_by_name:
                    raise ClusterNameTaken(cluster.name)
                del self._id_by_name[previous.name_key]
                self._id_by_name[key] = cluster.id
            self._by_id[cluster.id] = cluster
            self._listing = None

    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        try:
            return self._by_id[cluster_id]
        except KeyError:
            raise ClusterNotFound(cluster_id) from None

    def find_by_name(self, name: str) -> Cluster | None:
        with self._lock:
            cluster_id = self._id_by_name.get(name_key(name))
            return None if cluster_id is None else self._by_id[cluster_id]

    def list(self) -> Sequence[Cluster]:
        listing = self._listing
        if listing is None:
            with self._lock:
                if self._listing is None:
                    self._listing = tuple(sorted(self._by_id.values(), key=_listing_order))
                listing = self._listing
        return listing

    def delete(self, cluster_id: uuid.UUID) -> None:
        with self._lock:
            cluster = self._by_id.pop(cluster_id, None)
            if cluster is None:
                raise ClusterNotFound(cluster_id)
            del self._id_by_name[cluster.name_key]
            self._listing = None

    def exists(self, cluster_id: uuid.UUID) -> bool:
        return cluster_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)
