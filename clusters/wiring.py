"""Django's side of the composition root: what the settings choose, handed
to ``bootstrap`` (clusters/bootstrap.py).

``CLUSTER_REPOSITORY`` picks the storage backend; the ``PROXMOXER_CHECK_*``
settings and the Proxmox timeouts make the checks' schedule. The services
are built on first use rather than at import time, once per process, and
held by the app's config (``services()``); tests and benchmarks install
services they composed themselves with ``install_services``.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clusters.bootstrap import Services, bootstrap
from clusters.domain import CheckSchedule
from clusters.encryption import CredentialCipher
from clusters.proxmox import NetworkPolicy, ProxmoxClient
from clusters.services import UnitOfWorkFactory

REPOSITORY_BACKENDS = ("memory", "django")
# Beyond the longest a check may talk to Proxmox: the fingerprint fetched
# after a refused certificate (one connect timeout) and storing the result.
LEASE_MARGIN_SECONDS = 5.0


def unit_of_work_from_settings(backend: str | None = None) -> UnitOfWorkFactory:
    backend = backend or settings.CLUSTER_REPOSITORY
    if backend == "memory":
        from clusters.repositories.memory import InMemoryUnitOfWork

        return InMemoryUnitOfWork.factory()
    if backend == "django":
        from clusters.repositories.database import DjangoUnitOfWork

        return functools.partial(DjangoUnitOfWork, cipher=CredentialCipher.from_settings())
    choices = ", ".join(REPOSITORY_BACKENDS)
    raise ImproperlyConfigured(
        f"CLUSTER_REPOSITORY={backend!r} is not a backend; choose one of {choices}"
    )


def network_policy_from_settings() -> NetworkPolicy:
    return NetworkPolicy(
        denied=settings.PROXMOXER_DENIED_NETWORKS,
        allowed=settings.PROXMOXER_ALLOWED_NETWORKS or None,
    )


def proxmox_client_from_settings() -> ProxmoxClient:
    return ProxmoxClient(
        connect_timeout=settings.PROXMOX_CONNECT_TIMEOUT,
        read_timeout=settings.PROXMOX_READ_TIMEOUT,
        ca_bundle=settings.PROXMOX_CA_BUNDLE or None,
        network_policy=network_policy_from_settings(),
    )


def check_schedule(client: ProxmoxClient) -> CheckSchedule:
    """Every ``PROXMOXER_CHECK_INTERVAL``; a claim held longer than any check
    with ``client`` can take, so only a dead checker's claim ever runs out."""
    lease = client.check_budget + settings.PROXMOX_CONNECT_TIMEOUT + LEASE_MARGIN_SECONDS
    return CheckSchedule(
        interval=timedelta(seconds=settings.PROXMOXER_CHECK_INTERVAL),
        lease=timedelta(seconds=lease),
    )


def services_from_settings(*, check_concurrency: int | None = None) -> Services:
    """The services the settings describe; ``check_concurrency`` overrides
    ``PROXMOXER_CHECK_CONCURRENCY`` (a bulk refresh's own)."""
    from clusters.metrics import PrometheusCheckObserver

    client = proxmox_client_from_settings()
    return bootstrap(
        unit_of_work=unit_of_work_from_settings(),
        proxmox=client,
        schedule=check_schedule(client),
        check_concurrency=check_concurrency or settings.PROXMOXER_CHECK_CONCURRENCY,
        history_limit=settings.PROXMOXER_HISTORY_LIMIT,
        check_observer=PrometheusCheckObserver(),
        audit_retention_days=settings.PROXMOXER_AUDIT_RETENTION_DAYS,
    )


def services() -> Services:
    """This process's services, built from the settings on first use."""
    return apps.get_app_config("clusters").services  # type: ignore[attr-defined, no-any-return]


def install_services(composed: Services | None) -> None:
    """Use ``composed`` from now on (None: build from settings again at next use)."""
    apps.get_app_config("clusters").install(composed)  # type: ignore[attr-defined]
