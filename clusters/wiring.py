"""The one place that decides which backends the service runs on.

``CLUSTER_REPOSITORY`` picks the repository, at first use rather than at
import time, so settings overrides and tests see the choice they made.
The service (and with it the in-memory store) is one per process.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from clusters.domain import ClusterRepository
from clusters.proxmox import ProxmoxClient
from clusters.services import ClusterService

REPOSITORY_BACKENDS = {
    "memory": "clusters.repositories.memory.InMemoryClusterRepository",
    "django": "clusters.repositories.database.DjangoClusterRepository",
}

_lock = threading.Lock()
_service: ClusterService | None = None


def build_repository(backend: str | None = None) -> ClusterRepository:
    backend = backend or settings.CLUSTER_REPOSITORY
    try:
        path = REPOSITORY_BACKENDS[backend]
    except KeyError:
        choices = ", ".join(sorted(REPOSITORY_BACKENDS))
        raise ImproperlyConfigured(
            f"CLUSTER_REPOSITORY={backend!r} is not a backend; choose one of {choices}"
        ) from None
    return import_string(path)()


def build_proxmox_client() -> ProxmoxClient:
    return ProxmoxClient(
        connect_timeout=settings.PROXMOX_CONNECT_TIMEOUT,
        read_timeout=settings.PROXMOX_READ_TIMEOUT,
        ca_bundle=settings.PROXMOX_CA_BUNDLE or None,
    )


def get_cluster_service() -> ClusterService:
    global _service
    if _service is None:
        with _lock:  # two first requests at once must not build two stores
            if _service is None:
                _service = ClusterService(
                    repository=build_repository(), proxmox=build_proxmox_client()
                )
    return _service


def reset_cluster_service() -> None:
    """Forget the service; the next call builds it from current settings."""
    global _service
    with _lock:
        _service = None


@receiver(setting_changed)
def _rebuild_on_setting_change(*, setting: str, **kwargs: object) -> None:
    if setting in {
        "CLUSTER_REPOSITORY",
        "PROXMOX_CONNECT_TIMEOUT",
        "PROXMOX_READ_TIMEOUT",
        "PROXMOX_CA_BUNDLE",
        "PROXMOXER_CREDENTIALS_KEYS",
    }:
        reset_cluster_service()
