"""A registration or an edit waiting for the operator to trust a certificate.

After an untrusted-certificate answer the page offers one button, "Trust
this certificate and register" (or "… and save"). Pressing it must not mean
typing the secret again, and the secret must not travel through the page
(not even encrypted): so the change waits here, in the operator's own
session, its secret encrypted with the credentials keys (the same Fernet
keys that encrypt stored clusters), under a random handle that is all the
page holds. It is taken at most once, by the page it was made for, and kept
for ``LIFETIME``; a session holds one at a time (a new untrusted answer
replaces the last).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from clusters.encryption import CredentialCipher, CredentialsKeyError

SESSION_KEY = "dashboard.pending_change"
LIFETIME = timedelta(minutes=10)
_OWNER = "a change waiting for its certificate to be trusted"


@dataclass(frozen=True)
class PendingChange:
    typed: dict[str, Any]  # what the operator typed, without the secret
    fingerprint: str  # the certificate the server presented
    secret: str | None  # the secret typed with it, if one was
    expired: bool  # waited too long, or its keys are gone: the secret is not kept


def keep(
    session: SessionBase,
    *,
    purpose: str,
    typed: dict[str, Any],
    secret: str | None,
    fingerprint: str,
    now: datetime,
) -> str:
    """Keep a change until its certificate is trusted; return its handle.
    ``purpose`` names what it is for (a registration, an edit of one
    cluster): only that may take it."""
    handle = secrets.token_urlsafe(24)
    session[SESSION_KEY] = {
        "handle": handle,
        "purpose": purpose,
        "typed": typed,
        "fingerprint": fingerprint,
        "secret": CredentialCipher.from_settings().encrypt(secret) if secret else None,
        "expires": (now + LIFETIME).timestamp(),
    }
    return handle


def take(session: SessionBase, handle: str, *, purpose: str, now: datetime) -> PendingChange | None:
    """The change waiting under ``handle`` for ``purpose``, removed from the
    session; None if no such change waits. One that waited too long comes
    back ``expired``, without its secret: the operator types it again."""
    kept = session.get(SESSION_KEY)
    if (
        not isinstance(kept, dict)
        or kept.get("purpose") != purpose
        or not secrets.compare_digest(str(kept.get("handle", "")), handle)
    ):
        return None
    del session[SESSION_KEY]
    expired = now.timestamp() > kept["expires"]
    secret: str | None = None
    if kept["secret"] and not expired:
        try:
            secret = CredentialCipher.from_settings().decrypt(kept["secret"], owner=_OWNER)
        except CredentialsKeyError:  # the keys were rotated away meanwhile
            expired = True
    return PendingChange(
        typed=kept["typed"], fingerprint=kept["fingerprint"], secret=secret, expired=expired
    )
