"""Repayment plans and investor splits: published figures, conventions, properties."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ledger import rates
from ledger.errors import AmountError, FloatAmountError, LedgerError, PrecisionError
from ledger.money import allocate, from_minor
from ledger.rates import rdiv, year_fraction
from ledger.schedules import (
    BULLET, EQUAL_INSTALLMENT, EQUAL_PRINCIPAL, INTEREST_ONLY, METHODS, ROUNDINGS, _UNROLLED_MAX,
    RateCapExceededError, ScheduleError, UnknownLprError, _build, _rows_loop, _rows_of, _terms,
    all_in_rate, apr, check_rate_cap, judicial_cap, lpr_on, payoff, penalty, register_lpr, reprice,
    schedule, split,
)
from ledger.splits import _running_shares

D = Decimal
JAN31 = dt.date(2024, 1, 31)


# --- published figures ----------------------------------------------------------------------------

@pytest.mark.parametrize("principal, rate, months, payment", [
    ("100000", "0.06", 12, "8606.64"),
    ("630000", "0.049", 360, "3343.58"),
    ("10000", "0.08", 10, "1037.03"),
    ("200000", "0.075", 180, "1854.02"),
])
def test_published_equal_installments(principal, rate, months, payment):
    plan = schedule(principal, rate, months, start=JAN31)
    assert plan.installment == D(payment)
    assert {r.payment for r in plan.rows[:-1]} == {D(payment)}
    assert abs(plan.rows[-1].payment - D(payment)) < D("2.00")


def test_published_equal_principal_falls_7_15_a_month():
    plan = schedule("630000", "0.049", 360, EQUAL_PRINCIPAL, start=JAN31)
    payments = [r.payment for r in plan.rows]
    assert payments[0] == D("4322.50")
    falls = [a - b for a, b in zip(payments, payments[1:])]
    assert falls[0] == D("7.15")
    # 1750.00 x 4.9% / 12 = 7.1458...: each row's rounding makes the fall 7.14 or 7.15
    assert set(falls) <= {D("7.14"), D("7.15")}
    assert ((payments[0] - payments[-1]) / 359).quantize(D("0.01")) == D("7.15")
    assert {r.principal for r in plan.rows} == {D("1750.00")}


def test_totals_are_the_sum_of_the_rows_not_payment_times_term():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    # a calculator's "total interest" 8606.64 x 12 - 100000 = 3279.68; the rows say 3279.73
    assert plan.installment * 12 - plan.principal == D("3279.68")
    assert plan.total_interest == sum(r.interest for r in plan.rows) == D("3279.73")
    assert plan.rows[-1].payment == D("8606.69")
    assert plan.total_payment == plan.total_principal + plan.total_interest + plan.total_fee


def test_rows_are_immutable_with_balances():
    plan = schedule("100000", "6%", 12, start=JAN31)
    first = plan.rows[0]
    assert (first.seq, first.opening, first.principal, first.interest, first.closing) == (
        1, D("100000.00"), D("8106.64"), D("500.00"), D("91893.36"))
    assert all(a.closing == b.opening for a, b in zip(plan.rows, plan.rows[1:]))
    with pytest.raises(AttributeError):
        plan.term = 24
    with pytest.raises(AttributeError):
        first.interest_minor = 0
    assert plan == schedule(D("100000"), D("0.06"), 12, start=JAN31)


# --- due dates ----------------------------------------------------------------------------------

def test_month_end_dates_are_counted_from_the_start_never_chained():
    leap = schedule("1200", "0.06", 4, start=dt.date(2024, 1, 31)).due_dates
    assert leap == (dt.date(2024, 2, 29), dt.date(2024, 3, 31), dt.date(2024, 4, 30),
                    dt.date(2024, 5, 31))
    plain = schedule("1200", "0.06", 3, start=dt.date(2023, 1, 31)).due_dates
    assert plain == (dt.date(2023, 2, 28), dt.date(2023, 3, 31), dt.date(2023, 4, 30))


def test_a_leap_day_start_comes_back_on_leap_years():
    dates = schedule("4800", "0.06", 48, start=dt.date(2024, 2, 29)).due_dates
    assert dates[0] == dt.date(2024, 3, 29)
    assert dates[11] == dt.date(2025, 2, 28)
    assert dates[47] == dt.date(2028, 2, 29)


def test_days_terms_mature_after_the_days():
    plan = schedule("100000", "0.06", 90, BULLET, term_unit="day", day_count="ACT/365",
                    start=dt.date(2025, 6, 1))
    (row,) = plan.rows
    assert row.due_date == dt.date(2025, 8, 30)
    assert row.interest == D("1479.45")  # 100000 x 6% x 90/365
    io = schedule("100000", "0.06", 90, INTEREST_ONLY, term_unit="day", start=JAN31)
    assert io.due_dates == (dt.date(2024, 2, 29), dt.date(2024, 3, 31), dt.date(2024, 4, 30))
    assert [r.interest for r in io.rows] == [D("483.33"), D("516.67"), D("500.00")]  # ACT/360
    assert [r.principal for r in io.rows] == [D("0.00"), D("0.00"), D("100000.00")]


# --- methods and conventions ----------------------------------------------------------------------

def test_interest_only_and_bullet():
    io = schedule("100000", "0.06", 12, INTEREST_ONLY, start=JAN31)
    assert [r.payment for r in io.rows] == [D("500.00")] * 11 + [D("100500.00")]
    bullet = schedule("100000", "0.06", 12, BULLET, start=JAN31)
    assert [(r.due_date, r.interest, r.payment) for r in bullet.rows] == [
        (dt.date(2025, 1, 31), D("6000.00"), D("106000.00"))]


def test_equal_principal_puts_the_remainder_fen_in_the_last_row():
    plan = schedule("100.00", "0.12", 3, EQUAL_PRINCIPAL, start=JAN31)
    assert [r.principal for r in plan.rows] == [D("33.33"), D("33.33"), D("33.34")]


def test_day_counts_give_each_period_its_days():
    plan = schedule("100000", "0.06", 3, INTEREST_ONLY, day_count="ACT/365", start=JAN31)
    assert [r.interest for r in plan.rows] == [D("476.71"), D("509.59"), D("493.15")]  # 29, 31, 30 days
    ei = schedule("100000", "0.06", 12, day_count="ACT/360", start=JAN31)
    assert sum(r.principal_minor for r in ei.rows) == 10_000_000
    assert {r.payment for r in ei.rows[:-1]} == {ei.installment}
    assert abs(ei.rows[-1].payment - ei.installment) <= D("0.05")


def test_year_fractions():
    assert year_fraction(dt.date(2024, 1, 31), dt.date(2024, 2, 29), "30/360") == Fraction(29, 360)
    assert year_fraction(dt.date(2024, 1, 30), dt.date(2024, 3, 31), "30/360") == Fraction(60, 360)
    assert year_fraction(dt.date(2023, 12, 1), dt.date(2024, 1, 31), "ACT/ACT") == (
        Fraction(31, 365) + Fraction(30, 366))
    assert year_fraction(dt.date(2024, 1, 1), dt.date(2024, 4, 1), "ACT/360") == Fraction(91, 360)


def test_rounding_rules():
    assert [rdiv(5, 2, m) for m in ("HALF_UP", "HALF_EVEN", "DOWN")] == [3, 2, 2]
    assert [rdiv(-5, 2, m) for m in ("HALF_UP", "HALF_EVEN", "DOWN")] == [-3, -2, -2]
    assert rdiv(7, 2, "HALF_EVEN") == 4
    up = schedule("100000", "0.06", 12, rounding="HALF_UP", start=JAN31)
    down = schedule("100000", "0.06", 12, rounding="ROUND_DOWN", start=JAN31)
    assert (up.installment, down.installment) == (D("8606.64"), D("8606.64"))
    assert down.rows[1].interest == D("459.46")  # 459.4668 rounded down
    assert up.rows[1].interest == D("459.47")


@given(st.integers(-10**15, 10**15), st.integers(1, 10**9),
       st.sampled_from([("HALF_UP", ROUND_HALF_UP), ("HALF_EVEN", ROUND_HALF_EVEN),
                        ("DOWN", ROUND_DOWN)]))
@settings(max_examples=150)
def test_rdiv_agrees_with_decimal_quantize(num, den, modes):
    ours, theirs = modes
    with localcontext() as ctx:
        ctx.prec = 60  # far finer than any quotient's distance from a half
        expected = (D(num) / D(den)).quantize(D(1), rounding=theirs)
    assert rdiv(num, den, ours) == int(expected)
    assert rdiv(num * 2 + 1, 2, ours) == int((D(num * 2 + 1) / 2).quantize(D(1), rounding=theirs))


def test_installment_rounded_to_whole_yuan():
    plan = schedule("100000", "0.06", 12, installment_multiple="1", start=JAN31)
    assert plan.installment == D("8607.00")
    assert {r.payment for r in plan.rows[:-1]} == {D("8607.00")}
    assert plan.rows[-1].payment < D("8607.00")
    assert plan.rows[-1].closing == 0


def test_periodic_fees():
    plan = schedule("100000", "0.06", 12, periodic_fee="10", periodic_fee_rate="0.003", start=JAN31)
    assert {r.fee for r in plan.rows} == {D("310.00")}
    assert plan.rows[0].payment == D("8916.64")
    assert plan.total_fee == D("3720.00")


# --- properties over wide inputs -------------------------------------------------------------------

principals = st.integers(1, 10**12)
annual_rates = st.integers(0, 3600).map(lambda bp: D(bp).scaleb(-4))
starts = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))


def check_plan(plan, principal_minor):
    rows = plan.rows
    assert sum(r.principal_minor for r in rows) == principal_minor
    assert rows[-1].closing_minor == 0
    assert all(min(r.principal_minor, r.interest_minor, r.fee_minor, r.opening_minor,
                   r.closing_minor) >= 0 for r in rows)
    assert all(a.closing_minor == b.opening_minor for a, b in zip(rows, rows[1:]))
    assert all(r.payment_minor == r.principal_minor + r.interest_minor + r.fee_minor for r in rows)
    assert [r.due_date for r in rows] == sorted({r.due_date for r in rows})


@given(principals, annual_rates, st.integers(1, 360), st.sampled_from(METHODS),
       st.sampled_from(ROUNDINGS), starts)
@settings(max_examples=150)
def test_plans_repay_exactly_the_principal(principal_minor, rate, term, method, rounding, start):
    plan = schedule(from_minor(principal_minor), rate, term, method, rounding=rounding, start=start)
    check_plan(plan, principal_minor)
    rows = plan.rows
    if method == EQUAL_INSTALLMENT:
        assert len(rows) == term
        assert all(r.payment_minor == plan.installment_minor for r in rows[:-1])
    elif method == EQUAL_PRINCIPAL:
        assert len({r.principal_minor for r in rows[:-1]}) <= 1
        assert rows[0].principal_minor == principal_minor // term or term == 1
    elif method == INTEREST_ONLY:
        assert all(r.principal_minor == 0 for r in rows[:-1])
    else:
        assert len(rows) == 1


@given(principals, annual_rates, st.integers(1, 360), starts)
@settings(max_examples=100)
def test_the_fast_path_and_the_general_path_agree(principal_minor, rate, term, start):
    plan = schedule(from_minor(principal_minor), rate, term, start=start)
    terms = _terms(rate, term, EQUAL_INSTALLMENT, "month", None, "HALF_UP", None, "CNY")
    assert terms.fast
    assert plan == _build(principal_minor, terms, start, 0, 0)


@given(st.one_of(st.integers(1, 1000), principals, st.integers(10**12, 10**30)),
       st.one_of(annual_rates, st.integers(1, 99_999_999).map(lambda r: D(r).scaleb(-8))),
       st.integers(1, _UNROLLED_MAX + 2))
@settings(max_examples=300)
def test_the_written_out_rows_equal_the_loop(principal_minor, rate, term):
    fast = _terms(rate, term, EQUAL_INSTALLMENT, "month", None, "HALF_UP", None, "CNY").fast
    level = (principal_minor * fast.annuity_num2 + fast.annuity_den) // fast.annuity_den2
    args = (principal_minor, level, fast.a2, fast.b, fast.b2)
    assert fast.rows(*args) == _rows_loop(term)(*args)
    if rate and term <= _UNROLLED_MAX:
        assert fast.rows is _rows_of(term)


@given(principals, st.integers(0, 2000).map(lambda bp: D(bp).scaleb(-4)), st.integers(1, 120),
       st.sampled_from([EQUAL_INSTALLMENT, EQUAL_PRINCIPAL, INTEREST_ONLY]),
       st.sampled_from(["30/360", "ACT/360", "ACT/365", "ACT/ACT"]), starts)
@example(111, D("0.1521"), 94, EQUAL_INSTALLMENT, "30/360", dt.date(2000, 1, 30))  # 1.18 fen a period
@settings(max_examples=100)
def test_day_count_plans_repay_exactly_the_principal(principal_minor, rate, term, method, day_count,
                                                     start):
    try:
        plan = schedule(from_minor(principal_minor), rate, term, method, day_count=day_count,
                        start=start)
    except ScheduleError as exc:  # refused only at a fen or two of principal a period
        assert method == EQUAL_INSTALLMENT and principal_minor < 2 * term, exc
        assert "no level installment in whole fen repays it" in str(exc)
        return
    check_plan(plan, principal_minor)
    if method == EQUAL_INSTALLMENT:
        assert all(r.payment_minor == plan.installment_minor for r in plan.rows[:-1])


# --- investor splits --------------------------------------------------------------------------------

def test_split_of_a_published_plan():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    result = split(plan, {"alice": "60000", "bob": "40000"}, management_fee_rate="0.10")
    alice, bob = result.investors
    assert alice.rows[0].interest + bob.rows[0].interest == D("500.00")
    assert (alice.rows[0].interest, alice.rows[0].management_fee, alice.rows[0].net) == (
        D("300.00"), D("30.00"), alice.rows[0].principal + D("270.00"))
    assert (alice.total_principal, bob.total_principal) == (D("60000.00"), D("40000.00"))
    assert result.investor("bob") is bob


def test_running_totals_rotate_the_odd_fen_among_equal_investors():
    # each row's odd fen goes to a different investor: nobody is favoured row after row
    assert _running_shares((1, 1, 1), [1, 1, 1]) == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert _running_shares((100, 100, 100), [1, 1, 1]) == [(34, 33, 33), (33, 34, 33), (33, 33, 34)]


def test_nobody_gives_back_a_fen_when_a_running_share_falls():
    # the Alabama paradox: largest remainder gives 6:6:2 of 10 as 4,4,2 but of 11 as 5,5,1
    assert allocate(10, [6, 6, 2]) == [4, 4, 2] and allocate(11, [6, 6, 2]) == [5, 5, 1]
    shares = _running_shares((10, 1, 3), [6, 6, 2])
    rows = list(zip(*shares))
    assert all(part >= 0 for row in rows for part in row)
    assert [sum(row) for row in rows] == [10, 1, 3]
    assert [sum(s) for s in shares] == [6, 6, 2]


@st.composite
def funded_plans(draw):
    principal_minor = draw(st.integers(1, 10**10))
    plan = schedule(from_minor(principal_minor), draw(annual_rates), draw(st.integers(1, 60)),
                    draw(st.sampled_from(METHODS)), start=draw(starts))
    weights = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=25))
    parts = [p for p in allocate(principal_minor, weights) if p]
    return plan, [(f"inv{i}", from_minor(p)) for i, p in enumerate(parts)]


@given(funded_plans(), st.integers(0, 5000).map(lambda bp: D(bp).scaleb(-4)))
@settings(max_examples=120)
def test_splits_add_up_every_row_and_repay_every_investor(funded, fee_rate):
    plan, investors = funded
    result = split(plan, investors, management_fee_rate=fee_rate)
    weights = [int(amount.scaleb(2)) for _, amount in investors]
    total = sum(weights)
    for k, row in enumerate(plan.rows):
        assert sum(inv.principal_parts[k] for inv in result.investors) == row.principal_minor
        assert sum(inv.interest_parts[k] for inv in result.investors) == row.interest_minor
    for inv, weight in zip(result.investors, weights):
        assert sum(inv.principal_parts) == inv.funded_minor == weight
        assert min(inv.principal_parts + inv.interest_parts + inv.management_fee_parts) >= 0
        assert all(r.net_minor == r.principal_minor + r.interest_minor - r.management_fee_minor
                   for r in inv.rows)
        num, den = fee_rate.as_integer_ratio()
        assert sum(inv.management_fee_parts) == rdiv(sum(inv.interest_parts) * num, den, plan.rounding)
    # nobody is ever much ahead or behind its exact share of the running total
    for component in ("principal_parts", "interest_parts"):
        borrower = getattr(plan, component)
        for inv, weight in zip(result.investors, weights):
            given_so_far = exact = 0
            for k, part in enumerate(getattr(inv, component)):
                given_so_far += part
                exact = Fraction(sum(borrower[:k + 1]) * weight, total)
                assert abs(given_so_far - exact) < 2


@given(funded_plans())
@settings(max_examples=100)
def test_running_shares_are_largest_remainder_of_the_running_total(funded):
    plan, investors = funded
    weights = [int(amount.scaleb(2)) for _, amount in investors]
    hamilton = [allocate(c, weights) for c in _cumulative(plan.interest_parts)]
    monotone = all(b >= a for prev, cur in zip(hamilton, hamilton[1:]) for a, b in zip(prev, cur))
    assume(monotone)  # otherwise nobody-gives-back repairs a row
    shares = _running_shares(plan.interest_parts, weights)
    assert [list(c) for c in zip(*map(_cumulative, shares))] == hamilton


def _cumulative(parts):
    out, total = [], 0
    for p in parts:
        total += p
        out.append(total)
    return out


def test_split_refusals():
    plan = schedule("1000", "0.06", 3, start=JAN31)
    with pytest.raises(ScheduleError, match="funded 999.00"):
        split(plan, {"a": "500", "b": "499"})
    with pytest.raises(ScheduleError, match="twice"):
        split(plan, [("a", "500"), ("a", "500")])
    with pytest.raises(FloatAmountError):
        split(plan, {"a": 500.0, "b": "500"})
    with pytest.raises(ScheduleError, match="positive"):
        split(plan, {"a": "1000", "b": "0"})
    with pytest.raises(ScheduleError, match="pair"):
        split(plan, ["a"])


@pytest.mark.parametrize("term, method, unit, words", [
    (2, EQUAL_INSTALLMENT, "month", "2 months from 9999-12-01"),
    (1, EQUAL_PRINCIPAL, "month", "1 month from 9999-12-01"),
    (1, BULLET, "month", "1 month from 9999-12-01"),
    (60, BULLET, "day", "60 days from 9999-12-01"),
    (31, INTEREST_ONLY, "day", "31 days from 9999-12-01"),
])
def test_due_dates_past_9999_12_31_are_refused_naming_the_start_and_term(term, method, unit, words):
    start = dt.date(9999, 12, 1)
    with pytest.raises(ScheduleError, match=f"due dates run past 9999-12-31: {words}") as refused:
        schedule("1000", "0.06", term, method, start=start, term_unit=unit)
    assert (refused.value.start, refused.value.term, refused.value.term_unit) == (start, term, unit)


def test_due_dates_up_to_9999_12_31_are_kept():
    assert schedule("1000", "0.06", 1, start=dt.date(9999, 11, 30)).due_dates == (dt.date(9999, 12, 30),)
    # A term in days ending this side of the last date: no monthly date after it is computed.
    for method in (BULLET, INTEREST_ONLY):
        plan = schedule("1000", "0.06", 20, method, start=dt.date(9999, 12, 1), term_unit="day")
        assert plan.due_dates == (dt.date(9999, 12, 21),)
    plan = schedule("1000", "0.06", 30, INTEREST_ONLY, start=dt.date(9999, 12, 1), term_unit="day")
    assert plan.due_dates == (dt.date(9999, 12, 31),)
    plan = schedule("1000", "0.06", 45, INTEREST_ONLY, start=dt.date(9999, 11, 15), term_unit="day")
    assert plan.due_dates == (dt.date(9999, 12, 15), dt.date(9999, 12, 30))
    assert payoff(plan, dt.date(9999, 12, 31) - dt.timedelta(days=1)).principal == D("1000.00")


# --- early repayment --------------------------------------------------------------------------------

def test_payoff_mid_period_accrues_the_periods_interest_by_days():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    quote = payoff(plan, dt.date(2024, 3, 15), prepayment_fee_rate="0.01")
    assert quote.seq == 2
    assert quote.principal == D("91893.36")
    assert quote.interest == D("222.32")  # 459.47 x 15/31 days
    assert quote.fee == D("918.93")
    assert quote.total == D("93034.61")
    by_days = payoff(plan, dt.date(2024, 3, 15), day_count="ACT/360")
    assert by_days.interest == D("229.73")  # 91893.36 x 6% x 15/360


def test_payoff_on_a_due_date_is_that_installment_and_the_balance_after_it():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    quote = payoff(plan, dt.date(2024, 2, 29))
    assert quote.total == plan.rows[0].payment + plan.rows[0].closing
    assert payoff(plan, JAN31).total == D("100000.00")
    with pytest.raises(ScheduleError, match="before"):
        payoff(plan, dt.date(2024, 1, 30))
    with pytest.raises(ScheduleError, match="after"):
        payoff(plan, dt.date(2025, 2, 1))


def test_payoff_on_a_due_date_charges_the_fee_on_the_principal_due_later():
    plan = schedule("100000", "0.06", 12, start=dt.date(2026, 1, 15))
    first = plan.rows[0]
    quote = payoff(plan, first.due_date, prepayment_fee_rate="0.01")
    # The installment due that day is paid as scheduled, not prepaid: no fee on its principal.
    assert (quote.seq, quote.principal, quote.interest) == (1, D("100000.00"), first.interest)
    assert first.closing == D("91893.36") and quote.fee == D("918.93")
    assert payoff(plan, dt.date(2026, 2, 14), prepayment_fee_rate="0.01").fee == D("1000.00")
    assert payoff(plan, dt.date(2026, 2, 16), prepayment_fee_rate="0.01").fee == D("918.93")
    last = payoff(plan, plan.rows[-1].due_date, prepayment_fee_rate="0.01")
    assert last.principal == plan.rows[-1].principal and last.fee == 0
    by_days = payoff(plan, first.due_date, prepayment_fee_rate="0.01", day_count="ACT/365")
    assert by_days.fee == D("918.93")


def test_payoff_accrues_the_rows_own_interest_pro_rata_by_days():
    plan = schedule("100000", "0.06", 12, start=dt.date(2026, 1, 15))
    # 459.47 x 11/28 = 180.5060 (the rate on the balance, 91893.36 x 0.5% x 11/28, is 180.5048)
    assert plan.rows[1].interest == D("459.47")
    assert payoff(plan, dt.date(2026, 2, 26)).interest == D("180.51")
    # Under 30/360 a row's interest is a twelfth of a year's; it accrues by actual days.
    ep = schedule("100000", "0.06", 12, EQUAL_PRINCIPAL, start=dt.date(2026, 1, 15), day_count="30/360")
    assert ep.rows[0].interest == D("500.00")
    assert payoff(ep, dt.date(2026, 1, 16)).interest == D("16.13")  # 500.00 x 1/31
    assert payoff(ep, dt.date(2026, 1, 16), day_count="30/360").interest == D("16.67")


def test_reprice_keep_term_lowers_the_payment_on_the_same_dates():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    result = reprice(plan, dt.date(2024, 7, 31), "20000", keep="term")
    new = result.plan
    assert (result.principal, result.interest) == (D("20000.00"), D("0.00"))
    assert new.principal == plan.rows[5].closing - D("20000")
    assert [r.seq for r in new.rows] == list(range(7, 13))
    assert new.due_dates == plan.due_dates[6:]
    assert new.installment < plan.installment
    assert new == schedule(new.principal, "0.06", 6, start=dt.date(2024, 7, 31))._replace(
        start=JAN31, term=12, offset=6)
    check_plan(new, new.principal_minor)


def test_reprice_keep_payment_shortens_the_term():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    new = reprice(plan, dt.date(2024, 7, 31), "20000", keep="payment").plan
    assert new.installment == plan.installment
    assert all(r.payment == plan.installment for r in new.rows[:-1])
    assert new.rows[-1].payment <= plan.installment
    assert len(new.rows) < 6 and new.rows[0].seq == 7
    assert new.term == 6 + len(new.rows)
    check_plan(new, new.principal_minor)
    ep = schedule("120000", "0.06", 12, EQUAL_PRINCIPAL, start=JAN31)
    shorter = reprice(ep, dt.date(2024, 4, 30), "30000", keep="payment").plan
    assert [r.principal for r in shorter.rows] == [D("10000.00")] * 6


def test_reprice_mid_period_charges_the_prepaid_parts_interest():
    plan = schedule("100000", "0.06", 12, start=JAN31)
    result = reprice(plan, dt.date(2024, 3, 15), "10000", prepayment_fee_rate="0.02")
    assert result.interest == D("24.19")  # 10000 x 0.5% x 15/31
    assert result.fee == D("200.00")
    assert result.plan.rows[0].seq == 2
    assert result.plan.principal == D("81893.36")
    with pytest.raises(ScheduleError, match="payoff"):
        reprice(plan, dt.date(2024, 3, 15), "91893.36")
    with pytest.raises(ScheduleError, match="keep"):
        reprice(plan, dt.date(2024, 3, 15), "1000", keep="both")


PAYOFF_LOANS = [
    # (method, term, term_unit, conventions, prepayment fee rate)
    (EQUAL_INSTALLMENT, 12, "month", {}, "0.01"),
    (EQUAL_PRINCIPAL, 12, "month", {"day_count": "30/360", "periodic_fee": "10"}, "0.02"),
    (INTEREST_ONLY, 6, "month", {"day_count": "ACT/365"}, "0.005"),
    (BULLET, 6, "month", {}, "0.03"),
    (INTEREST_ONLY, 100, "day", {}, "0"),
    (BULLET, 75, "day", {"day_count": "ACT/ACT"}, "0.0125"),
]


def test_payoff_agrees_with_the_ledgers_quote_on_every_day_of_a_loans_life(book):
    """Each installment is repaid on its due date, after that day's quote."""
    f = book.flows
    f.open_system_accounts()
    for user in ("inv1", "inv2", "bob"):
        f.open_user(user)
        f.top_up(user, "1000000", bank_ref=f"B-{user}", key=f"topup-{user}")
    start = dt.date(2026, 1, 15)
    for n, (method, term, unit, conventions, fee_rate) in enumerate(PAYOFF_LOANS):
        loan = f"L{n}"
        book.loans.create_loan(loan, "bob", "100000", "0.06", term, key=f"create-{loan}", method=method,
                               start=start, term_unit=unit, conventions=conventions,
                               prepayment_fee_rate=fee_rate)
        book.loans.bid(loan, "inv1", "66666.67", key=f"bid-{loan}-1")
        book.loans.bid(loan, "inv2", "33333.33", key=f"bid-{loan}-2")
        book.loans.disburse(loan, key=f"disburse-{loan}", effective_date=start)
        plan = schedule("100000", "0.06", term, method, start=start, term_unit=unit, **conventions)
        due = {row.due_date: row for row in plan.rows}
        day, found = start, []
        while day <= plan.rows[-1].due_date:
            quote = book.loans.payoff_quote(loan, day)
            ours = payoff(plan, day, prepayment_fee_rate=fee_rate)
            theirs = (quote["principal"], quote["interest"], quote["prepayment_fee"],
                      quote["total"] - quote["fees_and_penalties"])
            if (ours.principal, ours.interest, ours.fee, ours.total) != theirs:
                found.append((day, (ours.principal, ours.interest, ours.fee, ours.total), theirs))
            if day in due:
                book.loans.repay(loan, due[day].payment, key=f"repay-{loan}-{day}", on_date=day)
            day += dt.timedelta(days=1)
        assert found == [], (method, term, unit, conventions)
        assert book.loans.loan(loan).status == "settled"


# --- penalty -----------------------------------------------------------------------------------------

def test_penalty_from_a_multiple_of_the_contract_rate_or_a_daily_rate():
    assert penalty("10000", dt.date(2024, 3, 1), dt.date(2024, 3, 11), annual_rate="0.06") == D("25.00")
    assert penalty("10000", dt.date(2024, 3, 1), dt.date(2024, 3, 31), daily_rate="0.0005") == D("150.00")
    assert penalty("10000", dt.date(2024, 3, 1), dt.date(2024, 3, 1), daily_rate="0.0005") == D("0.00")
    assert penalty("10000", dt.date(2024, 3, 1), dt.date(2024, 3, 11), annual_rate="0.06",
                   multiple="2") == D("33.33")
    with pytest.raises(ScheduleError, match="either"):
        penalty("10000", dt.date(2024, 3, 1), dt.date(2024, 3, 11))
    with pytest.raises(ScheduleError, match="before"):
        penalty("10000", dt.date(2024, 3, 11), dt.date(2024, 3, 1), daily_rate="0.0005")
    with pytest.raises(FloatAmountError):
        penalty(10000.0, dt.date(2024, 3, 1), dt.date(2024, 3, 11), daily_rate="0.0005")


# --- LPR, rate cap, APR -----------------------------------------------------------------------------------

def test_published_one_year_lpr():
    assert lpr_on(dt.date(2019, 8, 20)) == D("0.0425")
    assert lpr_on(dt.date(2024, 10, 20)) == D("0.0335")
    assert lpr_on(dt.date(2024, 10, 21)) == D("0.0310")
    assert lpr_on(dt.date(2025, 5, 20)) == D("0.0300")
    assert judicial_cap(dt.date(2024, 11, 1)) == D("0.1240")
    with pytest.raises(UnknownLprError, match="2019-08-20"):
        lpr_on(dt.date(2019, 8, 19))


def test_lpr_history_can_be_extended(monkeypatch):
    monkeypatch.setattr(rates, "_lpr", list(rates.lpr_history()))
    register_lpr(dt.date(2031, 1, 20), "2.5%")
    assert lpr_on(dt.date(2031, 2, 1)) == D("0.025")
    assert lpr_on(dt.date(2030, 12, 31)) == D("0.0300")
    fixings = rates.parse_lpr_csv("effective_date,one_year_lpr\n2032-01-20,2.40%\n")
    assert fixings == [rates.LprFixing(dt.date(2032, 1, 20), D("0.024"))]
    with pytest.raises(ScheduleError, match="line 2"):
        rates.parse_lpr_csv("effective_date,one_year_lpr\nlast week,2.40%\n")


def test_rate_cap_names_the_cap_and_the_rate():
    with pytest.raises(RateCapExceededError) as caught:
        check_rate_cap("0.13", dt.date(2024, 11, 1))
    error = caught.value
    assert (error.rate, error.cap, error.contract_date) == (D("0.13"), D("0.1240"), dt.date(2024, 11, 1))
    assert "13%" in str(error) and "12.4%" in str(error) and "LPR 3.1%" in str(error)
    assert check_rate_cap("0.124", dt.date(2024, 11, 1)) == D("0.124")
    assert check_rate_cap("0.20", dt.date(2024, 11, 1), cap="24%") == D("0.20")
    with pytest.raises(RateCapExceededError, match="configured cap"):
        check_rate_cap("0.25", None, cap="0.24")


def test_rate_cap_counts_fees_in_the_all_in_cost():
    plan = schedule("10000", "0.12", 12, start=dt.date(2024, 11, 1))
    assert all_in_rate(plan) == D("0.12")
    assert check_rate_cap(plan) == D("0.12")
    with pytest.raises(RateCapExceededError) as caught:
        check_rate_cap(plan, upfront_fee="300")
    assert caught.value.rate > D("0.124")


def test_apr_equates_the_net_disbursed_with_the_payments():
    plan = schedule("10000", "0.06", 12, start=JAN31)
    assert abs(apr(plan) - D("0.06")) < D("0.00001")
    rate = apr(plan, upfront_fee="300")
    monthly = rate / 12
    npv = -D("9700") + sum(r.payment / (1 + monthly) ** (k + 1) for k, r in enumerate(plan.rows))
    assert abs(npv) < D("0.000001")
    assert D("0.11") < rate < D("0.12")


# --- refusals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(principal=100000.0), FloatAmountError, "float"),
    (dict(annual_rate=0.06), FloatAmountError, "float"),
    (dict(installment_multiple=1.0), FloatAmountError, "float"),
    (dict(principal="100000.001"), PrecisionError, "finer"),
    (dict(principal="abc"), AmountError, "not a number"),
    (dict(principal="0"), ScheduleError, "positive"),
    (dict(principal="-5"), ScheduleError, "positive"),
    (dict(annual_rate="6"), ScheduleError, "fractions"),
    (dict(annual_rate="-0.01"), ScheduleError, "zero or more"),
    (dict(annual_rate="six"), ScheduleError, "not a rate"),
    (dict(term=0), ScheduleError, "term"),
    (dict(term="12"), ScheduleError, "term"),
    (dict(term=True), ScheduleError, "term"),
    (dict(method="balloon"), ScheduleError, "method"),
    (dict(rounding="CEILING"), ScheduleError, "rounding"),
    (dict(day_count="ACT/364"), ScheduleError, "day count"),
    (dict(term_unit="week"), ScheduleError, "term_unit"),
    (dict(term_unit="day"), ScheduleError, "days"),
    (dict(term_unit="day", method=BULLET, day_count="monthly"), ScheduleError, "day count"),
    (dict(start="2024-13-01"), ScheduleError, "not a date"),
    (dict(start=dt.datetime(2024, 1, 31, 9)), ScheduleError, "datetime"),
    (dict(installment_multiple="1", method=EQUAL_PRINCIPAL), ScheduleError, "multiple"),
    (dict(currency="XYZ"), LedgerError, "currency"),
])
def test_bad_input_is_refused_with_typed_errors(kwargs, error, message):
    args = dict(principal="100000", annual_rate="0.06", term=12, start=JAN31)
    args.update(kwargs)
    with pytest.raises(error, match=message) as caught:
        schedule(args.pop("principal"), args.pop("annual_rate"), args.pop("term"), **args)
    assert isinstance(caught.value, LedgerError)


def test_no_floats_in_the_schedule_modules():
    root = Path(__file__).resolve().parent.parent / "ledger"
    for name in ("schedules.py", "rates.py", "commands/schedule.py"):
        assert "float(" not in (root / name).read_text(encoding="utf-8"), name
