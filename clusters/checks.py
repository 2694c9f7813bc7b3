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
