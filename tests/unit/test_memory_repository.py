"""InMemoryClusterRepository: the repository tests docs/product-contract.md §2
lists, plus the guarantees §6 adds (atomic name check, order, thread safety)."""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import replace

import pytest

from clusters.domain import ClusterNameTaken, ClusterNotFound, ClusterStatus
from clusters.repositories.memory import InMemoryClusterRepository
from tests.cluster_samples import make_cluster


@pytest.fixture
def repository():
    return InMemoryClusterRepository()


def test_save_stores_a_new_cluster(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    assert repository.find_by_id(cluster.id) == cluster
    assert len(repository) == 1


def test_save_refuses_a_name_taken_case_insensitively(repository):
    repository.save(make_cluster("Prod"))
    with pytest.raises(ClusterNameTaken):
        repository.save(make_cluster("pROD"))
    assert [c.name for c in repository.list()] == ["Prod"]


def test_save_refuses_a_stored_id(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    with pytest.raises(ValueError, match="already stored"):
        repository.save(replace(cluster, name="other"))
    assert repository.find_by_name("other") is None


def test_find_by_id_returns_the_cluster(repository):
    first, second = make_cluster("first"), make_cluster("second")
    repository.save(first)
    repository.save(second)
    assert repository.find_by_id(second.id) is second


def test_find_by_id_raises_not_found_for_an_unknown_id(repository):
    missing = uuid.uuid4()
    with pytest.raises(ClusterNotFound) as caught:
        repository.find_by_id(missing)
    assert caught.value.cluster_id == missing


def test_find_by_name_ignores_case(repository):
    cluster = make_cluster("Prod-EU")
    repository.save(cluster)
    assert repository.find_by_name("prod-eu") is cluster
    assert repository.find_by_name("PROD-EU") is cluster
    assert repository.find_by_name("prod") is None


def test_list_orders_by_name_case_insensitively(repository):
    for name in ["beta", "Alpha", "gamma", "alpha-2", "Beta-1"]:
        repository.save(make_cluster(name))
    assert [c.name for c in repository.list()] == ["Alpha", "alpha-2", "beta", "Beta-1", "gamma"]


def test_list_of_an_empty_repository_is_empty(repository):
    assert list(repository.list()) == []


def test_list_is_a_snapshot_unaffected_by_later_writes(repository):
    repository.save(make_cluster("a"))
    before = repository.list()
    repository.save(make_cluster("b"))
    assert [c.name for c in before] == ["a"]
    assert [c.name for c in repository.list()] == ["a", "b"]


def test_delete_removes_the_cluster_and_frees_its_name(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    repository.delete(cluster.id)
    assert not repository.exists(cluster.id)
    assert repository.find_by_name("prod") is None
    assert list(repository.list()) == []
    repository.save(make_cluster("PROD"))


def test_delete_raises_not_found_for_an_unknown_id(repository):
    with pytest.raises(ClusterNotFound):
        repository.delete(uuid.uuid4())


def test_exists_tells_stored_from_unknown_ids(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    assert repository.exists(cluster.id)
    assert not repository.exists(uuid.uuid4())


def test_update_replaces_the_stored_cluster(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    checked = replace(cluster, status=ClusterStatus.DEGRADED)
    repository.update(checked)
    assert repository.find_by_id(cluster.id).status is ClusterStatus.DEGRADED
    assert list(repository.list()) == [checked]


def test_update_of_a_deleted_cluster_raises_not_found_and_does_not_bring_it_back(repository):
    cluster = make_cluster("prod")
    repository.save(cluster)
    repository.delete(cluster.id)
    with pytest.raises(ClusterNotFound):
        repository.update(cluster)
    assert not repository.exists(cluster.id)


def test_update_may_rename_but_not_onto_a_taken_name(repository):
    first, second = make_cluster("first"), make_cluster("second")
    repository.save(first)
    repository.save(second)
    with pytest.raises(ClusterNameTaken):
        repository.update(replace(second, name="FIRST"))
    repository.update(replace(second, name="renamed"))
    assert repository.find_by_name("second") is None
    assert repository.find_by_name("renamed").id == second.id


def test_concurrent_saves_of_one_name_store_exactly_one(repository):
    threads, outcomes = 32, []
    barrier = threading.Barrier(threads)

    def register(index):
        barrier.wait()
        try:
            repository.save(make_cluster("Contended" if index % 2 else "contended"))
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
            repository.save(cluster)
            stored[cluster.id] = cluster
        elif action < 0.7:
            victim = rng.choice(list(stored))
            repository.delete(victim)
            del stored[victim]
        elif action < 0.85:
            victim = stored[rng.choice(list(stored))]
            renamed = replace(victim, name=f"{victim.name}-r{step}")
            repository.update(renamed)
            stored[victim.id] = renamed
        quiet = 1000 <= step < 1500  # a long run of writes forces the full rebuild
        if (not quiet and rng.random() < 0.05) or step in (1500, 2999):
            expected = sorted(stored.values(), key=lambda c: (c.name.casefold(), c.name, c.id.int))
            assert list(repository.list()) == expected
