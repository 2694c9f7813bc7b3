"""Two server processes on one PostgreSQL database hold one registry.

Both run gunicorn as production does (DJANGO_DEBUG=0, CLUSTER_REPOSITORY=
django, two workers each) on a database created for this run and dropped
after it, and register clusters against the PVE simulator over real HTTPS.
What one process stores the other lists, shows and removes; of many
concurrent registrations of one name spread over both, the database stores
exactly one; and a restart of both loses nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from pve_simulator.server import PveSimulator
from tests import postgres
from tests.conftest import assert_secret_absent
from tests.e2e.servers import (
    PYTHON,
    ServerProcess,
    free_port,
    manage,
    prepare_database,
    service_environment,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RACERS = 24
# Each simulated PVE answer waits this long, so every racer is still talking
# to "Proxmox", past the service's early name check, when the first saves.
RACE_LATENCY = 1.0


class Service:
    """One server process and an operator's API client for it."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy between the test and loopback
        self.http.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.server.base_url}{path}", timeout=30, **kwargs)

    def register(self, fields: dict[str, Any]) -> requests.Response:
        return self.call("POST", "/api/v1/clusters", json=fields)

    def clusters(self) -> list[dict[str, Any]]:
        response = self.call("GET", "/api/v1/clusters")
        assert response.status_code == 200, response.text
        return response.json()["clusters"]


class Pair:
    """Two gunicorn processes over one database; restartable."""

    def __init__(self, env: dict[str, str], token: str, workdir: Path) -> None:
        self.env, self.token, self.workdir = env, token, workdir
        self.started: list[ServerProcess] = []
        self.a, self.b = self._start("a"), self._start("b")

    def _start(self, tag: str) -> Service:
        port = free_port()
        command = [
            PYTHON, "-m", "gunicorn", "proxmoxer_site.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", str(RACERS), "--no-control-socket",
        ]  # fmt: skip
        log = self.workdir / f"server-{tag}-{len(self.started)}.log"
        server = ServerProcess(command, self.env, f"http://127.0.0.1:{port}", log).start()
        self.started.append(server)
        return Service(server, self.token)

    def stop(self) -> None:
        for service in (self.a, self.b):
            service.server.stop()

    def restart(self) -> None:
        self.stop()
        self.a, self.b = self._start("a"), self._start("b")


def password_fields(simulator: PveSimulator, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "api_endpoint": simulator.url,
        "fingerprint": simulator.fingerprint,
        "username": simulator.username,
        "password": simulator.password,
    }


def token_fields(simulator: PveSimulator, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "api_endpoint": simulator.url,
        "fingerprint": simulator.fingerprint,
        "token_id": simulator.token_id,
        "token_secret": simulator.token_secret,
    }


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    postgres.require()  # module fixtures run before the autouse skip would
    with postgres.fresh_database("proxmoxer_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def simulator() -> Iterator[PveSimulator]:
    with PveSimulator(auth_failure_delay=0.3) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def environment(database_url: str) -> tuple[dict[str, str], str]:
    env = service_environment(
        database_url, CLUSTER_REPOSITORY="django", API_THROTTLE_RATE="100000/minute"
    )
    return env, prepare_database(env)


@pytest.fixture(scope="module")
def pair(environment: tuple[dict[str, str], str], tmp_path_factory: Any) -> Iterator[Pair]:
    env, token = environment
    servers = Pair(env, token, tmp_path_factory.mktemp("shared-postgres"))
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def other_simulator() -> Iterator[PveSimulator]:
    """Another PVE cluster: one cluster is registered once (docs/product-contract.md §10)."""
    with PveSimulator(cluster_name="other", auth_failure_delay=0.3) as simulator:
        yield simulator


@pytest.fixture
def sim(simulator: PveSimulator, pair: Pair) -> Iterator[PveSimulator]:
    """The simulated cluster, healthy; what a test registered is
    deregistered after it, so that the next may register the cluster again."""
    simulator.configure(scenario="healthy", latency=0)
    simulator.clear_requests()
    before = {cluster["id"] for cluster in pair.a.clusters()}
    yield simulator
    simulator.configure(latency=0)
    for cluster in pair.a.clusters():
        if cluster["id"] not in before:
            pair.a.call("DELETE", f"/api/v1/clusters/{cluster['id']}")


def test_cluster_registered_through_one_process_is_listed_shown_and_removed_through_the_other(
    pair: Pair, sim: PveSimulator
) -> None:
    name = unique("Shared")

    created = pair.a.register(password_fields(sim, name))

    assert created.status_code == 201, created.text
    cluster = created.json()
    assert cluster["status"] == "healthy" and cluster["node_count"] == 3
    assert cluster in pair.b.clusters()
    shown = pair.b.call("GET", f"/api/v1/clusters/{cluster['id']}")
    assert shown.status_code == 200 and shown.json() == cluster

    removed = pair.b.call("DELETE", f"/api/v1/clusters/{cluster['id']}")

    assert removed.status_code == 204
    assert pair.a.call("GET", f"/api/v1/clusters/{cluster['id']}").status_code == 404
    assert name not in {c["name"] for c in pair.a.clusters()}


def test_concurrent_registrations_of_one_name_over_both_processes_store_exactly_one(
    pair: Pair, sim: PveSimulator
) -> None:
    name = unique("Race")
    spellings = [name, name.upper(), name.lower()]
    sim.configure(latency=RACE_LATENCY)
    start = threading.Barrier(RACERS)

    def register(index: int) -> tuple[str, requests.Response]:
        service, label = (pair.a, "a") if index % 2 else (pair.b, "b")
        fields = password_fields(sim, spellings[index % len(spellings)])
        start.wait(timeout=10)
        return label, service.register(fields)

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        outcomes = list(pool.map(register, range(RACERS)))

    statuses = sorted(response.status_code for _, response in outcomes)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for _, r in outcomes]
    for _, response in outcomes:
        if response.status_code == 409:
            assert response.json()["code"] == "Conflict"
    assert {label for label, r in outcomes if r.status_code == 409} == {"a", "b"}
    # Every racer logged in at "Proxmox": all passed the service's early
    # check, so it was the database's constraint that refused the 23.
    logins = [r for r in sim.requests if r.method == "POST" and r.path.endswith("/access/ticket")]
    assert len(logins) == RACERS
    stored = [c for c in pair.a.clusters() if c["name"].casefold() == name.casefold()]
    assert len(stored) == 1
    assert [c for c in pair.b.clusters() if c["name"].casefold() == name.casefold()] == stored


def test_everything_is_still_there_after_both_processes_restart(
    pair: Pair, sim: PveSimulator, other_simulator: PveSimulator, database_url: str
) -> None:
    by_password = pair.a.register(password_fields(sim, unique("Kept-Password")))
    by_token = pair.b.register(token_fields(other_simulator, unique("Kept-Token")))
    assert (by_password.status_code, by_token.status_code) == (201, 201), by_token.text
    before = pair.a.clusters()

    pair.restart()

    assert pair.a.clusters() == before
    assert pair.b.clusters() == before
    for cluster in (by_password.json(), by_token.json()):
        # The stored, encrypted secret still logs in after the restart.
        refreshed = pair.b.call("POST", f"/api/v1/clusters/{cluster['id']}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["status"] == "healthy"
    with psycopg.connect(database_url) as connection:
        table = repr(connection.execute("SELECT c::text FROM clusters_cluster c").fetchall())
    assert by_token.json()["name"] in table
    assert_secret_absent(sim.password, table, "the clusters table")
    assert_secret_absent(other_simulator.token_secret, table, "the clusters table")


def test_manage_py_clusters_reads_the_registry_the_servers_share(
    pair: Pair, sim: PveSimulator, environment: tuple[dict[str, str], str]
) -> None:
    name = unique("Seen-By-Cli")
    assert pair.b.register(password_fields(sim, name)).status_code == 201

    listed = manage(environment[0], "clusters", "list")

    assert name in listed


def test_no_secret_reached_either_process_log(
    pair: Pair, sim: PveSimulator, other_simulator: PveSimulator
) -> None:
    for server in pair.started:
        log = server.log()
        assert "POST /api/v1/clusters" in log or "GET /api/v1/clusters" in log
        for simulator in (sim, other_simulator):
            assert_secret_absent(simulator.password, log, "a server log")
            assert_secret_absent(simulator.token_secret, log, "a server log")
        assert_secret_absent(pair.token, log, "a server log")
