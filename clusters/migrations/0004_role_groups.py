"""The two roles of docs/product-contract.md §13 as Django groups: put an
account in ``viewers`` to let it read, in ``operators`` to let it change."""

from django.db import migrations

ROLE_GROUPS = ("viewers", "operators")  # clusters.domain.permissions, frozen here


def create_groups(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        group_model.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def remove_groups(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    group_model.objects.using(schema_editor.connection.alias).filter(
        name__in=ROLE_GROUPS, user__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("clusters", "0003_audit_event"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
