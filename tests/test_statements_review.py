"""Statement parsers at their edges: amounts, batches and mappings that must not slip through."""

from __future__ import annotations

import pytest

from reconcile.statements import MappingError, StatementFormatError, parse_statement

from .test_statements_formats import BATCH, camt
from .test_statements_ofx import BODY, sgml


def test_camt_batch_whose_transactions_do_not_add_up_is_refused():
    wrong = BATCH.replace('<Amt Ccy="CNY">300.00</Amt>', '<Amt Ccy="CNY">301.00</Amt>')
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(camt(wrong), filename="day.xml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (9, "Ntry/NtryDtls")
    assert "add up to 1,001.00 CNY, but the entry books 1,000.00 CNY" in problem.message
    # a transaction signed against the entry counts against it
    debit = BATCH.replace('<Amt Ccy="CNY">300.00</Amt>',
                          '<Amt Ccy="CNY">300.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>')
    with pytest.raises(StatementFormatError, match="add up to 400.00 CNY"):
        parse_statement(camt(debit))
    # version 2 gives a transaction's amount in AmtDtls/TxAmt
    v2 = wrong.replace('<Amt Ccy="CNY">301.00</Amt>',
                       '<AmtDtls><TxAmt><Amt Ccy="CNY">301.00</Amt></TxAmt></AmtDtls>')
    with pytest.raises(StatementFormatError, match="add up to 1,001.00 CNY"):
        parse_statement(camt(v2))


def test_camt_batch_without_every_amount_in_the_entry_currency_is_not_added_up():
    other = BATCH.replace('<Amt Ccy="CNY">300.00</Amt>', '<Amt Ccy="EUR">30.00</Amt>')
    assert parse_statement(camt(other)).lines[0].amount_minor == 100000
    missing = BATCH.replace('<Amt Ccy="CNY">300.00</Amt>', '')
    assert parse_statement(camt(missing)).lines[0].amount_minor == 100000


DAY_HEAD = "账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要\n"


def day(amount: str, balance: str, flag: str = "贷") -> bytes:
    return (DAY_HEAD + f'6222,2026-11-22,B001,P1,U1,张三,{flag},"{amount}","{balance}",充值\n'
            ).encode()


@pytest.mark.parametrize("amount", ["¥-1000.00", "￥-1000.00", "¥ -0.00", "-0.00"])
def test_csv_minus_sign_next_to_a_flag_is_refused_wherever_it_stands(amount):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(day(amount, "49000.00"), filename="day.csv")
    (problem,) = caught.value.problems
    assert problem.field == "amount" and "is not an unsigned amount" in problem.message


@pytest.mark.parametrize("amount", ["1,00", "10,00.00", "1,0000.00", "1,000，000.00", "1 0 0",
                                    "1,000.00,", ",100.00",
                                    "，-1000.00"])
def test_csv_thousands_separators_out_of_place_are_refused(amount):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(day(amount, "50100.00"), filename="day.csv")
    (problem,) = caught.value.problems
    assert problem.field == "amount" and "is not an amount" in problem.message


@pytest.mark.parametrize("amount,minor", [("1,000.00", 100000), ("1，000.00", 100000),
                                          ("¥1,000.00", 100000), ("￥ 1 000.00", 100000),
                                          ("1,234,567.89", 123456789), ("+1,000", 100000)])
def test_csv_thousands_separators_in_place_read(amount, minor):
    parsed = parse_statement(day(amount, "2,000,000.00"), filename="day.csv")
    assert parsed.lines[0].amount_minor == minor


def ofx(amount: str, balance: str = "799.50") -> bytes:
    body = BODY.replace("<TRNAMT>1000.00", f"<TRNAMT>{amount}").replace(
        "<BALAMT>799.50", f"<BALAMT>{balance}")
    return sgml("UTF-8", "NONE", body).encode()


@pytest.mark.parametrize("amount", ["1,000", "-12,500", "+1,000,000"])
def test_ofx_comma_before_three_digits_is_ambiguous_and_refused(amount):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(ofx(amount), filename="day.ofx")
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (16, "TRNAMT") and "ambiguous" in problem.message
    with pytest.raises(StatementFormatError, match="BALAMT: '1,000' is ambiguous"):
        parse_statement(ofx("1000.00", balance="1,000"))


@pytest.mark.parametrize("amount", ["1E3", "1e3", "7.995E2", "NaN", "-Infinity", "0x10"])
def test_ofx_exponent_notation_and_special_values_are_not_amounts(amount):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(ofx(amount), filename="day.ofx")
    assert "TRNAMT" in str(caught.value) and "is not an amount" in str(caught.value)


@pytest.mark.parametrize("amount,minor", [("1.000,00", 100000), ("1 000,00", 100000),
                                          ("+1058,53", 105853), ("1,000.00", 100000),
                                          ("1000,5", 100050), ("-0.00", 0), ("-.50", -50),
                                          (".5", 50), ("1000.", 100000), ("+ 1 000,00", 100000)])
def test_ofx_amounts_ofxparse_reads_still_read(amount, minor):
    assert parse_statement(ofx(amount)).lines[0].amount_minor == minor


COLUMNS = {"date": "交易日期", "bank_serial": "银行流水号", "amount": "金额",
           "dc_flag": "借贷标志", "account": "账号"}


@pytest.mark.parametrize("encoding", ["gbkk", "utf8x", "rot13", "hex", ""])
def test_mapping_with_an_encoding_that_is_not_a_text_codec_is_refused(encoding):
    with pytest.raises(MappingError) as caught:
        parse_statement(day("1000.00", "51000.00"), filename="day.csv",
                        mapping={"columns": COLUMNS, "encoding": encoding})
    assert [p.field for p in caught.value.problems] == ["encoding"]


@pytest.mark.parametrize("encoding", ["auto", "AUTO", "gbk", "GB2312", "utf-8", "cp936"])
def test_mapping_encodings_that_are_text_codecs_read(encoding):
    data = day("1000.00", "51000.00")
    if encoding.lower() in ("gbk", "gb2312", "cp936"):
        data = data.decode().encode("gbk")
    parsed = parse_statement(data, filename="day.csv",
                             mapping={"columns": COLUMNS, "encoding": encoding})
    assert parsed.lines[0].counterparty is None and parsed.lines[0].amount_minor == 100000


@pytest.mark.parametrize("flags", [{"credit_flags": ["贷"], "debit_flags": ["贷"]},
                                   {"credit_flags": ["d", "收"]},
                                   {"debit_flags": ["Credit"]}])
def test_mapping_with_a_flag_both_credit_and_debit_is_refused(flags):
    with pytest.raises(MappingError) as caught:
        parse_statement(day("1000.00", "51000.00"), filename="day.csv",
                        mapping={"columns": COLUMNS, **flags})
    assert [p.field for p in caught.value.problems] == ["credit_flags"]


@pytest.mark.parametrize("text", ["2026112", "202611022", "1112026"])
def test_mapping_date_formats_do_not_guess_the_fields_of_a_short_date(text):
    data = day("1000.00", "51000.00").replace(b"2026-11-22", text.encode())
    formats = ["%d%m%Y"] if text == "1112026" else ["%Y%m%d"]
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(data, filename="day.csv",
                        mapping={"columns": COLUMNS, "date_formats": formats})
    assert [p.field for p in caught.value.problems] == ["date"]


@pytest.mark.parametrize("text,formats", [("20261122", ["%Y%m%d"]),
                                          ("20261122235959", ["%Y%m%d%H%M%S"]),
                                          ("2026/11/22", ["%Y/%m/%d"]),
                                          ("2026-11-22 9:05", ["%Y-%m-%d %H:%M"]),
                                          ("22112026", ["%Y%m%d", "%d%m%Y"])])
def test_mapping_date_formats_read_full_dates(text, formats):
    data = day("1000.00", "51000.00").replace(b"2026-11-22", text.encode())
    parsed = parse_statement(data, filename="day.csv",
                             mapping={"columns": COLUMNS, "date_formats": formats})
    assert parsed.lines[0].booking_date.isoformat() == "2026-11-22"


@pytest.mark.parametrize("text", ["2026-11-22garbage", "2026-11-22T10:00:00", "2026-11-2299",
                                  "２０２６-11-22"])
def test_camt_date_with_more_than_a_date_is_refused(text):
    data = camt(BATCH.replace("<Dt>2026-11-22</Dt></BookgDt>", f"<Dt>{text}</Dt></BookgDt>"))
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(data, filename="day.xml")
    assert [p.field for p in caught.value.problems] == ["Ntry/BookgDt"]


@pytest.mark.parametrize("text", ["2026-11-22", "2026-11-22Z", "2026-11-22+08:00", " 2026-11-22"])
def test_camt_dates_with_an_offset_read_as_the_date(text):
    data = camt(BATCH.replace("<Dt>2026-11-22</Dt></BookgDt>", f"<Dt>{text}</Dt></BookgDt>"))
    assert parse_statement(data).lines[1].booking_date.isoformat() == "2026-11-22"


SECOND = (":20:REF2\n:25:CN0012345678\n:28C:2/1\n:60F:C261122CNY1100,00\n"
          ":61:2611231123D100,00NTRFP2//B2\n:62F:C261123CNY1000,00\n-\n")


def test_mt940_statement_without_its_20_is_refused_not_dropped():
    first = (":25:CN0012345678\n:28C:1/1\n:60F:C261121CNY1000,00\n"
             ":61:2611221122C100,00NTRFP1//B1\n:62F:C261122CNY1100,00\n-\n")
    with pytest.raises(StatementFormatError) as caught:
        parse_statement((first + SECOND).encode(), filename="day.sta")
    problems = caught.value.problems
    assert [(p.line, p.field) for p in problems] == [
        (1, ":25:"), (2, ":28C:"), (3, ":60F:"), (4, ":61:"), (5, ":62F:")]
    assert "before the first :20:" in problems[0].message


def test_mt940_swift_headers_before_the_first_20_are_allowed():
    parsed = parse_statement(("{1:F01AAAA}{2:I940BBBB}{4:\n" + SECOND + "-}").encode(),
                             filename="day.sta")
    assert [x.amount_minor for x in parsed.lines] == [-10000]


LATIN = (BODY.replace("张三", "Müller").replace("充值 订单P001", "Überweisung")
         .replace("李四", "Schröder").replace("提现", "Auszahlung"))


@pytest.mark.parametrize("enc,cs", [("ISO-8859-1", "NONE"), ("USASCII", "1252"),
                                    ("USASCII", "ISO-8859-1"), ("USASCII", "NONE")])
def test_ofx_latin_text_does_not_read_as_chinese(enc, cs):
    parsed = parse_statement(sgml(enc, cs, LATIN).encode("latin-1"), filename="day.ofx")
    assert parsed.encoding in ("cp1252", "latin-1", "iso8859-1")
    assert [(x.counterparty, x.description) for x in parsed.lines] == [
        ("Müller", "Überweisung"), ("Schröder", "Auszahlung")]


def test_mt940_latin_text_does_not_read_as_chinese():
    data = (":20:REF1\n:25:DE0012345678\n:28C:1/1\n:60F:C261121EUR1000,00\n"
            ":61:2611221122C100,00NTRFP1001//B1\n:86:Überweisung Müller\n"
            ":62F:C261122EUR1100,00\n-\n").encode("latin-1")
    assert parse_statement(data).lines[0].description == "Überweisung Müller"


@pytest.mark.parametrize("enc,cs", [("USASCII", "936"), ("USASCII", "1252"), ("USASCII", "NONE")])
def test_ofx_gbk_text_with_a_rare_name_still_reads_as_chinese(enc, cs):
    body = BODY.replace("张三", "张喆").replace("充值 订单P001", "充值，订单P001 网上银行转入")
    parsed = parse_statement(sgml(enc, cs, body).encode("gbk"))
    assert parsed.lines[0].counterparty == "张喆"
