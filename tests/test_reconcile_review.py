"""Reconciliation runs as finance staff meet them: whole statements, resolutions, exit codes."""

from __future__ import annotations

import datetime as dt

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
