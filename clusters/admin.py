"""The admin's pages, both to look at only.

- The audit log, for superusers. Nothing here adds, changes or deletes an
  event (the log is append-only, docs/product-contract.md §13); retention is
  ``manage.py audit_retention``. An event never holds a secret, so every
  field may be shown.
- The clusters, without their secret. Nothing is added, changed or deleted
  there: registration proves the credentials against Proxmox, which only the
  API and ``manage.py clusters`` do (docs/operations.md, "The admin"). The
  admin reads the database, so it shows the clusters of the Django backend
  (CLUSTER_REPOSITORY=django); the memory backend's live in the server
  processes.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clusters.models import AuditEventRecord, ClusterRecord


@admin.register(AuditEventRecord)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "actor",
        "action",
        "outcome",
        "status_code",
        "cluster_name",
        "source_ip",
    )
    list_filter = ("action", "outcome", "at")
    search_fields = ("actor", "cluster_name")
    date_hierarchy = "at"
    ordering = ("-sequence",)
    fields = (
        "event_id",
        "at",
        "actor",
        "action",
        "outcome",
        "status_code",
        "cluster_id",
        "cluster_name",
        "source_ip",
        "changes_shown",
    )
    readonly_fields = fields
    actions = None  # no bulk delete, nor any other bulk action

    @admin.display(description="changes")
    def changes_shown(self, event: AuditEventRecord) -> str:
        return json.dumps(event.changes, indent=2, ensure_ascii=False, sort_keys=True)

    # Superusers read the log (Permission.AUDIT); nobody writes it here.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
