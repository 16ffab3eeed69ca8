"""Benchmark: the daily reconciliation end to end on SQLite, against a plain hash join.

Set-up (not timed): a SQLite book whose custody bank account holds N
postings (default 1,000,000: about three minutes of set-up and one or two of
timed work here; ``--lines 100000`` for a quick look): top-ups from the bank into a few hundred user
wallets and withdrawals back out, bulk-inserted as real ledger rows
(postings before headers, balanced, content hashes computed with
:func:`ledger.chain.content_hash`, seal-queue rows, stored wallet balances)
in transactions of ``--chunk`` entries. ``--verify`` (on by default up to
20,000 postings) runs ``book.verify()`` over the result to prove the bulk rows
are valid ledger rows. Then the custody bank's statement for the day is
written as a real CSV day file in the default layout
(``docs/csv-day-file.md``) with 1% of it perturbed the ways a real one goes
wrong: a line dropped, duplicated, its amount changed, the posting dated
outside the window, an unknown line, one line split in two.

Timed, in each of ``--runs`` runs (default 3), every one on a fresh copy of the
set-up's book (its write-ahead log folded in, synced to disk first); the best
run end to end counts, as the best of the baseline's turns does (the machine
is shared: each run's figure is printed):

* parse: :func:`reconcile.statements.parse_statement` of the CSV file;
* the run: :func:`reconcile.runs.reconcile_parsed` (import, load the open
  items, match, prove the balance, store the run, matches and breaks), with
  its phases broken down (on a SQLite file the bank lines go in from a writer
  thread and the ledger side is read by a reader thread, overlapping the
  others: those phases are marked, and left out of "other");
* report: :func:`reconcile.report.to_csv` and ``summary_lines``;
* end to end = parse + run + report;
* baseline: a plain in-memory Python hash join of the same keys (order id and
  amount), best of ``--repeat``;
* matching alone: :func:`reconcile.matching.match` on the very items the run
  matched, best of ``--repeat``.

Targets: end to end within 20x of the hash join, matching alone within 3x,
peak memory (the whole process, set-up included) under 2 GiB.

Run: ``python bench/reconcile.py [--lines N] [--runs R] [--users U] [--seed S]``
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import hashlib
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ledger  # noqa: E402
from ledger import chain  # noqa: E402
from reconcile import importing, matching, parallel, report, runs  # noqa: E402
from reconcile.calendar import WEEKENDS_ONLY  # noqa: E402
from reconcile.matching import MatchConfig  # noqa: E402
from reconcile.statements import parse_statement  # noqa: E402

from baseline import hash_join, timed  # noqa: E402  (bench/baseline.py)

STATEMENT_DATE = dt.date(2026, 11, 23)   # a Monday
PREVIOUS_DAY = dt.date(2026, 11, 20)     # the Friday before
EARLY_DAY = dt.date(2026, 11, 17)        # four business days before: outside a 1-day window
BANK = "assets:custody:bank"
ACCOUNT_NO = "6222000011112222"
PERTURBATIONS = ("drop", "duplicate", "amount", "date", "unknown", "split")
DEFAULT_LINES = 1_000_000
HEADER = "账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要\n"


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def give_back_freed_memory() -> None:
    """Hand the heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere
    nothing): memory a run freed then counts in no later run's peak."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def rss_mib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


# --- set-up ----------------------------------------------------------------------
def build(book, n: int, n_users: int, seed: int, chunk: int, csv_path: str):
    """Bulk-load ``n`` custody postings and write the day's CSV statement.

    Returns the perturbations applied, by kind.
    """
    rng = random.Random(seed)
    randrange = rng.randrange
    book.open_account(BANK, "asset")
    wallets = [f"liabilities:users:u{i:04d}:available" for i in range(n_users)]
    for code in wallets:
        book.open_account(code, "liability", no_overdraft=True)
    bank_id = book.account(BANK).id
    wallet_ids = [book.account(code).id for code in wallets]
    wallet_balance = dict.fromkeys(wallet_ids, 0)   # on the normal (credit) side
    perturbed = rng.sample(range(n), n // 100)
    plan = {index: PERTURBATIONS[k % len(PERTURBATIONS)] for k, index in enumerate(perturbed)}
    counts = dict.fromkeys(PERTURBATIONS, 0)
    created = dt.datetime(2026, 11, 23, 1, 0, 0)
    book_id = book.book_id
    entry_id = 0
    serial = 0
    running = 0       # the bank's balance after each line
    with open(csv_path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        while entry_id < n:
            size = min(chunk, n - entry_id)
            postings, headers, queue, csv_rows = [], [], [], []
            for _ in range(size):
                i = entry_id
                entry_id += 1
                user = wallet_ids[randrange(n_users)]
                amount = randrange(1, 5_000_000)
                if randrange(3) == 0 and wallet_balance[user] >= amount:
                    amount = -amount                      # a withdrawal paid out by the bank
                wallet_balance[user] += amount
                action = plan.get(i)
                if action is not None:
                    counts[action] += 1
                day = PREVIOUS_DAY if randrange(20) == 0 else STATEMENT_DATE
                if action == "date":
                    day = EARLY_DAY
                ref_less = randrange(50) == 0             # amount and date only
                order = None if ref_less else (f"TOPUP-{i:010d}" if amount > 0 else f"WD-{i:010d}")
                kind = "top_up" if amount > 0 else "withdrawal"
                key = f"bench-{i}"
                stamp = created + dt.timedelta(microseconds=entry_id)
                header = {"id": entry_id, "book_id": book_id, "idempotency_key": key,
                          "request_hash": hashlib.sha256(key.encode()).hexdigest(), "kind": kind,
                          "phase": "posted", "effective_date": day, "external_ref": order,
                          "memo": None, "metadata_json": None, "pending_id": None,
                          "reverses_id": None, "posting_count": 2, "created_at": stamp}
                legs = ((0, bank_id, amount), (1, user, -amount))
                content = chain.content_hash(header, [(p, a, x, "CNY", False) for p, a, x in legs])
                iso = day.isoformat()
                for p, a, x in legs:
                    postings.append((entry_id, p, a, x, "CNY", iso, 0))
                headers.append((entry_id, book_id, key, header["request_hash"], kind, "posted", iso,
                                order, 2, stamp.strftime("%Y-%m-%d %H:%M:%S.%f"), content))
                queue.append((entry_id, book_id))
                if action == "drop":
                    continue
                lines = [(order, amount)]
                if action == "amount":
                    lines = [(order, amount + randrange(1, 1000))]
                elif action == "split":
                    part = amount // 2 or 1
                    lines = [(order, part), (order, amount - part)]
                elif action == "duplicate":
                    lines = [(order, amount), (order, amount)]
                elif action == "unknown":
                    lines = [(order, amount), (f"X{i:010d}", randrange(1, 5_000_000) * 7 + 3)]
                for ref, minor in lines:
                    serial += 1
                    running += minor
                    flag = "贷" if minor > 0 else "借"
                    csv_rows.append(f"{ACCOUNT_NO},{STATEMENT_DATE},B{serial:012d},{ref or ''},"
                                    f"U{user},用户{user},{flag},{money(abs(minor))},{money(running)},"
                                    f"{'充值' if minor > 0 else '提现'}\n")
            with book.engine.begin() as conn:
                cur = conn.connection.cursor()
                cur.executemany("INSERT INTO posting (entry_id, position, account_id, amount_minor, "
                                "currency, effective_date, is_pending) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                postings)
                cur.executemany("INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, "
                                "kind, phase, effective_date, external_ref, posting_count, created_at, "
                                "content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", headers)
                cur.executemany("INSERT INTO seal_queue (entry_id, book_id) VALUES (?, ?)", queue)
                cur.close()
            out.writelines(csv_rows)
        with book.engine.begin() as conn:
            cur = conn.connection.cursor()
            cur.executemany("UPDATE account_balance SET posted_minor = ? WHERE account_id = ?",
                            [(-balance, account) for account, balance in wallet_balance.items()])
            cur.close()
    return counts


# --- timed ------------------------------------------------------------------------
class Phases:
    """Wall time of the run's phases, by wrapping the functions it calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.background: set[str] = set()   # phases that ran in a second thread
        self.match_args = None

    def wrap(self, module, name: str, label: str, keep_args: bool = False):
        inner = getattr(module, name)

        def timed(*args, **kwargs):
            if keep_args:
                self.match_args = (args, kwargs)
                # Kept for the hash join and matching alone after the run. A run frees
                # its two million items once matched; kept, they would be walked by the
                # collector when the run ends (~0.2 s charged to the run for what only
                # the benchmark holds): frozen out of its reach until then.
                gc.freeze()
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t
                if threading.current_thread() is not threading.main_thread():
                    self.background.add(label)

        setattr(module, name, timed)
        return inner


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES,
                        help="ledger postings on the custody account, about as many bank lines "
                             f"(default {DEFAULT_LINES:,})")
    parser.add_argument("--users", type=int, default=300, help="user wallets (default 300)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--chunk", type=int, default=50_000,
                        help="entries per set-up transaction (default 50,000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the hash join and of matching alone; the best counts (default 3)")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                        help="run book.verify() after the set-up (default: only up to 20,000 lines)")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs end to end, each on a fresh copy of the set-up's book; "
                             "the best counts, as for the baseline (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the database and CSV file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat take at least 1")
    verify = args.verify if args.verify is not None else args.lines <= 20_000

    if args.lines < 1_000_000:
        print(f"{args.lines:,} lines (the targets are for 1,000,000, the default)")
    workdir = tempfile.mkdtemp(prefix="bench-reconcile-")
    db_path = os.path.join(workdir, "book.db")
    csv_path = os.path.join(workdir, f"custody-{STATEMENT_DATE:%Y%m%d}.csv")
    try:
        book = ledger.open(f"sqlite:///{db_path}")
        started = time.perf_counter()
        counts = build(book, args.lines, args.users, args.seed, args.chunk,
                                               csv_path)
        print(f"set-up: {args.lines:,} custody postings bulk-loaded and the day's CSV file written "
              f"({os.path.getsize(csv_path) / 2**20:,.0f} MiB) in {time.perf_counter() - started:.1f} s; "
              "perturbations: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        if verify:
            t = time.perf_counter()
            result = book.verify()
            print(f"book.verify(): {'OK' if not result.problems else 'PROBLEMS'} "
                  f"({result.entries:,} entries, "
                  f"{time.perf_counter() - t:.1f} s)")
            for problem in result.problems[:10]:
                print("  ", problem)
            if result.problems:
                return 1
        # The set-up's book, its write-ahead log folded in, is the pristine copy every
        # timed run starts from.
        book.dispose()
        folded = sqlite3.connect(db_path)
        folded.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        folded.close()
        pristine = os.path.join(workdir, "pristine.db")
        os.replace(db_path, pristine)
        gc.collect()
        print(f"memory after set-up: {rss_mib():,} MiB resident")

        phases = Phases()
        phases.wrap(runs, "import_lines", "import")
        phases.wrap(importing, "_insert_lines", "insert bank lines")
        phases.wrap(runs, "_open_bank_lines", "load open bank lines")
        phases.wrap(runs, "_open_postings", "load open postings")
        plain_match = phases.wrap(matching, "match", "match", keep_args=True)
        phases.wrap(runs, "_ledger_side", "ledger side (postings, balance)")
        phases.wrap(runs, "_balance_proof", "balance proof")
        phases.wrap(runs, "_store_matches", "store matches")
        phases.wrap(runs, "_store_breaks", "store breaks")
        phases.wrap(runs, "_break_sides", "read the breaks' sides")
        phases.wrap(parallel.Writer, "finish", "wait for the writer")
        config = MatchConfig(window_days=1, calendar=WEEKENDS_ONLY)

        def span(a, b):
            return b[0] - a[0], b[1] - a[1]

        timings = []
        for turn in range(args.runs):
            last = turn == args.runs - 1
            gc.collect()
            give_back_freed_memory()   # (what the run before freed is not this run's)
            shutil.copyfile(pristine, db_path)
            os.sync()   # the copy reaches the disk now, not while the run is timed
            book = ledger.open(f"sqlite:///{db_path}")
            phases.seconds, phases.background, phases.match_args = {}, set(), None
            clock = time.perf_counter(), time.process_time()
            parsed = [(Path(csv_path), parse_statement(csv_path))]
            after_parse = time.perf_counter(), time.process_time()
            run = runs.reconcile_parsed(book, parsed, account=BANK, config=config)
            after_run = time.perf_counter(), time.process_time()
            breaks_csv = report.to_csv(run)
            summary = report.summary_lines(run)
            after_report = time.perf_counter(), time.process_time()
            peak_by_report = peak_rss_mib()
            gc.unfreeze()
            timings.append({"parse": span(clock, after_parse), "run": span(after_parse, after_run),
                            "report": span(after_run, after_report),
                            "e2e": span(clock, after_report), "phases": dict(phases.seconds),
                            "background": set(phases.background), "csv": len(breaks_csv),
                            "peak": peak_by_report})
            print(f"run {turn + 1} of {args.runs}: end to end {timings[-1]['e2e'][0]:.2f} s wall")
            bank_lines = sum(len(s.lines) for _, pf in parsed for s in pf.statements)
            book.dispose()
            for path in (db_path, db_path + "-wal", db_path + "-shm"):
                if os.path.exists(path):
                    os.remove(path)
            del parsed, breaks_csv
            if not last:   # only the last run's result and items are kept (for the baseline)
                del run, summary
                phases.match_args = None
                gc.collect()
        matching.match = plain_match
        best = min(timings, key=lambda t: t["e2e"][0])

        # The baseline joins lists of items (a run may hand matching its items as columns,
        # whose items would be made as the join reads them: made here, before the timing).
        # Its turns come first, on items just made (a join over items made later, among
        # the heap matching leaves, measured up to 50% slower: a flattering baseline), and
        # its lists go before matching alone runs, so the two never hold their inputs at once.
        outcome = run.result.summary   # (the run itself goes: only its items are still needed)
        del run
        gc.collect()
        give_back_freed_memory()
        before_baseline = rss_mib()
        bank_items, ledger_items = (list(items) for items in phases.match_args[0][:2])
        join_times, match_times = [], []
        for _ in range(args.repeat):
            pairs, seconds = timed(hash_join, bank_items, ledger_items)
            join_times.append(seconds)
            pair_count = len(pairs)
            del pairs
        del bank_items, ledger_items
        for _ in range(args.repeat):
            again, seconds = timed(plain_match, *phases.match_args[0], **phases.match_args[1])
            match_times.append(seconds)
            assert again.summary.match_counts == outcome.match_counts
            del again
        join_t = min(t[0] for t in join_times), min(t[1] for t in join_times)
        match_t = min(t[0] for t in match_times), min(t[1] for t in match_times)
        e2e_t = best["e2e"]

        def row(label, t, note=""):
            print(f"  {label + ':':26}{t[0]:8.2f} s wall {t[1]:8.2f} s CPU{note}")

        each = ", ".join(f"{t['e2e'][0]:.2f}" for t in timings)
        print(f"\n{bank_lines:,} bank lines against {args.lines:,} ledger postings on SQLite; "
              f"the best of {args.runs} runs, each on a fresh copy of the set-up's book "
              f"(end to end: {each} s wall)")
        row("parse (CSV day file)", best["parse"])
        row("run (reconcile_parsed)", best["run"])
        for label, seconds in best["phases"].items():
            note = "  (in a second thread, overlapped)" if label in best["background"] else ""
            print(f"      {label + ':':22}{seconds:8.2f} s wall{note}")
        # Inserting the lines is part of the import when it runs in the run's own thread.
        in_turn = sum(v for k, v in best["phases"].items()
                      if k not in best["background"] and k != "insert bank lines")
        print(f"      {'other (run row, commit):':22}{best['run'][0] - in_turn:8.2f} s wall")
        row("report (to_csv, summary)", best["report"], f"  ({best['csv'] / 2**20:,.1f} MiB of CSV)")
        row("end to end", e2e_t)
        row("hash join (baseline)", join_t, f"  ({pair_count:,} pairs; best of {args.repeat})")
        row("matching alone", match_t, f"  (best of {args.repeat}; {best['phases']['match']:.2f} s "
            "wall inside the run)")
        print(f"ratio end to end / hash join: {e2e_t[0] / join_t[0]:7.1f}x wall {e2e_t[1] / join_t[1]:7.1f}x "
              "CPU  (target <= 20x)")
        print(f"ratio matching / hash join:   {match_t[0] / join_t[0]:7.1f}x wall "
              f"{match_t[1] / join_t[1]:7.1f}x CPU  (target <= 3x)")
        peak = peak_rss_mib()
        print(f"peak memory (whole process, set-up included, ru_maxrss): {peak:,} MiB "
              f"(target < 2,048 MiB; {max(t['peak'] for t in timings):,} MiB when a report "
              f"was written; {before_baseline:,} MiB resident before the baseline's turns)")
        s = outcome
        print("matches: " + ", ".join(f"{k} {v:,}" for k, v in s.match_counts.items()))
        print("breaks:  " + ", ".join(f"{k} {v:,}" for k, v in s.break_counts.items()))
        print("summary: " + " | ".join(summary[2:]))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
