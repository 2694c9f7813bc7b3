"""Production serving as an operator runs it: ``make serve`` (migrate,
collectstatic, gunicorn workers on the database backend) behind a proxy
that ends TLS, and ``manage.py check --deploy`` clean under production
settings. Clients that trickle or stall their bodies starve nothing, chunked
bodies are read, oversized ones refused before they are read
(proxmoxer_site/serving.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.servers import (
    PROJECT_DIR,
    PYTHON,
    ServerProcess,
    free_port,
    manage,
    prepare_database,
    service_environment,
)

pytestmark = pytest.mark.e2e

WORKERS = 2
THREADS = 2
FROM_PROXY = {"X-Forwarded-Proto": "https"}
METRICS_TOKEN = "e2e-metrics-token-3c2b1a"
BODY_TIMEOUT = 5  # seconds a request body may take (PROXMOXER_REQUEST_BODY_TIMEOUT)
SLOW_CLIENTS = 32


class MakeServe(ServerProcess):
    """``make serve`` in its own process group: make does not pass a
    SIGTERM on to gunicorn, so the whole group is stopped."""

    def start(self) -> MakeServe:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                cwd=PROJECT_DIR,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_healthy()
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        for sig, patience in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + patience
            while time.monotonic() < deadline:
                self.process.poll()  # reap make, or the group never empties
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def _production_environment(workdir: Path, **overrides: str) -> dict[str, str]:
    env = service_environment(f"sqlite:///{workdir / 'db.sqlite3'}", **overrides)
    # The production default: plain HTTP is redirected; the proxy says https.
    env.pop("DJANGO_SECURE_SSL_REDIRECT")
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MakeServe, str]]:
    if not (PROJECT_DIR / ".venv" / ".installed").exists():
        pytest.skip("make serve runs from the project's .venv, which make test creates")
    workdir = tmp_path_factory.mktemp("serve")
    env = _production_environment(
        workdir,
        PROXMOXER_REQUEST_BODY_TIMEOUT=str(BODY_TIMEOUT),
        PROXMOXER_METRICS_TOKEN=METRICS_TOKEN,
    )
    token = prepare_database(env)
    # A cluster written straight into the database, for the served API to find.
    manage(
        env,
        "shell",
        "-c",
        "from tests.cluster_samples import make_cluster; "
        "from tests.units_of_work import in_database; "
        "in_database().add(make_cluster('Stored-Before-Start'))",
    )
    port = free_port()
    command = ["make", "serve", f"PORT={port}", f"WORKERS={WORKERS}", f"THREADS={THREADS}",
               f"PROMETHEUS_MULTIPROC_DIR={workdir / 'metrics'}"]  # fmt: skip
    server = MakeServe(command, env, f"http://127.0.0.1:{port}", workdir / "serve.log").start()
    yield server, token
    server.stop()


def test_make_serve_runs_several_asyncio_gunicorn_workers(served: tuple[MakeServe, str]) -> None:
    server, _ = served
    log = server.log()

    assert "Using worker: asgi" in log
    assert log.count("Booting worker with pid") == WORKERS


def test_make_serve_lists_what_the_database_holds(served: tuple[MakeServe, str]) -> None:
    server, token = served

    response = requests.get(
        f"{server.base_url}/api/v1/clusters",
        headers={**FROM_PROXY, "Authorization": f"Token {token}"},
        timeout=5,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert body["clusters"][0]["name"] == "Stored-Before-Start"
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


def test_make_serve_collected_the_static_files(served: tuple[MakeServe, str]) -> None:
    server, _ = served

    response = requests.get(
        f"{server.base_url}/static/rest_framework/css/bootstrap.min.css",
        headers=FROM_PROXY,
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")


def test_make_serve_redirects_plain_http_to_https_except_health(
    served: tuple[MakeServe, str],
) -> None:
    server, _ = served

    api = requests.get(f"{server.base_url}/api/v1/clusters", allow_redirects=False, timeout=5)
    health = requests.get(f"{server.base_url}/health", allow_redirects=False, timeout=5)

    assert api.status_code == 301
    assert api.headers["Location"].startswith("https://127.0.0.1")
    assert health.status_code == 200


def _scrape(server: MakeServe) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(
        f"{server.base_url}/metrics",
        headers={**FROM_PROXY, "Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_make_serve_metrics_sum_every_worker(served: tuple[MakeServe, str]) -> None:
    """Whichever worker answers a scrape, it counts the requests all of them
    served, and shows the clusters the database holds."""
    server, token = served
    listed = (("method", "HEAD"), ("status", "200"), ("view", "cluster-list"))
    requests_made = 24
    for _ in range(requests_made):
        response = requests.head(
            f"{server.base_url}/api/v1/clusters",
            headers={**FROM_PROXY, "Authorization": f"Token {token}"},
            timeout=5,
        )
        assert response.status_code == 200

    scrapes = [_scrape(server) for _ in range(6)]

    for found in scrapes:
        assert found[("proxmoxer_http_requests_total", listed)] == requests_made
        assert found[("proxmoxer_clusters", (("status", "healthy"),))] == 1
        assert found[("proxmoxer_cluster_up", (("cluster", "Stored-Before-Start"),))] == 1
    # Each worker kept its own counts in the directory make serve emptied.
    worker_files = {path.name for path in (server.log_path.parent / "metrics").iterdir()}
    assert (
        len({name.rsplit("_", 1)[-1] for name in worker_files if name.startswith("counter_")})
        == WORKERS
    )


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy_is_clean_under_production_settings(tmp_path: Path) -> None:
    result = _check_deploy(_production_environment(tmp_path, CLUSTER_REPOSITORY="django"))

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_about_the_memory_backend_in_production(tmp_path: Path) -> None:
    result = _check_deploy(_production_environment(tmp_path, CLUSTER_REPOSITORY="memory"))

    assert result.returncode != 0
    assert "(clusters.W001) The in-memory cluster repository is per process" in result.stderr


# -- slow clients, bodies --------------------------------------------------------------------


def _port(server: MakeServe) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def _stalled_post(port: int, declared: int = 1000, sent: bytes = b'{"name": "sl') -> socket.socket:
    """A POST that announces ``declared`` body bytes and sends fewer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /api/v1/clusters HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
        + f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return sock


def test_slow_bodies_do_not_starve_the_service(served: tuple[MakeServe, str]) -> None:
    """32 clients announce 1,000-byte bodies and then stall or trickle a
    byte at a time (8 such clients starved gunicorn's threaded workers):
    /health and the API still answer, each within a second."""
    server, token = served
    slow = [_stalled_post(_port(server)) for _ in range(SLOW_CLIENTS)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):
            for sock in slow[: SLOW_CLIENTS // 2]:
                sock.sendall(b" ")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(0.5)  # every slow client is connected and waiting on its body
        answers = [requests.get(f"{server.base_url}/health", timeout=1.0) for _ in range(10)] + [
            requests.get(
                f"{server.base_url}/api/v1/clusters",
                headers={**FROM_PROXY, "Authorization": f"Token {token}"},
                timeout=1.0,
            )
            for _ in range(5)
        ]
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()

    assert [answer.status_code for answer in answers] == [200] * 15


def test_a_body_that_does_not_arrive_in_time_is_408(served: tuple[MakeServe, str]) -> None:
    server, _ = served
    with _stalled_post(_port(server), declared=100) as sock:
        sock.settimeout(BODY_TIMEOUT + 10)
        answer = sock.recv(65536).decode()

    assert answer.startswith("HTTP/1.1 408")
    assert '"code": "RequestTimeout"' in answer or '"code":"RequestTimeout"' in answer


def test_a_chunked_body_is_read_whole(served: tuple[MakeServe, str]) -> None:
    server, token = served
    document = json.dumps({"name": "chunked-body", "api_endpoint": "http://pve1"}).encode()

    response = requests.post(
        f"{server.base_url}/api/v1/clusters",
        data=iter([document[:10], document[10:]]),  # a generator: sent chunked
        headers={
            **FROM_PROXY,
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 400
    # The name arrived: what is refused is the endpoint, not a missing name.
    assert response.json()["details"] == {
        "api_endpoint": [
            "API endpoint must use https:// (got http://); Proxmox VE serves its "
            "API over HTTPS on port 8006"
        ],
        "non_field_errors": [
            "Credentials are required: username and password, or token_id and token_secret"
        ],
    }


def test_an_oversized_body_is_413_declared_or_sent(served: tuple[MakeServe, str]) -> None:
    server, token = served
    headers = {**FROM_PROXY, "Authorization": f"Token {token}"}

    with _stalled_post(_port(server), declared=10**9, sent=b"") as sock:
        declared = sock.recv(65536).decode()
    sent = requests.post(
        f"{server.base_url}/api/v1/clusters",
        data=iter([b"x" * 40_000, b"x" * 40_000]),  # chunked: no length to refuse up front
        headers={**headers, "Content-Type": "application/json"},
        timeout=10,
    )

    assert declared.startswith("HTTP/1.1 413")
    assert sent.status_code == 413
    assert sent.json()["message"] == "Request body too large: the limit is 65536 bytes"
