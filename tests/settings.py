"""Settings for the test suite: production settings (DJANGO_DEBUG=0) with the
values production must supply filled in, and plain HTTP allowed, since the
tests talk to the service over loopback without TLS.

A second database alias, ``postgres``, exists when the PostgreSQL server of
DATABASE_URL_POSTGRES answers (tests/postgres.py); tests marked ``postgres``
use it and skip, or in CI fail, without it.
"""

import os
import tempfile
from pathlib import Path

from tests import postgres

# Two keys, newest first, as after a rotation: tests cover both positions.
TEST_CREDENTIALS_KEYS = (
    "a4Yy1yqbOUXoWjdIRrT0Jx3Vv6wXyHnK0q9mTt3cZPU=",
    "C2zqz3ZDYrFcfb0YbUqUuH_g0Fzjz4Ol0p1mR2p8KAo=",
)

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-5f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
)
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,[::1]")
os.environ.setdefault("PROXMOXER_CREDENTIALS_KEYS", ",".join(TEST_CREDENTIALS_KEYS))
# Production settings otherwise, but the suite drives `manage.py pve_simulator`.
os.environ.setdefault("PROXMOXER_SIMULATOR", "1")

from proxmoxer_site.settings import *  # noqa: E402, F403

# Fast password hashing: the suite creates users, it does not attack them.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "100000/minute"}}  # noqa: F405

# No collected static files in the test run; whitenoise need not look for them.
STATIC_ROOT = None

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file rather than SQLite's shared in-memory database: the concurrency
    # tests write from many threads, and shared-cache memory databases answer
    # those with "table is locked" instead of waiting their turn. Named per
    # process, so two test runs on one machine never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"proxmoxer-test-{os.getpid()}.sqlite3")
    }

POSTGRES_REQUIRED = postgres.REQUIRED
POSTGRES_UNAVAILABLE = postgres.unavailable_reason()
if POSTGRES_UNAVAILABLE is None:
    DATABASES[postgres.ALIAS] = with_timeouts(  # noqa: F405
        {**postgres.settings_dict(), "TEST": {"NAME": f"test_proxmoxer_{os.getpid()}"}}
    )
