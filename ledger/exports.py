r"""Exports for auditors: the journal (CSV, JSON Lines), beancount, XLSX.

The journal is streamed: :func:`iter_journal` reads entries with a
server-side cursor (``stream_results`` / ``yield_per``) inside one read
transaction and yields one :class:`JournalRecord` at a time, so exporting
millions of entries takes constant memory. A journal up to a date shows
nothing from after it: a commit, void or reversal dated later is not named
in ``completed_by`` / ``reversed_by``. :func:`write_journal` ends the file
with the footer every report carries (``# `` comment lines in CSV, a last
``{"footer": ...}`` line in JSON Lines), read in the same transaction.

Beancount account names
-----------------------
Beancount wants five capitalised roots and components that start with a
capital letter or a digit and hold only letters, digits and ``-``. A ledger
code maps as follows (:func:`beancount_account`):

* the root comes from the account **type**: asset -> ``Assets``, liability ->
  ``Liabilities``, equity -> ``Equity``, income -> ``Income``, expense ->
  ``Expenses``; the code's first segment is dropped when it only names that
  type (``assets``, ``liabilities``, ``revenue``, ...) and kept otherwise;
* each segment becomes CamelCase: split on ``_``, each part's first letter
  capitalised (``risk_reserve`` -> ``RiskReserve``), ``.`` becomes ``-``;
* memo accounts (claims and obligations, which balance among themselves)
  live off balance under ``Assets:Memo:...``; their subtree always sums to
  zero, so totals are unchanged. ``memo="exclude"`` leaves them out instead
  (entries holding only memo postings become comments);
* if two codes would map to the same name, the later one gets ``-X`` and a
  short hash appended. Every ``open`` directive carries the original code
  as ``ledger_code`` metadata, so the mapping can always be traced back.

Pending entries (holds) and voids are written as comments: they move no
balance. The file ends with a ``balance`` assertion per account, so
``bean-check`` proves the export adds up to the ledger's own balances.
Beancount checks an account together with its sub-accounts, so each
assertion is the account's balance plus that of every account whose name
lies under it, in the account's currency (:func:`subtree_balances`):
``Assets:Cash`` asserts cash and petty cash together, and an obligation
``Assets:Memo:Obligations:B1:L1`` asserts its ``:Penalty`` child too.

CSV cells
---------
The journal, the reports and the CLI's listings in ``--format csv`` write
their rows through :func:`csv_row`, so a cell someone else
typed (memo, reference, key, metadata, a name) is shown as text and cannot
break the file's layout:

* a **text** cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return gets a single quote in front (``=HYPERLINK(...)`` ->
  ``'=HYPERLINK(...)``), so a spreadsheet shows it instead of running it
  (the OWASP rule for CSV injection). Amounts, dates, ids and counts are
  not text and are written as they are: ``-5.00`` stays a number;
* line breaks inside a text cell are written as backslash escapes (``\n``,
  ``\r``, and ``\u2028``-style for the other Unicode line separators) and a
  backslash as ``\\``, so every row is exactly one physical line;
* a row whose first cell is text beginning with ``#`` gets the same quote.

So no data row can produce a line that begins with ``#``: the ``# `` footer
lines are always the report's own.

XLSX
----
Reports become workbooks through XlsxWriter: amounts are numeric cells
(written from ``Decimal``, so the file holds the exact decimal text) with
the number format of their currency's minor unit (``#,##0.00`` for CNY,
``#,##0`` for JPY, ``#,##0.000`` for KWD), totals and closing balances in
bold with the same format; never text.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from decimal import Decimal
from typing import IO, Any, Iterable, Iterator, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from . import models as m
from . import periods
from .accounts import PREFIX_TYPES
from .errors import ReportError
from .money import exponent, format_minor, from_minor
from .postings import CLOSE_KIND
from .reports import Footer, check_range, footer

STREAM_CHUNK = 2000


# --- CSV cells -------------------------------------------------------------------------
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a text cell must not begin with unquoted: a spreadsheet reads it as a formula."""

_ESCAPED = re.compile("[\\\\\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def one_line(value: str) -> str:
    """``value`` with its line breaks (and a backslash) written as escapes: text that can
    take no line of its own in a CSV row or a printed table."""
    if "\\" in value or not value.isprintable():
        value = _ESCAPED.sub(_escape, value)
    return value


def csv_text(value: str) -> str:
    """A text cell as CSV must hold it: no formula, no line break (see the module docstring)."""
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return one_line(value)


def csv_cell(value: Any):
    """One CSV cell: ``None`` empty, dates ISO, numbers as they are, anything else text."""
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)):  # amounts, ids, counts, flags: never text
        return value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return csv_text(value if isinstance(value, str) else str(value))


def csv_row(values: Iterable[Any]) -> list:
    """A CSV data row, each cell through :func:`csv_cell`; it never begins with ``#``."""
    cells = [csv_cell(v) for v in values]
    if cells and isinstance(cells[0], str) and cells[0].startswith("#"):
        cells[0] = "'" + cells[0]
    return cells


def csv_writer(fh: IO[str]):
    """The ``csv.writer`` every CSV output uses (``\\n`` line ends); give it :func:`csv_row` rows."""
    return csv.writer(fh, lineterminator="\n")


# --- the journal ---------------------------------------------------------------------
class JournalPosting(NamedTuple):
    """One posting in the journal export.

    Attributes:
        position: order in the entry, from 0.
        account: account code.
        account_type: its type.
        amount_minor: signed, debit positive.
        currency: ISO code.
        is_pending: a hold of a pending entry, not a balance.
    """

    position: int
    account: str
    account_type: str
    amount_minor: int
    currency: str
    is_pending: bool


class JournalRecord(NamedTuple):
    """One entry in the journal export, with its links and hashes.

    Attributes:
        id: entry id.
        effective_date: business date.
        kind, phase, key, external_ref, memo: the header's fields.
        metadata: the caller's metadata.
        pending_id: the pending entry a commit or void completes.
        reverses_id: the entry a reversal reverses.
        completed_by: the commit or void that completed this pending entry.
        reversed_by: the reversal of this entry.
        created_at: UTC time written.
        content_hash: SHA-256 of the entry.
        chain_seq: its link in the chain (None until sealed).
        chain_hash: the chain hash at that link.
        postings: the postings, in order.
    """

    id: int
    effective_date: dt.date
    kind: str
    phase: str
    key: str
    external_ref: str | None
    memo: str | None
    metadata: dict
    pending_id: int | None
    reverses_id: int | None
    completed_by: int | None
    reversed_by: int | None
    created_at: dt.datetime
    content_hash: str
    chain_seq: int | None
    chain_hash: str | None
    postings: tuple[JournalPosting, ...]

    def to_dict(self) -> dict:
        """JSON-ready: minor-unit integers and decimal strings, no floats."""
        return {
            "id": self.id, "effective_date": self.effective_date.isoformat(), "kind": self.kind,
            "phase": self.phase, "key": self.key, "external_ref": self.external_ref,
            "memo": self.memo, "metadata": self.metadata, "pending_id": self.pending_id,
            "reverses_id": self.reverses_id, "completed_by": self.completed_by,
            "reversed_by": self.reversed_by,
            "created_at": self.created_at.isoformat(timespec="microseconds") + "Z",
            "content_hash": self.content_hash, "chain_seq": self.chain_seq,
            "chain_hash": self.chain_hash,
            "postings": [{"position": p.position, "account": p.account,
                          "amount_minor": p.amount_minor,
                          "amount": _decimal_text(p.amount_minor, p.currency),
                          "currency": p.currency, "pending": p.is_pending} for p in self.postings],
        }


def _journal_query(book_id: int, date_from: dt.date | None, date_to: dt.date | None):
    j = m.JournalEntry.__table__
    p = m.Posting.__table__
    a = m.Account.__table__
    cl = m.ChainLink.__table__
    completion = j.alias("completion")
    reversal = j.alias("reversal")
    # A journal as of ``date_to`` names no commit, void or reversal dated after it.
    completed = completion.c.pending_id == j.c.id
    reversed_ = reversal.c.reverses_id == j.c.id
    if date_to is not None:
        completed = completed & (completion.c.effective_date <= date_to)
        reversed_ = reversed_ & (reversal.c.effective_date <= date_to)
    query = (
        select(j.c.id, j.c.effective_date, j.c.kind, j.c.phase, j.c.idempotency_key,
               j.c.external_ref, j.c.memo, j.c.metadata_json, j.c.pending_id, j.c.reverses_id,
               completion.c.id.label("completed_by"), reversal.c.id.label("reversed_by"),
               j.c.created_at, j.c.content_hash, cl.c.seq, cl.c.chain_hash,
               p.c.position, a.c.code, a.c.type, p.c.amount_minor, p.c.currency, p.c.is_pending)
        .select_from(
            j.outerjoin(p, p.c.entry_id == j.c.id)
            .outerjoin(a, a.c.id == p.c.account_id)
            .outerjoin(cl, cl.c.entry_id == j.c.id)
            .outerjoin(completion, completed)
            .outerjoin(reversal, reversed_))
        .where(j.c.book_id == book_id)
        .order_by(j.c.effective_date, j.c.id, p.c.position)
    )
    if date_from is not None:
        query = query.where(j.c.effective_date >= date_from)
    if date_to is not None:
        query = query.where(j.c.effective_date <= date_to)
    return query


def stream_journal(conn: Connection, book_id: int, date_from: dt.date | None = None,
                   date_to: dt.date | None = None) -> Iterator[JournalRecord]:
    """Entries dated in ``[date_from, date_to]``, by date then id, streamed from ``conn``.

    As of ``date_to``: ``completed_by`` and ``reversed_by`` name only a
    completion or reversal dated on or before it.
    """
    result = conn.execution_options(stream_results=True, yield_per=STREAM_CHUNK).execute(
        _journal_query(book_id, date_from, date_to))
    current = None
    postings: list[JournalPosting] = []
    for row in result:
        if current is not None and row[0] != current[0]:
            yield _record(current, postings)
            postings = []
        current = row
        if row[16] is not None:  # position: an entry without postings (a void) has none
            postings.append(JournalPosting(row[16], row[17], row[18], int(row[19]), row[20],
                                           bool(row[21])))
    if current is not None:
        yield _record(current, postings)


def _record(row: tuple, postings: list[JournalPosting]) -> JournalRecord:
    (entry_id, effective_date, kind, phase, key, external_ref, memo, metadata_json, pending_id,
     reverses_id, completed_by, reversed_by, created_at, content_hash, seq, chain_hash) = row[:16]
    return JournalRecord(
        entry_id, effective_date, kind, phase, key, external_ref, memo,
        json.loads(metadata_json, parse_float=Decimal) if metadata_json else {},
        pending_id, reverses_id, completed_by, reversed_by, created_at, content_hash, seq,
        chain_hash, tuple(postings))


def iter_journal(book, date_from: dt.date | None = None,
                 date_to: dt.date | None = None) -> Iterator[JournalRecord]:
    """:func:`stream_journal` over ``book`` in one read transaction (a consistent snapshot).

    A period that starts after it ends is refused (:class:`ReportError`).
    """
    check_range(date_from, date_to)
    with book.reading() as conn:
        yield from stream_journal(conn, book.book_id, date_from, date_to)


JOURNAL_FORMATS = ("csv", "jsonl")


def write_journal(book, fh: IO[str], *, fmt: str = "csv", date_from: dt.date | None = None,
                  date_to: dt.date | None = None) -> int:
    """The journal of ``book`` over ``[date_from, date_to]`` with its footer; returns entries.

    The entries and the footer (as of ``date_to``, see :class:`ledger.reports.Footer`)
    are read in one read transaction, so the footer's last entry and chain
    hash describe exactly the snapshot the entries come from. A period that
    starts after it ends is refused (:class:`ReportError`), as the statements
    refuse it, before anything is written.
    """
    if fmt not in JOURNAL_FORMATS:
        raise ReportError(f"journal format must be 'csv' or 'jsonl', got {fmt!r}", fmt=fmt)
    check_range(date_from, date_to)
    writer = write_journal_csv if fmt == "csv" else write_journal_jsonl
    with book.reading() as conn:
        foot = footer(conn, book.book_id, book.name, date_to)
        return writer(stream_journal(conn, book.book_id, date_from, date_to), fh, foot)


JOURNAL_CSV_COLUMNS = [
    "entry_id", "effective_date", "kind", "phase", "key", "external_ref", "memo", "metadata",
    "pending_id", "reverses_id", "completed_by", "reversed_by", "created_at", "content_hash",
    "chain_seq", "chain_hash", "position", "account", "amount_minor", "amount", "currency",
    "is_pending",
]


def _json_default(value: Any):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_journal_csv(records, fh: IO[str], foot: Footer | None = None) -> int:
    """One CSV row per posting (entry fields repeated; a void gets one row); returns entries.

    The footer, when given, follows the rows as ``# `` comment lines, as in
    the other CSV reports. Text cells follow the CSV cell rule (module
    docstring), so a data row is one line that starts with its entry id.
    """
    writer = csv_writer(fh)
    writer.writerow(JOURNAL_CSV_COLUMNS)
    count = 0
    accounts: dict[str, str] = {}
    for r in records:
        head = csv_row([r.id, r.effective_date, r.kind, r.phase, r.key, r.external_ref, r.memo,
                        json.dumps(r.metadata, default=_json_default, sort_keys=True,
                                   ensure_ascii=False) if r.metadata else None,
                        r.pending_id, r.reverses_id, r.completed_by, r.reversed_by,
                        r.created_at.isoformat(timespec="microseconds") + "Z",
                        r.content_hash, r.chain_seq, r.chain_hash])
        if not r.postings:
            writer.writerow(head + [""] * 6)
        for p in r.postings:
            account = accounts.get(p.account)
            if account is None:
                account = accounts[p.account] = csv_text(p.account)
            # the amount is decimal text of a number, not a text cell: written as it is
            writer.writerow(head + [p.position, account, p.amount_minor,
                                    _decimal_text(p.amount_minor, p.currency), p.currency,
                                    "true" if p.is_pending else "false"])
        count += 1
    if foot is not None:
        for line in foot.lines():
            fh.write(f"# {line}\n")
    return count


def _decimal_text(minor: int, currency: str) -> str:
    """``format_minor`` without Decimal arithmetic (the journal writes millions of these)."""
    exp = _EXPONENTS.get(currency)
    if exp is None:
        exp = _EXPONENTS[currency] = exponent(currency)
    if exp == 0:
        return str(minor)
    whole, frac = divmod(abs(minor), 10 ** exp)
    return f"{'-' if minor < 0 else ''}{whole}.{frac:0{exp}d}"


_EXPONENTS: dict[str, int] = {}


def write_journal_jsonl(records, fh: IO[str], foot: Footer | None = None) -> int:
    """One JSON object per line and entry; returns entries.

    The footer, when given, is the last line: ``{"footer": {...}}`` (an
    entry's object always has an ``id``; the footer's has only ``footer``).
    """
    count = 0
    for r in records:
        fh.write(_json_line(json.dumps(r.to_dict(), default=_json_default, ensure_ascii=False)))
        fh.write("\n")
        count += 1
    if foot is not None:
        fh.write(_json_line(json.dumps({"footer": foot.to_dict()}, ensure_ascii=False)))
        fh.write("\n")
    return count


#: Line breaks to line readers (``str.splitlines``, editors) that JSON leaves raw in a string.
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_line(text_: str) -> str:
    """JSON text as one line to any line reader: the Unicode line breaks JSON keeps raw
    (only inside strings) written as ``\\uXXXX`` escapes, which read back as the same text."""
    return text_ if text_.isascii() else text_.translate(_JSON_LINE_BREAKS)


# --- beancount -----------------------------------------------------------------------
BEANCOUNT_ROOTS = {"asset": "Assets", "liability": "Liabilities", "equity": "Equity",
                   "income": "Income", "expense": "Expenses", "memo": "Assets"}
MEMO_HOME = "Memo"


def _component(segment: str) -> str:
    parts = [p for p in segment.split("_") if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts).replace(".", "-")
    if not name or not (name[0].isdigit() or name[0].isupper()):
        name = "X" + name
    return name


def beancount_account(code: str, account_type: str) -> str:
    """The beancount name of a ledger account (see the module docstring)."""
    segments = code.split(":")
    if account_type != "memo" and PREFIX_TYPES.get(segments[0]) == account_type and len(segments) > 1:
        segments = segments[1:]
    elif account_type == "memo" and segments[0] == "memo" and len(segments) > 1:
        segments = segments[1:]
    names = [BEANCOUNT_ROOTS[account_type]]
    if account_type == "memo":
        names.append(MEMO_HOME)
    names.extend(_component(s) for s in segments)
    return ":".join(names)


def beancount_names(accounts) -> dict[str, str]:
    """Ledger code -> beancount name for ``(code, type)`` pairs, made unique."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for code, type_ in sorted(accounts):
        name = beancount_account(code, type_)
        if name in taken:
            name = f"{name}-X{hashlib.sha256(code.encode()).hexdigest()[:8]}"
        taken.add(name)
        out[code] = name
    return out


def _bstr(value: str) -> str:
    text_ = " ".join(str(value).split())
    return '"' + text_.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_beancount(book, fh: IO[str], *, memo: str = "include") -> int:
    """Write the whole book as a beancount file; returns the entries written as transactions."""
    if memo not in ("include", "exclude"):
        raise ReportError(f"memo must be 'include' or 'exclude', got {memo!r}", memo=memo)
    with book.reading() as conn:
        accounts = conn.execute(
            select(m.Account.id, m.Account.code, m.Account.type, m.Account.currency,
                   m.Account.opened_at, m.Account.name)
            .where(m.Account.book_id == book.book_id).order_by(m.Account.code)).all()
        first, last = conn.execute(
            select(func.min(m.JournalEntry.effective_date), func.max(m.JournalEntry.effective_date))
            .where(m.JournalEntry.book_id == book.book_id)).one()
        if last == dt.date.max:
            raise ReportError("an entry is dated 9999-12-31: the export's balance assertions are "
                              "dated the day after the last entry, and there is none",
                              effective_date=last)
        kept = [a for a in accounts if memo == "include" or a.type != "memo"]
        names = beancount_names((a.code, a.type) for a in kept)
        dates = [a.opened_at.date() for a in kept] + ([first] if first else [])
        open_date = min(dates) if dates else dt.date.today()
        currencies = sorted({a.currency for a in kept}) or ["CNY"]
        fh.write(f"; book {book.name}, exported from the custody ledger\n")
        fh.write(f'option "title" {_bstr("Custody ledger: " + book.name)}\n')
        for cur in currencies:
            fh.write(f'option "operating_currency" "{cur}"\n')
        fh.write("\n")
        for a in kept:
            fh.write(f"{open_date.isoformat()} open {names[a.code]} {a.currency}\n")
            fh.write(f"  ledger_code: {_bstr(a.code)}\n")
            fh.write(f"  ledger_type: {_bstr(a.type)}\n")
        fh.write("\n")
        written = 0
        for r in stream_journal(conn, book.book_id):
            written += _write_transaction(fh, r, names, memo)
        if last is not None:
            sums = periods.posted_sums(conn, book.book_id, None)
            subtree = subtree_balances((names[a.code], a.currency, sums.get(a.id, 0)) for a in kept)
            day_after = (last + dt.timedelta(days=1)).isoformat()
            fh.write("\n; the ledger's own balances, each account with the accounts under it,"
                     " checked by bean-check\n")
            for a in kept:
                fh.write(f"{day_after} balance {names[a.code]} "
                         f"{format_minor(subtree[names[a.code], a.currency], a.currency)} "
                         f"{a.currency}\n")
    return written


def subtree_balances(balances: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """What a beancount ``balance`` directive checks, from ``(name, currency, minor)`` balances.

    Beancount checks an account together with every account under it, in
    the directive's currency, so each account's balance counts towards its
    own name and every ancestor's: ``Assets:Cash`` sums ``Assets:Cash`` and
    ``Assets:Cash:Petty``. Returns ``(name, currency) -> minor`` for every
    name and ancestor name (a pure function).
    """
    out: dict[tuple[str, str], int] = {}
    for name, currency, minor in balances:
        parts = name.split(":")
        for depth in range(1, len(parts) + 1):
            key = (":".join(parts[:depth]), currency)
            out[key] = out.get(key, 0) + minor
    return out


def _write_transaction(fh: IO[str], r: JournalRecord, names: dict[str, str], memo: str) -> int:
    postings = [p for p in r.postings if p.account in names and not p.is_pending]
    title = f"entry {r.id} {r.kind} {r.phase}"
    if r.phase in ("pending", "void") or not postings:
        why = {"pending": "holds funds, moves no balance", "void": "cancels a pending entry"}.get(
            r.phase, "memo postings only" if memo == "exclude" and r.postings else
            "the close of the period through this day, in the hash chain" if r.kind == CLOSE_KIND
            else "no postings")
        fh.write(f"; {r.effective_date.isoformat()} {title}: {why}\n\n")
        return 0
    narration = r.memo or r.external_ref or r.key
    fh.write(f"{r.effective_date.isoformat()} * {_bstr(r.kind)} {_bstr(narration)}\n")
    fh.write(f"  entry_id: {_bstr(str(r.id))}\n")
    fh.write(f"  key: {_bstr(r.key)}\n")
    if r.external_ref:
        fh.write(f"  external_ref: {_bstr(r.external_ref)}\n")
    if r.reverses_id is not None:
        fh.write(f"  reverses: {_bstr(str(r.reverses_id))}\n")
    if r.pending_id is not None:
        fh.write(f"  completes: {_bstr(str(r.pending_id))}\n")
    if r.metadata:
        fh.write(f"  metadata: {_bstr(json.dumps(r.metadata, default=_json_default, sort_keys=True))}\n")
    fh.write(f"  content_hash: {_bstr(r.content_hash)}\n")
    for p in postings:
        fh.write(f"  {names[p.account]}  {format_minor(p.amount_minor, p.currency)} {p.currency}\n")
    fh.write("\n")
    return 1


# --- XLSX ------------------------------------------------------------------------------
XLSX_EXPONENTS = (0, 2, 3)
"""Minor-unit exponents with their own number format (others are shown with 2 decimals)."""


def _num_format(exp: int) -> str:
    """``#,##0`` with one ``0`` per decimal of the minor unit: ``#,##0.00`` for CNY."""
    return "#,##0" + ("." + "0" * exp if exp else "")


def _formats(workbook):
    return {
        "title": workbook.add_format({"bold": True, "font_size": 12}),
        "head": workbook.add_format({"bold": True, "bottom": 1}),
        "total": workbook.add_format({"bold": True, "top": 1}),
        "money": {e: workbook.add_format({"num_format": _num_format(e)}) for e in XLSX_EXPONENTS},
        "total_money": {e: workbook.add_format({"bold": True, "top": 1, "num_format": _num_format(e)})
                        for e in XLSX_EXPONENTS},
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
    }


def _num(minor: int, currency: str) -> Decimal:
    """The amount as a Decimal: XlsxWriter writes its exact decimal text into the cell."""
    return from_minor(minor, currency)


def _write_footer(ws, row: int, footer, fmt) -> None:
    row += 1
    for line in footer.lines():
        ws.write_string(row, 0, line)
        row += 1


def write_xlsx(report, fh) -> None:
    """Write a trial balance, account statement, balance sheet or income statement as XLSX.

    ``fh`` is a path or a binary file object.
    """
    import xlsxwriter

    from . import reports as rp

    workbook = xlsxwriter.Workbook(fh, {"in_memory": True})
    fmt = _formats(workbook)
    try:
        if isinstance(report, rp.TrialBalance):
            _xlsx_trial_balance(workbook, report, fmt)
        elif isinstance(report, rp.AccountStatement):
            _xlsx_statement(workbook, report, fmt)
        elif isinstance(report, (rp.BalanceSheet, rp.IncomeStatement)):
            _xlsx_lines(workbook, report, fmt)
        else:
            raise ReportError(f"no XLSX layout for {type(report).__name__}")
    finally:
        workbook.close()


def _money_fmt(fmt, currency: str, *, total: bool = False):
    """The number format of an amount in ``currency`` (bold with a rule above for a total)."""
    formats = fmt["total_money" if total else "money"]
    return formats.get(exponent(currency), formats[2])


def _xlsx_trial_balance(workbook, tb, fmt) -> None:
    ws = workbook.add_worksheet("Trial balance")
    ws.write_string(0, 0, f"Trial balance of {tb.footer.book} as of "
                          f"{tb.footer.as_of.isoformat() if tb.footer.as_of else 'all dates'}",
                    fmt["title"])
    heads = ["Account", "Type", "Currency", "Debit", "Credit"]
    for col, head in enumerate(heads):
        ws.write_string(2, col, head, fmt["head"])
    row = 3
    for r in tb.rows:
        ws.write_string(row, 0, r.account)
        ws.write_string(row, 1, r.type)
        ws.write_string(row, 2, r.currency)
        ws.write_number(row, 3, _num(r.debit_minor, r.currency), _money_fmt(fmt, r.currency))
        ws.write_number(row, 4, _num(r.credit_minor, r.currency), _money_fmt(fmt, r.currency))
        row += 1
    for cur, (debit, credit) in sorted(tb.totals.items()):
        ws.write_string(row, 0, "Total", fmt["total"])
        ws.write_string(row, 2, cur, fmt["total"])
        ws.write_number(row, 3, _num(debit, cur), _money_fmt(fmt, cur, total=True))
        ws.write_number(row, 4, _num(credit, cur), _money_fmt(fmt, cur, total=True))
        row += 1
    ws.set_column(0, 0, 48)
    ws.set_column(1, 2, 10)
    ws.set_column(3, 4, 18)
    _write_footer(ws, row, tb.footer, fmt)


def _xlsx_statement(workbook, st, fmt) -> None:
    ws = workbook.add_worksheet("Statement")
    money_fmt = _money_fmt(fmt, st.currency)
    ws.write_string(0, 0, f"Statement of {st.account} ({st.currency}) from "
                          f"{st.date_from.isoformat()} to {st.date_to.isoformat()}", fmt["title"])
    heads = ["Date", "Entry", "Kind", "Reference", "Memo", "Amount", "Balance"]
    for col, head in enumerate(heads):
        ws.write_string(2, col, head, fmt["head"])
    ws.write_string(3, 0, "Opening balance")
    ws.write_number(3, 6, _num(st.opening_minor, st.currency), money_fmt)
    row = 4
    for mv in st.movements:
        ws.write_datetime(row, 0, dt.datetime.combine(mv.effective_date, dt.time()), fmt["date"])
        ws.write_number(row, 1, mv.entry_id)
        ws.write_string(row, 2, mv.kind)
        ws.write_string(row, 3, mv.external_ref or "")
        ws.write_string(row, 4, mv.memo or "")
        ws.write_number(row, 5, _num(mv.amount_minor, st.currency), money_fmt)
        ws.write_number(row, 6, _num(mv.balance_minor, st.currency), money_fmt)
        row += 1
    ws.write_string(row, 0, "Closing balance", fmt["total"])
    ws.write_number(row, 6, _num(st.closing_minor, st.currency),
                    _money_fmt(fmt, st.currency, total=True))
    ws.set_column(0, 0, 16)
    ws.set_column(2, 4, 20)
    ws.set_column(5, 6, 18)
    _write_footer(ws, row + 1, st.footer, fmt)


def _xlsx_lines(workbook, report, fmt) -> None:
    from . import reports as rp

    is_bs = isinstance(report, rp.BalanceSheet)
    ws = workbook.add_worksheet("Balance sheet" if is_bs else "Income statement")
    title = (f"Balance sheet of {report.footer.book} as of "
             f"{report.footer.as_of.isoformat() if report.footer.as_of else 'all dates'}" if is_bs
             else f"Income statement of {report.footer.book} from {report.date_from.isoformat()} "
                  f"to {report.date_to.isoformat()}")
    ws.write_string(0, 0, title, fmt["title"])
    for col, head in enumerate(["Account", "Type", "Currency", "Amount"]):
        ws.write_string(2, col, head, fmt["head"])
    row = 3
    for line in report.lines:
        ws.write_string(row, 0, line.account)
        ws.write_string(row, 1, line.type)
        ws.write_string(row, 2, line.currency)
        ws.write_number(row, 3, _num(line.amount_minor, line.currency), _money_fmt(fmt, line.currency))
        row += 1
    for cur, totals in sorted(report.totals.items()):
        for name, value in totals.items():
            ws.write_string(row, 0, f"Total {name.replace('_', ' ')}", fmt["total"])
            ws.write_string(row, 2, cur, fmt["total"])
            ws.write_number(row, 3, _num(value, cur), _money_fmt(fmt, cur, total=True))
            row += 1
    ws.set_column(0, 0, 48)
    ws.set_column(3, 3, 18)
    _write_footer(ws, row, report.footer, fmt)


__all__ = [
    "JournalRecord", "JournalPosting", "stream_journal", "iter_journal", "write_journal",
    "write_journal_csv", "write_journal_jsonl", "JOURNAL_CSV_COLUMNS", "JOURNAL_FORMATS",
    "beancount_account", "beancount_names", "write_beancount", "subtree_balances", "write_xlsx",
    "FORMULA_STARTS", "csv_text", "csv_cell", "csv_row", "csv_writer",
]
