"""Reconciliation runs against a real ledger: import, match, prove, store, resolve."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.flows import BANK
from reconcile import importing, report
from reconcile.runs import (BreakResolutionError, ReconcileError, list_breaks, reconcile_parsed,
                            resolve)
from reconcile.statements.model import Balance, ParsedFile, Statement, StatementLine

DAY = dt.date(2026, 11, 20)          # a Friday
NEXT = dt.date(2026, 11, 23)         # the Monday after


def line(n, amount_minor, ref=None, day=DAY, description="", e2e=None):
    raw = f"{day},{ref or ''},{amount_minor},{description}"
    return StatementLine(
        account="6222001", booking_date=day, value_date=day, amount_minor=amount_minor,
        currency="CNY", bank_ref=ref, end_to_end_ref=e2e, counterparty=None,
        description=description, status="booked", source_file_sha256="x" * 64,
        source_position=f"line {n}", raw=raw)


def parsed(name, lines, opening, day=DAY, account=None, currency=None):
    """A proved statement of ``lines`` (moved to ``account`` / ``currency`` when given)."""
    if account or currency:
        lines = [x._replace(account=account or x.account, currency=currency or x.currency)
                 for x in lines]
    account, currency = account or "6222001", currency or "CNY"
    closing = opening + sum(x.amount_minor for x in lines)
    sha = hashlib.sha256(name.encode()).hexdigest()
    statement = Statement(
        account=account, currency=currency, format="csv", filename=name, source_file_sha256=sha,
        statement_id=None, period_start=day, period_end=day, statement_date=day,
        opening=Balance(opening, "CNY", day, "opening"), closing=Balance(closing, "CNY", day, "closing"),
        lines=tuple(lines), proof="proved")
    return (Path(name), ParsedFile(name, sha, "csv", "utf-8", (statement,)))


@pytest.fixture
def day_book(book):
    f = book.flows
    f.open_system_accounts()
    f.open_user("alice")
    f.open_user("bob")
    book.open_account("expenses:platform:bank_fees", "expense")
    f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    f.top_up("bob", "50.00", bank_ref="ORDER-77", key="t2", effective_date=DAY)
    hold = f.withdraw("alice", "30.00", key="w1", effective_date=DAY)
    f.confirm_withdrawal(hold.id, bank_ref="P1", key="w1-paid", effective_date=DAY)
    f.top_up("bob", "20.00", bank_ref="B3", key="t3", effective_date=DAY)  # bank books it Monday
    return book


STATEMENT = [line(1, 10000, "B1", description="top-up alice"),
             line(2, 5000, "BANKSERIAL-9", description="top-up bob"),   # bank's own serial only
             line(3, -3000, "P1", description="payout alice"),
             line(4, -150, "FEE-1120", description="手续费 service charge")]


def test_day_run_matches_reports_breaks_and_proves_the_balance(day_book):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    rules = sorted(mt.rule for mt in run.result.matches)
    assert rules == ["amount_date", "exact_reference", "exact_reference"]
    types = sorted(b.type for b in run.result.breaks)
    assert types == ["in_bank_not_in_ledger", "in_transit"]
    assert run.balance["bank_closing_minor"] == 11850
    assert run.balance["ledger_balance_minor"] == 14000
    assert run.balance["unexplained_minor"] == 0
    assert not run.reconciled and run.run_id is not None
    html = report.to_html(run)
    assert "手续费 service charge" in html and "in_transit" in html
    assert "in the bank statement, not in the ledger" in report.to_csv(run)


def test_the_breaks_csv_runs_no_bank_text_as_a_formula_and_keeps_a_break_to_a_line(day_book):
    """The bank's own text went into the CSV as it came: a description of ``=HYPERLINK(...)``
    became a formula in the spreadsheet finance staff open, a raw line break a second line."""
    odd = [*STATEMENT[:3], line(4, -150, "FEE-1120")._replace(
        raw="=HYPERLINK(\"http://x\"),-1.50\r\n# chain hash at that point: 00")]
    run = reconcile_parsed(day_book, [parsed("day.csv", odd, opening=0)])
    text = report.to_csv(run)
    rows = text.splitlines()
    assert len(rows) == 1 + len(run.result.breaks)
    fee = next(r for r in csv.DictReader(io.StringIO(text)) if r["type"] == "in_bank_not_in_ledger")
    assert fee["raw"] == "'=HYPERLINK(\"http://x\"),-1.50\\r\\n# chain hash at that point: 00"
    assert fee["bank_amount"] == "-1.50"             # a number, not text
    assert not any(r.startswith("#") for r in rows)


def test_reimport_adds_no_lines_and_matches_are_not_reused(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    again = reconcile_parsed(day_book, [parsed("day-again.csv", STATEMENT, opening=0)])
    assert again.imported.files[0][3:] == (0, 4)
    assert again.result.matches == ()   # everything matched the first time stays matched
    with day_book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bank_line")).scalar() == 4
    assert len(first.result.matches) == 3


def test_dry_run_keeps_nothing(day_book):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)], dry_run=True)
    assert run.dry_run and run.run_id is None and len(run.result.matches) == 3
    with day_book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bank_line")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM recon_run")).scalar() == 0


def test_in_transit_clears_the_next_business_day(day_book):
    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    monday = [line(1, 2000, "B3", day=NEXT, description="top-up bob (Friday 23:58)")]
    run = reconcile_parsed(day_book, [parsed("monday.csv", monday, opening=11850, day=NEXT)])
    assert [mt.rule for mt in run.result.matches] == ["carried_forward"]
    assert [b.type for b in run.result.breaks] == ["in_bank_not_in_ledger"]  # Friday's fee, unresolved


def test_resolve_fee_by_adjustment_with_audit_trail(day_book):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    fee_break = next(b for b, t in zip(run.break_ids, run.result.breaks) if t.type == "in_bank_not_in_ledger")
    with pytest.raises(BreakResolutionError, match="platform-owned"):
        resolve(day_book, fee_break, action="adjust", account="liabilities:users:alice:available",
                note="bank fee", by="Li Na")
    with pytest.raises(BreakResolutionError, match="note"):
        resolve(day_book, fee_break, action="adjust", account="expenses:platform:bank_fees",
                note=" ", by="Li Na")
    done = resolve(day_book, fee_break, action="adjust", account="expenses:platform:bank_fees",
                   note="November service charge", by="Li Na")
    assert done.state == "resolved" and done.resolution["resolved_by"] == "Li Na"
    assert day_book.balance("expenses:platform:bank_fees") == 1.5
    assert day_book.balance(BANK) == 138.5
    with pytest.raises(BreakResolutionError, match="already"):
        resolve(day_book, fee_break, action="accept-timing", note="again", by="Li Na")
    assert [b.type for b in list_breaks(day_book)] == ["in_transit"]
    assert day_book.verify().ok


def test_match_with_and_exclusive_matches_in_the_database(day_book):
    statement = [line(1, 10000, "B1"), line(2, 5000, "X"), line(3, -3000, "P1"),
                 line(4, 5000, "Y")]   # two equal lines: ambiguous, never guessed
    run = reconcile_parsed(day_book, [parsed("day.csv", statement, opening=0)])
    ambiguous = [b for b in run.result.breaks if b.type == "ambiguous"]
    assert len(ambiguous) == 1
    brk_id = run.break_ids[run.result.breaks.index(ambiguous[0])]
    with pytest.raises(BreakResolutionError, match="needs the id"):
        resolve(day_book, brk_id, action="match-with", note="n", by="Li Na")
    bank_x = ambiguous[0].bank_ids[0]
    done = resolve(day_book, brk_id, action="match-with", match_with=bank_x,
                   note="order 77 was paid by the line with serial X (bank's callback)", by="Li Na")
    assert done.state == "resolved"
    again = reconcile_parsed(day_book, [parsed("day.csv", statement, opening=0)])
    assert [b.type for b in again.result.breaks if b.bank_ids] == ["in_bank_not_in_ledger"]
    assert again.result.breaks[0].bank_ids != (bank_x,)
    with day_book.engine.begin() as conn:
        taken = conn.execute(text("SELECT bank_line_id FROM recon_match_bank LIMIT 1")).scalar()
        match_id = conn.execute(text("SELECT id FROM recon_match LIMIT 1")).scalar()
    with pytest.raises(DBAPIError):
        with day_book.engine.begin() as conn:
            conn.execute(text("INSERT INTO recon_match_bank (match_id, bank_line_id) VALUES (:m, :b)"),
                         {"m": match_id, "b": taken})


def _posting_id(book, entry_id, code):
    with book.engine.connect() as conn:
        return conn.execute(text("SELECT p.id FROM posting p JOIN account a ON a.id = p.account_id "
                                 "WHERE p.entry_id = :e AND a.code = :c"),
                            {"e": entry_id, "c": code}).scalar_one()


def test_match_with_takes_only_an_open_posted_posting_of_the_runs_account(day_book):
    fees = [line(4, -150, "FEE-1120", description="手续费"), line(5, -150, "FEE-1121", description="手续费")]
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT[:3] + fees, opening=0)])
    first, second = (i for i, b in zip(run.break_ids, run.result.breaks) if b.bank_ids
                     and b.bank_amount_minor == -150)
    f = day_book.flows
    wallet = _posting_id(day_book, f.top_up("alice", "1.50", bank_ref="B9", key="t9").id,
                         "liabilities:users:alice:available")
    pending = _posting_id(day_book, f.top_up("bob", "1.50", bank_ref="B8", key="t8", pending=True).id,
                          BANK)
    fee = day_book.post([(BANK, D("-1.50")), ("expenses:platform:bank_fees", D("1.50"))], key="fee-1",
                        effective_date=DAY)
    fee_posting = _posting_id(day_book, fee.id, BANK)
    with day_book.engine.connect() as conn:
        matched = conn.execute(text("SELECT posting_id FROM recon_match_posting LIMIT 1")).scalar()
        before = conn.execute(text("SELECT count(*) FROM recon_resolution")).scalar()
    for other, message in ((wallet, "is on liabilities:users:alice:available, not on "),
                           (pending, "pending hold"), (10**9, "no posting 1000000000 in this book"),
                           (matched, "amounts differ")):
        with pytest.raises(BreakResolutionError, match=message):
            resolve(day_book, first, action="match-with", match_with=other, note="n", by="Li Na")
    done = resolve(day_book, first, action="match-with", match_with=fee_posting,
                   note="the bank's November charge, booked by hand", by="Li Na")
    assert done.state == "resolved"
    with pytest.raises(BreakResolutionError, match=f"posting {fee_posting} is already matched"):
        resolve(day_book, second, action="match-with", match_with=fee_posting, note="n", by="Li Na")
    with day_book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM recon_resolution")).scalar() == before + 1


def _counts(book):
    with book.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("bank_line", "statement_file", "recon_run", "recon_match", "journal_entry")}


def test_a_run_takes_only_its_own_bank_accounts_lines(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    assert sum(1 for b in first.result.breaks if b.bank_ids) == 1   # the fee stays open
    day_book.open_account("assets:custody:bank2", "asset")
    other = [line(1, 700, "S1", description="interest")]
    run = reconcile_parsed(day_book, [parsed("bank2.csv", other, opening=0, account="6222002")],
                           account="assets:custody:bank2")
    assert [b.bank_ids for b in run.result.breaks] == [(run.imported.line_ids[0],)]
    assert run.result.summary.bank_lines == 1     # not bank 1's open fee line
    before = _counts(day_book)
    with pytest.raises(ReconcileError, match=r"2 bank accounts \(6222001, 6222002\)"):
        reconcile_parsed(day_book, [parsed("a.csv", STATEMENT, opening=0),
                                    parsed("b.csv", other, opening=0, account="6222002")])
    assert _counts(day_book) == before


def test_a_statement_in_another_currency_or_with_another_accounts_lines_is_refused(day_book):
    before = _counts(day_book)
    usd = [line(1, 10000, "B1")]
    with pytest.raises(ReconcileError, match="usd.csv: the statement of bank account 6222001 is in "
                                             "USD, but assets:custody:bank holds CNY"):
        reconcile_parsed(day_book, [parsed("usd.csv", usd, opening=0, currency="USD")])
    path, mixed = parsed("mixed.csv", [line(1, 10000, "B1"), line(2, 5000, "X")], opening=0)
    statement = mixed.statements[0]
    eur = (statement.lines[0], statement.lines[1]._replace(currency="EUR"))
    mixed = dataclasses.replace(mixed, statements=(dataclasses.replace(statement, lines=eur),))
    with pytest.raises(ReconcileError, match="is in EUR"):
        reconcile_parsed(day_book, [(path, mixed)])
    stray = (statement.lines[0], statement.lines[1]._replace(account="6222009"))
    mixed = dataclasses.replace(mixed, statements=(dataclasses.replace(statement, lines=stray),))
    with pytest.raises(ReconcileError, match="lines of bank account 6222009 in the statement of "
                                             "bank account 6222001"):
        reconcile_parsed(day_book, [(path, mixed)])
    assert _counts(day_book) == before


def test_what_a_run_left_open_is_reported_again_however_old_it_grows(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    left = {b.type: (b.bank_ids, b.ledger_ids) for b in first.result.breaks}
    assert set(left) == {"in_bank_not_in_ledger", "in_transit"}   # the fee; bob's Friday top-up
    later = DAY + dt.timedelta(days=24)                             # far past the 10-day lookback
    run = reconcile_parsed(day_book, [parsed("later.csv", [line(1, 700, "S1", day=later)],
                                             opening=11850, day=later)])
    again = {b.type: (b.bank_ids, b.ledger_ids) for b in run.result.breaks}
    assert again["in_ledger_not_in_bank"] == left["in_transit"]
    assert sorted(b.bank_ids for b in run.result.breaks if b.bank_ids) == sorted(
        [left["in_bank_not_in_ledger"][0], (run.imported.line_ids[0],)])
    assert run.balance["unexplained_minor"] == 0
    shown = list_breaks(day_book)
    assert sorted(b.run_id for b in shown) == [run.run_id] * 3
    old = [b for b in list_breaks(day_book, state="superseded")]
    assert {b.run_id for b in old} == {first.run_id}
    with pytest.raises(BreakResolutionError, match="superseded"):
        resolve(day_book, old[0].id, action="accept-timing", note="n", by="Li Na")


def test_each_accounts_last_run_holds_its_open_breaks(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    day_book.open_account("assets:custody:bank2", "asset")
    other = reconcile_parsed(day_book, [parsed("bank2.csv", [line(1, 700, "S1")], opening=0,
                                               account="6222002")], account="assets:custody:bank2")
    assert {b.run_id for b in list_breaks(day_book)} == {first.run_id, other.run_id}


def test_the_latest_statement_gives_the_closing_balance_whatever_the_file_order(day_book):
    monday = parsed("monday.csv", [line(1, 2000, "B3", day=NEXT)], opening=11850, day=NEXT)
    friday = parsed("day.csv", STATEMENT, opening=0)
    run = reconcile_parsed(day_book, [monday, friday], dry_run=True)
    assert run.balance["bank_closing_minor"] == 13850 and run.balance["unexplained_minor"] == 0


def test_a_run_dated_before_its_statements_lines_is_refused(day_book):
    before = _counts(day_book)
    monday = parsed("monday.csv", [line(1, 2000, "B3", day=NEXT)], opening=11850, day=NEXT)
    with pytest.raises(ReconcileError, match=f"monday.csv: lines booked on {NEXT}, after the run's "
                                             f"date {DAY}"):
        reconcile_parsed(day_book, [monday], statement_date=DAY)
    assert _counts(day_book) == before


RECORD_TABLES = ("bank_line", "recon_match_bank", "recon_match_posting", "recon_run", "recon_match",
                 "recon_break", "statement_file", "recon_resolution")


def test_bank_lines_and_matches_are_append_only(day_book):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    resolve(day_book, run.break_ids[0], action="accept-timing", note="seen", by="Li Na")
    with day_book.engine.connect() as conn:
        before = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in RECORD_TABLES}
    assert all(before.values())   # every table holds rows the refusals below would touch
    refused = ["UPDATE bank_line SET raw = 'edited'", "DELETE FROM recon_match_bank",
               "DELETE FROM recon_match_posting", "UPDATE recon_run SET summary_json = '{}'",
               "DELETE FROM recon_run", "UPDATE recon_match SET rule = 'manual'",
               "DELETE FROM recon_match", "UPDATE recon_break SET amount_minor = 0",
               "DELETE FROM recon_break", "UPDATE statement_file SET filename = 'other.csv'",
               "DELETE FROM statement_file", "DELETE FROM recon_resolution"]
    for stmt in refused:
        table = stmt.split()[1] if stmt.startswith("UPDATE") else stmt.split()[2]
        with pytest.raises(DBAPIError, match=f"append_only_{table}"):
            with day_book.engine.begin() as conn:
                conn.execute(text(stmt))
    if day_book.engine.dialect.name == "postgresql":
        for table in RECORD_TABLES:
            with pytest.raises(DBAPIError, match=f"append_only_{table}: TRUNCATE"):
                with day_book.engine.begin() as conn:
                    conn.execute(text(f"TRUNCATE {table} CASCADE"))
    with day_book.engine.connect() as conn:
        assert before == {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                          for t in RECORD_TABLES}


def test_overlapping_file_adds_only_new_lines_and_repeats_are_kept(day_book):
    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT[:3], opening=0)])
    # The bank's second file of the day repeats three lines and brings a fee twice.
    later = parsed("day-later.csv", [*STATEMENT, STATEMENT[3]], opening=0)
    run = reconcile_parsed(day_book, [later])
    assert run.imported.files[0][3:] == (2, 3)
    assert len(run.imported.line_ids) == 5 and len(set(run.imported.line_ids)) == 5
    assert len(run.imported.repeated) == 1
    with day_book.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM bank_line ORDER BY id")).scalars().all()
    assert sorted(run.imported.line_ids) == ids
    assert set(run.imported.line_ids[:3]) == set(ids[:3])   # the known lines keep their ids


def test_run_result_carries_both_sides_of_every_break(day_book):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    named_bank = {i for b in run.result.breaks for i in b.bank_ids}
    named_ledger = {i for b in run.result.breaks for i in b.ledger_ids}
    assert set(run.bank) == named_bank and set(run.ledger) == named_ledger
    fee = next(iter(run.bank.values()))
    assert fee["raw"].endswith("手续费 service charge") and fee["booking_date"] == DAY
    transit = next(iter(run.ledger.values()))
    assert transit["external_ref"] == "B3" and transit["effective_date"] == DAY


def test_open_lines_taken_from_memory_equal_those_read_back(day_book):
    from reconcile import runs

    with day_book.engine.begin() as conn:
        _, added = importing.import_lines(conn, day_book.book_id, [parsed("day.csv", STATEMENT, opening=0)], None)
        since = DAY - dt.timedelta(days=10)
        read_back = sorted(runs._open_bank_lines(conn, day_book.book_id, "6222001", DAY, since))
        assert len(read_back) == 4
        # unbroken ids (the query leaves their range out) and broken ones (filtered after)
        assert sorted(runs._open_bank_lines(conn, day_book.book_id, "6222001", DAY, since, added)) == read_back
        gapped = importing.Added([added.ids[0], added.ids[2]], [added.lines[0], added.lines[2]])
        assert sorted(runs._open_bank_lines(conn, day_book.book_id, "6222001", DAY, since, gapped)) == read_back
        # lines outside the window stay out, from memory as from the database
        assert runs._open_bank_lines(conn, day_book.book_id, "6222001", DAY - dt.timedelta(days=1), since,
                                     added) == []
        conn.rollback()


RECON_TABLES = ["statement_file", "bank_line", "recon_run", "recon_match", "recon_match_bank",
                "recon_match_posting", "recon_break"]


def table_counts(book):
    with book.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in RECON_TABLES}


def test_a_failure_late_in_the_run_keeps_nothing(day_book, monkeypatch):
    from reconcile import runs

    before = table_counts(day_book)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(runs, "_store_breaks", fail)
    with pytest.raises(RuntimeError):
        reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    assert table_counts(day_book) == before
    monkeypatch.undo()
    assert reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)]).imported.files[0][3:] == (4, 0)


def test_two_overlapping_files_in_one_run(day_book):
    run = reconcile_parsed(day_book, [parsed("a.csv", STATEMENT[:3], opening=0),
                                      parsed("b.csv", [*STATEMENT, STATEMENT[3]], opening=0)])
    assert [f[3:] for f in run.imported.files] == [(3, 0), (2, 3)]
    assert len(set(run.imported.line_ids)) == 5


def test_a_booking_time_instead_of_a_day_is_refused(day_book):
    from reconcile.runs import ReconcileError

    timed = StatementLine(account="6222001", booking_date=dt.datetime(2026, 11, 20, 10, 0),
                          value_date=None, amount_minor=10000, currency="CNY", bank_ref="B1",
                          end_to_end_ref=None, counterparty=None, description="x", status="booked",
                          source_file_sha256="x" * 64, source_position="line 1", raw="r")
    before = table_counts(day_book)
    with pytest.raises(ReconcileError, match="line 1: booking and value dates must be dates"):
        reconcile_parsed(day_book, [parsed("dt.csv", [timed], opening=0)], statement_date=DAY)
    assert table_counts(day_book) == before


def test_bulk_writes_raise_sqlalchemy_errors_that_retries_and_translation_understand(day_book):
    """Driver errors from the bulk paths arrive as SQLAlchemy's (IntegrityError, ...)."""
    from decimal import Decimal

    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from ledger import models as m
    from reconcile.store import insert_rows, select_rows

    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    with day_book.engine.begin() as conn:
        match_id, bank_line_id = conn.execute(text(
            "SELECT match_id, bank_line_id FROM recon_match_bank")).first()
        with pytest.raises(IntegrityError):
            insert_rows(conn, m.ReconMatchBank.__table__, ("bank_line_id", "match_id"),
                        [(bank_line_id, match_id)])
        conn.rollback()
    with day_book.engine.connect() as conn:
        query = select(m.BankLine.id).where(m.BankLine.amount_minor == Decimal("1"))
        if conn.dialect.name == "sqlite":
            with pytest.raises(TypeError, match="not Decimal"):
                list(select_rows(conn, query))


def test_two_runs_importing_one_file_at_once(day_book, backend):
    """The run that loses the race fails with a ledger error (or, retried, finds the
    lines imported), never with a raw driver error; nothing is imported twice."""
    import threading
    import time

    from ledger.errors import LedgerError
    from reconcile import runs

    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    started, errors = threading.Event(), []
    slow_breaks = runs._store_breaks

    def slow(conn, run_id, breaks):
        started.set()
        time.sleep(1.5)
        return slow_breaks(conn, run_id, breaks)

    def first():
        try:
            reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)
    runs._store_breaks = slow
    try:
        thread = threading.Thread(target=first)
        thread.start()
        assert started.wait(30)
        runs._store_breaks = slow_breaks
        try:
            reconcile_parsed(day_book, [parsed("day-copy.csv", STATEMENT, opening=0)])
        except LedgerError as exc:
            errors.append(exc)
        thread.join()
    finally:
        runs._store_breaks = slow_breaks
    assert all(isinstance(e, LedgerError) for e in errors), errors
    with day_book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bank_line")).scalar() == 4


def test_reports_are_built_with_the_collector_paused_and_leave_it_as_it_was(day_book, monkeypatch):
    """A run leaves millions of tracked named tuples behind: a report must not set off
    full collections over them, nor leave the collector off afterwards."""
    import gc

    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    seen = []
    real = report.format_minor

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "format_minor", spy)
    assert gc.isenabled()
    for build in (report.to_csv, report.to_html, report.to_json, report.break_rows):
        seen.clear()
        assert build(run)
        assert seen and not any(seen), build.__name__
        assert gc.isenabled()
    gc.disable()
    try:
        report.to_csv(run)
        assert not gc.isenabled()   # paused by the caller: still paused
    finally:
        gc.enable()


def _stored_lines(book) -> dict:
    with book.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT account, booking_date, value_date, amount_minor, currency, bank_ref, "
            "end_to_end_ref, batch_id, counterparty, description, status, source_position, raw "
            "FROM bank_line")).all()
    return {row.bank_ref: tuple(str(v) if isinstance(v, dt.date) else v for v in row) for row in rows}


@pytest.mark.parametrize("shared", [True, False], ids=["columns shared", "value dates differ"])
def test_lines_are_stored_alike_whether_their_shared_columns_are_written_once_or_bound(
        day_book, monkeypatch, shared):
    from reconcile import runs

    taken = []
    real = importing._shared_columns
    monkeypatch.setattr(importing, "_shared_columns", lambda *a: taken.append(real(*a)) or taken[-1])
    lines = [line(n, 100 * n, f"Q{n}", description="it's 'quoted'", e2e=f"E{n}")._replace(
                 account="6222'001", counterparty=f"O'Brien {n}", batch_id="BATCH'1",
                 value_date=DAY if shared or n % 2 else NEXT)
             for n in range(1, 6)]
    with day_book.engine.begin() as conn:
        runs.import_parsed(conn, day_book.book_id, [parsed("day.csv", lines, opening=0)])
    if day_book.engine.dialect.name != "sqlite":
        assert taken == []   # only SQLite writes shared columns into the statement
    else:
        assert (taken[0] is not None) == shared
    if shared and taken:
        assert taken[0]["account"] == "6222'001" and taken[0]["batch_id"] == "BATCH'1"
    expected = {x.bank_ref: (x.account, str(x.booking_date), str(x.value_date), x.amount_minor,
                             x.currency, x.bank_ref, x.end_to_end_ref, x.batch_id, x.counterparty,
                             x.description, x.status, x.source_position, x.raw) for x in lines}
    assert _stored_lines(day_book) == expected


def test_only_writable_constants_are_written_into_the_statement():
    from reconcile.store import sql_constant

    assert sql_constant(5) == "5" and sql_constant(None) == "NULL"
    assert sql_constant("it's") == "'it''s'"
    assert sql_constant("a\x00b") is None
    assert sql_constant(True) is None and sql_constant(1.5) is None


def test_insert_rows_with_constants_on_both_databases(day_book):
    from ledger import models as m
    from reconcile.store import insert_rows, reserve_ids

    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    with day_book.engine.begin() as conn:
        ids = reserve_ids(conn, m.ReconMatch.__table__, 2)
        insert_rows(conn, m.ReconMatch.__table__, ("id",), [(i,) for i in ids],
                    constants={"run_id": run.run_id, "rule": "man'ual"})
        if conn.dialect.name == "sqlite":   # written into the statement there: no NUL
            with pytest.raises(TypeError, match="constant rule"):
                insert_rows(conn, m.ReconMatch.__table__, ("id",), [(ids[-1] + 1,)],
                            constants={"run_id": run.run_id, "rule": "a\x00b"})
        stored = conn.execute(text("SELECT id, run_id, rule FROM recon_match WHERE id IN (:a, :b) "
                                   "ORDER BY id"), {"a": ids[0], "b": ids[1]}).all()
    assert [tuple(r) for r in stored] == [(i, run.run_id, "man'ual") for i in ids]


def test_bulk_inserts_span_several_statements_and_check_their_shapes(day_book, monkeypatch):
    from ledger import models as m
    from reconcile import store

    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    monkeypatch.setattr(store, "STATEMENT_ROWS", 3)   # 10 rows: statements of 3, 3, 3 and 1; 7: 3, 3, 1
    with day_book.engine.begin() as conn:
        ids = store.reserve_ids(conn, m.ReconMatch.__table__, 10)
        store.insert_rows(conn, m.ReconMatch.__table__, ("id", "rule"),
                          [(i, f"rule-{i}") for i in ids], constants={"run_id": run.run_id})
        more = store.reserve_ids(conn, m.ReconMatch.__table__, 7)   # the same, as columns
        store.insert_columns(conn, m.ReconMatch.__table__, ("rule", "id"),
                             [[f"rule-{i}" for i in more], more], constants={"run_id": run.run_id})
        stored = conn.execute(text("SELECT id, run_id, rule FROM recon_match WHERE id >= :a "
                                   "ORDER BY id"), {"a": ids[0]}).all()
        assert [tuple(r) for r in stored] == [(i, run.run_id, f"rule-{i}") for i in ids + more]
        with pytest.raises(ValueError, match="one column of equal length for each of rule, id"):
            store.insert_columns(conn, m.ReconMatch.__table__, ("rule", "id"),
                                 [["a", "b"], [more[-1] + 1]], constants={"run_id": run.run_id})
        if conn.dialect.name == "sqlite":
            top = more[-1]
            for rows in ([(top + 1, "a"), (top + 2,)],
                         [(top + 1, "a", top + 2), ("b",)]):   # as many values in all
                with pytest.raises(ValueError, match="every row must hold 2 values"):
                    store.insert_rows(conn, m.ReconMatch.__table__, ("id", "rule"), rows,
                                      constants={"run_id": run.run_id})
        assert conn.execute(text("SELECT count(*) FROM recon_match WHERE id > :a"),
                            {"a": more[-1]}).scalar() == 0
        conn.rollback()


def _writer_threads(monkeypatch):
    """Record the thread each bulk insert runs in, by table."""
    import threading

    from reconcile import runs

    seen: dict = {}

    def recording(inner):
        def insert(conn, table, *args, **kwargs):
            seen.setdefault(table.name, set()).add(threading.current_thread().name)
            return inner(conn, table, *args, **kwargs)
        return insert
    _wrap_bulk_inserts(monkeypatch, recording, runs)
    _wrap_bulk_inserts(monkeypatch, recording)
    return seen


def _wrap_bulk_inserts(monkeypatch, wrap, module=importing):
    """Wrap the bulk inserts ``module`` uses (rows, or the same rows as columns)."""
    for name in ("insert_rows", "insert_columns"):
        monkeypatch.setattr(module, name, wrap(getattr(module, name)))


def test_lines_go_in_from_a_second_thread_on_sqlite_with_the_same_result(day_book, monkeypatch):
    """On a SQLite file the bank lines are inserted by a writer thread while the run
    reads and matches; the result is the one the run gets doing it all in turn."""
    from reconcile import runs

    files = [parsed("day.csv", STATEMENT, opening=0)]
    monkeypatch.setattr(runs, "can_overlap", lambda conn: False)
    in_turn = reconcile_parsed(day_book, files, dry_run=True)
    monkeypatch.undo()
    seen = _writer_threads(monkeypatch)
    overlapped = reconcile_parsed(day_book, files, dry_run=True)
    sqlite = day_book.engine.dialect.name == "sqlite"
    assert seen["bank_line"] == ({"reconcile-writer"} if sqlite else {"MainThread"})
    assert seen["recon_match"] == {"MainThread"}
    assert in_turn.result.matches and in_turn.result.breaks
    assert overlapped.balance == in_turn.balance
    if sqlite:   # the dry runs reserved the same ids (PostgreSQL's sequences move on)
        assert overlapped.result == in_turn.result and overlapped.imported == in_turn.imported
        assert overlapped.bank == in_turn.bank
    else:
        assert overlapped.result.summary == in_turn.result.summary


@pytest.mark.parametrize("where", ["insert", "match"])
def test_a_failure_while_the_writer_runs_keeps_nothing(day_book, monkeypatch, where):
    """A failed insert in the writer thread fails the run before it matches; a failure
    of the run while the writer is still inserting waits for that insert to end before
    the transaction is rolled back. Nothing is kept; the next run works.

    The threads are put in the order each case describes, whatever the machine's
    load: the failed insert is known before the ledger side is (the run checks the
    writer when it takes the ledger side), and matching fails once the insert runs."""
    import threading
    import time

    from sqlalchemy import event

    from reconcile import matching, runs

    before = table_counts(day_book)
    events: list = []
    plain_match = matching.match
    writers: list = []
    inserting = threading.Event()

    class RecordedWriter(runs.Writer):
        def __init__(self):
            super().__init__()
            writers.append(self)

    plain_side = runs._ledger_side

    def side_after_the_failure(*args, **kwargs):
        deadline = time.monotonic() + 30
        while not (writers and writers[0]._error is not None) and time.monotonic() < deadline:
            time.sleep(0.005)
        return plain_side(*args, **kwargs)

    def matched(*args, **kwargs):
        events.append("match")
        return plain_match(*args, **kwargs)

    def failing_match(*args, **kwargs):
        if writers:   # overlapped (SQLite): fail while the insert is running
            assert inserting.wait(30)
        events.append("match")
        raise RuntimeError("matching failed")

    def slow_or_failing(inner):
        def insert(conn, table, *args, **kwargs):
            if table.name != "bank_line":
                return inner(conn, table, *args, **kwargs)
            if where == "insert":
                raise RuntimeError("disk full")
            inserting.set()
            time.sleep(0.3)   # still inserting when the run fails
            inner(conn, table, *args, **kwargs)
            events.append("insert end")
            return None
        return insert

    def rolled_back(conn):
        events.append("rollback")

    _wrap_bulk_inserts(monkeypatch, slow_or_failing)
    monkeypatch.setattr(matching, "match", matched if where == "insert" else failing_match)
    monkeypatch.setattr(runs, "Writer", RecordedWriter)
    if where == "insert":
        monkeypatch.setattr(runs, "_ledger_side", side_after_the_failure)
    event.listen(day_book.engine, "rollback", rolled_back)
    try:
        with pytest.raises(RuntimeError, match="disk full" if where == "insert" else "matching failed"):
            reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    finally:
        event.remove(day_book.engine, "rollback", rolled_back)
    rollback = events.index("rollback")   # (pooled connections may roll back again later)
    if where == "insert":
        assert "match" not in events[:rollback]
        if day_book.engine.dialect.name == "sqlite":
            assert len(writers) == 1   # the lines went in from the writer thread
    else:
        assert events[:rollback] == ["match", "insert end"] or \
            events[:rollback] == ["insert end", "match"]
    assert table_counts(day_book) == before
    monkeypatch.undo()
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    assert run.imported.files[0][3:] == (4, 0) and run.result.matches


def test_later_files_of_a_run_see_the_lines_of_the_earlier_ones(day_book, monkeypatch):
    """The second file of a run waits for the first one's lines to be in: its repeats of
    them are known lines, and its new lines take fresh ids."""
    seen = _writer_threads(monkeypatch)
    run = reconcile_parsed(day_book, [parsed("a.csv", STATEMENT[:3], opening=0),
                                      parsed("b.csv", STATEMENT[1:], opening=0)])
    assert [f[3:] for f in run.imported.files] == [(3, 0), (1, 2)]
    assert len(set(run.imported.line_ids)) == 4
    assert seen["bank_line"] == ({"reconcile-writer"} if day_book.engine.dialect.name == "sqlite"
                                 else {"MainThread"})


def _stored_matches(book, run_id):
    """The run's stored matches in order, as ``(rule, bank ids, posting ids)``."""
    with book.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.id, m.rule, b.bank_line_id, p.posting_id FROM recon_match m "
            "JOIN recon_match_bank b ON b.match_id = m.id "
            "JOIN recon_match_posting p ON p.match_id = m.id "
            "WHERE m.run_id = :r ORDER BY m.id, b.bank_line_id, p.posting_id"),
            {"r": run_id}).all()
    stored: dict = {}
    for match_id, rule, bank_id, posting_id in rows:
        banks, postings = stored.setdefault(match_id, (rule, [], []))[1:]
        if bank_id not in banks:
            banks.append(bank_id)
        if posting_id not in postings:
            postings.append(posting_id)
    return [(rule, tuple(banks), tuple(postings)) for rule, banks, postings in stored.values()]


@pytest.mark.parametrize("column_wise", [True, False])
def test_matches_are_stored_as_the_run_made_them(day_book, monkeypatch, column_wise):
    """One-to-one matches go in column-wise (two id columns a block); any other block
    match by match; both store each match with its rule and both its sides, in order."""
    from reconcile import matching

    if not column_wise:
        monkeypatch.setattr(matching.Matches, "id_blocks",
                            lambda self: iter([(None, tuple(self), None)]))
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    made = [(mt.rule, mt.bank_ids, mt.ledger_ids) for mt in run.result.matches]
    assert len(made) == 3 and {rule for rule, _, _ in made} == {"exact_reference", "amount_date"}
    assert _stored_matches(day_book, run.run_id) == made


def test_id_blocks_give_every_match_in_order():
    from reconcile.matching import BankItem, LedgerItem, match

    bank = [BankItem(10 + k, DAY, 100 + k, "CNY", f"R{k}", None, DAY, None, "") for k in range(6)]
    bank.append(BankItem(30, DAY, 999, "CNY", None, None, DAY, None, ""))          # amount and date
    ledger = [LedgerItem(50 + k, 50 + k, DAY, 100 + k, "CNY", f"R{k}", None, "top_up")
              for k in range(6)]
    ledger.append(LedgerItem(70, 70, DAY, 999, "CNY", None, None, "top_up"))
    matches = match(bank, ledger, statement_date=DAY).matches
    blocks = list(matches.id_blocks())
    flat = []
    for rule, banks, ledgers in blocks:
        if rule is None:
            flat += [(mt.rule, mt.bank_ids, mt.ledger_ids) for mt in banks]
        else:
            assert banks.dtype == ledgers.dtype == "int64" and len(banks) == len(ledgers)
            flat += [(rule, (b,), (p,)) for b, p in zip(banks.tolist(), ledgers.tolist())]
    assert flat == [(mt.rule, mt.bank_ids, mt.ledger_ids) for mt in matches]
    assert len(flat) == 7 and any(rule is not None for rule, _, _ in blocks)


def test_a_batch_payout_is_stored_with_all_its_postings(day_book):
    """A one-to-many match (a batch payout line and its postings) is stored match by
    match beside the column-wise one-to-one blocks."""
    from ledger.flows import BANK

    fees = "expenses:platform:bank_fees"
    for n, amount in enumerate(("12.00", "8.00")):
        day_book.post([(BANK, f"-{amount}"), (fees, amount)], key=f"batch-{n}",
                      effective_date=DAY, metadata={"batch_id": "PAY-7"})
    payout = line(5, -2000, "BANKSERIAL-PAY", description="batch payout")._replace(batch_id="PAY-7")
    run = reconcile_parsed(day_book, [parsed("day.csv", [*STATEMENT, payout], opening=0)])
    made = [(mt.rule, mt.bank_ids, tuple(sorted(mt.ledger_ids))) for mt in run.result.matches]
    batch = [m for m in made if m[0] == "batch"]
    assert len(batch) == 1 and len(batch[0][2]) == 2
    assert _stored_matches(day_book, run.run_id) == made


def _stored_fingerprints(book):
    with book.engine.connect() as conn:
        return conn.execute(text("SELECT id, fingerprint FROM bank_line ORDER BY id")).all()


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_repeats_are_told_apart_across_import_chunks(day_book, monkeypatch, chunk):
    """Lines go in a chunk at a time as their fingerprints are computed; a line that
    repeats one of an earlier chunk gets the same occurrence-numbered fingerprint and
    is reported the same as when the whole file is one chunk; re-importing the file
    (the known-lines path) adds nothing."""
    fee, payout = STATEMENT[3], STATEMENT[2]
    lines = [*STATEMENT, fee, payout, fee]     # the fee three times, the payout twice
    whole = reconcile_parsed(day_book, [parsed("day.csv", lines, opening=0)], dry_run=True)
    assert [lines[whole.imported.line_ids.index(i)] for i in whole.imported.repeated] == \
        [fee, payout, fee]
    monkeypatch.setattr(importing, "IMPORT_CHUNK", chunk)
    run = reconcile_parsed(day_book, [parsed("day.csv", lines, opening=0)])
    assert run.imported.files[0][3:] == (7, 0)
    assert run.imported.line_ids == whole.imported.line_ids or \
        day_book.engine.dialect.name == "postgresql"   # (its ids moved on past the dry run)
    assert len(run.imported.repeated) == 3
    stored = _stored_fingerprints(day_book)
    assert len(stored) == 7 and len({fp for _, fp in stored}) == 7
    monkeypatch.undo()   # the file read again as one chunk finds every line by its fingerprint
    again = reconcile_parsed(day_book, [parsed("day.csv", lines, opening=0)])
    assert again.imported.files[0][3:] == (0, 7)
    assert _stored_fingerprints(day_book) == stored
    assert again.imported.line_ids == run.imported.line_ids
    assert again.imported.repeated == run.imported.repeated


def test_open_postings_read_as_json_columns_equal_those_read_as_rows(day_book, monkeypatch):
    """On SQLite the open postings come as one JSON array per column; they are the very
    items the row-by-row query gives (references missing or not, batch ids from the
    entries' metadata, text needing JSON escapes)."""
    from ledger.flows import BANK
    from reconcile import runs

    fees = "expenses:platform:bank_fees"
    day_book.post([(BANK, "-1.00"), (fees, "1.00")], key="odd", effective_date=DAY,
                  external_ref='quote " back\\slash \u2028 \x01 用户', metadata={"batch_id": "PAY-9"})
    day_book.post([(BANK, "-2.00"), (fees, "2.00")], key="no-ref", effective_date=DAY)
    account = day_book.account(BANK)
    since = DAY - dt.timedelta(days=10)
    calls = []
    real = runs._json_columns

    def spying(conn, query):
        calls.append(conn.dialect.name)
        return real(conn, query)
    monkeypatch.setattr(runs, "_json_columns", spying)
    with day_book.reading() as conn:
        as_columns = runs._open_postings(conn, account.id, DAY, since)
        monkeypatch.setattr(runs, "_json_columns", lambda conn, query: None)
        as_rows = runs._open_postings(conn, account.id, DAY, since)
    assert calls == (["sqlite"] if day_book.engine.dialect.name == "sqlite" else [])
    assert list(as_columns) == list(as_rows) and len(as_rows) == 6
    odd = [item for item in as_rows if item.batch_id == "PAY-9"]
    assert len(odd) == 1 and odd[0].external_ref.startswith('quote " back\\slash \u2028 \x01')
    assert [item.amount_minor for item in as_rows if item.external_ref is None] == [-200]


def test_only_a_locking_sqlite_file_in_wal_mode_with_connections_to_spare_overlaps(day_book):
    """The run writes from a second thread and reads through other connections only on a
    SQLite file in WAL mode, in a transaction that already holds the write lock (an
    engine set up by the ledger), with a pool that can lend two more connections."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool, StaticPool

    import ledger
    from reconcile.parallel import can_overlap

    def overlaps(engine, begin=True):
        with engine.begin() if begin else engine.connect() as conn:
            return can_overlap(conn)

    sqlite = day_book.engine.dialect.name == "sqlite"
    assert overlaps(day_book.engine) is sqlite
    assert overlaps(day_book.engine, begin=False) is False     # no write lock held yet
    if not sqlite:
        return
    url = str(day_book.engine.url)
    cases = {
        "in memory": ledger.open("sqlite://").engine,
        "one connection": ledger.open(url, pool_size=1, max_overflow=0).engine,
        "no pool": ledger.open(url, poolclass=NullPool).engine,
        "not set up by the ledger": create_engine(url),
        "shared connection": create_engine(url, poolclass=StaticPool),
    }
    try:
        assert {name: overlaps(engine) for name, engine in cases.items()} == {
            "in memory": False, "one connection": False, "no pool": True,
            "not set up by the ledger": False, "shared connection": False}
    finally:
        for engine in cases.values():
            engine.dispose()


def test_a_run_on_an_engine_of_one_connection_works_in_turn(db_url):
    import ledger

    if not db_url.startswith("sqlite"):
        pytest.skip("the pool size matters to SQLite's overlapped run only")
    narrow = ledger.open(db_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        f = narrow.flows
        f.open_system_accounts()
        f.open_user("alice")
        f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
        run = reconcile_parsed(narrow, [parsed("day.csv", STATEMENT[:1], opening=0)])
        assert run.reconciled and run.imported.files[0][3:] == (1, 0)
    finally:
        narrow.dispose()


POOL = [line(n, amount, ref, description=text)
        for n, (amount, ref, text) in enumerate([(100, "R1", "a"), (-250, "R2", "b"), (100, "R1", "a "),
                                                 (777, None, "c"), (5, "R5", "用户")], start=1)]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=12),
       chunk=st.integers(1, 5))
def test_import_in_chunks_numbers_repeats_as_the_whole_file_would(day_book, picks, chunk):
    """Whatever the chunk size, every line is stored under the fingerprint of its content
    and its occurrence so far in the file, the repeats are reported, and importing the
    file again adds nothing and gives the same ids."""
    from reconcile.importing import fingerprint

    lines = [POOL[k] for k in picks]
    seen: dict = {}
    expected, repeats = [], []
    for k, x in enumerate(lines):
        occurrence = seen.get(x, 0)
        seen[x] = occurrence + 1
        expected.append(fingerprint(x, occurrence))
        if occurrence:
            repeats.append(k)
    before = importing.IMPORT_CHUNK
    importing.IMPORT_CHUNK = chunk
    try:
        with day_book.engine.begin() as conn:
            first, _ = importing.import_lines(conn, day_book.book_id, [parsed("f.csv", lines, 0)], None)
            stored = conn.execute(text("SELECT id, fingerprint FROM bank_line ORDER BY id")).all()
            again, added = importing.import_lines(conn, day_book.book_id,
                                                  [parsed("f.csv", lines, 0)], None)
            conn.rollback()
    finally:
        importing.IMPORT_CHUNK = before
    assert [fp for _, fp in stored] == expected
    assert list(first.line_ids) == [i for i, _ in stored]
    assert list(first.repeated) == [first.line_ids[k] for k in repeats]
    assert first.files[0][3:] == (len(lines), 0) and again.files[0][3:] == (0, len(lines))
    assert again.line_ids == first.line_ids and again.repeated == first.repeated and added == ([], [])


def test_items_of_added_lines_are_those_of_each_line_whatever_the_path():
    from reconcile import runs
    from reconcile.matching import BankItem

    def one_by_one(ids, lines, since, through):
        return [BankItem(i, x.booking_date, x.amount_minor, x.currency, x.bank_ref,
                         x.end_to_end_ref, x.value_date, x.batch_id, x.description or "")
                for i, x in zip(ids, lines) if since <= x.booking_date <= through]

    day = [line(1, 10000, "B1", description="充值")._replace(batch_id="BATCH-1"),
           line(2, -500, "P1", e2e="ORDER-9", description="提现")]
    earlier = [line(3, 700, "B3", day=DAY - dt.timedelta(days=3), description="x")]
    undescribed = [line(4, 900, "B4")._replace(description=None)]
    for lines, since in ((day, DAY), (day + earlier, DAY), (day + earlier, DAY - dt.timedelta(days=5)),
                         (day + undescribed, DAY), ([], DAY)):
        ids = list(range(10, 10 + len(lines)))
        items = runs._line_items(ids, lines, since, DAY)
        assert list(items) == one_by_one(ids, lines, since, DAY)
        assert len(items) == len(one_by_one(ids, lines, since, DAY))
        assert all(type(item) is BankItem for item in items)
    assert runs._line_items([7], undescribed, DAY, DAY)[0].description == ""
    assert runs._line_items([1, 2], day, DAY, DAY)[0] == BankItem(
        1, DAY, 10000, "CNY", "B1", None, DAY, "BATCH-1", "充值")


def test_a_run_without_a_closing_balance_is_not_called_reconciled(day_book):
    whole = [line(1, 10000, "B1"), line(2, 5000, "ORDER-77"), line(3, -3000, "P1"), line(4, 2000, "B3")]
    path, file = parsed("day.csv", whole, opening=0)
    proved = reconcile_parsed(day_book, [(path, file)], dry_run=True)
    assert proved.reconciled and report.verdict(proved) == ["RECONCILED"]
    bare = dataclasses.replace(file, statements=(dataclasses.replace(file.statements[0], closing=None),))
    run = reconcile_parsed(day_book, [(path, bare)], dry_run=True)
    assert not run.result.breaks and not run.balance_proved and not run.reconciled
    assert report.verdict(run) == ["BALANCE NOT PROVED: the statement gives no closing balance to "
                                   "prove the ledger's against"]


def test_an_ambiguous_break_with_several_items_each_side_is_resolved_by_a_pair(day_book):
    day_book.flows.top_up("alice", "50.00", bank_ref="ORDER-78", key="t4", effective_date=DAY)
    statement = [line(1, 10000, "B1"), line(2, 5000, "X"), line(3, -3000, "P1"), line(4, 5000, "Y")]
    run = reconcile_parsed(day_book, [parsed("day.csv", statement, opening=0)])
    (brk,) = [b for b in run.result.breaks if b.type == "ambiguous"]
    assert (len(brk.bank_ids), len(brk.ledger_ids)) == (2, 2)
    brk_id = run.break_ids[run.result.breaks.index(brk)]
    with pytest.raises(BreakResolutionError, match="name the pair: --pair BANK_LINE:POSTING"):
        resolve(day_book, brk_id, action="match-with", match_with=brk.bank_ids[0], note="n", by="Li Na")
    with pytest.raises(BreakResolutionError, match="a pair is one of its bank lines"):
        resolve(day_book, brk_id, action="match-with", pair=(brk.ledger_ids[0], brk.bank_ids[0]),
                note="n", by="Li Na")
    done = resolve(day_book, brk_id, action="match-with", pair=(brk.bank_ids[0], brk.ledger_ids[1]),
                   note="serial X paid order 78 (the bank's callback)", by="Li Na")
    assert done.state == "resolved"
    nxt = reconcile_parsed(day_book, [parsed("day.csv", statement, opening=0)])  # the rest, unique now
    assert [(mt.rule, mt.bank_ids, mt.ledger_ids) for mt in nxt.result.matches] == [
        ("amount_date", (brk.bank_ids[1],), (brk.ledger_ids[0],))]


def test_a_run_for_an_earlier_day_takes_nothing_dated_after_it(day_book):
    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])   # the fee stays open
    before = DAY - dt.timedelta(days=1)
    run = reconcile_parsed(day_book, [parsed("thu.csv", [line(1, 100, "T1", day=before)], opening=0,
                                             day=before)], dry_run=True)
    assert [b.bank_ids for b in run.result.breaks] == [(run.imported.line_ids[0],)]
    assert not run.result.matches and run.balance["ledger_balance_minor"] == 0


def test_an_older_break_whose_items_a_late_run_kept_stays_open_and_is_resolved_itself(day_book):
    """A late statement for the day before cannot take the fee dated after it: the run keeps
    it for the next one without naming it, and the fee's break stays open meanwhile (it
    was listed nowhere until the next run: a finance user saw no open break)."""
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    fee = next(i for i, b in zip(first.break_ids, first.result.breaks) if b.type == "in_bank_not_in_ledger")
    before = DAY - dt.timedelta(days=1)     # a late statement for the day before: cannot take the fee
    back = reconcile_parsed(day_book, [parsed("thu.csv", [line(1, 100, "T1", day=before)], opening=0,
                                              day=before)])
    listed = {b.id: b.state for b in list_breaks(day_book)}
    assert listed[fee] == "open"
    fee_line = first.result.breaks[first.break_ids.index(fee)].bank_ids[0]
    assert back.kept["bank_line_ids"] == [fee_line]   # (and the day's posting in transit)
    kept = len(back.kept["posting_ids"])
    assert f"kept for the next run: 1 bank line(s) and {kept} posting(s) an earlier run left " \
           f"open, dated after {before} (their breaks stay open: `ledger breaks list`)" \
           in report.summary_lines(back)
    assert {b.id for b in list_breaks(day_book)} >= set(back.break_ids)   # and the late run's own
    assert not any(set(b.bank_ids) & set(first.result.breaks[first.break_ids.index(fee)].bank_ids)
                   for b in back.result.breaks)
    done = resolve(day_book, fee, action="adjust", account="expenses:platform:bank_fees",
                   note="bank fee", by="Li Na")
    assert done.state == "resolved"
    again = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    fee_line = first.result.breaks[first.break_ids.index(fee)].bank_ids[0]
    assert fee_line not in {i for b in again.result.breaks for i in b.bank_ids}   # matched now
    assert back.imported.line_ids[0] in {i for b in again.result.breaks for i in b.bank_ids}


@pytest.mark.parametrize("code, account, currency, refusal", [
    ("assets:custody:bank2", "6222002", None, r"is of bank account 6222002, not of 6222001"),
    ("assets:custody:usd", None, "USD", r"is in USD, assets:custody:bank in CNY"),
], ids=["another bank account", "another currency"])
def test_match_with_takes_only_a_bank_line_of_the_runs_bank_account_and_currency(
        day_book, code, account, currency, refusal):
    run = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    transit = next(i for i, b in zip(run.break_ids, run.result.breaks) if b.type == "in_transit")
    day_book.open_account(code, "asset", currency=currency or "CNY")
    other = reconcile_parsed(day_book, [parsed("other.csv", [line(1, 2000, "S1")], opening=0,
                                               account=account, currency=currency)], account=code)
    with pytest.raises(BreakResolutionError, match=refusal):
        resolve(day_book, transit, action="match-with", match_with=other.imported.line_ids[0],
                note="n", by="Li Na")


def _fee_line_id(run):
    return next(b.bank_ids[0] for b in run.result.breaks if b.type == "in_bank_not_in_ledger")


def test_what_a_backdated_run_cannot_take_is_kept_for_the_next_run(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    fee = _fee_line_id(first)
    before = DAY - dt.timedelta(days=1)
    back = reconcile_parsed(day_book, [parsed("thu.csv", [line(1, 100, "T1", day=before)], opening=0,
                                              day=before)])
    assert fee not in {i for b in back.result.breaks for i in b.bank_ids}   # dated after the run
    later = DAY + dt.timedelta(days=6)
    run = reconcile_parsed(day_book, [parsed("later.csv", [line(1, 900, "L1", day=later)],
                                             opening=0, day=later)], lookback_days=2)
    assert fee in {i for b in run.result.breaks for i in b.bank_ids}         # taken up again
    assert fee in {i for b in list_breaks(day_book) for i in b.bank_line_ids}


def test_a_ledger_account_is_reconciled_against_one_bank_account(day_book):
    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    before = _counts(day_book)
    with pytest.raises(ReconcileError, match=r"assets:custody:bank is reconciled against bank account "
                                             r"6222001 \(run \d+\); these statements are of bank "
                                             r"account 6222002"):
        reconcile_parsed(day_book, [parsed("b.csv", [line(1, 700, "S1")], opening=0,
                                           account="6222002")])
    assert _counts(day_book) == before


def test_a_superseded_break_points_at_the_newest_break_that_names_its_items(day_book):
    first = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    second = reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    x, y = (next(i for i, b in zip(r.break_ids, r.result.breaks) if b.type == "in_bank_not_in_ledger")
            for r in (first, second))
    before = DAY - dt.timedelta(days=1)     # the newest run names the fee nowhere
    reconcile_parsed(day_book, [parsed("thu.csv", [line(1, 100, "T1", day=before)], opening=0,
                                       day=before)])
    with pytest.raises(BreakResolutionError, match=f"break {y} of a later run names its items again; "
                                                   "resolve that one"):
        resolve(day_book, x, action="accept-timing", note="n", by="Li Na")
    resolve(day_book, y, action="accept-timing", note="the bank books it late", by="Li Na")
    with pytest.raises(BreakResolutionError, match=f"break {y} of a later run names its items again "
                                                   "and is resolved"):
        resolve(day_book, x, action="accept-timing", note="n", by="Li Na")


def test_a_repeat_stays_a_duplicate_when_the_line_it_repeats_was_matched_earlier(day_book):
    b1 = line(1, 10000, "B1", description="top-up alice")
    first = reconcile_parsed(day_book, [parsed("a.csv", [b1, b1._replace(source_position="line 2")],
                                               opening=0)])
    (dup,) = [b for b in first.result.breaks if b.type == "duplicate"]
    original = dup.duplicate_of
    overlapping = parsed("b.csv", [b1, line(2, -3000, "P1")], opening=0)   # B1 known, P1 new
    run = reconcile_parsed(day_book, [overlapping])
    again = [b for b in run.result.breaks if dup.bank_ids[0] in b.bank_ids]
    assert [(b.type, b.duplicate_of) for b in again] == [("duplicate", original)]
    assert "repeats bank reference 'B1' of bank line" in again[0].detail
