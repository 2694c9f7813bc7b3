"""``GET /health/ready``: whether this process can serve requests now, for
a load balancer or an orchestrator to route by (``/health`` stays the
liveness probe, which never touches the database: a database outage must
not get healthy processes restarted).

Each check answers None when the dependency answers, or a short reason
that names no host, user or password (the probe needs no authentication);
the log line says more.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections

logger = logging.getLogger("clusters")

# A probe must answer within the prober's patience; the database's own
# connect timeout (DATABASE_CONNECT_TIMEOUT) bounds the database check.
DEPENDENCY_TIMEOUT_SECONDS = 2.0
# The background checks' settings (docs/product-contract.md §11), as their
# defaults are where those settings are not defined.
DEFAULT_MONITOR = "off"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
OK = "ok"

Check = Callable[[], "str | None"]


def database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        _log("database", error)
        # A connection that failed is not kept for the next request.
        connections["default"].close_if_unusable_or_obsolete()
        return "unreachable or too slow"
    return None


def cache_server() -> str | None:
    """The shared cache of the throttles (only with CACHE_URL)."""
    try:
        cache.get("proxmoxer-readiness-probe")
    except Exception as error:  # noqa: BLE001 - every cache backend fails its own way
        _log("cache", error)
        return "unreachable"
    return None


def broker() -> str | None:
    """The Celery broker (only with PROXMOXER_MONITOR=celery)."""
    url = getattr(settings, "CELERY_BROKER_URL", DEFAULT_BROKER_URL)
    parts = urlsplit(url)
    try:
        if parts.scheme in ("redis", "rediss"):
            import redis

            with redis.Redis.from_url(
                url,
                socket_connect_timeout=DEPENDENCY_TIMEOUT_SECONDS,
                socket_timeout=DEPENDENCY_TIMEOUT_SECONDS,
            ) as client:
                client.ping()
        else:
            default_ports = {"amqp": 5672, "amqps": 5671}
            address = (
                parts.hostname or "localhost",
                parts.port or default_ports.get(parts.scheme, 0),
            )
            socket.create_connection(address, timeout=DEPENDENCY_TIMEOUT_SECONDS).close()
    except Exception as error:  # noqa: BLE001 - redis, socket and parsing errors alike
        _log("broker", error)
        return "unreachable"
    return None


def checks() -> dict[str, Check]:
    """What this process depends on, as configured."""
    selected: dict[str, Check] = {"database": database}
    if settings.CACHE_URL:
        selected["cache"] = cache_server
    if getattr(settings, "PROXMOXER_MONITOR", DEFAULT_MONITOR) == "celery":
        selected["broker"] = broker
    return selected


def readiness() -> tuple[bool, dict[str, str]]:
    """Whether every dependency answers, and each one's state."""
    results = {name: check() or OK for name, check in checks().items()}
    return all(result == OK for result in results.values()), results


def _log(dependency: str, error: BaseException) -> None:
    lines = str(error).strip().splitlines()
    logger.warning(
        "Readiness check failed, dependency=%s, error=%s: %s",
        dependency,
        type(error).__name__,
        lines[0] if lines else "?",
    )
