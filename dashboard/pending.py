"""A registration waiting for the operator to trust a certificate.

After an untrusted-certificate answer the page offers one button, "Trust
this certificate and register". Pressing it must not mean typing the secret
again, and the secret must not travel through the page (not even
encrypted): so the registration waits here, in the operator's own session,
its secret encrypted with the credentials keys (the same Fernet keys that
encrypt stored clusters), under a random handle that is all the page holds.
It is taken at most once and kept for ``LIFETIME``; a session holds one at
a time (a new untrusted answer replaces the last).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from clusters.encryption import CredentialCipher, CredentialsKeyError

SESSION_KEY = "dashboard.pending_registration"
LIFETIME = timedelta(minutes=10)
_OWNER = "a registration waiting for its certificate to be trusted"


@dataclass(frozen=True)
class PendingRegistration:
    typed: dict[str, Any]  # what the operator typed, without the secret
    fingerprint: str  # the certificate the server presented
    secret: str | None


def keep(
    session: SessionBase, *, typed: dict[str, Any], secret: str, fingerprint: str, now: datetime
) -> str:
    """Keep a registration until its certificate is trusted; return its handle."""
    handle = secrets.token_urlsafe(24)
    session[SESSION_KEY] = {
        "handle": handle,
        "typed": typed,
        "fingerprint": fingerprint,
        "secret": CredentialCipher.from_settings().encrypt(secret),
        "expires": (now + LIFETIME).timestamp(),
    }
    return handle


def take(session: SessionBase, handle: str, *, now: datetime) -> PendingRegistration | None:
    """The registration waiting under ``handle``, removed from the session
    (None if no registration waits under that handle). Its ``secret`` is
    None once it expired, or when the keys that encrypted it are gone: the
    operator types it again."""
    kept = session.get(SESSION_KEY)
    if not isinstance(kept, dict) or not secrets.compare_digest(
        str(kept.get("handle", "")), handle
    ):
        return None
    del session[SESSION_KEY]
    secret: str | None = None
    if now.timestamp() <= kept["expires"]:
        try:
            secret = CredentialCipher.from_settings().decrypt(kept["secret"], owner=_OWNER)
        except CredentialsKeyError:  # the keys were rotated away meanwhile
            secret = None
    return PendingRegistration(typed=kept["typed"], fingerprint=kept["fingerprint"], secret=secret)
