"""SWIFT MT940 statements -> normalized records, through the ``mt-940`` package.

The file is split into statements at each line starting with ``:20:``; each
statement is parsed by ``mt940`` and checked against our own scan of its
tag lines, which also gives every line its number and raw text (the ``:61:``
line with its continuation and ``:86:`` lines).

Signs are decided here, explicitly, from the ``:61:`` debit/credit mark,
never from the package's options: ``C`` (credit) and ``RD`` (reversal of a
debit: money comes back) are money in, positive; ``D`` (debit) and ``RC``
(reversal of a credit: money goes back out) are money out, negative. The
betterplace fixture only balances that way.

Dates: the ``:61:`` value date is the value date; its optional entry date
(``MMDD``) is the booking date, else the value date. ``mt940`` moves a
"30 February" value date (a German convention for period-end settlements)
to the last day of February.

Structure is checked before figures: each statement must name its account
once (``:25:``), open once (``:60F:``/``:60M:``) and close once
(``:62F:``/``:62M:``); a ``:61:`` the package folds into another line (one
without a transaction type code) is refused, never dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from typing import Optional

import mt940
from mt940.models import Transactions

from ledger.errors import LedgerError
from ledger.money import exponent, to_minor

from .errors import Problem, StatementFormatError, money_reason
from .model import BOOKED, MT940, Balance, ParsedFile, Statement, StatementLine
from .source import GBK_IF_CHINESE, DecodeFailed, decode_text, sha256_hex

#: Debit/credit marks of ``:61:`` and the sign of money they mean for the account.
MARK_SIGNS = {"C": 1, "RD": 1, "D": -1, "RC": -1}
OPENING_TAGS = ("60F", "60M")
CLOSING_TAGS = ("62F", "62M")
_TAG = re.compile(r":(\d{2}[A-Z]?|NS):")
_LINE_END_TAGS = ("61", "62F", "62M", "62", "64", "65", "20")
_OPTIONS = mt940.Options(case_insensitive_marks=True, applicant_iban=True,
                         merge_keeps_values=True, unbounded_details=True, strip_bom=True,
                         non_swift_free_text=True)


def _keep_61_refs(transactions, tag, tag_dict, result):
    """Keep the ``:61:`` references before a later ``:86:`` merges into them."""
    result["_refs_61"] = (result.get("customer_reference"), result.get("bank_reference"))
    return result


_PROCESSORS = {"post_statement": [*Transactions.DEFAULT_PROCESSORS["post_statement"],
                                  _keep_61_refs]}


@contextlib.contextmanager
def _quiet_package_log():
    """The package logs every pattern it fails to match; its failure becomes our error instead."""
    log = logging.getLogger("mt940")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _plain(day) -> Optional[dt.date]:
    return None if day is None else dt.date(day.year, day.month, day.day)


def _ref(value) -> Optional[str]:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return None if not value or value.upper() == "NONREF" else value


class _Block:
    """One statement's lines (0-based ``start``..``end`` in the file) and its tag lines."""

    def __init__(self, lines: list[str], start: int, end: int):
        self.start, self.end = start, end
        self.tags: list[tuple[str, int]] = []
        for i in range(start, end):
            m = _TAG.match(lines[i])
            if m:
                self.tags.append((m.group(1), i))

    def where(self, *names) -> list[int]:
        return [i for tag, i in self.tags if tag in names]

    def raw_end(self, i: int) -> int:
        """Where the transaction starting at line ``i`` ends (its :86: lines included)."""
        for tag, j in self.tags:
            if j > i and tag in _LINE_END_TAGS:
                return j
        return self.end


def _failed_line(exc: BaseException, lines: list[str], block: _Block) -> int:
    """The file line of the tag ``mt940`` failed on, else the statement's first line."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        local = tb.tb_frame.f_locals
        match, data = local.get("match"), local.get("tag_data")
        if (isinstance(match, re.Match) and isinstance(data, str)
                and "full_tag" in match.re.groupindex):
            found = (match.group("full_tag"), data.strip().split("\n")[0][:30])
        tb = tb.tb_next
    if found:
        prefix = f":{found[0]}:"
        for i in range(block.start, block.end):
            if lines[i].startswith(prefix) and found[1] in lines[i]:
                return i + 1
    return block.start + 1


def _reason(exc: BaseException) -> str:
    args = exc.args
    if isinstance(exc, RuntimeError) and len(args) == 3 and hasattr(args[1], "id"):
        return f":{args[1].id}: does not read as a {type(args[1]).__name__} field: {args[2]!r}"
    return f"{type(exc).__name__}: {args[0] if args else exc}"


def parse_mt940(data: bytes, *, filename: Optional[str] = None,
                sha256: Optional[str] = None) -> ParsedFile:
    """Every statement of an MT940 file."""
    sha = sha256 or sha256_hex(data)
    try:
        text, encoding, _ = decode_text(data, ["utf-8", GBK_IF_CHINESE, "cp1252", "latin-1"])
    except DecodeFailed as exc:
        raise StatementFormatError.collected([Problem(None, "encoding", str(exc))],
                                             file=filename) from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    starts = [i for i, line in enumerate(lines) if line.startswith(":20:")]
    if not starts:
        raise StatementFormatError.collected(
            [Problem(None, "statement", "no line starts with :20:, so the file holds no MT940 "
                                        "statement")], file=filename)
    problems: list[Problem] = []
    for i in range(starts[0]):   # above the first statement only headers ({1:...}{4:) belong
        m = _TAG.match(lines[i])
        if m:
            problems.append(Problem(i + 1, f":{m.group(1)}:", "a field before the first :20:, "
                                                              "in no statement (its :20: missing?)"))
    statements = []
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        block = _Block(lines, start, end)
        statement = _statement(block, lines, problems, filename, sha, len(statements) + 1)
        if statement is not None:
            statements.append(statement)
    if problems:
        raise StatementFormatError.collected(problems, file=filename)
    return ParsedFile(filename, sha, MT940, encoding, tuple(statements))


def _structure(block: _Block, problems: list[Problem]) -> bool:
    ok = True
    for names, what in (((("25",)), "names its account (:25:)"),
                        (OPENING_TAGS, "gives its opening balance (:60F:/:60M:)"),
                        (CLOSING_TAGS, "gives its closing balance (:62F:/:62M:)")):
        found = block.where(*names)
        if len(found) != 1:
            line = (found[1] if len(found) > 1 else block.start) + 1
            problems.append(Problem(line, f":{names[0]}:",
                                    f"the statement {what} {len(found)} times, not once"))
            ok = False
    return ok


def _balance(tr: Transactions, keys, tag_line: int, problems) -> Optional[Balance]:
    for key, code in keys:
        bal = tr.data.get(key)
        if bal is None:
            continue
        amount = getattr(bal, "amount", None)
        currency = (getattr(amount, "currency", None) or "").upper()
        sign = MARK_SIGNS.get((bal.status or "").upper())
        try:
            exponent(currency)
            minor = to_minor(abs(amount.amount), currency, what="value")
        except (LedgerError, AttributeError) as exc:
            problems.append(Problem(tag_line + 1, f":{code}:", money_reason(exc)))
            return None
        if sign is None or bal.status.upper() not in ("C", "D"):
            problems.append(Problem(tag_line + 1, f":{code}:",
                                    f"mark {bal.status!r} is not C or D"))
            return None
        return Balance(sign * minor, currency, _plain(bal.date), f":{code}:",
                       f"line {tag_line + 1}")
    return None


def _statement(block: _Block, lines: list[str], problems: list[Problem], filename, sha,
               number: int) -> Optional[Statement]:
    if not _structure(block, problems):
        return None
    tr = Transactions(processors=_PROCESSORS, options=_OPTIONS)
    try:
        with _quiet_package_log():
            tr.parse("\n".join(lines[block.start:block.end]))
    except Exception as exc:  # the package raises anything: make it ours, with the line
        problems.append(Problem(_failed_line(exc, lines, block), "MT940",
                                f"mt940 cannot read this tag ({_reason(exc)})"))
        return None
    found = len(problems)
    opening = _balance(tr, (("final_opening_balance", "60F"),
                            ("intermediate_opening_balance", "60M")),
                       block.where(*OPENING_TAGS)[0], problems)
    closing = _balance(tr, (("final_closing_balance", "62F"),
                            ("intermediate_closing_balance", "62M")),
                       block.where(*CLOSING_TAGS)[0], problems)
    line61 = block.where("61")
    if len(tr) != len(line61):
        problems.append(Problem(block.start + 1, ":61:",
                                f"{len(line61)} :61: lines but mt940 reads {len(tr)} transactions "
                                "(a :61: without a transaction type code?)"))
    if len(problems) > found or opening is None:
        return None
    account = " ".join(str(tr.data.get("account_identification") or "").split())
    if not account:
        problems.append(Problem(block.where("25")[0] + 1, ":25:", "the account is empty"))
    out = [_line(t, i, block, lines, account, opening.currency, sha, problems)
           for t, i in zip(tr, line61)]
    if len(problems) > found:
        return None
    data = tr.data
    ident = " ".join(str(x) for x in (data.get("transaction_reference"),
                                      "/".join(str(x) for x in (data.get("statement_number"),
                                                                 data.get("sequence_number"))
                                               if x is not None)) if x)
    return Statement(account=account, currency=opening.currency, format=MT940,
                     filename=filename, source_file_sha256=sha, statement_id=ident or None,
                     period_start=opening.date, period_end=closing.date if closing else None,
                     statement_date=closing.date if closing else None, opening=opening,
                     closing=closing, lines=tuple(out),
                     source_position=f"line {block.start + 1}, statement {number}")


def _line(t, i: int, block: _Block, lines: list[str], account: str, currency: str, sha: str,
          problems: list[Problem]) -> Optional[StatementLine]:
    d = t.data
    mark = str(d.get("status") or "").upper()
    sign = MARK_SIGNS.get(mark)
    if sign is None:
        problems.append(Problem(i + 1, ":61:", f"debit/credit mark {mark!r} is not C, D, RC or RD"))
        return None
    try:
        minor = sign * to_minor(abs(d["amount"].amount), currency, what="value")
    except (LedgerError, KeyError, AttributeError) as exc:
        problems.append(Problem(i + 1, ":61:", money_reason(exc)))
        return None
    value_date = _plain(d.get("date"))
    customer, bank = d.get("_refs_61", (None, None))
    if isinstance(customer, str) and customer.strip().upper() == "KREF+":
        # "KREF+" points at the customer reference given in :86: (KREF+...)
        merged = str(d.get("customer_reference") or "")
        customer = merged.split("\n", 1)[1] if "\n" in merged else None
    purpose = " ".join(x for x in (_ref(d.get("posting_text")), _ref(d.get("purpose"))) if x)
    description = purpose or _ref(d.get("transaction_details")) or _ref(d.get("extra_details"))
    counterparty = " ".join(x for x in (_ref(d.get("applicant_name")),
                                        _ref(d.get("applicant_iban"))) if x)
    end_to_end = _ref(d.get("end_to_end_reference")) or _ref(customer)
    return StatementLine(account, _plain(d.get("entry_date")) or value_date, value_date, minor,
                         currency, _ref(bank), end_to_end,
                         counterparty or None, description, BOOKED, sha, f"line {i + 1}",
                         "\n".join(lines[i:block.raw_end(i)]).rstrip())


__all__ = ["parse_mt940", "MARK_SIGNS"]
