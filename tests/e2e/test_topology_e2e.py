"""A cluster's topology through the real service process, against a
simulated three-node cluster over real HTTPS (docs/product-contract.md §10):
registered through one node, the service learns the other two, each pinned
to the certificate that node really serves; with the registered node down a
check answers through another node and reads ``degraded``, and a later
background check goes straight to the node that answered, not to the dead
one; the same cluster through another node's address is a 409; nothing is
learned behind a reverse proxy's path prefix or with ``discover_endpoints``
off.

Every node is a loopback address (127.0.5x.y), and the service process may
connect to loopback only (``PROXMOXER_ALLOWED_NETWORKS``): whatever a
cluster reports, the service cannot reach past this machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from pve_simulator.proxy import ReverseProxy
from pve_simulator.server import PveSimulator
from tests.e2e.conftest import Registry, Secrets, password_fields, tidied, token_fields
from tests.e2e.servers import prepare_database, runserver, service_environment
from tests.listener import Listener

pytestmark = pytest.mark.e2e

INTERVAL = 2.0  # background checks: often enough to watch a few in a test
CONNECT_TIMEOUT, READ_TIMEOUT = 1.0, 2.0
LOOPBACK = "127.0.0.0/8,::1/128"
# One /24 of loopback per simulated cluster, away from the other tests' (127.0.10,
# 127.0.31, 127.0.41): each node of it listens on its own address.
NETWORKS = (f"127.0.{third}" for third in itertools.count(51))


@pytest.fixture(scope="module")
def topology_session(tmp_path_factory, secrets: Secrets) -> Iterator[Registry]:
    """A service process of its own: clusters in the database, the embedded
    background checks every INTERVAL, and loopback the only network it may
    connect to."""
    directory = tmp_path_factory.mktemp("e2e-topology")
    env = service_environment(
        f"sqlite:///{directory / 'db.sqlite3'}",
        CLUSTER_REPOSITORY="django",
        PROXMOXER_MONITOR="embedded",
        PROXMOXER_CHECK_INTERVAL=f"{INTERVAL:g}",
        PROXMOX_CONNECT_TIMEOUT=f"{CONNECT_TIMEOUT:g}",
        PROXMOX_READ_TIMEOUT=f"{READ_TIMEOUT:g}",
        PROXMOXER_ALLOWED_NETWORKS=LOOPBACK,
        API_THROTTLE_RATE="100000/minute",
    )
    token = prepare_database(env)
    secrets.add(token)
    registry = Registry(runserver(env, directory / "service.log"), token, secrets)
    yield registry
    registry.server.stop()


@pytest.fixture
def topology(topology_session: Registry) -> Iterator[Registry]:
    with tidied(topology_session) as registry:
        yield registry


@pytest.fixture
def cluster(secrets: Secrets) -> Iterator[PveSimulator]:
    """Three nodes, each on its own loopback address and certificate, named
    so that no other test's cluster is the same PVE cluster."""
    simulator = PveSimulator(
        nodes=3,
        node_network=next(NETWORKS),
        cluster_name=f"topo-{uuid.uuid4().hex[:8]}",
        auth_failure_delay=0.2,
    )
    with secrets.watch(simulator):
        yield simulator


# -- helpers -----------------------------------------------------------------------------------


def node_url(simulator: PveSimulator, node: str) -> str:
    return simulator.url_for(simulator.node(node).address)


def through(simulator: PveSimulator, node: str, **fields: Any) -> dict[str, Any]:
    """Endpoint and pin of one node, as an operator registers a cluster
    through that node's address."""
    return {
        "api_endpoint": node_url(simulator, node),
        "fingerprint": simulator.node(node).fingerprint,
        **fields,
    }


def served_fingerprint(url: str) -> str:
    """The SHA-256 fingerprint of the certificate served at ``url``, as
    read off the socket (not as the simulator says it is)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    pem = ssl.get_server_certificate((parts.hostname, parts.port), timeout=5)
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def assert_loopback_only(cluster: dict[str, Any]) -> None:
    for endpoint in cluster["endpoints"]:
        host = urlsplit(endpoint["url"]).hostname
        assert host is not None and ipaddress.ip_address(host).is_loopback, endpoint


def moment(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 10 * INTERVAL) -> Any:
    """Poll ``condition`` until it is truthy and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    pytest.fail(f"waited {timeout:g} s for {what}")


def checked_after(registry: Registry, earlier: dict[str, Any]) -> dict[str, Any] | None:
    """The cluster as a check after ``earlier`` left it, None until one recorded."""
    seen = registry.get(earlier["id"]).json()
    later = moment(seen["last_checked_at"]) > moment(earlier["last_checked_at"])
    return seen if later else None


def register(registry: Registry, simulator: PveSimulator, name: str, **fields: Any) -> dict:
    response = registry.register(name=name, **through(simulator, "pve1"), **fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert_loopback_only(body)
    return body


# -- learning the nodes --------------------------------------------------------------------------


def test_registration_through_one_node_learns_the_others_each_pinned_to_its_own_certificate(
    topology, cluster, name
):
    body = register(topology, cluster, name, **password_fields(cluster))

    assert body["discover_endpoints"] is True
    endpoints = body["endpoints"]
    assert [(e["url"], e["node"], e["fingerprint"]) for e in endpoints] == [
        (node_url(cluster, node), node, cluster.node(node).fingerprint)
        for node in ("pve1", "pve2", "pve3")
    ]
    for endpoint in endpoints:
        assert endpoint["fingerprint"] == served_fingerprint(endpoint["url"])
    assert len({endpoint["fingerprint"] for endpoint in endpoints}) == 3
    # Only the registered endpoint has answered yet.
    assert moment(endpoints[0]["last_ok_at"]) == moment(body["last_checked_at"])
    assert [endpoint["last_ok_at"] for endpoint in endpoints[1:]] == [None, None]
    assert topology.get(body["id"]).json()["endpoints"] == endpoints


# -- failover ------------------------------------------------------------------------------------


def test_with_the_registered_node_down_checks_answer_through_node_2_and_read_degraded(
    topology, cluster, name
):
    body = register(topology, cluster, name, **password_fields(cluster))
    cluster_id = body["id"]
    registered, second = node_url(cluster, "pve1"), node_url(cluster, "pve2")

    cluster.stop_node("pve1")
    cluster.clear_requests()
    refreshed = topology.refresh(cluster_id)

    assert refreshed.status_code == 200, refreshed.text
    checked = refreshed.json()
    assert (checked["status"], checked["node_count"], checked["nodes_online"]) == (
        "degraded",
        3,
        2,
    )
    assert checked["last_error"] == (
        f"Could not connect to {registered}: connection refused; answered through {second}"
    )
    assert moment(checked["endpoints"][1]["last_ok_at"]) == moment(checked["last_checked_at"])
    assert checked["endpoints"][2]["last_ok_at"] is None, "node 2 answered: node 3 not tried"
    assert {entry.node for entry in cluster.requests if entry.path.startswith("/api2/")} == {"pve2"}
    assert checked["endpoints"][1]["fingerprint"] == served_fingerprint(second)
    nodes = topology.call("GET", f"/api/v1/clusters/{cluster_id}/nodes").json()["nodes"]
    assert {node["name"]: node["status"] for node in nodes} == {
        "pve1": "offline",
        "pve2": "online",
        "pve3": "online",
    }

    # The background checks find the same through node 2, without trying
    # node 1 again (it failed moments ago): node 1's error stands as it was.
    later = wait_for(lambda: checked_after(topology, checked), "a background check")
    assert (later["status"], later["nodes_online"], later["last_error"]) == (
        "degraded",
        2,
        checked["last_error"],
    )
    assert moment(later["endpoints"][1]["last_ok_at"]) == moment(later["last_checked_at"])
    assert moment(later["endpoints"][0]["last_ok_at"]) < moment(checked["last_checked_at"])

    cluster.start_node("pve1")
    recovered = topology.refresh(cluster_id).json()

    assert (recovered["status"], recovered["last_error"], recovered["nodes_online"]) == (
        "healthy",
        None,
        3,
    )
    assert moment(recovered["endpoints"][0]["last_ok_at"]) == moment(recovered["last_checked_at"])
    history = topology.call("GET", f"/api/v1/clusters/{cluster_id}/history").json()
    assert [(event["from"], event["to"]) for event in history["events"]][:2] == [
        ("degraded", "healthy"),
        ("healthy", "degraded"),
    ]
    assert "answered through" in topology.server.log()


def test_a_later_background_check_goes_to_the_node_that_answered_not_the_dead_one(
    topology, cluster, name
):
    """Node 1 hung: the kernel accepts a connection to its port and nothing
    ever answers it, so every attempt on it waits (for the read timeout:
    the TLS handshake is never answered) and is counted. The person's
    refresh tries it first and waits; the background checks after it begin
    with node 2 and never touch node 1: counted, not timed."""
    body = register(topology, cluster, name, **token_fields(cluster))
    cluster_id = body["id"]
    registered, second = node_url(cluster, "pve1"), node_url(cluster, "pve2")
    cluster.stop_node("pve1")
    black_hole = Listener(cluster.node("pve1").address, cluster.port)
    try:
        refreshed = topology.refresh(cluster_id).json()
        assert black_hole.connections() >= 1, "the refresh tries the registered endpoint first"
        assert refreshed["status"] == "degraded"
        assert refreshed["last_error"] == (
            f"{registered} did not answer /version within {READ_TIMEOUT:g} s; "
            f"answered through {second}"
        )
        cluster.clear_requests()

        first = wait_for(lambda: checked_after(topology, refreshed), "a background check")
        second_check = wait_for(lambda: checked_after(topology, first), "another background check")

        assert black_hole.connections() == 0, "a background check tried the dead node"
        for seen in (first, second_check):
            assert seen["status"] == "degraded"
            assert moment(seen["endpoints"][1]["last_ok_at"]) == moment(seen["last_checked_at"])
            assert seen["endpoints"][2]["last_ok_at"] is None
        # What a person reads stays the registered endpoint's trouble, though
        # the background checks no longer try it.
        assert second_check["last_error"] == refreshed["last_error"]
        asked = [entry for entry in cluster.requests if entry.path.startswith("/api2/")]
        assert asked and {entry.node for entry in asked} == {"pve2"}
        assert {entry.auth for entry in asked} == {"token"}
    finally:
        black_hole.close()


def test_without_discovery_the_registered_endpoint_is_the_only_one_and_its_loss_is_unhealthy(
    topology, cluster, name
):
    body = register(topology, cluster, name, discover_endpoints=False, **password_fields(cluster))
    assert body["discover_endpoints"] is False
    assert [endpoint["url"] for endpoint in body["endpoints"]] == [node_url(cluster, "pve1")]

    cluster.stop_node("pve1")
    cluster.clear_requests()
    checked = topology.refresh(body["id"]).json()

    assert (checked["status"], checked["nodes_online"]) == ("unhealthy", 0)
    assert checked["last_error"] == (
        f"Could not connect to {node_url(cluster, 'pve1')}: connection refused"
    )
    assert cluster.requests == [], "no other node was asked"


def test_endpoints_are_learned_on_request_and_set_by_hand_by_patch(topology, cluster, name):
    body = register(topology, cluster, name, discover_endpoints=False, **token_fields(cluster))
    path = f"/api/v1/clusters/{body['id']}"

    learned = topology.call("PATCH", path, json={"discover_endpoints": True})

    assert learned.status_code == 200, learned.text
    assert [endpoint["node"] for endpoint in learned.json()["endpoints"]] == [
        "pve1",
        "pve2",
        "pve3",
    ]

    third = node_url(cluster, "pve3")
    by_hand = topology.call(
        "PATCH",
        path,
        json={"endpoints": [{"url": third, "fingerprint": cluster.node("pve3").fingerprint}]},
    )

    assert by_hand.status_code == 200, by_hand.text
    edited = by_hand.json()
    assert_loopback_only(edited)
    assert edited["discover_endpoints"] is False
    assert [(e["url"], e["node"]) for e in edited["endpoints"]] == [
        (node_url(cluster, "pve1"), "pve1"),
        (third, "pve3"),
    ]
    cluster.stop_node("pve1")
    checked = topology.refresh(body["id"]).json()
    assert (checked["status"], checked["nodes_online"]) == ("degraded", 2)
    assert checked["last_error"].endswith(f"; answered through {third}")


# -- one cluster, one registration ---------------------------------------------------------------


def test_the_same_cluster_through_node_3_under_another_name_is_409_and_stores_nothing(
    topology, cluster, name
):
    body = register(topology, cluster, name, **password_fields(cluster))
    tokens = set(cluster.tokens)
    cluster.clear_requests()

    again = topology.register(
        name=f"{name}-again",
        create_token=True,
        **through(cluster, "pve3"),
        **password_fields(cluster),
    )

    assert again.status_code == 409, again.text
    assert again.json()["code"] == "Conflict"
    assert again.json()["details"] == {"existing_id": body["id"], "existing_name": name}
    assert [listed["id"] for listed in topology.clusters()] == [body["id"]]
    handed_off = [
        (entry.method, entry.node)
        for entry in cluster.requests
        if "/token/" in entry.path and entry.method in ("POST", "DELETE")
    ]
    assert handed_off == [("POST", "pve3"), ("DELETE", "pve3")]
    assert set(cluster.tokens) == tokens, "the token made for the refused registration is gone"
    log = topology.server.log()
    assert f"Cluster already registered, endpoint={node_url(cluster, 'pve3')}" in log


# -- behind a reverse proxy -----------------------------------------------------------------------


def test_behind_a_proxys_path_prefix_nothing_is_learned(topology, cluster, name):
    with ReverseProxy(cluster, prefix="/pve") as proxy:
        response = topology.register(
            name=name,
            api_endpoint=proxy.url,
            fingerprint=proxy.fingerprint,
            **token_fields(cluster),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert_loopback_only(body)
        assert (body["api_endpoint"], body["status"]) == (proxy.url, "healthy")
        assert body["discover_endpoints"] is True, "asked for, and nothing to learn"
        assert [(e["url"], e["fingerprint"]) for e in body["endpoints"]] == [
            (proxy.url, proxy.fingerprint)
        ]
        forwarded = proxy.forwarded
        checked = topology.refresh(body["id"]).json()
        assert (checked["status"], checked["last_error"]) == ("healthy", None)
        assert len(checked["endpoints"]) == 1
        assert proxy.forwarded > forwarded
