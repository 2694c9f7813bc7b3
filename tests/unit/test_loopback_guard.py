"""The suite's network guard (tests/conftest.py) judged without a packet:
its checks are called directly, never a real connect to what it refuses."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import LoopbackGuard


@pytest.fixture
def tcp():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


@pytest.mark.parametrize("address", ["203.0.113.5", "10.0.0.1", "169.254.169.254", "pve.example"])
def test_connections_outside_loopback_are_refused(tcp, address):
    guard = LoopbackGuard()

    with pytest.raises(OSError, match="tests may only reach loopback"):
        guard.check_connect(tcp, (address, 8006))

    assert guard.breaches == [f"a connection to {address!r}"]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.255.254", "::1"])
def test_connections_to_loopback_pass(tcp, address):
    guard = LoopbackGuard()

    guard.check_connect(tcp, (address, 8006))

    assert guard.breaches == []


def test_without_names_not_even_localhost_is_looked_up():
    guard = LoopbackGuard()
    guard.check_lookup("localhost")
    guard.names_allowed = False

    with pytest.raises(OSError):
        guard.check_lookup("localhost")
    guard.check_lookup("127.0.0.1")

    assert guard.breaches == ["a name look-up of 'localhost'"]


def test_the_guard_is_installed_for_every_test(loopback_guard):
    with pytest.raises(OSError, match="tests may only reach loopback"):
        socket.getaddrinfo("pve.example.com", 8006)
    with pytest.raises(OSError, match="tests may only reach loopback"):
        socket.gethostbyname("pve.example.com")

    assert len(loopback_guard.breaches) == 2
