"""``manage.py api_token``: the registry's own API tokens.

    manage.py api_token create <username> [--days N]
    manage.py api_token list <username>
    manage.py api_token revoke <username> <prefix>

``create`` prints the new token alone on its last line, once: only a digest
is stored (clusters/api_tokens.py), so a lost token is revoked and replaced,
never shown again. Clients send it as ``Authorization: Token <token>``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import api_tokens


class Command(BaseCommand):
    help = "Create, list and revoke the API tokens of a registry account."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="a new token; printed once, on the last line")
        create.add_argument("username")
        create.add_argument(
            "--days", type=int, help="expire after this many days (default: until revoked)"
        )
        listing = actions.add_parser("list", help="a user's tokens, by prefix")
        listing.add_argument("username")
        revoke = actions.add_parser("revoke", help="delete the token with this prefix")
        revoke.add_argument("username")
        revoke.add_argument("prefix", help="the token's first characters, as list shows them")

    def handle(self, *args: Any, action: str, username: str, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"No account named {username!r}") from None
        getattr(self, f"_{action}")(user, **options)

    def _create(self, user: Any, *, days: int | None, **options: Any) -> None:
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        record, key = api_tokens.create_token(user, days=days)
        expires = f"expires {record.expiry:%Y-%m-%d %H:%M} UTC" if record.expiry else "no expiry"
        self.stdout.write(
            f"API token of {user.get_username()}, prefix {record.token_key}, {expires}. "
            "Shown once: only its digest is stored. Use: Authorization: Token <token>"
        )
        self.stdout.write(key)

    def _list(self, user: Any, **options: Any) -> None:
        tokens = api_tokens.tokens_of(user)
        for token in tokens:
            expiry = f"{token.expiry:%Y-%m-%d %H:%M}" if token.expiry else "never"
            self.stdout.write(
                f"{token.token_key}  created {token.created:%Y-%m-%d %H:%M}  expires {expiry}"
            )
        self.stdout.write(f"{len(tokens)} token(s) of {user.get_username()}")

    def _revoke(self, user: Any, *, prefix: str, **options: Any) -> None:
        try:
            token = api_tokens.revoke(user, prefix)
        except LookupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Revoked the token {token.token_key} of {user.get_username()}")
