"""Bank statement files -> one normalized record per line.

:func:`parse_statement` reads a statement file (a path or its bytes),
detects its format from the content (then the file name's extension),
parses it with the format's parser and proves every statement in it
(opening balance + booked lines = closing balance). It returns a
:class:`~.model.ParsedFile` whose ``statements`` hold the
:class:`~.model.StatementLine` values, or raises a typed
:class:`~.errors.StatementError` (an :class:`ledger.errors.InputError`):
a file is imported whole or not at all.

Formats: ``"ofx"`` (OFX 1.x SGML and 2.x XML), ``"csv"`` (the custody bank's
CSV day file, ``docs/csv-day-file.md``, or another bank's layout through a
column-mapping file), ``"camt053"`` (ISO 20022 camt.053, versions 2 to 8)
and ``"mt940"`` (SWIFT MT940).
"""

from __future__ import annotations

import os
import re
from typing import Optional, Union

from .errors import (Imbalance, MappingError, Problem, StatementError, StatementFormatError,
                     StatementImbalanceError, UnsupportedFormatError)
from .model import (BOOKED, CAMT053, CSV, FORMATS, MT940, OFX, PENDING, PROVED, UNCHECKED,
                    UNPROVED, Balance, ParsedFile, Statement, StatementLine)
from .proof import check_statement, prove_file, prove_statement
from .source import DEFAULT_TZ, gc_paused, sha256_hex

_ALIASES = {"ofx": OFX, "qfx": OFX, "csv": CSV, "csvday": CSV, "day": CSV, "camt": CAMT053,
            "camt053": CAMT053, "camt.053": CAMT053, "mt940": MT940, "mt-940": MT940,
            "sta": MT940, "swift": MT940}
_EXTENSIONS = {".ofx": OFX, ".qfx": OFX, ".csv": CSV, ".txt": CSV, ".xml": CAMT053,
               ".sta": MT940, ".mt940": MT940, ".940": MT940, ".swi": MT940}
_MT940_TAGS = re.compile(rb"(?m)^:(?:20|25|28C?|60[FM]|61):")
_OTHER_CAMT = re.compile(rb"camt\.05[24]|BkToCstmrAcctRpt|BkToCstmrDbtCdtNtfctn")

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def detect_format(data: bytes, filename: Optional[str] = None) -> str:
    """The format of a statement file: by content first, then by extension."""
    head = data[:16384]
    text = head.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n")
    lower = text.lower()
    if lower.startswith(b"ofxheader") or b"<ofx>" in lower:
        return OFX
    if lower.startswith(b"<"):
        if b"camt.053" in lower or b"bktocstmrstmt" in lower:
            return CAMT053
        if _OTHER_CAMT.search(head):
            raise UnsupportedFormatError("a camt.052/camt.054 report, not a camt.053 statement",
                                         file=filename, format="camt")
    if len(_MT940_TAGS.findall(head)) >= 2 and re.search(rb"(?m)^:20:", head):
        return MT940
    ext = os.path.splitext(filename or "")[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise UnsupportedFormatError(
        "cannot tell the file's format from its content or name; name it (ofx, csv, camt053, "
        "mt940)", file=filename)


def _format_name(format: str, filename: Optional[str]) -> str:
    name = _ALIASES.get(str(format).strip().lower())
    if name is None:
        raise UnsupportedFormatError(f"unknown format {format!r}; known: {', '.join(FORMATS)}",
                                     file=filename, format=format)
    return name


def _read(source: Source, filename: Optional[str]) -> tuple[bytes, Optional[str]]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), filename
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = filename or os.path.basename(path)
        try:
            with open(path, "rb") as fh:
                return fh.read(), name
        except OSError as exc:
            raise StatementError(f"cannot read the file: {exc.strerror or exc}", file=name,
                                 path=path) from None
    raise StatementError(f"a statement is a path or bytes, not {type(source).__name__}",
                         file=filename)


def parse_statement(source: Source, format: Optional[str] = None, *, mapping=None,
                    tz=DEFAULT_TZ, account: Optional[str] = None,
                    filename: Optional[str] = None, prove: bool = True) -> ParsedFile:
    """Parse (and prove) one statement file.

    Args:
      source: the file's path, or its bytes.
      format: ``"ofx"``, ``"csv"``, ``"camt053"`` or ``"mt940"``; None detects it.
      mapping: for CSV files, a column-mapping file (path), its parsed JSON or
        a :class:`~.csvmapping.Layout`; None means the default day-file layout.
      tz: the bank's time zone (name or tzinfo), for formats that give
        times with an offset (camt.053 ``DtTm``); booking days are taken in it.
      account: the custody account, for a CSV day file that does not name it.
      filename: the name to report (defaults to the path's base name).
      prove: check every statement's balances (the default); with False the
        statements are returned "unchecked".

    Raises:
      StatementFormatError: the file is not a well-formed statement; every
        bad line is listed in ``problems``.
      StatementImbalanceError: a statement does not add up.
      UnsupportedFormatError: not a format read here.
      MappingError: the CSV mapping cannot be used.
    """
    data, name = _read(source, filename)
    fmt = _format_name(format, name) if format is not None else detect_format(data, name)
    sha = sha256_hex(data)
    with gc_paused():
        if fmt == OFX:
            from .ofx import parse_ofx
            parsed = parse_ofx(data, filename=name, sha256=sha)
        elif fmt == CSV:
            from .csvday import parse_csv_day
            parsed = parse_csv_day(data, filename=name, sha256=sha, mapping=mapping,
                                   account=account)
        elif fmt == CAMT053:
            from .camt053 import parse_camt053
            parsed = parse_camt053(data, filename=name, sha256=sha, tz=tz)
        else:
            from .mt940 import parse_mt940
            parsed = parse_mt940(data, filename=name, sha256=sha)
        return prove_file(parsed) if prove else parsed


__all__ = ["parse_statement", "detect_format", "ParsedFile", "Statement", "StatementLine",
           "Balance", "StatementError", "StatementFormatError", "StatementImbalanceError",
           "UnsupportedFormatError", "MappingError", "Problem", "Imbalance", "prove_file",
           "prove_statement", "check_statement", "OFX", "CSV", "CAMT053", "MT940", "FORMATS",
           "BOOKED", "PENDING", "PROVED", "UNPROVED", "UNCHECKED", "DEFAULT_TZ"]
