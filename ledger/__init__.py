"""Append-only double-entry ledger for custody-bank P2P lending platforms.

The public Python API::

    import ledger
    book = ledger.open()                      # sqlite:///ledger.db, or $LEDGER_DATABASE_URL
    book.open_account("assets:custody:bank", "asset")
    book.open_account("liabilities:users:u1:available", "liability", no_overdraft=True)
    entry = book.post([("assets:custody:bank", Decimal("100.00")),
                       ("liabilities:users:u1:available", Decimal("-100.00"))],
                      key="topup-B001", kind="top_up", external_ref="B001")
    book.balance("liabilities:users:u1:available")   # Decimal("100.00")
    book.verify().ok                                  # True

Amounts are signed, debit positive, Decimal (or int/str) in major units;
floats are refused. Every error is a :class:`LedgerError`.
"""

from .accounts import Account
from .book import Book, open_book as open
from .errors import *  # noqa: F401,F403  (the error hierarchy is public API)
from .errors import LedgerError
from .postings import Draft, Entry, PostingView
from .verify import Problem, VerifyReport

__version__ = "0.1.0"

__all__ = [
    "open", "Book", "Account", "Draft", "Entry", "PostingView", "Problem", "VerifyReport",
    "LedgerError", "__version__",
]
