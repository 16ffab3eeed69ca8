"""Verification of a whole book: nothing altered, everything adds up.

:func:`verify_book` recomputes, without trusting anything stored:

* the hash chain, link by link: each entry's content hash from its header
  and postings as they are now, each link from the one before;
* that every entry is either linked or waiting in the seal queue;
* that every entry's postings match its header (their count and effective date) and
  their accounts (the currency), and sum to zero per currency;
* that every stored no-overdraft balance equals the sum of its postings and
  open holds, and none is below zero;
* that all posted postings sum to zero per currency;
* that every closed account holds nothing (no balance, no open hold) and no
  entry written after its close moved it;
* the custody invariant: the custody bank account(s) equal what is held for
  users and the platform (liabilities + equity + income - expenses);
* every loan: each party's memo claim equals the principal the loan still
  owes it, its memo penalty account the penalties it still owes; the loan's
  plan and the dues its disbursement wrote are what its stored terms make
  them; every due names the entry that wrote it, and what the dues of a
  repayment, compensation, penalty accrual or claim transfer say moved is
  what that entry moved (party by party, management fee included); no
  loan entry is without its dues;
* that every period close is recorded in the hash chain and every record has
  its close, and no entry linked after a close is dated in its period;
* that every period-close balance checkpoint equals the postings through
  its date, and every ``chain_day`` row names the last link of its date
  (as-of reports trust them).

It reports every problem found, each naming the entry or account and what
differs; ``report.first`` is the earliest.
"""

from __future__ import annotations

import json
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.engine import Connection

from . import chain
from . import models as m
from .accounts import CREDIT_NORMAL, DEBIT_NORMAL
from .errors import LedgerError
from .money import format_minor

CHUNK = 2000
LOAN_CHUNK = 100   # loans whose dues are read at once: a loan of 50 investors has ~1,200
DEFAULT_CUSTODY_PREFIX = "assets:custody"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing verification found wrong.

    Attributes:
        check: which check found it (chain, entry, balance, totals, custody).
        message: what differs, in words.
        entry_id: the entry concerned, if any.
        account: the account concerned, if any.
    """

    check: str
    message: str
    entry_id: int | None = None
    account: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_book`.

    Attributes:
        book: book name.
        entries: entries checked in the chain.
        sealed_now: entries sealed at the start of the run.
        chain_head: last chain hash (what an auditor writes down).
        custody: the custody invariant's figures, minor units by currency.
        problems: everything found wrong, earliest first.
        accounts_anchor: ``"<highest account id>:<digest>"`` of the chart of accounts
            (:func:`accounts_digest`), written down beside the chain head: the
            entries' hashes cover account ids, the digest what each id means.
        head_seq: the chain's last link (with :attr:`chain_head`, what an auditor
            writes down as ``SEQ:HASH``; 0 for an empty chain).
    """

    book: str
    entries: int
    sealed_now: int
    chain_head: str
    custody: dict = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    accounts_anchor: str = ""
    head_seq: int = 0

    @property
    def chain_anchor(self) -> str:
        """``"<last link>:<its hash>"``: the chain head as :func:`verify_book` takes it back."""
        return f"{self.head_seq}:{self.chain_head}"

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first problem, or None."""
        return self.problems[0] if self.problems else None


def verify_book(book, *, seal: bool = True, from_entry: int | None = None,
                custody_prefix: str = DEFAULT_CUSTODY_PREFIX,
                accounts_anchor: str | None = None, chain_anchor: str | None = None) -> VerifyReport:
    """Verify ``book`` (a :class:`ledger.book.Book`); see the module docstring.

    ``accounts_anchor``: an earlier report's :attr:`VerifyReport.accounts_anchor`; the
    accounts it covers must still be exactly what they were then.
    ``chain_anchor``: an earlier report's :attr:`VerifyReport.chain_anchor` (``SEQ:HASH``);
    that link must still be in the chain with that hash. The hashes use no secret: only
    a head kept outside the database shows entries cut from the end of the chain, or a
    chain recomputed from an altered entry on.
    """
    sealed_now = book.seal() if seal else 0
    with book.reading() as conn:
        problems: list[Problem] = []
        anchor = _accounts(conn, book.book_id, accounts_anchor or None, problems)
        if chain_anchor:
            _check_chain_anchor(conn, book.book_id, chain_anchor, problems)
        count, head = _check_chain(conn, book.book_id, from_entry, problems)
        head_seq = chain.chain_head(conn, book.book_id)[0]
        _check_unlinked(conn, book.book_id, problems)
        _check_entries(conn, book.book_id, problems)
        _check_stored_forms(conn, book.book_id, problems)
        _check_stored_balances(conn, book.book_id, problems)
        _check_totals(conn, book.book_id, problems)
        _check_closed_accounts(conn, book.book_id, problems)
        custody = _check_custody(conn, book.book_id, custody_prefix, problems)
        _check_loan_claims(conn, book.book_id, problems)
        _check_checkpoints(conn, book.book_id, problems)
        _check_closes(conn, book.book_id, problems)
        _check_chain_days(conn, book.book_id, problems)
    return VerifyReport(book.name, count, sealed_now, head, custody, tuple(problems), anchor,
                        head_seq)


def accounts_digest(conn: Connection, book_id: int,
                    through_id: int | None = None) -> tuple[int, str, str | None]:
    """SHA-256 of the identity of every account of the book, in id order: id, code, type,
    currency, the no-overdraft rule and the opening time. Accounts are only ever added
    (migration 0010), so a digest written down stays true.

    Returns ``(highest id, digest of all, digest up to id through_id)`` in one pass over
    the accounts (the last is None without ``through_id``).
    """
    digest, last, upto = hashlib.sha256(), 0, None
    for row in conn.execute(select(m.Account.id, m.Account.code, m.Account.type, m.Account.currency,
                                   m.Account.is_no_overdraft, m.Account.opened_at)
                            .where(m.Account.book_id == book_id).order_by(m.Account.id)):
        i, code, type_, currency, no_overdraft, opened = row
        if through_id is not None and upto is None and i > through_id:
            upto = digest.hexdigest()
        digest.update(chain.canonical_json(
            [int(i), code, type_, currency, bool(no_overdraft),
             opened.isoformat(timespec="microseconds")]).encode() + b"\n")
        last = int(i)
    full = digest.hexdigest()
    return last, full, (full if upto is None and through_id is not None else upto)


def _accounts(conn: Connection, book_id: int, anchor: str | None, problems: list[Problem]) -> str:
    """This book's accounts anchor; ``anchor``, one written down earlier, checked on the way."""
    through = digest = None
    if anchor is not None:
        through, _, digest = anchor.partition(":")
        if not (through.isascii() and through.isdigit()) or len(digest) != 64:
            problems.append(Problem("accounts", f"{anchor!r} is not an accounts anchor "
                                    "(<highest account id>:<digest>, as verify prints it)"))
            through = None
    last, full, upto = accounts_digest(conn, book_id, None if through is None else int(through))
    if through is not None and upto != digest:
        problems.append(Problem(
            "accounts", f"the accounts up to id {through} are not what they were when the anchor "
            "was written down: one was changed (code, type, currency, no-overdraft rule or "
            "opening time) or removed"))
    return f"{last}:{full}"


def _check_chain_anchor(conn: Connection, book_id: int, anchor: str, problems: list[Problem]) -> None:
    """The link an earlier chain head names is still there, with that hash."""
    seq, _, digest = anchor.partition(":")
    if not (seq.isascii() and seq.isdigit()) or len(digest) != 64:
        problems.append(Problem("chain", f"{anchor!r} is not a chain head (<link>:<hash>, as "
                                "verify prints it)"))
        return
    if int(seq) == 0:   # written down while the book was empty: every chain starts there
        if digest != chain.GENESIS:
            problems.append(Problem("chain", f"link 0 is the chain's start, {chain.GENESIS[:12]}…, "
                                    f"not {digest[:12]}…"))
        return
    row = conn.execute(select(m.ChainLink.entry_id, m.ChainLink.chain_hash).where(
        m.ChainLink.book_id == book_id, m.ChainLink.seq == int(seq))).first()
    if row is None:
        last = chain.chain_head(conn, book_id)[0]
        problems.append(Problem("chain", f"link {seq} of the chain head written down is gone: the "
                                f"chain now ends at link {last} (entries were cut from its end)"))
    elif row.chain_hash != digest:
        problems.append(Problem("chain", f"link {seq} (entry {row.entry_id}) now carries "
                                f"{row.chain_hash[:12]}…, not the head {digest[:12]}… written down: "
                                "the chain was recomputed after an entry up to it was changed",
                                row.entry_id))


def _check_chain(conn: Connection, book_id: int, from_entry: int | None,
                 problems: list[Problem]) -> tuple[int, str]:
    start_seq = 1
    prev = chain.GENESIS
    if from_entry is not None:
        row = conn.execute(select(m.ChainLink.seq, m.ChainLink.prev_hash)
                           .where(m.ChainLink.entry_id == from_entry)).first()
        if row is None:
            problems.append(Problem("chain", f"entry {from_entry} is not in the chain", from_entry))
            return 0, prev
        start_seq, prev = row.seq, row.prev_hash
    expected_seq = start_seq
    checked = 0
    last_seq = start_seq - 1
    while True:
        links = conn.execute(
            select(m.ChainLink.seq, m.ChainLink.entry_id, m.ChainLink.prev_hash, m.ChainLink.chain_hash)
            .where(m.ChainLink.book_id == book_id, m.ChainLink.seq > last_seq)
            .order_by(m.ChainLink.seq).limit(CHUNK)
        ).all()
        if not links:
            break
        ids = [link.entry_id for link in links]
        headers = {h["id"]: h for h in (r._asdict() for r in conn.execute(
            select(m.JournalEntry.__table__).where(m.JournalEntry.id.in_(ids))))}
        postings: dict[int, list] = {}
        for p in conn.execute(
                select(m.Posting.entry_id, m.Posting.position, m.Posting.account_id,
                       m.Posting.amount_minor, m.Posting.currency, m.Posting.is_pending)
                .where(m.Posting.entry_id.in_(ids))):
            postings.setdefault(p.entry_id, []).append(tuple(p)[1:])
        for link in links:
            if link.seq != expected_seq:
                problems.append(Problem("chain", f"link {expected_seq} is missing (next is {link.seq})",
                                        link.entry_id))
                expected_seq = link.seq
            header = headers.get(link.entry_id)
            if header is None:
                problems.append(Problem("chain", f"entry {link.entry_id} (link {link.seq}) is gone",
                                        link.entry_id))
            else:
                recomputed = chain.content_hash(header, postings.get(link.entry_id, ()))
                if recomputed != header["content_hash"]:
                    problems.append(Problem(
                        "chain", f"entry {link.entry_id} was altered: its content no longer matches "
                        f"its hash (stored {header['content_hash'][:12]}…, now {recomputed[:12]}…)",
                        link.entry_id))
                if link.prev_hash != prev:
                    problems.append(Problem(
                        "chain", f"link {link.seq} (entry {link.entry_id}) does not follow link "
                        f"{link.seq - 1}: the chain was cut or reordered", link.entry_id))
                if chain.link_hash(link.prev_hash, header["content_hash"]) != link.chain_hash:
                    problems.append(Problem(
                        "chain", f"link {link.seq} (entry {link.entry_id}) hash does not match the "
                        "entry's stored hash", link.entry_id))
            prev = link.chain_hash
            expected_seq += 1
            checked += 1
        last_seq = links[-1].seq
    return checked, prev


def _check_unlinked(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    rows = conn.execute(
        select(m.JournalEntry.id).where(
            m.JournalEntry.book_id == book_id,
            ~exists().where(m.ChainLink.entry_id == m.JournalEntry.id),
            ~exists().where(m.SealQueue.entry_id == m.JournalEntry.id),
        ).order_by(m.JournalEntry.id).limit(100)
    )
    for (entry_id,) in rows:
        problems.append(Problem("chain", f"entry {entry_id} is neither in the chain nor queued for it",
                                entry_id))


def _check_entries(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    per_currency = (
        select(m.Posting.entry_id, m.Posting.currency, func.sum(m.Posting.amount_minor).label("total"))
        .group_by(m.Posting.entry_id, m.Posting.currency).subquery()
    )
    rows = conn.execute(
        select(per_currency.c.entry_id, per_currency.c.currency, per_currency.c.total)
        .join(m.JournalEntry, m.JournalEntry.id == per_currency.c.entry_id)
        .where(m.JournalEntry.book_id == book_id, per_currency.c.total != 0)
        .order_by(per_currency.c.entry_id).limit(100)
    )
    for r in rows:
        problems.append(Problem("entry", f"entry {r.entry_id} does not balance: {r.currency} off by "
                                f"{format_minor(r.total, r.currency)}", r.entry_id))
    counts = select(m.Posting.entry_id, func.count().label("n")).group_by(m.Posting.entry_id).subquery()
    rows = conn.execute(
        select(m.JournalEntry.id, m.JournalEntry.posting_count, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.entry_id == m.JournalEntry.id)
        .where(m.JournalEntry.book_id == book_id,
               m.JournalEntry.posting_count != func.coalesce(counts.c.n, 0))
        .order_by(m.JournalEntry.id).limit(100)
    )
    for entry_id, expected, actual in rows:
        problems.append(Problem("entry", f"entry {entry_id} has {actual} postings, its header says "
                                f"{expected}", entry_id))
    # A posting carries its entry's effective date (the as-of reports read it there); the
    # content hash covers the header's, so a posting moved to another day is caught here.
    rows = conn.execute(
        select(m.Posting.entry_id, m.Posting.position, m.Posting.effective_date,
               m.JournalEntry.effective_date)
        .join(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id)
        .where(m.JournalEntry.book_id == book_id,
               m.Posting.effective_date != m.JournalEntry.effective_date)
        .order_by(m.Posting.entry_id, m.Posting.position).limit(100)
    )
    for entry_id, position, posting_day, entry_day in rows:
        problems.append(Problem("entry", f"entry {entry_id}: posting {position} is dated {posting_day}, "
                                f"its entry {entry_day}", entry_id))
    rows = conn.execute(
        select(m.Posting.entry_id, m.Posting.position, m.Posting.currency, m.Account.code,
               m.Account.currency)
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .where(m.Account.book_id == book_id, m.Posting.currency != m.Account.currency)
        .order_by(m.Posting.entry_id, m.Posting.position).limit(100)
    )
    for entry_id, position, currency, code, account_currency in rows:
        problems.append(Problem("entry", f"entry {entry_id}: posting {position} is in {currency}, "
                                f"its account {code} in {account_currency}", entry_id, code))
    orphans = conn.execute(
        select(m.Posting.entry_id).where(~exists().where(m.JournalEntry.id == m.Posting.entry_id))
        .distinct().limit(100)
    )
    for (entry_id,) in orphans:
        problems.append(Problem("entry", f"postings of entry {entry_id} have no header", entry_id))


#: How each hashed column of the entries is stored on SQLite, as SQL conditions (``{c}``:
#: the column). SQLite keeps whatever value it is given; the content hash is taken of
#: the values as Python reads them (``int()``, ``bool()``, ``date.fromisoformat``), the
#: reports add and compare them in SQL. A value written in another form that reads back
#: the same (an ``is_pending`` of ``''``, an amount of ``500.7``, a day as ``2026-W40-7``)
#: keeps every hash while the reports see something else: only the canonical forms pass.
_INTEGER = "typeof({c}) = 'integer'"
_TEXT = "typeof({c}) = 'text'"
_DAY = "typeof({c}) = 'text' AND {c} IS date({c})"
_STORED_FORMS = {   # table: (the entry's id column, ((column, form), ...))
    "journal_entry": ("id", (
        ("id", _INTEGER), ("book_id", _INTEGER), ("effective_date", _DAY),
        ("posting_count", _INTEGER),
        ("created_at", _TEXT + " AND {c} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] "
         "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]'"
         " AND datetime({c}) IS substr({c}, 1, 19)"),
        ("idempotency_key", _TEXT), ("request_hash", _TEXT), ("kind", _TEXT), ("phase", _TEXT),
        ("external_ref", "{c} IS NULL OR " + _TEXT), ("memo", "{c} IS NULL OR " + _TEXT),
        ("metadata_json", "{c} IS NULL OR " + _TEXT), ("pending_id", "{c} IS NULL OR " + _INTEGER),
        ("reverses_id", "{c} IS NULL OR " + _INTEGER))),
    "posting": ("entry_id", (
        ("entry_id", _INTEGER), ("position", _INTEGER), ("account_id", _INTEGER),
        ("amount_minor", _INTEGER), ("currency", _TEXT), ("effective_date", _DAY),
        ("is_pending", _INTEGER + " AND {c} IN (0, 1)"))),
}


def _check_stored_forms(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """On SQLite, every hashed column of the entries and postings holds its value in the
    one form the ledger writes (:data:`_STORED_FORMS`); PostgreSQL's column types allow
    no other. One pass over each table: its rows with any column out of form, each such
    column named."""
    if conn.dialect.name != "sqlite":
        return
    for table, (entry_column, checks) in _STORED_FORMS.items():
        rules = [(column, form.format(c=column)) for column, form in checks]
        found = ", ".join(f"CASE WHEN NOT ({rule}) THEN typeof({column}) || ' ' || quote({column}) END"
                          for column, rule in rules)
        scope = ("book_id = ?" if table == "journal_entry" else
                 "entry_id IN (SELECT id FROM journal_entry WHERE book_id = ?)")
        where = "its header" if table == "journal_entry" else "a posting"
        for entry_id, *stored in conn.exec_driver_sql(
                f"SELECT {entry_column}, {found} FROM {table} WHERE {scope} AND NOT ("
                f"{' AND '.join(f'({rule})' for _, rule in rules)}) ORDER BY {entry_column} LIMIT 100",
                (book_id,)).all():
            for (column, _), form in zip(rules, stored):
                if form is not None:
                    problems.append(Problem("entry", f"entry {entry_id}: {where} holds {column} as "
                                            f"{form}, not in the form the ledger writes", entry_id))


def _open_hold():
    """A posting that is part of a pending entry nothing completed yet (a hold still held)."""
    completion = m.JournalEntry.__table__.alias("completion")
    return and_(m.Posting.is_pending.is_(True),
                ~exists().where(completion.c.pending_id == m.Posting.entry_id))


def _check_stored_balances(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    open_pending = _open_hold()
    sign = case((m.Account.type.in_(sorted(DEBIT_NORMAL)), 1), else_=-1)
    normal = sign * m.Posting.amount_minor
    sums = (
        select(m.Posting.account_id,
               func.coalesce(func.sum(case((m.Posting.is_pending.is_(False), m.Posting.amount_minor),
                                           else_=0)), 0).label("posted"),
               func.coalesce(func.sum(case((and_(open_pending, normal < 0), -normal), else_=0)),
                             0).label("held"))
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .group_by(m.Posting.account_id).subquery()
    )
    rows = conn.execute(
        select(m.Account.code, m.Account.type, m.Account.currency, m.AccountBalance.posted_minor,
               m.AccountBalance.held_minor, func.coalesce(sums.c.posted, 0), func.coalesce(sums.c.held, 0))
        .join(m.AccountBalance, m.AccountBalance.account_id == m.Account.id)
        .outerjoin(sums, sums.c.account_id == m.Account.id)
        .where(m.Account.book_id == book_id).order_by(m.Account.code)
    )
    for code, type_, cur, stored_posted, stored_held, posted, held in rows:
        if (stored_posted, stored_held) != (int(posted), int(held)):
            problems.append(Problem(
                "balance", f"{code}: stored balance {format_minor(stored_posted, cur)} held "
                f"{format_minor(stored_held, cur)}, postings say {format_minor(int(posted), cur)} held "
                f"{format_minor(int(held), cur)}", account=code))
        sign_ = 1 if type_ in DEBIT_NORMAL else -1
        available = sign_ * int(posted) - int(held)
        if available < 0:
            problems.append(Problem("balance", f"{code} is below zero: {format_minor(available, cur)}",
                                    account=code))


def _check_totals(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    rows = conn.execute(
        select(m.Posting.currency, func.sum(m.Posting.amount_minor))
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .where(m.Account.book_id == book_id, m.Posting.is_pending.is_(False))
        .group_by(m.Posting.currency)
    )
    for currency, total in rows:
        if total:
            problems.append(Problem("totals", f"all {currency} balances sum to "
                                    f"{format_minor(int(total), currency)}, not zero"))


def _check_closed_accounts(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """A closed account holds nothing, and nothing written after its close moved it (a post
    that raced the close, or a close written behind the ledger's back)."""
    open_hold = _open_hold()
    late = m.JournalEntry.created_at > m.Account.closed_at
    rows = conn.execute(
        select(m.Account.code, m.Account.type, m.Account.currency, m.Account.closed_at,
               func.coalesce(func.sum(case((m.Posting.is_pending.is_(False), m.Posting.amount_minor),
                                           else_=0)), 0),
               func.coalesce(func.sum(case((open_hold, 1), else_=0)), 0),
               func.coalesce(func.sum(case((late, 1), else_=0)), 0),
               func.min(case((late, m.JournalEntry.id))))
        .outerjoin(m.Posting, m.Posting.account_id == m.Account.id)
        .outerjoin(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id)
        .where(m.Account.book_id == book_id, m.Account.closed_at.is_not(None))
        .group_by(m.Account.id, m.Account.code, m.Account.type, m.Account.currency,
                  m.Account.closed_at)
        .order_by(m.Account.code))
    for code, type_, cur, closed_at, posted, holds, written_late, first_late in rows:
        if posted or holds:
            balance = (1 if type_ in DEBIT_NORMAL else -1) * int(posted)
            problems.append(Problem(
                "closed", f"{code} was closed at {closed_at} yet holds {format_minor(balance, cur)}"
                + (f" and {int(holds)} open hold(s)" if holds else ""), account=code))
        if written_late:
            problems.append(Problem(
                "closed", f"{code}: {int(written_late)} posting(s) written after it was closed at "
                f"{closed_at}, the first by entry {first_late}", entry_id=first_late, account=code))


def _check_checkpoints(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """Every period-close checkpoint equals the postings through its date (one pass, in date order)."""
    dates = conn.execute(
        select(m.BalanceCheckpoint.as_of_date).where(m.BalanceCheckpoint.book_id == book_id)
        .distinct().order_by(m.BalanceCheckpoint.as_of_date)).scalars().all()
    codes = dict(conn.execute(select(m.Account.id, m.Account.code).where(m.Account.book_id == book_id)).all())
    currencies = dict(conn.execute(select(m.Account.id, m.Account.currency)
                                   .where(m.Account.book_id == book_id)).all())
    running: dict[int, int] = {}
    previous = None
    for date in dates:
        cond = [m.Account.book_id == book_id, m.Posting.is_pending.is_(False),
                m.Posting.effective_date <= date]
        if previous is not None:
            cond.append(m.Posting.effective_date > previous)
        for account_id, total in conn.execute(
                select(m.Posting.account_id, func.sum(m.Posting.amount_minor))
                .join(m.Account, m.Account.id == m.Posting.account_id).where(*cond)
                .group_by(m.Posting.account_id)):
            running[account_id] = running.get(account_id, 0) + int(total)
        stored = dict(conn.execute(
            select(m.BalanceCheckpoint.account_id, m.BalanceCheckpoint.posted_minor)
            .where(m.BalanceCheckpoint.book_id == book_id, m.BalanceCheckpoint.as_of_date == date)).all())
        for account_id in sorted(set(stored) | {a for a, v in running.items() if v}):
            want, got = running.get(account_id, 0), stored.get(account_id)
            if got is None or int(got) != want:
                code, cur = codes.get(account_id, str(account_id)), currencies.get(account_id, "CNY")
                said = "nothing" if got is None else format_minor(int(got), cur)
                problems.append(Problem(
                    "checkpoint", f"{code}: the checkpoint at the close of {date} says {said}, "
                    f"the postings say {format_minor(want, cur)}", account=code))
        previous = date


def _check_closes(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """Every close of a period is recorded in the hash chain (an entry of kind
    ``period_close``, dated the period's last day) and every such record has its close:
    deleting a close's rows behind the database's back reopened the period unseen. No
    entry linked after a close is dated in its period. Closes made before closes were
    chained (none recorded after them) are taken as they are."""
    from .postings import CLOSE_KIND

    closes = {through: label for through, label in conn.execute(
        select(m.ClosedPeriod.closed_through, m.ClosedPeriod.label)
        .where(m.ClosedPeriod.book_id == book_id))}
    records = conn.execute(
        select(m.JournalEntry.id, m.JournalEntry.effective_date, m.JournalEntry.posting_count,
               m.ChainLink.seq, m.JournalEntry.metadata_json)
        .outerjoin(m.ChainLink, m.ChainLink.entry_id == m.JournalEntry.id)
        .where(m.JournalEntry.book_id == book_id, m.JournalEntry.kind == CLOSE_KIND)
        .order_by(m.JournalEntry.effective_date)).all()
    recorded = {row.effective_date for row in records}
    for entry_id, through, postings, seq, metadata in records:
        if through not in closes:
            problems.append(Problem("period", f"entry {entry_id} records the close of the period "
                                    f"through {through}, but no close of it is recorded: its rows "
                                    "were deleted and the period reopened", entry_id))
        elif _metadata(metadata).get("label") != closes[through]:
            problems.append(Problem("period", f"entry {entry_id} records the close of period "
                                    f"{_metadata(metadata).get('label')!r} through {through}; the "
                                    f"close recorded is labelled {closes[through]!r}", entry_id))
        if postings:
            problems.append(Problem("period", f"entry {entry_id} records a close and has "
                                    f"{postings} postings", entry_id))
    # Each close's links up to the next close's: an entry linked later and dated in this
    # close's period is dated in the next one's too, and found there (one pass in all).
    linked = sorted((row.seq, row.effective_date) for row in records if row.seq is not None)
    for (seq, through), upper in zip(linked, [s for s, _ in linked[1:]] + [None]):
        window = and_(m.ChainLink.seq > seq, m.ChainLink.seq <= upper) if upper else m.ChainLink.seq > seq
        for later_id, day, later_seq in conn.execute(
                select(m.JournalEntry.id, m.JournalEntry.effective_date, m.ChainLink.seq)
                .join(m.ChainLink, m.ChainLink.entry_id == m.JournalEntry.id)
                .where(m.ChainLink.book_id == book_id, window,
                       m.JournalEntry.effective_date <= through)
                .order_by(m.ChainLink.seq).limit(100)):
            problems.append(Problem("period", f"entry {later_id} is dated {day}, in the period "
                                    f"closed through {through}, yet was linked after its close "
                                    f"(link {later_seq}, the close link {seq})", later_id))
    first = min(recorded, default=None)
    for through in sorted(closes):
        if first is not None and through >= first and through not in recorded:
            problems.append(Problem("period", f"the close of the period through {through} "
                                    f"({closes[through]}) is not recorded in the hash chain"))


def _check_chain_days(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """Every ``chain_day`` row names the last link among its date's entries (reports trust it)."""
    actual = dict(conn.execute(
        select(m.JournalEntry.effective_date, func.max(m.ChainLink.seq))
        .join(m.JournalEntry, m.JournalEntry.id == m.ChainLink.entry_id)
        .where(m.ChainLink.book_id == book_id).group_by(m.JournalEntry.effective_date)).all())
    stored = dict(conn.execute(select(m.ChainDay.effective_date, m.ChainDay.last_seq)
                               .where(m.ChainDay.book_id == book_id)).all())
    for day in sorted(set(actual) | set(stored)):
        if stored.get(day) != actual.get(day):
            problems.append(Problem(
                "chain", f"the chain index of {day} names link {stored.get(day)}, the chain says "
                f"link {actual.get(day)}"))


def _check_custody(conn: Connection, book_id: int, prefix: str, problems: list[Problem]) -> dict:
    rows = conn.execute(
        select(m.Account.code, m.Account.type, m.Posting.currency, func.sum(m.Posting.amount_minor))
        .join(m.Posting, m.Posting.account_id == m.Account.id)
        .where(m.Account.book_id == book_id, m.Posting.is_pending.is_(False), m.Account.type != "memo")
        .group_by(m.Account.code, m.Account.type, m.Posting.currency)
    )
    figures: dict[str, dict[str, int]] = {}
    has_custody = False
    for code, type_, currency, total in rows:
        f = figures.setdefault(currency, {"custody_minor": 0, "held_minor": 0, "other_assets_minor": 0})
        total = int(total)
        if code == prefix or code.startswith(prefix + ":"):
            f["custody_minor"] += total
            has_custody = True
        elif type_ in CREDIT_NORMAL:
            f["held_minor"] += -total
        elif type_ == "expense":
            f["held_minor"] -= total
        else:
            f["other_assets_minor"] += total
    if not has_custody:
        return {}
    for currency, f in sorted(figures.items()):
        diff = f["custody_minor"] - f["held_minor"]
        f["difference_minor"] = diff
        if diff:
            problems.append(Problem(
                "custody", f"{currency}: custody bank {format_minor(f['custody_minor'], currency)} but "
                f"held for users and platform {format_minor(f['held_minor'], currency)} "
                f"(difference {format_minor(diff, currency)}; other assets "
                f"{format_minor(f['other_assets_minor'], currency)})"))
    return figures


def _check_loan_claims(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """Each party's memo claim on a loan equals the principal the loan still owes it, each
    loan's memo penalty account the penalties it still owes (accrued less paid), and each
    loan's schedule is what its terms make it (:func:`_check_loan_schedules`)."""
    from .loans import claim_account, penalty_accounts

    _check_memo(conn, book_id, "principal", "memo:claims:",
                lambda loan_no, borrower, party: claim_account(party, loan_no),
                ("memo claim", "principal"), problems)
    _check_memo(conn, book_id, "penalty", "memo:penalties:",
                lambda loan_no, borrower, party: penalty_accounts(borrower, loan_no)[0],
                ("memo penalties", "penalties"), problems)
    _check_loan_schedules(conn, book_id, problems)


def _check_memo(conn: Connection, book_id: int, component: str, prefix: str, account_of,
                words: tuple[str, str], problems: list[Problem]) -> None:
    """Every memo account under ``prefix`` holds what the loans' dues of ``component`` say
    (``account_of(loan_no, borrower, party)``: the account a due is kept in)."""
    expected: dict[str, int] = {}
    for loan_no, borrower, party, total in conn.execute(
            select(m.Loan.loan_no, m.Loan.borrower, m.LoanDue.party, func.sum(m.LoanDue.amount_minor))
            .join(m.LoanDue, m.LoanDue.loan_id == m.Loan.id)
            .where(m.Loan.book_id == book_id, m.LoanDue.component == component)
            .group_by(m.Loan.loan_no, m.Loan.borrower, m.LoanDue.party)):
        code = account_of(loan_no, borrower, party)
        expected[code] = expected.get(code, 0) + int(total)
    held = dict(conn.execute(
        select(m.Account.code, func.coalesce(func.sum(m.Posting.amount_minor), 0))
        .outerjoin(m.Posting, and_(m.Posting.account_id == m.Account.id, m.Posting.is_pending.is_(False)))
        .where(m.Account.book_id == book_id, m.Account.code.startswith(prefix))
        .group_by(m.Account.code)).all())
    for code in sorted(set(expected) | set(held)):
        want, have = expected.get(code, 0), int(held.get(code, 0))
        if want != have:
            problems.append(Problem("loans", f"{code}: {words[0]} {format_minor(have)} but the loan "
                                    f"owes {format_minor(want)} in {words[1]}", account=code))


def _check_loan_schedules(conn: Connection, book_id: int, problems: list[Problem]) -> None:
    """Each loan's stored plan, and every due its disbursement wrote (principal, interest and
    fees, per party and installment), equal what the loan's stored terms and bids make them
    with the schedule code of this version (:func:`ledger.loans.scheduled_dues`), which
    the disbursement uses too: a change to its rounding must keep existing loans' plans,
    or verify reports every loan it changes.

    One pass over the loans, :data:`LOAN_CHUNK` at a time: their bids and disbursement dues
    in two grouped queries, each schedule recomputed in memory.
    """
    from .loans import COMPONENT_ORDER

    rank = {c: i for i, c in enumerate(COMPONENT_ORDER)}
    last = None
    with_dues: set[int] = set()
    while True:
        query = select(m.Loan.__table__).where(m.Loan.book_id == book_id)
        if last is not None:
            query = query.where(m.Loan.id > last)
        loans = conn.execute(query.order_by(m.Loan.id).limit(LOAN_CHUNK)).all()
        if not loans:
            _check_loan_entries_have_dues(conn, book_id, with_dues, problems)
            return
        ids = [loan.id for loan in loans]
        last = ids[-1]
        bids: dict[int, list[tuple[str, int]]] = {}
        for loan_id, investor, total in conn.execute(
                select(m.LoanBid.loan_id, m.LoanBid.investor, func.sum(m.LoanBid.amount_minor))
                .where(m.LoanBid.loan_id.in_(ids)).group_by(m.LoanBid.loan_id, m.LoanBid.investor)
                .order_by(m.LoanBid.loan_id, m.LoanBid.investor)):   # the order disbursement split in
            bids.setdefault(loan_id, []).append((investor, int(total)))
        stored: dict[int, dict[tuple[int, str, str], int]] = {}
        entries: dict[int, int] = {}
        for loan_id, seq, comp, party, total, entry_id in conn.execute(
                select(m.LoanDue.loan_id, m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party,
                       func.sum(m.LoanDue.amount_minor), func.min(m.LoanDue.entry_id))
                .where(m.LoanDue.loan_id.in_(ids), m.LoanDue.reason == "disburse")
                .group_by(m.LoanDue.loan_id, m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party)):
            stored.setdefault(loan_id, {})[(seq, comp, party)] = int(total)
            entries[loan_id] = entry_id
        for loan in loans:
            _check_loan_schedule(loan._asdict(), bids.get(loan.id, []), stored.get(loan.id, {}),
                                 entries.get(loan.id), rank, problems)
        _check_loan_movements(conn, book_id, loans, with_dues, problems)


def _check_loan_schedule(loan: dict, bids: list[tuple[str, int]], stored: dict, entry_id: int | None,
                         rank: dict[str, int], problems: list[Problem]) -> None:
    """One loan of :func:`_check_loan_schedules`: its plan, then its disbursement's dues."""
    from .loans import scheduled_dues

    name, currency = f"loan {loan['loan_no']}", loan["currency"]
    disbursed = loan["status"] not in ("bidding", "funded", "cancelled")

    def money(value) -> str:
        return format_minor(value, currency) if isinstance(value, int) else repr(value)
    try:
        loan["terms"] = json.loads(loan["terms_json"])
        plan = {row["seq"]: row for row in json.loads(loan["plan_json"])}
        rows, dues = scheduled_dues(loan, bids if disbursed else ())
    except (LedgerError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        problems.append(Problem("loans", f"{name}: its stored terms and plan make no schedule: {exc}"))
        return
    for row in rows:
        have = plan.pop(row["seq"], None)
        if have is None:
            problems.append(Problem("loans", f"{name}: installment {row['seq']} of its terms is "
                                    "missing from its plan"))
            continue
        for part in ("due_date", "principal", "interest", "fee"):
            if have.get(part) != row[part]:
                show = str if part == "due_date" else money
                problems.append(Problem(
                    "loans", f"{name}, installment {row['seq']}: its plan says {part} "
                    f"{show(have.get(part))}, its terms make it {show(row[part])}"))
    for seq in sorted(plan, key=str):
        problems.append(Problem("loans", f"{name}: its plan has installment {seq}, its terms do not"))
    if not disbursed:
        if stored:
            problems.append(Problem("loans", f"{name} is {loan['status']}, yet dues of a disbursement "
                                    "are recorded for it", entry_id))
        return
    if not stored:
        problems.append(Problem("loans", f"{name} is {loan['status']}, yet no dues of its "
                                "disbursement are recorded"))
        return
    want: dict[tuple[int, str, str], int] = {}
    for seq, comp, party, amount in dues:
        want[(seq, comp, party)] = want.get((seq, comp, party), 0) + amount
    for seq, comp, party in sorted(set(want) | set(stored),
                                   key=lambda k: (k[0], rank.get(k[1], len(rank)), k[2])):
        have, should = stored.get((seq, comp, party), 0), want.get((seq, comp, party), 0)
        if have != should:
            problems.append(Problem(
                "loans", f"{name}, installment {seq}, {comp} owed to {party}: its disbursement "
                f"recorded {money(have)}, its terms make it {money(should)}", entry_id))


#: Entries looked up at once by id (well under every database's parameter limit).
ID_CHUNK = 1000


def _by_ids(conn: Connection, query_for, ids) -> list:
    """The rows of ``query_for(chunk)`` for every :data:`ID_CHUNK` of ``ids``."""
    ids = sorted(ids)
    rows: list = []
    for start in range(0, len(ids), ID_CHUNK):
        rows += conn.execute(query_for(ids[start:start + ID_CHUNK])).all()
    return rows


def _check_loan_movements(conn: Connection, book_id: int, loans: list, with_dues: set[int],
                          problems: list[Problem]) -> None:
    """Every due of ``loans`` names the entry that wrote it (an entry of the book, of the
    kind its reason belongs to, naming the loan, dated as the due), and what the dues
    written after the disbursement say moved is what their entry moved (:func:`_check_moved`).
    Adds the ids of the entries that wrote dues to ``with_dues``."""
    from .loans import DUE_ENTRY_KINDS

    by_id = {loan.id: loan for loan in loans}
    groups = conn.execute(
        select(m.LoanDue.loan_id, m.LoanDue.entry_id, m.LoanDue.reason,
               func.min(m.LoanDue.effective_date), func.max(m.LoanDue.effective_date))
        .where(m.LoanDue.loan_id.in_(list(by_id)))
        .group_by(m.LoanDue.loan_id, m.LoanDue.entry_id, m.LoanDue.reason)).all()
    entries = {row.id: row for row in _by_ids(conn, lambda chunk: select(
        m.JournalEntry.id, m.JournalEntry.book_id, m.JournalEntry.kind, m.JournalEntry.effective_date,
        m.JournalEntry.external_ref, m.JournalEntry.metadata_json)
        .where(m.JournalEntry.id.in_(chunk)), {g[1] for g in groups})}
    sound: dict[int, dict[int, object]] = {}   # loan id -> entries whose identity holds
    for loan_id, entry_id, reason, first_day, last_day in groups:
        loan, entry = by_id[loan_id], entries.get(entry_id)
        name = f"loan {loan.loan_no}"
        with_dues.add(entry_id)
        if entry is None or entry.book_id != book_id:
            problems.append(Problem("loans", f"{name}: dues ({reason}) name entry {entry_id}, which "
                                    "is not an entry of this book", entry_id))
            continue
        meta = _metadata(entry.metadata_json)
        kinds = DUE_ENTRY_KINDS.get(reason)
        found = []
        if kinds is None:
            found.append(f"their reason {reason!r} is none a loan writes")
        elif entry.kind not in kinds:
            found.append(f"it is a {entry.kind} entry, not a {' or '.join(kinds)}")
        if meta.get("loan") != loan.loan_no:
            found.append(f"it names loan {meta.get('loan')!r}")
        if not first_day == last_day == entry.effective_date:
            days = str(first_day) if first_day == last_day else f"{first_day} to {last_day}"
            found.append(f"it is dated {entry.effective_date}, its dues {days}")
        if found:
            problems.append(Problem("loans", f"{name}: dues ({reason}) name entry {entry_id}, but "
                                    + "; ".join(found), entry_id))
        elif reason != "disburse":
            sound.setdefault(loan_id, {})[entry_id] = entry
    if sound:
        _check_moved(conn, [by_id[i] for i in sorted(sound)], sound, problems)


def _metadata(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _check_moved(conn: Connection, loans: list, sound: dict[int, dict[int, object]],
                 problems: list[Problem]) -> None:
    """What the dues of each repayment, payoff, compensation, penalty accrual and claim
    transfer say moved, against the entry that wrote them (whose content the chain covers):

    * a payment: the dues it settled sum to the entry's ``paid_minor``; each party's
      account received what it was paid less the management fee, recomputed on the
      party's running total of interest received as the payment did, and the fees sum
      to the entry's ``management_fee_minor``; what a compensation moved to its payer
      is exactly what it paid the investors; a payoff waives only interest and fees;
    * a penalty accrual: its dues sum to what the entry accrued on the memo account;
    * a claim transfer: per installment and component, what left the seller named in
      the entry is what reached its buyer.
    """
    from .loans import (COMPONENT_ORDER, FEE_RULE, RISK_RESERVE_PARTY, charges_management_fee,
                        loan_rounding, management_fee, party_account, penalty_accounts)
    from .flows import BANK, RISK_RESERVE, fee_account, wallet

    ids = [loan.id for loan in loans]
    rows: dict[int, list] = {}
    for entry_id, seq, comp, party, amount, reason in conn.execute(
            select(m.LoanDue.entry_id, m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party,
                   m.LoanDue.amount_minor, m.LoanDue.reason)
            .where(m.LoanDue.loan_id.in_(ids), m.LoanDue.reason != "disburse")
            .order_by(m.LoanDue.entry_id, m.LoanDue.id)):
        rows.setdefault(entry_id, []).append((seq, comp, party, int(amount), reason))
    legs: dict[int, dict[str, int]] = {}
    for entry_id, code, total in _by_ids(conn, lambda chunk: select(
            m.Posting.entry_id, m.Account.code, func.sum(m.Posting.amount_minor))
            .join(m.Account, m.Account.id == m.Posting.account_id)
            .where(m.Posting.entry_id.in_(chunk), m.Posting.is_pending.is_(False))
            .group_by(m.Posting.entry_id, m.Account.code), rows):
        legs.setdefault(entry_id, {})[code] = int(total)
    rank = {c: i for i, c in enumerate(COMPONENT_ORDER)}
    for loan in loans:
        name, currency = f"loan {loan.loan_no}", loan.currency
        terms = _metadata(loan.terms_json)
        rate = Decimal(terms.get("management_fee_rate", "0"))
        rounding = loan_rounding(terms)
        # the running totals of interest each rule charges the fee on, each party's so far
        received: dict[str, int] = {}       # rule 2 (ledger.loans.FEE_RULE)
        received_1: dict[str, int] = {}     # rule 1: every investor's interest, half up
        recovered: set[tuple[int, str]] = set()   # (installment, payer) compensated so far

        def wrong(entry_id: int, what: str) -> None:
            problems.append(Problem("loans", f"{name}, entry {entry_id}: {what}", entry_id))

        def money(value: int) -> str:
            return format_minor(value, currency)
        for entry_id, entry in sorted(sound[loan.id].items()):
            meta, moved, posted = _metadata(entry.metadata_json), rows.get(entry_id, []), legs.get(entry_id, {})
            if entry.kind in ("repayment", "payoff", "compensation"):
                paid: dict[str, int] = {}
                fees: dict[str, int] = {}
                to_payer: dict[tuple[int, str], int] = {}
                settled: dict[tuple[int, str], int] = {}
                payer = None
                rule = meta.get("fee_rule", 1)
                if entry.kind == "compensation":
                    payer = RISK_RESERVE_PARTY if meta.get("payer") == "risk_reserve" else meta.get("payer")
                for seq, comp, party, amount, reason in moved:
                    if reason == "waive":
                        if entry.kind != "payoff" or amount > 0 or comp not in ("interest", "fee"):
                            wrong(entry_id, f"waives {money(-amount)} of {comp} of installment {seq} "
                                  f"owed to {party}, which a {entry.kind} never does")
                    elif amount < 0:
                        paid[party] = paid.get(party, 0) - amount
                        settled[(seq, comp)] = settled.get((seq, comp), 0) - amount
                        if comp == "interest" and rate:   # as the payment charged it, row by row
                            fee = 0
                            if not party.startswith("@"):
                                before = received_1.get(party, 0)
                                received_1[party] = before - amount
                                if rule != FEE_RULE:
                                    fee = management_fee(before, -amount, rate)
                            if charges_management_fee(party, seq, recovered):
                                before = received.get(party, 0)
                                received[party] = before - amount
                                if rule == FEE_RULE:
                                    fee = management_fee(before, -amount, rate, rounding)
                            fees[party] = fees.get(party, 0) + fee
                    elif entry.kind == "compensation" and party == payer and comp in ("principal", "interest"):
                        to_payer[(seq, comp)] = to_payer.get((seq, comp), 0) + amount
                    else:
                        wrong(entry_id, f"makes {party} owed {money(amount)} more {comp} of installment "
                              f"{seq}, which a {entry.kind} never does")
                if entry.kind == "compensation":
                    for seq, comp in sorted(set(settled) | set(to_payer),
                                            key=lambda k: (k[0], rank.get(k[1], len(rank)))):
                        if settled.get((seq, comp), 0) != to_payer.get((seq, comp), 0):
                            wrong(entry_id, f"paid the investors {money(settled.get((seq, comp), 0))} of "
                                  f"{comp} of installment {seq} but moved {money(to_payer.get((seq, comp), 0))} "
                                  f"of it to the payer {payer}")
                recovered.update((seq, payer) for seq, _ in to_payer)
                total, fee_total = sum(paid.values()), sum(fees.values())
                if meta.get("paid_minor") != total:
                    wrong(entry_id, f"its dues settle {money(total)}, the entry says it paid "
                          f"{_shown(meta.get('paid_minor'), money)}")
                if meta.get("management_fee_minor") != fee_total:
                    wrong(entry_id, f"the management fee on the interest its dues pay is {money(fee_total)}, "
                          f"the entry kept {_shown(meta.get('management_fee_minor'), money)}")
                if entry.kind == "compensation":
                    source = RISK_RESERVE if meta.get("payer") == "risk_reserve" else wallet(str(meta.get("payer")))
                else:
                    source = BANK if entry.external_ref else wallet(loan.borrower)
                expected: dict[str, int] = {}
                for p, got in paid.items():
                    code = party_account(p)
                    expected[code] = expected.get(code, 0) - (got - fees.get(p, 0))
                skip = {source, fee_account("management"), fee_account("prepayment")}
                for code in sorted(expected):
                    if code not in skip and posted.get(code, 0) != expected[code]:
                        wrong(entry_id, f"its dues pay {code} {money(-expected[code])}, the entry paid it "
                              f"{money(-posted.get(code, 0))}")
            elif entry.kind == "penalty_accrual":
                accrued = sum(a for _, comp, _, a, _ in moved if comp == "penalty" and a > 0)
                odd = [r for r in moved if r[1] != "penalty" or r[3] < 0]
                if odd:
                    seq, comp, party, amount, _ = odd[0]
                    wrong(entry_id, f"a penalty accrual moves {money(amount)} of {comp} of installment "
                          f"{seq} owed to {party}")
                memo = penalty_accounts(loan.borrower, loan.loan_no)[0]
                if posted.get(memo, 0) != accrued:
                    wrong(entry_id, f"its dues accrue {money(accrued)} of penalties, the entry "
                          f"{money(posted.get(memo, 0))} on {memo}")
            elif entry.kind == "claim_transfer":
                seller, buyer = meta.get("seller"), meta.get("buyer")
                net: dict[tuple[int, str], int] = {}
                for seq, comp, party, amount, _ in moved:
                    if party != (seller if amount < 0 else buyer):
                        wrong(entry_id, f"moves {money(abs(amount))} of {comp} of installment {seq} "
                              f"{'from' if amount < 0 else 'to'} {party}; the entry transfers from "
                              f"{seller} to {buyer}")
                    net[(seq, comp)] = net.get((seq, comp), 0) + amount
                for (seq, comp), left in sorted(net.items()):
                    if left:
                        wrong(entry_id, f"moves {money(left)} more {comp} of installment {seq} to the "
                              "buyer than it takes from the seller" if left > 0 else
                              f"takes {money(-left)} more {comp} of installment {seq} from the seller "
                              "than it gives the buyer")


def _shown(value, money) -> str:
    return money(value) if type(value) is int else repr(value)


def _check_loan_entries_have_dues(conn: Connection, book_id: int, with_dues: set[int],
                                  problems: list[Problem]) -> None:
    """Every loan entry of a kind that writes dues has some (a deleted due is found). A
    loan entry is known as :func:`ledger.loans.refuse_reversal` knows it: by its kind and
    the loan of the book its metadata names (an entry posted by hand with such a kind
    and no loan is not one)."""
    from .loans import DUE_ENTRY_KINDS

    kinds = sorted({k for ks in DUE_ENTRY_KINDS.values() for k in ks})
    loan_nos = set(conn.execute(select(m.Loan.loan_no).where(m.Loan.book_id == book_id)).scalars())
    for entry_id, kind, metadata in conn.execute(
            select(m.JournalEntry.id, m.JournalEntry.kind, m.JournalEntry.metadata_json)
            .where(m.JournalEntry.book_id == book_id, m.JournalEntry.kind.in_(kinds))
            .order_by(m.JournalEntry.id)):
        loan = _metadata(metadata).get("loan")
        if entry_id not in with_dues and isinstance(loan, str) and loan in loan_nos:
            problems.append(Problem("loans", f"{kind} entry {entry_id} of loan {loan}: none of the "
                                    "loan's dues were recorded by it", entry_id))
