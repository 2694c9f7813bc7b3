"""The topology rules on their own (clusters/domain/topology.py): which
endpoints a report teaches, the order a check tries them in, and what
identifies a PVE cluster whichever node or name it is registered under."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clusters.domain import (
    MAX_ENDPOINTS,
    CheckAttempts,
    ClusterStatusEntry,
    ConnectionTarget,
    EndpointHealth,
    FieldInvalid,
    NodeEndpoint,
    NodeEntry,
    ProxmoxReport,
    ProxmoxUnreachable,
    after_check,
    attempt_order,
    discovered_endpoints,
    identity_keys,
    local_node,
    matched_to_nodes,
    parse_endpoint,
    parse_endpoints,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FP = {
    name: ":".join([code] * 32) for name, code in (("pve1", "1A"), ("pve2", "2A"), ("pve3", "3A"))
}
REGISTERED = ConnectionTarget("https://pve.example.com:8006", verify_tls=True)


def report(
    *,
    cluster: str | None = "prod",
    members: dict[str, str | None] | None = None,
    local: str = "pve1",
    fingerprints: dict[str, str | None] | None = None,
    audit: bool = True,
) -> ProxmoxReport:
    members = members if members is not None else {f"pve{i}": f"127.0.31.{i}" for i in (1, 2, 3)}
    fingerprints = fingerprints if fingerprints is not None else {n: FP.get(n) for n in members}
    status = [ClusterStatusEntry("cluster", cluster, quorate=True)] if cluster else []
    status += [
        ClusterStatusEntry("node", name, online=True, ip=ip, local=name == local)
        for name, ip in members.items()
    ]
    nodes = [NodeEntry(name, "online", ssl_fingerprint=fp) for name, fp in fingerprints.items()]
    return ProxmoxReport("9.1.2", status if audit else None, nodes)


# -- what a registration learns ------------------------------------------------------------


def test_every_other_node_becomes_an_endpoint_pinned_to_its_own_certificate():
    learned = discovered_endpoints(report(), parse_endpoint("pve.example.com"))
    assert learned == (
        NodeEndpoint("https://127.0.31.2:8006", "pve2", FP["pve2"]),
        NodeEndpoint("https://127.0.31.3:8006", "pve3", FP["pve3"]),
    )
    assert local_node(report()) == "pve1"


def test_the_registered_port_is_every_nodes_port_and_ipv6_goes_in_brackets():
    members = {"pve1": "127.0.31.1", "pve2": "::1"}
    learned = discovered_endpoints(report(members=members), parse_endpoint("https://pve:8443"))
    assert [e.url for e in learned] == ["https://[::1]:8443"]


@pytest.mark.parametrize(
    ("members", "fingerprints"),
    [
        ({"pve1": "127.0.31.1", "pve2": None}, None),  # no address
        ({"pve1": "127.0.31.1", "pve2": "pve2.internal"}, None),  # not an address
        ({"pve1": "127.0.31.1", "pve2": "127.0.31.2"}, {"pve1": FP["pve1"], "pve2": None}),
        ({"pve1": "127.0.31.1", "pve2": "127.0.31.2"}, {"pve1": FP["pve1"], "pve2": "nope"}),
    ],
    ids=["no-ip", "name-not-address", "no-fingerprint", "bad-fingerprint"],
)
def test_a_node_without_an_address_and_a_fingerprint_to_pin_is_not_learned(members, fingerprints):
    learned = discovered_endpoints(
        report(members=members, fingerprints=fingerprints), parse_endpoint("pve.example.com")
    )
    assert learned == ()


def test_nothing_is_learned_behind_a_reverse_proxys_prefix_or_without_sys_audit():
    assert discovered_endpoints(report(), parse_endpoint("https://proxy.example.com/pve")) == ()
    assert discovered_endpoints(report(audit=False), parse_endpoint("pve.example.com")) == ()


def test_the_registered_address_itself_is_not_learned_twice():
    # Registered through pve2's own address, but the report does not say
    # which node answered (a proxy in front): pve2's url is still not repeated.
    learned = discovered_endpoints(report(local=""), parse_endpoint("127.0.31.2"))
    assert [e.node for e in learned] == ["pve1", "pve3"]


def test_a_report_of_more_nodes_than_any_cluster_has_is_cut():
    members = {f"n{i:03d}": f"127.0.{i // 250}.{i % 250 + 1}" for i in range(100)}
    fingerprints = dict.fromkeys(members, FP["pve1"])
    learned = discovered_endpoints(
        report(members=members, local="n000", fingerprints=fingerprints),
        parse_endpoint("pve.example.com"),
    )
    assert len(learned) == MAX_ENDPOINTS


def test_endpoints_set_by_hand_are_named_after_the_node_at_their_address():
    named = matched_to_nodes(
        (NodeEndpoint("https://127.0.31.3:8006"), NodeEndpoint("https://127.0.99.9:8006")),
        report(),
    )
    assert [e.node for e in named] == ["pve3", None]


# -- endpoints set by hand ---------------------------------------------------------------


def test_a_patchs_endpoints_follow_the_rules_of_api_endpoint():
    parsed = parse_endpoints([{"url": "127.0.31.2", "fingerprint": "2a" * 32}, {"url": "pve3"}])
    assert parsed == (
        NodeEndpoint("https://127.0.31.2:8006", None, FP["pve2"]),
        NodeEndpoint("https://pve3:8006", None, None),
    )
    assert parse_endpoints([]) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://pve2:8006", "must be a list"),
        ([{"fingerprint": "AB"}], 'endpoints[0] must be an object with a "url"'),
        ([{"url": "pve2", "port": 1}], "endpoints[0] has unknown keys: port"),
        ([{"url": "ftp://pve2"}], "endpoints[0]: "),
        ([{"url": "pve2", "fingerprint": "zz"}], "endpoints[0]: Fingerprint must be"),
        ([{"url": "pve2"}, {"url": "https://PVE2:8006"}], "endpoints[1]: https://pve2:8006 is"),
        ([{"url": f"pve{i}"} for i in range(MAX_ENDPOINTS + 1)], f"at most {MAX_ENDPOINTS}"),
    ],
)
def test_a_patchs_endpoints_that_break_a_rule_are_refused_by_position(raw, message):
    with pytest.raises(FieldInvalid) as refused:
        parse_endpoints(raw)
    assert message in str(refused.value)


# -- the order a check tries them in --------------------------------------------------------

NODE2 = NodeEndpoint("https://127.0.31.2:8006", "pve2", FP["pve2"])
NODE3 = NodeEndpoint("https://127.0.31.3:8006", "pve3", FP["pve3"])


def urls(targets):
    return [target.api_endpoint for target in targets]


def test_a_cluster_never_checked_is_tried_registered_first_then_in_order():
    order = attempt_order(REGISTERED, (NODE2, NODE3), {}, now=NOW)
    assert urls(order) == [REGISTERED.api_endpoint, NODE2.url, NODE3.url]
    # Each learned endpoint is pinned to its own node's certificate.
    assert [(t.fingerprint, t.verify_tls) for t in order[1:]] == [
        (FP["pve2"], True),
        (FP["pve3"], True),
    ]


def test_the_endpoint_that_answered_last_comes_first_and_a_failing_one_last():
    health = {
        REGISTERED.api_endpoint: EndpointHealth(NOW - timedelta(minutes=9), NOW),
        NODE2.url: EndpointHealth(last_ok_at=NOW - timedelta(minutes=2)),
        NODE3.url: EndpointHealth(last_ok_at=NOW),
    }
    assert urls(attempt_order(REGISTERED, (NODE2, NODE3), health, now=NOW)) == [
        NODE3.url,
        NODE2.url,
        REGISTERED.api_endpoint,
    ]


def test_a_failing_endpoint_is_tried_first_again_once_its_failure_is_old():
    health = {
        REGISTERED.api_endpoint: EndpointHealth(
            NOW - timedelta(hours=1), NOW - timedelta(minutes=6)
        ),
        NODE2.url: EndpointHealth(last_ok_at=NOW - timedelta(minutes=1)),
    }
    # NODE2 answered last, but the registered endpoint is due for another try.
    order = attempt_order(REGISTERED, (NODE2,), health, now=NOW, retry_after=timedelta(minutes=5))
    assert urls(order) == [REGISTERED.api_endpoint, NODE2.url]
    # Within the retry period, it waits behind the one that answers.
    order = attempt_order(REGISTERED, (NODE2,), health, now=NOW, retry_after=timedelta(minutes=7))
    assert urls(order) == [NODE2.url, REGISTERED.api_endpoint]


def test_a_persons_refresh_tries_the_registered_endpoint_first_whatever_happened():
    health = {
        REGISTERED.api_endpoint: EndpointHealth(None, NOW),
        NODE2.url: EndpointHealth(last_ok_at=NOW),
    }
    order = attempt_order(REGISTERED, (NODE2,), health, now=NOW, fresh=True)
    assert urls(order) == [REGISTERED.api_endpoint, NODE2.url]


def test_an_endpoint_set_without_a_pin_is_verified_as_the_registered_one_is():
    unpinned = NodeEndpoint("https://pve2.example.com:8006")
    for verify in (True, False):
        registered = ConnectionTarget(REGISTERED.api_endpoint, verify_tls=verify)
        [_, target] = attempt_order(registered, (unpinned,), {}, now=NOW)
        assert (target.verify_tls, target.fingerprint) == (verify, None)


def test_a_checks_attempts_update_the_endpoints_it_tried_only():
    before = {NODE3.url: EndpointHealth(last_ok_at=NOW - timedelta(hours=1))}
    attempts = CheckAttempts(
        report(),
        ConnectionTarget(NODE2.url),
        ((REGISTERED, ProxmoxUnreachable("down")),),
    )
    after = after_check(before, attempts, NOW)
    assert after == {
        REGISTERED.api_endpoint: EndpointHealth(None, NOW),
        NODE2.url: EndpointHealth(NOW, None),
        NODE3.url: before[NODE3.url],
    }
    assert after[REGISTERED.api_endpoint].failing and not after[NODE2.url].failing


# -- one cluster, one registration --------------------------------------------------------------


def test_a_cluster_is_the_same_through_any_of_its_nodes():
    through_node1 = identity_keys(report(local="pve1"))
    through_node3 = identity_keys(report(local="pve3"))
    assert through_node1 == through_node3
    assert len(through_node1) == 2  # its name and node set, and the node set with certificates


def test_a_registration_without_sys_audit_meets_one_with_it():
    assert identity_keys(report(audit=False)) & identity_keys(report())


def test_two_clusters_of_the_same_node_names_are_two():
    other_fingerprints = {n: ":".join(["9F"] * 32) for n in ("pve1", "pve2", "pve3")}
    assert not identity_keys(report(cluster="lab", fingerprints=other_fingerprints)) & (
        identity_keys(report())
    )


def test_a_standalone_node_is_its_name_and_certificate():
    standalone = report(cluster=None, members={"pve": "127.0.0.1"}, local="pve",
                        fingerprints={"pve": FP["pve1"]})  # fmt: skip
    same = report(cluster=None, members={"pve": "127.0.0.1"}, local="pve",
                  fingerprints={"pve": FP["pve1"]}, audit=False)  # fmt: skip
    another = report(cluster=None, members={"pve": "127.0.0.1"}, local="pve",
                     fingerprints={"pve": FP["pve2"]})  # fmt: skip
    assert identity_keys(standalone) == identity_keys(same)
    assert len(identity_keys(standalone)) == 1
    # Every fresh install is called "pve": the certificate tells them apart.
    assert not identity_keys(standalone) & identity_keys(another)


def test_nothing_identifies_a_node_that_shows_no_certificate():
    anonymous = report(
        cluster=None, members={"pve": "127.0.0.1"}, local="pve", fingerprints={"pve": None}
    )
    assert identity_keys(anonymous) == frozenset()
