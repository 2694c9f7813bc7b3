"""The Redis server the suite runs the shared-cache tests on.

``REDIS_URL_TESTS`` names it (default: the CI server on 127.0.0.1:6379,
database 15). Tests that need it are marked ``redis``; when the server is
unreachable they skip with the reason, or fail when
``PROXMOXER_REQUIRE_REDIS=1`` (CI) says it must be there — as
tests/postgres.py does for PostgreSQL.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

URL = os.environ.get("REDIS_URL_TESTS", "redis://127.0.0.1:6379/15")
REQUIRED = os.environ.get("PROXMOXER_REQUIRE_REDIS", "") == "1"


def unavailable_reason(url: str = URL) -> str | None:
    """None when the server answers; otherwise why not."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as error:
        return f"Redis at {url} (REDIS_URL_TESTS) is unreachable: {error}"
    return None


def require() -> None:
    """Skip the calling test, with the reason, when the server is
    unreachable; fail it instead under PROXMOXER_REQUIRE_REDIS=1 (CI)."""
    reason = unavailable_reason()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"{reason} (PROXMOXER_REQUIRE_REDIS=1 requires it)", pytrace=False)
    pytest.skip(reason)


def cache_url(url: str = URL) -> str:
    """A CACHE_URL on the test server with a key prefix of its own, so
    parallel runs (two worktrees, CI) never share a count."""
    return f"{url}?key_prefix=proxmoxer-test-{uuid.uuid4().hex[:12]}"
