"""One contract, every backend: the in-memory store and the Django model on
SQLite and on PostgreSQL pass the same tests, so the fake the unit tests use
cannot drift from the databases production uses.

Each test runs as ``[memory]``, ``[sqlite]`` and ``[postgres]``; the last
needs the server of DATABASE_URL_POSTGRES (tests/postgres.py).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from clusters.domain import (
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterRepository,
    ClusterStatus,
    PasswordCredentials,
    name_key,
)
from clusters.repositories.database import DjangoClusterRepository
from clusters.repositories.memory import InMemoryClusterRepository
from tests import postgres
from tests.cluster_samples import NOW, make_cluster, token_cluster

BACKENDS = ("memory", "sqlite", "postgres")
_VENDORS = {"sqlite": "sqlite", "postgres": "postgresql"}
_ALIASES = {"sqlite": DEFAULT_DB_ALIAS, "postgres": postgres.ALIAS}


def _backend(backend: str, *, transaction: bool) -> object:
    marks: list[pytest.MarkDecorator] = []
    if backend == "sqlite":
        marks.append(pytest.mark.django_db(transaction=transaction))
    elif backend == "postgres":
        marks.append(pytest.mark.postgres)
        # Without the server the alias does not exist and the test skips (or
        # fails, in CI) before it would touch a database.
        if postgres.ALIAS in settings.DATABASES:
            marks.append(pytest.mark.django_db(transaction=transaction, databases=[postgres.ALIAS]))
    return pytest.param(backend, marks=marks, id=backend)


def _build(backend: str) -> ClusterRepository:
    if backend == "memory":
        return InMemoryClusterRepository()
    alias = _ALIASES[backend]
    vendor = connections[alias].vendor
    if vendor != _VENDORS[backend]:
        pytest.skip(f"database alias {alias!r} is {vendor}, not {backend} (DATABASE_URL)")
    return DjangoClusterRepository(using=alias)


@pytest.fixture(params=[_backend(backend, transaction=False) for backend in BACKENDS])
def repository(request: pytest.FixtureRequest) -> ClusterRepository:
    """Each test inside a transaction rolled back afterwards."""
    return _build(request.param)


@pytest.fixture(params=[_backend(backend, transaction=True) for backend in BACKENDS])
def shared_repository(request: pytest.FixtureRequest) -> ClusterRepository:
    """Committed writes, which other threads' database connections see."""
    return _build(request.param)


def memory_order(clusters: list[Cluster]) -> list[str]:
    """The order the contract promises, spelled out as the memory backend keys it."""
    return [c.name for c in sorted(clusters, key=lambda c: (name_key(c.name), c.name, c.id.int))]


# -- save and find -------------------------------------------------------------


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_find_by_id_returns_the_saved_cluster_field_for_field(
    repository: ClusterRepository, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.save(cluster)

    found = repository.find_by_id(cluster.id)

    assert found == cluster
    assert found.credentials.principal == cluster.credentials.principal
    assert found.credentials.auth_method == cluster.credentials.auth_method
    assert found.created_at == NOW and found.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_found_cluster_reveals_the_saved_secret(
    repository: ClusterRepository, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.save(cluster)
    credentials = repository.find_by_id(cluster.id).credentials

    secret = (
        credentials.password if isinstance(credentials, PasswordCredentials) else credentials.secret
    )
    expected = cluster.credentials
    assert (
        secret.reveal()
        == (
            expected.password if isinstance(expected, PasswordCredentials) else expected.secret
        ).reveal()
    )


def test_find_by_id_raises_cluster_not_found_for_an_unknown_id(
    repository: ClusterRepository,
) -> None:
    repository.save(make_cluster())
    missing = uuid.uuid4()

    with pytest.raises(ClusterNotFound) as raised:
        repository.find_by_id(missing)

    assert raised.value.cluster_id == missing
    assert str(missing) in raised.value.message


NAME_CASE_VARIANTS = [
    ("Prod-EU", "prod-eu"),
    ("prod-eu", "PROD-EU"),
    ("Ärger", "äRGER"),  # non-ASCII letters: SQLite's LOWER() would miss these
    ("Straße", "STRASSE"),  # casefold, not lower: ß folds to ss
    ("Σίσυφος", "ΣΊΣΥΦΟΣ"),  # final sigma
    ("ﬃ-lab", "FFI-LAB"),  # one character folding to three
]


@pytest.mark.parametrize(("stored_name", "asked_name"), NAME_CASE_VARIANTS)
def test_find_by_name_ignores_case(
    repository: ClusterRepository, stored_name: str, asked_name: str
) -> None:
    cluster = make_cluster(stored_name)
    repository.save(cluster)
    repository.save(make_cluster("Other"))

    assert repository.find_by_name(asked_name) == cluster
    assert repository.find_by_name(stored_name) == cluster


def test_find_by_name_returns_none_for_an_unknown_name(repository: ClusterRepository) -> None:
    repository.save(make_cluster("Prod-EU"))

    assert repository.find_by_name("Prod-US") is None
    assert repository.find_by_name("Prod-EU ") is None


@pytest.mark.parametrize(("stored_name", "taken_name"), NAME_CASE_VARIANTS)
def test_save_refuses_a_name_held_case_insensitively(
    repository: ClusterRepository, stored_name: str, taken_name: str
) -> None:
    first = make_cluster(stored_name)
    repository.save(first)

    with pytest.raises(ClusterNameTaken) as raised:
        repository.save(make_cluster(taken_name))

    assert raised.value.name == taken_name
    assert list(repository.list()) == [first]


@pytest.mark.parametrize(
    ("one", "other"), [("a", "á"), ("i", "\u0131"), ("Prod", "Prod-2"), ("ß", "s")]
)
def test_save_accepts_names_that_differ_beyond_case(
    repository: ClusterRepository, one: str, other: str
) -> None:
    repository.save(make_cluster(one))
    repository.save(make_cluster(other))

    assert {c.name for c in repository.list()} == {one, other}


def test_save_accepts_the_longest_name_even_when_casefolding_triples_it(
    repository: ClusterRepository,
) -> None:
    cluster = make_cluster("ﬃ" * 255)
    repository.save(cluster)

    assert repository.find_by_name("FFI" * 255) == cluster


def test_save_refuses_an_id_already_stored(repository: ClusterRepository) -> None:
    cluster = make_cluster("Prod-EU")
    repository.save(cluster)

    with pytest.raises(ValueError, match="already stored"):
        repository.save(replace(cluster, name="Prod-US"))
    with pytest.raises(ClusterNameTaken):  # the name is checked first
        repository.save(cluster)
    assert list(repository.list()) == [cluster]


# -- list ----------------------------------------------------------------------

ORDERING_NAMES = [
    "beta", "Alpha", "alpha-2", "_internal", "Zeta", "zeta2", "Äpfel", "apfel", "Éclair",
    "eclair", "10-rack", "9-rack", "Straße", "strasse-2", "İstanbul", "istanbul", "Ωmega",
    "ωmega-2", "東京", "🚀 launch", "a b", "a-b", "a_b", "ab", "B", "b1",
]  # fmt: skip


def test_list_is_empty_for_an_empty_repository(repository: ClusterRepository) -> None:
    assert list(repository.list()) == []


def test_list_orders_by_casefolded_name_by_code_point(repository: ClusterRepository) -> None:
    """Not a database collation's idea of order: en_US would ignore the
    punctuation in "a b"/"a-b"/"a_b" and put "É" beside "e"."""
    clusters = [make_cluster(name) for name in ORDERING_NAMES]
    for cluster in random.Random(7).sample(clusters, len(clusters)):
        repository.save(cluster)

    listed = repository.list()

    assert [c.name for c in listed] == memory_order(clusters)
    assert listed[0] == next(c for c in clusters if c.name == listed[0].name)


def test_list_follows_every_kind_of_write(repository: ClusterRepository) -> None:
    clusters = {name: make_cluster(name) for name in ("delta", "Bravo", "charlie")}
    for cluster in clusters.values():
        repository.save(cluster)
    assert [c.name for c in repository.list()] == ["Bravo", "charlie", "delta"]

    repository.save(make_cluster("alpha"))
    repository.delete(clusters["charlie"].id)
    repository.update(replace(clusters["delta"], name="Echo", status=ClusterStatus.DEGRADED))

    listed = repository.list()
    assert [c.name for c in listed] == ["alpha", "Bravo", "Echo"]
    assert listed[2].status is ClusterStatus.DEGRADED


# -- update --------------------------------------------------------------------


def test_update_replaces_every_field(repository: ClusterRepository) -> None:
    cluster = make_cluster()
    repository.save(cluster)
    later = NOW + timedelta(hours=1)
    checked = replace(
        token_cluster(),
        id=cluster.id,
        name="Prod-EU-renamed",
        api_endpoint="https://[2001:db8::1]:8443",
        status=ClusterStatus.DEGRADED,
        proxmox_version="8.3.0",
        node_count=5,
        created_at=cluster.created_at,
        updated_at=later,
        last_checked_at=later,
    )

    repository.update(checked)

    assert repository.find_by_id(cluster.id) == checked
    assert repository.find_by_name("prod-eu-renamed") == checked
    assert repository.find_by_name("Prod-EU") is None


def test_update_of_a_deleted_cluster_raises_and_does_not_bring_it_back(
    repository: ClusterRepository,
) -> None:
    cluster = make_cluster()
    repository.save(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.update(replace(cluster, status=ClusterStatus.UNHEALTHY))

    assert not repository.exists(cluster.id)
    assert repository.find_by_name(cluster.name) is None
    assert list(repository.list()) == []


def test_update_refuses_a_rename_onto_another_clusters_name(repository: ClusterRepository) -> None:
    first, second = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.save(first)
    repository.save(second)

    with pytest.raises(ClusterNameTaken):
        repository.update(replace(second, name="PROD-eu"))

    assert repository.find_by_id(second.id) == second
    assert repository.find_by_name("prod-eu") == first


def test_update_may_change_the_case_of_a_clusters_own_name(repository: ClusterRepository) -> None:
    cluster = make_cluster("prod-eu")
    repository.save(cluster)

    repository.update(replace(cluster, name="Prod-EU"))

    assert repository.find_by_name("PROD-EU") == replace(cluster, name="Prod-EU")


def test_update_frees_the_previous_name(repository: ClusterRepository) -> None:
    cluster = make_cluster("Prod-EU")
    repository.save(cluster)
    repository.update(replace(cluster, name="Prod-EU-old"))

    newcomer = make_cluster("prod-eu")
    repository.save(newcomer)

    assert repository.find_by_name("PROD-EU") == newcomer


# -- delete and exists -----------------------------------------------------------


def test_delete_removes_the_cluster_from_every_lookup(repository: ClusterRepository) -> None:
    cluster, other = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.save(cluster)
    repository.save(other)

    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.find_by_id(cluster.id)
    assert repository.find_by_name("prod-eu") is None
    assert not repository.exists(cluster.id)
    assert list(repository.list()) == [other]


def test_delete_frees_the_name(repository: ClusterRepository) -> None:
    cluster = make_cluster("Prod-EU")
    repository.save(cluster)
    repository.delete(cluster.id)

    again = make_cluster("PROD-EU")
    repository.save(again)

    assert repository.find_by_name("prod-eu") == again


def test_delete_raises_cluster_not_found_for_an_unknown_or_deleted_id(
    repository: ClusterRepository,
) -> None:
    cluster = make_cluster()
    repository.save(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.delete(cluster.id)
    with pytest.raises(ClusterNotFound):
        repository.delete(uuid.uuid4())


def test_exists_tells_stored_from_unknown_ids(repository: ClusterRepository) -> None:
    cluster = make_cluster()
    repository.save(cluster)

    assert repository.exists(cluster.id)
    assert not repository.exists(uuid.uuid4())


# -- concurrency -----------------------------------------------------------------

CONTENDERS = 16


def _race(repository: ClusterRepository, clusters: list[Cluster]) -> list[str]:
    """Save every cluster from its own thread, all released at once."""
    start = threading.Barrier(len(clusters))

    def save(cluster: Cluster) -> str:
        try:
            start.wait(timeout=10)
            repository.save(cluster)
            return "saved"
        except ClusterNameTaken:
            return "taken"
        finally:
            # Each thread opened its own database connection; a connection
            # left open would keep the test database from being dropped.
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
        return list(pool.map(save, clusters))


def test_concurrent_saves_of_one_name_store_exactly_one(
    shared_repository: ClusterRepository,
) -> None:
    spellings = ["Race", "race", "RACE", "rAcE"]
    contenders = [make_cluster(spellings[i % len(spellings)]) for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert sorted(outcomes) == ["saved"] + ["taken"] * (CONTENDERS - 1)
    winner = contenders[outcomes.index("saved")]
    assert list(shared_repository.list()) == [winner]
    assert shared_repository.find_by_name("RACE") == winner


def test_concurrent_saves_of_different_names_all_succeed(
    shared_repository: ClusterRepository,
) -> None:
    contenders = [make_cluster(f"node-{i:02d}") for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert outcomes == ["saved"] * CONTENDERS
    assert [c.name for c in shared_repository.list()] == memory_order(contenders)
