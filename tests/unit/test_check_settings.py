"""The background checks' settings as settings.py reads them
(docs/product-contract.md §11): the engine embedded under ``runserver`` and
off elsewhere unless chosen, and values that cannot work refused at start-up.
Each test evaluates settings.py afresh under the environment it sets up."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "proxmoxer_site" / "settings.py"
NAMES = (
    "PROXMOXER_MONITOR",
    "PROXMOXER_CHECK_INTERVAL",
    "PROXMOXER_CHECK_CONCURRENCY",
    "PROXMOXER_HISTORY_LIMIT",
    "CELERY_BROKER_URL",
    "PROXMOXER_CELERY_QUEUE",
)


def load_settings(
    monkeypatch: pytest.MonkeyPatch, argv: list[str] | None = None, **environment: str
) -> dict[str, Any]:
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", argv or ["pytest"])
    return runpy.run_path(str(SETTINGS_FILE))


def test_the_defaults_are_the_contracts(monkeypatch):
    settings = load_settings(monkeypatch)
    assert settings["PROXMOXER_CHECK_INTERVAL"] == 60
    assert settings["PROXMOXER_CHECK_CONCURRENCY"] == 16
    assert settings["PROXMOXER_HISTORY_LIMIT"] == 1000
    assert settings["PROXMOXER_MONITOR"] == "off"
    assert settings["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert settings["CELERY_TASK_DEFAULT_QUEUE"] == "proxmoxer"
    assert settings["CELERY_BROKER_CONNECTION_MAX_RETRIES"] is None  # workers wait for Redis


def test_runserver_checks_in_its_own_process_by_default(monkeypatch):
    settings = load_settings(monkeypatch, argv=["manage.py", "runserver", "127.0.0.1:8000"])
    assert settings["PROXMOXER_MONITOR"] == "embedded"


@pytest.mark.parametrize(
    "argv", [["manage.py", "migrate"], ["gunicorn", "proxmoxer_site.wsgi"], ["celery", "-A", "x"]]
)
def test_other_processes_check_only_when_told_to(monkeypatch, argv):
    assert load_settings(monkeypatch, argv=argv)["PROXMOXER_MONITOR"] == "off"
    assert (
        load_settings(monkeypatch, argv=argv, PROXMOXER_MONITOR="celery")["PROXMOXER_MONITOR"]
        == "celery"
    )


def test_runserver_can_be_told_not_to_check(monkeypatch):
    settings = load_settings(monkeypatch, argv=["manage.py", "runserver"], PROXMOXER_MONITOR="off")
    assert settings["PROXMOXER_MONITOR"] == "off"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PROXMOXER_MONITOR", "cron", "PROXMOXER_MONITOR='cron' is not an engine; choose one of"),
        ("PROXMOXER_CHECK_INTERVAL", "0", "PROXMOXER_CHECK_INTERVAL must be at least 1"),
        ("PROXMOXER_CHECK_CONCURRENCY", "0", "PROXMOXER_CHECK_CONCURRENCY must be at least 1"),
        ("PROXMOXER_HISTORY_LIMIT", "-5", "PROXMOXER_HISTORY_LIMIT must be at least 1"),
    ],
)
def test_values_that_cannot_work_are_refused_at_start_up(monkeypatch, name, value, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(")):
        load_settings(monkeypatch, **{name: value})
