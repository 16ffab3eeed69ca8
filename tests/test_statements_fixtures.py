"""Every real bank file in the shared fixtures either imports correctly or is refused
with a typed error; camt.053 decodings agree with the genkgo/camt project's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.errors import InputError
from reconcile.statements import (CAMT053, MT940, OFX, PROVED, UNPROVED, StatementFormatError,
                                  StatementImbalanceError, parse_statement)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "statements"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared statement fixtures absent")

OK, FORMAT, IMBALANCE = "imports", StatementFormatError, StatementImbalanceError

#: file -> (outcome, format, statements, lines) for imports; (error type, format) for refusals.
EXPECTED = {
    "ofx/anzcc.ofx": (OK, OFX, 1, 1),
    "ofx/bank_medium.ofx": (OK, OFX, 1, 3),
    "ofx/bank_small.ofx": (FORMAT, OFX),
    "ofx/checking.ofx": (OK, OFX, 1, 3),
    "ofx/error_message.ofx": (FORMAT, OFX),
    "ofx/fail_nice/date_missing.ofx": (FORMAT, OFX),
    "ofx/fail_nice/decimal_error.ofx": (FORMAT, OFX),
    "ofx/fail_nice/empty_balance.ofx": (FORMAT, OFX),
    "ofx/multiple_accounts.ofx": (OK, OFX, 2, 0),
    "ofx/multiple_accounts2.ofx": (OK, OFX, 2, 0),
    "ofx/ofx-v102-empty-tags.ofx": (FORMAT, OFX),
    "ofx/suncorp.ofx": (OK, OFX, 1, 1),
    "mt940/betterplace_amount_formats.sta": (FORMAT, MT940),
    "mt940/betterplace_sepa_mt9401.sta": (OK, MT940, 26, 97),
    "mt940/betterplace_sepa_snippet_broken.sta": (FORMAT, MT940),
    "mt940/cmxl_mt940.sta": (FORMAT, MT940),
    "mt940/jejik_abnamro.sta": (IMBALANCE, MT940),
    "mt940/jejik_ing.sta": (IMBALANCE, MT940),
    "mt940/jejik_postfinance.sta": (IMBALANCE, MT940),
    "mt940/jejik_rabobank.sta": (IMBALANCE, MT940),
    "mt940/jejik_triodos.sta": (IMBALANCE, MT940),
    "mt940/self-provided_february_30.sta": (OK, MT940, 1, 1),
    "mt940/self-provided_invalid_statement.sta": (FORMAT, MT940),
    "camt053/camt053.v2.all-balance-types.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v2.five.decimals.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v2.minimal.ultimate.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v2.minimal.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v2.multi.statement.xml": (OK, CAMT053, 2, 2),
    "camt053/camt053.v2.with-account-name.xml": (OK, CAMT053, 1, 1),
    "camt053/camt053.v2.with-party-ids.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v2.wrong.xml": (FORMAT, CAMT053),
    "camt053/camt053.v3.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v4.xml": (IMBALANCE, CAMT053),
    "camt053/camt053.v8.xml": (IMBALANCE, CAMT053),
}


def statement_files() -> list[str]:
    """Every statement file in the fixtures (not licences, notes or expected decodings)."""
    if not FIXTURES.is_dir():
        return []
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*")
                  if p.is_file() and not p.name.startswith(("LICENSE", "README"))
                  and p.suffix != ".json")


def test_every_fixture_file_has_an_expected_outcome():
    assert statement_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_imports_or_is_refused_with_a_typed_error(name):
    outcome, fmt, *counts = EXPECTED[name]
    path = FIXTURES / name
    if outcome == OK:
        parsed = parse_statement(path)
        assert parsed.format == fmt
        assert parsed.filename == path.name
        assert (len(parsed.statements), len(parsed.lines)) == tuple(counts)
        for statement in parsed.statements:
            assert statement.proof in (PROVED, UNPROVED)
            assert statement.currency and statement.account
        for line in parsed.lines:
            assert line.raw and line.source_position and line.source_file_sha256 == parsed.sha256
            assert isinstance(line.amount_minor, int)
        return
    with pytest.raises(outcome) as caught:
        parse_statement(path)
    error = caught.value
    assert isinstance(error, InputError)
    assert error.file == path.name and path.name in str(error)
    if outcome is FORMAT:
        assert error.problems


def test_ofx_fixture_values():
    anz = parse_statement(FIXTURES / "ofx/anzcc.ofx").statements[0]
    assert (anz.account, anz.currency, anz.closing_balance_minor) == ("1234123412341234", "AUD", -12345)
    assert anz.opening is None and anz.proof == UNPROVED
    line = anz.lines[0]
    assert (line.booking_date.isoformat(), line.amount_minor, line.bank_ref, line.description) == (
        "2017-05-08", -550, "201705080001", "SOME MEMO")
    medium = parse_statement(FIXTURES / "ofx/bank_medium.ofx").statements[0]
    assert [x.amount_minor for x in medium.lines] == [-660, -31667, -2200]
    assert medium.lines[1].counterparty == "Joe's Bald Hairstyles"
    assert medium.lines[0].raw.startswith("<STMTTRN><TRNTYPE>POS<DTPOSTED>20090401122017.000[-5:EST]")
    assert medium.lines[0].raw.endswith("</STMTTRN>")
    suncorp = parse_statement(FIXTURES / "ofx/suncorp.ofx").statements[0]
    assert suncorp.lines[0].counterparty == "EFTPOS WDL HANDYWAY ALDI STORE"  # CDATA
    two = parse_statement(FIXTURES / "ofx/multiple_accounts.ofx").statements
    assert [(s.account, s.closing_balance_minor) for s in two] == [("9100", 11100), ("9200", 22200)]


def test_ofx_refusals_name_every_bad_field_with_its_line():
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(FIXTURES / "ofx/fail_nice/date_missing.ofx")
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (33, "DTPOSTED"), (42, "DTPOSTED"), (50, "DTPOSTED")]
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(FIXTURES / "ofx/fail_nice/decimal_error.ofx")
    assert {p.field for p in caught.value.problems} == {"DTPOSTED", "TRNAMT"}
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(FIXTURES / "ofx/error_message.ofx")
    assert "2000 General Server Error" in str(caught.value)


def test_mt940_reversal_of_credit_is_a_debit():
    parsed = parse_statement(FIXTURES / "mt940/betterplace_sepa_mt9401.sta")
    assert all(s.proof == PROVED for s in parsed.statements)
    reversal = [line for line in parsed.lines if line.raw.startswith(":61:0709040904RCR")]
    assert reversal and all(line.amount_minor < 0 for line in reversal)
    first = parsed.statements[0]
    assert (first.account, first.opening_balance_minor, first.closing_balance_minor) == (
        "50880050/0194774600888", -123471836, -123762823)
    assert [x.amount_minor for x in first.lines] == [
        30000, 33533, 1500000, 6629508, 91531155, -20488, -99994695]


def test_mt940_refusals_say_why():
    with pytest.raises(StatementImbalanceError) as caught:
        parse_statement(FIXTURES / "mt940/jejik_triodos.sta")
    e = caught.value
    assert (e.opening_minor, e.lines_minor, e.closing_minor, e.difference_minor) == (
        497509, -71570, 437079, 11140)
    assert "4,975.09" in str(e) and "111.40" in str(e)
    with pytest.raises(StatementImbalanceError) as caught:
        parse_statement(FIXTURES / "mt940/jejik_rabobank.sta")
    assert len(caught.value.imbalances) == 2
    with pytest.raises(StatementFormatError, match="DEM"):
        parse_statement(FIXTURES / "mt940/cmxl_mt940.sta")
    with pytest.raises(StatementFormatError, match=r":25:"):
        parse_statement(FIXTURES / "mt940/betterplace_sepa_snippet_broken.sta")


def test_mt940_february_30_is_the_last_day_of_february():
    line = parse_statement(FIXTURES / "mt940/self-provided_february_30.sta").lines[0]
    assert (line.value_date.isoformat(), line.booking_date.isoformat(), line.amount_minor) == (
        "2016-02-29", "2016-03-01", -600)


def test_mt940_amount_formats_fixture_lines_read_exactly():
    from reconcile.statements.mt940 import parse_mt940
    balances = (FIXTURES / "mt940/betterplace_amount_formats.sta").read_text().split()
    got = []
    for tag in balances:
        text = f":20:X\n:25:A\n{tag}\n:62F:C100318EUR0,\n".encode()
        got.append(parse_mt940(text).statements[0].opening_balance_minor)
    assert got == [38011512, 38011510, 38011500, 12, 12, 112]


def test_camt_imbalances_carry_the_figures():
    with pytest.raises(StatementImbalanceError) as caught:
        parse_statement(FIXTURES / "camt053/camt053.v2.five.decimals.xml")
    e = caught.value
    assert (e.opening_minor, e.lines_minor, e.closing_minor, e.difference_minor, e.currency) == (
        1815, 885, 2705, 5, "EUR")
    with pytest.raises(StatementImbalanceError, match="closing balance is in SEK"):
        parse_statement(FIXTURES / "camt053/camt053.v8.xml")


CAMT_WITH_JSON = sorted(p.name for p in FIXTURES.glob("camt053/*.xml")
                        if p.with_suffix(".json").exists()) if FIXTURES.is_dir() else []


@pytest.mark.parametrize("name", CAMT_WITH_JSON)
def test_camt_decoding_matches_the_expected_json(name):
    path = FIXTURES / "camt053" / name
    expected = json.loads(path.with_suffix(".json").read_text())
    parsed = parse_statement(path, prove=False)
    assert len(parsed.statements) == len(expected["getRecords"])
    by_id = {s.statement_id: s for s in parsed.statements}
    assert expected["getEntries"]
    for entry in expected["getEntries"]:
        record = entry["getRecord"]
        statement = by_id[record["getId"]]
        assert statement.account == record["getAccount"]["getIdentification"]
        line = statement.lines[entry["getIndex"]]
        assert line.amount_minor == int(entry["getAmount"]["getAmount"])
        assert line.currency == entry["getAmount"]["getCurrency"]["getCode"]
        assert line.booking_date.isoformat() == entry["getBookingDate"]["0"][:10]
        value = entry.get("getValueDate")
        assert (line.value_date.isoformat() if line.value_date else None) == (
            value["0"][:10] if value else None)
        assert line.status == {"BOOK": "booked", "PDNG": "pending"}[entry["getStatus"]]
        assert line.bank_ref == (entry["getAccountServicerReference"] or entry["getReference"])
        balances = {}
        for b in record["getBalances"]:
            balances.setdefault(b["getType"], b)
        for kind, ours in (("opening", statement.opening), ("closing", statement.closing)):
            if kind not in balances:
                assert ours is None
                continue
            b = balances[kind]
            assert (ours.amount_minor, ours.currency, ours.date.isoformat()) == (
                int(b["getAmount"]["getAmount"]), b["getAmount"]["getCurrency"]["getCode"],
                b["getDate"]["0"][:10])


def test_camt_multi_statement_proves_both():
    parsed = parse_statement(FIXTURES / "camt053/camt053.v2.multi.statement.xml")
    assert [(s.statement_id, s.opening_balance_minor, [x.amount_minor for x in s.lines],
             s.closing_balance_minor, s.proof) for s in parsed.statements] == [
        ("253EURNL26VAYB8060476890", 1815, [885], 2700, PROVED),
        ("254EURNL26VAYB8060476890", 2700, [-700], 2000, PROVED)]
    assert parsed.lines[1].counterparty == "Company Name 2 NL56AGDH9619008421"
