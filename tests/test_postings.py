"""The posting engine through the Book API, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

import ledger
from ledger.errors import (
    AlreadyReversedError,
    AmountError,
    ClosedAccountError,
    ClosedPeriodError,
    CurrencyMismatchError,
    FloatAmountError,
    IdempotencyConflictError,
    InsufficientFundsError,
    PendingStateError,
    PostingError,
    PrecisionError,
    UnbalancedEntryError,
    UnknownAccountError,
    ZeroAmountError,
)
from ledger.money import MAX_AMOUNT_MINOR

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U1W = "liabilities:users:u1:withdrawing"
U2 = "liabilities:users:u2:available"
FEES = "income:platform:fees:service"


@pytest.fixture
def chart(book):
    book.open_account(BANK, "asset")
    for code in (U1, U1W, U2):
        book.open_account(code, "liability", no_overdraft=True)
    book.open_account(FEES, "income")
    return book


def top_up(book, user, amount, key, **kw):
    return book.post([(BANK, D(amount)), (user, -D(amount))], key=key, kind="top_up", **kw)


def state(book):
    """Every balance of every kind, to prove a refusal changed nothing."""
    return {(a.code, k): book.balance(a.code, kind=k) for a in book.accounts()
            for k in ("posted", "pending", "available")}


def test_post_and_balances_on_normal_side(chart):
    entry = top_up(chart, U1, "100.00", "t1", external_ref="B001", memo="first",
                   metadata={"channel": "bank", "amount": D("100.00")})
    assert entry.id and not entry.replayed and entry.kind == "top_up"
    assert [p.amount for p in entry.postings] == [D("100.00"), D("-100.00")]
    assert entry.metadata == {"channel": "bank", "amount": "100.00"}
    assert chart.balance(U1) == D("100.00")
    assert chart.balance(BANK) == D("100.00")
    assert chart.entry(entry.id) == entry


def test_unbalanced_unknown_zero_float_precision_are_refused(chart):
    top_up(chart, U1, "10", "seed")
    before = state(chart)
    cases = [
        (UnbalancedEntryError, [(BANK, D("1")), (U1, D("-2"))]),
        (UnknownAccountError, [(BANK, D("1")), ("liabilities:users:nobody:available", D("-1"))]),
        (ZeroAmountError, [(BANK, D("0")), (U1, D("0"))]),
        (FloatAmountError, [(BANK, 1.0), (U1, -1.0)]),
        (PrecisionError, [(BANK, D("0.001")), (U1, D("-0.001"))]),
        (CurrencyMismatchError, [(BANK, D("1"), "USD"), (U1, D("-1"))]),
        (UnbalancedEntryError, [(BANK, D("1"))]),
    ]
    for error, postings in cases:
        with pytest.raises(error):
            chart.post(postings, key=f"bad-{error.__name__}")
        assert chart.entry_by_key(f"bad-{error.__name__}") is None
    assert state(chart) == before


def test_unbalanced_error_names_the_difference(chart):
    with pytest.raises(UnbalancedEntryError, match="CNY off by 1.00"):
        chart.post([(BANK, D("3")), (U1, D("-2"))], key="k")



def test_amounts_beyond_the_posting_limit_are_refused_naming_the_limit(chart):
    """However an amount comes in (Decimal, text, int major or minor units), beyond
    MAX_AMOUNT_MINOR it is an AmountError naming the posting, the amount and the limit,
    before anything is written; the limit itself posts, and its balance reads back."""
    top_up(chart, U1, "10", "seed")
    before = state(chart)
    beyond = [
        ([(BANK, "1e30"), (U1, "-1e30")], {}),
        ([(BANK, D("1E+400")), (U1, D("-1E+400"))], {}),
        ([(BANK, D("1e999999999")), (U1, D("-1e999999999"))], {}),
        ([(BANK, 10**17), (U1, -10**17)], {}),
        ([(BANK, "92233720368547758.07"), (U1, "-92233720368547758.07")], {}),
        ([(BANK, "10000000000000.01"), (U1, "-10000000000000.01")], {}),
        ([(BANK, D("10000000000000.01")), (U1, D("-10000000000000.01"))], {}),
        ([(BANK, 10**13 + 1), (U1, -(10**13 + 1))], {}),
        ([(BANK, MAX_AMOUNT_MINOR + 1), (U1, -MAX_AMOUNT_MINOR - 1)], {"minor": True}),
        ([(BANK, 2**63 - 1), (U1, 1 - 2**63)], {"minor": True}),
    ]
    for i, (postings, kw) in enumerate(beyond):
        with pytest.raises(AmountError, match=r"posting 0 \(assets:custody:bank\): .* CNY is beyond "
                                              r"the limit of ±10,000,000,000,000\.00 CNY") as info:
            chart.post(postings, key=f"huge-{i}", **kw)
        assert type(info.value) is AmountError and info.value.limit_minor == MAX_AMOUNT_MINOR
        assert info.value.key == f"huge-{i}" and info.value.currency == "CNY"
        assert chart.entry_by_key(f"huge-{i}") is None
    with pytest.raises(AmountError, match="beyond the limit"):
        chart.post_many([{"postings": [(BANK, "5"), (U1, "-5")], "key": "fine"},
                         {"postings": [(BANK, "1e16"), (U1, "-1e16")], "key": "huge"}])
    assert chart.entry_by_key("fine") is None
    assert state(chart) == before

    limit = D(MAX_AMOUNT_MINOR).scaleb(-2)
    chart.post([(BANK, limit), (FEES, -limit)], key="at-limit-decimal")
    chart.post([(BANK, f"{limit}"), (FEES, f"-{limit}")], key="at-limit-text")
    chart.post([(BANK, MAX_AMOUNT_MINOR), (FEES, -MAX_AMOUNT_MINOR)], key="at-limit-minor",
               minor=True)
    assert chart.balance(BANK) == 3 * limit + 10
    assert chart.verify().ok


def test_amounts_with_absurd_exponents_are_refused_at_once(chart):
    """Exponents far out of range are refused from the exponent alone (no integer of a
    billion digits is built), and an amount hashed for idempotency is never rounded."""
    with pytest.raises(PrecisionError):
        chart.post([(BANK, D("1e-999999999")), (U1, D("-1e-999999999"))], key="tiny")
    with pytest.raises(ZeroAmountError):
        chart.post([(BANK, D("0e-999999999")), (U1, D("0E+999999999"))], key="zeros")
    top_up(chart, U1, "1000", "k")
    with pytest.raises(IdempotencyConflictError):
        top_up(chart, U1, "1000.000000000000000000000000001", "k")
    assert chart.balance(U1) == D("1000.00")


def test_insufficient_funds_counts_pending_holds(chart):
    top_up(chart, U1, "100", "t1")
    chart.post([(U1, D("70")), (U1W, D("-70"))], key="hold", pending=True)
    assert chart.balance(U1, kind="available") == D("30.00")
    assert chart.balance(U1) == D("100.00")
    with pytest.raises(InsufficientFundsError) as info:
        chart.post([(U1, D("40")), (U2, D("-40"))], key="too-much")
    assert info.value.account == U1 and info.value.available_minor == 3000
    chart.post([(U1, D("30")), (U2, D("-30"))], key="exactly")
    assert chart.balance(U1, kind="available") == D("0.00")


def test_idempotent_replay_and_conflict(chart):
    first = top_up(chart, U1, "5", "same")
    again = top_up(chart, U1, "5.00", "same")
    assert again.id == first.id and again.replayed
    assert chart.balance(U1) == D("5.00")
    with pytest.raises(IdempotencyConflictError):
        top_up(chart, U1, "6", "same")
    assert chart.balance(U1) == D("5.00")


def test_two_phase_commit_partial_and_once(chart):
    top_up(chart, U1, "100", "t1")
    pending = chart.post([(U1, D("60")), (U1W, D("-60"))], key="w", kind="withdrawal", pending=True)
    assert chart.balance(U1W, kind="pending") == D("60.00")
    committed = chart.commit_pending(pending.id, key="w-ok", amount="45")
    assert committed.phase == "commit" and committed.pending_id == pending.id
    assert chart.balance(U1) == D("55.00")
    assert chart.balance(U1, kind="available") == D("55.00")
    assert chart.balance(U1W) == D("45.00")
    assert chart.balance(U1W, kind="pending") == D("0.00")
    with pytest.raises(PendingStateError):
        chart.commit_pending(pending.id, key="w-again")
    with pytest.raises(PendingStateError):
        chart.void_pending(pending.id, key="w-void")
    assert chart.commit_pending(pending.id, key="w-ok", amount="45").replayed


def test_void_releases_the_hold(chart):
    top_up(chart, U1, "100", "t1")
    pending = chart.post([(U1, D("60")), (U1W, D("-60"))], key="w", pending=True)
    void = chart.void_pending(pending.id, key="w-void")
    assert void.phase == "void" and void.postings == ()
    assert chart.balance(U1, kind="available") == D("100.00")
    assert chart.balance(U1W) == D("0.00")
    with pytest.raises(PendingStateError):
        chart.commit_pending(pending.id, key="w-late")


def test_a_completion_or_reversal_dated_before_its_entry_is_refused(chart):
    """A withdrawal held on 10-20 was committed as of 10-10, a transfer of 10-20 reversed as of
    10-02: the balances as of a day in between showed money moved before it was asked for."""
    day = dt.date(2026, 10, 20)
    top_up(chart, U1, "100", "t1", effective_date=dt.date(2026, 10, 1))
    hold = chart.post([(U1, D("60")), (U1W, D("-60"))], key="w", pending=True, effective_date=day)
    moved = chart.post([(U1, D("5")), (U2, D("-5"))], key="x", effective_date=day)
    count = entries(chart)
    early = dt.date(2026, 10, 10)
    for call, done in ((lambda: chart.commit_pending(hold.id, key="c", effective_date=early), "committed"),
                       (lambda: chart.void_pending(hold.id, key="v", effective_date=early), "voided"),
                       (lambda: chart.reverse(moved.id, key="r", reason="error", effective_date=early),
                        "reversed")):
        entry = hold if done != "reversed" else moved
        with pytest.raises(PostingError, match=rf"entry {entry.id} is dated 2026-10-20; it cannot be "
                                               rf"{done} as of 2026-10-10, before it"):
            call()
    assert entries(chart) == count
    assert chart.balance(U1, as_of=dt.date(2026, 10, 15)) == D("100.00")
    assert chart.commit_pending(hold.id, key="c", effective_date=day).effective_date == day
    assert chart.reverse(moved.id, key="r", reason="error", effective_date=day).effective_date == day


@pytest.mark.parametrize("field, value", [("memo", "refund \ud800"), ("external_ref", "B\udc00"),
                                          ("metadata", {"note": "\ud83d"}), ("metadata", {"\udc00": 1})])
def test_text_with_a_lone_surrogate_is_refused_by_name(chart, field, value):
    """It was a UnicodeEncodeError from the request hash (a traceback from ledger post)."""
    before = entries(chart)
    with pytest.raises(PostingError, match="is not valid text: character .* is a lone surrogate"):
        chart.post([(BANK, D("1")), (FEES, D("-1"))], key="odd", **{field: value})
    assert entries(chart) == before


def entries(book) -> int:
    with book.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM journal_entry").scalar()


def test_an_entry_dated_ahead_is_reversed_as_of_its_date_or_later_not_today(chart):
    ahead = dt.date.today() + dt.timedelta(days=30)
    top_up(chart, U1, "100", "t1")
    moved = chart.post([(U1, D("5")), (U2, D("-5"))], key="x", effective_date=ahead)
    with pytest.raises(PostingError, match=f"it cannot be reversed as of {dt.date.today()}, before it"):
        chart.reverse(moved.id, key="r", reason="error")      # given no date: today
    assert chart.reverse(moved.id, key="r", reason="error", effective_date=ahead).effective_date == ahead


def test_commit_amount_above_pending_is_refused(chart):
    top_up(chart, U1, "100", "t1")
    pending = chart.post([(U1, D("60")), (U1W, D("-60"))], key="w", pending=True)
    with pytest.raises(PendingStateError):
        chart.commit_pending(pending.id, key="w-big", amount="60.01")


def test_reversal_once_and_linked(chart):
    entry = top_up(chart, U1, "100", "t1")
    reversal = chart.reverse(entry.id, key="r1", reason="bank recalled the transfer")
    assert reversal.reverses_id == entry.id and reversal.kind == "reversal"
    assert [p.amount for p in reversal.postings] == [D("-100.00"), D("100.00")]
    assert chart.balance(U1) == D("0.00")
    with pytest.raises(AlreadyReversedError):
        chart.reverse(entry.id, key="r2", reason="again")


def test_reversal_refused_when_it_would_overdraw(chart):
    entry = top_up(chart, U1, "100", "t1")
    chart.post([(U1, D("80")), (U2, D("-80"))], key="spend")
    with pytest.raises(InsufficientFundsError):
        chart.reverse(entry.id, key="r1", reason="recall")


def test_balance_as_of_effective_date(chart):
    top_up(chart, U1, "10", "d1", effective_date=dt.date(2026, 11, 20))
    top_up(chart, U1, "5", "d2", effective_date=dt.date(2026, 11, 22))
    assert chart.balance(U1, as_of=dt.date(2026, 11, 19)) == D("0.00")
    assert chart.balance(U1, as_of=dt.date(2026, 11, 21)) == D("10.00")
    assert chart.balance(U1, as_of=dt.date(2026, 11, 22)) == D("15.00")


def test_post_many_is_all_or_nothing_and_sequential(chart):
    entries = [
        {"postings": [(BANK, "50"), (U1, "-50")], "key": "a", "kind": "top_up"},
        {"postings": [(U1, "50"), (U2, "-50")], "key": "b"},
        {"postings": [(U1, "1"), (U2, "-1")], "key": "c"},  # U1 is empty by now
    ]
    with pytest.raises(InsufficientFundsError) as info:
        chart.post_many(entries)
    assert info.value.key == "c"
    assert chart.entry_by_key("a") is None and chart.balance(BANK) == D("0.00")
    written = chart.post_many(entries[:2])
    assert [e.key for e in written] == ["a", "b"]
    assert chart.balance(U2) == D("50.00")
    assert [e.replayed for e in chart.post_many(entries[:2])] == [True, True]


def test_batch_may_spend_money_it_receives_earlier_in_the_batch(chart):
    chart.post_many([
        {"postings": [(BANK, "20"), (U1, "-20")], "key": "in"},
        {"postings": [(U1, "20"), (U2, "-20")], "key": "out"},
    ])
    assert chart.balance(U1) == D("0.00") and chart.balance(U2) == D("20.00")


def test_closed_account_and_closed_period(chart):
    chart.open_account("liabilities:users:u3:available", no_overdraft=True)
    chart.close_account("liabilities:users:u3:available")
    with pytest.raises(ClosedAccountError):
        chart.post([(BANK, "1"), ("liabilities:users:u3:available", "-1")], key="x")
    top_up(chart, U1, "10", "t1")
    with pytest.raises(ClosedAccountError):
        chart.close_account(U1)
    chart.close_period(dt.date(2026, 10, 31), "2026-10")
    with pytest.raises(ClosedPeriodError):
        top_up(chart, U1, "1", "late", effective_date=dt.date(2026, 10, 31))
    top_up(chart, U1, "1", "on-time", effective_date=dt.date(2026, 11, 1))


def test_memo_postings_balance_among_themselves(chart):
    chart.open_account("memo:claims:inv1:loan1", "memo")
    chart.open_account("memo:obligations:b1:loan1", "memo")
    with pytest.raises(UnbalancedEntryError, match="memo"):
        chart.post([(BANK, "5"), ("memo:claims:inv1:loan1", "-5")], key="mixed")
    chart.post([("memo:claims:inv1:loan1", "5"), ("memo:obligations:b1:loan1", "-5")], key="claim")
    assert chart.balance("memo:claims:inv1:loan1") == D("5.00")


def test_account_open_is_idempotent_but_refuses_different_attributes(chart):
    assert chart.open_account(BANK, "asset").code == BANK
    with pytest.raises(ledger.AccountExistsError):
        chart.open_account(BANK, "asset", currency="USD")
    with pytest.raises(ledger.InvalidAccountError):
        chart.open_account("Bad Code", "asset")


def test_verify_sees_a_clean_book_and_the_custody_invariant(chart):
    top_up(chart, U1, "100", "t1")
    chart.post([(U1, "10"), (FEES, "-10")], key="fee", kind="fee")
    report = chart.verify()
    assert report.ok, report.problems
    assert report.entries == 2
    assert report.custody["CNY"] == {"custody_minor": 10000, "held_minor": 10000,
                                     "other_assets_minor": 0, "difference_minor": 0}


def test_open_twice_returns_the_same_book(db_url):
    first = ledger.open(db_url)
    second = ledger.open(db_url)
    assert first.book_id == second.book_id
    other = ledger.open(db_url, book="second")
    assert other.book_id != first.book_id
