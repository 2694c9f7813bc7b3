"""Fixtures of the end-to-end suite: the service as a real process, PVE
simulators on loopback, and an API client that checks every answer.

One service process and one simulator serve the whole session; tests switch
the simulator's scenario instead of restarting anything, and give their
clusters unique names instead of relying on an empty registry. The service
runs with REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE pointing at a CA that would
trust the CA-signed simulator, so every test also proves those variables
change nothing.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pve_simulator.certificates import ca_signed_certificate
from pve_simulator.server import PveSimulator
from tests.conftest import assert_secret_absent
from tests.e2e.servers import ServerProcess, prepare_database, runserver, service_environment

# Short enough to keep the suite fast, long enough for a loaded CI machine.
READ_TIMEOUT = 2.0
AUTH_FAILURE_DELAY = 0.3  # PVE waits ~3 s before every 401; the behaviour, not the wait, matters


class Secrets:
    """Every secret the suite hands out or the simulators issue."""

    def __init__(self) -> None:
        self._static: list[str] = []
        self._simulators: list[PveSimulator] = []

    def add(self, *values: str) -> None:
        self._static.extend(values)

    def watch(self, simulator: PveSimulator) -> PveSimulator:
        self._simulators.append(simulator)
        return simulator

    def all(self) -> list[str]:
        values = list(self._static)
        for simulator in self._simulators:
            values += [simulator.password, simulator.token_secret, *simulator.issued_tickets]
        return values

    def assert_absent(self, text: str | bytes, where: str) -> None:
        for secret in self.all():
            assert_secret_absent(secret, text, where)


class Registry:
    """The service's REST API, as an operator's client calls it."""

    def __init__(self, server: ServerProcess, token: str, secrets: Secrets) -> None:
        self.server = server
        self.base_url = server.base_url
        self.secrets = secrets
        self._token = token
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy between the suite and its loopback service

    def call(
        self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if authenticated:
            headers["Authorization"] = f"Token {self._token}"
        response = self.http.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs
        )
        self.secrets.assert_absent(response.content, f"the answer to {method} {path}")
        return response

    def register(self, **fields: Any) -> requests.Response:
        return self.call("POST", "/api/v1/clusters", json=fields)

    def get(self, cluster_id: str) -> requests.Response:
        return self.call("GET", f"/api/v1/clusters/{cluster_id}")

    def refresh(self, cluster_id: str) -> requests.Response:
        return self.call("POST", f"/api/v1/clusters/{cluster_id}/refresh")

    def delete(self, cluster_id: str) -> requests.Response:
        return self.call("DELETE", f"/api/v1/clusters/{cluster_id}")

    def clusters(self) -> list[dict[str, Any]]:
        """Every registered cluster (the suite keeps far fewer than a page of 1000)."""
        return self.call("GET", "/api/v1/clusters", params={"limit": 1000}).json()["clusters"]

    def names(self) -> set[str]:
        return {cluster["name"] for cluster in self.clusters()}

    def assert_not_registered(self, name: str) -> None:
        assert name not in self.names(), f"{name} was stored after a failed registration"


def password_fields(simulator: PveSimulator, **fields: Any) -> dict[str, Any]:
    return {"username": simulator.username, "password": simulator.password, **fields}


def token_fields(simulator: PveSimulator, **fields: Any) -> dict[str, Any]:
    return {"token_id": simulator.token_id, "token_secret": simulator.token_secret, **fields}


def pinned(simulator: PveSimulator, host: str = "127.0.0.1", **fields: Any) -> dict[str, Any]:
    """Endpoint and pin of a simulator, the way an operator registers a PVE node."""
    return {"api_endpoint": simulator.url_for(host), "fingerprint": simulator.fingerprint, **fields}


def api_requests(simulator: PveSimulator) -> list[str]:
    return [entry.path for entry in simulator.requests if entry.path.startswith("/api2/")]


# -- session-wide processes ------------------------------------------------------------------


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-pve")


@pytest.fixture(scope="session")
def simulator_session(secrets) -> Iterator[PveSimulator]:
    """The self-signed simulator most tests share."""
    simulator = PveSimulator(auth_failure_delay=AUTH_FAILURE_DELAY, trickle_interval=0.5)
    with secrets.watch(simulator):
        yield simulator


@pytest.fixture(scope="session")
def ca_simulator(secrets, e2e_dir) -> Iterator[tuple[PveSimulator, Path]]:
    """A simulator whose certificate a generated private CA signed, and that CA's PEM."""
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    ca_file = e2e_dir / "simulator-ca.pem"
    ca_file.write_bytes(certificate.ca_pem)
    simulator = PveSimulator(certificate=certificate, auth_failure_delay=AUTH_FAILURE_DELAY)
    with secrets.watch(simulator):
        yield simulator, ca_file


@pytest.fixture(scope="session")
def service_env(e2e_dir) -> dict[str, str]:
    env = service_environment(
        f"sqlite:///{e2e_dir / 'db.sqlite3'}",
        PROXMOX_CONNECT_TIMEOUT="2",
        PROXMOX_READ_TIMEOUT=str(READ_TIMEOUT),
        API_THROTTLE_RATE="100000/minute",
    )
    env["E2E_OPERATOR_TOKEN"] = prepare_database(env)
    return env


def start_service(
    service_env: dict[str, str], log_path: Path, secrets: Secrets, **overrides: str
) -> Registry:
    env = {**service_env, **overrides}
    token = env.pop("E2E_OPERATOR_TOKEN")
    secrets.add(token)
    return Registry(runserver(env, log_path), token, secrets)


@pytest.fixture(scope="session")
def registry_session(service_env, ca_simulator, e2e_dir, secrets) -> Iterator[Registry]:
    _, ca_file = ca_simulator
    registry = start_service(
        service_env,
        e2e_dir / "service.log",
        secrets,
        REQUESTS_CA_BUNDLE=str(ca_file),
        CURL_CA_BUNDLE=str(ca_file),
    )
    yield registry
    registry.server.stop()


# -- per test -----------------------------------------------------------------------------------


@pytest.fixture
def sim(simulator_session) -> Iterator[PveSimulator]:
    """The shared simulator, back to a healthy cluster with its own credentials."""
    password, token_secret = simulator_session.password, simulator_session.token_secret
    simulator_session.configure(scenario="healthy", latency=0)
    simulator_session.clear_requests()
    yield simulator_session
    simulator_session.configure(
        scenario="healthy", latency=0, password=password, token_secret=token_secret
    )


@contextlib.contextmanager
def tidied(registry: Registry) -> Iterator[Registry]:
    """``registry`` for one test: what the test registered is deregistered
    after it, and the service's log of the test must hold no secret.

    A PVE cluster is registered once (docs/product-contract.md §10), and
    every simulator of the suite is cluster ``sim`` of nodes pve1 to pve3
    unless told otherwise: a cluster one test left behind would make the
    next one's registration a 409.
    """
    log_size = len(registry.server.log())
    before = {cluster["id"] for cluster in registry.clusters()}
    yield registry
    for cluster in registry.clusters():
        if cluster["id"] not in before:
            registry.delete(cluster["id"])
    registry.secrets.assert_absent(registry.server.log()[log_size:], "the service log")


@pytest.fixture
def registry(registry_session) -> Iterator[Registry]:
    """The session's service, tidied after each test."""
    with tidied(registry_session) as registry:
        yield registry


@pytest.fixture
def name(request) -> str:
    """A cluster name no other test uses."""
    return f"e2e-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


def timed(action: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = action()
    return response, time.monotonic() - started
