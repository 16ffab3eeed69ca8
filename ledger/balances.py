"""Balances from postings: posted, pending and available, as of any date.

The postings are the truth. A balance is the sum of an account's postings
(debit positive), shown on the account's normal side. ``pending`` is the sum
of postings of pending entries not yet committed or voided; ``available`` is
the posted balance less the holds those pending entries place (pending
money coming in is not available until posted).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.engine import Connection

from . import models as m
from .accounts import Account

BALANCE_KINDS = ("posted", "pending", "available")


#: Built once: an alias proxies every column, which costs more than the query itself.
_COMPLETION = m.JournalEntry.__table__.alias("completion")


def _resolved(as_of: dt.date | None):
    """A pending posting's entry has been committed or voided (by ``as_of``)."""
    completion = _COMPLETION
    cond = completion.c.pending_id == m.Posting.entry_id
    if as_of is not None:
        cond = and_(cond, completion.c.effective_date <= as_of)
    return exists().where(cond)


def raw_sums(conn: Connection, account: Account, as_of: dt.date | None = None) -> tuple[int, int, int]:
    """(posted, open pending, open holds) in minor units, debit positive except holds."""
    pending, holds = _open_pending_sums(conn, account, as_of)
    return _posted_sum(conn, account, as_of), pending, holds


def _through(account: Account, as_of: dt.date | None) -> list:
    base = [m.Posting.account_id == account.id]
    if as_of is not None:
        base.append(m.Posting.effective_date <= as_of)
    return base


def _posted_sum(conn: Connection, account: Account, as_of: dt.date | None) -> int:
    """The account's posted postings summed (debit positive)."""
    return int(conn.execute(
        select(func.coalesce(func.sum(m.Posting.amount_minor), 0))
        .where(*_through(account, as_of), m.Posting.is_pending.is_(False))
    ).scalar_one())


def _open_pending_sums(conn: Connection, account: Account,
                       as_of: dt.date | None) -> tuple[int, int]:
    """(open pending, open holds): the account's postings of pending entries not yet
    committed or voided, summed (debit positive), and the part of them on the
    account's other side (money held)."""
    normal = account.sign * m.Posting.amount_minor
    pending, holds = conn.execute(
        select(
            func.coalesce(func.sum(m.Posting.amount_minor), 0),
            func.coalesce(func.sum(case((normal < 0, -normal), else_=0)), 0),
        ).where(*_through(account, as_of), m.Posting.is_pending.is_(True), ~_resolved(as_of))
    ).one()
    return int(pending), int(holds)


def balance_minor(conn: Connection, account: Account, kind: str = "posted",
                  as_of: dt.date | None = None) -> int:
    """The balance on the account's normal side, in minor units (each kind reads only
    the postings it sums)."""
    if kind not in BALANCE_KINDS:
        from .errors import LedgerError

        raise LedgerError(f"unknown balance kind {kind!r}; one of {', '.join(BALANCE_KINDS)}",
                          kind=kind)
    if kind == "posted":
        return account.sign * _posted_sum(conn, account, as_of)
    pending, holds = _open_pending_sums(conn, account, as_of)
    if kind == "pending":
        return account.sign * pending
    return account.sign * _posted_sum(conn, account, as_of) - holds


def balances_by_account(conn: Connection, book_id: int, as_of: dt.date | None = None) -> dict[int, int]:
    """Posted sums (debit positive) of every account of the book that has postings."""
    query = (
        select(m.Posting.account_id, func.sum(m.Posting.amount_minor))
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .where(m.Account.book_id == book_id, m.Posting.is_pending.is_(False))
        .group_by(m.Posting.account_id)
    )
    if as_of is not None:
        query = query.where(m.Posting.effective_date <= as_of)
    return {account_id: int(total) for account_id, total in conn.execute(query)}
