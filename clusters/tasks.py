"""The Celery engine of the background checks: one task, a thin adapter
around ``CheckService.check_due`` (proxmoxer_site/celery.py schedules it)."""

from __future__ import annotations

from celery import shared_task

from clusters.wiring import services

# Checks one task may claim before it ends and lets the next tick (maybe on
# another worker) go on: bounds how long a worker is busy with one task.
CLAIMS_PER_TASK_PER_SLOT = 8


@shared_task(name="clusters.check_due", ignore_result=True)
def check_due() -> int:
    """Claim the clusters due now and check them; the number checked."""
    checks = services().checks
    return len(checks.check_due(limit=CLAIMS_PER_TASK_PER_SLOT * checks.concurrency))
