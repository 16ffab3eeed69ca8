"""Loans as balanced ledger entries: bids, disbursement, repayment, penalties,
compensation (代偿) and claim transfers (债权转让).

What a loan owes whom lives in ``loan_due``, an append-only ledger of its
own: each row adds to or settles what one *party* (an investor, a payer who
compensated, or ``@platform`` for periodic fees) is owed of one component
(penalty, fee, interest, principal) of one installment. Sums give every
state: outstanding amounts, each investor's position, what was received.
The rows are written in the same transaction as the journal entry they
belong to, and each row names that entry.

Money moves only through the one posting path, as entries that balance:

* bid: investor ``available`` -> ``frozen``; ``cancel_loan`` gives it back,
  in one entry that also records the principal withdrawn from offer in memo
  (so a loan without bids is cancelled by an entry, and a retry replays it);
* disburse: every bid's ``frozen`` -> the borrower's ``available`` less the
  upfront service fee (-> platform income); memo postings record each
  investor's claim against the borrower's obligation;
* repay: the borrower's wallet (or the custody bank, for a direct bank
  payment) pays, in order penalty -> fees -> interest -> principal, overdue
  installments first; each party is paid its exact share (largest
  remainder over what each is owed), less the platform's management fee on
  investors' interest (rounded as the loan's plan; a payer's recovery of an
  installment it compensated bears none); memo claims shrink with principal
  repaid;
* compensate: the risk reserve or a guarantor pays investors an installment
  in full and takes over their claim on it;
* transfer_claim: the buyer pays the price, the seller receives it less a
  fee, the claim on future installments moves (shared on running totals);
* penalties accrue in memo (``memo:penalties:<loan>`` against the
  obligation's ``:penalty`` account) and the memo shrinks as they are paid.
  An accrual charges what the days overdue make the penalty, whenever it
  runs; repay, pay_off and compensate accrue to their own day first.

A loan's entries and its dues move together, so none of its entries is
reversed by :meth:`ledger.book.Book.reverse` (which would leave the dues as
they were): :func:`refuse_reversal` names the entry and how the loan is
corrected instead. ``verify`` recomputes what disbursement made each party
owed from the loan's stored terms (:func:`scheduled_dues`) and checks every
later due against the entry that wrote it.

Every call carries an idempotency key. A retry (the same operation on the
same loan, party, amount, date and other arguments) returns the first
entry, marked replayed; anything else under a key already used raises
:class:`~ledger.errors.IdempotencyConflictError` and writes nothing. The
request is compared, not a recomputed draft: what a repayment pays whom
depends on what the loan owed at the first call.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import BigInteger, and_, case, cast, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from . import models as m
from . import schedules
from .accounts import is_segment, open_account, utcnow, validate_code
from .chain import canonical_json
from .errors import IdempotencyConflictError, LedgerError, PostingError
from .flows import BANK, RISK_RESERVE, WALLET_PARTS, FlowError, fee_account, positive_minor, wallet
from .money import DEFAULT_CURRENCY, allocate, from_minor, to_decimal_exact
from .postings import Draft, Entry, find_replay, write
from .rates import HALF_UP, normalize_rounding, rdiv
from .splits import running_shares

PLATFORM = "@platform"
RISK_RESERVE_PARTY = "@risk_reserve"
COMPONENT_ORDER = ("penalty", "fee", "interest", "principal")
# The kinds of entry the loan flows write; each carries its loan number in ``metadata["loan"]``.
LOAN_KINDS = ("bid", "loan_cancelled", "disbursement", "repayment", "payoff", "compensation",
              "claim_transfer", "penalty_accrual")
#: The kinds of entry that write dues of each reason (``loan_due.reason``).
DUE_ENTRY_KINDS = {"disburse": ("disbursement",), "repay": ("repayment", "payoff"),
                   "waive": ("payoff",), "compensate": ("compensation",),
                   "accrue": ("penalty_accrual",), "transfer": ("claim_transfer",)}
_INSERT_DUES_PG = text(
    "INSERT INTO loan_due (loan_id, seq, component, party, amount_minor, reason, entry_id, "
    "effective_date) SELECT :loan_id, v.seq, v.component, v.party, v.amount_minor, v.reason, "
    ":entry_id, :effective_date FROM unnest(CAST(:seqs AS integer[]), "
    "CAST(:components AS varchar[]), CAST(:parties AS varchar[]), CAST(:amounts AS bigint[]), "
    "CAST(:reasons AS varchar[])) AS v(seq, component, party, amount_minor, reason)")


class LoanStateError(FlowError):
    """The loan is not in a state that allows the operation."""


class OverpaymentError(FlowError):
    """A repayment larger than everything the loan still owes."""


class LoanEntryReversalError(PostingError):
    """A loan's entry given to the generic reversal; the loan's own flows correct it."""


class _KeyTaken(LedgerError):
    """The key was written by a concurrent call after this one looked (never escapes)."""


def claim_account(party: str, loan_no: str) -> str:
    """Memo account of what ``party`` is owed in principal on a loan."""
    return f"memo:claims:{_party_code(party)}:{loan_no}"


def obligation_account(borrower: str, loan_no: str) -> str:
    """Memo account of the borrower's principal obligation on a loan."""
    return f"memo:obligations:{borrower}:{loan_no}"


def penalty_accounts(borrower: str, loan_no: str) -> tuple[str, str]:
    """Memo accounts of a loan's penalties: (accrued to its parties, the borrower's obligation)."""
    return f"memo:penalties:{loan_no}", obligation_account(borrower, loan_no) + ":penalty"


def offer_accounts(loan_no: str) -> tuple[str, str]:
    """Memo accounts of a cancelled loan: (principal withdrawn, principal offered)."""
    return f"memo:loans:{loan_no}:cancelled", f"memo:loans:{loan_no}:offered"


def _party_code(party: str) -> str:
    return party.lstrip("@") if party.startswith("@") else party


def party_account(party: str) -> str:
    """Where money owed to ``party`` is paid."""
    if party == RISK_RESERVE_PARTY:
        return RISK_RESERVE
    if party == PLATFORM:
        return fee_account("periodic")
    return wallet(party)


@dataclass(frozen=True, slots=True)
class Installment:
    """One installment of a loan with what is paid and owed.

    Attributes:
        seq: number, from 1.
        due_date: date due.
        principal, interest, fee: scheduled amounts (Decimal).
        paid: amount the borrower repaid to date (all components; a compensation by a
            guarantor or the risk reserve pays the investors, not the installment).
        outstanding: amount still owed (principal, interest, fee, penalty).
        penalty_outstanding: overdue penalty still owed.
        status: paid, due, overdue or future.
    """

    seq: int
    due_date: dt.date
    principal: Decimal
    interest: Decimal
    fee: Decimal
    paid: Decimal
    outstanding: Decimal
    penalty_outstanding: Decimal
    status: str


@dataclass(frozen=True, slots=True)
class Position:
    """A party's position in a loan.

    Attributes:
        party: investor id (or ``@risk_reserve`` / a guarantor).
        funded: principal bid and lent.
        acquired: principal bought or taken over (transfer, compensation).
        disposed: principal sold to another investor.
        principal_received, interest_received, penalty_received: paid to date.
        outstanding_principal: principal still owed to the party.
        outstanding_interest: scheduled interest still owed.
    """

    party: str
    funded: Decimal
    acquired: Decimal
    disposed: Decimal
    principal_received: Decimal
    interest_received: Decimal
    penalty_received: Decimal
    outstanding_principal: Decimal
    outstanding_interest: Decimal


@dataclass(frozen=True)
class LoanView:
    """A loan and its state.

    Attributes:
        loan_no, borrower, currency, principal, raised, annual_rate, term,
        term_unit, method, start_date: the loan's terms.
        status: bidding, funded, repaying, overdue, settled, cancelled, defaulted.
        outstanding_principal: principal still owed by the borrower.
        installments: the plan with what is paid and owed.
        positions: each party's position.
        terms: fees and conventions.
    """

    loan_no: str
    borrower: str
    currency: str
    principal: Decimal
    raised: Decimal
    annual_rate: Decimal
    term: int
    term_unit: str
    method: str
    start_date: dt.date
    status: str
    outstanding_principal: Decimal
    installments: tuple[Installment, ...]
    positions: tuple[Position, ...]
    terms: dict

    @property
    def next_due(self) -> Installment | None:
        """The first installment not fully paid."""
        return next((i for i in self.installments if i.status != "paid"), None)


@dataclass(frozen=True)
class _Request:
    """What a loan call asks for: the entry a retry of it finds under its key.

    Attributes:
        kind: the entry's kind.
        metadata: values the entry's metadata holds (Decimals compare by value);
            a name the entry does not carry (written before it was recorded) is
            not compared.
        legs: minor amounts the entry posts to these accounts (0: no posting).
        accounts: accounts the entry posts to, whatever the amount.
        effective_date: the entry's date; None when the call left it to the day.
        external_ref, memo: the entry's.
    """

    kind: str
    metadata: Mapping[str, Any]
    legs: Mapping[str, int] = field(default_factory=dict)
    accounts: frozenset[str] = frozenset()
    effective_date: dt.date | None = None
    external_ref: str | None = None
    memo: str | None = None


def _show(name: str, value: Any) -> str:
    return str(from_minor(value)) if name.endswith("_minor") and isinstance(value, int) else str(value)


def _difference(name: str, have: Any, want: Any) -> str | None:
    """``"<name> <have>, not <want>"`` when a stored value is not what a retry asks for
    (a Decimal asked for compares by value with the text stored), else None."""
    same = (to_decimal_exact(have) == want if isinstance(want, Decimal) and isinstance(have, str)
            else have == want)
    return None if same else f"{name} {_show(name, have)}, not {_show(name, want)}"


def _differences(entry: Entry, request: _Request) -> list[str]:
    """How ``entry`` differs from what ``request`` would have written; empty for a retry."""
    if entry.kind != request.kind:
        return [f"kind {entry.kind}, not {request.kind}"]
    found = [_difference(name, entry.metadata[name], want) for name, want in request.metadata.items()
             if name in entry.metadata]
    found = [text for text in found if text]
    posted: dict[str, int] = {}
    for p in entry.postings:
        posted[p.account] = posted.get(p.account, 0) + p.amount_minor
    for code, want in request.legs.items():
        if posted.get(code, 0) != want:
            found.append(f"{code} {from_minor(posted.get(code, 0))}, not {from_minor(want)}")
    found += [f"no posting to {code}" for code in sorted(request.accounts - set(posted))]
    for name in ("effective_date", "external_ref", "memo"):
        have, want = getattr(entry, name), getattr(request, name)
        if have != want and (want is not None or name != "effective_date"):
            found.append(f"{name} {have}, not {want}")
    return found


def refuse_reversal(conn: Connection, book_id: int, entry_id: int) -> None:
    """Raise :class:`LoanEntryReversalError` when ``entry_id`` is one of a loan's entries.

    A loan entry is known by its kind (:data:`LOAN_KINDS`) and the loan its
    metadata names in the book. Reversing it would undo its money and memo
    postings but not the loan's dues, bids and status written beside it.
    """
    row = conn.execute(select(m.JournalEntry.kind, m.JournalEntry.metadata_json).where(
        m.JournalEntry.id == entry_id, m.JournalEntry.book_id == book_id)).first()
    if row is None or row.kind not in LOAN_KINDS or not row.metadata_json:
        return
    loan_no = json.loads(row.metadata_json).get("loan")
    if loan_no is None or conn.execute(select(m.Loan.id).where(
            m.Loan.book_id == book_id, m.Loan.loan_no == loan_no)).first() is None:
        return
    if row.kind == "bid":
        how = (f"a bid is given back by book.loans.cancel_loan({loan_no!r}, key=...), which "
               "unfreezes every bid of a loan not yet disbursed")
    elif row.kind == "loan_cancelled":
        how = "a cancelled loan is not reopened: create it again under a new loan number"
    else:
        how = ("a loan is corrected through its own flows in book.loans (repay, pay_off, "
               "compensate, transfer_claim), which write its entries and its dues together")
    raise LoanEntryReversalError(
        f"entry {entry_id} is a {row.kind} of loan {loan_no} and is not reversed: a reversal "
        f"would leave what the loan owes whom as it was; {how}",
        entry_id=entry_id, loan_no=loan_no, kind=row.kind)


# --- the plan, from ledger.schedules ---------------------------------------------
#: What a loan's ``conventions`` may set: the keyword arguments of
#: :func:`ledger.schedules.schedule` beyond the loan's own terms.
CONVENTIONS = ("day_count", "rounding", "installment_multiple", "periodic_fee", "periodic_fee_rate")

def _make_plan(principal: Decimal, annual_rate: Decimal, term: int, method: str,
               start: dt.date, term_unit: str, conventions: Mapping[str, Any]):
    """The borrower's plan (:func:`ledger.schedules.schedule`) and its rows in minor units."""
    plan = schedules.schedule(principal, annual_rate, term, method=method, start=start,
                              term_unit=term_unit, **conventions)
    rows = [{"seq": r.seq, "due_date": r.due_date.isoformat(), "principal": r.principal_minor,
             "interest": r.interest_minor, "fee": r.fee_minor} for r in plan.rows]
    return rows, plan


def _investor_shares(plan, investors: Sequence[tuple[str, int]]) -> dict[str, list[tuple[int, int]]]:
    """Each investor's (principal, interest) per installment, split from the borrower's rows."""
    split = schedules.split(plan, [(inv, from_minor(amount)) for inv, amount in investors])
    return {inv.investor: list(zip(inv.principal_parts, inv.interest_parts))
            for inv in split.investors}


def scheduled_dues(loan: Mapping[str, Any], bids: Sequence[tuple[str, int]]
                   ) -> tuple[list[dict], list[tuple[int, str, str, int]]]:
    """The loan's plan rows and what its disbursement makes each party owed, from its terms.

    ``loan`` is the loan's row with its ``terms`` read from JSON; ``bids`` each
    investor's total bid, in investor order. Returns the plan as ``plan_json``
    stores it and the non-zero ``(installment, component, party, amount)``
    dues: every investor's principal and interest, the platform's periodic
    fees. Disbursement writes these; ``verify`` compares them with the stored ones.
    """
    conventions = loan["terms"].get("conventions", {})
    rows, plan = _make_plan(from_minor(loan["principal_minor"]), Decimal(loan["annual_rate"]),
                            loan["term"], loan["method"], loan["start_date"], loan["term_unit"],
                            conventions)
    dues = []
    for inv, parts in (_investor_shares(plan, bids) if bids else {}).items():
        for seq, (principal, interest) in enumerate(parts, start=1):
            dues += [(seq, "principal", inv, principal), (seq, "interest", inv, interest)]
    dues += [(row["seq"], "fee", PLATFORM, row["fee"]) for row in rows]
    return rows, [due for due in dues if due[3]]


@dataclass
class _Paid:
    """What a payment needs of the loan's history beyond what it owes, read with its dues
    (:meth:`Loans._dues`): for the management fee, the interest each party received to
    date, by ``(installment, party)``, and the ``(installment, payer)`` of every
    compensation so far; the day penalties were last accrued through (None: never)."""

    received: dict[tuple[int, str], int] = field(default_factory=dict)
    recovered: set[tuple[int, str]] = field(default_factory=set)
    accrued_through: dt.date | None = None


# --- the service ------------------------------------------------------------------
class Loans:
    """Loan flows of one book (``book.loans``)."""

    def __init__(self, book):
        self.book = book

    # ---- helpers
    def _loan(self, conn: Connection, loan_no: str, *, lock: bool = False) -> dict:
        query = select(m.Loan.__table__).where(m.Loan.book_id == self.book.book_id,
                                               m.Loan.loan_no == loan_no)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise FlowError(f"no loan {loan_no!r}", loan_no=loan_no)
        loan = row._asdict()
        loan["terms"] = json.loads(loan["terms_json"])
        loan["plan"] = json.loads(loan["plan_json"])
        return loan

    def _repaying(self, conn: Connection, loan_no: str) -> dict:
        """The loan, locked for the flow, which must be repaying."""
        loan = self._loan(conn, loan_no, lock=True)
        if loan["status"] != "repaying":
            raise LoanStateError(f"loan {loan_no} is {loan['status']}, not repaying",
                                 loan_no=loan_no, status=loan["status"])
        return loan

    def _accrued_dues(self, conn: Connection, loan: dict, on_date: dt.date,
                      flow: str) -> tuple[dict, _Paid]:
        """What the loan owes once the penalty is accrued to ``on_date`` (a payment pays
        the penalty to its day), and what its parties were paid so far."""
        basis = _Paid()
        dues = self._dues(conn, loan["id"], basis)
        self._accrue(conn, loan, on_date, dues, flow=flow, paid=basis)
        return dues, basis

    def _run(self, key: str, request: _Request, fn) -> Entry:
        """Run a flow in one transaction. A key used before returns its entry when that
        entry is what ``request`` asks for (a retry), and is a conflict otherwise."""
        def run(conn):
            replay = find_replay(conn, self.book.book_id, key)
            if replay is None:
                return fn(conn)
            differences = _differences(replay, request)
            if differences:
                raise IdempotencyConflictError(
                    f"key {key!r} was used for entry {replay.id} ({replay.kind}) with different "
                    f"content: {'; '.join(differences)}", key=key, entry_id=replay.id,
                    differences=tuple(differences))
            return replay
        try:
            entry = self.book._write(run)
        except _KeyTaken:
            # A concurrent call wrote the key after this one looked: what it wrote with this
            # one's rows was rolled back, and the look-up now finds its entry.
            entry = self.book._write(run)
        self.book._after_write(0 if entry is None or entry.replayed else 1)
        return entry

    def _post(self, conn: Connection, draft: Draft) -> Entry:
        entry = write(conn, self.book.book_id, [draft])[0]
        if entry.replayed:
            raise _KeyTaken(f"key {draft.key!r} was written meanwhile", key=draft.key)
        return entry

    def _dues(self, conn: Connection, loan_id: int,
              basis: _Paid | None = None) -> dict[tuple[int, str, str], int]:
        """What the loan owes, by (installment, component, party); fills ``basis``, when
        given, with what a payment needs of the loan's history (:class:`_Paid`), from the
        same query."""
        paid = case((and_(m.LoanDue.amount_minor < 0, m.LoanDue.reason.in_(("repay", "compensate"))),
                     -m.LoanDue.amount_minor), else_=0)
        moved = case((and_(m.LoanDue.amount_minor > 0, m.LoanDue.reason == "compensate"), 1), else_=0)
        # bigint sums: PostgreSQL's sum of bigints is numeric, which the driver reads as Decimal
        total = cast(func.sum(m.LoanDue.amount_minor), BigInteger)
        got = cast(func.sum(paid), BigInteger)
        compensated = func.max(moved)
        # Only what is still owed, and the history when it is asked for: the settled
        # installments of a long loan are most of its rows.
        wanted = total != 0
        if basis is not None:
            wanted = or_(wanted, and_(m.LoanDue.component == "interest", got != 0), compensated == 1,
                         m.LoanDue.component == "penalty")
        rows = conn.execute(
            select(m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party, total, got, compensated)
            .where(m.LoanDue.loan_id == loan_id)
            .group_by(m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party)
            .having(wanted)).all()
        dues = {}
        penalised = False
        for seq, comp, party, total, got, by_payer in rows:
            if total:
                dues[(seq, comp, party)] = int(total)
            if basis is not None:
                if comp == "interest" and got:
                    basis.received[(seq, party)] = int(got)
                elif comp == "penalty":
                    penalised = True
                if by_payer:
                    basis.recovered.add((seq, party))
        if penalised:   # only a loan with penalties has accrued them (a rare look-up)
            basis.accrued_through = conn.execute(select(func.max(m.LoanDue.effective_date)).where(
                m.LoanDue.loan_id == loan_id, m.LoanDue.reason == "accrue")).scalar()
        return dues

    def _record_dues(self, conn: Connection, loan_id: int, entry: Entry, rows: Iterable[tuple],
                     reason: str) -> None:
        rows = [row for row in rows if row[3]]
        if rows and conn.dialect.name == "postgresql":
            # One statement with five arrays instead of a row of parameters per due: a
            # repayment to 50 investors writes about a hundred rows.
            conn.execute(_INSERT_DUES_PG, {
                "loan_id": loan_id, "entry_id": entry.id, "effective_date": entry.effective_date,
                "seqs": [row[0] for row in rows], "components": [row[1] for row in rows],
                "parties": [row[2] for row in rows], "amounts": [row[3] for row in rows],
                "reasons": [row[4] if len(row) > 4 else reason for row in rows]})
        elif rows:
            conn.execute(insert(m.LoanDue), [
                {"loan_id": loan_id, "seq": row[0], "component": row[1], "party": row[2],
                 "amount_minor": row[3], "reason": row[4] if len(row) > 4 else reason,
                 "entry_id": entry.id, "effective_date": entry.effective_date} for row in rows])

    # ---- creating and funding
    def create_loan(self, loan_no: str, borrower: str, principal: Any, annual_rate: Any, term: int, *,
                    key: str, method: str = "equal_installment", start: dt.date,
                    term_unit: str = "month", upfront_fee: Any = 0, management_fee_rate: Any = "0",
                    penalty_multiple: Any = "1.5", prepayment_fee_rate: Any = "0",
                    conventions: Mapping[str, Any] | None = None,
                    check_rate_cap: bool = True) -> LoanView:
        """Create a loan and its plan, and open the borrower's wallet; refuses a rate above
        the cap. Rates are written as :func:`ledger.schedules.schedule` takes them
        (``"6%"`` or ``"0.06"``).

        The same key again returns the loan when the terms are the same; other terms
        (or another loan) under it raise :class:`~ledger.errors.IdempotencyConflictError`.
        """
        for value, what, limit in ((loan_no, "loan number", 64), (borrower, "borrower", 100)):
            if not is_segment(value) or len(value) > limit:
                raise FlowError(f"{what} {value!r} must be 1 to {limit} letters, digits, '_', '-' "
                                "or '.' (not starting with '-' or '.'): it names the loan's accounts",
                                field="loan_no" if what == "loan number" else what)
        if type(start) is not dt.date:
            raise FlowError(f"start must be a date, not {start!r}", field="start")
        principal_minor = positive_minor(principal, "principal")
        rate = schedules.parse_rate(annual_rate, what="annual_rate")
        fee_minor = positive_minor(upfront_fee, "upfront_fee", allow_zero=True)
        if fee_minor >= principal_minor:
            raise FlowError("upfront fee must be smaller than the principal", field="upfront_fee")
        # Stored as text, and the plan is made from that text: what verify and the
        # disbursement rebuild it from later.
        conventions = {k: str(v) for k, v in dict(conventions or {}).items()}
        unknown = sorted(set(conventions) - set(CONVENTIONS))
        if unknown:
            raise FlowError(f"conventions {', '.join(map(repr, unknown))}: not one of "
                            f"{', '.join(CONVENTIONS)}", field="conventions")
        plan_rows, plan = _make_plan(from_minor(principal_minor), rate, term, method, start,
                                     term_unit, conventions)
        method, term_unit = plan.method, plan.term_unit   # stored by their own names, not aliases
        if check_rate_cap:
            schedules.check_rate_cap(plan, start, upfront_fee=from_minor(fee_minor))
        rates = {"management_fee_rate": schedules.parse_rate(management_fee_rate,
                                                             what="management_fee_rate"),
                 # as the nightly accrual reads it (schedules.penalty): 0 to 100 times the rate
                 "penalty_multiple": schedules.parse_rate(penalty_multiple, what="penalty_multiple",
                                                          maximum=Decimal(100)),
                 "prepayment_fee_rate": schedules.parse_rate(prepayment_fee_rate,
                                                             what="prepayment_fee_rate")}
        terms = {"upfront_fee_minor": fee_minor, **{k: str(v) for k, v in rates.items()},
                 "conventions": conventions}
        # What a retry asks for: the loan's columns and terms (rates compare by value).
        asked = {"borrower": borrower, "principal_minor": principal_minor, "annual_rate": rate,
                 "term": term, "term_unit": term_unit, "method": method, "start_date": start,
                 **{f"terms.{k}": v for k, v in {**terms, **rates}.items()}}

        def run(conn):
            book_id = self.book.book_id
            found = conn.execute(select(m.Loan.__table__).where(
                m.Loan.book_id == book_id, or_(m.Loan.loan_no == loan_no, m.Loan.create_key == key))
                .order_by(m.Loan.id)).all()
            numbered = [row for row in found if row.loan_no == loan_no]
            if numbered and numbered[0].create_key != key:
                raise FlowError(f"loan {loan_no!r} exists already", loan_no=loan_no)
            loan = (numbered or found or [None])[0]   # this loan, or another under the key
            if loan is not None:
                differences = ([f"loan_no {loan.loan_no}, not {loan_no}"] if loan.loan_no != loan_no
                               else _loan_differences(loan, asked))
                if differences:
                    raise IdempotencyConflictError(
                        f"key {key!r} was used for loan {loan.loan_no} (id {loan.id}) with different "
                        f"terms: {'; '.join(differences)}", key=key, loan_no=loan.loan_no,
                        loan_id=loan.id, differences=tuple(differences))
                return
            # Checked first, then everything in this one transaction: a refused call opens nothing.
            for part in WALLET_PARTS:
                open_account(conn, book_id, wallet(borrower, part), "liability", no_overdraft=True)
            conn.execute(insert(m.Loan).values(
                book_id=self.book.book_id, loan_no=loan_no, borrower=borrower,
                currency=DEFAULT_CURRENCY, principal_minor=principal_minor, raised_minor=0,
                annual_rate=str(rate), term=term, term_unit=term_unit, method=method,
                start_date=start, terms_json=canonical_json(terms),
                plan_json=canonical_json(plan_rows), status="bidding", create_key=key,
                created_at=utcnow()))
        self.book._write(run)
        return self.loan(loan_no)

    def bid(self, loan_no: str, investor: str, amount: Any, *, key: str,
            effective_date: dt.date | None = None) -> Entry:
        """Freeze ``amount`` of the investor's money for a loan still filling."""
        minor = positive_minor(amount, "amount")
        legs = ((wallet(investor), minor), (wallet(investor, "frozen"), -minor))
        metadata = {"loan": loan_no, "investor": investor}

        def run(conn):
            loan = self._loan(conn, loan_no)
            if loan["status"] != "bidding":
                raise LoanStateError(f"loan {loan_no} is {loan['status']}, not open for bids",
                                     loan_no=loan_no, status=loan["status"])
            took = conn.execute(
                update(m.Loan).where(m.Loan.id == loan["id"], m.Loan.status == "bidding",
                                     m.Loan.raised_minor + minor <= m.Loan.principal_minor)
                .values(raised_minor=m.Loan.raised_minor + minor)).rowcount
            if took != 1:
                left = loan["principal_minor"] - loan["raised_minor"]
                raise FlowError(f"bid of {from_minor(minor)} exceeds the {from_minor(left)} left on "
                                f"loan {loan_no}", loan_no=loan_no, remaining_minor=left, key=key)
            entry = self._post(conn, Draft(legs, key, "bid", effective_date,
                                           metadata=metadata, minor=True))
            conn.execute(insert(m.LoanBid).values(loan_id=loan["id"], investor=investor,
                                                  amount_minor=minor, entry_id=entry.id))
            conn.execute(update(m.Loan).where(m.Loan.id == loan["id"],
                                              m.Loan.raised_minor == m.Loan.principal_minor)
                         .values(status="funded"))
            return entry
        return self._run(key, _Request("bid", metadata, dict(legs), effective_date=effective_date), run)

    def _bids(self, conn: Connection, loan_id: int) -> list[tuple[str, int]]:
        rows = conn.execute(select(m.LoanBid.investor, func.sum(m.LoanBid.amount_minor))
                            .where(m.LoanBid.loan_id == loan_id)
                            .group_by(m.LoanBid.investor).order_by(m.LoanBid.investor))
        return [(inv, int(total)) for inv, total in rows]

    def cancel_loan(self, loan_no: str, *, key: str, effective_date: dt.date | None = None,
                    reason: str = "not fully funded in time") -> Entry:
        """Cancel a loan not yet disbursed, in one entry: every bid is unfrozen, and the
        principal withdrawn from offer is recorded in memo (:func:`offer_accounts`), so a
        loan without bids is cancelled by an entry too and a retry replays it."""
        def run(conn):
            loan = self._loan(conn, loan_no, lock=True)
            if loan["status"] not in ("bidding", "funded"):
                raise LoanStateError(f"loan {loan_no} is {loan['status']}; only a loan not yet "
                                     "disbursed can be cancelled", loan_no=loan_no)
            legs = []
            for investor, amount in self._bids(conn, loan["id"]):
                legs += [(wallet(investor, "frozen"), amount), (wallet(investor), -amount)]
            withdrawn, offered = offer_accounts(loan_no)
            for code in (withdrawn, offered):
                open_account(conn, self.book.book_id, code, "memo")
            legs += [(withdrawn, loan["principal_minor"]), (offered, -loan["principal_minor"])]
            conn.execute(update(m.Loan).where(m.Loan.id == loan["id"]).values(status="cancelled"))
            return self._post(conn, Draft(tuple(legs), key, "loan_cancelled", effective_date,
                                          memo=reason, metadata={"loan": loan_no}, minor=True))
        return self._run(key, _Request("loan_cancelled", {"loan": loan_no},
                                       effective_date=effective_date, memo=reason), run)

    def disburse(self, loan_no: str, *, key: str, effective_date: dt.date | None = None) -> Entry:
        """Pay a fully funded loan to the borrower; record every investor's claim."""
        def run(conn):
            loan = self._loan(conn, loan_no, lock=True)
            if loan["status"] != "funded":
                raise LoanStateError(f"loan {loan_no} is {loan['status']}; only a fully funded loan "
                                     "is disbursed", loan_no=loan_no, status=loan["status"])
            bids = self._bids(conn, loan["id"])
            fee = loan["terms"]["upfront_fee_minor"]
            borrower = loan["borrower"]
            legs = [(wallet(inv, "frozen"), amount) for inv, amount in bids]
            legs.append((wallet(borrower), -(loan["principal_minor"] - fee)))
            if fee:
                legs.append((fee_account("service"), -fee))
            for inv, amount in bids:
                legs += [(claim_account(inv, loan_no), amount),
                         (obligation_account(borrower, loan_no), -amount)]
            self._open_memo(conn, loan_no, borrower, [inv for inv, _ in bids])
            entry = self._post(conn, Draft(
                tuple(_merge(legs)), key, "disbursement", effective_date,
                metadata={"loan": loan_no, "borrower": borrower}, minor=True))
            self._record_dues(conn, loan["id"], entry, scheduled_dues(loan, bids)[1], "disburse")
            conn.execute(update(m.Loan).where(m.Loan.id == loan["id"]).values(status="repaying"))
            return entry
        return self._run(key, _Request("disbursement", {"loan": loan_no},
                                       effective_date=effective_date), run)

    def _open_memo(self, conn: Connection, loan_no: str, borrower: str, parties: Iterable[str]) -> None:
        """Open the loan's obligation and the parties' claim accounts (memo, idempotent).

        The missing ones go in as one insert (a disbursement opens one per
        investor); accounts that exist with other attributes, or a racing
        opener, take the one-by-one path, which refuses or waits as it should.
        """
        book_id = self.book.book_id
        codes = list(dict.fromkeys([obligation_account(borrower, loan_no)]
                                   + [claim_account(party, loan_no) for party in parties]))
        found = {row.code: row for row in conn.execute(
            select(m.Account.code, m.Account.type, m.Account.currency, m.Account.is_no_overdraft)
            .where(m.Account.book_id == book_id, m.Account.code.in_(codes)))}
        odd = [c for c, r in found.items()
               if (r.type, r.currency, bool(r.is_no_overdraft)) != ("memo", DEFAULT_CURRENCY, False)]
        missing = [validate_code(c) for c in codes if c not in found]
        if missing:
            now = utcnow()
            try:
                with conn.begin_nested():
                    conn.execute(insert(m.Account), [
                        {"book_id": book_id, "code": c, "type": "memo", "currency": DEFAULT_CURRENCY,
                         "is_no_overdraft": False, "name": None, "opened_at": now} for c in missing])
            except IntegrityError:
                odd += missing
        for code in odd:
            open_account(conn, book_id, code, "memo")

    # ---- repaying
    def repay(self, loan_no: str, amount: Any, *, key: str, on_date: dt.date,
              bank_ref: str | None = None, order: Sequence[str] = COMPONENT_ORDER) -> Entry:
        """The borrower repays ``amount``: overdue installments first, each in ``order``.

        Amounts beyond what is due by ``on_date`` pay the next installments in
        advance; more than the loan owes is refused. With ``bank_ref`` the
        money comes straight from the bank into custody. Penalties are accrued
        to ``on_date`` first (in the same transaction), so what is owed includes
        them; a date before the loan's last accrual is refused.
        """
        minor = positive_minor(amount, "amount")
        if sorted(order) != sorted(COMPONENT_ORDER):
            raise FlowError(f"order must list {', '.join(COMPONENT_ORDER)}", field="order")

        def run(conn):
            loan = self._repaying(conn, loan_no)
            dues, basis = self._accrued_dues(conn, loan, on_date, "repayment")
            owed = sum(v for v in dues.values() if v > 0)
            if minor > owed:
                raise OverpaymentError(
                    f"repayment {from_minor(minor)} exceeds the {from_minor(owed)} loan {loan_no} "
                    "still owes", loan_no=loan_no, owed_minor=owed, key=key)
            payments = _allocate_payment(dues, minor, order)
            return self._pay_out(conn, loan, payments, key=key, on_date=on_date, source=(
                (BANK, bank_ref) if bank_ref else (wallet(loan["borrower"]), None)),
                kind="repayment", reason="repay", dues=dues, basis=basis,
                metadata={"order": list(order)})
        return self._run(key, _Request("repayment", {"loan": loan_no, "paid_minor": minor,
                                                     "order": list(order)},
                                       effective_date=on_date, external_ref=bank_ref), run)

    def payoff_quote(self, loan_no: str, on_date: dt.date) -> dict:
        """What repays the whole loan on ``on_date`` (see :meth:`pay_off`), in Decimal."""
        with self.book.reading() as conn:
            loan = self._loan(conn, loan_no)
            dues = self._dues(conn, loan["id"])
            if loan["status"] == "repaying":   # with the penalty pay_off accrues to the day
                _move(dues, self._penalties_due(conn, loan, on_date, dues))
            payments, waived, fee = _payoff(loan, dues, on_date)
        return {"on_date": on_date, "total": from_minor(sum(a for _, _, _, a in payments) + fee),
                "principal": from_minor(sum(a for _, c, _, a in payments if c == "principal")),
                "interest": from_minor(sum(a for _, c, _, a in payments if c == "interest")),
                "fees_and_penalties": from_minor(sum(a for _, c, _, a in payments
                                                     if c in ("fee", "penalty"))),
                "prepayment_fee": from_minor(fee),
                "interest_waived": from_minor(-sum(a for _, c, _, a, _ in waived if c == "interest"))}

    def pay_off(self, loan_no: str, *, key: str, on_date: dt.date, bank_ref: str | None = None) -> Entry:
        """Repay the whole loan early: everything due, the principal outstanding,
        interest accrued in the current period (pro rata by days), and the
        prepayment fee (the loan's ``prepayment_fee_rate`` x principal
        outstanding); later interest and fees are waived."""
        def run(conn):
            loan = self._repaying(conn, loan_no)
            dues, basis = self._accrued_dues(conn, loan, on_date, "payoff")
            payments, waived, fee = _payoff(loan, dues, on_date)
            source = (BANK, bank_ref) if bank_ref else (wallet(loan["borrower"]), None)
            extra = [(source[0], fee), (fee_account("prepayment"), -fee)] if fee else []
            return self._pay_out(conn, loan, payments, key=key, on_date=on_date, source=source,
                                 kind="payoff", reason="repay", extra_legs=extra, extra_dues=waived,
                                 dues=dues, basis=basis)
        return self._run(key, _Request("payoff", {"loan": loan_no}, effective_date=on_date,
                                       external_ref=bank_ref), run)

    def _pay_out(self, conn: Connection, loan: dict, payments: list[tuple[int, str, str, int]], *,
                 key: str, on_date: dt.date, source: tuple[str, str | None], kind: str,
                 reason: str, extra_legs: Sequence[tuple[str, int]] = (),
                 extra_dues: Sequence[tuple] = (),
                 dues: Mapping[tuple[int, str, str], int], basis: _Paid,
                 metadata: Mapping[str, Any] | None = None) -> Entry:
        loan_no, borrower = loan["loan_no"], loan["borrower"]
        rate = Decimal(loan["terms"]["management_fee_rate"])
        rounding = loan_rounding(loan["terms"])
        total = sum(p[3] for p in payments)
        source_account, source_ref = source
        legs: list[tuple[str, int]] = [(source_account, total)] if total else []
        mgmt = 0
        # The management fee is the rate on each investor's running total of the
        # interest that bears it, rounded once: per-payment rounding cannot drift.
        charged: dict[str, int] = {}
        recovered = basis.recovered
        if rate:
            for (seq, party), got in basis.received.items():
                if charges_management_fee(party, seq, recovered):
                    charged[party] = charged.get(party, 0) + got
        for seq, comp, party, amount in payments:
            pay = amount
            if comp == "interest" and rate and charges_management_fee(party, seq, recovered):
                before = charged.get(party, 0)
                charged[party] = before + amount
                fee = management_fee(before, amount, rate, rounding)
                mgmt += fee
                pay -= fee
            if pay:
                legs.append((party_account(party), -pay))
            if comp == "principal":
                legs += [(obligation_account(borrower, loan_no), amount),
                         (claim_account(party, loan_no), -amount)]
            elif comp == "penalty":
                accrued, owed = penalty_accounts(borrower, loan_no)
                legs += [(owed, amount), (accrued, -amount)]
        if mgmt:
            legs.append((fee_account("management"), -mgmt))
        legs += list(extra_legs)
        entry = self._post(conn, Draft(
            tuple(_merge(legs)), key, kind, on_date, external_ref=source_ref,
            metadata={"loan": loan_no, "paid_minor": total, "management_fee_minor": mgmt,
                      "fee_rule": FEE_RULE, **(metadata or {})}, minor=True))
        rows = [(s, c, p, -a) for s, c, p, a in payments] + list(extra_dues)
        self._record_dues(conn, loan["id"], entry, rows, reason)
        # What is left owing: the dues read before (``dues``) moved by the rows just written.
        left = _move(dict(dues), rows)
        if not any(v > 0 for v in left.values()):
            conn.execute(update(m.Loan).where(m.Loan.id == loan["id"]).values(status="settled"))
        return entry

    def accrue_penalties(self, as_of: dt.date) -> list[Entry]:
        """Penalty interest on overdue principal of every repaying loan, through ``as_of``.

        Idempotent per loan and date: running it twice for a date posts once.
        Penalty accrues daily at the contract rate times the loan's penalty
        multiple over 360 days (:func:`ledger.schedules.penalty`), on each
        installment's overdue principal from its due date to ``as_of``, and
        is owed to whoever was owed that principal each day (:meth:`_penalties_due`).

        Each loan accrues in its own transaction: one that cannot (terms that make
        no penalty) stops no other. Those are named together at the end in a
        :class:`LoanStateError` whose ``accrued`` holds the entries of the others.
        """
        with self.book.reading() as conn:
            loan_nos = list(conn.execute(select(m.Loan.loan_no).where(
                m.Loan.book_id == self.book.book_id, m.Loan.status == "repaying")
                .order_by(m.Loan.loan_no)).scalars())
        entries, failed = [], []
        for loan_no in loan_nos:
            try:
                entry = self._accrue_one(loan_no, as_of)
            except LoanStateError as exc:
                failed.append(str(exc))
                continue
            if entry is not None:
                entries.append(entry)
        if failed:
            raise LoanStateError(f"penalties through {as_of} not accrued for {len(failed)} loan(s) "
                                 f"({'; '.join(failed)}); the other {len(loan_nos) - len(failed)} "
                                 "accrued", accrued=tuple(entries), failed=tuple(failed))
        return entries

    def _accrue_one(self, loan_no: str, as_of: dt.date) -> Entry | None:
        asked = {"loan": loan_no, "through": as_of.isoformat()}
        return self._run(_penalty_key(loan_no, as_of),
                         _Request("penalty_accrual", asked, effective_date=as_of),
                         lambda conn: self._accrue(conn, self._loan(conn, loan_no, lock=True), as_of,
                                                   strict=True))

    def _accrue(self, conn: Connection, loan: dict, as_of: dt.date,
                dues: dict[tuple[int, str, str], int] | None = None, *,
                strict: bool = False, flow: str | None = None, paid: _Paid | None = None
                ) -> Entry | None:
        """Accrue the loan's penalties through ``as_of`` in this transaction (an entry and its
        dues), or None when nothing more is due (:meth:`_penalties_due`). Repayments, payoffs
        and compensations call it first, so what they settle or move includes the penalty
        to their day, whenever the nightly accrual last ran; ``dues``, what they read the
        loan to owe, is brought up to date with what it accrues."""
        if flow is not None:
            last = paid.accrued_through
            if last is not None and last > as_of:
                raise LoanStateError(
                    f"loan {loan['loan_no']} has penalties accrued through {last}: a {flow} dated "
                    f"{as_of}, before that, would leave penalties charged for days it had paid "
                    f"(date it {last} or later)", loan_no=loan["loan_no"], accrued_through=last)
        rows = self._penalties_due(conn, loan, as_of, dues, strict=strict)
        key = _penalty_key(loan["loan_no"], as_of)
        if not rows or find_replay(conn, self.book.book_id, key) is not None:
            return None
        total = sum(r[3] for r in rows)
        accrued, owed = penalty_accounts(loan["borrower"], loan["loan_no"])
        for code in (accrued, owed):
            open_account(conn, self.book.book_id, code, "memo")
        entry = self._post(conn, Draft(
            ((accrued, total), (owed, -total)), key, "penalty_accrual", as_of,
            metadata={"loan": loan["loan_no"], "through": as_of.isoformat()}, minor=True))
        self._record_dues(conn, loan["id"], entry, rows, "accrue")
        if dues is not None:
            _move(dues, rows)
        return entry

    def _penalties_due(self, conn: Connection, loan: dict, as_of: dt.date,
                       dues: Mapping[tuple[int, str, str], int] | None = None, *,
                       strict: bool = False) -> list[tuple]:
        """The penalty dues an accrual through ``as_of`` writes: per overdue installment, the
        penalty on its principal as it stood each day since its due date (a day's penalty on
        what was still owed at the end of the day before: paid on the due date, none),
        summed exactly and rounded once, less what earlier accruals wrote. So the total is
        what :func:`ledger.schedules.penalty` gives for the days overdue, however often the
        accrual runs and whatever was paid in between. It is shared by largest remainder
        among the parties in proportion to what each is still entitled to: the penalty on
        the principal it was owed each of those days, less what it was given before (so
        each party's share too is within a fen of its exact share, and whoever was owed
        the principal on a day gets that day's penalty).

        A loan whose stored terms make no penalty (a multiple outside 0 to 100, which
        ``create_loan`` now refuses) accrues none; with ``strict`` (the nightly accrual)
        that is an error naming the loan."""
        try:
            factor = (schedules.parse_rate(loan["annual_rate"], what="annual_rate")
                      * schedules.parse_rate(loan["terms"]["penalty_multiple"],
                                             what="penalty_multiple", maximum=Decimal(100)))
        except LedgerError as exc:
            if strict:
                raise LoanStateError(f"loan {loan['loan_no']}: its terms make no penalty: {exc}",
                                     loan_no=loan["loan_no"]) from None
            return []
        if dues is None:
            dues = self._dues(conn, loan["id"])
        overdue = {inst["seq"] for inst in loan["plan"] if dt.date.fromisoformat(inst["due_date"]) < as_of}
        if not any(seq in overdue and comp == "principal" and amount > 0
                   for (seq, comp, _), amount in dues.items()):
            return []   # no principal overdue: none to charge (the usual repayment on time)
        # One pass: the principal's movements by day, and what earlier accruals charged.
        moves: dict[int, dict[str, list[tuple[dt.date, int]]]] = {}
        accrued: dict[tuple[int, str], int] = {}
        for seq, party, comp, day, amount in conn.execute(
                select(m.LoanDue.seq, m.LoanDue.party, m.LoanDue.component, m.LoanDue.effective_date,
                       func.sum(m.LoanDue.amount_minor))
                .where(m.LoanDue.loan_id == loan["id"], or_(
                    m.LoanDue.component == "principal",
                    and_(m.LoanDue.component == "penalty", m.LoanDue.reason == "accrue")))
                .group_by(m.LoanDue.seq, m.LoanDue.party, m.LoanDue.component, m.LoanDue.effective_date)):
            if comp == "principal":
                moves.setdefault(seq, {}).setdefault(party, []).append((day, int(amount)))
            else:
                accrued[(seq, party)] = accrued.get((seq, party), 0) + int(amount)
        num, den = factor.as_integer_ratio()
        den *= schedules.PENALTY_DAYS_PER_YEAR
        rows = []
        for inst in loan["plan"]:
            seq, due = inst["seq"], dt.date.fromisoformat(inst["due_date"])
            if seq not in overdue:
                continue
            # each party's principal-days overdue: what it was owed at the end of each day
            # from the due date to the day before ``as_of``
            days = {party: _principal_days(history, due, as_of)
                    for party, history in sorted(moves.get(seq, {}).items())}
            given = {party: a for (s, party), a in accrued.items() if s == seq}
            more = rdiv(sum(days.values()) * num, den, HALF_UP) - sum(given.values())
            owed = {party: d * num - given.get(party, 0) * den for party, d in days.items()}
            owed = {party: e for party, e in owed.items() if e > 0}
            if more <= 0 or not owed:
                continue
            for party, part in zip(owed, allocate(more, list(owed.values()))):
                if part:
                    rows.append((seq, "penalty", party, part))
        return rows

    # ---- compensation and transfers
    def compensate(self, loan_no: str, installment: int, *, key: str, on_date: dt.date,
                   payer: str = "risk_reserve") -> Entry:
        """A payer settles an overdue installment with its investors and takes over the claim.

        ``payer`` is ``"risk_reserve"`` or a guarantor's user id (paid from its
        wallet). Later repayments of that installment go to the payer.
        """
        party = RISK_RESERVE_PARTY if payer == "risk_reserve" else payer
        source = RISK_RESERVE if payer == "risk_reserve" else wallet(payer)
        metadata = {"installment": installment, "payer": payer}

        def run(conn):
            loan = self._repaying(conn, loan_no)
            inst = next((r for r in loan["plan"] if r["seq"] == installment), None)
            if inst is None:
                raise LoanStateError(f"loan {loan_no} has no installment {installment} (its "
                                     f"installments are 1 to {len(loan['plan'])})", loan_no=loan_no)
            if dt.date.fromisoformat(inst["due_date"]) >= on_date:
                raise LoanStateError(f"installment {installment} of loan {loan_no} is not overdue "
                                     f"on {on_date}", loan_no=loan_no)
            # The investors' penalty to the day stays theirs; from then on it accrues to the payer.
            dues, basis = self._accrued_dues(conn, loan, on_date, "compensation")
            if any(seq == installment and comp in ("principal", "interest") and p == party
                   and amount > 0 for (seq, comp, p), amount in dues.items()):
                # Its recovery would mix its own interest (which bears the management fee)
                # with what it paid the others (charged when it paid them).
                raise LoanStateError(
                    f"{payer} holds a claim on installment {installment} of loan {loan_no}: a payer "
                    "compensates the claims of others, not an installment it is owed itself",
                    loan_no=loan_no, payer=payer)
            payments = [(seq, comp, p, amount) for (seq, comp, p), amount in sorted(dues.items())
                        if seq == installment and comp in ("principal", "interest") and amount > 0
                        and not p.startswith("@") and p != party]
            if not payments:
                raise LoanStateError(f"nothing owed to investors on installment {installment}",
                                     loan_no=loan_no)
            self._open_memo(conn, loan_no, loan["borrower"], [party])
            moved = [(seq, comp, party, amount) for seq, comp, _, amount in payments]
            principal_moved = sum(a for _, c, _, a in payments if c == "principal")
            # Investors are paid as by a repayment; the claim (and the obligation) move to the payer.
            extra = [(claim_account(party, loan_no), principal_moved),
                     (obligation_account(loan["borrower"], loan_no), -principal_moved)]
            return self._pay_out(conn, loan, payments, key=key, on_date=on_date, source=(source, None),
                                 kind="compensation", reason="compensate", extra_legs=extra,
                                 extra_dues=moved, dues=dues, basis=basis, metadata=metadata)
        # The payer's claim leg is there only when principal moved (not for an interest-only
        # installment): the paying account and the metadata name the payer.
        return self._run(key, _Request("compensation", {"loan": loan_no, **metadata},
                                       accounts=frozenset((source,)), effective_date=on_date), run)

    def transfer_claim(self, loan_no: str, seller: str, buyer: str, *, share: Any, price: Any,
                       key: str, on_date: dt.date, fee: Any = 0) -> Entry:
        """Move ``share`` (0 < share <= 1) of the seller's claim on future installments to the buyer."""
        if seller == buyer:
            raise FlowError(f"{seller} cannot sell a claim to itself", field="buyer")
        fraction = to_decimal_exact(share, what="share")
        if not 0 < fraction <= 1:
            raise FlowError(f"share must be in (0, 1], got {fraction}", field="share")
        price_minor = positive_minor(price, "price")
        fee_minor = positive_minor(fee, "fee", allow_zero=True)
        if fee_minor > price_minor:
            raise FlowError("fee exceeds the price", field="fee")
        money = [(wallet(buyer), price_minor), (wallet(seller), -(price_minor - fee_minor)),
                 (fee_account("transfer"), -fee_minor)]
        paid = {code: 0 for code, _ in money} | dict(_merge(money))   # what a retry moved

        def run(conn):
            loan = self._repaying(conn, loan_no)
            dues = self._dues(conn, loan["id"])
            future = {r["seq"] for r in loan["plan"] if dt.date.fromisoformat(r["due_date"]) > on_date}
            moves = []
            num, den = fraction.as_integer_ratio()
            for comp in ("principal", "interest"):
                held = [(seq, amount) for (seq, c, party), amount in sorted(dues.items())
                        if party == seller and seq in future and c == comp and amount > 0]
                if not held:
                    continue
                # The share of each installment on the running total of the seller's claim:
                # the buyer's total is its share of the whole within a fen, not a fen more
                # for every installment that splits unevenly.
                parts = ([a for _, a in held] if num == den else
                         running_shares([a for _, a in held], [num, den - num])[0])
                for (seq, _), part in zip(held, parts):
                    if part:
                        moves += [(seq, comp, seller, -part), (seq, comp, buyer, part)]
            principal = sum(a for _, c, p, a in moves if c == "principal" and p == buyer)
            if not principal:
                raise FlowError(f"{seller} holds no claim on future installments of {loan_no}",
                                loan_no=loan_no)
            self._open_memo(conn, loan_no, loan["borrower"], [buyer])
            legs = [(wallet(buyer), price_minor), (wallet(seller), -(price_minor - fee_minor)),
                    (claim_account(buyer, loan_no), principal),
                    (claim_account(seller, loan_no), -principal)]
            if fee_minor:
                legs.append((fee_account("transfer"), -fee_minor))
            entry = self._post(conn, Draft(tuple(_merge(legs)), key, "claim_transfer", on_date,
                                           metadata={"loan": loan_no, "seller": seller, "buyer": buyer,
                                                     "share": str(fraction)}, minor=True))
            self._record_dues(conn, loan["id"], entry, moves, "transfer")
            return entry
        return self._run(key, _Request("claim_transfer", {"loan": loan_no, "seller": seller,
                                                          "buyer": buyer, "share": fraction},
                                       paid, effective_date=on_date), run)

    # ---- reading
    def loan(self, loan_no: str, *, today: dt.date | None = None) -> LoanView:
        """A loan with its installments and positions."""
        today = today or dt.date.today()
        with self.book.reading() as conn:
            loan = self._loan(conn, loan_no)
            dues = conn.execute(
                select(m.LoanDue.seq, m.LoanDue.component, m.LoanDue.party, m.LoanDue.reason,
                       m.LoanDue.amount_minor).where(m.LoanDue.loan_id == loan["id"])).all()
            bids = self._bids(conn, loan["id"])
        return _view(loan, dues, bids, today)

    def loans(self) -> list[str]:
        """Loan numbers of the book."""
        with self.book.reading() as conn:
            return list(conn.execute(select(m.Loan.loan_no).where(m.Loan.book_id == self.book.book_id)
                                     .order_by(m.Loan.loan_no)).scalars())


def _penalty_key(loan_no: str, as_of: dt.date) -> str:
    """The key of the accrual of a loan's penalties through a day (one a day at most)."""
    return f"penalty:{loan_no}:{as_of.isoformat()}"


def management_fee(received_before: int, interest: int, rate: Decimal, rounding: str = HALF_UP) -> int:
    """The management fee kept from ``interest`` paid to an investor who had received
    ``received_before`` of the loan's interest: ``rate`` on the running total, rounded
    once with the loan's ``rounding`` (as :func:`ledger.schedules.split` shows it in the
    investor's plan), less what the total before it was charged (so per-payment rounding
    never drifts)."""
    num, den = rate.as_integer_ratio()
    return rdiv((received_before + interest) * num, den, rounding) - rdiv(received_before * num, den, rounding)


#: The rule a payment's management fee was computed by, in its entry's metadata
#: (``fee_rule``; verify recomputes each entry by its own rule). Entries without it
#: were charged by rule 1: every investor's interest (a payer's recovery too), rounded
#: half up. Rule 2: :func:`charges_management_fee`, rounded as the loan's plan.
FEE_RULE = 2


def charges_management_fee(party: str, seq: int, recovered: set[tuple[int, str]]) -> bool:
    """Whether interest of installment ``seq`` paid to ``party`` bears the management fee:
    an investor's does; the platform's parties' (``@...``) do not, nor does a payer's
    recovery of an installment it compensated (``recovered``: the ``(installment,
    payer)`` of every compensation so far), whose interest was charged when the payer
    paid it to the investors."""
    return not party.startswith("@") and (seq, party) not in recovered


def loan_rounding(terms: Mapping[str, Any]) -> str:
    """The rounding of a loan's plan (its conventions' ``rounding``, half-up by default)."""
    return normalize_rounding((terms.get("conventions") or {}).get("rounding", HALF_UP))


def _move(dues: dict[tuple[int, str, str], int], rows: Iterable[tuple]) -> dict:
    """``dues`` (what the loan owes, by installment, component and party) moved by due rows
    ``(installment, component, party, amount, ...)``, in place; returned."""
    for seq, comp, party, amount, *_ in rows:
        dues[(seq, comp, party)] = dues.get((seq, comp, party), 0) + amount
    return dues


def _principal_days(history: Iterable[tuple[dt.date, int]], due: dt.date, as_of: dt.date) -> int:
    """Σ, over the days from ``due`` to the day before ``as_of``, of the principal owed at
    the end of the day, from its movements ``(day, amount)``."""
    history = sorted(history)
    outstanding = sum(a for day, a in history if day <= due)
    since, total = due, 0
    for day, amount in history:
        if due < day < as_of:
            total += outstanding * (day - since).days
            outstanding += amount
            since = day
    return total + outstanding * (as_of - since).days


def _merge(legs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sum legs per account (first-seen order), dropping zeros."""
    totals: dict[str, int] = {}
    for code, amount in legs:
        totals[code] = totals.get(code, 0) + amount
    return [(code, amount) for code, amount in totals.items() if amount]


def _loan_differences(loan, asked: Mapping[str, Any]) -> list[str]:
    """How a loan row differs from the terms ``create_loan`` was asked for; empty for a retry."""
    terms = json.loads(loan.terms_json)
    found = [_difference(name, terms.get(name[6:]) if name.startswith("terms.") else getattr(loan, name),
                         want) for name, want in asked.items()]
    return [text for text in found if text]


def _allocate_payment(dues: Mapping[tuple[int, str, str], int], amount: int,
                      order: Sequence[str]) -> list[tuple[int, str, str, int]]:
    """Split ``amount`` over installments (earliest first), components in ``order``,
    and parties in proportion to what each is owed (largest remainder)."""
    by_bucket: dict[tuple[int, str], list[tuple[str, int]]] = {}
    for (seq, comp, party), owed in sorted(dues.items()):
        if owed > 0:
            by_bucket.setdefault((seq, comp), []).append((party, owed))
    rank = {c: i for i, c in enumerate(order)}
    payments = []
    left = amount
    for seq, comp in sorted(by_bucket, key=lambda b: (b[0], rank[b[1]])):
        if not left:
            break
        parties = by_bucket[(seq, comp)]
        owed = sum(o for _, o in parties)
        pay = min(left, owed)
        parts = [o for _, o in parties] if pay == owed else allocate(pay, [o for _, o in parties])
        for (party, _), part in zip(parties, parts):
            if part:
                payments.append((seq, comp, party, part))
        left -= pay
    return payments


def _payoff(loan: dict, dues: Mapping[tuple[int, str, str], int], on_date: dt.date):
    """(payments, waived dues, prepayment fee) that settle the loan on ``on_date``."""
    plan = loan["plan"]
    due = {r["seq"]: dt.date.fromisoformat(r["due_date"]) for r in plan}
    current = next((r["seq"] for r in plan if due[r["seq"]] > on_date), None)
    payments, waived = [], []
    for (seq, comp, party), owed in sorted(dues.items()):
        if owed <= 0:
            continue
        if due[seq] <= on_date or comp == "principal" or (comp == "penalty"):
            payments.append((seq, comp, party, owed))
        elif seq != current or comp == "fee":
            waived.append((seq, comp, party, -owed, "waive"))
    if current is not None:
        start = due.get(current - 1) or loan["start_date"]
        days, period = (on_date - start).days, (due[current] - start).days
        parties = [(p, o) for (s, c, p), o in sorted(dues.items()) if s == current and c == "interest" and o > 0]
        total = sum(o for _, o in parties)
        if total and period > 0:
            # Interest accrues on the period's scheduled interest; what the borrower paid of it
            # in advance counts towards the accrued part (and is not given back).
            scheduled = next(r["interest"] for r in plan if r["seq"] == current)
            accrued = rdiv(scheduled * days, period, loan_rounding(loan["terms"]))
            accrued = min(total, max(0, accrued - (scheduled - total)))
            parts = allocate(accrued, [o for _, o in parties]) if accrued else [0] * len(parties)
            for (party, owed), part in zip(parties, parts):
                if part:
                    payments.append((current, "interest", party, part))
                if owed - part:
                    waived.append((current, "interest", party, -(owed - part), "waive"))
    outstanding_principal = sum(a for s, c, p, a in payments if c == "principal" and due[s] > on_date)
    num, den = Decimal(loan["terms"].get("prepayment_fee_rate", "0")).as_integer_ratio()
    fee = rdiv(outstanding_principal * num, den, loan_rounding(loan["terms"]))
    return payments, waived, fee


def _view(loan: dict, dues: Sequence, bids: Sequence[tuple[str, int]], today: dt.date) -> LoanView:
    outstanding: dict[tuple[int, str], int] = {}
    paid: dict[int, int] = {}
    pos: dict[str, dict[str, int]] = {}

    def p(party):
        return pos.setdefault(party, {"funded": 0, "acquired": 0, "disposed": 0, "principal_received": 0,
                                      "interest_received": 0, "penalty_received": 0,
                                      "outstanding_principal": 0, "outstanding_interest": 0})
    for inv, amount in bids:
        p(inv)["funded"] += amount
    for seq, comp, party, reason, amount in dues:
        outstanding[(seq, comp)] = outstanding.get((seq, comp), 0) + amount
        if reason in ("repay", "compensate") and amount < 0:
            if reason == "repay":   # a compensation pays the investors, not the installment
                paid[seq] = paid.get(seq, 0) - amount
            if comp in ("principal", "interest", "penalty"):
                p(party)[f"{comp}_received"] += -amount
        if comp == "principal":
            p(party)["outstanding_principal"] += amount
            if reason in ("transfer", "compensate") and amount > 0:
                p(party)["acquired"] += amount
            elif reason == "transfer" and amount < 0:
                p(party)["disposed"] += -amount
        if comp == "interest":
            p(party)["outstanding_interest"] += amount
    installments = []
    for row in loan["plan"]:
        seq = row["seq"]
        due = dt.date.fromisoformat(row["due_date"])
        owed = sum(v for (s, _), v in outstanding.items() if s == seq)
        if loan["status"] in ("bidding", "funded", "cancelled"):
            owed = row["principal"] + row["interest"] + row["fee"]
        if loan["status"] in ("bidding", "funded", "cancelled"):
            status = "scheduled"
        else:
            status = ("paid" if owed == 0 else "overdue" if due < today else "due" if due == today
                      else "future")
        installments.append(Installment(
            seq, due, from_minor(row["principal"]), from_minor(row["interest"]), from_minor(row["fee"]),
            from_minor(paid.get(seq, 0)), from_minor(owed),
            from_minor(outstanding.get((seq, "penalty"), 0)), status))
    status = loan["status"]
    if status == "repaying" and any(i.status == "overdue" for i in installments):
        status = "overdue"
    positions = tuple(Position(party, *(from_minor(v[k]) for k in (
        "funded", "acquired", "disposed", "principal_received", "interest_received",
        "penalty_received", "outstanding_principal", "outstanding_interest")))
        for party, v in sorted(pos.items()) if party != PLATFORM)
    outstanding_principal = sum(v for (_, c), v in outstanding.items() if c == "principal")
    if loan["status"] in ("bidding", "funded"):
        outstanding_principal = 0
    return LoanView(loan["loan_no"], loan["borrower"], loan["currency"],
                    from_minor(loan["principal_minor"]), from_minor(loan["raised_minor"]),
                    Decimal(loan["annual_rate"]), loan["term"], loan["term_unit"], loan["method"],
                    loan["start_date"], status, from_minor(outstanding_principal),
                    tuple(installments), positions, loan["terms"])


__all__ = ["Loans", "LoanView", "Installment", "Position", "LoanStateError", "OverpaymentError",
           "LoanEntryReversalError", "LOAN_KINDS", "DUE_ENTRY_KINDS", "claim_account", "obligation_account",
           "penalty_accounts", "offer_accounts", "party_account", "management_fee", "FEE_RULE",
           "charges_management_fee", "loan_rounding", "refuse_reversal",
           "scheduled_dues"]
