"""The ``ledger schedule`` command (and the plan refusals of ``ledger loan create``), driven with click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

import ledger
from cli import main
from ledger.commands.schedule import schedule_cmd

PLAN = ["--principal", "100000", "--rate", "6%", "--months", "12", "--start", "2024-01-31"]


def invoke(*args, input=None):
    return CliRunner().invoke(schedule_cmd, list(args), input=input, catch_exceptions=False)


def test_help_has_a_worked_example():
    assert "Example" in schedule_cmd.help
    result = invoke("--help")
    assert result.exit_code == 0
    assert "ledger schedule --principal 100000 --rate 6% --months 12" in result.output


def test_table_with_totals():
    result = invoke(*PLAN, "--method", "equal-installment")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum("8606.64" in line for line in lines) >= 11
    assert "2024-02-29" in result.output and "2024-03-31" in result.output
    assert "total: principal 100000.00, interest 3279.73, fee 0.00, payment 103279.73 CNY" in lines
    assert "annual cost (interest and fees): 6.0000%" in lines


def test_csv_rows_end_with_a_totals_row():
    result = invoke(*PLAN, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 13
    assert rows[0]["payment"] == "8606.64" and rows[11]["payment"] == "8606.69"
    assert rows[12]["seq"] == "total" and rows[12]["interest"] == "3279.73"


def test_json_has_terms_rows_and_totals():
    data = json.loads(invoke(*PLAN, "--format", "json").output)
    assert data["plan"]["installment"] == "8606.64"
    assert data["plan"]["method"] == "equal_installment"
    assert len(data["rows"]) == 12
    assert data["totals"]["payment"] == "103279.73"


def test_days_bullet():
    data = json.loads(invoke("--principal", "50000", "--rate", "0.08", "--days", "90", "--method",
                             "bullet", "--start", "2025-06-01", "--format", "json").output)
    assert [(r["due_date"], r["interest"]) for r in data["rows"]] == [("2025-08-30", "1000.00")]


def test_investors_file_splits_the_plan(tmp_path):
    path = tmp_path / "investors.csv"
    path.write_text("investor,amount\nalice,60000\nbob,30000.50\ncarol,9999.50\n", encoding="utf-8")
    data = json.loads(invoke(*PLAN, "--investors", str(path), "--management-fee", "10%",
                             "--format", "json").output)
    investors = data["investors"]
    assert [inv["funded"] for inv in investors] == ["60000.00", "30000.50", "9999.50"]
    assert all(inv["principal"] == inv["funded"] for inv in investors)
    for k, row in enumerate(data["rows"]):
        assert sum(Decimal(inv["rows"][k]["interest"]) for inv in investors) == Decimal(row["interest"])
    table = invoke(*PLAN, "--investors", str(path))
    assert "investor totals" in table.output
    rows = list(csv.DictReader(io.StringIO(invoke(*PLAN, "--investors", str(path), "--format",
                                                   "csv").output)))
    assert len(rows) == 36 and rows[0]["investor"] == "alice"


def test_bad_investors_file_names_the_line(tmp_path):
    path = tmp_path / "investors.csv"
    path.write_text("alice,60000\nbob,lots\n", encoding="utf-8")
    result = invoke(*PLAN, "--investors", str(path))
    assert result.exit_code == 2
    assert "line 2" in result.output
    path.write_text("alice,60000\nbob,30000\n", encoding="utf-8")
    result = invoke(*PLAN, "--investors", str(path))
    assert result.exit_code == 2 and "funded 90000.00" in result.output


def test_bad_input_exits_2_with_a_message():
    assert invoke("--principal", "100000", "--rate", "6", "--months", "12").exit_code == 2
    result = invoke("--principal", "100000", "--rate", "6%", "--months", "12", "--days", "30")
    assert result.exit_code == 2 and "exactly one" in result.output
    result = invoke("--principal", "100000", "--rate", "6%", "--months", "12", "--start", "31/01/2024")
    assert result.exit_code == 2 and "--start" in result.output
    result = invoke("--principal", "1e400x", "--rate", "6%", "--months", "12")
    assert result.exit_code == 2 and "principal" in result.output


@pytest.mark.parametrize("term", [["--months", "2"], ["--days", "60", "--method", "bullet"]])
def test_due_dates_past_9999_12_31_exit_2_with_a_message(term):
    result = invoke("--principal", "1000", "--rate", "6%", *term, "--start", "9999-12-01")
    assert result.exit_code == 2
    assert "ScheduleError: due dates run past 9999-12-31" in result.output
    assert "from 9999-12-01" in result.output and "Traceback" not in result.output


def test_months_0_is_refused_as_a_term_in_months():
    result = invoke("--principal", "1000", "--rate", "6%", "--months", "0", "--start", "2026-01-31")
    assert result.exit_code == 2
    assert "term must be a whole number of months from 1 to 1200, not 0" in result.output


def ledger_cli(db_url, *args):
    return CliRunner().invoke(main, [*args, "--db", db_url], catch_exceptions=False)


LOAN = ["loan", "create", "L1", "--borrower", "bob", "--principal", "1000", "--rate", "6%"]


@pytest.mark.parametrize("term, start, words", [
    (["--months", "0"], "2026-01-31", "term must be a whole number of months from 1 to 1200, not 0"),
    (["--days", "0", "--method", "bullet"], "2026-01-31",
     "term must be a whole number of days from 1 to 3660, not 0"),
    (["--months", "2"], "9999-12-01", "due dates run past 9999-12-31: 2 months from 9999-12-01"),
    (["--days", "60", "--method", "bullet"], "9999-12-01",
     "due dates run past 9999-12-31: 60 days from 9999-12-01"),
])
def test_loan_create_refuses_terms_no_plan_is_made_of_exit_2(db_url, term, start, words):
    result = ledger_cli(db_url, *LOAN, *term, "--start", start, "--key", "c1")
    assert result.exit_code == 2, result.output
    assert f"ScheduleError: {words}" in result.output
    book = ledger.open(db_url)
    try:
        assert book.loans.loans() == []
    finally:
        book.dispose()
    result = ledger_cli(db_url, *LOAN, "--days", "20", "--method", "bullet", "--start", "9999-12-01",
                        "--key", "c2")
    assert result.exit_code == 0, result.output
    assert "loan L1: 1000.00 over 20 day(s)" in result.output
