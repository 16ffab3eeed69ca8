"""Core CLI commands: init, db, account, post, balance, verify."""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal

import click

from .. import db as dbmod
from ..errors import InputError, LedgerError
from ..money import format_minor
from .common import BadInput, db_option, emit, format_option, library_errors, to_json


def open_book(db_url: str | None, upgrade: bool = True):
    """Open the book for a command (the schema is brought up to date first)."""
    import ledger

    return ledger.open(db_url, upgrade=upgrade)


def parse_date(value: str | None, what: str = "date") -> dt.date | None:
    """``YYYY-MM-DD`` to a date, with an error naming the option."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


@click.command("init")
@db_option
@library_errors
def init_cmd(db_url):
    """Create or upgrade the database and the default book.

    Example:

        ledger init --db sqlite:///ledger.db
    """
    book = open_book(db_url)
    click.echo(f"ledger ready: book {book.name!r} at schema {dbmod.current_revision(book.engine)} "
               f"({book.engine.url.render_as_string(hide_password=True)})")


@click.group("db")
def db_group():
    """Schema migrations (Alembic).

    Example:

        ledger db upgrade && ledger db current
    """


@db_group.command("upgrade")
@db_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@library_errors
def db_upgrade_cmd(db_url, revision):
    """Bring the schema to the latest revision (or --revision).

    Example:

        ledger db upgrade --db postgresql+psycopg2://ledger@localhost/ledger
    """
    engine = dbmod.make_engine(db_url)
    dbmod.upgrade(engine, revision)
    click.echo(f"schema at {dbmod.current_revision(engine)}")


@db_group.command("current")
@db_option
@library_errors
def db_current_cmd(db_url):
    """Print the schema revision of the database and the latest one known.

    Example:

        ledger db current
    """
    engine = dbmod.make_engine(db_url)
    current = dbmod.current_revision(engine)
    head = dbmod.head_revision()
    state = "up to date" if current == head else "needs `ledger db upgrade`"
    click.echo(f"current: {current or 'none'}  head: {head}  ({state})")


@click.group("account")
def account_group():
    """Open and list accounts.

    Example:

        ledger account open liabilities:users:u1:available --no-overdraft
    """


@account_group.command("open")
@click.argument("code")
@click.option("--type", "type_", type=click.Choice(["asset", "liability", "equity", "income",
                                                    "expense", "memo"]),
              help="Account type (default: from the code's first segment).")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--no-overdraft", is_flag=True, help="Refuse postings that take it below zero.")
@click.option("--name", help="Description.")
@db_option
@format_option
@library_errors
def account_open_cmd(code, type_, currency, no_overdraft, name, db_url, fmt):
    """Open an account (again with the same attributes: no change).

    Example:

        ledger account open assets:custody:bank --type asset
    """
    account = open_book(db_url).open_account(code, type_, currency=currency,
                                             no_overdraft=no_overdraft, name=name)
    emit([_account_row(account)], ACCOUNT_COLUMNS, fmt)


ACCOUNT_COLUMNS = ["code", "type", "currency", "no_overdraft", "closed"]


def _account_row(a) -> dict:
    return {"code": a.code, "type": a.type, "currency": a.currency,
            "no_overdraft": "yes" if a.no_overdraft else "no", "closed": "yes" if a.is_closed else ""}


@account_group.command("list")
@click.option("--prefix", help="Only accounts under this code prefix.")
@click.option("--balances/--no-balances", default=True, show_default=True)
@db_option
@format_option
@library_errors
def account_list_cmd(prefix, balances, db_url, fmt):
    """List accounts with their balances.

    Example:

        ledger account list --prefix liabilities:users --format csv
    """
    book = open_book(db_url)
    rows = []
    for a in book.accounts(prefix):
        row = _account_row(a)
        if balances:
            row["balance"] = book.balance(a.code)
            row["available"] = book.balance(a.code, kind="available")
        rows.append(row)
    columns = ACCOUNT_COLUMNS + (["balance", "available"] if balances else [])
    emit(rows, columns, fmt)


@click.command("post")
@click.argument("file", type=click.File("rb"))
@db_option
@format_option
@library_errors
def post_cmd(file, db_url, fmt):
    """Post entries from a JSON Lines FILE ('-' for stdin), all or nothing.

    Each line is one entry: {"key": ..., "postings": [[account, amount], ...]}
    with optional "kind", "effective_date" (YYYY-MM-DD), "external_ref",
    "memo", "metadata" and "pending". Amounts are strings or JSON numbers,
    read exactly (never as floats). Re-running the same file posts nothing
    new. A bad line stops the whole file; every bad line is reported.

    Example:

        echo '{"key":"topup-B001","kind":"top_up","postings":[["assets:custody:bank","100.00"],["liabilities:users:u1:available","-100.00"]]}' | ledger post -
    """
    entries, lines = read_entries(file)
    book = open_book(db_url)
    try:
        written = book.post_many(entries)
    except LedgerError as exc:
        key = exc.fields.get("key")
        where = f"line {lines[key]} (key {key!r}): " if key in lines else ""
        raise BadInput(f"nothing posted; {where}{type(exc).__name__}: {exc}") from exc
    rows = [{"id": e.id, "key": e.key, "kind": e.kind, "effective_date": e.effective_date,
             "status": "replayed" if e.replayed else "posted"} for e in written]
    new = sum(1 for e in written if not e.replayed)
    emit(rows, ["id", "key", "kind", "effective_date", "status"], fmt,
         footer=[f"{new} posted, {len(written) - new} already there"])


_ENTRY_FIELDS = {"key", "postings", "kind", "effective_date", "external_ref", "memo", "metadata",
                 "pending"}


def read_entries(file) -> tuple[list[dict], dict[str, int]]:
    """Parse and check a JSON Lines file of entries; every bad line is reported at once."""
    entries, lines, errors = [], {}, []
    for number, raw in enumerate(file, start=1):
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            item = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        problem = _check_entry(item)
        if problem:
            errors.append(f"line {number}: {problem}")
            continue
        if isinstance(item.get("effective_date"), str):
            item["effective_date"] = dt.date.fromisoformat(item["effective_date"])
        item["postings"] = [tuple(p) for p in item["postings"]]
        entries.append(item)
        lines.setdefault(item["key"], number)
    if errors:
        raise InputError("nothing posted; " + "; ".join(errors), errors=errors)
    if not entries:
        raise InputError("nothing posted; the file holds no entries")
    return entries, lines


def _check_entry(item) -> str | None:
    if not isinstance(item, dict):
        return "an entry must be a JSON object"
    unknown = set(item) - _ENTRY_FIELDS
    if unknown:
        return f"unknown field(s) {', '.join(sorted(unknown))}"
    if not isinstance(item.get("key"), str) or not item["key"].strip():
        return "field 'key' is required and must be a string"
    postings = item.get("postings")
    if not isinstance(postings, list) or len(postings) < 2:
        return "field 'postings' must be a list of at least two [account, amount] pairs"
    for i, p in enumerate(postings):
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                and isinstance(p[1], (str, int, Decimal)) and not isinstance(p[1], bool)):
            return f"field 'postings[{i}]' must be [account, amount] with the amount a string or number"
    if "effective_date" in item:
        try:
            dt.date.fromisoformat(item["effective_date"])
        except (TypeError, ValueError):
            return f"field 'effective_date': {item['effective_date']!r} is not a date (YYYY-MM-DD)"
    if "metadata" in item and not isinstance(item["metadata"], dict):
        return "field 'metadata' must be an object"
    return None


@click.command("balance")
@click.argument("code")
@click.option("--as-of", help="Balance at the end of this effective date (YYYY-MM-DD).")
@db_option
@format_option
@library_errors
def balance_cmd(code, as_of, db_url, fmt):
    """Print an account's posted, pending and available balance.

    Example:

        ledger balance liabilities:users:u1:available --as-of 2026-11-22
    """
    book = open_book(db_url)
    as_of_date = parse_date(as_of, "--as-of")
    account = book.account(code)
    row = {"account": code, "currency": account.currency, "as_of": as_of_date or "now"}
    for kind in ("posted", "pending", "available"):
        row[kind] = book.balance(code, as_of=as_of_date, kind=kind)
    emit([row], ["account", "as_of", "posted", "pending", "available", "currency"], fmt)


@click.command("verify")
@click.option("--from-entry", type=int, help="Start the chain check at this entry.")
@click.option("--no-seal", is_flag=True, help="Do not seal queued entries first (read only).")
@db_option
@format_option
@library_errors
def verify_cmd(from_entry, no_seal, db_url, fmt):
    """Verify the books: hash chain, balances, totals, custody invariant.

    Exit code 0 when everything checks, 4 when anything was altered or does
    not add up (the first problem is named with its entry id).

    Example:

        ledger verify --db sqlite:///ledger.db
    """
    book = open_book(db_url)
    report = book.verify(seal=not no_seal, from_entry=from_entry)
    if fmt == "json":
        click.echo(to_json({
            "book": report.book, "ok": report.ok, "entries": report.entries,
            "chain_head": report.chain_head, "custody": report.custody,
            "problems": [{"check": p.check, "entry_id": p.entry_id, "account": p.account,
                          "message": p.message} for p in report.problems]}))
    else:
        click.echo(f"book {report.book}: {report.entries} entries in the chain, head {report.chain_head}")
        for currency, f in sorted(report.custody.items()):
            click.echo(f"custody {currency}: bank {format_minor(f['custody_minor'], currency)} = "
                       f"held {format_minor(f['held_minor'], currency)} "
                       f"(difference {format_minor(f['difference_minor'], currency)})")
        if report.ok:
            click.echo("OK: nothing altered, everything balances")
        else:
            click.echo(f"FAILED: {len(report.problems)} problem(s); first at "
                       f"{'entry ' + str(report.first.entry_id) if report.first.entry_id else report.first.check}")
            for p in report.problems:
                click.echo(f"  [{p.check}] {p.message}")
    if not report.ok:
        sys.exit(4)


COMMANDS = [init_cmd, db_group, account_group, post_cmd, balance_cmd, verify_cmd]
