"""API tokens are no longer stored in clear (docs/security.md, "API tokens").

Until now DRF's ``authtoken`` app kept each key as it is, in the
``authtoken_token`` table. django-rest-knox keeps only a SHA-512 digest and
the first 15 characters. This migration moves every existing key into knox's
table in that form — so clients keep working with the key they have — and
then drops ``authtoken_token`` (and the record of its migrations), so no key
is left in clear. It cannot be reversed: the keys are nowhere any more;
knox's tokens stay.

On a database made after this change the table never existed, and nothing
happens.
"""

import hashlib
from datetime import UTC, datetime

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder
from django.utils.dateparse import parse_datetime

DRF_TOKEN_TABLE = "authtoken_token"
KNOX_KEY_LENGTH = 15  # knox.settings.CONSTANTS.TOKEN_KEY_LENGTH


def knox_digest(key):
    """knox.crypto.hash_token as of django-rest-knox 5.1, frozen here."""
    return hashlib.sha512(key.encode("utf-8")).hexdigest()


def _aware(created):
    """A timestamp as the database driver hands it back (SQLite: text, in UTC)."""
    if isinstance(created, str):
        created = parse_datetime(created)
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created


def move_drf_tokens_to_knox(apps, schema_editor):
    connection = schema_editor.connection
    if DRF_TOKEN_TABLE not in connection.introspection.table_names():
        return
    auth_token_model = apps.get_model("knox", "AuthToken")
    table = connection.ops.quote_name(DRF_TOKEN_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {table}")  # noqa: S608 - a constant
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        token = auth_token_model.objects.using(connection.alias).create(
            digest=knox_digest(key),
            token_key=key[:KNOX_KEY_LENGTH],
            user_id=user_id,
            expiry=None,
        )
        # `created` is auto_now_add: set it afterwards, to keep the token's age.
        auth_token_model.objects.using(connection.alias).filter(pk=token.pk).update(
            created=_aware(created)
        )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0006_unicode_name_keys"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.RunPython(move_drf_tokens_to_knox, migrations.RunPython.noop),
    ]
