"""The network policy in a service process configured as an operator would:
``PROXMOXER_DENIED_NETWORKS=127.0.0.2/32`` refuses a target on 127.0.0.2
with a 400 naming the rule and sends it nothing, while the simulator on
127.0.0.1 registers as before; a malformed network stops the service at
start-up. Loopback only: the denied address is denied through the setting."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Registry, password_fields, pinned, start_service, tidied
from tests.e2e.servers import PROJECT_DIR, PYTHON
from tests.listener import Listener

pytestmark = pytest.mark.e2e

DENIED = "127.0.0.2"


@pytest.fixture(scope="module")
def denying_session(service_env, e2e_dir, secrets) -> Iterator[Registry]:
    registry = start_service(
        service_env,
        e2e_dir / "service-denying.log",
        secrets,
        PROXMOXER_DENIED_NETWORKS=f"{DENIED}/32,169.254.0.0/16",
    )
    yield registry
    registry.server.stop()


@pytest.fixture
def denying_registry(denying_session) -> Iterator[Registry]:
    with tidied(denying_session) as registry:
        yield registry


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener(DENIED)
    yield listening
    listening.close()


def test_a_target_in_a_denied_network_is_400_naming_the_rule_and_gets_no_packet(
    denying_registry, listener, sim, name
):
    response = denying_registry.register(
        name=name, api_endpoint=f"https://{DENIED}:{listener.port}", **password_fields(sim)
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "BadRequest",
        "message": (
            f"The network policy refuses {DENIED}: {DENIED}/32 is a denied network "
            "(PROXMOXER_DENIED_NETWORKS)"
        ),
        "details": {"address": DENIED, "rule": f"PROXMOXER_DENIED_NETWORKS {DENIED}/32"},
    }
    assert listener.connections() == 0
    denying_registry.assert_not_registered(name)
    assert "Connection refused by the network policy" in denying_registry.server.log()


def test_addresses_outside_the_denied_networks_register_as_before(denying_registry, sim, name):
    response = denying_registry.register(name=name, **pinned(sim), **password_fields(sim))

    assert response.status_code == 201, response.text


def test_a_malformed_network_stops_the_service_at_start_up(service_env):
    env = {**service_env, "PROXMOXER_DENIED_NETWORKS": "169.254.0.0/16,not-a-network"}
    env.pop("E2E_OPERATOR_TOKEN", None)

    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert (
        "PROXMOXER_DENIED_NETWORKS: 'not-a-network' does not appear to be an IPv4 or IPv6 network"
        in result.stderr
    )
