"""Ledgers on every backend for the contract and model tests: a SQLite file, or a fresh PostgreSQL schema.

PostgreSQL runs whenever ``BULKSEND_TEST_POSTGRES`` names a server (``postgresql://postgres@127.0.0.1:5432/test``);
otherwise its tests are skipped with ``SKIP_REASON`` (``.ci/run`` fails when that reason appears). Each
PostgreSQL ledger lives in its own randomly named schema, reached through the URL's ``search_path``, and the
schema is dropped afterwards: tests run in parallel and in any order.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from bulksend.ledger import Clock, Ledger, SqliteLedger

PG_ENV = "BULKSEND_TEST_POSTGRES"
SKIP_REASON = (
    f"PostgreSQL ledger tests need a server: set {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq ``options=-csearch_path=<schema>``: every connection made from it uses the schema."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class Backend:
    """One empty ledger database for one test: ``open()`` gives a ledger on it (as often as needed)."""

    def __init__(self, name: str, clock: Clock | None = None) -> None:
        self.name = name
        self.clock = clock
        self._dir = Path(tempfile.mkdtemp(prefix="bulksend-ledger-"))
        self.schema: str | None = None
        if name == "sqlite":
            self.url = f"sqlite:///{self._dir / 'ledger.db'}"
            return
        base = postgres_url()
        if base is None:
            shutil.rmtree(self._dir, ignore_errors=True)
            pytest.skip(SKIP_REASON)
        import psycopg

        self.schema = f"bulksend_test_{secrets.token_hex(6)}"
        self._base = base
        with psycopg.connect(base, autocommit=True) as conn:  # a server that is down fails the test, never skips
            conn.execute(f"CREATE SCHEMA {self.schema}")
        self.url = with_search_path(base, self.schema)

    @property
    def path(self) -> Path:
        return self._dir / "ledger.db"

    def open(self) -> Ledger:
        if self.name == "sqlite":
            return SqliteLedger.open(self.path, clock=self.clock)
        from bulksend.stores.postgres import PostgresStore

        return Ledger(PostgresStore.open(self.url), clock=self.clock, home=self._dir)

    def raw(self, *statements: str) -> None:
        """Run SQL behind the ledger's back (tests that damage a ledger to see the audit notice)."""
        if self.name == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path)
            for statement in statements:
                conn.execute(statement)
            conn.commit()
            conn.close()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def drop(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        if self.schema is not None:
            import psycopg

            with psycopg.connect(self._base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
