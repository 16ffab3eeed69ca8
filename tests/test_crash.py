"""A writer killed with SIGKILL in the middle of ``post_many`` leaves nothing behind.

A child process opens the book and posts one large batch (5000 top-ups and
transfers). It is killed with SIGKILL either while its INSERTs are running
(shortly after it reports the first posting INSERT) or with every row of
the batch written and the COMMIT not yet sent (it pauses there). Afterwards
the book verifies, and holds either none of the batch or all of it; posting
the same batch again with the same keys writes each entry exactly once.
Runs on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

import ledger
from ledger import models as m
from ledger.money import from_minor

BANK = "assets:custody:bank"
WALLETS = 20
BATCH = 5000
ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
from sqlalchemy import event
import ledger
from tests.test_crash import make_batch

url, kill_at = sys.argv[1], sys.argv[2]
book = ledger.open(url, upgrade=False)

@event.listens_for(book.engine, "after_cursor_execute")
def _inserting(conn, cursor, statement, params, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO POSTING"):
        print("inserting", flush=True)

if kill_at == "before commit":
    @event.listens_for(book.engine, "commit")
    def _committing(conn):
        print("committing", flush=True)
        time.sleep(120)   # killed here: every row written, nothing committed

batch = make_batch()
print("started", flush=True)
book.post_many(batch)
print("done", flush=True)
"""


def wallet(n: int) -> str:
    return f"liabilities:users:u{n}:available"


def make_batch(size: int = BATCH) -> list[dict]:
    """Top-ups into every wallet, then transfers between wallets the top-ups cover."""
    batch = []
    for i in range(size):
        amount = from_minor(100 + i % 997)
        if i % 3 == 2:   # a transfer out of a wallet topped up earlier in the batch
            legs = [(wallet((i - 2) % WALLETS), amount), (wallet((i + 5) % WALLETS), -amount)]
        else:
            legs = [(BANK, amount * 2), (wallet(i % WALLETS), -amount * 2)]
        batch.append({"postings": legs, "key": f"crash-{i}", "kind": "transfer"})
    return batch


def expected_balances(batch) -> Counter:
    totals = Counter()
    for item in batch:
        for code, amount in item["postings"]:
            totals[code] += amount
    return totals


def _wait_for(proc, line: str, timeout: float = 120) -> None:
    """Read the child's output until ``line`` (fails if the child ends first)."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        got = proc.stdout.readline()
        if not got:
            break
        if got.strip() == line:
            return
    proc.kill()
    raise AssertionError(f"child never printed {line!r}: {proc.stderr.read()[-2000:]}")


def _entries(book) -> tuple[int, int]:
    """(entries of the batch, postings of the batch) in the book."""
    with book.reading() as conn:
        entries = conn.execute(select(func.count()).select_from(m.JournalEntry)
                               .where(m.JournalEntry.idempotency_key.like("crash-%"))).scalar_one()
        postings = conn.execute(
            select(func.count()).select_from(m.Posting)
            .join(m.JournalEntry, m.JournalEntry.id == m.Posting.entry_id, isouter=True)
            .where((m.JournalEntry.idempotency_key.like("crash-%")) | m.JournalEntry.id.is_(None))
        ).scalar_one()
    return entries, postings


@pytest.mark.parametrize("kill_at", ["inserting", "before commit"])
def test_sigkill_in_post_many_leaves_no_partial_entry(db_url, kill_at):
    book = ledger.open(db_url)
    book.open_account(BANK, "asset")
    for n in range(WALLETS):
        book.open_account(wallet(n), "liability", no_overdraft=True)
    book.post([(BANK, 1), (wallet(0), -1)], key="before")
    before = {code: book.balance(code) for code in [BANK, *map(wallet, range(WALLETS))]}

    proc = subprocess.Popen([sys.executable, "-c", CHILD, db_url, kill_at], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(proc, "started")
        if kill_at == "inserting":
            _wait_for(proc, "inserting")
            time.sleep(0.02)   # let it get further into the batch
        else:
            _wait_for(proc, "committing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    report = book.verify()
    assert report.ok, report.problems[:5]
    entries, postings = _entries(book)
    assert (entries, postings) in ((0, 0), (BATCH, 2 * BATCH)), (entries, postings)
    if kill_at == "before commit":
        assert entries == 0
    if entries == 0:
        assert {code: book.balance(code) for code in before} == before

    # the platform runs the batch again after the crash: each entry lands exactly once
    batch = make_batch()
    first = book.post_many(batch)
    assert all(e.replayed for e in first) == (entries == BATCH)
    again = book.post_many(batch)
    assert all(e.replayed for e in again) and [e.id for e in again] == [e.id for e in first]
    assert _entries(book) == (BATCH, 2 * BATCH)
    report = book.verify()
    assert report.ok, report.problems[:5]
    moved = expected_balances(batch)
    assert book.balance(BANK) == before[BANK] + moved[BANK]
    for n in range(WALLETS):
        assert book.balance(wallet(n)) == before[wallet(n)] - moved[wallet(n)]
    book.dispose()
