"""The CSV day file read by a native CSV reader (pyarrow): the fastest path for clean files.

Splitting a million lines into cells is work a native, multi-threaded CSV
reader does far better than Python code. This path hands the data rows to
``pyarrow.csv`` with every column read as text (never as a float), then
turns the columns into :class:`~.model.StatementLine` values:

- the columns that repeat from line to line (account, dates, currency,
  debit/credit flag, counterparty, description, sub-account) are read
  dictionary-encoded, so each distinct value is converted (stripped, read
  as a date, a flag sign or a currency) once in Python, and every line
  shares its one object;
- amounts are checked to be plain (``1234.56``: the currency's exact number
  of decimals, at most 18 digits) by a regular expression over the whole
  column, then read as exact integer minor units by dropping the point and
  casting the text to a 64-bit integer;
- only the values a line needs as its own (the bank serial, the order id,
  the position and the raw text) become one Python string per line.

It reads a file only when it can read it exactly as the row path does
(:func:`.csvday._line`): no quote, no NUL, every line break a newline (or
every one a CRLF), no blank or totals row, every row as wide as the header,
amounts plain, flags, dates and currencies valid, all currencies of the
file with the same number of decimals, the ``flag`` or ``signed`` amount
mode. At anything else it returns None and the file goes down the
pure-Python column-wise path (:mod:`.csvfast`), then the row path, which
names every problem. The tests parse the same files every way and compare
the results.
"""

from __future__ import annotations

import codecs
import csv
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from sys import intern
from typing import Optional

from ledger.errors import LedgerError
from ledger.money import DEFAULT_CURRENCY, exponent

from .csvday import _OTHER_BREAKS, _date, _other_breaks
from .model import BOOKED, StatementLine

#: Files with fewer data lines than this are left to :mod:`.csvfast` (loading pyarrow and
#: starting its threads costs more than it saves on a small file). Tests set it to 0.
MIN_LINES = 20_000
#: Bytes per block the reader parses at a time (a block per thread).
BLOCK_SIZE = 8 << 20
#: Every character ``str.strip`` removes (``str.isspace``); a test checks the list.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
#: Fields read dictionary-encoded: few distinct values, each converted once.
REPEATING = ("account", "date", "value_date", "currency", "dc_flag", "counterparty",
             "counterparty_account", "description", "sub_account")
#: Fields read as plain text: a distinct value (nearly) every line.
PLAIN = ("bank_serial", "order_id", "amount", "balance_after")


def _body(data: bytes, text: str, encoding: str, frame):
    """The UTF-8 bytes of the data rows (from the frame's first data line), or None.

    For a UTF-8 (or ASCII) file they are a view of the file's own bytes, not a copy."""
    lines, start, ends = frame.lines, frame.start, frame.ends
    if encoding in ("utf-8", "ascii"):
        offset = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        head = (("" if ends else "\n").join(lines[:start]) + ("" if ends else "\n")
                if start else "")
        offset += len(head.encode("utf-8"))
        if start and data[offset - 1:offset] != b"\n":
            return None
        return memoryview(data)[offset:]
    characters = sum(map(len, lines[:start])) + (0 if ends else start)
    try:
        return memoryview(text[characters:].encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _clean(body: memoryview, text: str, frame, layout) -> bool:
    """Whether nothing in the rows needs the csv module's reading (or the row path's):
    no quote, no NUL, no break but "\\n" or "\\r\\n", no totals row, a delimiter the
    reader takes."""
    data = body.obj   # bytes.find on the whole object from the view's start: no copy
    begin = len(data) - len(body)
    if data.find(b'"', begin) != -1 or data.find(b"\x00", begin) != -1:
        return False
    if frame.ends and _other_breaks(text):
        return False   # a lone "\r" or another break character: the csv module's business
    delimiter = frame.delimiter
    if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n' + _OTHER_BREAKS:
        return False   # (the reader splits at one ASCII character)
    return not any(p in text for p in layout.skip_prefixes)


def _read(body: memoryview, width: int, delimiter: str, wanted: dict):
    """The rows read by pyarrow: wanted fields (field -> column index) as text, or None."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{k}" for k in range(width)]
    repeating = pa.dictionary(pa.int32(), pa.string())
    types = {f"c{k}": (repeating if field in REPEATING else pa.string())
             for field, k in wanted.items()}
    try:
        return pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False,
                                             double_quote=False, escape_char=False,
                                             newlines_in_values=False,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=sorted(types), null_values=[],
                true_values=[], false_values=[], strings_can_be_null=False,
                quoted_strings_can_be_null=False))
    except pa.ArrowException:
        return None   # a row of another width, and the like: not for this path


class _Repeating:
    """A dictionary-encoded column: its distinct texts and each row's index into them."""

    def __init__(self, column):
        import numpy as np
        import pyarrow as pa

        column = column.unify_dictionaries() if column.num_chunks > 1 else column
        chunks = column.chunks
        if chunks:
            self.texts = chunks[0].dictionary.to_pylist()
            self.codes = pa.chunked_array([c.indices for c in chunks],
                                          type=chunks[0].indices.type).to_numpy()
        else:
            self.texts, self.codes = [], np.zeros(0, dtype=np.int32)
        self._np = np

    def values(self, convert) -> tuple:
        """``convert`` of each distinct (stripped) text, in dictionary order."""
        return tuple(convert(text.strip()) for text in self.texts)

    def take(self, values, n: int):
        """Each row's value from the per-text ``values``: a list, or ``repeat`` when one."""
        if len(set(map(id, values))) == 1:   # the same object for every row
            return repeat(values[0], n) if values else []
        table = self._np.empty(len(values), dtype=object)
        table[:] = values
        return table[self.codes].tolist()


class ArrowRows:
    """The data rows as pyarrow read them, for :func:`arrow_lines` (which drops the table
    as soon as its columns are converted, so it is not held while the lines are built).

    Attributes:
      table: the columns as text, named ``c<column index>``.
      index: field -> column index, for the fields read.
      positions: each row's position in the file (``"line 12"``).
    """

    __slots__ = ("table", "index", "positions")

    def __init__(self, table, index: dict, positions: list):
        self.table = table
        self.index = index
        self.positions = positions


def arrow_rows(data: bytes, text: str, encoding: str, frame, index: dict, layout,
               default_account: Optional[str]) -> Optional[ArrowRows]:
    """The file's data rows read by pyarrow, or None when this path cannot read the file
    exactly as the row path does (it then goes down the other paths)."""
    lines, start, width, delimiter, ends = frame
    n = len(lines) - start
    if n < max(MIN_LINES, 1) or layout.amount_mode not in ("flag", "signed"):
        return None
    if "date" not in index or "bank_serial" not in index or "amount" not in index:
        return None
    if layout.amount_mode == "flag" and "dc_flag" not in index:
        return None
    if "account" not in index and not default_account:
        return None
    if not layout.has_header:   # longer rows are read; all as long as the first
        width = max(width, lines[start].count(delimiter) + 1)
    wanted = {field: k for field, k in index.items() if field in REPEATING or field in PLAIN}
    if max(wanted.values()) >= width or len(set(wanted.values())) != len(wanted):
        return None   # a column past the row's end, or one column read as two fields
    body = _body(data, text, encoding, frame)
    if body is None or not _clean(body, text, frame, layout):
        return None
    with ThreadPoolExecutor(1) as worker:   # the reader releases the GIL meanwhile
        reading = worker.submit(_read, body, width, delimiter, wanted)
        # No cell longer than the csv module's limit (the header's neither) ...
        fits = max(map(len, lines)) < csv.field_size_limit()
        # ... and the lines' positions, made while the reader works.
        positions = [f"line {k}" for k in range(start + 1, start + 1 + n)] if fits else None
        table = reading.result()
    if not fits or table is None or table.num_rows != n:
        return None   # not one row per line: blank lines, say
    return ArrowRows(table, wanted, positions)


def arrow_lines(rows: ArrowRows, frame, layout, default_account: Optional[str],
                sha: str) -> Optional[list]:
    """Every line of the file from its rows read by :func:`arrow_rows`, or None to send
    the file down the other paths."""
    import pyarrow as pa

    table, rows.table = rows.table, None
    positions, rows.positions = rows.positions, None
    lines, start, ends = frame.lines, frame.start, frame.ends
    try:
        columns = _columns(table, rows.index, layout, default_account)
    except (_Refused, pa.ArrowException):
        return None
    del table
    _release()
    raws = list(map(str.rstrip, lines[start:], repeat("\r\n"))) if ends else lines[start:]
    (accounts, booking, values, minor, currencies, serials, orders, counterparties,
     descriptions, subs, balances) = columns
    del columns
    return list(map(tuple.__new__, repeat(StatementLine), zip(   # (no call of the class)
        accounts, booking, values, minor, currencies, serials, orders, counterparties,
        descriptions, repeat(BOOKED), repeat(sha), positions, raws, subs, repeat(None),
        balances)))


def _release() -> None:
    """Give the memory pyarrow freed back to the system (its allocator keeps freed memory
    for reuse: a hundred megabytes and more after a large file)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


class _Refused(Exception):
    """A value this path does not read exactly as the row path does."""


def _plain_column(table, index: dict, field: str):
    """A plain text column stripped as the row path strips cells, or None if absent."""
    import pyarrow.compute as pc

    k = index.get(field)
    if k is None:
        return None
    return pc.utf8_trim(table.column(f"c{k}"), WHITESPACE)


def _strings(column):
    """Python strings of a plain text column, an empty cell None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.any(pc.equal(column, "")).as_py():
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    return column.to_numpy(zero_copy_only=False).tolist()


def _minor_units(column, places: int, signed: bool):
    """A numpy array of the column's amounts in minor units; refused unless every amount
    is plain with exactly ``places`` decimals (at most 18 digits in all, so an int64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    number = ("-?" if signed else "") + f"[0-9]{{1,{18 - places}}}" + (
        f"\\.[0-9]{{{places}}}" if places else "")
    if column.null_count or not pc.all(pc.match_substring_regex(column, f"^{number}$")).as_py():
        raise _Refused("not plain amounts")
    if places:
        column = pc.replace_substring(column, ".", "", max_replacements=1)
    minor = pc.cast(column, pa.int64()).to_numpy()
    del column
    _release()   # (this thread's freed memory)
    return minor


def _columns(table, index: dict, layout, default_account: Optional[str]) -> tuple:
    """The lines' fields, column by column, as the row path reads them (or _Refused).

    Arrow's kernels release the GIL: the amounts are checked and cast in a second thread
    while this one makes the Python values of the other columns."""
    with ThreadPoolExecutor(1) as worker:
        return _columns_with(worker, table, index, layout, default_account)


def _columns_with(worker, table, index: dict, layout, default_account: Optional[str]) -> tuple:
    import numpy as np

    n = table.num_rows
    repeating = {field: _Repeating(table.column(f"c{k}"))
                 for field, k in index.items() if field in REPEATING}

    def refuse_none(value):
        if value is None:
            raise _Refused
        return value

    # Account: the cell, else the default; interned as the row path interns it.
    if "account" in repeating:
        column = repeating["account"]
        accounts = column.take(column.values(
            lambda a: intern(refuse_none(a or default_account or None))), n)
    else:
        accounts = repeat(intern(default_account), n)

    fallback = layout.currency or DEFAULT_CURRENCY

    def currency_of(cell: str) -> str:
        currency = (cell or fallback).upper()
        try:
            exponent(currency)
        except LedgerError:
            raise _Refused from None
        return intern(currency)

    if "currency" in repeating:
        column = repeating["currency"]
        used = column.values(currency_of)   # every text of the dictionary is some row's
        currencies = column.take(used, n)
    else:
        used = (currency_of(""),)
        currencies = repeat(used[0], n)
    places = {exponent(c) for c in used}
    if len(places) != 1:
        raise _Refused("currencies with different decimals")
    (places,) = places

    signed = layout.amount_mode == "signed"
    amounts = worker.submit(_minor_units, _plain_column(table, index, "amount"), places, signed)
    balances = _plain_column(table, index, "balance_after")
    if balances is not None:
        balances = worker.submit(_minor_units, balances, places, True)

    formats = layout.date_formats
    column = repeating["date"]
    booking = column.take(column.values(lambda d: refuse_none(_date(d, formats))), n)
    if "value_date" in repeating:
        column = repeating["value_date"]
        values = column.take(column.values(
            lambda d: refuse_none(_date(d, formats)) if d else None), n)
    else:
        values = repeat(None, n)

    serials = _plain_column(table, index, "bank_serial")
    if serials.null_count or _has_empty(serials):
        raise _Refused("a line without a bank serial")

    if not signed:
        column = repeating["dc_flag"]
        signs = np.array(column.values(lambda f: refuse_none(layout.flag_signs.get(f.upper()))),
                         dtype=np.int64)[column.codes]

    counterparties = _counterparties(repeating, n)
    descriptions = _optional(repeating.get("description"), n)
    subs = _optional(repeating.get("sub_account"), n)

    orders = _plain_column(table, index, "order_id")
    orders = repeat(None, n) if orders is None else _strings(orders)
    serials = _strings(serials)
    minor = amounts.result()
    _release()
    minor = (minor if signed else minor * signs).tolist()
    balances = repeat(None, n) if balances is None else balances.result().tolist()
    return (accounts, booking, values, minor, currencies, serials, orders,
            counterparties, descriptions, subs, balances)


def _has_empty(column) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(pc.equal(column, "")).as_py())


def _optional(column: Optional[_Repeating], n: int):
    """An optional text field as the row path keeps it: interned, an empty cell None."""
    if column is None:
        return repeat(None, n)
    return column.take(column.values(lambda text: text and intern(text) or None), n)


def _counterparties(repeating: dict, n: int):
    """The counterparty: its name and account, joined by a space when both are given."""
    import numpy as np

    names, others = repeating.get("counterparty"), repeating.get("counterparty_account")
    if names is None or others is None:
        return _optional(names or others, n)
    left = [t.strip() for t in names.texts]
    right = [t.strip() for t in others.texts]
    pairs, inverse = np.unique(names.codes.astype(np.int64) * max(len(right), 1)
                               + others.codes, return_inverse=True)
    width = max(len(right), 1)
    joined = []
    for pair in pairs.tolist():
        a, b = left[pair // width], right[pair % width]
        text = (f"{a} {b}" if a and b else a or b) or None
        joined.append(text and intern(text))
    table = np.empty(len(joined), dtype=object)
    table[:] = joined
    return table[inverse.reshape(-1)].tolist()


__all__ = ["ArrowRows", "arrow_rows", "arrow_lines"]
