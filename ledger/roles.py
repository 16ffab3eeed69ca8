"""Database roles on PostgreSQL: a writer that can only append, an auditor that can only read.

:func:`create_roles` creates (idempotently) two ``NOLOGIN`` group roles and
sets their privileges on the ledger's database from scratch each time:

* **writer** (the platform's posting code): ``SELECT`` and ``INSERT`` on the
  ledger's tables, and only what posting needs beyond that: ``UPDATE`` of
  the running balance columns of ``account_balance``, ``UPDATE`` of
  ``account.closed_at`` (closing an account), ``DELETE`` on ``seal_queue``
  and ``UPDATE`` of ``chain_day.last_seq`` (sealing moves queued entries
  into the chain) and the sequences. No
  ``UPDATE`` or ``DELETE`` on any journal table, no ``TRUNCATE``, no DDL
  (it owns nothing and may not create in the schema). It cannot close a
  period: ``closed_period`` and ``balance_checkpoint`` are written by the
  owner (``ledger period close``), which keeps closing a separate duty.
* **auditor**: ``SELECT`` on every table, nothing else.

Log-in users are made members of these roles by the DBA
(``CREATE ROLE alice LOGIN IN ROLE ledger_auditor``). Roles are cluster
wide; the grants are per database and on the ledger's schema (the
connection's current schema: ``public``, or the one a
``?options=-csearch_path=...`` URL names), so run this on each ledger
database as its users will reach it.
Tables added by later migrations get the writer's ``SELECT, INSERT`` by
default; :data:`WRITER_EXTRA` lists the few extra rights some need.
"""

from __future__ import annotations

import re

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from .errors import InputError, LedgerError

DEFAULT_WRITER = "ledger_writer"
DEFAULT_AUDITOR = "ledger_auditor"

#: Tables the writer may not insert into (the owner's duties, or Alembic's).
WRITER_READ_ONLY = ("alembic_version", "closed_period", "balance_checkpoint")

#: Rights beyond SELECT and INSERT, per table, that the write paths need.
WRITER_EXTRA = {
    "account_balance": "UPDATE (posted_minor, held_minor)",
    "account": "UPDATE (closed_at)",
    "seal_queue": "DELETE",
    "chain_day": "UPDATE (last_seq)",
    "loan": "UPDATE (status, raised_minor)",
}

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RolesNotSupported(LedgerError):
    """The database has no roles to manage (SQLite)."""


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(f"role name {name!r}: use lower-case letters, digits and '_'", role=name)
    return f'"{name}"'


def role_statements(tables: list[str], database: str, writer: str = DEFAULT_WRITER,
                    auditor: str = DEFAULT_AUDITOR, schema: str = "public") -> list[str]:
    """The SQL that creates the roles and sets their privileges on ``schema``'s tables
    (the schema the ledger was migrated in), in order."""
    w, a = _ident(writer), _ident(auditor)
    sch = _quoted(schema)
    stmts = []
    for name, ident in ((writer, w), (auditor, a)):
        stmts.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN "
            f"CREATE ROLE {ident} NOLOGIN; END IF; END $$")
    db = _quoted(database)
    stmts += [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {w}, {a}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM {w}, {a}",
        f"REVOKE ALL ON SCHEMA {sch} FROM {w}, {a}",
        f"REVOKE CREATE ON SCHEMA {sch} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {db} TO {w}, {a}",
        f"GRANT USAGE ON SCHEMA {sch} TO {w}, {a}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {sch} TO {a}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {sch} TO {w}",
    ]
    for table in sorted(tables):
        rights = "SELECT" if table in WRITER_READ_ONLY else "SELECT, INSERT"
        stmts.append(f"GRANT {rights} ON {sch}.{_quoted(table)} TO {w}")
        if table in WRITER_EXTRA:
            stmts.append(f"GRANT {WRITER_EXTRA[table]} ON {sch}.{_quoted(table)} TO {w}")
    return stmts


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_roles(engine: Engine, writer: str = DEFAULT_WRITER,
                 auditor: str = DEFAULT_AUDITOR) -> list[str]:
    """Create or refresh the writer and auditor roles; returns the statements run."""
    if engine.dialect.name != "postgresql":
        raise RolesNotSupported(
            f"database roles are not supported on {engine.dialect.name}; they need PostgreSQL "
            "(an embedded SQLite file is protected by its file permissions)",
            dialect=engine.dialect.name)
    with engine.begin() as conn:
        # The ledger's schema: where its tables are found (the migrations made them there).
        database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        if schema is None:
            raise LedgerError("the connection's search_path names no existing schema; "
                              "cannot tell where the ledger's tables are")
        tables = inspect(conn).get_table_names(schema=schema)
        stmts = role_statements(tables, database, writer, auditor, schema)
        for stmt in stmts:
            conn.exec_driver_sql(stmt)
    return stmts


__all__ = ["create_roles", "role_statements", "RolesNotSupported", "DEFAULT_WRITER",
           "DEFAULT_AUDITOR", "WRITER_EXTRA", "WRITER_READ_ONLY"]
