"""Settings for the test suite: production settings (DJANGO_DEBUG=0) with the
values production must supply filled in, and plain HTTP allowed, since the
tests talk to the service over loopback without TLS.
"""

import os

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

from proxmoxer_site.settings import *  # noqa: E402, F403

# Fast password hashing: the suite creates users, it does not attack them.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "100000/minute"}}  # noqa: F405

# No collected static files in the test run; whitenoise need not look for them.
STATIC_ROOT = None
