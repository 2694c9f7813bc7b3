"""Endpoint hygiene through the service process over real sockets: endpoints
in every pasted shape normalised, the dangerous ones refused before any
connection, redirects never followed, response bodies capped, IPv6 literals
working end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pve_simulator.server import PveSimulator, ipv6_available
from tests.e2e.conftest import api_requests, password_fields, pinned, token_fields

pytestmark = pytest.mark.e2e

URL_PASSWORD = "pasted-into-the-url"
needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="this machine has no IPv6 loopback")


@pytest.fixture(scope="module")
def on_pve_port(secrets) -> Iterator[PveSimulator]:
    """A simulator on PVE's own port 8006, for endpoints typed without a port."""
    simulator = secrets.watch(PveSimulator(port=8006))
    try:
        simulator.start()
    except OSError:
        pytest.skip("port 8006 is taken on this machine (a PVE simulator already running?)")
    yield simulator
    simulator.stop()


# -- normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "127.0.0.1:{port}",
        "https://127.0.0.1:{port}/",
        "https://127.0.0.1:{port}/api2/json",
        "https://127.0.0.1:{port}/api2/json/",
        "HTTPS://127.0.0.1:{port}",
        "  127.0.0.1:{port}  ",
    ],
)
def test_pasted_endpoints_are_normalised(registry, sim, name, typed):
    endpoint = typed.format(port=sim.port)
    response = registry.register(
        name=name, api_endpoint=endpoint, fingerprint=sim.fingerprint, **password_fields(sim)
    )
    assert response.status_code == 201, response.text
    assert response.json()["api_endpoint"] == f"https://127.0.0.1:{sim.port}"
    assert "/api2/json/access/ticket" in api_requests(sim)


def test_a_host_name_is_kept_lowercase(registry, sim, name):
    endpoint = f"LocalHost:{sim.port}"
    response = registry.register(
        name=name, api_endpoint=endpoint, fingerprint=sim.fingerprint, **token_fields(sim)
    )
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == f"https://localhost:{sim.port}"


def test_a_bare_host_gets_pves_port_8006(registry, on_pve_port, name):
    fields = token_fields(on_pve_port, fingerprint=on_pve_port.fingerprint)
    response = registry.register(name=name, api_endpoint="127.0.0.1", **fields)
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == "https://127.0.0.1:8006"


@needs_ipv6
def test_a_bare_ipv6_address_gets_brackets_and_port_8006(registry, on_pve_port, name):
    fields = token_fields(on_pve_port, fingerprint=on_pve_port.fingerprint)
    response = registry.register(name=name, api_endpoint="::1", **fields)
    assert response.status_code == 201
    assert response.json()["api_endpoint"] == "https://[::1]:8006"


@needs_ipv6
def test_ipv6_literal_endpoints_work_end_to_end(registry, sim, name):
    endpoint = f"[0:0:0:0:0:0:0:1]:{sim.port}"
    response = registry.register(
        name=name, api_endpoint=endpoint, fingerprint=sim.fingerprint, **password_fields(sim)
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["api_endpoint"], body["status"]) == (f"https://[::1]:{sim.port}", "healthy")
    sim.set_scenario("degraded")
    assert registry.refresh(body["id"]).json()["status"] == "degraded"


@needs_ipv6
def test_an_untrusted_ipv6_endpoint_offers_its_fingerprint(registry, sim, name):
    response = registry.register(name=name, api_endpoint=sim.url_for("::1"), **token_fields(sim))
    assert response.status_code == 502
    assert response.json()["details"] == {"fingerprint": sim.fingerprint}


# -- refused before any connection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("http://127.0.0.1:{port}", "must use https://"),
        ("ftp://127.0.0.1:{port}", "must use https://"),
        ("https://root%40pam:" + URL_PASSWORD + "@127.0.0.1:{port}", "must not embed credentials"),
        ("https://127.0.0.1:{port}/?node=pve1", "must not carry a query"),
        ("https://127.0.0.1:{port}/#summary", "must not carry a fragment"),
        ("https://127.0.0.1:{port}/api2/json/nodes", "must end where /api2/json begins"),
        ("https://127.0.0.1:{port}/pve/../admin", "plain prefix"),
        ("https://[fe80::1%lo]:{port}", "zone id"),
    ],
)
def test_dangerous_endpoints_are_400_and_never_contacted(registry, sim, name, typed, says):
    registry.secrets.add(URL_PASSWORD)  # never echoed back or logged
    response = registry.register(
        name=name, api_endpoint=typed.format(port=sim.port), **password_fields(sim)
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BadRequest"
    assert says in body["message"]
    assert says in body["details"]["api_endpoint"][0]
    assert sim.requests == []
    registry.assert_not_registered(name)


# -- what comes back ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["password", "token"])
def test_redirects_are_502_and_never_followed(registry, sim, name, kind):
    sim.set_scenario("redirect")
    fields = password_fields(sim) if kind == "password" else token_fields(sim)
    response = registry.register(name=name, **pinned(sim), **fields)
    assert response.status_code == 502
    assert "redirect (302)" in response.json()["message"]
    assert "redirects are not followed" in response.json()["message"]
    assert [entry for entry in sim.requests if entry.path.startswith("/trap")] == []
    registry.assert_not_registered(name)


@pytest.mark.parametrize("scenario", ["oversized", "oversized-unannounced"])
def test_bodies_over_one_mebibyte_are_502(registry, sim, name, scenario):
    sim.set_scenario(scenario)
    response = registry.register(name=name, **pinned(sim), **token_fields(sim))
    assert response.status_code == 502
    assert response.json()["message"] == (
        f"{sim.url} answered /version with more than 1048576 bytes"
    )
    registry.assert_not_registered(name)
