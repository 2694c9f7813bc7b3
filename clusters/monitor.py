"""The embedded engine of the background checks (``PROXMOXER_MONITOR=embedded``,
the default under ``manage.py runserver``): a thread in the web process that
calls ``CheckService.check_due`` every tick, so ``make run`` keeps health
current with no other service (docs/operations.md, "Background checks"), and
applies the audit log's retention period once a day.

Like a view, it only adapts: the claims in storage decide who checks what,
so two web processes sharing a database never check one cluster twice.
One scheduler per process that serves requests: the WSGI and ASGI entry
points start it (``runserver`` serves through the WSGI one, in the process
its autoreloader starts, never in the parent that only watches files; each
gunicorn worker has one). At exit it claims nothing more and waits, a few
seconds at most, for the checks in flight; any it leaves are claims that
run out and are checked again.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from clusters import wiring
from clusters.domain import Actor

logger = logging.getLogger("clusters")

STOP_WAIT_SECONDS = 5.0
AUDIT_RETENTION_EVERY_SECONDS = 24 * 3600.0  # the audit log's retention, once a day


class EmbeddedScheduler:
    """A daemon thread looking for due clusters every tick."""

    def __init__(self, *, tick: float | None = None) -> None:
        """``tick``: seconds between looks (the check schedule's by default)."""
        self.pid = os.getpid()
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxmoxer-checks", daemon=True)

    def start(self) -> EmbeddedScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        checks = wiring.services().checks
        logger.info(
            "Background checks started, engine=embedded, interval=%ss, concurrency=%s",
            f"{checks.schedule.interval.total_seconds():g}",
            checks.concurrency,
        )
        retention_due = time.monotonic()
        try:
            while not self._stop.is_set():
                # Between ticks this thread is like a request that ended: a
                # connection the database closed meanwhile is replaced.
                close_old_connections()
                try:
                    wiring.services().checks.check_due(stop=self._stop)
                    if time.monotonic() >= retention_due:  # at start, then daily
                        wiring.services().audit.apply_retention(actor=Actor.system())
                        retention_due = time.monotonic() + AUDIT_RETENTION_EVERY_SECONDS
                except Exception:
                    logger.exception("Background checks failed; trying again at the next tick")
                tick = self._tick
                self._stop.wait(checks.schedule.tick.total_seconds() if tick is None else tick)
        finally:
            connections.close_all()
            logger.info("Background checks stopped, engine=embedded")


_scheduler: EmbeddedScheduler | None = None
_lock = threading.Lock()


def start_embedded() -> EmbeddedScheduler:
    """This process's scheduler, started on the first call (again in a
    forked child, whose parent's thread did not come along)."""
    global _scheduler
    with _lock:
        if _scheduler is None or _scheduler.pid != os.getpid():
            _scheduler = EmbeddedScheduler().start()
            atexit.register(_scheduler.stop)
        return _scheduler


def start_if_embedded() -> EmbeddedScheduler | None:
    """For entry points that serve requests (WSGI, ASGI): the scheduler when
    ``PROXMOXER_MONITOR=embedded``."""
    if settings.PROXMOXER_MONITOR != "embedded":
        return None
    return start_embedded()
