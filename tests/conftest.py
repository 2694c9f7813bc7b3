"""Fixtures shared by every tier.

The network guard makes "tests talk only to loopback" a rule that fails a
test, rather than a convention: a stray lookup of pve.example.com raises.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clusters.bootstrap import Services, bootstrap
from clusters.services import UnitOfWorkFactory
from clusters.wiring import (
    install_services,
    proxmox_client_from_settings,
    unit_of_work_from_settings,
)
from tests import postgres, redis_server

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and not _is_loopback(host):
            raise OSError(f"tests may only reach loopback, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture
def unit_of_work() -> UnitOfWorkFactory:
    """The storage the settings choose (an empty in-memory registry), for a
    test to look into what the service did."""
    return unit_of_work_from_settings()


@pytest.fixture(autouse=True)
def services(unit_of_work: UnitOfWorkFactory) -> Iterator[Services]:
    """Each test starts with services composed as the settings say, over
    ``unit_of_work`` and the real Proxmox client."""
    composed = bootstrap(unit_of_work=unit_of_work, proxmox=proxmox_client_from_settings())
    install_services(composed)
    yield composed
    install_services(None)


@pytest.fixture
def compose(unit_of_work: UnitOfWorkFactory) -> Callable[..., Services]:
    """Install services composed from explicit collaborators, e.g.
    ``compose(proxmox=FakeProxmox())``; whatever is not given is what the
    ``services`` fixture uses."""

    def composed(**collaborators: Any) -> Services:
        collaborators.setdefault("unit_of_work", unit_of_work)
        collaborators.setdefault("proxmox", proxmox_client_from_settings())
        built = bootstrap(**collaborators)
        install_services(built)
        return built

    return composed


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None,
) -> Iterator[None]:
    """pytest-django's hook before it creates the test databases: the
    PostgreSQL one is made from a template that sorts text like en-US, so
    the contract's ordering tests prove the backend does not depend on the
    server's locale."""
    from django.conf import settings

    if postgres.ALIAS not in settings.DATABASES:
        yield
        return
    with postgres.english_collation_template() as template:
        if template is not None:
            settings.DATABASES[postgres.ALIAS]["TEST"]["TEMPLATE"] = template
        yield


@pytest.fixture(autouse=True)
def _postgres_or_skip(request: pytest.FixtureRequest) -> None:
    """Tests marked ``postgres`` skip, with the reason, when the server of
    DATABASE_URL_POSTGRES does not answer, and fail in CI (tests/postgres.py)."""
    if request.node.get_closest_marker("postgres") is not None:
        postgres.require()


@pytest.fixture(autouse=True)
def _redis_or_skip(request: pytest.FixtureRequest) -> None:
    """Tests marked ``redis`` skip, with the reason, when the Redis server of
    REDIS_URL_TESTS does not answer, and fail in CI (tests/redis_server.py)."""
    if request.node.get_closest_marker("redis") is not None:
        redis_server.require()


def with_role(user: Any, role: str) -> Any:
    """``user`` put in the group of a role (``operators`` or ``viewers``).

    The groups come from a migration; a transactional test's flush empties
    every table, so they are made again where a flush removed them.
    """
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def assert_secret_absent(secret: str, text: str | bytes, where: str) -> None:
    """Fails without printing the secret or the text that holds it."""
    haystack = text.decode(errors="replace") if isinstance(text, bytes) else text
    if secret in haystack:
        pytest.fail(f"a secret appeared in {where}", pytrace=False)
