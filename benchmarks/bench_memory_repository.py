"""docs/product-contract.md §15 for the in-memory repository at n = 100 and
n = 10,000 (figures: docs/benchmarks.md).

.venv/bin/python benchmarks/bench_memory_repository.py   (or: make bench)
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.repository_rows import measure, print_table
from clusters.repositories.memory import InMemoryUnitOfWork

SIZES = [100, 10_000]


def main() -> None:
    measure(InMemoryUnitOfWork.factory, 100, batch=2_000)  # warm-up, discarded
    rows = [row for n in SIZES for row in measure(InMemoryUnitOfWork.factory, n, batch=2_000)]
    print(f"Python {platform.python_version()} on {platform.machine()}")
    title = "InMemoryClusterRepository, each write its own unit of work"
    print_table(f"{title} (per operation, median of 5 batches)", rows, SIZES)


if __name__ == "__main__":
    main()
