"""The targets of docs/product-contract.md §15, measured against any
ClusterRepository.

Each row is the mean time of one operation on a repository already holding
n clusters: the median of several repeats, each timing a batch of calls.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from clusters.domain import Cluster
from clusters.services import UnitOfWorkFactory
from tests.cluster_samples import make_cluster as sample_cluster
from tests.units_of_work import AutoCommit

REPEATS = 5

# docs/product-contract.md §15: expected time per operation, stated at n = 100.
TARGETS_NS = {
    "save": 1_000,
    "find_by_id": 1_000,
    "find_by_name": 10_000,
    "list": 100_000,
    "delete": 1_000,
}


def make_cluster(index: int) -> Cluster:
    return sample_cluster(f"Cluster-{index:06d}")


@dataclass
class Row:
    operation: str
    n: int
    ns_per_op: float
    note: str = ""


def _median_ns(batches: list[tuple[int, int]]) -> float:
    return statistics.median(elapsed / count for elapsed, count in batches)


def measure(factory: Callable[[], UnitOfWorkFactory], n: int, batch: int) -> list[Row]:
    """Time each operation of §15 on a repository of n clusters. Every write
    is its own unit of work, as a use case makes it."""
    rng = random.Random(n)
    rows: list[Row] = []

    def filled() -> tuple[AutoCommit, list[Cluster]]:
        repository = AutoCommit(factory())
        clusters = [make_cluster(i) for i in range(n)]
        for cluster in clusters:
            repository.add(cluster)
        return repository, clusters

    repository, clusters = filled()

    saves, deletes = [], []
    for repeat in range(REPEATS):
        extra = [make_cluster(n + repeat * batch + i) for i in range(batch)]
        started = time.perf_counter_ns()
        for cluster in extra:
            repository.add(cluster)
        saves.append((time.perf_counter_ns() - started, batch))
        started = time.perf_counter_ns()
        for cluster in extra:
            repository.delete(cluster.id)
        deletes.append((time.perf_counter_ns() - started, batch))

    # The same writes as a batch of them in one unit of work makes them (a
    # bulk refresh records its checks so): the repository's own cost, without
    # a unit of work's start and end around each.
    batched_saves, batched_deletes = [], []
    for repeat in range(REPEATS):
        extra = [make_cluster(n + (REPEATS + repeat) * batch + i) for i in range(batch)]
        with repository.unit_of_work() as uow:
            started = time.perf_counter_ns()
            for cluster in extra:
                uow.clusters.add(cluster)
            batched_saves.append((time.perf_counter_ns() - started, batch))
            uow.commit()
        with repository.unit_of_work() as uow:
            started = time.perf_counter_ns()
            for cluster in extra:
                uow.clusters.delete(cluster.id)
            batched_deletes.append((time.perf_counter_ns() - started, batch))
            uow.commit()

    lookups = []
    for _ in range(REPEATS):
        ids = [rng.choice(clusters).id for _ in range(batch)]
        started = time.perf_counter_ns()
        for cluster_id in ids:
            repository.find_by_id(cluster_id)
        lookups.append((time.perf_counter_ns() - started, batch))

    by_name = []
    for _ in range(REPEATS):
        names = [rng.choice(clusters).name.upper() for _ in range(batch)]
        started = time.perf_counter_ns()
        for name in names:
            repository.find_by_name(name)
        by_name.append((time.perf_counter_ns() - started, batch))

    list_calls = max(1, batch // 10)
    warm, after_write = [], []
    for _ in range(REPEATS):
        repository.list()
        started = time.perf_counter_ns()
        for _ in range(list_calls):
            repository.list()
        warm.append((time.perf_counter_ns() - started, list_calls))

        spare = make_cluster(rng.randrange(10**9))
        repository.add(spare)
        started = time.perf_counter_ns()
        repository.list()
        after_write.append((time.perf_counter_ns() - started, 1))
        repository.delete(spare.id)

    rows += [
        Row("save", n, _median_ns(saves)),
        Row("find_by_id", n, _median_ns(lookups)),
        Row("find_by_name", n, _median_ns(by_name), "mixed case"),
        Row("list", n, _median_ns(warm), "unchanged since the last list"),
        Row("list", n, _median_ns(after_write), "first list after a write"),
        Row("delete", n, _median_ns(deletes)),
        Row("save", n, _median_ns(batched_saves), "many in one unit of work"),
        Row("delete", n, _median_ns(batched_deletes), "many in one unit of work"),
    ]
    return rows


def format_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def print_table(title: str, rows: list[Row], sizes: list[int]) -> None:
    print(title)
    header = f"{'operation':<14}{'target §15':>12}" + "".join(f"{f'n={n:,}':>14}" for n in sizes)
    print(header + "   note")
    print("-" * (len(header) + 40))
    keys = list(dict.fromkeys((row.operation, row.note) for row in rows))
    for operation, note in keys:
        cells = []
        for n in sizes:
            match = next(r for r in rows if (r.operation, r.note, r.n) == (operation, note, n))
            cells.append(f"{format_ns(match.ns_per_op):>14}")
        target = f"< {format_ns(TARGETS_NS[operation])}"
        largest = next(
            r for r in rows if (r.operation, r.note, r.n) == (operation, note, sizes[-1])
        )
        verdict = "within" if largest.ns_per_op < TARGETS_NS[operation] else "OVER"
        print(f"{operation:<14}{target:>12}{''.join(cells)}   {verdict}; {note}".rstrip("; "))
    print()
