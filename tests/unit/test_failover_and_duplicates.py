"""A cluster's topology in the use cases (docs/product-contract.md §10), on
the in-memory backend with a fake Proxmox and a fake clock: endpoints
learned at registration, failover and ``degraded`` when the registered
node is down, endpoints set by PATCH, and one registration per PVE
cluster."""

from __future__ import annotations

import logging

import pytest

from clusters.bootstrap import Services, bootstrap
from clusters.domain import (
    Actor,
    ClusterAlreadyRegistered,
    ClusterStatus,
    EditRequest,
    NetworkPolicyRefused,
    NodeEndpoint,
    ProxmoxAuthenticationFailed,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    RegistrationRequest,
    ValidationFailed,
)
from clusters.repositories.memory import InMemoryClusterRepository, InMemoryUnitOfWork
from clusters.services import CheckResult
from tests.conftest import assert_secret_absent
from tests.fakes import FakeClock, FakeProxmox

OPERATOR = Actor("operator", groups=frozenset({"operators"}))
REGISTERED = "https://pve.example.com:8006"
NODE2, NODE3 = "https://127.0.31.2:8006", "https://127.0.31.3:8006"
PASSWORD = "Pa55-topology-7c1e"


@pytest.fixture
def proxmox() -> FakeProxmox:
    return FakeProxmox(one_cluster=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repository() -> InMemoryClusterRepository:
    return InMemoryClusterRepository()


@pytest.fixture
def services(repository, proxmox, clock) -> Services:
    return bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(repository), proxmox=proxmox, clock=clock
    )


def register(services: Services, name: str = "prod", **fields: object):
    request = RegistrationRequest(
        **{
            "name": name,
            "api_endpoint": "pve.example.com",
            "username": "root@pam",
            "password": PASSWORD,
            **fields,
        }
    )
    return services.clusters.register(request, actor=OPERATOR)


def background_check(services: Services, clock: FakeClock):
    clock.advance(minutes=2)
    [outcome] = services.checks.check_due()
    return outcome.cluster


def policy_refusal(address: str) -> NetworkPolicyRefused:
    return NetworkPolicyRefused(
        f"The network policy refuses {address}: it is outside PROXMOXER_ALLOWED_NETWORKS",
        address=address,
        rule="outside PROXMOXER_ALLOWED_NETWORKS",
    )


def tried(proxmox: FakeProxmox) -> list[str]:
    urls = [target.api_endpoint for target, _ in proxmox.checks]
    proxmox.checks.clear()
    return urls


# -- learned at registration ------------------------------------------------------------


def test_registration_learns_every_other_node_pinned_to_its_certificate(services):
    cluster = register(services)

    assert cluster.registered_node == "pve1"
    assert cluster.endpoints == (
        NodeEndpoint(NODE2, "pve2", ":".join(["2A"] * 32)),
        NodeEndpoint(NODE3, "pve3", ":".join(["3A"] * 32)),
    )
    assert cluster.discover_endpoints is True


def test_without_discovery_the_registered_endpoint_is_the_only_one(services, proxmox, clock):
    cluster = register(services, discover_endpoints=False)
    assert (cluster.endpoints, cluster.discover_endpoints) == ((), False)

    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("Could not connect to pve1")
    checked = background_check(services, clock)

    assert checked.status is ClusterStatus.UNHEALTHY
    assert tried(proxmox) == [REGISTERED]


# -- failover ----------------------------------------------------------------------------------


def test_a_registered_node_down_leaves_the_cluster_degraded_through_another(
    services, proxmox, clock, caplog
):
    cluster = register(services)
    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("Could not connect to pve1: refused")

    with caplog.at_level(logging.WARNING, logger="clusters"):
        checked = background_check(services, clock)

    assert checked.status is ClusterStatus.DEGRADED
    assert checked.last_error == f"Could not connect to pve1: refused; answered through {NODE2}"
    assert checked.nodes_online == 3 and checked.version == cluster.version
    assert tried(proxmox) == [REGISTERED, NODE2]
    health = checked.endpoint_health
    assert health[REGISTERED].failing and health[NODE2].last_ok_at == clock.now
    assert f"Proxmox API request failed, endpoint={REGISTERED}" in caplog.text
    # The status history says why.
    [change] = services.checks.history(cluster.id, actor=OPERATOR, limit=1).events
    assert change.to_status is ClusterStatus.DEGRADED
    assert "the registered endpoint does not answer" in change.reason


def test_the_next_check_goes_to_the_node_that_answered_and_logs_nothing_new(
    services, proxmox, clock, caplog
):
    register(services)
    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("down")
    background_check(services, clock)
    tried(proxmox)
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="clusters"):
        checked = background_check(services, clock)

    # A dead endpoint costs the next checks nothing while another answers.
    assert tried(proxmox) == [NODE2]
    assert checked.status is ClusterStatus.DEGRADED  # still not back, as far as anyone knows
    assert checked.last_error == f"down; answered through {NODE2}"
    assert caplog.text == ""


def test_a_registered_node_back_is_noticed_by_the_retry_and_by_a_persons_refresh(
    services, proxmox, clock
):
    cluster = register(services)
    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("down")
    background_check(services, clock)
    del proxmox.unreachable[REGISTERED]
    tried(proxmox)

    refreshed = services.checks.refresh(cluster.id, actor=OPERATOR)

    assert tried(proxmox) == [REGISTERED]
    assert (refreshed.status, refreshed.last_error) == (ClusterStatus.HEALTHY, None)

    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("down")
    background_check(services, clock)
    del proxmox.unreachable[REGISTERED]
    background_check(services, clock)  # within the retry period: node 2 first
    tried(proxmox)
    clock.advance(minutes=5)
    back = background_check(services, clock)

    assert tried(proxmox) == [REGISTERED]
    assert back.status is ClusterStatus.HEALTHY


def test_no_endpoint_answering_is_unhealthy_with_the_registered_endpoints_error(
    services, proxmox, clock
):
    register(services)
    proxmox.unreachable.update(
        {
            REGISTERED: ProxmoxUnreachable("Could not connect to pve1"),
            NODE2: ProxmoxUnreachable("Could not connect to pve2"),
            NODE3: ProxmoxUnreachable("Could not connect to pve3"),
        }
    )

    checked = background_check(services, clock)

    assert (checked.status, checked.last_error) == (
        ClusterStatus.UNHEALTHY,
        "Could not connect to pve1",
    )
    assert tried(proxmox) == [REGISTERED, NODE2, NODE3]
    assert all(state.failing for state in checked.endpoint_health.values())


def test_a_registered_certificate_replaced_still_asks_for_trust_while_another_answers(
    services, proxmox, clock
):
    observed = ":".join(["EE"] * 32)
    register(services)
    proxmox.unreachable[REGISTERED] = ProxmoxTLSError(
        "The certificate does not match", details={"fingerprint": observed}
    )

    checked = background_check(services, clock)

    assert checked.status is ClusterStatus.DEGRADED
    assert checked.last_error_details == {"fingerprint": observed}
    # The next check goes to node 2 first; the certificate to trust stays shown.
    again = background_check(services, clock)
    assert tried(proxmox)[-1] == NODE2
    assert (again.last_error, again.last_error_details) == (
        checked.last_error,
        {"fingerprint": observed},
    )


def test_an_endpoint_the_network_policy_refuses_is_passed_over_and_said_once(
    services, proxmox, clock, caplog
):
    register(services)
    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("down")
    proxmox.unreachable[NODE2] = policy_refusal("127.0.31.2")

    with caplog.at_level(logging.WARNING, logger="clusters"):
        checked = background_check(services, clock)
        refusals = caplog.text.count("Connection refused by the network policy")
        background_check(services, clock)

    assert checked.status is ClusterStatus.DEGRADED
    assert tried(proxmox) == [REGISTERED, NODE2, NODE3, NODE3]
    assert f"Connection refused by the network policy, endpoint={NODE2}" in caplog.text
    assert refusals == 1
    assert caplog.text.count("Connection refused by the network policy") == 1


def test_a_policy_refusal_is_said_when_no_endpoint_answers_too_and_only_once(
    services, proxmox, clock, caplog
):
    register(services)
    proxmox.unreachable.update(
        {
            REGISTERED: policy_refusal("127.0.31.1"),
            NODE2: policy_refusal("127.0.31.2"),
            NODE3: ProxmoxUnreachable("down"),
        }
    )
    clock.advance(minutes=2)

    with caplog.at_level(logging.WARNING, logger="clusters"):
        [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.FAILED  # the registered endpoint's refusal
    lines = [r.getMessage() for r in caplog.records if "by the network policy" in r.getMessage()]
    assert lines == [
        f"Connection refused by the network policy, endpoint={NODE2}, error="
        "The network policy refuses 127.0.31.2: it is outside PROXMOXER_ALLOWED_NETWORKS",
        f"Connection refused by the network policy, endpoint={REGISTERED}, error="
        "The network policy refuses 127.0.31.1: it is outside PROXMOXER_ALLOWED_NETWORKS",
    ]


def test_refused_credentials_are_not_tried_on_every_node(services, proxmox, clock):
    register(services)
    proxmox.error = ProxmoxAuthenticationFailed("Proxmox refused the credentials of root@pam")

    checked = background_check(services, clock)

    assert checked.status is ClusterStatus.UNKNOWN
    assert tried(proxmox) == [REGISTERED]


# -- endpoints by PATCH ---------------------------------------------------------------------------


def test_endpoints_set_by_patch_replace_the_learned_ones_and_stop_learning(services, proxmox):
    cluster = register(services)
    pin = ":".join(["AB"] * 32)

    edited = services.clusters.edit(
        cluster.id,
        EditRequest(endpoints=[{"url": "127.0.31.3", "fingerprint": pin}]),
        actor=OPERATOR,
    )

    assert edited.endpoints == (NodeEndpoint(NODE3, "pve3", pin),)
    assert (edited.discover_endpoints, edited.version) == (False, 2)
    # Changing the connection is proven first, through the registered endpoint.
    assert [target.api_endpoint for target, _ in proxmox.calls][-1] == REGISTERED


def test_discovery_turned_off_forgets_the_learned_endpoints_and_on_again_relearns(services):
    cluster = register(services)

    off = services.clusters.edit(cluster.id, EditRequest(discover_endpoints=False), actor=OPERATOR)
    on = services.clusters.edit(cluster.id, EditRequest(discover_endpoints=True), actor=OPERATOR)

    assert (off.endpoints, off.discover_endpoints) == ((), False)
    assert [e.node for e in on.endpoints] == ["pve2", "pve3"] and on.discover_endpoints


def test_an_unchanged_discovery_is_no_change(services, proxmox):
    cluster = register(services)
    calls = len(proxmox.calls)

    same = services.clusters.edit(cluster.id, EditRequest(discover_endpoints=True), actor=OPERATOR)

    assert (same.version, len(proxmox.calls)) == (1, calls)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"endpoints": [{"url": "ftp://x"}]}, "endpoints"),
        ({"endpoints": [], "discover_endpoints": True}, "discover_endpoints"),
    ],
)
def test_endpoints_that_break_a_rule_change_nothing(services, proxmox, request_fields, field):
    cluster = register(services)
    calls = len(proxmox.calls)

    with pytest.raises(ValidationFailed) as refused:
        services.clusters.edit(cluster.id, EditRequest(**request_fields), actor=OPERATOR)

    assert field in (refused.value.details or {})
    assert services.clusters.get_cluster(cluster.id, actor=OPERATOR) == cluster
    assert len(proxmox.calls) == calls


# -- one cluster, one registration ------------------------------------------------------------


@pytest.mark.parametrize("through", ["pve.example.com", "127.0.31.3", "other-name.example.com"])
def test_a_cluster_registered_again_through_any_node_is_refused(services, proxmox, through):
    first = register(services)

    with pytest.raises(ClusterAlreadyRegistered) as refused:
        register(services, "prod-again", api_endpoint=through)

    assert refused.value.details == {"existing_id": str(first.id), "existing_name": "prod"}
    assert [c.id for c in services.clusters.all_clusters(actor=OPERATOR)] == [first.id]
    assert_secret_absent(PASSWORD, str(refused.value), "the refusal")


def test_a_token_made_for_a_refused_duplicate_is_deleted_again(services, proxmox):
    register(services)

    with pytest.raises(ClusterAlreadyRegistered):
        register(services, "again", api_endpoint="127.0.31.2", create_token=True)

    assert proxmox.tokens == {}
    assert [call for call, *_ in proxmox.token_calls] == ["issue", "delete"]


def test_editing_a_cluster_onto_another_registered_cluster_is_refused(services, proxmox):
    first = register(services)
    proxmox.one_cluster = False  # lab.example.com is a cluster of its own
    lab = register(services, "lab", api_endpoint="lab.example.com")

    with pytest.raises(ClusterAlreadyRegistered) as refused:
        services.clusters.edit(lab.id, EditRequest(api_endpoint="pve.example.com"), actor=OPERATOR)

    assert refused.value.existing_id == first.id
    assert services.clusters.get_cluster(lab.id, actor=OPERATOR) == lab


def test_a_deregistered_cluster_may_be_registered_again(services):
    first = register(services)
    services.clusters.deregister(first.id, actor=OPERATOR)

    again = register(services, "prod-again", api_endpoint="127.0.31.2")

    assert again.id != first.id
    assert [c.name for c in services.clusters.all_clusters(actor=OPERATOR)] == ["prod-again"]


def test_registration_edit_and_check_keep_the_history_of_endpoint_answers_apart(
    services, proxmox, clock
):
    cluster = register(services)
    assert set(cluster.endpoint_health) == {REGISTERED}
    proxmox.unreachable[REGISTERED] = ProxmoxUnreachable("down")
    background_check(services, clock)

    edited = services.clusters.edit(
        cluster.id, EditRequest(endpoints=[{"url": "127.0.31.2"}]), actor=OPERATOR
    )

    # The proof went through the registered endpoint, which answered again
    # in the fake; node 3 is no endpoint any more, so its history goes.
    assert set(edited.endpoint_health) == {REGISTERED, NODE2}
    assert edited.endpoint_health[REGISTERED].last_ok_at == clock.now
    assert not edited.endpoint_health[REGISTERED].failing
