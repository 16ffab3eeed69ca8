"""SQLAlchemy tables of the ledger.

Design overview
---------------
* A **book** is one independent ledger (one hash chain, one chart of
  accounts). Books shard cleanly: no row refers across books.
* An **account** has a hierarchical code (``liabilities:users:u1:available``),
  one of six types and one currency. Accounts flagged ``is_no_overdraft`` own
  an **account_balance** row: the running posted balance and the pending holds,
  moved by an atomic conditional ``UPDATE`` that refuses to go below zero.
  Every other account (the hot custody and income accounts) has no balance
  row at all: its balance is the sum of its postings, so concurrent writers
  never queue behind it.
* A **journal_entry** is the header of one balanced transaction. Its
  **posting** rows (debit positive, integer minor units) sum to zero per
  currency. Posted rows are never updated or deleted: triggers refuse it.
  Postings are inserted before their header; the database checks the header's
  ``posting_count`` and the balance when the header arrives (SQLite) or at
  commit (PostgreSQL, a deferred constraint trigger).
* Two-phase entries: ``phase='pending'`` holds funds; a later entry with
  ``phase='commit'`` or ``phase='void'`` and ``pending_id`` completes it. The
  unique ``pending_id`` makes completion happen exactly once. A reversal is a
  new entry whose unique ``reverses_id`` points at the original.
* Tamper evidence: each header stores ``content_hash`` (its fields and its
  postings) when written. **chain_link** rows then chain the entries of a
  book, in the order they were sealed, each hash covering the previous one.
  Writers never wait for the chain: they put the entry id in **seal_queue**,
  and sealing (batched, after commit) appends the links.
* **closed_period** rows close a book up to a date: no entry may be posted
  with an effective date on or before it.

Money columns end in ``_minor`` and are signed 64-bit integers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    SmallInteger,
    String,
    Text,
    text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: A 64-bit integer that is still SQLite's auto-incrementing rowid there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ACCOUNT_TYPES = ("asset", "liability", "equity", "income", "expense", "memo")
PHASES = ("posted", "pending", "commit", "void")


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so every constraint has a name."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Book(Base):
    """One independent ledger: its own accounts, entries and hash chain."""

    __tablename__ = "book"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    name: Mapped[str] = mapped_column(String(100), unique=True)
    """Human name of the book, unique (``main`` by default)."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time the book was created."""


class Account(Base):
    """An account in a book's chart of accounts."""

    __tablename__ = "account"
    __table_args__ = (
        UniqueConstraint("book_id", "code"),
        CheckConstraint(_in("type", ACCOUNT_TYPES), name="type"),
        CheckConstraint("length(currency) = 3", name="currency"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book the account belongs to."""
    code: Mapped[str] = mapped_column(String(255))
    """Hierarchical colon-separated code, e.g. ``assets:custody:bank``."""
    type: Mapped[str] = mapped_column(String(16))
    """asset, liability, equity, income, expense or memo; fixes the normal side."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO 4217 code; every posting to the account is in this currency."""
    is_no_overdraft: Mapped[bool] = mapped_column(Boolean, default=False)
    """When true the balance (on the normal side, net of holds) never goes below zero."""
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """Optional human description."""
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time the account was opened."""
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(), nullable=True)
    """UTC time the account was closed; a closed account takes no postings."""


class AccountBalance(Base):
    """Running balance of a no-overdraft account, moved by conditional updates."""

    __tablename__ = "account_balance"
    __table_args__ = (CheckConstraint("held_minor >= 0", name="held_nonnegative"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    """The account (only no-overdraft accounts have a row)."""
    posted_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    """Sum of the account's posted postings, debit positive."""
    held_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    """Open pending holds that reduce the balance, on the normal side (>= 0)."""


class JournalEntry(Base):
    """Header of one balanced transaction; append-only."""

    __tablename__ = "journal_entry"
    __table_args__ = (
        UniqueConstraint("book_id", "idempotency_key"),
        UniqueConstraint("pending_id"),
        UniqueConstraint("reverses_id"),
        CheckConstraint(_in("phase", PHASES), name="phase"),
        CheckConstraint("posting_count >= 0", name="posting_count"),
        CheckConstraint(
            "(phase IN ('commit', 'void')) = (pending_id IS NOT NULL)", name="pending_link"
        ),
        Index("ix_journal_entry_book_id_effective_date", "book_id", "effective_date"),
        Index("ix_journal_entry_book_id_external_ref", "book_id", "external_ref"),
    )

    id: Mapped[int] = mapped_column(
        BigId, Sequence("journal_entry_id_seq"), primary_key=True, autoincrement=False
    )
    """Entry id, allocated by the posting engine before the rows are written."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book the entry belongs to."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    """Caller's key; the same key with the same content returns this entry."""
    request_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the request's canonical content, to detect a reused key."""
    kind: Mapped[str] = mapped_column(String(64))
    """Business kind: top_up, withdrawal, disbursement, reversal, ..."""
    phase: Mapped[str] = mapped_column(String(8))
    """posted, pending (holds funds), commit or void (completes ``pending_id``)."""
    effective_date: Mapped[dt.date] = mapped_column(Date())
    """Business date the entry counts on (balances as of a date use it)."""
    external_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Outside reference (bank serial, order id) used by reconciliation."""
    memo: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Free text."""
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Caller's metadata as canonical JSON."""
    pending_id: Mapped[int | None] = mapped_column(
        ForeignKey("journal_entry.id"), nullable=True
    )
    """For commit and void entries: the pending entry completed (once)."""
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("journal_entry.id"), nullable=True
    )
    """For reversals: the entry reversed (at most once)."""
    posting_count: Mapped[int] = mapped_column(Integer)
    """Number of postings; the database checks it against the rows."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time the entry was written."""
    content_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the entry's fields and postings, computed when written."""


class Posting(Base):
    """One leg of a journal entry; append-only."""

    __tablename__ = "posting"
    __table_args__ = (
        UniqueConstraint("entry_id", "position"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
        Index("ix_posting_account_id_effective_date", "account_id", "effective_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("journal_entry.id", deferrable=True, initially="DEFERRED")
    )
    """The entry; postings are written before their header (deferred key)."""
    position: Mapped[int] = mapped_column(SmallInteger)
    """Order of the posting inside its entry, from 0."""
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    """The account moved."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """Signed amount in minor units, debit positive; never zero."""
    currency: Mapped[str] = mapped_column(String(3))
    """The account's currency, repeated so the balance check needs no join."""
    effective_date: Mapped[dt.date] = mapped_column(Date())
    """The entry's effective date, repeated for as-of balance queries."""
    is_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    """True for postings of a pending entry (holds, not yet posted)."""


class ChainLink(Base):
    """One link of a book's hash chain; append-only."""

    __tablename__ = "chain_link"

    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"), primary_key=True)
    """The book whose chain this is."""
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    """Position in the chain, from 1, without gaps."""
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    """The entry sealed by this link."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    """chain_hash of the link before (64 zeros for the first)."""
    chain_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 over prev_hash and the entry's content hash."""
    sealed_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time of sealing."""


class SealQueue(Base):
    """Entries written but not yet linked into the chain."""

    __tablename__ = "seal_queue"

    entry_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    """An entry awaiting its chain link."""
    book_id: Mapped[int] = mapped_column(BigInteger, index=True)
    """Its book."""


class ClosedPeriod(Base):
    """A close of a book up to and including ``closed_through``."""

    __tablename__ = "closed_period"
    __table_args__ = (UniqueConstraint("book_id", "closed_through"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book closed."""
    closed_through: Mapped[dt.date] = mapped_column(Date())
    """Last effective date of the closed period."""
    label: Mapped[str] = mapped_column(String(32))
    """The period's name, e.g. ``2026-11``."""
    closed_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time of the close."""
    closed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """Who closed it."""


LOAN_STATUSES = ("bidding", "funded", "repaying", "settled", "cancelled", "defaulted")
DUE_COMPONENTS = ("penalty", "fee", "interest", "principal")


class Loan(Base):
    """A loan: its terms, its borrower's plan, how much was raised, its state."""

    __tablename__ = "loan"
    __table_args__ = (
        UniqueConstraint("book_id", "loan_no"),
        CheckConstraint(_in("status", LOAN_STATUSES), name="status"),
        CheckConstraint("raised_minor >= 0 AND raised_minor <= principal_minor",
                        name="raised_within_principal"),
        CheckConstraint("principal_minor > 0", name="principal_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book."""
    loan_no: Mapped[str] = mapped_column(String(64))
    """The platform's loan number, unique in the book."""
    borrower: Mapped[str] = mapped_column(String(100))
    """Borrowing user."""
    currency: Mapped[str] = mapped_column(String(3))
    """Currency of the loan."""
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    """Amount lent."""
    raised_minor: Mapped[int] = mapped_column(BigInteger)
    """Bids so far; a conditional update keeps it within the principal."""
    annual_rate: Mapped[str] = mapped_column(String(32))
    """Contract annual rate as a decimal string (``"0.06"``)."""
    term: Mapped[int] = mapped_column(Integer)
    """Number of periods."""
    term_unit: Mapped[str] = mapped_column(String(8))
    """month or day."""
    method: Mapped[str] = mapped_column(String(32))
    """Repayment method (equal_installment, equal_principal, interest_only, bullet)."""
    start_date: Mapped[dt.date] = mapped_column(Date())
    """Value date of the loan; due dates follow from it."""
    terms_json: Mapped[str] = mapped_column(Text)
    """Fees, conventions and penalty rule, as canonical JSON."""
    plan_json: Mapped[str] = mapped_column(Text)
    """The borrower's plan in minor units, as canonical JSON."""
    status: Mapped[str] = mapped_column(String(16))
    """bidding, funded, repaying, settled, cancelled or defaulted."""
    create_key: Mapped[str] = mapped_column(String(200))
    """Idempotency key of the creating call."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time of creation."""


class LoanBid(Base):
    """An investor's bid on a loan (its freeze entry); append-only."""

    __tablename__ = "loan_bid"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id"), index=True)
    """The loan."""
    investor: Mapped[str] = mapped_column(String(100))
    """Bidding user."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """Amount frozen."""
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), unique=True)
    """The freeze entry."""


class LoanDue(Base):
    """One movement of what a loan owes whom; append-only, sums give the state.

    ``+amount`` makes ``party`` owed that much of ``component`` of installment
    ``seq`` (at disbursement, penalty accrual, or when a claim moves to it);
    ``-amount`` settles or moves it away (repayment, compensation, transfer).

    ``loan_id`` and ``entry_id`` are references without foreign keys: a
    repayment writes about a hundred rows naming one loan and one entry, so
    the database checks them once per statement (PostgreSQL; per row on
    SQLite) with trigger ``trg_loan_due_references``, and a loan refuses
    DELETE and a change of its id (migration 0007).
    """

    __tablename__ = "loan_due"
    __table_args__ = (
        CheckConstraint(_in("component", DUE_COMPONENTS), name="component"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
        Index("ix_loan_due_loan_id_seq", "loan_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    loan_id: Mapped[int] = mapped_column(BigId)
    """The loan (checked by trigger ``trg_loan_due_references``, see below)."""
    seq: Mapped[int] = mapped_column(Integer)
    """Installment number, from 1."""
    component: Mapped[str] = mapped_column(String(16))
    """penalty, fee, interest or principal."""
    party: Mapped[str] = mapped_column(String(100))
    """Who is owed: an investor, a payer who compensated, or ``@platform``."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """Signed change of what is owed."""
    reason: Mapped[str] = mapped_column(String(16))
    """disburse, repay, accrue, compensate, transfer or waive."""
    entry_id: Mapped[int] = mapped_column(BigId)
    """The journal entry this movement belongs to (checked as ``loan_id`` is)."""
    effective_date: Mapped[dt.date] = mapped_column(Date())
    """Business date of the movement."""


class BalanceCheckpoint(Base):
    """An account's posted balance at the end of a closed period; written at close.

    A closed period never changes again, so a checkpoint stays exact: the
    balance as of any date is the nearest checkpoint plus (or minus) the
    postings between it and that date. Rows are never updated or deleted.
    """

    __tablename__ = "balance_checkpoint"
    __table_args__ = (
        Index("ix_balance_checkpoint_closed_period_id", "closed_period_id"),
    )

    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"), primary_key=True)
    """The book."""
    as_of_date: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    """The closed period's last effective date; the balance includes it."""
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    """The account (every account with postings on or before ``as_of_date``)."""
    closed_period_id: Mapped[int] = mapped_column(ForeignKey("closed_period.id"))
    """The close that wrote the checkpoint."""
    posted_minor: Mapped[int] = mapped_column(BigInteger)
    """Sum of the account's posted (not pending) postings through ``as_of_date``, debit positive."""


#: As-of reads sum the postings of a date range (between a checkpoint and the
#: date asked for); this index covers that query, so it reads no table rows.
Index("ix_posting_effective_date_account_id", Posting.effective_date, Posting.account_id,
      Posting.is_pending, Posting.amount_minor)


class ChainDay(Base):
    """For each effective date of a book, the last chain link among its entries.

    Kept by the sealer (one per book at a time, so no writer waits on it):
    ``last_seq`` only grows. A report as of a date finds its last entry and
    chain hash from these rows instead of from every entry up to the date.
    """

    __tablename__ = "chain_day"

    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"), primary_key=True)
    """The book."""
    effective_date: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    """An effective date with sealed entries."""
    last_seq: Mapped[int] = mapped_column(BigInteger)
    """The highest chain link among the book's entries of that date."""


RESOLUTION_ACTIONS = ("adjust", "accept-timing", "match-with")


class StatementFile(Base):
    """A bank statement file imported (by content hash)."""

    __tablename__ = "statement_file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book."""
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the file's bytes."""
    filename: Mapped[str] = mapped_column(String(255))
    """The file's name when imported."""
    format: Mapped[str] = mapped_column(String(16))
    """ofx, csv, camt053 or mt940."""
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time of the import."""
    lines_new: Mapped[int] = mapped_column(Integer)
    """Lines imported by this file."""
    lines_known: Mapped[int] = mapped_column(Integer)
    """Lines already imported from an earlier (overlapping) file."""


class BankLine(Base):
    """One line of a bank statement, with the bank's own text; append-only."""

    __tablename__ = "bank_line"
    __table_args__ = (
        # Unique exactly when the fingerprint is (it hashes the day and the reference too);
        # led by the day and the bank's serial, so a day's lines go in at the end of the key.
        Index("uq_bank_line_day_ref_fingerprint", "book_id", "booking_date",
              text("coalesce(bank_ref, '')"), "fingerprint", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book."""
    file_id: Mapped[int] = mapped_column(ForeignKey("statement_file.id"))
    """The file that first brought the line."""
    fingerprint: Mapped[str] = mapped_column(String(64))
    """Identity of the line across files (content plus occurrence within its file)."""
    account: Mapped[str] = mapped_column(String(64))
    """Bank account number of the statement."""
    booking_date: Mapped[dt.date] = mapped_column(Date())
    """Booking date in the bank's own time zone."""
    value_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    """Value date, when given."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """Signed amount: money into the custody account positive."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO code."""
    bank_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Bank reference / FITID / serial."""
    end_to_end_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """End-to-end reference or platform order id."""
    batch_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The bank's batch id when one line stands for a batch payout."""
    counterparty: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """Counterparty name or account."""
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The bank's description."""
    status: Mapped[str] = mapped_column(String(16))
    """booked or pending."""
    source_position: Mapped[str] = mapped_column(String(64))
    """Line number or entry index in the file."""
    raw: Mapped[str] = mapped_column(Text)
    """The raw source text of the line."""


class ReconRun(Base):
    """One reconciliation run of an account against a statement date."""

    __tablename__ = "recon_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    """The book."""
    account_code: Mapped[str] = mapped_column(String(255))
    """The ledger account reconciled (the custody bank)."""
    statement_date: Mapped[dt.date] = mapped_column(Date())
    """The statement's business day."""
    started_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """UTC time of the run."""
    summary_json: Mapped[str] = mapped_column(Text)
    """Counts, sums and the balance proof, as JSON."""


class ReconMatch(Base):
    """A match between bank line(s) and ledger posting(s), with the rule that made it."""

    __tablename__ = "recon_match"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_run.id"))
    """The run (or the resolution's run) that made it."""
    rule: Mapped[str] = mapped_column(String(32))
    """exact_reference, amount_date, batch, carried_forward or manual."""


class ReconMatchBank(Base):
    """A bank line consumed by a match (at most once, ever)."""

    __tablename__ = "recon_match_bank"

    match_id: Mapped[int] = mapped_column(ForeignKey("recon_match.id"))
    """The match."""
    bank_line_id: Mapped[int] = mapped_column(ForeignKey("bank_line.id"), primary_key=True)
    """The bank line."""


class ReconMatchPosting(Base):
    """A ledger posting consumed by a match (at most once, ever)."""

    __tablename__ = "recon_match_posting"

    match_id: Mapped[int] = mapped_column(ForeignKey("recon_match.id"))
    """The match."""
    posting_id: Mapped[int] = mapped_column(ForeignKey("posting.id"), primary_key=True)
    """The posting."""


class ReconBreak(Base):
    """A difference found by a run, naming both sides."""

    __tablename__ = "recon_break"
    # A run's breaks are read by run: the open ones, and those a run carries to the next.
    __table_args__ = (Index("ix_recon_break_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_run.id"))
    """The run that found it."""
    type: Mapped[str] = mapped_column(String(32))
    """in_bank_not_in_ledger, in_ledger_not_in_bank, amount_mismatch, duplicate, ..."""
    bank_line_ids: Mapped[str] = mapped_column(Text)
    """JSON list of the bank lines concerned."""
    posting_ids: Mapped[str] = mapped_column(Text)
    """JSON list of the ledger postings concerned."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """The amount at stake (bank side minus ledger side)."""
    detail_json: Mapped[str] = mapped_column(Text)
    """Everything else the engine said, as JSON."""


class ReconResolution(Base):
    """How finance staff resolved a break: who, when, why; append-only."""

    __tablename__ = "recon_resolution"
    __table_args__ = (
        UniqueConstraint("break_id"),
        CheckConstraint(_in("action", RESOLUTION_ACTIONS), name="action"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Surrogate key."""
    break_id: Mapped[int] = mapped_column(ForeignKey("recon_break.id"))
    """The break resolved (once)."""
    action: Mapped[str] = mapped_column(String(32))
    """adjust, accept-timing or match-with."""
    note: Mapped[str] = mapped_column(Text)
    """Why."""
    resolved_by: Mapped[str] = mapped_column(String(100))
    """Who."""
    resolved_at: Mapped[dt.datetime] = mapped_column(DateTime())
    """When (UTC)."""
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), nullable=True)
    """The adjusting entry, for ``adjust``."""
    match_id: Mapped[int | None] = mapped_column(ForeignKey("recon_match.id"), nullable=True)
    """The manual match, for ``match-with``."""
