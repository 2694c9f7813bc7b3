"""Names are compared after NFKC normalisation and case folding
(docs/product-contract.md §13): recompute every stored ``name_key`` under
that rule.

Two clusters whose names were different before but are the same name now
(``prod`` typed once in ASCII and once in full-width letters, or ``café``
typed once composed and once with a combining accent) cannot both keep
their names. The migration then stops, changes nothing, and names both; the
operator deregisters or renames one of them (docs/operations.md, "Upgrading:
clusters whose names now collide") and runs ``migrate`` again.
"""

import unicodedata
from collections import defaultdict

from django.core.management.base import CommandError
from django.db import migrations


def unicode_name_key(name):
    """clusters.domain.fields.name_key as of this migration, frozen here."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFD", name).casefold())
    return unicodedata.normalize("NFKC", folded.casefold())


def casefold_name_key(name):
    """The rule before this migration."""
    return name.casefold()


class NameKeyCollision(CommandError):
    """Stops ``manage.py migrate`` with the message alone, no traceback."""


def _recompute(apps, schema_editor, rule):
    cluster_model = apps.get_model("clusters", "ClusterRecord")
    records = cluster_model.objects.using(schema_editor.connection.alias)
    holders = defaultdict(list)
    stored_keys = {}
    for cluster_id, name, stored_key in records.order_by("name").values_list(
        "id", "name", "name_key"
    ):
        holders[rule(name)].append((cluster_id, name))
        stored_keys[cluster_id] = stored_key
    collisions = [held for held in holders.values() if len(held) > 1]
    if collisions:
        listed = "; ".join(
            " and ".join(f"{name!r} ({cluster_id})" for cluster_id, name in held)
            for held in collisions
        )
        raise NameKeyCollision(
            "Cluster names are now compared after Unicode compatibility normalisation and case "
            f"folding, and these registered clusters hold the same name under that rule: {listed}. "
            "Nothing was changed. Deregister or rename one cluster of each group (see "
            "docs/operations.md, 'Upgrading: clusters whose names now collide'), then run "
            "manage.py migrate again."
        )
    changed = {
        cluster_id: key
        for key, held in holders.items()
        for cluster_id, _ in held
        if stored_keys[cluster_id] != key
    }
    # Two passes: a new key may be another row's old key until that row moves.
    for cluster_id in changed:
        records.filter(pk=cluster_id).update(name_key=f"\x00migrating {cluster_id}")
    for cluster_id, key in changed.items():
        records.filter(pk=cluster_id).update(name_key=key)


def to_unicode_keys(apps, schema_editor):
    _recompute(apps, schema_editor, unicode_name_key)


def to_casefold_keys(apps, schema_editor):
    _recompute(apps, schema_editor, casefold_name_key)


class Migration(migrations.Migration):
    dependencies = [("clusters", "0005_edit_and_trust")]

    operations = [migrations.RunPython(to_unicode_keys, to_casefold_keys)]
