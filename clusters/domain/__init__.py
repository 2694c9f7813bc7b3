"""The cluster registry's domain: what a registered cluster is, the rules its
fields obey, how its health is judged, what can go wrong, who acts, and the
contract every storage backend keeps.

Nothing here knows about HTTP, Django or requests. The modules, one concern
each, are re-exported here: ``from clusters.domain import Cluster``.
"""

from clusters.domain.actor import Actor
from clusters.domain.audit import (
    SECRET_CHANGED,
    AuditAction,
    AuditEvent,
    Outcome,
    configuration_changes,
)
from clusters.domain.cluster import (
    CONFIGURATION_FIELDS,
    OBSERVATION_FIELDS,
    Cluster,
    ClusterStatus,
    ConnectionTarget,
)
from clusters.domain.credentials import (
    AuthMethod,
    Credentials,
    PasswordCredentials,
    Secret,
    TokenCredentials,
)
from clusters.domain.endpoint import ENDPOINT_MAX_LENGTH, PROXMOX_DEFAULT_PORT, normalise_endpoint
from clusters.domain.errors import (
    ClusterError,
    ClusterNameTaken,
    ClusterNotFound,
    Forbidden,
    InvalidClusterId,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxError,
    ProxmoxPermissionDenied,
    ProxmoxSecondFactorRequired,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    StaleCluster,
    ValidationFailed,
)
from clusters.domain.fields import (
    NAME_MAX_LENGTH,
    SECRET_MAX_LENGTH,
    USERID_MAX_LENGTH,
    FieldInvalid,
    name_key,
    normalise_fingerprint,
    normalise_name,
    normalise_token_id,
    normalise_username,
    parse_cluster_id,
)
from clusters.domain.health import (
    ClusterStatusEntry,
    Health,
    NodeEntry,
    ProxmoxReport,
    assess_health,
)
from clusters.domain.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    SEARCH_MAX_LENGTH,
    ClusterPage,
    ClusterQuery,
    PublicCluster,
    parse_statuses,
    public_cluster,
    rfc3339,
    search_key,
)
from clusters.domain.permissions import OPERATORS, VIEWERS, Permission, authorize, may
from clusters.domain.registration import Registration, RegistrationRequest
from clusters.domain.repository import AuditLog, ClusterRepository, UnitOfWork

__all__ = [
    "CONFIGURATION_FIELDS",
    "DEFAULT_LIMIT",
    "ENDPOINT_MAX_LENGTH",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "NAME_MAX_LENGTH",
    "OBSERVATION_FIELDS",
    "OPERATORS",
    "PROXMOX_DEFAULT_PORT",
    "SEARCH_MAX_LENGTH",
    "SECRET_CHANGED",
    "SECRET_MAX_LENGTH",
    "USERID_MAX_LENGTH",
    "VIEWERS",
    "Actor",
    "AuditAction",
    "AuditEvent",
    "AuditLog",
    "AuthMethod",
    "Cluster",
    "ClusterError",
    "ClusterNameTaken",
    "ClusterNotFound",
    "ClusterPage",
    "ClusterQuery",
    "ClusterRepository",
    "ClusterStatus",
    "ClusterStatusEntry",
    "ConnectionTarget",
    "Credentials",
    "FieldInvalid",
    "Forbidden",
    "Health",
    "InvalidClusterId",
    "NodeEntry",
    "Outcome",
    "PasswordCredentials",
    "Permission",
    "ProxmoxAuthenticationFailed",
    "ProxmoxBadResponse",
    "ProxmoxError",
    "ProxmoxPermissionDenied",
    "ProxmoxReport",
    "ProxmoxSecondFactorRequired",
    "ProxmoxTLSError",
    "ProxmoxUnreachable",
    "PublicCluster",
    "Registration",
    "RegistrationRequest",
    "Secret",
    "StaleCluster",
    "TokenCredentials",
    "UnitOfWork",
    "ValidationFailed",
    "assess_health",
    "authorize",
    "configuration_changes",
    "may",
    "name_key",
    "normalise_endpoint",
    "normalise_fingerprint",
    "normalise_name",
    "normalise_token_id",
    "normalise_username",
    "parse_cluster_id",
    "parse_statuses",
    "public_cluster",
    "rfc3339",
    "search_key",
]
