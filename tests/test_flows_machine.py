"""The P2P flows under random sequences, driven by a hypothesis state machine.

Several users and loans live through random flows on a fresh database per
example (SQLite and PostgreSQL): top-ups (some pending until the bank
confirms), loans created (some above the rate cap: refused), bids (some too
large for the loan or the wallet: refused), cancellations, disbursements,
on-time, partial, late (with penalties) and early repayments (pay-off),
compensation by the risk reserve or a guarantor, claim transfers,
withdrawals confirmed and failed, fee sweeps, flows on a loan in the wrong
state, retries of calls already made (the first entry comes back, nothing
is written) and keys reused for another amount (a conflict). A light model keeps what the test can know without the
loan arithmetic: the custody bank's balance, each bid still frozen, each
open withdrawal, the fees earned by kind and swept.

After every step:

* every account's postings sum to zero per currency (memo among themselves),
  and the custody bank equals what is held for users and the platform;
* every stored no-overdraft balance equals its postings, and none is below
  zero; frozen money and withdrawal holds are the model's;
* each party's received principal plus its remaining claim equals what it
  funded plus what it acquired less what it sold, its memo claim is that
  remaining claim, and the borrower's obligation is the loan's principal
  outstanding;
* the platform's fees are the configured ones: the management fee is the
  loan's rate on each investor's interest received, rounded once on the
  running total; upfront, withdrawal, transfer and prepayment fees are what
  the flows charged; periodic fees are what borrowers paid of them.

A refused flow must raise its typed error (a :class:`ledger.LedgerError`)
and write nothing. ``book.verify()`` (chain, stored balances, custody, memo
claims) runs every few steps and at teardown.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import case, func, select, text

import ledger
from ledger import models as m
from ledger.errors import (
    AccountExistsError,
    IdempotencyConflictError,
    InsufficientFundsError,
    LedgerError,
    PendingStateError,
)
from ledger.flows import BANK, RISK_RESERVE, FlowError, fee_account, wallet
from ledger.loans import (
    COMPONENT_ORDER,
    LoanStateError,
    OverpaymentError,
    claim_account,
    obligation_account,
)
from ledger.money import from_minor, to_minor
from ledger.rates import RateCapExceededError
from tests.pgserver import drop_database

START = dt.date(2026, 1, 15)
INVESTORS = ("inv0", "inv1", "inv2", "inv3")
BORROWERS = ("bob", "cat")
GUARANTOR = "gus"
USERS = INVESTORS + BORROWERS + (GUARANTOR,)
BUYERS = INVESTORS + (GUARANTOR,)
MAX_LOANS = 5
VERIFY_EVERY = 5
METHODS = ("equal_installment", "equal_principal", "interest_only", "bullet")
CHARGED = ("service", "withdrawal", "transfer", "prepayment")   # fees the model counts itself
# Wallet flows whose retry with another amount must conflict: where the amount is in the arguments.
AMOUNT_FIRST = {"top_up": 1, "withdraw": 1, "fund_risk_reserve": 0, "sweep_fees": 0}

picks = st.integers(min_value=0, max_value=10**6)      # an index, taken modulo a list's length
amounts = st.integers(min_value=1, max_value=2_000_000)  # 0.01 .. 20,000.00 CNY
mostly_true = st.sampled_from([True, True, True, False])
LOAN_TERMS = {
    "who": picks, "units": st.integers(min_value=2, max_value=40),   # x 500.00 CNY
    "term": st.integers(min_value=1, max_value=6), "method": st.sampled_from(METHODS),
    "rate": st.sampled_from(["0.05", "0.072", "0.09", "0.36"]),      # 36 % is above the cap
    "management": st.sampled_from(["0", "0.1", "0.15"]), "upfront": st.sampled_from([0, 0, 5]),
    "prepayment": st.sampled_from(["0", "0.01"]), "periodic": st.booleans(),
}
loan_terms = st.fixed_dictionaries(LOAN_TERMS)


def minor(value: Decimal) -> int:
    return to_minor(value)


def buyers_share(held: int, fraction: Decimal) -> int:
    """The buyer's part of a seller's ``held`` principal: its exact share, the fen left
    over to whichever side's share has the larger remainder (to the buyer on a tie)."""
    num, den = fraction.as_integer_ratio()
    buyer, buyer_left = divmod(held * num, den)
    seller, seller_left = divmod(held * (den - num), den)
    return buyer + (1 if buyer + seller < held and buyer_left >= seller_left else 0)


def fee_on(interest_minor: int, rate: Decimal) -> int:
    """The management fee on a running total of interest, rounded once (half up)."""
    return int((Decimal(interest_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class FlowsMachine(RuleBasedStateMachine):
    """Flows on a real book with a light model beside it; set ``make_url`` on the class first."""

    make_url = None   # a factory of fresh migrated database URLs (set by the test)

    def __init__(self):
        super().__init__()
        self.url = type(self).make_url()
        self.book = ledger.open(self.url)
        self.today = START
        self.keys = itertools.count(1)
        self.loans: dict[str, dict] = {}       # loan_no -> {"state", "principal", "rate", "fee"}
        self.frozen: dict[str, dict[str, int]] = {}   # loan_no -> investor -> bid, until paid out
        self.bank = 0
        self.earned = dict.fromkeys(CHARGED, 0)
        self.swept: dict[str, int] = {}
        self.withdrawals: dict[int, tuple[str, int, int]] = {}   # open: id -> (user, amount, fee)
        self.incoming: dict[int, tuple[str, int]] = {}   # pending top-ups: id -> (user, amount)
        self.completed: list[int] = []
        self.calls: list[tuple] = []          # (bound method, args, kwargs, entry id) to retry
        self.steps = 0

    def teardown(self):
        try:
            self.check_verify()
        finally:
            self.book.dispose()
            drop_database(self.url)

    # --- helpers ---------------------------------------------------------------
    def key(self, prefix: str) -> str:
        return f"{prefix}-{next(self.keys)}"

    @staticmethod
    def pick(items, index):
        return items[index % len(items)]

    def available(self, code: str) -> int:
        return self.book.balance_minor(code, kind="available")

    def view(self, loan_no: str):
        return self.book.loans.loan(loan_no, today=self.today)

    def in_state(self, *states: str) -> list[str]:
        return [no for no, loan in self.loans.items() if loan["state"] in states]

    def snapshot(self):
        """Everything a refused flow must leave alone, in one read."""
        with self.book.reading() as conn:
            postings = conn.execute(
                select(m.Posting.account_id, m.Posting.is_pending, func.sum(m.Posting.amount_minor))
                .group_by(m.Posting.account_id, m.Posting.is_pending)
                .order_by(m.Posting.account_id, m.Posting.is_pending)).all()
            stored = conn.execute(select(m.AccountBalance.account_id, m.AccountBalance.posted_minor,
                                         m.AccountBalance.held_minor)
                                  .order_by(m.AccountBalance.account_id)).all()
            counts = [conn.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in (m.JournalEntry, m.Account, m.LoanDue, m.LoanBid, m.Loan)]
            loans = conn.execute(select(m.Loan.loan_no, m.Loan.status, m.Loan.raised_minor)
                                 .order_by(m.Loan.loan_no)).all()
        return postings, stored, counts, loans

    def refused(self, error, call, *args, **kwargs):
        """``call`` must raise exactly ``error`` (a LedgerError) and change nothing."""
        event(f"refused: {error.__name__} from {call.__name__}")
        before = self.snapshot()
        with pytest.raises(LedgerError) as info:
            call(*args, **kwargs)
        assert type(info.value) is error, (info.value, error)
        assert self.snapshot() == before

    def done(self, entry, call, *args, **kwargs):
        """A flow that wrote ``entry``; kept so it can be retried."""
        assert not entry.replayed
        event(f"flow: {call.__name__}")
        self.calls.append((call, args, kwargs, entry.id))
        return entry

    def ensure(self, user: str, amount: int) -> None:
        """Top up ``user`` so its wallet covers ``amount``."""
        short = amount - self.available(wallet(user))
        if short > 0:
            self.top_up_user(user, short)

    def top_up_user(self, user: str, amount: int):
        entry = self.book.flows.top_up(user, from_minor(amount), bank_ref=self.key("B"),
                                       key=self.key("top"), effective_date=self.today)
        self.bank += amount
        return self.done(entry, self.book.flows.top_up, user, from_minor(amount),
                         bank_ref=entry.external_ref, key=entry.key, effective_date=self.today)

    def dues(self, loan_no: str) -> dict[tuple[int, str, str], int]:
        """What the loan owes, by (installment, component, party), from its dues ledger."""
        with self.book.reading() as conn:
            rows = conn.execute(
                select(m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party,
                       func.sum(m.LoanDue.amount_minor))
                .join(m.Loan, m.Loan.id == m.LoanDue.loan_id)
                .where(m.Loan.book_id == self.book.book_id, m.Loan.loan_no == loan_no)
                .group_by(m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party)).all()
        return {(seq, comp, party): int(total) for seq, comp, party, total in rows if total}

    def owed(self, view) -> int:
        return sum(minor(i.outstanding) for i in view.installments)

    def settle_if_paid(self, loan_no: str) -> None:
        view = self.view(loan_no)
        if self.owed(view) == 0:
            self.loans[loan_no]["state"] = "settled"
            assert view.status == "settled"

    # --- set-up ------------------------------------------------------------------
    @initialize(seed=st.lists(st.integers(min_value=100_000, max_value=3_000_000),
                              min_size=len(INVESTORS) + 1, max_size=len(INVESTORS) + 1),
                reserve=st.integers(min_value=0, max_value=1_000_000), loan=st.data())
    def open_platform(self, seed, reserve, loan):
        """System accounts, every user's wallet, investors and the guarantor topped up, and
        (when its terms pass the rate cap) a first loan already repaying."""
        self.book.flows.open_system_accounts()
        for user in USERS:
            self.book.flows.open_user(user)
        for user, amount in zip(INVESTORS + (GUARANTOR,), seed):
            self.top_up_user(user, amount)
        if reserve:
            self.fund_reserve(reserve)
        terms = loan.draw(loan_terms)
        self.create_loan(**{**terms, "rate": terms["rate"].replace("0.36", "0.05"), "then": "disbursed"})

    # --- wallets -----------------------------------------------------------------
    @rule(who=picks, amount=amounts, pending=st.sampled_from([False, False, True]))
    def top_up(self, who, amount, pending):
        """Money paid in; a pending top-up waits for the bank and cannot be spent before."""
        user = self.pick(USERS, who)
        if not pending:
            self.top_up_user(user, amount)
            return
        call, args = self.book.flows.top_up, (user, from_minor(amount))
        kwargs = {"bank_ref": self.key("B"), "key": self.key("top"), "effective_date": self.today,
                  "pending": True}
        before = self.available(wallet(user))
        entry = self.done(call(*args, **kwargs), call, *args, **kwargs)
        assert entry.phase == "pending" and self.available(wallet(user)) == before
        self.incoming[entry.id] = (user, amount)

    @precondition(lambda self: self.incoming)
    @rule(which=picks)
    def bank_confirms_top_up(self, which):
        entry_id = self.pick(sorted(self.incoming), which)
        user, amount = self.incoming.pop(entry_id)
        before = self.available(wallet(user))
        call = self.book.flows.confirm_top_up
        kwargs = {"key": self.key("top-ok"), "bank_ref": self.key("B"), "effective_date": self.today}
        self.done(call(entry_id, **kwargs), call, entry_id, **kwargs)
        assert self.available(wallet(user)) == before + amount
        self.bank += amount
        self.completed.append(entry_id)

    @rule(amount=amounts)
    def fund_reserve(self, amount):
        entry = self.book.flows.fund_risk_reserve(from_minor(amount), bank_ref=self.key("RR"),
                                                  key=self.key("rr"), effective_date=self.today)
        self.bank += amount
        self.done(entry, self.book.flows.fund_risk_reserve, from_minor(amount),
                  bank_ref=entry.external_ref, key=entry.key, effective_date=self.today)

    @rule(who=picks, amount=amounts, fee=st.sampled_from([0, 0, 100, 250]), fits=mostly_true)
    def withdraw(self, who, amount, fee, fits):
        user = self.pick(USERS, who)
        available = self.available(wallet(user))
        if fits and available > fee:
            amount = 1 + amount % (available - fee)
        call, args = self.book.flows.withdraw, (user, from_minor(amount))
        kwargs = {"key": self.key("wd"), "fee": from_minor(fee), "effective_date": self.today}
        if amount + fee > available:
            self.refused(InsufficientFundsError, call, *args, **kwargs)
            return
        entry = self.done(call(*args, **kwargs), call, *args, **kwargs)
        assert entry.phase == "pending"
        self.withdrawals[entry.id] = (user, amount, fee)

    @precondition(lambda self: self.withdrawals)
    @rule(which=picks, paid=st.booleans())
    def bank_answers(self, which, paid):
        """The bank pays a withdrawal out (money and fee leave the wallet) or rejects it."""
        entry_id = self.pick(sorted(self.withdrawals), which)
        user, amount, fee = self.withdrawals.pop(entry_id)
        before = self.book.balance_minor(wallet(user))
        if paid:
            call = self.book.flows.confirm_withdrawal
            kwargs = {"bank_ref": self.key("P"), "key": self.key("wd-ok"), "effective_date": self.today}
            self.bank -= amount
            self.earned["withdrawal"] += fee
        else:
            call = self.book.flows.fail_withdrawal
            kwargs = {"key": self.key("wd-fail"), "reason": "rejected by the bank",
                      "effective_date": self.today}
        entry = self.done(call(entry_id, **kwargs), call, entry_id, **kwargs)
        assert entry.pending_id == entry_id
        spent = amount + fee if paid else 0
        assert self.book.balance_minor(wallet(user)) == before - spent
        self.completed.append(entry_id)

    @precondition(lambda self: self.completed)
    @rule(which=picks, paid=st.booleans())
    def bank_answers_twice(self, which, paid):
        entry_id = self.pick(self.completed, which)
        if paid:
            self.refused(PendingStateError, self.book.flows.confirm_withdrawal, entry_id,
                         bank_ref="P-again", key=self.key("wd-ok"))
        else:
            self.refused(PendingStateError, self.book.flows.fail_withdrawal, entry_id,
                         key=self.key("wd-fail"), reason="again")

    @precondition(lambda self: self.in_state("repaying", "settled") or self.completed)
    @rule(amount=amounts, kind=st.sampled_from([None, None, "management", "service", "withdrawal",
                                                "transfer", "prepayment", "periodic"]),
          fits=mostly_true)
    def sweep(self, amount, kind, fits):
        """Earned fees leave custody; never more than was earned (of that kind)."""
        codes = [fee_account(kind)] if kind else [a.code for a in
                                                  self.book.accounts("income:platform:fees")]
        earned = sum(self.book.balance_minor(code) for code in codes)
        if fits and earned > 0:
            amount = 1 + amount % earned
        call, args = self.book.flows.sweep_fees, (from_minor(amount),)
        kwargs = {"key": self.key("sweep"), "bank_ref": self.key("S"), "kind": kind,
                  "effective_date": self.today}
        if amount > earned:
            self.refused(FlowError, call, *args, **kwargs)
            return
        entry = self.done(call(*args, **kwargs), call, *args, **kwargs)
        self.bank -= amount
        for p in entry.postings:
            if p.account.startswith("income:platform:fees:"):
                fee_kind = p.account.rsplit(":", 1)[1]
                self.swept[fee_kind] = self.swept.get(fee_kind, 0) + p.amount_minor

    # --- loans: creating and funding ---------------------------------------------
    @precondition(lambda self: len(self.loans) < MAX_LOANS)
    @rule(then=st.sampled_from(["bidding", "funded", "disbursed", "disbursed"]), **LOAN_TERMS)
    def create_loan(self, then, who, units, term, method, rate, management, upfront, prepayment,
                    periodic):
        """A new loan (refused above the rate cap); ``then`` it may be filled and disbursed."""
        loan_no = f"L{len(self.loans) + 1:03d}"
        principal = units * 50_000
        fee = principal * upfront // 1000
        args = (loan_no, self.pick(BORROWERS, who), from_minor(principal), rate, term)
        kwargs = {"key": self.key("create"), "method": method, "start": self.today,
                  "upfront_fee": from_minor(fee), "management_fee_rate": management,
                  "prepayment_fee_rate": prepayment,
                  "conventions": {"periodic_fee_rate": "0.001"} if periodic else None}
        if rate == "0.36":
            self.refused(RateCapExceededError, self.book.loans.create_loan, *args, **kwargs)
            return
        before = self.snapshot()
        try:
            view = self.book.loans.create_loan(*args, **kwargs)
        except RateCapExceededError:
            # Fees over a short term can lift the all-in cost above the cap.
            event("refused: RateCapExceededError for fees")
            assert (fee or periodic) and self.snapshot() == before
            return
        event("flow: create_loan")
        assert view.status == "bidding" and view.raised == 0
        assert self.book.loans.create_loan(*args, **kwargs).loan_no == loan_no   # a retry
        self.refused(FlowError, self.book.loans.create_loan, *args,
                     **{**kwargs, "key": self.key("create")})   # the number is taken
        self.loans[loan_no] = {"state": "bidding", "principal": principal,
                               "rate": Decimal(management), "fee": fee, "borrower": args[1]}
        self.frozen[loan_no] = {}
        if then != "bidding":
            self.fill_loan(loan_no, who)
        if then == "disbursed":
            self.disburse_loan(loan_no)

    def bid_once(self, loan_no: str, investor: str, amount: int):
        call, args = self.book.loans.bid, (loan_no, investor, from_minor(amount))
        kwargs = {"key": self.key("bid"), "effective_date": self.today}
        self.done(call(*args, **kwargs), call, *args, **kwargs)
        bids = self.frozen[loan_no]
        bids[investor] = bids.get(investor, 0) + amount
        if sum(bids.values()) == self.loans[loan_no]["principal"]:
            self.loans[loan_no]["state"] = "funded"

    @precondition(lambda self: self.in_state("bidding"))
    @rule(which=picks, who=picks, amount=amounts,
          how=st.sampled_from(["fits", "fits", "fits", "whole", "too much for the loan",
                               "too much for the wallet"]))
    def bid(self, which, who, amount, how):
        investor = self.pick(INVESTORS, who)
        open_ = self.in_state("bidding")
        loan_no = self.pick(open_, which)
        remaining = self.loans[loan_no]["principal"] - sum(self.frozen[loan_no].values())
        assert self.view(loan_no).raised == from_minor(self.loans[loan_no]["principal"] - remaining)
        available = self.available(wallet(investor))
        if how == "whole":
            self.ensure(investor, remaining)
            amount = remaining
        elif how == "fits":
            if min(remaining, available) <= 0:
                return
            amount = 1 + amount % min(remaining, available)
        elif how == "too much for the loan":
            amount = remaining + 1 + amount % 10_000
        else:
            amount = available + 1 + amount % 10_000
        if amount > remaining:
            self.refused(FlowError, self.book.loans.bid, loan_no, investor, from_minor(amount),
                         key=self.key("bid"))
        elif amount > self.available(wallet(investor)):
            self.refused(InsufficientFundsError, self.book.loans.bid, loan_no, investor,
                         from_minor(amount), key=self.key("bid"))
        else:
            self.bid_once(loan_no, investor, amount)

    @precondition(lambda self: self.in_state("bidding"))
    @rule(which=picks, first=picks)
    def fill(self, which, first):
        self.fill_loan(self.pick(self.in_state("bidding"), which), first)

    def fill_loan(self, loan_no: str, first: int) -> None:
        """Investors in turn bid what they have until the loan is fully funded."""
        order = [self.pick(INVESTORS, first + i) for i in range(len(INVESTORS))]
        for investor in order:
            remaining = self.loans[loan_no]["principal"] - sum(self.frozen[loan_no].values())
            if investor == order[-1]:
                self.ensure(investor, remaining)
            amount = min(remaining, self.available(wallet(investor)))
            if amount > 0:
                self.bid_once(loan_no, investor, amount)
        assert self.loans[loan_no]["state"] == "funded"
        assert self.view(loan_no).status == "funded"

    @precondition(lambda self: self.in_state("bidding", "funded"))
    @rule(which=picks)
    def cancel(self, which):
        """A loan not disbursed is cancelled: every bid is unfrozen."""
        loan_no = self.pick(self.in_state("bidding", "funded"), which)
        call, kwargs = self.book.loans.cancel_loan, {"key": self.key("cancel"),
                                                     "effective_date": self.today}
        entry = call(loan_no, **kwargs)
        self.done(entry, call, loan_no, **kwargs)   # one entry, bids or none: a retry replays it
        self.loans[loan_no]["state"] = "cancelled"
        self.frozen[loan_no] = {}

    @precondition(lambda self: self.in_state("funded"))
    @rule(which=picks)
    def disburse(self, which):
        self.disburse_loan(self.pick(self.in_state("funded"), which))

    def disburse_loan(self, loan_no: str) -> None:
        """Frozen bids go to the borrower less the upfront fee."""
        loan = self.loans[loan_no]
        call, kwargs = self.book.loans.disburse, {"key": self.key("disburse"),
                                                  "effective_date": self.today}
        before = self.book.balance_minor(wallet(loan["borrower"]))
        self.done(call(loan_no, **kwargs), call, loan_no, **kwargs)
        assert self.book.balance_minor(wallet(loan["borrower"])) == before + loan["principal"] - loan["fee"]
        self.earned["service"] += loan["fee"]
        loan["state"] = "repaying"
        self.frozen[loan_no] = {}

    @precondition(lambda self: self.loans)
    @rule(which=picks, flow=st.sampled_from(["bid", "cancel", "disburse", "repay", "pay_off",
                                             "compensate", "transfer_claim"]))
    def wrong_state(self, which, flow):
        """A flow on a loan in the wrong state is refused."""
        allowed = {"bid": ("bidding",), "cancel": ("bidding", "funded"), "disburse": ("funded",)}
        others = [no for no, loan in sorted(self.loans.items())
                  if loan["state"] not in allowed.get(flow, ("repaying",))]
        if not others:
            return
        loan_no = self.pick(others, which)
        loans = self.book.loans
        if flow == "bid":
            self.refused(LoanStateError, loans.bid, loan_no, INVESTORS[0], "1", key=self.key("bid"))
        elif flow in ("cancel", "disburse"):
            call = loans.cancel_loan if flow == "cancel" else loans.disburse
            self.refused(LoanStateError, call, loan_no, key=self.key(flow))
        elif flow == "repay":
            self.refused(LoanStateError, loans.repay, loan_no, "1", key=self.key("repay"),
                         on_date=self.today)
        elif flow == "pay_off":
            self.refused(LoanStateError, loans.pay_off, loan_no, key=self.key("payoff"),
                         on_date=self.today)
        elif flow == "compensate":
            self.refused(LoanStateError, loans.compensate, loan_no, 1, key=self.key("comp"),
                         on_date=self.today + dt.timedelta(days=400))
        else:
            self.refused(LoanStateError, loans.transfer_claim, loan_no, INVESTORS[0], INVESTORS[1],
                         share="1", price="1", key=self.key("xfer"), on_date=self.today)

    # --- time and repayments -----------------------------------------------------
    @rule(days=st.integers(min_value=1, max_value=45))
    def advance(self, days):
        self.today += dt.timedelta(days=days)

    def pay(self, call, loan_no, paid, **kwargs):
        """Run a repayment-like call; the borrower (or the bank) pays exactly ``paid``."""
        bank_ref = kwargs.get("bank_ref")
        borrower = self.loans[loan_no]["borrower"]
        if bank_ref is None:
            self.ensure(borrower, paid)
        before = (self.book.balance_minor(wallet(borrower)), self.book.balance_minor(BANK))
        entry = self.done(call(loan_no, **kwargs), call, loan_no, **kwargs)
        after = (self.book.balance_minor(wallet(borrower)), self.book.balance_minor(BANK))
        if bank_ref is None:
            assert after == (before[0] - paid, before[1])
        else:
            assert after == (before[0], before[1] + paid)
            assert entry.external_ref == bank_ref
            self.bank += paid
        return entry

    @precondition(lambda self: self.in_state("repaying"))
    @rule(which=picks, part=picks, late=st.integers(min_value=1, max_value=60),
          how=st.sampled_from(["on time", "early", "late", "partial", "from the bank",
                               "more than owed", "more than the wallet"]),
          order=st.sampled_from([COMPONENT_ORDER, ("principal", "interest", "fee", "penalty")]))
    def repay(self, which, part, late, how, order):
        """The borrower repays the next installment (on its due date, before it, or late with
        penalties: everything due), part of it, or too much (refused)."""
        loan_no = self.pick(self.in_state("repaying"), which)
        borrower = self.loans[loan_no]["borrower"]
        due = self.view(loan_no).next_due.due_date
        if how == "on time":
            self.today = max(self.today, due)
        elif how == "late":
            self.today = max(self.today, due + dt.timedelta(days=late))
        # A repayment accrues the penalty to its day first: what it owes includes it.
        self.accrue_penalties()
        view = self.view(loan_no)
        owed = self.owed(view)
        amount = minor(view.next_due.outstanding)
        if how == "late":
            amount = sum(minor(i.outstanding) for i in view.installments if i.due_date < self.today)
        elif how == "partial":
            amount = 1 + part % amount
        elif how == "more than owed":
            amount = owed + 1 + part % 1000
        elif how == "more than the wallet":
            amount = self.available(wallet(borrower)) + 1 + part % 1000
        bank_ref = self.key("CARD") if how == "from the bank" else None
        kwargs = {"amount": from_minor(amount), "key": self.key("repay"), "on_date": self.today,
                  "bank_ref": bank_ref, "order": order}
        event(f"repay: {how}")
        if amount > owed:
            self.refused(OverpaymentError, self.book.loans.repay, loan_no, **kwargs)
            return
        if how == "more than the wallet":
            self.refused(InsufficientFundsError, self.book.loans.repay, loan_no, **kwargs)
            return
        self.pay(self.book.loans.repay, loan_no, amount, **kwargs)
        assert self.owed(self.view(loan_no)) == owed - amount
        self.settle_if_paid(loan_no)

    @rule()
    def accrue_penalties(self):
        """Penalties through today; a second run for the same day posts nothing."""
        before = {no: self.view(no) for no in self.in_state("repaying")}
        entries = self.book.loans.accrue_penalties(self.today)
        for entry in entries:
            event("flow: accrue_penalties")
            assert not entry.replayed or entry.effective_date == self.today
        snapshot = self.snapshot()
        again = self.book.loans.accrue_penalties(self.today)
        assert [e.id for e in again] == [e.id for e in entries] and all(e.replayed for e in again)
        assert self.snapshot() == snapshot
        for no, view in before.items():
            after = self.view(no)
            for old, new in zip(view.installments, after.installments):
                assert new.penalty_outstanding >= old.penalty_outstanding
                if new.penalty_outstanding > old.penalty_outstanding:
                    assert old.due_date < self.today

    @precondition(lambda self: self.in_state("repaying"))
    @rule(which=picks, from_bank=st.booleans())
    def pay_off(self, which, from_bank):
        """Early (or late) repayment of everything, at the quoted price."""
        repaying = self.in_state("repaying")
        loan_no = self.pick(repaying, which)
        quote = self.book.loans.payoff_quote(loan_no, self.today)
        total, fee = minor(quote["total"]), minor(quote["prepayment_fee"])
        assert total == sum(minor(quote[k]) for k in ("principal", "interest",
                                                      "fees_and_penalties", "prepayment_fee"))
        assert quote["principal"] == self.view(loan_no).outstanding_principal
        bank_ref = self.key("CARD") if from_bank else None
        self.pay(self.book.loans.pay_off, loan_no, total, key=self.key("payoff"),
                 on_date=self.today, bank_ref=bank_ref)
        self.earned["prepayment"] += fee
        self.settle_if_paid(loan_no)
        assert self.loans[loan_no]["state"] == "settled"

    # --- compensation and claim transfers ----------------------------------------
    @precondition(lambda self: self.in_state("repaying"))
    @rule(which=picks, seq=picks, payer=st.sampled_from(["risk_reserve", "risk_reserve", GUARANTOR]),
          late=st.sampled_from([0, 1, 30, 30]), funded=mostly_true)
    def compensate(self, which, seq, payer, late, funded):
        """The risk reserve or a guarantor pays investors an overdue installment in full
        (``late`` days after its due date; an installment not yet overdue is refused)."""
        loan_no = self.pick(self.in_state("repaying"), which)
        view = self.view(loan_no)
        inst = view.next_due if seq % 4 else self.pick(view.installments, seq)
        if late:
            self.today = max(self.today, inst.due_date + dt.timedelta(days=late))
        party, source = (("@risk_reserve", RISK_RESERVE) if payer == "risk_reserve"
                         else (GUARANTOR, wallet(GUARANTOR)))
        owed = sum(a for (s, c, p), a in self.dues(loan_no).items()
                   if s == inst.seq and c in ("principal", "interest") and a > 0
                   and not p.startswith("@") and p != party)
        holds = any(s == inst.seq and c in ("principal", "interest") and p == party and a > 0
                    for (s, c, p), a in self.dues(loan_no).items())
        call, args = self.book.loans.compensate, (loan_no, inst.seq)
        kwargs = {"key": self.key("comp"), "on_date": self.today, "payer": payer}
        if inst.due_date >= self.today or not owed or holds:
            self.refused(LoanStateError, call, *args, **kwargs)
            return
        if funded:
            if payer == "risk_reserve":
                short = owed - self.available(RISK_RESERVE)
                if short > 0:
                    self.fund_reserve(short)
            else:
                self.ensure(GUARANTOR, owed)
        if self.available(source) < owed:
            self.refused(InsufficientFundsError, call, *args, **kwargs)
            return
        before = self.book.balance_minor(source)
        self.done(call(*args, **kwargs), call, *args, **kwargs)
        assert self.book.balance_minor(source) == before - owed
        moved = [(p, a) for (s, c, p), a in self.dues(loan_no).items()
                 if s == inst.seq and c in ("principal", "interest") and a > 0]
        assert all(p == party or p.startswith("@") for p, _ in moved), moved

    @precondition(lambda self: self.in_state("repaying"))
    @rule(which=picks, seller=picks, buyer=picks, share=st.sampled_from(["1", "0.5", "0.3"]),
          markup=st.sampled_from(["0.9", "1", "1.05"]), fee=st.sampled_from(["0", "0.01"]),
          funded=mostly_true)
    def transfer_claim(self, which, seller, buyer, share, markup, fee, funded):
        """A seller's claim on future installments (a share of it) goes to a buyer for a price."""
        repaying = self.in_state("repaying")
        loan_no = self.pick(repaying, which)
        future = {i.seq for i in self.view(loan_no).installments if i.due_date > self.today}
        dues = self.dues(loan_no)
        holders = sorted({p for (s, c, p), a in dues.items() if s in future and a > 0
                          and c == "principal" and not p.startswith("@")})
        seller = self.pick(holders, seller) if holders and seller % 4 else self.pick(BUYERS, seller)
        buyer = self.pick(BUYERS, buyer)
        fraction = Decimal(share)
        held = sum(a for (s, c, p), a in dues.items()
                   if p == seller and s in future and c == "principal" and a > 0)
        moved = buyers_share(held, fraction)
        price = max(1, int((Decimal(moved) * Decimal(markup)).to_integral_value(ROUND_HALF_UP)))
        fee_minor = int((Decimal(price) * Decimal(fee)).to_integral_value(ROUND_HALF_UP))
        call, args = self.book.loans.transfer_claim, (loan_no, seller, buyer)
        kwargs = {"share": share, "price": from_minor(price), "fee": from_minor(fee_minor),
                  "key": self.key("xfer"), "on_date": self.today}
        if seller == buyer or not moved:
            self.refused(FlowError, call, *args, **kwargs)
            return
        if funded:
            self.ensure(buyer, price)
        if self.available(wallet(buyer)) < price:
            self.refused(InsufficientFundsError, call, *args, **kwargs)
            return
        claims = [self.read_books()[0].get(claim_account(u, loan_no), (None, 0))[1]
                  for u in (seller, buyer)]
        self.done(call(*args, **kwargs), call, *args, **kwargs)
        assert self.book.balance_minor(claim_account(seller, loan_no)) == claims[0] - moved
        assert self.book.balance_minor(claim_account(buyer, loan_no)) == claims[1] + moved
        self.earned["transfer"] += fee_minor

    # --- retries -------------------------------------------------------------------
    @precondition(lambda self: self.calls)
    @rule(which=picks)
    def retry(self, which):
        """A call made again with its key returns its first entry and writes nothing."""
        call, args, kwargs, entry_id = self.pick(self.calls, which)
        event(f"retry: {call.__name__}")
        before = self.snapshot()
        entry = call(*args, **kwargs)
        assert entry.replayed and entry.id == entry_id
        assert self.snapshot() == before

    @precondition(lambda self: any(c[0].__name__ in AMOUNT_FIRST for c in self.calls))
    @rule(which=picks)
    def reuse_key(self, which):
        """A key used again for another amount is a conflict, and writes nothing."""
        calls = [c for c in self.calls if c[0].__name__ in AMOUNT_FIRST]
        call, args, kwargs, _ = self.pick(calls, which)
        at = AMOUNT_FIRST[call.__name__]
        changed = args[:at] + (args[at] + Decimal("0.01"),) + args[at + 1:]
        self.refused(IdempotencyConflictError, call, *changed, **kwargs)

    # --- invariants ----------------------------------------------------------------
    def read_books(self):
        """Posted sum of every account, stored no-overdraft balances, periodic fees paid per loan."""
        with self.book.reading() as conn:
            sums = {code: (type_, int(total)) for code, type_, total in conn.execute(
                select(m.Account.code, m.Account.type,
                       func.coalesce(func.sum(case((m.Posting.is_pending.is_(False),
                                                    m.Posting.amount_minor), else_=0)), 0))
                .outerjoin(m.Posting, m.Posting.account_id == m.Account.id)
                .where(m.Account.book_id == self.book.book_id)
                .group_by(m.Account.code, m.Account.type))}
            stored = conn.execute(
                select(m.Account.code, m.Account.type, m.AccountBalance.posted_minor,
                       m.AccountBalance.held_minor)
                .join(m.AccountBalance, m.AccountBalance.account_id == m.Account.id)
                .where(m.Account.book_id == self.book.book_id)).all()
            periodic = dict(conn.execute(
                select(m.Loan.loan_no, -func.sum(m.LoanDue.amount_minor))
                .join(m.LoanDue, m.LoanDue.loan_id == m.Loan.id)
                .where(m.Loan.book_id == self.book.book_id, m.LoanDue.component == "fee",
                       m.LoanDue.party == "@platform", m.LoanDue.amount_minor < 0,
                       m.LoanDue.reason.in_(("repay", "compensate")))
                .group_by(m.Loan.loan_no)).all())
        return sums, stored, periodic

    @invariant()
    def books_add_up(self):
        sums, stored, periodic = self.read_books()
        if not sums:
            return
        balance = {code: total for code, (_, total) in sums.items()}
        # Every currency (all CNY here) sums to zero, memo postings among themselves.
        assert sum(t for ty, t in sums.values() if ty == "memo") == 0
        assert sum(t for ty, t in sums.values() if ty != "memo") == 0
        # The custody invariant: the bank holds exactly what users and the platform are owed.
        held = sum(-t for ty, t in sums.values() if ty in ("liability", "equity", "income"))
        held -= sum(t for ty, t in sums.values() if ty == "expense")
        assert balance[BANK] == held == self.bank
        # Stored no-overdraft balances: equal to postings, never below zero.
        holds = {}
        for user, amount, fee in self.withdrawals.values():
            holds[wallet(user)] = holds.get(wallet(user), 0) + amount + fee
        for code, type_, posted, held_minor in stored:
            assert posted == balance[code], code
            sign = 1 if type_ in ("asset", "expense", "memo") else -1
            assert sign * posted - held_minor >= 0, code
            assert held_minor == holds.get(code, 0), code
        for investor in INVESTORS:
            frozen = sum(bids.get(investor, 0) for bids in self.frozen.values())
            assert -balance[wallet(investor, "frozen")] == frozen, investor
        # Fees the flows charged, less what was swept.
        for kind in CHARGED:
            assert -balance[fee_account(kind)] == self.earned[kind] - self.swept.get(kind, 0), kind
        assert -balance[fee_account("periodic")] == sum(periodic.values()) - self.swept.get("periodic", 0)
        assert -balance[fee_account("management")] == self.management_fees(balance) - self.swept.get(
            "management", 0)

    def management_fees(self, balance: dict[str, int]) -> int:
        """Check every loan's positions; returns the management fees they imply."""
        management = 0
        for loan_no, loan in self.loans.items():
            view = self.view(loan_no)
            state = loan["state"]
            assert view.status == state or (state == "repaying" and view.status == "overdue"), (
                loan_no, view.status, state)
            if state in ("bidding", "funded", "cancelled"):
                if state != "cancelled":
                    assert view.raised == from_minor(sum(self.frozen[loan_no].values()))
                assert not any(p.principal_received or p.outstanding_principal
                               for p in view.positions)
                continue
            assert sum(p.funded for p in view.positions) == from_minor(loan["principal"])
            for p in view.positions:
                assert p.funded + p.acquired - p.disposed == p.principal_received + p.outstanding_principal, p
                assert min(p.outstanding_principal, p.outstanding_interest, p.principal_received,
                           p.interest_received, p.penalty_received) >= 0, p
                assert balance[claim_account(p.party, loan_no)] == minor(p.outstanding_principal), p
                if not p.party.startswith("@"):
                    recovered = self.recovered_interest(loan_no, p.party)
                    management += fee_on(minor(p.interest_received) - recovered, loan["rate"])
            assert sum(p.outstanding_principal for p in view.positions) == view.outstanding_principal
            assert -balance[obligation_account(view.borrower, loan_no)] == minor(view.outstanding_principal)
            if state == "settled":
                assert all(i.status == "paid" for i in view.installments)
        return management

    def recovered_interest(self, loan_no: str, party: str) -> int:
        """Interest ``party`` received on installments it compensated: a payer's recovery,
        charged no management fee (the investors' interest was charged when it paid them)."""
        with self.book.engine.connect() as conn:
            return conn.execute(text(
                "SELECT COALESCE(-SUM(d.amount_minor), 0) FROM loan_due d JOIN loan l ON l.id = d.loan_id "
                "WHERE l.loan_no = :no AND d.party = :party AND d.component = 'interest' "
                "AND d.amount_minor < 0 AND d.reason IN ('repay', 'compensate') AND EXISTS ("
                "SELECT 1 FROM loan_due c WHERE c.loan_id = d.loan_id AND c.seq = d.seq "
                "AND c.party = d.party AND c.reason = 'compensate' AND c.amount_minor > 0)"),
                {"no": loan_no, "party": party}).scalar()

    @invariant()
    def verifies_every_few_steps(self):
        self.steps += 1
        if self.steps % VERIFY_EVERY == 0:
            self.check_verify()

    def check_verify(self):
        report = self.book.verify()
        assert report.ok, report.problems
        for figures in report.custody.values():
            assert figures["difference_minor"] == 0


def test_flows_keep_the_books_whole(make_url):
    FlowsMachine.make_url = staticmethod(make_url)
    run_state_machine_as_test(
        FlowsMachine, settings=settings(max_examples=15, stateful_step_count=20, deadline=None))


# --- regressions the machine found ---------------------------------------------------
def test_retried_fee_sweep_replays_after_the_fees_moved(book):
    """A sweep retried with its key returns the first entry even when the fee balances have
    changed since (it used to recompute its legs and refuse, or conflict); another amount
    under the same key is a conflict."""
    flows = book.flows
    flows.open_system_accounts()
    flows.open_user("alice")
    flows.top_up("alice", "100", bank_ref="B1", key="t1")
    flows.charge_fee("alice", "5.41", kind="service", key="f1")
    first = flows.sweep_fees("5.41", key="s1", bank_ref="S1")
    flows.charge_fee("alice", "0.10", kind="management", key="f2")
    again = flows.sweep_fees("5.41", key="s1", bank_ref="S1")
    assert again.replayed and again.id == first.id
    with pytest.raises(IdempotencyConflictError):
        flows.sweep_fees("0.10", key="s1", bank_ref="S1")
    assert book.balance(BANK) == Decimal("94.59")
    assert book.balance(fee_account("management")) == Decimal("0.10")


def test_disbursement_opens_claims_in_bulk_and_keeps_existing_ones(book):
    """Claim accounts go in as one insert; one opened before as a memo account is kept, one
    opened with other attributes refuses the disbursement, which then writes nothing."""
    book.flows.open_system_accounts()
    for user in ("inv1", "inv2", "bob"):
        book.flows.open_user(user)
        book.flows.top_up(user, "2000", bank_ref=f"B-{user}", key=f"t-{user}")
    for loan_no in ("L1", "L2"):
        book.loans.create_loan(loan_no, "bob", "1000", "0.06", 3, key=f"c-{loan_no}", start=START)
        book.loans.bid(loan_no, "inv1", "400", key=f"b1-{loan_no}")
        book.loans.bid(loan_no, "inv2", "600", key=f"b2-{loan_no}")
    book.open_account(claim_account("inv1", "L1"), "memo")
    book.loans.disburse("L1", key="d-L1", effective_date=START)
    assert book.balance(claim_account("inv1", "L1")) == Decimal("400.00")
    assert book.balance(claim_account("inv2", "L1")) == Decimal("600.00")
    book.open_account(claim_account("inv2", "L2"), "asset")
    with pytest.raises(AccountExistsError):
        book.loans.disburse("L2", key="d-L2", effective_date=START)
    assert book.loans.loan("L2").status == "funded"
    assert book.balance(wallet("inv2", "frozen")) == Decimal("600.00")
    assert book.verify().ok


@pytest.mark.parametrize("prepaid, accrued", [("20.00", "62.05"), ("229.74", "0.00")])
def test_pay_off_counts_interest_prepaid_for_the_current_period(book, prepaid, accrued):
    """Paying off 5 of 28 days into a period accrues 459.47 x 5/28 = 82.05 of its interest;
    what the borrower already paid of that interest counts towards it (it used to be
    charged again, pro rata on what was left)."""
    book.flows.open_system_accounts()
    for user in ("inv1", "bob"):
        book.flows.open_user(user)
        book.flows.top_up(user, "200000", bank_ref=f"B-{user}", key=f"t-{user}")
    book.loans.create_loan("L1", "bob", "100000", "0.06", 12, key="c", start=START)
    book.loans.bid("L1", "inv1", "100000", key="b")
    book.loans.disburse("L1", key="d", effective_date=START)
    first, second = book.loans.loan("L1").installments[:2]
    assert second.interest == Decimal("459.47")
    on = first.due_date + dt.timedelta(days=5)
    assert (second.due_date - first.due_date).days == 28
    assert book.loans.payoff_quote("L1", on)["interest"] == first.interest + Decimal("82.05")
    book.loans.repay("L1", first.outstanding + Decimal(prepaid), key="r1", on_date=first.due_date)
    quote = book.loans.payoff_quote("L1", on)
    assert quote["interest"] == Decimal(accrued)
    before = book.balance(wallet("bob"))
    book.loans.pay_off("L1", key="payoff", on_date=on)
    assert before - book.balance(wallet("bob")) == quote["total"]
    inv1 = book.loans.loan("L1", today=on).positions[0]
    assert inv1.interest_received == first.interest + max(Decimal(prepaid), Decimal("82.05"))
    assert book.verify().ok
