"""Helpers for the tests against the PVE simulator (fixtures: conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.domain import ConnectionTarget, PasswordCredentials, Secret, TokenCredentials
from clusters.proxmox import ProxmoxClient
from pve_simulator.server import PveSimulator, ipv6_available
from tests.conftest import assert_secret_absent

READ_TIMEOUT = 1.0
# verify_tls=false on purpose: urllib3's warning about it is expected there.
UNVERIFIED = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="this machine has no IPv6 loopback")


def client(**kwargs: Any) -> ProxmoxClient:
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", READ_TIMEOUT)
    return ProxmoxClient(**kwargs)


def password(sim: PveSimulator) -> PasswordCredentials:
    return PasswordCredentials(sim.username, Secret(sim.password))


def token(sim: PveSimulator, secret: str | None = None) -> TokenCredentials:
    return TokenCredentials(sim.token_id, Secret(secret or sim.token_secret))


def pinned(sim: PveSimulator, host: str = "127.0.0.1") -> ConnectionTarget:
    return ConnectionTarget(sim.url_for(host), True, sim.fingerprint)


def assert_no_secret(sim: PveSimulator, error: Exception) -> None:
    text = f"{error} {error!r} {getattr(error, 'details', '')}"
    for secret in (sim.password, sim.token_secret, *sim.issued_tickets):
        assert_secret_absent(secret, text, "the error")
