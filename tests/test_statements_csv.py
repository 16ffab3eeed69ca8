"""The custody bank's CSV day file: the default layout, mapping files, every bad line at once."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from reconcile.statements import (PROVED, UNPROVED, MappingError, StatementFormatError,
                                  StatementImbalanceError, parse_statement)
from reconcile.statements import csvarrow, csvday
from reconcile.statements.csvmapping import Layout


@pytest.fixture(autouse=True, params=["native reader", "column-wise", "row by row"])
def reading(request, monkeypatch):
    """Every test here reads its files every way: pyarrow's reader (for files of any size),
    the column-wise path and the row path must agree."""
    monkeypatch.setattr(csvarrow, "MIN_LINES", 0)
    monkeypatch.setattr(csvday, "_ARROW", request.param == "native reader")
    monkeypatch.setattr(csvday, "_ROW_BY_ROW", request.param == "row by row")

DAY = """账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要
6222000011112222,2026-11-22,B001,P1001,U001,张三,贷,"1,000.00",51000.00,充值
6222000011112222,2026-11-22,B002,W2001,U002,李四,借,200.50,50799.50,提现
6222000011112222,20261122,B003,,,,D,0.10,50799.40,手续费
"""


def parse(text: str, encoding: str = "utf-8", **kwargs):
    return parse_statement(text.encode(encoding), filename="day.csv", **kwargs)


def test_default_layout_reads_every_field():
    parsed = parse(DAY)
    assert (parsed.format, parsed.encoding) == ("csv", "utf-8")
    (st,) = parsed.statements
    assert (st.account, st.currency, st.statement_date, st.proof) == (
        "6222000011112222", "CNY", dt.date(2026, 11, 22), PROVED)
    assert (st.opening_balance_minor, st.closing_balance_minor) == (5000000, 5079940)
    assert [(x.amount_minor, x.bank_ref, x.end_to_end_ref, x.sub_account, x.counterparty,
             x.description, x.balance_after_minor, x.source_position) for x in st.lines] == [
        (100000, "B001", "P1001", "U001", "张三", "充值", 5100000, "line 2"),
        (-20050, "B002", "W2001", "U002", "李四", "提现", 5079950, "line 3"),
        (-10, "B003", None, None, None, "手续费", 5079940, "line 4")]
    assert st.lines[0].raw == ('6222000011112222,2026-11-22,B001,P1001,U001,张三,贷,"1,000.00",'
                               '51000.00,充值')


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "gb18030"])
def test_gbk_and_bom_files_read_the_same(encoding):
    parsed = parse(DAY, encoding)
    plain = parse(DAY)
    assert [(x.amount_minor, x.counterparty, x.description, x.raw) for x in parsed.lines] == [
        (x.amount_minor, x.counterparty, x.description, x.raw) for x in plain.lines]
    assert parsed.encoding == ("utf-8" if encoding == "utf-8-sig" else "gb18030")


def test_english_headers_tabs_and_dc_letters():
    text = ("date\tbank_serial\torder_id\tsub_account\tcounterparty\tdc_flag\tamount\t"
            "balance_after\n2026/11/22\tS1\tO1\tU1\tZhang\tC\t10.00\t10.00\n"
            "2026/11/22\tS2\t\tU1\tZhang\td\t2.5\t7.50\n")
    parsed = parse(text, account="6222")
    assert [x.amount_minor for x in parsed.lines] == [1000, -250]
    assert parsed.statements[0].account == "6222"


def test_every_bad_line_is_reported_together():
    bad = (DAY.replace('贷,"1,000.00"', 'X,"1,000.001"').replace("20261122", "2026-02-30")
           .replace("B002", "").replace("200.50,50799.50", "-200.50,abc"))
    with pytest.raises(StatementFormatError) as caught:
        parse(bad)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (2, "amount"), (2, "dc_flag"), (3, "bank_serial"), (3, "amount"), (3, "balance_after"),
        (4, "date")]
    message = str(caught.value)
    assert message.startswith("day.csv: line 2: 6 problems:")
    assert "1000.001 CNY is finer than the minor unit" in message


def test_a_running_balance_break_is_pinned_to_its_line():
    with pytest.raises(StatementImbalanceError) as caught:
        parse(DAY.replace("50799.40", "50799.30"))
    e = caught.value
    assert (e.position, e.difference_minor, e.closing_minor) == ("line 4", -10, 5079930)
    assert "the balance after line 4" in str(e)
    assert parse(DAY.replace("50799.40", "50799.30"), prove=False).statements[0].proof == "unchecked"


def test_missing_default_columns_are_named():
    text = DAY.replace(",余额", "").replace(",51000.00", "").replace(",50799.50", "").replace(
        ",50799.40", "")
    with pytest.raises(StatementFormatError, match=r"missing columns: 余额 \(balance_after\)"):
        parse(text)


def test_the_account_must_come_from_somewhere():
    text = "\n".join(line.split(",", 1)[1] for line in DAY.strip().split("\n")) + "\n"
    with pytest.raises(StatementFormatError, match="names no account"):
        parse(text)
    assert parse(text, account="6222").statements[0].account == "6222"


def test_multi_line_cells_keep_their_raw_text_and_first_line():
    text = DAY.replace(",充值\n", ',"充值\n第二行"\n')
    first, second = parse(text).lines[:2]
    assert first.description == "充值\n第二行" and first.raw.endswith('"充值\n第二行"')
    assert (first.source_position, second.source_position) == ("line 2", "line 4")


@pytest.mark.parametrize("text, ends", [
    ("a,b\n1,2\n", False),             # bare "\n": lines split without their breaks
    ("a,b\n1,2", False),                # no break after the last line
    ("a,b\r\n1,2\r\n", True),           # CRLF: each line keeps its break
    ("a,b\n1,\"x\ry\"\n", True),          # a lone CR stays inside its line
    ("a,b\n1,x\x0cy\n", True),            # so does a form feed
    ("", False),
])
def test_lines_split_back_into_the_very_text(text, ends):
    lines, kept = csvday._split_lines(text)
    assert kept is ends
    rebuilt = "".join(lines) if kept else "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    assert rebuilt == text
    assert len(lines) == text.count("\n") + (not text.endswith("\n") and text != "")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_multi_line_cell_keeps_its_own_line_breaks_in_the_raw_text(newline):
    text = DAY.replace(",充值\n", ',"充值' + newline + '第二行"\n').replace("\n", newline)
    text = text.replace("\r\r", "\r")
    first = parse(text).lines[0]
    assert first.raw.endswith('"充值' + newline + '第二行"')
    assert first.description == "充值" + newline + "第二行"


def test_several_accounts_make_several_statements():
    text = DAY + "6222000099998888,2026-11-22,C001,P9,U9,王五,贷,5.00,5.00,充值\n"
    parsed = parse(text)
    assert [(s.account, len(s.lines), s.proof) for s in parsed.statements] == [
        ("6222000011112222", 3, PROVED), ("6222000099998888", 1, PROVED)]


def test_header_only_and_empty_files():
    header = DAY.split("\n")[0] + "\n"
    assert parse(header).statements == ()
    with pytest.raises(StatementFormatError, match="empty"):
        parse("")
    with pytest.raises(StatementFormatError, match="UTF-8 or GBK"):
        parse_statement(b"date,amount\n\x80\xff\x80\n", format="csv")


OTHER_BANK = """某银行 资金存管 日终明细
记账日期|交易流水号|借方发生额|贷方发生额|业务编号|摘要
20261122|X0001||1000.00|P1001|充值
20261122|X0002|200.50||W2001|提现
合计|||1000.00|
"""

MAPPING = {
    "name": "某银行",
    "encoding": "gbk",
    "delimiter": "|",
    "header_line": 2,
    "columns": {"date": "记账日期", "bank_serial": "交易流水号", "debit_amount": "借方发生额",
                "credit_amount": "贷方发生额", "order_id": "业务编号", "description": 6},
    "date_formats": ["%Y%m%d"],
    "account": "6222000011112222",
    "skip_prefixes": ["合计"],
}


def test_a_mapping_file_reads_another_banks_layout(tmp_path):
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(MAPPING, ensure_ascii=False), encoding="utf-8")
    parsed = parse_statement(OTHER_BANK.encode("gbk"), format="csv", mapping=path)
    (st,) = parsed.statements
    assert (st.account, st.proof) == ("6222000011112222", UNPROVED)
    assert [(x.amount_minor, x.bank_ref, x.end_to_end_ref, x.description, x.source_position)
            for x in st.lines] == [(100000, "X0001", "P1001", "充值", "line 3"),
                                   (-20050, "X0002", "W2001", "提现", "line 4")]
    assert parse_statement(OTHER_BANK.encode("gbk"), format="csv", mapping=MAPPING) == parsed


def test_signed_amounts_and_headerless_files():
    layout = Layout(name="signed", columns=(("date", 1), ("bank_serial", 2), ("amount", 3)),
                    has_header=False, amount_mode="signed", account="A1")
    parsed = parse_statement(b"2026-11-22,S1,12.00\n2026-11-22,S2,-2.00\n", format="csv",
                             mapping=layout)
    assert [x.amount_minor for x in parsed.lines] == [1200, -200]


def test_mapping_problems_are_all_reported(tmp_path):
    spec = {"columns": {"date": "日期", "amont": "金额"}, "encodng": "gbk", "header_line": 0,
            "delimiter": "||", "has_header": "yes", "currency": 7}
    with pytest.raises(MappingError) as caught:
        parse_statement(b"x", format="csv", mapping=spec)
    fields = [p.field for p in caught.value.problems]
    assert fields == ["encodng", "columns.amont", "columns.bank_serial", "columns.amount",
                      "currency", "header_line", "has_header", "delimiter"]
    with pytest.raises(MappingError, match="header_line: must be a whole number from 1"):
        parse_statement(b"x", format="csv", mapping={**MAPPING, "header_line": "2"})
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(MappingError, match="not a JSON mapping file"):
        parse_statement(DAY.encode(), format="csv", mapping=bad_json)
    with pytest.raises(MappingError, match="cannot read"):
        parse_statement(DAY.encode(), format="csv", mapping=tmp_path / "absent.json")


def test_a_mapped_column_missing_from_the_header_is_named():
    with pytest.raises(StatementFormatError, match="no column '交易流水号'"):
        parse_statement(OTHER_BANK.replace("交易流水号", "流水").encode("gbk"), format="csv",
                        mapping=MAPPING)


def test_the_documented_examples_read_as_documented():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "csv-day-file.md").read_text("utf-8")
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    csvs = [body for kind, body in blocks if kind == "csv"]
    default = parse_statement(csvs[0].encode("gbk"), filename="day.csv")
    assert [x.amount_minor for x in default.lines] == [100000, -20050, -10]
    assert default.statements[0].proof == PROVED
    english = parse_statement(csvs[1].encode(), filename="day.csv")
    assert english.lines[0].end_to_end_ref == "TOPUP-1001"
    text = next(body for kind, body in blocks if kind == "text")
    mapping = json.loads(next(body for kind, body in blocks if kind == "json"))
    other = parse_statement(text.encode("gbk"), format="csv", mapping=mapping)
    assert [x.amount_minor for x in other.lines] == [100000, -20050]
    assert other.statements[0].proof == UNPROVED


# --- the integer fast path for plain amounts agrees with the Decimal path ---------
from decimal import Decimal  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ledger.errors import LedgerError  # noqa: E402
from ledger.money import CURRENCY_EXPONENTS, to_minor  # noqa: E402
from reconcile.statements.csvday import _plain_minor  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(whole=st.text("0123456789", min_size=1, max_size=19),
       fraction=st.one_of(st.none(), st.text("0123456789", max_size=5)),
       currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_plain_amounts_read_as_the_decimal_path_reads_them(whole, fraction, currency):
    text = whole if fraction is None else f"{whole}.{fraction}"
    fast = _plain_minor(text, currency)
    try:
        slow = to_minor(Decimal(text), currency)
    except LedgerError:
        slow = None
    if fast is not None:
        assert fast == slow
    else:
        # Left to the full path: too many digits, a point with no decimals after it,
        # or decimals beyond the minor unit.
        assert len(whole) > 18 or fraction == "" or len(fraction or "") > CURRENCY_EXPONENTS[currency]


def test_plain_amount_fast_path_leaves_other_forms_to_the_full_path():
    for text in ("1,234.50", "-5.00", "+5", "¥12", "1.234", " 1", "٣", "", "12.", "-12."):
        assert _plain_minor(text, "CNY") is None
    assert _plain_minor("1234.5", "CNY") == 123450
    assert _plain_minor("7.", "CNY") is None   # the full path refuses it, as it always has
    assert _plain_minor("12", "JPY") == 12
