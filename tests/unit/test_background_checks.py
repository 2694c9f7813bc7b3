"""The background checks' engine, ``CheckService.check_due``, on the
in-memory backend with a fake Proxmox, a fake clock and fake randomness
(docs/product-contract.md §11): scheduling and jitter, claims and their
expiry, the concurrency bound, the lost-race rule, status history, nodes."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from clusters.bootstrap import Services, bootstrap
from clusters.domain import (
    Actor,
    AuditAction,
    CheckSchedule,
    Cluster,
    ClusterNotFound,
    ClusterStatus,
    ConnectionTarget,
    Credentials,
    Forbidden,
    ProxmoxReport,
    ProxmoxUnreachable,
    RegistrationRequest,
    check_tick,
)
from clusters.repositories.memory import InMemoryClusterRepository, InMemoryUnitOfWork
from clusters.services import CheckResult, UnitOfWorkFactory
from tests.fakes import DEGRADED_REPORT, HEALTHY_REPORT, FakeClock, FakeProxmox

OPERATOR = Actor("operator", groups=frozenset({"operators"}))
VIEWER = Actor("viewer", groups=frozenset({"viewers"}))
INTERVAL = timedelta(seconds=60)
LEASE = timedelta(seconds=30)
SCHEDULE = CheckSchedule(interval=INTERVAL, lease=LEASE)


class Draws:
    """Fake randomness: the given draws in turn, then 0.5 (no jitter)."""

    def __init__(self, *draws: float) -> None:
        self.draws = list(draws)

    def __call__(self) -> float:
        return self.draws.pop(0) if self.draws else 0.5


@pytest.fixture
def repository() -> InMemoryClusterRepository:
    return InMemoryClusterRepository()


@pytest.fixture
def unit_of_work(repository: InMemoryClusterRepository) -> UnitOfWorkFactory:
    return InMemoryUnitOfWork.factory(repository)


@pytest.fixture
def proxmox() -> FakeProxmox:
    return FakeProxmox()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def draws() -> Draws:
    return Draws()


@pytest.fixture
def compose(
    unit_of_work: UnitOfWorkFactory, proxmox: FakeProxmox, clock: FakeClock, draws: Draws
) -> Callable[..., Services]:
    def composed(**overrides: object) -> Services:
        arguments: dict[str, object] = {
            "unit_of_work": unit_of_work,
            "proxmox": proxmox,
            "clock": clock,
            "schedule": SCHEDULE,
            "check_concurrency": 4,
            "random": draws,
            **overrides,
        }
        return bootstrap(**arguments)  # type: ignore[arg-type]

    return composed


@pytest.fixture
def services(compose: Callable[..., Services]) -> Services:
    return compose()


def register(services: Services, name: str = "prod", **fields: object) -> Cluster:
    request = RegistrationRequest(
        name=name,
        api_endpoint=str(fields.pop("api_endpoint", f"{name}.example.com")),
        username="root@pam",
        password="Pa55-unit-checks",
        **fields,  # type: ignore[arg-type]
    )
    return services.clusters.register(request, actor=OPERATOR)


def stored(unit_of_work: UnitOfWorkFactory, cluster: Cluster) -> Cluster:
    return unit_of_work().clusters.find_by_id(cluster.id)


# -- scheduling --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draw", "seconds"), [(0.0, 54.0), (0.25, 57.0), (0.5, 60.0), (0.75, 63.0), (0.999, 65.988)]
)
def test_the_next_check_is_an_interval_on_moved_by_at_most_ten_percent(draw, seconds, clock):
    assert SCHEDULE.next_check(clock.now, draw) == clock.now + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("interval", "lease", "jitter"), [(0, 30, 0.1), (60, 0, 0.1), (60, 30, 1.0), (60, 30, -0.1)]
)
def test_a_schedule_without_a_positive_interval_and_lease_or_sane_jitter_is_refused(
    interval, lease, jitter
):
    with pytest.raises(ValueError):
        CheckSchedule(
            interval=timedelta(seconds=interval), lease=timedelta(seconds=lease), jitter=jitter
        )


@pytest.mark.parametrize(("interval", "tick"), [(2, 0.5), (30, 1.5), (60, 3), (3600, 5)])
def test_checkers_look_for_due_clusters_every_twentieth_of_an_interval_within_bounds(
    interval, tick
):
    assert check_tick(timedelta(seconds=interval)) == timedelta(seconds=tick)


def test_a_registered_cluster_is_first_checked_an_interval_later(
    services, proxmox, clock, unit_of_work
):
    cluster = register(services)
    assert cluster.next_check_at == clock.now + INTERVAL

    assert services.checks.check_due() == []
    clock.advance(seconds=59)
    assert services.checks.check_due() == []
    clock.advance(seconds=1)
    [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.RECORDED
    assert [target.api_endpoint for target, _ in proxmox.checks] == [cluster.api_endpoint]
    assert stored(unit_of_work, cluster).last_checked_at == clock.now
    assert stored(unit_of_work, cluster).next_check_at == clock.now + INTERVAL


def test_jitter_spreads_the_next_checks_of_clusters_checked_together(compose, clock, unit_of_work):
    services = compose(random=Draws(0.5, 0.5, 0.5, 0.0, 0.999, 0.3))  # registrations: no jitter
    clusters = [register(services, f"c{i}") for i in range(3)]
    clock.advance(seconds=60)

    services.checks.check_due()

    offsets = sorted(
        (stored(unit_of_work, c).next_check_at - clock.now).total_seconds() for c in clusters
    )
    assert offsets == pytest.approx([54.0, 57.6, 65.988])


def test_check_due_takes_the_longest_due_first_and_at_most_limit(
    services, proxmox, clock, unit_of_work
):
    first = register(services, "first")
    clock.advance(seconds=10)
    second = register(services, "second")
    clock.advance(seconds=10)
    register(services, "third")
    clock.advance(seconds=60)

    outcomes = services.checks.check_due(limit=2)

    assert sorted(o.cluster.name for o in outcomes) == ["first", "second"]
    assert {t.api_endpoint for t, _ in proxmox.checks} == {first.api_endpoint, second.api_endpoint}
    assert [o.cluster.name for o in services.checks.check_due()] == ["third"]


def test_a_claim_keeps_other_checkers_off_until_it_expires(services, proxmox, clock, unit_of_work):
    cluster = register(services)
    clock.advance(seconds=60)
    with unit_of_work() as uow:  # another checker, which then dies
        [claim] = uow.clusters.claim_due(clock.now, limit=10, lease=LEASE)
        uow.commit()
    assert claim.cluster.id == cluster.id

    clock.advance(seconds=29)
    assert services.checks.check_due() == []
    clock.advance(seconds=1)
    [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.RECORDED
    assert len(proxmox.checks) == 1
    assert stored(unit_of_work, cluster).version == 1  # claims never move the version


def test_clusters_are_claimed_only_as_checks_can_start(compose, proxmox, clock, unit_of_work):
    """With two checks in flight, the third due cluster stays unclaimed (so
    another checker could take it) until a slot is free; nothing waits in a
    queue while its claim runs out."""
    services = compose(check_concurrency=2)
    for name in ("a", "b", "c"):
        register(services, name)
    clock.advance(seconds=60)
    started = threading.Semaphore(0)
    release = threading.Event()

    def hold() -> None:
        started.release()
        assert release.wait(timeout=10)

    proxmox.before_answer = hold
    running = threading.Thread(target=services.checks.check_due)
    running.start()
    assert started.acquire(timeout=10) and started.acquire(timeout=10)

    with unit_of_work() as uow:  # what another checker would find now
        unclaimed = uow.clusters.claim_due(clock.now, limit=10, lease=timedelta(microseconds=1))
    assert len(unclaimed) == 1
    assert len(proxmox.checks) == 2

    release.set()
    running.join(timeout=10)
    assert not running.is_alive()
    assert len(proxmox.checks) == 3


def test_a_check_due_told_to_stop_claims_nothing(services, proxmox, clock):
    register(services)
    clock.advance(seconds=60)
    stop = threading.Event()
    stop.set()
    assert services.checks.check_due(stop=stop) == []
    assert proxmox.checks == []


# -- the lost-race rule --------------------------------------------------------------------


def test_a_cluster_deregistered_during_its_check_is_not_brought_back(
    services, proxmox, clock, unit_of_work, caplog
):
    cluster = register(services)
    clock.advance(seconds=60)
    proxmox.before_answer = lambda: services.clusters.deregister(cluster.id, actor=OPERATOR)

    with caplog.at_level(logging.INFO, logger="clusters"):
        [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.DROPPED
    uow = unit_of_work()
    assert not uow.clusters.exists(cluster.id)
    assert uow.history.page(cluster.id, limit=10).total == 0
    assert uow.nodes.find(cluster.id).nodes == ()
    assert "Cluster check dropped, the cluster was deregistered meanwhile" in caplog.text


def test_an_edit_made_during_a_check_survives_it(services, proxmox, clock, unit_of_work):
    cluster = register(services)
    clock.advance(seconds=60)
    proxmox.report = DEGRADED_REPORT

    def edit() -> None:
        with unit_of_work() as uow:
            current = uow.clusters.find_by_id(cluster.id)
            uow.clusters.update(current.reconfigured(at=clock.now, name="renamed"))
            uow.commit()

    proxmox.before_answer = edit

    [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.DROPPED
    after = stored(unit_of_work, cluster)
    assert (after.name, after.version, after.status) == ("renamed", 2, ClusterStatus.HEALTHY)
    assert after.next_check_at == cluster.next_check_at  # the edit kept the schedule


def test_a_refresh_during_a_background_check_overtakes_it(services, proxmox, clock, unit_of_work):
    cluster = register(services)
    clock.advance(seconds=60)
    proxmox.report = DEGRADED_REPORT
    refreshed: list[Cluster] = []
    asked = threading.Event()

    def refresh_once() -> None:  # the refresh's own check comes here too
        if not asked.is_set():
            asked.set()
            refreshed.append(services.checks.refresh(cluster.id, actor=OPERATOR))

    proxmox.before_answer = refresh_once

    [outcome] = services.checks.check_due()

    assert outcome.result is CheckResult.DROPPED
    assert refreshed[0].status is ClusterStatus.DEGRADED
    changes = unit_of_work().history.page(cluster.id, limit=10).events
    assert [(c.from_status, c.to_status) for c in changes] == [
        (ClusterStatus.HEALTHY, ClusterStatus.DEGRADED),
        (None, ClusterStatus.HEALTHY),
    ]


def test_one_failing_checker_does_not_stop_the_others(services, proxmox, clock, caplog):
    register(services, "good")
    broken = register(services, "broken")
    clock.advance(seconds=60)
    real_check = proxmox.check

    def check(
        target: ConnectionTarget, credentials: Credentials, *, fresh_login: bool = False
    ) -> ProxmoxReport:
        if target.api_endpoint == broken.api_endpoint:
            raise RuntimeError("a bug in a checker")
        return real_check(target, credentials, fresh_login=fresh_login)

    proxmox.check = check  # type: ignore[method-assign]

    with caplog.at_level(logging.ERROR, logger="clusters"):
        outcomes = services.checks.check_due()

    results = {o.cluster.name: o.result for o in outcomes}
    assert results == {"good": CheckResult.RECORDED, "broken": CheckResult.FAILED}
    assert f"Cluster check failed, cluster_id={broken.id}, name=broken" in caplog.text
    # Its claim holds until it runs out, then the cluster is checked again.
    assert services.checks.check_due() == []
    clock.advance(seconds=LEASE.total_seconds())
    assert [o.cluster.name for o in services.checks.check_due()] == ["broken"]


# -- what checks leave behind --------------------------------------------------------------


def test_each_status_change_is_kept_and_logged_once(services, proxmox, clock, caplog):
    cluster = register(services)
    for report in (DEGRADED_REPORT, DEGRADED_REPORT, HEALTHY_REPORT):
        proxmox.report = report
        clock.advance(seconds=60)
        with caplog.at_level(logging.INFO, logger="clusters"):
            services.checks.check_due()

    history = services.checks.history(cluster.id, actor=VIEWER, limit=10)
    assert history.total == 3
    newest, degraded, registered = history.events
    assert (newest.from_status, newest.to_status) == ("degraded", "healthy")
    assert (degraded.from_status, degraded.to_status) == ("healthy", "degraded")
    assert degraded.reason == "2 of 3 nodes online; offline: pve3"
    assert degraded.at == clock.now - timedelta(seconds=120)
    assert (registered.from_status, registered.to_status) == (None, "healthy")
    assert registered.reason == "registered: 3 of 3 nodes online"
    lines = [r.getMessage() for r in caplog.records if "status changed" in r.getMessage()]
    assert lines == [
        f"Cluster status changed, cluster_id={cluster.id}, name=prod, from=healthy, to=degraded",
        f"Cluster status changed, cluster_id={cluster.id}, name=prod, from=degraded, to=healthy",
    ]


def test_the_history_keeps_the_newest_changes_up_to_its_limit(compose, proxmox, clock):
    services = compose(history_limit=3)
    cluster = register(services)
    for report in (DEGRADED_REPORT, HEALTHY_REPORT) * 3:
        proxmox.report = report
        clock.advance(seconds=60)
        services.checks.check_due()

    history = services.checks.history(cluster.id, actor=VIEWER, limit=10)
    assert history.total == 3
    assert [c.to_status for c in history.events] == ["healthy", "degraded", "healthy"]
    assert history.events[0].at == clock.now
    page = services.checks.history(cluster.id, actor=VIEWER, limit=1, offset=1)
    assert (page.total, [c.to_status for c in page.events]) == (3, ["degraded"])


def test_each_check_stores_the_nodes_and_an_unreachable_one_keeps_the_last(
    services, proxmox, clock, unit_of_work
):
    cluster = register(services)
    proxmox.report = DEGRADED_REPORT
    clock.advance(seconds=60)
    services.checks.check_due()
    checked_at = clock.now

    node_list = services.checks.nodes(cluster.id, actor=VIEWER)
    assert node_list.checked_at == checked_at
    assert [(n.name, n.status, n.ip) for n in node_list.nodes] == [
        ("pve1", "online", "127.0.31.1"),
        ("pve2", "online", "127.0.31.2"),
        ("pve3", "offline", "127.0.31.3"),
    ]
    offline = node_list.nodes[2]
    assert (offline.cpu, offline.mem, offline.uptime) == (None, None, None)
    assert offline.ssl_fingerprint == ":".join(["3A"] * 32)
    assert stored(unit_of_work, cluster).nodes_online == 2

    proxmox.error = ProxmoxUnreachable("Could not connect to prod.example.com: connection refused")
    clock.advance(seconds=60)
    services.checks.check_due()

    assert services.checks.nodes(cluster.id, actor=VIEWER) == node_list
    after = stored(unit_of_work, cluster)
    assert (after.status, after.nodes_online, after.node_count) == ("unhealthy", 0, 3)


def test_a_failure_is_logged_when_it_first_appears_not_at_every_check(
    services, proxmox, clock, caplog
):
    register(services)
    proxmox.error = ProxmoxUnreachable("Could not connect to prod.example.com: connection refused")
    with caplog.at_level(logging.ERROR, logger="clusters"):
        for _ in range(3):
            clock.advance(seconds=60)
            services.checks.check_due()
    lines = [record.getMessage() for record in caplog.records]
    assert len([line for line in lines if line.startswith("Proxmox API request failed")]) == 1


def test_reading_nodes_and_history_takes_the_view_permission(services):
    cluster = register(services)
    nobody = Actor("nobody")
    with pytest.raises(Forbidden):
        services.checks.nodes(cluster.id, actor=nobody)
    with pytest.raises(Forbidden):
        services.checks.history(cluster.id, actor=nobody, limit=10)
    with pytest.raises(ClusterNotFound):
        services.checks.nodes(uuid.uuid4(), actor=VIEWER)
    with pytest.raises(ClusterNotFound):
        services.checks.history(uuid.uuid4(), actor=VIEWER, limit=10)


# -- refreshes through the same engine ---------------------------------------------------


def test_a_manual_refresh_reschedules_the_next_background_check(services, clock, unit_of_work):
    cluster = register(services)
    clock.advance(seconds=45)
    services.checks.refresh(cluster.id, actor=OPERATOR)
    assert stored(unit_of_work, cluster).next_check_at == clock.now + INTERVAL


def test_check_all_checks_every_cluster_now_and_records_who_asked(
    services, proxmox, clock, unit_of_work
):
    for name in ("a", "b", "c"):
        register(services, name)
    clock.advance(seconds=5)  # none is due

    outcomes = services.checks.check_all(actor=Actor.command_line())

    assert sorted(o.cluster.name for o in outcomes) == ["a", "b", "c"]
    assert {o.result for o in outcomes} == {CheckResult.RECORDED}
    assert len(proxmox.checks) == 3
    events = unit_of_work().audit.list()
    refreshes = [e for e in events if e.action is AuditAction.CLUSTER_REFRESH]
    assert sorted(e.cluster_name for e in refreshes) == ["a", "b", "c"]
    assert {e.actor for e in refreshes} == {"manage.py"}


def test_background_checks_leave_no_audit_events(services, clock, unit_of_work):
    register(services)
    clock.advance(seconds=60)
    services.checks.check_due()
    actions = [e.action for e in unit_of_work().audit.list()]
    assert actions == [AuditAction.CLUSTER_REGISTER]


def test_check_all_takes_the_operate_permission(services, proxmox):
    register(services)
    with pytest.raises(Forbidden):
        services.checks.check_all(actor=VIEWER)
    assert proxmox.checks == []


class UnreachableStorage(InMemoryClusterRepository):
    """A store whose claims fail, as a database that went away does."""

    def claim_due(self, now, *, limit, lease):  # type: ignore[no-untyped-def]
        raise ConnectionError("the database went away")


def test_storage_failing_to_claim_ends_the_round_with_nothing_checked(
    compose, proxmox, clock, caplog
):
    services = compose(unit_of_work=InMemoryUnitOfWork.factory(UnreachableStorage()))
    register(services)
    clock.advance(seconds=60)

    with caplog.at_level(logging.ERROR, logger="clusters"):
        assert services.checks.check_due() == []

    assert proxmox.checks == []
    assert "Claiming due clusters failed" in caplog.text


def test_a_person_s_refresh_logs_in_afresh_and_the_registry_s_checks_reuse_the_ticket(
    services, proxmox, clock
):
    """A ticket is renewed without the password, so only a fresh login shows
    a password changed on the cluster: a person asking to check gets one."""
    cluster = register(services)
    services.checks.refresh(cluster.id, actor=OPERATOR)
    clock.advance(seconds=60)
    services.checks.check_due()
    services.checks.check_all(actor=Actor.command_line())
    assert proxmox.fresh_logins == [True, False, True]


def test_checks_recorded_together_drop_only_the_one_that_lost_its_race(
    services, clock, unit_of_work
):
    """The engine records checks that ended together in one unit of work;
    should one of them be overtaken, the others are recorded all the same."""
    clusters = [register(services, name) for name in ("a", "b", "c")]
    clock.advance(seconds=60)
    with unit_of_work() as uow:
        claims = list(uow.clusters.claim_due(clock.now, limit=10, lease=LEASE))
        uow.commit()
    findings = [services.checks._check(claim.cluster, actor=Actor.system()) for claim in claims]
    with unit_of_work() as uow:  # a refresh takes "b" over meanwhile
        uow.clusters.claim(clusters[1].id, clock.now, lease=LEASE)
        uow.commit()

    outcomes = services.checks._record_batch(
        list(zip(claims, findings, strict=True)), Actor.system()
    )

    results = {o.cluster.name: o.result for o in outcomes}
    assert results == {
        "a": CheckResult.RECORDED,
        "b": CheckResult.DROPPED,
        "c": CheckResult.RECORDED,
    }
    assert stored(unit_of_work, clusters[0]).last_checked_at == clock.now
    assert stored(unit_of_work, clusters[1]).last_checked_at == clusters[1].last_checked_at
