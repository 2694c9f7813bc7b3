"""``GET /api/v1/clusters`` against a bare DRF view returning the same bodies,
served side by side by one gunicorn, on the memory, SQLite and PostgreSQL
backends (docs/benchmarks.md, "The cluster list").

    .venv/bin/python benchmarks/bench_list_endpoint.py [--rounds 5] [--duration 3]
    (or: make bench)

Needs wrk, the HTTP load generator (Debian: ``apt-get install wrk``); without
it the benchmark says so and skips. PostgreSQL is the server of
DATABASE_URL_POSTGRES (tests/postgres.py), in a database made for the run.

For each backend one gunicorn, as ``make serve`` runs it (2 worker processes
of gunicorn's asyncio worker, 4 application threads each, the production
settings), serves both the real list and ``/bench/prebuilt``
(benchmarks/list_site/urls.py): a bare DRF view with the same
authentication, permissions, throttling and renderer, answering each query
string with the real list's body for it, prebuilt. Both answer byte for byte
the same, which is checked before anything is timed. wrk (2 threads, 8
connections, token auth) then measures requests per second of the two in
interleaved rounds, alternating which goes first, and the table gives the
ratio list / prebuilt: its median over the rounds and its range. With
10,000 clusters on PostgreSQL, the list's latency is measured on one
connection (wrk's percentiles), for the first page and for a status filter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from benchmarks.list_site.fleet import FILTERED_STATUS  # noqa: E402
from tests import postgres  # noqa: E402
from tests.e2e.servers import ServerProcess, free_port  # noqa: E402

CREDENTIALS_KEY = "kVfH0rXq8m1cX5qB2f8dYHZz3o7xw6n9gQeT4sLrJpU="
WORKERS, THREADS = 2, 4
WRK_THREADS, WRK_CONNECTIONS = 2, 8
LIST = "/api/v1/clusters"
PREBUILT = "/bench/prebuilt"
# (label, query string, clusters stored, target ratio per backend)
RATIO_CASES = [
    ("default page (100) of 1,000", "", 1_000, {"memory": 0.8, "postgres": 0.6}),
    ("limit=1000 of 1,000", "limit=1000", 1_000, {"memory": 0.8, "postgres": 0.4}),
]
LATENCY_CLUSTERS = 10_000
LATENCY_CASES = [
    ("first page", "", 20.0),
    (f"status={FILTERED_STATUS}", f"status={FILTERED_STATUS}", 30.0),
]


# -- in a helper process: fill the database, make the account -------------------


def fill(count: int) -> None:
    """Migrate, store ``count`` clusters (database backends), create the
    benchmark's account; print its API token."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.list_site.fleet import fleet
    from clusters import api_tokens
    from clusters.domain import VIEWERS
    from clusters.encryption import CredentialCipher
    from clusters.models import ClusterRecord

    call_command("migrate", verbosity=0)
    if settings.CLUSTER_REPOSITORY == "django":
        ClusterRecord.objects.all().delete()
        cipher = CredentialCipher.from_settings()
        ClusterRecord.objects.bulk_create(
            [ClusterRecord.from_domain(cluster, cipher) for cluster in fleet(count)],
            batch_size=1_000,
        )
        if connection.vendor == "postgresql":
            # As autovacuum would soon after a bulk load: planner statistics
            # and the visibility map an index-only COUNT needs.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE clusters_cluster")
    user, _ = get_user_model().objects.get_or_create(username="bench")
    user.groups.add(Group.objects.get_or_create(name=VIEWERS)[0])  # may read the list
    print(api_tokens.create_token(user)[1])


# -- in the parent process -------------------------------------------------------


@dataclass
class Server:
    """One gunicorn serving one backend with ``clusters`` stored."""

    backend: str
    database_url: str
    clusters: int
    workdir: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.bodies = self.workdir / f"bodies-{self.backend}-{self.clusters}.json"
        self.env = {
            **{key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ},
            "DJANGO_SETTINGS_MODULE": "benchmarks.list_site.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "PROXMOXER_CREDENTIALS_KEYS": CREDENTIALS_KEY,
            "CLUSTER_REPOSITORY": "memory" if self.backend == "memory" else "django",
            "DATABASE_URL": self.database_url,
            "API_THROTTLE_RATE": "100000000/minute",
            "PROXMOXER_SERVE_THREADS": str(THREADS),
            "LOG_LEVEL": "WARNING",
            "BENCH_CLUSTERS": str(self.clusters),
            "BENCH_BODIES": str(self.bodies),
        }
        self.base_url = f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[Server]:
        self.token = self._run([sys.executable, __file__, "--fill", str(self.clusters)]).strip()
        # As make serve runs it: gunicorn's asyncio worker in front, THREADS
        # threads per process running the application.
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "proxmoxer_site.serving:application_from_settings()",
            "--worker-class",
            "asgi",
            "--config",
            "python:benchmarks.list_site.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(WORKERS),
            "--no-control-socket",
        ]
        log = self.workdir / f"gunicorn-{self.backend}-{self.clusters}.log"
        server = ServerProcess(command, self.env, self.base_url, log).start()
        try:
            yield self
        finally:
            server.stop()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def get(self, path: str, query: str) -> requests.Response:
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        response = requests.get(url, headers=self.headers(), timeout=30)
        if response.status_code != 200:
            sys.exit(f"{url} answered {response.status_code}: {response.text[:300]}")
        return response

    def prebuild(self, queries: list[str]) -> None:
        """Write the prebuilt view's bodies from the list's own answers, and
        check that both answer every query with the same bytes, from every
        worker (a few requests each reach both)."""
        expected = {query: self.get(LIST, query).content for query in queries}
        for query, body in expected.items():
            if json.loads(body)["total"] != self.clusters:  # every worker's store is filled
                sys.exit(f"{LIST}?{query} counts {json.loads(body)['total']} clusters")
        self.bodies.write_text(
            json.dumps({query: json.loads(body) for query, body in expected.items()})
        )
        for query, body in expected.items():
            for _ in range(4 * WORKERS):
                for path in (LIST, PREBUILT):
                    if self.get(path, query).content != body:
                        sys.exit(f"{path}?{query} is not byte-identical to the list's body")

    def _run(self, command: list[str]) -> str:
        result = subprocess.run(
            command, cwd=PROJECT_DIR, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip().splitlines()[-1]


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS_MS[unit]


def wrk(
    server: Server, path: str, query: str, *, duration: int, threads: int, connections: int
) -> WrkResult:
    url = f"{server.base_url}{path}" + (f"?{query}" if query else "")
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Token {server.token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        sys.exit(f"wrk saw failures on {url}:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
    return WrkResult(rps, _milliseconds(p50), _milliseconds(p99))


def measure_ratios(server: Server, rounds: int, duration: int) -> list[dict[str, Any]]:
    cases = [case for case in RATIO_CASES if case[2] == server.clusters]
    server.prebuild([query for _, query, _, _ in cases])
    for _, query, _, _ in cases:  # warm-up: connections, caches, the JIT-less first calls
        for path in (LIST, PREBUILT):
            wrk(server, path, query, duration=1, threads=WRK_THREADS, connections=WRK_CONNECTIONS)
    samples: dict[str, dict[str, list[float]]] = {
        query: {LIST: [], PREBUILT: []} for _, query, _, _ in cases
    }
    for round_number in range(rounds):
        for _, query, _, _ in cases:
            order = (LIST, PREBUILT) if round_number % 2 == 0 else (PREBUILT, LIST)
            for path in order:
                result = wrk(
                    server,
                    path,
                    query,
                    duration=duration,
                    threads=WRK_THREADS,
                    connections=WRK_CONNECTIONS,
                )
                samples[query][path].append(result.requests_per_second)
    rows = []
    for label, query, _, targets in cases:
        lists, prebuilt = samples[query][LIST], samples[query][PREBUILT]
        ratios = [real / floor for real, floor in zip(lists, prebuilt, strict=True)]
        rows.append(
            {
                "backend": server.backend,
                "case": label,
                "list_rps": statistics.median(lists),
                "prebuilt_rps": statistics.median(prebuilt),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "target": targets.get(server.backend),
                "body_bytes": len(server.get(LIST, query).content),
            }
        )
    return rows


def measure_latency(server: Server, duration: int) -> list[dict[str, Any]]:
    rows = []
    for label, query, target in LATENCY_CASES:
        body = server.get(LIST, query).json()
        wrk(server, LIST, query, duration=1, threads=1, connections=1)  # warm-up
        result = wrk(server, LIST, query, duration=duration, threads=1, connections=1)
        rows.append(
            {
                "case": label,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "target_ms": target,
                "total": body["total"],
                "shown": len(body["clusters"]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="whole seconds per wrk run")
    parser.add_argument(
        "--backends", default="memory,sqlite,postgres", help="comma list (default: all three)"
    )
    arguments = parser.parse_args()
    if shutil.which("wrk") is None:
        print("SKIPPED: wrk is not installed (Debian: apt-get install wrk); no list benchmark.")
        return

    load_before = os.getloadavg()
    ratio_rows: list[dict[str, Any]] = []
    latency_rows: list[dict[str, Any]] = []
    skipped = postgres.unavailable_reason()
    with tempfile.TemporaryDirectory(prefix="proxmoxer-list-bench-") as directory:
        workdir = Path(directory)
        backends = arguments.backends.split(",")
        for backend in [name for name in ("memory", "sqlite") if name in backends]:
            url = f"sqlite:///{workdir / f'{backend}.sqlite3'}"
            with Server(backend, url, 1_000, workdir).running() as server:
                ratio_rows += measure_ratios(server, arguments.rounds, arguments.duration)
            print(f"{backend} measured", file=sys.stderr, flush=True)
        if skipped is None and "postgres" in backends:
            with postgres.fresh_database("proxmoxer_list_bench") as url:
                with Server("postgres", url, 1_000, workdir).running() as server:
                    ratio_rows += measure_ratios(server, arguments.rounds, arguments.duration)
                with Server("postgres", url, LATENCY_CLUSTERS, workdir).running() as server:
                    latency_rows = measure_latency(server, arguments.duration * 2)
            print("postgres measured", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        f"gunicorn (asgi worker, as make serve) {WORKERS} workers x {THREADS} threads; "
        f"wrk -t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS} -d{arguments.duration:g}s, {arguments.rounds} interleaved rounds"
    )
    print()
    print("GET /api/v1/clusters vs a bare DRF view returning the same prebuilt body (req/s)")
    header = (
        f"{'backend':<10}{'case':<30}{'list':>9}{'prebuilt':>10}{'ratio':>8}"
        f"{'range':>14}{'target':>9}{'body':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in ratio_rows:
        target = row["target"]
        verdict = "" if target is None else ("  ok" if row["ratio"] >= target else "  MISSED")
        spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
        goal = "" if target is None else f">= {target:.1f}"
        print(
            f"{row['backend']:<10}{row['case']:<30}{row['list_rps']:>9.0f}"
            f"{row['prebuilt_rps']:>10.0f}{row['ratio']:>7.2f}x{spread:>14}{goal:>9}"
            f"{row['body_bytes'] / 1024:>7.0f} KiB{verdict}"
        )
    print()
    if skipped is not None:
        print(f"PostgreSQL skipped: {skipped}")
    if not latency_rows:
        return
    print(
        f"GET /api/v1/clusters with {LATENCY_CLUSTERS:,} clusters on PostgreSQL, one connection "
        f"(wrk -t1 -c1 -d{arguments.duration * 2:g}s)"
    )
    print(f"{'case':<20}{'shown/total':>14}{'p50':>10}{'p99':>10}{'target p50':>13}")
    for row in latency_rows:
        verdict = "  ok" if row["p50_ms"] <= row["target_ms"] else "  MISSED"
        shown = f"{row['shown']}/{row['total']:,}"
        goal = f"<= {row['target_ms']:.0f} ms"
        print(
            f"{row['case']:<20}{shown:>14}{row['p50_ms']:>8.2f}ms{row['p99_ms']:>8.2f}ms"
            f"{goal:>13}{verdict}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fill"]:
        fill(int(sys.argv[2]))
    else:
        main()
