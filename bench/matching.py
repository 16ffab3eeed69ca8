"""Benchmark: the matching cascade against a plain in-memory hash join.

Builds one custody day of N ledger postings and the bank statement they
imply (default N = 1,000,000), perturbs 1% of the statement the ways a real
one goes wrong (dropped, duplicated, amount changed, date shifted past the
window, unknown line, one line split in two), then times, in the same run:

* the baseline: a dict keyed by reference over the ledger side and one probe
  per bank line (the cheapest join of the same keys Python can do);
* :func:`reconcile.matching.match` on the same items.

It prints both times, their ratio (target: matching within 3x of the join),
their spread over the rounds (the machine may be busy), the break counts,
and the process's peak memory (target: under 2 GiB for everything, data
included).

Run: ``python bench/matching.py [--items N] [--repeat R] [--shuffle]``
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

# The project first: a script's own folder leads sys.path, and bench/reconcile.py
# would shadow the reconcile package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconcile.calendar import WEEKENDS_ONLY  # noqa: E402
from reconcile.matching import BankItem, LedgerItem, MatchConfig, match  # noqa: E402

from baseline import hash_join, timed  # noqa: E402  (bench/baseline.py)

STATEMENT_DATE = date(2026, 11, 23)   # a Monday
PREVIOUS_DAY = date(2026, 11, 20)     # the Friday before
SHIFTED_DAY = date(2026, 11, 26)      # three business days later: outside a 1-day window
PERTURBATIONS = ("drop", "duplicate", "amount", "date", "unknown", "split")


def build(n: int, seed: int, perturbed_share: int = 100):
    """(bank, ledger, counts): ``n`` postings and their statement, 1 in ``perturbed_share``
    lines perturbed."""
    rng = random.Random(seed)
    cny = "CNY"
    kinds = ("topup", "withdrawal", "fee_sweep")
    ledger = []
    bank = []
    line_id = 0
    perturbed = rng.sample(range(n), n // perturbed_share)
    plan = {index: PERTURBATIONS[k % len(PERTURBATIONS)] for k, index in enumerate(perturbed)}
    counts = dict.fromkeys(PERTURBATIONS, 0)
    randrange = rng.randrange
    for i in range(n):
        amount = randrange(1, 5_000_000)
        if randrange(3) == 0:
            amount = -amount
        day = PREVIOUS_DAY if randrange(20) == 0 else STATEMENT_DATE
        order_ref = f"P20261123{i:010d}"
        ref_less = randrange(50) == 0  # a few lines carry no order id: amount and date only
        ledger.append(LedgerItem(i + 1, i + 1, day, amount, cny, None if ref_less else order_ref,
                                 None, kinds[amount < 0]))
        action = plan.get(i)
        if action is not None:
            counts[action] += 1
        if action == "drop":
            continue
        line_id += 1
        line = BankItem(line_id, STATEMENT_DATE, amount, cny, f"S{line_id:012d}",
                        None if ref_less else order_ref, None, None, "custody transfer")
        if action == "amount":
            line = line._replace(amount_minor=amount + randrange(1, 1000))
        elif action == "date":
            line = line._replace(booking_date=SHIFTED_DAY)
        elif action == "split":
            part = amount // 2 or 1
            line = line._replace(amount_minor=part)
            bank.append(line)
            line_id += 1
            line = line._replace(id=line_id, bank_ref=f"S{line_id:012d}",
                                 amount_minor=amount - part)
        bank.append(line)
        if action == "duplicate":
            line_id += 1
            bank.append(line._replace(id=line_id))
        elif action == "unknown":
            line_id += 1
            bank.append(BankItem(line_id, STATEMENT_DATE, randrange(1, 5_000_000) * 7 + 3, cny,
                                 f"S{line_id:012d}", f"X{line_id:012d}", None, None, "unknown"))
    return bank, ledger, counts


def best(times: list) -> tuple:
    """The best wall time and the best CPU time of several runs."""
    return min(t[0] for t in times), min(t[1] for t in times)


def spread(values: list) -> str:
    """``min / median / max`` of a few figures: how noisy the machine was."""
    ordered = sorted(values)
    return f"{ordered[0]:.2f} / {statistics.median(ordered):.2f} / {ordered[-1]:.2f}"


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000,
                        help="ledger postings (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--repeat", type=int, default=3,
                        help="time each side this many times, alternating, and keep the best "
                             "(default 3)")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle both sides first (the engine then pays for sorting)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    bank, ledger, counts = build(args.items, args.seed)
    if args.shuffle:
        random.Random(args.seed).shuffle(bank)
        random.Random(args.seed + 1).shuffle(ledger)
    print(f"built {len(bank):,} bank lines and {len(ledger):,} postings in "
          f"{time.perf_counter() - started:.1f} s; perturbations: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"peak memory after building: {peak_rss_mib():,} MiB")

    config = MatchConfig(window_days=1, calendar=WEEKENDS_ONLY)
    join_times, match_times = [], []
    for _ in range(args.repeat):
        pairs, seconds = timed(hash_join, bank, ledger)
        join_times.append(seconds)
        pair_count = len(pairs)
        del pairs
        result = None  # free the previous run's result before the next one
        result, seconds = timed(match, bank, ledger, statement_date=STATEMENT_DATE, config=config)
        match_times.append(seconds)
    (join_wall, join_cpu), (match_wall, match_cpu) = best(join_times), best(match_times)
    print(f"hash join:  {join_wall:6.2f} s wall, {join_cpu:6.2f} s CPU  ({pair_count:,} pairs)")
    print(f"matching:   {match_wall:6.2f} s wall, {match_cpu:6.2f} s CPU  ({len(result.matches):,} "
          f"matches, {len(result.breaks):,} breaks, {len(result.suggestions):,} suggestions)")
    print(f"ratio matching / hash join: {match_wall / join_wall:.2f}x wall, "
          f"{match_cpu / join_cpu:.2f}x CPU (target <= 3x; best of {args.repeat} each)")
    print(f"CPU seconds, min / median / max of {args.repeat}: hash join "
          f"{spread([t[1] for t in join_times])}, matching {spread([t[1] for t in match_times])}; "
          "ratio within each round "
          f"{spread([m[1] / j[1] for j, m in zip(join_times, match_times)])}")
    print("matches: " + ", ".join(f"{k} {v:,}" for k, v in result.summary.match_counts.items()))
    print("breaks:  " + ", ".join(f"{k} {v:,}" for k, v in result.summary.break_counts.items()))
    peak = peak_rss_mib()
    print(f"peak memory (whole process, ru_maxrss): {peak:,} MiB (target < 2,048 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
