"""Editing and trust (docs/product-contract.md §9): the details of the last
error an operator may act on (the fingerprint a node presents now), and
whether the registry made the cluster's API token itself (and so deletes it
on the cluster when it stops using it)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0004_role_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="clusterrecord",
            name="last_error_details",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="clusterrecord",
            name="token_created_by_registry",
            field=models.BooleanField(default=False),
        ),
    ]
