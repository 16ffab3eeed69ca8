"""OFX statements (1.x SGML, 2.x XML) -> normalized records, through ofxparse, guarded.

Guards against ofxparse's known faults:

- Files are read as bytes and decoded here (:mod:`.ofxsgml`), whatever the
  header claims: ``CHARSET:NONE``, ``ENCODING:ISO-8859-1``, GBK/936 bodies
  and XML without an SGML header carrying UTF-8 Chinese all read. ofxparse
  is then given the body re-encoded as UTF-8 under a header it understands.
- Booking days stay in the bank's own time zone: ofxparse turns
  ``20261122003000[+8:CST]`` into a naive UTC time on the previous day, so
  the day is taken from the first eight digits of the raw ``DTPOSTED``
  text instead, which are the bank's local date.
- Every exception ofxparse raises becomes a typed
  :class:`~.errors.StatementFormatError` naming the file and the line.
- ofxparse's SGML preprocessing is quadratic. Files with more than
  :data:`OFXPARSE_MAX_TRANSACTIONS` transactions are read by the linear
  reader alone; smaller ones by ofxparse *and* the linear reader, which
  must agree on every account, currency, balance, amount and reference, or
  the file is refused rather than guessed at. Both paths therefore give the
  same records.

The ledger balance (``LEDGERBAL``) is the closing balance. OFX gives no
opening balance (``AVAILBAL`` is not one), and deriving one as closing minus
the lines would prove nothing, so OFX statements are "unproved".
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
import warnings
from decimal import Decimal, InvalidOperation
from typing import NamedTuple, Optional

from ledger.errors import LedgerError
from ledger.money import exponent, to_minor

from .errors import Problem, StatementFormatError, UnsupportedFormatError, money_reason
from .model import BOOKED, OFX, Balance, ParsedFile, Statement, StatementLine
from .ofxsgml import Frame, Leaf, OfxText, close_leaves, decode_ofx, read_document
from .source import LineIndex, sha256_hex

#: Up to this many transactions ofxparse reads the file too; above, the linear reader alone.
OFXPARSE_MAX_TRANSACTIONS = 1000
ENGINES = ("auto", "ofxparse", "linear")

#: The header ofxparse is given: the body is always re-encoded as UTF-8.
CANONICAL_HEADER = ("OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:UTF-8\n"
                    "CHARSET:NONE\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n")
_HEADER_LINES = CANONICAL_HEADER.count("\n")
_DATE = re.compile(r"\s*(\d{8})")
_KIND_ORDER = {"STMTRS": 0, "CCSTMTRS": 1}


class _Txn(NamedTuple):
    """The fields ofxparse reads too: both readers must agree on them."""

    amount: Decimal
    fitid: str
    payee: str
    memo: str


class _Record(NamedTuple):
    """One STMTTRN as read from the text: span, shared fields, and the rest."""

    start: int
    end: int
    txn: _Txn
    booking_date: Optional[dt.date]
    value_date: Optional[dt.date]
    refnum: Optional[str]


class _Stmt(NamedTuple):
    account: str
    currency: str
    balance: Optional[Decimal]
    transactions: tuple


def ofx_decimal(text: str) -> Decimal:
    """An OFX amount as ofxparse reads it (``1.234,56``, ``1 025,53``, ``+1058,53``)."""
    d = text.strip()
    if re.search(r".*\..*,", d):
        d = d.replace(".", "")
    if re.search(r".*,.*\.", d):
        d = d.replace(",", "")
    if "." not in d and "," in d:
        d = d.replace(",", ".")
    return Decimal(d.replace(" ", "").replace("+", ""))


@functools.lru_cache(maxsize=4096)
def _date_of(digits: str) -> Optional[dt.date]:
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def ofx_date(text: Optional[str]) -> Optional[dt.date]:
    """The bank's local date: the first eight digits of an OFX date-time, or None.

    ``20261122003000[+8:CST]`` is 22 November 2026 wherever the reader is:
    the digits are the bank's own local time, and no zone conversion may
    move a line to another business day.
    """
    m = _DATE.match(text or "")
    return _date_of(m.group(1)) if m else None


def _value(frame: Frame, name: str) -> tuple[bool, Optional[str], int]:
    """(present, first text or None, start offset) of ``name`` inside ``frame``."""
    item = frame.get(name)
    if item is None:
        return False, None, frame.start
    if isinstance(item, Leaf):
        return True, item.text, item.start
    return True, None, item.start


class _Checker:
    """Reads fields off the linear reader's frames, collecting every problem."""

    def __init__(self, line_of):
        self.line_of = line_of
        self.problems: list[Problem] = []

    def bad(self, at: int, name: str, message: str) -> None:
        self.problems.append(Problem(self.line_of(at), name, message))

    def text(self, frame: Frame, name: str, *, required: bool = False,
             blank_ok: bool = True) -> Optional[str]:
        present, text, at = _value(frame, name)
        if not present:
            if required:
                self.bad(frame.start, name, f"missing in {frame.name}")
            return None
        if text is None or (not blank_ok and not text.strip()):
            self.bad(at, name, "is empty")
            return None
        return text.strip()

    def date(self, frame: Frame, name: str, *, required: bool = False) -> Optional[dt.date]:
        text = self.text(frame, name, required=required)
        if text is None:
            return None
        day = ofx_date(text)
        if day is None:
            self.bad(_value(frame, name)[2], name, f"{text!r} is not a date (YYYYMMDD...)")
        return day

    def amount(self, frame: Frame, name: str, currency: Optional[str], *,
               required: bool = False, nulls: bool = False) -> Optional[Decimal]:
        text = self.text(frame, name, required=required, blank_ok=False)
        if text is None:
            return None
        at = _value(frame, name)[2]
        if nulls and text in ("null", "-null"):
            return Decimal(0)
        try:
            value = ofx_decimal(text)
            if currency:
                to_minor(value, currency, what="value")
        except InvalidOperation:
            self.bad(at, name, f"{text!r} is not an amount")
            return None
        except LedgerError as exc:
            self.bad(at, name, money_reason(exc))
            return None
        return value


def _read_transaction(check: _Checker, t: Frame) -> _Record:
    amount = check.amount(t, "TRNAMT", None, required=True, nulls=True)
    posted = check.date(t, "DTPOSTED", required=True)
    check.date(t, "DTUSER")
    avail = check.date(t, "DTAVAIL")
    fitid = check.text(t, "FITID", required=True, blank_ok=False)
    first = t.first
    for name in ("TRNTYPE", "SIC", "CHECKNUM"):
        if name in first:
            check.text(t, name)
    payee = check.text(t, "NAME") or ""
    memo = _value(t, "MEMO")[1]
    refnum = (_value(t, "REFNUM")[1] or "").strip()
    txn = _Txn(Decimal(0) if amount is None else amount, fitid or "", payee, (memo or "").strip())
    return _Record(t.start, t.end, txn, posted, avail, refnum or None)


def _read_statement(check: _Checker, fr: Frame) -> tuple[_Stmt, tuple]:
    """The statement's fields; and its lines' amounts in minor units, checked."""
    account = check.text(fr, "ACCTID", required=True, blank_ok=False) or ""
    currency = (check.text(fr, "CURDEF", required=True, blank_ok=False) or "").upper()
    if currency:
        try:
            exponent(currency)
        except LedgerError as exc:
            check.bad(_value(fr, "CURDEF")[2], "CURDEF", money_reason(exc))
            currency = ""
    check.date(fr, "DTSTART")
    check.date(fr, "DTEND")
    balance = None
    for name in ("LEDGERBAL", "AVAILBAL"):
        agg = fr.get(name)
        if isinstance(agg, Frame):
            value = check.amount(agg, "BALAMT", currency or None)
            check.date(agg, "DTASOF")
            if name == "LEDGERBAL":
                balance = value
    minors = []
    for record in fr.transactions:
        minor = 0
        if currency:
            try:
                minor = to_minor(record.txn.amount, currency, what="value")
            except LedgerError as exc:
                check.bad(record.start, "TRNAMT", money_reason(exc))
        minors.append(minor)
    txns = tuple(record.txn for record in fr.transactions)
    return _Stmt(account, currency, balance, txns), tuple(minors)


def _check_responses(doc, check: _Checker) -> None:
    for fr in doc.responses:
        status = fr.get("STATUS")
        if not isinstance(status, Frame):
            continue
        severity = (_value(status, "SEVERITY")[1] or "").strip().upper()
        if severity == "ERROR":
            code = (_value(status, "CODE")[1] or "").strip()
            message = (_value(status, "MESSAGE")[1] or "").strip()
            what = "sign-on" if fr.name == "SONRS" else "statement request"
            check.bad(status.start, "STATUS",
                      f"the bank reports an error for the {what}: code {code} {message}".rstrip())


def _tag_line(exc: BaseException) -> Optional[int]:
    """The source line of the innermost parsed tag ofxparse was working on."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if type(value).__name__ == "Tag":
                line = value.__dict__.get("sourceline")
                if isinstance(line, int):
                    found = line
        tb = tb.tb_next
    return found


def _read_with_ofxparse(ofx: OfxText, doc, *, file: Optional[str], line_of) -> list[_Stmt]:
    from ofxparse import OfxParser

    body = ofx.text[ofx.body_start:]
    normalized = (CANONICAL_HEADER + close_leaves(body)).encode("utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = OfxParser.parse(io.BytesIO(normalized), fail_fast=True)
    except Exception as exc:  # ofxparse raises anything: make it ours, with the line
        line = _tag_line(exc)
        if line is not None:
            line = line - _HEADER_LINES - 1 + line_of(ofx.body_start)
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        raise StatementFormatError.collected(
            [Problem(line, "OFX", f"ofxparse cannot read the file ({reason})")],
            file=file) from exc
    order = sorted(range(len(doc.statements)),
                   key=lambda i: (_KIND_ORDER[doc.statements[i].name], doc.statements[i].start))
    accounts = list(getattr(parsed, "accounts", []))
    if len(accounts) < len(order):
        raise StatementFormatError.collected(
            [Problem(None, "OFX", f"ofxparse finds {len(accounts)} statements where the file "
                                  f"holds {len(order)}")], file=file)
    result: list = [None] * len(order)
    try:
        for account, i in zip(accounts, order):
            st = account.statement
            balance = getattr(st, "balance", None)
            txns = tuple(_Txn(Decimal(t.amount), (t.id or "").strip(), (t.payee or "").strip(),
                              (t.memo or "").strip()) for t in st.transactions)
            result[i] = _Stmt((account.account_id or "").strip(), (account.curdef or "").upper(),
                              Decimal(balance) if balance is not None else None, txns)
    except (TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise StatementFormatError.collected(
            [Problem(None, "OFX", f"ofxparse returns an unreadable statement ({exc})")],
            file=file) from exc
    return result


def _compare(mine: _Stmt, theirs: _Stmt, fr: Frame, check: _Checker) -> None:
    """Refuse, rather than guess, where ofxparse and the linear reader disagree."""
    def differ(at: int, name: str, a, b) -> None:
        check.bad(at, name, f"ofxparse reads {b!r} where the file's text reads {a!r}")

    for name, a, b in (("ACCTID", mine.account, theirs.account),
                       ("CURDEF", mine.currency, theirs.currency),
                       ("LEDGERBAL", mine.balance, theirs.balance)):
        if a != b:
            differ(fr.start, name, a, b)
    if len(mine.transactions) != len(theirs.transactions):
        differ(fr.start, "STMTTRN", len(mine.transactions), len(theirs.transactions))
        return
    for record, a, b in zip(fr.transactions, mine.transactions, theirs.transactions):
        if a != b:
            differ(record.start, "STMTTRN", tuple(a), tuple(b))


def parse_ofx(data: bytes, *, filename: Optional[str] = None, sha256: Optional[str] = None,
              engine: str = "auto") -> ParsedFile:
    """Every statement of an OFX file; ``engine`` forces "ofxparse" or "linear" (tests, bench)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    sha = sha256 or sha256_hex(data)
    ofx = decode_ofx(data, file=filename)
    index = LineIndex(ofx.text)
    check = _Checker(index.line)
    doc = read_document(ofx, file=filename, line_of=index.line,
                        on_transaction=lambda t: _read_transaction(check, t))
    problems, check.problems = check.problems, []
    _check_responses(doc, check)
    if check.problems:
        raise StatementFormatError.collected(check.problems, file=filename, what="bank error")
    check.problems = problems
    if doc.investment:
        raise UnsupportedFormatError("an investment statement (INVSTMTRS), not a bank statement",
                                     file=filename, position=f"line {index.line(doc.investment[0].start)}",
                                     format=OFX)
    if not doc.statements:
        raise StatementFormatError.collected(
            [Problem(None, "STMTRS", "the file holds no bank or credit-card statement")],
            file=filename)
    read = [_read_statement(check, fr) for fr in doc.statements]
    mine = [stmt for stmt, _ in read]
    if check.problems:
        raise StatementFormatError.collected(check.problems, file=filename)
    total = sum(len(fr.transactions) for fr in doc.statements)
    if engine == "ofxparse" or (engine == "auto" and total <= OFXPARSE_MAX_TRANSACTIONS):
        theirs = _read_with_ofxparse(ofx, doc, file=filename, line_of=index.line)
        for a, b, fr in zip(mine, theirs, doc.statements):
            _compare(a, b, fr, check)
        if check.problems:
            raise StatementFormatError.collected(check.problems, file=filename,
                                                 what="disagreement")
    statements = tuple(_statement(ofx, fr, st, minors, index, filename, sha, counter)
                       for fr, (st, minors), counter in _numbered(doc.statements, read))
    return ParsedFile(filename, sha, OFX, ofx.encoding, statements)


def _numbered(frames, read):
    n = 0
    for fr, item in zip(frames, read):
        yield fr, item, n
        n += len(fr.transactions)


def _statement(ofx: OfxText, fr: Frame, st: _Stmt, minors: tuple, index: LineIndex, filename,
               sha, counter: int) -> Statement:
    text = ofx.text
    cur, account = st.currency, st.account
    line_of = index.line
    records, out = fr.transactions, []
    for i, (r, minor) in enumerate(zip(records, minors)):
        out.append(StatementLine(account, r.booking_date, r.value_date, minor, cur, r.txn.fitid,
                                 r.refnum, r.txn.payee or None, r.txn.memo or None, BOOKED, sha,
                                 f"line {line_of(r.start)}, STMTTRN {counter + i + 1}",
                                 text[r.start:r.end]))
        records[i] = None  # a large file's records go as its lines come
    lines = tuple(out)
    closing = None
    ledger = fr.get("LEDGERBAL")
    if st.balance is not None and isinstance(ledger, Frame):
        closing = Balance(to_minor(st.balance, cur), cur, ofx_date(_value(ledger, "DTASOF")[1]),
                          "LEDGERBAL", f"line {line_of(ledger.start)}")
    start = ofx_date(_value(fr, "DTSTART")[1])
    end = ofx_date(_value(fr, "DTEND")[1])
    day = end or (closing.date if closing else None) or max(
        (line.booking_date for line in lines), default=None)
    return Statement(account=account, currency=cur, format=OFX, filename=filename,
                     source_file_sha256=sha, statement_id=None, period_start=start,
                     period_end=end, statement_date=day, opening=None, closing=closing,
                     lines=lines, source_position=f"line {line_of(fr.start)}")


__all__ = ["parse_ofx", "ofx_decimal", "ofx_date", "OFXPARSE_MAX_TRANSACTIONS", "ENGINES",
           "CANONICAL_HEADER"]
