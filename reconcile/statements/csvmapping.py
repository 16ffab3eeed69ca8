"""Column layouts of CSV day files: the documented default and JSON mapping files.

A :class:`Layout` says where each field of a day file is: the encoding, the
delimiter, which line holds the header, which column holds each field (by
header name or by 1-based number), how the amount's direction is given
(a 借/贷 flag, a signed amount, or separate debit and credit columns), the
flag words, date formats, and the account and currency when the file does
not state them. The default layout recognizes the documented headers in
Chinese or English; a mapping file (``docs/csv-day-file.md``) describes any
other bank's layout. A mapping with an unknown key, field or value is
refused with every problem listed, so a typo never silently changes what a
column means.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
from dataclasses import dataclass
from typing import Optional

from .errors import MappingError, Problem
from .source import codec_name

#: Every field a day file can give, with the header names the default layout knows.
FIELDS: dict[str, tuple[str, ...]] = {
    "date": ("交易日期", "记账日期", "日期", "date", "booking_date"),
    "bank_serial": ("银行流水号", "流水号", "bank_serial", "bank_ref"),
    "order_id": ("平台订单号", "订单号", "order_id", "platform_order_id"),
    "sub_account": ("子账户", "子账号", "sub_account"),
    "counterparty": ("对方户名", "counterparty"),
    "dc_flag": ("借贷标志", "借贷", "dc_flag"),
    "amount": ("金额", "交易金额", "amount"),
    "balance_after": ("余额", "账户余额", "balance_after"),
    "account": ("账号", "本方账号", "account"),
    "currency": ("币种", "currency"),
    "description": ("摘要", "description"),
    "value_date": ("起息日", "value_date"),
    "counterparty_account": ("对方账号", "counterparty_account"),
    "debit_amount": ("借方发生额", "debit_amount"),
    "credit_amount": ("贷方发生额", "credit_amount"),
}
#: The columns the documented default layout must have.
DEFAULT_COLUMNS = ("date", "bank_serial", "order_id", "sub_account", "counterparty", "dc_flag",
                   "amount", "balance_after")
CREDIT_FLAGS = ("贷", "贷方", "C", "CR", "CREDIT")
DEBIT_FLAGS = ("借", "借方", "D", "DR", "DEBIT")
AMOUNT_MODES = ("flag", "signed", "split")
_MODE_COLUMNS = {"flag": ("amount", "dc_flag"), "signed": ("amount",),
                 "split": ("debit_amount", "credit_amount")}
MAPPING_KEYS = ("name", "encoding", "delimiter", "header_line", "has_header", "columns",
                "amount_mode", "credit_flags", "debit_flags", "date_formats", "account",
                "currency", "skip_prefixes")


_KINDS = {str: "a string", int: "a whole number from 1", bool: "true or false"}


def _norm(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().casefold()


_ALIASES = {_norm(name): field for field, names in FIELDS.items() for name in names}


@dataclass(frozen=True)
class Layout:
    """Where each field of a day file is.

    Attributes:
      name: a label for messages.
      columns: ``(field, header name or 1-based number)`` pairs, or None for
        the default layout (headers recognized by :data:`FIELDS`).
      encoding: ``"auto"`` (UTF-8, else GBK), or a codec name.
      delimiter: the cell separator, or None (comma; tab if the header has
        tabs and no commas).
      header_line: 1-based line of the header (or of the first data row
        without a header); None means the first non-blank line.
      has_header: whether the file has a header row.
      amount_mode: ``"flag"``, ``"signed"`` or ``"split"``.
      credit_flags, debit_flags: the words of the debit/credit flag column.
      date_formats: ``strptime`` formats, or () for the built-in ones.
      account, currency: used when the file has no such column.
      skip_prefixes: rows whose first non-empty cell starts with one of
        these (totals like 合计) are not lines.
    """

    name: str = "default layout"
    columns: Optional[tuple] = None
    encoding: str = "auto"
    delimiter: Optional[str] = None
    header_line: Optional[int] = None
    has_header: bool = True
    amount_mode: str = "flag"
    credit_flags: tuple = CREDIT_FLAGS
    debit_flags: tuple = DEBIT_FLAGS
    date_formats: tuple = ()
    account: Optional[str] = None
    currency: Optional[str] = None
    skip_prefixes: tuple = ()

    @functools.cached_property
    def flag_signs(self) -> dict:
        """Upper-cased flag word -> +1 for a credit (money in), -1 for a debit."""
        signs = {f.upper(): -1 for f in self.debit_flags}
        signs.update({f.upper(): 1 for f in self.credit_flags})
        return signs

    def flag_sign(self, flag: str) -> Optional[int]:
        """+1 for a credit flag (money in), -1 for a debit flag, None otherwise."""
        return self.flag_signs.get(flag.strip().upper())

    def skips(self, record: list) -> bool:
        """Whether a row is one the layout says is not a line (a totals row)."""
        first = next((cell.strip() for cell in record if cell.strip()), "")
        return any(first.startswith(p) for p in self.skip_prefixes)

    def columns_from_header(self, header: list, line: int, problems: list) -> dict:
        """Field -> column index, read off the header row; problems if columns are missing."""
        index: dict = {}
        if self.columns is None:
            for i, cell in enumerate(header):
                field = _ALIASES.get(_norm(cell))
                if field is None:
                    continue
                if field in index:
                    problems.append(Problem(line, field, f"two columns give {field}"))
                index[field] = i
            required = DEFAULT_COLUMNS
        else:
            names = {_norm(cell): i for i, cell in reversed(list(enumerate(header)))}
            found = []
            for field, ref in self.columns:
                if isinstance(ref, int):
                    if ref > len(header):
                        found.append(Problem(line, field, f"column {ref} is past the last "
                                                          f"column ({len(header)})"))
                    index[field] = ref - 1
                elif _norm(ref) in names:
                    index[field] = names[_norm(ref)]
                else:
                    found.append(Problem(line, field, f"no column {ref!r} in the header"))
            problems.extend(found)
            return {} if found else index
        missing = [f for f in required if f not in index]
        if missing:
            wanted = ", ".join(f"{FIELDS[f][0]} ({f})" for f in missing)
            problems.append(Problem(line, "header", f"missing columns: {wanted}"))
            return {}
        return index

    def columns_by_number(self, problems: list) -> dict:
        """Field -> column index for a file without a header (numbers only)."""
        index, found = {}, []
        for field, ref in self.columns or ():
            if not isinstance(ref, int):
                found.append(Problem(None, field, f"{ref!r}: without a header row, columns "
                                                  "are given by number"))
            else:
                index[field] = ref - 1
        if self.columns is None:
            found.append(Problem(None, "has_header", "the default layout has a header row"))
        problems.extend(found)
        return {} if found else index


DEFAULT_LAYOUT = Layout()


def _text_codec(label: str) -> bool:
    name = codec_name(label)
    return name is not None and getattr(codecs.lookup(name), "_is_text_encoding", True)


def _strings(value, key: str, problems: list) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(Problem(None, key, "must be a list of non-empty strings"))
        return ()
    return tuple(v.strip() for v in value)


def layout_from_dict(spec: dict, *, source: Optional[str] = None) -> Layout:
    """A :class:`Layout` from a mapping file's parsed JSON; every problem reported at once."""
    problems: list[Problem] = []
    if not isinstance(spec, dict):
        raise MappingError("a mapping file holds one JSON object", file=source,
                           problems=(Problem(None, "mapping", "not a JSON object"),))
    for key in spec:
        if key not in MAPPING_KEYS:
            problems.append(Problem(None, key, f"unknown key; known: {', '.join(MAPPING_KEYS)}"))
    columns = spec.get("columns")
    pairs = []
    if not isinstance(columns, dict) or not columns:
        problems.append(Problem(None, "columns", "must map fields to header names or numbers"))
        columns = {}
    for field, ref in columns.items():
        if field not in FIELDS:
            problems.append(Problem(None, f"columns.{field}",
                                    f"unknown field; known: {', '.join(FIELDS)}"))
        elif isinstance(ref, bool) or not (isinstance(ref, str) and ref.strip()
                                           or isinstance(ref, int) and ref >= 1):
            problems.append(Problem(None, f"columns.{field}",
                                    "must be a header name or a column number from 1"))
        else:
            pairs.append((field, ref))
    mode = spec.get("amount_mode") or ("split" if "debit_amount" in columns else
                                       "flag" if "dc_flag" in columns else "signed")
    if mode not in AMOUNT_MODES:
        problems.append(Problem(None, "amount_mode", f"must be one of {', '.join(AMOUNT_MODES)}"))
    else:
        for field in ("date", "bank_serial") + _MODE_COLUMNS[mode]:
            if field not in columns:
                problems.append(Problem(None, f"columns.{field}",
                                        f"required (amount_mode {mode})"))
    values = {}
    for key, kind in (("name", str), ("encoding", str), ("delimiter", str), ("account", str),
                      ("currency", str), ("header_line", int), ("has_header", bool)):
        if key in spec:
            value = spec[key]
            bad_int = kind is int and (isinstance(value, bool)
                                       or isinstance(value, int) and value < 1)
            if not isinstance(value, kind) or bad_int:
                problems.append(Problem(None, key, "must be " + _KINDS[kind]))
            else:
                values[key] = value
    if "delimiter" in values and len(values["delimiter"]) != 1:
        problems.append(Problem(None, "delimiter", "must be one character"))
    for key in ("credit_flags", "debit_flags", "date_formats", "skip_prefixes"):
        if key in spec:
            values[key] = _strings(spec[key], key, problems)
    encoding = values.get("encoding", "auto")
    if encoding.strip().lower() != "auto" and not _text_codec(encoding):
        problems.append(Problem(None, "encoding", f"{encoding!r} is not a text encoding; "
                                                  "give \"auto\" or a codec such as \"gbk\""))
    both = ({f.upper() for f in values.get("credit_flags", CREDIT_FLAGS)}
            & {f.upper() for f in values.get("debit_flags", DEBIT_FLAGS)})
    if both:
        problems.append(Problem(None, "credit_flags", f"{', '.join(sorted(both))}: both a "
                                                      "credit and a debit flag"))
    if problems:
        raise MappingError.collected(problems, file=source, what="mapping problem")
    return Layout(columns=tuple(pairs), amount_mode=mode, **values)


def load_mapping(mapping, *, file: Optional[str] = None) -> Layout:
    """A :class:`Layout` from a Layout, a dict, or the path of a JSON mapping file."""
    if isinstance(mapping, Layout):
        return mapping
    if isinstance(mapping, dict):
        return layout_from_dict(mapping, source="mapping")
    if isinstance(mapping, (str, os.PathLike)):
        path = os.fspath(mapping)
        try:
            with open(path, "rb") as fh:
                spec = json.loads(fh.read().decode("utf-8-sig"))
        except OSError as exc:
            raise MappingError(f"cannot read the mapping file: {exc.strerror}",
                               file=os.path.basename(path), problems=()) from None
        except (UnicodeDecodeError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            raise MappingError(f"not a JSON mapping file: {exc}", file=os.path.basename(path),
                               position=f"line {line}" if line else None,
                               problems=(Problem(line, "mapping", str(exc)),)) from None
        return layout_from_dict(spec, source=os.path.basename(path))
    raise MappingError(f"a mapping is a file path, a dict or a Layout, not "
                       f"{type(mapping).__name__}", file=file, problems=())


__all__ = ["Layout", "DEFAULT_LAYOUT", "FIELDS", "DEFAULT_COLUMNS", "CREDIT_FLAGS",
           "DEBIT_FLAGS", "AMOUNT_MODES", "MAPPING_KEYS", "layout_from_dict", "load_mapping"]
