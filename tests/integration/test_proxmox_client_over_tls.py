"""ProxmoxClient against the PVE simulator over real HTTPS on loopback: the
TLS, timeout and size rules that requests-mock cannot exercise, because it
never opens a socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters.domain import (
    ClusterError,
    ConnectionTarget,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxSecondFactorRequired,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    Secret,
    TokenCredentials,
    assess_health,
    normalise_fingerprint,
)
from clusters.proxmox import ProxmoxClient
from pve_simulator.certificates import ca_signed_certificate
from pve_simulator.server import PveSimulator, ipv6_available
from tests.conftest import assert_secret_absent

READ_TIMEOUT = 1.0
# verify_tls=false on purpose: urllib3's warning about it is expected there.
UNVERIFIED = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="this machine has no IPv6 loopback")


@pytest.fixture(scope="module")
def self_signed() -> Iterator[PveSimulator]:
    with PveSimulator(auth_failure_delay=0.2, slow_delay=10, trickle_interval=0.2) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory) -> Iterator[tuple[PveSimulator, Path]]:
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_file.write_bytes(certificate.ca_pem)
    with PveSimulator(certificate=certificate, auth_failure_delay=0.2) as simulator:
        yield simulator, ca_file


@pytest.fixture
def sim(self_signed) -> Iterator[PveSimulator]:
    self_signed.configure(scenario="healthy", latency=0)
    self_signed.clear_requests()
    yield self_signed
    self_signed.configure(scenario="healthy", latency=0)


def client(**kwargs) -> ProxmoxClient:
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", READ_TIMEOUT)
    return ProxmoxClient(**kwargs)


def password(sim: PveSimulator) -> PasswordCredentials:
    return PasswordCredentials(sim.username, Secret(sim.password))


def token(sim: PveSimulator, secret: str | None = None) -> TokenCredentials:
    return TokenCredentials(sim.token_id, Secret(secret or sim.token_secret))


def pinned(sim: PveSimulator, host: str = "127.0.0.1") -> ConnectionTarget:
    return ConnectionTarget(sim.url_for(host), True, sim.fingerprint)


def assert_no_secret(sim: PveSimulator, error: Exception) -> None:
    text = f"{error} {error!r} {getattr(error, 'details', '')}"
    for secret in (sim.password, sim.token_secret, *sim.issued_tickets):
        assert_secret_absent(secret, text, "the error")


# -- certificate trust -----------------------------------------------------------------------


def test_verification_is_on_by_default_and_reports_the_fingerprint_to_pin(sim):
    with pytest.raises(ProxmoxTLSError) as raised:
        client().inspect(ConnectionTarget(sim.url), password(sim))
    assert raised.value.details == {"fingerprint": sim.fingerprint}
    assert "not trusted" in raised.value.message
    assert sim.fingerprint in raised.value.message
    assert not [r for r in sim.requests if r.path.startswith("/api2")]  # no credentials sent


@needs_ipv6
def test_untrusted_ipv6_endpoint_reports_its_fingerprint_too(sim):
    with pytest.raises(ProxmoxTLSError) as raised:
        client().inspect(ConnectionTarget(sim.url_for("::1")), password(sim))
    assert raised.value.details == {"fingerprint": sim.fingerprint}


@pytest.mark.parametrize("credentials", [password, token])
def test_the_right_pin_replaces_ca_and_hostname_validation(sim, credentials):
    report = client().inspect(pinned(sim), credentials(sim))
    assert assess_health(report).status == "healthy"


def test_a_pin_in_any_spelling_normalises_to_the_served_certificate(sim):
    spelled = sim.fingerprint.replace(":", "").lower()
    target = ConnectionTarget(sim.url, True, normalise_fingerprint(spelled))
    assert client().inspect(target, token(sim)).version == "8.2.4"


def test_a_wrong_pin_is_refused_naming_both_fingerprints(sim, private_ca):
    other, _ = private_ca
    target = ConnectionTarget(sim.url, True, other.fingerprint)
    with pytest.raises(ProxmoxTLSError) as raised:
        client().inspect(target, password(sim))
    assert raised.value.details == {
        "expected_fingerprint": other.fingerprint,
        "fingerprint": sim.fingerprint,
    }
    assert other.fingerprint in raised.value.message and sim.fingerprint in raised.value.message
    assert not [r for r in sim.requests if r.path.startswith("/api2")]
    assert_no_secret(sim, raised.value)


def test_a_pin_is_enforced_even_with_verification_off(sim, private_ca):
    other, _ = private_ca
    with pytest.raises(ProxmoxTLSError):
        client().inspect(ConnectionTarget(sim.url, False, other.fingerprint), token(sim))


@UNVERIFIED
def test_verify_tls_false_accepts_any_certificate(sim):
    assert client().inspect(ConnectionTarget(sim.url, False), token(sim)).version == "8.2.4"


def test_a_private_ca_bundle_verifies_its_certificates(private_ca):
    simulator, ca_file = private_ca
    for host in simulator.hosts:
        target = ConnectionTarget(simulator.url_for(host))
        assert client(ca_bundle=str(ca_file)).inspect(target, token(simulator)).version == "8.2.4"


def test_a_private_ca_bundle_trusts_nothing_else(sim, private_ca):
    _, ca_file = private_ca
    with pytest.raises(ProxmoxTLSError) as raised:
        client(ca_bundle=str(ca_file)).inspect(ConnectionTarget(sim.url), token(sim))
    assert raised.value.details == {"fingerprint": sim.fingerprint}


def test_hostname_is_checked_against_the_certificate(tmp_path):
    certificate = ca_signed_certificate()  # names localhost, 127.0.0.1 and ::1 only
    assert certificate.ca_pem is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certificate.ca_pem)
    simulator = PveSimulator(hosts=["127.0.0.2"], certificate=certificate)
    try:
        simulator.start()
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address on this machine")
    try:
        with pytest.raises(ProxmoxTLSError):
            client(ca_bundle=str(ca_file)).inspect(
                ConnectionTarget(simulator.url), token(simulator)
            )
        # The same server and CA, reached by a name the certificate carries:
        trusted = ConnectionTarget(simulator.url, True, certificate.fingerprint)
        assert client(ca_bundle=str(ca_file)).inspect(trusted, token(simulator)).version
    finally:
        simulator.stop()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_bundle_environment_variables_do_not_widen_trust(private_ca, monkeypatch, variable):
    simulator, ca_file = private_ca
    monkeypatch.setenv(variable, str(ca_file))  # would make requests trust the simulator
    with pytest.raises(ProxmoxTLSError):
        client().inspect(ConnectionTarget(simulator.url), token(simulator))


@UNVERIFIED
def test_ca_bundle_environment_variables_do_not_break_verify_off_or_the_setting(
    private_ca, monkeypatch, tmp_path
):
    simulator, ca_file = private_ca
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(variable, str(tmp_path / "no-such-bundle.pem"))
    target = ConnectionTarget(simulator.url)
    assert client(ca_bundle=str(ca_file)).inspect(target, token(simulator)).version == "8.2.4"
    unverified = ConnectionTarget(simulator.url, False)
    assert client().inspect(unverified, token(simulator)).version == "8.2.4"


# -- authentication ------------------------------------------------------------------------


def test_token_login_makes_no_ticket_call_and_sends_no_csrf_header(sim):
    client().inspect(pinned(sim), token(sim))
    assert sorted(r.path for r in sim.requests) == [
        "/api2/json/cluster/status",
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
        ("/api2/json/version", "ticket"),
    ]


def test_the_status_connection_is_opened_during_the_login_without_credentials(sim):
    sim.configure(latency=0.1)
    client().inspect(pinned(sim), password(sim))
    by_path = {(r.method, r.path): r for r in sim.requests}
    login = by_path["POST", "/api2/json/access/ticket"]
    opener = by_path["GET", "/api2/json/access/ticket"]
    version = by_path["GET", "/api2/json/version"]
    status = by_path["GET", "/api2/json/cluster/status"]
    assert (opener.auth, opener.status) == ("none", 200)
    assert opener.started < login.answered  # while the login was under way
    assert status.connection == opener.connection != login.connection == version.connection


def test_token_inspection_opens_no_connection_in_advance(sim):
    client().inspect(pinned(sim), token(sim))
    assert [r for r in sim.requests if r.path == "/api2/json/access/ticket"] == []


def test_sequential_client_uses_one_connection(sim):
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert [r.method for r in sim.requests] == ["POST", "GET", "GET"]
    assert len({r.connection for r in sim.requests}) == 1


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


# -- what the cluster reports --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "status", "nodes", "version"),
    [
        ("healthy", "healthy", 3, "8.2.4"),
        ("degraded", "degraded", 3, "8.2.4"),
        ("no-quorum", "unhealthy", 3, "8.2.4"),
        ("standalone-pve7", "healthy", 1, "7.4-13"),
        ("no-permission", "unknown", 3, "8.2.4"),  # /nodes lists every node (PVE/API2/Nodes.pm)
    ],
)
def test_each_cluster_state_is_judged_from_real_answers(sim, scenario, status, nodes, version):
    sim.set_scenario(scenario)
    report = client().inspect(pinned(sim), password(sim))
    health = assess_health(report)
    assert (health.status, health.node_count, report.version) == (status, nodes, version)


# -- hygiene -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "error", "message"),
    [
        ("server-error", ProxmoxBadResponse, "answered /version with 500 Internal Server Error"),
        ("garbage", ProxmoxBadResponse, "not the Proxmox VE API's JSON envelope"),
        ("redirect", ProxmoxBadResponse, "redirect (302)"),
        ("oversized", ProxmoxBadResponse, "with more than 1048576 bytes"),
        ("oversized-unannounced", ProxmoxBadResponse, "with more than 1048576 bytes"),
    ],
)
def test_broken_answers_are_bad_responses(sim, scenario, error, message):
    sim.set_scenario(scenario)
    with pytest.raises(error) as raised:
        client().inspect(pinned(sim), password(sim))
    assert message in raised.value.message
    assert not [r for r in sim.requests if r.path.startswith("/trap")]  # redirect not followed


def test_a_server_that_does_not_answer_times_out(sim):
    sim.set_scenario("slow")
    started = time.monotonic()
    with pytest.raises(ProxmoxUnreachable, match=r"did not answer /access/ticket within 1 s"):
        client().inspect(pinned(sim), password(sim))
    assert time.monotonic() - started < READ_TIMEOUT + 1.5


def test_a_body_that_trickles_in_is_cut_off_at_the_read_timeout(sim):
    sim.set_scenario("trickle")  # ~15 s for the whole body, under a second per byte
    started = time.monotonic()
    with pytest.raises(ProxmoxUnreachable, match="did not finish answering /version within 1 s"):
        client().inspect(pinned(sim), token(sim))
    assert time.monotonic() - started < 2 * READ_TIMEOUT + 1


def test_a_closed_port_is_unreachable(sim):
    with PveSimulator(hosts=["127.0.0.1"]) as stopped:
        url = stopped.url
    with pytest.raises(ProxmoxUnreachable, match="connection refused"):
        client().inspect(ConnectionTarget(url, False), password(sim))


@needs_ipv6
def test_ipv6_literal_endpoints_work(sim):
    assert client().inspect(pinned(sim, "::1"), password(sim)).version == "8.2.4"


# -- one round trip after login -------------------------------------------------------------


def _overlap(sim: PveSimulator) -> bool:
    version = next(r for r in sim.requests if r.path.endswith("/version"))
    status = next(r for r in sim.requests if r.path.endswith("/cluster/status"))
    return version.started < status.answered and status.started < version.answered


def test_version_and_status_are_read_in_parallel(sim):
    sim.configure(latency=0.2)
    client().inspect(pinned(sim), password(sim))
    assert _overlap(sim)


def test_sequential_client_reads_one_after_the_other(sim):
    sim.configure(latency=0.2)
    client(parallel=False).inspect(pinned(sim), password(sim))
    assert not _overlap(sim)


def test_every_failure_is_a_cluster_error_without_secrets(sim):
    for scenario in ("server-error", "garbage", "redirect", "second-factor", "oversized"):
        sim.set_scenario(scenario)
        with pytest.raises(ClusterError) as raised:
            client().inspect(pinned(sim), password(sim))
        assert_no_secret(sim, raised.value)
