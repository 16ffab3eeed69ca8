"""The normalized statement records every parser produces.

Design overview
---------------
Whatever the bank sent (OFX, the custody bank's CSV day file, camt.053,
MT940), a parser returns one :class:`ParsedFile`: the file's identity (name,
SHA-256, format) and a tuple of :class:`Statement` values, one per account
statement in the file. A statement holds its booked balances as
:class:`Balance` values and its lines as :class:`StatementLine` values.

All values are immutable. Money is a signed integer of the currency's minor
unit (fen for CNY): a credit to the custody account (money in) is positive,
a debit (money out) negative. Dates are business dates in the bank's own
time zone. Every line keeps the raw source text it came from and its
position in the file, so any break can be traced to the bank's own words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import NamedTuple, Optional

BOOKED = "booked"
PENDING = "pending"
#: Line statuses: only booked lines move the booked balance.
STATUSES = (BOOKED, PENDING)

PROVED = "proved"
UNPROVED = "unproved"
UNCHECKED = "unchecked"
#: Proof states of a statement: proved (opening + lines == closing), unproved
#: (the format gives no opening or no closing balance, so nothing can be
#: proved), unchecked (parsed with ``prove=False``).
PROOF_STATES = (PROVED, UNPROVED, UNCHECKED)

OFX = "ofx"
CSV = "csv"
CAMT053 = "camt053"
MT940 = "mt940"
#: Format names, as stored with an imported file.
FORMATS = (OFX, CSV, CAMT053, MT940)


class StatementLine(NamedTuple):
    """One money movement on the bank's statement, in the bank's own words.

    An immutable named tuple rather than a frozen dataclass: a day file can
    hold a million lines, and a tuple is built about eight times faster.

    Attributes:
      account: the bank account the statement is for (the custody account).
      booking_date: the day the bank booked the line, in the bank's time zone.
      value_date: the value date when the statement gives one, else None.
      amount_minor: signed minor units; a credit to the account (money in)
        is positive, a debit (money out) negative.
      currency: ISO 4217 code.
      bank_ref: the bank's own reference (serial number, FITID, account
        servicer reference), or None.
      end_to_end_ref: the payer's reference (the platform's order id, a SEPA
        end-to-end id), or None.
      counterparty: the other party's name and/or account, or None.
      description: the bank's description (memo, purpose, 摘要), or None.
      status: ``"booked"`` or ``"pending"``.
      source_file_sha256: SHA-256 (hex) of the file's bytes.
      source_position: where the line is in the file (``"line 12"``).
      raw: the raw source text of the line or entry.
      sub_account: the custody sub-account (子账户) the line concerns, or None.
      batch_id: the bank's batch id when one line stands for a batch
        (camt.053 batch entries keep the entry total), or None.
      balance_after_minor: the balance the bank states after this line, when
        the format gives one (the CSV day file), else None.
    """

    account: str
    booking_date: dt.date
    value_date: Optional[dt.date]
    amount_minor: int
    currency: str
    bank_ref: Optional[str]
    end_to_end_ref: Optional[str]
    counterparty: Optional[str]
    description: Optional[str]
    status: str
    source_file_sha256: str
    source_position: str
    raw: str
    sub_account: Optional[str] = None
    batch_id: Optional[str] = None
    balance_after_minor: Optional[int] = None


def line_fields(*names: str) -> itemgetter:
    """An ``itemgetter`` of :class:`StatementLine` fields, by name: a million lines read
    through it go faster than through their attributes."""
    return itemgetter(*map(StatementLine._fields.index, names))


@dataclass(frozen=True, slots=True)
class Balance:
    """A balance the bank states.

    Attributes:
      amount_minor: signed minor units (credit balance positive).
      currency: ISO 4217 code as the bank gives it.
      date: the day the balance is as of, or None.
      code: the bank's own name for it (``OPBD``, ``:60F:``, ``LEDGERBAL``,
        ``derived``).
      source_position: where it is in the file.
    """

    amount_minor: int
    currency: str
    date: Optional[dt.date]
    code: str
    source_position: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Statement:
    """One account statement: its balances and lines.

    Attributes:
      account: the bank account number (IBAN, ACCTID, :25:, 账号).
      currency: ISO 4217 code of the account.
      format: one of :data:`FORMATS`.
      filename: the file's name (or None for bytes given without a name).
      source_file_sha256: SHA-256 (hex) of the file's bytes.
      statement_id: the bank's id of the statement, or None.
      period_start: first day the statement covers, or None.
      period_end: last day the statement covers, or None.
      statement_date: the statement's business day (its last day).
      opening: the opening booked balance, or None when the format gives none.
      closing: the closing booked balance, or None when the format gives none.
      lines: the statement's lines, in file order.
      source_position: where the statement starts in the file.
      proof: one of :data:`PROOF_STATES`.
    """

    account: str
    currency: str
    format: str
    filename: Optional[str]
    source_file_sha256: str
    statement_id: Optional[str]
    period_start: Optional[dt.date]
    period_end: Optional[dt.date]
    statement_date: Optional[dt.date]
    opening: Optional[Balance]
    closing: Optional[Balance]
    lines: tuple[StatementLine, ...]
    source_position: Optional[str] = None
    proof: str = UNCHECKED

    @property
    def opening_balance_minor(self) -> Optional[int]:
        """The opening booked balance in minor units, or None."""
        return None if self.opening is None else self.opening.amount_minor

    @property
    def closing_balance_minor(self) -> Optional[int]:
        """The closing booked balance in minor units, or None."""
        return None if self.closing is None else self.closing.amount_minor

    @property
    def source_sha256(self) -> str:
        """Alias of :attr:`source_file_sha256`."""
        return self.source_file_sha256

    @property
    def label(self) -> str:
        """A short human name: account, bank id and day."""
        parts = [self.account or "(no account)"]
        if self.statement_id:
            parts.append(f"#{self.statement_id}")
        if self.statement_date:
            parts.append(self.statement_date.isoformat())
        return " ".join(parts)

    def with_proof(self, proof: str) -> "Statement":
        """The same statement with its proof state set."""
        return replace(self, proof=proof)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """Everything one statement file holds.

    Attributes:
      filename: the file's name (or None for bytes given without a name).
      sha256: SHA-256 (hex) of the file's bytes.
      format: one of :data:`FORMATS`.
      encoding: the text encoding the file was read with.
      statements: the statements, in file order.
    """

    filename: Optional[str]
    sha256: str
    format: str
    encoding: Optional[str]
    statements: tuple[Statement, ...]

    @property
    def lines(self) -> tuple[StatementLine, ...]:
        """Every line of every statement, in file order."""
        return tuple(line for s in self.statements for line in s.lines)


__all__ = ["StatementLine", "line_fields", "Balance", "Statement", "ParsedFile", "BOOKED", "PENDING",
           "STATUSES", "PROVED", "UNPROVED", "UNCHECKED", "PROOF_STATES", "OFX", "CSV",
           "CAMT053", "MT940", "FORMATS"]
