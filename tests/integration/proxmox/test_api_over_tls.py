"""The PVE API layer (clusters/proxmox/api.py) through ProxmoxClient against
the PVE simulator over real HTTPS on loopback: how tickets and tokens
authenticate, PVE's reasons for a refusal, the second factor."""

from __future__ import annotations

import pytest

from clusters.domain import (
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxSecondFactorRequired,
    Secret,
)
from tests.integration.proxmox.simulated import assert_no_secret, client, password, pinned, token


def test_token_login_makes_no_ticket_call_and_sends_no_csrf_header(sim):
    client().inspect(pinned(sim), token(sim))
    assert sorted(r.path for r in sim.requests) == [
        "/api2/json/cluster/status",
        "/api2/json/nodes",
        "/api2/json/version",
    ]
    assert {(r.auth, r.csrf_header) for r in sim.requests} == {("token", False)}


def test_password_login_uses_the_ticket_for_every_read(sim):
    client().inspect(pinned(sim), password(sim))
    logins = [r for r in sim.requests if r.method == "POST"]
    reads = [r for r in sim.requests if r.path != "/api2/json/access/ticket"]
    assert [(r.path, r.status) for r in logins] == [("/api2/json/access/ticket", 200)]
    assert sorted((r.path, r.auth) for r in reads) == [
        ("/api2/json/cluster/status", "ticket"),
        ("/api2/json/nodes", "ticket"),
        ("/api2/json/version", "ticket"),
    ]


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        (lambda sim: PasswordCredentials(sim.username, Secret("wrong")), "authentication failure"),
        (lambda sim: token(sim, "00000000-0000-0000-0000-000000000000"), "invalid token value!"),
    ],
)
def test_refused_credentials_carry_pves_reason(sim, credentials, reason):
    with pytest.raises(ProxmoxAuthenticationFailed) as raised:
        client().inspect(pinned(sim), credentials(sim))
    assert raised.value.message.endswith(f"({reason})")
    assert_no_secret(sim, raised.value)


def test_second_factor_is_refused_and_a_token_still_works(sim):
    sim.set_scenario("second-factor")
    with pytest.raises(ProxmoxSecondFactorRequired) as raised:
        client().inspect(pinned(sim), password(sim))
    assert "API token" in raised.value.message
    assert_no_secret(sim, raised.value)
    assert client().inspect(pinned(sim), token(sim)).version == "8.2.4"
