"""The simulator answers as SPEC §5 says real PVE does, over real HTTPS.

Checked with plain requests (not the registry's client), trusting the
simulator's CA, so these tests pin down the simulator the other tiers rely on.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pve_simulator.certificates import ca_signed_certificate, sha256_fingerprint
from pve_simulator.server import PveSimulator, ipv6_available
from tests.conftest import assert_secret_absent

AUTH_DELAY = 0.3


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("simulator") / "ca.pem"


@pytest.fixture(scope="module")
def running(ca_file) -> Iterator[PveSimulator]:
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    ca_file.write_bytes(certificate.ca_pem)
    with PveSimulator(certificate=certificate, auth_failure_delay=AUTH_DELAY) as simulator:
        yield simulator


@pytest.fixture
def sim(running) -> Iterator[PveSimulator]:
    running.configure(scenario="healthy", latency=0, slow_delay=30)
    running.clear_requests()
    yield running
    running.configure(scenario="healthy", latency=0)


@pytest.fixture
def http(ca_file) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(ca_file)
        yield session


def api(sim: PveSimulator, path: str) -> str:
    return f"{sim.url}/api2/json{path}"


def login(http: requests.Session, sim: PveSimulator) -> dict:
    response = http.post(
        api(sim, "/access/ticket"), data={"username": sim.username, "password": sim.password}
    )
    assert response.status_code == 200
    return response.json()["data"]


def ticket_headers(data: dict) -> dict[str, str]:
    return {"Cookie": f"PVEAuthCookie={data['ticket']}"}


def token_headers(sim: PveSimulator, secret: str | None = None) -> dict[str, str]:
    return {"Authorization": f"PVEAPIToken={sim.token_id}={secret or sim.token_secret}"}


# -- login ------------------------------------------------------------------------


def test_form_login_returns_ticket_csrf_token_capabilities_and_cluster_name(sim, http):
    data = login(http, sim)
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    assert data["CSRFPreventionToken"]
    assert data["clustername"] == "sim"
    assert "Sys.Audit" in data["cap"]["nodes"]
    assert "NeedTFA" not in data


def test_standalone_node_login_has_no_cluster_name(sim, http):
    sim.set_scenario("standalone-pve7")
    assert "clustername" not in login(http, sim)


def test_wrong_password_is_401_authentication_failure_after_the_delay(sim, http):
    started = time.monotonic()
    response = http.post(
        api(sim, "/access/ticket"), data={"username": sim.username, "password": "wrong"}
    )
    assert time.monotonic() - started >= AUTH_DELAY
    assert (response.status_code, response.reason) == (401, "authentication failure")
    assert response.json() == {"data": None}


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(sim, http):
    response = http.post(
        api(sim, "/access/ticket"), data={"username": "nobody@pve", "password": sim.password}
    )
    assert (response.status_code, response.reason) == (401, "authentication failure")


def test_login_without_password_is_parameter_verification_failed(sim, http):
    response = http.post(api(sim, "/access/ticket"), data={"username": sim.username})
    assert (response.status_code, response.reason) == (400, "Parameter verification failed.")
    assert response.json() == {
        "data": None,
        "errors": {"password": "property is missing and it is not optional"},
    }


def test_login_takes_the_realm_as_a_separate_field_too(sim, http):
    response = http.post(
        api(sim, "/access/ticket"),
        data={"username": "root", "realm": "pam", "password": sim.password},
    )
    assert response.status_code == 200


def test_second_factor_login_needs_tfa_and_its_ticket_opens_nothing(sim, http):
    sim.set_scenario("second-factor")
    data = login(http, sim)
    assert data["NeedTFA"] == 1
    assert data["ticket"].startswith("PVE:!tfa!")
    response = http.get(api(sim, "/version"), headers=ticket_headers(data))
    assert response.status_code == 401


def test_api_tokens_work_when_passwords_need_a_second_factor(sim, http):
    sim.set_scenario("second-factor")
    assert http.get(api(sim, "/version"), headers=token_headers(sim)).status_code == 200


# -- authenticating calls -----------------------------------------------------------


def test_calls_without_credentials_are_401_no_ticket_after_the_delay(sim, http):
    started = time.monotonic()
    response = http.get(api(sim, "/version"))
    assert time.monotonic() - started >= AUTH_DELAY
    assert (response.status_code, response.reason) == (401, "No ticket")
    assert response.json() == {"data": None}


def test_ticket_cookie_authenticates_reads(sim, http):
    response = http.get(api(sim, "/version"), headers=ticket_headers(login(http, sim)))
    assert response.status_code == 200
    assert sim.requests[-1].auth == "ticket"


def test_unknown_ticket_is_refused(sim, http):
    response = http.get(api(sim, "/version"), headers={"Cookie": "PVEAuthCookie=PVE:forged"})
    assert response.status_code == 401


def test_non_get_call_with_a_ticket_needs_the_csrf_header(sim, http):
    data = login(http, sim)
    without = http.post(api(sim, "/nodes"), headers=ticket_headers(data))
    assert (without.status_code, without.reason) == (401, "Permission denied - invalid csrf token")
    wrong = http.post(
        api(sim, "/nodes"), headers={**ticket_headers(data), "CSRFPreventionToken": "1:forged"}
    )
    assert wrong.status_code == 401
    with_csrf = http.post(
        api(sim, "/nodes"),
        headers={**ticket_headers(data), "CSRFPreventionToken": data["CSRFPreventionToken"]},
    )
    # Past authentication: PVE has no POST /nodes.
    assert (with_csrf.status_code, with_csrf.reason) == (
        501,
        "Method 'POST /nodes' not implemented",
    )


def test_api_token_needs_no_csrf_header_for_non_get_calls(sim, http):
    response = http.post(api(sim, "/nodes"), headers=token_headers(sim))
    assert response.status_code == 501
    assert sim.requests[-1].auth == "token"


def test_wrong_token_secret_is_401_invalid_token_value(sim, http):
    response = http.get(api(sim, "/version"), headers=token_headers(sim, "not-the-secret"))
    assert (response.status_code, response.reason) == (401, "invalid token value!")


def test_the_seeds_ticket_in_a_token_header_is_refused(sim, http):
    data = login(http, sim)
    response = http.get(
        api(sim, "/version"), headers={"Authorization": f"PVEAPIToken={data['ticket']}"}
    )
    assert response.status_code == 401


# -- what it reports ---------------------------------------------------------------


def test_version_has_the_pve8_shape(sim, http):
    response = http.get(api(sim, "/version"), headers=token_headers(sim))
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.json() == {
        "data": {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}
    }


def test_standalone_scenario_is_pve7(sim, http):
    sim.set_scenario("standalone-pve7")
    response = http.get(api(sim, "/version"), headers=token_headers(sim))
    assert response.json()["data"]["version"] == "7.4-13"


def test_cluster_status_lists_the_cluster_and_its_nodes(sim, http):
    sim.set_scenario("degraded")
    entries = http.get(api(sim, "/cluster/status"), headers=token_headers(sim)).json()["data"]
    assert entries[0]["type"] == "cluster"
    assert [(e["name"], e["online"]) for e in entries[1:]] == [
        ("pve1", 1),
        ("pve2", 1),
        ("pve3", 0),
    ]


def test_no_permission_scenario_forbids_cluster_status_and_filters_nodes(sim, http):
    sim.set_scenario("no-permission")
    status = http.get(api(sim, "/cluster/status"), headers=token_headers(sim))
    assert (status.status_code, status.reason) == (403, "Permission check failed (/, Sys.Audit)")
    assert status.json() == {"data": None}
    nodes = http.get(api(sim, "/nodes"), headers=token_headers(sim)).json()["data"]
    assert [node["node"] for node in nodes] == ["pve1", "pve2"]


def test_nodes_report_the_served_certificates_fingerprint(sim, http):
    nodes = http.get(api(sim, "/nodes"), headers=token_headers(sim)).json()["data"]
    assert nodes[0]["ssl_fingerprint"] == sim.fingerprint


# -- failures it can play -------------------------------------------------------------


def test_server_error_scenario_answers_500_after_login(sim, http):
    sim.set_scenario("server-error")
    data = login(http, sim)
    response = http.get(api(sim, "/version"), headers=ticket_headers(data))
    assert (response.status_code, response.reason) == (500, "Internal Server Error")


def test_garbage_scenario_answers_html(sim, http):
    sim.set_scenario("garbage")
    response = http.get(api(sim, "/version"), headers=token_headers(sim))
    assert response.status_code == 200
    assert response.text.startswith("<!DOCTYPE html>")


def test_redirect_scenario_points_at_the_trap_which_records_visits(sim, http):
    sim.set_scenario("redirect")
    response = http.get(api(sim, "/version"), headers=token_headers(sim), allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{sim.url}/trap/api2/json/version"
    http.get(response.headers["Location"])
    assert sim.requests[-1].path == "/trap/api2/json/version"


@pytest.mark.parametrize(
    ("scenario", "announced"), [("oversized", True), ("oversized-unannounced", False)]
)
def test_oversized_scenarios_send_two_mebibytes_of_valid_json(sim, http, scenario, announced):
    sim.set_scenario(scenario)
    response = http.get(api(sim, "/version"), headers=token_headers(sim))
    assert len(response.content) > 2 << 20
    assert response.json()["data"]["version"] == "8.2.4"
    assert ("Content-Length" in response.headers) is announced


def test_slow_scenario_waits_before_answering(sim, http):
    sim.configure(scenario="slow", slow_delay=0.5)
    started = time.monotonic()
    assert http.get(api(sim, "/version"), headers=token_headers(sim)).status_code == 200
    assert time.monotonic() - started >= 0.5


def test_trickle_scenario_sends_the_body_byte_by_byte(sim, http):
    sim.configure(scenario="trickle", trickle_interval=0.01)
    response = http.get(api(sim, "/version"), headers=token_headers(sim))
    assert response.json()["data"]["version"] == "8.2.4"


def test_latency_is_added_to_every_api_call(sim, http):
    sim.configure(latency=0.2)
    started = time.monotonic()
    http.get(api(sim, "/version"), headers=token_headers(sim))
    assert time.monotonic() - started >= 0.2


# -- switching and serving --------------------------------------------------------------


def test_control_endpoint_shows_and_switches_the_scenario(sim, http):
    state = http.get(f"{sim.url}/_simulator").json()
    assert state["scenario"] == "healthy"
    assert "no-quorum" in state["scenarios"]
    switched = http.put(f"{sim.url}/_simulator", json={"scenario": "no-quorum", "latency": 0.01})
    assert switched.json()["scenario"] == "no-quorum"
    assert sim.scenario.name == "no-quorum"
    assert sim.latency == 0.01


@pytest.mark.parametrize(
    "body", [{"scenario": "on-fire"}, {"colour": "red"}, {"latency": -1}, ["healthy"]]
)
def test_control_endpoint_refuses_what_it_cannot_do(sim, http, body):
    response = http.put(f"{sim.url}/_simulator", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sim.scenario.name == "healthy"


def test_control_endpoint_never_shows_credentials(sim, http):
    text = http.get(f"{sim.url}/_simulator").text
    assert_secret_absent(sim.password, text, "the control endpoint")
    assert_secret_absent(sim.token_secret, text, "the control endpoint")


def test_serves_its_fingerprint_on_every_address(sim):
    for host in sim.hosts:
        pem = ssl.get_server_certificate((host, sim.port), timeout=5)
        assert sha256_fingerprint(pem.encode()) == sim.fingerprint


@pytest.mark.skipif(not ipv6_available(), reason="this machine has no IPv6 loopback")
def test_listens_on_ipv6_loopback_and_localhost_as_well(sim, http):
    for host in ("::1", "localhost"):
        response = http.get(f"{sim.url_for(host)}/api2/json/version", headers=token_headers(sim))
        assert response.status_code == 200


def test_a_stopped_simulator_refuses_and_restarts_on_its_port(ca_file):
    with PveSimulator(hosts=["127.0.0.1"]) as simulator:
        port, fingerprint = simulator.port, simulator.fingerprint
        simulator.stop()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass
        simulator.start()
        assert (simulator.port, simulator.fingerprint) == (port, fingerprint)
        assert ssl.get_server_certificate(("127.0.0.1", port), timeout=5)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])  # noqa: S104
def test_refuses_to_listen_beyond_loopback(host):
    with pytest.raises(ValueError, match="loopback"):
        PveSimulator(hosts=[host])


def test_a_client_refusing_the_certificate_does_not_stop_the_server(sim, http):
    with pytest.raises(requests.exceptions.SSLError), requests.Session() as strict:
        strict.trust_env = False
        strict.get(api(sim, "/version"))  # verify against certifi: refused
    assert http.get(api(sim, "/version"), headers=token_headers(sim)).status_code == 200


def test_clearing_the_log_also_drops_requests_still_being_answered(sim, http):
    sim.configure(scenario="slow", slow_delay=0.5)
    slow = threading.Thread(target=http.get, args=(api(sim, "/version"),))
    slow.start()
    time.sleep(0.2)
    sim.clear_requests()
    slow.join()
    assert sim.requests == []


def test_requests_are_numbered_by_the_connection_they_came_on(sim, ca_file):
    for _ in range(2):
        with requests.Session() as session:
            session.trust_env = False
            session.verify = str(ca_file)
            session.get(api(sim, "/version"), headers=token_headers(sim))
            session.get(api(sim, "/nodes"), headers=token_headers(sim))
    first, second, third, fourth = (entry.connection for entry in sim.requests)
    assert first == second < third == fourth


def test_connect_latency_delays_each_new_connection_once(sim, http):
    sim.configure(connect_latency=0.3)
    try:
        started = time.monotonic()
        http.get(api(sim, "/version"), headers=token_headers(sim))
        first = time.monotonic() - started
        started = time.monotonic()
        http.get(api(sim, "/version"), headers=token_headers(sim))  # same connection
        again = time.monotonic() - started
    finally:
        sim.configure(connect_latency=0)
    assert first >= 0.3 > again
