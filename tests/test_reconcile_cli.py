"""`ledger reconcile` and `ledger breaks` on real statement files: exit codes 0, 3 and 2."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest
from click.testing import CliRunner

import ledger
from cli import main

HEADER = "账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要\n"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def seeded(url):
    book = ledger.open(url)
    f = book.flows
    f.open_system_accounts()
    f.open_user("u1")
    import datetime as dt

    f.top_up("u1", "1000.00", bank_ref="B001", key="t1", effective_date=dt.date(2026, 11, 20))
    book.dispose()


def write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def test_clean_day_exits_0_and_breaks_exit_3(db_url, tmp_path):
    seeded(db_url)
    clean = write(tmp_path, "day.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    result = invoke("reconcile", str(clean), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "RECONCILED" in result.output
    fee = write(tmp_path, "day2.csv", ["6222,2026-11-23,F9,,,,借,5.00,995.00,手续费\n"])
    result = invoke("reconcile", str(fee), "--db", db_url, "--format", "json")
    assert result.exit_code == 3
    data = json.loads(result.output)
    assert [b["type"] for b in data["breaks"]] == ["in_bank_not_in_ledger"]
    assert data["breaks"][0]["raw"].endswith("手续费")
    listed = invoke("breaks", "list", "--db", db_url, "--format", "csv")
    assert "in_bank_not_in_ledger" in listed.output
    break_id = data["breaks"][0]["break_id"]
    shown = invoke("breaks", "show", str(break_id), "--db", db_url)
    assert "F9" in shown.output


def test_bad_file_exits_2_and_imports_nothing(db_url, tmp_path):
    seeded(db_url)
    bad = write(tmp_path, "bad.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.001,1000.00,充值\n",
                                      "6222,2026-13-40,B002,T2,u1,U1,X,1.00,1001.00,充值\n"])
    result = invoke("reconcile", str(bad), "--db", db_url)
    assert result.exit_code == 2
    assert "line 2" in result.output and "line 3" in result.output
    book = ledger.open(db_url)
    with book.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM bank_line").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM recon_run").scalar() == 0
    book.dispose()


@pytest.mark.parametrize("account", [None, "assets:custody:other"])
def test_an_unknown_custody_account_exits_2_and_imports_nothing(db_url, tmp_path, account):
    if account is None:
        ledger.open(db_url).dispose()            # a new book: no custody account yet
    else:
        seeded(db_url)
    day = write(tmp_path, "day.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    result = invoke("reconcile", str(day), "--db", db_url,
                    *(["--account", account] if account else []))
    assert result.exit_code == 2, result.output
    assert f"no account '{account or 'assets:custody:bank'}' in this book" in result.output
    book = ledger.open(db_url)
    with book.engine.connect() as conn:
        for table in ("statement_file", "bank_line", "recon_run"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0
    book.dispose()


def test_unbalanced_statement_is_quarantined(db_url, tmp_path):
    seeded(db_url)
    bad = write(tmp_path, "bad.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n",
                                      "6222,2026-11-20,B002,T2,u1,U1,贷,1.00,1002.00,充值\n"])
    result = invoke("reconcile", str(bad), "--db", db_url)
    assert result.exit_code == 2
    assert "balance" in result.output.lower()


def test_progress_bars_count_every_line(db_url, tmp_path, monkeypatch):
    """``--progress`` shows a bar for reading and one for importing; the import bar
    counts every line of the files, new or already imported."""
    import click

    seeded(db_url)
    rows = [f"6222,2026-11-20,B{n:03d},,,,贷,1.00,{n}.00,充值\n" for n in range(1, 6)]
    day = write(tmp_path, "day.csv", rows)
    bars = []
    real = click.progressbar

    def recording(*args, **kwargs):
        bar = real(*args, **kwargs)
        steps = []
        update = bar.update

        def counted(n, *rest):
            steps.append(n)
            return update(n, *rest)
        bar.update = counted
        bars.append((kwargs.get("label"), kwargs.get("length"), steps))
        return bar
    monkeypatch.setattr(click, "progressbar", recording)
    for _ in range(2):   # the second run finds every line imported already
        result = invoke("reconcile", str(day), "--db", db_url, "--progress")
        assert result.exit_code == 3, result.output
        assert "importing" in result.output
    (read1, length1, steps1), (imp1, total1, lines1), (_, _, _), (_, total2, lines2) = bars
    assert read1.strip() == "reading" and sum(steps1) == length1 == day.stat().st_size
    assert imp1 == "importing" and total1 == 5 and sum(lines1) == 5
    assert total2 == 5 and sum(lines2) == 5
    plain = invoke("reconcile", str(day), "--db", db_url, "--no-progress")
    assert "importing" not in plain.output


def counts(url, tables=("statement_file", "bank_line", "recon_run")):
    book = ledger.open(url)
    with book.engine.connect() as conn:
        found = {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() for t in tables}
    book.dispose()
    return found


@pytest.mark.parametrize("where", ["missing directory", "a file, not a directory", "read-only"])
def test_an_html_path_that_cannot_be_written_is_refused_before_anything_is_kept(db_url, tmp_path,
                                                                                 where):
    seeded(db_url)
    day = write(tmp_path, "day.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    if where == "missing directory":
        target = tmp_path / "no" / "such" / "x.html"
    elif where == "a file, not a directory":
        target = day / "x.html"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "x.html"
    result = invoke("reconcile", str(day), "--db", db_url, "--html", str(target))
    assert result.exit_code == 2, result.output
    assert str(target) in result.output and "Traceback" not in result.output
    assert counts(db_url) == {"statement_file": 0, "bank_line": 0, "recon_run": 0}
    assert not target.exists()


def test_a_report_that_fails_once_the_run_is_saved_says_the_run_was_kept(db_url, tmp_path,
                                                                          monkeypatch):
    """The directory checked at the start is gone when the report is written: the
    run is kept, and the error says so under its id instead of a traceback."""
    import shutil

    from reconcile import runs

    seeded(db_url)
    day = write(tmp_path, "day.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    out = tmp_path / "reports"
    out.mkdir()
    real = runs.reconcile_parsed

    def then_directory_gone(*args, **kwargs):
        run = real(*args, **kwargs)
        shutil.rmtree(out)
        return run
    monkeypatch.setattr(runs, "reconcile_parsed", then_directory_gone)
    result = invoke("reconcile", str(day), "--db", db_url, "--html", str(out / "r.html"))
    assert result.exit_code == 1, result.output
    assert counts(db_url)["recon_run"] == 1
    book = ledger.open(db_url)
    with book.engine.connect() as conn:
        run_id = conn.exec_driver_sql("SELECT max(id) FROM recon_run").scalar()
    book.dispose()
    assert f"run {run_id} was saved" in result.output
    assert f"the HTML report was not written to {out / 'r.html'}" in result.output
    assert "Traceback" not in result.output


def test_an_unexplained_difference_without_breaks_does_not_reconcile(db_url, tmp_path):
    """Every line matches, but the bank holds 500.00 more than the ledger: exit 3,
    and neither the terminal nor the HTML report speaks of breaks."""
    seeded(db_url)
    day = write(tmp_path, "day.csv", ["6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1500.00,充值\n"])
    page = tmp_path / "r.html"
    result = invoke("reconcile", str(day), "--db", db_url, "--html", str(page))
    assert result.exit_code == 3, result.output
    assert "BALANCE DOES NOT RECONCILE: 500.00" in result.output
    assert "REMAIN" not in result.output
    html = page.read_text(encoding="utf-8")
    assert '<p class="bad">BALANCE DOES NOT RECONCILE: 500.00' in html
    assert "REMAIN" not in html


def test_break_amounts_are_decimal_strings_in_every_format(db_url, tmp_path):
    """A break whose sides agree in amount (dates too far apart) is "0.00", like any other."""
    seeded(db_url)
    late = write(tmp_path, "day.csv", ["6222,2026-11-27,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    assert invoke("reconcile", str(late), "--db", db_url).exit_code == 3
    fee = write(tmp_path, "day2.csv", ["6222,2026-11-27,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n",
                                       "6222,2026-11-27,F9,,,,借,5.00,995.00,手续费\n"])
    assert invoke("reconcile", str(fee), "--db", db_url).exit_code == 3
    listed = json.loads(invoke("breaks", "list", "--db", db_url, "--format", "json").output)
    assert {b["type"]: b["amount"] for b in listed} == {"date_outside_window": "0.00",
                                                        "in_bank_not_in_ledger": "-5.00"}
    shown = json.loads(invoke("breaks", "show", str(listed[0]["id"]), "--db", db_url).output)
    assert shown["amount"] == "0.00"
    # Both sides: the bank's line with its raw text, the posting with its entry's kind.
    assert [line["raw"] for line in shown["bank_lines"]] == [
        "6222,2026-11-27,B001,T1,u1,U1,贷,1000.00,1000.00,充值"]
    (posting,) = shown["ledger_postings"]
    assert str(posting["id"]) == shown["postings"]
    assert (posting["amount_minor"], posting["currency"]) == (100000, "CNY")
    assert posting["kind"] and posting["entry_id"]
    csv_text = invoke("breaks", "list", "--db", db_url, "--format", "csv").output
    assert ",0.00," in csv_text and ",-5.00," in csv_text


UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_resolved_at_is_shown_as_utc_everywhere(db_url, tmp_path):
    seeded(db_url)
    late = write(tmp_path, "day.csv", ["6222,2026-11-27,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n"])
    assert invoke("reconcile", str(late), "--db", db_url).exit_code == 3
    before = dt.datetime.now(dt.timezone.utc)
    resolved = invoke("breaks", "resolve", "1", "--action", "accept-timing", "--note", "bank late",
                      "--by", "Li Na", "--db", db_url)
    after = dt.datetime.now(dt.timezone.utc)
    assert resolved.exit_code == 0, resolved.output
    stamp = json.loads(invoke("breaks", "show", "1", "--db", db_url).output)["resolution"]["resolved_at"]
    assert UTC_ISO.fullmatch(stamp)
    assert before - dt.timedelta(seconds=1) <= dt.datetime.fromisoformat(stamp) <= after
    assert f'"resolved_at": "{stamp}"' in resolved.output
    listed = json.loads(invoke("breaks", "list", "--all", "--db", db_url, "--format", "json").output)
    assert [(b["resolved_by"], b["resolved_at"]) for b in listed] == [("Li Na", stamp)]
    for fmt in ("csv", "table"):
        out = invoke("breaks", "list", "--all", "--db", db_url, "--format", fmt).output
        assert stamp in out and "Li Na" in out


def test_an_ambiguous_break_is_resolved_by_a_pair_from_the_command_line(db_url, tmp_path):
    book = ledger.open(db_url)
    f = book.flows
    f.open_system_accounts()
    day = dt.date(2026, 11, 20)
    for n in (1, 2):
        f.open_user(f"u{n}")
        f.top_up(f"u{n}", "50.00", bank_ref=f"ORDER-{n}", key=f"t{n}", effective_date=day)
    book.dispose()
    two = write(tmp_path, "day.csv", ["6222,2026-11-20,X1,,u1,U1,贷,50.00,50.00,充值\n",
                                      "6222,2026-11-20,X2,,u2,U2,贷,50.00,100.00,充值\n"])
    data = json.loads(invoke("reconcile", str(two), "--db", db_url, "--format", "json").output)
    (brk,) = data["breaks"]
    assert brk["type"] == "ambiguous"
    bank_id, posting_id = brk["bank_line_ids"][0], brk["posting_ids"][1]
    bad = invoke("breaks", "resolve", str(brk["break_id"]), "--action", "match-with", "--pair", "x:1",
                 "--note", "n", "--by", "Li Na", "--db", db_url)
    assert bad.exit_code == 2 and "BANK_LINE:POSTING" in bad.output
    done = invoke("breaks", "resolve", str(brk["break_id"]), "--action", "match-with",
                  "--pair", f"{bank_id}:{posting_id}", "--note", "callback says so", "--by", "Li Na",
                  "--db", db_url)
    assert done.exit_code == 0 and "resolved" in done.output, done.output
