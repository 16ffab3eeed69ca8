"""Auditor reports as of any date: trial balance, statements, balance sheet, income.

Every report is an immutable value built from the postings (never from a
stored running balance) and carries a :class:`Footer` that pins down what
it covers: the book, the as-of date, the last entry included in chain order
and the chain hash at that link (anyone can recompute the chain up to it
with ``ledger verify``), how many included entries were not sealed yet, and
when the report was produced. Balances as of a date come from the nearest
period-close checkpoint plus the postings in between
(:func:`ledger.periods.posted_sums`). Only posted postings count; pending
entries are holds, not balances.

Amounts are signed integers in minor units, debit positive, unless a field
says it is on the account's normal side. ``to_dict`` methods give JSON-ready
data: minor-unit integers and exact decimal strings side by side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from . import chain
from . import models as m
from . import periods
from .accounts import normal_sign
from .errors import ReportError
from .money import format_minor

BALANCE_SHEET_TYPES = ("asset", "liability", "equity")
INCOME_TYPES = ("income", "expense")


def money(minor: int, currency: str) -> dict:
    """``{"minor": 12345, "amount": "123.45"}``: exact, no floats."""
    return {"minor": int(minor), "amount": format_minor(int(minor), currency)}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)


# --- footer ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Footer:
    """What a report covers and how to check it.

    Attributes:
        book: the book's name.
        as_of: the last effective date included (None: everything).
        last_entry_id: the included entry sealed last (highest chain link), or None.
        chain_seq: that entry's link number in the chain.
        chain_hash: the chain hash at that link (64 zeros when nothing is sealed).
        unsealed_entries: included entries not yet linked into the chain.
        produced_at: UTC time the report was made.
    """

    book: str
    as_of: dt.date | None
    last_entry_id: int | None
    chain_seq: int
    chain_hash: str
    unsealed_entries: int
    produced_at: dt.datetime

    def lines(self) -> list[str]:
        """The footer as text lines."""
        last = (f"entry {self.last_entry_id} (chain link {self.chain_seq})"
                if self.last_entry_id is not None else "none")
        out = [f"book: {self.book}",
               f"as of: {self.as_of.isoformat() if self.as_of else 'all dates'}",
               f"last entry included: {last}",
               f"chain hash at that point: {self.chain_hash}",
               f"produced at: {self.produced_at.isoformat()}Z"]
        if self.unsealed_entries:
            out.insert(4, f"not yet sealed: {self.unsealed_entries} included entries")
        return out

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"book": self.book, "as_of": self.as_of.isoformat() if self.as_of else None,
                "last_entry_id": self.last_entry_id, "chain_seq": self.chain_seq,
                "chain_hash": self.chain_hash, "unsealed_entries": self.unsealed_entries,
                "produced_at": self.produced_at.isoformat() + "Z"}


def footer(conn: Connection, book_id: int, book_name: str, as_of: dt.date | None) -> Footer:
    """The footer of a report as of ``as_of`` (read in the report's own transaction, one query).

    The last entry included is the one linked last into the chain among the
    entries dated on or before ``as_of``, found from ``chain_day`` (one row
    per date, kept by the sealer) rather than from the entries themselves.
    """
    days = select(func.max(m.ChainDay.last_seq)).where(m.ChainDay.book_id == book_id)
    unsealed = (select(func.count()).select_from(m.SealQueue)
                .join(m.JournalEntry, m.JournalEntry.id == m.SealQueue.entry_id)
                .where(m.SealQueue.book_id == book_id))
    if as_of is not None:
        days = days.where(m.ChainDay.effective_date <= as_of)
        unsealed = unsealed.where(m.JournalEntry.effective_date <= as_of)
    seq = days.scalar_subquery()
    link = (select(m.ChainLink.entry_id, m.ChainLink.chain_hash)
            .where(m.ChainLink.book_id == book_id, m.ChainLink.seq == seq))
    row = conn.execute(select(
        seq.label("seq"), unsealed.scalar_subquery().label("unsealed"),
        link.with_only_columns(m.ChainLink.entry_id).scalar_subquery().label("entry_id"),
        link.with_only_columns(m.ChainLink.chain_hash).scalar_subquery().label("chain_hash"),
    )).one()
    return Footer(book_name, as_of, row.entry_id, int(row.seq or 0),
                  row.chain_hash or chain.GENESIS, int(row.unsealed), _utcnow())


# --- accounts ----------------------------------------------------------------------
class _Acct(NamedTuple):
    id: int
    code: str
    type: str
    currency: str


def _accounts(conn: Connection, book_id: int) -> dict[int, _Acct]:
    rows = conn.execute(select(m.Account.id, m.Account.code, m.Account.type, m.Account.currency)
                        .where(m.Account.book_id == book_id))
    return {r[0]: _Acct._make(r) for r in rows}


def rollup_code(code: str, depth: int | None) -> str:
    """``liabilities:users:u1:available`` at depth 2 -> ``liabilities:users``."""
    if not depth:
        return code
    return ":".join(code.split(":")[:depth])


# --- trial balance -----------------------------------------------------------------
class TrialBalanceRow(NamedTuple):
    """One line of a trial balance.

    Attributes:
        account: account code, or a code prefix when rolled up.
        type: the account type, or ``mixed`` when a prefix covers several.
        currency: ISO code.
        balance_minor: net balance, debit positive.
        accounts: how many accounts the line sums.
    """

    account: str
    type: str
    currency: str
    balance_minor: int
    accounts: int = 1

    @property
    def debit_minor(self) -> int:
        """The balance when it is a debit, else 0."""
        return self.balance_minor if self.balance_minor > 0 else 0

    @property
    def credit_minor(self) -> int:
        """The balance when it is a credit (as a positive number), else 0."""
        return -self.balance_minor if self.balance_minor < 0 else 0

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"account": self.account, "type": self.type, "currency": self.currency,
                "accounts": self.accounts,
                "debit": money(self.debit_minor, self.currency),
                "credit": money(self.credit_minor, self.currency)}


@dataclass(frozen=True)
class TrialBalance:
    """Every account's balance as of a date, debits and credits side by side.

    Attributes:
        footer: what the report covers.
        depth: roll-up depth (None: every account).
        rows: the lines, by currency then code.
        totals: per currency ``(debit_minor, credit_minor)``; always equal.
    """

    footer: Footer
    depth: int | None
    rows: tuple[TrialBalanceRow, ...]
    totals: dict = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """True when debits equal credits in every currency."""
        return all(d == c for d, c in self.totals.values())

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"report": "trial_balance", "depth": self.depth,
                "rows": [r.to_dict() for r in self.rows],
                "totals": {cur: {"debit": money(d, cur), "credit": money(c, cur)}
                           for cur, (d, c) in sorted(self.totals.items())},
                "balanced": self.balanced, "footer": self.footer.to_dict()}


def trial_balance(book, as_of: dt.date | None = None, depth: int | None = None, *,
                  include_zero: bool = False) -> TrialBalance:
    """The trial balance of ``book`` as of ``as_of`` (all dates when None).

    ``depth`` rolls accounts up to their first ``depth`` code segments.
    Accounts with a zero balance are left out unless ``include_zero``.
    """
    if depth is not None and depth < 1:
        raise ReportError(f"depth must be at least 1, got {depth}", depth=depth)
    with book.reading() as conn:
        accounts = _accounts(conn, book.book_id)
        sums = periods.posted_sums(conn, book.book_id, as_of)
        foot = footer(conn, book.book_id, book.name, as_of)
    return build_trial_balance(accounts.values(), sums, foot, depth, include_zero=include_zero)


def build_trial_balance(accounts: Iterable[_Acct], sums: dict[int, int], foot: Footer,
                        depth: int | None, *, include_zero: bool = False) -> TrialBalance:
    """Roll balances up into trial-balance lines (a pure function)."""
    lines: dict[tuple[str, str], list] = {}
    for a in accounts:
        balance = sums.get(a.id, 0)
        if not balance and not include_zero:
            continue
        key = (a.currency, rollup_code(a.code, depth) if depth else a.code)
        line = lines.get(key)
        if line is None:
            lines[key] = [a.type, balance, 1]
        else:
            if line[0] != a.type:
                line[0] = "mixed"
            line[1] += balance
            line[2] += 1
    rows = []
    totals: dict[str, list[int]] = {}
    for key in sorted(lines):
        type_, balance, count = lines[key]
        if not balance and not include_zero:
            continue
        currency = key[0]
        rows.append(TrialBalanceRow(key[1], type_, currency, balance, count))
        total = totals.setdefault(currency, [0, 0])
        total[0 if balance > 0 else 1] += abs(balance)
    totals = {cur: (d, c) for cur, (d, c) in totals.items()}
    return TrialBalance(foot, depth, tuple(rows), totals)


# --- account statement -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Movement:
    """One posting on an account statement.

    Attributes:
        effective_date: the entry's date.
        entry_id: the entry.
        kind: its business kind.
        external_ref: bank serial or order id.
        memo: its memo.
        amount_minor: signed, on the account's normal side (positive raises the balance).
        balance_minor: running balance after it, on the normal side.
    """

    effective_date: dt.date
    entry_id: int
    kind: str
    external_ref: str | None
    memo: str | None
    amount_minor: int
    balance_minor: int


@dataclass(frozen=True)
class AccountStatement:
    """Opening balance, each movement with the running balance, closing balance.

    Attributes:
        account: the account code.
        type: its type.
        currency: its currency.
        date_from: first date covered.
        date_to: last date covered.
        opening_minor: balance at the end of the day before ``date_from`` (normal side).
        closing_minor: balance at the end of ``date_to`` (normal side).
        movements: the posted movements, by date then entry.
        footer: what the report covers.
    """

    account: str
    type: str
    currency: str
    date_from: dt.date
    date_to: dt.date
    opening_minor: int
    closing_minor: int
    movements: tuple[Movement, ...]
    footer: Footer

    def to_dict(self) -> dict:
        """JSON-ready."""
        cur = self.currency
        return {"report": "statement", "account": self.account, "type": self.type,
                "currency": cur, "from": self.date_from.isoformat(), "to": self.date_to.isoformat(),
                "opening": money(self.opening_minor, cur), "closing": money(self.closing_minor, cur),
                "movements": [{"date": mv.effective_date.isoformat(), "entry_id": mv.entry_id,
                               "kind": mv.kind, "external_ref": mv.external_ref, "memo": mv.memo,
                               "amount": money(mv.amount_minor, cur),
                               "balance": money(mv.balance_minor, cur)} for mv in self.movements],
                "footer": self.footer.to_dict()}


def account_statement(book, code: str, date_from: dt.date, date_to: dt.date) -> AccountStatement:
    """The statement of one account over ``[date_from, date_to]``."""
    from .accounts import get_account

    check_range(date_from, date_to)
    with book.reading() as conn:
        account = get_account(conn, book.book_id, code)
        sign = normal_sign(account.type)
        before = day_before(date_from)
        opening = 0 if before is None else sign * periods.account_posted_sum(
            conn, book.book_id, account.id, before)
        rows = conn.execute(
            select(m.Posting.effective_date, m.Posting.entry_id, m.JournalEntry.kind,
                   m.JournalEntry.external_ref, m.JournalEntry.memo, m.Posting.amount_minor)
            .join(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id)
            .where(m.Posting.account_id == account.id, m.Posting.is_pending.is_(False),
                   m.Posting.effective_date >= date_from, m.Posting.effective_date <= date_to)
            .order_by(m.Posting.effective_date, m.Posting.entry_id, m.Posting.position)
        )
        running = opening
        movements = []
        for r in rows:
            amount = sign * int(r.amount_minor)
            running += amount
            movements.append(Movement(r.effective_date, r.entry_id, r.kind, r.external_ref,
                                      r.memo, amount, running))
        foot = footer(conn, book.book_id, book.name, date_to)
    return AccountStatement(code, account.type, account.currency, date_from, date_to, opening,
                            running, tuple(movements), foot)


def check_range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    """Refuse a period that starts after it ends (an open end is never refused)."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ReportError(f"the period starts ({date_from}) after it ends ({date_to})",
                          date_from=date_from, date_to=date_to)


def day_before(day: dt.date) -> dt.date | None:
    """The day before ``day``; None for the earliest date (nothing can be dated before it)."""
    return None if day == dt.date.min else day - dt.timedelta(days=1)


# --- balance sheet and income statement ---------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    """One account on a balance sheet or income statement.

    Attributes:
        account: code (or prefix when rolled up).
        type: asset, liability, equity, income or expense.
        currency: ISO code.
        amount_minor: on the type's normal side (an asset's debit balance is positive).
    """

    account: str
    type: str
    currency: str
    amount_minor: int

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"account": self.account, "type": self.type, "currency": self.currency,
                "amount": money(self.amount_minor, self.currency)}


def _lines(accounts: dict[int, _Acct], sums: dict[int, int], types: tuple[str, ...],
           depth: int | None) -> tuple[Line, ...]:
    grouped: dict[tuple[str, str, str], int] = {}
    for account_id, balance in sums.items():
        a = accounts.get(account_id)
        if a is None or a.type not in types or not balance:
            continue
        key = (a.type, a.currency, rollup_code(a.code, depth))
        grouped[key] = grouped.get(key, 0) + normal_sign(a.type) * balance
    order = {t: i for i, t in enumerate(types)}
    return tuple(Line(code, type_, cur, amount) for (type_, cur, code), amount
                 in sorted(grouped.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2]))
                 if amount)


def _total(lines: Iterable[Line], type_: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        if line.type == type_:
            out[line.currency] = out.get(line.currency, 0) + line.amount_minor
    return out


@dataclass(frozen=True)
class BalanceSheet:
    """Assets, liabilities and equity as of a date; checked to balance.

    Income and expenses are never closed into equity by entries here, so
    the earnings to date appear as their own line: per currency,
    ``assets = liabilities + equity + net_income``. Memo accounts are off
    balance sheet and left out.

    Attributes:
        footer: what the report covers.
        lines: asset, liability and equity lines on their normal sides.
        totals: per currency ``{"asset", "liability", "equity", "net_income", "difference"}``
            in minor units; ``difference`` is zero when the sheet balances.
    """

    footer: Footer
    lines: tuple[Line, ...]
    totals: dict

    @property
    def balanced(self) -> bool:
        """True when assets = liabilities + equity + net income in every currency."""
        return all(t["difference"] == 0 for t in self.totals.values())

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"report": "balance_sheet", "lines": [ln.to_dict() for ln in self.lines],
                "totals": {cur: {k: money(v, cur) for k, v in t.items()}
                           for cur, t in sorted(self.totals.items())},
                "balanced": self.balanced, "footer": self.footer.to_dict()}


def balance_sheet(book, as_of: dt.date | None = None, depth: int | None = None) -> BalanceSheet:
    """The balance sheet as of ``as_of``."""
    with book.reading() as conn:
        accounts = _accounts(conn, book.book_id)
        sums = periods.posted_sums(conn, book.book_id, as_of)
        foot = footer(conn, book.book_id, book.name, as_of)
    lines = _lines(accounts, sums, BALANCE_SHEET_TYPES, depth)
    earnings = _lines(accounts, sums, INCOME_TYPES, None)
    income, expense = _total(earnings, "income"), _total(earnings, "expense")
    assets, liabilities, equity = (_total(lines, t) for t in BALANCE_SHEET_TYPES)
    totals = {}
    for cur in sorted(set(assets) | set(liabilities) | set(equity) | set(income) | set(expense)):
        net = income.get(cur, 0) - expense.get(cur, 0)
        a, li, eq = assets.get(cur, 0), liabilities.get(cur, 0), equity.get(cur, 0)
        totals[cur] = {"asset": a, "liability": li, "equity": eq, "net_income": net,
                       "difference": a - li - eq - net}
    return BalanceSheet(foot, lines, totals)


@dataclass(frozen=True)
class IncomeStatement:
    """Income and expenses of a period, and the net income.

    Attributes:
        date_from: first date of the period.
        date_to: last date.
        footer: what the report covers (as of ``date_to``).
        lines: income and expense movements of the period, on their normal sides.
        totals: per currency ``{"income", "expense", "net_income"}`` in minor units.
    """

    date_from: dt.date
    date_to: dt.date
    footer: Footer
    lines: tuple[Line, ...]
    totals: dict

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"report": "income_statement", "from": self.date_from.isoformat(),
                "to": self.date_to.isoformat(), "lines": [ln.to_dict() for ln in self.lines],
                "totals": {cur: {k: money(v, cur) for k, v in t.items()}
                           for cur, t in sorted(self.totals.items())},
                "footer": self.footer.to_dict()}


def income_statement(book, date_from: dt.date, date_to: dt.date,
                     depth: int | None = None) -> IncomeStatement:
    """Income and expenses over ``[date_from, date_to]`` (balance at the end less at the start)."""
    check_range(date_from, date_to)
    with book.reading() as conn:
        accounts = _accounts(conn, book.book_id)
        end = periods.posted_sums(conn, book.book_id, date_to)
        before = day_before(date_from)
        start = {} if before is None else periods.posted_sums(conn, book.book_id, before)
        foot = footer(conn, book.book_id, book.name, date_to)
    moved = {a: end.get(a, 0) - start.get(a, 0) for a in set(end) | set(start)}
    lines = _lines(accounts, moved, INCOME_TYPES, depth)
    income, expense = _total(lines, "income"), _total(lines, "expense")
    totals = {cur: {"income": income.get(cur, 0), "expense": expense.get(cur, 0),
                    "net_income": income.get(cur, 0) - expense.get(cur, 0)}
              for cur in sorted(set(income) | set(expense))}
    return IncomeStatement(date_from, date_to, foot, lines, totals)


__all__ = [
    "Footer", "footer", "TrialBalance", "TrialBalanceRow", "trial_balance", "build_trial_balance",
    "Movement", "AccountStatement", "account_statement", "Line", "BalanceSheet", "balance_sheet",
    "IncomeStatement", "income_statement", "money", "rollup_code", "check_range", "day_before",
]
