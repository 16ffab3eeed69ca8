"""Investor splits: the numpy fast path equals the pure-Python reference, exactly."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from math import gcd, isqrt
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger import splits
from ledger.money import allocate, from_minor
from ledger.rates import DOWN, HALF_EVEN, HALF_UP, ROUNDINGS
from ledger.schedules import (
    EQUAL_PRINCIPAL, METHODS, InvestorPlan, Plan, ScheduleError, Split, schedule, split, split_many,
)
from ledger.splits import _split_reference

D = Decimal
JAN31 = dt.date(2024, 1, 31)

fee_rates = st.one_of(
    st.integers(0, 10_000).map(lambda bp: D(bp).scaleb(-4)),          # 0 to 1 in basis points
    st.sampled_from([D(0), D(1), D("0.5"), D("0.125"), D("0.3333333333"), D("0.0000000001")]),
)


@st.composite
def investors_of(draw, principal_minor: int):
    """1 to 60 investors whose amounts add up to the principal, each at least a fen."""
    count = draw(st.integers(1, min(60, principal_minor)))
    weights = draw(st.lists(st.integers(1, 10**12), min_size=count, max_size=count))
    parts = [p for p in allocate(principal_minor, weights) if p]
    return [(f"inv{i}", from_minor(p)) for i, p in enumerate(parts)]


@st.composite
def scheduled(draw):
    """A plan from ``schedule``: any method and rounding, 1 fen to 10**12 fen, 1 to 360 months."""
    principal_minor = draw(st.integers(1, 10**12))
    plan = schedule(from_minor(principal_minor), draw(st.integers(0, 3600).map(lambda bp: D(bp).scaleb(-4))),
                    draw(st.integers(1, 360)), draw(st.sampled_from(METHODS)),
                    start=draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))),
                    rounding=draw(st.sampled_from(ROUNDINGS)))
    return plan, draw(investors_of(principal_minor))


@st.composite
def made_up(draw):
    """A plan of arbitrary rows: zeros, rows smaller than the number of investors (the Alabama
    paradox and its no-giving-back repair), huge ones; 1 to 360 rows, any rounding."""
    term = draw(st.integers(1, 360))
    amounts = st.one_of(st.integers(0, 3), st.integers(0, 100), st.integers(0, 10**12 // term))
    principal_parts = draw(st.lists(amounts, min_size=term, max_size=term))
    if not sum(principal_parts):
        principal_parts[-1] = 1
    interest_parts = draw(st.lists(amounts, min_size=term, max_size=term))
    principal_minor = sum(principal_parts)
    plan = Plan(principal_minor, D("0.1"), term, EQUAL_PRINCIPAL, JAN31, "month", "monthly",
                draw(st.sampled_from(ROUNDINGS)), "CNY", None, tuple(principal_parts),
                tuple(interest_parts), (0,) * term)
    return plan, draw(investors_of(principal_minor))


def assert_same(fast: Split, reference: Split) -> None:
    assert fast == reference
    for inv in fast.investors:
        assert type(inv) is InvestorPlan and type(inv.funded_minor) is int
        for parts in (inv.principal_parts, inv.interest_parts, inv.management_fee_parts):
            assert type(parts) is tuple and all(type(x) is int for x in parts)


@given(st.one_of(scheduled(), made_up()), fee_rates)
@settings(max_examples=150, deadline=None)
def test_split_is_the_reference_exactly(funded, fee_rate):
    plan, investors = funded
    reference = _split_reference(plan, investors, management_fee_rate=fee_rate)
    assert_same(split(plan, investors, management_fee_rate=fee_rate), reference)


@given(st.lists(st.one_of(scheduled(), made_up()), min_size=1, max_size=6), fee_rates)
@settings(max_examples=40, deadline=None)
def test_split_many_is_the_reference_of_each(batch, fee_rate):
    plans = [plan for plan, _ in batch]
    holdings = [investors for _, investors in batch]
    many = split_many(plans, holdings, management_fee_rate=fee_rate)
    assert len(many) == len(batch)
    for got, (plan, investors) in zip(many, batch):
        assert_same(got, _split_reference(plan, investors, management_fee_rate=fee_rate))


def test_split_many_batches_plans_of_the_same_shape(monkeypatch):
    monkeypatch.setattr(splits, "_BATCH_CHUNK", 7)           # several chunks, the last one short
    plans = [schedule(from_minor(100_000 + 7919 * k), "0.08", 12, start=JAN31) for k in range(40)]
    holdings = [[("a", from_minor(30_000)), ("b", from_minor(70_000 + 7919 * k - 1)), ("c", D("0.01"))]
                for k in range(40)]
    assert split_many(plans, holdings, management_fee_rate="0.1") == [
        _split_reference(p, h, management_fee_rate="0.1") for p, h in zip(plans, holdings)]
    with pytest.raises(ScheduleError, match="2 plans but 1 lists"):
        split_many(plans[:2], holdings[:1])


# --- int64: the fast path only where every intermediate fits, the reference beyond ---------------

def _spy(monkeypatch):
    """Collect the plans the numpy path computes."""
    seen = []
    real = splits._fitting

    def counting(plans, funded, rate):
        fitting = real(plans, funded, rate)
        if fitting is not None:
            seen.extend(plans[j] for j in fitting[0])
        return fitting

    monkeypatch.setattr(splits, "_fitting", counting)
    return seen


def _fits(plan, weights, rate) -> bool:
    """Whether int64 is safe for splitting ``plan`` among ``weights`` (minor units)."""
    return _FITTING([plan], np.array([weights], dtype=object), rate) is not None


_FITTING = splits._fitting   # the real one, whatever a test's spy replaces


@pytest.mark.parametrize("rounding", [HALF_UP, HALF_EVEN, DOWN])
def test_huge_amounts_take_the_exact_python_path(monkeypatch, rounding):
    seen = _spy(monkeypatch)
    plan = schedule(from_minor(10**12), "0.24", 360, start=JAN31, rounding=rounding)
    investors = [("a", from_minor(10**12 - 333_333_333_333 - 1)), ("b", from_minor(333_333_333_333)),
                 ("c", D("0.01"))]
    weights = [10**12 - 333_333_333_333 - 1, 333_333_333_333, 1]
    assert not _fits(plan, weights, D("0.1"))          # 10**12 x 3 x 10**12 > 2**63
    assert_same(split(plan, investors, management_fee_rate="0.1"),
                _split_reference(plan, investors, management_fee_rate="0.1"))
    assert split_many([plan], [investors], management_fee_rate="0.1") == [
        _split_reference(plan, investors, management_fee_rate="0.1")]
    assert seen == []


def test_a_fee_rate_of_many_digits_takes_the_exact_python_path(monkeypatch):
    seen = _spy(monkeypatch)
    plan = schedule("100000", "0.06", 12, start=JAN31)
    rate = D("0.1234567890123456789")                     # numerator and denominator near 2**63
    investors = {"a": "60000", "b": "40000"}
    assert_same(split(plan, investors, management_fee_rate=rate),
                _split_reference(plan, investors, management_fee_rate=rate))
    assert seen == []


def _two_investor_plan(principal: int):
    third = principal // 3
    plan = Plan(principal, D("0.1"), 3, EQUAL_PRINCIPAL, JAN31, "month", "monthly", HALF_EVEN, "CNY",
                None, (third, third, principal - 2 * third), (0, 1, 2), (0, 0, 0))
    weights = [third + 1, principal - third - 1]          # coprime with the principal's odd parts
    return plan, weights, [("a", from_minor(weights[0])), ("b", from_minor(weights[1]))]


def test_just_inside_int64_the_fast_path_is_exact(monkeypatch):
    seen = _spy(monkeypatch)
    # total x n x (the plan's total + 1) with total = the principal and n = 2: just below 2**63
    edge = isqrt((2**63 - 1) // 2) - 1
    plan, weights, investors = _two_investor_plan(edge)
    assert sum(weights) * 2 * (edge + 1) <= 2**63 - 1 and gcd(*weights) == 1
    assert _fits(plan, weights, D("0.5"))
    assert_same(split(plan, investors, management_fee_rate="0.5"),
                _split_reference(plan, investors, management_fee_rate="0.5"))
    assert seen == [plan]
    # a fen more and it no longer fits: the reference path
    plan, weights, investors = _two_investor_plan(edge + 2)
    assert gcd(*weights) == 1 and not _fits(plan, weights, D("0.5"))
    assert_same(split(plan, investors, management_fee_rate="0.5"),
                _split_reference(plan, investors, management_fee_rate="0.5"))
    assert len(seen) == 1


def test_a_falling_running_share_is_repaired_by_the_reference():
    # 6:6:2 of 10 is 4,4,2 but of 11 is 5,5,1: nobody gives back a fen
    plan = Plan(14, D("0.1"), 3, EQUAL_PRINCIPAL, JAN31, "month", "monthly", HALF_UP, "CNY", None,
                (10, 1, 3), (10, 1, 3), (0, 0, 0))
    investors = [("a", D("0.06")), ("b", D("0.06")), ("c", D("0.02"))]
    result = split(plan, investors, management_fee_rate="0.5")
    assert_same(result, _split_reference(plan, investors, management_fee_rate="0.5"))
    assert all(min(inv.principal_parts + inv.interest_parts) >= 0 for inv in result.investors)
    assert [sum(inv.principal_parts) for inv in result.investors] == [6, 6, 2]


# --- investors' amounts read in bulk: from their text, or from their ratios ----------------------

_SPECIAL = [D("NaN"), D("-Infinity"), D("Infinity"), D("sNaN"), D("-0.00"), D(0), D("-1.00")]


def _amount(drawn, places: int) -> D:
    """A drawn ``(coefficient, shift)`` as coefficient x 10**(shift - places), or a special value."""
    if isinstance(drawn, D):
        return drawn
    coefficient, shift = drawn
    return D(coefficient).scaleb(shift - places)


@given(st.sampled_from([0, 2, 3]),
       st.lists(st.one_of(st.tuples(st.integers(1, 10**16), st.integers(-2, 2)),
                          st.sampled_from(_SPECIAL)), min_size=1, max_size=30))
@example(0, [D(0)])
@example(2, [(5, 0), D("0.00")])
@example(2, [(10**15, 0)])
@example(2, [(2**53, 0)])
@example(2, [(5, 0), (10**19 + 7, 0)])
@settings(max_examples=150, deadline=None)
def test_minor_units_reads_amounts_exactly_or_not_at_all(places, drawn):
    """Amounts written with the currency's decimals are read from their text, others (fewer or
    more decimals, exponents) from their integer ratios: exactly, or None for the checks one by
    one (anything not positive, finer than the minor unit, or too large)."""
    amounts = tuple(_amount(x, places) for x in drawn)
    got = splits._minor_units(amounts, places)
    if not all(a.is_finite() and a > 0 for a in amounts):
        assert got is None
        return
    scaled = [a.scaleb(places) for a in amounts]
    if not all(x == x.to_integral_value() for x in scaled):
        assert got is None
        return
    expected = [int(x) for x in scaled]
    if max(expected) < 10**13:
        assert got is not None
    if got is not None:
        assert got.dtype == np.int64 and got.tolist() == expected and max(expected) < 2**53


@pytest.mark.parametrize("currency", ["JPY", "CNY", "KWD"])
def test_split_many_reads_amounts_of_any_form_as_split_does(monkeypatch, currency):
    monkeypatch.setattr(splits, "_BATCH_CHUNK", 3)         # one form of amount per chunk
    places = {"JPY": 0, "CNY": 2, "KWD": 3}[currency]
    forms = [
        lambda minor: from_minor(minor, currency),                     # the currency's decimals
        lambda minor: D(minor).scaleb(-places).quantize(D(1).scaleb(-places - 1)),   # one more
        lambda minor: D(minor).scaleb(-places).normalize(),             # fewer, or an exponent
    ]
    plans, holdings = [], []
    for k in range(9):
        parts = [123_456_789 + 7919 * k, 234_567_000 - 1000 * k, 10 * k + 1]
        plans.append(schedule(from_minor(sum(parts), currency), "0.08", 6, start=JAN31,
                              currency=currency))
        holdings.append([(f"inv{i}", forms[k // 3](minor)) for i, minor in enumerate(parts)])
    many = split_many(plans, holdings, management_fee_rate="0.1")
    for plan, investors, got in zip(plans, holdings, many):
        assert_same(got, _split_reference(plan, investors, management_fee_rate="0.1"))


# --- the same refusals, word for word ---------------------------------------------------------------

@pytest.mark.parametrize("investors, rate", [
    ({"a": "500", "b": "499"}, "0"),
    ([("a", "500"), ("a", "500")], "0"),
    ([("a", "500"), ("b",)], "0"),
    ([("a", "500"), ("b", "500", "x")], "0"),
    ([("a", "1000.001")], "0"),
    ([("a", "1001"), ("b", "-1")], "0"),
    ([("a", D("1000")), ("b", D("0"))], "0"),
    ([("a", D("NaN"))], "0"),
    ([("a", 1000.0)], "0"),
    ([], "0"),
    ({"a": "1000"}, "1.5"),
    ({"a": "1000"}, 0.1),
    ({"a": "1000"}, D("NaN")),
    ({"a": "1000"}, "-0.1"),
])
def test_refusals_are_the_reference_ones(investors, rate):
    plan = schedule("1000", "0.06", 3, start=JAN31)
    with pytest.raises(Exception) as expected:
        _split_reference(plan, investors, management_fee_rate=rate)
    with pytest.raises(type(expected.value)) as got:
        split(plan, investors, management_fee_rate=rate)
    assert str(got.value) == str(expected.value)
    # split_many checks a chunk column-wise first: the same refusal, word for word, even among
    # good plans of the same shape
    good = [("a", D("400")), ("b", D("600"))]
    with pytest.raises(type(expected.value)) as got:
        split_many([plan] * 5, [good, good, investors, good, good], management_fee_rate=rate)
    assert str(got.value) == str(expected.value)


def test_split_many_raises_for_the_first_bad_plan_in_order():
    short = schedule("1000", "0.06", 3, start=JAN31)
    long = schedule("1000", "0.06", 12, start=JAN31)
    good = [("a", D("400")), ("b", D("600"))]
    unfunded = [("a", D("400")), ("b", D("599"))]
    repeated = [("a", D("400")), ("a", D("600"))]
    # the 12-month group (which holds the later bad plan) is computed first
    plans, holdings = [long, long, short, long], [good, repeated, unfunded, good]
    with pytest.raises(ScheduleError) as first:
        split(long, repeated)
    with pytest.raises(ScheduleError) as got:
        split_many(plans, holdings)
    assert str(got.value) == str(first.value) == "investor 'a' is listed twice"
    with pytest.raises(ScheduleError, match="investors funded 999.00 but the plan's principal is"):
        split_many(plans[2:], holdings[2:])


def test_split_many_mixes_every_kind_of_input():
    """Lists of Decimal pairs are checked column-wise; mappings, iterators, strings, other
    shapes and huge amounts one by one; all come out as the reference's."""
    plans = [schedule(from_minor(100_000 + 7919 * k), "0.08", 12, start=JAN31) for k in range(12)]

    def holdings(k):
        rest = from_minor(100_000 + 7919 * k - 30_000)
        kinds = [
            [("a", from_minor(30_000)), ("b", rest)],
            {"a": from_minor(30_000), "b": rest},
            iter([("a", "300.00"), ("b", str(rest))]),
            [["a", from_minor(30_000)], ["b", rest]],               # lists, not tuples
            (("a", D("3E+2")), ("b", rest)),
            [("a", from_minor(20_000)), ("b", from_minor(10_000)), ("c", rest)],
        ]
        return kinds[k % len(kinds)]

    many = split_many(plans, [holdings(k) for k in range(12)], management_fee_rate="0.1")
    for k, got in enumerate(many):
        assert_same(got, _split_reference(plans[k], holdings(k), management_fee_rate="0.1"))


class _Holding(NamedTuple):
    investor: str
    amount: D


class _Backwards(tuple):
    """A pair that unpacks (iterates) backwards: taken apart as unpacking takes it, it is refused."""

    def __iter__(self):
        return iter(tuple(reversed(self)))


@pytest.mark.parametrize("pair", [_Holding, lambda *fields: list(fields), lambda *fields: _Backwards(fields)])
def test_split_many_takes_pairs_apart_as_unpacking_does(pair):
    plans = [schedule(from_minor(100_000 + 7919 * k), "0.08", 12, start=JAN31) for k in range(4)]
    holdings = [[pair("a", from_minor(30_000)), pair("b", from_minor(70_000 + 7919 * k))]
                for k in range(4)]
    try:
        expected = [_split_reference(p, h, management_fee_rate="0.1") for p, h in zip(plans, holdings)]
    except Exception as error:   # whatever the reference raises, split_many raises too
        with pytest.raises(type(error), match=re.escape(str(error))):
            split_many(plans, holdings, management_fee_rate="0.1")
    else:
        assert split_many(plans, holdings, management_fee_rate="0.1") == expected


def test_a_huge_plan_among_ordinary_ones_takes_the_reference_path_alone(monkeypatch):
    seen = _spy(monkeypatch)
    huge = 2**70
    plans = [Plan(p, D("0.1"), 2, EQUAL_PRINCIPAL, JAN31, "month", "monthly", HALF_UP, "CNY", None,
                  (p // 2, p - p // 2), (7, 5), (0, 0)) for p in (1000, huge, 3000)]
    holdings = [[("a", from_minor(p // 4)), ("b", from_minor(p - p // 4))]
                for p in (1000, huge, 3000)]
    many = split_many(plans, holdings, management_fee_rate="0.5")
    for plan, investors, got in zip(plans, holdings, many):
        assert_same(got, _split_reference(plan, investors, management_fee_rate="0.5"))
    assert seen == [plans[0], plans[2]]


def test_a_split_is_an_immutable_value_however_it_was_computed():
    import pickle

    plan = schedule("100000", "0.06", 12, start=JAN31)
    investors = [("alice", D("60000")), ("bob", D("40000"))]
    bulk, = split_many([plan], [investors], management_fee_rate="0.1")
    one = split(plan, investors, management_fee_rate="0.1")
    reference = _split_reference(plan, investors, management_fee_rate="0.1")
    assert bulk == one == reference and hash(bulk) == hash(one) == hash(reference)
    assert bulk.investors is bulk.investors                          # built once, then kept
    assert bulk.plan is plan and bulk.management_fee_rate == D("0.1")
    assert bulk.investor("bob").funded == D("40000.00")
    assert repr(bulk) == repr(reference) and repr(bulk).startswith("Split(plan=Plan(")
    assert pickle.loads(pickle.dumps(bulk)) == reference
    with pytest.raises(AttributeError):
        bulk.plan = schedule("1", "0.06", 12, start=JAN31)
    other = split(plan, investors, management_fee_rate="0.2")
    assert other != one and other != reference
    assert split(plan, [("bob", D("40000")), ("alice", D("60000"))], management_fee_rate="0.1") != one


@pytest.mark.parametrize("make", [
    lambda: {"a": "600", "b": 400},
    lambda: iter([("a", "600"), ("b", D("400"))]),
    lambda: ((name, amount) for name, amount in [("a", D("600.00")), ("b", D("400"))]),
    lambda: (("a", D("6E+2")), ("b", D("400.000"))),
])
def test_inputs_other_than_lists_of_decimal_pairs_split_as_before(make):
    plan = schedule("1000", "0.06", 3, start=JAN31)
    assert_same(split(plan, make(), management_fee_rate="10%"),
                _split_reference(plan, make(), management_fee_rate="10%"))
