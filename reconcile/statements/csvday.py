"""The custody bank's CSV day file -> normalized records.

The default layout is documented in ``docs/csv-day-file.md``: UTF-8 or GBK
(with or without a byte-order mark), comma separated, one header row naming
the columns in Chinese or English, in any order:

    交易日期 date, 银行流水号 bank_serial, 平台订单号 order_id, 子账户 sub_account,
    对方户名 counterparty, 借贷标志 dc_flag (借/贷 or D/C), 金额 amount,
    余额 balance_after

and optionally 账号 account, 币种 currency, 摘要 description, 起息日 value_date,
对方账号 counterparty_account. Other banks' layouts are described by a JSON
column-mapping file (:mod:`.csvmapping`).

Every bad line is collected and reported in one
:class:`~.errors.StatementFormatError` (line, column, message), never just
the first. 贷 (credit) is money into the custody account, positive; 借
(debit) is money out, negative. When the file states the balance after
each line, the opening balance is the first line's balance before it, and
the proof then checks every following line's running balance.

A large clean file is read by a native CSV reader (:mod:`.csvarrow`), a
smaller or less usual one column by column in Python (:mod:`.csvfast`);
anything unusual sends the whole file down the row-by-row path here, which
names every problem. All give the same lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import operator
import re
from sys import intern
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Iterable, Iterator, NamedTuple, Optional

from ledger.errors import LedgerError
from ledger.money import DEFAULT_CURRENCY, exponent, to_minor

from .csvmapping import DEFAULT_LAYOUT, Layout, load_mapping
from .errors import Problem, StatementFormatError, money_reason
from .model import BOOKED, CSV, Balance, ParsedFile, Statement, StatementLine
from .source import DecodeFailed, codec_name, decode_text, sha256_hex

_DATE_PATTERNS = (
    re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T].*)?"),
    re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})(?:[ T].*)?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})(?:[ T]?\d{2}:?\d{2}(?::?\d{2})?)?"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日.*"),
)
_AMOUNT = re.compile(r"[+-]?\d+(\.\d+)?")
_MONEY_MARKS = str.maketrans("", "", ",，¥￥ ")
_CURRENCY_SIGNS = str.maketrans("", "", "¥￥")
#: Thousands separators (a comma, full-width or not, or a space) between groups of three.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?P<sep>[,， ])\d{3}(?:(?P=sep)\d{3})*(?:\.\d+)?")
_KNOWN_CURRENCIES: set = set()
# Tests set this to read every file row by row (the path that names problems),
# to prove the column-wise fast path (:mod:`.csvfast`) reads the same lines.
_ROW_BY_ROW = False
# Tests clear this to read clean files with the pure-Python column-wise path
# (:mod:`.csvfast`) instead of the native CSV reader (:mod:`.csvarrow`).
_ARROW = True
_ACCOUNT = operator.itemgetter(0)
_CURRENCY = operator.itemgetter(4)
_BOOKING_DATE = operator.itemgetter(1)
_BALANCE = operator.itemgetter(15)
# Line breaks other than "\n" and "\r\n" (str.splitlines splits at these too).
_OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _other_breaks(text: str) -> bool:
    """Whether ``text`` breaks lines anywhere but at "\n" (one scan per character)."""
    return (any(c in text for c in _OTHER_BREAKS)
            or "\r" in text and text.count("\r") != text.count("\r\n"))


@functools.lru_cache(maxsize=1024)
def _date(text: str, formats: tuple) -> Optional[dt.date]:
    """A date cell read with ``formats`` (strptime), or the built-in forms; None if not a date."""
    text = text.strip()
    if formats:
        for fmt in formats:
            try:
                value = dt.datetime.strptime(text, fmt)
            except ValueError:
                continue
            # Digits with nothing between them must fill their fields: strptime reads
            # "2026112" with "%Y%m%d" as 2 November, where a digit is missing.
            if text.isdigit() and value.strftime(fmt) != text:
                continue
            return value.date()
        return None
    for pattern in _DATE_PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return None
    return None


def _decimal(text: str) -> Optional[Decimal]:
    cleaned = text
    if not _AMOUNT.fullmatch(text):  # thousands separators, a currency sign
        cleaned = text.translate(_CURRENCY_SIGNS).strip()
        if not _AMOUNT.fullmatch(cleaned):
            if not _GROUPED.fullmatch(cleaned):   # "1,00" is not 100
                return None
            cleaned = cleaned.translate(_MONEY_MARKS)
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def _decode(data: bytes, layout: Layout, file: Optional[str]) -> tuple[str, str]:
    wanted = codec_name(layout.encoding) if layout.encoding != "auto" else None
    try:
        text, encoding, _ = decode_text(data, [wanted] if wanted else ["utf-8", "gb18030"])
    except DecodeFailed as exc:
        raise StatementFormatError.collected(
            [Problem(None, "encoding", f"{exc} (the day file is UTF-8 or GBK)")],
            file=file) from None
    return text, encoding


class _Row(NamedTuple):
    """One data row: its cells by field (stripped), first line number and raw text."""

    cells: dict
    line: int
    raw: str


class _Frame(NamedTuple):
    """Where the data rows are: the physical lines, the index of the first data line,
    the row width, the cell separator, and whether the lines keep their breaks
    (False: every break was a bare "\n", taken off when the text was split)."""

    lines: list
    start: int
    width: int
    delimiter: str
    ends: bool = True


def _split_lines(text: str) -> tuple[list, bool]:
    """The text's physical lines and whether they keep their breaks.

    When every break is a bare "\n" (the usual day file) the lines are split without
    them: a line is then its raw text as it is, not a copy with the break stripped,
    which a million-line file would pay for in memory. Otherwise the text is split after
    each "\n" and every line keeps its break ("\n" or "\r\n"); a lone "\r" or another
    break character stays inside its line, as the csv module reads it."""
    if "\r" not in text and not any(c in text for c in _OTHER_BREAKS):
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()   # the text ended with a break: no line after it
        return lines, False
    if not _other_breaks(text):
        return text.splitlines(True), True   # the same split, far cheaper, when "\n" ends every line
    lines = re.split(r"(?<=\n)", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, True


def _with_breaks(lines: list, ends: bool) -> Iterable[str]:
    """The lines as the csv module reads them: each with its break."""
    return iter(lines) if ends else map(str.__add__, lines, repeat("\n"))


def _rows(text: str, layout: Layout, problems: list[Problem]) -> tuple[dict, Iterator[_Row], Optional[_Frame]]:
    """The column index of each field, an iterator over the data rows (with their line
    numbers and raw text), read one at a time so that a large file is never held as rows
    and as lines at once, and the rows' frame. Problems found on the way are added to
    ``problems``."""
    lines, ends = _split_lines(text)
    start = layout.header_line or next(
        (i + 1 for i, line in enumerate(lines) if line.strip()), 1)
    delimiter = layout.delimiter
    if delimiter is None:
        head = lines[start - 1] if start <= len(lines) else ""
        delimiter = "\t" if "\t" in head and "," not in head else ","
    reader = csv.reader(_with_breaks(lines[start - 1:], ends), delimiter=delimiter, strict=True)
    offset = start - 1
    if not layout.has_header:
        index = layout.columns_by_number(problems)
        if not index:
            return {}, iter(()), None
        width = max(index.values()) + 1
        return (index, _data_rows(reader, lines, ends, offset, 0, index, width, layout, problems),
                _Frame(lines, offset, width, delimiter, ends))
    try:
        for record in reader:
            index = layout.columns_from_header(record, offset + 1, problems)
            if not index:
                return {}, iter(()), None
            return (index, _data_rows(reader, lines, ends, offset, reader.line_num, index,
                                      len(record), layout, problems),
                    _Frame(lines, offset + reader.line_num, len(record), delimiter, ends))
    except csv.Error as exc:
        problems.append(Problem(offset + reader.line_num, "row", f"not readable CSV: {exc}"))
        return {}, iter(()), None
    problems.append(Problem(None, "header", "the file is empty: no header row"))
    return {}, iter(()), None


def _data_rows(reader, lines: list, ends: bool, offset: int, consumed: int, index: dict,
               width: int, layout: Layout, problems: list[Problem]) -> Iterator[_Row]:
    skips = bool(layout.skip_prefixes)
    fields = tuple(index)
    getter = operator.itemgetter(*index.values())
    single = len(fields) == 1
    strip = str.strip
    try:
        for record in reader:
            first, consumed = offset + consumed + 1, reader.line_num
            if not "".join(record).strip() or skips and layout.skips(record):
                continue
            if len(record) != width and (len(record) < width or layout.has_header
                                         and "".join(record[width:]).strip()):
                problems.append(Problem(first, "row",
                                        f"{len(record)} cells where the header has {width}"))
                continue
            last = offset + consumed
            raw = lines[first - 1] if last == first else ("" if ends else "\n").join(
                lines[first - 1:last])
            values = getter(record)
            if single:
                values = (values,)
            yield _Row(dict(zip(fields, map(strip, values))), first, raw.rstrip("\r\n"))
    except csv.Error as exc:
        problems.append(Problem(offset + reader.line_num, "row", f"not readable CSV: {exc}"))


def parse_csv_day(data: bytes, *, filename: Optional[str] = None,
                  sha256: Optional[str] = None, mapping=None,
                  account: Optional[str] = None) -> ParsedFile:
    """Every statement (one per account and currency) of a CSV day file.

    ``mapping`` is a column-mapping file (path), its parsed JSON (dict) or a
    :class:`~.csvmapping.Layout`; None means the documented default layout.
    ``account`` names the custody account when neither the file nor the
    mapping does.
    """
    sha = sha256 or sha256_hex(data)
    layout = DEFAULT_LAYOUT if mapping is None else load_mapping(mapping, file=filename)
    text, encoding = _decode(data, layout, filename)
    problems: list[Problem] = []
    index, rows, frame = _rows(text, layout, problems)
    if problems:
        raise StatementFormatError.collected(problems, file=filename)
    default_account = account or layout.account
    if "account" not in index and not default_account:
        raise StatementFormatError.collected(
            [Problem(None, "account", "the file names no account: add an account (账号) "
                                      "column, or give the account in the mapping file")],
            file=filename)
    present = frozenset(index)
    arrow = None
    if frame is not None and not _ROW_BY_ROW and _ARROW:
        from .csvarrow import arrow_rows
        arrow = arrow_rows(data, text, encoding, frame, index, layout, default_account)
    del text   # held as lines from here on: a large file's text is not kept twice
    lines = None
    if arrow is not None:
        from .csvarrow import arrow_lines
        lines = arrow_lines(arrow, frame, layout, default_account, sha)
    if lines is None and frame is not None and not _ROW_BY_ROW:
        from .csvfast import fast_lines
        lines = fast_lines(frame, index, layout, default_account, sha)
    if lines is None:  # the row path: every problem found and named
        lines = [line for row in rows
                 if (line := _line(row, layout, present, default_account, sha, problems)) is not None]
    if problems:
        raise StatementFormatError.collected(problems, file=filename)
    groups: dict = {}
    if lines and len(set(map(_ACCOUNT, lines))) == 1 and len(set(map(_CURRENCY, lines))) == 1:
        groups[(lines[0].account, lines[0].currency)] = lines   # the usual file: one statement
    else:
        for line in lines:
            groups.setdefault((line.account, line.currency), []).append(line)
    if not groups and default_account:
        groups[(default_account, layout.currency or DEFAULT_CURRENCY)] = []
    statements = tuple(_statement(acct, cur, tuple(group), filename, sha)
                       for (acct, cur), group in groups.items())
    return ParsedFile(filename, sha, CSV, encoding, statements)


def _line(row: _Row, layout: Layout, present: frozenset, default_account, sha: str,
          problems: list[Problem]) -> Optional[StatementLine]:
    before = len(problems)
    cells = row.cells
    get = cells.get

    def bad(field: str, message: str) -> None:
        problems.append(Problem(row.line, field, message))

    account = get("account") or default_account
    if not account:
        bad("account", "is empty")
    currency = (get("currency") or layout.currency or DEFAULT_CURRENCY).upper()
    if currency not in _KNOWN_CURRENCIES:
        try:
            exponent(currency)
            _KNOWN_CURRENCIES.add(currency)
        except LedgerError as exc:
            bad("currency", money_reason(exc))
            currency = None
    formats = layout.date_formats
    booking = _date(get("date", ""), formats)
    if booking is None:
        bad("date", f"{get('date', '')!r} is not a date")
    value_date = None
    if get("value_date"):
        value_date = _date(cells["value_date"], formats)
        if value_date is None:
            bad("value_date", f"{cells['value_date']!r} is not a date")
    serial = get("bank_serial")
    if not serial:
        bad("bank_serial", "is empty: every line needs the bank's serial number")
    minor = _amount(cells, layout, currency, bad)
    balance = None
    if "balance_after" in present:
        balance = _minor("balance_after", get("balance_after", ""), currency, False, bad)
    if len(problems) > before:
        return None
    name, other = get("counterparty"), get("counterparty_account")
    counterparty = (f"{name} {other}" if name and other else name or other) or None
    # Accounts, counterparties, descriptions and sub-accounts repeat from line to
    # line: one string each instead of one per line keeps a large file small.
    description, sub_account = get("description"), get("sub_account")
    return StatementLine(intern(account), booking, value_date, minor, currency, serial,
                         get("order_id") or None, counterparty and intern(counterparty),
                         description and intern(description) or None, BOOKED, sha,
                         f"line {row.line}", row.raw, sub_account and intern(sub_account) or None,
                         None, balance)


_PLAIN_AMOUNT = re.compile(r"(-?)([0-9]{1,18})(?:\.([0-9]+))?")
_EXPONENTS: dict = {}


def _plain_minor(text: str, currency: str, signed: bool = False) -> Optional[int]:
    """Minor units of a plain amount (``1234.5``, and ``-1234.5`` when ``signed``) that
    fits the currency's decimals exactly, by integer arithmetic; None sends it down the
    full path."""
    places = _EXPONENTS.get(currency)
    if places is None:
        places = _EXPONENTS[currency] = exponent(currency)
    m = _PLAIN_AMOUNT.fullmatch(text)
    if m is None:
        return None
    sign, whole, fraction = m.groups()
    if sign and not signed:
        return None
    value = int(whole) * 10 ** places
    if fraction:
        if len(fraction) > places:
            return None
        value += int(fraction) * 10 ** (places - len(fraction))
    return -value if sign else value


def _minor(field: str, text: str, currency: Optional[str], unsigned: bool, bad) -> Optional[int]:
    """An amount cell in minor units (None, reported, when it is not one)."""
    if currency is not None and text:
        minor = _plain_minor(text, currency)
        if minor is not None:
            return minor
    value = _decimal(text) if text else None
    if value is None or unsigned and value.is_signed():   # ("¥-5.00" and "-0.00" too)
        bad(field, f"{text!r} is not an unsigned amount" if unsigned and value is not None
            else f"{text!r} is not an amount" if text else "is empty")
        return None
    if currency is None:
        return None
    try:
        return to_minor(value, currency, what="value")
    except LedgerError as exc:
        bad(field, money_reason(exc))
        return None


def _amount(cells: dict, layout: Layout, currency: Optional[str], bad) -> Optional[int]:
    """The signed amount in minor units, credit (money in) positive; every problem reported."""
    get = cells.get
    mode = layout.amount_mode
    if mode == "split":
        given = [(sign, _minor(field, cells[field], currency, True, bad))
                 for field, sign in (("debit_amount", -1), ("credit_amount", 1)) if get(field)]
        if any(value is None for _, value in given):
            return None
        values = [sign * value for sign, value in given if value != 0]
        if len(values) != 1:
            bad("amount", "give a debit or a credit amount, not both" if values
                else "neither a debit nor a credit amount")
            return None
        return values[0]
    if mode == "signed":
        return _minor("amount", get("amount", ""), currency, False, bad)
    value = _minor("amount", get("amount", ""), currency, True, bad)
    flag = get("dc_flag", "")
    sign = layout.flag_signs.get(flag.upper())
    if sign is None:
        bad("dc_flag", f"{flag!r} is neither a credit flag ({'/'.join(layout.credit_flags)}) "
                       f"nor a debit flag ({'/'.join(layout.debit_flags)})")
        return None
    return None if value is None else sign * value


def _statement(account: str, currency: str, lines: tuple, filename, sha) -> Statement:
    opening = closing = None
    if lines and None not in map(_BALANCE, lines):   # (no int equals None)
        first, last = lines[0], lines[-1]
        opening = Balance(first.balance_after_minor - first.amount_minor, currency,
                          first.booking_date, "derived: balance before the first line",
                          first.source_position)
        closing = Balance(last.balance_after_minor, currency, last.booking_date,
                          "balance_after", last.source_position)
    days = set(map(_BOOKING_DATE, lines))   # a day file's lines share a day or two
    start, end = (min(days), max(days)) if days else (None, None)
    return Statement(account=account, currency=currency, format=CSV, filename=filename,
                     source_file_sha256=sha, statement_id=None, period_start=start,
                     period_end=end, statement_date=end, opening=opening, closing=closing,
                     lines=lines, source_position=lines[0].source_position if lines else None)


__all__ = ["parse_csv_day"]
