"""Who may do what, endpoint by endpoint (docs/product-contract.md §13): one
table of every endpoint, method and role with the status each role gets,
checked through the whole HTTP stack (the model is NetBox's
``APIViewTestCases``).

To cover a new endpoint, add a row to ``MATRIX``: the method, the path
(``{id}`` stands for a registered cluster's id), the status for each role in
``ROLES`` order, and the request body if it needs one.
``test_every_api_route_has_a_row`` fails until every route the API answers
has its rows.

Besides the status, every refused call (401, 403) is checked to have changed
nothing and reached no Proxmox, and every 403 to be in the audit log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from clusters.domain import Actor, AuditAction, AuditQuery, RegistrationRequest
from tests.fakes import FakeProxmox
from tests.roles import ROLES, client_for

pytestmark = pytest.mark.django_db

NEW = {  # a registration of another PVE cluster than the one the fixture registered
    "name": "new-cluster",
    "api_endpoint": "new.example.com",
    "username": "root@pam",
    "password": "Pa55-matrix-secret-5d1a",
}


EDIT = {"name": "renamed"}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: dict[str, int]
    body: dict[str, Any] | None = field(default=None)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def row(method: str, path: str, *statuses: int, body: dict[str, Any] | None = None) -> Row:
    assert len(statuses) == len(ROLES), f"{method} {path}: one status per role {ROLES}"
    return Row(method, path, dict(zip(ROLES, statuses, strict=True)), body)


# fmt: off
MATRIX = [
    #   method     path                             anonymous no_role viewer operator superuser
    row("GET",     "/api/v1/",                        401, 403, 200, 200, 200),
    row("GET",     "/api/v1",                         401, 403, 200, 200, 200),
    row("GET",     "/api/v1/schema",                  401, 403, 200, 200, 200),
    row("GET",     "/api/v1/docs",                    401, 403, 200, 200, 200),
    row("GET",     "/api/v1/clusters",                401, 403, 200, 200, 200),
    row("HEAD",    "/api/v1/clusters",                401, 403, 200, 200, 200),
    row("OPTIONS", "/api/v1/clusters",                401, 403, 200, 200, 200),
    row("POST",    "/api/v1/clusters",                401, 403, 403, 201, 201, body=NEW),
    row("PUT",     "/api/v1/clusters",                401, 403, 403, 405, 405, body=NEW),
    row("DELETE",  "/api/v1/clusters",                401, 403, 403, 405, 405),
    row("GET",     "/api/v1/clusters/{id}",           401, 403, 200, 200, 200),
    row("DELETE",  "/api/v1/clusters/{id}",           401, 403, 403, 204, 204),
    row("PATCH",   "/api/v1/clusters/{id}",           401, 403, 403, 200, 200, body=EDIT),
    row("PUT",     "/api/v1/clusters/{id}",           401, 403, 403, 405, 405, body=NEW),
    row("POST",    "/api/v1/clusters/{id}",           401, 403, 403, 405, 405, body=NEW),
    row("POST",    "/api/v1/clusters/{id}/refresh",   401, 403, 403, 200, 200),
    row("GET",     "/api/v1/clusters/{id}/refresh",   401, 403, 405, 405, 405),
    row("GET",     "/api/v1/clusters/{id}/nodes",     401, 403, 200, 200, 200),
    row("POST",    "/api/v1/clusters/{id}/nodes",     401, 403, 403, 405, 405),
    row("GET",     "/api/v1/clusters/{id}/history",   401, 403, 200, 200, 200),
    row("DELETE",  "/api/v1/clusters/{id}/history",   401, 403, 403, 405, 405),
    row("GET",     "/api/v1/audit-events",            401, 403, 403, 403, 200),
    row("POST",    "/api/v1/audit-events",            401, 403, 403, 403, 405, body={}),
    row("DELETE",  "/api/v1/audit-events",            401, 403, 403, 403, 405),
    row("GET",     "/health",                         200, 200, 200, 200, 200),
    row("GET",     "/health/ready",                   200, 200, 200, 200, 200),
]
# fmt: on

REFUSED = {401: "Unauthorized", 403: "Forbidden"}


@pytest.fixture
def registry(compose):
    """A registry holding one cluster, with a fake Proxmox behind it."""
    proxmox = FakeProxmox()
    services = compose(proxmox=proxmox)
    cluster = services.clusters.register(
        RegistrationRequest(
            name="prod", api_endpoint="pve.example.com", username="root@pam", password="pw-1"
        ),
        actor=Actor.command_line(),
    )
    proxmox.calls.clear()
    return services, proxmox, cluster


def snapshot(services) -> list[Any]:
    return list(services.clusters.all_clusters(actor=Actor.system()))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("entry", MATRIX, ids=str)
def test_each_role_gets_the_status_of_the_matrix(entry: Row, role: str, registry) -> None:
    services, proxmox, cluster = registry
    client = client_for(role)
    before = snapshot(services)
    path = entry.path.replace("{id}", str(cluster.id))

    response = client.generic(
        entry.method,
        path,
        data=_json(entry.body),
        content_type="application/json",
        HTTP_ACCEPT="application/json, */*",
    )

    expected = entry.expected[role]
    assert response.status_code == expected, f"{entry} as {role}: {response.content[:300]!r}"
    if expected in REFUSED:
        if entry.method != "HEAD":
            assert response.json()["code"] == REFUSED[expected]
        assert snapshot(services) == before, "a refused call changes nothing"
        assert proxmox.calls == [], "a refused call reaches no Proxmox"
    if expected == 403:
        events = services.audit.events(_everything(), actor=Actor.system()).events
        assert events[0].action == AuditAction.AUTH_FORBIDDEN
        assert events[0].actor == role.replace("_", "-")


def _json(body: dict[str, Any] | None) -> str:
    return json.dumps(body) if body is not None else ""


def _everything() -> AuditQuery:
    return AuditQuery()


# -- the matrix covers every route ------------------------------------------------------------


def _api_routes() -> dict[str, set[str]]:
    """Every route under /api/v1/ with the methods its view implements:
    "/api/v1/clusters/{id}/refresh" → {"POST"}."""
    routes: dict[str, set[str]] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            regex = prefix + _regex(pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, regex)
            elif isinstance(pattern, URLPattern) and regex.startswith("api/v1"):
                if "format" in regex:
                    continue  # DRF's format-suffix twins of the same routes
                path = "/" + re.sub(r"\(\?P<pk>[^)]*\)", "{id}", regex)
                path = path.replace("/?", "/").replace("$", "").replace("^", "")
                path = path.rstrip("/") if path != "/api/v1/" else path
                routes.setdefault(path, set()).update(_methods(pattern.callback))

    walk(get_resolver().url_patterns, "")
    return routes


def _regex(pattern: URLPattern | URLResolver) -> str:
    return str(pattern.pattern).lstrip("^")


def _methods(view: Any) -> set[str]:
    actions = getattr(view, "actions", None)
    if actions:  # HEAD answers as GET does; a HEAD row is a sample, not required
        return {method.upper() for method in actions} - {"HEAD", "OPTIONS"}
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    return {
        method.upper()
        for method in ("get", "post", "put", "patch", "delete")
        if view_class is not None and hasattr(view_class, method)
    }


def test_every_api_route_has_a_row() -> None:
    covered = {(entry.method, entry.path) for entry in MATRIX}
    missing = sorted(
        f"{method} {path}"
        for path, methods in _api_routes().items()
        for method in methods
        if (method, path) not in covered
    )
    assert missing == [], f"add these to MATRIX in {__name__}: {missing}"
