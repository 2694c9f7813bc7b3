"""A backend under test with one-line writes, each its own unit of work.

Most repository tests are about one write at a time; ``AutoCommit`` saves
them the ``with uow: …; uow.commit()`` around each. Reads go straight to
the backend's repository.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from clusters.domain import Cluster, ClusterRepository
from clusters.encryption import CredentialCipher
from clusters.services import UnitOfWorkFactory


class AutoCommit:
    def __init__(self, unit_of_work: UnitOfWorkFactory) -> None:
        self.unit_of_work = unit_of_work
        self.repository: ClusterRepository = unit_of_work().clusters

    def add(self, cluster: Cluster) -> None:
        with self.unit_of_work() as uow:
            uow.clusters.add(cluster)
            uow.commit()

    def update(self, cluster: Cluster) -> None:
        with self.unit_of_work() as uow:
            uow.clusters.update(cluster)
            uow.commit()

    def record_check(self, cluster: Cluster) -> None:
        with self.unit_of_work() as uow:
            uow.clusters.record_check(cluster)
            uow.commit()

    def delete(self, cluster_id: uuid.UUID) -> None:
        with self.unit_of_work() as uow:
            uow.clusters.delete(cluster_id)
            uow.commit()

    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        return self.repository.find_by_id(cluster_id)

    def find_by_name(self, name: str) -> Cluster | None:
        return self.repository.find_by_name(name)

    def list(self) -> Sequence[Cluster]:
        return self.repository.list()

    def exists(self, cluster_id: uuid.UUID) -> bool:
        return self.repository.exists(cluster_id)

    def __len__(self) -> int:
        return len(self.repository)  # type: ignore[arg-type]


def in_memory() -> AutoCommit:
    from clusters.repositories.memory import InMemoryUnitOfWork

    return AutoCommit(InMemoryUnitOfWork.factory())


def in_database(alias: str = "default", *, cipher: CredentialCipher | None = None) -> AutoCommit:
    """The Django backend on database ``alias``; by default with the keys
    of the settings."""
    from clusters.repositories.database import DjangoUnitOfWork

    chosen = cipher if cipher is not None else CredentialCipher.from_settings()
    return AutoCommit(lambda: DjangoUnitOfWork(alias, cipher=chosen))
