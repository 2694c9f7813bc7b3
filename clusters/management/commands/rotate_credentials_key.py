"""Re-encrypt every stored cluster secret under the newest credentials key.

Rotation, in order (docs/operations.md, "Keys and rotation"): put the new key
first in PROXMOXER_CREDENTIALS_KEYS and restart every process; run this
command; then drop the old key and restart again.

All or nothing: when any stored secret does not decrypt with the configured
keys, the command names those clusters and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, transaction

from clusters.encryption import KEYS_SETTING, CredentialCipher, CredentialsKeyError
from clusters.models import ClusterRecord


class Command(BaseCommand):
    help = f"Re-encrypt every stored cluster secret under the first key of {KEYS_SETTING}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database alias whose clusters to re-encrypt (default: default).",
        )

    def handle(self, *args: Any, database: str, **options: Any) -> None:
        cipher = CredentialCipher.from_settings()
        records = ClusterRecord.objects.using(database)
        stored = list(records.order_by("name_key").values_list("id", "name", "secret_token"))

        rotated: list[tuple[Any, str, str]] = []
        undecryptable: list[str] = []
        for cluster_id, name, token in stored:
            try:
                rotated.append((cluster_id, token, cipher.rotate(token, owner=f"cluster {name}")))
            except CredentialsKeyError:
                undecryptable.append(f"{name} ({cluster_id})")
        if undecryptable:
            raise CommandError(
                f"{len(undecryptable)} of {len(stored)} stored secrets do not decrypt with any "
                f"of the {cipher.key_count} key(s) in {KEYS_SETTING}: "
                f"{', '.join(undecryptable)}. Nothing was re-encrypted; add the key they were "
                "encrypted with (anywhere in the list) and run this again."
            )

        changed_meanwhile = 0
        with transaction.atomic(using=database):
            for cluster_id, old_token, new_token in rotated:
                # Only if the row still holds what was read, so a write that
                # came in meanwhile is never overwritten with older data.
                if not records.filter(pk=cluster_id, secret_token=old_token).update(
                    secret_token=new_token
                ):
                    changed_meanwhile += 1

        message = (
            f"Re-encrypted the stored secrets of {len(rotated) - changed_meanwhile} cluster(s) "
            f"under the first of {cipher.key_count} key(s) in {KEYS_SETTING}."
        )
        if changed_meanwhile:
            message += (
                f" {changed_meanwhile} cluster(s) changed or were deleted while this ran and "
                "were left as they are: run the command again before removing any key."
            )
        elif rotated and cipher.key_count > 1:
            message += (
                " Older keys may now be removed, provided every running process already had "
                "the new key first."
            )
        self.stdout.write(self.style.SUCCESS(message))
