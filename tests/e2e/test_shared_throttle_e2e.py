"""The API throttle counts across processes when CACHE_URL names a shared
Redis (docs/product-contract.md §13): two service processes with a rate of
20 a minute let 20 requests through between them, not 20 each. (Measured
before: with each process counting in its own memory, 40 of 40 passed.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import redis_server
from tests.e2e.servers import ServerProcess, prepare_database, runserver, service_environment

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

RATE = 20


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Iterator[tuple[list[ServerProcess], str]]:
    workdir = Path(tmp_path_factory.mktemp("throttle"))
    env = service_environment(
        f"sqlite:///{workdir / 'db.sqlite3'}",
        CACHE_URL=redis_server.cache_url(),
        API_THROTTLE_RATE=f"{RATE}/minute",
    )
    token = prepare_database(env)
    servers = [runserver(env, workdir / f"service-{n}.log") for n in (1, 2)]
    try:
        yield servers, token
    finally:
        for server in servers:
            server.stop()


def test_two_processes_share_one_throttle_count(two_processes):
    servers, token = two_processes
    statuses: dict[str, list[int]] = {server.base_url: [] for server in servers}

    for n in range(2 * RATE):
        server = servers[n % 2]
        response = requests.get(
            f"{server.base_url}/api/v1/clusters",
            headers={"Authorization": f"Token {token}"},
            timeout=10,
        )
        statuses[server.base_url].append(response.status_code)
        if response.status_code == 429:
            assert response.json()["code"] == "TooManyRequests"
            assert int(response.headers["Retry-After"]) > 0

    answered = [status for per_process in statuses.values() for status in per_process]
    assert answered.count(200) == RATE
    assert answered.count(429) == RATE
    # Both processes served and both refused: the count is one, not two.
    for per_process in statuses.values():
        assert 200 in per_process and 429 in per_process
