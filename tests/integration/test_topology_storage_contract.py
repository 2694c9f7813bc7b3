"""What every backend keeps of a cluster's topology (docs/product-contract.md
§10): its further endpoints and their discovery as configuration, each
endpoint's last answer as an observation, and identity keys that one
registration holds at a time — between threads on every backend, and
between processes on the shared ones.

Each test runs as ``[memory]``, ``[sqlite]`` and ``[postgres]``.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections

from clusters.domain import (
    ClusterAlreadyRegistered,
    ClusterQuery,
    EndpointHealth,
    NodeEndpoint,
    StaleCluster,
    public_cluster,
)
from tests.backends import BACKENDS, backend_param, units_of_work
from tests.cluster_samples import NOW, make_cluster
from tests.units_of_work import AutoCommit

LATER = NOW + timedelta(minutes=1)
NODE2 = NodeEndpoint("https://127.0.31.2:8006", "pve2", ":".join(["2A"] * 32))
NODE3 = NodeEndpoint("https://[::1]:8006", "pve3", ":".join(["3A"] * 32))
CONTENDERS = 8


@pytest.fixture(params=[backend_param(backend, transaction=False) for backend in BACKENDS])
def repository(request: pytest.FixtureRequest) -> AutoCommit:
    return AutoCommit(units_of_work(request.param))


@pytest.fixture(params=[backend_param(backend, transaction=True) for backend in BACKENDS])
def shared_repository(request: pytest.FixtureRequest) -> AutoCommit:
    return AutoCommit(units_of_work(request.param))


def topology_cluster(name: str = "prod"):
    return make_cluster(
        name,
        endpoints=(NODE2, NODE3),
        registered_node="pve1",
        endpoint_health={"https://pve1.example.com:8006": EndpointHealth(last_ok_at=NOW)},
    )


def assign(repository: AutoCommit, cluster, keys) -> None:
    with repository.unit_of_work() as uow:
        uow.identities.assign(cluster, keys)
        uow.commit()


def test_endpoints_and_their_health_come_back_as_stored(repository: AutoCommit) -> None:
    cluster = topology_cluster()
    repository.add(cluster)

    stored = repository.find_by_id(cluster.id)

    assert stored.endpoints == (NODE2, NODE3)
    assert (stored.registered_node, stored.discover_endpoints) == ("pve1", True)
    assert stored.endpoint_health == cluster.endpoint_health
    assert stored == cluster


def test_a_list_shows_every_endpoint_the_registered_one_first(repository: AutoCommit) -> None:
    cluster = topology_cluster()
    repository.add(cluster)

    [listed] = repository.repository.page(ClusterQuery()).clusters

    assert listed == public_cluster(cluster)
    assert listed["endpoints"] == [
        {
            "url": "https://pve1.example.com:8006",
            "node": "pve1",
            "fingerprint": None,
            "last_ok_at": "2026-03-14T15:09:26.535897Z",
        },
        {"url": NODE2.url, "node": "pve2", "fingerprint": NODE2.fingerprint, "last_ok_at": None},
        {"url": NODE3.url, "node": "pve3", "fingerprint": NODE3.fingerprint, "last_ok_at": None},
    ]
    assert listed["discover_endpoints"] is True
    assert listed["verify_tls"] is True  # a boolean on SQLite too, not its 1


def test_a_check_records_endpoint_health_without_moving_the_version(
    repository: AutoCommit,
) -> None:
    cluster = topology_cluster()
    repository.add(cluster)
    health = {
        "https://pve1.example.com:8006": EndpointHealth(NOW, LATER),
        NODE2.url: EndpointHealth(last_ok_at=LATER),
    }

    repository.record_check(cluster.observed(at=LATER, endpoint_health=health))

    stored = repository.find_by_id(cluster.id)
    assert (stored.endpoint_health, stored.version) == (health, 1)
    assert stored.endpoints == (NODE2, NODE3)


def test_an_edit_of_the_endpoints_is_a_new_version_and_keeps_what_checks_saw(
    repository: AutoCommit,
) -> None:
    cluster = topology_cluster()
    repository.add(cluster)
    seen = {NODE2.url: EndpointHealth(last_ok_at=LATER)}
    repository.record_check(cluster.observed(at=LATER, endpoint_health=seen))

    repository.update(cluster.reconfigured(at=LATER, endpoints=(NODE3,), discover_endpoints=False))

    stored = repository.find_by_id(cluster.id)
    assert (stored.endpoints, stored.discover_endpoints, stored.version) == ((NODE3,), False, 2)
    assert stored.endpoint_health == seen
    with pytest.raises(StaleCluster):
        repository.record_check(cluster.observed(at=LATER, endpoint_health={}))


def test_an_identity_key_belongs_to_one_cluster(repository: AutoCommit) -> None:
    first, second = topology_cluster("first"), topology_cluster("second")
    repository.add(first)
    repository.add(second)
    assign(repository, first, {"cluster:a", "nodes:b"})

    with pytest.raises(ClusterAlreadyRegistered) as refused:
        assign(repository, second, {"nodes:b", "cluster:c"})

    assert (refused.value.existing_id, refused.value.existing_name) == (first.id, "first")
    assert refused.value.details == {"existing_id": str(first.id), "existing_name": "first"}
    identities = repository.unit_of_work().identities
    assert identities.holder({"cluster:c"}) is None  # nothing of the refused keys was kept
    assert identities.holder({"x", "nodes:b"}) == first.id


def test_assigning_again_replaces_a_clusters_keys(repository: AutoCommit) -> None:
    cluster = topology_cluster()
    repository.add(cluster)
    assign(repository, cluster, {"cluster:old", "nodes:kept"})

    assign(repository, cluster, {"nodes:kept", "cluster:new"})

    identities = repository.unit_of_work().identities
    assert identities.holder({"cluster:old"}) is None
    assert identities.holder({"cluster:new"}) == identities.holder({"nodes:kept"}) == cluster.id


def test_keys_assigned_in_a_unit_of_work_that_is_not_kept_are_gone(
    repository: AutoCommit,
) -> None:
    cluster = topology_cluster()
    repository.add(cluster)
    with repository.unit_of_work() as uow:
        uow.identities.assign(cluster, {"cluster:a"})
        # no commit

    assert repository.unit_of_work().identities.holder({"cluster:a"}) is None


def test_deleting_a_cluster_frees_its_keys(repository: AutoCommit) -> None:
    cluster, again = topology_cluster(), topology_cluster("again")
    repository.add(cluster)
    assign(repository, cluster, {"cluster:a"})

    repository.delete(cluster.id)
    repository.add(again)
    assign(repository, again, {"cluster:a"})

    assert repository.unit_of_work().identities.holder({"cluster:a"}) == again.id


def test_concurrent_registrations_of_one_cluster_store_one_identity(
    shared_repository: AutoCommit,
) -> None:
    """Two registrations of one PVE cluster (through two of its nodes, under
    two names) that both found the identity free: the store lets one hold it."""
    contenders = [topology_cluster(f"contender-{i}") for i in range(CONTENDERS)]
    start = threading.Barrier(CONTENDERS)

    def register(cluster) -> str:
        try:
            start.wait(timeout=10)
            with shared_repository.unit_of_work() as uow:
                uow.clusters.add(cluster)
                uow.identities.assign(cluster, {"cluster:contested", f"own:{cluster.name}"})
                uow.commit()
            return "stored"
        except ClusterAlreadyRegistered:
            return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CONTENDERS) as pool:
        outcomes = list(pool.map(register, contenders))

    assert sorted(outcomes) == ["refused"] * (CONTENDERS - 1) + ["stored"]
    winner = contenders[outcomes.index("stored")]
    # A refused registration kept nothing: neither the cluster nor a key.
    assert [c.id for c in shared_repository.list()] == [winner.id]
    identities = shared_repository.unit_of_work().identities
    assert identities.holder({"cluster:contested"}) == winner.id
    loser = next(c for c in contenders if c is not winner)
    assert identities.holder({f"own:{loser.name}"}) is None
    assert identities.holder({str(uuid.uuid4())}) is None
