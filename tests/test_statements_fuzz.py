"""Fuzzing the parsers with mutated real files: a typed error or a whole result, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.statements import ParsedFile, StatementError, parse_statement

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "statements"
FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file()
               and p.suffix in (".ofx", ".sta", ".xml")) if FIXTURES.is_dir() else []
DAY_FILE = ("账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额\n"
            "6222,2026-11-22,B1,P1,U1,张三,贷,100.00,100.00\n"
            "6222,2026-11-22,B2,W1,U2,李四,借,30.00,70.00\n")
SOURCES = [(p.name, p.read_bytes()) for p in FILES] + [
    ("day.csv", DAY_FILE.encode("utf-8")), ("day-gbk.csv", DAY_FILE.encode("gbk"))]

#: Bytes that matter to the formats' syntax, so mutations reach the parsers' corners.
SYNTAX = [b"<", b">", b"</", b":", b"\n", b",", b'"', b"&", b"<![CDATA[", b"]]>", b":61:", b":86:",
          b":20:", b"-", b".", b"\xff", b"\xe4\xb8\xad", b"\x00", b"<STMTTRN>", b"</STMTTRN>",
          b"<Ntry>", b"C", b"D", b"RC", b"9" * 20]


@st.composite
def mutated(draw):
    name, data = draw(st.sampled_from(SOURCES))
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            piece = draw(st.one_of(st.sampled_from(SYNTAX), st.binary(min_size=1, max_size=8)))
            data[at:at] = piece
        elif kind == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
        else:
            data = data[:at]
    return name, bytes(data)


@pytest.mark.skipif(not FILES, reason="shared statement fixtures absent")
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_files_give_a_result_or_a_typed_error(case):
    name, data = case
    try:
        parsed = parse_statement(data, filename=name)
    except StatementError as exc:
        assert exc.file == name and str(exc)
        return
    assert isinstance(parsed, ParsedFile)
    for statement in parsed.statements:
        assert statement.proof in ("proved", "unproved")
        for line in statement.lines:
            assert isinstance(line.amount_minor, int) and line.booking_date is not None


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 12) | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
FIELD_NAMES = st.sampled_from(["date", "bank_serial", "amount", "dc_flag", "debit_amount",
                               "credit_amount", "balance_after", "account", "bogus"])
KEYS = st.sampled_from(["encoding", "delimiter", "header_line", "has_header", "columns",
                        "amount_mode", "credit_flags", "debit_flags", "date_formats", "account",
                        "currency", "skip_prefixes", "name", "bogus"])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.dictionaries(KEYS, JSON, max_size=6),
       st.dictionaries(FIELD_NAMES, st.one_of(st.integers(-1, 12), st.sampled_from(
           ["交易日期", "银行流水号", "金额", "借贷标志", "余额", "账号", ""])), max_size=6))
def test_any_mapping_gives_a_layout_or_a_typed_error(spec, columns):
    if columns:
        spec = {**spec, "columns": columns}
    try:
        parsed = parse_statement(DAY_FILE.encode(), format="csv", mapping=spec)
    except StatementError:
        return
    assert isinstance(parsed, ParsedFile)
