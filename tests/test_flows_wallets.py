"""Wallet flows: top-ups, two-phase withdrawals, fees, sweeps."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from ledger.errors import FloatAmountError, InsufficientFundsError
from ledger.flows import BANK, FlowError, fee_account, wallet


@pytest.fixture
def flows(book):
    f = book.flows
    f.open_system_accounts()
    f.open_user("alice")
    f.open_user("bob")
    return f


def test_top_up_and_idempotent_retry(flows):
    e = flows.top_up("alice", "1000.00", bank_ref="B1", key="t1")
    assert flows.top_up("alice", D("1000"), bank_ref="B1", key="t1").id == e.id
    assert flows.book.balance(wallet("alice")) == D("1000.00")
    assert flows.book.balance(BANK) == D("1000.00")
    with pytest.raises(FloatAmountError):
        flows.top_up("alice", 10.5, bank_ref="B2", key="t2")
    with pytest.raises(FlowError):
        flows.top_up("alice", "-5", bank_ref="B2", key="t2")


def test_pending_top_up_is_not_spendable_until_confirmed(flows):
    pend = flows.top_up("alice", "300", bank_ref="B1", key="t1", pending=True)
    assert flows.book.balance(wallet("alice"), kind="available") == D("0.00")
    flows.confirm_top_up(pend.id, key="t1-ok")
    assert flows.book.balance(wallet("alice"), kind="available") == D("300.00")


def test_withdrawal_confirmed_pays_out_and_earns_the_fee(flows):
    flows.top_up("alice", "1000", bank_ref="B1", key="t1")
    hold = flows.withdraw("alice", "500", fee="2", key="w1")
    assert flows.book.balance(wallet("alice"), kind="available") == D("498.00")
    assert flows.book.balance(BANK) == D("1000.00")
    flows.confirm_withdrawal(hold.id, bank_ref="P1", key="w1-ok")
    assert flows.book.balance(wallet("alice")) == D("498.00")
    assert flows.book.balance(BANK) == D("500.00")
    assert flows.book.balance(fee_account("withdrawal")) == D("2.00")
    assert flows.book.verify().ok


def test_withdrawal_failed_gives_the_money_back(flows):
    flows.top_up("alice", "1000", bank_ref="B1", key="t1")
    hold = flows.withdraw("alice", "998", fee="2", key="w1")
    with pytest.raises(InsufficientFundsError):
        flows.withdraw("alice", "1", key="w2")
    flows.fail_withdrawal(hold.id, key="w1-failed", reason="bank rejected: name mismatch")
    assert flows.book.balance(wallet("alice"), kind="available") == D("1000.00")
    assert flows.book.balance(fee_account("withdrawal")) == D("0.00")


def test_fees_and_sweep_never_more_than_earned(flows):
    flows.top_up("alice", "100", bank_ref="B1", key="t1")
    flows.charge_fee("alice", "3", kind="service", key="f1")
    with pytest.raises(FlowError, match="only 3.00"):
        flows.sweep_fees("4", key="s1", bank_ref="S1")
    flows.sweep_fees("3", key="s1", bank_ref="S1")
    assert flows.book.balance(BANK) == D("97.00")
    assert flows.book.balance(fee_account("service")) == D("0.00")
    report = flows.book.verify()
    assert report.ok and report.custody["CNY"]["difference_minor"] == 0


def test_a_refused_fee_leaves_no_fee_account_behind(flows):
    flows.top_up("alice", "1", bank_ref="B1", key="t1")
    before = [a.code for a in flows.book.accounts()]
    with pytest.raises(InsufficientFundsError):
        flows.charge_fee("alice", "2", kind="kyc", key="f1")
    assert [a.code for a in flows.book.accounts()] == before
    entry = flows.charge_fee("alice", "1", kind="kyc", key="f1")   # the key was never used
    assert not entry.replayed and flows.book.balance(fee_account("kyc")) == D("1.00")
    assert flows.charge_fee("alice", "1", kind="kyc", key="f1").replayed


def test_a_hold_dated_in_a_period_closed_since_completes_on_the_day_given(flows):
    import datetime as dt

    from ledger.errors import ClosedPeriodError

    book = flows.book
    flows.top_up("alice", "500", bank_ref="B1", key="t1", effective_date=dt.date(2026, 10, 30))
    hold = flows.withdraw("alice", "300", key="wd-1", effective_date=dt.date(2026, 10, 31))
    paid = flows.withdraw("alice", "100", key="wd-2", effective_date=dt.date(2026, 10, 31))
    flows.confirm_withdrawal(paid.id, bank_ref="P2", key="ok-2")          # dated the request day
    from click.testing import CliRunner

    from cli import main

    closed = CliRunner().invoke(main, ["period", "close", "2026-10", "--db",
                                       book.engine.url.render_as_string(hide_password=False)],
                                catch_exceptions=False)
    assert closed.exit_code == 0, closed.output
    assert (f"warning: pending entries dated in the closed period are still open ({hold.id}): "
            "their holds stay until each is completed with a date after 2026-10-31") in closed.output
    for complete in (lambda: flows.confirm_withdrawal(hold.id, bank_ref="P1", key="ok"),
                     lambda: flows.fail_withdrawal(hold.id, key="f", reason="rejected")):
        with pytest.raises(ClosedPeriodError, match=rf"completing pending entry {hold.id} on 2026-10-31, in "
                                                    r"the period closed through 2026-10-31.*effective_date after"):
            complete()
    assert (book.balance(wallet("alice")), book.balance(wallet("alice"), kind="available")) == (
        D("400.00"), D("100.00"))                                      # still held, nothing written
    assert flows.confirm_withdrawal(paid.id, bank_ref="P2", key="ok-2").replayed   # a retry replays
    done = flows.confirm_withdrawal(hold.id, bank_ref="P1", key="ok", effective_date=dt.date(2026, 11, 2))
    assert done.effective_date == dt.date(2026, 11, 2) and book.verify().ok


def test_a_withdrawal_or_top_up_is_confirmed_or_failed_as_itself_only(flows):
    """A mistyped id must not pay out a pending top-up or void another kind of hold."""
    flows.top_up("alice", "100", bank_ref="B1", key="t1")
    top = flows.top_up("bob", "50", bank_ref="B2", key="t2", pending=True)
    hold = flows.book.post([(wallet("alice"), "30"), (wallet("alice", "withdrawing"), "-30")],
                           key="manual", pending=True)
    wd = flows.withdraw("alice", "20", key="wd-1")
    with pytest.raises(FlowError, match="top_up entry, not a withdrawal"):
        flows.confirm_withdrawal(top.id, bank_ref="P1", key="wd-x")
    with pytest.raises(FlowError, match="top_up entry, not a withdrawal"):
        flows.fail_withdrawal(top.id, key="wd-y", reason="typo")
    with pytest.raises(FlowError, match="transfer entry, not a withdrawal"):
        flows.fail_withdrawal(hold.id, key="wd-z", reason="typo")
    with pytest.raises(FlowError, match="withdrawal entry, not a top_up"):
        flows.confirm_top_up(wd.id, key="t-x")
    for key in ("wd-x", "wd-y", "wd-z", "t-x"):
        assert flows.book.entry_by_key(key) is None
    assert flows.book.balance(wallet("bob"), kind="available") == D("0.00")
    assert flows.book.balance(wallet("alice"), kind="available") == D("50.00")
    flows.confirm_top_up(top.id, key="t2-ok")
    flows.confirm_withdrawal(wd.id, bank_ref="P1", key="wd-1-ok")
    assert flows.book.balance(wallet("bob")) == D("50.00")
    assert flows.book.balance(wallet("alice")) == D("80.00")


def test_two_sweeps_at_once_never_take_more_than_was_earned(flows, monkeypatch):
    """Both read the fees before either wrote: both were posted and the fees went below zero,
    paying the platform out of its users' money."""
    import threading

    import ledger.balances

    flows.top_up("alice", "1000", bank_ref="B1", key="t1")
    flows.charge_fee("alice", "100", kind="service", key="fee-1")
    both_read = threading.Barrier(2, timeout=3)
    read = ledger.balances.balance_minor

    def balance_minor(conn, account, *args, **kw):   # each sweep waits for the other's read
        found = read(conn, account, *args, **kw)
        if account.code == fee_account("service") and threading.current_thread().name.startswith("sweep"):
            try:
                both_read.wait()
            except threading.BrokenBarrierError:   # the other sweep waits for this one
                pass
        return found
    monkeypatch.setattr(ledger.balances, "balance_minor", balance_minor)
    outcomes = []

    def sweep(key):
        try:
            outcomes.append(flows.sweep_fees("80", key=key, bank_ref=key))
        except FlowError as exc:
            outcomes.append(exc)
    threads = [threading.Thread(target=sweep, args=(f"sweep-{i}",), name=f"sweep-{i}")
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["Entry", "FlowError"]
    assert flows.book.balance(fee_account("service")) == D("20.00")
    assert flows.book.verify().ok
