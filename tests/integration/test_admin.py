"""Clusters in the Django admin: there to look at, with no secret shown and
no way to add, change or delete one (clusters/admin.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from clusters.models import ClusterRecord
from tests.cluster_samples import make_cluster, token_cluster
from tests.conftest import assert_secret_absent
from tests.units_of_work import in_database

pytestmark = pytest.mark.django_db

SECRETS = ("hunter2-Ünïcode", "5f1c0d9e-8b7a-6f5e-4d3c")  # tests/cluster_samples.py


@pytest.fixture
def admin_browser(django_user_model: Any) -> Client:
    django_user_model.objects.create_superuser("root", password="root-login-pw")
    client = Client()
    assert client.login(username="root", password="root-login-pw")
    return client


@pytest.fixture
def stored() -> list[Any]:
    clusters = [make_cluster("Prod-EU"), token_cluster("Lab")]
    repository = in_database()
    for cluster in clusters:
        repository.add(cluster)
    return clusters


def assert_no_secret(html: str, where: str) -> None:
    for secret in SECRETS:
        assert_secret_absent(secret, html, where)
    for record in ClusterRecord.objects.all():  # the stored, encrypted form neither
        assert_secret_absent(record.secret_token, html, where)


def test_the_admin_lists_the_clusters_without_secrets(admin_browser: Client, stored: list) -> None:
    response = admin_browser.get("/admin/clusters/clusterrecord/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Prod-EU" in html and "Lab" in html
    assert "https://pve1.example.com:8006" in html
    assert "Add cluster" not in html
    assert 'value="delete_selected"' not in html
    assert_no_secret(html, "the admin's cluster list")


def test_a_cluster_in_the_admin_is_read_only_and_shows_no_secret(
    admin_browser: Client, stored: list
) -> None:
    cluster = stored[1]

    response = admin_browser.get(f"/admin/clusters/clusterrecord/{cluster.id}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "root@pam!proxmoxer" in html  # the principal is no secret
    assert "secret_token" not in html
    assert '<input type="text"' not in html and "<textarea" not in html
    assert 'name="_save"' not in html
    assert_no_secret(html, "the admin's cluster page")


def test_the_admin_adds_changes_and_deletes_no_cluster(admin_browser: Client, stored: list) -> None:
    cluster = stored[0]
    change = f"/admin/clusters/clusterrecord/{cluster.id}/change/"

    assert admin_browser.get("/admin/clusters/clusterrecord/add/").status_code == 403
    assert admin_browser.post(change, {"name": "Hijacked"}).status_code == 403
    assert (
        admin_browser.get(f"/admin/clusters/clusterrecord/{cluster.id}/delete/").status_code == 403
    )
    admin_browser.post(
        "/admin/clusters/clusterrecord/",
        {"action": "delete_selected", "_selected_action": [str(cluster.id)], "post": "yes"},
    )
    assert ClusterRecord.objects.get(pk=cluster.id).name == "Prod-EU"
    assert ClusterRecord.objects.count() == 2
