"""The clusters app: system checks, and the holder of this process's services."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from clusters.bootstrap import Services


class ClustersConfig(AppConfig):
    name = "clusters"
    verbose_name = "Proxmox VE clusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import urllib3

        from clusters import (
            checks,  # noqa: F401 - registers the system checks
            login_audit,
        )

        login_audit.connect()

        self._services: Services | None = None
        self._services_lock = threading.Lock()
        # verify_tls=false is the operator's explicit, recorded choice for a
        # cluster; urllib3 would otherwise warn on every call to it.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    @property
    def services(self) -> Services:
        """Built once per process from the settings, at first use: two first
        requests at once must not build two in-memory stores."""
        services = self._services
        if services is None:
            with self._services_lock:
                if self._services is None:
                    from clusters.wiring import services_from_settings

                    self._services = services_from_settings()
                services = self._services
        return services

    def install(self, services: Services | None) -> None:
        with self._services_lock:
            self._services = services
