"""The use cases, composed by ``bootstrap`` with an in-memory repository and
a fake Proxmox client: the service tests docs/product-contract.md §2 lists,
and what the contract adds (nothing stored on failure, the log lines of §16,
refresh, versioned writes)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from clusters.bootstrap import bootstrap
from clusters.domain import (
    DEFAULT_LIMIT,
    Actor,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterQuery,
    ClusterStatus,
    ClusterStatusEntry,
    InvalidClusterId,
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxReport,
    ProxmoxSecondFactorRequired,
    ProxmoxUnreachable,
    RegistrationRequest,
    Secret,
    StaleCluster,
    TokenCredentials,
    ValidationFailed,
    public_cluster,
)
from clusters.repositories.memory import InMemoryClusterRepository, InMemoryUnitOfWork
from clusters.services import CheckOutcome
from tests.conftest import assert_secret_absent
from tests.fakes import FakeClock, FakeProxmox, RecordingObserver
from tests.units_of_work import AutoCommit

PASSWORD = "Pa55-unit-secret-91c2"
OPERATOR = Actor("operator", groups=frozenset({"operators"}), source_ip="127.0.0.1")


@pytest.fixture
def repository():
    return InMemoryClusterRepository()


@pytest.fixture
def proxmox():
    return FakeProxmox()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def observer():
    return RecordingObserver()


@pytest.fixture
def service(repository, proxmox, clock, observer):
    return bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(repository),
        proxmox=proxmox,
        clock=clock,
        check_observer=observer,
    )


def request(**overrides):
    fields = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
    }
    return RegistrationRequest(**{**fields, **overrides})


def test_register_cluster_success(service, repository, proxmox, clock):
    cluster = service.clusters.register(request(name="  prod  "), actor=OPERATOR)

    assert cluster.name == "prod"
    assert cluster.api_endpoint == "https://pve.example.com:8006"
    assert cluster.status is ClusterStatus.HEALTHY
    assert cluster.proxmox_version == "8.2.4"
    assert cluster.node_count == 3
    assert cluster.created_at == cluster.updated_at == cluster.last_checked_at == clock.now
    assert cluster.last_error is None
    assert repository.find_by_id(cluster.id) == cluster
    target, credentials = proxmox.calls[0]
    assert target.api_endpoint == "https://pve.example.com:8006"
    assert credentials == PasswordCredentials("root@pam", Secret(PASSWORD))


def test_register_cluster_with_an_api_token(service, proxmox):
    cluster = service.clusters.register(
        request(username=None, password=None, token_id="root@pam!ci", token_secret="tok-1"),
        actor=OPERATOR,
    )
    assert cluster.auth_method == "token"
    assert cluster.token_id == "root@pam!ci"
    assert cluster.username is None
    assert proxmox.calls[0][1] == TokenCredentials("root@pam!ci", Secret("tok-1"))


def test_register_cluster_duplicate_name(service, repository, proxmox):
    service.clusters.register(request(name="Prod"), actor=OPERATOR)
    proxmox.calls.clear()

    with pytest.raises(ClusterNameTaken):
        service.clusters.register(request(name=" PROD "), actor=OPERATOR)

    assert proxmox.calls == [], "a taken name must not cost a login at Proxmox"
    assert len(repository.list()) == 1


def test_register_cluster_invalid_request(service, repository, proxmox):
    with pytest.raises(ValidationFailed) as caught:
        service.clusters.register(
            request(api_endpoint="http://pve.example.com", username="root"), actor=OPERATOR
        )

    assert set(caught.value.details) == {"api_endpoint", "username"}
    assert proxmox.calls == []
    assert list(repository.list()) == []


@pytest.mark.parametrize(
    "error",
    [
        ProxmoxAuthenticationFailed("Proxmox refused the credentials of root@pam"),
        ProxmoxSecondFactorRequired("root@pam needs a second factor"),
        ProxmoxUnreachable("Could not connect to https://pve.example.com:8006"),
        ProxmoxBadResponse("answered /version with 500"),
    ],
    ids=["refused", "second-factor", "unreachable", "bad-response"],
)
def test_failed_registration_stores_nothing(service, repository, proxmox, error):
    proxmox.error = error
    with pytest.raises(type(error)):
        service.clusters.register(request(), actor=OPERATOR)
    assert list(repository.list()) == []
    assert repository.find_by_name("prod") is None


def test_authentication_failure(service, proxmox, caplog):
    proxmox.error = ProxmoxAuthenticationFailed(
        "Proxmox refused the credentials of root@pam (authentication failure)"
    )
    with (
        caplog.at_level(logging.INFO, logger="clusters"),
        pytest.raises(ProxmoxAuthenticationFailed),
    ):
        service.clusters.register(request(), actor=OPERATOR)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            "Proxmox authentication failed, error=Proxmox refused the credentials of root@pam "
            "(authentication failure)",
        )
    ]


def test_list_clusters_answers_the_page_the_query_asks_for(service):
    for name in ["beta", "Alpha", "gamma", "delta"]:
        service.clusters.register(
            request(name=name, api_endpoint=f"{name}.example.com"), actor=OPERATOR
        )

    page = service.clusters.list_clusters(ClusterQuery(limit=2, offset=1), actor=OPERATOR)

    assert [c["name"] for c in page.clusters] == ["beta", "delta"]
    assert (page.total, page.has_previous, page.has_next) == (4, True, True)
    assert page.clusters[0] == public_cluster(
        service.clusters.get_cluster_by_name("beta", actor=OPERATOR)
    )


def test_list_clusters_when_none_is_registered(service):
    page = service.clusters.list_clusters(ClusterQuery(), actor=OPERATOR)
    assert (list(page.clusters), page.total, page.has_next) == ([], 0, False)


def test_all_clusters_lists_every_cluster_past_any_page(service):
    for index in range(DEFAULT_LIMIT + 1):
        service.clusters.register(
            request(name=f"c-{index:03d}", api_endpoint=f"c-{index:03d}.example.com"),
            actor=OPERATOR,
        )

    clusters = service.clusters.all_clusters(actor=OPERATOR)

    assert [c.name for c in clusters] == [f"c-{index:03d}" for index in range(DEFAULT_LIMIT + 1)]


def test_get_cluster(service):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    assert service.clusters.get_cluster(str(cluster.id), actor=OPERATOR) == cluster
    assert service.clusters.get_cluster(cluster.id, actor=OPERATOR) == cluster


def test_get_cluster_with_malformed_id(service):
    with pytest.raises(InvalidClusterId):
        service.clusters.get_cluster("not-a-uuid", actor=OPERATOR)


def test_deregister_cluster_success(service, repository):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    service.clusters.deregister(str(cluster.id), actor=OPERATOR)
    assert not repository.exists(cluster.id)
    with pytest.raises(ClusterNotFound):
        service.clusters.get_cluster(cluster.id, actor=OPERATOR)


def test_deregister_cluster_not_found(service):
    with pytest.raises(ClusterNotFound):
        service.clusters.deregister(str(uuid.uuid4()), actor=OPERATOR)


def test_deregister_cluster_with_malformed_id(service):
    with pytest.raises(InvalidClusterId):
        service.clusters.deregister("../../etc", actor=OPERATOR)


def test_register_logs_success_and_taken_names_as_the_contract_says(service, caplog):
    with caplog.at_level(logging.INFO, logger="clusters"):
        cluster = service.clusters.register(request(), actor=OPERATOR)
        with pytest.raises(ClusterNameTaken):
            service.clusters.register(request(name="PROD"), actor=OPERATOR)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"Cluster registered successfully, cluster_id={cluster.id}, name=prod"),
        ("WARNING", "Cluster name already exists, name=PROD"),
    ]


def test_no_log_line_carries_the_password(service, proxmox, caplog):
    with caplog.at_level(logging.DEBUG):
        service.clusters.register(request(), actor=OPERATOR)
        proxmox.error = ProxmoxAuthenticationFailed("refused")
        with pytest.raises(ProxmoxAuthenticationFailed):
            service.clusters.register(request(name="other"), actor=OPERATOR)
    for record in caplog.records:
        assert_secret_absent(PASSWORD, record.getMessage(), "a log line")


def test_concurrent_registrations_of_one_name_store_exactly_one(repository, clock):
    """Each registration spends time at Proxmox between its duplicate check
    and its save; the atomic save still lets exactly one through."""
    threads = 16
    barrier = threading.Barrier(threads)
    proxmox = FakeProxmox(before_answer=lambda: time.sleep(0.05))
    service = bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(repository), proxmox=proxmox, clock=clock
    )
    outcomes = []

    def register():
        barrier.wait()
        try:
            service.clusters.register(request(name="contended"), actor=OPERATOR)
            outcomes.append("registered")
        except ClusterNameTaken:
            outcomes.append("taken")

    workers = [threading.Thread(target=register) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(proxmox.calls) == threads, "all passed the early check: the race was real"
    assert outcomes.count("registered") == 1
    assert len(repository.list()) == 1


def test_refresh_records_the_current_health(service, proxmox, clock):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    clock.advance(minutes=5)
    proxmox.report = ProxmoxReport(
        version="8.3.0",
        cluster_status=[
            ClusterStatusEntry("cluster", "prod", quorate=True),
            ClusterStatusEntry("node", "pve1", online=True),
            ClusterStatusEntry("node", "pve2", online=False),
        ],
    )

    checked = service.checks.refresh(str(cluster.id), actor=OPERATOR)

    assert checked.status is ClusterStatus.DEGRADED
    assert (checked.proxmox_version, checked.node_count) == ("8.3.0", 2)
    assert checked.last_checked_at == checked.updated_at == clock.now
    assert checked.created_at == cluster.created_at
    assert service.clusters.get_cluster(cluster.id, actor=OPERATOR) == checked


def test_refresh_of_an_unreachable_cluster_marks_it_unhealthy_and_keeps_its_facts(service, proxmox):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.error = ProxmoxUnreachable("Could not connect to https://pve.example.com:8006")

    checked = service.checks.refresh(cluster.id, actor=OPERATOR)

    assert checked.status is ClusterStatus.UNHEALTHY
    assert checked.last_error == "Could not connect to https://pve.example.com:8006"
    assert (checked.proxmox_version, checked.node_count) == ("8.2.4", 3)


def test_refresh_with_refused_credentials_marks_it_unknown(service, proxmox):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.error = ProxmoxAuthenticationFailed("Proxmox refused the credentials of root@pam")
    checked = service.checks.refresh(cluster.id, actor=OPERATOR)
    assert checked.status is ClusterStatus.UNKNOWN
    assert "refused" in checked.last_error


def test_refresh_clears_the_last_error_once_the_cluster_answers_again(service, proxmox):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.error = ProxmoxUnreachable("down")
    service.checks.refresh(cluster.id, actor=OPERATOR)
    proxmox.error = None
    checked = service.checks.refresh(cluster.id, actor=OPERATOR)
    assert (checked.status, checked.last_error) == (ClusterStatus.HEALTHY, None)


def test_refresh_of_a_cluster_deleted_meanwhile_does_not_bring_it_back(
    service, repository, proxmox
):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.before_answer = lambda: service.clusters.deregister(cluster.id, actor=OPERATOR)
    with pytest.raises(ClusterNotFound):
        service.checks.refresh(cluster.id, actor=OPERATOR)
    assert not repository.exists(cluster.id)


def test_permission_limited_account_registers_as_unknown_with_visible_nodes(service, proxmox):
    proxmox.report = ProxmoxReport(
        version="8.2.4", cluster_status=None, nodes=[NodeEntry("pve1", "online")]
    )
    cluster = service.clusters.register(request(), actor=OPERATOR)
    assert (cluster.status, cluster.node_count) == (ClusterStatus.UNKNOWN, 1)


def test_refresh_that_finds_the_configuration_edited_meanwhile_drops_its_result(
    service, repository, proxmox, clock
):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    edited = cluster.reconfigured(at=clock.now, name="renamed-while-checking")

    def edit_meanwhile():
        AutoCommit(InMemoryUnitOfWork.factory(repository)).update(edited)

    proxmox.before_answer = edit_meanwhile
    proxmox.error = ProxmoxUnreachable("down")

    with pytest.raises(StaleCluster):
        service.checks.refresh(cluster.id, actor=OPERATOR)

    stored = repository.find_by_id(cluster.id)
    assert stored == edited, "the edit survives, the check's findings are dropped"
    assert (stored.status, stored.last_error, stored.version) == (ClusterStatus.HEALTHY, None, 2)


@pytest.mark.parametrize(
    ("error", "outcome", "endpoints_tried"),
    [
        (None, CheckOutcome.SUCCESS, 1),
        (ProxmoxAuthenticationFailed("refused"), CheckOutcome.UNAUTHORIZED, 1),
        # Every node's endpoint in turn: the registered one and the two others.
        (ProxmoxUnreachable("gone"), CheckOutcome.ERROR, 3),
        (ProxmoxBadResponse("not PVE"), CheckOutcome.ERROR, 3),
    ],
    ids=["success", "unauthorized", "unreachable", "bad-response"],
)
def test_every_check_tells_the_observer_its_outcome_and_duration(
    service, proxmox, clock, observer, error, outcome, endpoints_tried
):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    assert observer.finished == []  # a registration proves credentials; it is no check
    proxmox.error = error
    proxmox.before_answer = lambda: clock.advance(seconds=1.5)

    service.checks.refresh(cluster.id, actor=OPERATOR)

    assert observer.finished == [(outcome, 1.5 * endpoints_tried)]


def test_a_check_while_the_clock_steps_back_took_no_negative_time(
    service, proxmox, clock, observer
):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.before_answer = lambda: clock.advance(seconds=-30)

    service.checks.refresh(cluster.id, actor=OPERATOR)

    assert observer.finished == [(CheckOutcome.SUCCESS, 0.0)]


def test_checks_need_no_observer(repository, proxmox, clock):
    composed = bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(repository), proxmox=proxmox, clock=clock
    )
    cluster = composed.clusters.register(request(), actor=OPERATOR)

    assert composed.checks.refresh(cluster.id, actor=OPERATOR).status is ClusterStatus.HEALTHY


def test_refresh_never_moves_the_version(service, proxmox):
    cluster = service.clusters.register(request(), actor=OPERATOR)
    proxmox.error = ProxmoxUnreachable("down")
    checked = service.checks.refresh(cluster.id, actor=OPERATOR)
    assert (checked.version, checked.status) == (1, ClusterStatus.UNHEALTHY)


def test_a_registration_stores_version_one(service):
    assert service.clusters.register(request(), actor=OPERATOR).version == 1
