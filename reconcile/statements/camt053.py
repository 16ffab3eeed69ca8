"""ISO 20022 camt.053 (bank-to-customer statement, versions 2 to 8) -> normalized records.

Read with lxml, namespace-agnostic: elements are matched by local name, so
``camt.053.001.02`` through ``.08`` (and a file without a namespace) read
alike. The parser refuses entities and network access, and reports an XML
syntax error with its line.

Mapping
-------
- One :class:`~.model.Statement` per ``Stmt``; the account is ``Acct/Id/IBAN``
  (or ``Acct/Id/Othr/Id``); the currency ``Acct/Ccy``, else the opening
  balance's, else the first entry's.
- Opening balance: ``OPBD``, else ``PRCD`` (previous closing booked); closing:
  ``CLBD``. Available and interim balances are not booked balances and are
  not used for the proof.
- One :class:`~.model.StatementLine` per ``Ntry``, signed by ``CdtDbtInd``
  (``CRDT`` positive). A reversal (``RvslInd``) is already signed by its
  ``CdtDbtInd`` (a reversed credit is reported as ``DBIT``). A batch entry
  (several ``TxDtls``) stays one line with the entry total; its batch id is
  ``Btch/PmtInfId`` (or ``Btch/MsgId``). When every transaction of a batch
  gives its amount in the entry's currency (``TxDtls/Amt``, or
  ``AmtDtls/TxAmt/Amt`` in version 2), they must add up to the entry total
  (each signed by its own ``CdtDbtInd``, else the entry's), or the file is
  refused.
- ``Sts`` (text, or ``Sts/Cd`` from version 8): ``BOOK`` is booked;
  ``PDNG``, ``INFO`` and ``FUTR`` are pending.
- Dates: ``Dt`` as is; ``DtTm`` converted to the bank's time zone (``tz``)
  before taking the day.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Optional

from lxml import etree

from ledger.errors import LedgerError
from ledger.money import exponent, format_minor, to_minor

from .errors import Problem, StatementFormatError, UnsupportedFormatError, money_reason
from .model import BOOKED, CAMT053, PENDING, Balance, ParsedFile, Statement, StatementLine
from .source import local_date, resolve_tz, sha256_hex

STATUS_MAP = {"BOOK": BOOKED, "PDNG": PENDING, "INFO": PENDING, "FUTR": PENDING}
OPENING_CODES = ("OPBD", "PRCD")
CLOSING_CODES = ("CLBD",)
_AMOUNT = re.compile(r"\s*\d+(\.\d+)?\s*\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:Z|[+-][0-9]{2}:[0-9]{2})?\Z")
_OTHER_CAMT = {"BkToCstmrAcctRpt": "camt.052 (account report)",
               "BkToCstmrDbtCdtNtfctn": "camt.054 (debit/credit notification)"}


def _local(el) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(el, *path):
    """The first descendant along ``path`` of local names, or None."""
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if _local(c) == name), None)
    return el


def _children(el, name):
    return [c for c in el if _local(c) == name] if el is not None else []


def _text(el, *path) -> Optional[str]:
    node = _child(el, *path) if path else el
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


class _Reader:
    """Reads one document, collecting every problem with its line."""

    def __init__(self, tz: dt.tzinfo):
        self.tz = tz
        self.problems: list[Problem] = []

    def bad(self, el, field: str, message: str) -> None:
        self.problems.append(Problem(getattr(el, "sourceline", None), field, message))

    def date(self, el, field: str) -> Optional[dt.date]:
        """A ``Dt`` / ``DtTm`` choice (``BookgDt``, ``ValDt``, ``Bal/Dt``), or None."""
        if el is None:
            return None
        day = _text(el, "Dt")
        if day is not None:
            try:
                if not _DATE.match(day):   # a date (xs:date: an offset may follow), nothing else
                    raise ValueError(day)
                return dt.date.fromisoformat(day[:10])
            except ValueError:
                self.bad(el, field, f"{day!r} is not a date")
                return None
        stamp = _text(el, "DtTm")
        if stamp is not None:
            return self.datetime(el, field, stamp)
        self.bad(el, field, "has neither Dt nor DtTm")
        return None

    def datetime(self, el, field: str, stamp: str) -> Optional[dt.date]:
        try:
            value = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            self.bad(el, field, f"{stamp!r} is not a date-time")
            return None
        return local_date(value, self.tz)

    def amount(self, owner, field: str) -> tuple[Optional[Decimal], Optional[str], Optional[int]]:
        """(unsigned amount, currency, sign) of an element with ``Amt`` and ``CdtDbtInd``."""
        amt = _child(owner, "Amt")
        text = _text(amt)
        currency = (amt.get("Ccy") or "").strip().upper() if amt is not None else ""
        indicator = _text(owner, "CdtDbtInd")
        sign = {"CRDT": 1, "DBIT": -1}.get(indicator or "")
        if text is None or not _AMOUNT.match(text):
            self.bad(amt if amt is not None else owner, f"{field}/Amt",
                     f"{text!r} is not an amount" if text else "missing")
            return None, currency or None, sign
        if sign is None:
            self.bad(owner, f"{field}/CdtDbtInd", f"{indicator!r} is neither CRDT nor DBIT")
        if not currency:
            self.bad(amt, f"{field}/Amt", "has no Ccy")
        try:
            return Decimal(text), currency or None, sign
        except InvalidOperation:
            self.bad(amt, f"{field}/Amt", f"{text!r} is not an amount")
            return None, currency or None, sign

    def minor(self, el, field: str, value: Optional[Decimal], currency: Optional[str],
              sign: Optional[int]) -> Optional[int]:
        if value is None or currency is None:
            return None
        try:
            minor = to_minor(value, currency, what="value")
        except LedgerError as exc:
            self.bad(el, field, money_reason(exc))
            return None
        return None if sign is None else sign * minor


def _parse_xml(data: bytes, file: Optional[str]):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        raise StatementFormatError.collected(
            [Problem(line, "XML", f"not well-formed XML: {exc.msg}")], file=file) from None
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses
        raise StatementFormatError.collected(
            [Problem(None, "XML", f"not readable XML: {exc}")], file=file) from None
    if root is None:
        raise StatementFormatError.collected([Problem(None, "XML", "an empty document")],
                                             file=file)
    return root


def parse_camt053(data: bytes, *, filename: Optional[str] = None,
                  sha256: Optional[str] = None, tz=None) -> ParsedFile:
    """Every statement (``Stmt``) of a camt.053 document."""
    sha = sha256 or sha256_hex(data)
    root = _parse_xml(data, filename)
    body = root if _local(root) != "Document" else next(
        (c for c in root if isinstance(c.tag, str)), None)
    name = _local(body) if body is not None else ""
    if name in _OTHER_CAMT:
        raise UnsupportedFormatError(f"a {_OTHER_CAMT[name]}, not a camt.053 statement",
                                     file=filename, format=name)
    if name != "BkToCstmrStmt":
        raise StatementFormatError.collected(
            [Problem(getattr(body, "sourceline", None), "Document",
                     f"expected BkToCstmrStmt, found {name or 'nothing'}: not camt.053")],
            file=filename)
    reader = _Reader(resolve_tz(tz))
    stmts = _children(body, "Stmt")
    if not stmts:
        raise StatementFormatError.collected(
            [Problem(body.sourceline, "Stmt", "the document holds no statement")], file=filename)
    statements = [_statement(reader, st, k, filename, sha) for k, st in enumerate(stmts, 1)]
    if reader.problems:
        raise StatementFormatError.collected(reader.problems, file=filename)
    encoding = root.getroottree().docinfo.encoding
    return ParsedFile(filename, sha, CAMT053, encoding, tuple(statements))


def _balance(reader: _Reader, stmt, codes) -> Optional[Balance]:
    found = {}
    for bal in _children(stmt, "Bal"):
        code = _text(bal, "Tp", "CdOrPrtry", "Cd") or _text(bal, "Tp", "CdOrPrtry", "Prtry")
        if code in codes and code not in found:
            found[code] = bal
    for code in codes:
        bal = found.get(code)
        if bal is None:
            continue
        value, currency, sign = reader.amount(bal, f"Bal {code}")
        minor = reader.minor(bal, f"Bal {code}", value, currency, sign)
        if minor is None:
            return None
        return Balance(minor, currency, reader.date(_child(bal, "Dt"), f"Bal {code}/Dt"), code,
                       f"line {bal.sourceline}")
    return None


def _party(tx, role: str) -> Optional[str]:
    party = _child(tx, "RltdPties", role)
    name = _text(party, "Nm") or _text(party, "Pty", "Nm")
    acct = _child(tx, "RltdPties", role + "Acct", "Id")
    number = _text(acct, "IBAN") or _text(acct, "Othr", "Id")
    parts = [p for p in (name, number) if p]
    return " ".join(parts) or None


def _description(ntry, details) -> Optional[str]:
    words = []
    if len(details) == 1:
        tx = details[0]
        words += [t for t in (_text(u) for u in _children(_child(tx, "RmtInf"), "Ustrd")) if t]
        if not words:
            words += [_text(tx, "RmtInf", "Strd", "CdtrRefInf", "Ref") or ""]
        words.append(_text(tx, "AddtlTxInf") or "")
    elif details:
        words.append(f"batch of {len(details)} transactions")
    words.append(_text(ntry, "AddtlNtryInf") or "")
    text = " ".join(w for w in words if w)
    return text or None


def _statement(reader: _Reader, stmt, index: int, filename, sha) -> Statement:
    account = _text(stmt, "Acct", "Id", "IBAN") or _text(stmt, "Acct", "Id", "Othr", "Id")
    if account is None:
        reader.bad(stmt, "Acct", "the statement names no account (Acct/Id)")
    opening = _balance(reader, stmt, OPENING_CODES)
    closing = _balance(reader, stmt, CLOSING_CODES)
    entries = _children(stmt, "Ntry")
    currency = (_text(stmt, "Acct", "Ccy") or (opening.currency if opening else None)
                or next(((_child(n, "Amt").get("Ccy") or "").strip().upper()
                         for n in entries if _child(n, "Amt") is not None), None)
                or (closing.currency if closing else None))
    if currency:
        try:
            exponent(currency.upper())
            currency = currency.upper()
        except LedgerError as exc:
            reader.bad(stmt, "Acct/Ccy", money_reason(exc))
            currency = None
    else:
        reader.bad(stmt, "Acct/Ccy", "the statement gives no currency")
    lines = [line for k, ntry in enumerate(entries, 1)
             if (line := _line(reader, ntry, k, index, account or "", sha)) is not None]
    frto = _child(stmt, "FrToDt")
    start = end = None
    if frto is not None:
        stamp = _text(frto, "FrDtTm")
        start = reader.datetime(frto, "FrToDt/FrDtTm", stamp) if stamp else None
        stamp = _text(frto, "ToDtTm")
        end = reader.datetime(frto, "FrToDt/ToDtTm", stamp) if stamp else None
    day = ((closing.date if closing else None) or end
           or max((line.booking_date for line in lines), default=None))
    return Statement(account=account or "", currency=currency or "", format=CAMT053,
                     filename=filename, source_file_sha256=sha, statement_id=_text(stmt, "Id"),
                     period_start=start, period_end=end, statement_date=day, opening=opening,
                     closing=closing, lines=tuple(lines), source_position=f"line {stmt.sourceline}")


def _batch_adds_up(reader: _Reader, ntry, details: list, minor: int, currency: str,
                   sign: int) -> bool:
    """Whether a batch entry's transactions add up to the entry total (True when they do
    not all give an amount in the entry's currency: then nothing can be added up)."""
    total = 0
    for tx in details:
        amt = _child(tx, "Amt")
        if amt is None:
            amt = _child(tx, "AmtDtls", "TxAmt", "Amt")
        text = _text(amt)
        if text is None or (amt.get("Ccy") or "").strip().upper() != currency:
            return True
        indicator = _text(tx, "CdtDbtInd")
        tx_sign = {"CRDT": 1, "DBIT": -1}.get(indicator or "") if indicator else sign
        if tx_sign is None:
            reader.bad(tx, "TxDtls/CdtDbtInd", f"{indicator!r} is neither CRDT nor DBIT")
            return False
        if not _AMOUNT.match(text):
            reader.bad(amt, "TxDtls/Amt", f"{text!r} is not an amount")
            return False
        try:
            total += tx_sign * to_minor(Decimal(text), currency, what="value")
        except LedgerError as exc:
            reader.bad(amt, "TxDtls/Amt", money_reason(exc))
            return False
    if total != minor:
        reader.bad(ntry, "Ntry/NtryDtls",
                   f"the batch's {len(details)} transactions add up to "
                   f"{format_minor(total, currency, grouping=True)} {currency}, but the entry "
                   f"books {format_minor(minor, currency, grouping=True)} {currency}")
        return False
    return True


def _line(reader: _Reader, ntry, k: int, index: int, account: str,
          sha: str) -> Optional[StatementLine]:
    value, currency, sign = reader.amount(ntry, "Ntry")
    minor = reader.minor(ntry, "Ntry/Amt", value, currency, sign)
    status_text = _text(ntry, "Sts") or _text(ntry, "Sts", "Cd") or _text(ntry, "Sts", "Prtry")
    status = STATUS_MAP.get((status_text or "").upper())
    if status is None:
        reader.bad(ntry, "Ntry/Sts", f"{status_text!r} is not BOOK, PDNG, INFO or FUTR")
    booked = _child(ntry, "BookgDt")
    value_date = reader.date(_child(ntry, "ValDt"), "Ntry/ValDt")
    booking = reader.date(booked, "Ntry/BookgDt") if booked is not None else None
    if booking is None and booked is None:
        if status == PENDING and value_date is not None:
            booking = value_date
        else:
            reader.bad(ntry, "Ntry/BookgDt", "missing")
    if minor is None or booking is None or status is None:
        return None
    details = [tx for d in _children(ntry, "NtryDtls") for tx in _children(d, "TxDtls")]
    if len(details) > 1 and not _batch_adds_up(reader, ntry, details, minor, currency, sign):
        return None
    batch = _child(ntry, "NtryDtls", "Btch")
    batch_id = (_text(batch, "PmtInfId") or _text(batch, "MsgId")) if batch is not None else None
    e2e = counterparty = None
    if len(details) == 1:
        e2e = _text(details[0], "Refs", "EndToEndId")
        if e2e and e2e.upper() == "NOTPROVIDED":
            e2e = None
        counterparty = _party(details[0], "Dbtr" if sign == 1 else "Cdtr")
    bank_ref = (_text(ntry, "AcctSvcrRef") or _text(ntry, "NtryRef")
                or (_text(details[0], "Refs", "AcctSvcrRef") if len(details) == 1 else None))
    raw = etree.tostring(ntry, encoding="unicode", with_tail=False)
    return StatementLine(account, booking, value_date, minor, currency, bank_ref, e2e,
                         counterparty, _description(ntry, details), status, sha,
                         f"line {ntry.sourceline}, Stmt {index} Ntry {k}", raw,
                         batch_id=batch_id)


__all__ = ["parse_camt053", "STATUS_MAP", "OPENING_CODES", "CLOSING_CODES"]
