"""The database form of a registered cluster, for ``DjangoClusterRepository``.

The domain's ``Cluster`` stays the object everything else works with; this
model only converts to and from it. Secrets are stored as Fernet tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q

from clusters.domain import (
    ENDPOINT_MAX_LENGTH,
    NAME_KEY_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USERID_MAX_LENGTH,
    AuditAction,
    AuditEvent,
    AuthMethod,
    Cluster,
    ClusterStatus,
    Credentials,
    NodeList,
    NodeState,
    Outcome,
    PasswordCredentials,
    Secret,
    StatusChange,
    TokenCredentials,
    name_key,
)
from clusters.domain.endpoint_documents import (
    endpoints_document,
    endpoints_from_document,
    health_document,
    health_from_document,
)
from clusters.encryption import CredentialCipher, StoredSecret

NAME_KEY_CONSTRAINT = "clusters_cluster_unique_name_key"
# user@realm!tokenname: PVE allows 64 characters for the user id and the name.
PRINCIPAL_MAX_LENGTH = USERID_MAX_LENGTH + 1 + 64
FINGERPRINT_LENGTH = 95  # 32 hex pairs and 31 colons
CLUSTER_NAME_MAX_LENGTH = 255  # PVE allows 15 characters; the client cuts longer answers


class CodePointCharField(models.CharField):
    """A CharField that compares and sorts by Unicode code point, as Python's
    ``str`` does, on SQLite and PostgreSQL alike.

    SQLite's default BINARY collation already compares UTF-8 bytes, which is
    code-point order. PostgreSQL sorts by the database's locale (``en_US``
    puts "b" before "B" before "c", ignores punctuation at first, …), so the
    column gets the "C" collation there: byte order of UTF-8, i.e. code-point
    order, and the unique index on it serves ``ORDER BY`` directly.
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        parameters = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            parameters["collation"] = "C"
        return parameters


class ClusterRecord(models.Model):
    """One registered Proxmox VE cluster; its secret only as a Fernet token."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    # domain.name_key(name), computed in Python: LOWER() differs between
    # databases (SQLite's folds ASCII only) and is not casefold() anywhere.
    name_key = CodePointCharField(max_length=NAME_KEY_MAX_LENGTH, editable=False)
    api_endpoint = models.CharField(max_length=ENDPOINT_MAX_LENGTH)
    auth_method = models.CharField(
        max_length=16, choices=[(method.value, method.value) for method in AuthMethod]
    )
    principal = models.CharField(
        max_length=PRINCIPAL_MAX_LENGTH, help_text="user@realm, or the token id user@realm!name"
    )
    secret_token = models.TextField(help_text="The password or token secret, Fernet-encrypted")
    # The registry made this API token on the cluster (the token hand-off)
    # and deletes it there when it stops using it.
    token_created_by_registry = models.BooleanField(default=False)
    verify_tls = models.BooleanField()
    fingerprint = models.CharField(max_length=FINGERPRINT_LENGTH, null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=[(status.value, status.value) for status in ClusterStatus]
    )
    # What the cluster itself reported: free text, whatever its length.
    proxmox_version = models.TextField()
    node_count = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    # What an operator may act on about last_error, e.g. {"fingerprint": …}.
    last_error_details = models.JSONField(null=True, blank=True)
    # The configuration's version: every conditional write names it in its
    # WHERE clause (docs/architecture.md, "Versioned writes").
    version = models.PositiveIntegerField(default=1)
    # More of what the last check found (docs/product-contract.md §8).
    cluster_name = models.CharField(max_length=CLUSTER_NAME_MAX_LENGTH, null=True, blank=True)
    nodes_online = models.PositiveIntegerField(default=0)
    # The background checks' bookkeeping, neither configuration nor
    # observation: when to check next, and which checker holds the cluster
    # until when (docs/architecture.md, "Background checks"). Never set: due.
    next_check_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    # Topology (docs/product-contract.md §10): further endpoints as
    # [{"url", "node", "fingerprint"}] and whether they are learned from the
    # cluster (configuration); per endpoint url, when a check last got an
    # answer through it and when not (observation).
    endpoints = models.JSONField(default=list, blank=True)
    discover_endpoints = models.BooleanField(default=True)
    registered_node = models.CharField(max_length=CLUSTER_NAME_MAX_LENGTH, null=True, blank=True)
    endpoint_health = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "clusters_cluster"
        verbose_name = "cluster"
        constraints = [
            # The case-insensitive name rule, held where every process sees it.
            models.UniqueConstraint(fields=["name_key"], name=NAME_KEY_CONSTRAINT),
            models.CheckConstraint(
                condition=Q(auth_method__in=[method.value for method in AuthMethod]),
                name="clusters_cluster_auth_method_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[status.value for status in ClusterStatus]),
                name="clusters_cluster_status_valid",
            ),
        ]
        indexes = [
            # A list filtered by status, in name order, and its count: without
            # it both scan the whole table (name order alone is served by the
            # unique name_key index).
            models.Index(fields=["status", "name_key"], name="clusters_cluster_status_name"),
            # The checkers' query: due clusters, the longest due first.
            models.Index(fields=["next_check_at"], name="clusters_cluster_next_check"),
            models.Index(fields=["claim_token"], name="clusters_cluster_claim_token"),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_domain(
        cls, cluster: Cluster, cipher: CredentialCipher, *, with_secret: bool = True
    ) -> ClusterRecord:
        """The row for ``cluster``; ``with_secret=False`` leaves the secret
        out (for writes that do not store it), saving its encryption."""
        credentials = cluster.credentials
        return cls(
            id=cluster.id,
            name=cluster.name,
            name_key=name_key(cluster.name),
            api_endpoint=cluster.api_endpoint,
            auth_method=credentials.auth_method.value,
            principal=credentials.principal,
            secret_token=_secret_token(credentials.secret, cipher) if with_secret else "",
            token_created_by_registry=getattr(credentials, "created_by_registry", False),
            verify_tls=cluster.verify_tls,
            fingerprint=cluster.fingerprint,
            status=cluster.status.value,
            proxmox_version=cluster.proxmox_version,
            node_count=cluster.node_count,
            created_at=cluster.created_at,
            updated_at=cluster.updated_at,
            last_checked_at=cluster.last_checked_at,
            last_error=cluster.last_error,
            last_error_details=(
                dict(cluster.last_error_details) if cluster.last_error_details is not None else None
            ),
            version=cluster.version,
            cluster_name=cluster.cluster_name,
            nodes_online=cluster.nodes_online,
            next_check_at=cluster.next_check_at,
            endpoints=endpoints_document(cluster.endpoints),
            discover_endpoints=cluster.discover_endpoints,
            registered_node=cluster.registered_node,
            endpoint_health=health_document(cluster.endpoint_health),
        )

    def to_domain(self, cipher: CredentialCipher) -> Cluster:
        secret = StoredSecret(self.secret_token, cipher, owner=f"cluster {self.id}")
        credentials: Credentials
        if self.auth_method == AuthMethod.TOKEN:
            credentials = TokenCredentials(
                self.principal, secret, created_by_registry=self.token_created_by_registry
            )
        else:
            credentials = PasswordCredentials(self.principal, secret)
        return Cluster(
            id=self.id,
            name=self.name,
            api_endpoint=self.api_endpoint,
            credentials=credentials,
            verify_tls=self.verify_tls,
            fingerprint=self.fingerprint,
            status=ClusterStatus(self.status),
            proxmox_version=self.proxmox_version,
            node_count=self.node_count,
            created_at=self.created_at,
            updated_at=self.updated_at,
            last_checked_at=self.last_checked_at,
            last_error=self.last_error,
            last_error_details=self.last_error_details,
            version=self.version,
            cluster_name=self.cluster_name,
            nodes_online=self.nodes_online,
            next_check_at=self.next_check_at,
            endpoints=endpoints_from_document(self.endpoints),
            discover_endpoints=self.discover_endpoints,
            registered_node=self.registered_node,
            endpoint_health=health_from_document(self.endpoint_health),
        )


def _secret_token(secret: Secret, cipher: CredentialCipher) -> str:
    # A secret read from this database is already a token: storing it again
    # unchanged need not decrypt and re-encrypt it.
    if isinstance(secret, StoredSecret) and secret.cipher is cipher:
        return secret.token
    return cipher.encrypt(secret.reveal())


class ClusterIdentityRecord(models.Model):
    """One key of what identifies a registered PVE cluster
    (``domain.identity_keys``): the primary key makes a key one cluster's,
    between processes too. Deleted with the cluster by the repository, as
    node lists are (no foreign key: see ``DjangoClusterRepository.delete``)."""

    key = models.CharField(primary_key=True, max_length=80)
    cluster_id = models.UUIDField(db_index=True)

    class Meta:
        db_table = "clusters_cluster_identity"
        verbose_name = "cluster identity key"

    def __str__(self) -> str:
        return self.key


class AuditEventRecord(models.Model):
    """One audit event (docs/product-contract.md §13). Append-only: a row is
    inserted once and never changed; events outlive the clusters they name,
    so the cluster is referenced by id, not by a foreign key."""

    # Newest first is insertion order: a sequence, since many events share a
    # timestamp and UUIDs do not sort by time.
    sequence = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, editable=False)
    at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(
        max_length=32, choices=[(action.value, action.value) for action in AuditAction]
    )
    outcome = models.CharField(
        max_length=8, choices=[(outcome.value, outcome.value) for outcome in Outcome]
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    cluster_id = models.UUIDField(null=True, blank=True, db_index=True)
    cluster_name = models.CharField(max_length=NAME_MAX_LENGTH, null=True, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "clusters_audit_event"
        verbose_name = "audit event"
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("audit events are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    @classmethod
    def from_domain(cls, event: AuditEvent) -> AuditEventRecord:
        return cls(
            event_id=event.id,
            at=event.at,
            actor=event.actor,
            action=event.action.value,
            outcome=event.outcome.value,
            status_code=event.status_code,
            cluster_id=event.cluster_id,
            cluster_name=event.cluster_name,
            source_ip=event.source_ip,
            changes=dict(event.changes),
        )

    def to_domain(self) -> AuditEvent:
        return AuditEvent(
            id=self.event_id,
            at=self.at,
            actor=self.actor,
            action=AuditAction(self.action),
            outcome=Outcome(self.outcome),
            status_code=self.status_code,
            cluster_id=self.cluster_id,
            cluster_name=self.cluster_name,
            source_ip=self.source_ip,
            changes=self.changes,
        )


_STATUS_CHOICES = [(status.value, status.value) for status in ClusterStatus]
_NODE_FIELDS = tuple(field.name for field in dataclass_fields(NodeState))


class NodeListRecord(models.Model):
    """The node list of one cluster's last successful check, as JSON: read
    and written whole, one row per cluster. Deleted with the cluster by the
    repository (no foreign key: see ``DjangoClusterRepository.delete``)."""

    cluster_id = models.UUIDField(primary_key=True)
    checked_at = models.DateTimeField()
    nodes = models.JSONField(default=list)

    class Meta:
        db_table = "clusters_node_list"
        verbose_name = "node list"

    @classmethod
    def from_domain(
        cls, cluster_id: uuid.UUID, nodes: Sequence[NodeState], checked_at: datetime
    ) -> NodeListRecord:
        return cls(
            cluster_id=cluster_id,
            checked_at=checked_at,
            nodes=[{field: getattr(node, field) for field in _NODE_FIELDS} for node in nodes],
        )

    def to_domain(self) -> NodeList:
        nodes = tuple(
            NodeState(**{field: entry.get(field) for field in _NODE_FIELDS})
            for entry in self.nodes
            if isinstance(entry, dict)
        )
        return NodeList(nodes, self.checked_at)


class StatusChangeRecord(models.Model):
    """One change of a cluster's status (docs/product-contract.md §11);
    ``sequence`` orders them, as timestamps may tie."""

    sequence = models.BigAutoField(primary_key=True)
    cluster_id = models.UUIDField()
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, choices=_STATUS_CHOICES, null=True, blank=True)
    to_status = models.CharField(max_length=16, choices=_STATUS_CHOICES)
    reason = models.TextField(blank=True)

    class Meta:
        db_table = "clusters_status_change"
        verbose_name = "status change"
        indexes = [
            models.Index(fields=["cluster_id", "-sequence"], name="clusters_status_change_newest")
        ]

    @classmethod
    def from_domain(cls, change: StatusChange) -> StatusChangeRecord:
        return cls(
            cluster_id=change.cluster_id,
            at=change.at,
            from_status=change.from_status.value if change.from_status is not None else None,
            to_status=change.to_status.value,
            reason=change.reason,
        )

    def to_domain(self) -> StatusChange:
        return StatusChange(
            cluster_id=self.cluster_id,
            at=self.at,
            from_status=ClusterStatus(self.from_status) if self.from_status else None,
            to_status=ClusterStatus(self.to_status),
            reason=self.reason,
        )
