"""The one-round-trip single post on PostgreSQL (:class:`ledger.postings.FastPoster`).

Each refusal is provoked with the fast path's caches warm, from a second
book object it cannot see (another process, as far as it knows), so the
database has to refuse: the post then goes through the full path, which
raises the typed error and leaves everything unchanged.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import psycopg2.extensions
import pytest
from sqlalchemy import func, select, text

import ledger
from ledger import db
from ledger import models as m
from ledger import postings
from ledger.errors import (
    ClosedAccountError,
    ClosedPeriodError,
    IdempotencyConflictError,
    InsufficientFundsError,
    UnbalancedEntryError,
    UnknownAccountError,
)

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U2 = "liabilities:users:u2:available"


class CountingCursor(psycopg2.extensions.cursor):
    """Counts ``execute`` calls: in autocommit mode each is one round trip."""

    calls: list[str] = []

    def execute(self, query, vars=None):
        CountingCursor.calls.append(query if isinstance(query, str) else query.decode())
        return super().execute(query, vars)


@pytest.fixture
def pg_url(pg_template):
    from tests.conftest import new_pg_database

    return new_pg_database(pg_template)


@pytest.fixture
def fast(pg_url, monkeypatch):
    """A book whose fast path reports each entry it wrote in ``book.fast_written``."""
    book = ledger.open(pg_url, connect_args={"cursor_factory": CountingCursor})
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.open_account(U2, "liability", no_overdraft=True)
    book.fast_written = []
    post = postings.FastPoster._post

    def recording(self, engine, fairy, p):
        entry = post(self, engine, fairy, p)
        if entry is not None:
            book.fast_written.append(entry.key)
        return entry
    monkeypatch.setattr(postings.FastPoster, "_post", recording)
    yield book
    book.dispose()


@pytest.fixture
def other(pg_url):
    book = ledger.open(pg_url, upgrade=False)
    yield book
    book.dispose()


def top_up(book, user, amount, key, **kw):
    return book.post([(BANK, D(amount)), (user, -D(amount))], key=key, kind="top_up", **kw)


def state(book):
    with book.reading() as conn:
        entries = conn.execute(select(func.count()).select_from(m.JournalEntry)).scalar_one()
        queued = conn.execute(select(func.count()).select_from(m.SealQueue)).scalar_one()
    return entries, queued, {(a.code, k): book.balance(a.code, kind=k) for a in book.accounts()
                             for k in ("posted", "pending", "available")}


def test_a_warm_single_post_is_one_round_trip(fast):
    top_up(fast, U1, "1", "warm-1")
    top_up(fast, U1, "1", "warm-2")   # statements prepared, accounts cached, next id reserved
    CountingCursor.calls.clear()
    entry = top_up(fast, U1, "10.00", "t1")
    assert CountingCursor.calls and len(CountingCursor.calls) == 1, CountingCursor.calls
    assert fast.fast_written[-1] == "t1"
    assert fast.entry(entry.id) == entry
    assert fast.balance(U1) == D("12.00") and fast.balance(BANK) == D("12.00")
    assert fast.verify().ok


def test_post_many_of_one_and_pending_take_the_fast_path(fast):
    top_up(fast, U1, "50", "t1")
    fast.post_many([{"postings": [(U1, "5"), (U2, "-5")], "key": "t2"}])
    held = fast.post([(U1, "20"), (BANK, "-20")], key="w1", kind="withdrawal", pending=True)
    assert fast.fast_written == ["t1", "t2", "w1"]
    assert fast.balance(U1, kind="available") == D("25.00")
    done = fast.commit_pending(held.id, key="w1-done")   # the full path
    assert done.pending_id == held.id
    assert fast.balance(U1) == D("25.00") and fast.balance(U1, kind="available") == D("25.00")
    report = fast.verify()
    assert report.ok and report.entries == 4


def test_replay_and_conflict_through_the_fast_path(fast):
    first = top_up(fast, U1, "10", "t1")
    again = top_up(fast, U1, "10", "t1")
    assert again.replayed and again.id == first.id and again.content_hash == first.content_hash
    before = state(fast)
    with pytest.raises(IdempotencyConflictError):
        top_up(fast, U1, "11", "t1")
    assert state(fast) == before
    assert fast.fast_written == ["t1"]


def test_insufficient_funds_is_refused_by_the_database(fast):
    top_up(fast, U1, "10", "t1")
    fast.post([(U1, "4"), (U2, "-4")], key="move-1")   # both wallets cached
    before = state(fast)
    with pytest.raises(InsufficientFundsError) as err:
        fast.post([(U1, "6.01"), (U2, "-6.01")], key="move-2")
    assert err.value.fields["account"] == U1
    assert state(fast) == before
    fast.post([(U1, "6.00"), (U2, "-6.00")], key="move-3")
    assert fast.balance(U1) == D("0.00") and fast.fast_written == ["t1", "move-1", "move-3"]


def test_an_account_closed_elsewhere_is_refused(fast, other):
    other.open_account("liabilities:users:u3:available", no_overdraft=True)
    top_up(fast, "liabilities:users:u3:available", "1", "t1")   # cached as open
    other.post([("liabilities:users:u3:available", "1"), (BANK, "-1")], key="back")
    other.close_account("liabilities:users:u3:available")
    before = state(fast)
    with pytest.raises(ClosedAccountError):
        top_up(fast, "liabilities:users:u3:available", "1", "t2")
    assert state(fast) == before
    assert "liabilities:users:u3:available" not in fast._fast.accounts


def test_a_period_closed_elsewhere_is_refused(fast, other):
    top_up(fast, U1, "1", "t1", effective_date=dt.date(2026, 10, 30))
    other.close_period(dt.date(2026, 10, 31), "2026-10", today=dt.date(2026, 11, 2))
    before = state(fast)
    with pytest.raises(ClosedPeriodError):
        top_up(fast, U1, "1", "late", effective_date=dt.date(2026, 10, 31))
    assert state(fast) == before
    top_up(fast, U1, "1", "on-time", effective_date=dt.date(2026, 11, 1))
    assert fast.fast_written == ["t1", "on-time"]


def test_validation_errors_and_unknown_accounts_keep_their_types(fast):
    top_up(fast, U1, "1", "t1")
    with pytest.raises(UnbalancedEntryError):
        fast.post([(BANK, "1"), (U1, "-2")], key="bad")
    with pytest.raises(UnknownAccountError):
        top_up(fast, "liabilities:users:nobody:available", "1", "t2")
    # an account opened by someone else is found on the first miss
    fast.open_account("liabilities:users:u9:available", no_overdraft=True)
    fast._fast.accounts.clear()
    top_up(fast, "liabilities:users:u9:available", "1", "t3")
    assert fast.fast_written == ["t1", "t3"]


def test_a_reserved_id_already_taken_falls_back(fast):
    first = top_up(fast, U1, "1", "t1")
    fast._fast._next_id = (fast._fast._next_id[0], first.id, fast._fast._next_id[2])
    second = top_up(fast, U1, "1", "t2")   # primary key refused; the full path writes it
    assert second.id != first.id and fast.fast_written == ["t1"]
    assert fast.verify().ok


def test_a_stale_reserved_id_is_replaced(fast, monkeypatch):
    top_up(fast, U1, "1", "t1")
    reserved = fast._fast._next_id[1]
    monkeypatch.setattr(postings, "ID_FRESH_SECONDS", 0.0)
    entry = top_up(fast, U1, "1", "t2")
    assert entry.id > reserved and fast.fast_written == ["t1", "t2"]


def _kill_other_backends(url):
    engine = db.make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    engine.dispose()


def test_dropped_connections_are_replaced(fast, pg_url, monkeypatch):
    top_up(fast, U1, "5", "t1")
    _kill_other_backends(pg_url)
    top_up(fast, U1, "5", "t2")        # the fast path fails, the full path writes it
    assert fast.balance(U1) == D("10.00")
    _kill_other_backends(pg_url)
    fast.post_many([{"postings": [(BANK, "1"), (U1, "-1")], "key": f"b{i}"} for i in range(2)])
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
    _kill_other_backends(pg_url)
    assert fast.balance(U1) == D("12.00")   # a read: the idle connection is pinged and replaced
    report = fast.verify()
    assert report.ok and report.entries == 4


def test_write_transaction_retries_a_connection_lost_before_commit(pg_url):
    engine = db.make_engine(pg_url)
    calls = []

    def fn(conn):
        calls.append(1)
        if len(calls) == 1:
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return conn.execute(text("SELECT 1")).scalar()
    assert db.write_transaction(engine, fn) == 1 and len(calls) == 2
    engine.dispose()


def test_sqlite_has_no_fast_path(tmp_path):
    book = ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    assert book._fast is None
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    top_up(book, U1, "1", "t1")
    assert book.balance(U1) == D("1.00")
    book.dispose()


def test_two_books_on_one_database_keep_their_own_accounts(fast, pg_url):
    second = ledger.open(pg_url, book="second", upgrade=False)
    second.open_account(BANK, "asset")
    second.open_account(U1, "liability", no_overdraft=True)
    fast._fast.accounts.clear()
    top_up(fast, U1, "3", "t1")       # a miss: loads the accounts after the last seen id
    top_up(second, U1, "5", "t1")     # same key and codes, another book
    assert fast.balance(U1) == D("3.00") and second.balance(U1) == D("5.00")
    theirs = {a.id for a in second.accounts()}
    assert fast._fast.accounts and not theirs & {a.id for a in fast._fast.accounts.values()}
    assert fast.verify().ok and second.verify().ok
    second.dispose()
