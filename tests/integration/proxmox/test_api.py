"""The PVE API layer (clusters/proxmox/api.py) through ProxmoxClient against
requests-mock answering as real PVE does (docs/product-contract.md §5)."""

from __future__ import annotations

from tests import pve_responses as pve
from tests.integration.proxmox.conftest import PASSWORD, PASSWORD_LOGIN, TARGET


def test_password_login_posts_form_fields_and_sends_the_ticket_as_a_cookie(client, m):
    pve.healthy_cluster(m)

    report = client.inspect(TARGET, PASSWORD_LOGIN)

    calls = pve.api_calls(m)
    login = calls[0]
    assert login.method == "POST"
    assert login.url == f"{pve.API}/access/ticket"
    assert login.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sorted(login.body.split("&")) == sorted(["username=root%40pam", f"password={PASSWORD}"])
    for call in calls[1:]:
        assert call.method == "GET"
        assert call.headers["Cookie"] == f"PVEAuthCookie={pve.TICKET}"
        assert "Authorization" not in call.headers, (
            "a ticket in a PVEAPIToken header is rejected by PVE (docs/product-contract.md §5)"
        )
        assert "CSRFPreventionToken" not in call.headers, "GETs need no CSRF token"
    assert report.version == "8.2.4"
    assert [entry.type for entry in report.cluster_status] == ["cluster", "node", "node", "node"]
