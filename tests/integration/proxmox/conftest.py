"""What the Proxmox client's integration tests share: requests-mock with a
client (its fingerprint fetcher a fake), and PVE simulators serving real
HTTPS on loopback, one of each kind for the whole package (helpers for them:
simulated.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests_mock

from clusters.domain import ConnectionTarget, PasswordCredentials, Secret, TokenCredentials
from clusters.proxmox import ProxmoxClient
from pve_simulator.certificates import ca_signed_certificate
from pve_simulator.server import PveSimulator
from tests import pve_responses as pve

PASSWORD = "Pa55-client-secret-7d1e"
TOKEN_SECRET = "8d9e3a70-1f1b-4c4e-9a51-client-token"
PASSWORD_LOGIN = PasswordCredentials("root@pam", Secret(PASSWORD))
TOKEN_LOGIN = TokenCredentials("root@pam!proxmoxer", Secret(TOKEN_SECRET))
TARGET = ConnectionTarget(pve.ENDPOINT)
OBSERVED = ":".join(["3F"] * 32)


@pytest.fixture
def client() -> ProxmoxClient:
    return ProxmoxClient(
        connect_timeout=2,
        read_timeout=3,
        fingerprint_fetcher=lambda host, port, timeout: OBSERVED,
    )


@pytest.fixture
def m() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as mocker:
        yield mocker


@pytest.fixture(scope="package")
def self_signed() -> Iterator[PveSimulator]:
    with PveSimulator(auth_failure_delay=0.2, slow_delay=10, trickle_interval=0.2) as simulator:
        yield simulator


@pytest.fixture(scope="package")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PveSimulator, Path]]:
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_file.write_bytes(certificate.ca_pem)
    with PveSimulator(certificate=certificate, auth_failure_delay=0.2) as simulator:
        yield simulator, ca_file


@pytest.fixture
def sim(self_signed: PveSimulator) -> Iterator[PveSimulator]:
    self_signed.configure(scenario="healthy", latency=0)
    self_signed.clear_requests()
    yield self_signed
    self_signed.configure(scenario="healthy", latency=0)
