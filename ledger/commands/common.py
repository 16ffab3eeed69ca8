"""Shared CLI pieces: the ``--db`` and ``--format`` options and output.

Library errors (:class:`ledger.errors.LedgerError`) become
:class:`click.ClickException` only here, at the CLI boundary.
"""

from __future__ import annotations

import functools
import io
import json
import sqlite3
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

import click
from sqlalchemy.exc import DBAPIError

from ..errors import (AmountError, InputError, InvalidAccountError, LedgerError,
                      UnknownCurrencyError)
from ..exports import csv_row, csv_writer, one_line

FORMATS = ("table", "csv", "json")


class BadInput(click.ClickException):
    """Bad input on the command line or in a file: exit code 2."""

    exit_code = 2


def db_option(func: Callable) -> Callable:
    """``--db URL``; falls back to ``LEDGER_DATABASE_URL`` then ``sqlite:///ledger.db``."""
    return click.option(
        "--db",
        "db_url",
        envvar="LEDGER_DATABASE_URL",
        default=None,
        metavar="URL",
        help="Database URL (default: $LEDGER_DATABASE_URL or sqlite:///ledger.db).",
    )(func)


def format_option(func: Callable) -> Callable:
    """``--format table|csv|json`` (default table)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


_BAD_INPUT = (InputError, AmountError, UnknownCurrencyError, InvalidAccountError)


def library_errors(func: Callable) -> Callable:
    """Turn library errors into clean CLI errors (exit 2 for bad input, 1 otherwise).

    Bad input is what could never be right, whatever the ledger holds: an amount
    that is not one (not a number, finer than the currency's minor unit, beyond
    the limit), an unknown currency, an account code that is malformed. What the
    ledger refuses given its state (an unknown account, insufficient funds, a key
    used before, a closed period) is exit 1.

    A ``--db`` that cannot be opened (a SQLite file in a missing directory,
    a file that is not a database, a PostgreSQL server that cannot be
    reached) is bad input too: exit 2, naming the database and the reason.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _BAD_INPUT as exc:
            raise BadInput(str(exc)) from exc
        except LedgerError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
        except DBAPIError as exc:
            problem = database_problem(exc)
            if problem is None:
                raise
            raise BadInput(f"--db {_shown_url(kwargs.get('db_url'))}: {problem}") from exc

    return wrapper


_CONNECT_FAILED = ("connection to server", "could not connect", "could not translate host name")


def database_problem(exc: DBAPIError) -> str | None:
    """Why the database of ``--db`` cannot be used at all, or None for any other error.

    Only errors that say the database cannot be opened or reached qualify;
    everything else (a refused write, a lost race) is left to propagate.
    """
    orig = exc.orig
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(orig, sqlite3.Error):
        if "unable to open database file" in message:
            return f"{message} (is the path right, and does its directory exist?)"
        if "not a database" in message:
            return f"the file is not a SQLite database ({message})"
        return None
    if getattr(orig, "pgcode", "") is None and message.startswith(_CONNECT_FAILED):
        return f"cannot connect to the database: {message}"
    return None


def _shown_url(db_url: str | None) -> str:
    """The database URL as given (or resolved), its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from ..db import resolve_url

    try:
        return make_url(resolve_url(db_url)).render_as_string(hide_password=True)
    except ArgumentError:  # unparsable: it could not have been opened, so this is not reached
        return "URL"


def _json_default(value: Any):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: Any) -> str:
    """JSON text; Decimals become strings so nothing is lost to floats."""
    return json.dumps(data, default=_json_default, ensure_ascii=False, indent=2)


def _cell(value: Any) -> str:
    """A table cell: one line whatever the text holds (a memo's line break printed as
    ``\\n`` cannot make a line that looks like the table's footer)."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return one_line(str(value))


def render_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain aligned text table; numbers (Decimal, int) right-aligned."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [
        bool(rows) and all(isinstance(r.get(c), (int, Decimal)) or r.get(c) is None for r in rows)
        for c in columns
    ]

    def fmt_row(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [fmt_row(list(columns)), "  ".join("-" * w for w in widths)]
    lines.extend(fmt_row(row) for row in cells)
    return "\n".join(lines)


def emit(rows: Sequence[dict], columns: Sequence[str], fmt: str, *, title: str | None = None,
         footer: Iterable[str] = ()) -> None:
    """Print ``rows`` in the chosen format (table, csv or json).

    CSV cells follow the rule of :func:`ledger.exports.csv_row`: text that a
    spreadsheet would run as a formula is quoted, line breaks are escaped.
    """
    if fmt == "json":
        click.echo(to_json([{c: r.get(c) for c in columns} for r in rows]))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv_writer(buf)
        writer.writerow(columns)
        for r in rows:
            writer.writerow(csv_row(r.get(c) for c in columns))
        click.echo(buf.getvalue(), nl=False)
    else:
        if title:
            click.echo(title)
        click.echo(render_table(rows, columns))
        for line in footer:
            click.echo(line)
