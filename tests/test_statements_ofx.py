"""OFX: the guards around ofxparse, and the linear reader that must agree with it."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from ofxparse import OfxParser
from ofxparse.ofxparse import OfxPreprocessedFile

from reconcile.statements import (UNPROVED, StatementFormatError, UnsupportedFormatError,
                                  parse_statement)
from reconcile.statements import ofx as ofx_module
from reconcile.statements.ofx import parse_ofx
from reconcile.statements.ofxsgml import close_leaves

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "statements"
OFX_FILES = sorted(FIXTURES.glob("ofx/**/*.ofx")) if FIXTURES.is_dir() else []
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated method:DeprecationWarning")

HEADER = ("OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:{enc}\n"
          "CHARSET:{cs}\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n")
BODY = """<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>
<DTSERVER>20261123000000[+8:CST]<LANGUAGE>CHI</SONRS></SIGNONMSGSRSV1>
<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>
<STMTRS><CURDEF>CNY<BANKACCTFROM><BANKID>ICBC<ACCTID>6222000011112222<ACCTTYPE>CHECKING</BANKACCTFROM>
<BANKTRANLIST><DTSTART>20261122<DTEND>20261122
<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20261122003000[+8:CST]<TRNAMT>1000.00<FITID>B001<NAME>张三<MEMO>充值 订单P001</STMTTRN>
<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20261122153000[+8:CST]<TRNAMT>-200.50<FITID>B002<REFNUM>W2001<NAME>李四<MEMO>提现</STMTTRN>
</BANKTRANLIST><LEDGERBAL><BALAMT>799.50<DTASOF>20261122235959[+8:CST]</LEDGERBAL>
<AVAILBAL><BALAMT>700.00<DTASOF>20261122235959[+8:CST]</AVAILBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>
"""
EXPECTED = [("张三", "充值 订单P001", 100000), ("李四", "提现", -20050)]

XML_NO_HEADER = (
    '<?xml version="1.0"?>\n<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE><SEVERITY>INFO'
    '</SEVERITY></STATUS><DTSERVER>20261123</DTSERVER><LANGUAGE>CHI</LANGUAGE></SONRS>'
    '</SIGNONMSGSRSV1><BANKMSGSRSV1><STMTTRNRS><TRNUID>1</TRNUID><STATUS><CODE>0</CODE>'
    '<SEVERITY>INFO</SEVERITY></STATUS><STMTRS><CURDEF>CNY</CURDEF><BANKACCTFROM><BANKID>1'
    '</BANKID><ACCTID>6222</ACCTID><ACCTTYPE>CHECKING</ACCTTYPE></BANKACCTFROM><BANKTRANLIST>'
    '<DTSTART>20261122</DTSTART><DTEND>20261122</DTEND><STMTTRN><TRNTYPE>CREDIT</TRNTYPE>'
    '<DTPOSTED>20261122003000[+8:CST]</DTPOSTED><TRNAMT>88.00</TRNAMT><FITID>X1</FITID>'
    '<NAME>王五</NAME><MEMO>充值</MEMO></STMTTRN></BANKTRANLIST><LEDGERBAL><BALAMT>88.00'
    '</BALAMT><DTASOF>20261122</DTASOF></LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>')


def sgml(enc: str, cs: str, body: str = BODY) -> str:
    return HEADER.format(enc=enc, cs=cs) + body


def summary(parsed):
    return [(x.counterparty, x.description, x.amount_minor) for x in parsed.lines]


def ofxparse_fails(data: bytes) -> bool:
    try:
        OfxParser.parse(io.BytesIO(data))
    except Exception:
        return True
    return False


def test_charset_none_reads_as_utf8():
    data = sgml("USASCII", "NONE").encode("utf-8")
    assert ofxparse_fails(data)  # ofxparse looks up a codec named "cpNONE"
    parsed = parse_ofx(data)
    assert parsed.encoding == "utf-8" and summary(parsed) == EXPECTED


def test_encoding_iso_8859_1_reads():
    body = (BODY.replace("张三", "Müller").replace("充值 订单P001", "Einzahlung")
            .replace("李四", "Café Noël").replace("提现", "Auszahlung"))
    data = sgml("ISO-8859-1", "NONE", body).encode("latin-1")
    assert ofxparse_fails(data)  # UnboundLocalError inside ofxparse
    parsed = parse_ofx(data)
    assert summary(parsed) == [("Müller", "Einzahlung", 100000), ("Café Noël", "Auszahlung", -20050)]


@pytest.mark.parametrize("enc,cs", [("USASCII", "936"), ("USASCII", "1252"), ("UTF-8", "NONE"),
                                    ("USASCII", "NONE")])
def test_gbk_bodies_read_whatever_the_header_claims(enc, cs):
    parsed = parse_ofx(sgml(enc, cs).encode("gbk"))
    assert parsed.encoding == "gb18030" and summary(parsed) == EXPECTED


def test_xml_without_sgml_header_carrying_utf8_chinese():
    data = XML_NO_HEADER.encode("utf-8")
    assert ofxparse_fails(data)  # ofxparse decodes a header-less body as ASCII
    parsed = parse_ofx(data)
    assert summary(parsed) == [("王五", "充值", 8800)]


def test_booking_day_is_the_banks_local_day():
    data = sgml("USASCII", "936").encode("gbk")
    naive_utc = OfxParser.parse(io.BytesIO(data)).account.statement.transactions[0].date
    assert naive_utc == dt.datetime(2026, 11, 21, 16, 30)  # what ofxparse makes of it
    line = parse_ofx(data).lines[0]
    assert line.booking_date == dt.date(2026, 11, 22)


def test_statement_values_raw_text_and_positions():
    parsed = parse_ofx(sgml("UTF-8", "NONE").encode("utf-8"), filename="day.ofx")
    (st,) = parsed.statements
    assert (st.account, st.currency, st.period_start, st.period_end, st.statement_date) == (
        "6222000011112222", "CNY", dt.date(2026, 11, 22), dt.date(2026, 11, 22),
        dt.date(2026, 11, 22))
    assert st.opening is None and st.closing.amount_minor == 79950  # LEDGERBAL, not AVAILBAL
    assert st.closing.code == "LEDGERBAL"
    first, second = st.lines
    assert first.raw == ("<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20261122003000[+8:CST]<TRNAMT>1000.00"
                         "<FITID>B001<NAME>张三<MEMO>充值 订单P001</STMTTRN>")
    assert (first.bank_ref, first.end_to_end_ref, second.end_to_end_ref) == ("B001", None, "W2001")
    assert (first.source_position, second.source_position) == ("line 16, STMTTRN 1",
                                                               "line 17, STMTTRN 2")


def test_ofx_statements_are_unproved_not_derived():
    parsed = parse_statement(sgml("UTF-8", "NONE").encode("utf-8"), filename="day.ofx")
    assert parsed.statements[0].proof == UNPROVED
    assert parsed.statements[0].opening_balance_minor is None


def test_an_ofxparse_exception_becomes_a_typed_error_with_the_line():
    body = BODY.replace("<STATUS><CODE>0<SEVERITY>INFO</STATUS>\n<DTSERVER>",
                        "<STATUS><SEVERITY>INFO</STATUS>\n<DTSERVER>", 1)
    with pytest.raises(StatementFormatError) as caught:
        parse_ofx(sgml("UTF-8", "NONE", body).encode(), filename="x.ofx", engine="ofxparse")
    error = caught.value
    assert error.file == "x.ofx" and error.position == "line 11"
    assert "ofxparse cannot read the file (TypeError" in str(error)


def test_every_bad_transaction_is_reported_at_once():
    body = BODY.replace("<TRNAMT>1000.00", "<TRNAMT>1000.001").replace("<FITID>B002", "<FITID>")
    with pytest.raises(StatementFormatError) as caught:
        parse_ofx(sgml("UTF-8", "NONE", body).encode())
    assert [(p.line, p.field) for p in caught.value.problems] == [(16, "TRNAMT"), (17, "FITID")]


def test_bank_error_status_and_investment_statements_are_refused():
    body = BODY.replace("<TRNUID>1<STATUS><CODE>0<SEVERITY>INFO",
                        "<TRNUID>1<STATUS><CODE>2000<SEVERITY>ERROR<MESSAGE>down")
    with pytest.raises(StatementFormatError, match="code 2000 down"):
        parse_ofx(sgml("UTF-8", "NONE", body).encode())
    inv = BODY.replace("STMTRS>", "INVSTMTRS>")
    with pytest.raises(UnsupportedFormatError, match="investment"):
        parse_ofx(sgml("UTF-8", "NONE", inv).encode())
    with pytest.raises(StatementFormatError, match="no <OFX>"):
        parse_ofx(b"OFXHEADER:100\n\nnothing here")


def big_file(n: int) -> bytes:
    rows = "".join(f"<STMTTRN><TRNTYPE>CREDIT<DTPOSTED>20261122{i % 24:02d}3000[+8:CST]"
                   f"<TRNAMT>{i}.{i % 100:02d}<FITID>F{i:06d}<NAME>用户{i}<MEMO>充值</STMTTRN>\n"
                   for i in range(n))
    body = BODY.split("<STMTTRN>")[0] + rows + "</BANKTRANLIST>" + BODY.split("</BANKTRANLIST>")[1]
    return sgml("UTF-8", "NONE", body).encode()


def test_large_files_take_the_linear_path(monkeypatch):
    data = big_file(40)
    via_ofxparse = parse_ofx(data, engine="ofxparse")
    monkeypatch.setattr(ofx_module, "OFXPARSE_MAX_TRANSACTIONS", 10)

    def refuse(*args, **kwargs):
        raise AssertionError("ofxparse must not read a large file")

    monkeypatch.setattr(OfxParser, "parse", refuse)
    linear = parse_ofx(data)
    assert linear == via_ofxparse and len(linear.lines) == 40
    assert linear.lines[39].amount_minor == 3939 and linear.lines[39].counterparty == "用户39"


@pytest.mark.parametrize("path", OFX_FILES, ids=lambda p: p.name)
def test_both_readers_agree_on_every_fixture(path):
    data = path.read_bytes()
    results = []
    for engine in ("ofxparse", "linear"):
        try:
            results.append(parse_ofx(data, filename=path.name, engine=engine))
        except StatementFormatError as exc:
            results.append((type(exc), exc.problems))
    assert results[0] == results[1]


@pytest.mark.parametrize("path", OFX_FILES, ids=lambda p: p.name)
def test_closing_leaves_is_ofxparse_preprocessing_made_linear(path):
    text = "\n" + path.read_bytes().decode("ascii")  # no header: ofxparse reads it as ASCII
    theirs = OfxPreprocessedFile(io.BytesIO(text.encode("ascii"))).fh.read()
    assert close_leaves(text) == theirs


def test_a_disagreement_between_the_readers_is_refused(monkeypatch):
    real = ofx_module._read_with_ofxparse

    def altered(*args, **kwargs):
        stmts = real(*args, **kwargs)
        first = stmts[0]
        txn = first.transactions[0]._replace(amount=first.transactions[0].amount + 1)
        return [first._replace(transactions=(txn,) + first.transactions[1:])] + stmts[1:]

    monkeypatch.setattr(ofx_module, "_read_with_ofxparse", altered)
    with pytest.raises(StatementFormatError, match="ofxparse reads"):
        parse_ofx(sgml("UTF-8", "NONE").encode(), engine="ofxparse")
