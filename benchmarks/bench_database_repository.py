"""docs/product-contract.md §15 for the Django backend on SQLite and PostgreSQL
at n = 100 and n = 10,000, and ``GET /api/v1/clusters`` holding 1,000 clusters
on every backend (memory, SQLite, PostgreSQL); figures in docs/benchmarks.md.

.venv/bin/python benchmarks/bench_database_repository.py   (or: make bench)

Each backend runs in a process of its own configured like production
(DJANGO_DEBUG=0, DATABASE_URL, persistent connections), since the database
of the ``default`` alias is fixed per process. SQLite lives in a temporary
directory; PostgreSQL (DATABASE_URL_POSTGRES, default the CI server) in a
database created for the run and dropped after it. The list endpoint is
timed through Django's test client: every middleware, token authentication,
the view, the serializer and JSON rendering; no socket.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from benchmarks.repository_rows import Row, format_ns, make_cluster, measure, print_table  # noqa: E402

SIZES = [100, 10_000]
# Database operations take 0.1-3 ms, not the memory store's nanoseconds:
# 5 batches of 50 calls (5 of 5 for listing) keep the run to a few minutes.
BATCH = 50
ENDPOINT_CLUSTERS = 1_000
ENDPOINT_REQUESTS = 50
ENDPOINT = f"/api/v1/clusters?limit={ENDPOINT_CLUSTERS}"  # every cluster on one page
CREDENTIALS_KEY = "kVfH0rXq8m1cX5qB2f8dYHZz3o7xw6n9gQeT4sLrJpU="


# -- in the worker process ------------------------------------------------------


def _time_list_endpoint(backend: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from clusters import api_tokens, wiring
    from clusters.bootstrap import bootstrap
    from clusters.domain import VIEWERS
    from clusters.models import ClusterRecord
    from tests.units_of_work import AutoCommit

    if backend != "memory":
        ClusterRecord.objects.all().delete()
    # Built from CLUSTER_REPOSITORY as the server builds it; filled through
    # the same units of work the served requests then read from.
    unit_of_work = wiring.unit_of_work_from_settings()
    repository = AutoCommit(unit_of_work)
    for index in range(ENDPOINT_CLUSTERS):
        repository.add(make_cluster(index))

    user = get_user_model().objects.create_user("bench")
    user.groups.add(Group.objects.get_or_create(name=VIEWERS)[0])
    client = Client(HTTP_AUTHORIZATION=f"Token {api_tokens.create_token(user)[1]}")
    wiring.install_services(
        bootstrap(unit_of_work=unit_of_work, proxmox=wiring.proxmox_client_from_settings())
    )
    for _ in range(2):  # warm-up: first connection, imports, caches
        response = client.get(ENDPOINT)
        assert response.status_code == 200, response.content[:300]
        assert response.json()["total"] == ENDPOINT_CLUSTERS
    elapsed = []
    for _ in range(ENDPOINT_REQUESTS):
        started = time.perf_counter_ns()
        response = client.get(ENDPOINT)
        elapsed.append(time.perf_counter_ns() - started)
        assert response.status_code == 200
    return {
        "median_ns": statistics.median(elapsed),
        "min_ns": min(elapsed),
        "bytes": len(response.content),
    }


def worker(backend: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from clusters import wiring
    from clusters.models import ClusterRecord
    from clusters.services import UnitOfWorkFactory

    call_command("migrate", verbosity=0)
    result: dict[str, Any] = {"backend": backend}
    if backend != "memory":

        def empty_repository() -> UnitOfWorkFactory:
            ClusterRecord.objects.all().delete()
            return wiring.unit_of_work_from_settings()

        measure(empty_repository, 20, batch=10)  # warm-up, discarded
        rows = [row for n in SIZES for row in measure(empty_repository, n, batch=BATCH)]
        result["rows"] = [asdict(row) for row in rows]
    result["endpoint"] = _time_list_endpoint(backend)
    print(json.dumps(result))


# -- in the parent process ------------------------------------------------------


def _run_worker(backend: str, database_url: str) -> dict[str, Any]:
    env = {
        **{key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ},
        "DJANGO_SETTINGS_MODULE": "proxmoxer_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "PROXMOXER_CREDENTIALS_KEYS": CREDENTIALS_KEY,
        "CLUSTER_REPOSITORY": "memory" if backend == "memory" else "django",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, __file__, "--worker", backend],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"the {backend} benchmark failed:\n{result.stdout}\n{result.stderr}")
    print(f"{backend} backend measured in {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from tests import postgres

    results = []
    with tempfile.TemporaryDirectory(prefix="proxmoxer-bench-") as workdir:
        for backend in ("memory", "sqlite"):
            url = f"sqlite:///{Path(workdir) / f'{backend}.sqlite3'}"
            results.append(_run_worker(backend, url))
    skipped = postgres.unavailable_reason()
    if skipped is None:
        with postgres.fresh_database("proxmoxer_bench") as url:
            results.append(_run_worker("postgres", url))

    print(f"\nPython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    for result in results:
        if "rows" in result:
            rows = [Row(**row) for row in result["rows"]]
            title = f"DjangoClusterRepository on {result['backend']} "
            title += f"(per operation, median of 5 batches of {BATCH})"
            print_table(title, rows, SIZES)
    if skipped is not None:
        print(f"PostgreSQL skipped: {skipped}\n")

    print(
        f"GET {ENDPOINT} with {ENDPOINT_CLUSTERS:,} clusters through Django's test client "
        f"(median of {ENDPOINT_REQUESTS} requests)"
    )
    print(f"{'backend':<12}{'median':>12}{'fastest':>12}{'per cluster':>14}{'body':>12}")
    for result in results:
        endpoint = result["endpoint"]
        print(
            f"{result['backend']:<12}{format_ns(endpoint['median_ns']):>12}"
            f"{format_ns(endpoint['min_ns']):>12}"
            f"{format_ns(endpoint['median_ns'] / ENDPOINT_CLUSTERS):>14}"
            f"{endpoint['bytes'] / 1024:>9.0f} KiB"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main()
