"""The engines around ``check_due`` (docs/architecture.md, "Background
checks"): the embedded scheduler thread and the Celery task and beat entry,
each a thin adapter over the same use case, run here in this process with
services composed over the in-memory backend and a fake Proxmox."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from clusters import monitor
from clusters.bootstrap import Services
from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    CheckSchedule,
    RegistrationRequest,
)
from clusters.repositories.memory import InMemoryUnitOfWork
from clusters.wiring import install_services, services
from tests.fakes import FakeClock, FakeProxmox


@pytest.fixture
def proxmox() -> FakeProxmox:
    return FakeProxmox()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def checks(compose, proxmox, clock):
    """Services whose one registered cluster is due."""
    services = compose(
        unit_of_work=InMemoryUnitOfWork.factory(),
        proxmox=proxmox,
        clock=clock,
        schedule=CheckSchedule(interval=timedelta(seconds=60), lease=timedelta(seconds=30)),
        random=lambda: 0.5,
    )
    services.clusters.register(
        RegistrationRequest(
            name="prod", api_endpoint="pve.example.com", username="root@pam", password="pw-1"
        ),
        actor=Actor.command_line(),
    )
    clock.advance(seconds=60)
    return services.checks


def old_audit_event(clock) -> None:
    """An audit event past the default retention of 365 days."""
    event = replace(
        AuditEvent.success(AuditAction.CLUSTER_REFRESH, actor=Actor("someone"), at=clock.now),
        at=clock.now - timedelta(days=400),
    )
    with services().audit._unit_of_work() as uow:
        uow.audit.append(event)
        uow.commit()


def audit_actions() -> list[AuditAction]:
    with services().audit._unit_of_work() as uow:
        return [event.action for event in uow.audit.list()]


def test_the_embedded_scheduler_checks_what_is_due_and_stops_cleanly(
    checks, proxmox, clock, caplog
):
    old_audit_event(clock)
    checked = threading.Event()
    proxmox.before_answer = checked.set
    scheduler = monitor.EmbeddedScheduler()

    with caplog.at_level(logging.INFO, logger="clusters"):
        scheduler.start()
        try:
            assert checked.wait(timeout=10), "the scheduler never checked the due cluster"
        finally:
            scheduler.stop(timeout=10)

    assert not scheduler.running
    assert len(proxmox.checks) == 1  # due again only an interval later
    assert audit_actions() == [AuditAction.CLUSTER_REGISTER], "the retention ran at start"
    lines = [record.getMessage() for record in caplog.records]
    assert "Background checks started, engine=embedded, interval=60s, concurrency=16" in lines
    assert lines[-1] == "Background checks stopped, engine=embedded"


class FailingOnce:
    """Checks whose first round fails as a bug or a lost database would."""

    def __init__(self, checks) -> None:
        self._checks = checks
        self.schedule = checks.schedule
        self.concurrency = checks.concurrency
        self.rounds = 0
        self.recovered = threading.Event()

    def check_due(self, **kwargs):
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("the database went away")
        outcomes = self._checks.check_due(**kwargs)
        self.recovered.set()
        return outcomes


def test_the_embedded_scheduler_survives_a_failing_round(checks, proxmox, caplog):
    failing = FailingOnce(checks)
    current = services()
    install_services(Services(clusters=current.clusters, checks=failing, audit=current.audit))  # type: ignore[arg-type]
    scheduler = monitor.EmbeddedScheduler(tick=0.01)

    with caplog.at_level(logging.ERROR, logger="clusters"):
        scheduler.start()
        try:
            assert failing.recovered.wait(timeout=10)
        finally:
            scheduler.stop(timeout=10)

    assert "Background checks failed; trying again at the next tick" in caplog.text
    assert len(proxmox.checks) == 1


def test_one_scheduler_per_process(checks, settings, monkeypatch):
    monkeypatch.setattr(monitor, "_scheduler", None)
    settings.PROXMOXER_MONITOR = "off"
    assert monitor.start_if_embedded() is None
    settings.PROXMOXER_MONITOR = "embedded"
    first = monitor.start_if_embedded()
    try:
        assert first is not None and first.running
        assert monitor.start_embedded() is first
    finally:
        assert first is not None
        first.stop(timeout=10)


def test_the_celery_tasks_check_what_is_due_and_apply_the_retention(checks, proxmox, clock):
    from clusters.tasks import apply_audit_retention, check_due

    old_audit_event(clock)
    assert apply_audit_retention() == 1
    assert check_due() == 1
    assert check_due() == 0
    assert len(proxmox.checks) == 1


def test_beat_sends_the_task_every_tick_and_a_tick_nobody_took_expires(settings):
    import clusters.tasks  # noqa: F401 - registers the task, as the worker's autodiscovery does
    from proxmoxer_site.celery import app

    entry = app.conf.beat_schedule["check-due-clusters"]
    assert entry["task"] == "clusters.check_due" and entry["task"] in app.tasks
    tick = 3.0  # a twentieth of the default interval of 60 s
    assert (entry["schedule"], entry["options"]) == (tick, {"expires": 2 * tick})
    retention = app.conf.beat_schedule["apply-audit-retention"]
    assert (retention["task"], retention["schedule"]) == ("clusters.apply_audit_retention", 86400)
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_default_queue == "proxmoxer"
    assert app.conf.task_ignore_result is True
