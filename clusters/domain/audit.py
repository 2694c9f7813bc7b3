"""The record of who did what (docs/product-contract.md §13): one event per
action, written in the same unit of work as the change it records, so a
change without its event cannot exist. Append-only; secrets never."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from clusters.domain.actor import Actor
from clusters.domain.cluster import Cluster
from clusters.domain.credentials import PasswordCredentials


class AuditAction(StrEnum):
    CLUSTER_REGISTER = "cluster.register"
    CLUSTER_EDIT = "cluster.edit"
    CLUSTER_REFRESH = "cluster.refresh"  # manual; background checks keep the status history
    CLUSTER_DEREGISTER = "cluster.deregister"
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_FORBIDDEN = "auth.forbidden"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


# What the API answers when the action succeeds; an event keeps it, so the
# record reads the same whichever way (API, manage.py) the action was taken.
SUCCESS_STATUS = {
    AuditAction.CLUSTER_REGISTER: 201,
    AuditAction.CLUSTER_EDIT: 200,
    AuditAction.CLUSTER_REFRESH: 200,
    AuditAction.CLUSTER_DEREGISTER: 204,
    AuditAction.AUTH_LOGIN: 200,
}

# A secret's change is recorded as this word, never as a value.
SECRET_CHANGED = "changed"

Changes = Mapping[str, Any]  # field → [old, new]; a secret → SECRET_CHANGED


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: uuid.UUID
    at: datetime
    actor: str
    action: AuditAction
    outcome: Outcome
    status_code: int | None = None
    cluster_id: uuid.UUID | None = None
    cluster_name: str | None = None
    source_ip: str | None = None
    changes: Changes = field(default_factory=dict)

    @classmethod
    def success(
        cls,
        action: AuditAction,
        *,
        actor: Actor,
        at: datetime,
        cluster: Cluster | None = None,
        changes: Changes | None = None,
    ) -> AuditEvent:
        return cls(
            id=uuid.uuid4(),
            at=at,
            actor=actor.username,
            action=action,
            outcome=Outcome.SUCCESS,
            status_code=SUCCESS_STATUS.get(action),
            cluster_id=cluster.id if cluster is not None else None,
            cluster_name=cluster.name if cluster is not None else None,
            source_ip=actor.source_ip,
            changes=dict(changes or {}),
        )

    @classmethod
    def failure(
        cls,
        action: AuditAction,
        *,
        actor: Actor,
        at: datetime,
        status_code: int | None,
        cluster_id: uuid.UUID | None = None,
        cluster_name: str | None = None,
    ) -> AuditEvent:
        """An action that was refused or failed: nothing changed, so no
        ``changes``; ``status_code`` is what the caller was answered."""
        return cls(
            id=uuid.uuid4(),
            at=at,
            actor=actor.username,
            action=action,
            outcome=Outcome.FAILURE,
            status_code=status_code,
            cluster_id=cluster_id,
            cluster_name=cluster_name,
            source_ip=actor.source_ip,
        )

    def matches(self, query: AuditQuery) -> bool:
        """Whether ``query``'s filters select this event; the in-memory log
        filters with this, the database log with the same conditions in SQL."""
        return (
            (query.action is None or self.action == query.action)
            and (query.outcome is None or self.outcome == query.outcome)
            and (query.actor is None or self.actor == query.actor)
            and (query.cluster_id is None or self.cluster_id == query.cluster_id)
            and (query.cluster_name is None or self.cluster_name == query.cluster_name)
            and (query.since is None or self.at >= query.since)
            and (query.until is None or self.at < query.until)
        )


AUDIT_PAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which events to read, newest first: every filter that is not None
    must match (``since`` inclusive, ``until`` exclusive); then ``offset``
    events are skipped and at most ``limit`` returned."""

    action: AuditAction | None = None
    outcome: Outcome | None = None
    actor: str | None = None
    cluster_id: uuid.UUID | None = None
    cluster_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= AUDIT_PAGE_MAX:
            raise ValueError(f"limit must be between 1 and {AUDIT_PAGE_MAX}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of a query: its events and how many matched in all."""

    events: Sequence[AuditEvent]
    total: int


def _configuration(cluster: Cluster | None) -> dict[str, Any]:
    """A cluster's configuration as the audit shows it: the secret only as
    an opaque marker that tells whether it changed."""
    if cluster is None:
        return {}
    credentials = cluster.credentials
    secret_field = "password" if isinstance(credentials, PasswordCredentials) else "token_secret"
    principal_field = "username" if isinstance(credentials, PasswordCredentials) else "token_id"
    return {
        "name": cluster.name,
        "api_endpoint": cluster.api_endpoint,
        "auth_method": str(credentials.auth_method),
        principal_field: credentials.principal,
        secret_field: credentials.secret,
        "verify_tls": cluster.verify_tls,
        "fingerprint": cluster.fingerprint,
    }


def configuration_changes(before: Cluster | None, after: Cluster | None) -> dict[str, Any]:
    """``{field: [old, new]}`` for every configuration field that differs;
    secrets as ``"changed"``. ``before=None`` is a registration,
    ``after=None`` a deregistration."""
    old, new = _configuration(before), _configuration(after)
    changes: dict[str, Any] = {}
    for name in dict.fromkeys([*old, *new]):
        was, now = old.get(name), new.get(name)
        if name in ("password", "token_secret"):
            if was is None or now is None or was != now:
                changes[name] = SECRET_CHANGED
        elif was != now:
            changes[name] = [was, now]
    return changes
