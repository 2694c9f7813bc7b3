"""The registry's own API tokens (``Authorization: Token <key>``), kept by
django-rest-knox: only a SHA-512 digest of each key and its first 15
characters (the prefix that names it) are stored, so a key is shown once,
when it is made, and a copy of the database authenticates nobody
(docs/security.md, "API tokens").

``manage.py api_token`` and ``manage.py bootstrap_admin`` go through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from knox.models import AuthToken
from knox.settings import CONSTANTS

PREFIX_LENGTH = CONSTANTS.TOKEN_KEY_LENGTH


class TokenNotFound(LookupError):
    pass


class AmbiguousPrefix(LookupError):
    pass


def create_token(user: Any, *, days: int | None = None) -> tuple[AuthToken, str]:
    """A new token for ``user``: the stored record and the key, which
    exists nowhere else once the caller has shown it. ``days`` bounds its
    life; None lasts until revoked."""
    expiry = timedelta(days=days) if days is not None else None
    record, key = AuthToken.objects.create(user=user, expiry=expiry)
    return record, key


def tokens_of(user: Any) -> Sequence[AuthToken]:
    """``user``'s tokens, oldest first."""
    return list(AuthToken.objects.filter(user=user).order_by("created", "token_key"))


def revoke(user: Any, prefix: str) -> AuthToken:
    """Delete the one token of ``user`` whose key starts with ``prefix``
    (a whole key works too). Raises TokenNotFound or AmbiguousPrefix."""
    prefix = prefix.strip()
    if not prefix:
        raise TokenNotFound("a prefix is required")
    matching = list(
        AuthToken.objects.filter(user=user, token_key__startswith=prefix[:PREFIX_LENGTH])
    )
    if not matching:
        raise TokenNotFound(
            f"no token of {user.get_username()} starts with {prefix[:PREFIX_LENGTH]}"
        )
    if len(matching) > 1:
        raise AmbiguousPrefix(
            f"{len(matching)} tokens of {user.get_username()} start with {prefix}; "
            "give more of the prefix (api_token list shows them)"
        )
    [token] = matching
    token.delete()
    return token
