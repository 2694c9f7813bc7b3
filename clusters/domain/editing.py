"""An edit of a registered cluster as an operator types it (``PATCH``), and
the checked change the service proves and stores
(docs/product-contract.md §9).

Only the fields given change. A blank principal or secret counts as not
given, so that a form showing the current values with the secrets left
blank changes nothing by being sent back as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from clusters.domain.cluster import Cluster
from clusters.domain.credentials import (
    Credentials,
    PasswordCredentials,
    Secret,
    TokenCredentials,
)
from clusters.domain.endpoint import Endpoint, parse_endpoint
from clusters.domain.errors import ValidationFailed
from clusters.domain.fields import (
    FieldInvalid,
    check_secret,
    normalise_fingerprint,
    normalise_name,
    normalise_token_id,
    normalise_username,
)
from clusters.domain.registration import FieldErrors
from clusters.domain.topology import parse_endpoints


class NotGiven(Enum):
    """A field the edit leaves as it is (``None`` can be a value: no pin)."""

    NOT_GIVEN = "not given"


NOT_GIVEN = NotGiven.NOT_GIVEN

# The fields a PATCH may carry; anything else is refused by name.
EDITABLE_FIELDS = (
    "name",
    "api_endpoint",
    "username",
    "password",
    "token_id",
    "token_secret",
    "verify_tls",
    "fingerprint",
    "create_token",
    "endpoints",
    "discover_endpoints",
)
# Configuration that decides how the cluster is reached: a change is proven
# against Proxmox before it is stored (endpoints set by hand through the
# registered one, which also names their nodes).
CONNECTION_FIELDS = frozenset(
    {
        "api_endpoint",
        "credentials",
        "verify_tls",
        "fingerprint",
        "endpoints",
        "discover_endpoints",
    }
)


@dataclass(frozen=True)
class Edit:
    """A checked edit: the configuration fields that change, with their new
    values (only those that differ from the cluster's)."""

    changes: Mapping[str, Any]
    create_token: bool = False
    endpoint: Endpoint | None = None  # as parsed, when the endpoint changes

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def changes_connection(self) -> bool:
        return bool(CONNECTION_FIELDS & set(self.changes))


@dataclass(frozen=True)
class EditRequest:
    """What an operator asks to change, as typed; checked by ``validate``."""

    name: str | NotGiven = NOT_GIVEN
    api_endpoint: str | NotGiven = NOT_GIVEN
    username: str | NotGiven | None = NOT_GIVEN
    password: str | NotGiven | None = field(default=NOT_GIVEN, repr=False)
    token_id: str | NotGiven | None = NOT_GIVEN
    token_secret: str | NotGiven | None = field(default=NOT_GIVEN, repr=False)
    verify_tls: bool | NotGiven = NOT_GIVEN
    fingerprint: str | NotGiven | None = NOT_GIVEN
    create_token: bool = False
    endpoints: object = NOT_GIVEN  # [{"url", "fingerprint"}], as the request carried it
    discover_endpoints: bool | NotGiven = NOT_GIVEN

    def validate(self, cluster: Cluster) -> Edit:
        """Apply every field rule against ``cluster`` as it is stored; raise
        ValidationFailed listing every field that fails."""
        errors = FieldErrors()
        wanted: dict[str, Any] = {}
        endpoint: Endpoint | None = None
        if not isinstance(self.name, NotGiven):
            wanted["name"] = errors.check("name", normalise_name, self.name)
        if not isinstance(self.api_endpoint, NotGiven):
            endpoint = errors.check("api_endpoint", parse_endpoint, self.api_endpoint)
            wanted["api_endpoint"] = endpoint.url if endpoint is not None else None
        if not isinstance(self.verify_tls, NotGiven):
            wanted["verify_tls"] = self.verify_tls
        if not isinstance(self.fingerprint, NotGiven):
            wanted["fingerprint"] = (
                errors.check("fingerprint", normalise_fingerprint, self.fingerprint)
                if self.fingerprint
                else None
            )
        self._topology(wanted, errors)
        credentials = self._credentials(cluster, errors)
        if self.create_token and not isinstance(credentials, PasswordCredentials):
            errors.add(
                "create_token",
                "create_token needs username and password in the same request: the token is "
                "created with them, and only the token is kept",
            )
        errors.raise_if_any()
        if credentials is not None:
            wanted["credentials"] = credentials
        changes = {
            name: value
            for name, value in wanted.items()
            if value != getattr(cluster, name) or (name == "credentials" and self.create_token)
        }
        if "api_endpoint" not in changes:
            endpoint = None
        return Edit(changes, create_token=self.create_token, endpoint=endpoint)

    def _topology(self, wanted: dict[str, Any], errors: FieldErrors) -> None:
        """Endpoints set by hand turn their discovery off; discovery asked
        for learns them from the cluster, so both at once contradict."""
        given = not isinstance(self.endpoints, NotGiven)
        if given and self.discover_endpoints is True:
            errors.add(
                "discover_endpoints",
                "discover_endpoints: true learns the endpoints from the cluster; do not give "
                "endpoints with it",
            )
            return
        if given:
            try:
                wanted["endpoints"] = parse_endpoints(self.endpoints)
            except FieldInvalid as error:
                errors.add("endpoints", str(error))
            wanted["discover_endpoints"] = False
        elif not isinstance(self.discover_endpoints, NotGiven):
            wanted["discover_endpoints"] = self.discover_endpoints
            if not self.discover_endpoints:
                wanted["endpoints"] = ()

    def _credentials(self, cluster: Cluster, errors: FieldErrors) -> Credentials | None:
        """New credentials, or None where the edit keeps the stored ones."""
        username, password = _given(self.username), _given(self.password)
        token_id, token_secret = _given(self.token_id), _given(self.token_secret)
        if (username or password) and (token_id or token_secret):
            errors.add(
                ValidationFailed.WHOLE_REQUEST,
                "Give either username and password or token_id and token_secret, not both",
            )
            return None
        if username or password:
            return _pair(
                errors,
                ("username", username, normalise_username, "Username"),
                ("password", password, "Password"),
                current=cluster.username,
                make=lambda principal, secret: PasswordCredentials(principal, Secret(secret)),
            )
        if token_id or token_secret:
            return _pair(
                errors,
                ("token_id", token_id, normalise_token_id, "Token id"),
                ("token_secret", token_secret, "Token secret"),
                current=cluster.token_id,
                make=lambda principal, secret: TokenCredentials(principal, Secret(secret)),
            )
        return None


def _given(value: str | NotGiven | None) -> str:
    """A principal or secret as given; blank and absent alike are ''."""
    return value if isinstance(value, str) else ""


def _pair(
    errors: FieldErrors,
    principal_field: tuple[str, str, Callable[[str], str], str],
    secret_field: tuple[str, str, str],
    *,
    current: str | None,
    make: Callable[[str, str], Credentials],
) -> Credentials | None:
    """Credentials from a principal and its secret, both required: the
    principal alone is accepted only when it is the stored one (a form sent
    back unchanged), a secret alone never (whose would it be?)."""
    principal_name, principal_raw, principal_rule, principal_label = principal_field
    secret_name, secret_raw, secret_label = secret_field
    principal = (
        errors.check(principal_name, principal_rule, principal_raw) if principal_raw else None
    )
    if not secret_raw:
        if principal_raw and principal != current and principal is not None:
            errors.add(secret_name, f"{secret_label} is required with {principal_label.lower()}")
        return None
    secret = errors.check(secret_name, lambda raw: check_secret(raw, secret_label), secret_raw)
    if not principal_raw:
        errors.add(principal_name, f"{principal_label} is required with {secret_label.lower()}")
        return None
    if principal is None or secret is None:
        return None
    return make(principal, secret)


def token_owner(username: str | None, password: str | None) -> PasswordCredentials | None:
    """The password of the user owning an API token the registry made, given
    to delete that token on deregistration: both, or neither (None)."""
    errors = FieldErrors()
    credentials = _pair(
        errors,
        ("username", username or "", normalise_username, "Username"),
        ("password", password or "", "Password"),
        current=None,
        make=lambda principal, secret: PasswordCredentials(principal, Secret(secret)),
    )
    errors.raise_if_any()
    return credentials if isinstance(credentials, PasswordCredentials) else None
