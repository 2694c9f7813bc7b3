"""Registering, checking and removing clusters through the real service
process, against the PVE simulator over real HTTPS: every scenario, every
status of the health model, and the rows of the status table of
docs/product-contract.md §4."""

from __future__ import annotations

import uuid

import pytest

from pve_simulator.server import PveSimulator
from tests.e2e.conftest import (
    AUTH_FAILURE_DELAY,
    READ_TIMEOUT,
    api_requests,
    password_fields,
    pinned,
    timed,
    token_fields,
)
from tests.e2e.servers import free_port

pytestmark = pytest.mark.e2e


def credentials(kind: str, simulator: PveSimulator) -> dict:
    return password_fields(simulator) if kind == "password" else token_fields(simulator)


# -- the health model, one scenario each ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["password", "token"])
@pytest.mark.parametrize(
    ("scenario", "status", "node_count", "version"),
    [
        ("healthy", "healthy", 3, "8.2.4"),
        ("degraded", "degraded", 3, "8.2.4"),
        ("no-quorum", "unhealthy", 3, "8.2.4"),
        ("standalone-pve7", "healthy", 1, "7.4-13"),
        ("no-permission", "unknown", 3, "8.2.4"),  # /nodes lists every node (PVE/API2/Nodes.pm)
    ],
)
def test_registers_each_cluster_state_with_its_health(
    registry, sim, name, kind, scenario, status, node_count, version
):
    sim.set_scenario(scenario)
    response = registry.register(name=name, **pinned(sim), **credentials(kind, sim))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["node_count"], body["proxmox_version"]) == (
        status,
        node_count,
        version,
    )
    assert body["auth_method"] == kind
    assert body["last_error"] is None
    assert registry.call(
        "GET", response.headers["Location"].split(registry.base_url)[1]
    ).json() == (body)
    assert f"Cluster registered successfully, cluster_id={body['id']}" in registry.server.log()


def test_token_registration_shows_the_token_id_and_makes_no_ticket_call(registry, sim, name):
    response = registry.register(name=name, **pinned(sim), **token_fields(sim))
    assert response.status_code == 201
    body = response.json()
    assert (body["token_id"], body["username"]) == (sim.token_id, None)
    assert "token_secret" not in body
    assert "/api2/json/access/ticket" not in api_requests(sim)
    assert {entry.auth for entry in sim.requests} == {"token"}


def test_password_registration_shows_the_username(registry, sim, name):
    body = registry.register(name=name, **pinned(sim), **password_fields(sim)).json()
    assert (body["auth_method"], body["username"], body["token_id"]) == (
        "password",
        "root@pam",
        None,
    )
    assert "password" not in body


def test_version_status_and_nodes_are_read_after_a_single_login(registry, sim, name):
    registry.register(name=name, **pinned(sim), **password_fields(sim))
    calls = sorted((entry.method, entry.path, entry.auth) for entry in sim.requests)
    assert calls == [
        ("GET", "/api2/json/access/ticket", "none"),  # opens the status read's connection
        ("GET", "/api2/json/access/ticket", "none"),  # and the nodes read's
        ("GET", "/api2/json/cluster/status", "ticket"),
        ("GET", "/api2/json/nodes", "ticket"),
        ("GET", "/api2/json/version", "ticket"),
        ("POST", "/api2/json/access/ticket", "none"),
    ]


# -- 401: credentials -----------------------------------------------------------------------------


def test_second_factor_is_401_suggesting_a_token_and_stores_nothing(registry, sim, name):
    sim.set_scenario("second-factor")
    response = registry.register(name=name, **pinned(sim), **password_fields(sim))
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "Unauthorized"
    assert "second factor" in body["message"] and "API token" in body["message"]
    registry.assert_not_registered(name)
    # The suggestion works: the same account's token registers.
    assert registry.register(name=name, **pinned(sim), **token_fields(sim)).status_code == 201


def test_wrong_password_is_401_after_pves_delay_and_stores_nothing(registry, sim, name):
    fields = password_fields(sim, password="not-the-password")
    registry.secrets.add("not-the-password")
    response, elapsed = timed(lambda: registry.register(name=name, **pinned(sim), **fields))
    assert response.status_code == 401
    assert response.json() == {
        "code": "Unauthorized",
        "message": "Proxmox refused the credentials of root@pam (authentication failure)",
        "details": None,
    }
    assert elapsed >= AUTH_FAILURE_DELAY
    registry.assert_not_registered(name)


@pytest.mark.parametrize(
    ("token_id", "reason"),
    [
        ("root@pam!proxmoxer", "invalid token value!"),
        ("root@pam!someone-else", "no such token 'someone-else' for user 'root@pam'"),
    ],
)
def test_wrong_token_is_401_with_pves_reason(registry, sim, name, token_id, reason):
    wrong_secret = str(uuid.uuid4())
    registry.secrets.add(wrong_secret)
    fields = {"token_id": token_id, "token_secret": wrong_secret}
    response = registry.register(name=name, **pinned(sim), **fields)
    assert response.status_code == 401
    assert response.json()["message"] == f"Proxmox refused the credentials of {token_id} ({reason})"
    registry.assert_not_registered(name)


def test_calls_without_the_services_token_are_401(registry):
    response = registry.call("GET", "/api/v1/clusters", authenticated=False)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"


# -- 502: the cluster's side ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("server-error", "answered /version with 500 Internal Server Error"),
        ("garbage", "is not the Proxmox VE API's JSON envelope"),
    ],
)
def test_broken_clusters_are_502_and_store_nothing(registry, sim, name, scenario, message):
    sim.set_scenario(scenario)
    response = registry.register(name=name, **pinned(sim), **password_fields(sim))
    assert response.status_code == 502
    assert response.json()["code"] == "BadGateway"
    assert message in response.json()["message"]
    registry.assert_not_registered(name)


def test_a_cluster_that_does_not_answer_is_502_after_the_read_timeout(registry, sim, name):
    sim.set_scenario("slow")
    response, elapsed = timed(
        lambda: registry.register(name=name, **pinned(sim), **password_fields(sim))
    )
    assert response.status_code == 502
    assert response.json()["message"] == (
        f"{sim.url} did not answer /access/ticket within {READ_TIMEOUT:g} s"
    )
    assert READ_TIMEOUT <= elapsed < READ_TIMEOUT + 3
    registry.assert_not_registered(name)


def test_a_body_that_trickles_in_is_502_after_the_read_timeout(registry, sim, name):
    sim.set_scenario("trickle")
    response, elapsed = timed(
        lambda: registry.register(name=name, **pinned(sim), **token_fields(sim))
    )
    assert response.status_code == 502
    assert "did not finish answering /version" in response.json()["message"]
    assert elapsed < 2 * READ_TIMEOUT + 3
    registry.assert_not_registered(name)


def test_a_refused_connection_is_502(registry, sim, name):
    endpoint = f"https://127.0.0.1:{free_port()}"
    response = registry.register(name=name, api_endpoint=endpoint, **password_fields(sim))
    assert response.status_code == 502
    assert response.json()["message"] == f"Could not connect to {endpoint}: connection refused"
    registry.assert_not_registered(name)


# -- 400, 404, 409 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"api_endpoint": "https://127.0.0.1:8006"}, "name"),
        ({"name": "x"}, "api_endpoint"),
        ({"name": "x", "api_endpoint": "127.0.0.1", "username": "root"}, "username"),
        ({"name": "x", "api_endpoint": "127.0.0.1", "fingerprint": "AB:CD"}, "fingerprint"),
    ],
)
def test_invalid_registrations_are_400_with_field_details(registry, sim, fields, field):
    response = registry.register(**fields)
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequest"
    assert field in response.json()["details"]
    assert api_requests(sim) == []


def test_malformed_json_is_400(registry):
    response = registry.call(
        "POST",
        "/api/v1/clusters",
        data=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed request body")


def test_malformed_cluster_id_is_400(registry):
    response = registry.get("not-a-uuid")
    assert (response.status_code, response.json()["code"]) == (400, "BadRequest")


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST refresh"])
def test_unknown_cluster_is_404(registry, method):
    missing = uuid.uuid4()
    if method == "POST refresh":
        response = registry.refresh(str(missing))
    else:
        response = registry.call(method, f"/api/v1/clusters/{missing}")
    assert response.status_code == 404
    assert response.json() == {
        "code": "NotFound",
        "message": f"Cluster {missing} is not registered",
        "details": None,
    }


def test_unknown_url_is_404_in_the_envelope(registry):
    response = registry.call("GET", "/api/v1/nodes")
    assert (response.status_code, response.json()["code"]) == (404, "NotFound")


def test_a_taken_name_is_409_without_asking_proxmox(registry, sim, name):
    assert registry.register(name=name, **pinned(sim), **password_fields(sim)).status_code == 201
    sim.clear_requests()
    response = registry.register(name=name.upper(), **pinned(sim), **password_fields(sim))
    assert response.status_code == 409
    assert response.json()["code"] == "Conflict"
    assert api_requests(sim) == []


def test_deregistered_clusters_are_gone(registry, sim, name):
    cluster_id = registry.register(name=name, **pinned(sim), **token_fields(sim)).json()["id"]
    deleted = registry.delete(cluster_id)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert registry.get(cluster_id).status_code == 404
    assert name not in registry.names()


# -- later checks (refresh) -----------------------------------------------------------------------


def test_refresh_follows_the_cluster_through_every_status(registry, sim, name):
    cluster_id = registry.register(name=name, **pinned(sim), **password_fields(sim)).json()["id"]
    for scenario, status in [
        ("degraded", "degraded"),
        ("no-quorum", "unhealthy"),
        ("no-permission", "unknown"),
        ("healthy", "healthy"),
    ]:
        sim.set_scenario(scenario)
        body = registry.refresh(cluster_id).json()
        assert (body["status"], body["last_error"]) == (status, None), scenario
        assert registry.get(cluster_id).json()["status"] == status


def test_refresh_with_a_token_needs_no_ticket(registry, sim, name):
    cluster_id = registry.register(name=name, **pinned(sim), **token_fields(sim)).json()["id"]
    sim.set_scenario("degraded")
    sim.clear_requests()
    assert registry.refresh(cluster_id).json()["status"] == "degraded"
    assert "/api2/json/access/ticket" not in api_requests(sim)


def test_credentials_refused_on_a_later_check_make_the_status_unknown(registry, sim, name):
    cluster_id = registry.register(name=name, **pinned(sim), **password_fields(sim)).json()["id"]
    sim.configure(password="rotated-by-the-pve-admin")
    registry.secrets.add("rotated-by-the-pve-admin")
    body = registry.refresh(cluster_id).json()
    assert body["status"] == "unknown"
    assert body["last_error"] == (
        "Proxmox refused the credentials of root@pam (authentication failure)"
    )
    assert (body["node_count"], body["proxmox_version"]) == (3, "8.2.4")


def test_a_cluster_unreachable_on_a_later_check_becomes_unhealthy_then_recovers(
    registry, secrets, name
):
    simulator = secrets.watch(PveSimulator(hosts=["127.0.0.1"]))
    with simulator:
        created = registry.register(name=name, **pinned(simulator), **token_fields(simulator))
        assert created.json()["status"] == "healthy"
        cluster_id = created.json()["id"]

    down = registry.refresh(cluster_id)
    assert down.status_code == 200
    body = down.json()
    assert body["status"] == "unhealthy"
    assert body["last_error"] == f"Could not connect to {simulator.url}: connection refused"
    assert (body["node_count"], body["proxmox_version"]) == (3, "8.2.4")  # last known
    assert body["last_checked_at"] > created.json()["last_checked_at"]

    with simulator:  # back on the same port, same certificate
        up = registry.refresh(cluster_id).json()
    assert (up["status"], up["last_error"]) == ("healthy", None)


def test_a_cluster_that_times_out_on_a_later_check_becomes_unhealthy(registry, sim, name):
    cluster_id = registry.register(name=name, **pinned(sim), **token_fields(sim)).json()["id"]
    sim.set_scenario("slow")
    body = registry.refresh(cluster_id).json()
    assert body["status"] == "unhealthy"
    assert f"within {READ_TIMEOUT:g} s" in body["last_error"]
