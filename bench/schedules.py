"""Benchmark: exact repayment plans and investor splits against a float baseline.

Generates N (default 100,000) twelve-month equal-installment plans with
``ledger.schedules.schedule``, then splits each among 20 investors with
``ledger.schedules.split`` (one call per plan), and again all at once with
``ledger.schedules.split_many`` (the batch a platform runs at night). In the same run it computes the same plans in
floats with numpy-financial (``pmt`` and ``ipmt``, vectorized over all plans,
rounded to the fen), and prints plans per second and the ratios:

* exact plan generation / float baseline (target at least 0.15x, aim 0.3x);
* split among 20 investors / exact plan generation (target at least 0.2x),
  per call and in a batch; and the batch with every investor's plan then
  read as Python values (a split builds them on first access).

Inputs are seeded: principals from 1,000.00 to 1,000,000.00, annual rates
from 4.00 % to 24.00 % in steps of 0.01 % (a product menu of 2,001 rates),
start dates over one year, and 20 investors with random funded amounts.

Usage::

    python bench/schedules.py [--plans 100000] [--investors 20] [--repeat 3]

numpy-financial is needed for the baseline only (``make bench`` installs it;
or ``pip install numpy-financial``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.money import from_minor  # noqa: E402
from ledger.schedules import schedule, split, split_many  # noqa: E402

TERM = 12
SEED = 20240131
MANAGEMENT_FEE_RATE = Decimal("0.10")


def _numpy():
    try:
        import numpy as np
        import numpy_financial as npf
    except ImportError:
        sys.exit("bench/schedules.py needs numpy-financial for its float baseline: "
                 "pip install numpy-financial (or run `make bench`)")
    return np, npf


def make_inputs(count: int, investors: int):
    rng = random.Random(SEED)
    first = dt.date(2024, 1, 1)
    principals = [rng.randint(100_000, 100_000_000) for _ in range(count)]      # fen
    rate_bp = [rng.randint(400, 2400) for _ in range(count)]                     # 0.01 %
    starts = [first + dt.timedelta(days=rng.randint(0, 365)) for _ in range(count)]
    holdings = []
    for minor in principals:
        cuts = sorted(rng.sample(range(1, minor), investors - 1))
        parts = [b - a for a, b in zip([0] + cuts, cuts + [minor])]
        holdings.append([(f"inv{j:02d}", from_minor(part)) for j, part in enumerate(parts)])
    return principals, rate_bp, starts, holdings


def timed(fn):
    """(CPU seconds of this process, result), the garbage collector paused as timeit does.

    CPU time rather than wall time, so other work on a shared machine does
    not distort the ratios.
    """
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        result = fn()
        return time.process_time() - t0, result
    finally:
        gc.enable()


def best_of(repeat: int, *fns):
    """Best time of each function over ``repeat`` rounds, run in turn within each round."""
    best = [None] * len(fns)
    results = [None] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            results[k] = None
            elapsed, results[k] = timed(fn)
            best[k] = elapsed if best[k] is None else min(best[k], elapsed)
    return best, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100_000)
    parser.add_argument("--investors", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3,
                        help="best of R runs of the plans, the float baseline and split_many "
                             "(per-call splits: one run)")
    args = parser.parse_args(argv)
    np, npf = _numpy()
    n = args.plans

    principals, rate_bp, starts, holdings = make_inputs(n, args.investors)
    principal_dec = [from_minor(p) for p in principals]
    rate_dec = [Decimal(bp).scaleb(-4) for bp in rate_bp]

    def exact():
        return [schedule(p, r, TERM, start=s) for p, r, s in zip(principal_dec, rate_dec, starts)]

    pv = np.array(principals, dtype=np.int64) / 100
    monthly = np.array(rate_bp, dtype=np.int64) / 10000 / 12
    per = np.arange(1, TERM + 1)

    def baseline():
        payment = np.round(npf.pmt(monthly, TERM, -pv), 2)
        interest = np.round(npf.ipmt(monthly[:, None], per[None, :], TERM, -pv[:, None]), 2)
        return payment, interest, payment[:, None] - interest

    (t_exact, t_float), (plans, (payment, interest, _)) = best_of(args.repeat, exact, baseline)

    def splits():
        return [split(plan, inv, management_fee_rate=MANAGEMENT_FEE_RATE)
                for plan, inv in zip(plans, holdings)]

    def batch():
        return split_many(plans, holdings, management_fee_rate=MANAGEMENT_FEE_RATE)

    t_split, done = timed(splits)
    # the batch, best of R as the plans are (one slow round on a shared machine is not its rate)
    (t_many,), (done_many,) = best_of(args.repeat, batch)
    # A split keeps its amounts in int64 blocks and builds its InvestorPlan values when first
    # read: what reading every one of them costs on top, once.
    t_read, _ = timed(lambda: [s.investors for s in done_many])
    assert done_many == done
    done_many = None   # freed before the next timing
    t_rows, _ = timed(lambda: [plan.rows for plan in plans])

    # What the float baseline gets wrong, to the fen.
    exact_payment = np.array([p.installment_minor for p in plans], dtype=np.int64)
    float_payment = np.rint(payment * 100).astype(np.int64)
    exact_interest = np.array([p.interest_parts for p in plans], dtype=np.int64)
    float_interest = np.rint(interest * 100).astype(np.int64)
    for s in done[:1000]:
        for k, row in enumerate(s.plan.principal_parts):
            assert sum(inv.principal_parts[k] for inv in s.investors) == row
        assert all(sum(inv.principal_parts) == inv.funded_minor for inv in s.investors)

    rate_exact, rate_float = n / t_exact, n / t_float
    rate_split, rate_many, rate_rows = n / t_split, n / t_many, n / t_rows
    rate_read = n / (t_many + t_read)
    print(f"plans: {n:,} x {TERM}-month equal installment; splits among {args.investors} "
          f"investors (management fee {MANAGEMENT_FEE_RATE}); best of {args.repeat} runs; "
          f"CPU time of this process, garbage collector paused while timing")
    print(f"exact plans (ledger.schedules)   {rate_exact:12,.0f} plans/s   {t_exact:8.3f} s")
    print(f"float baseline (numpy-financial) {rate_float:12,.0f} plans/s   {t_float:8.3f} s")
    print(f"exact split, {args.investors} investors       {rate_split:12,.0f} splits/s  {t_split:8.3f} s")
    print(f"exact split_many, batch of {n:,}  {rate_many:12,.0f} splits/s  {t_many:8.3f} s")
    print(f"split_many, every plan then read {rate_read:12,.0f} splits/s  {t_many + t_read:8.3f} s")
    print(f"rows materialised as Decimals    {rate_rows:12,.0f} plans/s   {t_rows:8.3f} s")
    print(f"ratio exact / float              {rate_exact / rate_float:12.3f}x  (target >= 0.15x, aim 0.3x)")
    print(f"ratio split / exact plans        {rate_split / rate_exact:12.3f}x  (target >= 0.2x; per call)")
    print(f"ratio split_many / exact plans   {rate_many / rate_exact:12.3f}x  (target >= 0.2x; batch)")
    print(f"ratio split_many+read / plans    {rate_read / rate_exact:12.3f}x  (every InvestorPlan "
          "built as Python values)")
    print(f"ratio split / float baseline     {rate_split / rate_float:12.3f}x")
    print(f"float baseline vs exact: installment differs in "
          f"{int((exact_payment != float_payment).sum()):,} of {n:,} plans; interest differs in "
          f"{int((exact_interest != float_interest).sum()):,} of {exact_interest.size:,} rows "
          f"(the float rows accrue on unrounded balances)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
