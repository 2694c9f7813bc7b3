"""The storage the background checks need, one contract on every backend
(memory, SQLite, PostgreSQL; fixtures from test_repository_contract.py):
claims and their expiry, no cluster claimed twice by racing threads or
processes, the schedule, node lists, the bounded status history, and
everything of a cluster gone with it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections

from clusters.domain import (
    NO_NODES,
    CheckOvertaken,
    Cluster,
    ClusterNotFound,
    ClusterStatus,
    NodeState,
    StaleCluster,
    StatusChange,
)
from tests.cluster_samples import NOW, make_cluster
from tests.integration import test_repository_contract as contract
from tests.units_of_work import AutoCommit

# The backends of the repository contract suite, one parameter each.
repository = contract.repository
shared_repository = contract.shared_repository
shared_database = contract.shared_database

LEASE = timedelta(seconds=30)
LATER = NOW + timedelta(minutes=5)


def due(name: str, minutes_ago: float | None) -> Cluster:
    """A cluster due ``minutes_ago`` before NOW (None: never scheduled)."""
    when = None if minutes_ago is None else NOW - timedelta(minutes=minutes_ago)
    return make_cluster(name, next_check_at=when)


def claim_due(repository: AutoCommit, now=NOW, limit=100, lease=LEASE):
    with repository.unit_of_work() as uow:
        claims = uow.clusters.claim_due(now, limit=limit, lease=lease)
        uow.commit()
    return claims


def claim(repository: AutoCommit, cluster: Cluster, now=NOW):
    with repository.unit_of_work() as uow:
        granted = uow.clusters.claim(cluster.id, now, lease=LEASE)
        uow.commit()
    return granted


def record(repository: AutoCommit, cluster: Cluster, token: uuid.UUID | None) -> None:
    with repository.unit_of_work() as uow:
        uow.clusters.record_check(cluster, claim=token)
        uow.commit()


def checked(cluster: Cluster, *, next_in: timedelta = timedelta(minutes=1)) -> Cluster:
    observed = cluster.observed(
        at=LATER, status=ClusterStatus.DEGRADED, nodes_online=2, cluster_name="prod"
    )
    return observed.rescheduled(LATER + next_in)


# -- claims --------------------------------------------------------------------------------


def test_claim_due_takes_what_is_due_longest_due_first_up_to_the_limit(repository):
    for cluster in (
        due("later", -1),
        due("oldest", 30),
        due("never", None),
        due("recent", 1),
        due("now", 0),
    ):
        repository.add(cluster)

    claims = claim_due(repository, limit=3)

    assert [c.cluster.name for c in claims] == ["never", "oldest", "recent"]
    assert len({c.token for c in claims}) == 1
    assert {c.expires_at for c in claims} == {NOW + LEASE}
    assert [c.cluster.name for c in claim_due(repository)] == ["now"]
    assert claim_due(repository) == []


def test_claim_due_hands_out_the_cluster_as_stored_and_moves_no_version(repository):
    cluster = due("prod", 5)
    repository.add(cluster)

    [granted] = claim_due(repository)

    assert granted.cluster == cluster
    assert repository.find_by_id(cluster.id) == cluster


def test_a_claim_holds_until_it_expires(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [first] = claim_due(repository)

    assert claim_due(repository, now=NOW + LEASE - timedelta(microseconds=1)) == []
    [again] = claim_due(repository, now=NOW + LEASE)

    assert again.cluster.id == cluster.id
    assert again.token != first.token


def test_recording_with_the_claim_stores_findings_and_schedule_and_ends_the_claim(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [granted] = claim_due(repository)
    findings = checked(cluster, next_in=timedelta(minutes=-10))  # due again at once

    record(repository, findings, granted.token)

    stored = repository.find_by_id(cluster.id)
    assert stored == findings
    assert (stored.version, stored.nodes_online, stored.cluster_name) == (1, 2, "prod")
    assert [c.cluster.id for c in claim_due(repository)] == [cluster.id]  # no claim left


def test_a_claim_that_ran_out_still_records_when_nobody_took_over(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [granted] = claim_due(repository)

    record(repository, checked(cluster), granted.token)

    assert repository.find_by_id(cluster.id).status is ClusterStatus.DEGRADED


@pytest.mark.parametrize("taken_by", ["another checker", "a refresh"])
def test_a_check_whose_claim_was_taken_over_records_nothing(repository, taken_by):
    cluster = due("prod", 5)
    repository.add(cluster)
    [mine] = claim_due(repository)
    if taken_by == "another checker":
        claim_due(repository, now=NOW + LEASE)
    else:
        claim(repository, cluster, now=NOW + timedelta(seconds=1))

    with pytest.raises(CheckOvertaken) as raised:
        record(repository, checked(cluster), mine.token)

    assert raised.value.cluster_id == cluster.id
    assert repository.find_by_id(cluster.id) == cluster


def test_recording_without_a_claim_ends_any_claim(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [background] = claim_due(repository)

    record(repository, checked(cluster), None)  # a check that claimed nothing

    with pytest.raises(CheckOvertaken):
        record(repository, checked(cluster), background.token)


def test_a_claim_is_checked_after_the_version(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [granted] = claim_due(repository)
    repository.update(cluster.reconfigured(at=LATER, name="edited"))

    with pytest.raises(StaleCluster):
        record(repository, checked(cluster), granted.token)


def test_claiming_one_cluster_takes_it_whatever_its_schedule_or_claims(repository):
    cluster = due("prod", -10)  # not due
    repository.add(cluster)

    granted = claim(repository, cluster)

    assert (granted.cluster, granted.expires_at) == (cluster, NOW + LEASE)
    with pytest.raises(ClusterNotFound):
        claim(repository, make_cluster("never-stored"))


def test_an_edit_leaves_the_schedule_alone(repository):
    cluster = due("prod", -10)
    repository.add(cluster)

    repository.update(cluster.reconfigured(at=LATER, name="edited").rescheduled(None))

    assert repository.find_by_id(cluster.id).next_check_at == cluster.next_check_at


def test_schedule_all_makes_every_cluster_due_at_once(repository):
    clusters = [due(f"c{i}", -i - 1) for i in range(3)]
    for cluster in clusters:
        repository.add(cluster)

    with repository.unit_of_work() as uow:
        uow.clusters.schedule_all(NOW)
        uow.commit()

    assert {repository.find_by_id(c.id).next_check_at for c in clusters} == {NOW}
    assert {repository.find_by_id(c.id).version for c in clusters} == {1}
    assert len(claim_due(repository)) == 3


def test_claims_are_discarded_with_a_unit_of_work_that_is_not_kept(repository):
    repository.add(due("prod", 5))

    with repository.unit_of_work() as uow:
        assert len(uow.clusters.claim_due(NOW, limit=10, lease=LEASE)) == 1

    assert len(claim_due(repository)) == 1


# -- racing checkers ---------------------------------------------------------------------------

CHECKERS = 8


def test_racing_threads_never_claim_a_cluster_twice(shared_repository):
    clusters = [due(f"c{i:02d}", i) for i in range(40)]
    for cluster in clusters:
        shared_repository.add(cluster)
    start = threading.Barrier(CHECKERS)

    def checker(_: int) -> list[uuid.UUID]:
        try:
            start.wait(timeout=10)
            taken: list[uuid.UUID] = []
            while batch := claim_due(shared_repository, limit=3):
                taken += [c.cluster.id for c in batch]
            return taken
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CHECKERS) as pool:
        claimed = [
            cluster_id for taken in pool.map(checker, range(CHECKERS)) for cluster_id in taken
        ]

    assert sorted(claimed) == sorted(c.id for c in clusters)


def test_racing_processes_never_claim_a_cluster_twice(shared_database):
    alias, repository = shared_database
    clusters = [due(f"c{i:03d}", i) for i in range(60)]
    for cluster in clusters:
        repository.add(cluster)
    environment = {**os.environ, "DATABASE_URL": contract._database_url(alias)}
    start_at = time.time() + 3  # both have set up Django by then
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.claim_race_worker", str(start_at)],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    claimed = [line for worker in workers for line in worker.communicate(timeout=60)[0].split()]

    assert all(worker.returncode == 0 for worker in workers)
    assert sorted(claimed) == sorted(str(c.id) for c in clusters)


# -- node lists --------------------------------------------------------------------------------

NODES = (
    NodeState("pve1", "online", "127.0.31.1", ":".join(["1A"] * 32), 0.0312, 16, 8 << 30,
              64 << 30, 1_209_600),
    NodeState("pve2", "offline", "127.0.31.2", ":".join(["2A"] * 32)),
    NodeState("ñode-3", "unknown"),
)  # fmt: skip


def test_a_node_list_comes_back_field_for_field(repository):
    cluster = make_cluster()
    repository.add(cluster)
    with repository.unit_of_work() as uow:
        assert uow.nodes.find(cluster.id) == NO_NODES
        uow.nodes.replace(cluster.id, NODES, LATER)
        uow.commit()

    found = repository.unit_of_work().nodes.find(cluster.id)

    assert found.nodes == NODES
    assert found.checked_at == LATER


def test_a_node_list_replaces_the_last_one(repository):
    cluster = make_cluster()
    repository.add(cluster)
    for nodes, at in ((NODES, NOW), (NODES[:1], LATER)):
        with repository.unit_of_work() as uow:
            uow.nodes.replace(cluster.id, nodes, at)
            uow.commit()

    found = repository.unit_of_work().nodes.find(cluster.id)
    assert (found.nodes, found.checked_at) == (NODES[:1], LATER)


# -- status history ------------------------------------------------------------------------------

STATUSES = [ClusterStatus.HEALTHY, ClusterStatus.DEGRADED, ClusterStatus.UNHEALTHY]


def change(cluster: Cluster, number: int) -> StatusChange:
    return StatusChange(
        cluster.id,
        NOW,  # one timestamp for all: the order must not depend on it
        None if number == 0 else STATUSES[(number - 1) % 3],
        STATUSES[number % 3],
        f"change {number} — ünïcode",
    )


def append(repository: AutoCommit, cluster: Cluster, count: int, keep: int = 100) -> None:
    for number in range(count):
        with repository.unit_of_work() as uow:
            uow.history.append(change(cluster, number), keep=keep)
            uow.commit()


def test_history_comes_back_newest_first_field_for_field_a_page_at_a_time(repository):
    cluster, other = make_cluster("prod"), make_cluster("other")
    repository.add(cluster)
    repository.add(other)
    append(repository, cluster, 5)
    append(repository, other, 2)
    history = repository.unit_of_work().history

    page = history.page(cluster.id, limit=2, offset=1)

    assert page.total == 5
    assert list(page.events) == [change(cluster, 3), change(cluster, 2)]
    assert list(history.page(cluster.id, limit=10).events) == [
        change(cluster, n) for n in (4, 3, 2, 1, 0)
    ]
    assert history.page(cluster.id, limit=10, offset=5).events == ()
    assert history.page(other.id, limit=10).total == 2


def test_history_keeps_the_newest_changes_up_to_the_bound(repository):
    cluster = make_cluster()
    repository.add(cluster)

    append(repository, cluster, 7, keep=3)

    page = repository.unit_of_work().history.page(cluster.id, limit=10)
    assert page.total == 3
    assert list(page.events) == [change(cluster, n) for n in (6, 5, 4)]


# -- a cluster's things go with it -----------------------------------------------------------------


def test_deleting_a_cluster_deletes_its_claims_nodes_and_history(repository):
    cluster = due("prod", 5)
    repository.add(cluster)
    [granted] = claim_due(repository)
    with repository.unit_of_work() as uow:
        uow.nodes.replace(cluster.id, NODES, NOW)
        uow.history.append(change(cluster, 0), keep=10)
        uow.commit()

    repository.delete(cluster.id)

    uow = repository.unit_of_work()
    assert uow.nodes.find(cluster.id) == NO_NODES
    assert uow.history.page(cluster.id, limit=10).total == 0
    with pytest.raises(ClusterNotFound):
        record(repository, checked(cluster), granted.token)
    assert claim_due(repository) == []


def test_node_lists_and_history_are_kept_or_discarded_with_their_unit_of_work(repository):
    cluster = make_cluster()
    repository.add(cluster)

    with repository.unit_of_work() as uow:
        uow.nodes.replace(cluster.id, NODES, NOW)
        uow.history.append(change(cluster, 0), keep=10)

    uow = repository.unit_of_work()
    assert uow.nodes.find(cluster.id) == NO_NODES
    assert uow.history.page(cluster.id, limit=10).total == 0


def test_check_writes_outside_a_unit_of_work_are_refused(shared_repository):
    cluster = due("prod", 5)
    shared_repository.add(cluster)
    outside = shared_repository.unit_of_work()

    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.clusters.claim_due(NOW, limit=10, lease=LEASE)
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.clusters.claim(cluster.id, NOW, lease=LEASE)
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.clusters.schedule_all(NOW)
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.nodes.replace(cluster.id, NODES, NOW)
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.history.append(change(cluster, 0), keep=10)
    assert len(claim_due(shared_repository)) == 1
