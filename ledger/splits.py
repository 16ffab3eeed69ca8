"""Investor receivable plans: a borrower's plan divided among the investors who funded it.

This module owns :func:`split` (and :func:`split_many`, the same for many
plans at once) and the values it returns: :class:`Split`,
:class:`InvestorPlan`, :class:`InvestorRow`. ``ledger.schedules``
re-exports them.

The rule (see :func:`split`) is stated once, in pure Python, by
:func:`_split_reference` and its helpers :func:`_running_shares`,
:func:`_no_giving_back` and :func:`_running_fees`. :func:`split` computes
the same result with numpy over an (investors x rows) matrix of int64
whenever every intermediate value is known to fit in 63 bits; otherwise
(huge amounts, negative rows, the rare row where the "no giving back"
repair applies, a rounding it does not know) it takes the reference path.
A hypothesis test holds the two paths equal.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import accumulate, repeat
from math import gcd
from operator import add, floordiv, mod, mul, sub
from typing import TYPE_CHECKING, Iterable, Mapping, NamedTuple

import numpy as np

from .money import DEFAULT_CURRENCY, amount_property, exact_minor, exponent, from_minor
from .rates import DOWN, HALF_EVEN, HALF_UP, ScheduleError, parse_rate, rdiv

if TYPE_CHECKING:
    from .schedules import Plan

__all__ = ["Split", "InvestorPlan", "InvestorRow", "split", "split_many"]

_new = tuple.__new__  # builds a NamedTuple from a tuple without re-checking the arguments

# Every int64 intermediate of the fast path stays below this bound (checked before each use).
_INT64_LIMIT = 2**63 - 1


def _money(minor: int, currency: str) -> Decimal:
    return from_minor(minor, currency)


# --- values ---------------------------------------------------------------------------------------

class InvestorRow(NamedTuple):
    """One installment of an investor's receivable plan. Amounts in minor units.

    Attributes:
        seq: installment number (the borrower's).
        due_date: when the borrower's installment is due.
        principal_minor, interest_minor: the investor's share of the borrower's row.
        management_fee_minor: the platform's fee on that interest.
        net_minor: principal + interest - management fee: what the investor receives.
        currency: ISO code of the amounts.

    ``principal``, ``interest``, ``management_fee`` and ``net`` are the
    amounts as Decimals.
    """

    seq: int
    due_date: dt.date
    principal_minor: int
    interest_minor: int
    management_fee_minor: int
    net_minor: int
    currency: str = DEFAULT_CURRENCY

    principal = amount_property("principal_minor")
    interest = amount_property("interest_minor")
    management_fee = amount_property("management_fee_minor")
    net = amount_property("net_minor")


class InvestorPlan(NamedTuple):
    """What one investor receives from a loan, row by row.

    Attributes:
        investor: the investor's id.
        funded_minor: principal the investor lent (minor units).
        principal_parts, interest_parts, management_fee_parts: per row, minor units.
        due_dates: the borrower's due dates.
        offset: installments before the first row (the borrower plan's).
        currency: ISO code of the amounts.
    """

    investor: str
    funded_minor: int
    principal_parts: tuple[int, ...]
    interest_parts: tuple[int, ...]
    management_fee_parts: tuple[int, ...]
    due_dates: tuple[dt.date, ...]
    offset: int
    currency: str

    @property
    def funded(self) -> Decimal:
        return _money(self.funded_minor, self.currency)

    @property
    def rows(self) -> tuple[InvestorRow, ...]:
        cur = self.currency
        return tuple(InvestorRow(self.offset + k + 1, d, p, i, f, p + i - f, cur)
                     for k, (d, p, i, f) in enumerate(zip(self.due_dates, self.principal_parts,
                                                          self.interest_parts,
                                                          self.management_fee_parts)))

    @property
    def total_principal(self) -> Decimal:
        return _money(sum(self.principal_parts), self.currency)

    @property
    def total_interest(self) -> Decimal:
        return _money(sum(self.interest_parts), self.currency)

    @property
    def total_management_fee(self) -> Decimal:
        return _money(sum(self.management_fee_parts), self.currency)

    @property
    def total_net(self) -> Decimal:
        return _money(sum(self.principal_parts) + sum(self.interest_parts)
                      - sum(self.management_fee_parts), self.currency)


class Split(NamedTuple):
    """A borrower's plan divided among its investors (see :func:`split`).

    Attributes:
        plan: the borrower's plan that was split.
        investors: one :class:`InvestorPlan` per investor, in the order given.
        management_fee_rate: the platform's fee as a fraction of investors' interest.
    """

    plan: Plan
    investors: tuple[InvestorPlan, ...]
    management_fee_rate: Decimal

    def investor(self, investor_id: str) -> InvestorPlan:
        """The plan of one investor."""
        for inv in self.investors:
            if inv.investor == investor_id:
                return inv
        raise ScheduleError(f"no investor {investor_id!r} in this split", investor=investor_id)


# --- inputs ---------------------------------------------------------------------------------------

_minor = exact_minor   # to_minor with a fast path for Decimals


def _holdings(investors, currency: str) -> list[tuple[str, int]]:
    """``(investor, funded minor units)`` pairs, each checked (the reference, and every error)."""
    items = investors.items() if isinstance(investors, Mapping) else investors
    out, seen = [], set()
    for item in items:
        try:
            investor, amount = item
        except (TypeError, ValueError):
            raise ScheduleError(f"investors: {item!r} is not an (investor, amount) pair",
                                value=item) from None
        if investor in seen:
            raise ScheduleError(f"investor {investor!r} is listed twice", investor=investor)
        seen.add(investor)
        minor = _minor(amount, currency, f"investor {investor!r}")
        if minor <= 0:
            raise ScheduleError(f"investor {investor!r} funded {amount}: must be positive",
                                investor=investor)
        out.append((investor, minor))
    if not out:
        raise ScheduleError("a split needs at least one investor")
    return out


def _fast_holdings(investors, currency: str) -> tuple[list, list[int]]:
    """``(ids, funded minor units)``: :func:`_holdings` in bulk for the usual input.

    Distinct ids with positive Decimal amounts exact to the minor unit; any
    other input goes through :func:`_holdings`, which accepts it the same
    way or names what is wrong with it.
    """
    if isinstance(investors, Mapping):
        ids, amounts = list(investors), list(investors.values())
    else:
        if type(investors) not in (list, tuple):
            investors = list(investors)
        try:
            ids = [investor for investor, _ in investors]
            amounts = [amount for _, amount in investors]
            distinct = len(set(ids)) == len(ids)
        except (TypeError, ValueError):
            distinct = False
        if not distinct:
            ids = None
    if ids:
        scale = 10 ** exponent(currency)
        try:   # raises TypeError for anything but a Decimal, ValueError for NaN, OverflowError for inf
            nums, dens = zip(*map(Decimal.as_integer_ratio, amounts))
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            if not any(scale % den for den in set(dens)):
                minors = list(map(floordiv, map(mul, nums, repeat(scale)), dens))
                if min(minors) > 0:
                    return ids, minors
    holdings = _holdings(investors, currency)
    return [inv for inv, _ in holdings], [minor for _, minor in holdings]


def _fee_rate(management_fee_rate) -> Decimal:
    if (type(management_fee_rate) is Decimal and management_fee_rate.is_finite()
            and 0 <= management_fee_rate <= 1):
        return management_fee_rate  # what parse_rate returns for it, without the detour
    rate = parse_rate(management_fee_rate, what="management_fee_rate", maximum=None)
    if rate > 1:
        raise ScheduleError("management_fee_rate cannot exceed 1 (all of the interest)", rate=rate)
    return rate


def _check_funded(plan: Plan, weights: list[int]) -> None:
    funded = sum(weights)
    if funded != plan.principal_minor:
        raise ScheduleError(
            f"investors funded {from_minor(funded, plan.currency)} but the plan's principal is "
            f"{plan.principal}", funded=from_minor(funded, plan.currency),
            principal=plan.principal)


# --- split ----------------------------------------------------------------------------------------

def split(plan: Plan, investors, *, management_fee_rate="0") -> Split:
    """Divide the borrower's own rows among the investors who funded them.

    ``investors`` maps investor id to the principal it funded (Decimal or
    str), as a mapping or as ``(id, amount)`` pairs; the amounts must add up
    to the plan's principal.

    Each component (principal, interest) is divided by largest remainder on
    running totals: an investor's share of the first k rows is its
    largest-remainder share of the borrower's total over those rows, and a
    row's share is the difference. So every row's parts add up exactly to
    the borrower's row, every investor gets back exactly what it funded, and
    nobody is ever more than a fen ahead of its exact share: the tie-break
    (earlier investor first) never favours the same investor row after row.
    In the rare row where a running share would fall (the Alabama paradox,
    possible only when a row's amount is smaller than the number of
    investors), nobody gives back a fen: the investors furthest ahead of
    their exact share get a fen less instead.

    The platform's management fee is ``management_fee_rate`` of each
    investor's interest, rounded per investor on its running total of
    interest (so the fees of all rows add up to its total interest times
    the rate, rounded once), with the plan's rounding.

    The result is exactly :func:`_split_reference`'s; numpy computes it when
    every intermediate fits in int64.
    """
    ids, weights = _fast_holdings(investors, plan.currency)
    _check_funded(plan, weights)
    rate = _fee_rate(management_fee_rate)
    fit = _fits(plan, weights, rate)
    if fit is None:
        return _reference_result(plan, ids, weights, rate)
    rows, falls = _fast_parts([(plan, fit)], rate)
    return _finish(plan, ids, weights, rate, None if falls[0] else rows[0].tolist())


def split_many(plans: Iterable[Plan], holdings_list: Iterable, *,
               management_fee_rate="0") -> list[Split]:
    """:func:`split` of each plan among its investors, computed together.

    ``holdings_list`` gives each plan's investors as :func:`split` takes
    them. The result is exactly ``[split(plan, investors,
    management_fee_rate=management_fee_rate) for ...]``, every Split fully
    computed; plans with the same number of rows and of investors (and the
    same rounding) go through numpy together, in chunks of
    ``_BATCH_CHUNK``: what a platform regenerating every receivable plan at
    night wants.
    """
    plans = list(plans)
    holdings_list = list(holdings_list)
    if len(plans) != len(holdings_list):
        raise ScheduleError(f"{len(plans)} plans but {len(holdings_list)} lists of investors",
                            plans=len(plans), investor_lists=len(holdings_list))
    rate = _fee_rate(management_fee_rate)
    out: list = [None] * len(plans)
    groups: dict[tuple, list] = {}
    for k, (plan, investors) in enumerate(zip(plans, holdings_list)):
        ids, weights = _fast_holdings(investors, plan.currency)
        _check_funded(plan, weights)
        fit = _fits(plan, weights, rate)
        if fit is None:
            out[k] = _reference_result(plan, ids, weights, rate)
        else:
            key = (len(weights), len(plan.principal_parts), plan.rounding)
            groups.setdefault(key, []).append((k, plan, ids, weights, fit))
    for members in groups.values():
        for start in range(0, len(members), _BATCH_CHUNK):
            chunk = members[start:start + _BATCH_CHUNK]
            rows, falls = _fast_parts([(plan, fit) for _, plan, _, _, fit in chunk], rate)
            for (k, plan, ids, weights, _), amounts, fell in zip(chunk, rows, falls):
                # one plan at a time from numpy to Python ints: the lists tolist() makes are freed
                # (and their memory reused) at once, which matters more than one call per chunk
                out[k] = _finish(plan, ids, weights, rate, None if fell else amounts.tolist())
    return out


_BATCH_CHUNK = 64    # plans per numpy pass in split_many: each array stays within a cache


def _finish(plan: Plan, ids, weights: list[int], rate: Decimal, parts) -> Split:
    if parts is None:
        return _reference_result(plan, ids, weights, rate)
    principal, interest, fees = parts            # rows of per-investor amounts
    fields = zip(ids, weights, zip(*principal), zip(*interest), zip(*fees),
                 repeat(plan.due_dates), repeat(plan.offset), repeat(plan.currency))
    return _new(Split, (plan, tuple(map(_new, repeat(InvestorPlan), fields)), rate))


# --- the fast path: numpy over (plans x running totals x investors) --------------------------------
#
# For each plan, one matrix holds both components: its columns are the
# investors, its rows the running totals of the principal (0, then after
# each of the m rows), then those of the interest, then (filled last) the
# running management fees: 3 (m + 1) rows. Plans of the same shape are
# stacked along a first axis.

_FEE_ROUNDINGS = (HALF_UP, DOWN, HALF_EVEN)


def _fits(plan: Plan, weights: list[int], rate: Decimal):
    """``(reduced weights, their total, fee numerator, denominator)`` if int64 is safe, else None.

    Safe means: rows of zero or more, a known rounding, and every product
    below 2**63: a sort key ``running x weight x n + n - 1 - i`` is below
    ``total x n x (the plan's total + 1)``; a fee numerator
    ``2 c num + den`` with ``c`` an investor's running interest, at most
    the plan's total interest, is below ``2 (c + 1)(num + den)``.
    """
    pp, ip = plan.principal_parts, plan.interest_parts
    if not pp or min(pp) < 0 or min(ip) < 0 or plan.rounding not in _FEE_ROUNDINGS:
        return None
    g = gcd(*weights)
    if g != 1:
        weights = [w // g for w in weights]
    total = sum(weights)
    num, den = rate.as_integer_ratio()
    top_interest = sum(ip)
    if (total * len(weights) * (max(sum(pp), top_interest) + 1) > _INT64_LIMIT
            or (top_interest + 1) * 2 * (num + den) > _INT64_LIMIT):
        return None
    return weights, total, num, den


def _fast_parts(members, rate: Decimal):
    """``(rows, falls)``: per plan, each row's principal, interest and fee per investor.

    ``rows[j]`` is the j-th plan's ``(3, m, n)`` array of principal,
    interest and fee parts (row by row, investor by investor);
    ``falls[j]`` says where that cannot be used.

    ``members`` are ``(plan, fit)`` pairs of plans with the same number of
    rows, of investors, and the same rounding, each fit by :func:`_fits`.
    A plan falls where some running share falls: the no-giving-back
    repair is the reference path's.
    """
    first = members[0][0]
    m, rounding = len(first.principal_parts), first.rounding
    k = m + 1
    num, den = rate.as_integer_ratio()
    count = len(members)
    running = np.array([[0, *accumulate(plan.principal_parts), 0, *accumulate(plan.interest_parts)]
                        for plan, _ in members], dtype=np.int64)             # (plans, 2k)
    scaled = np.array([[*fit[0], fit[1]] for _, fit in members], dtype=np.int64)
    n = scaled.shape[1] - 1
    scaled *= n                                          # (plans, n + 1): weights x n, total x n
    totals = np.empty((count, 3 * k, n), dtype=np.int64)
    target = totals[:, :2 * k]
    # Largest remainder: each investor's floor of running x weight / total, then the ``left`` odd
    # units of each running total to the largest remainders, the earlier investor first on a tie.
    # Dividing (running x weight x n + n - 1 - i) by total x n gives the same floor and, as the
    # remainder, a key unique among the investors that orders them so: the odd units go to the
    # keys above the (left + 1)-th largest.
    products = running[:, :, None] * scaled[:, None, :n]
    products += np.arange(n - 1, -1, -1, dtype=np.int64)
    np.divmod(products, scaled[:, n, None, None], out=(target, products))
    left = running - target.sum(axis=2)
    ordered = np.sort(products, axis=2).reshape(-1)
    threshold = ordered[np.arange(n - 1, count * 2 * k * n, n) - left.reshape(-1)]
    target += products > threshold.reshape(count, 2 * k, 1)
    fees = totals[:, 2 * k:]
    if num:
        _running_fee_totals(totals[:, k:2 * k], num, den, rounding, fees)
    else:
        fees[...] = 0
    by_block = totals.reshape(count, 3, k, n)
    rows = by_block[:, :, 1:] - by_block[:, :, :-1]                          # (plans, 3, m, n)
    if count == 1:
        return rows, [rows.min() < 0]
    return rows, (rows.min(axis=(1, 2, 3)) < 0).tolist()


def _running_fee_totals(interest, num: int, den: int, rounding: str, out) -> None:
    """Running interest (zero or more) x num / den into ``out``, rounded as :func:`_running_fees` does."""
    if rounding == HALF_UP:
        np.multiply(interest, num + num, out=out)
        out += den
        out //= den + den
    elif rounding == DOWN:
        np.multiply(interest, num, out=out)
        out //= den
    else:  # HALF_EVEN
        q, r = np.divmod(interest * num, den)
        twice = r + r
        np.add(q, (twice > den) | ((twice == den) & (q & 1 == 1)), out=out)


# --- the reference: the rule in pure Python ---------------------------------------------------------

def _split_reference(plan: Plan, investors, *, management_fee_rate="0") -> Split:
    """:func:`split` computed by the reference algorithm alone (pure Python, any size)."""
    holdings = _holdings(investors, plan.currency)
    weights = [minor for _, minor in holdings]
    _check_funded(plan, weights)
    rate = parse_rate(management_fee_rate, what="management_fee_rate", maximum=None)
    if rate > 1:
        raise ScheduleError("management_fee_rate cannot exceed 1 (all of the interest)", rate=rate)
    return _reference_result(plan, [inv for inv, _ in holdings], weights, rate)


def _reference_result(plan: Plan, ids: list, weights: list[int], rate: Decimal) -> Split:
    principal = _running_shares(plan.principal_parts, weights)
    interest = _running_shares(plan.interest_parts, weights)
    fees = _running_fees(interest, rate, plan.rounding)
    dates, cur, offset = plan.due_dates, plan.currency, plan.offset
    return Split(plan, tuple(
        InvestorPlan(inv, funded, p, i, f, dates, offset, cur)
        for inv, funded, p, i, f in zip(ids, weights, principal, interest, fees)), rate)


def _running_shares(amounts: tuple[int, ...], weights: list[int]) -> list[tuple[int, ...]]:
    """Per investor, per row: largest remainder on running totals (see :func:`split`)."""
    g = 0
    for w in weights:
        g = gcd(g, w)
    weights = [w // g for w in weights]
    total = sum(weights)
    n = len(weights)
    if n == 1:
        return [tuple(amounts)]
    index = range(n)
    zeros = (0,) * n
    given = [0] * n          # each investor's running total so far
    running = 0
    columns = []
    for amount in amounts:
        if not amount:
            columns.append(zeros)
            continue
        running += amount
        products = list(map(mul, weights, repeat(running, n)))
        target = list(map(floordiv, products, repeat(total, n)))
        left = running - sum(target)
        if left:
            remainders = list(map(mod, products, repeat(total, n)))
            for i in sorted(index, key=remainders.__getitem__, reverse=True)[:left]:
                target[i] += 1
        row = list(map(sub, target, given))
        if min(row) < 0:
            row = _no_giving_back(row, given, running, weights, total)
            target = list(map(add, given, row))
        given = target
        columns.append(row)
    return list(zip(*columns))


def _no_giving_back(row: list[int], given: list[int], running: int, weights: list[int],
                    total: int) -> list[int]:
    """Repair a row where someone's running share fell: nobody pays a fen back."""
    excess = -sum(r for r in row if r < 0)
    row = [max(r, 0) for r in row]
    while excess:
        # furthest ahead of the exact share first: (given + row) * total - running * weight
        ahead = sorted((i for i, r in enumerate(row) if r > 0),
                       key=lambda i: (given[i] + row[i]) * total - running * weights[i], reverse=True)
        for i in ahead[:excess]:
            row[i] -= 1
            excess -= 1
    return row


def _running_fees(interest: list[tuple[int, ...]], rate: Decimal, rounding: str) -> list[tuple[int, ...]]:
    """Each investor's fee per row: its running interest x rate, rounded, differenced."""
    if not rate:
        return [(0,) * len(parts) for parts in interest]
    num, den = rate.as_integer_ratio()
    out = []
    for parts in interest:
        if rounding == HALF_UP:
            num2, den2 = num + num, den + den
            fees = [(c * num2 + den) // den2 for c in accumulate(parts)]
        elif rounding == DOWN:
            fees = [c * num // den for c in accumulate(parts)]
        else:
            fees = [rdiv(c * num, den, rounding) for c in accumulate(parts)]
        fees.insert(0, 0)
        out.append(tuple(map(sub, fees[1:], fees)))
    return out
