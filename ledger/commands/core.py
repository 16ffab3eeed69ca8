"""Core CLI commands: init, db, account, post, balance, verify."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from decimal import Decimal
from typing import NamedTuple

import click
from sqlalchemy.exc import IntegrityError

from .. import db as dbmod
from ..errors import IdempotencyConflictError, LedgerError
from ..book import draft_from_mapping
from ..money import format_minor
from ..postings import Draft, write
from .common import BadInput, db_option, emit, format_option, library_errors, to_json


def open_book(db_url: str | None, upgrade: bool = True, *, create: bool = False):
    """Open the book for a command (the schema is brought up to date first).

    Only ``ledger init`` (``create``) makes a new database: any other command given a
    ``--db`` that holds no ledger (a mistyped path, an empty database) is refused as
    bad input. It would otherwise create an empty book and report on it: no breaks,
    nothing altered, zero balances, all of it about the wrong database.
    """
    import ledger

    if create:
        return ledger.open(db_url, upgrade=upgrade)
    return ledger.open(engine=require_ledger(db_url), upgrade=upgrade)   # the engine it checked with


def require_ledger(db_url: str | None, *, schema: bool = True):
    """Refuse (:class:`BadInput`) a ``--db`` that holds no ledger, creating nothing: a
    SQLite file that does not exist, and (``schema``) a database without the ledger's
    schema. With ``schema``, the engine the schema was checked through."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .common import _shown_url

    resolved = dbmod.resolve_url(db_url)
    shown = _shown_url(db_url)
    hint = f"`ledger init --db {shown}` creates one"
    try:
        url = make_url(resolved)
    except ArgumentError:
        raise BadInput(f"--db {resolved!r} is not a database URL") from None
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if name in ("", ":memory:") or url.query.get("mode") == "memory":
            raise BadInput(f"--db {shown}: a database in memory holds no ledger")
        if not name.startswith("file:") and not Path(name).is_file():
            raise BadInput(f"--db {shown}: no database at {name}; {hint}")
    if not schema:
        return
    engine = dbmod.make_engine(resolved)
    try:
        revision = dbmod.current_revision(engine)
    except BaseException:
        engine.dispose()
        raise
    if revision is None:
        engine.dispose()
        raise BadInput(f"--db {shown}: the database holds no ledger; {hint}")
    return engine


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
    book = open_book(db_url, create=True)
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
    require_ledger(db_url, schema=False)   # a database without the schema yet: that is its job
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
    require_ledger(db_url, schema=False)   # "none" is an answer; a missing file is not
    engine = dbmod.make_engine(db_url)
    current = dbmod.current_revision(engine)
    head = dbmod.head_revision()
    try:
        dbmod.require_known(current)
    except dbmod.UnknownRevisionError:
        state = "newer than this version of the ledger: run that version, or a later one"
    else:
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
    read exactly (never as floats), each at most 10,000,000,000,000.00 CNY
    (10**15 minor units) either way. Re-running the same file posts nothing
    new. A bad line stops the whole file (exit code 2); every bad line is
    reported with its number and its problem (lines that are not entries
    first, before anything is tried against the ledger).

    Example:

        echo '{"key":"topup-B001","kind":"top_up","postings":[["assets:custody:bank","100.00"],["liabilities:users:u1:available","-100.00"]]}' | ledger post -
    """
    numbered, problems = read_entries(file)
    if not numbered and not problems:
        raise BadInput("nothing posted; the file holds no entries")
    if problems:
        # Lines that are not entries are named first, without touching the database (the
        # entry-by-entry check below holds the write lock for as long as it runs).
        note = ("\n(the well-formed lines were not tried against the ledger yet)"
                if numbered else "")
        raise BadInput(nothing_posted(problems) + note)
    book = open_book(db_url)
    try:
        written = book.post_drafts([draft for _, draft in numbered])
    except LedgerError as exc:
        problems = bad_lines(book, numbered)
        if not problems:   # not the file's fault (the books changed meanwhile, or a conflict)
            raise
        raise BadInput(nothing_posted(problems)) from exc
    rows = [{"id": e.id, "key": e.key, "kind": e.kind, "effective_date": e.effective_date,
             "status": "replayed" if e.replayed else "posted"} for e in written]
    new = sum(1 for e in written if not e.replayed)
    emit(rows, ["id", "key", "kind", "effective_date", "status"], fmt,
         footer=[f"{new} posted, {len(written) - new} already there"])


_ENTRY_FIELDS = {"key", "postings", "kind", "effective_date", "external_ref", "memo", "metadata",
                 "pending"}


class BadLine(NamedTuple):
    """One line of a ``ledger post`` file that cannot be posted.

    Attributes:
        line: 1-based line number in the file.
        key: the entry's key, when the line is a well-formed entry.
        problem: what is wrong with it.
    """

    line: int
    key: str | None
    problem: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.key is None else f"line {self.line} (key {self.key!r})"
        return f"{where}: {self.problem}"


def read_entries(file) -> tuple[list[tuple[int, Draft]], list[BadLine]]:
    """Parse and check a JSON Lines file of entries.

    Returns the well-formed entries as ``(line number, Draft)`` and every line that is
    not one as a :class:`BadLine`.
    """
    numbered, problems = [], []
    for number, raw in enumerate(file, start=1):
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            item = json.loads(text, parse_float=Decimal, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            problems.append(BadLine(number, None, f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        problem = _check_entry(item)
        if problem:
            problems.append(BadLine(number, None, problem))
            continue
        day = item.get("effective_date")
        if isinstance(day, str):
            item["effective_date"] = dt.date.fromisoformat(day)
        numbered.append((number, draft_from_mapping(item)))
    return numbered, problems


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
    if item.get("pending") is not None and not isinstance(item["pending"], bool):
        return f"field 'pending': {item['pending']!r} is not true or false"
    return None


def _json_int(text: str):
    """A JSON integer: an int, or a Decimal when too long for one (the amount checks say why)."""
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def bad_lines(book, numbered: list[tuple[int, Draft]]) -> list[BadLine]:
    """Every entry of ``numbered`` the book refuses, with the ledger's reason.

    Each entry is written after the lines before it that the book takes, as a batch posts
    them (so money an earlier line brings in may be spent), each in a savepoint rolled
    back when refused, and the whole transaction is rolled back at the end: nothing is
    written. Transient conflicts run it again.
    """
    def run(conn):
        raise _Tried(_try_each(conn, book.book_id, numbered))   # the raise rolls it all back
    try:
        dbmod.write_transaction(book.engine, run)
    except _Tried as tried:
        return tried.problems
    raise AssertionError("the trial transaction ended without its rollback")


class _Tried(Exception):
    """Carries :func:`bad_lines`' findings out of the transaction it rolls back."""

    def __init__(self, problems: list[BadLine]):
        super().__init__()
        self.problems = problems


def _try_each(conn, book_id: int, numbered: list[tuple[int, Draft]]) -> list[BadLine]:
    problems = []
    taken: dict[str, int] = {}     # key -> the line whose entry was written under it here
    refused: dict[str, int] = {}   # key -> the refused line that used it first, none written
    for number, draft in numbered:
        key = draft.key
        if key in refused:
            problems.append(BadLine(number, key, f"the key of line {refused[key]}, which is refused"))
            continue
        savepoint = conn.begin_nested()
        try:
            write(conn, book_id, [draft])
        except LedgerError as exc:
            savepoint.rollback()
            if isinstance(exc, IdempotencyConflictError) and key in taken:
                problem = (f"IdempotencyConflictError: key {key!r} is the key of line "
                           f"{taken[key]}, with different content")
            else:
                problem = f"{type(exc).__name__}: {exc}"
            problems.append(BadLine(number, key, problem))
        except IntegrityError as exc:
            savepoint.rollback()
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            problems.append(BadLine(number, key, f"IntegrityViolation: the database refused it: {detail}"))
        else:
            savepoint.commit()
            taken.setdefault(key, number)
            continue
        if key not in taken:
            refused.setdefault(key, number)
    return problems


def nothing_posted(problems: list[BadLine]) -> str:
    """The message for a refused file: every bad line, in line order."""
    found = sorted(problems, key=lambda p: p.line)
    if len(found) == 1:
        return f"nothing posted; {found[0]}"
    shown = "\n".join(f"  {p}" for p in found)
    return f"nothing posted; {len(found)} bad lines:\n{shown}"


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
@click.option("--accounts-anchor", metavar="ID:DIGEST",
              help="An accounts anchor an earlier verify printed: those accounts must be unchanged.")
@click.option("--chain-head", metavar="SEQ:HASH",
              help="A chain head an earlier verify printed: that link must still carry that hash.")
@db_option
@format_option
@library_errors
def verify_cmd(from_entry, no_seal, accounts_anchor, chain_head, db_url, fmt):
    """Verify the books: hash chain, balances, totals, custody invariant.

    Exit code 0 when everything checks, 4 when anything was altered or does
    not add up (the first problem is named with its entry id). Write down
    the chain head and the accounts anchor it prints, outside the database:
    a later verify given --chain-head finds entries cut from the end of the
    chain or a chain recomputed after an entry was changed (the hashes use
    no secret), and given --accounts-anchor any account changed since (the
    entries' hashes cover account ids; the anchor covers what each id means).

    Example:

        ledger verify --db sqlite:///ledger.db --chain-head 1234:9b2e... --accounts-anchor 42:3f1c...
    """
    if accounts_anchor is not None and not re.fullmatch(r"\d+:[0-9a-f]{64}", accounts_anchor):
        raise BadInput(f"--accounts-anchor {accounts_anchor!r}: give ID:DIGEST as verify prints it")
    if chain_head is not None and not re.fullmatch(r"\d+:[0-9a-f]{64}", chain_head):
        raise BadInput(f"--chain-head {chain_head!r}: give SEQ:HASH as verify prints it")
    book = open_book(db_url)
    report = book.verify(seal=not no_seal, from_entry=from_entry, accounts_anchor=accounts_anchor,
                         chain_anchor=chain_head)
    if fmt == "json":
        click.echo(to_json({
            "book": report.book, "ok": report.ok, "entries": report.entries,
            "chain_head": report.chain_head, "chain_anchor": report.chain_anchor,
            "accounts_anchor": report.accounts_anchor,
            "custody": report.custody,
            "problems": [{"check": p.check, "entry_id": p.entry_id, "account": p.account,
                          "message": p.message} for p in report.problems]}))
    else:
        click.echo(f"book {report.book}: {report.entries} entries in the chain, head {report.chain_anchor}")
        click.echo(f"accounts anchor {report.accounts_anchor}")
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
