"""Clusters in the Django admin, to look at only: no secret is shown, and
nothing is added, changed or deleted there — registration proves the
credentials against Proxmox, which only the API and ``manage.py clusters``
do (docs/operations.md, "The admin").

The admin reads the database, so it shows the clusters of the Django
backend (CLUSTER_REPOSITORY=django); the memory backend's live in the
server processes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clusters.models import ClusterRecord

_SHOWN = (
    "name",
    "status",
    "api_endpoint",
    "auth_method",
    "principal",
    "verify_tls",
    "fingerprint",
    "proxmox_version",
    "node_count",
    "last_checked_at",
    "last_error",
    "version",
    "created_at",
    "updated_at",
    "id",
)


@admin.register(ClusterRecord)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "api_endpoint", "proxmox_version", "node_count",
                    "last_checked_at")  # fmt: skip
    list_filter = ("status", "auth_method", "verify_tls")
    search_fields = ("name", "api_endpoint")
    ordering = ("name_key",)
    # Every field but the secret, read-only: secret_token is never among them.
    fields = _SHOWN
    readonly_fields = _SHOWN

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
