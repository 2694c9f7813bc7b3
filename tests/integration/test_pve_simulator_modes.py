"""The simulator's larger shapes over real HTTPS: a multi-node cluster with
one listener per node, a reverse proxy in front, and many clusters at once."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import requests

from pve_simulator.certificates import sha256_fingerprint
from pve_simulator.fleet import VirtualClusters
from pve_simulator.proxy import ReverseProxy
from pve_simulator.server import PveSimulator
from tests.conftest import assert_secret_absent

AUTH_DELAY = 0.2
NETWORK = "127.0.31"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PveSimulator]:
    with PveSimulator(nodes=3, node_network=NETWORK, auth_failure_delay=AUTH_DELAY) as simulator:
        yield simulator


@pytest.fixture
def sim(cluster) -> Iterator[PveSimulator]:
    cluster.configure(scenario="healthy", profile="pve8")
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            cluster.start_node(node.name)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        session.verify = False  # each node has its own self-signed certificate; pinned below
        yield session


def token(sim: PveSimulator) -> dict[str, str]:
    return {"Authorization": f"PVEAPIToken={sim.token_id}={sim.token_secret}"}


def read(http: requests.Session, url: str, sim: PveSimulator, path: str) -> requests.Response:
    return http.get(f"{url}/api2/json{path}", headers=token(sim), timeout=10)


pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


# -- multi-node --------------------------------------------------------------------------------


def test_each_node_listens_on_its_own_address_and_the_same_port(sim):
    addresses = [node.hosts[0] for node in sim.nodes]
    assert addresses == [f"{NETWORK}.1", f"{NETWORK}.2", f"{NETWORK}.3"]
    fingerprints = set()
    for node in sim.nodes:
        served = ssl.get_server_certificate((node.hosts[0], sim.port), timeout=5).encode()
        assert sha256_fingerprint(served) == node.fingerprint
        fingerprints.add(node.fingerprint)
    assert len(fingerprints) == 3


def test_every_node_reports_its_own_address_and_fingerprint(sim, http):
    for node in sim.nodes:
        url = sim.url_for(node.hosts[0])
        entries = read(http, url, sim, "/cluster/status").json()["data"]
        nodes = {e["name"]: e for e in entries if e["type"] == "node"}
        assert {name: e["ip"] for name, e in nodes.items()} == {
            n.name: n.hosts[0] for n in sim.nodes
        }
        assert [name for name, e in nodes.items() if e["local"]] == [node.name]
        listing = read(http, url, sim, "/nodes").json()["data"]
        assert {e["node"]: e["ssl_fingerprint"] for e in listing} == {
            n.name: n.fingerprint for n in sim.nodes
        }


def test_a_stopped_node_refuses_and_the_others_report_it_offline(sim, http):
    sim.stop_node("pve3")
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((f"{NETWORK}.3", sim.port)),
    ):
        pass
    entries = read(http, sim.url, sim, "/cluster/status").json()["data"]
    assert entries[0]["quorate"] == 1  # two of three
    assert [e["online"] for e in entries[1:]] == [1, 1, 0]
    offline = read(http, sim.url, sim, "/nodes").json()["data"][2]
    assert offline["status"] == "offline" and "cpu" not in offline and "uptime" not in offline


def test_quorum_follows_the_nodes_through_the_control_api(sim, http):
    for name in ("pve2", "pve3"):
        stopped = http.put(f"{sim.url}/_simulator/nodes/{name}", json={"running": False})
        assert stopped.status_code == 200
    assert read(http, sim.url, sim, "/cluster/status").json()["data"][0]["quorate"] == 0
    http.put(f"{sim.url}/_simulator/nodes/pve2", json={"running": True})
    assert read(http, sim.url, sim, "/cluster/status").json()["data"][0]["quorate"] == 1
    assert read(http, sim.url_for(f"{NETWORK}.2"), sim, "/version").status_code == 200


def test_a_ticket_from_one_node_opens_the_others(sim, http):
    login = http.post(
        f"{sim.url}/api2/json/access/ticket",
        data={"username": sim.username, "password": sim.password},
    ).json()["data"]
    other = sim.url_for(f"{NETWORK}.2")
    response = http.get(
        f"{other}/api2/json/version", headers={"Cookie": f"PVEAuthCookie={login['ticket']}"}
    )
    assert response.status_code == 200
    assert sim.requests[-1].node == "pve2"


def test_standalone_mode_stays(http):
    with PveSimulator(hosts=["127.0.0.1"], scenario="standalone") as single:
        entries = read(http, single.url, single, "/cluster/status").json()["data"]
    assert [(e["type"], e["nodeid"], e["ip"]) for e in entries] == [("node", 0, "127.0.0.1")]


# -- reverse proxy -----------------------------------------------------------------------------


def test_the_proxy_forwards_under_its_prefix(sim, http):
    with ReverseProxy(sim, prefix="/pve") as proxy:
        response = http.get(f"{proxy.url}/api2/json/version", headers=token(sim))
        outside = http.get(f"https://127.0.0.1:{proxy.port}/api2/json/version")
    assert proxy.url == f"https://127.0.0.1:{proxy.port}/pve"
    assert response.json()["data"]["version"] == "8.2.4"
    assert outside.status_code == 404


def test_the_proxy_keeps_pves_reasons_unless_told_to_rewrite_them(sim, http):
    sim.configure(scenario="no-permission", profile="pve9")
    for rewrite, reason in ((False, "Permission check failed (/, Sys.Audit)"), (True, "Forbidden")):
        with ReverseProxy(sim, standard_reasons=rewrite) as proxy:
            response = http.get(f"{proxy.url}/api2/json/cluster/status", headers=token(sim))
        assert (response.status_code, response.reason) == (403, reason)
        assert response.json()["message"] == "Permission check failed (/, Sys.Audit)\n"


def test_the_proxy_answers_502_when_no_node_runs(http):
    with PveSimulator(hosts=["127.0.0.1"]) as lone, ReverseProxy(lone) as proxy:
        lone.stop()
        response = http.get(f"{proxy.url}/api2/json/version")
    assert response.status_code == 502


def test_the_proxy_can_listen_on_port_443(sim, http):
    proxy = ReverseProxy(sim, host="127.0.32.1", port=443, prefix="/pve")
    try:
        proxy.start()
    except OSError as error:
        pytest.skip(f"cannot bind 127.0.32.1:443 here ({error.strerror})")
    try:
        assert proxy.url == "https://127.0.32.1/pve"
        assert http.get(f"{proxy.url}/api2/json/version", headers=token(sim)).status_code == 200
    finally:
        proxy.stop()


def test_the_proxy_refuses_non_loopback_addresses(sim):
    with pytest.raises(ValueError, match="loopback"):
        ReverseProxy(sim, host="10.0.0.1")


# -- many clusters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> Iterator[VirtualClusters]:
    with VirtualClusters(40, network="127.2", auth_failure_delay=AUTH_DELAY) as clusters:
        yield clusters


def check(http: requests.Session, cluster: PveSimulator) -> str:
    """What the registry does once per cluster: log in, read version and status."""
    login = http.post(
        f"{cluster.url}/api2/json/access/ticket",
        data={"username": cluster.username, "password": cluster.password},
    ).json()["data"]
    cookie = {"Cookie": f"PVEAuthCookie={login['ticket']}"}
    http.get(f"{cluster.url}/api2/json/version", headers=cookie)
    status = http.get(f"{cluster.url}/api2/json/cluster/status", headers=cookie).json()["data"]
    return str(status[0]["name"])


def test_each_cluster_has_its_own_address_name_and_certificate(fleet, http):
    urls = {cluster.url for cluster in fleet.clusters}
    assert len(urls) == 40 and all(url.startswith("https://127.2.0.") for url in urls)
    assert len({cluster.fingerprint for cluster in fleet.clusters}) == 40
    assert {cluster.port for cluster in fleet.clusters} == {fleet.port}
    names = [check(http, cluster) for cluster in fleet.clusters[:5]]
    assert names == [cluster.cluster_name for cluster in fleet.clusters[:5]]


def test_counts_show_each_cluster_checked_exactly_once_and_reset(fleet, http):
    first = fleet.clusters[0]
    assert http.delete(f"{first.url}/_simulator/counts").status_code == 200
    for cluster in fleet.clusters:
        check(http, cluster)
    counts = http.get(f"{first.url}/_simulator/counts").json()
    assert counts == {
        cluster.cluster_name: {"logins": 1, "reads": 2, "requests": 3} for cluster in fleet.clusters
    }
    http.delete(f"{fleet.clusters[7].url}/_simulator/counts")
    assert set(map(str, fleet.counts().values())) == {str({"logins": 0, "reads": 0, "requests": 0})}


def test_tickets_do_not_cross_clusters(fleet, http):
    one, other = fleet.clusters[1], fleet.clusters[2]
    login = http.post(
        f"{one.url}/api2/json/access/ticket",
        data={"username": one.username, "password": one.password},
    ).json()["data"]
    response = http.get(
        f"{other.url}/api2/json/version", headers={"Cookie": f"PVEAuthCookie={login['ticket']}"}
    )
    assert response.status_code == 401
    assert other.password == one.password  # shared credentials, separate auth keys


def test_separate_credentials_and_one_acceptor_for_every_listener(http):
    with VirtualClusters(
        3, network="127.4", shared_credentials=False, auth_failure_delay=AUTH_DELAY
    ) as separate:
        passwords = {cluster.password for cluster in separate.clusters}
        refused = http.post(
            f"{separate.clusters[0].url}/api2/json/access/ticket",
            data={"username": "root@pam", "password": separate.clusters[1].password},
        )
        acceptors = [t for t in threading.enumerate() if t.name == "pve-simulator-acceptor"]
        summary = http.get(f"{separate.clusters[0].url}/_simulator/clusters").json()
    assert len(passwords) == 3
    assert refused.status_code == 401
    assert len(acceptors) == 1
    assert summary["count"] == 3 and summary["listeners"] >= 3
    assert [c["name"] for c in summary["clusters"]] == ["sim0001", "sim0002", "sim0003"]
    shown = json.dumps(summary)
    for cluster in separate.clusters:
        for secret in (cluster.password, cluster.token_secret):
            assert_secret_absent(secret, shown, "the fleet summary")
