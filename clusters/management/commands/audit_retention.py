"""``manage.py audit_retention``: remove the audit events older than the
retention period (``PROXMOXER_AUDIT_RETENTION_DAYS``, 365 days by default;
0 keeps every event).

Run it daily (cron, a systemd timer) where no background scheduler does it;
the scheduler calls the same use case (``AuditService.apply_retention``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import wiring
from clusters.domain import Actor


class Command(BaseCommand):
    help = "Remove audit events older than PROXMOXER_AUDIT_RETENTION_DAYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            help="keep this many days instead of PROXMOXER_AUDIT_RETENTION_DAYS (0 keeps all)",
        )

    def handle(self, *args: Any, days: int | None, **options: Any) -> None:
        if settings.CLUSTER_REPOSITORY == "memory":
            raise CommandError(
                "CLUSTER_REPOSITORY=memory keeps the audit log inside the server process, where "
                "the background scheduler applies the retention period; this command runs in "
                "its own process. Use CLUSTER_REPOSITORY=django (see docs/operations.md)."
            )
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (keep every event) or more")
        audit = wiring.services().audit
        kept_days = audit.retention_days if days is None else days
        if kept_days == 0:
            self.stdout.write("Retention is 0 days: every audit event is kept.")
            return
        removed = audit.apply_retention(actor=Actor.command_line(), days=days)
        self.stdout.write(f"Removed {removed} audit event(s) older than {kept_days} days.")
