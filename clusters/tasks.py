"""The Celery engine of the background work: thin adapters around the use
cases, ``CheckService.check_due`` every tick and the audit log's retention
once a day (proxmoxer_site/celery.py schedules them)."""

from __future__ import annotations

from celery import shared_task

from clusters.domain import Actor
from clusters.wiring import services

# Checks one task may claim before it ends and lets the next tick (maybe on
# another worker) go on: bounds how long a worker is busy with one task.
CLAIMS_PER_TASK_PER_SLOT = 8


@shared_task(name="clusters.check_due", ignore_result=True)
def check_due() -> int:
    """Claim the clusters due now and check them; the number checked."""
    checks = services().checks
    return len(checks.check_due(limit=CLAIMS_PER_TASK_PER_SLOT * checks.concurrency))


@shared_task(name="clusters.apply_audit_retention", ignore_result=True)
def apply_audit_retention() -> int:
    """Remove the audit events past PROXMOXER_AUDIT_RETENTION_DAYS; how many."""
    return services().audit.apply_retention(actor=Actor.system())
