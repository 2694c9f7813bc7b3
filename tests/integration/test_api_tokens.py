"""The registry's own API tokens: stored only as digests, shown once
(`manage.py api_token`, the admin bootstrap of `make run`), sent as
`Authorization: Token <key>` as before (docs/product-contract.md §13)."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from clusters import migrations as cluster_migrations
from clusters.domain import VIEWERS
from tests.conftest import assert_secret_absent, with_role

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def stored_token_text() -> str:
    """Every column of every stored token, as one text to search."""
    return repr(list(AuthToken.objects.values_list()))


@pytest.fixture
def viewer(django_user_model):
    return with_role(
        django_user_model.objects.create_user("ci-bot", password="irrelevant-1"), VIEWERS
    )


# -- bootstrap_admin (make run) ---------------------------------------------------------


def test_bootstrap_admin_creates_the_account_and_prints_password_and_token_once():
    first = run("bootstrap_admin")
    password = re.search(r"password: (\S+)", first).group(1)
    token = re.search(r"API token of admin\s+(\w+)", first).group(1)

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert client_with(token).get("/api/v1/clusters").status_code == 200
    assert_secret_absent(token, stored_token_text(), "the stored tokens")

    second = run("bootstrap_admin")
    assert password not in second and token not in second
    assert "already exist" in second
    assert get_user_model().objects.filter(username="admin").count() == 1
    assert AuthToken.objects.filter(user=admin).count() == 1


def test_bootstrap_admin_gives_an_existing_admin_without_token_a_token():
    get_user_model().objects.create_superuser("admin", password="kept-password")
    output = run("bootstrap_admin")
    assert "password:" not in output
    token = re.search(r"API token of admin\s+(\w+)", output).group(1)
    assert client_with(token).get("/api/v1/clusters").status_code == 200


# -- api_token ----------------------------------------------------------------------------


def test_api_token_create_prints_the_token_alone_on_its_last_line_and_it_authenticates(viewer):
    output = run("api_token", "create", "ci-bot")
    token = output.rstrip("\n").splitlines()[-1]

    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert token[:15] in output.splitlines()[0], "the first line names the prefix"
    response = client_with(token).get("/api/v1/clusters")
    assert response.status_code == 200
    assert_secret_absent(token, stored_token_text(), "the stored tokens")
    [stored] = AuthToken.objects.filter(user=viewer)
    assert stored.token_key == token[:15] and stored.expiry is None


def test_api_token_list_shows_prefixes_never_tokens(viewer):
    first = run("api_token", "create", "ci-bot").splitlines()[-1]
    second = run("api_token", "create", "ci-bot").splitlines()[-1]

    listing = run("api_token", "list", "ci-bot")

    assert first[:15] in listing and second[:15] in listing
    assert_secret_absent(first, listing, "api_token list")
    assert_secret_absent(second, listing, "api_token list")
    assert listing.splitlines()[-1] == "2 token(s) of ci-bot"


def test_api_token_revoke_by_prefix_stops_that_token_only(viewer):
    revoked = run("api_token", "create", "ci-bot").splitlines()[-1]
    kept = run("api_token", "create", "ci-bot").splitlines()[-1]

    output = run("api_token", "revoke", "ci-bot", revoked[:8])

    assert revoked[:15] in output
    response = client_with(revoked).get("/api/v1/clusters")
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert client_with(kept).get("/api/v1/clusters").status_code == 200


def test_api_token_revoke_refuses_an_unknown_or_ambiguous_prefix(viewer, django_user_model):
    token = run("api_token", "create", "ci-bot").splitlines()[-1]
    twin, _ = AuthToken.objects.create(user=viewer, expiry=None)
    AuthToken.objects.filter(pk=twin.pk).update(token_key=token[:15])  # the same prefix
    other = django_user_model.objects.create_user("someone-else", password="irrelevant-2")

    with pytest.raises(CommandError, match="no token of ci-bot starts with zzzz"):
        run("api_token", "revoke", "ci-bot", "zzzz")
    with pytest.raises(CommandError, match="2 tokens of ci-bot start with"):
        run("api_token", "revoke", "ci-bot", token[:15])
    with pytest.raises(CommandError, match="a prefix is required"):
        run("api_token", "revoke", "ci-bot", " ")
    with pytest.raises(CommandError, match="no token of someone-else"):
        run("api_token", "revoke", other.username, token[:15])
    with pytest.raises(CommandError, match="No account named 'nobody'"):
        run("api_token", "create", "nobody")
    assert client_with(token).get("/api/v1/clusters").status_code == 200


def test_a_token_made_to_expire_is_refused_once_expired(viewer):
    output = run("api_token", "create", "ci-bot", "--days", "7")
    token = output.splitlines()[-1]
    assert "expires" in output.splitlines()[0]
    assert client_with(token).get("/api/v1/clusters").status_code == 200

    AuthToken.objects.filter(user=viewer).update(expiry=timezone.now() - timedelta(seconds=1))

    assert client_with(token).get("/api/v1/clusters").status_code == 401
    with pytest.raises(CommandError, match="at least 1"):
        run("api_token", "create", "ci-bot", "--days", "0")


def test_a_wrong_or_malformed_token_is_401_with_the_token_challenge(viewer):
    token = run("api_token", "create", "ci-bot").splitlines()[-1]
    for wrong in (token[:-1] + ("0" if token[-1] != "0" else "1"), token[:15], "ż" * 64):
        response = APIClient().get("/api/v1/clusters", HTTP_AUTHORIZATION=f"Token {wrong}".encode())
        assert response.status_code == 401, wrong
        assert response["WWW-Authenticate"] == "Token"


def test_drfs_clear_text_token_command_and_table_are_gone():
    with pytest.raises(CommandError, match="Unknown command"):
        call_command("drf_create_token", "admin")
    assert "authtoken_token" not in connection.introspection.table_names()


def test_the_admin_lists_tokens_without_their_keys(client, viewer):
    token = run("api_token", "create", "ci-bot").splitlines()[-1]
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-1"))

    page = client.get("/admin/knox/authtoken/")

    assert page.status_code == 200
    assert b"ci-bot" in page.content
    assert_secret_absent(token, page.content, "the admin's token list")


# -- the migration from DRF's clear-text tokens ------------------------------------------


def _migration():
    [path] = Path(cluster_migrations.__file__).parent.glob("*_hashed_api_tokens.py")
    return importlib.import_module(f"clusters.migrations.{path.stem}")


def test_the_migration_keeps_existing_keys_working_and_drops_the_clear_text_table(viewer):
    old_key = "3065fc3c4f76535bbaa1add9b76915155a939c7c"  # DRF's form: 40 hex digits
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created datetime NOT NULL, user_id integer NOT NULL UNIQUE)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [old_key, "2026-01-02 03:04:05.000006", viewer.pk],
        )

    _migration().move_drf_tokens_to_knox(apps, SimpleNamespace(connection=connection))

    assert "authtoken_token" not in connection.introspection.table_names()
    [moved] = AuthToken.objects.filter(user=viewer)
    assert moved.token_key == old_key[:15] and moved.expiry is None
    assert moved.created.isoformat() == "2026-01-02T03:04:05.000006+00:00"
    assert_secret_absent(old_key, stored_token_text(), "the stored tokens")
    assert client_with(old_key).get("/api/v1/clusters").status_code == 200


def test_the_migration_does_nothing_where_drfs_table_never_existed(viewer):
    _migration().move_drf_tokens_to_knox(apps, SimpleNamespace(connection=connection))
    assert not AuthToken.objects.exists()
