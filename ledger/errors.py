"""The project's one error hierarchy.

Every error the library raises on purpose derives from :class:`LedgerError`
and carries structured fields, so callers (the CLI, the platform) can act on
them without parsing messages. Database integrity errors are translated into
this hierarchy by :mod:`ledger.postings`.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message


# --- money -------------------------------------------------------------------
class AmountError(LedgerError):
    """An amount that cannot be money: a float, garbage text, too many decimals."""


class FloatAmountError(AmountError):
    """A float was given where money was expected."""


class PrecisionError(AmountError):
    """An amount finer than the currency's minor unit (e.g. 0.001 CNY)."""


class UnknownCurrencyError(LedgerError):
    """A currency code the ledger does not know."""


# --- accounts ----------------------------------------------------------------
class AccountError(LedgerError):
    """Something is wrong with an account reference."""


class UnknownAccountError(AccountError):
    """The account code does not exist in this book."""


class ClosedAccountError(AccountError):
    """The account was closed and takes no new postings."""


class AccountExistsError(AccountError):
    """An account is being opened again with different attributes."""


class InvalidAccountError(AccountError):
    """A malformed account code or type."""


# --- postings ----------------------------------------------------------------
class PostingError(LedgerError):
    """A journal entry that cannot be posted."""


class UnbalancedEntryError(PostingError):
    """The postings of an entry do not sum to zero per currency."""


class CurrencyMismatchError(PostingError):
    """A posting's currency differs from its account's currency."""


class ZeroAmountError(PostingError):
    """A posting of zero carries no meaning and is refused."""


class InsufficientFundsError(PostingError):
    """A no-overdraft account would go below zero (pending holds included)."""


class IdempotencyConflictError(PostingError):
    """The key was used before with different content."""


class EntryNotFoundError(PostingError):
    """No entry with that id in this book."""


class PendingStateError(PostingError):
    """A pending entry is already committed or voided, or is not pending."""


class AlreadyReversedError(PostingError):
    """The entry was reversed before; an entry is reversed at most once."""


class ClosedPeriodError(PostingError):
    """The effective date falls in a closed period."""


class InputError(LedgerError):
    """Bad input from a file or the command line (names the line and field)."""


class IntegrityViolation(LedgerError):
    """The database refused a write because a ledger rule was broken."""


class ConcurrencyError(LedgerError):
    """A write kept failing on serialization conflicts past the retry limit."""


class PeriodCloseError(LedgerError):
    """A period cannot be closed: already closed, or not ended yet."""


class ReportError(LedgerError):
    """A report cannot be produced as asked, or its figures do not add up."""
