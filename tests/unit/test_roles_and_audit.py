"""Roles decide in the service layer, and every change is recorded in the
same unit of work as its audit event (docs/product-contract.md §13)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clusters.bootstrap import bootstrap
from clusters.domain import (
    OPERATORS,
    SECRET_CHANGED,
    VIEWERS,
    Actor,
    AuditAction,
    AuditEvent,
    AuditQuery,
    ClusterQuery,
    Forbidden,
    Outcome,
    Permission,
    ProxmoxAuthenticationFailed,
    ProxmoxUnreachable,
    RegistrationRequest,
    may,
)
from clusters.repositories.memory import (
    InMemoryAuditLog,
    InMemoryClusterRepository,
    InMemoryUnitOfWork,
)
from tests.conftest import assert_secret_absent
from tests.fakes import FakeClock, FakeProxmox

PASSWORD = "Pa55-audit-secret-77e1"
NOBODY = Actor("nobody", source_ip="127.0.0.1")
VIEWER = Actor("viewer", groups=frozenset({VIEWERS}))
OPERATOR = Actor("operator", groups=frozenset({OPERATORS}), source_ip="127.0.0.9")
ADMIN = Actor("admin", is_superuser=True)


def registration(**overrides: str) -> RegistrationRequest:
    fields = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
        **overrides,
    }
    return RegistrationRequest(**fields)


@pytest.fixture
def unit_of_work():
    return InMemoryUnitOfWork.factory()


@pytest.fixture
def clusters(unit_of_work) -> InMemoryClusterRepository:
    return unit_of_work().clusters


@pytest.fixture
def proxmox() -> FakeProxmox:
    return FakeProxmox()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(unit_of_work, proxmox, clock):
    return bootstrap(unit_of_work=unit_of_work, proxmox=proxmox, clock=clock)


@pytest.fixture
def events(unit_of_work):
    return lambda: list(unit_of_work().audit.list())


# -- who may do what -------------------------------------------------------------

PERMISSION_TABLE = [
    (NOBODY, set()),
    (VIEWER, {Permission.VIEW}),
    (OPERATOR, {Permission.VIEW, Permission.OPERATE}),
    (Actor("both", groups=frozenset({VIEWERS, OPERATORS})), {Permission.VIEW, Permission.OPERATE}),
    (Actor("stranger", groups=frozenset({"admins", "staff"})), set()),
    (ADMIN, set(Permission)),
    (Actor.system(), set(Permission)),
    (Actor.command_line(), set(Permission)),
]


@pytest.mark.parametrize(("actor", "granted"), PERMISSION_TABLE, ids=lambda v: str(v))
def test_each_role_grants_exactly_its_permissions(actor, granted):
    assert {permission for permission in Permission if may(actor, permission)} == granted


def test_an_account_without_a_role_may_do_nothing_and_nothing_happens(
    services, clusters, proxmox, events
):
    cluster = services.clusters.register(registration(), actor=OPERATOR)
    proxmox.calls.clear()
    refused = [
        lambda: services.clusters.list_clusters(ClusterQuery(), actor=NOBODY),
        lambda: services.clusters.all_clusters(actor=NOBODY),
        lambda: services.clusters.get_cluster(cluster.id, actor=NOBODY),
        lambda: services.clusters.get_cluster_by_name("prod", actor=NOBODY),
        lambda: services.clusters.register(registration(name="other"), actor=NOBODY),
        lambda: services.checks.refresh(cluster.id, actor=NOBODY),
        lambda: services.clusters.deregister(cluster.id, actor=NOBODY),
    ]
    for call in refused:
        with pytest.raises(Forbidden) as raised:
            call()
        assert raised.value.message.startswith("nobody may not ")
    assert proxmox.calls == [], "a refused call never reaches Proxmox"
    assert [c.name for c in clusters.list()] == ["prod"]
    assert [e.action for e in events()] == [AuditAction.CLUSTER_REGISTER]


def test_a_viewer_reads_but_changes_nothing(services, clusters, proxmox, events):
    cluster = services.clusters.register(registration(), actor=OPERATOR)

    assert services.clusters.list_clusters(ClusterQuery(), actor=VIEWER).total == 1
    assert [c.id for c in services.clusters.all_clusters(actor=VIEWER)] == [cluster.id]
    assert services.clusters.get_cluster(cluster.id, actor=VIEWER) == cluster
    for change in (
        lambda: services.clusters.register(registration(name="other"), actor=VIEWER),
        lambda: services.checks.refresh(cluster.id, actor=VIEWER),
        lambda: services.clusters.deregister(cluster.id, actor=VIEWER),
    ):
        with pytest.raises(Forbidden, match="takes membership of operators"):
            change()
    assert clusters.find_by_id(cluster.id) == cluster


# -- the record -----------------------------------------------------------------------


def test_a_registration_is_recorded_with_its_configuration_and_no_secret(
    services, clusters, clock, events
):
    cluster = services.clusters.register(registration(), actor=OPERATOR)

    [event] = events()
    assert (event.action, event.outcome, event.status_code) == (
        AuditAction.CLUSTER_REGISTER,
        Outcome.SUCCESS,
        201,
    )
    assert (event.actor, event.source_ip, event.at) == ("operator", "127.0.0.9", clock.now)
    assert (event.cluster_id, event.cluster_name) == (cluster.id, "prod")
    assert event.changes == {
        "name": [None, "prod"],
        "api_endpoint": [None, "https://pve.example.com:8006"],
        "auth_method": [None, "password"],
        "username": [None, "root@pam"],
        "password": SECRET_CHANGED,
        "verify_tls": [None, True],
    }
    assert_secret_absent(PASSWORD, repr(event), "an audit event")


def test_a_refresh_and_a_deregistration_are_recorded_newest_first(
    services, clusters, proxmox, events
):
    cluster = services.clusters.register(registration(), actor=OPERATOR)
    proxmox.error = ProxmoxUnreachable("down")
    services.checks.refresh(cluster.id, actor=OPERATOR)
    services.clusters.deregister(cluster.id, actor=ADMIN)

    refresh, deregistration = events()[1], events()[0]
    assert (refresh.action, refresh.status_code) == (AuditAction.CLUSTER_REFRESH, 200)
    assert refresh.changes == {"status": ["healthy", "unhealthy"]}
    assert (deregistration.action, deregistration.actor) == (
        AuditAction.CLUSTER_DEREGISTER,
        "admin",
    )
    assert deregistration.status_code == 204
    assert deregistration.changes["name"] == ["prod", None]


def test_a_failed_registration_stores_neither_cluster_nor_event(
    services, clusters, proxmox, events
):
    proxmox.error = ProxmoxAuthenticationFailed("refused")
    with pytest.raises(ProxmoxAuthenticationFailed):
        services.clusters.register(registration(), actor=OPERATOR)

    assert list(clusters.list()) == []
    assert events() == []


class _BrokenAuditLog(InMemoryAuditLog):
    def append(self, event: AuditEvent) -> None:
        super().append(event)
        raise OSError("the audit store is full")


def test_a_change_whose_event_cannot_be_kept_is_not_kept_either(clusters, proxmox, clock):
    audit = _BrokenAuditLog(clusters.batch)
    services = bootstrap(
        unit_of_work=lambda: InMemoryUnitOfWork(clusters, audit), proxmox=proxmox, clock=clock
    )

    with pytest.raises(OSError, match="audit store is full"):
        services.clusters.register(registration(), actor=OPERATOR)

    assert list(clusters.list()) == []
    assert list(audit.list()) == []


# -- reading the record, failures, logins, retention --------------------------------------


def test_only_superusers_and_the_registry_itself_read_the_audit_log(services):
    services.clusters.register(registration(), actor=OPERATOR)

    for refused in (NOBODY, VIEWER, OPERATOR):
        with pytest.raises(Forbidden, match="may not read the audit log: that takes a superuser"):
            services.audit.events(AuditQuery(), actor=refused)
    for allowed in (ADMIN, Actor.system(), Actor.command_line()):
        assert services.audit.events(AuditQuery(), actor=allowed).total == 1


def test_a_failure_is_recorded_on_its_own_with_the_clusters_name_looked_up(services, clock, events):
    cluster = services.clusters.register(registration(), actor=OPERATOR)
    services.clusters.deregister(cluster.id, actor=OPERATOR)
    other = services.clusters.register(registration(name="lab"), actor=OPERATOR)

    by_id = services.audit.record_failure(
        AuditAction.CLUSTER_REFRESH, actor=VIEWER, status_code=403, cluster_id=other.id
    )
    gone = services.audit.record_failure(
        AuditAction.CLUSTER_DEREGISTER, actor=OPERATOR, status_code=404, cluster_id=cluster.id
    )
    typed = services.audit.record_failure(
        AuditAction.CLUSTER_REGISTER, actor=OPERATOR, status_code=401, cluster_name="new"
    )

    assert events()[:3] == [typed, gone, by_id]
    assert (by_id.outcome, by_id.status_code, by_id.cluster_name) == (Outcome.FAILURE, 403, "lab")
    assert (gone.cluster_id, gone.cluster_name) == (cluster.id, None)
    assert (typed.cluster_id, typed.cluster_name, typed.changes) == (None, "new", {})
    assert (typed.actor, typed.source_ip, typed.at) == ("operator", "127.0.0.9", clock.now)


def test_a_login_is_recorded_as_a_success(services, events):
    event = services.audit.record_login(Actor("alice", source_ip="::1"))

    assert events() == [event]
    assert (event.action, event.outcome, event.status_code) == (
        AuditAction.AUTH_LOGIN,
        Outcome.SUCCESS,
        200,
    )
    assert (event.actor, event.source_ip, event.cluster_id) == ("alice", "::1", None)


def _events_days_ago(services, clock, *days_ago: int) -> None:
    start = clock.now
    for days in days_ago:
        clock.now = start - timedelta(days=days)
        services.audit.record_login(Actor(f"{days}-days-ago"))
    clock.now = start


def test_retention_removes_the_events_older_than_the_configured_days(unit_of_work, proxmox, clock):
    services = bootstrap(
        unit_of_work=unit_of_work, proxmox=proxmox, clock=clock, audit_retention_days=30
    )
    _events_days_ago(services, clock, 400, 31, 30, 29, 0)

    removed = services.audit.apply_retention(actor=Actor.system())

    assert removed == 2
    kept = [event.actor for event in unit_of_work().audit.list()]
    assert kept == ["0-days-ago", "29-days-ago", "30-days-ago"]


def test_retention_defaults_to_a_year_and_may_be_given_per_call(services, clock, events):
    assert services.audit.retention_days == 365
    _events_days_ago(services, clock, 366, 364, 10)

    assert services.audit.apply_retention(actor=Actor.command_line()) == 1
    assert services.audit.apply_retention(actor=Actor.command_line(), days=7) == 2
    assert events() == []


def test_retention_of_zero_days_keeps_every_event(unit_of_work, proxmox, clock):
    services = bootstrap(
        unit_of_work=unit_of_work, proxmox=proxmox, clock=clock, audit_retention_days=0
    )
    _events_days_ago(services, clock, 5000)

    assert services.audit.apply_retention(actor=Actor.system()) == 0
    assert len(unit_of_work().audit.list()) == 1
    with pytest.raises(ValueError, match="0"):
        bootstrap(unit_of_work=unit_of_work, proxmox=proxmox, audit_retention_days=-1)


def test_retention_is_refused_to_anyone_but_superusers_and_the_registry(services, clock, events):
    _events_days_ago(services, clock, 1000)
    for refused in (NOBODY, VIEWER, OPERATOR):
        with pytest.raises(Forbidden):
            services.audit.apply_retention(actor=refused)
    assert len(events()) == 1
