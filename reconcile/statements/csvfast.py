"""The CSV day file read column by column: the fast path for clean files.

A custody bank's day file can hold a million lines. Read row by row, each
line costs a dict of cells, a dozen checks and as many function calls; read
column by column, the same work is a few passes of C-level ``map`` over
each column, a page of lines at a time.

This path only reads files it can read exactly as the row path does
(:func:`.csvday._line`): no quoted cells, no NUL, newline the only line
break, no blank or totals row, every row as wide as the header, amounts
plain (``1234.56``, and ``-`` for a signed amount or a balance), dates and
currencies valid. At the first thing it does not expect it returns None
and the row path reads the whole file again, naming every problem. The
tests parse the same files both ways and compare the results.
"""

from __future__ import annotations

import csv
import re
from itertools import repeat
from operator import mul
from sys import intern
from typing import Optional

from ledger.errors import LedgerError
from ledger.money import DEFAULT_CURRENCY, exponent

from .csvday import _date, _plain_minor
from .model import BOOKED, StatementLine

PAGE = 50_000
#: White space ``str.strip`` would remove, other than the line breaks.
_SPACE = re.compile(r"[^\S\r\n]")


_EXACT: dict = {}


def _exact(places: int, signed: bool):
    """A pattern for a column (joined by newlines) of amounts with exactly ``places``
    decimals: the usual form, read by dropping the point."""
    key = (places, signed)
    if key not in _EXACT:
        number = ("-?" if signed else "") + "[0-9]{1,18}" + (f"\\.[0-9]{{{places}}}" if places else "")
        _EXACT[key] = re.compile(f"(?:{number}\n)*")
    return _EXACT[key]


def _amounts(texts: list, currencies, single: Optional[str], signed: bool) -> Optional[list]:
    """Minor units of plain amounts that fit their currency's decimals; None if any does not.

    ``single`` is the one currency of the page, or None when ``currencies`` differ.
    """
    if single is not None:
        places = exponent(single)
        joined = "\n".join(texts)
        if _exact(places, signed).fullmatch(joined + "\n"):
            # Every amount has exactly ``places`` decimals: drop the points, read integers.
            return list(map(int, (joined.replace(".", "") if places else joined).split("\n")))
        currencies = repeat(single)
    out = list(map(_plain_minor, texts, currencies, repeat(signed)))
    return None if None in out else out


def _dates(texts: list, formats: tuple, optional: bool) -> Optional[list]:
    days = {}
    for text in set(texts):
        if optional and not text:
            days[text] = None
            continue
        day = _date(text, formats)
        if day is None:
            return None
        days[text] = day
    return list(map(days.__getitem__, texts))


def _strings(column: list) -> list:
    """Cells as the row path keeps them: text interned, empty cells None."""
    out = list(map(intern, column))
    if "" in out:
        out = [text or None for text in out]
    return out


def fast_lines(frame, index: dict, layout, default_account: Optional[str],
               sha: str) -> Optional[list]:
    """Every line of the file read column-wise, or None to send it down the row path."""
    if layout.amount_mode not in ("flag", "signed") or "date" not in index \
            or "bank_serial" not in index:
        return None
    if "account" not in index and not default_account:
        return None
    lines, start, width, delimiter, ends = frame
    if len(delimiter) != 1 or not start < len(lines):
        return None
    limit = csv.field_size_limit()
    out: list = []
    for first in range(start, len(lines), PAGE):
        page = lines[first:first + PAGE]
        text = ("" if ends else "\n").join(page)
        # A blank row has an empty bank serial, and is sent down the row path with the rest.
        if ('"' in text or "\x00" in text
                or ends and text.count("\r") != text.count("\r\n")   # (no "\r" at all otherwise)
                or any(p in text for p in layout.skip_prefixes)
                or max(map(len, page)) >= limit):
            return None
        # Lines split without their breaks are the raw text already.
        raws = list(map(str.rstrip, page, repeat("\r\n"))) if ends else page
        # Every row as wide as the header: then the page's cells, split in one go, are
        # its columns side by side, and a column is a slice.
        if set(map(str.count, raws, repeat(delimiter))) != {width - 1}:
            return None
        cells = delimiter.join(raws).split(delimiter)
        columns = [cells[k::width] for k in range(width)]
        del cells
        made = _page(columns, raws, first, index, layout, default_account, sha,
                     _SPACE.search(text) is not None)
        if made is None:
            return None
        out += made
    return out


def _page(columns: list, raws: list, first: int, index: dict, layout,
          default_account: Optional[str], sha: str, spaces: bool) -> Optional[list]:
    n = len(raws)

    def column(field: str) -> Optional[list]:
        """The field's cells, stripped as the row path strips them (a page without
        any white space but line breaks has nothing to strip)."""
        k = index.get(field)
        if k is None:
            return None
        return list(map(str.strip, columns[k])) if spaces else columns[k]

    accounts = column("account")
    if accounts is None:
        accounts = repeat(intern(default_account), n)
    else:
        if default_account:
            accounts = [a or default_account for a in accounts]
        elif not all(accounts):
            return None
        accounts = list(map(intern, accounts))

    fallback = layout.currency or DEFAULT_CURRENCY
    given = column("currency")
    if given is None:
        currencies, distinct = repeat(fallback.upper(), n), {fallback.upper()}
    else:
        currencies = [(c or fallback).upper() for c in given]
        distinct = set(currencies)
        currencies = list(map(intern, currencies))
    try:
        for currency in distinct:
            exponent(currency)
    except LedgerError:
        return None
    single = next(iter(distinct)) if len(distinct) == 1 else None

    booking = _dates(column("date"), layout.date_formats, optional=False)
    if booking is None:
        return None
    values = column("value_date")
    if values is not None:
        values = _dates(values, layout.date_formats, optional=True)
        if values is None:
            return None
    else:
        values = repeat(None, n)

    serials = column("bank_serial")
    if not all(serials):
        return None

    if layout.amount_mode == "signed":
        amounts = column("amount")
        minor = None if amounts is None else _amounts(amounts, currencies, single, True)
    else:
        amounts, flags = column("amount"), column("dc_flag")
        if amounts is None or flags is None:
            return None
        minor = _amounts(amounts, currencies, single, False)
        signs = list(map(layout.flag_signs.get, map(str.upper, flags)))
        if minor is not None and None not in signs:
            minor = list(map(mul, signs, minor))
        else:
            minor = None
    if minor is None:
        return None

    balances = column("balance_after")
    if balances is not None:
        balances = _amounts(balances, currencies, single, True)
        if balances is None:
            return None
    else:
        balances = repeat(None, n)

    names, others = column("counterparty"), column("counterparty_account")
    if names is not None and others is not None:
        counterparties = [(f"{a} {b}" if a and b else a or b) or None for a, b in zip(names, others)]
        counterparties = [c and intern(c) for c in counterparties]
    elif names is not None or others is not None:
        counterparties = _strings(names if names is not None else others)
    else:
        counterparties = repeat(None, n)

    orders = column("order_id")
    orders = [o or None for o in orders] if orders is not None else repeat(None, n)
    descriptions = column("description")
    descriptions = _strings(descriptions) if descriptions is not None else repeat(None, n)
    subs = column("sub_account")
    subs = _strings(subs) if subs is not None else repeat(None, n)
    positions = map("line {}".format, range(first + 1, first + 1 + n))
    # ``_make`` of zipped columns: a third cheaper than calling the class with 16 arguments.
    return list(map(StatementLine._make, zip(
        accounts, booking, values, minor, currencies, serials, orders, counterparties, descriptions,
        repeat(BOOKED), repeat(sha), positions, raws, subs, repeat(None), balances)))


__all__ = ["fast_lines"]
