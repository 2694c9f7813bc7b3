"""A real database outage, end to end: the service process talks to
PostgreSQL through a loopback port (tests/e2e/tcp_proxy.py) that the test
closes, blackholes and reopens, and a table it locks past a shortened
statement timeout. Every API request answers 503 + Retry-After in the
envelope while the database cannot serve it, /health stays 200,
/health/ready turns 503, and the service recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests import postgres
from tests.e2e.servers import ServerProcess, prepare_database, runserver, service_environment
from tests.e2e.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Shortened so the test waits a second, not the production five and ten.
CONNECT_TIMEOUT = "1"
STATEMENT_TIMEOUT = "1"
# Bounds what "answers" means: far above both timeouts, far below a hang.
PATIENCE = 20


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> Iterator[tuple[ServerProcess, TcpProxy, str, str]]:
    config = postgres.settings_dict()
    with postgres.fresh_database("proxmoxer_faults") as direct_url:
        proxy = TcpProxy(int(config["PORT"] or 5432), host=config["HOST"] or "127.0.0.1")
        proxy.forward()
        name = postgres.settings_dict(direct_url)["NAME"]
        through_proxy = f"postgres://{config['USER']}@{proxy.host}:{proxy.port}/{name}"
        env = service_environment(
            through_proxy,
            CLUSTER_REPOSITORY="django",
            DATABASE_CONNECT_TIMEOUT=CONNECT_TIMEOUT,
            DATABASE_STATEMENT_TIMEOUT=STATEMENT_TIMEOUT,
        )
        token = prepare_database(env)
        log = Path(tmp_path_factory.mktemp("faults")) / "service.log"
        server = runserver(env, log)
        try:
            yield server, proxy, token, direct_url
        finally:
            server.stop()
            proxy.close()


def get(server: ServerProcess, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return requests.get(f"{server.base_url}{path}", headers=headers, timeout=PATIENCE)


def assert_service_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["code"] == "ServiceUnavailable"
    assert body["details"] == {"retry_after": 5}


def test_an_outage_is_503_health_stays_up_readiness_goes_down_and_it_recovers(outage):
    server, proxy, token, _ = outage
    assert get(server, "/api/v1/clusters", token).status_code == 200
    assert get(server, "/health/ready").json() == {"status": "ready", "checks": {"database": "ok"}}

    proxy.close()  # connection refused, and open connections cut
    assert_service_unavailable(get(server, "/api/v1/clusters", token))
    assert_service_unavailable(
        get(server, "/api/v1/clusters/12345678-1234-1234-1234-123456789012", token)
    )
    assert get(server, "/health").json() == {"status": "healthy"}
    ready = get(server, "/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "checks": {"database": "unreachable or too slow"},
    }

    proxy.blackhole()  # accepted, never answered: the connect timeout ends it
    assert_service_unavailable(get(server, "/api/v1/clusters", token))
    assert get(server, "/health").status_code == 200

    proxy.forward()  # back: no restart, no operator
    assert get(server, "/api/v1/clusters", token).status_code == 200
    assert get(server, "/health/ready").status_code == 200
    assert "Database unavailable, error=OperationalError" in server.log()


def test_a_statement_past_the_statement_timeout_is_503_and_the_next_one_works(outage):
    server, proxy, token, direct_url = outage
    proxy.forward()
    config = postgres.settings_dict(direct_url)
    with psycopg.connect(
        host=config["HOST"], port=config["PORT"], user=config["USER"], dbname=config["NAME"]
    ) as blocker:
        # Held until the block ends: the service's read waits on it.
        blocker.execute("LOCK TABLE clusters_cluster IN ACCESS EXCLUSIVE MODE")
        assert_service_unavailable(get(server, "/api/v1/clusters", token))
        blocker.rollback()

    assert get(server, "/api/v1/clusters", token).status_code == 200
    assert "canceling statement due to statement timeout" in server.log()
