"""The registry against a real Proxmox VE cluster (docs/product-contract.md §2;
how to run it: docs/development.md), when one is configured; skipped, with the
reason shown, otherwise.

    PVE_E2E_URL            https://pve1.example.com:8006 (required)
    PVE_E2E_USERNAME       root@pam      } a password login,
    PVE_E2E_PASSWORD       ...           } and/or
    PVE_E2E_TOKEN_ID       root@pam!ci   } an API token
    PVE_E2E_TOKEN_SECRET   ...           }
    PVE_E2E_FINGERPRINT    optional: the node certificate's SHA-256 fingerprint,
                           checked against the one the registry observes
    PVE_E2E_CA_BUNDLE      optional: given to the service as PROXMOX_CA_BUNDLE

Only the service process talks to the cluster; this process talks to the
service on loopback. One wrong-credential attempt is made (PVE logs it as an
authentication failure). Every cluster registered is deregistered again.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Registry, start_service

URL = os.environ.get("PVE_E2E_URL", "")
USERNAME = os.environ.get("PVE_E2E_USERNAME", "")
PASSWORD = os.environ.get("PVE_E2E_PASSWORD", "")
TOKEN_ID = os.environ.get("PVE_E2E_TOKEN_ID", "")
TOKEN_SECRET = os.environ.get("PVE_E2E_TOKEN_SECRET", "")
FINGERPRINT = os.environ.get("PVE_E2E_FINGERPRINT", "")
CA_BUNDLE = os.environ.get("PVE_E2E_CA_BUNDLE", "")

CREDENTIALS: dict[str, dict[str, str]] = {}
if USERNAME and PASSWORD:
    CREDENTIALS["password"] = {"username": USERNAME, "password": PASSWORD}
if TOKEN_ID and TOKEN_SECRET:
    CREDENTIALS["token"] = {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (URL and CREDENTIALS),
        reason="no real cluster configured: set PVE_E2E_URL and PVE_E2E_USERNAME/"
        "PVE_E2E_PASSWORD or PVE_E2E_TOKEN_ID/PVE_E2E_TOKEN_SECRET (see docs/development.md)",
    ),
]

FINGERPRINT_RE = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")


def _normalised(fingerprint: str) -> str:
    digits = fingerprint.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


@pytest.fixture(scope="module")
def real(service_env, e2e_dir, secrets) -> Iterator[Registry]:
    secrets.add(*(value for value in (PASSWORD, TOKEN_SECRET) if value))
    overrides = {"PROXMOX_CONNECT_TIMEOUT": "5", "PROXMOX_READ_TIMEOUT": "15"}
    if CA_BUNDLE:
        overrides["PROXMOX_CA_BUNDLE"] = CA_BUNDLE
    registry = start_service(service_env, e2e_dir / "service-real.log", secrets, **overrides)
    yield registry
    registry.secrets.assert_absent(registry.server.log(), "the service log")
    registry.server.stop()


@pytest.fixture(scope="module")
def trust(real) -> dict[str, object]:
    """How to trust this cluster: its CA if the service already does, else
    the fingerprint it offers (the operator's flow), checked against
    PVE_E2E_FINGERPRINT when given."""
    credentials = next(iter(CREDENTIALS.values()))
    probe = f"e2e-probe-{uuid.uuid4().hex[:6]}"
    response = real.register(name=probe, api_endpoint=URL, **credentials)
    if response.status_code == 201:
        real.delete(response.json()["id"])
        return {}
    assert response.status_code == 502, response.text
    offered = (response.json()["details"] or {}).get("fingerprint")
    assert offered, f"a TLS failure should offer the certificate's fingerprint: {response.text}"
    assert FINGERPRINT_RE.match(offered)
    if FINGERPRINT:
        assert offered == _normalised(FINGERPRINT)
    real.assert_not_registered(probe)
    return {"fingerprint": offered}


@pytest.fixture
def cluster_name() -> str:
    return f"e2e-real-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("kind", ["password", "token"])
def test_registers_checks_and_removes_the_cluster(real, trust, cluster_name, kind):
    if kind not in CREDENTIALS:
        pytest.skip(f"no {kind} credentials configured")
    response = real.register(name=cluster_name, api_endpoint=URL, **trust, **CREDENTIALS[kind])
    if response.status_code == 401 and "second factor" in response.json()["message"]:
        pytest.skip("this account needs a second factor; configure an API token instead")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["auth_method"] == kind
    assert re.match(r"^\d+\.\d+", body["proxmox_version"])
    assert body["node_count"] >= 1
    assert body["status"] in {"healthy", "degraded", "unhealthy", "unknown"}
    if trust:
        assert body["fingerprint"] == trust["fingerprint"]

    refreshed = real.refresh(body["id"]).json()
    assert refreshed["last_error"] is None
    assert refreshed["proxmox_version"] == body["proxmox_version"]
    assert real.delete(body["id"]).status_code == 204


def test_the_api_root_suffix_is_normalised_away(real, trust, cluster_name):
    credentials = next(iter(CREDENTIALS.values()))
    endpoint = URL.rstrip("/") + "/api2/json/"
    response = real.register(name=cluster_name, api_endpoint=endpoint, **trust, **credentials)
    assert response.status_code == 201, response.text
    assert not response.json()["api_endpoint"].endswith("/api2/json")
    real.delete(response.json()["id"])


def test_wrong_credentials_are_401_and_store_nothing(real, trust, cluster_name):
    wrong = str(uuid.uuid4())
    if "token" in CREDENTIALS:
        credentials = {"token_id": TOKEN_ID, "token_secret": wrong}
    else:
        credentials = {"username": USERNAME, "password": wrong}
    response = real.register(name=cluster_name, api_endpoint=URL, **trust, **credentials)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    real.assert_not_registered(cluster_name)


def test_a_wrong_pin_is_refused(real, cluster_name):
    credentials = next(iter(CREDENTIALS.values()))
    wrong = ":".join(["00"] * 32)
    response = real.register(name=cluster_name, api_endpoint=URL, fingerprint=wrong, **credentials)
    assert response.status_code == 502
    assert response.json()["details"]["expected_fingerprint"] == wrong
    real.assert_not_registered(cluster_name)
