"""The public face of one book: ``book = ledger.open(url)``.

Every write method runs one retried database transaction and goes through
:func:`ledger.postings.write`, the single posting path. A call either
writes everything it was asked to or nothing. Reads use a transaction that
takes no write lock.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from . import accounts as acc
from . import balances, chain, db
from . import models as m
from .errors import ClosedAccountError, InputError, IntegrityViolation, LedgerError, PostingError
from .money import DEFAULT_CURRENCY, from_minor
from .postings import (
    Draft, Entry, FastPoster, commit_draft, find_replay, get_entry, load_entries, reversal_draft,
    void_draft, write,
)

T = TypeVar("T")
DEFAULT_BOOK = "main"
SEAL_EVERY = 256
_UNIQUE_RETRIES = 3


def _translate_integrity(exc: IntegrityError) -> LedgerError:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if "ck_posting_account_open" in message:   # closed while the entry was being written
        return ClosedAccountError(f"the database refused the write: {message}", detail=message)
    return IntegrityViolation(f"the database refused the write: {message}", detail=message)


def _unique_race(exc: IntegrityError, tables: tuple[str, ...]) -> bool:
    """Whether ``exc`` is a unique key of one of ``tables`` taken by another writer
    (SQLite names ``table.column``; PostgreSQL the constraint, named after its table)."""
    text = str(exc.orig)
    unique = "UNIQUE" in text or "duplicate key" in text
    return unique and any(name in text for name in tables)


class Book:
    """One ledger book on a database.

    Attributes:
        engine: the SQLAlchemy engine.
        book_id: id of the book row.
        name: the book's name.
    """

    def __init__(self, engine: Engine, book_id: int, name: str, *, seal_every: int = SEAL_EVERY):
        self.engine = engine
        self.book_id = book_id
        self.name = name
        self.seal_every = seal_every
        self._unsealed = 0
        # One round trip per single post on PostgreSQL; its cache of open accounts is
        # filled by every write.
        self._fast = FastPoster(engine, book_id) if FastPoster.supports(engine) else None
        self._account_cache = self._fast.accounts if self._fast is not None else None

    # --- transactions ---------------------------------------------------------
    def _write(self, fn: Callable[[Connection], T], *, races: tuple[str, ...] = ()) -> T:
        """Run ``fn`` in a retried write transaction; a racing unique key re-runs it.

        ``races``: further tables whose unique keys a concurrent writer may take first
        (besides the entries' keys); ``fn`` run again finds what it took and says so.
        """
        tables = ("journal_entry", *races)
        for attempt in range(_UNIQUE_RETRIES + 1):
            try:
                return db.write_transaction(self.engine, fn)
            except IntegrityError as exc:
                # A concurrent writer used the same key or completed the same
                # pending entry first: run again, and the checks see it.
                if attempt < _UNIQUE_RETRIES and _unique_race(exc, tables):
                    continue
                raise _translate_integrity(exc) from exc
        raise AssertionError("unreachable")

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only connection in one transaction that sees one snapshot from its first
        statement on: SQLite's read transaction is one already; on PostgreSQL it runs at
        REPEATABLE READ (at the default READ COMMITTED every statement took a snapshot of
        its own, and a writer committing between two of them got into one and not the other)."""
        with db.read_connection(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @property
    def flows(self):
        """Wallet flows: users, top-ups, withdrawals, fees (:class:`ledger.flows.Wallets`)."""
        from .flows import Wallets

        return Wallets(self)

    @property
    def loans(self):
        """Loan flows: create, bid, disburse, repay, ... (:class:`ledger.loans.Loans`)."""
        from .loans import Loans

        return Loans(self)

    # --- accounts -------------------------------------------------------------
    def open_account(self, code: str, type: str | None = None, *, currency: str = DEFAULT_CURRENCY,
                     no_overdraft: bool = False, name: str | None = None) -> acc.Account:
        """Open an account (idempotent when the attributes are the same)."""
        account = self._write(lambda c: acc.open_account(
            c, self.book_id, code, type, currency=currency, no_overdraft=no_overdraft, name=name))
        if self._account_cache is not None and not account.is_closed:
            self._account_cache[code] = account
        return account

    def account(self, code: str) -> acc.Account:
        """Look up one account."""
        with self.reading() as conn:
            return acc.get_account(conn, self.book_id, code)

    def accounts(self, prefix: str | None = None) -> list[acc.Account]:
        """All accounts, optionally under a code prefix."""
        with self.reading() as conn:
            return acc.list_accounts(conn, self.book_id, prefix)

    def close_account(self, code: str) -> acc.Account:
        """Close an account whose balance and pending amounts are zero."""
        def run(conn):
            account = acc.get_account(conn, self.book_id, code)
            if conn.dialect.name == "postgresql":
                # Wait for every post already writing to it (each holds a lock on the row
                # through its postings' foreign key), so the balance read next counts them;
                # a post that read the account open before this commits is refused at its
                # commit (migration 0013).
                conn.execute(select(m.Account.id).where(m.Account.id == account.id).with_for_update())
            posted, pending, _ = balances.raw_sums(conn, account)
            return acc.close_account(conn, self.book_id, code, posted, pending)
        if self._account_cache is not None:
            self._account_cache.pop(code, None)
        return self._write(run)

    # --- posting ----------------------------------------------------------------
    def post(self, postings: Sequence[tuple[str, Any]], *, key: str, kind: str = "transfer",
             effective_date: dt.date | None = None, external_ref: str | None = None,
             memo: str | None = None, metadata: Mapping[str, Any] | None = None,
             pending: bool = False, minor: bool = False) -> Entry:
        """Post one balanced entry (or a pending one that holds funds).

        Amounts are major units (Decimal, int or str); with ``minor=True``
        they are integer minor units (fen).
        """
        draft = Draft(tuple(postings), key, kind, effective_date,
                      "pending" if pending else "posted", external_ref, memo, metadata, minor=minor)
        return self.post_drafts([draft])[0]

    def post_many(self, entries: Iterable[Mapping[str, Any] | Draft]) -> list[Entry]:
        """Post a batch in one database transaction: all or nothing.

        Each item is a :class:`Draft` or a mapping with the keyword arguments
        of :meth:`post` (``postings``, ``key``, ``kind``, ...).
        """
        drafts = [e if isinstance(e, Draft) else draft_from_mapping(e) for e in entries]
        return self.post_drafts(drafts)

    def post_drafts(self, drafts: Sequence[Draft], *,
                    before: Callable[[Connection], Any] | None = None) -> list[Entry]:
        """The one write path: drafts -> entries, in one retried transaction.

        A single draft on PostgreSQL first tries :class:`~ledger.postings.FastPoster`
        (one round trip); whatever it cannot write goes through :func:`write`.
        """
        if len(drafts) == 1 and before is None and self._fast is not None:
            entry = self._fast.post(drafts[0])
            if entry is not None:
                self._after_write(1)
                return [entry]

        def run(conn):
            if before is not None:
                before(conn)
            return write(conn, self.book_id, drafts, account_cache=self._account_cache)
        result = self._write(run)
        self._after_write(sum(1 for e in result if not e.replayed))
        return result

    def in_transaction(self, fn: Callable[[Connection, "Book"], T]) -> T:
        """Run ``fn(conn, book)`` in one retried write transaction.

        For callers (the flows) that write their own rows beside entries:
        they call :func:`ledger.postings.write` with ``conn`` and everything
        commits or rolls back together.
        """
        result = self._write(lambda conn: fn(conn, self))
        self._after_write(1)
        return result

    def _after_write(self, written: int) -> None:
        self._unsealed += written
        if self._unsealed >= self.seal_every:
            self._unsealed = 0
            self.seal(wait=False)

    # --- two-phase and reversals ---------------------------------------------------
    def _complete(self, key: str, build: Callable[[Connection, int | None], Draft]) -> Entry:
        def run(conn):
            # The draft is built even for a replay, so the write path compares it with
            # the first call: the key reused for another entry is a conflict, not a replay.
            replay = find_replay(conn, self.book_id, key)
            return write(conn, self.book_id, [build(conn, replay.id if replay else None)],
                         account_cache=self._account_cache, completions=True)[0]
        entry = self._write(run)
        self._after_write(0 if entry.replayed else 1)
        return entry

    def commit_pending(self, entry_id: int, *, key: str, amount: Any = None,
                       postings: Sequence[tuple[str, Any]] | None = None,
                       effective_date: dt.date | None = None, external_ref: str | None = None,
                       memo: str | None = None, metadata: Mapping[str, Any] | None = None) -> Entry:
        """Complete a pending entry, fully or partly; its holds are released.

        ``amount`` commits part of a two-posting entry; ``postings`` gives
        explicit (smaller or equal, same sign) amounts for a larger one.
        """
        return self._complete(key, lambda conn, replay_of: commit_draft(
            conn, self.book_id, entry_id, key=key, amount=amount, postings=postings,
            effective_date=effective_date, external_ref=external_ref, memo=memo, metadata=metadata,
            replay_of=replay_of))

    def void_pending(self, entry_id: int, *, key: str, effective_date: dt.date | None = None,
                     memo: str | None = None) -> Entry:
        """Cancel a pending entry: no postings, its holds are released."""
        return self._complete(key, lambda conn, replay_of: void_draft(
            conn, self.book_id, entry_id, key=key, effective_date=effective_date, memo=memo,
            replay_of=replay_of))

    def reverse(self, entry_id: int, *, key: str, reason: str,
                effective_date: dt.date | None = None) -> Entry:
        """Post the exact opposite of an entry, linked to it; once per entry.

        A loan's entries are refused (:class:`ledger.loans.LoanEntryReversalError`,
        nothing written): their loan's dues move only with its own flows.
        """
        from .loans import refuse_reversal

        def build(conn, replay_of):
            if replay_of is None:   # a retry of a reversal already written replays it
                refuse_reversal(conn, self.book_id, entry_id)
            return reversal_draft(conn, self.book_id, entry_id, key=key, reason=reason,
                                  effective_date=effective_date, replay_of=replay_of)
        return self._complete(key, build)

    # --- reading ----------------------------------------------------------------
    def entry(self, entry_id: int) -> Entry:
        """One entry with its postings."""
        with self.reading() as conn:
            return get_entry(conn, self.book_id, entry_id)

    def entry_by_key(self, key: str) -> Entry | None:
        """The entry written under an idempotency key, or None."""
        with self.reading() as conn:
            found = load_entries(conn, self.book_id, keys=[key])
            return found[0][1] if found else None

    def balance(self, code: str, *, as_of: dt.date | None = None, kind: str = "posted") -> Decimal:
        """Balance on the account's normal side: posted, pending or available."""
        with self.reading() as conn:
            account = acc.get_account(conn, self.book_id, code)
            return from_minor(balances.balance_minor(conn, account, kind, as_of), account.currency)

    def balance_minor(self, code: str, *, as_of: dt.date | None = None, kind: str = "posted") -> int:
        """Like :meth:`balance`, in integer minor units."""
        with self.reading() as conn:
            account = acc.get_account(conn, self.book_id, code)
            return balances.balance_minor(conn, account, kind, as_of)

    # --- chain and verification ---------------------------------------------------
    def seal(self, *, wait: bool = True) -> int:
        """Link every queued entry into the hash chain; returns how many."""
        return db.write_transaction(self.engine, lambda c: chain.seal(c, self.book_id, wait=wait))

    def verify(self, **kwargs):
        """Check the whole book; see :func:`ledger.verify.verify_book`."""
        from .verify import verify_book

        return verify_book(self, **kwargs)

    def close_period(self, through: dt.date, label: str | None = None, closed_by: str | None = None,
                     *, today: dt.date | None = None):
        """Close the book through ``through`` (no entry may be dated on or before it) and
        write its balance checkpoint; see :mod:`ledger.periods`. ``through`` is a date, or
        a period as the CLI takes it: ``"2026-11"`` (a month), ``"2026"``, ``"2026-11-15"``."""
        from . import periods

        if isinstance(through, str):
            named, through = periods.parse_period(through)
            label = label or named
        elif type(through) is not dt.date:
            raise InputError(f"through {through!r}: a date or a period (YYYY-MM, YYYY or "
                             "YYYY-MM-DD)", period=through)
        return self._write(lambda c: periods.close_period(
            c, self.book_id, through, label or through.isoformat(), closed_by, today=today))

    def periods(self):
        """Every close of the book, oldest first (:class:`ledger.periods.ClosedPeriod`)."""
        from . import periods

        with self.reading() as conn:
            return periods.list_periods(conn, self.book_id)

    def dispose(self) -> None:
        """Close the engine's connections."""
        if self._fast is not None:
            self._fast.close()
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Book {self.name!r} on {self.engine.url.render_as_string(hide_password=True)}>"


def _check_book_name(name) -> None:
    """A new book's name: text of 1 to 100 characters, none of them a control character or
    a line break (the name heads every report's footer line and CSV comment)."""
    import unicodedata

    if not isinstance(name, str) or not name.strip() or len(name) > 100 or any(
            unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in name):
        raise InputError(f"book name {name!r}: 1 to 100 characters, no control characters "
                         "or line breaks", book=name)


_DRAFT_FIELDS = {"postings", "key", "kind", "effective_date", "external_ref", "memo", "metadata",
                 "pending"}


def draft_from_mapping(item: Mapping[str, Any]) -> Draft:
    """A :class:`Draft` from the keyword arguments of :meth:`Book.post` as a mapping
    (``postings``, ``key``, ``kind``, ...): what ``post_many`` and ``ledger post`` take."""
    if not _DRAFT_FIELDS.issuperset(item):
        unknown = set(item) - _DRAFT_FIELDS
        raise PostingError(f"unknown entry field(s): {', '.join(sorted(unknown))}", fields=sorted(unknown))
    if "postings" not in item or "key" not in item:
        raise PostingError("an entry needs 'postings' and 'key'", field="postings" if "postings" not in item else "key")
    postings = item["postings"]
    if not isinstance(postings, (list, tuple)):
        raise PostingError(f"'postings' must be a list of (account, amount) pairs, got {postings!r}",
                           field="postings")
    pending = item.get("pending")
    if pending is not None and not isinstance(pending, bool):   # "false" is a string, and would hold the money
        raise PostingError(f"'pending' must be true or false, got {pending!r}", field="pending")
    return Draft(tuple([tuple(p) if isinstance(p, list) else p for p in postings]), item["key"],
                 item.get("kind", "transfer"), item.get("effective_date"),
                 "pending" if pending else "posted", item.get("external_ref"),
                 item.get("memo"), item.get("metadata"))


def open_book(url: str | None = None, *, book: str = DEFAULT_BOOK, upgrade: bool = True,
              engine: Engine | None = None, **engine_kwargs) -> Book:
    """Open (creating when needed) a book on a database brought to the latest schema."""
    engine = engine or db.make_engine(url, **engine_kwargs)
    if upgrade:
        db.upgrade(engine)

    def get_or_create(conn):
        book_id = conn.execute(select(m.Book.id).where(m.Book.name == book)).scalar()
        if book_id is None:
            _check_book_name(book)
            book_id = conn.execute(insert(m.Book).values(name=book, created_at=acc.utcnow())
                                   .returning(m.Book.id)).scalar_one()
        return book_id

    try:
        book_id = db.write_transaction(engine, get_or_create)
    except IntegrityError:
        book_id = db.write_transaction(engine, get_or_create)
    return Book(engine, book_id, book)
