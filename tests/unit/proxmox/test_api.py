"""The PVE API layer (clusters/proxmox/api.py): how each kind of credentials
authenticates, the second factor, and PveSession on a transport connection,
against requests-mock with real PVE shapes."""

from __future__ import annotations

import pytest

from clusters.domain import ProxmoxSecondFactorRequired
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.unit.proxmox.conftest import (
    PASSWORD,
    PASSWORD_CREDENTIALS,
    TARGET,
    TOKEN_CREDENTIALS,
    TOKEN_SECRET,
    client,
    messages,
)


# -- API tokens ------------------------------------------------------------------------


def test_token_is_sent_as_pveapitoken_header_without_a_ticket_call(m):
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    report = client().inspect(TARGET, TOKEN_CREDENTIALS)
    assert report.version == "8.2.4"
    assert sorted(request.path for request in m.request_history) == [
        "/api2/json/cluster/status",
        "/api2/json/version",
    ]
    for request in m.request_history:
        assert request.headers["Authorization"] == f"PVEAPIToken=root@pam!proxmoxer={TOKEN_SECRET}"
        assert "Cookie" not in request.headers
        assert "CSRFPreventionToken" not in request.headers


# -- second factor ---------------------------------------------------------------------


def test_need_tfa_is_a_second_factor_error_suggesting_a_token(m):
    pve.login_needs_tfa(m)
    with pytest.raises(ProxmoxSecondFactorRequired) as raised:
        client().inspect(TARGET, PASSWORD_CREDENTIALS)
    assert "second factor" in raised.value.message
    assert "API token" in raised.value.message
    assert len(m.request_history) == 1  # the half-ticket is never used
    assert_secret_absent(PASSWORD, messages(raised.value), "the error")


def test_a_tfa_ticket_without_need_tfa_is_a_second_factor_error_too(m):
    data = {"username": "root@pam", "ticket": "PVE:!tfa!root@pam:6745A1B2::c2ln", "cap": {}}
    m.post(f"{pve.API}/access/ticket", json={"data": data})
    with pytest.raises(ProxmoxSecondFactorRequired):
        client().inspect(TARGET, PASSWORD_CREDENTIALS)
