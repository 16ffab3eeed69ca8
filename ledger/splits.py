"""Investor receivable plans: a borrower's plan divided among the investors who funded it.

This module owns :func:`split` (and :func:`split_many`, the same for many
plans at once) and the values it returns: :class:`Split`,
:class:`InvestorPlan`, :class:`InvestorRow`. ``ledger.schedules``
re-exports them.

The rule (see :func:`split`) is stated once, in pure Python, by
:func:`_split_reference` and its helpers :func:`_running_shares`,
:func:`_no_giving_back` and :func:`_running_fees`. :func:`split` computes
the same result with numpy over a (plans x running totals x investors)
block of int64 whenever every intermediate value is known to fit in 63
bits; otherwise (huge amounts, negative rows, the rare row where the "no
giving back" repair applies, a rounding it does not know) it takes the
reference path. :func:`split_many` also checks the investors of many plans
column-wise. Hypothesis tests hold the paths equal. A :class:`Split` keeps
the block and builds its Python values when they are first read.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from itertools import accumulate, chain, repeat, starmap
from math import gcd
from operator import add, attrgetter, floordiv, itemgetter, mod, mul, sub
from typing import TYPE_CHECKING, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from .money import DEFAULT_CURRENCY, amount_property, exact_minor, exponent, from_minor
from .rates import DOWN, HALF_EVEN, HALF_UP, ScheduleError, parse_rate, rdiv

if TYPE_CHECKING:
    from .schedules import Plan

__all__ = ["Split", "InvestorPlan", "InvestorRow", "split", "split_many", "running_shares"]

_new = tuple.__new__  # builds a NamedTuple from a tuple without re-checking the arguments
_alloc = object.__new__

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


class Split:
    """A borrower's plan divided among its investors (see :func:`split`).

    Attributes:
        plan: the borrower's plan that was split.
        investors: one :class:`InvestorPlan` per investor, in the order given.
        management_fee_rate: the platform's fee as a fraction of investors' interest.

    An immutable value (read-only attributes, as :class:`fractions.Fraction`
    keeps its own). A split computed by the numpy path keeps its amounts in
    an integer block (principal, interest, fee x rows x investors x plans)
    shared with the plans computed with it, and builds its
    :class:`InvestorPlan` values the first time ``investors`` is read, as
    :class:`~ledger.schedules.Plan` keeps integer parts and builds its rows
    on access: every amount is computed and fixed when the split is made;
    only the Python objects showing them come later. Equal splits compare
    equal however they were computed.
    """

    __slots__ = ("_plan", "_rate", "_ids", "_funded", "_parts", "_at", "_investors")

    def __init__(self, plan: Plan, investors: Iterable[InvestorPlan], management_fee_rate: Decimal):
        self._plan = plan
        self._rate = management_fee_rate
        self._investors = tuple(investors)
        self._ids = self._funded = self._parts = self._at = None

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def management_fee_rate(self) -> Decimal:
        return self._rate

    @property
    def investors(self) -> tuple[InvestorPlan, ...]:
        if self._investors is None:
            plan = self._plan
            principal, interest, fees = self._parts[..., self._at].tolist()
            fields = zip(self._ids, self._funded[self._at].tolist(), zip(*principal),
                         zip(*interest), zip(*fees), repeat(plan.due_dates), repeat(plan.offset),
                         repeat(plan.currency))
            self._investors = tuple(map(_new, repeat(InvestorPlan), fields))
        return self._investors

    def investor(self, investor_id: str) -> InvestorPlan:
        """The plan of one investor."""
        for inv in self.investors:
            if inv.investor == investor_id:
                return inv
        raise ScheduleError(f"no investor {investor_id!r} in this split", investor=investor_id)

    def __eq__(self, other):
        if not isinstance(other, Split):
            return NotImplemented
        if self._plan != other._plan or self._rate != other._rate:
            return False
        if self._parts is not None and other._parts is not None:
            return (self._ids == other._ids
                    and np.array_equal(self._funded[self._at], other._funded[other._at])
                    and np.array_equal(self._parts[..., self._at], other._parts[..., other._at]))
        return self.investors == other.investors

    def __hash__(self) -> int:
        return hash((self._plan, self.investors, self._rate))

    def __repr__(self) -> str:
        return (f"Split(plan={self._plan!r}, investors={self.investors!r}, "
                f"management_fee_rate={self._rate!r})")

    def __reduce__(self):
        return (Split, (self._plan, self.investors, self._rate))


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
    return _split_block([plan], [ids], np.array([weights], dtype=object), rate)[0]


def split_many(plans: Iterable[Plan], holdings_list: Iterable, *,
               management_fee_rate="0") -> list[Split]:
    """:func:`split` of each plan among its investors, computed together.

    ``holdings_list`` gives each plan's investors as :func:`split` takes
    them. The result equals ``[split(plan, investors,
    management_fee_rate=management_fee_rate) for ...]``, and a bad plan or
    list of investors raises the error :func:`split` would, for the first
    one in order. Plans with the same number of rows and of investors (and
    the same rounding and currency) are checked and computed together with
    numpy, in chunks of ``_BATCH_CHUNK``: what a platform regenerating
    every receivable plan at night wants.
    """
    plans = list(plans)
    holdings_list = list(map(_as_pairs, holdings_list))
    if len(plans) != len(holdings_list):
        raise ScheduleError(f"{len(plans)} plans but {len(holdings_list)} lists of investors",
                            plans=len(plans), investor_lists=len(holdings_list))
    rate = _fee_rate(management_fee_rate)
    out: list = [None] * len(plans)
    sizes = [len(investors) if type(investors) in (list, tuple) else -1
             for investors in holdings_list]
    shapes = list(zip(map(len, map(_principal_parts, plans)), map(_rounding, plans),
                      map(_currency, plans), sizes))
    groups: dict[tuple, list[int]] = {}
    if len(set(shapes)) == 1:           # the usual batch: plans of one shape
        groups[shapes[0]] = list(range(len(plans)))
    else:
        for k, shape in enumerate(shapes):
            groups.setdefault(shape, []).append(k)
    one_by_one: list[int] = []
    for (_, _, currency, size), members in groups.items():
        for chunk in _chunks(members):
            chunk_plans = list(map(plans.__getitem__, chunk))
            bulk = _bulk_holdings(list(map(holdings_list.__getitem__, chunk)),
                                  list(map(_principal_minor, chunk_plans)), size, currency)
            if bulk is None:
                one_by_one += chunk
                continue
            ids, funded = bulk
            for k, result in zip(chunk, _split_block(chunk_plans, ids, funded, rate)):
                out[k] = result
    # The rest checked one by one, in order (the first bad one raises split()'s error), then
    # computed together all the same.
    checked: dict[tuple, list] = {}
    for k in sorted(one_by_one):
        plan = plans[k]
        ids, weights = _fast_holdings(holdings_list[k], plan.currency)
        _check_funded(plan, weights)
        checked.setdefault((len(plan.principal_parts), plan.rounding, len(weights)),
                           []).append((k, ids, weights))
    for members in checked.values():
        for chunk in _chunks(members):
            funded = np.array([weights for _, _, weights in chunk], dtype=object)
            results = _split_block([plans[k] for k, _, _ in chunk], [ids for _, ids, _ in chunk],
                                   funded, rate)
            for (k, _, _), result in zip(chunk, results):
                out[k] = result
    return out


_BATCH_CHUNK = 256   # plans per numpy pass in split_many


def _chunks(members: list):
    """``members`` in consecutive slices of ``_BATCH_CHUNK``."""
    return (members[start:start + _BATCH_CHUNK] for start in range(0, len(members), _BATCH_CHUNK))


def _as_pairs(investors):
    """A list or tuple stays as it is; a mapping becomes its items; another iterable a list."""
    if type(investors) in (list, tuple):
        return investors
    if isinstance(investors, Mapping):
        return list(investors.items())
    try:
        return list(investors)
    except TypeError:
        return investors   # _holdings names the problem


_SAFE_MINOR = 2**53   # funded amounts below this: a plan's investors add up within int64


def _bulk_holdings(holdings: list, principals: list[int], size: int, currency: str):
    """:func:`_fast_holdings` and :func:`_check_funded` over a chunk of plans, column-wise.

    For lists of ``size`` ``(id, Decimal)`` pairs with distinct ids and
    positive amounts exact to the minor unit adding up to each plan's
    principal: ``(ids per plan, funded (plans x size) int64)``. ``None``
    for any other chunk, whose plans then go through the one-by-one checks
    (which accept them the same way, or name what is wrong).
    """
    if size < 1 or size * _SAFE_MINOR > _INT64_LIMIT:
        return None
    # Each plan's investors as a dict: pairs of two (taken apart by iterating them, as unpacking
    # does), hashable ids, each listed once.
    try:
        books = list(map(dict, holdings))
    except (TypeError, ValueError):
        return None
    if set(map(len, books)) != {size}:
        return None
    amounts = tuple(chain.from_iterable(map(dict.values, books)))
    if set(map(type, amounts)) != {Decimal}:
        return None
    minors = _minor_units(amounts, exponent(currency))
    if minors is None:
        return None
    funded = minors.reshape(-1, size)
    if funded.sum(axis=1).tolist() != principals:
        return None
    return list(map(list, books)), funded


_first, _second = itemgetter(0), itemgetter(1)
_COMMA, _POINT, _DIGIT_0 = b",.0"
_TEXT_DIGITS = 15   # digits read from an amount's text: below 10**15 < _SAFE_MINOR


def _minor_units(amounts: tuple, places: int):
    """Decimals as int64 minor units (``places`` decimals), or None unless all are positive,
    exact to the minor unit and below ``_SAFE_MINOR``.

    Amounts written with exactly ``places`` decimals, as :func:`~ledger.money.from_minor`
    and NUMERIC(p, places) columns give them, are read from their text all at once (digits,
    one point where it belongs, nothing else; ``str`` of a Decimal is ASCII, and a comma
    never occurs in it); any other amounts from their integer ratios.
    """
    count = len(amounts)
    text = ("%s," * count % amounts).encode()                 # each amount's str, then a comma
    chars = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(chars == _COMMA)
    point = 1 if places else 0                                # a point before the decimals
    lengths = np.diff(ends, prepend=-1) - 1
    if (len(ends) == count and lengths.min() > places + point
            and lengths.max() <= _TEXT_DIGITS + point
            and np.count_nonzero(chars - _DIGIT_0 < 10) == len(chars) - count * (1 + point)
            and (not places or (chars[ends - places - 1] == _POINT).all())):
        minors = np.fromstring(text.translate(None, b"."), dtype=np.int64, sep=",")
        return minors if minors.min() > 0 else None
    try:
        ratios = list(map(Decimal.as_integer_ratio, amounts))
        nums = np.fromiter(map(_first, ratios), dtype=np.int64, count=count)
        dens = np.fromiter(map(_second, ratios), dtype=np.int64, count=count)
    except (ValueError, OverflowError):   # NaN or infinity, huge
        return None
    scale = 10 ** places
    if (scale % dens).any() or nums.min() < 1 or nums.max() >= _SAFE_MINOR // scale:
        return None
    return nums * (scale // dens)


# --- the fast path: numpy over (plans x running totals x investors) --------------------------------
#
# For each plan, one matrix holds both components: its columns are the
# investors, its rows the running totals of the principal (0, then after
# each of the m rows), then those of the interest, then (filled last) the
# running management fees: 3 (m + 1) rows. Plans of the same shape are
# stacked along a first axis.

_FEE_ROUNDINGS = (HALF_UP, DOWN, HALF_EVEN)
_SAFE_PART = 2**53     # plan rows below this, at most _MAX_ROWS of them: their sums fit in int64
_MAX_ROWS = 1024


def _split_block(plans: list, ids: list, funded, rate: Decimal) -> list[Split]:
    """The splits of plans with the same number of rows and of investors and the same rounding.

    ``funded`` is (plans x investors): what each investor funded, checked
    (positive, adding up to the plan's principal); an int64 array, or an
    object array of Python ints of any size. Plans whose every intermediate
    fits in int64 (see :func:`_fitting`) are computed by :func:`_fast_parts`;
    the others, and those where a running share falls, by the reference.
    """
    rounding = plans[0].rounding
    fitting = _fitting(plans, funded, rate)
    out: list = [None] * len(plans)
    if fitting is not None:
        chosen, parts, weights, total = fitting
        rows, falls = _fast_parts(parts, weights, total, rate, rounding)
        kept = funded if len(chosen) == len(plans) else funded[chosen]
        if kept.dtype == object:
            kept = kept.astype(np.int64)   # they fit: _fitting checked them
        for at, (j, fell) in enumerate(zip(chosen, falls)):
            if not fell:    # a Split of the block's row ``at``, built without a call per attribute
                out[j] = result = _alloc(Split)
                result._plan, result._rate, result._ids = plans[j], rate, ids[j]
                result._funded, result._parts, result._at, result._investors = kept, rows, at, None
    for j, result in enumerate(out):
        if result is None:
            out[j] = _reference_result(plans[j], ids[j], [int(w) for w in funded[j]], rate)
    return out


def _fitting(plans: list, funded, rate: Decimal):
    """``(positions, parts, weights, total)`` of the plans where int64 is safe, or None.

    Safe means: rows of zero or more, a known rounding, amounts whose sums
    fit, and every product below 2**63: a sort key ``running x weight x n + n - 1 - i`` is below
    ``total x n x (the plan's total + 1)``, with the weights divided by
    their greatest common divisor and ``total`` their sum; a fee numerator
    ``2 c num + den`` with ``c`` an investor's running interest, at most the
    plan's total interest, is below ``2 (c + 1)(num + den)``. ``parts``
    (2 x plans x rows) are those plans' principal rows and interest rows,
    ``weights`` and ``total`` their reduced weights and sums.
    """
    first = plans[0]
    m, n = len(first.principal_parts), funded.shape[1]
    if not 1 <= m <= _MAX_ROWS or first.rounding not in _FEE_ROUNDINGS:
        return None
    huge: list[int] = []
    parts = _plan_rows(plans, m, huge)                     # (2, plans, m)
    weights = _int64_rows(funded, huge)
    ok = weights.max(axis=1) <= _INT64_LIMIT // n         # their sum fits, reduced or not
    g = np.gcd.reduce(weights, axis=1)
    weights //= g[:, None]
    total = weights.sum(axis=1)
    ok &= (parts.min(axis=(0, 2)) >= 0) & (parts.max(axis=(0, 2)) < _SAFE_PART)
    ok[huge] = False
    sums = parts.sum(axis=2)                                # (2, plans)
    sums[:, ~ok] = 0                                        # the bounds below apply where ok
    num, den = rate.as_integer_ratio()
    fee_cap = _INT64_LIMIT // (2 * (num + den))             # (interest total + 1) at most this
    ok &= sums[1] < fee_cap
    ok &= total <= _INT64_LIMIT // (sums.max(axis=0) + 1) // n
    chosen = np.flatnonzero(ok)
    if not len(chosen):
        return None
    if len(chosen) < len(plans):
        parts, weights, total = parts[:, chosen], weights[chosen], total[chosen]
    return chosen.tolist(), parts, weights, total


def _plan_rows(plans: list, m: int, huge: list[int]):
    """The plans' principal and interest rows, (2 x plans x m) int64, packed as machine integers
    (which checks each fits); a plan with a row that does not fit is ones, its position added to
    ``huge``."""
    pack = struct.Struct(f"{m}q").pack
    try:
        data = b"".join(chain(starmap(pack, map(_principal_parts, plans)),
                              starmap(pack, map(_interest_parts, plans))))
        return np.frombuffer(data, dtype=np.int64).reshape(2, len(plans), m)
    except struct.error:
        out = np.ones((2, len(plans), m), dtype=np.int64)
        for j, plan in enumerate(plans):
            try:
                row = pack(*plan.principal_parts) + pack(*plan.interest_parts)
            except struct.error:
                huge.append(j)
            else:
                out[:, j] = np.frombuffer(row, dtype=np.int64).reshape(2, m)
        return out


_principal_parts, _interest_parts = attrgetter("principal_parts"), attrgetter("interest_parts")
_principal_minor, _rounding, _currency = (attrgetter("principal_minor"), attrgetter("rounding"),
                                          attrgetter("currency"))


def _int64_rows(rows, huge: list[int]):
    """``rows`` as an int64 matrix; rows that do not fit are zeros, their positions added to ``huge``."""
    try:
        return np.array(rows, dtype=np.int64)
    except OverflowError:
        out = np.zeros((len(rows), len(rows[0])), dtype=np.int64)
        for j, row in enumerate(rows):
            try:
                out[j] = row
            except OverflowError:
                out[j] = 1
                huge.append(j)
        return out


def _fast_parts(parts, weights, total, rate: Decimal, rounding: str):
    """``(rows, falls)``: per plan, each row's principal, interest and fee per investor.

    ``parts`` (2 x plans x m) are the plans' principal and interest rows,
    ``weights`` (plans x n) and ``total`` (plans) their investors' reduced
    weights, all within :func:`_fitting`'s bounds. ``rows[..., j]`` is the
    j-th plan's ``(3, m, n)`` array of principal, interest and fee parts
    (row by row, investor by investor), int32 where they fit; ``falls[j]``
    says where that cannot be used: a plan falls where some running share
    falls, and the no-giving-back repair is the reference path's.

    The work is laid out with the plans on the last axis, (component x row
    x investor x plan), so that each operation runs along the plans with a
    divisor or factor that varies along them too, without broadcasting
    along a short axis; only the sort of each row's keys has the investors
    last.
    """
    count, n = weights.shape
    m = parts.shape[2]
    num, den = rate.as_integer_ratio()
    running = np.empty((2, m, count), dtype=np.int64)
    np.cumsum(parts.transpose(0, 2, 1), axis=1, out=running)
    totals = np.empty((3, m + 1, n, count), dtype=np.int64)               # running shares, from 0
    totals[:, 0] = 0
    target = totals[:2, 1:]
    # Largest remainder: each investor's floor of running x weight / total, then the ``left`` odd
    # units of each running total to the largest remainders, the earlier investor first on a tie.
    # Dividing (running x weight x n + n - 1 - i) by total x n gives the same floor and, as the
    # remainder, a key unique among the investors that orders them so: the odd units go to the
    # keys above the (left + 1)-th largest.
    keys = np.multiply(running[:, :, None], np.ascontiguousarray(weights.T * n))  # (2, m, n, plans)
    keys += np.repeat(np.arange(n - 1, -1, -1, dtype=np.int64), count).reshape(n, count)
    np.divmod(keys, total * n, out=(target, keys))
    left = running - target.sum(axis=2)
    # keys below total x n < 2**31 are sorted as int32 (half the memory, a faster sort)
    ordered = keys.transpose(0, 1, 3, 2).astype(_narrowest(total.max() * n), order="C")
    ordered.sort(axis=3)                                                   # (2, m, plans, n)
    ordered = ordered.reshape(-1)
    threshold = ordered[np.arange(n - 1, ordered.size, n) - left.reshape(-1)].astype(np.int64)
    above = np.less(threshold.reshape(2, m, 1, count), keys)
    np.add(target, above, out=target)
    if num:
        _running_fee_totals(totals[1, 1:], num, den, rounding, totals[2, 1:])
    else:
        totals[2, 1:] = 0
    # A share is at most one unit above its row's amount and at least -1 (where a running share
    # falls); a fee at most one above its interest share: rows up to 2**31 - 4 keep int32 parts.
    rows = np.empty((3, m, n, count), dtype=_narrowest(parts.max() + 4))
    np.subtract(totals[:, 1:], totals[:, :-1], out=rows)
    return rows, (rows.min(axis=(0, 1, 2)) < 0).tolist()


def _narrowest(bound: int):
    """int32 when values from -2**31 up to ``bound`` (excluded) fit it, else int64."""
    return np.int32 if bound <= 2**31 else np.int64


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


def running_shares(amounts: Sequence[int], weights: Sequence[int]) -> list[tuple[int, ...]]:
    """``amounts`` (minor units, in order) shared among positive integer ``weights``: per
    weight, its part of each amount, by largest remainder on the running totals (ties to
    the first weight), so that each one's total is its exact share of the whole within
    one minor unit, and no part is negative."""
    if not amounts:
        return [()] * len(weights)
    return _running_shares(tuple(amounts), list(weights))


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
