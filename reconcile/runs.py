"""Reconciliation runs: import statements, match them to the ledger, keep the result.

:func:`reconcile` is what ``ledger reconcile`` does every morning:

1. parse every statement file and prove each statement (opening + lines =
   closing); any bad file stops everything before anything is written;
2. import the lines, idempotently: a line already imported from an earlier
   (overlapping) file is recognised by its fingerprint and not added again,
   while a line that repeats inside one file is kept and then reported
   (:mod:`reconcile.importing`);
3. match the unmatched bank lines up to the statement date against the
   unmatched custody-account postings of the window before it, carrying
   yesterday's in-transit postings forward (:mod:`reconcile.matching`);
4. prove the balance: the statement's closing balance against the ledger
   balance of the custody account as of the statement date, and how much of
   the difference the breaks explain;
5. store the run, its matches (exclusive: the database refuses a bank line or
   a posting in two matches) and its breaks.

With ``dry_run`` all of it happens inside a transaction that is rolled back.

On a SQLite database file (WAL) the run uses a second core: a writer thread
inserts the bank lines on the run's connection (thousands of rows to a
statement, which SQLite runs with Python's lock released), and a reader
thread reads the ledger side (open postings, the account's balance) through
a connection of its own, while the run's thread fingerprints the lines and
matches. Readers see the last commit, which is what the run's transaction
started from: its write lock keeps every other writer out until it ends
(:mod:`reconcile.parallel`).

:func:`resolve` records how finance staff resolved a break, with who, when
and why; an adjustment posts a new entry into platform-owned accounts only.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from itertools import islice
from operator import attrgetter, itemgetter
from pathlib import Path
from sys import intern
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
from sqlalchemy import and_, exists, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ledger import models as m
from ledger.accounts import get_account, utcnow
from ledger.balances import balance_minor
from ledger.errors import InputError, LedgerError, UnknownAccountError
from ledger.money import format_minor
from ledger.postings import Draft, write

from . import matching
from .importing import Added, ImportResult, ReconcileError, import_lines, import_parsed
from .matching import BankItem, ItemColumns, LedgerItem, MatchConfig, item_columns
from .parallel import Writer, can_overlap
from .statements.model import StatementLine, line_fields
from .statements.source import gc_paused
from .store import (date_reader, insert_columns, insert_rows, reserve_ids, roomy_cache,
                    select_rows)

CUSTODY = "assets:custody:bank"
LOOKBACK_DAYS = 10
PLATFORM_PREFIXES = ("income:platform:", "expenses:", "liabilities:platform:", "equity:",
                     "assets:platform:", "assets:suspense")


class BreakResolutionError(LedgerError):
    """A resolution that does not fit the break as the book holds it (no such break, one
    resolved already, amounts that differ): the CLI exits 1."""


class BadResolutionError(BreakResolutionError, InputError):
    """A resolution that no break could take (no note, an action without what it needs or
    with what it does not take, a user's wallet to adjust into): bad input, exit 2."""


@dataclass(frozen=True)
class RunResult:
    """A finished (or dry) run.

    Attributes:
        run_id: database id (None for a dry run).
        statement_date: the business day reconciled.
        account: the ledger account reconciled.
        result: the matching result (ids are bank_line / posting ids).
        balance: the balance proof (minor units).
        imported: what the import brought.
        bank: the bank lines the breaks name, by id (dicts with the bank's raw text).
        ledger: the postings the breaks name, by id (dicts).
        break_ids: database ids of the stored breaks, in result order.
        dry_run: nothing was kept.
        kept: open items of earlier runs this run could not take (dated after its day),
            kept for the next run: ``{"bank_line_ids": [...], "posting_ids": [...]}``;
            the earlier breaks that name them stay open.
    """

    run_id: int | None
    statement_date: dt.date
    account: str
    result: matching.MatchResult
    balance: dict
    imported: ImportResult
    bank: dict = field(repr=False)
    ledger: dict = field(repr=False)
    break_ids: tuple = ()
    dry_run: bool = False
    kept: dict = field(default_factory=dict)

    @property
    def balance_proved(self) -> bool:
        """The statements gave a closing balance to prove the ledger's against."""
        return self.balance.get("bank_closing_minor") is not None

    @property
    def reconciled(self) -> bool:
        """No break, a proved balance, and no unexplained difference."""
        return (not self.result.breaks and self.balance_proved
                and self.balance.get("unexplained_minor") == 0)


# --- parsing --------------------------------------------------------------------
def parse_files(paths: Sequence[str | Path], *, mapping: Any = None) -> list:
    """Parse and prove every file; raises on the first bad file, writing nothing."""
    from .statements import parse_statement

    parsed = []
    for path in paths:
        parsed.append((Path(path), parse_statement(Path(path), mapping=mapping)))
    return parsed


# --- the run --------------------------------------------------------------------
def _bank_line_items():
    """Bank lines not matched yet, with the fields :class:`BankItem` reads."""
    return select(
        m.BankLine.id, m.BankLine.booking_date, m.BankLine.amount_minor, m.BankLine.currency,
        m.BankLine.bank_ref, m.BankLine.end_to_end_ref, m.BankLine.value_date, m.BankLine.batch_id,
        func.coalesce(m.BankLine.description, "")).where(
            ~exists().where(m.ReconMatchBank.bank_line_id == m.BankLine.id))


def _open_bank_lines(conn: Connection, book_id: int, bank_account: str, through: dt.date,
                     since: dt.date, added: Added = Added((), ())) -> Sequence[BankItem]:
    """The lines of ``bank_account``'s statements in the window not matched yet, as
    matching items (another bank account's lines are never this run's; the lines
    ``added`` are all of ``bank_account``, as :func:`_check_statements` made sure).

    ``added``: the lines this transaction just imported, with their ids. They are
    open by definition and are taken from memory, not read back; when their ids
    are one unbroken range (always on SQLite) the query leaves that range out.
    """
    ids, lines = added
    fresh = _line_items(ids, lines, since, through)
    query = _bank_line_items().where(
        m.BankLine.book_id == book_id, m.BankLine.booking_date <= through,
        m.BankLine.booking_date >= since, m.BankLine.account == bank_account)
    skip: set = set()
    if ids:
        lo, hi = ids[0], ids[-1]
        if hi - lo + 1 == len(ids) and ids == list(range(lo, hi + 1)):
            query = query.where(~m.BankLine.id.between(lo, hi))
        else:
            skip = set(ids)
    older = [item for item in _bank_items(conn, query) if item[0] not in skip]
    return [*fresh, *older] if older else fresh


_BOOKED_ON = line_fields("booking_date")
#: A statement line's fields in :class:`BankItem`'s order (after its id).
_LINE_FIELDS = [StatementLine._fields.index(name) for name in BankItem._fields[1:]]
_DESCRIPTION = line_fields("description")


def _line_items(ids: Sequence[int], lines: Sequence, since: dt.date,
                through: dt.date) -> Sequence[BankItem]:
    """The ``lines`` (with their ``ids``) booked from ``since`` through ``through``,
    as matching items; a line without a description gets an empty one."""
    days = set(map(_BOOKED_ON, lines))
    if days and since <= min(days) and max(days) <= through \
            and None not in map(_DESCRIPTION, lines):
        # Every line (a day's million): the items are read from the lines as matching needs them.
        return item_columns(BankItem, ids, lines, _LINE_FIELDS)
    return [BankItem(i, line.booking_date, line.amount_minor, line.currency, line.bank_ref,
                     line.end_to_end_ref, line.value_date, line.batch_id, line.description or "")
            for i, line in zip(ids, lines) if since <= line.booking_date <= through]


def _bank_items(conn: Connection, query) -> Iterator[BankItem]:
    """The rows of a :func:`_bank_line_items` query as matching items."""
    day_of = date_reader(conn)
    return (BankItem(i, day_of(booked), amount, cur, ref, e2e, day_of(value), batch, text)
            for i, booked, amount, cur, ref, e2e, value, batch, text in select_rows(conn, query))



class _Carried(NamedTuple):
    """What earlier runs left open, as :func:`_still_open` reads it for a run."""

    bank: list          #: BankItems of the run's bank account dated up to the run's date
    postings: list      #: LedgerItems of the run's ledger account dated up to its date
    elsewhere: dict     #: ids of the rest still unmatched: ``bank_line_ids``, ``posting_ids``
    repeats_of: dict    #: line reported as a duplicate -> (id, amount) of the line it repeats


def _still_open(conn: Connection, book_id: int, last: _LastRun | None, bank_account: str,
                account_id: int, through: dt.date) -> _Carried:
    """The items the account's last run left open that are still unmatched, whatever their
    age: those its breaks named, and those it carried without reporting them.

    A run reads the items of its window; an item its lookback no longer reaches would
    otherwise leave the open breaks without a word while still unmatched. What this run
    cannot take (a line of another bank account, an item dated after its date) is kept in
    ``elsewhere`` for its summary, so the next run takes it up again: the chain never breaks.
    """
    if last is None:
        return _Carried([], [], {}, {})
    kept = last.summary.get("open_elsewhere", {})
    bank_ids, posting_ids = set(kept.get("bank_line_ids", ())), set(kept.get("posting_ids", ()))
    duplicates = {}
    for kind, banks, postings, detail in conn.execute(
            select(m.ReconBreak.type, m.ReconBreak.bank_line_ids, m.ReconBreak.posting_ids,
                   m.ReconBreak.detail_json).where(m.ReconBreak.run_id == last.id)):
        banks = json.loads(banks)
        bank_ids.update(banks)
        posting_ids.update(json.loads(postings))
        if kind == matching.DUPLICATE and len(banks) == 1:
            earlier = json.loads(detail).get("duplicate_of")
            if type(earlier) is int:
                duplicates[banks[0]] = earlier
    # A repeat stays one when the line it repeats has been matched since (it is not
    # among the run's items then): matching is told which line and amount it repeats.
    amounts = {}
    for chunk in _chunks(sorted(set(duplicates.values())), SIDE_CHUNK):
        amounts.update(conn.execute(select(m.BankLine.id, m.BankLine.amount_minor)
                                    .where(m.BankLine.id.in_(chunk))).all())
    repeats_of = {line: (earlier, amounts[earlier]) for line, earlier in duplicates.items()
                  if earlier in amounts}
    bank, postings_, later_bank, later_postings = [], [], [], []
    mine = and_(m.BankLine.account == bank_account, m.BankLine.booking_date <= through)
    for chunk in _chunks(sorted(bank_ids), SIDE_CHUNK):
        lines = _bank_line_items().where(m.BankLine.book_id == book_id, m.BankLine.id.in_(chunk))
        bank.extend(_bank_items(conn, lines.where(mine)))
        later_bank += conn.execute(lines.with_only_columns(m.BankLine.id).where(~mine)).scalars()
    for chunk in _chunks(sorted(posting_ids), SIDE_CHUNK):
        items = _posting_items().where(m.Posting.account_id == account_id, m.Posting.id.in_(chunk))
        postings_ += _ledger_items(conn, items.where(m.Posting.effective_date <= through))
        later_postings += conn.execute(items.with_only_columns(m.Posting.id).where(
            m.Posting.effective_date > through)).scalars()
    elsewhere = {name: sorted(ids) for name, ids in (("bank_line_ids", later_bank),
                                                     ("posting_ids", later_postings)) if ids}
    return _Carried(bank, postings_, elsewhere, repeats_of)


def _join_items(items: Sequence, more: list) -> Sequence:
    """``items`` and those of ``more`` whose ids it does not hold yet."""
    if not more:
        return items
    have = set(items.columns[0] if type(items) is ItemColumns else map(itemgetter(0), items))
    return [*items, *(item for item in more if item[0] not in have)]


def _carried(items: Sequence, ids: set) -> list:
    """The items of ``items`` whose ids are among ``ids``."""
    if not ids:
        return []
    if type(items) is ItemColumns:
        return [items[k] for k, i in enumerate(items.columns[0]) if i in ids]
    return [item for item in items if item.id in ids]


def _posting_items():
    """Posted postings not matched yet, with their entries' fields, as :class:`LedgerItem` reads them."""
    return select(
        m.Posting.id, m.Posting.entry_id, m.Posting.effective_date, m.Posting.amount_minor,
        m.Posting.currency, m.JournalEntry.external_ref, m.JournalEntry.metadata_json,
        m.JournalEntry.kind).join(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id).where(
            m.Posting.is_pending.is_(False),
            ~exists().where(m.ReconMatchPosting.posting_id == m.Posting.id))


def _ledger_items(conn: Connection, query) -> list[LedgerItem]:
    day_of = date_reader(conn)
    return [LedgerItem(i, entry, day_of(day), amount, intern(cur), ref,
                       _batch_id(meta) if meta else None, intern(kind))
            for i, entry, day, amount, cur, ref, meta, kind in select_rows(conn, query)]


def _open_postings(conn: Connection, account_id: int, through: dt.date,
                   since: dt.date) -> Sequence[LedgerItem]:
    """The custody account's posted postings of the window not matched yet, as matching items."""
    query = _posting_items().where(
        m.Posting.account_id == account_id,
        m.Posting.effective_date <= through, m.Posting.effective_date >= since)
    day_of = date_reader(conn)
    columns = _json_columns(conn, query) if conn.dialect.name == "sqlite" else None
    if columns is not None:
        ids, entries, days, amounts, currencies, refs, metas, kinds = columns
        batches = list(map(_batch_id, metas)) if any(metas) else [None] * len(ids)
        return ItemColumns(LedgerItem, [ids, entries, list(map(day_of, days)), amounts,
                                        list(map(intern, currencies)), refs, batches,
                                        list(map(intern, kinds))])
    return _ledger_items(conn, query)


def _json_columns(conn: Connection, query) -> list[list] | None:
    """The rows of ``query`` as columns, each aggregated by SQLite into one JSON array.

    The whole query then runs in one step inside SQLite, with Python's lock
    released (a row-by-row fetch takes the lock back for every row), and each
    column is decoded by one call of the C JSON decoder. Every aggregate of
    the one SELECT visits the rows in the same order, so the columns line up.
    None when this SQLite has no JSON functions or a column does not decode
    to as many values as there are rows: the caller then reads rows.
    """
    sub = query.subquery()
    aggregate = select(func.count(), *(func.json_group_array(c) for c in sub.c))
    try:
        count, *texts = conn.execute(aggregate).one()
    except OperationalError as exc:
        if "no such function" in str(exc.orig):   # a SQLite built without JSON functions
            return None
        raise
    columns = []
    while texts:
        try:
            column = json.loads(texts.pop(0))   # each text dropped once decoded
        except ValueError:
            return None
        if len(column) != count:
            return None
        columns.append(column)
    return columns


def _batch_id(metadata_json: str | None) -> str | None:
    if not metadata_json:
        return None
    value = json.loads(metadata_json).get("batch_id")
    return str(value) if value is not None else None


def _break_sides(conn: Connection, breaks: Sequence[matching.Break]) -> tuple[dict, dict]:
    """The bank lines (with the bank's raw text) and postings the breaks name, as dicts by id."""
    bank_ids = sorted({i for b in breaks for i in b.bank_ids})
    posting_ids = sorted({i for b in breaks for i in b.ledger_ids})
    day_of = date_reader(conn)
    lines = m.BankLine.__table__
    bank = _rows_by_id(conn, select(lines), bank_ids, lines.c.id, (
        lines.c.booking_date.name, lines.c.value_date.name), day_of)
    postings = select(m.Posting.id, m.Posting.entry_id, m.Posting.effective_date,
                      m.Posting.amount_minor, m.Posting.currency, m.JournalEntry.external_ref,
                      m.JournalEntry.kind, m.JournalEntry.metadata_json,
                      m.JournalEntry.idempotency_key).join(
        m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id)
    ledger = _rows_by_id(conn, postings, posting_ids, m.Posting.id, ("effective_date",), day_of)
    return bank, ledger


def _rows_by_id(conn: Connection, query, ids: Sequence[int], id_column, dates: Sequence[str],
                day_of: Callable) -> dict:
    """``{id: {column: value}}`` of the rows of ``query`` with those ids (its date columns
    ``dates`` as dates), read a chunk of ids at a time."""
    names = [column.name for column in query.selected_columns]
    at = [names.index(name) for name in dates]
    found = {}
    for chunk in _chunks(ids, SIDE_CHUNK):
        for row in select_rows(conn, query.where(id_column.in_(chunk))):
            row = list(row)
            for k in at:
                row[k] = day_of(row[k])
            found[row[0]] = dict(zip(names, row))
    return found


class _LastRun(NamedTuple):
    """The account's last run: its id and its summary (what it left in transit, the bank
    account it reconciled, the open items it kept for the next run)."""

    id: int
    summary: dict


def _last_run(conn: Connection, book_id: int, account: str) -> _LastRun | None:
    row = conn.execute(select(m.ReconRun.id, m.ReconRun.summary_json).where(
        m.ReconRun.book_id == book_id, m.ReconRun.account_code == account)
        .order_by(m.ReconRun.id.desc()).limit(1)).first()
    return None if row is None else _LastRun(row.id, json.loads(row.summary_json))


def reconcile(book, paths: Sequence[str | Path], *, account: str = CUSTODY,
              statement_date: dt.date | None = None, dry_run: bool = False,
              config: MatchConfig = matching.DEFAULT_CONFIG, mapping: Any = None,
              lookback_days: int = LOOKBACK_DAYS,
              progress: Callable[[int], None] | None = None) -> RunResult:
    """Import ``paths``, match, prove the balance, store the run (see the module docstring).

    ``progress`` is called with the number of lines each step imported; on a SQLite
    file it is called from the writer thread, possibly while the run matches.
    """
    if not paths:
        raise ReconcileError("give at least one statement file")
    return reconcile_parsed(book, parse_files(paths, mapping=mapping), account=account,
                            statement_date=statement_date, dry_run=dry_run, config=config,
                            lookback_days=lookback_days, progress=progress)


def reconcile_parsed(book, parsed: Sequence, *, account: str = CUSTODY,
                     statement_date: dt.date | None = None, dry_run: bool = False,
                     config: MatchConfig = matching.DEFAULT_CONFIG,
                     lookback_days: int = LOOKBACK_DAYS,
                     progress: Callable[[int], None] | None = None) -> RunResult:
    """:func:`reconcile` on already parsed files: ``[(path, ParsedFile)]``."""
    statements = [s for _, pf in parsed for s in pf.statements]
    if not statements:
        raise ReconcileError("the statement files hold no statement")
    day = statement_date or max(_statement_day(s) for s in statements)
    bank_accounts = sorted({s.account for s in statements})
    if len(bank_accounts) > 1:
        raise ReconcileError(
            f"the statements are of {len(bank_accounts)} bank accounts ({', '.join(bank_accounts)}): "
            "a run reconciles one bank account with one ledger account; reconcile each bank "
            "account's statements in a run of its own, against the ledger account that holds it")
    bank_account = bank_accounts[0]
    for s in statements:
        try:
            last = max(map(attrgetter("booking_date"), s.lines), default=None)
            late = last is not None and last > day
        except TypeError:   # a time among the days: the import refuses it, naming the line
            late = False
        if late:
            raise ReconcileError(
                f"{s.filename}: lines booked on {last}, after the run's date {day}: a run "
                "reconciles what the bank booked up to its date (give the statement's own date, "
                "or no date)", file=s.filename)

    class _DryRun(Exception):
        pass

    outcome: dict = {}

    def run(conn):
        with roomy_cache(conn), gc_paused():
            work(conn)

    def work(conn):
        try:
            acct = get_account(conn, book.book_id, account)
        except UnknownAccountError:
            raise ReconcileError(
                f"no account {account!r} in this book: a statement is reconciled against the "
                "ledger account that holds the custody bank's money (open it, or name the "
                "right one)", account=account) from None
        _check_statements(parsed, acct, account)
        last = _last_run(conn, book.book_id, account)
        _check_bank_account(last, account, bank_account)
        since = _window_start(statements, day, lookback_days)
        with ExitStack() as threads:
            writer = ledger_side = None
            if can_overlap(conn):
                # Both threads are joined on the way out, whatever happens: the
                # transaction must not end while one of its inserts is running.
                writer = Writer()
                threads.callback(writer.abandon)
                # The ledger side is read on the other core meanwhile.
                reader = threads.enter_context(
                    ThreadPoolExecutor(1, thread_name_prefix="reconcile-reader"))
                ledger_side = reader.submit(_ledger_side, book, acct, day, since)
            imported, added = import_lines(conn, book.book_id, parsed, progress, writer)
            # While the writer inserts the lines, the open items are read through a second
            # connection: it sees the last commit, which is what this transaction started
            # from (its write lock keeps every other writer out until it ends).
            with book.reading() if writer is not None else nullcontext(conn) as source:
                bank_items = _open_bank_lines(source, book.book_id, bank_account, day, since, added)
                del added
                # Postings the last run left in transit, and what it left open: that stays
                # in the run however old it grows (read by id, it joins the window's items
                # it is not already among).
                carried_ids = set(last.summary.get("in_transit_posting_ids", ())) if last else set()
                carried_over = _still_open(source, book.book_id, last, bank_account, acct.id, day)
            if ledger_side is not None:
                ledger_items, ledger_minor = ledger_side.result()
                writer.check()
            else:
                ledger_items, ledger_minor = _read_ledger_side(conn, acct, day, since)
            bank_items = _join_items(bank_items, carried_over.bank)
            ledger_items = _join_items(ledger_items, carried_over.postings)
            carried = _carried(ledger_items, carried_ids)
            result = matching.match(bank_items, ledger_items, statement_date=day, config=config,
                                    carried=carried, repeats_of=carried_over.repeats_of)
            del bank_items, ledger_items, carried
            if writer is not None:
                writer.finish()
        proof = _balance_proof(acct, ledger_minor, statements, result)
        summary = _summary(result, proof, imported, bank_account, carried_over.elsewhere)
        run_id = conn.execute(insert(m.ReconRun).values(
            book_id=book.book_id, account_code=account, statement_date=day, started_at=utcnow(),
            summary_json=json.dumps(summary, default=str)).returning(m.ReconRun.id)).scalar_one()
        _store_matches(conn, run_id, result.matches)
        break_ids = _store_breaks(conn, run_id, result.breaks)
        bank, ledger = _break_sides(conn, result.breaks)
        outcome["result"] = RunResult(None if dry_run else run_id, day, account, result, proof,
                                      imported, bank, ledger, () if dry_run else tuple(break_ids),
                                      dry_run, carried_over.elsewhere)
        if dry_run:
            raise _DryRun

    try:
        book._write(run)
    except _DryRun:
        pass
    return outcome["result"]


def _check_bank_account(last: _LastRun | None, account: str, bank_account: str) -> None:
    """A ledger account is reconciled against one bank account: the one its last run named
    (its balance is proved against that account's closing balance)."""
    known = last.summary.get("bank_account") if last is not None else None
    if known is not None and known != bank_account:
        raise ReconcileError(
            f"{account} is reconciled against bank account {known} (run {last.id}); these "
            f"statements are of bank account {bank_account}: reconcile them against the ledger "
            "account that holds that bank account's money (--account)", account=account)


def _check_statements(parsed: Sequence, acct, account: str) -> None:
    """Every line is of its statement's bank account (a run reads back the open lines
    of that account only), and in the ledger account's currency (amounts of two
    currencies never add up in a balance proof)."""
    for path, pf in parsed:
        name = Path(path).name
        for statement in pf.statements:
            found = set(map(attrgetter("account"), statement.lines)) - {statement.account}
            if found:
                raise ReconcileError(
                    f"{name}: lines of bank account {', '.join(sorted(map(str, found)))} in the "
                    f"statement of bank account {statement.account}", file=name)
            found = {statement.currency, *map(attrgetter("currency"), statement.lines)}
            if found != {acct.currency}:
                other = ", ".join(sorted(str(c) for c in found - {acct.currency}))
                raise ReconcileError(
                    f"{name}: the statement of bank account {statement.account} is in {other}, "
                    f"but {account} holds {acct.currency}: reconcile it against a ledger account "
                    f"in {other}", file=name, account=account)


def _window_start(statements, day: dt.date, lookback_days: int) -> dt.date:
    """The first day of the run's window: ``lookback_days`` before the statement date, or
    before the statements' earliest line when they reach further back (a month's
    statement): every line they bring is matched and, unmatched, reported."""
    try:
        earliest = min((ln.booking_date for s in statements for ln in s.lines), default=day)
        start = min(day, earliest)
    except TypeError:   # a time among the days: the import refuses it, naming the line
        start = day
    return start - dt.timedelta(days=lookback_days)


def _statement_day(statement) -> dt.date:
    for attr in ("statement_date", "period_end", "to_date"):
        value = getattr(statement, attr, None)
        if value:
            return value
    return max(line.booking_date for line in statement.lines)


def _ledger_side(book, account, day: dt.date, since: dt.date) -> tuple[list[LedgerItem], int]:
    """:func:`_read_ledger_side` through a connection of its own (see :func:`reconcile_parsed`)."""
    with book.reading() as conn:
        return _read_ledger_side(conn, account, day, since)


def _read_ledger_side(conn: Connection, account, day: dt.date,
                      since: dt.date) -> tuple[list[LedgerItem], int]:
    """The account's open postings of the window and its posted balance as of ``day``."""
    return _open_postings(conn, account.id, day, since), balance_minor(conn, account, "posted", day)


def _balance_proof(account, balance: int, statements, result: matching.MatchResult) -> dict:
    """The statement's closing balance against the ledger's (``balance``: the account's
    posted balance as of the statement date, on its normal side), and what the breaks explain."""
    ledger_minor = account.sign * balance
    # Several statements of one account: the latest one's closing balance, whatever the
    # order the files were given in (the given order breaks a tie).
    dated = [(s.closing.date or _statement_day(s), k, s.closing_balance_minor)
             for k, s in enumerate(statements) if s.closing_balance_minor is not None]
    closing = [minor for _, _, minor in sorted(dated)]
    proof: dict = {"ledger_balance_minor": ledger_minor, "currency": account.currency}
    bank_only = sum(b.bank_amount_minor for b in result.breaks
                    if b.type in (matching.IN_BANK_NOT_IN_LEDGER, matching.DUPLICATE,
                                  matching.AMOUNT_MISMATCH, matching.AMBIGUOUS,
                                  matching.DATE_OUTSIDE_WINDOW))
    ledger_only = sum(b.ledger_amount_minor for b in result.breaks
                      if b.type in (matching.IN_LEDGER_NOT_IN_BANK, matching.IN_TRANSIT,
                                    matching.AMOUNT_MISMATCH, matching.AMBIGUOUS,
                                    matching.DATE_OUTSIDE_WINDOW))
    proof["explained_minor"] = bank_only - ledger_only
    if closing:
        bank_minor = closing[-1]
        proof["bank_closing_minor"] = bank_minor
        proof["difference_minor"] = bank_minor - ledger_minor
        proof["unexplained_minor"] = proof["difference_minor"] - proof["explained_minor"]
    else:
        proof["bank_closing_minor"] = None
        proof["note"] = "the statement gives no closing balance; balance not proved"
    return proof


def _summary(result: matching.MatchResult, proof: dict, imported: ImportResult,
             bank_account: str, open_elsewhere: dict) -> dict:
    s = result.summary
    return {
        "open_elsewhere": open_elsewhere,   # open items the run could not take: the next one does
        "bank_account": bank_account, "bank_lines": s.bank_lines, "ledger_items": s.ledger_items,
        "matched_bank_lines": s.matched_bank_lines, "matched_ledger_items": s.matched_ledger_items,
        "matches_by_rule": {r.rule: r.count for r in s.matches},
        "breaks_by_type": {b.type: b.count for b in s.breaks},
        "balance": proof, "files": [list(f) for f in imported.files],
        "in_transit_posting_ids": list(result.in_transit_ids),
    }


STORE_CHUNK = 20_000
SIDE_CHUNK = 500


def _chunks(items: Iterable, size: int = STORE_CHUNK):
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


def _store_matches(conn: Connection, run_id: int, matches: Iterable[matching.Match]) -> None:
    """Matches a chunk at a time: ids reserved for the match rows, then the match rows,
    their bank-line rows and their posting rows, each in one bulk insert.

    Blocks of one-to-one matches (nearly all of a day's) come as two id columns
    (:meth:`matching.Matches.id_blocks`) and are stored column-wise."""
    blocks = (matches.id_blocks() if isinstance(matches, matching.Matches)
              else [(None, matches, None)])
    for rule, banks, ledgers in blocks:
        if rule is None:
            for batch in _chunks(banks):
                ids = reserve_ids(conn, m.ReconMatch.__table__, len(batch))
                insert_rows(conn, m.ReconMatch.__table__, ("id", "run_id", "rule"),
                            [(i, run_id, mt.rule) for i, mt in zip(ids, batch)])
                # In key order: the primary-key B-trees then grow at their ends.
                insert_rows(conn, m.ReconMatchBank.__table__, ("bank_line_id", "match_id"),
                            sorted((b, i) for i, mt in zip(ids, batch) for b in mt.bank_ids))
                insert_rows(conn, m.ReconMatchPosting.__table__, ("posting_id", "match_id"),
                            sorted((p, i) for i, mt in zip(ids, batch) for p in mt.ledger_ids))
            continue
        for start in range(0, len(banks), STORE_CHUNK):
            bank_ids, posting_ids = banks[start:start + STORE_CHUNK], ledgers[start:start + STORE_CHUNK]
            ids = reserve_ids(conn, m.ReconMatch.__table__, len(bank_ids))
            insert_columns(conn, m.ReconMatch.__table__, ("id",), [ids],
                           constants={"run_id": run_id, "rule": rule})
            match_ids = np.array(ids, dtype=np.int64)
            for table, column, side in ((m.ReconMatchBank.__table__, "bank_line_id", bank_ids),
                                        (m.ReconMatchPosting.__table__, "posting_id", posting_ids)):
                order = np.argsort(side, kind="stable")   # key order, as above
                insert_columns(conn, table, (column, "match_id"),
                               [side[order].tolist(), match_ids[order].tolist()])


def _store_breaks(conn: Connection, run_id: int, breaks: Iterable[matching.Break]) -> list[int]:
    """Breaks in bulk (as :func:`_store_matches`); their ids in input order."""
    ids: list[int] = []
    for batch in _chunks(breaks):
        rows = []
        for b in batch:
            detail = {"detail": b.detail, "currency": b.currency,
                      "bank_amount_minor": b.bank_amount_minor,
                      "ledger_amount_minor": b.ledger_amount_minor, "duplicate_of": b.duplicate_of,
                      "suggestion": b.suggestion._asdict() if b.suggestion else None}
            rows.append((b.type, json.dumps(list(b.bank_ids)), json.dumps(list(b.ledger_ids)),
                         b.bank_amount_minor - b.ledger_amount_minor,
                         json.dumps(detail, default=str)))
        batch_ids = reserve_ids(conn, m.ReconBreak.__table__, len(rows))
        insert_rows(conn, m.ReconBreak.__table__,
                    ("id", "type", "bank_line_ids", "posting_ids", "amount_minor", "detail_json"),
                    [(i, *row) for i, row in zip(batch_ids, rows)], constants={"run_id": run_id})
        ids.extend(batch_ids)
    return ids


# --- breaks ---------------------------------------------------------------------
@dataclass(frozen=True)
class BreakView:
    """A stored break and what became of it.

    Attributes:
        id, run_id, type, bank_line_ids, posting_ids, amount_minor, detail: as found.
        statement_date: the run's day.
        state: open, resolved, or cleared (its items were matched later).
        resolution: the resolution (dict) when resolved.
        bank_lines: the bank lines concerned, with raw text.
        postings: the postings concerned, with their entries' kind and reference (read
            for one break asked for by id; empty in a list).
    """

    id: int
    run_id: int
    statement_date: dt.date
    type: str
    bank_line_ids: tuple
    posting_ids: tuple
    amount_minor: int
    detail: dict
    state: str
    resolution: dict | None
    bank_lines: tuple
    postings: tuple = ()


def list_breaks(book, *, state: str | None = "open", break_id: int | None = None) -> list[BreakView]:
    """Breaks of the book (the open ones by default; ``state=None`` for all)."""
    with book.reading() as conn:
        query = _breaks_query(book.book_id).order_by(m.ReconBreak.id)
        if break_id is not None:
            query = query.where(m.ReconBreak.id == break_id)
        latest = _latest_runs(conn, book.book_id)
        # One break (``breaks show``) comes with its postings' details; a list does without.
        views = [_break_view(conn, row, latest, postings=break_id is not None)
                 for row in conn.execute(query)]
    return [v for v in views if state is None or v.state == state]


def _breaks_query(book_id: int):
    return (select(m.ReconBreak.__table__, m.ReconRun.statement_date, m.ReconRun.account_code,
                   m.ReconRun.book_id)
            .join(m.ReconRun, m.ReconRun.id == m.ReconBreak.run_id)
            .where(m.ReconRun.book_id == book_id))


class _Latest(NamedTuple):
    """The last run of a ledger account, and the open items it kept for the next run."""

    run_id: int
    kept_bank: frozenset
    kept_postings: frozenset


def _latest_runs(conn: Connection, book_id: int) -> dict[str, _Latest]:
    """The last run of each ledger account reconciled: its breaks are the open ones (an
    earlier run's unresolved breaks are superseded, their items reported again), with
    the items it could not take and kept for the next run (a late statement for an
    earlier day keeps what is dated after it: their breaks stay open meanwhile)."""
    last = (select(m.ReconRun.account_code, func.max(m.ReconRun.id).label("run_id"))
            .where(m.ReconRun.book_id == book_id).group_by(m.ReconRun.account_code).subquery())
    latest = {}
    for code, run_id, summary in conn.execute(
            select(last.c.account_code, last.c.run_id, m.ReconRun.summary_json)
            .join(m.ReconRun, m.ReconRun.id == last.c.run_id)):
        kept = json.loads(summary or "{}").get("open_elsewhere", {})
        latest[code] = _Latest(run_id, frozenset(kept.get("bank_line_ids", ())),
                               frozenset(kept.get("posting_ids", ())))
    return latest


def _break_view(conn: Connection, row, latest: dict[str, _Latest], *,
                postings: bool = False) -> BreakView:
    bank_ids = tuple(json.loads(row.bank_line_ids))
    posting_ids = tuple(json.loads(row.posting_ids))
    resolution = conn.execute(select(m.ReconResolution.__table__)
                              .where(m.ReconResolution.break_id == row.id)).first()
    matched_bank = set(conn.execute(select(m.ReconMatchBank.bank_line_id).where(
        m.ReconMatchBank.bank_line_id.in_(bank_ids))).scalars()) if bank_ids else set()
    matched_post = set(conn.execute(select(m.ReconMatchPosting.posting_id).where(
        m.ReconMatchPosting.posting_id.in_(posting_ids))).scalars()) if posting_ids else set()
    if resolution is not None:
        state = "resolved"
    elif set(bank_ids) <= matched_bank and set(posting_ids) <= matched_post:
        state = "cleared"
    else:
        last = latest.get(row.account_code)
        state = "open" if last is None or row.run_id == last.run_id else "superseded"
    lines = tuple(r._asdict() for r in conn.execute(
        select(m.BankLine.id, m.BankLine.booking_date, m.BankLine.amount_minor, m.BankLine.currency,
               m.BankLine.bank_ref, m.BankLine.description, m.BankLine.raw)
        .where(m.BankLine.id.in_(bank_ids)))) if bank_ids else ()
    details = tuple(r._asdict() for r in conn.execute(
        select(m.Posting.id, m.Posting.entry_id, m.Posting.effective_date, m.Posting.amount_minor,
               m.Posting.currency, m.JournalEntry.kind, m.JournalEntry.external_ref)
        .join(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id)
        .where(m.Posting.id.in_(posting_ids)).order_by(m.Posting.id))) \
        if posting_ids and postings else ()
    view = BreakView(row.id, row.run_id, row.statement_date, row.type, bank_ids, posting_ids,
                     row.amount_minor, json.loads(row.detail_json), state,
                     resolution._asdict() if resolution else None, lines, details)
    if state == "superseded" and (bank_ids or posting_ids) \
            and set(bank_ids) <= last.kept_bank and set(posting_ids) <= last.kept_postings \
            and _reported_again(conn, row.book_id, view, row.account_code) is None:
        # The last run kept its items for the next one without naming them: still open.
        view = replace(view, state="open")
    return view


def resolve(book, break_id: int, *, action: str, note: str, by: str,
            account: str | None = None, match_with: int | None = None,
            pair: tuple[int, int] | None = None, key: str | None = None) -> BreakView:
    """Resolve an open break; stored with who, when and why.

    * ``adjust``: post the break's amount between the custody account and
      ``account`` (a platform-owned account: fees, expenses, suspense, never
      a user's wallet), then match the break's items with the adjustment;
    * ``accept-timing``: a timing difference; the items stay open and clear
      by themselves when the other side arrives;
    * ``match-with``: match the break's bank line with posting ``match_with``
      (or its posting with bank line ``match_with``; for a break with both
      sides, ``match_with`` picks which of its items pairs with the other
      side's single item); amounts must agree. A break with several items on
      both sides (an ``ambiguous`` one) is resolved by ``pair``, the
      ``(bank line, posting)`` of it that belong together; its other items stay
      open and the next run sees them again.
    """
    if not note or not note.strip():
        raise BadResolutionError("a resolution needs a note saying why", break_id=break_id)
    if not by or not by.strip():
        raise BadResolutionError("a resolution needs the name of who resolved it", break_id=break_id)
    if action not in ("adjust", "accept-timing", "match-with"):
        raise BadResolutionError(f"unknown action {action!r}; adjust, accept-timing or match-with",
                                 break_id=break_id)
    # What another action takes is refused, not dropped: the break would be resolved
    # otherwise than asked.
    given = [what for what, value, wanted in (
        ("--account", account, "adjust"), ("--with", match_with, "match-with"),
        ("--pair", pair, "match-with")) if value is not None and action != wanted]
    if given:
        raise BadResolutionError(f"{action} does not take {' or '.join(given)}", break_id=break_id)

    def run(conn):
        latest = _latest_runs(conn, book.book_id)
        rows = conn.execute(_breaks_query(book.book_id).where(m.ReconBreak.id == break_id)).all()
        if not rows:
            raise BreakResolutionError(f"no break {break_id}", break_id=break_id)
        brk = _break_view(conn, rows[0], latest)
        if brk.state in ("resolved", "cleared"):
            raise BreakResolutionError(f"break {break_id} is already {brk.state}", break_id=break_id)
        if brk.state == "superseded":
            again = _reported_again(conn, book.book_id, brk, rows[0].account_code)
            if again is not None:
                newer, resolved = again
                raise BreakResolutionError(
                    f"break {break_id} is superseded: break {newer} of a later run names its items "
                    + ("again and is resolved" if resolved else "again; resolve that one"),
                    break_id=break_id, newer_break=newer)
        run_row = conn.execute(select(m.ReconRun.account_code, m.ReconRun.id, m.ReconRun.summary_json)
                               .where(m.ReconRun.id == brk.run_id)).one()
        entry_id = match_id = None
        if action == "adjust":
            entry_id, match_id = _adjust(conn, book, brk, run_row, account, note, key)
        elif action == "match-with":
            match_id = _match_with(conn, book, brk, run_row, match_with, pair)
        conn.execute(insert(m.ReconResolution).values(
            break_id=break_id, action=action, note=note, resolved_by=by, resolved_at=utcnow(),
            entry_id=entry_id, match_id=match_id))
    # Two people may resolve at once (on PostgreSQL both can read the break open): the
    # one that commits second runs again and is told the break is resolved, or which
    # item was matched meanwhile.
    book._write(run, races=("recon_resolution", "recon_match_bank", "recon_match_posting"))
    return list_breaks(book, state=None, break_id=break_id)[0]


def _reported_again(conn, book_id: int, brk: BreakView, account: str) -> tuple[int, bool] | None:
    """The newest break of a later run of ``account`` that names one of ``brk``'s items, and
    whether it is resolved, if one does: the one to resolve instead (an older break whose
    items no later run named is resolved itself)."""
    banks, postings = set(brk.bank_line_ids), set(brk.posting_ids)
    later = conn.execute(select(m.ReconRun.id).where(
        m.ReconRun.book_id == book_id, m.ReconRun.account_code == account,
        m.ReconRun.id > brk.run_id).order_by(m.ReconRun.id.desc())).scalars().all()
    for run_id in later:
        for other, bank_ids, posting_ids, resolved in conn.execute(
                select(m.ReconBreak.id, m.ReconBreak.bank_line_ids, m.ReconBreak.posting_ids,
                       m.ReconResolution.id)
                .outerjoin(m.ReconResolution, m.ReconResolution.break_id == m.ReconBreak.id)
                .where(m.ReconBreak.run_id == run_id).order_by(m.ReconBreak.id)):
            if (not banks.isdisjoint(json.loads(bank_ids))
                    or not postings.isdisjoint(json.loads(posting_ids))):
                return other, resolved is not None
    return None


def _is_platform_account(code: str) -> bool:
    return any(code.startswith(p) for p in PLATFORM_PREFIXES)


def _adjust(conn, book, brk: BreakView, run_row, account: str | None, note: str, key: str | None):
    if not account:
        raise BadResolutionError("adjust needs --account, a platform-owned account", break_id=brk.id)
    if not _is_platform_account(account):
        raise BadResolutionError(
            f"{account} is not a platform-owned account; an adjustment never moves a user's money "
            "without a matching instruction", break_id=brk.id, account=account)
    amount = brk.amount_minor  # bank side minus ledger side
    if amount == 0:
        raise BreakResolutionError(f"break {brk.id} has no amount to adjust; use match-with",
                                   break_id=brk.id)
    ref = next((b["bank_ref"] for b in brk.bank_lines if b.get("bank_ref")), None)
    entry = write(conn, book.book_id, [Draft(
        ((run_row.account_code, amount), (account, -amount)), key or f"recon-adjust-{brk.id}",
        "reconciliation_adjustment", brk.statement_date, external_ref=ref, memo=note,
        metadata={"break_id": brk.id}, minor=True)])[0]
    posting_id = conn.execute(select(m.Posting.id).join(m.Account, m.Account.id == m.Posting.account_id)
                              .where(m.Posting.entry_id == entry.id,
                                     m.Account.code == run_row.account_code)).scalar_one()
    match_id = _new_match(conn, run_row.id, "manual_adjustment", brk.bank_line_ids,
                          (*brk.posting_ids, posting_id))
    return entry.id, match_id


def _match_with(conn, book, brk: BreakView, run_row, other: int | None,
                pair: tuple[int, int] | None = None) -> int:
    if pair is not None:
        if other is not None:
            raise BadResolutionError("match-with takes an id to match with or a pair, not both",
                                       break_id=brk.id)
        bank_id, posting_id = pair
        if bank_id not in brk.bank_line_ids or posting_id not in brk.posting_ids:
            raise BreakResolutionError(
                f"break {brk.id}: a pair is one of its bank lines {list(brk.bank_line_ids)} and one "
                f"of its postings {list(brk.posting_ids)}", break_id=brk.id)
        bank_ids, posting_ids = (bank_id,), (posting_id,)
        bank_total = sum(b["amount_minor"] for b in brk.bank_lines if b["id"] == bank_id)
        ledger_total = conn.execute(select(m.Posting.amount_minor)
                                    .where(m.Posting.id == posting_id)).scalar_one()
        return _manual_match(conn, brk, run_row, bank_ids, posting_ids, bank_total, ledger_total)
    if other is None:
        raise BadResolutionError("match-with needs the id to match with", break_id=brk.id)
    if brk.bank_line_ids and not brk.posting_ids:
        amount = _posting_to_match(conn, book, brk, run_row, other)
        bank_ids, posting_ids = brk.bank_line_ids, (other,)
        bank_total = sum(b["amount_minor"] for b in brk.bank_lines)
        ledger_total = amount
    elif brk.posting_ids and not brk.bank_line_ids:
        amount = _bank_line_to_match(conn, book, brk, run_row, other)
        bank_ids, posting_ids = (other,), brk.posting_ids
        bank_total = amount
        ledger_total = sum(conn.execute(select(m.Posting.amount_minor).where(
            m.Posting.id.in_(brk.posting_ids))).scalars())
    else:
        # Both sides (ambiguous and the like): pick one item of the break to pair
        # with the single item of the other side.
        if other in brk.bank_line_ids and len(brk.posting_ids) == 1:
            bank_ids, posting_ids = (other,), brk.posting_ids
        elif other in brk.posting_ids and len(brk.bank_line_ids) == 1:
            bank_ids, posting_ids = brk.bank_line_ids, (other,)
        else:
            several = len(brk.bank_line_ids) > 1 and len(brk.posting_ids) > 1
            raise BreakResolutionError(
                f"break {brk.id}: --with must name one of its bank lines {list(brk.bank_line_ids)} "
                f"(or of its postings {list(brk.posting_ids)}) to pair with the other side's item"
                + ("; with several on both sides, name the pair: --pair BANK_LINE:POSTING"
                   if several else ""), break_id=brk.id)
        bank_total = sum(b["amount_minor"] for b in brk.bank_lines if b["id"] in bank_ids)
        ledger_total = sum(conn.execute(select(m.Posting.amount_minor).where(
            m.Posting.id.in_(posting_ids))).scalars())
    return _manual_match(conn, brk, run_row, bank_ids, posting_ids, bank_total, ledger_total)


def _manual_match(conn, brk: BreakView, run_row, bank_ids: Sequence[int], posting_ids: Sequence[int],
                  bank_total: int, ledger_total: int) -> int:
    if bank_total != ledger_total:
        raise BreakResolutionError(
            f"amounts differ: bank {format_minor(bank_total)} vs ledger {format_minor(ledger_total)}; "
            "use adjust for the difference", break_id=brk.id)
    _refuse_matched(conn, brk, bank_ids, posting_ids)
    return _new_match(conn, run_row.id, "manual", bank_ids, posting_ids)


def _posting_to_match(conn, book, brk: BreakView, run_row, posting_id: int) -> int:
    """The amount of ``posting_id`` when a break's bank line may be matched with it: a
    posted (not pending) posting of this book on the account the run reconciled."""
    row = conn.execute(
        select(m.Posting.amount_minor, m.Posting.is_pending, m.Account.code, m.Account.book_id)
        .join(m.Account, m.Account.id == m.Posting.account_id).where(m.Posting.id == posting_id)).first()
    if row is None or row.book_id != book.book_id:
        raise BreakResolutionError(f"no posting {posting_id} in this book", break_id=brk.id)
    if row.code != run_row.account_code:
        raise BreakResolutionError(
            f"posting {posting_id} is on {row.code}, not on {run_row.account_code} (the account "
            "this break's run reconciled): a bank line only matches a posting of that account",
            break_id=brk.id)
    if row.is_pending:
        raise BreakResolutionError(
            f"posting {posting_id} is a pending hold, not money that moved: match the bank line "
            "with the posting that completed it", break_id=brk.id)
    return row.amount_minor


def _bank_line_to_match(conn, book, brk: BreakView, run_row, bank_line_id: int) -> int:
    """The amount of ``bank_line_id`` when a break's postings may be matched with it: a line
    of this book, of the bank account the run reconciled, in the ledger account's currency."""
    row = conn.execute(select(m.BankLine.amount_minor, m.BankLine.account, m.BankLine.currency)
                       .where(m.BankLine.id == bank_line_id, m.BankLine.book_id == book.book_id)).first()
    if row is None:
        raise BreakResolutionError(f"no bank line {bank_line_id} in this book", break_id=brk.id)
    bank_account = json.loads(run_row.summary_json).get("bank_account")
    if bank_account is not None and row.account != bank_account:
        raise BreakResolutionError(
            f"bank line {bank_line_id} is of bank account {row.account}, not of {bank_account} "
            f"(the one this break's run reconciled)", break_id=brk.id)
    currency = conn.execute(select(m.Account.currency).where(
        m.Account.book_id == book.book_id, m.Account.code == run_row.account_code)).scalar_one()
    if row.currency != currency:
        raise BreakResolutionError(
            f"bank line {bank_line_id} is in {row.currency}, {run_row.account_code} in {currency}",
            break_id=brk.id)
    return row.amount_minor


def _refuse_matched(conn, brk: BreakView, bank_ids: Sequence[int], posting_ids: Sequence[int]) -> None:
    """A bank line or a posting is matched once, ever: name the match that has it."""
    for table, column, ids, what in (
            (m.ReconMatchBank, m.ReconMatchBank.bank_line_id, bank_ids, "bank line"),
            (m.ReconMatchPosting, m.ReconMatchPosting.posting_id, posting_ids, "posting")):
        found = conn.execute(select(column, table.match_id).where(column.in_(ids))
                             .order_by(column).limit(1)).first() if ids else None
        if found is not None:
            raise BreakResolutionError(
                f"{what} {found[0]} is already matched (match {found[1]}); it can be matched "
                "only once", break_id=brk.id)


def _new_match(conn, run_id: int, rule: str, bank_ids: Sequence[int], posting_ids: Sequence[int]) -> int:
    match_id = conn.execute(insert(m.ReconMatch).values(run_id=run_id, rule=rule)
                            .returning(m.ReconMatch.id)).scalar_one()
    if bank_ids:
        conn.execute(insert(m.ReconMatchBank), [{"match_id": match_id, "bank_line_id": b} for b in bank_ids])
    if posting_ids:
        conn.execute(insert(m.ReconMatchPosting), [{"match_id": match_id, "posting_id": p}
                                                   for p in posting_ids])
    return match_id


__all__ = ["reconcile", "reconcile_parsed", "resolve", "list_breaks", "RunResult", "BreakView", "ImportResult",
           "ReconcileError", "BreakResolutionError", "BadResolutionError", "import_parsed", "parse_files"]
