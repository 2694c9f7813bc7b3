"""The system checks of ``manage.py check``: the memory backend in
production (DJANGO_DEBUG=0) is warned about, since every process then keeps
its own registry and loses it on restart."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from clusters.checks import check_cluster_repository, check_monitor


def _ids(messages: list[checks.CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


@override_settings(CLUSTER_REPOSITORY="memory", DEBUG=False)
def test_memory_backend_in_production_is_warned_about() -> None:
    [warning] = check_cluster_repository()

    assert warning.id == "clusters.W001"
    assert warning.level == checks.WARNING
    assert "per process" in warning.msg and "restart" in warning.msg
    assert "CLUSTER_REPOSITORY=django" in (warning.hint or "")
    assert "clusters.W001" in _ids(checks.run_checks())  # registered with Django


@pytest.mark.parametrize(
    ("backend", "debug"), [("django", False), ("django", True), ("memory", True)]
)
def test_check_is_silent_for_the_django_backend_or_in_development(
    backend: str, debug: bool
) -> None:
    with override_settings(CLUSTER_REPOSITORY=backend, DEBUG=debug):
        assert check_cluster_repository() == []
        assert "clusters.W001" not in _ids(checks.run_checks())


@override_settings(CLUSTER_REPOSITORY="redis", DEBUG=False)
def test_unknown_backend_is_an_error() -> None:
    [error] = check_cluster_repository()

    assert error.id == "clusters.E001"
    assert error.level == checks.ERROR
    assert "django, memory" in (error.hint or "")


@override_settings(CLUSTER_REPOSITORY="memory", PROXMOXER_MONITOR="celery")
def test_celery_workers_on_the_memory_backend_are_an_error() -> None:
    [error] = check_monitor()

    assert error.id == "clusters.E002"
    assert error.level == checks.ERROR
    assert "CLUSTER_REPOSITORY=django" in (error.hint or "")


@pytest.mark.parametrize(
    ("backend", "monitor"), [("memory", "embedded"), ("memory", "off"), ("django", "celery")]
)
def test_every_other_engine_and_backend_goes_together(backend: str, monitor: str) -> None:
    with override_settings(CLUSTER_REPOSITORY=backend, PROXMOXER_MONITOR=monitor):
        assert check_monitor() == []
