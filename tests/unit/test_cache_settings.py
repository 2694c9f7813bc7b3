"""CACHE_URL as the settings read it (proxmoxer_site/settings.py): a Redis URL
is Django's own Redis backend, with its key prefix and bounded socket
waits; the throttles then count in it."""

from __future__ import annotations

from proxmoxer_site.settings import REDIS_CACHE_BACKEND, cache_from_url


def test_a_redis_url_is_djangos_own_redis_backend_with_bounded_waits():
    assert cache_from_url("redis://127.0.0.1:6379/2") == {
        "BACKEND": REDIS_CACHE_BACKEND,
        "LOCATION": "redis://127.0.0.1:6379/2",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }


def test_key_prefix_and_timeout_from_the_query_are_the_caches_own_settings():
    config = cache_from_url("rediss://cache.internal:6380/0?key_prefix=prod&timeout=30")

    assert config["BACKEND"] == REDIS_CACHE_BACKEND
    assert config["LOCATION"] == "rediss://cache.internal:6380/0"
    assert (config["KEY_PREFIX"], config["TIMEOUT"]) == ("prod", 30)
    assert "key_prefix" not in config and "key_prefix" not in config["OPTIONS"]


def test_other_cache_urls_keep_their_backend():
    assert cache_from_url("locmemcache://")["BACKEND"] == (
        "django.core.cache.backends.locmem.LocMemCache"
    )
