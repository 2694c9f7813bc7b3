"""Background checks as an operator runs them (docs/product-contract.md
§11), real processes on loopback:

- ``manage.py runserver`` with its default embedded scheduler follows a
  simulated cluster's changes with no refresh call, and two of them on one
  database check it once per interval between them;
- two Celery workers, each with its own beat, on PostgreSQL and Redis,
  check each of 50 simulated clusters once per interval, and when one is
  killed with SIGKILL in the middle of its checks, nothing is lost: the
  other checks those clusters again once their claims run out.

The simulators count what reached them; the assertions are about those
requests, read from each simulated cluster's own log.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from pve_simulator.fleet import VirtualClusters
from pve_simulator.server import PveSimulator, RecordedRequest
from tests import postgres, redis_server
from tests.e2e.conftest import Registry, Secrets
from tests.e2e.servers import (
    CeleryWorker,
    free_port,
    prepare_database,
    runserver,
    service_environment,
)

pytestmark = pytest.mark.e2e

VERSION, STATUS, NODES = "/api2/json/version", "/api2/json/cluster/status", "/api2/json/nodes"


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"waited {timeout:g} s for {what}")


def checks(requests_seen: list[RecordedRequest]) -> list[tuple[float, set[str]]]:
    """Each check as (when it began, what it asked): a check is one
    connection, its first request (a login, or the /version read with a
    kept ticket) its beginning."""
    by_connection: dict[int, list[RecordedRequest]] = {}
    for request in requests_seen:
        by_connection.setdefault(request.connection, []).append(request)
    return sorted(
        (min(r.started for r in made), {r.path for r in made}) for made in by_connection.values()
    )


def check_starts(requests_seen: list[RecordedRequest], since: float = 0.0) -> list[float]:
    return [start for start, _ in checks(requests_seen) if start >= since]


def gaps(starts: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(starts)]


# -- the embedded scheduler of runserver -------------------------------------------------------

INTERVAL = 2.0


@pytest.fixture
def simulator(secrets: Secrets) -> Iterator[PveSimulator]:
    with secrets.watch(PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=0.2)) as sim:
        yield sim


def test_runserver_follows_the_cluster_without_a_refresh_and_two_check_it_once(
    tmp_path: Path, simulator: PveSimulator, secrets: Secrets
) -> None:
    env = service_environment(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CLUSTER_REPOSITORY="django",  # both processes share one registry
        PROXMOXER_CHECK_INTERVAL=f"{INTERVAL:g}",
        PROXMOX_CONNECT_TIMEOUT="1",
        PROXMOX_READ_TIMEOUT="2",
        API_THROTTLE_RATE="100000/minute",
    )
    del env["PROXMOXER_MONITOR"]  # runserver's own default: embedded
    token = prepare_database(env)
    secrets.add(token)
    servers = [runserver(env, tmp_path / f"service-{n}.log") for n in (1, 2)]
    try:
        first, second = (Registry(server, token, secrets) for server in servers)
        created = first.register(
            name="followed",
            api_endpoint=simulator.url,
            fingerprint=simulator.fingerprint,
            username=simulator.username,
            password=simulator.password,
        )
        assert created.status_code == 201, created.text
        cluster_id = created.json()["id"]
        simulator.clear_requests()
        since = time.monotonic()

        simulator.set_scenario("degraded")
        wait_until(
            lambda: second.get(cluster_id).json()["status"] == "degraded",
            timeout=10 * INTERVAL,
            what="the status to follow the cluster to degraded",
        )
        simulator.set_scenario("healthy")
        healthy = wait_until(
            lambda: (body := first.get(cluster_id).json())["status"] == "healthy" and body,
            timeout=10 * INTERVAL,
            what="the status to follow the cluster back to healthy",
        )
        # A few intervals more, with both schedulers looking every half second.
        time.sleep(4 * INTERVAL)

        logs = [server.log() for server in servers]
        history = first.call("GET", f"/api/v1/clusters/{cluster_id}/history").json()
    finally:
        for server in servers:
            server.stop()

    assert all("refresh" not in log for log in logs), "nobody asked for a refresh"
    assert all("Background checks started, engine=embedded" in log for log in logs)
    assert [(e["from"], e["to"]) for e in history["events"]] == [
        ("degraded", "healthy"),
        ("healthy", "degraded"),
        (None, "healthy"),
    ]
    changed = [line for log in logs for line in log.splitlines() if "status changed" in line]
    assert len(changed) == 2, "each change is recorded by exactly one of the two processes"
    assert healthy["next_check_at"] > healthy["last_checked_at"]
    # One check per interval between the two processes (±10 %, a tick late at most).
    intervals = gaps(check_starts(simulator.requests, since))
    assert len(intervals) >= 3
    assert min(intervals) > 0.5 * INTERVAL, f"checked twice within an interval: {intervals}"
    logins = [r for r in simulator.requests if r.method == "POST"]
    assert len(logins) <= 2, "each process logs in once, then reuses its ticket"


# -- Celery workers on PostgreSQL and Redis ----------------------------------------------------

CLUSTERS = 50
FLEET_INTERVAL = 12.0
LATENCY = 1.0  # per request: a check of three reads takes about 3 s, so kills land mid-check
CONNECT_TIMEOUT, READ_TIMEOUT = 0.5, 2.5
# clusters/wiring.py: the longest check (connect + 2 reads) + a connect + 5 s
LEASE = CONNECT_TIMEOUT + 2 * READ_TIMEOUT + CONNECT_TIMEOUT + 5.0
TICK = 0.6  # a twentieth of the interval
PASSWORD = "e2e-fleet-Pa55word"


def broker_url() -> str:
    """Redis database 14 of the test server (the cache tests use 15): the
    queue is named per run besides, so parallel runs never share a task."""
    parts = urlsplit(redis_server.URL)
    return urlunsplit(parts._replace(path="/14"))


def open_connections(fleet: VirtualClusters) -> int:
    """Connections open to the fleet now: a check holds one while it runs."""
    return sum(len(node.connections) for cluster in fleet.clusters for node in cluster.nodes)


def complete_checks(requests_seen: list[RecordedRequest]) -> list[float]:
    """When the checks that read all three began."""
    return [start for start, asked in checks(requests_seen) if {VERSION, STATUS, NODES} <= asked]


def interrupted_checks(requests_seen: list[RecordedRequest], before: float) -> list[float]:
    """When the checks begun before ``before`` that never read the nodes began."""
    return [
        start for start, asked in checks(requests_seen) if start < before and NODES not in asked
    ]


@pytest.mark.postgres
@pytest.mark.redis
def test_two_celery_workers_check_each_cluster_once_per_interval_and_survive_kill_9(
    tmp_path: Path, secrets: Secrets
) -> None:
    fleet = VirtualClusters(
        CLUSTERS, network="127.62", password=PASSWORD, auth_failure_delay=0.2
    ).start()
    secrets.add(PASSWORD)
    workers: list[CeleryWorker] = []
    try:
        with postgres.fresh_database("proxmoxer_e2e_checks") as database_url:
            env = service_environment(
                database_url,
                CLUSTER_REPOSITORY="django",
                PROXMOXER_MONITOR="celery",
                CELERY_BROKER_URL=broker_url(),
                PROXMOXER_CELERY_QUEUE=f"proxmoxer-e2e-{uuid.uuid4().hex[:12]}",
                PROXMOXER_CHECK_INTERVAL=f"{FLEET_INTERVAL:g}",
                # Room for all 50 in one worker once the other is killed.
                PROXMOXER_CHECK_CONCURRENCY="32",
                PROXMOX_CONNECT_TIMEOUT=f"{CONNECT_TIMEOUT:g}",
                PROXMOX_READ_TIMEOUT=f"{READ_TIMEOUT:g}",
                API_THROTTLE_RATE="100000/minute",
            )
            token = prepare_database(env)
            secrets.add(token)
            register_fleet(env, token, secrets, fleet, tmp_path)
            fleet.configure(latency=LATENCY)
            for cluster in fleet.clusters:
                cluster.clear_requests()
            fleet.reset_counts()
            try:
                workers = [
                    CeleryWorker(env, tmp_path / f"worker-{n}.log", f"worker{n}").start()
                    for n in (1, 2)
                ]
                # Registration scheduled each cluster an interval on: wait for
                # every first check, then watch three intervals.
                wait_until(
                    lambda: all(complete_checks(c.requests) for c in fleet.clusters),
                    timeout=3 * FLEET_INTERVAL,
                    what="a first check of every cluster",
                )
                time.sleep(3 * FLEET_INTERVAL)
                watched = {c.cluster_name: complete_checks(c.requests) for c in fleet.clusters}
                counts = fleet.counts()

                # SIGKILL, worker and beat, while many checks are in flight.
                wait_until(
                    lambda: open_connections(fleet) >= 10,
                    timeout=2 * FLEET_INTERVAL,
                    what="ten checks in flight",
                )
                workers[0].kill()
                killed_at = time.monotonic()
                time.sleep(LEASE + 2 * FLEET_INTERVAL)
                after = {c.cluster_name: c.requests for c in fleet.clusters}
            finally:
                for worker in workers:
                    worker.stop()  # before the database goes
    finally:
        fleet.stop()
    for worker in workers:
        secrets.assert_absent(worker.log(), f"the log of {worker.name}")

    # Three intervals with both workers: every cluster checked once per
    # interval (±10 %, a tick late at most, some slack for a loaded machine).
    for name, starts in watched.items():
        assert len(starts) >= 3, f"{name}: {len(starts)} checks"
        for gap in gaps(starts):
            assert 0.85 * FLEET_INTERVAL <= gap <= 1.1 * FLEET_INTERVAL + TICK + 2, (name, gap)
    logins = sum(c["logins"] for c in counts.values())
    assert CLUSTERS < logins <= 2 * CLUSTERS, "both workers checked; each logs in once a cluster"

    # The kill: some checks were cut off; each of those clusters, and every
    # other, is checked again within an interval, and none twice.
    cut_off = {
        name: interrupted_checks(seen, killed_at)
        for name, seen in after.items()
        if interrupted_checks(seen, killed_at)
    }
    assert cut_off, "the kill found the worker idle: no check was cut off"
    # What was seen, for docs/benchmarks.md: kept beside the logs.
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "checks_per_cluster_in_three_intervals": sorted(len(s) for s in watched.values()),
                "logins": logins,
                "clusters_cut_off_by_the_kill": len(cut_off),
                "first_complete_check_after_the_kill_s": sorted(
                    round(next(s for s in complete_checks(seen) if s > killed_at) - killed_at, 1)
                    for seen in after.values()
                ),
            }
        )
    )
    for name, seen in after.items():
        starts = complete_checks(seen)
        next_after_kill = [s for s in starts if s > killed_at]
        assert next_after_kill and next_after_kill[0] - killed_at <= FLEET_INTERVAL + TICK + 2, (
            name,
            "not checked within an interval of the kill",
        )
        every_start = check_starts(seen)
        assert min(gaps(every_start), default=FLEET_INTERVAL) >= 0.5 * FLEET_INTERVAL, (
            name,
            "checked twice",
        )


def register_fleet(
    env: dict[str, str], token: str, secrets: Secrets, fleet: VirtualClusters, tmp_path: Path
) -> None:
    """Register every simulated cluster through the API of a service
    process that does not check (PROXMOXER_MONITOR=off)."""
    server = runserver({**env, "PROXMOXER_MONITOR": "off"}, tmp_path / "service.log")
    try:
        registry = Registry(server, token, secrets)

        def register(cluster: PveSimulator) -> requests.Response:
            return registry.register(
                name=cluster.cluster_name,
                api_endpoint=cluster.url,
                fingerprint=cluster.fingerprint,
                username=cluster.username,
                password=PASSWORD,
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(register, fleet.clusters))
    finally:
        server.stop()
    assert [answer.status_code for answer in answers] == [201] * len(fleet.clusters)


# -- Redis going away ----------------------------------------------------------------------------


def redis_server_on(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_until(
        lambda: redis_server.unavailable_reason(f"redis://127.0.0.1:{port}/0") is None,
        timeout=10,
        what="redis-server to answer",
    )
    return process


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server to start")
def test_without_redis_the_api_serves_and_a_worker_waits_then_checks_when_it_comes(
    tmp_path: Path, simulator: PveSimulator, secrets: Secrets
) -> None:
    port = free_port()
    env = service_environment(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CLUSTER_REPOSITORY="django",
        PROXMOXER_MONITOR="celery",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0",  # nothing listens there yet
        PROXMOXER_CHECK_INTERVAL="2",
        PROXMOX_CONNECT_TIMEOUT="1",
        PROXMOX_READ_TIMEOUT="2",
    )
    token = prepare_database(env)
    secrets.add(token)
    server = runserver(env, tmp_path / "service.log")
    worker = CeleryWorker(env, tmp_path / "worker.log", "waiting").start()
    broker: subprocess.Popen[bytes] | None = None
    try:
        registry = Registry(server, token, secrets)
        created = registry.register(
            name="waits-for-redis",
            api_endpoint=simulator.url,
            fingerprint=simulator.fingerprint,
            token_id=simulator.token_id,
            token_secret=simulator.token_secret,
        )
        assert created.status_code == 201, created.text
        assert registry.call("GET", "/api/v1/clusters").status_code == 200
        simulator.clear_requests()
        time.sleep(6)  # three intervals: the worker is up, the broker is not
        assert simulator.requests == [], "checked without a broker to be told by"
        assert worker.process is not None and worker.process.poll() is None

        broker = redis_server_on(port, tmp_path / "redis.log")
        wait_until(
            lambda: len(check_starts(simulator.requests)) >= 2,
            timeout=60,
            what="the worker to reconnect and check",
        )
        broker.terminate()
        broker.wait(timeout=10)
        broker = redis_server_on(port, tmp_path / "redis.log")  # Redis restarted
        simulator.clear_requests()
        wait_until(
            lambda: len(check_starts(simulator.requests)) >= 2,
            timeout=60,
            what="the worker to reconnect after Redis restarted",
        )
    finally:
        worker.stop()
        server.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)
