"""camt.053 and MT940 specifics, format detection, and the balance proof."""

from __future__ import annotations

import datetime as dt

import pytest

from reconcile.statements import (PENDING, PROVED, UNPROVED, Balance, Statement, StatementError,
                                  StatementFormatError, StatementImbalanceError, StatementLine,
                                  UnsupportedFormatError, detect_format, parse_statement)
from reconcile.statements.proof import check_statement

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def camt(entries: str, *, ns: str = NS, root: str = "BkToCstmrStmt",
         opening: str = "100.00", closing: str = "1090.00") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{ns}"><{root}><GrpHdr><MsgId>M1</MsgId></GrpHdr>
<Stmt><Id>S1</Id>
<Acct><Id><IBAN>CN0012345678</IBAN></Id><Ccy>CNY</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{opening}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-21</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{closing}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-22</Dt></Dt></Bal>
{entries}
</Stmt></{root}></Document>""".encode()


BATCH = """<Ntry><Amt Ccy="CNY">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><DtTm>2026-11-21T16:30:00Z</DtTm></BookgDt><AcctSvcrRef>BANK-1</AcctSvcrRef>
<NtryDtls><Btch><PmtInfId>BATCH-7</PmtInfId><NbOfTxs>3</NbOfTxs></Btch>
<TxDtls><Refs><EndToEndId>P1</EndToEndId></Refs><Amt Ccy="CNY">500.00</Amt></TxDtls>
<TxDtls><Refs><EndToEndId>P2</EndToEndId></Refs><Amt Ccy="CNY">300.00</Amt></TxDtls>
<TxDtls><Refs><EndToEndId>P3</EndToEndId></Refs><Amt Ccy="CNY">200.00</Amt></TxDtls>
</NtryDtls></Ntry>
<Ntry><Amt Ccy="CNY">10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-22</Dt></BookgDt><NtryRef>R2</NtryRef>
<NtryDtls><TxDtls><Refs><EndToEndId>P9</EndToEndId></Refs><RltdPties><Cdtr><Pty><Nm>李四</Nm>
</Pty></Cdtr></RltdPties><RmtInf><Ustrd>退款</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
<Ntry><Amt Ccy="CNY">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>PDNG</Sts>
<ValDt><Dt>2026-11-23</Dt></ValDt></Ntry>"""


def test_camt_batch_entry_keeps_the_total_and_days_are_local():
    parsed = parse_statement(camt(BATCH), filename="day.xml")
    (st,) = parsed.statements
    assert (st.account, st.currency, st.proof) == ("CN0012345678", "CNY", PROVED)
    batch, reversal, pending = st.lines
    assert (batch.amount_minor, batch.batch_id, batch.end_to_end_ref, batch.bank_ref) == (
        100000, "BATCH-7", None, "BANK-1")
    assert batch.description == "batch of 3 transactions"
    assert batch.booking_date == dt.date(2026, 11, 22)  # 16:30 UTC is 00:30 in Shanghai
    utc = parse_statement(camt(BATCH), tz="UTC").lines[0]
    assert utc.booking_date == dt.date(2026, 11, 21)
    assert (reversal.amount_minor, reversal.bank_ref, reversal.end_to_end_ref,
            reversal.counterparty, reversal.description) == (-1000, "R2", "P9", "李四", "退款")
    assert (pending.status, pending.amount_minor, pending.booking_date) == (
        PENDING, 500, dt.date(2026, 11, 23))
    assert batch.raw.startswith("<Ntry") and "BATCH-7" in batch.raw
    assert batch.source_position == "line 9, Stmt 1 Ntry 1"


def test_camt_pending_lines_do_not_move_the_booked_balance():
    with pytest.raises(StatementImbalanceError):
        parse_statement(camt(BATCH, closing="1095.00"))


@pytest.mark.parametrize("version", ["02", "04", "08"])
def test_camt_is_namespace_agnostic(version):
    ns = f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}"
    assert len(parse_statement(camt(BATCH, ns=ns)).lines) == 3
    bare = camt(BATCH).replace(f' xmlns="{NS}"'.encode(), b"")
    assert len(parse_statement(bare, format="camt053").lines) == 3


def test_camt_refusals():
    with pytest.raises(UnsupportedFormatError, match="camt.054"):
        parse_statement(camt(BATCH, root="BkToCstmrDbtCdtNtfctn"), format="camt053")
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(camt(BATCH)[:-40], filename="cut.xml")
    assert caught.value.position and "not well-formed XML" in str(caught.value)
    bad = BATCH.replace("1000.00</Amt><CdtDbtInd>CRDT", "1000.001</Amt><CdtDbtInd>XX")
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(camt(bad))
    assert [p.field for p in caught.value.problems] == ["Ntry/CdtDbtInd", "Ntry/Amt"]


def test_camt_entities_are_not_expanded():
    evil = camt(BATCH).replace(b'<?xml version="1.0" encoding="UTF-8"?>',
                               b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
                               b'"file:///etc/passwd">]>').replace(b"<MsgId>M1", b"<MsgId>&x;")
    parsed = parse_statement(evil)
    assert "root:" not in parsed.lines[0].raw


def mt940(lines: str) -> bytes:
    return (":20:REF1\n:25:CN0012345678\n:28C:1/1\n:60F:C261121CNY1000,00\n" + lines
            + "-\n").encode()


def test_mt940_signs_are_explicit_for_all_four_marks():
    data = mt940(":61:2611221122C100,00NTRFP1001//B1\n:86:充值\n"
                 ":61:2611221122D30,00NTRFNONREF//B2\n"
                 ":61:2611221122RC20,00NTRFNONREF//B3\n"
                 ":61:2611221122RD5,00NTRFNONREF//B4\n"
                 ":61:2611221122rc1,00NTRFNONREF//B5\n"
                 ":62F:C261122CNY1054,00\n")
    parsed = parse_statement(data, filename="day.sta")
    assert [x.amount_minor for x in parsed.lines] == [10000, -3000, -2000, 500, -100]
    first = parsed.lines[0]
    assert (first.bank_ref, first.end_to_end_ref, first.description, first.raw) == (
        "B1", "P1001", "充值", ":61:2611221122C100,00NTRFP1001//B1\n:86:充值")
    assert parsed.statements[0].proof == PROVED


def test_mt940_a_folded_line_is_refused_not_dropped():
    data = mt940(":61:2611221122C100,00\n:61:2611221122D30,00NTRFNONREF//B2\n"
                 ":62F:C261122CNY1070,00\n")
    with pytest.raises(StatementFormatError, match="mt940 reads 1 transactions"):
        parse_statement(data)


def test_mt940_a_bad_tag_is_reported_with_its_line():
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(mt940(":61:garbage\n:62F:C261122CNY1000,00\n"), filename="x.sta")
    assert caught.value.problems[0].line == 5 and "mt940 cannot read" in str(caught.value)
    with pytest.raises(StatementFormatError, match="closing balance"):
        parse_statement(mt940(":61:2611221122C1,00NTRFX//B\n"))


@pytest.mark.parametrize("data,name,fmt", [
    (b"OFXHEADER:100\nDATA:OFXSGML\n\n<OFX></OFX>", None, "ofx"),
    (b'<?xml version="1.0"?>\n<?OFX OFXHEADER="200"?><OFX></OFX>', "x.xml", "ofx"),
    (camt(BATCH), None, "camt053"),
    (mt940(""), None, "mt940"),
    (b"{1:F01X}{2:I940X}{4:\n:20:A\n:25:B\n", None, "mt940"),
    ("账号,交易日期\n".encode("gbk"), "day.csv", "csv"),
    (b"whatever", "x.STA", "mt940"),
])
def test_format_detection(data, name, fmt):
    assert detect_format(data, name) == fmt


def test_unknown_formats_are_refused():
    with pytest.raises(UnsupportedFormatError, match="cannot tell"):
        parse_statement(b"hello", filename="notes.bin")
    with pytest.raises(UnsupportedFormatError, match="unknown format"):
        parse_statement(b"hello", format="qif")
    with pytest.raises(StatementError, match="cannot read"):
        parse_statement("no/such/file.ofx")


def line(amount: int, balance=None, currency="CNY", status="booked") -> StatementLine:
    return StatementLine("A", dt.date(2026, 11, 22), None, amount, currency, "r", None, None,
                         None, status, "0" * 64, "line 1", "raw", balance_after_minor=balance)


def statement(lines, opening=0, closing=None, currency="CNY") -> Statement:
    bal = lambda m: None if m is None else Balance(m, currency, None, "x")  # noqa: E731
    return Statement("A", "CNY", "csv", "f.csv", "0" * 64, None, None, None, None, bal(opening),
                     bal(closing), tuple(lines))


def test_the_proof():
    assert check_statement(statement([line(5), line(-2)], 10, 13)) == (PROVED, ())
    assert check_statement(statement([line(5)], None, 13)) == (UNPROVED, ())
    state, found = check_statement(statement([line(5), line(7, status="pending")], 10, 22))
    assert state == UNPROVED and found[0].difference_minor == 7
    state, found = check_statement(statement([line(5, 15), line(1, 17), line(1, 18)], 10, 18))
    assert [(f.difference_minor, f.closing_minor) for f in found] == [(1, 17)]
    state, found = check_statement(statement([line(5, currency="USD")], 10, 15))
    assert "is in USD" in found[0].reason
