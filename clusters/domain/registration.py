"""A registration as an operator types it, and the checked form the service
works with once every field rule has passed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clusters.domain.cluster import ConnectionTarget
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

T = TypeVar("T")


@dataclass(frozen=True)
class Registration:
    """A registration request whose fields all passed their rules."""

    name: str
    target: ConnectionTarget
    credentials: Credentials
    create_token: bool = False
    endpoint: Endpoint | None = None  # as parsed: for the hint when nothing answers
    discover_endpoints: bool = True


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
    create_token: bool = False
    discover_endpoints: bool = True

    def validate(self) -> Registration:
        """Apply every field rule; raise ValidationFailed listing all that fail."""
        errors = FieldErrors()
        name = errors.check("name", normalise_name, self.name or "")
        endpoint = errors.check("api_endpoint", parse_endpoint, self.api_endpoint or "")
        fingerprint = (
            errors.check("fingerprint", normalise_fingerprint, self.fingerprint)
            if self.fingerprint
            else None
        )
        credentials = self._credentials(errors)
        if self.create_token and not isinstance(credentials, PasswordCredentials):
            errors.add(
                "create_token",
                "create_token needs username and password: the token is created with them, "
                "and only the token is kept",
            )
        errors.raise_if_any()
        assert name and endpoint and credentials  # guaranteed once no rule failed
        return Registration(
            name,
            ConnectionTarget(endpoint.url, self.verify_tls, fingerprint),
            credentials,
            create_token=self.create_token,
            endpoint=endpoint,
            discover_endpoints=self.discover_endpoints,
        )

    def _credentials(self, errors: FieldErrors) -> Credentials | None:
        uses_password = bool(self.username or self.password)
        uses_token = bool(self.token_id or self.token_secret)
        if uses_password and uses_token:
            errors.add(
                ValidationFailed.WHOLE_REQUEST,
                "Give either username and password or token_id and token_secret, not both",
            )
        elif uses_token:
            token_id = errors.check("token_id", normalise_token_id, self.token_id or "")
            secret = errors.check(
                "token_secret",
                lambda raw: check_secret(raw, "Token secret"),
                self.token_secret or "",
            )
            if token_id and secret:
                return TokenCredentials(token_id, Secret(secret))
        elif uses_password:
            username = errors.check("username", normalise_username, self.username or "")
            password = errors.check(
                "password", lambda raw: check_secret(raw, "Password"), self.password or ""
            )
            if username and password:
                return PasswordCredentials(username, Secret(password))
        else:
            errors.add(
                ValidationFailed.WHOLE_REQUEST,
                "Credentials are required: username and password, or token_id and token_secret",
            )
        return None


class FieldErrors:
    """Collects rule failures per field, in the order the fields were checked."""

    def __init__(self) -> None:
        self._errors: dict[str, list[str]] = {}

    def add(self, field_name: str, message: str) -> None:
        self._errors.setdefault(field_name, []).append(message)

    def check(self, field_name: str, rule: Callable[[str], T], value: str) -> T | None:
        try:
            return rule(value)
        except FieldInvalid as error:
            self.add(field_name, str(error))
            return None

    def raise_if_any(self) -> None:
        if self._errors:
            raise ValidationFailed(self._errors)
