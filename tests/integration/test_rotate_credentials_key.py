"""``manage.py rotate_credentials_key``: every stored secret re-encrypted
under the newest key, or, when any does not decrypt, nothing changed and
the clusters named."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DEFAULT_DB_ALIAS
from django.test import override_settings

from clusters.domain import PasswordCredentials, Secret, TokenCredentials
from clusters.encryption import CredentialCipher, CredentialsKeyError
from clusters.models import ClusterRecord
from tests import postgres
from tests.cluster_samples import make_cluster
from tests.conftest import assert_secret_absent
from tests.units_of_work import in_database

OLD, NEW, FOREIGN = (Fernet.generate_key().decode() for _ in range(3))
SECRETS = {"Prod-EU": "old-password-1", "Lab": "old-token-secret-2", "Edge": "old-password-3"}


def _alias(alias: str) -> object:
    if alias == DEFAULT_DB_ALIAS:
        return pytest.param(alias, marks=pytest.mark.django_db, id="sqlite")
    marks = [pytest.mark.postgres]
    if postgres.ALIAS in settings.DATABASES:
        marks.append(pytest.mark.django_db(databases=[postgres.ALIAS]))
    return pytest.param(alias, marks=marks, id="postgres")


ALIASES = [_alias(DEFAULT_DB_ALIAS), _alias(postgres.ALIAS)]


def _store(alias: str, key: str, names: list[str]) -> None:
    repository = in_database(alias, cipher=CredentialCipher([key]))
    for name in names:
        credentials = (
            TokenCredentials("root@pam!ci", Secret(SECRETS[name]))
            if name == "Lab"
            else PasswordCredentials("root@pam", Secret(SECRETS[name]))
        )
        repository.add(make_cluster(name, credentials=credentials))


def _tokens(alias: str) -> dict[str, str]:
    return dict(ClusterRecord.objects.using(alias).values_list("name", "secret_token"))


def _revealed(alias: str, key: str) -> dict[str, str]:
    repository = in_database(alias, cipher=CredentialCipher([key]))
    revealed = {}
    for cluster in repository.list():
        credentials = cluster.credentials
        secret = (
            credentials.password
            if isinstance(credentials, PasswordCredentials)
            else credentials.secret
        )
        revealed[cluster.name] = secret.reveal()
    return revealed


def _rotate(alias: str, keys: list[str]) -> str:
    output = StringIO()
    with override_settings(PROXMOXER_CREDENTIALS_KEYS=keys):
        call_command("rotate_credentials_key", database=alias, stdout=output)
    return output.getvalue()


@pytest.mark.parametrize("alias", ALIASES)
def test_rotation_re_encrypts_every_secret_under_the_newest_key(alias: str) -> None:
    _store(alias, OLD, ["Prod-EU", "Lab", "Edge"])
    before = _tokens(alias)

    output = _rotate(alias, [NEW, OLD])

    assert "Re-encrypted the stored secrets of 3 cluster(s) under the first of 2 key(s)" in output
    assert "Older keys may now be removed" in output
    assert _revealed(alias, NEW) == SECRETS  # the new key alone now reads everything
    with pytest.raises(CredentialsKeyError):
        _revealed(alias, OLD)
    assert all(_tokens(alias)[name] != before[name] for name in SECRETS)
    for secret in SECRETS.values():
        assert_secret_absent(secret, output, "the command's output")


@pytest.mark.parametrize("alias", ALIASES)
def test_rotation_changes_nothing_when_a_secret_does_not_decrypt(alias: str) -> None:
    _store(alias, OLD, ["Prod-EU", "Lab"])
    _store(alias, FOREIGN, ["Edge"])
    before = _tokens(alias)

    with pytest.raises(CommandError) as raised:
        _rotate(alias, [NEW, OLD])

    message = str(raised.value)
    edge_id = ClusterRecord.objects.using(alias).get(name="Edge").id
    assert message.startswith("1 of 3 stored secrets do not decrypt with any of the 2 key(s)")
    assert f"Edge ({edge_id})" in message and "Prod-EU" not in message
    assert "Nothing was re-encrypted" in message
    assert _tokens(alias) == before
    for secret in SECRETS.values():
        assert_secret_absent(secret, message, "the command's error")


@pytest.mark.django_db
def test_rotation_of_an_empty_registry_reports_nothing_to_do() -> None:
    output = _rotate(DEFAULT_DB_ALIAS, [NEW])

    assert "Re-encrypted the stored secrets of 0 cluster(s) under the first of 1 key(s)" in output
    assert "may now be removed" not in output


@pytest.mark.django_db
def test_rotation_leaves_a_row_written_meanwhile_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A health check that stores the cluster between the command's read
    and its write wins; the command says so instead of overwriting it."""
    _store(DEFAULT_DB_ALIAS, OLD, ["Prod-EU", "Lab"])
    real_rotate = CredentialCipher.rotate
    written_meanwhile = CredentialCipher([NEW]).encrypt("changed-meanwhile")

    def rotate_while_lab_is_written(self: CredentialCipher, token: str, *, owner: str) -> str:
        if owner == "cluster Lab":
            ClusterRecord.objects.filter(name="Lab").update(secret_token=written_meanwhile)
        return real_rotate(self, token, owner=owner)

    monkeypatch.setattr(CredentialCipher, "rotate", rotate_while_lab_is_written)

    output = _rotate(DEFAULT_DB_ALIAS, [NEW, OLD])

    assert "Re-encrypted the stored secrets of 1 cluster(s)" in output
    assert "1 cluster(s) changed or were deleted while this ran" in output
    assert "may now be removed" not in output
    assert _tokens(DEFAULT_DB_ALIAS)["Lab"] == written_meanwhile
    assert _revealed(DEFAULT_DB_ALIAS, NEW)["Prod-EU"] == SECRETS["Prod-EU"]
