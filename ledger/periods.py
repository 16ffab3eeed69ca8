"""Period close and balance checkpoints: what the books said, read fast.

Closing a period (``2026-11``) stores a ``closed_period`` row: from then on
no entry dated on or before its last day can be posted (the posting engine
refuses it and so does a database trigger). In the same transaction the
close writes a **balance checkpoint**: every account's posted balance at the
end of the period, computed from the previous checkpoint plus the postings
since. A closed period never changes again, so a checkpoint stays exact, and
the database refuses to update or delete one.

:func:`posted_sums` answers "every account's posted balance as of a date"
from the nearest checkpoint (before or after the date) plus or minus the
postings in between, so an as-of report over a large book reads one
period's postings instead of the whole history.

Rules of closing:

* periods close in order: closing through a date on or before the last
  close is refused (that period is already closed);
* given ``today`` (the CLI always gives it), a period that has not ended
  yet (its last day is today or later) is refused, since closing it would
  refuse today's postings;
* the close seals every queued entry, so every entry of a closed period
  has its link in the hash chain;
* checkpoints are written at closes only: a checkpoint inside an open
  period could be overtaken by a backdated entry, one at a close cannot;
* on PostgreSQL the close takes a ``SHARE`` lock on ``journal_entry``: it
  waits for writers in flight to commit and holds new ones back until the
  close commits, so no entry can slip into the period after the checkpoint
  was computed. This needs the table owner (not the writer role).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, insert, literal, select, text, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from . import chain
from . import models as m
from .accounts import utcnow
from .errors import InputError, PeriodCloseError
from .postings import CLOSE_KIND, RECORD_KEY_PREFIX, Draft, write


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """A close of a book.

    Attributes:
        label: the period's name (``2026-11``).
        closed_through: last effective date of the period.
        closed_at: UTC time of the close.
        closed_by: who closed it, if given.
        checkpointed_accounts: accounts with a balance checkpoint at the close.
        open_pending: pending entries dated in the closed periods and not completed yet
            (ids, the first :data:`OPEN_PENDING_SHOWN`): each is completed later with a
            date after the close.
    """

    label: str
    closed_through: dt.date
    closed_at: dt.datetime
    closed_by: str | None
    checkpointed_accounts: int
    open_pending: tuple[int, ...] = ()


#: How many open pending entries a close names at most (:attr:`ClosedPeriod.open_pending`).
OPEN_PENDING_SHOWN = 100

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_period(value: str) -> tuple[str, dt.date]:
    """``2026-11`` (a month), ``2026`` (a year) or ``2026-11-15`` (through a day) -> (label, last day)."""
    value = value.strip()
    try:
        if match := _MONTH.match(value):
            year, month = int(match[1]), int(match[2])
            return value, dt.date(year, month, calendar.monthrange(year, month)[1])
        if _YEAR.match(value):
            return value, dt.date(int(value), 12, 31)
        return value, dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise InputError(f"period {value!r}: expected YYYY-MM, YYYY or YYYY-MM-DD", period=value)


def close_period(conn: Connection, book_id: int, through: dt.date, label: str,
                 closed_by: str | None = None, *, today: dt.date | None = None) -> ClosedPeriod:
    """Close the book through ``through`` and write its balance checkpoint.

    With ``today`` given, a period that has not ended by then is refused
    (the CLI passes today's UTC date).
    """
    if today is not None and through >= today:
        raise PeriodCloseError(
            f"period {label} runs through {through}, which has not ended (today is {today})",
            label=label, closed_through=through)
    if conn.dialect.name == "postgresql":
        # Wait for writers in flight; hold new ones until this close commits.
        try:
            conn.execute(text("LOCK TABLE journal_entry IN SHARE MODE"))
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) != "42501":
                raise
            raise PeriodCloseError(
                f"closing period {label} needs the ledger owner's rights (the writer and auditor "
                "roles cannot close a period)", label=label, closed_through=through) from exc
    last = last_close(conn, book_id)
    if last is not None and through <= last:
        raise PeriodCloseError(
            f"the book is already closed through {last}; period {label} (through {through}) "
            "is closed", label=label, closed_through=through, last_closed_through=last)
    # The close itself goes into the hash chain: an entry without postings dated the
    # period's last day (written before the close's row, which refuses such dates), so
    # deleting the close's rows behind the database's back no longer goes unseen.
    record = write(conn, book_id, [Draft(
        (), f"{RECORD_KEY_PREFIX}{through.isoformat()}", CLOSE_KIND, through,
        metadata={"closed_through": through.isoformat(), "label": label, "closed_by": closed_by},
        record=True)], records=True)[0]
    if record.replayed:
        raise PeriodCloseError(f"the key of the close of {through} is taken by entry {record.id}",
                               label=label, closed_through=through, entry_id=record.id)
    now = utcnow()
    period_id = conn.execute(insert(m.ClosedPeriod).values(
        book_id=book_id, closed_through=through, label=label, closed_at=now,
        closed_by=closed_by).returning(m.ClosedPeriod.id)).scalar_one()
    written = _write_checkpoint(conn, book_id, period_id, through)
    chain.seal(conn, book_id)  # every entry of the closed periods gets its link now
    completion = m.JournalEntry.__table__.alias("completion")
    open_pending = tuple(conn.execute(
        select(m.JournalEntry.id).where(
            m.JournalEntry.book_id == book_id, m.JournalEntry.phase == "pending",
            m.JournalEntry.effective_date <= through,
            ~exists().where(completion.c.pending_id == m.JournalEntry.id))
        .order_by(m.JournalEntry.id).limit(OPEN_PENDING_SHOWN)).scalars())
    return ClosedPeriod(label, through, now, closed_by, written, open_pending)


def _write_checkpoint(conn: Connection, book_id: int, period_id: int, through: dt.date) -> int:
    """Checkpoint = previous checkpoint + posted postings since, per account (one INSERT ... SELECT)."""
    previous = conn.execute(
        select(func.max(m.BalanceCheckpoint.as_of_date))
        .where(m.BalanceCheckpoint.book_id == book_id, m.BalanceCheckpoint.as_of_date < through)
    ).scalar()
    carried = (
        select(m.BalanceCheckpoint.account_id.label("account_id"),
               m.BalanceCheckpoint.posted_minor.label("amount"))
        .where(m.BalanceCheckpoint.book_id == book_id, m.BalanceCheckpoint.as_of_date == previous)
    )
    moved = _posting_sums_query(book_id, previous, through, grouped=False)
    parts = union_all(carried, moved) if previous is not None else moved
    sub = parts.subquery()
    source = (
        select(literal(book_id), literal(through), sub.c.account_id, literal(period_id),
               func.sum(sub.c.amount))
        .group_by(sub.c.account_id)
    )
    result = conn.execute(insert(m.BalanceCheckpoint).from_select(
        ["book_id", "as_of_date", "account_id", "closed_period_id", "posted_minor"], source))
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else 0


def last_close(conn: Connection, book_id: int) -> dt.date | None:
    """The last date the book is closed through, or None."""
    return conn.execute(
        select(func.max(m.ClosedPeriod.closed_through)).where(m.ClosedPeriod.book_id == book_id)
    ).scalar()


def list_periods(conn: Connection, book_id: int) -> list[ClosedPeriod]:
    """Every close of the book, oldest first."""
    counts = (
        select(m.BalanceCheckpoint.closed_period_id, func.count().label("n"))
        .group_by(m.BalanceCheckpoint.closed_period_id).subquery()
    )
    rows = conn.execute(
        select(m.ClosedPeriod.label, m.ClosedPeriod.closed_through, m.ClosedPeriod.closed_at,
               m.ClosedPeriod.closed_by, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.closed_period_id == m.ClosedPeriod.id)
        .where(m.ClosedPeriod.book_id == book_id).order_by(m.ClosedPeriod.closed_through)
    )
    return [ClosedPeriod(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


def _posting_sums_query(book_id: int, after: dt.date | None, through: dt.date | None, *,
                        grouped: bool = True):
    """Posted postings of the book dated in (after, through]: per account, or row by row."""
    cond = [m.Account.book_id == book_id, m.Posting.is_pending.is_(False)]
    if after is not None:
        cond.append(m.Posting.effective_date > after)
    if through is not None:
        cond.append(m.Posting.effective_date <= through)
    amount = func.sum(m.Posting.amount_minor) if grouped else m.Posting.amount_minor
    query = (select(m.Posting.account_id.label("account_id"), amount.label("amount"))
             .join(m.Account, m.Account.id == m.Posting.account_id).where(and_(*cond)))
    return query.group_by(m.Posting.account_id) if grouped else query


def nearest_checkpoints(conn: Connection, book_id: int,
                        as_of: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """(latest checkpoint on or before ``as_of``, earliest one after it), in one query."""
    dates = m.BalanceCheckpoint.as_of_date
    mine = m.BalanceCheckpoint.book_id == book_id
    before = select(func.max(dates)).where(mine, dates <= as_of).scalar_subquery()
    after = select(func.min(dates)).where(mine, dates > as_of).scalar_subquery()
    return tuple(conn.execute(select(before, after)).one())


def _cost_from_before(conn: Connection, book_id: int, as_of: dt.date,
                      before: dt.date | None) -> dt.timedelta:
    """Days of postings to read going forward (from a checkpoint, or from the first entry)."""
    if before is not None:
        return as_of - before
    first = conn.execute(select(func.min(m.JournalEntry.effective_date))
                         .where(m.JournalEntry.book_id == book_id)).scalar()
    return as_of - first if first is not None and first <= as_of else dt.timedelta(0)


def posted_sums(conn: Connection, book_id: int, as_of: dt.date | None = None) -> dict[int, int]:
    """Posted balance (debit positive) of every account with postings, as of ``as_of``.

    Reads the nearest checkpoint and the postings between it and ``as_of``:
    ``checkpoint + postings in (checkpoint, as_of]`` from one before, or
    ``checkpoint - postings in (as_of, checkpoint]`` from one after. Both
    are exact because a checkpoint's period is closed. Accounts whose
    balance came back to zero may appear with 0.
    """
    if as_of is None:
        before = conn.execute(select(func.max(m.BalanceCheckpoint.as_of_date))
                              .where(m.BalanceCheckpoint.book_id == book_id)).scalar()
        use_after = False
    else:
        before, after = nearest_checkpoints(conn, book_id, as_of)
        use_after = after is not None and (after - as_of) < _cost_from_before(
            conn, book_id, as_of, before)
    if use_after:
        return _from_checkpoint(conn, book_id, after, as_of, after, -1)
    return _from_checkpoint(conn, book_id, before, before, as_of, 1)


def _from_checkpoint(conn: Connection, book_id: int, checkpoint: dt.date | None,
                     after: dt.date | None, through: dt.date | None, sign: int) -> dict[int, int]:
    """checkpoint + sign * postings in (after, through], per account, in one query."""
    moved = _posting_sums_query(book_id, after, through, grouped=False)
    if sign < 0:
        sub = moved.subquery()
        moved = select(sub.c.account_id, (-sub.c.amount).label("amount"))
    if checkpoint is not None:
        carried = (select(m.BalanceCheckpoint.account_id.label("account_id"),
                          m.BalanceCheckpoint.posted_minor.label("amount"))
                   .where(m.BalanceCheckpoint.book_id == book_id,
                          m.BalanceCheckpoint.as_of_date == checkpoint))
        parts = union_all(carried, moved).subquery()
    else:
        parts = moved.subquery()
    rows = conn.execute(select(parts.c.account_id, func.sum(parts.c.amount))
                        .group_by(parts.c.account_id))
    return {account_id: int(total) for account_id, total in rows}


def account_posted_sum(conn: Connection, book_id: int, account_id: int, as_of: dt.date) -> int:
    """One account's posted balance (debit positive) as of ``as_of``: checkpoint + postings since."""
    before = conn.execute(
        select(func.max(m.BalanceCheckpoint.as_of_date))
        .where(m.BalanceCheckpoint.book_id == book_id, m.BalanceCheckpoint.as_of_date <= as_of)
    ).scalar()
    total = 0
    cond = [m.Posting.account_id == account_id, m.Posting.is_pending.is_(False),
            m.Posting.effective_date <= as_of]
    if before is not None:
        total = conn.execute(
            select(m.BalanceCheckpoint.posted_minor).where(
                m.BalanceCheckpoint.book_id == book_id, m.BalanceCheckpoint.as_of_date == before,
                m.BalanceCheckpoint.account_id == account_id)
        ).scalar() or 0
        cond.append(m.Posting.effective_date > before)
    moved = conn.execute(select(func.coalesce(func.sum(m.Posting.amount_minor), 0)).where(*cond))
    return int(total) + int(moved.scalar_one())


__all__ = ["ClosedPeriod", "account_posted_sum", "parse_period", "close_period", "last_close", "list_periods",
           "posted_sums", "nearest_checkpoints"]
