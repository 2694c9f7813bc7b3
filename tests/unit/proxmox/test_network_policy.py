"""The network policy's rules (clusters/proxmox/network_policy.py), judged on
addresses alone: nothing here opens a socket or asks a resolver (names
resolve through a table). Connections under the policy, on loopback:
tests/integration/proxmox/test_network_policy_over_tls.py."""

from __future__ import annotations

import socket

import pytest

from clusters.domain import NetworkPolicyRefused
from clusters.proxmox.network_policy import DEFAULT_DENIED_NETWORKS, NetworkPolicy, parse_networks


class Table:
    """A resolver that answers from a dict and counts its look-ups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not have been looked up")


# -- the default list ------------------------------------------------------------------


def test_the_default_denies_cloud_metadata_and_link_local_networks():
    assert DEFAULT_DENIED_NETWORKS == ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("169.254.169.254", "169.254.0.0/16"),  # AWS, GCP, Azure, OpenStack metadata
        ("169.254.0.1", "169.254.0.0/16"),
        ("fe80::1", "fe80::/10"),
        ("febf:ffff::1", "fe80::/10"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),  # AWS metadata over IPv6
        ("::ffff:169.254.169.254", "169.254.0.0/16"),  # IPv4-mapped
    ],
)
def test_the_default_policy_refuses_metadata_and_link_local_addresses(address, network):
    with pytest.raises(NetworkPolicyRefused) as refused:
        NetworkPolicy(resolver=no_resolver).check(address)

    assert refused.value.message.endswith(
        f": {network} is a denied network (PROXMOXER_DENIED_NETWORKS)"
    )
    assert refused.value.rule == f"PROXMOXER_DENIED_NETWORKS {network}"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.10", "2001:db8::5", "fd00:ec2::253", "1.1.1.1"],
)
def test_the_default_policy_allows_every_other_host_address(address):
    NetworkPolicy(resolver=no_resolver).check(address)


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "::ffff:0.0.0.0"],  # noqa: S104 - judged, never bound
)
def test_addresses_of_no_host_are_refused_whatever_the_lists_say(address):
    policy = NetworkPolicy(denied=[], allowed=["0.0.0.0/0", "::/0"], resolver=no_resolver)

    with pytest.raises(NetworkPolicyRefused, match="not the address of a host"):
        policy.check(address)


# -- configured lists ------------------------------------------------------------------


def test_a_denied_loopback_network_names_the_rule():
    policy = NetworkPolicy(denied=["127.0.0.2/32"], resolver=no_resolver)

    with pytest.raises(NetworkPolicyRefused) as refused:
        policy.check("127.0.0.2")

    assert refused.value.message == (
        "The network policy refuses 127.0.0.2: 127.0.0.2/32 is a denied network "
        "(PROXMOXER_DENIED_NETWORKS)"
    )
    assert refused.value.details == {
        "address": "127.0.0.2",
        "rule": "PROXMOXER_DENIED_NETWORKS 127.0.0.2/32",
    }
    policy.check("127.0.0.1")


def test_allowed_networks_refuse_everything_outside_them():
    policy = NetworkPolicy(allowed=["127.0.0.0/8", "::1/128"], resolver=no_resolver)

    policy.check("127.0.0.9")
    policy.check("::1")
    policy.check("::ffff:127.0.0.1")
    with pytest.raises(NetworkPolicyRefused) as refused:
        policy.check("10.0.0.5")
    assert refused.value.message == (
        "The network policy refuses 10.0.0.5: it is outside PROXMOXER_ALLOWED_NETWORKS"
    )
    assert refused.value.rule == "PROXMOXER_ALLOWED_NETWORKS"


def test_denied_networks_win_over_allowed_ones():
    policy = NetworkPolicy(denied=["127.0.0.2/32"], allowed=["127.0.0.0/8"], resolver=no_resolver)

    with pytest.raises(NetworkPolicyRefused, match="denied network"):
        policy.check("127.0.0.2")


def test_an_empty_denied_list_denies_nothing_and_no_allowed_list_allows_everything():
    policy = NetworkPolicy(denied=[], allowed=None, resolver=no_resolver)

    policy.check("169.254.169.254")
    assert policy.allowed is None


def test_networks_are_parsed_with_host_bits_dropped_and_garbage_named():
    assert [str(n) for n in parse_networks([" 10.1.2.3/8 ", "", "fd00::1/8", "127.0.0.2"])] == [
        "10.0.0.0/8",
        "fd00::/8",
        "127.0.0.2/32",
    ]
    with pytest.raises(ValueError, match="not-a-network"):
        parse_networks(["10.0.0.0/8", "not-a-network"])


# -- names -------------------------------------------------------------------------------


def test_a_name_is_resolved_once_and_every_address_is_checked():
    table = Table({"pve1.test": ["127.0.0.1", "127.0.0.2"]})
    policy = NetworkPolicy(denied=["127.0.0.2/32"], resolver=table)

    with pytest.raises(NetworkPolicyRefused) as refused:
        policy.addresses("pve1.test", 8006)

    assert refused.value.message == (
        "The network policy refuses pve1.test at 127.0.0.2: 127.0.0.2/32 is a denied network "
        "(PROXMOXER_DENIED_NETWORKS)"
    )
    assert table.lookups == ["pve1.test"]


def test_a_name_yields_its_checked_addresses_in_the_resolvers_order_without_repeats():
    table = Table({"pve1.test": ["::1", "127.0.0.1", "::1"]})

    assert NetworkPolicy(resolver=table).addresses("pve1.test", 8006) == ["::1", "127.0.0.1"]


def test_an_address_literal_is_not_looked_up():
    policy = NetworkPolicy(resolver=no_resolver)

    assert policy.addresses("127.0.0.1", 8006) == ["127.0.0.1"]
    assert policy.addresses("[::1]", 8006) == ["::1"]


def test_a_name_that_does_not_resolve_is_a_resolution_error_not_a_refusal():
    with pytest.raises(socket.gaierror):
        NetworkPolicy(resolver=Table({})).addresses("nowhere.test", 8006)
    with pytest.raises(socket.gaierror):
        NetworkPolicy(resolver=Table({"empty.test": []})).addresses("empty.test", 8006)


def test_the_policy_shows_its_rules():
    policy = NetworkPolicy(denied=["169.254.0.0/16"], allowed=["10.0.0.0/8"])

    assert repr(policy) == "NetworkPolicy(denied=169.254.0.0/16, allowed=10.0.0.0/8)"
