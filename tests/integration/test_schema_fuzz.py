"""Schemathesis against the API's own OpenAPI schema, in process on the WSGI
application: at least 1,000 generated requests, positive and negative,
authenticated and not, and not one may be a server error (500) or answer
outside the schema (an undocumented status, content type or body).

The fuzzer invents hosts and addresses for ``api_endpoint``, and the real
Proxmox client tries them, so the run is fenced in three ways: the suite's
guard refuses every name look-up (even of localhost) and every connection
outside loopback during it (tests/conftest.py), and the client's network
policy allows only 127.255.255.254, where nothing listens, with short
timeouts. A breach of the guard fails the test.

Marked ``fuzz``: ``pytest -m 'not fuzz'`` leaves it out of a quick run;
``make test`` runs it.
"""

from __future__ import annotations

import collections
import json

import pytest
import schemathesis
import yaml
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.core.failures import Failure
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clusters.api_tokens import create_token
from clusters.proxmox import NetworkPolicy, ProxmoxClient

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

# Half of them requests that fit the schema, half that do not.
CASES_PER_MODE = 600
MINIMUM_CASES = 1_000
# Proxmox unreachable (502) and the database down (503) are answers the
# schema documents; a server error is a 500, or any status the operation
# does not document (status_code_conformance).
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A loopback address where nothing listens: the one place the fuzzed
# registrations may connect to.
NOWHERE = "127.255.255.254"
REGISTER = ("POST", "/api/v1/clusters/")
# Registrations the field rules accept, so that they reach the Proxmox
# client with whatever host the fuzzer makes up: names, IPv4 and IPv6
# literals (anywhere), ports, the https:// prefix or none.
HOSTS = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?(?:\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
    st.just(NOWHERE),
)
ENDPOINTS = st.builds(
    lambda scheme, host, port: f"{scheme}{host}{port}",
    st.sampled_from(["", "https://"]),
    HOSTS.map(lambda host: f"[{host}]" if ":" in host else host),
    st.sampled_from(["", ":8006", ":443", ":1"]),
)


@pytest.fixture
def schema(user):
    """The schema as the API serves it, its requests sent to the WSGI
    application. Like Django's test client, the test keeps its database
    connection across requests (its transaction holds the test's data)."""
    api = APIClient()
    api.force_authenticate(user)
    served = api.get("/api/v1/schema/")
    assert served.status_code == 200
    loaded = schemathesis.openapi.from_dict(yaml.safe_load(served.content))
    loaded.app = WSGIHandler()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield loaded
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fenced(compose, loopback_guard):
    loopback_guard.names_allowed = False
    compose(
        proxmox=ProxmoxClient(
            connect_timeout=0.5,
            read_timeout=0.5,
            network_policy=NetworkPolicy(allowed=[f"{NOWHERE}/32"]),
        )
    )
    return loopback_guard


def test_no_generated_request_is_a_server_error_or_answered_outside_the_schema(
    schema, fenced, user
):
    _, token = create_token(user)
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    findings: list[str] = []

    def run(mode: GenerationMode) -> None:
        @settings(
            max_examples=CASES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=schema.as_strategy(mode),
            authenticated=st.booleans(),
            endpoint=st.none() | ENDPOINTS,
        )
        def one(case, authenticated: bool, endpoint: str | None) -> None:
            reaches_proxmox = (
                endpoint and (case.method, case.path) == REGISTER and isinstance(case.body, dict)
            )
            headers = (
                {"Authorization": f"Token {token}"} if authenticated or reaches_proxmox else {}
            )
            if reaches_proxmox:
                case.body = {
                    "name": str(case.body.get("name") or "fuzzed"),
                    "api_endpoint": endpoint,
                    "username": "root@pam",
                    "password": "fuzz-password",
                }
            response = case.call(headers=headers)
            statuses[(mode.value, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except* Failure as group:
                for failure in group.exceptions:
                    findings.append(
                        f"{mode.value} {case.method} {case.formatted_path} -> "
                        f"{response.status_code}: {failure.title}"
                    )

        one()

    run(GenerationMode.POSITIVE)
    run(GenerationMode.NEGATIVE)

    total = sum(statuses.values())
    summary = json.dumps({f"{mode} {status}": n for (mode, status), n in sorted(statuses.items())})
    assert total >= MINIMUM_CASES, summary
    assert not [status for (_, status) in statuses if status == 500], summary
    assert findings == [], "\n".join(dict.fromkeys(findings))
    # Name look-ups were tried, and refused before any resolver saw them; a
    # connection outside loopback was never even tried.
    assert [b for b in fenced.breaches if not b.startswith("a name look-up")] == []
