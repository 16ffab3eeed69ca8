"""Amortization schedules: borrower repayment plans and investor receivable plans.

This module owns the plans loans are repaid by and investors are paid from,
as pure functions over immutable values (no database):

* :func:`schedule` builds a borrower's :class:`Plan` of :class:`Row` s by
  one of four methods: equal installment (等额本息), equal principal
  (等额本金), interest only then principal (先息后本), bullet (一次性还本付息).
* :func:`split` divides a borrower's own rows among the investors who funded
  the loan (:class:`Split` of :class:`InvestorPlan` s), exactly to the fen;
  it lives in :mod:`ledger.splits` and is re-exported here.
* :func:`payoff` and :func:`reprice` handle early repayment in full or in
  part; :func:`penalty` the overdue penalty (罚息); :func:`apr`,
  :func:`all_in_rate` and :func:`check_rate_cap` the true cost of a plan
  and the rate cap (by default 4 x the one-year LPR).

Conventions (each one an explicit parameter with a documented default):

* Money is exact: amounts are integers of minor units (fen) inside, Decimal
  at the edge; floats are refused with :class:`~ledger.errors.FloatAmountError`.
  Rates are Decimal fractions (``Decimal("0.06")``), or strings (``"0.06"``
  or ``"6%"``).
* Period rate: the annual rate / 12 for monthly periods (``day_count=
  "monthly"``, the default), or the actual days of each period under a day
  count (``30/360``, ``ACT/360``, ``ACT/365``, ``ACT/ACT``).
* Rounding of every computed amount: ``HALF_UP`` (the default of CNY
  calculators), ``HALF_EVEN`` or ``DOWN``.
* Due dates: the same day each month counted from the start date, clamped to
  the month end, never chained (Jan 31 -> Feb 29 -> Mar 31).
* The rows are the truth: a plan's totals are the sums of its rows. Where a
  published "total interest" differs by a few fen from the sum of a bank's
  own rounded rows, it was computed from unrounded figures; the sum of the
  rows is what the borrower pays.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from itertools import repeat
from math import gcd
from operator import sub
from typing import Callable, NamedTuple

from dateutil.relativedelta import relativedelta

from .errors import FloatAmountError
from .money import DEFAULT_CURRENCY, amount_property, exact_minor, exponent, from_minor, to_minor
from .splits import (  # noqa: F401  (the investor splits live there; re-exported here)
    InvestorPlan, InvestorRow, Split, split, split_many,
)
from .rates import (
    ACT_360, ACT_ACT, ACT_365, DAY_COUNTS, DAYS_PER_YEAR, DOWN, HALF_EVEN, HALF_UP,
    MONTHLY, MONTHS_PER_YEAR, ROUNDINGS, THIRTY_360, RateCapExceededError, ScheduleError,
    UnknownLprError, annualised_irr, check_rate, judicial_cap, lpr_history, lpr_on, normalize_day_count,
    normalize_rounding, parse_rate, rdiv, register_lpr, year_fraction,
)

__all__ = [
    "Plan", "Row", "Split", "InvestorPlan", "InvestorRow", "Payoff", "Repricing",
    "schedule", "split", "split_many", "payoff", "reprice", "penalty", "apr", "all_in_rate", "check_rate_cap",
    "ScheduleError", "RateCapExceededError", "UnknownLprError",
    "register_lpr", "lpr_on", "lpr_history", "judicial_cap", "parse_rate",
    "METHODS", "DAY_COUNTS", "ROUNDINGS", "TERM_UNITS",
    "EQUAL_INSTALLMENT", "EQUAL_PRINCIPAL", "INTEREST_ONLY", "BULLET",
    "MONTHLY", "THIRTY_360", "ACT_360", "ACT_365", "ACT_ACT", "HALF_UP", "HALF_EVEN", "DOWN",
]

EQUAL_INSTALLMENT = "equal_installment"
EQUAL_PRINCIPAL = "equal_principal"
INTEREST_ONLY = "interest_only"
BULLET = "bullet"
METHODS = (EQUAL_INSTALLMENT, EQUAL_PRINCIPAL, INTEREST_ONLY, BULLET)
_METHOD_ALIASES = {
    "annuity": EQUAL_INSTALLMENT, "等额本息": EQUAL_INSTALLMENT, "等额本金": EQUAL_PRINCIPAL,
    "先息后本": INTEREST_ONLY, "一次性还本付息": BULLET,
}
MONTH = "month"
DAY = "day"
TERM_UNITS = (MONTH, DAY)
#: Longest terms accepted: 100 years of months, 10 years of days.
MAX_TERM = {MONTH: 1200, DAY: 3660}
#: For day terms without an explicit day count: the daily rate is annual / 360.
DEFAULT_DAY_TERM_DAY_COUNT = ACT_360
#: The overdue penalty rate by default: 1.5 x the contract rate, over a 360-day year.
DEFAULT_PENALTY_MULTIPLE = Decimal("1.5")
PENALTY_DAYS_PER_YEAR = 360
KEEP_TERM = "term"
KEEP_PAYMENT = "payment"


# --- values ---------------------------------------------------------------------------------------

def _money(minor: int, currency: str) -> Decimal:
    return from_minor(minor, currency)


_minor = exact_minor   # to_minor with a fast path for Decimals


class Row(NamedTuple):
    """One installment of a borrower's plan. Amounts as integers of minor units.

    Attributes:
        seq: installment number, from 1 (a repriced plan continues the numbering).
        due_date: when it is due.
        opening_minor: principal outstanding before the installment.
        principal_minor, interest_minor, fee_minor: the installment's parts.
        payment_minor: principal + interest + fee.
        closing_minor: principal outstanding after it.
        currency: ISO code of the amounts.

    The properties without ``_minor`` (``opening``, ``principal``,
    ``interest``, ``fee``, ``payment``, ``closing``) are the same amounts as
    Decimals in the currency's major unit.
    """

    seq: int
    due_date: dt.date
    opening_minor: int
    principal_minor: int
    interest_minor: int
    fee_minor: int
    payment_minor: int
    closing_minor: int
    currency: str = DEFAULT_CURRENCY

    opening = amount_property("opening_minor")
    principal = amount_property("principal_minor")
    interest = amount_property("interest_minor")
    fee = amount_property("fee_minor")
    payment = amount_property("payment_minor")
    closing = amount_property("closing_minor")


class Plan(NamedTuple):
    """A borrower's repayment plan. Build one with :func:`schedule`.

    Attributes:
        principal_minor: principal outstanding at the start of the first row.
        annual_rate: the contract's annual rate as a fraction.
        term: months (or days, for ``term_unit == "day"``) from ``start`` to maturity.
        method: equal_installment, equal_principal, interest_only or bullet.
        start: the date due dates are counted from (the loan's start).
        term_unit: ``month`` or ``day``.
        day_count: how period interest is computed (``monthly`` or a day count).
        rounding: HALF_UP, HALF_EVEN or DOWN.
        currency: ISO code of the amounts.
        installment_minor: the level payment (principal + interest) of an
            equal-installment plan, before any fee; None for other methods.
        principal_parts, interest_parts, fee_parts: each row's amounts in minor units.
        offset: installments before the first row (0, or more for a plan
            recomputed by :func:`reprice`).
        multiple_minor: the level payment was rounded to a multiple of this
            many minor units (1 unless ``installment_multiple`` was given).

    ``rows`` builds the :class:`Row` s on each access (keep a reference when
    iterating many times); totals are sums of the rows.
    """

    principal_minor: int
    annual_rate: Decimal
    term: int
    method: str
    start: dt.date
    term_unit: str
    day_count: str
    rounding: str
    currency: str
    installment_minor: int | None
    principal_parts: tuple[int, ...]
    interest_parts: tuple[int, ...]
    fee_parts: tuple[int, ...]
    offset: int = 0
    multiple_minor: int = 1

    @property
    def principal(self) -> Decimal:
        """Principal at the start, as a Decimal."""
        return _money(self.principal_minor, self.currency)

    @property
    def installment(self) -> Decimal | None:
        """The level payment of an equal-installment plan (fees excluded), else None."""
        return None if self.installment_minor is None else _money(self.installment_minor, self.currency)

    @property
    def due_dates(self) -> tuple[dt.date, ...]:
        """Each row's due date."""
        return _plan_dates(self)[1:]

    @property
    def rows(self) -> tuple[Row, ...]:
        """The installments, with opening and closing balances."""
        dates = self.due_dates
        cur = self.currency
        out = []
        balance = self.principal_minor
        for k, (p, i, f) in enumerate(zip(self.principal_parts, self.interest_parts, self.fee_parts)):
            out.append(Row(self.offset + k + 1, dates[k], balance, p, i, f, p + i + f, balance - p, cur))
            balance -= p
        return tuple(out)

    @property
    def total_principal(self) -> Decimal:
        return _money(sum(self.principal_parts), self.currency)

    @property
    def total_interest(self) -> Decimal:
        """Sum of the rows' interest: the truth, whatever a calculator's total says."""
        return _money(sum(self.interest_parts), self.currency)

    @property
    def total_fee(self) -> Decimal:
        return _money(sum(self.fee_parts), self.currency)

    @property
    def total_payment(self) -> Decimal:
        return _money(sum(self.principal_parts) + sum(self.interest_parts) + sum(self.fee_parts),
                      self.currency)


_new = tuple.__new__  # builds a NamedTuple from a tuple without re-checking the arguments


# --- conventions, checked once per distinct set of terms ---------------------------------------------

class _Terms(NamedTuple):
    """Validated terms of a plan, cached by their inputs."""

    annual_rate: Decimal
    rate_num: int
    rate_den: int
    term: int
    method: str
    term_unit: str
    day_count: str
    rounding: str
    multiple: int          # installment multiple in minor units (1: the fen)
    currency: str
    monthly_num: int       # period rate of a monthly period, reduced
    monthly_den: int
    annuity_num: int       # equal-installment payment = principal * num / den (monthly periods)
    annuity_den: int
    fast: _Fast | None     # equal installment, monthly periods, HALF_UP, to the fen: the hot path


class _Fast(NamedTuple):
    """What the equal-installment fast path of :func:`schedule` needs, computed once per terms."""

    rows: Callable         # (principal, level, 2a, b, 2b) -> (principal parts, interest parts)
                           # or None: see _rows_loop
    annuity_num2: int      # level payment, HALF_UP: (principal x annuity_num2 + den) // den2
    annuity_den: int
    annuity_den2: int
    a2: int                # the monthly rate a/b: 2a, b, 2b
    b: int
    b2: int
    no_fees: tuple[int, ...]


_TERMS_CACHE: dict[tuple, _Terms] = {}
_TERMS_CACHE_LIMIT = 4096


def _refuse_inexact(value, what: str) -> None:
    if isinstance(value, float):
        raise FloatAmountError(f"{what}: float {value!r} refused; pass a Decimal, an int or a string",
                               value=value)


def _terms(annual_rate, term, method, term_unit, day_count, rounding, multiple, currency) -> _Terms:
    if type(annual_rate) is float or type(multiple) is float:  # before the cache: 0.5 == Decimal("0.5")
        _refuse_inexact(annual_rate, "annual_rate")
        _refuse_inexact(multiple, "installment_multiple")
    key = (annual_rate, type(annual_rate), term, type(term), method, term_unit, day_count, rounding, multiple, currency)
    try:
        found = _TERMS_CACHE.get(key)
    except TypeError:  # an unhashable or signalling value: let validation name it
        found = key = None
    if found is None:
        found = _make_terms(annual_rate, term, method, term_unit, day_count, rounding, multiple, currency)
        if key is not None:
            if len(_TERMS_CACHE) >= _TERMS_CACHE_LIMIT:
                _TERMS_CACHE.clear()
            _TERMS_CACHE[key] = found
    return found


def _normalize_method(method: str) -> str:
    text = str(method).strip()
    text = _METHOD_ALIASES.get(text, text.lower().replace("-", "_"))
    if text not in METHODS:
        raise ScheduleError(f"method {method!r} is not one of {', '.join(METHODS)}", method=method)
    return text


def _make_terms(annual_rate, term, method, term_unit, day_count, rounding, multiple, currency) -> _Terms:
    rate = parse_rate(annual_rate, what="annual_rate")
    method = _normalize_method(method)
    exponent(currency)
    unit = str(term_unit).strip().lower().rstrip("s")
    if unit not in TERM_UNITS:
        raise ScheduleError(f"term_unit {term_unit!r} is not one of {', '.join(TERM_UNITS)}",
                            term_unit=term_unit)
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= MAX_TERM[unit]:
        raise ScheduleError(f"term must be a whole number of {unit}s from 1 to {MAX_TERM[unit]}, "
                            f"not {term!r}", term=term)
    if day_count is None:
        day_count = MONTHLY if unit == MONTH else DEFAULT_DAY_TERM_DAY_COUNT
    day_count = normalize_day_count(day_count)
    if unit == DAY:
        if method not in (BULLET, INTEREST_ONLY):
            raise ScheduleError(f"terms in days suit bullet and interest_only loans, not {method}",
                                method=method)
        if day_count == MONTHLY:
            raise ScheduleError("a term in days needs a day count (ACT/360, ACT/365, ACT/ACT, 30/360)",
                                day_count=day_count)
    rounding = normalize_rounding(rounding)
    step = 1
    if multiple is not None:
        step = to_minor(multiple, currency, what="installment_multiple")
        if step <= 0:
            raise ScheduleError("installment_multiple must be positive", value=multiple)
        if method != EQUAL_INSTALLMENT:
            raise ScheduleError("installment_multiple applies to equal_installment plans",
                                method=method)
    rate_num, rate_den = rate.as_integer_ratio()
    monthly = _reduce(rate_num, rate_den * MONTHS_PER_YEAR)
    annuity = _annuity(*monthly, term) if method == EQUAL_INSTALLMENT else (0, 1)
    fast = None
    if (method == EQUAL_INSTALLMENT and day_count == MONTHLY and rounding == HALF_UP
            and step == 1 and unit == MONTH):
        a, b = monthly
        fast = _Fast(_rows_of(term) if a and term <= _UNROLLED_MAX else _rows_loop(term),
                     2 * annuity[0], annuity[1], 2 * annuity[1], 2 * a, b, 2 * b, _no_fees(term))
    return _Terms(rate, rate_num, rate_den, term, method, unit, day_count, rounding, step, currency,
                  *monthly, *annuity, fast)


def _reduce(num: int, den: int) -> tuple[int, int]:
    g = gcd(num, den) or 1
    return num // g, den // g


@lru_cache(maxsize=4096)
def _annuity(a: int, b: int, n: int) -> tuple[int, int]:
    """Payment factor ``P * num / den`` for period rate ``a/b`` over ``n`` periods, exactly.

    ``A = P r (1+r)^n / ((1+r)^n - 1)`` with ``r = a/b`` is
    ``P a (a+b)^n / (b ((a+b)^n - b^n))``; at a zero rate ``P / n``.
    """
    if a == 0:
        return 1, n
    grown = (a + b) ** n
    return _reduce(a * grown, b * (grown - b ** n))


# --- due dates ---------------------------------------------------------------------------------------

#: The last date a due date can fall on.
LAST_DATE = dt.date.max


#: A start in this year or before has every term's due dates on or before the last date.
_YEAR_FIT_FOR_ANY_TERM = LAST_DATE.year - MAX_TERM[MONTH] // MONTHS_PER_YEAR - 1


def _past_last_date(start: dt.date, term: int, unit: str) -> ScheduleError:
    return ScheduleError(f"due dates run past {LAST_DATE}: {term} {unit}{'s' if term != 1 else ''} "
                         f"from {start}", start=start, term=term, term_unit=unit)


def _check_last_due_date(start: dt.date, term: int, unit: str) -> None:
    """Refuse a term whose last due date would fall after 9999-12-31 (a start late in year 9999
    or so: the equal-installment paths compute no date when building a plan)."""
    if unit == MONTH:
        if (start.year - LAST_DATE.year) * MONTHS_PER_YEAR + start.month - LAST_DATE.month + term > 0:
            raise _past_last_date(start, term, unit)
    elif term > (LAST_DATE - start).days:
        raise _past_last_date(start, term, unit)


@lru_cache(maxsize=65536)
def _month_dates(start: dt.date, first: int, count: int) -> tuple[dt.date, ...]:
    """``start`` plus ``first``, ``first + 1``, ... months (``count`` dates), each from the start.

    Raises :class:`ScheduleError` when the last of them would fall after 9999-12-31.
    """
    try:
        return tuple(start + relativedelta(months=k) for k in range(first, first + count))
    except (ValueError, OverflowError):
        raise _past_last_date(start, first + count - 1, MONTH) from None


@lru_cache(maxsize=4096)
def _day_term_dates(start: dt.date, days: int) -> tuple[dt.date, ...]:
    """Monthly dates strictly before maturity, then maturity (``start`` + ``days``).

    Raises :class:`ScheduleError` when maturity would fall after 9999-12-31.
    """
    if days > (LAST_DATE - start).days:
        raise _past_last_date(start, days, DAY)
    maturity = start + dt.timedelta(days=days)
    # Past the month maturity falls in, start + k months is after it (and may be past the last date).
    months = (maturity.year - start.year) * 12 + maturity.month - start.month
    out = []
    k = 1
    while k <= months and (due := start + relativedelta(months=k)) < maturity:
        out.append(due)
        k += 1
    out.append(maturity)
    return tuple(out)


def _schedule_dates(start, term_unit, method, term, offset, count) -> tuple[dt.date, ...]:
    """The period boundaries: the first row's period start, then each row's due date."""
    if term_unit == DAY:
        dates = (start,) + _day_term_dates(start, term)
        return dates[offset:] if method == INTEREST_ONLY else (start, dates[-1])
    if method == BULLET:
        return _month_dates(start, 0, 1) + _month_dates(start, term, 1)
    return _month_dates(start, offset, count + 1)


def _plan_dates(plan: Plan) -> tuple[dt.date, ...]:
    return _schedule_dates(plan.start, plan.term_unit, plan.method, plan.term, plan.offset,
                           len(plan.principal_parts))


def _period_rates(terms: _Terms, bounds: tuple[dt.date, ...]) -> list[tuple[int, int]]:
    """Each period's rate as ``(num, den)`` under the terms' day count."""
    if terms.day_count == MONTHLY:
        return [(terms.monthly_num, terms.monthly_den)] * (len(bounds) - 1)
    out = []
    for begin, end in zip(bounds, bounds[1:]):
        fraction = year_fraction(begin, end, terms.day_count)
        out.append(_reduce(terms.rate_num * fraction.numerator, terms.rate_den * fraction.denominator))
    return out


# --- building plans ----------------------------------------------------------------------------------

def schedule(principal, annual_rate, term: int, method: str = EQUAL_INSTALLMENT, *,
             start: dt.date | str | None = None, term_unit: str = MONTH, day_count: str | None = None,
             rounding: str = HALF_UP, installment_multiple=None, periodic_fee=None,
             periodic_fee_rate=None, currency: str = DEFAULT_CURRENCY) -> Plan:
    """The borrower's repayment plan.

    Args:
        principal: amount lent (Decimal, int or str in major units; floats refused).
        annual_rate: contract rate as a fraction (``"0.06"``) or percentage (``"6%"``).
        term: number of months, or of days with ``term_unit="day"``.
        method: ``equal_installment`` (等额本息: a level payment
            ``P r (1+r)^n / ((1+r)^n - 1)`` rounded to the fen; interest on
            the opening balance; the last row pays off whatever remains),
            ``equal_principal`` (等额本金: principal ``P / n`` each row, the
            remainder fen in the last), ``interest_only`` (先息后本: all
            principal in the last row) or ``bullet`` (一次性还本付息: one row
            at maturity with simple interest for the whole term).
        start: the loan's start; due dates are ``start`` + k months, clamped
            to month end. Default: today.
        term_unit: ``month`` (default) or ``day`` (bullet and interest_only
            only; interest is paid monthly and at maturity).
        day_count: ``monthly`` (annual/12 a period; the default for monthly
            terms), ``30/360``, ``ACT/360`` (the default for day terms),
            ``ACT/365`` or ``ACT/ACT``: the actual days of each period.
            With a day count the equal installment is the exact annuity for
            the actual period rates.
        rounding: ``HALF_UP`` (default), ``HALF_EVEN`` or ``DOWN``, for every
            computed amount.
        installment_multiple: round the level payment to a multiple of this
            amount (``1`` for whole yuan); the last row absorbs the difference.
        periodic_fee: a fee added to every row (major units).
        periodic_fee_rate: a fee of this fraction of the principal added to every row.
        currency: ISO code (default CNY).

    Returns an immutable :class:`Plan`. Raises :class:`ScheduleError` (or an
    :class:`~ledger.errors.AmountError`) for bad input.

    >>> plan = schedule("100000", "0.06", 12, start=dt.date(2024, 1, 31))
    >>> plan.installment, plan.rows[1].due_date
    (Decimal('8606.64'), datetime.date(2024, 3, 31))
    """
    terms = _terms(annual_rate, term, method, term_unit, day_count, rounding, installment_multiple,
                   currency)
    principal_minor = _minor(principal, currency, "principal")
    if principal_minor <= 0:
        raise ScheduleError(f"principal must be positive, not {principal}", value=principal)
    if type(start) is not dt.date:
        start = _date(start, "start")
    if start.year > _YEAR_FIT_FOR_ANY_TERM:
        _check_last_due_date(start, terms.term, terms.term_unit)
    fee = 0
    if periodic_fee is not None or periodic_fee_rate is not None:
        fee = _fee_minor(periodic_fee, periodic_fee_rate, principal_minor, terms)
    fast = terms.fast
    if fast is not None:
        # _build for the usual case (equal installment, monthly, HALF_UP, to the fen): the same
        # figures, fewer steps (exact integer arithmetic with the rounding written out). Where the
        # level payment would repay a principal of a few fen too soon, rows() gives None and the
        # general path takes over.
        rows, num2, den, den2, a2, b, b2, no_fees = fast
        level = (principal_minor * num2 + den) // den2
        parts = rows(principal_minor, level, a2, b, b2)
        if parts is not None:
            n = terms.term
            return _new(Plan, (principal_minor, terms.annual_rate, n, EQUAL_INSTALLMENT, start,
                               MONTH, MONTHLY, HALF_UP, terms.currency, level, parts[0], parts[1],
                               (fee,) * n if fee else no_fees, 0, 1))
    return _build(principal_minor, terms, start, 0, fee)


# The rows of the fast path. A row's interest is (balance x 2a + b) // 2b, HALF_UP of balance x a / b
# for the monthly rate a/b. The numerator x = balance x 2a + b is carried from row to row: each row
# repays level - interest of the balance, so x falls by that times 2a. Each function below takes
# (principal, level, 2a, b, 2b) and returns (principal parts, interest parts), or None where the
# level payment would repay the loan before the last row.

@lru_cache(maxsize=None)
def _rows_loop(n: int):
    """The rows of an ``n``-month plan, computed in a loop (any term, any rate)."""
    def rows(principal, level, a2, b, b2):
        x = principal * a2 + b
        principals, interest = [], []
        for _ in range(n - 1):
            i = x // b2
            interest.append(i)
            p = level - i
            principals.append(p)
            x -= p * a2
        last = principal - sum(principals)
        if last < 0:
            return None
        principals.append(last)
        interest.append((last * a2 + b) // b2)
        return tuple(principals), tuple(interest)
    return rows


#: Terms up to this many months have their rows computed by straight-line code (:func:`_rows_of`).
_UNROLLED_MAX = 120


@lru_cache(maxsize=None)
def _rows_of(n: int):
    """:func:`_rows_loop` for ``n`` months and a rate above zero, written out row by row.

    Compiled once per term. Each row's parts are locals and the parts are
    built as tuples at once, without a loop's bookkeeping or lists; the
    numerator carried past the last row is that row's (``x = last x 2a +
    b``), so the last principal is ``(x - b) // 2a`` and negative exactly
    when ``x < b``. About a fifth of a 12-month plan's time goes to the
    loop otherwise.
    """
    lines = ["def rows(principal, level, a2, b, b2):", "    x = principal * a2 + b"]
    for k in range(n - 1):
        lines += [f"    i{k} = x // b2", f"    p{k} = level - i{k}", f"    x -= p{k} * a2"]
    lines += ["    if x < b:", "        return None",
              f"    return ({''.join(f'p{k}, ' for k in range(n - 1))}(x - b) // a2,), "
              f"({''.join(f'i{k}, ' for k in range(n - 1))}x // b2,)"]
    namespace: dict = {}
    exec(compile("\n".join(lines), f"<ledger.schedules: rows of a {n}-month plan>", "exec"), namespace)
    return namespace["rows"]


@lru_cache(maxsize=None)
def _no_fees(n: int) -> tuple[int, ...]:
    """One shared tuple of ``n`` zero fees (the usual case)."""
    return (0,) * n


def _date(value, what: str) -> dt.date:
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        raise ScheduleError(f"{what}: pass a date, not a datetime", value=value)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ScheduleError(f"{what}: {value!r} is not a date (YYYY-MM-DD)", value=value)


def _fee_minor(periodic_fee, periodic_fee_rate, principal_minor: int, terms: _Terms) -> int:
    fee = 0
    if periodic_fee is not None:
        fee = to_minor(periodic_fee, terms.currency, what="periodic_fee")
    if periodic_fee_rate is not None:
        rate = parse_rate(periodic_fee_rate, what="periodic_fee_rate")
        num, den = rate.as_integer_ratio()
        fee += rdiv(principal_minor * num, den, terms.rounding)
    if fee < 0:
        raise ScheduleError("a periodic fee cannot be negative", value=periodic_fee)
    return fee


def _build(principal: int, terms: _Terms, start: dt.date, offset: int, fee: int, *,
           periods: int | None = None, installment: int | None = None,
           principal_step: int | None = None) -> Plan:
    """Rows for ``principal`` from row ``offset + 1``; ``periods`` rows (default: to maturity).

    ``installment`` fixes the level payment (and lets the number of rows
    follow from it); ``principal_step`` fixes equal principal's step.
    """
    method = terms.method
    count = terms.term - offset if periods is None else periods
    level = None
    if method == EQUAL_INSTALLMENT and terms.day_count == MONTHLY and installment is None:
        level, interest, last = _equal_installment_monthly(principal, terms, count)
        principals = list(map(sub, repeat(level, count - 1), interest))
        principals.append(last)
    else:
        bounds = _schedule_dates(start, terms.term_unit, method, terms.term, offset, count)
        rates = _period_rates(terms, bounds)
        if method == EQUAL_INSTALLMENT:
            level, principals, interest = _equal_installment(principal, terms, rates, installment)
        elif method == EQUAL_PRINCIPAL:
            principals, interest = _equal_principal(principal, terms, rates, principal_step)
        elif method == INTEREST_ONLY:
            interest = [rdiv(principal * a, b, terms.rounding) for a, b in rates]
            principals = [0] * (len(rates) - 1) + [principal]
        else:
            interest = [_bullet_interest(principal, terms, bounds)]
            principals = [principal]
    rows = len(principals)
    term = terms.term if terms.term_unit == DAY or method == BULLET else offset + rows
    return _new(Plan, (principal, terms.annual_rate, term, method, start, terms.term_unit,
                       terms.day_count, terms.rounding, terms.currency, level, tuple(principals),
                       tuple(interest), (fee,) * rows, offset, terms.multiple))


def _equal_installment_monthly(principal: int, terms: _Terms, count: int) -> tuple[int, list[int], int]:
    """The hot path: a constant period rate ``a/b``; returns (level, interest, last principal)."""
    a, b, rounding, step = terms.monthly_num, terms.monthly_den, terms.rounding, terms.multiple
    num, den = (terms.annuity_num, terms.annuity_den) if count == terms.term else _annuity(a, b, count)
    level = rdiv(principal * num, den * step, rounding) * step
    floor_level = rdiv(principal * a, b, rounding)  # interest on the whole principal: always enough
    if level < floor_level:
        raise ScheduleError(
            f"an installment rounded to a multiple of {from_minor(step, terms.currency)} does not "
            f"cover the first period's interest", multiple=step)
    while True:
        interest = []
        append = interest.append
        balance = principal
        if rounding == HALF_UP:
            a2, b2 = a + a, b + b
            for _ in range(count - 1):
                i = (balance * a2 + b) // b2
                append(i)
                balance -= level - i
        else:
            for _ in range(count - 1):
                i = rdiv(balance * a, b, rounding)
                append(i)
                balance -= level - i
        if balance >= 0:
            break
        # The rounded level payment would repay the loan before the last row (only for
        # principals of a few fen per period): pay less, down to interest only.
        level = max(level - step, floor_level)
    interest.append(rdiv(balance * a, b, rounding))
    return level, interest, balance


def _equal_installment(principal: int, terms: _Terms, rates: list[tuple[int, int]],
                       installment: int | None) -> tuple[int, list[int], list[int]]:
    """Equal installment at varying period rates, or with a fixed level payment.

    With ``installment`` fixed, rows continue until one pays off the rest
    (keep the payment, shorten the term).
    """
    rounding, step, currency = terms.rounding, terms.multiple, terms.currency
    count = len(rates)
    fixed = installment is not None
    floor_level = max(rdiv(principal * a, b, rounding) for a, b in rates)
    if fixed:
        level = installment
    else:
        # S = sum_k prod_{j<=k} 1/(1+r_j), by Horner from the last period, as sn/sd.
        sn, sd = 0, 1
        for a, b in reversed(rates):
            sn, sd = (sd + sn) * b, sd * (a + b)
        level = rdiv(principal * sd, sn * step, rounding) * step
    while True:
        principals, interest, balance, overpaid = [], [], principal, False
        for k, (a, b) in enumerate(rates):
            i = rdiv(balance * a, b, rounding)
            last = k == count - 1 or (fixed and balance + i <= level)
            p = balance if last else level - i
            if p < 0:
                raise ScheduleError(
                    f"period {k + 1}'s interest {from_minor(i, currency)} exceeds the installment "
                    f"{from_minor(level, currency)} (negative amortization)", period=k + 1)
            if p > balance:
                overpaid = True
                break
            principals.append(p)
            interest.append(i)
            balance -= p
            if last:
                break
        if not overpaid:
            return level, principals, interest
        if fixed or level <= floor_level:
            raise ScheduleError(
                f"{from_minor(principal, currency)} over {count} periods is a fen or two a period: "
                "no level installment in whole fen repays it in exactly that many periods under "
                f"{terms.day_count} (a fen more repays it early, interest only never does)",
                principal=principal)
        # The rounded level payment would repay the loan before the last row (only for
        # principals of a few fen per period): pay less, down to interest only.
        level = max(level - step, floor_level)


def _equal_principal(principal: int, terms: _Terms, rates: list[tuple[int, int]],
                     principal_step: int | None) -> tuple[list[int], list[int]]:
    count = len(rates)
    part = principal // count if principal_step is None else principal_step
    principals, interest, balance = [], [], principal
    for k, (a, b) in enumerate(rates):
        interest.append(rdiv(balance * a, b, terms.rounding))
        p = balance if k == count - 1 or balance <= part else part
        principals.append(p)
        balance -= p
        if not balance:
            break
    return principals, interest


def _bullet_interest(principal: int, terms: _Terms, bounds: tuple[dt.date, ...]) -> int:
    if terms.day_count == MONTHLY:
        return rdiv(principal * terms.rate_num * terms.term, terms.rate_den * MONTHS_PER_YEAR,
                    terms.rounding)
    fraction = year_fraction(bounds[0], bounds[-1], terms.day_count)
    return rdiv(principal * terms.rate_num * fraction.numerator,
                terms.rate_den * fraction.denominator, terms.rounding)


def _terms_of(plan: Plan, term: int | None = None) -> _Terms:
    multiple = None if plan.multiple_minor == 1 else from_minor(plan.multiple_minor, plan.currency)
    return _terms(plan.annual_rate, plan.term if term is None else term, plan.method, plan.term_unit,
                  plan.day_count, plan.rounding, multiple, plan.currency)


# --- early repayment -----------------------------------------------------------------------------------

class Payoff(NamedTuple):
    """What repays a loan in full on a date.

    Attributes:
        on_date: the repayment date.
        seq: the installment whose period the date falls in (earlier ones taken as paid).
        principal_minor: principal outstanding.
        interest_minor: interest accrued from the period's start to ``on_date``.
        fee_minor: the prepayment fee.
        currency: ISO code.

    ``principal``, ``interest``, ``fee`` and ``total`` are Decimals.
    """

    on_date: dt.date
    seq: int
    principal_minor: int
    interest_minor: int
    fee_minor: int
    currency: str

    principal = amount_property("principal_minor")
    interest = amount_property("interest_minor")
    fee = amount_property("fee_minor")
    total_minor = property(lambda self: self.principal_minor + self.interest_minor + self.fee_minor)
    total = amount_property("total_minor")


def _locate(plan: Plan, on_date: dt.date) -> tuple[int, tuple[dt.date, ...], int]:
    """(row index k, period bounds, opening balance of row k) for the period holding ``on_date``.

    A row's period runs from the previous due date (exclusive) to its own
    due date (inclusive); the start date itself falls in the first row.
    """
    bounds = _plan_dates(plan)
    if on_date < bounds[0]:
        raise ScheduleError(f"{on_date} is before the plan's first period starts ({bounds[0]})",
                            on_date=on_date)
    if on_date > bounds[-1]:
        raise ScheduleError(f"{on_date} is after the plan's last due date ({bounds[-1]})",
                            on_date=on_date)
    k = next(k for k in range(len(bounds) - 1) if on_date <= bounds[k + 1])
    return k, bounds, plan.principal_minor - sum(plan.principal_parts[:k])


def _accrued(plan: Plan, k: int, bounds, on_date: dt.date, balance: int, day_count: str | None) -> int:
    """Interest on ``balance`` from row k's period start to ``on_date``.

    With a day count (the plan's, or ``day_count``): balance x rate x the
    year fraction. With ``monthly``: the row's interest pro rata by days,
    scaled to ``balance``.
    """
    begin, end = bounds[k], bounds[k + 1]
    if on_date == begin:
        return 0
    dc = normalize_day_count(day_count) if day_count is not None else plan.day_count
    num, den = plan.annual_rate.as_integer_ratio()
    if dc == MONTHLY:
        months = plan.term if plan.method == BULLET else 1
        return rdiv(balance * num * months * (on_date - begin).days,
                    den * MONTHS_PER_YEAR * (end - begin).days, plan.rounding)
    fraction = year_fraction(begin, on_date, dc)
    return rdiv(balance * num * fraction.numerator, den * fraction.denominator, plan.rounding)


def _fee_on(amount: int, rate, rounding: str) -> int:
    rate = parse_rate(rate, what="prepayment_fee_rate")
    num, den = rate.as_integer_ratio()
    return rdiv(amount * num, den, rounding)


def payoff(plan: Plan, on_date: dt.date, *, prepayment_fee_rate="0",
           day_count: str | None = None) -> Payoff:
    """The amount that repays ``plan`` in full on ``on_date``, as the ledger's
    ``Loans.pay_off`` settles it.

    Installments due before ``on_date`` are taken as paid. The payoff is
    the principal outstanding; the interest of the current period accrued
    to ``on_date``: the row's interest pro rata by the days elapsed of its
    period (or, with ``day_count``, the principal outstanding x the rate x
    the year fraction under that day count); and a prepayment fee of
    ``prepayment_fee_rate`` x the principal paid before it is due. On a due
    date that installment is due, not prepaid: its interest is paid in full
    and the fee is charged on the principal after it. Periodic fees of the
    current period are not included.
    """
    on_date = _date(on_date, "on_date")
    k, bounds, balance = _locate(plan, on_date)
    if day_count is None:
        interest = _pro_rata(plan.interest_parts[k], bounds[k], bounds[k + 1], on_date, plan.rounding)
    else:
        interest = _accrued(plan, k, bounds, on_date, balance, day_count)
    prepaid = balance - plan.principal_parts[k] if on_date == bounds[k + 1] else balance
    fee = _fee_on(prepaid, prepayment_fee_rate, plan.rounding)
    return Payoff(on_date, plan.offset + k + 1, balance, interest, fee, plan.currency)


def _pro_rata(amount: int, begin: dt.date, end: dt.date, on_date: dt.date, rounding: str) -> int:
    """``amount`` x the days from ``begin`` to ``on_date`` / the days from ``begin`` to ``end``."""
    return rdiv(amount * (on_date - begin).days, (end - begin).days, rounding)


class Repricing(NamedTuple):
    """A partial prepayment and the plan that follows it (see :func:`reprice`).

    Attributes:
        on_date: the prepayment date.
        principal_minor: principal prepaid.
        interest_minor: interest accrued on the prepaid principal since the period began.
        fee_minor: the prepayment fee.
        plan: the recomputed plan for the principal still outstanding.
        currency: ISO code.
    """

    on_date: dt.date
    principal_minor: int
    interest_minor: int
    fee_minor: int
    plan: Plan
    currency: str

    principal = amount_property("principal_minor")
    interest = amount_property("interest_minor")
    fee = amount_property("fee_minor")
    total = property(lambda self: _money(self.principal_minor + self.interest_minor + self.fee_minor,
                                         self.currency))


def reprice(plan: Plan, on_date: dt.date, amount, *, keep: str = KEEP_TERM,
            prepayment_fee_rate="0", day_count: str | None = None) -> Repricing:
    """Prepay ``amount`` of principal on ``on_date`` and recompute the rest of the plan.

    On a due date, that installment is paid as scheduled and the prepayment
    reduces the balance after it; between due dates, the current period is
    recomputed on the reduced balance and the prepaid principal's interest
    since the period began is paid with it (by days under the plan's day
    count, or under ``day_count``; for ``monthly`` plans the period's rate
    pro rata by days).
    A fee of ``prepayment_fee_rate`` x ``amount`` is charged.

    ``keep="term"``: the same due dates, a lower payment. ``keep="payment"``:
    the same installment (equal installment) or principal step (equal
    principal), fewer rows; the last row pays what remains. Due dates stay
    on the original schedule (counted from the plan's start).
    """
    on_date = _date(on_date, "on_date")
    prepaid = to_minor(amount, plan.currency, what="amount")
    if keep not in (KEEP_TERM, KEEP_PAYMENT):
        raise ScheduleError(f"keep must be {KEEP_TERM!r} or {KEEP_PAYMENT!r}, not {keep!r}", keep=keep)
    k, bounds, balance = _locate(plan, on_date)
    on_due_date = on_date == bounds[k + 1]
    if on_due_date:
        balance -= plan.principal_parts[k]
        k += 1
        if k == len(plan.principal_parts):
            raise ScheduleError("the last installment repays the loan; nothing is left to reprice",
                                on_date=on_date)
    if not 0 < prepaid < balance:
        raise ScheduleError(
            f"a partial prepayment must be more than zero and less than the "
            f"{from_minor(balance, plan.currency)} outstanding (use payoff() to repay in full)",
            amount=amount)
    interest = 0 if on_due_date else _accrued(plan, k, bounds, on_date, prepaid, day_count)
    fee = _fee_on(prepaid, prepayment_fee_rate, plan.rounding)
    remaining = balance - prepaid
    offset = plan.offset + k
    terms = _terms_of(plan)
    fee_per_row = plan.fee_parts[-1]
    if plan.method == BULLET or plan.term_unit == DAY:
        if keep == KEEP_PAYMENT and plan.method == INTEREST_ONLY:
            raise ScheduleError("keep='payment' applies to equal installment and equal principal plans",
                                method=plan.method)
        new = _build(remaining, terms, plan.start, offset if plan.method != BULLET else 0, fee_per_row)
    elif keep == KEEP_TERM or plan.method == INTEREST_ONLY:
        if keep == KEEP_PAYMENT:
            raise ScheduleError("keep='payment' applies to equal installment and equal principal plans",
                                method=plan.method)
        new = _build(remaining, terms, plan.start, offset, fee_per_row)
    elif plan.method == EQUAL_INSTALLMENT:
        new = _build(remaining, terms, plan.start, offset, fee_per_row, installment=plan.installment_minor)
    else:
        new = _build(remaining, terms, plan.start, offset, fee_per_row,
                     principal_step=plan.principal_parts[0])
    return Repricing(on_date, prepaid, interest, fee, new, plan.currency)


# --- overdue penalty -------------------------------------------------------------------------------------

def penalty(overdue_amount, from_date: dt.date, to_date: dt.date, *, annual_rate=None,
            multiple=DEFAULT_PENALTY_MULTIPLE, daily_rate=None,
            days_per_year: int = PENALTY_DAYS_PER_YEAR, rounding: str = HALF_UP,
            currency: str = DEFAULT_CURRENCY) -> Decimal:
    """Overdue penalty interest (罚息) on ``overdue_amount`` from ``from_date`` to ``to_date``.

    The caller chooses what is overdue (principal, or principal and
    interest). The rate is either ``daily_rate`` (``"0.0005"``: 0.05 % a
    day) or ``multiple`` x ``annual_rate`` / ``days_per_year`` (default
    1.5 x the contract rate over 360 days). Days are counted after
    ``from_date`` (the due date) up to and including ``to_date``: paid on
    the due date, no penalty; a day late, one day. The total is rounded
    once, with ``rounding``.
    """
    overdue = to_minor(overdue_amount, currency, what="overdue_amount")
    if overdue < 0:
        raise ScheduleError("overdue_amount cannot be negative", value=overdue_amount)
    from_date, to_date = _date(from_date, "from_date"), _date(to_date, "to_date")
    days = (to_date - from_date).days
    if days < 0:
        raise ScheduleError(f"to_date {to_date} is before from_date {from_date}",
                            from_date=from_date, to_date=to_date)
    if (daily_rate is None) == (annual_rate is None):
        raise ScheduleError("give either daily_rate or annual_rate (with multiple)")
    if daily_rate is not None:
        num, den = parse_rate(daily_rate, what="daily_rate").as_integer_ratio()
    else:
        _refuse_inexact(multiple, "multiple")
        factor = parse_rate(annual_rate, what="annual_rate") * parse_rate(
            multiple, what="multiple", maximum=Decimal(100))
        if isinstance(days_per_year, bool) or not isinstance(days_per_year, int) or days_per_year <= 0:
            raise ScheduleError("days_per_year must be a positive whole number", value=days_per_year)
        num, den = factor.as_integer_ratio()
        den *= days_per_year
    return from_minor(rdiv(overdue * num * days, den, normalize_rounding(rounding)), currency)


# --- true cost and rate caps -------------------------------------------------------------------------------

def _flows(plan: Plan, net: int, with_fees: bool) -> tuple[list[tuple[int, int]], int]:
    bounds = _plan_dates(plan)
    if plan.term_unit == DAY:
        times = [(d - bounds[0]).days for d in bounds[1:]]
        per_year = DAYS_PER_YEAR
    elif plan.method == BULLET:
        times, per_year = [plan.term], MONTHS_PER_YEAR
    else:
        times, per_year = list(range(1, len(plan.principal_parts) + 1)), MONTHS_PER_YEAR
    flows = [(0, -net)]
    for t, p, i, f in zip(times, plan.principal_parts, plan.interest_parts, plan.fee_parts):
        flows.append((t, p + i + (f if with_fees else 0)))
    return flows, per_year


def apr(plan: Plan, *, upfront_fee=0, net_disbursed=None, include_fees: bool = True) -> Decimal:
    """The annualised internal rate of return of the plan: the borrower's true cost.

    The rate equates what the borrower actually receives (``net_disbursed``,
    by default the principal less ``upfront_fee``) with the payments of the
    rows (periodic fees included unless ``include_fees`` is false).
    Convention: for monthly plans the monthly IRR x 12, payments at whole
    months (as IRR disclosures in China state it, so a plan without fees
    shows its contract rate, give or take the rounding of payments to the
    fen); for terms in days the daily IRR x 365. A Decimal fraction with
    ten decimal places.
    """
    net = _net(plan, upfront_fee, net_disbursed)
    flows, per_year = _flows(plan, net, include_fees)
    return annualised_irr(flows, per_year)


def _net(plan: Plan, upfront_fee, net_disbursed) -> int:
    if net_disbursed is not None:
        net = to_minor(net_disbursed, plan.currency, what="net_disbursed")
    else:
        net = plan.principal_minor - to_minor(upfront_fee, plan.currency, what="upfront_fee")
    if net <= 0:
        raise ScheduleError("the borrower must receive a positive amount", value=net)
    return net


def all_in_rate(plan: Plan, *, upfront_fee=0) -> Decimal:
    """The annual cost of the plan, interest and fees together.

    The contract rate plus what the fees (``upfront_fee`` deducted at
    disbursement, the plan's periodic fees) add to the plan's :func:`apr`.
    Counting only what fees add keeps the rounding of payments to the fen
    out of the figure: a plan without fees costs exactly its contract rate.
    """
    fee = to_minor(upfront_fee, plan.currency, what="upfront_fee")
    if not fee and not any(plan.fee_parts):
        return plan.annual_rate
    with_fees = apr(plan, upfront_fee=upfront_fee)
    without = apr(plan, include_fees=False)
    return plan.annual_rate + with_fees - without


def check_rate_cap(plan_or_rate, contract_date: dt.date | None = None, cap=None, *,
                   upfront_fee=0) -> Decimal:
    """Refuse a plan (or an annual rate) whose all-in cost exceeds the cap.

    ``cap`` defaults to the judicial protection limit, 4 x the one-year LPR
    in force at ``contract_date`` (for a plan, default its start date); see
    :func:`ledger.rates.register_lpr` to extend the LPR history. Returns the
    all-in annual rate checked; raises :class:`RateCapExceededError` (with
    ``rate``, ``cap`` and ``contract_date``) above the cap, and
    :class:`UnknownLprError` when no LPR is on file for the date.
    """
    if isinstance(plan_or_rate, Plan):
        rate = all_in_rate(plan_or_rate, upfront_fee=upfront_fee)
        day = _date(contract_date if contract_date is not None else plan_or_rate.start,
                    "contract_date")
        what = "all-in annual cost"
    else:
        rate = parse_rate(plan_or_rate, what="annual rate", maximum=None)
        if contract_date is None and cap is None:
            raise ScheduleError("a contract date (or an explicit cap) is needed to check a rate")
        day = _date(contract_date, "contract_date") if contract_date is not None else None
        what = "annual rate"
    check_rate(rate, day, cap, what=what)
    return rate
