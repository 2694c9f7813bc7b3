"""What the use cases need from the outside world, as types: a Proxmox
gateway, a clock, a source of randomness, a way to open a unit of work and
someone to tell about checks. The composition root (clusters/bootstrap.py)
supplies real ones; unit tests supply fakes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from clusters.domain import (
    CheckAttempts,
    ConnectionTarget,
    Credentials,
    PasswordCredentials,
    ProxmoxReport,
    TokenCredentials,
    UnitOfWork,
)


class ProxmoxGateway(Protocol):
    """What the service needs from a Proxmox client (a fake in unit tests)."""

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        """Prove the credentials (a fresh login) and read the cluster; the
        domain's Proxmox errors."""
        ...

    def check(
        self, target: ConnectionTarget, credentials: Credentials, *, fresh_login: bool = False
    ) -> ProxmoxReport:
        """Read the cluster again, reusing a login where one is kept unless
        ``fresh_login``; never takes longer than the client's check budget."""
        ...

    def check_through(
        self,
        targets: Sequence[ConnectionTarget],
        credentials: Credentials,
        *,
        fresh_login: bool = False,
    ) -> CheckAttempts:
        """``check`` through the first of ``targets`` that answers, passing
        over those that cannot be reached or trusted; all within one check
        budget. Refused credentials raise at once."""
        ...

    def issue_token(
        self, target: ConnectionTarget, credentials: PasswordCredentials, *, name: str, comment: str
    ) -> TokenCredentials:
        """Create a privilege-separated API token ``<user>!<name>`` with the
        password and grant it read-only access (``PVEAuditor`` on ``/``).
        TokenHandOffRefused when Proxmox refuses; nothing is left behind."""
        ...

    def delete_token(
        self, target: ConnectionTarget, credentials: Credentials, token_id: str
    ) -> None:
        """Delete the API token ``token_id`` on the cluster, logged in with
        ``credentials``."""
        ...


Clock = Callable[[], datetime]
Random = Callable[[], float]  # uniform in [0, 1), as random.random
UnitOfWorkFactory = Callable[[], UnitOfWork]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CheckOutcome(StrEnum):
    """How a visit to a cluster's API ended (whatever health it found)."""

    SUCCESS = "success"  # the API answered; the health was judged
    UNAUTHORIZED = "unauthorized"  # it refused the stored credentials
    ERROR = "error"  # unreachable, TLS, not a PVE answer, ...


class CheckObserver(Protocol):
    """Told about every check as it ends (the Prometheus metrics listen)."""

    def check_finished(self, outcome: CheckOutcome, seconds: float) -> None: ...


class IgnoreChecks:
    """The observer when nobody listens."""

    def check_finished(self, outcome: CheckOutcome, seconds: float) -> None:
        pass
