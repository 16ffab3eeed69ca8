"""Loan flows as balanced entries: a full life by example, and every refusal."""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

import ledger
import ledger.loans
from ledger import db
from ledger.errors import FloatAmountError, IdempotencyConflictError, InsufficientFundsError, PostingError
from ledger.flows import BANK, RISK_RESERVE, FlowError, fee_account, wallet
from ledger.loans import (
    LoanEntryReversalError, LoanStateError, OverpaymentError, claim_account, obligation_account,
    offer_accounts, penalty_accounts,
)
from ledger.schedules import RateCapExceededError, ScheduleError, schedule

START = dt.date(2026, 1, 15)
INVESTORS = {"inv1": "33333.33", "inv2": "33333.33", "inv3": "33333.34"}


def open_platform(book):
    """The system accounts, and investors, a borrower and a payer with 50,000 each."""
    f = book.flows
    f.open_system_accounts()
    for user in (*INVESTORS, "bob", "dave"):
        f.open_user(user)
        f.top_up(user, "50000", bank_ref=f"B-{user}", key=f"topup-{user}")
    return book


@pytest.fixture
def platform(book):
    return open_platform(book)


def funded_loan(book, **kw):
    book.loans.create_loan("L001", "bob", "100000", "0.06", 12, key="create-L001", start=START, **kw)
    for inv, amount in INVESTORS.items():
        book.loans.bid("L001", inv, amount, key=f"bid-{inv}")
    return book.loans.loan("L001")


def disbursed_loan(book) -> tuple:
    """Loan L001 funded and disbursed on a platform; :func:`dues_state` after it."""
    funded_loan(book)
    book.loans.disburse("L001", key="d", effective_date=START)
    return dues_state(book)


def test_full_life_three_investors_get_exactly_their_principal(platform):
    book = platform
    view = funded_loan(book, management_fee_rate="0.10")
    assert view.status == "funded"
    assert book.balance(wallet("inv1", "frozen")) == D("33333.33")
    book.loans.disburse("L001", key="disburse-L001", effective_date=START)
    assert book.balance(wallet("bob")) == D("150000.00")
    assert book.balance(claim_account("inv3", "L001")) == D("33333.34")
    plan = book.loans.loan("L001").installments
    assert plan[0].principal + plan[0].interest == D("8606.64")
    paid_by_borrower = D(0)
    for inst in plan:
        before = book.balance(wallet("bob"))
        book.loans.repay("L001", inst.outstanding, key=f"repay-{inst.seq}", on_date=inst.due_date)
        paid_by_borrower += before - book.balance(wallet("bob"))
    view = book.loans.loan("L001", today=plan[-1].due_date)
    assert view.status == "settled" and view.outstanding_principal == 0
    assert paid_by_borrower == sum(i.principal + i.interest + i.fee for i in plan)
    for p in view.positions:
        assert p.principal_received == D(INVESTORS[p.party])
        assert p.outstanding_principal == 0
    total_interest = sum(p.interest_received for p in view.positions)
    assert total_interest == sum(i.interest for i in plan)
    # The fee is 10% of each investor's interest, rounded once per investor.
    expected = sum((p.interest_received * D("0.10")).quantize(D("0.01"), rounding=ROUND_HALF_UP)
                   for p in view.positions)
    assert book.balance(fee_account("management")) == expected
    for inv in INVESTORS:
        assert book.balance(claim_account(inv, "L001")) == 0
    report = book.verify()
    assert report.ok, report.problems


def test_overfunding_and_insufficient_balance_are_refused(platform):
    book = platform
    book.loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c", start=START)
    book.loans.bid("L001", "inv1", "40000", key="b1")
    with pytest.raises(FlowError, match="exceeds"):
        book.loans.bid("L001", "inv2", "60000.01", key="b2")
    with pytest.raises(InsufficientFundsError):
        book.loans.bid("L001", "inv2", "50000.01", key="b3")
    assert book.loans.loan("L001").raised == D("40000.00")
    with pytest.raises(LoanStateError):
        book.loans.disburse("L001", key="d")


def test_cancel_unfreezes_every_bid(platform):
    book = platform
    book.loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c", start=START)
    book.loans.bid("L001", "inv1", "30000", key="b1")
    book.loans.bid("L001", "inv2", "20000", key="b2")
    book.loans.cancel_loan("L001", key="cancel")
    assert book.balance(wallet("inv1")) == D("50000.00")
    assert book.balance(wallet("inv1", "frozen")) == D("0.00")
    assert book.loans.loan("L001").status == "cancelled"
    with pytest.raises(LoanStateError):
        book.loans.bid("L001", "inv3", "1", key="b3")


def test_rate_above_the_cap_is_refused(platform):
    with pytest.raises(RateCapExceededError):
        platform.loans.create_loan("L009", "bob", "1000", "0.36", 12, key="c9", start=START)
    assert platform.loans.loans() == []


def test_partial_late_repayment_with_penalty_and_overpayment(platform):
    book = platform
    funded_loan(book)
    book.loans.disburse("L001", key="d", effective_date=START)
    first = book.loans.loan("L001").installments[0]
    late = first.due_date + dt.timedelta(days=10)
    accrued = book.loans.accrue_penalties(late)
    assert len(accrued) == 1
    assert book.loans.accrue_penalties(late)[0].replayed
    view = book.loans.loan("L001", today=late)
    assert view.status == "overdue"
    penalty = view.installments[0].penalty_outstanding
    # 8106.64 overdue principal x 6% x 1.5 / 360 x 10 days
    assert penalty == (D("8106.64") * D("0.06") * D("1.5") / 360 * 10).quantize(D("0.01"))
    book.loans.repay("L001", "100", key="part", on_date=late)
    view = book.loans.loan("L001", today=late)
    assert view.installments[0].penalty_outstanding == 0  # penalty is paid first
    assert view.installments[0].paid == D("100.00")
    owed = sum(i.outstanding for i in view.installments)
    with pytest.raises(OverpaymentError):
        book.loans.repay("L001", owed + D("0.01"), key="too-much", on_date=late)
    assert book.verify().ok


def test_pay_off_early_waives_later_interest_and_charges_the_fee(platform):
    book = platform
    funded_loan(book, prepayment_fee_rate="0.01")
    book.loans.disburse("L001", key="d", effective_date=START)
    first = book.loans.loan("L001").installments[0]
    book.loans.repay("L001", first.outstanding, key="r1", on_date=first.due_date)
    on = first.due_date + dt.timedelta(days=14)
    quote = book.loans.payoff_quote("L001", on)
    assert quote["principal"] == D("100000.00") - first.principal
    assert quote["prepayment_fee"] == (quote["principal"] * D("0.01")).quantize(D("0.01"))
    before = book.balance(wallet("bob"))
    book.loans.pay_off("L001", key="payoff", on_date=on)
    assert before - book.balance(wallet("bob")) == quote["total"]
    view = book.loans.loan("L001", today=on)
    assert view.status == "settled"
    assert sum(p.principal_received for p in view.positions) == D("100000.00")
    assert book.balance(fee_account("prepayment")) == quote["prepayment_fee"]
    assert book.verify().ok


def test_compensation_pays_investors_and_moves_the_claim(platform):
    book = platform
    book.flows.fund_risk_reserve("20000", bank_ref="RR1", key="rr")
    funded_loan(book)
    book.loans.disburse("L001", key="d", effective_date=START)
    first = book.loans.loan("L001").installments[0]
    late = first.due_date + dt.timedelta(days=30)
    before = {inv: book.balance(wallet(inv)) for inv in INVESTORS}
    book.loans.compensate("L001", 1, key="comp-1", on_date=late)
    gained = sum(book.balance(wallet(inv)) - before[inv] for inv in INVESTORS)
    assert gained == first.principal + first.interest
    assert book.balance(RISK_RESERVE) == D("20000.00") - gained
    assert book.balance(claim_account("@risk_reserve", "L001")) == first.principal
    # The borrower's later payment of installment 1 goes to the risk reserve; the penalty of
    # its 30 days overdue (accrued by the compensation) to the investors owed it then.
    owed = book.loans.loan("L001").installments[0]
    assert owed.penalty_outstanding > 0
    assert owed.outstanding == first.principal + first.interest + owed.penalty_outstanding
    book.loans.repay("L001", owed.outstanding, key="late-1", on_date=late)
    assert book.balance(RISK_RESERVE) == D("20000.00")
    assert sum(book.balance(wallet(inv)) - before[inv] for inv in INVESTORS) == gained + owed.penalty_outstanding
    assert book.balance(claim_account("@risk_reserve", "L001")) == 0
    assert book.verify().ok
    with pytest.raises(LoanStateError):
        book.loans.compensate("L001", 12, key="comp-12", on_date=late)


def test_claim_transfer_moves_future_distributions(platform):
    book = platform
    funded_loan(book)
    book.loans.disburse("L001", key="d", effective_date=START)
    on = START + dt.timedelta(days=3)
    book.loans.transfer_claim("L001", "inv1", "dave", share="1", price="33000", fee="33",
                              key="xfer", on_date=on)
    assert book.balance(wallet("dave")) == D("17000.00")
    assert book.balance(wallet("inv1")) == D("16666.67") + D("32967.00")
    assert book.balance(claim_account("dave", "L001")) == D("33333.33")
    assert book.balance(claim_account("inv1", "L001")) == 0
    first = book.loans.loan("L001").installments[0]
    book.loans.repay("L001", first.outstanding, key="r1", on_date=first.due_date)
    view = book.loans.loan("L001", today=first.due_date)
    dave = next(p for p in view.positions if p.party == "dave")
    assert dave.acquired == D("33333.33") and dave.principal_received > 0
    inv1 = next(p for p in view.positions if p.party == "inv1")
    assert inv1.disposed == D("33333.33") and inv1.principal_received == 0
    for p in view.positions:
        assert p.funded + p.acquired - p.disposed == p.principal_received + p.outstanding_principal
    assert book.verify().ok


def test_direct_bank_repayment_enters_custody(platform):
    book = platform
    funded_loan(book)
    book.loans.disburse("L001", key="d", effective_date=START)
    first = book.loans.loan("L001").installments[0]
    bank_before = book.balance(BANK)
    entry = book.loans.repay("L001", first.outstanding, key="r1", on_date=first.due_date,
                             bank_ref="CARD-001")
    assert entry.external_ref == "CARD-001"
    assert book.balance(BANK) == bank_before + first.outstanding
    assert book.verify().ok


def test_loan_dues_and_bids_are_append_only(platform):
    disbursed_loan(platform)
    for stmt, table in (("UPDATE loan_due SET amount_minor = 1", "loan_due"),
                        ("DELETE FROM loan_bid", "loan_bid")):
        with pytest.raises(DBAPIError, match=f"append_only_{table}"):
            with platform.engine.begin() as conn:
                conn.execute(text(stmt))


DUE_COLUMNS = "loan_id, seq, component, party, amount_minor, reason, entry_id, effective_date"


def dues_state(book) -> tuple:
    """``(loan id, (latest entry of its dues, their count, their sum))``."""
    with book.engine.connect() as conn:
        return (conn.execute(text("SELECT id FROM loan")).scalar_one(),
                conn.execute(text("SELECT max(entry_id), count(*), sum(amount_minor) "
                                  "FROM loan_due")).one())


@pytest.mark.parametrize("bad", ["loan_id", "entry_id"])
def test_a_due_names_a_real_loan_and_journal_entry(platform, bad):
    """The references without foreign keys (migration 0007) are still checked by the database:
    a statement with one dangling row among good ones writes nothing."""
    loan_id, (entry_id, count, total) = disbursed_loan(platform)
    good = f"({loan_id}, 1, 'interest', 'inv1', 7, 'repay', {entry_id}, '2026-02-15')"
    wrong = {"loan_id": (loan_id + 1000, entry_id), "entry_id": (loan_id, entry_id + 10**6)}[bad]
    dangling = f"({wrong[0]}, 1, 'interest', 'inv2', 5, 'repay', {wrong[1]}, '2026-02-15')"
    with pytest.raises(IntegrityError, match=f"loan_due_references: {bad}"):
        with platform.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO loan_due ({DUE_COLUMNS}) VALUES {good}, {dangling}"))
    assert dues_state(platform) == (loan_id, (entry_id, count, total))
    # The same statement without the dangling row goes in (rolled back here).
    with platform.engine.connect() as conn:
        with conn.begin() as tx:
            conn.execute(text(f"INSERT INTO loan_due ({DUE_COLUMNS}) VALUES {good}, {good}"))
            assert conn.execute(text("SELECT count(*) FROM loan_due")).scalar_one() == count + 2
            tx.rollback()
    assert dues_state(platform) == (loan_id, (entry_id, count, total))


def test_a_loan_is_never_deleted_nor_renumbered(platform):
    funded_loan(platform)
    refused = ["DELETE FROM loan", "UPDATE loan SET id = id + 1000"]
    if platform.engine.dialect.name == "postgresql":
        refused.append("TRUNCATE loan CASCADE")
    for stmt in refused:
        with pytest.raises(DBAPIError, match="loan_keeps_key"):
            with platform.engine.begin() as conn:
                conn.execute(text(stmt))
    with platform.engine.begin() as conn:   # its other columns change as before
        conn.execute(text("UPDATE loan SET id = id, status = status"))
    assert platform.loans.loan("L001").status == "funded"


def test_down_to_0006_and_up_again_keeps_dues_and_their_checks(make_url):
    """Revision 0007 swaps the dues' foreign keys for its triggers, both ways, with dues in the
    table (SQLite rebuilds it): nothing is lost and a dangling due is refused at each step."""
    book = ledger.open(make_url())
    try:
        loan_id, (entry_id, count, total) = disbursed_loan(open_platform(book))
        dangling = (f"INSERT INTO loan_due ({DUE_COLUMNS}) VALUES "
                    f"({loan_id + 1000}, 1, 'interest', 'inv1', 5, 'repay', {entry_id}, '2026-02-15')")
        for revision, keys, refusal in (("0006", 2, "(?i)foreign key"),
                                        ("head", 0, "loan_due_references: loan_id")):
            if revision == "head":
                db.upgrade(book.engine)
            else:
                db.downgrade(book.engine, revision)
            assert len(inspect(book.engine).get_foreign_keys("loan_due")) == keys
            assert dues_state(book) == (loan_id, (entry_id, count, total))
            with pytest.raises(IntegrityError, match=refusal):
                with book.engine.begin() as conn:
                    conn.execute(text(dangling))
            with pytest.raises(Exception, match="append_only_loan_due"):
                with book.engine.begin() as conn:
                    conn.execute(text("UPDATE loan_due SET amount_minor = 1"))
        assert db.current_revision(book.engine) == db.head_revision()
    finally:
        book.dispose()


# --- idempotency: a retry replays, anything else under the key is a conflict ---------
def written(book) -> tuple:
    """Everything a loan call can write: row counts, wallet balances, each loan's state."""
    with book.engine.connect() as conn:
        counts = tuple(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                       for table in ("account", "journal_entry", "posting", "loan", "loan_bid",
                                     "loan_due"))
        balances = conn.execute(text("SELECT account_id, posted_minor, held_minor "
                                     "FROM account_balance ORDER BY account_id")).all()
        loans = conn.execute(text("SELECT loan_no, borrower, status, raised_minor, annual_rate "
                                  "FROM loan ORDER BY loan_no")).all()
    return counts, balances, loans


def refused_as_conflict(book, key: str, *calls, **named) -> None:
    """Each call raises a conflict naming ``key`` and what it was used for (``entry_id=``, or
    ``loan_no=`` for a loan), and writes nothing."""
    before = written(book)
    for call in calls:
        with pytest.raises(IdempotencyConflictError, match=f"key {key!r}") as refused:
            call()
        assert refused.value.key == key
        for name, value in named.items():
            assert getattr(refused.value, name) == value and str(value) in str(refused.value)
    assert written(book) == before


def test_a_bid_key_is_a_retry_of_that_bid_only(platform):
    loans = platform.loans
    loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c1", start=START)
    loans.create_loan("L002", "dave", "20000", "0.06", 12, key="c2", start=START)
    first = loans.bid("L001", "inv1", "30000", key="bid-1", effective_date=START)
    refused_as_conflict(
        platform, "bid-1",
        lambda: loans.bid("L002", "inv2", "1000", key="bid-1"),           # another loan, investor
        lambda: loans.bid("L001", "inv2", "30000", key="bid-1"),          # another investor
        lambda: loans.bid("L001", "inv1", "30000.01", key="bid-1"),       # another amount
        lambda: loans.bid("L001", "inv1", "30000", key="bid-1",
                          effective_date=START + dt.timedelta(days=1)),   # another date
        entry_id=first.id)
    topup = platform.entry_by_key("topup-inv2")
    refused_as_conflict(platform, "topup-inv2",
                        lambda: loans.bid("L001", "inv2", "30000", key="topup-inv2"),
                        entry_id=topup.id)
    assert platform.balance(wallet("inv2", "frozen")) == 0
    before = written(platform)
    for again in (loans.bid("L001", "inv1", "30000.00", key="bid-1"),
                  loans.bid("L001", "inv1", D("30000"), key="bid-1", effective_date=START)):
        assert again.replayed and again.id == first.id
    assert written(platform) == before


def test_a_repayment_key_is_a_retry_of_that_request_whatever_the_loan_owes_now(platform):
    disbursed_loan(platform)
    loans = platform.loans
    plan = loans.loan("L001").installments
    first = loans.repay("L001", "8606.64", key="repay-1", on_date=plan[0].due_date)
    loans.repay("L001", "8606.64", key="repay-2", on_date=plan[1].due_date)
    refused_as_conflict(
        platform, "repay-1",
        lambda: loans.repay("L001", "100", key="repay-1", on_date=plan[0].due_date),
        lambda: loans.repay("L001", "8606.64", key="repay-1", on_date=plan[1].due_date),
        lambda: loans.repay("L001", "8606.64", key="repay-1", on_date=plan[0].due_date,
                            bank_ref="CARD-1"),
        lambda: loans.repay("L001", "8606.64", key="repay-1", on_date=plan[0].due_date,
                            order=("principal", "interest", "fee", "penalty")),
        lambda: loans.pay_off("L001", key="repay-1", on_date=plan[0].due_date),
        entry_id=first.id)
    bid = platform.entry_by_key("bid-inv1")
    refused_as_conflict(platform, "bid-inv1",
                        lambda: loans.repay("L001", "8606.64", key="bid-inv1", on_date=plan[2].due_date),
                        entry_id=bid.id)
    # The same request replays though the loan's dues moved since (a new draft would differ).
    before = written(platform)
    again = loans.repay("L001", D("8606.640"), key="repay-1", on_date=plan[0].due_date)
    assert again.replayed and again.id == first.id
    assert written(platform) == before


def test_a_disbursement_or_cancellation_key_is_a_retry_of_that_call_only(platform):
    disbursed_loan(platform)
    loans = platform.loans
    loans.create_loan("L002", "dave", "20000", "0.06", 12, key="c2", start=START)
    loans.bid("L002", "inv1", "5000", key="bid-L002")
    disbursement = platform.entry_by_key("d")
    refused_as_conflict(platform, "d",
                        lambda: loans.cancel_loan("L002", key="d"),
                        lambda: loans.disburse("L002", key="d"),
                        lambda: loans.disburse("L001", key="d", effective_date=START + dt.timedelta(1)),
                        entry_id=disbursement.id)
    assert loans.disburse("L001", key="d").id == disbursement.id
    refused_as_conflict(platform, "bid-L002",
                        lambda: loans.cancel_loan("L002", key="bid-L002"),
                        entry_id=platform.entry_by_key("bid-L002").id)
    cancelled = loans.cancel_loan("L002", key="cancel-L002")
    refused_as_conflict(platform, "cancel-L002",
                        lambda: loans.cancel_loan("L002", key="cancel-L002", reason="borrower withdrew"),
                        lambda: loans.disburse("L001", key="cancel-L002"),
                        entry_id=cancelled.id)
    again = loans.cancel_loan("L002", key="cancel-L002")
    assert again.replayed and again.id == cancelled.id


def test_a_compensation_or_transfer_key_is_a_retry_of_that_call_only(platform):
    platform.flows.fund_risk_reserve("20000", bank_ref="RR1", key="rr")
    disbursed_loan(platform)
    loans = platform.loans
    plan = loans.loan("L001").installments
    late = plan[1].due_date + dt.timedelta(days=5)
    first = loans.compensate("L001", 1, key="comp-1", on_date=late)
    refused_as_conflict(platform, "comp-1",
                        lambda: loans.compensate("L001", 2, key="comp-1", on_date=late),
                        lambda: loans.compensate("L001", 1, key="comp-1", on_date=late, payer="dave"),
                        lambda: loans.compensate("L001", 1, key="comp-1", on_date=plan[2].due_date),
                        entry_id=first.id)
    assert loans.compensate("L001", 1, key="comp-1", on_date=late).id == first.id
    xfer = loans.transfer_claim("L001", "inv1", "dave", share="0.5", price="16000", fee="16",
                                key="x-1", on_date=late)
    refused_as_conflict(
        platform, "x-1",
        lambda: loans.transfer_claim("L001", "inv1", "dave", share="1", price="16000", fee="16",
                                     key="x-1", on_date=late),
        lambda: loans.transfer_claim("L001", "inv1", "dave", share="0.5", price="16000.01", fee="16",
                                     key="x-1", on_date=late),
        lambda: loans.transfer_claim("L001", "inv1", "dave", share="0.5", price="16000",
                                     key="x-1", on_date=late),
        lambda: loans.transfer_claim("L001", "inv2", "dave", share="0.5", price="16000", fee="16",
                                     key="x-1", on_date=late),
        lambda: loans.transfer_claim("L001", "inv1", "inv3", share="0.5", price="16000", fee="16",
                                     key="x-1", on_date=late),
        entry_id=xfer.id)
    again = loans.transfer_claim("L001", "inv1", "dave", share="0.50", price="16000.00", fee="16",
                                 key="x-1", on_date=late)
    assert again.replayed and again.id == xfer.id
    assert platform.verify().ok


def test_a_create_loan_key_is_a_retry_of_that_loan_only(platform):
    loans = platform.loans
    terms = {"key": "create-L001", "start": START, "management_fee_rate": "0.1"}
    first = loans.create_loan("L001", "bob", "100000", "0.06", 12, **terms)
    refused_as_conflict(
        platform, "create-L001",
        lambda: loans.create_loan("L001", "dave", "100000", "0.06", 12, **terms),
        lambda: loans.create_loan("L001", "bob", "100001", "0.06", 12, **terms),
        lambda: loans.create_loan("L001", "bob", "100000", "0.07", 12, **terms),
        lambda: loans.create_loan("L001", "bob", "100000", "0.06", 6, **terms),
        lambda: loans.create_loan("L001", "bob", "100000", "0.06", 12,
                                  **{**terms, "management_fee_rate": "0.2"}),
        lambda: loans.create_loan("L001", "bob", "100000", "0.06", 12, **terms, upfront_fee="10"),
        lambda: loans.create_loan("L002", "carol", "5000", "0.06", 12, **terms),   # another loan
        loan_no="L001")
    assert loans.loans() == ["L001"]
    loans.bid("L001", "inv1", "100", key="b1")
    before = written(platform)
    again = loans.create_loan("L001", "bob", D("100000.00"), "6%", 12,
                              **{**terms, "management_fee_rate": "10%"})
    assert again.loan_no == "L001" and again.raised == D("100.00") and again.terms == first.terms
    assert written(platform) == before


def test_a_key_a_concurrent_call_wrote_after_this_one_looked_is_answered_as_a_retry(platform,
                                                                                   monkeypatch):
    """Two calls with one key at once: the later one's look-up found nothing, and its write
    found the earlier one's entry. It replays that entry, and writes no bid of its own."""
    loans = platform.loans
    loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c1", start=START)
    first = loans.bid("L001", "inv1", "30000", key="bid-1")
    before = written(platform)
    looked = []

    def find_replay_too_early(conn, book_id, key):
        looked.append(key)
        return None if len(looked) == 1 else find_replay(conn, book_id, key)
    find_replay = ledger.loans.find_replay
    monkeypatch.setattr(ledger.loans, "find_replay", find_replay_too_early)
    again = loans.bid("L001", "inv1", "30000", key="bid-1")
    assert again.replayed and again.id == first.id
    assert written(platform) == before
    assert loans.loan("L001").raised == D("30000.00")


# --- creating: the rate forms, and a refusal writes nothing -------------------------------
def test_create_loan_takes_the_rate_forms_schedule_takes(platform):
    loans = platform.loans
    view = loans.create_loan("L001", "bob", "100000", "6%", 12, key="c1", start=START,
                             management_fee_rate="10%", prepayment_fee_rate="1%")
    assert view.annual_rate == D("0.06")
    assert D(view.terms["management_fee_rate"]) == D("0.1")
    assert D(view.terms["prepayment_fee_rate"]) == D("0.01")
    plan = schedule(D("100000"), "0.06", 12, start=START)
    assert [(i.principal, i.interest) for i in view.installments] == [
        (r.principal, r.interest) for r in plan.rows]
    before = written(platform)
    for bad, refusal, match in (
            ("six", ScheduleError, r"annual_rate: 'six' is not a rate \(6% or 0.06\)"),
            ("6", ScheduleError, "give rates as fractions"),
            ("-1%", ScheduleError, "zero or more"),
            (0.06, FloatAmountError, "float")):
        with pytest.raises(refusal, match=match):
            loans.create_loan("L002", "bob", "1000", bad, 12, key="c2", start=START)
    with pytest.raises(ScheduleError, match="management_fee_rate"):
        loans.create_loan("L002", "bob", "1000", "6%", 12, key="c2", start=START,
                          management_fee_rate="ten")
    assert written(platform) == before


def test_a_refused_create_loan_writes_nothing(platform):
    loans = platform.loans
    loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c1", start=START)
    before = written(platform)
    with pytest.raises(FlowError, match="exists already"):
        loans.create_loan("L001", "carol", "5000", "0.06", 12, key="c-carol", start=START)
    with pytest.raises(RateCapExceededError):
        loans.create_loan("L002", "erin", "5000", "0.36", 12, key="c-erin", start=START)
    assert written(platform) == before
    assert not [a.code for a in platform.accounts("liabilities:users")
                if a.code.split(":")[2] in ("carol", "erin")]
    view = loans.create_loan("L002", "carol", "5000", "0.06", 12, key="c-carol", start=START)
    assert view.borrower == "carol"
    assert platform.balance(wallet("carol")) == 0     # the borrower's wallet is opened with it


# --- correcting a loan, its memo accounts, the README's walk-through ------------------------
def test_book_reverse_refuses_every_kind_of_loan_entry_and_writes_nothing(platform):
    """Reversing a repayment left the installment paid while its money and memo claim came back
    (verify: "memo claim 1200.00 but the loan owes 1102.72"): a loan's entries are refused."""
    book, loans = platform, platform.loans
    book.flows.fund_risk_reserve("20000", bank_ref="RR1", key="rr")
    disbursed_loan(book)
    plan = loans.loan("L001").installments
    loans.repay("L001", plan[0].outstanding, key="r1", on_date=plan[0].due_date)
    late = plan[1].due_date + dt.timedelta(days=10)
    loans.accrue_penalties(late)
    loans.compensate("L001", 2, key="comp-2", on_date=late)
    loans.transfer_claim("L001", "inv1", "dave", share="0.5", price="10000", key="x-1", on_date=late)
    loans.pay_off("L001", key="payoff", on_date=late)
    loans.create_loan("L002", "dave", "5000", "0.06", 6, key="c2", start=START)
    loans.bid("L002", "inv2", "100", key="bid-L002")
    loans.create_loan("L003", "dave", "5000", "0.06", 6, key="c3", start=START)
    loans.cancel_loan("L003", key="cancel-L003")
    kinds = {"bid-inv1": "bid", "d": "disbursement", "r1": "repayment",
             f"penalty:L001:{late}": "penalty_accrual", "comp-2": "compensation",
             "x-1": "claim_transfer", "payoff": "payoff", "bid-L002": "bid",
             "cancel-L003": "loan_cancelled"}
    before = written(book)
    for key, kind in kinds.items():
        entry = book.entry_by_key(key)
        assert entry.kind == kind
        with pytest.raises(LoanEntryReversalError, match=f"entry {entry.id} is a {kind} of loan") as refused:
            book.reverse(entry.id, key=f"undo-{key}", reason="posted in error")
        assert isinstance(refused.value, PostingError)
        assert (refused.value.entry_id, refused.value.kind) == (entry.id, kind)
        assert refused.value.loan_no == entry.metadata["loan"]
        assert written(book) == before
    with pytest.raises(LoanEntryReversalError, match=r"book.loans.cancel_loan\('L002'"):
        book.reverse(book.entry_by_key("bid-L002").id, key="undo-bid", reason="posted in error")
    with pytest.raises(LoanEntryReversalError, match="its own flows in book.loans"):
        book.reverse(book.entry_by_key("r1").id, key="undo-r1", reason="posted in error")
    assert written(book) == before
    assert book.verify().ok
    # Any other entry, whatever its kind, is reversed as before.
    topup = book.entry_by_key("topup-dave")
    assert book.reverse(topup.id, key="undo-topup", reason="bank recalled").reverses_id == topup.id
    same_kind = book.post([(wallet("dave"), "1"), (wallet("inv3"), "-1")], key="gift", kind="repayment")
    assert book.reverse(same_kind.id, key="undo-gift", reason="posted in error").reverses_id == same_kind.id
    assert book.verify().ok


def test_a_loan_without_bids_is_cancelled_by_an_entry_and_a_retry_replays_it(platform):
    loans = platform.loans
    loans.create_loan("L001", "bob", "100000", "0.06", 12, key="c", start=START)
    first = loans.cancel_loan("L001", key="cancel", effective_date=START)
    withdrawn, offered = offer_accounts("L001")
    assert not first.replayed and first.kind == "loan_cancelled"
    assert {p.account: p.amount for p in first.postings} == {withdrawn: D("100000.00"),
                                                             offered: D("-100000.00")}
    before = written(platform)
    again = loans.cancel_loan("L001", key="cancel", effective_date=START)
    assert again.replayed and again.id == first.id
    assert written(platform) == before
    refused_as_conflict(platform, "cancel",
                        lambda: loans.cancel_loan("L001", key="cancel", reason="borrower withdrew"),
                        entry_id=first.id)
    with pytest.raises(LoanStateError, match="cancelled"):
        loans.cancel_loan("L001", key="cancel-again")
    assert written(platform) == before
    assert loans.loan("L001").status == "cancelled"
    assert platform.verify().ok


def memo_balances(book, loan_no: str) -> dict[str, D]:
    """Every memo account of a loan (claims, obligations, penalties) and its balance."""
    return {a.code: book.balance(a.code) for a in book.accounts("memo")
            if a.code.split(":")[-1] == loan_no or a.code.endswith(f":{loan_no}:penalty")}


def test_paid_penalties_leave_the_memo_accounts_and_a_settled_loan_owes_nothing_there(platform):
    book, loans = platform, platform.loans
    disbursed_loan(book)
    first = loans.loan("L001").installments[0]
    late = first.due_date + dt.timedelta(days=10)
    loans.accrue_penalties(late)
    penalty = loans.loan("L001", today=late).installments[0].penalty_outstanding
    accrued, owed = penalty_accounts("bob", "L001")
    assert penalty > 0 and book.balance(accrued) == penalty and book.balance(owed) == -penalty
    loans.repay("L001", penalty + D("1"), key="part", on_date=late)   # the penalty is paid first
    assert book.balance(accrued) == 0 and book.balance(owed) == 0
    later = late + dt.timedelta(days=20)
    loans.accrue_penalties(later)
    owing = sum(i.penalty_outstanding for i in loans.loan("L001", today=later).installments)
    assert book.balance(owed) == -owing < 0
    loans.pay_off("L001", key="payoff", on_date=later)                 # pays the rest of it
    assert loans.loan("L001", today=later).status == "settled"
    balances = memo_balances(book, "L001")
    assert {accrued, owed, obligation_account("bob", "L001"), claim_account("inv1", "L001")} <= set(balances)
    assert balances == dict.fromkeys(balances, D("0.00"))
    assert book.verify().ok


def readme_python_block(heading: str) -> str:
    """The first Python code block of the README's section ``heading``, as written."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readmes_money_flows_run_as_written(book):
    """The README's loan walk-through, run on a fresh book in the order it is written."""
    code = readme_python_block("## P2P money flows (`book.flows`, `book.loans`)")
    assert "loans.disburse(" in code and "loans.pay_off(" in code
    exec(compile(code, "README.md", "exec"), {"book": book})
    view = book.loans.loan("L001")
    assert view.status == "settled" and view.raised == view.principal
    assert {p.party for p in view.positions} == {"@risk_reserve", "alice", "carol", "erin"}
    assert book.loans.loan("L002").status == "cancelled"
    balances = memo_balances(book, "L001")
    assert balances and balances == dict.fromkeys(balances, D("0.00"))
    assert book.verify().ok


def test_a_compensation_of_interest_only_is_replayed_by_its_retry(platform):
    """No principal moves on an interest-only installment, so no claim leg is written."""
    platform.flows.fund_risk_reserve("20000", bank_ref="RR1", key="rr")
    funded_loan(platform, method="interest_only")
    platform.loans.disburse("L001", key="d", effective_date=START)
    late = platform.loans.loan("L001").installments[0].due_date + dt.timedelta(days=3)
    first = platform.loans.compensate("L001", 1, key="comp-1", on_date=late)
    again = platform.loans.compensate("L001", 1, key="comp-1", on_date=late)
    assert again.replayed and again.id == first.id
    assert platform.verify().ok


def test_a_loan_beyond_what_one_posting_may_move_is_refused_before_anything_is_written(platform):
    from ledger.errors import AmountError

    with platform.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM account")).scalar()
    with pytest.raises(AmountError, match="principal: 20000000000000 CNY is beyond the limit"):
        platform.loans.create_loan("L9", "carol", "20000000000000", "0.06", 12, key="create-L9",
                                   start=START)
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM account")).scalar() == before
        assert conn.execute(text("SELECT count(*) FROM loan")).scalar() == 0


def test_a_reversal_written_before_loan_entries_were_refused_still_replays(platform):
    """A book may hold a reversal of a loan entry from before the refusal: its retry replays."""
    from ledger.postings import reversal_draft

    book = platform
    funded_loan(book)
    bid = book.entry_by_key("bid-inv1")
    first = book._complete("undo-bid", lambda conn, replay_of: reversal_draft(
        conn, book.book_id, bid.id, key="undo-bid", reason="posted in error", replay_of=replay_of))
    again = book.reverse(bid.id, key="undo-bid", reason="posted in error")
    assert again.replayed and again.id == first.id
    with pytest.raises(LoanEntryReversalError):
        book.reverse(book.entry_by_key("bid-inv2").id, key="undo-bid-2", reason="posted in error")


# --- the management fee: charged once, with the loan's rounding ------------------------
@pytest.mark.parametrize("payer", ["dave", "risk_reserve"])
def test_a_payer_recovers_the_whole_installment_it_compensated(platform, payer):
    """A guarantor's recovery was charged the management fee again on interest already
    charged when it paid the investors (50.00 on an installment of 8606.64); the risk
    reserve's was not."""
    book, loans = platform, platform.loans
    if payer == "risk_reserve":
        book.flows.fund_risk_reserve("50000", bank_ref="RR", key="rr")
    funded_loan(book, management_fee_rate="0.10")
    loans.disburse("L001", key="d", effective_date=START)
    first = loans.loan("L001").installments[0]
    source = wallet(payer) if payer != "risk_reserve" else RISK_RESERVE
    fees = fee_account("management")
    fee_before, before = book.balance(fees), book.balance(source)
    loans.compensate("L001", 1, key="comp", on_date=first.due_date + dt.timedelta(days=3), payer=payer)
    charged = book.balance(fees) - fee_before
    assert charged == D("50.01")    # 10% of the investors' interest of 500.00, rounded per investor
    paid_out = before - book.balance(source)
    assert paid_out == first.principal + first.interest
    later = first.due_date + dt.timedelta(days=10)
    loans.accrue_penalties(later)    # the installment with its penalty to the day
    owed = loans.loan("L001").installments[0].outstanding
    loans.repay("L001", owed, key="r1", on_date=later)
    assert book.balance(source) >= before                     # all it paid came back
    assert book.balance(fees) - fee_before == charged         # and no second fee
    view = loans.loan("L001")
    assert view.installments[0].paid == owed                  # what the borrower paid, once
    assert view.installments[0].status == "paid"
    assert book.verify().ok


def test_a_payer_owed_on_the_installment_cannot_compensate_it(platform):
    """Its recovery would mix its own interest, which bears the management fee, with what it
    paid the others (charged then); nothing is written."""
    book, loans = platform, platform.loans
    loans.create_loan("L001", "bob", "3000", "0.12", 3, key="c", start=START, management_fee_rate="0.10")
    loans.bid("L001", "inv1", "2000", key="b1")
    loans.bid("L001", "inv2", "1000", key="b2")
    loans.disburse("L001", key="d", effective_date=START)
    late = loans.loan("L001").installments[0].due_date + dt.timedelta(days=5)
    before = written(book)
    with pytest.raises(LoanStateError, match="inv1 holds a claim on installment 1 of loan L001: a "
                                             "payer compensates the claims of others"):
        loans.compensate("L001", 1, key="comp", on_date=late, payer="inv1")
    with pytest.raises(LoanStateError, match=r"loan L001 has no installment 9 \(its installments are 1 to 3\)"):
        loans.compensate("L001", 9, key="comp", on_date=late, payer="dave")
    with pytest.raises(FlowError, match="inv1 cannot sell a claim to itself"):
        loans.transfer_claim("L001", "inv1", "inv1", share="0.5", price="100", key="x", on_date=START)
    assert written(book) == before


def test_the_management_fee_rounds_as_the_loan_does_so_investors_get_their_plans_net(platform):
    """The fee was always rounded half up: a loan rounding down paid each investor a fen
    less than its receivable plan showed."""
    from ledger import schedules

    book, loans = platform, platform.loans
    funded_loan(book, management_fee_rate="0.10", conventions={"rounding": "DOWN"})
    loans.disburse("L001", key="d", effective_date=START)
    plan = schedules.schedule("100000", "0.06", 12, start=START, rounding="DOWN")
    split = schedules.split(plan, list(INVESTORS.items()), management_fee_rate="0.10")
    before = {inv: book.balance(wallet(inv)) for inv in INVESTORS}
    for seq, inst in enumerate(loans.loan("L001").installments[:3]):
        loans.repay("L001", inst.outstanding, key=f"r{seq}", on_date=inst.due_date)
        for inv in split.investors:
            got = book.balance(wallet(inv.investor)) - before[inv.investor]
            assert got == sum(row.net for row in inv.rows[:seq + 1]), (seq, inv.investor)
    assert book.verify().ok


# --- create_loan takes only terms its later flows can carry out -----------------------
@pytest.mark.parametrize("changes, error, message", [
    ({"loan_no": "L 1"}, FlowError, "loan number 'L 1' must be 1 to 64 letters, digits"),
    ({"loan_no": "L/1"}, FlowError, "loan number 'L/1' must be"),
    ({"loan_no": "L:1"}, FlowError, "loan number 'L:1' must be"),
    ({"loan_no": "x" * 65}, FlowError, "must be 1 to 64 letters"),
    ({"borrower": "bob smith"}, FlowError, "borrower 'bob smith' must be"),
    ({"start": "2026-01-15"}, FlowError, "start must be a date, not '2026-01-15'"),
    ({"penalty_multiple": "-1"}, ScheduleError, "penalty_multiple"),
    ({"penalty_multiple": "101"}, ScheduleError, "penalty_multiple"),
    ({"conventions": {"day_count": None}}, ScheduleError, "day count 'None'"),
    ({"conventions": {"dayc": "ACT/365"}}, FlowError, "conventions 'dayc': not one of day_count"),
])
def test_a_loan_its_later_flows_could_not_carry_out_is_refused_at_creation(platform, changes, error,
                                                                          message):
    """A loan number with a space was created and bid on; its disbursement and its
    cancellation then both failed on the memo account code, and the bids stayed frozen
    for good. A penalty multiple of -1 stopped the nightly accrual for every loan after it."""
    book = platform
    before = written(book)
    args = {"loan_no": "L1", "borrower": "bob", "start": START, **changes}
    with pytest.raises(error, match=message):
        book.loans.create_loan(args.pop("loan_no"), args.pop("borrower"), "1000", "0.06", 3,
                               key="c", **args)
    assert written(book) == before


def test_a_method_or_term_unit_given_by_an_alias_is_stored_by_its_name(platform):
    loans = platform.loans
    view = loans.create_loan("L1", "bob", "1000", "0.06", 3, key="c", start=START,
                             method="等额本息", term_unit="months")
    assert (view.method, view.term_unit) == ("equal_installment", "month")
    again = loans.create_loan("L1", "bob", "1000", "0.06", 3, key="c", start=START)   # a retry
    assert again.loan_no == "L1"


def test_half_a_claim_sold_is_half_within_a_fen(platform):
    """Each installment was split on its own, the odd fen to the buyer every time: of a
    claim of 33,333.33 the buyer of half got 16,666.69 and 546.65 of its 1,093.24 interest."""
    book, loans = platform, platform.loans
    disbursed_loan(book)
    loans.transfer_claim("L001", "inv1", "dave", share="0.5", price="16666.66", key="x",
                         on_date=START + dt.timedelta(days=1))
    view = loans.loan("L001")
    seller, buyer = (next(p for p in view.positions if p.party == who) for who in ("inv1", "dave"))
    assert seller.outstanding_principal + buyer.outstanding_principal == D("33333.33")
    assert buyer.outstanding_principal in (D("16666.66"), D("16666.67"))
    total_interest = seller.outstanding_interest + buyer.outstanding_interest
    assert abs(buyer.outstanding_interest * 2 - total_interest) <= D("0.01")
    assert book.verify().ok


# --- penalties: what the days overdue make them, however often the accrual runs ---------
def one_investor_loan(book, principal="1200"):
    book.loans.create_loan("L001", "bob", principal, "0.06", 12, key="c", start=START)
    book.loans.bid("L001", "inv1", principal, key="b")
    book.loans.disburse("L001", key="d", effective_date=START)
    return book.loans.loan("L001").installments[0]


def penalty_accrued(book) -> D:
    return book.balance(penalty_accounts("bob", "L001")[0])


def test_the_penalty_is_the_same_accrued_nightly_or_once(platform):
    """Each nightly run rounded its own day: 30 runs gave 0.60 where one run gave 0.73."""
    from ledger import schedules

    first = one_investor_loan(platform)
    for day in range(1, 26):   # the second installment falls due on day 28
        platform.loans.accrue_penalties(first.due_date + dt.timedelta(days=day))
    expected = schedules.penalty(first.principal, first.due_date,
                                 first.due_date + dt.timedelta(days=25), annual_rate="0.06",
                                 multiple="1.5")
    assert expected == D("0.61")   # 25 nightly runs rounding each day gave 0.50
    assert penalty_accrued(platform) == expected
    assert platform.verify().ok


def test_a_late_repayment_pays_the_penalty_to_its_day_without_a_nightly_run(platform):
    """Repaid twenty days late with no accrual in between, the installment went out paid and
    the penalty was never charged."""
    from ledger import schedules

    first = one_investor_loan(platform)
    late = first.due_date + dt.timedelta(days=20)
    penalty = schedules.penalty(first.principal, first.due_date, late, annual_rate="0.06",
                                multiple="1.5")
    quote = platform.loans.payoff_quote("L001", late)
    assert quote["fees_and_penalties"] == penalty
    platform.loans.repay("L001", first.outstanding + penalty, key="r", on_date=late)
    assert penalty_accrued(platform) == 0       # accrued by the repayment, and paid by it
    view = platform.loans.loan("L001", today=late)
    assert view.installments[0].status == "paid"
    assert view.installments[0].paid == first.outstanding + penalty
    # the day's accrual is the one the repayment wrote
    assert all(entry.replayed for entry in platform.loans.accrue_penalties(late))
    assert platform.verify().ok


def test_principal_paid_part_way_accrues_on_what_was_owed_each_day(platform):
    """The accrual charged the days since the last run on the principal owed at the end."""
    first = one_investor_loan(platform)
    tenth, twentyfifth = (first.due_date + dt.timedelta(days=n) for n in (10, 25))
    platform.loans.repay("L001", first.interest + D("50.00"), key="part", on_date=tenth,
                         order=("interest", "principal", "fee", "penalty"))
    platform.loans.accrue_penalties(twentyfifth)
    # the whole principal for 10 days, 50.00 less for the 15 after: summed, rounded once
    principal = int(first.principal * 100)
    days = principal * 10 + (principal - 5000) * 15
    owed = (D(days) * D("0.06") * D("1.5") / 360).quantize(D(1), rounding=ROUND_HALF_UP) / 100
    assert penalty_accrued(platform) == owed
    assert platform.verify().ok


def test_each_investors_share_of_the_penalty_is_the_same_accrued_nightly_or_once(book):
    """Each nightly increment was split on its own, the odd fen to the first investor every
    night: over 90 days the first of ten equal investors got 5.51 where one run gave 4.50."""
    investors = [f"v{i}" for i in range(10)]
    book.flows.open_system_accounts()
    for user in (*investors, "bob"):
        book.flows.open_user(user)
        book.flows.top_up(user, "5000", bank_ref=f"B-{user}", key=f"topup-{user}")
    for loan_no in ("ONCE", "NIGHTLY"):   # the same loan twice, in one book
        book.loans.create_loan(loan_no, "bob", "12000", "0.06", 12, key=f"c-{loan_no}", start=START)
        for user in investors:
            book.loans.bid(loan_no, user, "1200", key=f"bid-{loan_no}-{user}")
        book.loans.disburse(loan_no, key=f"d-{loan_no}", effective_date=START)
    due = book.loans.loan("ONCE").installments[0].due_date
    for day in range(1, 90):
        book.loans._accrue_one("NIGHTLY", due + dt.timedelta(days=day))
    book.loans.accrue_penalties(due + dt.timedelta(days=90))   # both: the first loan's only run
    with book.engine.connect() as conn:
        got = {(no, party): total for no, party, total in conn.execute(text(
            "SELECT l.loan_no, d.party, SUM(d.amount_minor) FROM loan_due d JOIN loan l ON l.id = "
            "d.loan_id WHERE d.component = 'penalty' GROUP BY l.loan_no, d.party"))}
    once = [got[("ONCE", v)] for v in investors]
    nightly = [got[("NIGHTLY", v)] for v in investors]
    assert sum(once) == sum(nightly)
    assert max(abs(a - b) for a, b in zip(once, nightly)) <= 1, (once, nightly)
    assert max(once) - min(once) <= 3          # equal investors, equal penalties (installments
    assert max(nightly) - min(nightly) <= 3    # of equal principal; a fen each at most)
    assert book.verify().ok


def test_a_loan_whose_terms_make_no_penalty_is_still_repaid_and_stops_no_other(platform):
    """A loan created with a penalty multiple of 150 (create_loan refuses it now) could not be
    repaid once a repayment accrued first, and stopped the nightly run for the loans after it."""
    book, loans = platform, platform.loans
    for no in ("L1", "L2"):
        loans.create_loan(no, "bob", "1200", "0.06", 12, key=f"c-{no}", start=START)
        loans.bid(no, "inv1", "1200", key=f"bid-{no}")
        loans.disburse(no, key=f"d-{no}", effective_date=START)
    with book.engine.begin() as conn:   # made so then; the database now refuses to change terms
        postgresql = conn.dialect.name == "postgresql"
        conn.execute(text("ALTER TABLE loan DISABLE TRIGGER trg_loan_terms" if postgresql
                          else "DROP TRIGGER trg_loan_terms"))
        terms = json.loads(conn.execute(text("SELECT terms_json FROM loan WHERE loan_no = 'L1'")).scalar())
        terms["penalty_multiple"] = "150"
        conn.execute(text("UPDATE loan SET terms_json = :t WHERE loan_no = 'L1'"), {"t": json.dumps(terms)})
        if postgresql:
            conn.execute(text("ALTER TABLE loan ENABLE TRIGGER trg_loan_terms"))
    first = loans.loan("L1").installments[0]
    late = first.due_date + dt.timedelta(days=10)
    with pytest.raises(LoanStateError, match=r"penalties through .* not accrued for 1 loan\(s\) \(loan L1: "
                                             "its terms make no penalty") as refused:
        loans.accrue_penalties(late)
    assert [e.metadata["loan"] for e in refused.value.accrued] == ["L2"]
    loans.repay("L1", first.outstanding, key="r1", on_date=late)     # repaid, without a penalty
    assert loans.loan("L1").installments[0].status == "paid"


def test_a_payment_dated_before_the_last_accrual_is_refused(platform):
    """Penalties accrued through day 20; a repayment dated day 10 would have left ten days'
    penalty charged on principal it had paid."""
    first = one_investor_loan(platform)
    platform.loans.accrue_penalties(first.due_date + dt.timedelta(days=20))
    before = written(platform)
    early = first.due_date + dt.timedelta(days=10)
    for flow, call in (("repayment", lambda: platform.loans.repay("L001", "10", key="r", on_date=early)),
                       ("payoff", lambda: platform.loans.pay_off("L001", key="p", on_date=early)),
                       ("compensation", lambda: platform.loans.compensate("L001", 1, key="c", on_date=early,
                                                                          payer="dave"))):
        with pytest.raises(LoanStateError, match=f"has penalties accrued through "
                                                 f"{first.due_date + dt.timedelta(days=20)}: a {flow} dated"):
            call()
    assert written(platform) == before
