"""The cluster registry's domain: what a registered cluster is, the rules its
fields obey, how its health is judged, what can go wrong, and the contract
every storage backend keeps.

Nothing here knows about HTTP, Django or requests.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
import unicodedata
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

PROXMOX_DEFAULT_PORT = 8006
NAME_MAX_LENGTH = 255
ENDPOINT_MAX_LENGTH = 2048
USERID_MAX_LENGTH = 64  # PVE's own limit for pve-userid
SECRET_MAX_LENGTH = 1024


class ClusterStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class AuthMethod(StrEnum):
    PASSWORD = "password"
    TOKEN = "token"


# --------------------------------------------------------------------------
# Secrets and credentials


class Secret:
    """A string that will not show itself by accident.

    ``repr``, ``str`` and formatting all print a mask; only ``reveal()`` hands
    out the value, so a secret cannot end up in a log line, a traceback or an
    error message without someone asking for it by name.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling (caches, multiprocessing) would copy the value out silently.
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True, slots=True)
class PasswordCredentials:
    """A PVE user (``user@realm``) and password, exchanged for a ticket."""

    username: str
    password: Secret

    auth_method = AuthMethod.PASSWORD

    @property
    def principal(self) -> str:
        return self.username


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """A PVE API token (``user@realm!name``) and its secret; no ticket needed."""

    token_id: str
    secret: Secret

    auth_method = AuthMethod.TOKEN

    @property
    def principal(self) -> str:
        return self.token_id


Credentials = PasswordCredentials | TokenCredentials


# --------------------------------------------------------------------------
# The cluster


@dataclass(frozen=True, slots=True)
class Cluster:
    """A registered Proxmox VE cluster (or standalone node).

    Frozen: a repository may hand the same object to many readers at once;
    changes go through ``dataclasses.replace`` and ``save``.
    """

    id: uuid.UUID
    name: str
    api_endpoint: str
    credentials: Credentials
    verify_tls: bool
    fingerprint: str | None
    status: ClusterStatus
    proxmox_version: str
    node_count: int
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None = None
    last_error: str | None = None

    @property
    def name_key(self) -> str:
        return name_key(self.name)

    @property
    def target(self) -> ConnectionTarget:
        return ConnectionTarget(self.api_endpoint, self.verify_tls, self.fingerprint)

    @property
    def auth_method(self) -> AuthMethod:
        return self.credentials.auth_method

    @property
    def username(self) -> str | None:
        return getattr(self.credentials, "username", None)

    @property
    def token_id(self) -> str | None:
        return getattr(self.credentials, "token_id", None)


@dataclass(frozen=True, slots=True)
class ConnectionTarget:
    """Where and how to reach one cluster's API."""

    api_endpoint: str
    verify_tls: bool = True
    fingerprint: str | None = None


# --------------------------------------------------------------------------
# What Proxmox reports, and what we make of it


@dataclass(frozen=True, slots=True)
class ClusterStatusEntry:
    """One entry of ``GET /cluster/status``: the cluster itself or a node."""

    type: str
    name: str
    online: bool | None = None
    quorate: bool | None = None


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One entry of ``GET /nodes``."""

    node: str
    status: str


@dataclass(frozen=True, slots=True)
class ProxmoxReport:
    """What one visit to a cluster's API learned.

    ``cluster_status`` is None when the account may not read it (no
    Sys.Audit on ``/``); ``nodes`` is then what ``GET /nodes`` showed.
    """

    version: str
    cluster_status: Sequence[ClusterStatusEntry] | None
    nodes: Sequence[NodeEntry] | None = None


@dataclass(frozen=True, slots=True)
class Health:
    status: ClusterStatus
    node_count: int


def assess_health(report: ProxmoxReport) -> Health:
    """Judge a cluster's health from what its API reported (SPEC §4)."""
    if report.cluster_status is None:
        visible_nodes = len(report.nodes or ())
        return Health(ClusterStatus.UNKNOWN, visible_nodes)

    nodes = [entry for entry in report.cluster_status if entry.type == "node"]
    cluster = next((e for e in report.cluster_status if e.type == "cluster"), None)
    online = sum(1 for node in nodes if node.online)

    if (cluster is not None and not cluster.quorate) or online == 0:
        status = ClusterStatus.UNHEALTHY
    elif online < len(nodes):
        status = ClusterStatus.DEGRADED
    else:
        status = ClusterStatus.HEALTHY
    return Health(status, len(nodes))


# --------------------------------------------------------------------------
# Errors


class ClusterError(Exception):
    """Base of every error the registry reports to its callers.

    ``message`` is safe to show an operator: it never carries a secret.
    """

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details is not None else None


class ValidationFailed(ClusterError):
    """The request breaks a field rule; ``details`` maps field to messages."""

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


class ProxmoxError(ClusterError):
    """Talking to the cluster's API failed; the API layer answers 502."""


class ProxmoxUnreachable(ProxmoxError):
    """Refused, unresolvable, reset or timed out."""


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
    """Authenticated, but the account may not read this path (403)."""


# --------------------------------------------------------------------------
# Field rules. Each returns the normalised value or raises FieldInvalid.


class FieldInvalid(ValueError):
    pass


_CONTROL_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
# PVE's own patterns (PVE::Auth::Plugin): user is anything but whitespace,
# ':' and '/'; realms and token names start with a letter.
_REALM = r"[A-Za-z][A-Za-z0-9.\-_]+"
_USERID_RE = re.compile(rf"^[^\s:/]+@{_REALM}$")
_TOKENID_RE = re.compile(rf"^[^\s:/]+@{_REALM}![A-Za-z][A-Za-z0-9.\-_]+$")
_HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]{64}$")


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in value)


def name_key(name: str) -> str:
    """The form under which names are compared: case-insensitive."""
    return name.casefold()


def normalise_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise FieldInvalid("Cluster name is required")
    if len(name) > NAME_MAX_LENGTH:
        raise FieldInvalid(f"Cluster name must be at most {NAME_MAX_LENGTH} characters")
    if _has_control_characters(name):
        raise FieldInvalid("Cluster name must not contain control characters")
    return name


def _normalise_host(host: str) -> str:
    if ":" in host:  # urlsplit has already stripped the IPv6 brackets
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise FieldInvalid("API endpoint has an invalid IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOSTNAME_LABEL_RE.match(label) for label in labels):
        raise FieldInvalid("API endpoint must name a valid host")
    return ".".join(labels).lower()


def normalise_endpoint(raw: str) -> str:
    """Return ``https://host:port`` for anything an operator might paste.

    A bare host gets ``https://`` and PVE's port 8006; a trailing ``/`` or
    ``/api2/json`` is dropped. Plain http, userinfo, queries and fragments
    are refused: they would send credentials in clear text, or to somewhere
    other than the API root.
    """
    value = raw.strip()
    if not value:
        raise FieldInvalid("API endpoint is required")
    if len(value) > ENDPOINT_MAX_LENGTH:
        raise FieldInvalid(f"API endpoint must be at most {ENDPOINT_MAX_LENGTH} characters")
    if _has_control_characters(value) or any(char.isspace() for char in value):
        raise FieldInvalid("API endpoint must not contain spaces or control characters")
    if "://" not in value:
        with contextlib.suppress(ValueError):  # a bare IPv6 address, without brackets
            value = f"[{ipaddress.IPv6Address(value).compressed}]"
        value = f"https://{value}"

    scheme = value.split("://", 1)[0].lower()
    if scheme != "https":
        raise FieldInvalid(
            f"API endpoint must use https:// (got {scheme}://); Proxmox VE serves its API "
            "over HTTPS on port 8006"
        )
    if "?" in value or "#" in value:
        raise FieldInvalid("API endpoint must not carry a query or a fragment")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        if "IPv6" in str(error):
            raise FieldInvalid("API endpoint has an invalid IPv6 address") from None
        raise FieldInvalid("API endpoint must be https://host[:port], port 1-65535") from None
    if "@" in parts.netloc:
        raise FieldInvalid(
            "API endpoint must not embed credentials; use the username/password or token fields"
        )
    if parts.path.rstrip("/") not in ("", "/api2/json"):
        raise FieldInvalid(
            "API endpoint must be the server root, like https://pve.example.com:8006"
        )
    if not parts.hostname:
        raise FieldInvalid("API endpoint must name a host")
    if port == 0:
        raise FieldInvalid("API endpoint must be https://host[:port], port 1-65535")
    return f"https://{_normalise_host(parts.hostname)}:{port or PROXMOX_DEFAULT_PORT}"


def normalise_username(raw: str) -> str:
    username = raw.strip()
    if len(username) > USERID_MAX_LENGTH:
        raise FieldInvalid(f"Username must be at most {USERID_MAX_LENGTH} characters")
    if not _USERID_RE.match(username):
        raise FieldInvalid("Username must include its realm, like root@pam or admin@pve")
    return username


def normalise_token_id(raw: str) -> str:
    token_id = raw.strip()
    if len(token_id) > USERID_MAX_LENGTH + 1 + 64:
        raise FieldInvalid("Token id is too long")
    if not _TOKENID_RE.match(token_id):
        raise FieldInvalid("Token id must look like user@realm!tokenname, e.g. root@pam!proxmoxer")
    return token_id


def normalise_fingerprint(raw: str) -> str:
    """``ab:cd…`` or ``ABCD…`` (SHA-256) → ``AB:CD:…``, as PVE shows it."""
    digits = raw.strip().replace(":", "")
    if not _HEX_RE.match(digits):
        raise FieldInvalid(
            "Fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons optional"
        )
    digits = digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def _check_secret(raw: str, label: str) -> str:
    # The messages name the field, never the value.
    if not raw:
        raise FieldInvalid(f"{label} is required")
    if len(raw) > SECRET_MAX_LENGTH:
        raise FieldInvalid(f"{label} must be at most {SECRET_MAX_LENGTH} characters")
    if _has_control_characters(raw):
        raise FieldInvalid(f"{label} must not contain control characters")
    return raw


def _check_password(raw: str) -> str:
    return _check_secret(raw, "Password")


def _check_token_secret(raw: str) -> str:
    return _check_secret(raw, "Token secret")


def parse_cluster_id(raw: str | uuid.UUID) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    if len(raw) > 45:  # the longest form UUID() accepts: "urn:uuid:{…}"
        raise InvalidClusterId()
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidClusterId() from None


@dataclass(frozen=True)
class Registration:
    """A registration request whose fields all passed their rules."""

    name: str
    target: ConnectionTarget
    credentials: Credentials


@dataclass(frozen=True)
class RegistrationRequest:
    """What an operator asks to register, as typed; checked by ``validate``."""

    name: str | None = None
    api_endpoint: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token_id: str | None = None
    token_secret: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    fingerprint: str | None = None

    def validate(self) -> Registration:
        """Apply every field rule; raise ValidationFailed listing all that fail."""
        errors = _FieldErrors()
        name = errors.check("name", normalise_name, self.name or "")
        endpoint = errors.check("api_endpoint", normalise_endpoint, self.api_endpoint or "")
        fingerprint = (
            errors.check("fingerprint", normalise_fingerprint, self.fingerprint)
            if self.fingerprint
            else None
        )
        credentials = self._credentials(errors)
        errors.raise_if_any()
        assert name and endpoint and credentials  # guaranteed once no rule failed
        return Registration(
            name, ConnectionTarget(endpoint, self.verify_tls, fingerprint), credentials
        )

    def _credentials(self, errors: _FieldErrors) -> Credentials | None:
        uses_password = bool(self.username or self.password)
        uses_token = bool(self.token_id or self.token_secret)
        if uses_password and uses_token:
            errors.add(
                "non_field_errors",
                "Give either username and password or token_id and token_secret, not both",
            )
        elif uses_token:
            token_id = errors.check("token_id", normalise_token_id, self.token_id or "")
            secret = errors.check("token_secret", _check_token_secret, self.token_secret or "")
            if token_id and secret:
                return TokenCredentials(token_id, Secret(secret))
        elif uses_password:
            username = errors.check("username", normalise_username, self.username or "")
            password = errors.check("password", _check_password, self.password or "")
            if username and password:
                return PasswordCredentials(username, Secret(password))
        else:
            errors.add(
                "non_field_errors",
                "Credentials are required: username and password, or token_id and token_secret",
            )
        return None


class _FieldErrors:
    """Collects rule failures per field, in the order the fields were checked."""

    def __init__(self) -> None:
        self._errors: dict[str, list[str]] = {}

    def add(self, field_name: str, message: str) -> None:
        self._errors.setdefault(field_name, []).append(message)

    def check(self, field_name: str, rule: Callable[[str], str], value: str) -> str | None:
        try:
            return rule(value)
        except FieldInvalid as error:
            self.add(field_name, str(error))
            return None

    def raise_if_any(self) -> None:
        if self._errors:
            raise ValidationFailed(self._errors)


# --------------------------------------------------------------------------
# Storage contract


class ClusterRepository(ABC):
    """Where registered clusters live. Every backend passes the same
    contract tests (tests/integration/test_repository_contract.py)."""

    @abstractmethod
    def save(self, cluster: Cluster) -> None:
        """Store a newly registered cluster.

        Atomic: raises ClusterNameTaken when another cluster holds the name
        (compared case-insensitively), also between concurrent calls and,
        for shared backends, between processes.
        """

    @abstractmethod
    def update(self, cluster: Cluster) -> None:
        """Replace the stored cluster with the same id (after a health check).

        Raises ClusterNotFound when it was deleted meanwhile, so an update
        never brings a deregistered cluster back.
        """

    @abstractmethod
    def find_by_id(self, cluster_id: uuid.UUID) -> Cluster:
        """Raises ClusterNotFound."""

    @abstractmethod
    def find_by_name(self, name: str) -> Cluster | None:
        """Case-insensitive; None when no cluster holds the name."""

    @abstractmethod
    def list(self) -> Sequence[Cluster]:
        """Every cluster, ordered by name (case-insensitively)."""

    @abstractmethod
    def delete(self, cluster_id: uuid.UUID) -> None:
        """Raises ClusterNotFound."""

    @abstractmethod
    def exists(self, cluster_id: uuid.UUID) -> bool: ...
