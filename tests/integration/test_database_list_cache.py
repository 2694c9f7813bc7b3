"""The PostgreSQL backend's cache of public forms (clusters/repositories/
database.py, ``_PublicFormCache``): keyed by the row version the database
keeps, so a write by any code path shows on the next page, and a
transaction's own uncommitted rows never enter it."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from clusters.domain import ClusterQuery
from tests import postgres
from tests.backends import backend_param, units_of_work
from tests.cluster_samples import make_cluster
from tests.units_of_work import AutoCommit


@pytest.fixture(params=[backend_param("postgres", transaction=True)])
def store(request: pytest.FixtureRequest) -> AutoCommit:
    return AutoCommit(units_of_work(request.param))


def names_and_statuses(store: AutoCommit) -> list[tuple[str, str]]:
    page = store.repository.page(ClusterQuery())
    return [(cluster["name"], cluster["status"]) for cluster in page.clusters]


def test_a_write_that_bypasses_the_repository_shows_on_the_next_page(store: AutoCommit) -> None:
    cluster = make_cluster("lab")
    store.add(cluster)
    assert names_and_statuses(store) == [("lab", "healthy")]

    with connections[postgres.ALIAS].cursor() as cursor:
        cursor.execute(
            "UPDATE clusters_cluster SET status = 'unhealthy' WHERE id = %s", [cluster.id]
        )

    assert names_and_statuses(store) == [("lab", "unhealthy")]


def test_uncommitted_rows_never_outlive_their_transaction(store: AutoCommit) -> None:
    cluster = make_cluster("lab")
    store.add(cluster)
    assert names_and_statuses(store) == [("lab", "healthy")]

    with transaction.atomic(using=postgres.ALIAS):
        with store.unit_of_work() as uow:
            uow.clusters.update(cluster.reconfigured(at=cluster.created_at, name="renamed"))
            uow.commit()
        assert names_and_statuses(store) == [("renamed", "healthy")]
        transaction.set_rollback(True, using=postgres.ALIAS)

    assert names_and_statuses(store) == [("lab", "healthy")]
