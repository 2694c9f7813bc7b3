"""Editing, renewing trust and the token hand-off through the real service
process, against the PVE simulator over real HTTPS (docs/product-contract.md
§9): a rotated password, a replaced certificate, a token made, used and
removed again, a reverse proxy under a path prefix, and an implied port 443
where nothing listens."""

from __future__ import annotations

import contextlib
import socket

import pytest

from pve_simulator.certificates import self_signed_certificate
from pve_simulator.proxy import ReverseProxy
from pve_simulator.server import PveSimulator
from tests.e2e.conftest import api_requests, password_fields, pinned, token_fields

pytestmark = pytest.mark.e2e


def patch(registry, cluster_id, body, **headers):
    return registry.call("PATCH", f"/api/v1/clusters/{cluster_id}", json=body, headers=headers)


def test_a_rotated_password_is_patched_in_and_the_cluster_recovers(registry, sim, secrets, name):
    created = registry.register(name=name, **pinned(sim), **password_fields(sim))
    assert created.status_code == 201, created.text
    cluster = created.json()

    secrets.add("Rotated-Pa55-e2e-41c9")
    sim.configure(password="Rotated-Pa55-e2e-41c9")  # an operator changed it on the cluster
    stale = registry.refresh(cluster["id"])
    assert stale.json()["status"] == "unknown"
    assert "refused the credentials" in stale.json()["last_error"]

    wrong = patch(
        registry,
        cluster["id"],
        {"username": sim.username, "password": "Not-the-new-one-1"},
        **{"If-Match": stale.headers["ETag"]},
    )
    assert wrong.status_code == 401
    assert registry.get(cluster["id"]).json()["version"] == 1

    rotated = patch(
        registry,
        cluster["id"],
        {"username": sim.username, "password": "Rotated-Pa55-e2e-41c9"},
        **{"If-Match": stale.headers["ETag"]},
    )
    assert rotated.status_code == 200, rotated.text
    assert (rotated.json()["status"], rotated.json()["version"]) == ("healthy", 2)
    assert rotated.headers["ETag"] == '"2"'
    again = registry.refresh(cluster["id"]).json()
    assert (again["status"], again["last_error"]) == ("healthy", None)


def test_a_replaced_certificate_is_renewed_with_the_fingerprint_the_check_observed(
    registry, secrets, name
):
    original = secrets.watch(PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=0.1))
    with original:
        created = registry.register(name=name, **pinned(original), **token_fields(original))
    assert created.status_code == 201, created.text
    cluster_id = created.json()["id"]

    replacement = secrets.watch(
        PveSimulator(
            hosts=["127.0.0.1"],
            port=original.port,
            certificate=self_signed_certificate(("127.0.0.1",)),
            token_secret=original.token_secret,
            auth_failure_delay=0.1,
        )
    )
    with replacement:
        checked = registry.refresh(cluster_id)
        body = checked.json()
        assert body["status"] == "unhealthy"
        assert original.fingerprint in body["last_error"]
        assert replacement.fingerprint in body["last_error"]
        assert body["last_error_details"] == {"fingerprint": replacement.fingerprint}

        renewed = patch(
            registry,
            cluster_id,
            {"fingerprint": body["last_error_details"]["fingerprint"]},
            **{"If-Match": checked.headers["ETag"]},
        )
        assert renewed.status_code == 200, renewed.text
        assert (renewed.json()["status"], renewed.json()["fingerprint"]) == (
            "healthy",
            replacement.fingerprint,
        )
        assert renewed.json()["last_error_details"] is None
        assert registry.refresh(cluster_id).json()["status"] == "healthy"


def test_an_untrusted_registration_registers_with_the_fingerprint_it_was_shown(registry, sim, name):
    refused = registry.register(name=name, api_endpoint=sim.url, **password_fields(sim))
    assert refused.status_code == 502
    created = registry.register(
        name=name,
        api_endpoint=sim.url,
        fingerprint=refused.json()["details"]["fingerprint"],
        **password_fields(sim),
    )
    assert created.status_code == 201, created.text


def test_a_token_handed_off_to_is_used_and_deleted_again_on_deregistration(
    registry, sim, secrets, name
):
    before = set(sim.tokens)
    created = registry.register(name=name, create_token=True, **pinned(sim), **password_fields(sim))
    assert created.status_code == 201, created.text
    cluster = created.json()
    [token_id] = set(sim.tokens) - before
    secrets.add(sim.access.token(token_id).secret)
    assert (cluster["auth_method"], cluster["token_id"]) == ("token", token_id)
    assert token_id.startswith("root@pam!proxmoxer-")

    sim.clear_requests()
    assert registry.refresh(cluster["id"]).json()["status"] == "healthy"
    assert {entry.auth for entry in sim.requests if entry.path.startswith("/api2/")} == {"token"}

    removed = registry.call(
        "DELETE",
        f"/api/v1/clusters/{cluster['id']}",
        json={"username": sim.username, "password": sim.password},
    )
    assert removed.status_code == 204, removed.text
    assert set(sim.tokens) == before, "no token is left on the cluster"


def test_without_the_password_the_token_stays_and_the_cluster_is_still_deregistered(
    registry, sim, secrets, name
):
    before = set(sim.tokens)
    created = registry.register(name=name, create_token=True, **pinned(sim), **password_fields(sim))
    [token_id] = set(sim.tokens) - before
    secrets.add(sim.access.token(token_id).secret)

    removed = registry.delete(created.json()["id"])

    assert removed.status_code == 204
    assert registry.get(created.json()["id"]).status_code == 404
    assert token_id in sim.tokens, "PVE does not let a token delete itself"
    log = registry.server.log()
    assert f"Proxmox API token not deleted, cluster_id={created.json()['id']}" in log
    assert f"pveum user token remove root@pam {token_id.split('!')[1]}" in log


def test_an_account_without_permissions_modify_gets_403_and_leaves_no_token(registry, sim, name):
    before = set(sim.tokens)
    sim.configure(roles="PVEAuditor")
    try:
        response = registry.register(
            name=name, create_token=True, **pinned(sim), **password_fields(sim)
        )
    finally:
        sim.configure(roles="Administrator")
    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"
    assert "Permission check failed (/, Permissions.Modify)" in response.json()["message"]
    assert set(sim.tokens) == before
    registry.assert_not_registered(name)


def test_a_reverse_proxy_under_a_path_prefix_is_registered_and_checked_through_it(
    registry, sim, name
):
    with ReverseProxy(sim, prefix="/pve") as proxy:
        created = registry.register(
            name=name,
            api_endpoint=f"{proxy.url}/api2/json/",
            fingerprint=proxy.fingerprint,
            **token_fields(sim),
        )
        assert created.status_code == 201, created.text
        assert created.json()["api_endpoint"] == proxy.url
        forwarded = proxy.forwarded
        assert registry.refresh(created.json()["id"]).json()["status"] == "healthy"
        assert proxy.forwarded > forwarded


def _nothing_listens(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket()) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) != 0


def test_nothing_on_an_implied_443_suggests_pves_port(registry, sim, name):
    if not _nothing_listens("127.0.0.1", 443):
        pytest.skip("something listens on 127.0.0.1:443 here")
    sim.clear_requests()
    response = registry.register(
        name=name, api_endpoint="https://127.0.0.1", **password_fields(sim)
    )
    assert response.status_code == 502
    body = response.json()
    assert "try https://127.0.0.1:8006" in body["message"]
    assert body["details"] == {"suggested_endpoint": "https://127.0.0.1:8006"}
    assert api_requests(sim) == []
    registry.assert_not_registered(name)


def test_the_web_uis_address_bar_registers_as_the_nodes_api(registry, sim, name):
    response = registry.register(
        name=name,
        api_endpoint=f"{sim.url}/#v1:0:=node%2Fpve1:4:::::::",
        fingerprint=sim.fingerprint,
        **token_fields(sim),
    )
    assert response.status_code == 201, response.text
    assert (response.json()["api_endpoint"], response.json()["status"]) == (sim.url, "healthy")
