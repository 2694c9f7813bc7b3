"""System checks (``manage.py check``) for choices that bite in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from clusters.wiring import REPOSITORY_BACKENDS


@register()
def check_cluster_repository(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    backend = settings.CLUSTER_REPOSITORY
    if backend not in REPOSITORY_BACKENDS:
        return [
            Error(
                f"CLUSTER_REPOSITORY={backend!r} is not a backend.",
                hint=f"Choose one of: {', '.join(sorted(REPOSITORY_BACKENDS))}.",
                id="clusters.E001",
            )
        ]
    if backend == "memory" and not settings.DEBUG:
        return [
            Warning(
                "The in-memory cluster repository is per process and forgets every cluster on "
                "restart.",
                hint="Set CLUSTER_REPOSITORY=django (with DATABASE_URL) in production.",
                id="clusters.W001",
            )
        ]
    return []


@register()
def check_monitor(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Celery workers are processes of their own: they can only check a
    registry they share, in the database."""
    if settings.PROXMOXER_MONITOR == "celery" and settings.CLUSTER_REPOSITORY == "memory":
        return [
            Error(
                "PROXMOXER_MONITOR=celery with CLUSTER_REPOSITORY=memory: the workers would check "
                "an empty registry of their own, never the web process's.",
                hint="Set CLUSTER_REPOSITORY=django, or PROXMOXER_MONITOR=embedded for a "
                "single process (docs/operations.md, 'Background checks').",
                id="clusters.E002",
            )
        ]
    return []
