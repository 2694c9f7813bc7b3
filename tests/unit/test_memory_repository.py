"""InMemoryClusterRepository: the repository tests docs/product-contract.md §2
lists, the guarantees §6 adds (atomic name check, order, thread safety), and
its unit of work's lock."""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import replace

import pytest

from clusters.domain import ClusterNameTaken, ClusterNotFound, ClusterStatus
from tests.cluster_samples import NOW, make_cluster
from tests.units_of_work import in_memory


@pytest.fixture
def repository():
    return in_memory()


def test_add_stores_a_new_cluster(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    assert repository.find_by_id(cluster.id) == cluster
    assert len(repository) == 1


def test_add_refuses_a_name_taken_case_insensitively(repository):
    repository.add(make_cluster("Prod"))
    with pytest.raises(ClusterNameTaken):
        repository.add(make_cluster("pROD"))
    assert [c.name for c in repository.list()] == ["Prod"]


def test_add_refuses_a_stored_id(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    with pytest.raises(ValueError, match="already stored"):
        repository.add(replace(cluster, name="other"))
    assert repository.find_by_name("other") is None


def test_find_by_id_returns_the_cluster(repository):
    first, second = make_cluster("first"), make_cluster("second")
    repository.add(first)
    repository.add(second)
    assert repository.find_by_id(second.id) is second


def test_find_by_id_raises_not_found_for_an_unknown_id(repository):
    missing = uuid.uuid4()
    with pytest.raises(ClusterNotFound) as caught:
        repository.find_by_id(missing)
    assert caught.value.cluster_id == missing


def test_find_by_name_ignores_case(repository):
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)
    assert repository.find_by_name("prod-eu") is cluster
    assert repository.find_by_name("PROD-EU") is cluster
    assert repository.find_by_name("prod") is None


def test_list_orders_by_name_case_insensitively(repository):
    for name in ["beta", "Alpha", "gamma", "alpha-2", "Beta-1"]:
        repository.add(make_cluster(name))
    assert [c.name for c in repository.list()] == ["Alpha", "alpha-2", "beta", "Beta-1", "gamma"]


def test_list_of_an_empty_repository_is_empty(repository):
    assert list(repository.list()) == []


def test_list_is_a_snapshot_unaffected_by_later_writes(repository):
    repository.add(make_cluster("a"))
    before = repository.list()
    repository.add(make_cluster("b"))
    assert [c.name for c in before] == ["a"]
    assert [c.name for c in repository.list()] == ["a", "b"]


def test_delete_removes_the_cluster_and_frees_its_name(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    repository.delete(cluster.id)
    assert not repository.exists(cluster.id)
    assert repository.find_by_name("prod") is None
    assert list(repository.list()) == []
    repository.add(make_cluster("PROD"))


def test_delete_raises_not_found_for_an_unknown_id(repository):
    with pytest.raises(ClusterNotFound):
        repository.delete(uuid.uuid4())


def test_exists_tells_stored_from_unknown_ids(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    assert repository.exists(cluster.id)
    assert not repository.exists(uuid.uuid4())


def test_record_check_replaces_the_observations(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    checked = cluster.observed(at=NOW, status=ClusterStatus.DEGRADED)
    repository.record_check(checked)
    assert repository.find_by_id(cluster.id).status is ClusterStatus.DEGRADED
    assert list(repository.list()) == [checked]


def test_update_of_a_deleted_cluster_raises_not_found_and_does_not_bring_it_back(repository):
    cluster = make_cluster("prod")
    repository.add(cluster)
    repository.delete(cluster.id)
    with pytest.raises(ClusterNotFound):
        repository.update(cluster.reconfigured(at=NOW, verify_tls=False))
    assert not repository.exists(cluster.id)


def test_update_may_rename_but_not_onto_a_taken_name(repository):
    first, second = make_cluster("first"), make_cluster("second")
    repository.add(first)
    repository.add(second)
    with pytest.raises(ClusterNameTaken):
        repository.update(second.reconfigured(at=NOW, name="FIRST"))
    repository.update(second.reconfigured(at=NOW, name="renamed"))
    assert repository.find_by_name("second") is None
    assert repository.find_by_name("renamed").id == second.id


def test_concurrent_adds_of_one_name_store_exactly_one(repository):
    threads, outcomes = 32, []
    barrier = threading.Barrier(threads)

    def register(index):
        barrier.wait()
        try:
            repository.add(make_cluster("Contended" if index % 2 else "contended"))
            outcomes.append("saved")
        except ClusterNameTaken:
            outcomes.append("taken")

    workers = [threading.Thread(target=register, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outcomes.count("saved") == 1
    assert outcomes.count("taken") == threads - 1
    assert len(repository.list()) == 1


def test_listing_stays_ordered_through_any_mix_of_writes(repository):
    """Random saves, renames and deletes, listing in between: the listing is
    always exactly the stored clusters in name order (the pending-write
    path and the full-rebuild path both)."""
    rng = random.Random(7)
    stored = {}
    for step in range(3000):
        action = rng.random()
        if action < 0.5 or not stored:
            cluster = make_cluster(f"{rng.choice('abcXYZ')}{rng.randrange(10**6)}-{step}")
            repository.add(cluster)
            stored[cluster.id] = cluster
        elif action < 0.7:
            victim = rng.choice(list(stored))
            repository.delete(victim)
            del stored[victim]
        elif action < 0.85:
            victim = stored[rng.choice(list(stored))]
            renamed = victim.reconfigured(at=NOW, name=f"{victim.name}-r{step}")
            repository.update(renamed)
            stored[victim.id] = renamed
        quiet = 1000 <= step < 1500  # a long run of writes forces the full rebuild
        if (not quiet and rng.random() < 0.05) or step in (1500, 2999):
            expected = sorted(stored.values(), key=lambda c: (c.name.casefold(), c.name, c.id.int))
            assert list(repository.list()) == expected


def test_a_unit_of_work_holds_off_other_threads_until_it_ends(repository):
    """Readers never see half a batch: a reader in another thread waits for
    the unit of work, and then sees none of its discarded writes."""
    cluster = make_cluster("prod")
    seen = []
    inside, done = threading.Event(), threading.Event()

    def reader():
        inside.wait(timeout=5)
        seen.append(repository.exists(cluster.id))
        done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with repository.unit_of_work() as uow:
        uow.clusters.add(cluster)
        inside.set()
        assert not done.wait(timeout=0.2), "a reader got past an open unit of work"
    thread.join(timeout=5)
    assert seen == [False]


def test_a_unit_of_work_cannot_be_opened_twice_in_one_thread(repository):
    with repository.unit_of_work(), pytest.raises(RuntimeError, match="already open"):
        repository.unit_of_work().__enter__()
    with repository.unit_of_work() as uow:  # the failed attempt left the lock as it was
        uow.clusters.add(make_cluster("prod"))
        uow.commit()
    assert repository.find_by_name("prod") is not None
