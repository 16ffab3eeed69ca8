"""The chart of accounts: types, normal sides, codes; open, close, look up.

Codes are hierarchical, colon separated, segments of ASCII letters, digits,
``_``, ``-`` and ``.`` (``liabilities:users:u1:available``); the first
segment names the type by convention and is lower case. Each
account has one type and one currency. The type fixes the normal side:
assets, expenses and memo accounts are debit-normal; liabilities, equity and
income are credit-normal. Balances are shown on the normal side.

Functions here take an open connection and never commit on their own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from . import models as m
from .errors import (
    AccountExistsError,
    ClosedAccountError,
    InvalidAccountError,
    UnknownAccountError,
)
from .money import DEFAULT_CURRENCY, exponent

DEBIT_NORMAL = frozenset({"asset", "expense", "memo"})
CREDIT_NORMAL = frozenset({"liability", "equity", "income"})
ACCOUNT_TYPES = tuple(m.ACCOUNT_TYPES)

#: Type implied by a code's first segment, when the caller gives none.
PREFIX_TYPES = {
    "assets": "asset", "asset": "asset",
    "liabilities": "liability", "liability": "liability",
    "equity": "equity",
    "income": "income", "revenue": "income",
    "expenses": "expense", "expense": "expense",
    "memo": "memo",
}

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the ledger sees it.

    Attributes:
        id: database id.
        code: hierarchical code.
        type: asset, liability, equity, income, expense or memo.
        currency: ISO 4217 code.
        no_overdraft: the balance net of holds never goes below zero.
        name: optional description.
        opened_at: UTC time opened.
        closed_at: UTC time closed, or None while open.
    """

    id: int
    code: str
    type: str
    currency: str
    no_overdraft: bool
    name: str | None
    opened_at: dt.datetime
    closed_at: dt.datetime | None

    @property
    def sign(self) -> int:
        """+1 for debit-normal accounts, -1 for credit-normal ones."""
        return normal_sign(self.type)

    @property
    def is_closed(self) -> bool:
        """True once the account was closed."""
        return self.closed_at is not None


def normal_sign(account_type: str) -> int:
    """+1 when the type's normal side is debit, -1 when it is credit."""
    if account_type in DEBIT_NORMAL:
        return 1
    if account_type in CREDIT_NORMAL:
        return -1
    raise InvalidAccountError(
        f"unknown account type {account_type!r}; one of {', '.join(ACCOUNT_TYPES)}",
        type=account_type,
    )


def is_segment(text: str) -> bool:
    """Whether ``text`` can be one segment of an account code (letters, digits, ``_``,
    ``-`` and ``.``, not starting with ``-`` or ``.``): what an id that names accounts
    (a user, a loan number) must be."""
    return isinstance(text, str) and _SEGMENT.match(text) is not None and "\n" not in text


def validate_code(code: str) -> str:
    """Return ``code`` if it is a well-formed account code, else raise."""
    if not isinstance(code, str) or not code:
        raise InvalidAccountError(f"account code must be a non-empty string, got {code!r}", code=code)
    if len(code) > 255:
        raise InvalidAccountError("account code longer than 255 characters", code=code)
    for segment in code.split(":"):
        if not _SEGMENT.match(segment):
            raise InvalidAccountError(
                f"account code {code!r}: segment {segment!r} must be letters, digits, "
                "'_', '-' or '.'",
                code=code,
            )
    return code


def infer_type(code: str) -> str:
    """The account type implied by the code's first segment."""
    first = code.split(":", 1)[0]
    try:
        return PREFIX_TYPES[first]
    except KeyError:
        raise InvalidAccountError(
            f"cannot infer the type of {code!r}; give one of {', '.join(ACCOUNT_TYPES)}",
            code=code,
        ) from None


def _row_to_account(row) -> Account:
    return Account(
        id=row.id, code=row.code, type=row.type, currency=row.currency,
        no_overdraft=bool(row.is_no_overdraft), name=row.name,
        opened_at=row.opened_at, closed_at=row.closed_at,
    )


_ACCOUNT_COLUMNS = (
    m.Account.id, m.Account.code, m.Account.type, m.Account.currency,
    m.Account.is_no_overdraft, m.Account.name, m.Account.opened_at, m.Account.closed_at,
)


def open_account(conn: Connection, book_id: int, code: str, type: str | None = None, *,
                 currency: str = DEFAULT_CURRENCY, no_overdraft: bool = False,
                 name: str | None = None, now: dt.datetime | None = None) -> Account:
    """Open an account; opening it again with the same attributes returns it."""
    validate_code(code)
    type = type or infer_type(code)
    normal_sign(type)
    if not isinstance(currency, str):
        raise InvalidAccountError(f"account {code}: currency must be an ISO code string, "
                                  f"got {currency!r}", code=code)
    if not isinstance(no_overdraft, bool):   # "no" is a non-empty string
        raise InvalidAccountError(f"account {code}: no_overdraft must be True or False, "
                                  f"got {no_overdraft!r}", code=code)
    currency = currency.upper()
    exponent(currency)
    existing = find_account(conn, book_id, code)
    if existing is not None:
        if (existing.type, existing.currency, existing.no_overdraft) != (type, currency, no_overdraft):
            raise AccountExistsError(
                f"account {code} exists as {existing.type} {existing.currency}"
                f"{' no-overdraft' if existing.no_overdraft else ''}; "
                f"cannot open it as {type} {currency}{' no-overdraft' if no_overdraft else ''}",
                code=code,
            )
        return existing
    now = now or utcnow()
    try:
        with conn.begin_nested():
            account_id = conn.execute(
                insert(m.Account).values(
                    book_id=book_id, code=code, type=type, currency=currency,
                    is_no_overdraft=no_overdraft, name=name, opened_at=now,
                ).returning(m.Account.id)
            ).scalar_one()
            if no_overdraft:
                conn.execute(insert(m.AccountBalance).values(
                    account_id=account_id, posted_minor=0, held_minor=0))
    except IntegrityError:
        # Opened concurrently by someone else: same rule as above.
        return open_account(conn, book_id, code, type, currency=currency,
                            no_overdraft=no_overdraft, name=name, now=now)
    return Account(account_id, code, type, currency, no_overdraft, name, now, None)


def find_account(conn: Connection, book_id: int, code: str) -> Account | None:
    """The account with ``code``, or None."""
    row = conn.execute(
        select(*_ACCOUNT_COLUMNS).where(m.Account.book_id == book_id, m.Account.code == code)
    ).first()
    return _row_to_account(row) if row else None


def get_account(conn: Connection, book_id: int, code: str) -> Account:
    """The account with ``code``; raises :class:`UnknownAccountError`."""
    account = find_account(conn, book_id, code)
    if account is None:
        validate_code(code)   # a code no account can have is bad input, not a missing account
        raise UnknownAccountError(f"unknown account {code!r}", code=code)
    return account


_BY_CODES_PG = ("SELECT id, code, type, currency, is_no_overdraft, name, opened_at, closed_at "
                "FROM account WHERE book_id = %s AND code = ANY(%s)")


def get_accounts(conn: Connection, book_id: int, codes: Iterable[str]) -> dict[str, Account]:
    """Look up many accounts at once; raises naming every unknown code."""
    wanted = sorted(set(codes))
    found: dict[str, Account] = {}
    if conn.dialect.driver == "psycopg2":
        # one query however many codes, the codes as one array parameter (an IN list of
        # hundreds of parameters costs more to build than to run)
        for row in conn.exec_driver_sql(_BY_CODES_PG, (book_id, wanted)):
            found[row[1]] = Account(row[0], row[1], row[2], row[3], bool(row[4]), *row[5:])
    else:
        for start in range(0, len(wanted), 500):
            rows = conn.execute(select(*_ACCOUNT_COLUMNS).where(
                m.Account.book_id == book_id, m.Account.code.in_(wanted[start:start + 500])))
            for row in rows:
                found[row.code] = _row_to_account(row)
    missing = [c for c in wanted if c not in found]
    if missing:
        for code in missing:   # a code no account can have is bad input, not a missing account
            validate_code(code)
        raise UnknownAccountError(
            f"unknown account{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            code=missing[0], codes=missing,
        )
    return found


def list_accounts(conn: Connection, book_id: int, prefix: str | None = None,
                  include_closed: bool = True) -> list[Account]:
    """Accounts of the book ordered by code, optionally under a code prefix."""
    query = select(*_ACCOUNT_COLUMNS).where(m.Account.book_id == book_id)
    if prefix:
        query = query.where(
            (m.Account.code == prefix) | m.Account.code.startswith(prefix.rstrip(":") + ":")
        )
    if not include_closed:
        query = query.where(m.Account.closed_at.is_(None))
    return [_row_to_account(r) for r in conn.execute(query.order_by(m.Account.code))]


def close_account(conn: Connection, book_id: int, code: str, balance_minor: int,
                  pending_minor: int, now: dt.datetime | None = None) -> Account:
    """Close an account whose balance and pending holds are zero."""
    account = get_account(conn, book_id, code)
    if account.is_closed:
        raise ClosedAccountError(f"account {code} is already closed", code=code)
    if balance_minor or pending_minor:
        raise ClosedAccountError(
            f"account {code} cannot be closed: its balance or pending amount is not zero",
            code=code, balance_minor=balance_minor, pending_minor=pending_minor,
        )
    now = now or utcnow()
    conn.execute(update(m.Account).where(m.Account.id == account.id).values(closed_at=now))
    return get_account(conn, book_id, code)


def check_postable(accounts: Sequence[Account]) -> None:
    """Raise if any of the accounts is closed."""
    for account in accounts:
        if account.is_closed:
            raise ClosedAccountError(f"account {account.code} is closed", code=account.code)


def utcnow() -> dt.datetime:
    """Current UTC time, naive, to the microsecond (how ``*_at`` columns store it)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
