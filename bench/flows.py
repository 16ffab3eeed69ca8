"""Benchmark: loan repayments through the flows against the core posting path.

On a throwaway PostgreSQL (``tests.pgserver.PgServer``) it sets up
``--loans`` equal-installment loans of ``--term`` months (default 200 x 12
= 2,400 installments, a few minutes; the issue's 10,000 installments are
``--loans 834 --term 12``, about four times as long), each funded by
``--investors`` investors (default 50) drawn from a pool of ``--pool``
users, with a 10 % management fee on interest. Set-up: users and loans
through the flows, top-ups and bids written in batches through the posting
path (bids with their ``loan_bid`` rows, as ``Loans.bid`` writes them),
disbursements through the flows.

Timed, round by round (installment k of every loan, then k+1):

* flows: ``book.loans.repay(loan, installment, on_date=due date)``, one
  transaction per installment: the borrower pays, each investor gets its
  share less the management fee, memo claims shrink, dues are recorded;
* core: right after each round, the same entries (the same legs, the same
  accounts) posted in a second book of the same database with
  ``book.post_many([entry])``, one transaction per entry, as the flows do;
  and, for context, ``post_many`` in batches of ``--batch`` entries.

It prints installments/s, postings/s and the ratio of the flows' postings/s
to the core's one-entry ``post_many`` postings/s (target at least 0.5: the
flow logic must not cost more than the posting itself). A repayment is one
durable transaction by nature, so the one-entry figure is the like-for-like
baseline; the batched ratio shows what the commits cost on top.

Run: ``python bench/flows.py [--loans 200] [--term 12] [--investors 50]
[--pool 500] [--batch 100] [--profile FILE]``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import insert, select, text, update  # noqa: E402

import ledger  # noqa: E402
from ledger import models as m  # noqa: E402
from ledger.flows import BANK, wallet  # noqa: E402
from ledger.money import from_minor  # noqa: E402
from ledger.postings import Draft, write  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

START = dt.date(2026, 1, 15)
RATE = "0.08"
MANAGEMENT_FEE_RATE = "0.10"
SET_UP_BATCH = 500


def split_amount(rng: random.Random, total: int, parts: int, unit: int = 100) -> list[int]:
    """``total`` (a multiple of ``unit``) cut into ``parts`` positive multiples of ``unit``."""
    cuts = sorted(rng.sample(range(1, total // unit), parts - 1))
    return [(b - a) * unit for a, b in zip([0] + cuts, cuts + [total // unit])]


def set_up(book, args, rng: random.Random) -> dict:
    """Users, loans, top-ups, bids and disbursements; returns the loans and their plans."""
    flows, loans = book.flows, book.loans
    flows.open_system_accounts()
    investors = [f"inv{i:04d}" for i in range(args.pool)]
    for user in investors:
        flows.open_user(user)
    plan: dict[str, dict] = {}
    need: dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(args.loans):
        loan_no, borrower = f"L{i:05d}", f"bor{i:05d}"
        principal = rng.randint(500, 5000) * 10_000        # 50,000.00 .. 500,000.00 CNY
        loans.create_loan(loan_no, borrower, from_minor(principal), RATE, args.term,
                          key=f"create-{loan_no}", start=START,
                          management_fee_rate=MANAGEMENT_FEE_RATE)
        bids = list(zip(rng.sample(investors, args.investors),
                        split_amount(rng, principal, args.investors)))
        for inv, amount in bids:
            need[inv] = need.get(inv, 0) + amount
        plan[loan_no] = {"borrower": borrower, "principal": principal, "bids": bids}
    print(f"  {args.loans:,} loans created ({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    top_ups = [Draft(((BANK, amount), (wallet(inv), -amount)), f"top-{inv}", "top_up", START,
                     minor=True) for inv, amount in sorted(need.items())]
    for start in range(0, len(top_ups), SET_UP_BATCH):
        book.post_many(top_ups[start:start + SET_UP_BATCH])
    # Bids as Loans.bid writes them: a freeze entry and a loan_bid row each; the loan is funded.
    with book.reading() as conn:
        loan_ids = dict(conn.execute(select(m.Loan.loan_no, m.Loan.id)
                                     .where(m.Loan.book_id == book.book_id)).all())
    numbers = sorted(plan)
    per_batch = max(1, SET_UP_BATCH // args.investors)
    for start in range(0, len(numbers), per_batch):
        chunk = numbers[start:start + per_batch]

        def run(conn, _book, chunk=chunk):
            drafts, rows = [], []
            for loan_no in chunk:
                for inv, amount in plan[loan_no]["bids"]:
                    drafts.append(Draft(((wallet(inv), amount), (wallet(inv, "frozen"), -amount)),
                                        f"bid-{loan_no}-{inv}", "bid", START,
                                        metadata={"loan": loan_no, "investor": inv}, minor=True))
                    rows.append((loan_ids[loan_no], inv, amount))
            entries = write(conn, book.book_id, drafts)
            conn.execute(insert(m.LoanBid), [
                {"loan_id": loan_id, "investor": inv, "amount_minor": amount, "entry_id": e.id}
                for (loan_id, inv, amount), e in zip(rows, entries)])
            for loan_no in chunk:
                conn.execute(update(m.Loan).where(m.Loan.id == loan_ids[loan_no]).values(
                    raised_minor=plan[loan_no]["principal"], status="funded"))
        book.in_transaction(run)
    print(f"  {len(top_ups):,} top-ups and {args.loans * args.investors:,} bids "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    extra = []
    for loan_no in numbers:
        loans.disburse(loan_no, key=f"disburse-{loan_no}", effective_date=START)
        view = loans.loan(loan_no, today=START)
        p = plan[loan_no]
        p["installments"] = [(i.seq, i.due_date, i.outstanding) for i in view.installments]
        # The borrower spent the principal; it pays the interest from a top-up.
        interest = sum(i.interest + i.fee for i in view.installments)
        extra.append(Draft(((BANK, interest), (wallet(p["borrower"]), -interest)),
                           f"top-{p['borrower']}", "top_up", START))
    for start in range(0, len(extra), SET_UP_BATCH):
        book.post_many(extra[start:start + SET_UP_BATCH])
    print(f"  {args.loans:,} disbursements ({time.perf_counter() - t0:.0f} s)", flush=True)
    return plan


def open_mirror(core, book) -> None:
    """Copy ``book``'s chart of accounts into ``core`` (same codes and attributes) and fund
    the borrowers there, so the core can post the very entries the flows wrote."""
    def run(conn, _core):
        params = {"core": core.book_id, "main": book.book_id}
        conn.execute(text(
            "INSERT INTO account (book_id, code, type, currency, is_no_overdraft, name, opened_at) "
            "SELECT :core, code, type, currency, is_no_overdraft, name, opened_at FROM account "
            "WHERE book_id = :main"), params)
        conn.execute(text(
            "INSERT INTO account_balance (account_id, posted_minor, held_minor) "
            "SELECT id, 0, 0 FROM account WHERE book_id = :core AND is_no_overdraft"), params)
    core.in_transaction(run)
    funds = [Draft(((BANK, 10**13), (a.code, -10**13)), f"fund-{a.code}", "top_up", START, minor=True)
             for a in book.accounts("liabilities:users")
             if a.code.startswith("liabilities:users:bor") and a.code.endswith(":available")]
    for start in range(0, len(funds), SET_UP_BATCH):
        core.post_many(funds[start:start + SET_UP_BATCH])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=200)
    parser.add_argument("--term", type=int, default=12, help="installments per loan (months)")
    parser.add_argument("--investors", type=int, default=50, help="investors per loan")
    parser.add_argument("--pool", type=int, default=500, help="distinct investors")
    parser.add_argument("--batch", type=int, default=100, help="entries per batched post_many")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the timed repayments")
    args = parser.parse_args(argv)
    if args.pool < args.investors:
        parser.error("--pool must be at least --investors")
    rng = random.Random(args.seed)
    installments = args.loans * args.term

    with PgServer() as server:
        server.psql("CREATE DATABASE bench_flows")
        url = server.url("bench_flows")
        book = ledger.open(url)
        core = ledger.open(url, book="core")
        print(f"PostgreSQL on port {server.port}; {args.loans:,} loans x {args.term} installments "
              f"= {installments:,} installments, {args.investors} investors each "
              f"(pool of {args.pool:,})", flush=True)
        print("set-up:")
        plan = set_up(book, args, rng)
        open_mirror(core, book)

        profiler = cProfile.Profile() if args.profile else None
        flow_s = core_s = batch_s = 0.0
        postings = entries_done = 0
        numbers = sorted(plan)
        print("timed, round by round:", flush=True)
        for k in range(args.term):
            round_legs = []
            t0 = time.perf_counter()
            if profiler:
                profiler.enable()
            for loan_no in numbers:
                seq, due, amount = plan[loan_no]["installments"][k]
                entry = book.loans.repay(loan_no, amount, key=f"repay-{loan_no}-{seq}", on_date=due)
                round_legs.append((entry, due))
            if profiler:
                profiler.disable()
            flow_s += time.perf_counter() - t0
            postings += sum(len(e.postings) for e, _ in round_legs)
            entries_done += len(round_legs)

            drafts = [Draft(tuple((p.account, p.amount_minor) for p in e.postings), f"core-{e.key}",
                            "repayment", due, metadata=e.metadata, minor=True)
                      for e, due in round_legs]
            t0 = time.perf_counter()
            for d in drafts:
                core.post_many([d])
            core_s += time.perf_counter() - t0
            batched = [Draft(d.legs, f"batch-{d.key}", d.kind, d.effective_date,
                             metadata=d.metadata, minor=True) for d in drafts]
            t0 = time.perf_counter()
            for start in range(0, len(batched), args.batch):
                core.post_many(batched[start:start + args.batch])
            batch_s += time.perf_counter() - t0
            print(f"  round {k + 1:2d}: {entries_done:,} installments; flows {flow_s:6.1f} s, "
                  f"core one-entry {core_s:6.1f} s, core batched {batch_s:6.1f} s", flush=True)

        status = {book.loans.loan(no).status for no in numbers[:20]}
        flow_ps, core_ps, batch_ps = postings / flow_s, postings / core_s, postings / batch_s
        ratio = flow_ps / core_ps
        print(f"\n{installments:,} installments repaid, {postings:,} postings "
              f"({postings / installments:.0f} per installment); first loans now {sorted(status)}")
        print(f"  flows  Loans.repay:                {installments / flow_s:8,.0f} installments/s "
              f"{flow_ps:10,.0f} postings/s")
        print(f"  core   post_many, one entry each:  {installments / core_s:8,.0f} entries/s      "
              f"{core_ps:10,.0f} postings/s")
        print(f"  core   post_many, {args.batch} per batch:   {installments / batch_s:8,.0f} entries/s      "
              f"{batch_ps:10,.0f} postings/s")
        print(f"  ratio flows / core one-entry post_many: {ratio:.2f}x (target >= 0.5) "
              f"{'OK' if ratio >= 0.5 else 'MISSED'}")
        print(f"  ratio flows / core batched post_many:   {flow_ps / batch_ps:.2f}x (for context)")
        if profiler:
            profiler.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(25)
        book.dispose()
        core.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
