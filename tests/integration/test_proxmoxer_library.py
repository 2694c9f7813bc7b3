"""An outside witness: the ``proxmoxer`` library from PyPI (not this
project's client, and no top-level package of ours shares its name) talks
to the simulator as it talks to real PVE: password and token logins, the
hourly ticket renewal, and a write with the CSRF token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from pve_simulator.certificates import ca_signed_certificate
from pve_simulator.server import PveSimulator


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("proxmoxer") / "ca.pem"


@pytest.fixture(scope="module")
def sim(ca_file) -> Iterator[PveSimulator]:
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    ca_file.write_bytes(certificate.ca_pem)
    with PveSimulator(
        hosts=["127.0.0.1"], certificate=certificate, auth_failure_delay=0.2
    ) as simulator:
        yield simulator


def api(sim: PveSimulator, ca_file: Path, **credentials: str) -> ProxmoxAPI:
    return ProxmoxAPI(
        "127.0.0.1", port=sim.port, verify_ssl=str(ca_file), timeout=10, **credentials
    )


def test_password_login_and_reads(sim, ca_file):
    proxmox = api(sim, ca_file, user=sim.username, password=sim.password)
    assert proxmox.version.get()["version"] == "8.2.4"
    assert [node["node"] for node in proxmox.nodes.get()] == ["pve1", "pve2", "pve3"]
    assert proxmox.cluster.status.get()[0]["name"] == "sim"


def test_token_login(sim, ca_file):
    user, name = sim.token_id.split("!")
    proxmox = api(sim, ca_file, user=user, token_name=name, token_value=sim.token_secret)
    assert proxmox.version.get()["release"] == "8.2"
    assert {entry.auth for entry in sim.requests[-1:]} == {"token"}


def test_ticket_renewal_before_a_short_ticket_lifetime_runs_out(sim, ca_file):
    sim.configure(ticket_lifetime=4)
    try:
        proxmox = api(sim, ca_file, user=sim.username, password=sim.password)
        auth = proxmox._store["session"].auth
        auth.renew_age = 1  # renew after a second instead of an hour
        first = auth.pve_auth_ticket
        sim.clear_requests()
        time.sleep(2.2)  # older than renew_age (and than a second: a new timestamp)
        assert proxmox.version.get()["version"] == "8.2.4"
        renewal = [r for r in sim.requests if r.method == "POST"]
        assert [(r.path, r.status) for r in renewal] == [("/api2/json/access/ticket", 200)]
        assert auth.pve_auth_ticket != first
        time.sleep(2.5)  # past the first ticket's lifetime: only the renewed one works
        with pytest.raises(ResourceException) as refused:
            api_with_ticket(sim, ca_file, first).version.get()
        assert refused.value.status_code == 401
    finally:
        sim.configure(ticket_lifetime=7200)


def api_with_ticket(sim: PveSimulator, ca_file: Path, ticket: str) -> ProxmoxAPI:
    proxmox = api(sim, ca_file, user=sim.username, password=sim.password)
    auth = proxmox._store["session"].auth
    auth.pve_auth_ticket = ticket
    return proxmox


def test_a_write_with_the_csrf_token_creates_and_removes_a_token(sim, ca_file):
    proxmox = api(sim, ca_file, user=sim.username, password=sim.password)
    created = proxmox.access.users(sim.username).token("witness").post(privsep=1)
    try:
        assert created["full-tokenid"] == f"{sim.username}!witness"
        assert sim.requests[-1].csrf_header
        assert f"{sim.username}!witness" in sim.tokens
        user, name = created["full-tokenid"].split("!")
        fresh = api(sim, ca_file, user=user, token_name=name, token_value=created["value"])
        assert fresh.version.get()["version"] == "8.2.4"
        with pytest.raises(ResourceException) as forbidden:
            fresh.cluster.status.get()  # privilege-separated, no ACL yet
        assert forbidden.value.status_code == 403
    finally:
        proxmox.access.users(sim.username).token("witness").delete()
    assert sim.tokens == [sim.token_id]
