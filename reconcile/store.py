"""Bulk storage for reconciliation runs: ids reserved in one go, rows written as tuples.

A daily run writes about as many rows as the statement has lines (bank
lines, matches and their links), so the per-row cost of building
parameter dicts and compiling statements is the run's main cost at a
million lines. These helpers go through the driver with plain tuples,
inside the caller's transaction, so all-or-nothing still holds:

* :func:`reserve_ids` hands out ``count`` primary keys for a table: on
  SQLite ``max(id) + 1 ...`` (safe because every write transaction holds
  the database's write lock from ``BEGIN IMMEDIATE``); on PostgreSQL values
  of the table's own sequence, so concurrent writers never collide.
* :func:`insert_rows` inserts tuples: thousands of rows to a statement on
  SQLite, multi-row ``VALUES`` pages on psycopg2, SQLAlchemy Core for any
  other driver; dates go in through :func:`date_param`.
  :func:`insert_columns` inserts the same rows given as columns.
* :func:`select_rows` runs a query and gives plain tuples; :func:`date_reader`
  makes their date columns dates on every database.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import contextmanager
from itertools import chain
from typing import Callable, Iterator, Sequence

from sqlalchemy import Table, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import Connection

PAGE = 1000
#: Rows one SQLite insert statement takes at most (fewer when the columns are many, or
#: when this SQLite binds fewer parameters to a statement). A whole import chunk in one
#: statement: a thread inserting beside others waits for Python's lock after every
#: statement, so fewer, larger statements finish sooner (a million bank lines went in
#: in 5.8-6.3 s wall beside the run's other work instead of 7.5-8.4 s with 5,000-row ones).
STATEMENT_ROWS = 20_000
FETCH_PAGE = 10_000
#: SQLite page cache for a run (KiB). The indexes' working set of a million-line
#: day fits (the new keys go in at their ends); the rest of the pages a run writes
#: are spilled to the write-ahead log by the writer thread as it inserts, instead
#: of all at the commit. 128 MiB measured no faster and cost ~100 MiB of peak memory.
RUN_CACHE_KIB = 32 * 1024


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


@contextmanager
def roomy_cache(conn: Connection):
    """A larger SQLite page cache on ``conn`` for the duration (restored after)."""
    if not _is_sqlite(conn):
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{RUN_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


@contextmanager
def _driver_errors(conn: Connection, sql: str):
    """Driver errors as SQLAlchemy raises them (``IntegrityError``, ``OperationalError``,
    ...), so that retries on serialization failures and deadlocks, the translation of
    integrity errors and the recovery from a dropped connection all still apply."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        invalidated = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=invalidated,
                                  dialect=conn.dialect) from exc


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` new primary keys for ``table`` (its ``id`` column), in increasing order."""
    if count <= 0:
        return []
    name = table.name
    if _is_sqlite(conn):
        top = conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {name}").scalar()
        return list(range(top + 1, top + 1 + count))
    if conn.dialect.name == "postgresql":
        return list(conn.execute(text(
            "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": name, "n": count}).scalars())
    raise NotImplementedError(f"reserving ids on {conn.dialect.name}")


def _sqlite_param(value):
    """A parameter of :func:`select_rows` as SQLAlchemy would bind it on SQLite: only
    the plain types its callers use (a ``datetime`` or a ``Decimal`` would need the
    column type's own conversion, so they are refused)."""
    kind = type(value)
    if kind is dt.date:
        return value.isoformat()   # SQLAlchemy's Date form on SQLite
    if value is None or kind in (int, str, bool):
        return value
    raise TypeError(f"select_rows binds dates, ints, strings and booleans, not {kind.__name__}")


def date_param(conn: Connection) -> Callable[[dt.date | None], object]:
    """What a date becomes as a parameter of :func:`insert_rows`: ISO text on SQLite
    (the form SQLAlchemy's ``Date`` type reads back), the date itself elsewhere."""
    if not _is_sqlite(conn):
        return lambda day: day
    return _IsoDays().__getitem__


def date_reader(conn: Connection) -> Callable[[object], dt.date | None]:
    """What turns a date column of :func:`select_rows` into a date:
    ISO text parsed once per distinct day on SQLite, the value itself elsewhere."""
    if not _is_sqlite(conn):
        return lambda value: value
    return _Days().__getitem__


class _Days(dict):
    """ISO text -> date, each day parsed once (a hit is a plain dict lookup)."""

    def __missing__(self, text):
        day = self[text] = None if text is None else dt.date.fromisoformat(text)
        return day


class _IsoDays(dict):
    """Date -> ISO text, each day converted once (a hit is a plain dict lookup)."""

    def __missing__(self, day):
        text = self[day] = None if day is None else day.isoformat()
        return text


def sql_constant(value) -> str | None:
    """``value`` written as an SQL literal for :func:`insert_rows`'s ``constants``, or None
    when it cannot be: exactly an int, None, or a string without NUL (quotes doubled)."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "NULL"
    if kind is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def insert_rows(conn: Connection, table: Table, columns: Sequence[str],
                rows: Sequence[tuple], constants: dict | None = None) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table``.

    ``constants``: columns with the same value in every row (ints, None or strings;
    dates given through :func:`date_param`). On SQLite they are written into the
    statement instead of being bound again for every row, which is a good part
    of the cost of a wide row; elsewhere they are added to each row. Dates, in
    ``rows`` as in ``constants``, must be given through :func:`date_param`.
    """
    if not rows:
        return
    constants = constants or {}
    if _is_sqlite(conn):
        width = len(columns)

        def page(start: int, count: int) -> list:
            rows_ = rows[start:start + count]
            if set(map(len, rows_)) != {width}:
                raise ValueError(f"{table.name}: every row must hold {width} values "
                                 f"({', '.join(columns)})")
            return list(chain.from_iterable(rows_))
        _sqlite_insert(conn, table.name, columns, len(rows), page, _literals(constants))
        return
    if constants:
        columns = (*columns, *constants)
        extra = tuple(constants.values())
        rows = [row + extra for row in rows]
    names = ", ".join(columns)
    if conn.dialect.driver == "psycopg2":
        from psycopg2.extras import execute_values

        sql = f"INSERT INTO {table.name} ({names}) VALUES %s"
        cursor = conn.connection.driver_connection.cursor()
        try:
            with _driver_errors(conn, sql):
                execute_values(cursor, sql, rows, page_size=PAGE)
        finally:
            cursor.close()
        return
    for start in range(0, len(rows), PAGE):
        conn.execute(insert(table), [dict(zip(columns, row)) for row in rows[start:start + PAGE]])


def insert_columns(conn: Connection, table: Table, names: Sequence[str], columns: Sequence[list],
                   constants: dict | None = None) -> None:
    """:func:`insert_rows` of rows given as columns (lists side by side, one per name).

    On SQLite each statement's parameters are laid out straight from the columns,
    with no tuple per row; elsewhere the rows are zipped and inserted as rows.
    """
    if len(names) != len(columns) or len(set(map(len, columns))) > 1:
        raise ValueError(f"{table.name}: one column of equal length for each of {', '.join(names)}")
    count = len(columns[0]) if columns else 0
    if not count:
        return
    if not _is_sqlite(conn):
        insert_rows(conn, table, names, list(zip(*columns)), constants)
        return
    width = len(names)

    def page(start: int, rows: int) -> list:
        params = [None] * (width * rows)
        for k, column in enumerate(columns):
            params[k::width] = column[start:start + rows]
        return params
    _sqlite_insert(conn, table.name, names, count, page, _literals(constants or {}))


def _literals(constants: dict) -> dict:
    """``constants`` as SQL literals (:func:`sql_constant`); a value that cannot be one is refused."""
    literals = {name: sql_constant(value) for name, value in constants.items()}
    for name, literal in literals.items():
        if literal is None:
            raise TypeError(f"constant {name}={constants[name]!r}: only ints, None and "
                            "strings without NUL are written into the statement")
    return literals


def _sqlite_rows_per_statement(driver_connection, width: int) -> int:
    """How many rows of ``width`` parameters one SQLite statement can bind."""
    getlimit = getattr(driver_connection, "getlimit", None)   # Python 3.11+
    if getlimit is not None:
        limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    else:
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    return max(1, min(STATEMENT_ROWS, limit // max(width, 1)))


def _sqlite_insert(conn: Connection, name: str, columns: Sequence[str], count: int,
                   page: Callable[[int, int], list], literals: dict) -> None:
    """``count`` rows inserted many to a statement: ``INSERT ... SELECT *, <constants>
    FROM (VALUES (?, ...), (?, ...), ...)``, ``page(start, rows)`` giving the flat
    parameters of each statement's rows. One statement then does the work of
    thousands of rows in SQLite (outside Python's lock, so another thread can run
    meanwhile), and the constants are written once."""
    driver = conn.connection.driver_connection
    width = len(columns)
    per = _sqlite_rows_per_statement(driver, width)
    head = f"INSERT INTO {name} ({', '.join((*columns, *literals))}) SELECT *"
    head += "".join(f", {literal}" for literal in literals.values()) + " FROM (VALUES "
    mark = "(" + ", ".join(("?",) * width) + ")"
    cursor = driver.cursor()
    try:
        for start in range(0, count, per):
            rows = min(per, count - start)
            params = page(start, rows)
            sql = head + ", ".join((mark,) * rows) + ")"
            with _driver_errors(conn, sql[:200]):
                cursor.execute(sql, params)
    finally:
        cursor.close()


def select_rows(conn: Connection, statement) -> Iterator[tuple]:
    """The rows of a Core ``statement`` as plain tuples, one at a time.

    On SQLite the query runs through the driver (no per-row result
    processing) and its rows are read in pages as they are consumed; date
    columns come back as ISO text there (turn them into dates with
    :func:`date_reader`). Its parameters may be dates, ints, strings,
    booleans and None. Consume the rows before running another statement on
    ``conn``.
    """
    if not _is_sqlite(conn):
        yield from map(tuple, conn.execute(statement))
        return
    compiled = statement.compile(dialect=conn.dialect,
                                 compile_kwargs={"render_postcompile": True})
    params = compiled.params
    positional = tuple(map(_sqlite_param, (params[name] for name in compiled.positiontup)))
    cursor = conn.connection.driver_connection.cursor()
    try:
        with _driver_errors(conn, compiled.string):
            cursor.execute(compiled.string, positional)
        while True:
            with _driver_errors(conn, compiled.string):
                page = cursor.fetchmany(FETCH_PAGE)
            if not page:
                break
            yield from page
    finally:
        cursor.close()


__all__ = ["roomy_cache", "reserve_ids", "insert_rows", "insert_columns", "sql_constant", "select_rows", "date_param", "date_reader"]
