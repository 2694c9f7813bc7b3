"""Certificate trust as Proxmox Datacenter Manager does it, proven over real
TLS through the service process: verification on by default, the
fingerprint offered for pinning, pins stored and enforced on every later
call, a private CA through PROXMOX_CA_BUNDLE, and REQUESTS_CA_BUNDLE /
CURL_CA_BUNDLE changing nothing either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pve_simulator.certificates import ca_signed_certificate, self_signed_certificate
from pve_simulator.server import PveSimulator, ipv6_available
from tests.e2e.conftest import (
    Registry,
    api_requests,
    password_fields,
    pinned,
    start_service,
    tidied,
    token_fields,
)
from tests.e2e.servers import manage

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def private_ca_session(service_env, ca_simulator, e2e_dir, secrets) -> Iterator[Registry]:
    """A service trusting the simulator's CA through PROXMOX_CA_BUNDLE, while
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE point at a CA that trusts nothing here."""
    _, ca_file = ca_simulator
    unrelated = ca_signed_certificate().ca_pem
    assert unrelated is not None
    unrelated_file = e2e_dir / "unrelated-ca.pem"
    unrelated_file.write_bytes(unrelated)
    registry = start_service(
        service_env,
        e2e_dir / "service-private-ca.log",
        secrets,
        PROXMOX_CA_BUNDLE=str(ca_file),
        REQUESTS_CA_BUNDLE=str(unrelated_file),
        CURL_CA_BUNDLE=str(unrelated_file),
    )
    yield registry
    registry.server.stop()


@pytest.fixture
def private_ca_registry(private_ca_session) -> Iterator[Registry]:
    with tidied(private_ca_session) as registry:
        yield registry


@pytest.fixture
def ca_sim(ca_simulator) -> PveSimulator:
    simulator, _ = ca_simulator
    simulator.set_scenario("healthy")
    simulator.clear_requests()
    return simulator


# -- verification on by default -------------------------------------------------------------------


def test_untrusted_certificate_is_502_offering_its_fingerprint_to_pin(registry, sim, name):
    response = registry.register(name=name, api_endpoint=sim.url, **password_fields(sim))
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "BadGateway"
    assert body["details"] == {"fingerprint": sim.fingerprint}
    assert "not trusted" in body["message"]
    assert f'"fingerprint": {sim.fingerprint}' in body["message"]
    assert api_requests(sim) == []  # the handshake failed before any credentials were sent
    registry.assert_not_registered(name)


def test_environment_ca_bundles_do_not_make_an_untrusted_certificate_trusted(
    registry, ca_sim, name
):
    # The service runs with REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE set to this
    # simulator's CA (see conftest); requests alone would have trusted it.
    response = registry.register(name=name, api_endpoint=ca_sim.url, **token_fields(ca_sim))
    assert response.status_code == 502
    assert response.json()["details"] == {"fingerprint": ca_sim.fingerprint}
    registry.assert_not_registered(name)


def test_verify_tls_false_registers_despite_the_environment_ca_bundles(registry, sim, name):
    fields = password_fields(sim, api_endpoint=sim.url, verify_tls=False)
    response = registry.register(name=name, **fields)
    assert response.status_code == 201
    assert (response.json()["verify_tls"], response.json()["fingerprint"]) == (False, None)


# -- pinning --------------------------------------------------------------------------------------


def test_the_offered_fingerprint_registers_the_cluster(registry, sim, name):
    offered = registry.register(name=name, api_endpoint=sim.url, **password_fields(sim))
    fingerprint = offered.json()["details"]["fingerprint"]
    response = registry.register(
        name=name, api_endpoint=sim.url, fingerprint=fingerprint, **password_fields(sim)
    )
    assert response.status_code == 201
    assert response.json()["status"] == "healthy"


def test_a_pin_in_any_spelling_is_stored_normalised_and_used_by_refresh(registry, sim, name):
    spelled = sim.fingerprint.replace(":", "").lower()
    response = registry.register(
        name=name, api_endpoint=sim.url, fingerprint=spelled, **token_fields(sim)
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["fingerprint"], body["verify_tls"]) == (sim.fingerprint, True)
    assert registry.get(body["id"]).json()["fingerprint"] == sim.fingerprint

    sim.set_scenario("degraded")
    sim.clear_requests()
    refreshed = registry.refresh(body["id"]).json()
    assert (refreshed["status"], refreshed["fingerprint"]) == ("degraded", sim.fingerprint)
    assert api_requests(sim)  # refresh reached the cluster through the pinned certificate


def test_a_wrong_pin_is_502_naming_both_fingerprints(registry, sim, ca_sim, name):
    wrong = ca_sim.fingerprint
    response = registry.register(
        name=name, api_endpoint=sim.url, fingerprint=wrong, **password_fields(sim)
    )
    assert response.status_code == 502
    body = response.json()
    assert body["details"] == {"expected_fingerprint": wrong, "fingerprint": sim.fingerprint}
    assert wrong in body["message"] and sim.fingerprint in body["message"]
    assert api_requests(sim) == []
    registry.assert_not_registered(name)


def test_a_pin_holds_even_with_verify_tls_false(registry, sim, ca_sim, name):
    fields = password_fields(sim, verify_tls=False, fingerprint=ca_sim.fingerprint)
    response = registry.register(name=name, api_endpoint=sim.url, **fields)
    assert response.status_code == 502
    registry.assert_not_registered(name)


def test_a_replaced_certificate_fails_the_pin_on_the_next_check(registry, secrets, name):
    """The pin is used on every later call: when the node's certificate
    changes, refresh reports both fingerprints instead of trusting it."""
    simulator = secrets.watch(PveSimulator(hosts=["127.0.0.1"]))
    with simulator:
        created = registry.register(name=name, **pinned(simulator), **token_fields(simulator))
    assert created.status_code == 201
    cluster_id, pinned_fingerprint = created.json()["id"], simulator.fingerprint

    replacement = secrets.watch(
        PveSimulator(
            hosts=["127.0.0.1"],
            port=simulator.port,
            certificate=self_signed_certificate(),
            token_secret=simulator.token_secret,
        )
    )
    with replacement:
        body = registry.refresh(cluster_id).json()
        assert api_requests(replacement) == []
    assert body["status"] == "unhealthy"
    assert pinned_fingerprint in body["last_error"]
    assert replacement.fingerprint in body["last_error"]
    assert body["fingerprint"] == pinned_fingerprint


# -- a private CA ---------------------------------------------------------------------------------


def test_a_private_ca_bundle_registers_with_verification_on(private_ca_registry, ca_sim, name):
    response = private_ca_registry.register(
        name=name, api_endpoint=ca_sim.url, **password_fields(ca_sim)
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["verify_tls"], body["fingerprint"], body["status"]) == (True, None, "healthy")
    assert private_ca_registry.refresh(body["id"]).json()["last_error"] is None


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        pytest.param(
            "::1", marks=pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
        ),
    ],
)
def test_a_private_ca_bundle_checks_every_name_the_certificate_carries(
    private_ca_registry, ca_sim, name, host
):
    response = private_ca_registry.register(
        name=name, api_endpoint=ca_sim.url_for(host), **token_fields(ca_sim)
    )
    assert response.status_code == 201


def test_a_private_ca_bundle_does_not_trust_other_certificates(private_ca_registry, sim, name):
    response = private_ca_registry.register(name=name, api_endpoint=sim.url, **password_fields(sim))
    assert response.status_code == 502
    assert response.json()["details"] == {"fingerprint": sim.fingerprint}


def test_verify_tls_false_still_works_beside_a_private_ca_bundle(private_ca_registry, sim, name):
    fields = password_fields(sim, api_endpoint=sim.url, verify_tls=False)
    assert private_ca_registry.register(name=name, **fields).status_code == 201


def test_a_ca_bundle_without_certificates_stops_the_service_at_start_up(service_env, e2e_dir):
    not_a_bundle = e2e_dir / "not-a-bundle.pem"
    not_a_bundle.write_text("this is not a certificate\n")
    env = {key: value for key, value in service_env.items() if key != "E2E_OPERATOR_TOKEN"}
    with pytest.raises(RuntimeError, match="holds no readable PEM certificate"):
        manage({**env, "PROXMOX_CA_BUNDLE": str(not_a_bundle)}, "check")
