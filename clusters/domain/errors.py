"""Everything the registry reports as going wrong, as one hierarchy under
``ClusterError``. The API layer maps each class to an HTTP status in one
table (clusters/api_errors.py); nothing here knows about HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any


class ClusterError(Exception):
    """Base of every error the registry reports to its callers.

    ``message`` is safe to show an operator: it never carries a secret.
    """

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details is not None else None


class ValidationFailed(ClusterError):
    """The request breaks a field rule; ``details`` maps field to messages.

    Errors about the request as a whole (which credentials go together) are
    under ``WHOLE_REQUEST``; the API layer renames that key to its own.
    """

    WHOLE_REQUEST = "*"

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        first_message = next(iter(errors.values()))[0]
        super().__init__(first_message, details={k: list(v) for k, v in errors.items()})


class InvalidClusterId(ClusterError):
    def __init__(self) -> None:
        super().__init__("Cluster id must be a UUID")


class ClusterNotFound(ClusterError):
    def __init__(self, cluster_id_or_name: uuid.UUID | str) -> None:
        super().__init__(f"Cluster {cluster_id_or_name} is not registered")
        self.cluster_id = cluster_id_or_name


class ClusterNameTaken(ClusterError):
    def __init__(self, name: str) -> None:
        super().__init__(f"A cluster named {name!r} is already registered")
        self.name = name


class ClusterAlreadyRegistered(ClusterError):
    """The PVE cluster (or standalone node) is registered already, under
    another name or through another of its nodes."""

    def __init__(self, existing_id: uuid.UUID, existing_name: str) -> None:
        super().__init__(
            f"This Proxmox VE cluster is already registered as {existing_name!r} "
            f"(id {existing_id}), maybe through another of its nodes; one cluster has one "
            "registration: edit that one (PATCH) to change its address, name or credentials",
            details={"existing_id": str(existing_id), "existing_name": existing_name},
        )
        self.existing_id = existing_id
        self.existing_name = existing_name


class Forbidden(ClusterError):
    """The acting account's role does not allow what it asked for."""


class StaleCluster(ClusterError):
    """A write was based on a version of the cluster's configuration that is
    no longer the stored one: someone changed it in between."""

    def __init__(self, cluster_id: uuid.UUID, expected_version: int) -> None:
        super().__init__(
            f"Cluster {cluster_id} was changed by someone else since version "
            f"{expected_version} was read"
        )
        self.cluster_id = cluster_id
        self.expected_version = expected_version


class CheckOvertaken(ClusterError):
    """A check's claim on a cluster is no longer the cluster's: it ran out and
    another checker took the cluster, or a manual refresh did. The check's
    findings are dropped; the newer check's stand."""

    def __init__(self, cluster_id: uuid.UUID) -> None:
        super().__init__(f"Another check of cluster {cluster_id} took over from this one")
        self.cluster_id = cluster_id


class PreconditionFailed(ClusterError):
    """The caller's ``If-Match`` names a version of the configuration that is
    no longer the stored one; nothing was changed."""

    def __init__(self, cluster_id: uuid.UUID, expected_version: int, current_version: int) -> None:
        super().__init__(
            f"Cluster {cluster_id} is at version {current_version}, not {expected_version}: "
            "it was changed since you read it; read it again and retry",
            details={"version": current_version},
        )
        self.cluster_id = cluster_id
        self.expected_version = expected_version
        self.current_version = current_version


class TokenHandOffRefused(ClusterError):
    """Proxmox refused to create or grant the API token the registry hands
    itself off to (the account lacks ``User.Modify``/``Permissions.Modify``);
    the API layer answers 403 with Proxmox's reason."""


class NetworkPolicyRefused(ClusterError):
    """The network policy forbids connecting to the address a target is at
    (docs/product-contract.md §13): nothing was sent to it. The API layer
    answers 400, naming the rule."""

    def __init__(self, message: str, *, address: str, rule: str) -> None:
        super().__init__(message, details={"address": address, "rule": rule})
        self.address = address
        self.rule = rule


class ProxmoxError(ClusterError):
    """Talking to the cluster's API failed; the API layer answers 502."""


class ProxmoxUnreachable(ProxmoxError):
    """Refused, unresolvable, reset or timed out."""


class ProxmoxNoAnswer(ProxmoxUnreachable):
    """Nothing accepted the connection: refused, or timed out connecting."""


class ProxmoxTLSError(ProxmoxError):
    """The TLS handshake failed: untrusted certificate or pin mismatch."""


class ProxmoxBadResponse(ProxmoxError):
    """An answer that is not what PVE sends: 5xx, a redirect, not the JSON
    envelope, too large."""


class ProxmoxAuthenticationFailed(ClusterError):
    """Proxmox refused the credentials; the API layer answers 401."""


class ProxmoxSecondFactorRequired(ProxmoxAuthenticationFailed):
    """The account needs a second factor, which a registry cannot supply."""


class ProxmoxPermissionDenied(ProxmoxError):
    """Authenticated, but the account may not read this path (403).

    ``reason`` is Proxmox's own, cleaned (e.g. "Permission check failed
    (/, Permissions.Modify)"), or "" when it gave none.
    """

    def __init__(
        self, message: str, *, reason: str = "", details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.reason = reason
