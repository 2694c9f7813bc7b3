"""The transport (clusters/proxmox/transport.py and tls.py) through
ProxmoxClient against the PVE simulator over real HTTPS on loopback: the TLS,
timeout and size rules that requests-mock cannot exercise, because it never
opens a socket."""

from __future__ import annotations

import time

import pytest

from clusters.domain import (
    ClusterError,
    ConnectionTarget,
    ProxmoxBadResponse,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    assess_health,
    normalise_fingerprint,
)
from pve_simulator.certificates import ca_signed_certificate
from pve_simulator.server import PveSimulator
from tests.integration.proxmox.simulated import (
    READ_TIMEOUT,
    UNVERIFIED,
    assert_no_secret,
    client,
    needs_ipv6,
    password,
    pinned,
    token,
)

# -- certificate trust -----------------------------------------------------------------


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


# -- hygiene ---------------------------------------------------------------------------


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


def test_every_failure_is_a_cluster_error_without_secrets(sim):
    for scenario in ("server-error", "garbage", "redirect", "second-factor", "oversized"):
        sim.set_scenario(scenario)
        with pytest.raises(ClusterError) as raised:
            client().inspect(pinned(sim), password(sim))
        assert_no_secret(sim, raised.value)
