"""Reports as of any date, period close with checkpoints, journal and exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import ledger
from cli import main
from ledger import exports, periods, reports
from ledger.balances import balances_by_account
from ledger.money import from_minor
from ledger.errors import ClosedPeriodError, InputError, PeriodCloseError, ReportError

try:
    from beancount import loader as bean_loader
except ImportError:  # beancount is a test extra: the checks that load a file need it
    bean_loader = None

D = dt.date
BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U2 = "liabilities:users:u2:available"
FEES = "income:platform:fees:service"
RESERVE = "liabilities:platform:risk_reserve"
PROMO = "expenses:marketing:promo"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def chart(book):
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.open_account(U2, "liability", no_overdraft=True)
    book.open_account(FEES, "income")
    book.open_account(RESERVE, "liability")
    book.open_account(PROMO, "expense")
    return book


def small_book(book):
    """September to November: top-ups, a fee, a promo, a transfer, a reversal."""
    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", kind="top_up",
              effective_date=D(2026, 9, 5), external_ref="B001")
    book.post([(U1, "5.00"), (FEES, "-5.00")], key="f1", kind="fee", effective_date=D(2026, 9, 20))
    book.post([(BANK, "50.00"), (U2, "-50.00")], key="t2", kind="top_up", effective_date=D(2026, 10, 3))
    book.post([(PROMO, "2.00"), (U2, "-2.00")], key="p1", kind="promo", effective_date=D(2026, 10, 9),
              memo="welcome bonus", metadata={"campaign": "autumn", "rate": Decimal("0.015")})
    book.post([(U1, "10.00"), (U2, "-10.00")], key="x1", kind="transfer", effective_date=D(2026, 11, 2))
    book.reverse(book.entry_by_key("x1").id, key="x1-rev", reason="sent twice",
                 effective_date=D(2026, 11, 3))
    return book


# --- trial balance and checkpoints --------------------------------------------------------
def test_as_of_sums_from_checkpoints_equal_a_plain_scan_on_every_day(book):
    chart(book)
    rng = random.Random(7)
    accounts = [U1, U2, RESERVE]
    start = D(2026, 7, 1)
    for i in range(80):
        day = start + dt.timedelta(days=rng.randrange(0, 120))
        who = rng.choice(accounts)
        amount = Decimal(rng.randrange(1, 50000)) / 100
        book.post([(BANK, amount), (who, -amount)], key=f"k{i}", effective_date=day)
    for month_end in (D(2026, 7, 31), D(2026, 8, 31), D(2026, 9, 30)):
        book.close_period(month_end, month_end.strftime("%Y-%m"))
    with book.reading() as conn:
        for offset in range(-3, 125, 3):
            day = start + dt.timedelta(days=offset)
            plain = {k: v for k, v in balances_by_account(conn, book.book_id, day).items() if v}
            fast = {k: v for k, v in periods.posted_sums(conn, book.book_id, day).items() if v}
            assert fast == plain, day
            bank = book.account(BANK).id
            assert periods.account_posted_sum(conn, book.book_id, bank, day) == plain.get(bank, 0)
        assert periods.posted_sums(conn, book.book_id) == balances_by_account(conn, book.book_id)


def test_footer_names_the_last_linked_included_entry_on_every_day(book):
    chart(book)
    rng = random.Random(11)

    def post_some(n, first, days, tag):
        for i in range(n):
            day = first + dt.timedelta(days=rng.randrange(days))  # out of date order on purpose
            book.post([(BANK, "1.00"), (U1, "-1.00")], key=f"{tag}{i}", effective_date=day)
            if rng.random() < 0.3:
                book.seal()

    post_some(40, D(2026, 7, 1), 90, "a")
    book.close_period(D(2026, 7, 31), "2026-07")
    book.close_period(D(2026, 8, 31), "2026-08")
    post_some(20, D(2026, 9, 1), 60, "b")
    book.seal()
    with book.reading() as conn:
        for offset in range(-5, 130):
            day = D(2026, 7, 1) + dt.timedelta(days=offset)
            want = conn.execute(text(
                "SELECT coalesce(max(c.seq), 0) FROM chain_link c JOIN journal_entry j "
                "ON j.id = c.entry_id WHERE j.effective_date <= :d"), {"d": day}).scalar()
            foot = reports.footer(conn, book.book_id, book.name, day)
            assert foot.chain_seq == want, day
            if want:
                assert (foot.last_entry_id, foot.chain_hash) == tuple(conn.execute(text(
                    "SELECT entry_id, chain_hash FROM chain_link WHERE seq = :s"), {"s": want}).one())
            else:
                assert (foot.last_entry_id, foot.chain_hash) == (None, "0" * 64)


def test_trial_balance_columns_totals_rollup_and_footer(book):
    small_book(book)
    book.seal()
    tb = reports.trial_balance(book, as_of=D(2026, 10, 31))
    by = {r.account: r for r in tb.rows}
    assert by[BANK].debit_minor == 15000 and by[BANK].credit_minor == 0
    assert by[U1].credit_minor == 9500 and by[U2].credit_minor == 5200
    assert by[FEES].credit_minor == 500 and by[PROMO].debit_minor == 200
    assert tb.totals == {"CNY": (15200, 15200)} and tb.balanced
    # Footer: the last entry dated on or before the date, and the chain hash at its link.
    p1 = book.entry_by_key("p1")
    assert tb.footer.last_entry_id == p1.id and tb.footer.as_of == D(2026, 10, 31)
    with book.reading() as conn:
        link = conn.execute(text("SELECT seq, chain_hash FROM chain_link WHERE entry_id = :e"),
                            {"e": p1.id}).one()
    assert (tb.footer.chain_seq, tb.footer.chain_hash) == (link.seq, link.chain_hash)
    assert tb.footer.unsealed_entries == 0 and tb.footer.book == "main"

    rolled = reports.trial_balance(book, as_of=D(2026, 10, 31), depth=2)
    assert {r.account: (r.debit_minor, r.credit_minor, r.accounts) for r in rolled.rows} == {
        "assets:custody": (15000, 0, 1), "expenses:marketing": (200, 0, 1),
        "income:platform": (0, 500, 1), "liabilities:users": (0, 14700, 2)}
    assert rolled.totals == tb.totals
    data = rolled.to_dict()
    assert data["totals"]["CNY"]["debit"] == {"minor": 15200, "amount": "152.00"}
    with pytest.raises(ReportError):
        reports.trial_balance(book, depth=0)


def test_trial_balance_counts_unsealed_entries(db_url):
    book = ledger.open(db_url)
    small_book(book)
    tb = reports.trial_balance(book, as_of=D(2026, 9, 30))
    assert tb.footer.last_entry_id is None and tb.footer.unsealed_entries == 2
    assert any("not yet sealed: 2" in line for line in tb.footer.lines())
    book.dispose()


# --- statements ---------------------------------------------------------------------------
def test_account_statement_opening_movements_running_and_closing(book):
    small_book(book)
    book.close_period(D(2026, 9, 30), "2026-09")
    st = reports.account_statement(book, U1, D(2026, 9, 15), D(2026, 11, 30))
    assert st.opening_minor == 10000  # the top-up, on the wallet's (credit) normal side
    assert [(mv.kind, mv.amount_minor, mv.balance_minor) for mv in st.movements] == [
        ("fee", -500, 9500), ("transfer", -1000, 8500), ("reversal", 1000, 9500)]
    assert st.closing_minor == 9500
    assert st.to_dict()["closing"] == {"minor": 9500, "amount": "95.00"}
    with pytest.raises(ReportError):
        reports.account_statement(book, U1, D(2026, 11, 2), D(2026, 11, 1))


def test_balance_sheet_balances_and_income_statement(book):
    small_book(book)
    book.close_period(D(2026, 9, 30), "2026-09")
    bs = reports.balance_sheet(book, D(2026, 11, 30))
    t = bs.totals["CNY"]
    assert (t["asset"], t["liability"], t["equity"], t["net_income"]) == (15000, 14700, 0, 300)
    assert t["difference"] == 0 and bs.balanced
    assert all(line.type in ("asset", "liability", "equity") for line in bs.lines)
    inc = reports.income_statement(book, D(2026, 10, 1), D(2026, 10, 31))
    assert inc.totals == {"CNY": {"income": 0, "expense": 200, "net_income": -200}}
    inc = reports.income_statement(book, D(2026, 9, 1), D(2026, 10, 31))
    assert inc.totals["CNY"]["net_income"] == 300
    assert [ln.account for ln in inc.lines] == [FEES, PROMO]


# --- period close ----------------------------------------------------------------------------
def test_period_close_rules_and_checkpoints_are_immutable(book, backend):
    small_book(book)
    closed = book.close_period(D(2026, 9, 30), "2026-09", "auditor-li")
    assert closed.checkpointed_accounts == 3  # bank, u1, fees had postings by then
    with pytest.raises(PeriodCloseError, match="already closed through 2026-09-30"):
        book.close_period(D(2026, 9, 15), "2026-09-15")
    with pytest.raises(PeriodCloseError, match="has not ended"):
        book.close_period(D(2026, 11, 30), "2026-11", today=D(2026, 11, 23))
    with pytest.raises(ClosedPeriodError):
        book.post([(BANK, "1.00"), (U1, "-1.00")], key="late", effective_date=D(2026, 9, 30))
    book.close_period(D(2026, 10, 31), "2026-10", today=D(2026, 11, 23))
    assert [(p.label, p.closed_by, p.checkpointed_accounts) for p in book.periods()] == [
        ("2026-09", "auditor-li", 3), ("2026-10", None, 5)]
    with book.engine.connect() as conn:
        for sql in ("UPDATE balance_checkpoint SET posted_minor = 0",
                    "DELETE FROM balance_checkpoint", "DELETE FROM closed_period"):
            with pytest.raises(Exception, match="append_only_(balance_checkpoint|closed_period)"):
                with conn.begin():
                    conn.exec_driver_sql(sql)


def test_close_period_takes_a_period_as_the_cli_does(book):
    """``book.close_period("2026-09")`` closes September (it died on str.isoformat);
    anything but a date or a period is refused by name."""
    small_book(book)
    closed = book.close_period("2026-09", closed_by="auditor-li")
    assert (closed.label, closed.closed_through) == ("2026-09", D(2026, 9, 30))
    with pytest.raises(InputError, match="expected YYYY-MM, YYYY or YYYY-MM-DD"):
        book.close_period("Sept")
    for wrong in (dt.datetime(2026, 10, 31, 12), 20261031):
        with pytest.raises(InputError, match="a date or a period"):
            book.close_period(wrong)
    assert [p.label for p in book.periods()] == ["2026-09"]


def test_parse_period():
    assert periods.parse_period("2026-11") == ("2026-11", D(2026, 11, 30))
    assert periods.parse_period("2028-02") == ("2028-02", D(2028, 2, 29))
    assert periods.parse_period("2026") == ("2026", D(2026, 12, 31))
    assert periods.parse_period("2026-11-15") == ("2026-11-15", D(2026, 11, 15))
    with pytest.raises(ledger.LedgerError):
        periods.parse_period("2026-13")


# --- journal --------------------------------------------------------------------------------
def test_journal_jsonl_and_csv_carry_postings_links_metadata_and_hashes(book):
    small_book(book)
    pend = book.post([(U1, "3.00"), (BANK, "-3.00")], key="w1", kind="withdrawal", pending=True,
                     effective_date=D(2026, 11, 5))
    book.void_pending(pend.id, key="w1-void", effective_date=D(2026, 11, 6))
    book.seal()
    buf = io.StringIO()
    assert exports.write_journal_jsonl(exports.iter_journal(book, D(2026, 10, 1), D(2026, 11, 30)),
                                       buf) == 6
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [x["key"] for x in lines] == ["t2", "p1", "x1", "x1-rev", "w1", "w1-void"]
    p1 = lines[1]
    assert p1["metadata"] == {"campaign": "autumn", "rate": "0.015"} and p1["memo"] == "welcome bonus"
    assert p1["postings"][0] == {"position": 0, "account": PROMO, "amount_minor": 200,
                                 "amount": "2.00", "currency": "CNY", "pending": False}
    assert len(p1["content_hash"]) == 64 and len(p1["chain_hash"]) == 64 and p1["chain_seq"] == 4
    x1, rev = lines[2], lines[3]
    assert x1["reversed_by"] == rev["id"] and rev["reverses_id"] == x1["id"]
    w1, void = lines[4], lines[5]
    assert w1["phase"] == "pending" and w1["completed_by"] == void["id"]
    assert void["pending_id"] == w1["id"] and void["postings"] == []
    assert "." not in re.sub(r'"[^"]*"', "", buf.getvalue())  # no bare decimal numbers: no floats

    buf = io.StringIO()
    exports.write_journal_csv(exports.iter_journal(book), buf)
    rows = buf.getvalue().splitlines()
    assert rows[0].split(",") == exports.JOURNAL_CSV_COLUMNS
    assert len(rows) == 1 + 7 * 2 + 1  # two postings per entry, one row for the void


def test_journal_as_of_a_date_shows_no_completion_or_reversal_dated_after_it(book, db_url):
    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", kind="top_up", effective_date=D(2026, 11, 20))
    fee = book.post([(U1, "5.00"), (FEES, "-5.00")], key="f1", kind="fee", effective_date=D(2026, 11, 21))
    pend = book.post([(U1, "30.00"), (BANK, "-30.00")], key="w1", kind="withdrawal", pending=True,
                     effective_date=D(2026, 11, 23))
    done = book.commit_pending(pend.id, key="w1-done", effective_date=D(2026, 11, 25))
    rev = book.reverse(fee.id, key="f1-rev", reason="charged twice", effective_date=D(2026, 11, 26))
    book.seal()
    for to, completed_by, reversed_by in ((D(2026, 11, 24), None, None),
                                          (D(2026, 11, 25), done.id, None),
                                          (D(2026, 11, 26), done.id, rev.id), (None, done.id, rev.id)):
        records = {r.key: r for r in exports.iter_journal(book, None, to)}
        assert records["w1"].completed_by == completed_by, to
        assert records["f1"].reversed_by == reversed_by, to
        assert records["w1"].postings[0].is_pending  # a hold stays a hold in its own entry
    buf = io.StringIO()
    exports.write_journal(book, buf, fmt="jsonl", date_to=D(2026, 11, 24))
    entries = [json.loads(line) for line in buf.getvalue().splitlines()][:-1]
    assert [(x["key"], x["completed_by"], x["reversed_by"]) for x in entries] == [
        ("t1", None, None), ("f1", None, None), ("w1", None, None)]
    result = invoke("journal", "--to", "2026-11-24", "--db", db_url)
    rows = list(csv.DictReader(line for line in result.stdout.splitlines() if not line.startswith("#")))
    assert {(r["key"], r["completed_by"], r["reversed_by"]) for r in rows} == {
        ("t1", "", ""), ("f1", "", ""), ("w1", "", "")}
    result = invoke("journal", "--to", "2026-11-25", "--db", db_url)
    rows = list(csv.DictReader(line for line in result.stdout.splitlines() if not line.startswith("#")))
    assert {r["completed_by"] for r in rows if r["key"] == "w1"} == {str(done.id)}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_journal_ends_with_the_footer_of_its_as_of_date(book, fmt):
    small_book(book)
    book.seal()
    book.post([(BANK, "1.00"), (U1, "-1.00")], key="late", effective_date=D(2026, 10, 20))  # unsealed
    buf = io.StringIO()
    count = exports.write_journal(book, buf, fmt=fmt, date_from=D(2026, 10, 1),
                                  date_to=D(2026, 10, 31))
    assert count == 3
    want = reports.trial_balance(book, as_of=D(2026, 10, 31)).footer
    assert want.last_entry_id == book.entry_by_key("p1").id and want.unsealed_entries == 1
    lines = buf.getvalue().splitlines()
    if fmt == "csv":
        body = [row for row in lines if not row.startswith("#")]
        assert body[0].split(",") == exports.JOURNAL_CSV_COLUMNS and len(body) == 1 + 3 * 2
        foot = lines[len(body):]
        assert all(row.startswith("# ") for row in foot)  # nothing but the footer after the rows
        assert [row[2:] for row in foot if not row.startswith("# produced at:")] == [
            line for line in want.lines() if not line.startswith("produced at:")]
        assert [row["key"] for row in csv.DictReader(body)] == ["t2", "t2", "p1", "p1", "late", "late"]
    else:
        entries, last = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
        assert [x["key"] for x in entries] == ["t2", "p1", "late"]
        assert list(last) == ["footer"]
        got = dict(last["footer"])
        assert got.pop("produced_at").endswith("Z")
        assert got == {k: v for k, v in want.to_dict().items() if k != "produced_at"}
        assert got["as_of"] == "2026-10-31" and got["chain_hash"] == want.chain_hash


# --- beancount ---------------------------------------------------------------------------------
def test_beancount_account_names():
    name = exports.beancount_account
    assert name("assets:custody:bank", "asset") == "Assets:Custody:Bank"
    assert name("liabilities:platform:risk_reserve", "liability") == "Liabilities:Platform:RiskReserve"
    assert name("liabilities:users:u1:available", "liability") == "Liabilities:Users:U1:Available"
    assert name("revenue:interest", "income") == "Income:Interest"
    assert name("cash:petty", "asset") == "Assets:Cash:Petty"
    assert name("memo:claims:i_9:loan.7", "memo") == "Assets:Memo:Claims:I9:Loan-7"
    assert name("expenses:x:2026", "expense") == "Expenses:X:2026"
    names = exports.beancount_names([("liabilities:users:u_1:a", "liability"),
                                     ("liabilities:users:u1:a", "liability")])
    assert len(set(names.values())) == 2


def test_beancount_export_is_accepted_by_beancount(book):
    if bean_loader is None:
        pytest.skip("beancount is not installed")
    loader = bean_loader
    small_book(book)
    book.open_account("memo:claims:i1:loan1", "memo")
    book.open_account("memo:obligations:b1:loan1", "memo")
    book.post([("memo:claims:i1:loan1", "80.00"), ("memo:obligations:b1:loan1", "-80.00")],
              key="claim", kind="claim", effective_date=D(2026, 11, 4), memo='a "quoted"\\ memo')
    pend = book.post([(U1, "3.00"), (BANK, "-3.00")], key="w1", kind="withdrawal", pending=True,
                     effective_date=D(2026, 11, 5))
    book.commit_pending(pend.id, key="w1-done")
    for memo in ("include", "exclude"):
        buf = io.StringIO()
        written = exports.write_beancount(book, buf, memo=memo)
        entries, errors, options = loader.load_string(buf.getvalue())
        assert errors == [], (memo, errors)
        assert written == (8 if memo == "include" else 7)  # the pending entry is a comment
        balances = [e for e in entries if type(e).__name__ == "Balance"]
        assert balances and all(b.diff_amount is None for b in balances)
        assert ("Assets:Memo:Claims:I1:Loan1" in buf.getvalue()) == (memo == "include")
    # A wrong figure is caught: the balance assertions tie the file to the ledger.
    tampered = buf.getvalue().replace("  Assets:Custody:Bank  100.00 CNY", "  Assets:Custody:Bank  100.01 CNY")
    _, errors, _ = loader.load_string(tampered)
    assert errors


BALANCE_LINE = re.compile(r"^\d{4}-\d\d-\d\d balance (\S+) +(-?[\d.]+) (\w+)$", re.M)


def bean_assertions(text_: str) -> dict[str, tuple[Decimal, str]]:
    """The ``balance`` assertions of an exported file: name -> (amount, currency)."""
    return {name: (Decimal(amount), cur) for name, amount, cur in BALANCE_LINE.findall(text_)}


def subtree_sums(book, memo: str = "include") -> dict[str, Decimal]:
    """What beancount's ``balance`` checks, computed from the ledger's own balances.

    Every account's balance in its own currency plus that of every account
    whose beancount name lies under its name.
    """
    accounts = {r.account: r for r in reports.trial_balance(book, include_zero=True).rows
                if memo == "include" or r.type != "memo"}
    names = exports.beancount_names((code, r.type) for code, r in accounts.items())
    out = {}
    for code, r in accounts.items():
        name = names[code]
        out[name] = sum((from_minor(o.balance_minor, o.currency) for c, o in accounts.items()
                         if o.currency == r.currency
                         and (names[c] == name or names[c].startswith(name + ":"))),
                        Decimal(0))
    return out


def check_beancount(text_: str) -> None:
    """beancount's own loader finds no error (skipped without beancount)."""
    if bean_loader is not None:
        entries, errors, _ = bean_loader.load_string(text_)
        assert errors == [], errors
        assert all(e.diff_amount is None for e in entries if type(e).__name__ == "Balance")


def test_beancount_balance_of_a_parent_account_covers_its_sub_accounts(book):
    book.open_account("assets:cash", "asset")
    book.open_account("assets:cash:petty", "asset")
    book.open_account("assets:cash:usd", "asset", currency="USD")
    book.open_account("equity:opening", "equity")
    book.open_account("equity:opening:usd", "equity", currency="USD")
    book.post([("assets:cash", "100.00"), ("equity:opening", "-100.00")], key="o1",
              effective_date=D(2026, 11, 1))
    book.post([("assets:cash:petty", "20.00"), ("assets:cash", "-20.00")], key="p1",
              effective_date=D(2026, 11, 2))
    book.post([("assets:cash:petty", "5.00"), ("equity:opening", "-5.00")], key="p2",
              effective_date=D(2026, 11, 3))
    book.post([("assets:cash:usd", "7.00"), ("equity:opening:usd", "-7.00")], key="u1",
              effective_date=D(2026, 11, 3))
    buf = io.StringIO()
    exports.write_beancount(book, buf)
    got = bean_assertions(buf.getvalue())
    assert got == {
        "Assets:Cash": (Decimal("105.00"), "CNY"),  # 80.00 of its own and 25.00 under Petty
        "Assets:Cash:Petty": (Decimal("25.00"), "CNY"),
        "Assets:Cash:Usd": (Decimal("7.00"), "USD"),  # in USD: not part of Assets:Cash in CNY
        "Equity:Opening": (Decimal("-105.00"), "CNY"),
        "Equity:Opening:Usd": (Decimal("-7.00"), "USD"),
    }
    assert {name: amount for name, (amount, _) in got.items()} == subtree_sums(book)
    check_beancount(buf.getvalue())


def test_beancount_export_after_a_penalty_accrual_passes_its_balance_checks(book):
    f = book.flows
    f.open_system_accounts()
    for user in ("bob", "inv1", "inv2"):
        f.open_user(user)
        f.top_up(user, "50000", bank_ref=f"B-{user}", key=f"topup-{user}")
    start = D(2026, 1, 15)
    book.loans.create_loan("L001", "bob", "10000", "0.06", 12, key="create", start=start)
    book.loans.bid("L001", "inv1", "6000", key="bid-1")
    book.loans.bid("L001", "inv2", "4000", key="bid-2")
    book.loans.disburse("L001", key="disburse", effective_date=start)
    late = book.loans.loan("L001").installments[0].due_date + dt.timedelta(days=10)
    assert book.loans.accrue_penalties(late)
    for memo in ("include", "exclude"):
        buf = io.StringIO()
        exports.write_beancount(book, buf, memo=memo)
        got = bean_assertions(buf.getvalue())
        assert {name: amount for name, (amount, _) in got.items()} == subtree_sums(book, memo)
        parents = [n for n in got if any(o.startswith(n + ":") for o in got)]
        assert any(n.startswith("Assets:Memo:Obligations:") for n in parents) == (memo == "include")
        check_beancount(buf.getvalue())


# --- xlsx ----------------------------------------------------------------------------------------
def _sheet(data: bytes) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = next(name for name in z.namelist() if name.endswith("sheet1.xml"))
        return z.read(sheet).decode(), z.read("xl/styles.xml").decode()


def test_xlsx_cells_are_numbers_with_two_decimals(book):
    small_book(book)
    out = io.BytesIO()
    exports.write_xlsx(reports.trial_balance(book, as_of=D(2026, 10, 31)), out)
    sheet, styles = _sheet(out.getvalue())
    assert 'formatCode="#,##0.00"' in styles
    assert re.search(r'<c r="D4" s="\d+"><v>150.00</v></c>', sheet)  # bank debit, a number cell
    assert '<c r="E' in sheet and "<v>152.00</v>" in sheet  # the totals
    out = io.BytesIO()
    exports.write_xlsx(reports.account_statement(book, U1, D(2026, 9, 1), D(2026, 11, 30)), out)
    sheet, _ = _sheet(out.getvalue())
    assert re.search(r'<c r="G4" s="\d+"><v>0.00</v></c>', sheet)  # opening
    assert "<v>95.00</v>" in sheet
    for report in (reports.balance_sheet(book), reports.income_statement(book, D(2026, 9, 1), D(2026, 11, 30))):
        out = io.BytesIO()
        exports.write_xlsx(report, out)
        assert _sheet(out.getvalue())[0].count("<v>") > 3


# --- CLI -------------------------------------------------------------------------------------------
def test_cli_reports(db_url, tmp_path):
    book = small_book(ledger.open(db_url))
    book.dispose()
    result = invoke("trial-balance", "--as-of", "2026-10-31", "--format", "json", "--db", db_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["balanced"] and data["totals"]["CNY"]["credit"] == {"minor": 15200, "amount": "152.00"}
    assert data["footer"]["as_of"] == "2026-10-31" and len(data["footer"]["chain_hash"]) == 64
    result = invoke("trial-balance", "--depth", "1", "--db", db_url)
    assert "TOTAL" in result.output and "chain hash at that point:" in result.output
    assert "liabilities " in result.output
    result = invoke("trial-balance", "--format", "csv", "--db", db_url)
    assert result.output.splitlines()[0] == "account,type,currency,debit,credit"
    xlsx = tmp_path / "tb.xlsx"
    assert invoke("trial-balance", "--format", "xlsx", "--output", str(xlsx), "--db", db_url).exit_code == 0
    assert xlsx.read_bytes()[:2] == b"PK"
    assert invoke("trial-balance", "--format", "xlsx", "--db", db_url).exit_code == 2

    result = invoke("statement", U1, "--from", "2026-09-01", "--to", "2026-11-30", "--db", db_url)
    assert "opening balance" in result.output and "closing balance" in result.output
    assert "95.00" in result.output
    result = invoke("balance-sheet", "--as-of", "2026-11-30", "--format", "json", "--db", db_url)
    assert result.exit_code == 0 and json.loads(result.output)["balanced"]
    result = invoke("income-statement", "--from", "2026-09-01", "--to", "2026-11-30", "--db", db_url)
    assert "TOTAL net income" in result.output and "3.00" in result.output

    journal = tmp_path / "j.jsonl"
    result = invoke("journal", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "jsonl",
                    "--output", str(journal), "--db", db_url)
    assert result.exit_code == 0
    *entries, last = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["key"] for x in entries] == ["t2", "p1"]
    assert last["footer"]["as_of"] == "2026-10-31" and last["footer"]["last_entry_id"] == entries[1]["id"]
    result = invoke("journal", "--db", db_url)
    assert result.stdout.startswith("entry_id,effective_date,kind")
    assert result.stdout.splitlines()[-1].startswith("# produced at: ")
    assert "# as of: all dates\n" in result.stdout and "# chain hash at that point: " in result.stdout

    bean = tmp_path / "books.beancount"
    assert invoke("export", "beancount", "--output", str(bean), "--db", db_url).exit_code == 0
    if bean_loader is not None:
        assert bean_loader.load_file(str(bean))[1] == []
        check = subprocess.run([sys.executable, "-m", "beancount.scripts.check", str(bean)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr  # what bean-check runs

    result = invoke("period", "close", "2026-09", "--by", "auditor-li", "--db", db_url)
    assert result.exit_code == 0 and "closed 2026-09 through 2026-09-30" in result.output
    assert invoke("period", "close", "2026-08", "--db", db_url).exit_code == 1
    assert invoke("period", "close", "2999-01", "--db", db_url).exit_code == 1
    assert invoke("period", "close", "2026-99", "--db", db_url).exit_code == 2
    result = invoke("period", "list", "--format", "csv", "--db", db_url)
    assert result.output.splitlines()[1].startswith("2026-09,2026-09-30,")


def test_cli_db_roles_refused_on_sqlite(tmp_path):
    result = invoke("db", "roles", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2 and "not supported on sqlite" in result.output


def test_beancount_export_of_an_entry_dated_on_the_last_day_there_is_says_so(book):
    """It was an OverflowError: the balance assertions are dated the day after the last entry."""
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability")
    book.post([(BANK, "1.00"), (U1, "-1.00")], key="far", effective_date=dt.date.max)
    buf = io.StringIO()
    with pytest.raises(ReportError, match="an entry is dated 9999-12-31"):
        exports.write_beancount(book, buf)
    assert buf.getvalue() == ""
