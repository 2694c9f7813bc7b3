"""Every storage backend as a test parameter: the in-memory store, and the
Django model on SQLite (the ``default`` database) and on PostgreSQL (the
``postgres`` alias, tests/postgres.py).

``backend_param`` gives a backend the marks its tests need (database access,
the ``postgres`` marker that skips, or in CI fails, without the server);
``units_of_work`` opens units of work on it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from clusters.encryption import CredentialCipher
from clusters.repositories.database import DjangoUnitOfWork
from clusters.repositories.memory import InMemoryUnitOfWork
from clusters.services import UnitOfWorkFactory
from tests import postgres

BACKENDS = ("memory", "sqlite", "postgres")
ALIASES = {"sqlite": DEFAULT_DB_ALIAS, "postgres": postgres.ALIAS}
_VENDORS = {"sqlite": "sqlite", "postgres": "postgresql"}


def backend_param(backend: str, *, transaction: bool = False, api: bool = False) -> Any:
    """``backend`` as a pytest parameter with its marks. ``api``: the test
    also goes through the API, whose accounts live in the default database."""
    marks: list[pytest.MarkDecorator] = []
    if backend == "sqlite" or (api and backend == "memory"):
        marks.append(pytest.mark.django_db(transaction=transaction))
    if backend == "postgres":
        marks.append(pytest.mark.postgres)
        # Without the server the alias does not exist and the test skips (or
        # fails, in CI) before it would touch a database.
        if postgres.ALIAS in settings.DATABASES:
            aliases = [DEFAULT_DB_ALIAS, postgres.ALIAS] if api else [postgres.ALIAS]
            marks.append(pytest.mark.django_db(transaction=transaction, databases=aliases))
    return pytest.param(backend, marks=marks, id=backend)


def units_of_work(backend: str) -> UnitOfWorkFactory:
    if backend == "memory":
        return InMemoryUnitOfWork.factory()
    alias = ALIASES[backend]
    vendor = connections[alias].vendor
    if vendor != _VENDORS[backend]:
        pytest.skip(f"database alias {alias!r} is {vendor}, not {backend} (DATABASE_URL)")
    cipher = CredentialCipher.from_settings()
    return lambda: DjangoUnitOfWork(alias, cipher=cipher)
