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
  same records. The linear reader builds each line as soon as its
  ``STMTTRN`` ends, so nothing else of a transaction stays in memory.

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
from .ofxsgml import Frame, OfxText, close_leaves, decode_ofx, read_document
from .source import LineIndex, sha256_hex

#: Up to this many transactions ofxparse reads the file too; above, the linear reader alone.
OFXPARSE_MAX_TRANSACTIONS = 1000
ENGINES = ("auto", "ofxparse", "linear")

#: The header ofxparse is given: the body is always re-encoded as UTF-8.
CANONICAL_HEADER = ("OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:UTF-8\n"
                    "CHARSET:NONE\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n")
_HEADER_LINES = CANONICAL_HEADER.count("\n")
_DATE = re.compile(r"\s*(\d{8})")
_PLAIN_AMOUNT = re.compile(r"[+-]?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+")
_DECIMAL_FORM = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")   # "-.50" and "50." too
_KIND_ORDER = {"STMTRS": 0, "CCSTMTRS": 1}


class _Txn(NamedTuple):
    """What ofxparse reads of a transaction: the two readers must agree on it."""

    amount: Decimal
    fitid: str
    payee: str
    memo: str


class _Stmt(NamedTuple):
    """What ofxparse reads of a statement."""

    account: str
    currency: str
    balance: Optional[Decimal]
    transactions: tuple


class AmbiguousAmount(InvalidOperation):
    """An OFX amount a decimal comma and a thousands separator read two ways (``1,000``)."""


def ofx_decimal(text: str) -> Decimal:
    """An OFX amount as ofxparse reads it (``1.234,56``, ``1 025,53``, ``+1058,53``).

    Only digits, a sign and separators: exponent notation, ``NaN`` and the like are
    refused (InvalidOperation), and so is a comma before exactly three digits with no
    point (``1,000``, ``-12,500``), which ofxparse reads as a decimal comma (1.000)
    where a bank writing thousands separators means a thousand (AmbiguousAmount).
    """
    d = text.strip()
    if _PLAIN_AMOUNT.fullmatch(d):  # the usual "-200.50": nothing to rewrite
        return Decimal(d.lstrip("+"))
    if _THOUSANDS.fullmatch(d):
        raise AmbiguousAmount(text)
    if re.search(r".*\..*,", d):
        d = d.replace(".", "")
    if re.search(r".*,.*\.", d):
        d = d.replace(",", "")
    if "." not in d and "," in d:
        d = d.replace(",", ".")
    d = d.replace(" ", "").replace("+", "")
    if not _DECIMAL_FORM.fullmatch(d):
        raise InvalidOperation(text)
    return Decimal(d)


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
    item = frame.first.get(name)
    if item is None:
        return False, None, frame.start
    if type(item) is tuple:
        return True, item[0], item[1]
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
        except AmbiguousAmount:
            self.bad(at, name, f"{text!r} is ambiguous: a decimal comma or a thousands "
                               "separator")
            return None
        except InvalidOperation:
            self.bad(at, name, f"{text!r} is not an amount")
            return None
        except LedgerError as exc:
            self.bad(at, name, money_reason(exc))
            return None
        return value


#: A statement whose CURDEF or ACCTID had not come yet when its transactions did.
LATE = object()


class _Lines:
    """Turns each finished STMTTRN into its line while the reader goes on.

    Building the line at once keeps nothing else of the transaction in
    memory, which keeps a large file's parse time proportional to its size.
    The statement's CURDEF and ACCTID come before its transactions (the OFX
    order); a statement that gives them only afterwards is refused.
    """

    def __init__(self, check: "_Checker", text: str, sha: str, line_of):
        self.check, self.text, self.sha, self.line_of = check, text, sha, line_of
        self.count = 0
        self._pos, self._line = 0, 1
        self.context: dict = {}   # id(statement frame) -> (account, currency), None, or LATE

    def line_at(self, at: int) -> int:
        """The line of offset ``at``, counted on from the last one asked (they only grow)."""
        if at < self._pos:
            return self.line_of(at)
        self._line += self.text.count("\n", self._pos, at)
        self._pos = at
        return self._line

    def _context(self, st: Frame):
        key = id(st)
        if key not in self.context:
            currency, account = _value(st, "CURDEF")[1], _value(st, "ACCTID")[1]
            if "CURDEF" not in st.first or "ACCTID" not in st.first:
                self.context[key] = LATE
            elif not currency or not currency.strip() or not account or not account.strip():
                self.context[key] = None  # the statement's own check reports it
            else:
                currency = currency.strip().upper()
                try:
                    exponent(currency)
                    self.context[key] = (account.strip(), currency)
                except LedgerError:
                    self.context[key] = None
        return self.context[key]

    def __call__(self, t: Frame, st: Optional[Frame]) -> Optional[StatementLine]:
        self.count += 1
        check = self.check
        before = len(check.problems)
        amount = check.amount(t, "TRNAMT", None, required=True, nulls=True)
        posted = check.date(t, "DTPOSTED", required=True)
        check.date(t, "DTUSER")
        avail = check.date(t, "DTAVAIL")
        fitid = check.text(t, "FITID", required=True, blank_ok=False)
        first = t.first
        for name in ("TRNTYPE", "SIC", "CHECKNUM"):
            if name in first:
                check.text(t, name)
        payee = check.text(t, "NAME")
        memo = (_value(t, "MEMO")[1] or "").strip()
        refnum = (_value(t, "REFNUM")[1] or "").strip()
        context = self._context(st) if st is not None else None
        if context is None or context is LATE or amount is None:
            return None
        account, currency = context
        try:
            minor = to_minor(amount, currency, what="value")
        except LedgerError as exc:
            check.bad(t.start, "TRNAMT", money_reason(exc))
            return None
        if len(check.problems) > before:
            return None
        return StatementLine(account, posted, avail, minor, currency, fitid, refnum or None,
                             payee or None, memo or None, BOOKED, self.sha,
                             f"line {self.line_at(t.start)}, STMTTRN {self.count}",
                             self.text[t.start:t.end])


def _read_statement(check: _Checker, fr: Frame,
                    lines: _Lines) -> tuple[str, str, Optional[Decimal]]:
    """The statement's account, currency and ledger balance, every problem reported."""
    account = check.text(fr, "ACCTID", required=True, blank_ok=False) or ""
    currency = (check.text(fr, "CURDEF", required=True, blank_ok=False) or "").upper()
    if currency:
        try:
            exponent(currency)
        except LedgerError as exc:
            check.bad(_value(fr, "CURDEF")[2], "CURDEF", money_reason(exc))
            currency = ""
    if lines.context.get(id(fr)) is LATE and account and currency:
        check.bad(fr.start, "CURDEF", "CURDEF and ACCTID must come before the transactions")
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
    return account, currency, balance


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


def _compare(fr: Frame, mine: tuple, theirs: _Stmt, check: _Checker) -> None:
    """Refuse, rather than guess, where ofxparse and the linear reader disagree."""
    def differ(at: int, name: str, a, b) -> None:
        check.bad(at, name, f"ofxparse reads {b!r} where the file's text reads {a!r}")

    account, currency, balance = mine
    for name, a, b in (("ACCTID", account, theirs.account), ("CURDEF", currency, theirs.currency),
                       ("LEDGERBAL", balance, theirs.balance)):
        if a != b:
            differ(fr.start, name, a, b)
    if len(fr.transactions) != len(theirs.transactions):
        differ(fr.start, "STMTTRN", len(fr.transactions), len(theirs.transactions))
        return
    for line, txn in zip(fr.transactions, theirs.transactions):
        ours = (line.amount_minor, line.bank_ref, line.counterparty or "", line.description or "")
        try:
            read = (to_minor(txn.amount, currency), txn.fitid, txn.payee, txn.memo)
        except LedgerError:
            read = tuple(txn)
        if ours != read:
            m = re.match(r"line (\d+)", line.source_position)
            check.problems.append(Problem(int(m.group(1)) if m else None, "STMTTRN",
                                          f"ofxparse reads {read!r} where the file's text "
                                          f"reads {ours!r}"))


def parse_ofx(data: bytes, *, filename: Optional[str] = None, sha256: Optional[str] = None,
              engine: str = "auto") -> ParsedFile:
    """Every statement of an OFX file; ``engine`` forces "ofxparse" or "linear" (tests, bench)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    sha = sha256 or sha256_hex(data)
    ofx = decode_ofx(data, file=filename)
    index = LineIndex(ofx.text)
    check = _Checker(index.line)
    lines = _Lines(check, ofx.text, sha, index.line)
    doc = read_document(ofx, file=filename, line_of=index.line, on_transaction=lines)
    problems, check.problems = check.problems, []
    _check_responses(doc, check)
    if check.problems:
        raise StatementFormatError.collected(check.problems, file=filename, what="bank error")
    check.problems = problems
    if doc.investment:
        raise UnsupportedFormatError("an investment statement (INVSTMTRS), not a bank statement",
                                     file=filename, format=OFX,
                                     position=f"line {index.line(doc.investment[0].start)}")
    if not doc.statements:
        raise StatementFormatError.collected(
            [Problem(None, "STMTRS", "the file holds no bank or credit-card statement")],
            file=filename)
    mine = [_read_statement(check, fr, lines) for fr in doc.statements]
    if check.problems:
        raise StatementFormatError.collected(check.problems, file=filename)
    total = sum(len(fr.transactions) for fr in doc.statements)
    if engine == "ofxparse" or (engine == "auto" and total <= OFXPARSE_MAX_TRANSACTIONS):
        theirs = _read_with_ofxparse(ofx, doc, file=filename, line_of=index.line)
        for fr, a, b in zip(doc.statements, mine, theirs):
            _compare(fr, a, b, check)
        if check.problems:
            raise StatementFormatError.collected(check.problems, file=filename,
                                                 what="disagreement")
    statements = tuple(_statement(fr, st, index, filename, sha)
                       for fr, st in zip(doc.statements, mine))
    return ParsedFile(filename, sha, OFX, ofx.encoding, statements)


def _statement(fr: Frame, st: tuple, index: LineIndex, filename, sha) -> Statement:
    account, cur, balance = st
    lines = tuple(fr.transactions)
    closing = None
    ledger = fr.get("LEDGERBAL")
    if balance is not None and isinstance(ledger, Frame):
        closing = Balance(to_minor(balance, cur), cur, ofx_date(_value(ledger, "DTASOF")[1]),
                          "LEDGERBAL", f"line {index.line(ledger.start)}")
    start = ofx_date(_value(fr, "DTSTART")[1])
    end = ofx_date(_value(fr, "DTEND")[1])
    day = end or (closing.date if closing else None) or max(
        (line.booking_date for line in lines), default=None)
    return Statement(account=account, currency=cur, format=OFX, filename=filename,
                     source_file_sha256=sha, statement_id=None, period_start=start,
                     period_end=end, statement_date=day, opening=None, closing=closing,
                     lines=lines, source_position=f"line {index.line(fr.start)}")


__all__ = ["parse_ofx", "ofx_decimal", "ofx_date", "OFXPARSE_MAX_TRANSACTIONS", "ENGINES",
           "CANONICAL_HEADER"]
