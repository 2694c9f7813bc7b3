"""The simulator answers as real PVE does (docs/product-contract.md §5, and
Proxmox's own sources as docs/simulator.md cites them), over real HTTPS.

Checked with plain requests and raw sockets (not the registry's client),
trusting the simulator's CA, so these tests pin down the simulator the other
tiers rely on.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from http.client import HTTPSConnection
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
    # auth_handler's refusals have no body at all, and close the connection.
    assert response.content == b""
    assert "Content-Length" not in response.headers
    assert response.headers["Connection"] == "close"


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


def test_no_permission_scenario_forbids_cluster_status_and_strips_node_usage(sim, http):
    sim.set_scenario("no-permission")
    status = http.get(api(sim, "/cluster/status"), headers=token_headers(sim))
    assert (status.status_code, status.reason) == (403, "Permission check failed (/, Sys.Audit)")
    assert status.json() == {"data": None}
    assert status.headers["Connection"] == "close"
    nodes = http.get(api(sim, "/nodes"), headers=token_headers(sim)).json()["data"]
    # PVE/API2/Nodes.pm: every node is listed; without Sys.Audit, no usage figures.
    assert [node["node"] for node in nodes] == ["pve1", "pve2", "pve3"]
    assert all("cpu" not in node and "maxmem" not in node for node in nodes)
    assert all(node["ssl_fingerprint"] for node in nodes)
    assert "clustername" not in login(http, sim)


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
    data = login(http, sim)
    created = http.post(
        api(sim, "/access/users/root@pam/token/leakcheck"), headers=csrf_headers(data)
    ).json()["data"]
    try:
        for path in ("", "/tokens", "/counts"):
            text = http.get(f"{sim.url}/_simulator{path}").text
            for secret in (sim.password, sim.token_secret, created["value"], data["ticket"]):
                assert_secret_absent(secret, text, f"the control endpoint {path or '/'}")
    finally:
        http.delete(api(sim, "/access/users/root@pam/token/leakcheck"), headers=csrf_headers(data))


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


# -- profiles ----------------------------------------------------------------------------------


@pytest.fixture
def pve9(sim) -> Iterator[PveSimulator]:
    sim.set_profile("pve9")
    yield sim
    sim.set_profile("pve8")


def test_pve9_reports_its_version_and_an_administrators_console(pve9, http):
    pve9.configure(console="xtermjs")
    try:
        data = http.get(api(pve9, "/version"), headers=token_headers(pve9)).json()["data"]
    finally:
        pve9.configure(console=None)
    assert data["version"].startswith("9.") and data["release"] == "9.1"
    assert data["console"] == "xtermjs"


def test_pve9_puts_the_error_text_into_the_body_as_well(pve9, http):
    pve9.set_scenario("no-permission")
    response = http.get(api(pve9, "/cluster/status"), headers=token_headers(pve9))
    assert (response.status_code, response.reason) == (
        403,
        "Permission check failed (/, Sys.Audit)",
    )
    assert response.json() == {"data": None, "message": "Permission check failed (/, Sys.Audit)\n"}


def test_pve9_words_refused_tokens_and_tickets_alike(pve9, http):
    token = http.get(api(pve9, "/version"), headers=token_headers(pve9, "not-the-secret"))
    ticket = http.get(api(pve9, "/version"), headers={"Cookie": "PVEAuthCookie=PVE:forged"})
    none = http.get(api(pve9, "/version"))
    assert (token.status_code, token.reason, token.content) == (401, "Authentication failed!", b"")
    assert (ticket.status_code, ticket.reason) == (401, "Authentication failed!")
    assert none.reason == "No ticket"  # unchanged in 9.1.5


@pytest.mark.parametrize("profile", ["pve7", "pve8"])
def test_older_releases_keep_the_message_in_the_reason_only(sim, http, profile):
    sim.configure(profile=profile, scenario="no-permission")
    try:
        response = http.get(api(sim, "/cluster/status"), headers=token_headers(sim))
        ticket = http.get(api(sim, "/version"), headers={"Cookie": "PVEAuthCookie=PVE:forged"})
    finally:
        sim.configure(profile="pve8")
    assert response.json() == {"data": None}
    assert ticket.reason == "permission denied - invalid PVE ticket"


@pytest.mark.parametrize("profile", ["pve7", "pve8", "pve9"])
@pytest.mark.parametrize("scenario", ["healthy", "degraded", "standalone", "second-factor"])
def test_every_scenario_plays_under_every_profile(sim, http, profile, scenario):
    sim.configure(profile=profile, scenario=scenario)
    try:
        data = login(http, sim)
        status = http.get(api(sim, "/cluster/status"), headers=token_headers(sim))
        version = http.get(api(sim, "/version"), headers=token_headers(sim)).json()["data"]
    finally:
        sim.configure(profile="pve8")
    assert version["version"].startswith(profile[-1])
    assert status.status_code == 200
    assert ("NeedTFA" in data) is (scenario == "second-factor")


# -- login inputs ------------------------------------------------------------------------------


def test_login_takes_a_json_body(sim, http):
    response = http.post(
        api(sim, "/access/ticket"), json={"username": sim.username, "password": sim.password}
    )
    assert response.json()["data"]["ticket"].startswith("PVE:root@pam:")


def test_login_takes_query_string_parameters(sim, http):
    response = http.post(
        api(sim, "/access/ticket"), params={"username": sim.username, "password": sim.password}
    )
    assert response.status_code == 200


def test_a_valid_ticket_as_password_renews_it(sim, http):
    # An hour-old ticket (signatures are deterministic, as PVE's RSA ones:
    # a ticket renewed within its own second would come back unchanged).
    first = sim.access.assemble_ticket(sim.username, now=time.time() - 3600)
    renewed = http.post(
        api(sim, "/access/ticket"), data={"username": sim.username, "password": first}
    ).json()["data"]
    assert renewed["ticket"] != first
    assert int(renewed["ticket"].split(":")[2], 16) > int(first.split(":")[2], 16)
    assert http.get(api(sim, "/version"), headers=ticket_headers(renewed)).status_code == 200


def test_a_ticket_in_the_authorization_header_authenticates(sim, http):
    data = login(http, sim)
    response = http.get(
        api(sim, "/version"), headers={"Authorization": f"PVEAuthCookie={data['ticket']}"}
    )
    assert response.status_code == 200
    assert sim.requests[-1].auth == "ticket"


def test_an_api_token_at_the_login_is_refused_at_once(sim, http):
    started = time.monotonic()
    response = http.post(
        api(sim, "/access/ticket"),
        headers=token_headers(sim),
        data={"username": sim.username, "password": sim.password},
    )
    assert time.monotonic() - started < AUTH_DELAY  # a 403, not a delayed 401
    assert (response.status_code, response.reason) == (
        403,
        "Permission check failed (URI '/access/ticket' not available with API token, "
        "need proper ticket.",
    )
    assert response.json() == {"data": None}


def test_second_factor_ticket_has_pves_layout_and_the_code_completes_it(sim, http):
    from pve_simulator.access import totp

    sim.set_scenario("second-factor")
    data = login(http, sim)
    assert data["ticket"].startswith('PVE:!tfa!{"totp"%3Atrue}:')
    assert "cap" not in data and data["NeedTFA"] == 1
    wrong = http.post(
        api(sim, "/access/ticket"),
        data={"username": sim.username, "tfa-challenge": data["ticket"], "password": "totp:1"},
    )
    assert (wrong.status_code, wrong.reason) == (401, "authentication failure")
    done = http.post(
        api(sim, "/access/ticket"),
        data={
            "username": sim.username,
            "tfa-challenge": data["ticket"],
            "password": f"totp:{totp(sim.totp_secret)}",
        },
    ).json()["data"]
    assert done["ticket"].startswith("PVE:root@pam:") and "NeedTFA" not in done
    assert http.get(api(sim, "/version"), headers=ticket_headers(done)).status_code == 200


def test_expired_tickets_are_refused_as_pve_words_it(sim, http):
    data = login(http, sim)
    sim.configure(ticket_lifetime=0)
    try:
        response = http.get(api(sim, "/version"), headers=ticket_headers(data))
    finally:
        sim.configure(ticket_lifetime=7200)
    assert (response.status_code, response.reason, response.content) == (
        401,
        "permission denied - invalid PVE ticket",
        b"",
    )


def test_wrong_password_body_is_the_empty_envelope_on_pve8(sim, http):
    response = http.post(
        api(sim, "/access/ticket"), data={"username": sim.username, "password": "wrong"}
    )
    # create_ticket's 401 goes through the JSON formatter, unlike auth_handler's.
    assert response.json() == {"data": None}
    assert response.headers["Connection"] == "close"


# -- realms ------------------------------------------------------------------------------------


def test_realms_are_listed_without_login(sim, http):
    realms = http.get(api(sim, "/access/domains")).json()["data"]
    assert {(r["realm"], r["type"]) for r in realms} == {
        ("pam", "pam"),
        ("pve", "pve"),
        ("oidc", "openid"),
    }


def test_an_openid_account_trying_a_password_gets_authentication_failure(sim, http):
    response = http.post(
        api(sim, "/access/ticket"), data={"username": "alice@oidc", "password": "anything"}
    )
    assert (response.status_code, response.reason) == (401, "authentication failure")


# -- pveproxy's connection behaviour -----------------------------------------------------------


@pytest.fixture
def connection(sim, ca_file) -> Iterator[HTTPSConnection]:
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = HTTPSConnection("127.0.0.1", sim.port, context=context, timeout=10)
    yield conn
    conn.close()


def test_a_connection_serves_at_most_100_requests(sim, connection):
    headers = token_headers(sim)
    seen = []
    for _ in range(100):
        connection.request("GET", "/api2/json/version", headers=headers)
        response = connection.getresponse()
        response.read()
        seen.append(response.getheader("Connection"))
    assert seen == ["Keep-Alive"] * 99 + ["close"]
    assert len({entry.connection for entry in sim.requests}) == 1


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(sim, ca_file):
    sim.configure(keepalive_timeout=0.3)
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection(("127.0.0.1", sim.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            token = token_headers(sim)["Authorization"]
            tls.sendall(
                b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\nAuthorization: "
                + token.encode()
                + b"\r\n\r\n"
            )
            answer = b""
            while b'"repoid"' not in answer:
                answer += tls.recv(65536)
            assert tls.recv(65536) == b""  # the server hung up on the idle connection
    finally:
        sim.configure(keepalive_timeout=5)


def test_bodies_over_1024_bytes_are_gzipped_for_clients_that_accept_it(sim, connection):
    form = f"username={sim.username}&password={sim.password}"
    for accept, encoded in (("gzip, deflate", "gzip"), ("deflate", "deflate"), ("identity", None)):
        connection.request(
            "POST",
            "/api2/json/access/ticket",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept-Encoding": accept,
            },
        )
        response = connection.getresponse()
        body = response.read()
        assert response.getheader("Content-Encoding") == encoded
        if encoded == "gzip":
            body = gzip.decompress(body)
        elif encoded == "deflate":
            body = zlib.decompress(body)
        assert len(body) > 1024 and json.loads(body)["data"]["username"] == sim.username
    connection.request("GET", "/api2/json/version", headers=token_headers(sim))
    small = connection.getresponse()
    small.read()
    assert small.getheader("Content-Encoding") is None  # 71 bytes: not worth it


# -- permissions, tokens and ACLs --------------------------------------------------------------


def csrf_headers(data: dict) -> dict[str, str]:
    return {**ticket_headers(data), "CSRFPreventionToken": data["CSRFPreventionToken"]}


def test_token_hand_off_creates_a_least_privilege_token_and_removes_it(sim, http):
    data = login(http, sim)
    created = http.post(
        api(sim, "/access/users/root@pam/token/registry"),
        headers=csrf_headers(data),
        data={"privsep": "1", "comment": "proxmoxer registry"},
    )
    assert created.status_code == 200, created.text
    answer = created.json()["data"]
    assert answer["full-tokenid"] == "root@pam!registry"
    assert answer["info"] == {"privsep": "1", "comment": "proxmoxer registry"}
    token = {"Authorization": f"PVEAPIToken=root@pam!registry={answer['value']}"}
    try:
        assert "root@pam!registry" in http.get(f"{sim.url}/_simulator/tokens").json()["tokens"]
        # A privilege-separated token without an ACL: /version yes, /cluster/status no.
        assert http.get(api(sim, "/version"), headers=token).status_code == 200
        assert http.get(api(sim, "/cluster/status"), headers=token).status_code == 403
        granted = http.put(
            api(sim, "/access/acl"),
            headers=csrf_headers(data),
            data={"path": "/", "roles": "PVEAuditor", "tokens": "root@pam!registry"},
        )
        assert (granted.status_code, granted.json()) == (200, {"data": None})
        assert http.get(api(sim, "/cluster/status"), headers=token).status_code == 200
        acl = http.get(api(sim, "/access/acl"), headers=ticket_headers(data)).json()["data"]
        assert {
            "path": "/",
            "type": "token",
            "ugid": "root@pam!registry",
            "roleid": "PVEAuditor",
            "propagate": 1,
        } in acl
        listed = http.get(api(sim, "/access/users/root@pam/token"), headers=ticket_headers(data))
        assert {t["tokenid"] for t in listed.json()["data"]} == {"proxmoxer", "registry"}
    finally:
        removed = http.delete(
            api(sim, "/access/users/root@pam/token/registry"), headers=csrf_headers(data)
        )
    assert (removed.status_code, removed.json()) == (200, {"data": None})
    assert http.get(api(sim, "/version"), headers=token).status_code == 401
    assert http.get(f"{sim.url}/_simulator/tokens").json()["tokens"] == ["root@pam!proxmoxer"]


def test_writes_with_a_ticket_need_the_csrf_token(sim, http):
    data = login(http, sim)
    response = http.post(
        api(sim, "/access/users/root@pam/token/nocsrf"), headers=ticket_headers(data)
    )
    assert (response.status_code, response.reason) == (
        401,
        "Permission denied - invalid csrf token",
    )
    assert sim.tokens == ["root@pam!proxmoxer"]


def test_an_account_that_may_not_modify_permissions_gets_pves_403(sim, http):
    sim.set_scenario("auditor")
    data = login(http, sim)
    response = http.put(
        api(sim, "/access/acl"),
        headers=csrf_headers(data),
        data={"path": "/", "roles": "PVEAuditor", "tokens": sim.token_id},
    )
    assert (response.status_code, response.reason) == (
        403,
        "Permission check failed (/, Permissions.Modify)",
    )
    vms = http.put(
        api(sim, "/access/acl"),
        headers=csrf_headers(data),
        data={"path": "/vms/100", "roles": "PVEAuditor", "users": sim.username},
    )
    assert vms.reason == "Permission check failed (/vms/100, Permissions.Modify|VM.Allocate)"


def test_tokens_for_another_user_need_user_modify(sim, http):
    sim.set_scenario("auditor")
    data = login(http, sim)
    other = http.post(api(sim, "/access/users/alice@oidc/token/x1"), headers=csrf_headers(data))
    own = http.post(api(sim, "/access/users/root@pam/token/mine"), headers=csrf_headers(data))
    assert (other.status_code, other.reason) == (403, "Permission check failed")
    assert own.status_code == 200  # 'userid-param', 'self'
    http.delete(api(sim, "/access/users/root@pam/token/mine"), headers=csrf_headers(data))


@pytest.mark.parametrize(
    ("path", "form", "status", "errors"),
    [
        (
            "/access/users/root@pam/token/x",
            {},
            400,
            {"tokenid": "value does not match the regex pattern"},
        ),
        ("/access/users/root@pam/token/proxmoxer", {}, 400, {"tokenid": "Token already exists."}),
        (
            "/access/users/root@pam/token/okay",
            {"privsep": "yes"},
            400,
            {"privsep": "type check ('boolean') failed - got 'yes'"},
        ),
        (
            "/access/users/root@pam/token/okay",
            {"expire": "-5"},
            400,
            {"expire": "value must have a minimum value of 0"},
        ),
    ],
)
def test_token_parameters_are_checked_as_pve_checks_them(sim, http, path, form, status, errors):
    data = login(http, sim)
    response = http.post(api(sim, path), headers=csrf_headers(data), data=form)
    assert (response.status_code, response.reason) == (status, "Parameter verification failed.")
    assert response.json() == {"data": None, "errors": errors}
    assert sim.tokens == ["root@pam!proxmoxer"]


@pytest.mark.parametrize(
    ("form", "status", "reason"),
    [
        ({"path": "/", "roles": "PVEAuditor"}, 400, "Parameter verification failed."),
        (
            {"path": "/", "roles": "Wizard", "users": "root@pam"},
            500,
            "ACL update failed: role 'Wizard' does not exist",
        ),
        (
            {"path": "/", "roles": "PVEAuditor", "tokens": "root@pam!ghost"},
            500,
            "ACL update failed: no such token 'ghost' for user 'root@pam'",
        ),
        (
            {"path": "/nowhere", "roles": "PVEAuditor", "users": "root@pam"},
            400,
            "Parameter verification failed.",
        ),
    ],
)
def test_acl_updates_are_checked_as_pve_checks_them(sim, http, form, status, reason):
    data = login(http, sim)
    response = http.put(api(sim, "/access/acl"), headers=csrf_headers(data), data=form)
    assert (response.status_code, response.reason) == (status, reason)


def test_configured_roles_apply_to_the_account(sim, http):
    sim.configure(roles="PVEAuditor")
    try:
        data = login(http, sim)
        status = http.get(api(sim, "/cluster/status"), headers=ticket_headers(data))
    finally:
        sim.configure(roles="Administrator")
    assert status.status_code == 200
    assert data["clustername"] == "sim"
    assert "Sys.Modify" not in data["cap"]["nodes"]
