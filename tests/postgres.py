"""The PostgreSQL server the suite runs the database backend on.

``DATABASE_URL_POSTGRES`` names it (default: the CI server, trust auth on
127.0.0.1:5432). Tests that need it are marked ``postgres``; when the server
is unreachable they skip with the reason, or fail when
``PROXMOXER_REQUIRE_POSTGRES=1`` (CI) says it must be there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import environ
import psycopg
import pytest
from psycopg import sql

ALIAS = "postgres"
URL = os.environ.get("DATABASE_URL_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
REQUIRED = os.environ.get("PROXMOXER_REQUIRE_POSTGRES", "") == "1"


def settings_dict(url: str = URL) -> dict[str, Any]:
    return environ.Env.db_url_config(url)


def _connect(config: dict[str, Any], dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname=dbname or config["NAME"],
        connect_timeout=3,
        autocommit=True,
    )


def unavailable_reason(url: str = URL) -> str | None:
    """None when the server answers; otherwise why not, without the password."""
    config = settings_dict(url)
    try:
        _connect(config).close()
    except psycopg.Error as error:
        lines = str(error).strip().splitlines()
        first_line = lines[0] if lines else type(error).__name__
        return (
            f"PostgreSQL at {config['HOST']}:{config['PORT']} (DATABASE_URL_POSTGRES) is "
            f"unreachable: {first_line}"
        )
    return None


def require() -> None:
    """Skip the calling test, with the reason, when the server is unreachable;
    fail it instead under PROXMOXER_REQUIRE_POSTGRES=1 (CI), so a missing
    database cannot pass as green."""
    from django.conf import settings

    reason = settings.POSTGRES_UNAVAILABLE
    if reason is None:
        return
    if settings.POSTGRES_REQUIRED:
        pytest.fail(f"{reason} (PROXMOXER_REQUIRE_POSTGRES=1 requires it)", pytrace=False)
    pytest.skip(reason)


def database_url(name: str, url: str = URL) -> str:
    """``url`` with its database replaced by ``name``."""
    config = settings_dict(url)
    credentials = quote(config["USER"], safe="")
    if config["PASSWORD"]:
        credentials += ":" + quote(config["PASSWORD"], safe="")
    return f"postgres://{credentials}@{config['HOST']}:{config['PORT']}/{name}"


@contextmanager
def fresh_database(prefix: str, url: str = URL) -> Iterator[str]:
    """Create an empty database for one test run, yield its URL, drop it after.

    Named uniquely, so parallel runs on one server (two worktrees, CI jobs)
    never meet.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _create(name, sql.SQL(""), url)
    try:
        yield database_url(name, url)
    finally:
        _drop(name, url)


@contextmanager
def english_collation_template(url: str = URL) -> Iterator[str | None]:
    """A template database whose text sorts as ICU's en-US does, like the
    en_US.UTF-8 databases many servers are set up with; None where the
    server has no ICU (built without it, or older than PostgreSQL 15).

    CI's server sorts by code point (C.UTF-8), where a column that lost its
    "C" collation would still list clusters in the contract's order; in a
    database made from this template it would not.
    """
    name = f"proxmoxer_template_en_{uuid.uuid4().hex[:12]}"
    try:
        _create(name, sql.SQL("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"), url)
    except psycopg.Error:
        yield None
        return
    try:
        yield name
    finally:
        _drop(name, url)


def _create(name: str, options: sql.Composable, url: str) -> None:
    with _connect(settings_dict(url)) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {} {}").format(sql.Identifier(name), options))


def _drop(name: str, url: str) -> None:
    with _connect(settings_dict(url)) as connection:
        # FORCE ends sessions a killed server process may have left behind.
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
