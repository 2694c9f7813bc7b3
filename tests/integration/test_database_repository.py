"""What the Django backend promises beyond the shared contract: secrets
encrypted at rest, clear errors for a wrong key, database errors turned into
domain errors without any detail of the row, and migrations that match the
model. On SQLite and, where marked, PostgreSQL."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    ClusterNameTaken,
    PasswordCredentials,
    Secret,
    TokenCredentials,
)
from clusters.encryption import CredentialCipher, CredentialsKeyError, StoredSecret
from clusters.models import AuditEventRecord, ClusterRecord
from clusters.repositories.database import DjangoUnitOfWork
from tests import postgres
from tests.cluster_samples import make_cluster
from tests.conftest import assert_secret_absent
from tests.units_of_work import AutoCommit, in_database

PASSWORD = "correct-horse-battery-staple-8c1f"
TOKEN_SECRET = "4a2f7c3e-91d0-4b8e-a5f6-0c2d9e8b7a61"


def _alias_param(alias: str, *, transaction: bool = False) -> object:
    if alias == DEFAULT_DB_ALIAS:
        return pytest.param(
            alias, marks=pytest.mark.django_db(transaction=transaction), id="sqlite"
        )
    marks = [pytest.mark.postgres]
    if postgres.ALIAS in settings.DATABASES:
        marks.append(pytest.mark.django_db(transaction=transaction, databases=[postgres.ALIAS]))
    return pytest.param(alias, marks=marks, id="postgres")


ALIASES = [_alias_param(DEFAULT_DB_ALIAS), _alias_param(postgres.ALIAS)]


def _store_both_kinds(repository: AutoCommit) -> None:
    repository.add(
        make_cluster("Prod-EU", credentials=PasswordCredentials("root@pam", Secret(PASSWORD)))
    )
    repository.add(
        make_cluster("Lab", credentials=TokenCredentials("root@pam!ci", Secret(TOKEN_SECRET)))
    )


def _raw_rows(alias: str) -> str:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ClusterRecord._meta.db_table}")  # noqa: S608 - our own table name
        return repr(cursor.fetchall())


@pytest.mark.parametrize("alias", ALIASES)
def test_table_holds_no_plaintext_secret(alias: str) -> None:
    _store_both_kinds(in_database(alias))

    raw = _raw_rows(alias)

    assert "Prod-EU" in raw and "root@pam!ci" in raw  # the rows really are in what was read
    assert_secret_absent(PASSWORD, raw, "the clusters table")
    assert_secret_absent(TOKEN_SECRET, raw, "the clusters table")


@pytest.mark.parametrize("alias", ALIASES)
def test_stored_secret_is_a_fernet_token_under_the_newest_key(alias: str) -> None:
    _store_both_kinds(in_database(alias))

    tokens = dict(ClusterRecord.objects.using(alias).values_list("name", "secret_token"))

    newest = Fernet(settings.PROXMOXER_CREDENTIALS_KEYS[0])
    assert newest.decrypt(tokens["Prod-EU"]).decode() == PASSWORD
    assert newest.decrypt(tokens["Lab"]).decode() == TOKEN_SECRET


@pytest.mark.django_db(transaction=True)
def test_sqlite_database_file_holds_no_plaintext_secret() -> None:
    """At rest means on disk: the committed file, journal included."""
    _store_both_kinds(in_database())
    connections[DEFAULT_DB_ALIAS].close()
    database = Path(connections[DEFAULT_DB_ALIAS].settings_dict["NAME"])

    on_disk = b"".join(
        path.read_bytes()
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-journal"))
        if path.exists()
    )

    assert b"root@pam!ci" in on_disk
    assert_secret_absent(PASSWORD, on_disk, "the SQLite database file")
    assert_secret_absent(TOKEN_SECRET, on_disk, "the SQLite database file")


@pytest.mark.parametrize("alias", ALIASES)
def test_reads_need_no_key_and_a_wrong_key_fails_clearly_where_the_secret_is_used(
    alias: str,
) -> None:
    _store_both_kinds(in_database(alias))
    stranger = in_database(alias, cipher=CredentialCipher([Fernet.generate_key().decode()]))

    listed = stranger.list()  # listing and showing clusters never decrypts
    cluster = stranger.find_by_name("prod-eu")
    assert [c.name for c in listed] == ["Lab", "Prod-EU"]
    assert cluster is not None and cluster.username == "root@pam"
    assert isinstance(cluster.credentials, PasswordCredentials)

    with pytest.raises(CredentialsKeyError) as raised:
        cluster.credentials.password.reveal()

    message = str(raised.value)
    assert f"cluster {cluster.id}" in message
    assert "PROXMOXER_CREDENTIALS_KEYS" in message
    report = "".join(traceback.format_exception(raised.value))
    assert_secret_absent(PASSWORD, report, "the wrong-key error")
    assert "InvalidToken" not in report  # the library's bare error is not chained in


@pytest.mark.parametrize("alias", ALIASES)
def test_secrets_stored_under_an_older_key_still_reveal(alias: str) -> None:
    older = Fernet.generate_key().decode()
    _store_both_kinds(in_database(alias, cipher=CredentialCipher([older])))
    rotated = in_database(alias, cipher=CredentialCipher([Fernet.generate_key().decode(), older]))

    cluster = rotated.find_by_name("Lab")

    assert cluster is not None and isinstance(cluster.credentials, TokenCredentials)
    assert cluster.credentials.secret.reveal() == TOKEN_SECRET


@pytest.mark.parametrize("alias", ALIASES)
def test_stored_cluster_shows_neither_secret_nor_token_in_its_repr(alias: str) -> None:
    repository = in_database(alias)
    _store_both_kinds(repository)
    cluster = repository.find_by_name("Prod-EU")
    assert cluster is not None
    secret = cluster.credentials.password
    assert isinstance(secret, StoredSecret)
    secret.reveal()  # revealed once: the plaintext is now held, and still masked

    for text in (repr(cluster), str(cluster), f"{secret}", repr(secret)):
        assert_secret_absent(PASSWORD, text, "a cluster's repr")
        assert_secret_absent(secret.token, text, "a cluster's repr")


@pytest.mark.parametrize("alias", ALIASES)
def test_name_conflict_from_the_database_carries_no_database_detail(alias: str) -> None:
    repository = in_database(alias)
    _store_both_kinds(repository)
    contender = make_cluster("PROD-eu", credentials=PasswordCredentials("a@pve", Secret(PASSWORD)))

    with pytest.raises(ClusterNameTaken) as raised:
        repository.add(contender)

    assert raised.value.message == "A cluster named 'PROD-eu' is already registered"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    report = "".join(traceback.format_exception(raised.value))
    assert "IntegrityError" not in report and "UniqueViolation" not in report
    assert_secret_absent(PASSWORD, report, "the name conflict error")


@pytest.mark.parametrize("alias", ALIASES)
def test_a_refused_write_inside_a_transaction_leaves_the_transaction_usable(alias: str) -> None:
    """The test itself runs in a transaction: on PostgreSQL, a failed INSERT
    without a savepoint would abort it, and the next query would fail."""
    repository = in_database(alias)
    _store_both_kinds(repository)

    with pytest.raises(ClusterNameTaken):
        repository.add(make_cluster("lab"))
    with pytest.raises(ClusterNameTaken):
        prod = repository.find_by_name("Prod-EU")
        assert prod is not None
        repository.update(prod.reconfigured(at=prod.updated_at, name="lab"))

    assert [c.name for c in repository.list()] == ["Lab", "Prod-EU"]


@pytest.mark.django_db
def test_migrations_match_the_model() -> None:
    call_command("makemigrations", "clusters", "--check", "--dry-run", verbosity=0)


@pytest.mark.postgres
@pytest.mark.parametrize("alias", [_alias_param(postgres.ALIAS)])
def test_postgres_name_key_column_collates_by_code_point(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'name_key'",
            [ClusterRecord._meta.db_table],
        )
        assert cursor.fetchone() == ("C",)


@pytest.mark.django_db
def test_an_audit_row_cannot_be_changed_once_written() -> None:
    with DjangoUnitOfWork(cipher=CredentialCipher.from_settings()) as uow:
        uow.audit.append(
            AuditEvent.success(
                AuditAction.CLUSTER_DEREGISTER, actor=Actor("admin"), at=make_cluster().created_at
            )
        )
        uow.commit()
    record = AuditEventRecord.objects.get()
    record.actor = "someone-else"

    with pytest.raises(ValueError, match="append-only"):
        record.save()

    assert AuditEventRecord.objects.get().actor == "admin"
