"""What the Proxmox client's unit tests share: requests-mock, the
credentials, a sequential client (one call after the other, so the order of
calls is fixed), a transport to make single calls on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock

from clusters.domain import ConnectionTarget, PasswordCredentials, Secret, TokenCredentials
from clusters.proxmox import ProxmoxClient
from clusters.proxmox.network_policy import NetworkPolicy
from clusters.proxmox.transport import DEFAULT_MAX_RESPONSE_BYTES, Transport
from tests import pve_responses as pve

PASSWORD = "correct horse battery staple"
TOKEN_SECRET = "5c1b7e0e-3f57-4c43-a7a4-2a8a1b7f5d11"
TARGET = ConnectionTarget(pve.ENDPOINT)
LOGIN_PATH = "/api2/json/access/ticket"
PASSWORD_CREDENTIALS = PasswordCredentials("root@pam", Secret(PASSWORD))
TOKEN_CREDENTIALS = TokenCredentials("root@pam!proxmoxer", Secret(TOKEN_SECRET))


@pytest.fixture
def m() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as mocker:
        yield mocker


@pytest.fixture
def transport() -> Transport:
    return Transport(
        connect_timeout=5.0,
        read_timeout=10.0,
        ca_bundle=None,
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
        fingerprint_fetcher=lambda host, port, timeout: None,
        network_policy=NetworkPolicy(),
    )


def client(**kwargs: Any) -> ProxmoxClient:
    return ProxmoxClient(parallel=False, **kwargs)


def messages(error: Exception) -> str:
    return f"{error} {error!r} {getattr(error, 'details', '')}"
