"""Background checks at scale (docs/product-contract.md §11; figures in
docs/benchmarks.md), against 1,000 simulated clusters with 100 ms added to
every request, in a process of their own (pve_simulator.fleet, 127.64.x.y):

1. ``manage.py clusters refresh --all`` for the 1,000 clusters, as an
   operator runs it (its own process, SQLite), against the old way as the
   baseline in the same run: one check after the other
   (``--concurrency 1``), timed on 100 clusters and scaled up. Client CPU
   per check is the command's CPU less that of a command that only starts
   and lists the clusters, divided by the checks.
2. The steady state: the same 1,000 clusters checked every 60 s by the
   engine in this process (``check_due``, as the embedded scheduler and a
   Celery worker run it), on PostgreSQL when DATABASE_URL_POSTGRES answers,
   else SQLite. After a first interval (each cluster's first check logs in)
   it measures the checking process's CPU as a share of one core, the
   database queries per check, and the logins and reads the fleet saw.

    .venv/bin/python benchmarks/bench_checks.py [--clusters 1000] [--latency 0.1]
        [--steady-seconds 120] [--skip-bulk] [--skip-steady]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

PASSWORD = "bench-checks-password"  # the simulated clusters' own, made up here
NETWORK = "127.64"
SECRET_KEY = "bench-checks-secret-key-0123456789abcdef0123456789abcdef01234567"
CREDENTIALS_KEY = "kVfH0rXq8m1cX5qB2f8dYHZz3o7xw6n9gQeT4sLrJpU="
BULK_TARGET_SECONDS = 10.0
STEADY_TARGET_SHARE = 0.25
SEQUENTIAL_SAMPLE = 100


# -- the fleet, in a process of its own ------------------------------------------------------


def _serve(pipe: Connection, count: int, latency: float) -> None:
    from pve_simulator.fleet import VirtualClusters

    fleet = VirtualClusters(count, network=NETWORK, latency=latency, password=PASSWORD).start()
    pipe.send(
        {
            "pid": os.getpid(),
            "clusters": [
                (cluster.cluster_name, cluster.url, cluster.fingerprint)
                for cluster in fleet.clusters
            ],
        }
    )
    while (request := pipe.recv()) is not None:
        if request == "counts":
            totals = {"logins": 0, "reads": 0}
            for counts in fleet.counts().values():
                totals["logins"] += counts["logins"]
                totals["reads"] += counts["reads"]
            pipe.send(totals)
        elif request == "reset":
            fleet.reset_counts()
            pipe.send("reset")
    fleet.stop()


class Fleet:
    def __init__(self, count: int, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, count, latency), daemon=True)
        self._process.start()
        started = self._pipe.recv()
        self.pid: int = started["pid"]
        self.clusters: list[tuple[str, str, str]] = started["clusters"]

    def counts(self) -> dict[str, int]:
        self._pipe.send("counts")
        return self._pipe.recv()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._pipe.send("reset")
        self._pipe.recv()

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        self._pipe.send(None)
        self._process.join(timeout=30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- storage -------------------------------------------------------------------------------------


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="proxmoxer_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET_KEY,
        PROXMOXER_CREDENTIALS_KEYS=CREDENTIALS_KEY,
        DATABASE_URL=database_url,
        CLUSTER_REPOSITORY="django",
        PROXMOXER_MONITOR="off",
        **extra,
    )
    return env


def manage(env: dict[str, str], *args: str) -> tuple[str, float, float]:
    """Run ``manage.py args``; its output, wall seconds and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout, wall, cpu


def register(env: dict[str, str], clusters: list[tuple[str, str, str]], spread: float) -> None:
    """Store the clusters as registered, their first checks spread over
    ``spread`` seconds from now (a fleet that has been running a while)."""
    script = """
import json, sys, random, uuid
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from clusters.domain import Cluster, ClusterStatus, PasswordCredentials, Secret
from clusters.encryption import CredentialCipher
from clusters.repositories.database import DjangoUnitOfWork
clusters, password, spread = json.load(sys.stdin)
now = datetime.now(UTC)
rng = random.Random(7)
cipher = CredentialCipher.from_settings()
with DjangoUnitOfWork(cipher=cipher) as uow:
    for name, url, fingerprint in clusters:
        uow.clusters.add(Cluster(
            id=uuid.uuid4(), name=name, api_endpoint=url,
            credentials=PasswordCredentials("root@pam", Secret(password)),
            verify_tls=True, fingerprint=fingerprint, status=ClusterStatus.HEALTHY,
            proxmox_version="8.2.4", node_count=3, created_at=now, updated_at=now,
            next_check_at=now + timedelta(seconds=rng.uniform(0, spread)),
        ))
    uow.commit()
"""
    import json

    subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_DIR,
        env=env,
        input=json.dumps([clusters, PASSWORD, spread]),
        text=True,
        check=True,
        timeout=600,
    )


@contextmanager
def postgres_or_sqlite(directory: Path, name: str) -> Iterator[tuple[str, str]]:
    """A fresh database: PostgreSQL when its server answers, else SQLite."""
    from tests import postgres

    if postgres.unavailable_reason() is None:
        with postgres.fresh_database(f"proxmoxer_bench_{name}") as url:
            yield url, "PostgreSQL"
    else:
        yield f"sqlite:///{directory / f'{name}.sqlite3'}", "SQLite"


# -- 1. refresh --all --------------------------------------------------------------------------


def bulk_refresh(fleet: Fleet, directory: Path) -> bool:
    count = len(fleet.clusters)
    everything = environment(f"sqlite:///{directory / 'bulk.sqlite3'}")
    register(everything, fleet.clusters, spread=0)
    sample = environment(f"sqlite:///{directory / 'sequential.sqlite3'}")
    register(sample, fleet.clusters[:SEQUENTIAL_SAMPLE], spread=0)

    _, _, startup_cpu = manage(everything, "clusters", "list")
    fleet.reset()
    fleet_cpu = fleet.cpu()
    output, wall, cpu = manage(everything, "clusters", "refresh", "--all")
    fleet_cpu = fleet.cpu() - fleet_cpu
    counts = fleet.counts()
    checked = int(re.search(r"Checked (\d+) of", output).group(1))  # type: ignore[union-attr]

    _, sequential_wall, sequential_cpu = manage(
        sample, "clusters", "refresh", "--all", "--concurrency", "1"
    )
    _, _, sample_startup_cpu = manage(sample, "clusters", "list")
    sequential_total = sequential_wall * count / SEQUENTIAL_SAMPLE

    print(f"1. manage.py clusters refresh --all, {count} clusters, SQLite")
    print(f"   {output.strip().splitlines()[0]}")
    print(f"   concurrent (128 in flight):       {wall:6.1f} s wall "
          f"(target <= {BULK_TARGET_SECONDS:g} s)")  # fmt: skip
    print(f"   sequential (--concurrency 1):      {sequential_wall:6.1f} s wall for "
          f"{SEQUENTIAL_SAMPLE}, so about {sequential_total:.0f} s for {count}")  # fmt: skip
    print(f"   speed-up:                          {sequential_total / wall:6.1f} x")
    print(f"   client CPU per check: concurrent {(cpu - startup_cpu) / checked * 1000:.1f} ms, "
          f"sequential {(sequential_cpu - sample_startup_cpu) / SEQUENTIAL_SAMPLE * 1000:.1f} ms "
          f"(the command's CPU less its start-up, {startup_cpu:.1f} s)")  # fmt: skip
    print(f"   the fleet saw {counts['logins']} logins and {counts['reads']} reads; "
          f"its CPU {fleet_cpu:.1f} s on the same two cores")  # fmt: skip
    print()
    return wall <= BULK_TARGET_SECONDS and checked == count


# -- 2. the steady state -----------------------------------------------------------------------


def steady_state(fleet: Fleet, directory: Path, window: float, interval: float) -> bool:
    count = len(fleet.clusters)
    with postgres_or_sqlite(directory, "steady") as (url, kind):
        env = environment(url, PROXMOXER_CHECK_INTERVAL=f"{interval:g}")
        register(env, fleet.clusters, spread=interval)
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection, connections

        from clusters.wiring import services_from_settings

        checks = services_from_settings().checks
        checked = [0]
        queries = [0]
        stop = threading.Event()

        def count_query(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            queries[0] += 1
            return execute(sql, params, many, context)

        def engine() -> None:
            # As the embedded scheduler runs it; claims and records happen in
            # this thread only, so its connection sees every query.
            with connection.execute_wrapper(count_query):
                while not stop.is_set():
                    checks.check_due(
                        stop=stop, on_checked=lambda outcome: checked.__setitem__(0, checked[0] + 1)
                    )
                    stop.wait(checks.schedule.tick.total_seconds())
            connections.close_all()

        thread = threading.Thread(target=engine, name="bench-engine")
        thread.start()
        try:
            # The first interval: every cluster checked once, logging in.
            deadline = time.monotonic() + interval * 1.1 + 30
            while checked[0] < count and time.monotonic() < deadline:
                time.sleep(0.5)
            first_pass = checked[0]
            fleet.reset()
            cpu, fleet_cpu = time.process_time(), fleet.cpu()
            checks_before, queries_before = checked[0], queries[0]
            time.sleep(window)
            cpu, fleet_cpu = time.process_time() - cpu, fleet.cpu() - fleet_cpu
            window_checks = checked[0] - checks_before
            window_queries = queries[0] - queries_before
            counts = fleet.counts()
        finally:
            stop.set()
            thread.join(timeout=60)

    share = cpu / window
    print(f"2. steady state, {count} clusters every {interval:g} s, {kind}, the engine in one "
          f"process ({checks.concurrency} in flight at most)")  # fmt: skip
    print(f"   first interval: {first_pass} clusters checked, each logging in once")
    print(f"   then {window:g} s: {window_checks} checks ({window_checks / window:.1f}/s), "
          f"{counts['logins']} logins, {counts['reads']} reads")  # fmt: skip
    per_check = cpu / max(window_checks, 1) * 1000
    print(f"   CPU of the checking process: {cpu:.1f} s = {share:.0%} of one core "
          f"(goal <= {STEADY_TARGET_SHARE:.0%}); {per_check:.1f} ms a check")  # fmt: skip
    print(f"   database queries per check: {window_queries / max(window_checks, 1):.2f} "
          f"({window_queries} in all, claims included)")  # fmt: skip
    print(f"   the fleet's CPU meanwhile: {fleet_cpu:.1f} s ({fleet_cpu / window:.0%} of one core)")
    print()
    return share <= STEADY_TARGET_SHARE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per API request")
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--skip-steady", action="store_true")
    options = parser.parse_args()

    print(
        f"Background checks: {options.clusters} simulated clusters ({NETWORK}.x.y, their own "
        f"process), {options.latency * 1000:g} ms per request, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d}\n"
    )
    fleet = Fleet(options.clusters, options.latency)
    met = True
    try:
        with tempfile.TemporaryDirectory(prefix="bench-checks-") as directory:
            if not options.skip_bulk:
                met &= bulk_refresh(fleet, Path(directory))
            if not options.skip_steady:
                met &= steady_state(
                    fleet, Path(directory), options.steady_seconds, options.interval
                )
    finally:
        fleet.stop()
    print("every target met" if met else "a target was missed (see above)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
