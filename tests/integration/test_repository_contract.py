"""One contract, every backend: the in-memory store and the Django model on
SQLite and on PostgreSQL pass the same tests, so the fake the unit tests use
cannot drift from the databases production uses.

Each test runs as ``[memory]``, ``[sqlite]`` and ``[postgres]``; the last
needs the server of DATABASE_URL_POSTGRES (tests/postgres.py).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from clusters.domain import (
    SECRET_CHANGED,
    Actor,
    AuditAction,
    AuditEvent,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterStatus,
    PasswordCredentials,
    StaleCluster,
    name_key,
)
from clusters.encryption import CredentialCipher
from clusters.repositories.database import DjangoUnitOfWork
from clusters.repositories.memory import InMemoryUnitOfWork
from clusters.services import UnitOfWorkFactory
from tests import postgres
from tests.cluster_samples import NOW, make_cluster, token_cluster
from tests.units_of_work import AutoCommit

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


def _units_of_work(backend: str) -> UnitOfWorkFactory:
    if backend == "memory":
        return InMemoryUnitOfWork.factory()
    alias = _ALIASES[backend]
    vendor = connections[alias].vendor
    if vendor != _VENDORS[backend]:
        pytest.skip(f"database alias {alias!r} is {vendor}, not {backend} (DATABASE_URL)")
    cipher = CredentialCipher.from_settings()
    return lambda: DjangoUnitOfWork(alias, cipher=cipher)


@pytest.fixture(params=[_backend(backend, transaction=False) for backend in BACKENDS])
def repository(request: pytest.FixtureRequest) -> AutoCommit:
    """Each test inside a transaction rolled back afterwards."""
    return AutoCommit(_units_of_work(request.param))


@pytest.fixture(params=[_backend(backend, transaction=True) for backend in BACKENDS])
def shared_repository(request: pytest.FixtureRequest) -> AutoCommit:
    """Committed writes, which other threads' database connections see."""
    return AutoCommit(_units_of_work(request.param))


def memory_order(clusters: list[Cluster]) -> list[str]:
    """The order the contract promises, spelled out as the memory backend keys it."""
    return [c.name for c in sorted(clusters, key=lambda c: (name_key(c.name), c.name, c.id.int))]


# -- add and find -------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_find_by_id_returns_the_saved_cluster_field_for_field(
    repository: AutoCommit, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.add(cluster)

    found = repository.find_by_id(cluster.id)

    assert found == cluster
    assert found.credentials.principal == cluster.credentials.principal
    assert found.credentials.auth_method == cluster.credentials.auth_method
    assert found.created_at == NOW and found.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_found_cluster_reveals_the_saved_secret(
    repository: AutoCommit, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.add(cluster)
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
    repository: AutoCommit,
) -> None:
    repository.add(make_cluster())
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
    repository: AutoCommit, stored_name: str, asked_name: str
) -> None:
    cluster = make_cluster(stored_name)
    repository.add(cluster)
    repository.add(make_cluster("Other"))

    assert repository.find_by_name(asked_name) == cluster
    assert repository.find_by_name(stored_name) == cluster


def test_find_by_name_returns_none_for_an_unknown_name(repository: AutoCommit) -> None:
    repository.add(make_cluster("Prod-EU"))

    assert repository.find_by_name("Prod-US") is None
    assert repository.find_by_name("Prod-EU ") is None


@pytest.mark.parametrize(("stored_name", "taken_name"), NAME_CASE_VARIANTS)
def test_save_refuses_a_name_held_case_insensitively(
    repository: AutoCommit, stored_name: str, taken_name: str
) -> None:
    first = make_cluster(stored_name)
    repository.add(first)

    with pytest.raises(ClusterNameTaken) as raised:
        repository.add(make_cluster(taken_name))

    assert raised.value.name == taken_name
    assert list(repository.list()) == [first]


@pytest.mark.parametrize(
    ("one", "other"), [("a", "á"), ("i", "\u0131"), ("Prod", "Prod-2"), ("ß", "s")]
)
def test_save_accepts_names_that_differ_beyond_case(
    repository: AutoCommit, one: str, other: str
) -> None:
    repository.add(make_cluster(one))
    repository.add(make_cluster(other))

    assert {c.name for c in repository.list()} == {one, other}


def test_save_accepts_the_longest_name_even_when_casefolding_triples_it(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster("ﬃ" * 255)
    repository.add(cluster)

    assert repository.find_by_name("FFI" * 255) == cluster


def test_save_refuses_an_id_already_stored(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)

    with pytest.raises(ValueError, match="already stored"):
        repository.add(replace(cluster, name="Prod-US"))
    with pytest.raises(ClusterNameTaken):  # the name is checked first
        repository.add(cluster)
    assert list(repository.list()) == [cluster]


# -- list ---------------------------------------------------------------------------------------

ORDERING_NAMES = [
    "beta", "Alpha", "alpha-2", "_internal", "Zeta", "zeta2", "Äpfel", "apfel", "Éclair",
    "eclair", "10-rack", "9-rack", "Straße", "strasse-2", "İstanbul", "istanbul", "Ωmega",
    "ωmega-2", "東京", "🚀 launch", "a b", "a-b", "a_b", "ab", "B", "b1",
]  # fmt: skip


def test_list_is_empty_for_an_empty_repository(repository: AutoCommit) -> None:
    assert list(repository.list()) == []


def test_list_orders_by_casefolded_name_by_code_point(repository: AutoCommit) -> None:
    """Not a database collation's idea of order: en_US would ignore the
    punctuation in "a b"/"a-b"/"a_b" and put "É" beside "e"."""
    clusters = [make_cluster(name) for name in ORDERING_NAMES]
    for cluster in random.Random(7).sample(clusters, len(clusters)):
        repository.add(cluster)

    listed = repository.list()

    assert [c.name for c in listed] == memory_order(clusters)
    assert listed[0] == next(c for c in clusters if c.name == listed[0].name)


def test_list_follows_every_kind_of_write(repository: AutoCommit) -> None:
    clusters = {name: make_cluster(name) for name in ("delta", "Bravo", "charlie")}
    for cluster in clusters.values():
        repository.add(cluster)
    assert [c.name for c in repository.list()] == ["Bravo", "charlie", "delta"]

    repository.add(make_cluster("alpha"))
    repository.delete(clusters["charlie"].id)
    echo = clusters["delta"].reconfigured(at=NOW, name="Echo")
    repository.update(echo)
    repository.record_check(echo.observed(at=NOW, status=ClusterStatus.DEGRADED))

    listed = repository.list()
    assert [c.name for c in listed] == ["alpha", "Bravo", "Echo"]
    assert listed[2].status is ClusterStatus.DEGRADED


# -- update: a new version of the configuration -------------------------------------------------

LATER = NOW + timedelta(hours=1)


def test_update_stores_the_next_version_with_every_configuration_field(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    token = token_cluster()
    edited = cluster.reconfigured(
        at=LATER,
        name="Prod-EU-renamed",
        api_endpoint="https://[2001:db8::1]:8443",
        credentials=token.credentials,
        verify_tls=False,
        fingerprint=token.fingerprint,
    )

    repository.update(edited)

    stored = repository.find_by_id(cluster.id)
    assert stored == edited
    assert stored.version == 2 and stored.updated_at == LATER
    assert stored.credentials.secret.reveal() == token.credentials.secret.reveal()
    assert repository.find_by_name("prod-eu-renamed") == edited
    assert repository.find_by_name("Prod-EU") is None


def test_update_based_on_a_stale_version_is_refused_and_changes_nothing(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.update(cluster.reconfigured(at=LATER, name="first-edit"))

    with pytest.raises(StaleCluster) as raised:
        repository.update(cluster.reconfigured(at=LATER, name="second-edit"))

    assert raised.value.expected_version == 1
    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.version) == ("first-edit", 2)
    assert repository.find_by_name("second-edit") is None


@pytest.mark.parametrize(
    "write",
    [
        lambda repository, cluster: repository.update(
            cluster.reconfigured(at=LATER, verify_tls=False)
        ),
        lambda repository, cluster: repository.record_check(_checked(cluster)),
    ],
    ids=["update", "record_check"],
)
def test_a_write_to_a_deleted_cluster_raises_and_does_not_bring_it_back(
    repository: AutoCommit, write: Callable[[AutoCommit, Cluster], None]
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        write(repository, cluster)

    assert not repository.exists(cluster.id)
    assert repository.find_by_name(cluster.name) is None
    assert list(repository.list()) == []


def test_update_refuses_a_rename_onto_another_clusters_name(repository: AutoCommit) -> None:
    first, second = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.add(first)
    repository.add(second)

    with pytest.raises(ClusterNameTaken):
        repository.update(second.reconfigured(at=LATER, name="PROD-eu"))

    assert repository.find_by_id(second.id) == second
    assert repository.find_by_name("prod-eu") == first


def test_update_may_change_the_case_of_a_clusters_own_name(repository: AutoCommit) -> None:
    cluster = make_cluster("prod-eu")
    repository.add(cluster)
    renamed = cluster.reconfigured(at=LATER, name="Prod-EU")

    repository.update(renamed)

    assert repository.find_by_name("PROD-EU") == renamed


def test_update_frees_the_previous_name(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)
    repository.update(cluster.reconfigured(at=LATER, name="Prod-EU-old"))

    newcomer = make_cluster("prod-eu")
    repository.add(newcomer)

    assert repository.find_by_name("PROD-EU") == newcomer


# -- record_check: observations, conditional on the configuration checked -----------------------


def _checked(cluster: Cluster) -> Cluster:
    return cluster.observed(
        at=LATER,
        status=ClusterStatus.DEGRADED,
        proxmox_version="8.3.0",
        node_count=5,
        last_error="node pve3 offline",
    )


def test_record_check_stores_the_observations_and_keeps_the_version(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)

    repository.record_check(_checked(cluster))

    stored = repository.find_by_id(cluster.id)
    assert stored == _checked(cluster)
    assert stored.version == cluster.version
    assert (stored.last_checked_at, stored.updated_at) == (LATER, LATER)


def test_record_check_never_writes_configuration(repository: AutoCommit) -> None:
    """Only the observation fields are written: a check that carried a
    different name (a bug) still cannot rename the cluster."""
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)

    repository.record_check(replace(_checked(cluster), name="Hijacked", verify_tls=False))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls) == ("Prod-EU", True)
    assert stored.status is ClusterStatus.DEGRADED


def test_record_check_after_an_edit_is_dropped_and_the_edit_survives(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    edited = cluster.reconfigured(at=LATER, name="edited-meanwhile")
    repository.update(edited)

    with pytest.raises(StaleCluster):
        repository.record_check(_checked(cluster))

    assert repository.find_by_id(cluster.id) == edited


def test_a_check_never_makes_an_editors_version_stale(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    read_by_editor = repository.find_by_id(cluster.id)

    repository.record_check(_checked(cluster))
    repository.update(read_by_editor.reconfigured(at=LATER, name="edited"))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.version) == ("edited", 2)


# -- delete and exists --------------------------------------------------------------------------


def test_delete_removes_the_cluster_from_every_lookup(repository: AutoCommit) -> None:
    cluster, other = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.add(cluster)
    repository.add(other)

    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.find_by_id(cluster.id)
    assert repository.find_by_name("prod-eu") is None
    assert not repository.exists(cluster.id)
    assert list(repository.list()) == [other]


def test_delete_frees_the_name(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)
    repository.delete(cluster.id)

    again = make_cluster("PROD-EU")
    repository.add(again)

    assert repository.find_by_name("prod-eu") == again


def test_delete_raises_cluster_not_found_for_an_unknown_or_deleted_id(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.delete(cluster.id)
    with pytest.raises(ClusterNotFound):
        repository.delete(uuid.uuid4())


def test_exists_tells_stored_from_unknown_ids(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)

    assert repository.exists(cluster.id)
    assert not repository.exists(uuid.uuid4())


# -- concurrency --------------------------------------------------------------------------------

CONTENDERS = 16


def _race(repository: AutoCommit, clusters: list[Cluster]) -> list[str]:
    """Save every cluster from its own thread, all released at once."""
    start = threading.Barrier(len(clusters))

    def save(cluster: Cluster) -> str:
        try:
            start.wait(timeout=10)
            repository.add(cluster)
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
    shared_repository: AutoCommit,
) -> None:
    spellings = ["Race", "race", "RACE", "rAcE"]
    contenders = [make_cluster(spellings[i % len(spellings)]) for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert sorted(outcomes) == ["saved"] + ["taken"] * (CONTENDERS - 1)
    winner = contenders[outcomes.index("saved")]
    assert list(shared_repository.list()) == [winner]
    assert shared_repository.find_by_name("RACE") == winner


def test_concurrent_saves_of_different_names_all_succeed(
    shared_repository: AutoCommit,
) -> None:
    contenders = [make_cluster(f"node-{i:02d}") for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert outcomes == ["saved"] * CONTENDERS
    assert [c.name for c in shared_repository.list()] == memory_order(contenders)


def test_concurrent_edits_from_one_version_let_exactly_one_win(
    shared_repository: AutoCommit,
) -> None:
    """Optimistic concurrency: every editor read version 1; the version in
    the write's condition lets the first through and refuses the rest."""
    cluster = make_cluster("contested")
    shared_repository.add(cluster)
    start = threading.Barrier(CONTENDERS)

    def edit(number: int) -> str:
        try:
            start.wait(timeout=10)
            shared_repository.update(cluster.reconfigured(at=NOW, name=f"edit-{number:02d}"))
            return "won"
        except StaleCluster:
            return "stale"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CONTENDERS) as pool:
        outcomes = list(pool.map(edit, range(CONTENDERS)))

    assert sorted(outcomes) == ["stale"] * (CONTENDERS - 1) + ["won"]
    stored = shared_repository.find_by_id(cluster.id)
    assert stored.name == f"edit-{outcomes.index('won'):02d}"
    assert stored.version == 2


def _database_url(alias: str) -> str:
    config = connections[alias].settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    host, port, user = config["HOST"] or "127.0.0.1", config["PORT"] or 5432, config["USER"]
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


@pytest.fixture(
    params=[_backend(backend, transaction=True) for backend in BACKENDS if backend != "memory"]
)
def shared_database(request: pytest.FixtureRequest) -> tuple[str, AutoCommit]:
    """A database backend with committed writes, and the alias it is on."""
    return _ALIASES[request.param], AutoCommit(_units_of_work(request.param))


def test_concurrent_edits_from_two_processes_let_exactly_one_win(
    shared_database: tuple[str, AutoCommit],
) -> None:
    """The same race between two processes sharing the database (an in-memory
    store is per process, so this contract is the database backends')."""
    alias, repository = shared_database
    cluster = make_cluster("contested")
    repository.add(cluster)
    environment = {**os.environ, "DATABASE_URL": _database_url(alias)}
    start_at = time.time() + 3  # both have set up Django by then
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.edit_race_worker", str(cluster.id), name,
             str(start_at)],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("edit-by-one", "edit-by-two")
    ]  # fmt: skip
    outcomes = [worker.communicate(timeout=60)[0].strip() for worker in workers]

    assert sorted(outcomes) == ["stale", "won"]
    stored = repository.find_by_id(cluster.id)
    assert stored.name == ("edit-by-one", "edit-by-two")[outcomes.index("won")]
    assert stored.version == 2


# -- the unit of work ---------------------------------------------------------------------------


def test_writes_are_discarded_unless_the_unit_of_work_commits(repository: AutoCommit) -> None:
    cluster = make_cluster()

    with repository.unit_of_work() as uow:
        uow.clusters.add(cluster)

    assert not repository.exists(cluster.id)
    assert repository.find_by_name(cluster.name) is None
    assert list(repository.list()) == []


def test_a_failure_inside_a_unit_of_work_discards_every_write_it_made(
    repository: AutoCommit,
) -> None:
    kept, gone = make_cluster("kept"), make_cluster("gone")
    repository.add(kept)
    repository.add(gone)
    newcomer = make_cluster("newcomer")

    with pytest.raises(ClusterNameTaken), repository.unit_of_work() as uow:
        uow.clusters.add(newcomer)
        uow.clusters.update(kept.reconfigured(at=NOW, name="renamed"))
        uow.clusters.record_check(gone.observed(at=NOW, status=ClusterStatus.UNHEALTHY))
        uow.clusters.delete(gone.id)
        uow.clusters.add(make_cluster("NEWCOMER"))  # taken by this unit's first write
        uow.commit()

    assert not repository.exists(newcomer.id)
    assert repository.find_by_id(kept.id) == kept
    assert repository.find_by_id(gone.id) == gone
    assert [c.name for c in repository.list()] == ["gone", "kept"]


def test_committed_writes_of_a_unit_of_work_are_kept_together(repository: AutoCommit) -> None:
    first, second = make_cluster("first"), make_cluster("second")
    repository.add(second)

    with repository.unit_of_work() as uow:
        uow.clusters.add(first)
        uow.clusters.update(second.reconfigured(at=NOW, name="second-renamed"))
        uow.commit()

    assert [c.name for c in repository.list()] == ["first", "second-renamed"]
    assert repository.find_by_id(second.id).version == 2


def test_writes_outside_a_unit_of_work_are_refused(shared_repository: AutoCommit) -> None:
    cluster = make_cluster()
    shared_repository.add(cluster)
    outside = shared_repository.repository

    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.add(make_cluster("other"))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.update(cluster.reconfigured(at=NOW, name="renamed"))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.record_check(cluster.observed(at=NOW, status=ClusterStatus.UNHEALTHY))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.delete(cluster.id)
    assert list(shared_repository.list()) == [cluster]


# -- the audit log ------------------------------------------------------------------------------


def _event(number: int, **fields: Any) -> AuditEvent:
    cluster = make_cluster(f"cluster-{number}")
    return replace(
        AuditEvent.success(
            AuditAction.CLUSTER_REGISTER,
            actor=Actor("operator", source_ip="::1"),
            at=NOW,  # one timestamp for all: the order must not depend on it
            cluster=cluster,
            changes={"name": [None, cluster.name], "password": SECRET_CHANGED},
        ),
        **fields,
    )


def test_audit_events_come_back_newest_first_field_for_field(repository: AutoCommit) -> None:
    appended = [_event(number) for number in range(5)]
    for event in appended:
        with repository.unit_of_work() as uow:
            uow.audit.append(event)
            uow.commit()

    assert list(repository.unit_of_work().audit.list()) == appended[::-1]


def test_an_audit_event_is_kept_or_discarded_with_its_unit_of_work(repository: AutoCommit) -> None:
    cluster = make_cluster()
    with repository.unit_of_work() as uow:
        uow.clusters.add(cluster)
        uow.audit.append(_event(1, cluster_id=cluster.id))
    with pytest.raises(ClusterNameTaken), repository.unit_of_work() as uow:
        uow.audit.append(_event(2))
        uow.clusters.add(make_cluster("a"))
        uow.clusters.add(make_cluster("A"))
        uow.commit()

    assert list(repository.unit_of_work().audit.list()) == []
    assert list(repository.list()) == []


def test_audit_events_are_appended_only_inside_a_unit_of_work(
    shared_repository: AutoCommit,
) -> None:
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        shared_repository.unit_of_work().audit.append(_event(1))
    assert list(shared_repository.unit_of_work().audit.list()) == []


# -- editing and trust (docs/product-contract.md §9) --------------------------------------------


def test_an_edit_stores_the_configuration_only_and_keeps_a_checks_findings(
    repository: AutoCommit,
) -> None:
    """An editor read the cluster before a check recorded its findings; the
    edit must not put the findings it read back."""
    cluster = make_cluster()
    repository.add(cluster)
    read_by_editor = repository.find_by_id(cluster.id)
    repository.record_check(_checked(cluster))

    repository.update(read_by_editor.reconfigured(at=LATER, name="edited", verify_tls=False))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls, stored.version) == ("edited", False, 2)
    assert (stored.status, stored.node_count, stored.last_error) == (
        ClusterStatus.DEGRADED,
        5,
        "node pve3 offline",
    )


def test_an_edit_and_the_findings_of_its_proof_are_stored_together(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    edited = cluster.reconfigured(at=LATER, fingerprint="CD:" * 31 + "CD")
    with repository.unit_of_work() as uow:
        uow.clusters.update(edited)
        uow.clusters.record_check(edited.observed(at=LATER, status=ClusterStatus.UNKNOWN))
        uow.commit()
    stored = repository.find_by_id(cluster.id)
    assert (stored.fingerprint, stored.status, stored.version) == (
        edited.fingerprint,
        ClusterStatus.UNKNOWN,
        2,
    )


def test_the_last_errors_details_are_an_observation(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    observed = {"fingerprint": "12:" * 31 + "12"}
    repository.record_check(
        cluster.observed(
            at=LATER, status=ClusterStatus.UNHEALTHY, last_error="pin", last_error_details=observed
        )
    )
    assert repository.find_by_id(cluster.id).last_error_details == observed
    repository.record_check(cluster.observed(at=LATER, last_error=None, last_error_details=None))
    assert repository.find_by_id(cluster.id).last_error_details is None


def test_a_token_the_registry_created_is_remembered_as_such(repository: AutoCommit) -> None:
    token = token_cluster()
    created = replace(
        token,
        credentials=replace(token.credentials, created_by_registry=True),
    )
    repository.add(created)
    repository.add(make_cluster("brought", credentials=token.credentials))
    assert repository.find_by_id(created.id).credentials.created_by_registry is True
    assert repository.find_by_name("brought").credentials.created_by_registry is False
    edited = created.reconfigured(at=LATER, credentials=token.credentials)
    repository.update(edited)
    assert repository.find_by_id(created.id).credentials.created_by_registry is False
