"""Engines, URL resolution, schema upgrade and retried write transactions.

* :func:`resolve_url`: explicit URL, else ``LEDGER_DATABASE_URL``, else
  ``sqlite:///ledger.db``.
* :func:`make_engine`: SQLite gets foreign keys, recursive triggers (so the
  append-only triggers also refuse ``INSERT OR REPLACE``), WAL, a busy timeout and
  ``BEGIN IMMEDIATE`` for every transaction (writers queue at the start
  instead of failing at commit). Listeners are on this engine only.
* :func:`upgrade` / :func:`current_revision`: Alembic, programmatically.
* :func:`write_transaction`: runs a function in a transaction and retries it
  on serialization failures and deadlocks (SQLSTATE 40001, 40P01) and on a
  locked SQLite database, a bounded number of times with jittered backoff;
  and once more on a dropped connection noticed before the COMMIT was sent.

A server engine pings a pooled connection before handing it out only when it
has been idle for :data:`PING_IDLE_SECONDS` (a dead one is replaced), not on
every checkout as ``pool_pre_ping`` does: a busy writer saves that round trip,
and a connection that dies while in use is the retry's business.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import time
import weakref
from contextlib import contextmanager
from importlib import resources
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from .errors import ConcurrencyError, LedgerError

DEFAULT_URL = "sqlite:///ledger.db"
RETRY_SQLSTATES = {"40001", "40P01"}
MAX_ATTEMPTS = 12

T = TypeVar("T")


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: explicit, then the environment, then the default."""
    return url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """An engine for ``url`` with the settings the ledger relies on."""
    url = resolve_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=":memory:" in url or url.rstrip("/") == "sqlite:")
        return engine
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


#: A pooled connection idle for longer than this is pinged before it is handed out.
PING_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["ledger_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        since = record.info.get("ledger_idle_since")
        if since is not None and time.monotonic() - since > PING_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as exc:
                # The pool discards this connection and hands out a new one.
                raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


#: SQLite engines set up by :func:`make_engine`: their write transactions take the
#: database's write lock at BEGIN (``BEGIN IMMEDIATE``).
_LOCKING_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def locks_at_begin(engine: Engine) -> bool:
    """Whether ``engine``'s write transactions hold SQLite's write lock from their first
    statement on (an engine made by :func:`make_engine` for a SQLite database)."""
    return engine in _LOCKING_ENGINES


def _configure_sqlite(engine: Engine, in_memory: bool) -> None:
    _LOCKING_ENGINES.add(engine)
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        # INSERT OR REPLACE deletes the rows it collides with; only with recursive triggers
        # on do those deletions fire the append-only DELETE triggers (else a row could be
        # rewritten in place).
        cur.execute("PRAGMA recursive_triggers=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Readers (execution option ``ledger_read``) take no write lock.
        read_only = conn.get_execution_options().get("ledger_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def read_connection(engine: Engine) -> Connection:
    """A connection for reading only (no write lock on SQLite)."""
    return engine.connect().execution_options(ledger_read=True)


def is_retryable(exc: BaseException) -> bool:
    """True for errors a retry of the whole transaction can cure."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        if code in RETRY_SQLSTATES:
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(orig):
            return True
    return False


def write_transaction(engine: Engine, fn: Callable[[Connection], T], *,
                      attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``fn(conn)`` in one transaction; retry it whole on transient conflicts."""
    for attempt in range(1, attempts + 1):
        committing = False
        try:
            with engine.begin() as conn:
                result = fn(conn)
                committing = True
            return result
        except DBAPIError as exc:
            if exc.connection_invalidated and not committing and attempt < attempts:
                continue   # the connection died before COMMIT: nothing was written
            if not is_retryable(exc):
                raise
            if attempt == attempts:
                raise ConcurrencyError(
                    f"gave up after {attempts} attempts on transient database conflicts: {exc.orig}",
                    attempts=attempts,
                ) from exc
            time.sleep(min(0.2, 0.002 * 2 ** attempt) * random.random())
    raise AssertionError("unreachable")


def _alembic_config(conn: Connection):
    from alembic.config import Config

    script_location = str(resources.files("migrations"))
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the latest by default); a database already at
    the latest is left alone (no migration transaction, so none of its checks: opening
    a book altered behind the ledger's back lets ``verify`` say what was altered)."""
    from alembic import command

    current = current_revision(engine)
    if revision == "head" and current == head_revision():
        return
    require_known(current)
    with migration_transaction(engine) as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take the schema down to ``revision`` (used by the migration tests)."""
    from alembic import command

    require_known(current_revision(engine))
    with migration_transaction(engine) as conn:
        command.downgrade(_alembic_config(conn), revision)


class UnknownRevisionError(LedgerError, RuntimeError):
    """The database is at a schema revision this version of the ledger does not know
    (a newer version migrated it); nothing was changed."""


def require_known(current: str | None) -> None:
    from alembic.util import CommandError

    if current is None:
        return
    try:
        known = _script_directory().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise UnknownRevisionError(
            f"the database is at schema revision {current}, which this version of the ledger "
            f"does not know (its latest is {head_revision()}): a newer version migrated it. "
            "Run that version (or a later one); nothing was changed",
            revision=current, head=head_revision())


class MigrationIntegrityError(LedgerError, RuntimeError):
    """A migration left rows whose foreign keys point nowhere; nothing was changed."""


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for schema migrations.

    On SQLite, foreign-key enforcement is switched off for its duration and
    ``PRAGMA foreign_key_check`` must find nothing before it commits: the
    procedure SQLite documents for schema changes. A migration that rebuilds
    a table (copy, drop, rename) could not drop a table other tables refer
    to with enforcement on, even though every reference holds again once
    the copy takes its name. Enforcement is switched back on afterwards,
    whatever happened.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                yield conn
            return
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")   # outside a transaction, or it is ignored
        try:
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise MigrationIntegrityError(
                        f"the migration would leave {len(broken)} row(s) whose foreign keys point "
                        f"nowhere (first: table {broken[0][0]}, rowid {broken[0][1]}, "
                        f"referring to {broken[0][2]}); it was rolled back")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None when not initialised)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@functools.lru_cache(maxsize=None)
def _script_directory():
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    return ScriptDirectory.from_config(cfg)


@functools.lru_cache(maxsize=None)
def head_revision() -> str:
    """The latest revision the code knows."""
    return _script_directory().get_current_head()


# --- multi-row inserts written out (psycopg2) ----------------------------------------

def sql_literal(value) -> str | None:
    """SQL text of a value that needs no quoting, or None for one the driver must quote.

    Exactly an int, a bool, None, a date or a datetime (subclasses excluded), or
    a string of ASCII letters and digits only (hashes, currencies, phases).
    """
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is str and value.isascii() and value.isalnum():
        return f"'{value}'"
    if kind is dt.date:
        return f"'{dt.date.isoformat(value)}'::date"
    if kind is dt.datetime:
        return f"'{dt.datetime.isoformat(value)}'::timestamp"
    return None


def values_row(row: Mapping, columns: Sequence[str], params: list) -> str:
    """``(v1, v2, ...)`` of ``row``'s ``columns`` for a multi-row ``INSERT ... VALUES``.

    Values :func:`sql_literal` can write are written; every other one becomes
    a ``%s`` placeholder with the value appended to ``params``, for the driver
    to quote. Writing most values out costs far less client time than having
    the driver (or SQLAlchemy's many-values insert) format each one.
    """
    return values_of([row[column] for column in columns], params)


def values_of(values: Sequence, params: list) -> str:
    """:func:`values_row` of values already in column order."""
    parts = []
    for value in values:
        text = sql_literal(value)
        if text is None:
            params.append(value)
            text = "%s"
        parts.append(text)
    return "(" + ", ".join(parts) + ")"
