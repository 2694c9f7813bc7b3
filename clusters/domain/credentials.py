"""Credentials a cluster is registered with, and the ``Secret`` that keeps
their secret half out of logs, reprs and error messages."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AuthMethod(StrEnum):
    PASSWORD = "password"
    TOKEN = "token"


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

    @property
    def secret(self) -> Secret:
        return self.password


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """A PVE API token (``user@realm!name``) and its secret; no ticket needed.

    ``created_by_registry``: the registry made this token on the cluster
    (docs/api.md, "Token hand-off") and deletes it there when it is no longer
    used; a token an operator brought is never touched.
    """

    token_id: str
    secret: Secret
    created_by_registry: bool = False

    auth_method = AuthMethod.TOKEN

    @property
    def principal(self) -> str:
        return self.token_id

    @property
    def user(self) -> str:
        """The PVE user owning the token: ``root@pam`` of ``root@pam!name``."""
        return self.token_id.split("!", 1)[0]

    @property
    def name(self) -> str:
        """The token's own name: ``name`` of ``root@pam!name``."""
        return self.token_id.split("!", 1)[1]


Credentials = PasswordCredentials | TokenCredentials
