"""Make sure an admin account with an API token exists (``make run`` calls this).

On the first run it creates the account with a random password and prints the
password and the token, once: both are kept only as hashes, so this is the
moment to note them. Later runs print neither.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clusters import api_tokens


class Command(BaseCommand):
    help = "Create the admin account and its API token if they do not exist yet."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model.objects.filter(username=username).first()
            password = None
            if user is None:
                password = secrets.token_urlsafe(18)
                user = user_model.objects.create_superuser(username=username, password=password)
            key = None
            if not api_tokens.tokens_of(user):
                _, key = api_tokens.create_token(user)

        if password is None and key is None:
            self.stdout.write(
                f"Admin account {username!r} and its API token already exist (python manage.py "
                f"changepassword {username} / api_token create {username} to replace them)."
            )
            return
        lines = ["", "=" * 64]
        if password is not None:
            lines += [f"Created admin account  {username}", f"  password: {password}"]
        if key is not None:
            lines += [f"API token of {username}  {key}", "  use: Authorization: Token <token>"]
        lines += ["Shown once; note them now.", "=" * 64, ""]
        self.stdout.write("\n".join(lines))
