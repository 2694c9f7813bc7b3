"""Fixtures shared by every tier.

The network guard makes "tests talk only to loopback" a rule that fails a
test, rather than a convention: a stray look-up of pve.example.com raises,
and so does a connection to any address outside 127.0.0.0/8 and ::1 (the
fuzz run also forbids name look-ups altogether).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

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


class LoopbackGuard:
    """What the suite's processes may reach: name look-ups only of loopback
    names (none at all when ``names_allowed`` is off, as during the fuzz
    run), and connections only to loopback addresses. A breach raises
    OSError in the code that tried, which the code under test then reports
    like any other network failure; ``breaches`` lists them for the test."""

    def __init__(self) -> None:
        self.names_allowed = True
        self.breaches: list[str] = []

    def refuse(self, what: str) -> OSError:
        self.breaches.append(what)
        return OSError(f"tests may only reach loopback, not {what}")

    def check_lookup(self, host: object) -> None:
        if host is None:
            return
        if not self.names_allowed and not _is_address(host):
            raise self.refuse(f"a name look-up of {host!r}")
        if not _is_loopback(host):
            raise self.refuse(repr(host))

    def check_connect(self, sock: socket.socket, address: object) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets are local
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_address(host) or not _is_loopback(host):
            raise self.refuse(f"a connection to {host!r}")


def _is_address(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> LoopbackGuard:
    guard = LoopbackGuard()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        guard.check_lookup(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def refused_lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise guard.refuse(f"a look-up of {host!r} outside getaddrinfo")

    def guarded_connect(sock, address):  # type: ignore[no-untyped-def]
        guard.check_connect(sock, address)
        return real_connect(sock, address)

    def guarded_connect_ex(sock, address):  # type: ignore[no-untyped-def]
        guard.check_connect(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    for lookup in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        monkeypatch.setattr(socket, lookup, refused_lookup)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    return guard


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


def secret_encodings(secret: str) -> dict[str, str]:
    """``secret`` as a server or a log might spell it: plain, URL- and
    form-encoded, JSON-escaped, base64 (the part of the encoding that does
    not depend on padding). Written out here rather than taken from the
    product's redaction, so the suite checks it instead of agreeing with it."""
    as_json = json.dumps(secret)[1:-1]
    data = secret.encode(errors="surrogatepass")  # the suite tries lone surrogates too
    base64_core = base64.b64encode(data).decode()[: len(data) * 8 // 6]
    forms = {
        "plain": secret,
        "URL-encoded": quote(data, safe=""),
        "URL-encoded (lower-case hex)": re.sub(
            "%[0-9A-F]{2}", lambda match: match.group(0).lower(), quote(data, safe="")
        ),
        "form-encoded": quote_plus(data),
        "JSON-escaped": as_json,
        "JSON-escaped (every character)": "".join(f"\\u{ord(char):04x}" for char in secret),
        "base64": base64_core,
        "URL-safe base64": base64_core.replace("+", "-").replace("/", "_"),
    }
    return {kind: form for kind, form in forms.items() if len(form) >= 4}


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
    """Fails, without printing the secret or the text that holds it, when
    ``text`` holds ``secret`` in any of its encodings."""
    haystack = text.decode(errors="replace") if isinstance(text, bytes) else text
    for kind, form in secret_encodings(secret).items():
        if form in haystack:
            pytest.fail(f"a secret appeared in {where} ({kind})", pytrace=False)
