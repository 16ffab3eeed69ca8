"""P2P money flows on user wallets: users, top-ups, withdrawals, fee sweeps.

Each flow is one idempotent, balanced entry (or a few linked ones written in
one transaction) through the one posting path. The chart it uses:

=====================================  =========================================
``assets:custody:bank``                what the custody bank holds
``liabilities:users:<u>:available``    a user's wallet (no overdraft)
``liabilities:users:<u>:frozen``       money frozen by bids (no overdraft)
``liabilities:users:<u>:withdrawing``  money set aside for a payout outside the
                                       two-phase path (kept for manual holds)
``income:platform:fees:<kind>``        fees earned, still held in custody
``liabilities:platform:risk_reserve``  the risk reserve (风险准备金)
=====================================  =========================================

A withdrawal is two-phase: ``withdraw`` posts a *pending* entry that holds the
amount (and fee) in the wallet; the bank's answer commits it
(``confirm_withdrawal``: the money leaves custody, the fee is earned) or voids
it (``fail_withdrawal``: the money is available again). Nothing is edited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from . import balances
from .accounts import list_accounts, open_account
from .errors import IdempotencyConflictError, LedgerError
from .money import DEFAULT_CURRENCY, from_minor, posting_minor
from .postings import Draft, Entry, find_replay, open_pending, write

BANK = "assets:custody:bank"
RISK_RESERVE = "liabilities:platform:risk_reserve"
WALLET_PARTS = ("available", "frozen", "withdrawing")
FEE_KINDS = ("service", "management", "withdrawal", "transfer", "prepayment", "penalty", "periodic")


class FlowError(LedgerError):
    """A flow refused for a business reason (wrong state, bad amount, ...)."""


def wallet(user: str, part: str = "available") -> str:
    """Account code of a user's wallet part."""
    return f"liabilities:users:{user}:{part}"


def fee_account(kind: str) -> str:
    """Income account of a platform fee kind."""
    return f"income:platform:fees:{kind}"


def positive_minor(amount: Any, what: str, currency: str = DEFAULT_CURRENCY,
                   allow_zero: bool = False) -> int:
    """An amount in minor units that must be positive (or zero when allowed), and no more
    than one posting may move (a loan's principal is posted whole when it is cancelled)."""
    minor = posting_minor(amount, currency, what=what)
    if minor < 0 or (minor == 0 and not allow_zero):
        raise FlowError(f"{what} must be {'zero or more' if allow_zero else 'positive'}, got {amount}",
                        field=what)
    return minor


class Wallets:
    """Wallet flows of one book (``book.flows``)."""

    def __init__(self, book):
        self.book = book
        self.currency = DEFAULT_CURRENCY

    def open_system_accounts(self) -> None:
        """Open the platform's own accounts (idempotent)."""
        self.book.open_account(BANK, "asset", name="custody account at the bank")
        self.book.open_account(RISK_RESERVE, "liability", no_overdraft=True, name="risk reserve")
        for kind in FEE_KINDS:
            self.book.open_account(fee_account(kind), "income", name=f"{kind} fees held in custody")

    def open_user(self, user: str, name: str | None = None) -> list[str]:
        """Open a user's wallet accounts (available, frozen, withdrawing); idempotent."""
        codes = []
        for part in WALLET_PARTS:
            code = wallet(user, part)
            self.book.open_account(code, "liability", no_overdraft=True, name=name)
            codes.append(code)
        return codes

    def top_up(self, user: str, amount: Any, *, bank_ref: str, key: str,
               effective_date: dt.date | None = None, pending: bool = False) -> Entry:
        """Money paid into custody for ``user``: bank debit, wallet credit.

        With ``pending=True`` the top-up waits for the bank's confirmation
        (``confirm_top_up``); until then the user cannot spend it.
        """
        minor = positive_minor(amount, "amount")
        return self.book.post(
            [(BANK, minor), (wallet(user), -minor)], key=key, kind="top_up",
            effective_date=effective_date, external_ref=bank_ref, pending=pending,
            metadata={"user": user, "flow": "top_up"}, minor=True)

    def _pending_of(self, entry_id: int, key: str, kind: str, flow: str) -> None:
        """Refuse to complete, as ``flow``, an open pending entry of another kind (an id
        mistyped: a pending top-up "paid out", a manual hold voided as a failed withdrawal).
        An entry that is not pending, or is completed already, gets the same
        :class:`~ledger.errors.PendingStateError` as before (a retry under the same key
        still replays). An entry's kind never changes, so it is read before the write."""
        with self.book.reading() as conn:
            replay = find_replay(conn, self.book.book_id, key)
            entry = open_pending(conn, self.book.book_id, entry_id,
                                 replay_of=replay.id if replay else None)
        if entry.kind != kind:
            raise FlowError(f"entry {entry_id} is a {entry.kind} entry, not a {kind}: "
                            f"{flow} completes {kind} entries only",
                            entry_id=entry_id, kind=entry.kind)

    def confirm_top_up(self, entry_id: int, *, key: str, bank_ref: str | None = None,
                       effective_date: dt.date | None = None) -> Entry:
        """The bank confirmed a pending top-up: the money is the user's."""
        self._pending_of(entry_id, key, "top_up", "confirm_top_up")
        return self.book.commit_pending(entry_id, key=key, external_ref=bank_ref,
                                        effective_date=effective_date)

    def withdraw(self, user: str, amount: Any, *, key: str, fee: Any = 0,
                 order_ref: str | None = None, effective_date: dt.date | None = None) -> Entry:
        """Hold ``amount`` + ``fee`` in the wallet until the bank pays ``amount`` out."""
        minor = positive_minor(amount, "amount")
        fee_minor = positive_minor(fee, "fee", allow_zero=True)
        legs = [(wallet(user), minor + fee_minor), (BANK, -minor)]
        if fee_minor:
            legs.append((fee_account("withdrawal"), -fee_minor))
        return self.book.post(legs, key=key, kind="withdrawal", effective_date=effective_date,
                              external_ref=order_ref, pending=True,
                              metadata={"user": user, "flow": "withdrawal", "fee_minor": fee_minor},
                              minor=True)

    def confirm_withdrawal(self, entry_id: int, *, bank_ref: str, key: str,
                           effective_date: dt.date | None = None) -> Entry:
        """The bank paid the withdrawal out: the money leaves custody."""
        self._pending_of(entry_id, key, "withdrawal", "confirm_withdrawal")
        return self.book.commit_pending(entry_id, key=key, external_ref=bank_ref,
                                        effective_date=effective_date)

    def fail_withdrawal(self, entry_id: int, *, key: str, reason: str,
                        effective_date: dt.date | None = None) -> Entry:
        """The bank rejected the withdrawal: the hold is voided, nothing is charged."""
        self._pending_of(entry_id, key, "withdrawal", "fail_withdrawal")
        return self.book.void_pending(entry_id, key=key, effective_date=effective_date, memo=reason)

    def charge_fee(self, user: str, amount: Any, *, kind: str, key: str,
                   effective_date: dt.date | None = None, ref: str | None = None) -> Entry:
        """A platform fee charged to a user's wallet."""
        minor = positive_minor(amount, "amount")
        fees = fee_account(kind)
        draft = Draft(((wallet(user), minor), (fees, -minor)), key, "fee", effective_date,
                      external_ref=ref, metadata={"user": user, "fee": kind}, minor=True)
        # The fee account opens in the charge's own transaction: a refused charge (the
        # wallet short of funds, say) leaves no account behind.
        return self.book.post_drafts([draft], before=lambda conn: open_account(
            conn, self.book.book_id, fees, "income"))[0]

    def fund_risk_reserve(self, amount: Any, *, bank_ref: str, key: str,
                          effective_date: dt.date | None = None) -> Entry:
        """The platform or a guarantor pays into the risk reserve held in custody."""
        minor = positive_minor(amount, "amount")
        return self.book.post([(BANK, minor), (RISK_RESERVE, -minor)], key=key,
                              kind="risk_reserve_funding", effective_date=effective_date,
                              external_ref=bank_ref, minor=True)

    def sweep_fees(self, amount: Any, *, key: str, bank_ref: str, kind: str | None = None,
                   effective_date: dt.date | None = None) -> Entry:
        """Move earned fees out of custody to the platform's own bank account.

        The fee accounts hold what the platform earned *and still keeps in
        custody*; a sweep lowers them and the custody bank together.

        Takes from ``income:platform:fees:<kind>`` (or, without ``kind``, from
        the fee accounts in code order until ``amount`` is covered); refuses
        to sweep more than was earned.
        """
        minor = positive_minor(amount, "amount")
        book = self.book

        def run(conn, _book):
            # One sweep at a time, the fees read inside its transaction: two sweeps reading
            # the same fees before either wrote would both be posted.
            _lock_sweeps(conn, book.book_id)
            first = find_replay(conn, book.book_id, key)
            if first is not None:
                # A retry: the fee balances may have moved since, so the legs are the first
                # call's and the write path answers it (a replay, or a conflict if it differs).
                legs = [(p.account, p.amount_minor) for p in first.postings]
                sources = {code for code, _ in legs if code != BANK}
                if (BANK, -minor) not in legs or (kind is not None and sources != {fee_account(kind)}):
                    raise IdempotencyConflictError(
                        f"key {key!r} was used for entry {first.id} with different content",
                        key=key, entry_id=first.id)
            else:
                accounts = [a for a in list_accounts(conn, book.book_id, "income:platform:fees")
                            if kind is None or a.code == fee_account(kind)]
                legs, left = [], minor
                for a in accounts:
                    take = min(balances.balance_minor(conn, a), left)
                    if take > 0:
                        legs.append((a.code, take))
                        left -= take
                if left:
                    raise FlowError(f"cannot sweep {from_minor(minor)}: only "
                                    f"{from_minor(minor - left)} of fees is held in custody",
                                    field="amount")
                legs.append((BANK, -minor))
            draft = Draft(tuple(legs), key, "fee_sweep", effective_date, external_ref=bank_ref,
                          minor=True)
            return write(conn, book.book_id, [draft], account_cache=book._account_cache)[0]
        return book.in_transaction(run)


def _lock_sweeps(conn, book_id: int) -> None:
    """Take the book's fee-sweep lock for this transaction (PostgreSQL; SQLite is serial)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x53574550 * 1_000_003 + book_id})
