"""Settings for the test suite: production settings (DJANGO_DEBUG=0) with the
values production must supply filled in, and plain HTTP allowed, since the
tests talk to the service over loopback without TLS."""

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-5f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
)
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,[::1]")

from proxmoxer_site.settings import *  # noqa: F403

# Fast password hashing: the suite creates users, it does not attack them.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "100000/minute"}}  # noqa: F405

# No collected static files in the test run; whitenoise need not look for them.
STATIC_ROOT = None
