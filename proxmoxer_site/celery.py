"""Celery for the background checks (``PROXMOXER_MONITOR=celery``):
``make worker`` runs ``celery -A proxmoxer_site worker --beat``.

Beat sends the task ``clusters.check_due`` (clusters/tasks.py) every tick;
whichever worker takes it claims the due clusters in the database and checks
them. Claims, not the broker, decide who checks what, so several workers
share the work and a second beat only sends more ticks, harmlessly. A tick
not taken within two ticks (all workers down) expires instead of piling up.
Settings: ``CELERY_*`` in proxmoxer_site/settings.py, Redis at
``CELERY_BROKER_URL`` (docs/operations.md, "Background checks").
"""

import os
from datetime import timedelta

from celery import Celery
from django.conf import settings

from clusters.domain import check_tick

# As the WSGI entry point: production unless told otherwise.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxmoxer_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")

app = Celery("proxmoxer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["clusters"])

_tick = check_tick(timedelta(seconds=settings.PROXMOXER_CHECK_INTERVAL)).total_seconds()
app.conf.beat_schedule = {
    "check-due-clusters": {
        "task": "clusters.check_due",
        "schedule": _tick,
        "options": {"expires": 2 * _tick},
    },
    "apply-audit-retention": {
        "task": "clusters.apply_audit_retention",
        "schedule": 24 * 3600.0,
    },
}
