"""The admin's page of the audit log: read-only, for superusers.

Nothing here adds, changes or deletes an event (the log is append-only,
docs/product-contract.md §13); retention is ``manage.py audit_retention``.
An event never holds a secret, so every field may be shown.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clusters.models import AuditEventRecord


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
