"""Reconciliation runs as finance staff meet them: whole statements, resolutions, exit codes."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.flows import BANK
from reconcile.runs import list_breaks, reconcile_parsed
from tests.test_reconcile_runs import DAY, line, parsed


def test_a_statement_longer_than_the_lookback_has_every_line_reconciled(book):
    """A month's statement: a line booked before the lookback window is matched with its
    posting, and one the ledger lacks is a break (it was imported and then never looked at:
    no break, an unexplained difference, and no later run saw it again)."""
    f = book.flows
    f.open_system_accounts()
    f.open_user("alice")
    early = DAY - dt.timedelta(days=20)
    f.top_up("alice", "300.00", bank_ref="B0", key="t0", effective_date=early)
    f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    month = [line(1, 30000, "B0", day=early), line(2, -500, "FEE", day=early),
             line(3, 10000, "B1")]
    run = reconcile_parsed(book, [parsed("month.csv", month, 0)])
    assert [(b.type, len(b.bank_ids), len(b.ledger_ids)) for b in run.result.breaks] == [
        ("in_bank_not_in_ledger", 1, 0)]
    assert run.result.breaks[0].bank_amount_minor == -500
    assert run.balance["difference_minor"] == -500
    assert run.balance["unexplained_minor"] == 0
    assert [b.amount_minor for b in list_breaks(book)] == [-500]
    assert book.balance(BANK, as_of=DAY) == 400


def _invoke(*args):
    from click.testing import CliRunner

    from cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


HEADER = "账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要\n"


def test_a_refused_reconcile_leaves_no_database_behind(tmp_path):
    """A bad --date or a bad statement file is refused before the database is opened:
    a --db naming a file that is not there yet is not created (and migrated) first."""
    good = tmp_path / "day.csv"
    good.write_text(HEADER + "6222,2026-11-20,B001,T1,u1,U1,贷,1000.00,1000.00,充值\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "6222,2026-11-20,B001,T1,u1,U1,贷,1000.001,1000.00,充值\n", encoding="utf-8")
    target = tmp_path / "typo.db"
    for args in ([str(good), "--date", "2026-02-30"], [str(bad)]):
        result = _invoke("reconcile", *args, "--db", f"sqlite:///{target}")
        assert result.exit_code == 2, result.output
        assert not target.exists(), args


def test_a_resolution_refuses_what_its_action_does_not_take(book):
    """An --account given to accept-timing, or an id to match with given to adjust, was
    dropped without a word: the break was resolved as if it had not been given. Now the
    resolution is refused, nothing recorded."""
    from reconcile.runs import BreakResolutionError, resolve

    f = book.flows
    f.open_system_accounts()
    f.open_user("alice")
    book.open_account("expenses:platform:bank_fees", "expense")
    f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    f.top_up("alice", "5.00", bank_ref="B2", key="t2", effective_date=DAY)
    run = reconcile_parsed(book, [parsed("d.csv", [line(1, 10000, "B1"), line(2, -500, "FEE")], 0)])
    (fee,) = [b for b, kind in zip(run.break_ids, run.result.breaks)
              if kind.type == "in_bank_not_in_ledger"]
    posting = next(i for b in run.result.breaks for i in b.ledger_ids)
    wrong = [dict(action="accept-timing", account="expenses:platform:bank_fees"),
             dict(action="accept-timing", match_with=posting),
             dict(action="adjust", account="expenses:platform:bank_fees", match_with=posting),
             dict(action="match-with", match_with=posting, account="expenses:platform:bank_fees")]
    for kwargs in wrong:
        with pytest.raises(BreakResolutionError, match="does not take"):
            resolve(book, fee, note="n", by="Li Na", **kwargs)
    assert [b.state for b in list_breaks(book, state=None) if b.id == fee] == ["open"]


def test_a_refused_resolution_exits_2_or_1_naming_the_problem(db_url, tmp_path):
    """A resolution no break could take (an action without what it needs) is bad input,
    exit 2; one this book refuses as it stands (no such break, a break resolved already)
    exits 1, as every command's refusals do. Both name the problem."""
    import ledger

    book = ledger.open(db_url)
    book.flows.open_system_accounts()
    book.dispose()
    day = tmp_path / "day.csv"
    day.write_text(HEADER + "6222,2026-11-20,F9,,,,借,5.00,-5.00,手续费\n", encoding="utf-8")
    assert _invoke("reconcile", str(day), "--db", db_url).exit_code == 3
    book = ledger.open(db_url)
    (brk,) = list_breaks(book)
    book.dispose()
    resolve = ("breaks", "resolve", str(brk.id), "--note", "fee", "--by", "Li Na", "--db", db_url)
    for args, message, code in (
            ((*resolve, "--action", "adjust"), "adjust needs --account", 2),
            ((*resolve, "--action", "adjust", "--account", "liabilities:users:u1:available"),
             "not a platform-owned account", 2),
            ((*resolve, "--action", "accept-timing", "--account", "expenses:platform:bank_fees"),
             "does not take --account", 2),
            (("breaks", "resolve", "99", "--action", "accept-timing", "--note", "n",
              "--by", "Li Na", "--db", db_url), "no break 99", 1),
            (("breaks", "show", "99", "--db", db_url), "no break 99", 1)):
        result = _invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert _invoke(*resolve, "--action", "accept-timing").exit_code == 0
    again = _invoke(*resolve, "--action", "accept-timing")
    assert again.exit_code == 1 and "already resolved" in again.output


@pytest.mark.parametrize("action", ["accept-timing", "adjust"])
def test_two_people_resolving_one_break_at_once_get_one_resolution(book, action):
    """Both read the break open (PostgreSQL lets them); the one that commits second is told
    the break is resolved already, not shown the database's unique-key message, and at
    most one adjustment is posted."""
    import threading

    from reconcile import runs
    from reconcile.runs import BreakResolutionError, resolve

    f = book.flows
    f.open_system_accounts()
    f.open_user("alice")
    book.open_account("expenses:platform:bank_fees", "expense")
    f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    run = reconcile_parsed(book, [parsed("d.csv", [line(1, 10000, "B1"), line(2, -500, "FEE")], 0)])
    (fee,) = run.break_ids
    entries = _count(book, "journal_entry")
    both_read = threading.Barrier(2)
    plain_view = runs._break_view
    first_read = threading.local()

    def view_then_wait(*args, **kwargs):
        view = plain_view(*args, **kwargs)
        if not getattr(first_read, "done", False):
            first_read.done = True
            try:   # on SQLite the other one waits for the write lock instead
                both_read.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass
        return view

    runs._break_view = view_then_wait
    outcomes: dict = {}

    def resolve_as(name):
        try:
            account = "expenses:platform:bank_fees" if action == "adjust" else None
            outcomes[name] = resolve(book, fee, action=action, account=account,
                                     note="account fee", by=name)
        except Exception as exc:   # what each one was told
            outcomes[name] = exc

    try:
        threads = [threading.Thread(target=resolve_as, args=(who,)) for who in ("Li Na", "Wang Wei")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        runs._break_view = plain_view
    refused = [o for o in outcomes.values() if isinstance(o, Exception)]
    done = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], BreakResolutionError), refused[0]
    with pytest.raises(BreakResolutionError, match="already resolved"):
        raise refused[0]
    (stored,) = [b for b in list_breaks(book, state=None) if b.id == fee]
    assert stored.state == "resolved" and stored.resolution["resolved_by"] == done[0].resolution["resolved_by"]
    assert _count(book, "journal_entry") == entries + (action == "adjust")
    assert _count(book, "recon_resolution") == 1


def _count(book, table):
    from sqlalchemy import text

    with book.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
