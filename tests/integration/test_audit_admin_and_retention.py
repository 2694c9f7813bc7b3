"""The audit log in the database: the admin's read-only page (superusers
only; nothing added, changed or deleted there) and ``manage.py
audit_retention``, the one way an event goes."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from clusters.domain import Actor, AuditAction, AuditEvent
from clusters.encryption import CredentialCipher
from clusters.models import AuditEventRecord
from clusters.repositories.database import DjangoUnitOfWork
from tests.e2e.servers import PROJECT_DIR, service_environment
from tests.fakes import FakeClock, FakeProxmox
from tests.roles import account

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def database_units(settings):
    settings.CLUSTER_REPOSITORY = "django"
    cipher = CredentialCipher.from_settings()
    return lambda: DjangoUnitOfWork(cipher=cipher)


def append(units, *events: AuditEvent) -> None:
    for event in events:
        with units() as uow:
            uow.audit.append(event)
            uow.commit()


def login_event(days_ago: int, actor: str = "alice") -> AuditEvent:
    return AuditEvent.success(
        AuditAction.AUTH_LOGIN,
        actor=Actor(actor, source_ip="127.0.0.1"),
        at=NOW - timedelta(days=days_ago),
    )


def registration_event() -> AuditEvent:
    return AuditEvent.success(
        AuditAction.CLUSTER_REGISTER,
        actor=Actor("otto", source_ip="::1"),
        at=NOW,
        changes={"name": [None, "prod"], "password": "changed"},
    )


# -- the admin page ---------------------------------------------------------------------------


@pytest.fixture
def admin_browser() -> Client:
    client = Client()
    client.force_login(account("superuser"))
    return client


def test_superusers_read_the_events_in_the_admin(admin_browser, database_units):
    event = registration_event()
    append(database_units, event)
    record = AuditEventRecord.objects.get(event_id=event.id)

    listing = admin_browser.get("/admin/clusters/auditeventrecord/")
    detail = admin_browser.get(f"/admin/clusters/auditeventrecord/{record.pk}/change/")

    assert listing.status_code == 200
    assert b"otto" in listing.content and b"cluster.register" in listing.content
    assert detail.status_code == 200
    assert b"&quot;password&quot;: &quot;changed&quot;" in detail.content
    assert b'name="actor"' not in detail.content, "no field is editable"
    assert b"Save" not in detail.content and b"deletelink" not in detail.content


def test_the_admin_adds_changes_and_deletes_no_event(admin_browser, database_units):
    event = registration_event()
    append(database_units, event)
    record = AuditEventRecord.objects.get(event_id=event.id)
    page = f"/admin/clusters/auditeventrecord/{record.pk}"

    assert admin_browser.get("/admin/clusters/auditeventrecord/add/").status_code == 403
    assert admin_browser.post("/admin/clusters/auditeventrecord/add/", {}).status_code == 403
    changed = admin_browser.post(f"{page}/change/", {"actor": "forged"})
    assert changed.status_code == 403
    assert admin_browser.post(f"{page}/delete/", {"post": "yes"}).status_code == 403
    bulk = admin_browser.post(
        "/admin/clusters/auditeventrecord/",
        {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert list(AuditEventRecord.objects.values_list("event_id", "actor")) == [(event.id, "otto")]


def test_staff_who_are_not_superusers_do_not_see_the_log(database_units):
    append(database_units, registration_event())
    staff = account("operator")
    staff.is_staff = True
    staff.save()
    client = Client()
    client.force_login(staff)

    assert client.get("/admin/clusters/auditeventrecord/").status_code == 403
    assert b"auditeventrecord" not in client.get("/admin/").content


def test_a_stored_event_cannot_be_saved_again():
    event = registration_event()
    record = AuditEventRecord.from_domain(event)
    record.save()
    record.actor = "forged"
    with pytest.raises(ValueError, match="append-only"):
        record.save()


# -- retention ------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_retention", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def retention(compose, database_units, settings):
    """Services over the database with a clock at NOW."""
    settings.PROXMOXER_AUDIT_RETENTION_DAYS = 30

    def composed(days: int = 30):
        return compose(
            unit_of_work=database_units,
            proxmox=FakeProxmox(),
            clock=FakeClock(NOW),
            audit_retention_days=days,
        )

    return composed


def actors() -> list[str]:
    return list(AuditEventRecord.objects.order_by("-sequence").values_list("actor", flat=True))


def test_the_command_removes_the_events_past_the_retention_period(retention, database_units):
    retention(days=30)
    append(
        database_units,
        login_event(400, "a"),
        login_event(31, "b"),
        login_event(29, "c"),
        login_event(0, "d"),
    )

    assert run() == "Removed 2 audit event(s) older than 30 days.\n"
    assert actors() == ["d", "c"]
    assert run("--days", "1") == "Removed 1 audit event(s) older than 1 days.\n"
    assert actors() == ["d"]


def test_the_command_keeps_everything_with_zero_days(retention, database_units):
    retention(days=0)
    append(database_units, login_event(5000))

    assert "every audit event is kept" in run()
    assert actors() == ["alice"]
    with pytest.raises(CommandError, match="0 .keep every event. or more"):
        run("--days", "-1")


def test_the_command_refuses_the_per_process_memory_backend(settings):
    settings.CLUSTER_REPOSITORY = "memory"
    with pytest.raises(CommandError, match="inside the server process"):
        run()


def test_the_retention_setting_defaults_to_a_year_and_refuses_a_negative_number():
    code = "from django.conf import settings; print(settings.PROXMOXER_AUDIT_RETENTION_DAYS)"
    env = service_environment("sqlite:///:memory:")
    default = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    negative = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT_DIR, env={**env, "PROXMOXER_AUDIT_RETENTION_DAYS": "-5"},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip

    assert default.stdout.strip() == "365", default.stderr
    assert negative.returncode != 0
    assert "PROXMOXER_AUDIT_RETENTION_DAYS must be a number of days" in negative.stderr
