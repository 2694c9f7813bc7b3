"""The migration that recomputes stored name keys under the NFKC + case
folding rule (clusters/migrations/*_unicode_name_keys.py): existing clusters
keep their names and become findable under the new rule, and two clusters
that the new rule makes one name stop it with a message naming both."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management.base import CommandError
from django.db import connection

from clusters import migrations as cluster_migrations
from clusters.encryption import CredentialCipher
from clusters.models import ClusterRecord
from tests.cluster_samples import make_cluster
from tests.units_of_work import in_database

pytestmark = pytest.mark.django_db

FULL_WIDTH_PROD = "\uff50\uff52\uff4f\uff44"


def _migration():
    [path] = Path(cluster_migrations.__file__).parent.glob("*_unicode_name_keys.py")
    return importlib.import_module(f"clusters.migrations.{path.stem}")


def store_as_before(name: str) -> ClusterRecord:
    """A cluster row as the previous release wrote it: the key only case-folded."""
    record = ClusterRecord.from_domain(make_cluster(name), CredentialCipher.from_settings())
    record.name_key = name.casefold()
    record.save(force_insert=True)
    return record


def migrate_forward() -> None:
    _migration().to_unicode_keys(apps, SimpleNamespace(connection=connection))


def keys() -> dict[str, str]:
    return dict(ClusterRecord.objects.values_list("name", "name_key"))


def test_existing_keys_are_recomputed_and_found_under_the_new_rule():
    store_as_before(FULL_WIDTH_PROD)
    store_as_before("cafe\u0301")
    store_as_before("Straße")

    migrate_forward()

    assert keys() == {FULL_WIDTH_PROD: "prod", "cafe\u0301": "caf\u00e9", "Straße": "strasse"}
    registry = in_database()
    assert registry.find_by_name("PROD").name == FULL_WIDTH_PROD
    assert registry.find_by_name("CAF\u00c9").name == "cafe\u0301"


def test_keys_the_rule_does_not_change_stay_as_they_are():
    store_as_before(FULL_WIDTH_PROD)
    store_as_before("prod-old")

    migrate_forward()

    assert keys() == {FULL_WIDTH_PROD: "prod", "prod-old": "prod-old"}


def test_names_that_now_collide_stop_the_migration_naming_both_and_changing_nothing():
    first = store_as_before("prod")
    second = store_as_before(FULL_WIDTH_PROD)
    store_as_before("cafe\u0301")
    before = keys()

    # A CommandError: manage.py migrate shows the message alone, no traceback.
    with pytest.raises(CommandError, match="hold the same name under that rule") as raised:
        migrate_forward()

    message = str(raised.value)
    assert str(first.id) in message and str(second.id) in message
    assert "Deregister or rename one cluster of each group" in message
    assert keys() == before


def test_the_migration_reverses_to_the_case_folded_keys():
    store_as_before(FULL_WIDTH_PROD)
    migrate_forward()

    _migration().to_casefold_keys(apps, SimpleNamespace(connection=connection))

    assert keys() == {FULL_WIDTH_PROD: FULL_WIDTH_PROD}
