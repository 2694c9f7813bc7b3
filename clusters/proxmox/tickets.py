"""PVE login tickets kept for repeated checks of password clusters.

A ticket lives two hours (docs/product-contract.md §5). Logging in for every
check costs a round trip, PVE's own password check and a secret sent over
the wire each minute; a kept ticket costs nothing. So the client keeps each
cluster's ticket here, in this process's memory only (never a log line,
never the database, never a repr: the values are ``Secret``), uses it as it
is for most of its life, renews it shortly before the end by posting it as
the password (PVE accepts a valid ticket in its place, and answers with a
new one), and logs in with the password only when it has none usable.

Tickets are keyed by everything that decides where they go and whose they
are: the endpoint, its TLS trust (verify_tls, pin), the user and the
password, the last as an HMAC under a key that exists only in this process.
A changed password, endpoint or pin therefore never finds the old ticket:
a ticket issued by one server is never sent to another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from clusters.domain import ConnectionTarget, PasswordCredentials, Secret

TICKET_LIFETIME = 2 * 3600.0  # seconds; PVE's ticket lifetime
RENEW_BEFORE_END = 15 * 60.0  # renew a ticket in its last quarter hour…
STOP_BEFORE_END = 2 * 60.0  # …and stop trusting it two minutes before it ends


@dataclass(frozen=True, slots=True)
class Ticket:
    """A PVE ticket and the CSRF token that goes with it, for ``username``."""

    username: str
    value: Secret
    csrf_token: Secret | None


@dataclass(frozen=True, slots=True)
class KeptTicket:
    """A kept ticket, and whether it is time to renew it."""

    ticket: Ticket
    renew: bool


class TicketCache:
    """The tickets of one client, by cluster and credentials. Thread-safe."""

    def __init__(
        self,
        *,
        lifetime: float = TICKET_LIFETIME,
        renew_before_end: float = RENEW_BEFORE_END,
        stop_before_end: float = STOP_BEFORE_END,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= stop_before_end <= renew_before_end < lifetime:
            raise ValueError("tickets are renewed before they stop being used, within their life")
        self._renew_at = lifetime - renew_before_end
        self._stop_at = lifetime - stop_before_end
        self._clock = clock
        self._key = secrets.token_bytes(32)  # this process's own: keys mean nothing elsewhere
        self._tickets: dict[bytes, tuple[Ticket, float]] = {}
        self._lock = threading.Lock()
        self._pruned_at_size = 0

    def key(self, target: ConnectionTarget, credentials: PasswordCredentials) -> bytes:
        """The key of ``credentials``' tickets at ``target``."""
        parts = (
            target.api_endpoint,
            "verify" if target.verify_tls else "no-verify",
            target.fingerprint or "",
            credentials.username,
            credentials.password.reveal(),
        )
        message = "\0".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, key: bytes) -> KeptTicket | None:
        """The ticket kept under ``key``, unless there is none or it is too
        close to its end to be used."""
        with self._lock:
            kept = self._tickets.get(key)
        if kept is None:
            return None
        ticket, obtained_at = kept
        age = self._clock() - obtained_at
        if age >= self._stop_at:
            self.discard(key)
            return None
        return KeptTicket(ticket, renew=age >= self._renew_at)

    def keep(self, key: bytes, ticket: Ticket) -> None:
        """Keep ``ticket``, just issued, under ``key``."""
        now = self._clock()
        with self._lock:
            self._tickets[key] = (ticket, now)
            if len(self._tickets) > 2 * self._pruned_at_size + 64:
                # Tickets of changed passwords and removed clusters are never
                # asked for again: drop the unusable ones now and then.
                self._tickets = {
                    k: v for k, v in self._tickets.items() if now - v[1] < self._stop_at
                }
                self._pruned_at_size = len(self._tickets)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._tickets.pop(key, None)

    def __len__(self) -> int:
        return len(self._tickets)

    def __repr__(self) -> str:
        return f"TicketCache({len(self)} tickets)"
