"""Posting API edge cases: commits, drafts, batches and flows that must be refused whole."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from ledger import Draft
from ledger.errors import PendingStateError, PostingError

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U2 = "liabilities:users:u2:available"


@pytest.fixture
def chart(book):
    book.open_account(BANK, "asset")
    for code in (U1, U2):
        book.open_account(code, "liability", no_overdraft=True)
    book.post([(BANK, D("100")), (U1, D("-100"))], key="t1", kind="top_up")
    return book


def state(book):
    """Every balance of every kind, and the entries, to prove a refusal changed nothing."""
    with book.reading() as conn:
        entries = conn.exec_driver_sql("SELECT count(*) FROM journal_entry").scalar()
    return entries, {(a.code, k): book.balance(a.code, kind=k) for a in book.accounts()
                     for k in ("posted", "pending", "available")}


def test_a_commit_naming_an_account_twice_cannot_commit_more_than_was_held(chart):
    hold = chart.post([(U1, "60"), (U2, "-60")], key="h1", pending=True)
    before = state(chart)
    with pytest.raises(PendingStateError, match="twice"):
        chart.commit_pending(hold.id, key="c1",
                             postings=[(U1, "60"), (U1, "40"), (U2, "-60"), (U2, "-40")])
    assert state(chart) == before
    chart.commit_pending(hold.id, key="c2", postings=[(U1, "50"), (U2, "-50")])
    assert chart.balance(U1) == D("50.00") and chart.balance(U2) == D("50.00")
    assert chart.verify().ok


@pytest.mark.parametrize("draft", [
    Draft(((U1, "30"), (U2, "-30")), "x1", phase="commit", pending_id=2),   # no hold released
    Draft((), "x2", phase="void", pending_id=1),                           # a posted entry "voided"
    Draft(((U1, "5"), (U2, "-5")), "x3", reverses_id=1),                   # not its opposite
    Draft(((BANK, "1"), (U1, "-1")), "x4", releases=((2, 60),)),           # the hold let go
])
def test_completions_and_reversals_come_only_from_their_own_calls(chart, draft):
    hold = chart.post([(U1, "60"), (U2, "-60")], key="h1", pending=True)
    assert hold.id == 2
    chart.post([(BANK, D("100")), (U1, D("-100"))], key="t2", kind="top_up")
    before = state(chart)
    with pytest.raises(PostingError, match="commit_pending|reverse"):
        chart.post_many([draft])
    with pytest.raises(PostingError, match="commit_pending|reverse"):
        chart.post_drafts([draft])
    assert state(chart) == before
    chart.commit_pending(hold.id, key="c1")
    chart.reverse(1, key="r1", reason="recalled")   # neither was taken by the drafts
    assert chart.verify().ok


@pytest.mark.parametrize("item, problem", [
    ({"postings": None, "key": "k"}, "postings"),
    ({"postings": 5, "key": "k"}, "postings"),
    ({"postings": "ab", "key": "k"}, "postings"),
    ({"postings": [[U1, "1"], [U2, "-1"]], "key": "k", "pending": "false"}, "pending"),
    ({"postings": [[U1, "1"], [U2, "-1"]], "key": "k", "pending": 1}, "pending"),
    ({"postings": [[U1, "1"], [U2, "-1"]], "key": "k", "metadata": [["a", 1]]}, "metadata"),
    ({"postings": [[U1, "1"], [U2, "-1"]], "key": "k", "metadata": "abc"}, "metadata"),
])
def test_a_malformed_batch_item_is_a_posting_error_and_writes_nothing(chart, item, problem):
    before = state(chart)
    with pytest.raises(PostingError, match=problem):
        chart.post_many([{"postings": [[BANK, "5"], [U1, "-5"]], "key": "ok"}, item])
    assert state(chart) == before


def test_metadata_that_is_not_a_mapping_is_refused_by_post(chart):
    with pytest.raises(PostingError, match="metadata"):
        chart.post([(U1, "1"), (U2, "-1")], key="k", metadata=[("a", 1)])
    assert chart.entry_by_key("k") is None


def test_completions_given_a_bad_date_or_bad_postings_raise_ledger_errors(chart):
    hold = chart.post([(U1, "60"), (U2, "-60")], key="h1", pending=True)
    before = state(chart)
    for call in (lambda: chart.commit_pending(hold.id, key="c", effective_date="2030-01-01"),
                 lambda: chart.void_pending(hold.id, key="c", effective_date="2030-01-01"),
                 lambda: chart.reverse(1, key="c", reason="x", effective_date="2030-01-01")):
        with pytest.raises(PostingError, match="effective_date must be a date"):
            call()
    for postings in ([(U1,)], "ab", [(U1, "60", "CNY"), (U2, "-60")]):
        with pytest.raises(PendingStateError, match="pairs"):
            chart.commit_pending(hold.id, key="c", postings=postings)
    assert state(chart) == before


def test_opening_an_account_with_a_currency_or_flag_of_the_wrong_type_is_refused(book):
    from ledger.errors import InvalidAccountError

    for kwargs in ({"currency": 5}, {"currency": None}, {"no_overdraft": "no"},
                   {"no_overdraft": 1}):
        with pytest.raises(InvalidAccountError):
            book.open_account("assets:x", "asset", **kwargs)
    assert book.accounts() == []


@pytest.mark.parametrize("entries", [1, 2], ids=["one entry (one round trip)", "a batch"])
def test_a_post_that_read_the_account_open_cannot_land_after_its_close(book, backend, db_url,
                                                                       entries):
    """PostgreSQL: the close has read the balance (zero) and locked the account; a post that
    read the account open before the close committed must not leave a closed account
    holding money: it waits for the close and is refused at its commit."""
    import threading
    import time

    from ledger import balances
    from ledger.errors import ClosedAccountError

    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: a post waits for the close to end")
    import ledger

    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    platform = ledger.open(db_url)   # another process's book: its own connections
    locked, posting = threading.Event(), threading.Event()
    plain_sums = balances.raw_sums

    def sums_then_wait(conn, account):
        found = plain_sums(conn, account)    # zero: nothing posted yet
        locked.set()
        assert posting.wait(10)
        time.sleep(0.5)                      # the post is writing meanwhile (and waits)
        return found

    outcome: dict = {}

    def close():
        try:
            outcome["closed"] = book.close_account(U1)
        except Exception as exc:
            outcome["closed"] = exc

    def post():
        assert locked.wait(10)
        posting.set()
        try:
            outcome["posted"] = platform.post_many(
                [{"postings": [(BANK, "5.00"), (U1, "-5.00")], "key": f"late-top-up-{k}"}
                 for k in range(entries)])
        except Exception as exc:
            outcome["posted"] = exc

    balances.raw_sums = sums_then_wait
    try:
        threads = [threading.Thread(target=close), threading.Thread(target=post)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        balances.raw_sums = plain_sums
        platform.dispose()
    assert not isinstance(outcome["closed"], Exception), outcome
    assert outcome["closed"].is_closed
    assert isinstance(outcome["posted"], ClosedAccountError), outcome
    assert U1 in str(outcome["posted"])
    assert book.entry_by_key("late-top-up-0") is None
    assert book.balance(U1) == 0 and book.verify().ok
