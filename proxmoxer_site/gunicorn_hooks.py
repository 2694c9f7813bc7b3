"""gunicorn's hooks for ``make serve`` (``--config python:proxmoxer_site.gunicorn_hooks``).

With PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps each worker's
metrics in files there and a scrape sums them (clusters/metrics.py); a
worker that exits is marked dead, so that its gauges stop counting while its
counters, which Prometheus expects never to go down, still do.
"""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
