"""Rates: parsing, rounding rules, day counts, the LPR history, rate caps, IRR.

This module owns the conventions the repayment plans in
:mod:`ledger.schedules` are computed by, kept apart so they can be read and
tested on their own:

* :func:`parse_rate` turns ``"6%"``, ``"0.06"`` or ``Decimal("0.06")`` into a
  Decimal fraction; floats are refused with
  :class:`~ledger.errors.FloatAmountError`.
* :func:`rdiv` divides integers with one of the rounding rules ``HALF_UP``,
  ``HALF_EVEN`` or ``DOWN``, exactly (no Decimal context, no floats).
* :func:`year_fraction` is the day count: ``30/360``, ``ACT/360``,
  ``ACT/365`` or ``ACT/ACT``, as an exact :class:`~fractions.Fraction`.
* the one-year Loan Prime Rate (LPR) history is data: ``ledger/data/lpr.csv``
  ships the published figures and :func:`register_lpr` adds more;
  :func:`lpr_on` answers the rate in force on a date.
* :func:`check_rate` refuses an annual cost above a cap, by default the
  judicial protection limit of four times the one-year LPR at the contract
  date, with :class:`RateCapExceededError` naming the cap and the rate.
* :func:`annualised_irr` solves the internal rate of return of a cash flow
  (bracketed Newton in Decimal) and annualises it.

The errors of schedules and rates, :class:`ScheduleError` and its
subclasses, are defined here and re-exported by :mod:`ledger.schedules`.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
from decimal import Decimal, localcontext
from fractions import Fraction
from importlib import resources
from typing import Iterable, NamedTuple, Sequence

from .errors import AmountError, FloatAmountError, LedgerError

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# --- errors ------------------------------------------------------------------------------------


class ScheduleError(LedgerError):
    """A repayment plan, split, payoff or rate that cannot be computed as asked."""


class RateCapExceededError(ScheduleError):
    """An annual cost above the cap; ``rate``, ``cap`` and ``contract_date`` say which."""


class UnknownLprError(ScheduleError):
    """No one-year LPR is on file for the date; register one or pass a cap."""


# --- rates ---------------------------------------------------------------------------------------

#: An annual rate at or above this is taken for a percentage written without ``%``.
MAX_ANNUAL_RATE = ONE


def parse_rate(value, *, what: str = "rate", maximum: Decimal | None = MAX_ANNUAL_RATE) -> Decimal:
    """``"6%"``, ``"0.06"``, ``Decimal("0.06")`` or ``0`` as the Decimal fraction ``0.06``.

    Floats are refused (:class:`~ledger.errors.FloatAmountError`); negative
    rates and rates at or above ``maximum`` (default 1, i.e. 100 %, which is
    almost always ``6`` written for ``6%``) raise :class:`ScheduleError`.
    """
    if isinstance(value, float):
        raise FloatAmountError(f"{what}: float {value!r} refused; pass a Decimal or a string",
                               value=value)
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1]
        try:
            rate = Decimal(text.strip()) / HUNDRED
        except ArithmeticError:
            raise ScheduleError(f"{what}: {value!r} is not a rate (6% or 0.06)", value=value) from None
    else:
        try:
            rate = _decimal(value, what)
        except AmountError as exc:
            raise ScheduleError(f"{what}: {value!r} is not a rate (6% or 0.06)", value=value) from exc
    if not rate.is_finite() or rate < 0:
        raise ScheduleError(f"{what}: {value!r} must be a rate of zero or more", value=value)
    if maximum is not None and rate >= maximum:
        raise ScheduleError(
            f"{what}: {value!r} is {rate * HUNDRED}%; give rates as fractions (0.06) or "
            f"percentages (6%)", value=value, maximum=maximum)
    return rate


def _decimal(value, what: str) -> Decimal:
    from .money import to_decimal_exact

    return to_decimal_exact(value, what=what)


def ratio(rate: Decimal) -> tuple[int, int]:
    """A Decimal as an exact ``(numerator, denominator)`` pair in lowest terms."""
    return rate.as_integer_ratio()


# --- rounding ------------------------------------------------------------------------------------

HALF_UP = "HALF_UP"
HALF_EVEN = "HALF_EVEN"
DOWN = "DOWN"
ROUNDINGS = (HALF_UP, HALF_EVEN, DOWN)


def normalize_rounding(rounding: str) -> str:
    """``"HALF_UP"``, ``"half-up"`` or ``decimal.ROUND_HALF_UP`` to ``"HALF_UP"``."""
    text = str(rounding).strip().upper().replace("-", "_")
    if text.startswith("ROUND_"):
        text = text[len("ROUND_"):]
    if text not in ROUNDINGS:
        raise ScheduleError(f"rounding {rounding!r} is not one of {', '.join(ROUNDINGS)}",
                            rounding=rounding)
    return text


def rdiv(num: int, den: int, rounding: str) -> int:
    """``num / den`` rounded to an integer by ``rounding`` (``den > 0``).

    ``HALF_UP`` rounds halves away from zero, ``HALF_EVEN`` to the even
    neighbour, ``DOWN`` towards zero; exact integer arithmetic throughout.
    """
    q, r = divmod(num, den)
    if not r:
        return q
    if rounding == DOWN:
        return q + 1 if num < 0 else q
    twice = r + r
    if rounding == HALF_UP:
        if num >= 0:
            return q + 1 if twice >= den else q
        return q + 1 if twice > den else q
    if twice > den or (twice == den and q & 1):
        return q + 1
    return q


# --- day counts -----------------------------------------------------------------------------------

MONTHLY = "monthly"
THIRTY_360 = "30/360"
ACT_360 = "ACT/360"
ACT_365 = "ACT/365"
ACT_ACT = "ACT/ACT"
#: ``monthly`` is annual/12 per monthly period; the others count days.
DAY_COUNTS = (MONTHLY, THIRTY_360, ACT_360, ACT_365, ACT_ACT)
ACTUAL_DAY_COUNTS = (THIRTY_360, ACT_360, ACT_365, ACT_ACT)
MONTHS_PER_YEAR = 12
DAYS_PER_YEAR = 365


def normalize_day_count(day_count: str) -> str:
    """``"act/365"`` to ``"ACT/365"``; unknown names raise :class:`ScheduleError`."""
    text = str(day_count).strip().upper()
    if text == "MONTHLY":
        return MONTHLY
    text = {"ACT/365F": ACT_365, "ACT/365 FIXED": ACT_365, "30/360 BOND": THIRTY_360}.get(text, text)
    if text not in DAY_COUNTS:
        raise ScheduleError(f"day count {day_count!r} is not one of {', '.join(DAY_COUNTS)}",
                            day_count=day_count)
    return text


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_year(year: int) -> int:
    return 366 if _is_leap(year) else 365


def year_fraction(start: dt.date, end: dt.date, day_count: str) -> Fraction:
    """The exact fraction of a year from ``start`` to ``end`` under ``day_count``.

    * ``30/360``: the ISDA bond basis: a 31st as the first day counts as the
      30th; a 31st as the last day counts as the 30th when the first day is
      the 30th or 31st; February is not adjusted.
    * ``ACT/360``, ``ACT/365`` (fixed): actual days over 360 or 365.
    * ``ACT/ACT`` (ISDA): days falling in a leap year over 366, the others
      over 365.

    ``monthly`` has no day count and is refused here.
    """
    if day_count == ACT_360:
        return Fraction((end - start).days, 360)
    if day_count == ACT_365:
        return Fraction((end - start).days, 365)
    if day_count == THIRTY_360:
        d1 = 30 if start.day == 31 else start.day
        d2 = 30 if end.day == 31 and d1 >= 30 else end.day
        days = 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)
        return Fraction(days, 360)
    if day_count == ACT_ACT:
        if end < start:
            return -year_fraction(end, start, day_count)
        total = Fraction(0)
        cursor = start
        while cursor.year < end.year:
            next_year = dt.date(cursor.year + 1, 1, 1)
            total += Fraction((next_year - cursor).days, _days_in_year(cursor.year))
            cursor = next_year
        return total + Fraction((end - cursor).days, _days_in_year(cursor.year))
    raise ScheduleError(f"day count {day_count!r} does not count days", day_count=day_count)


# --- the one-year LPR -------------------------------------------------------------------------------


class LprFixing(NamedTuple):
    """A one-year Loan Prime Rate in force from a date.

    Attributes:
        effective_date: the date of the fixing (the 20th, or the next working day).
        rate: the one-year LPR as a fraction (``Decimal("0.0310")`` for 3.10 %).
    """

    effective_date: dt.date
    rate: Decimal


LPR_RESOURCE = "data/lpr.csv"
#: The judicial protection limit: four times the one-year LPR at the contract date.
JUDICIAL_CAP_MULTIPLE = 4

_lpr: list[LprFixing] | None = None


def _load_lpr() -> list[LprFixing]:
    text = resources.files(__package__).joinpath(LPR_RESOURCE).read_text(encoding="utf-8")
    return sorted(parse_lpr_csv(text))


def parse_lpr_csv(text: str) -> list[LprFixing]:
    """Rows ``effective_date,one_year_lpr`` (a header line is skipped) as fixings.

    Rates are fractions (``0.0310``) or percentages (``3.10%``).
    """
    out = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if number == 1 and not row[0].strip()[:1].isdigit():
            continue
        try:
            day = dt.date.fromisoformat(row[0].strip())
        except ValueError:
            raise ScheduleError(f"LPR line {number}: {row[0]!r} is not a date", line=number) from None
        if len(row) < 2:
            raise ScheduleError(f"LPR line {number}: no rate", line=number)
        out.append(LprFixing(day, parse_rate(row[1], what=f"LPR line {number}")))
    return out


def _fixings() -> list[LprFixing]:
    global _lpr
    if _lpr is None:
        _lpr = _load_lpr()
    return _lpr


def lpr_history() -> tuple[LprFixing, ...]:
    """Every one-year LPR fixing on file, oldest first (shipped and registered)."""
    return tuple(_fixings())


def register_lpr(effective_date: dt.date, rate) -> None:
    """Add (or correct) the one-year LPR in force from ``effective_date``.

    The shipped history lists only the fixings that changed the rate; add
    new ones as they are published. Registration lasts for the process.
    """
    if not isinstance(effective_date, dt.date) or isinstance(effective_date, dt.datetime):
        raise ScheduleError("register_lpr: effective_date must be a date", value=effective_date)
    fixing = LprFixing(effective_date, parse_rate(rate, what="LPR"))
    fixings = [f for f in _fixings() if f.effective_date != effective_date]
    fixings.append(fixing)
    fixings.sort()
    global _lpr
    _lpr = fixings


def lpr_on(day: dt.date) -> Decimal:
    """The one-year LPR in force on ``day`` (the last fixing on or before it)."""
    fixings = _fixings()
    index = bisect.bisect_right([f.effective_date for f in fixings], day)
    if index == 0:
        first = fixings[0].effective_date if fixings else None
        raise UnknownLprError(
            f"no one-year LPR on file for {day} (the history starts {first}); "
            f"register one with register_lpr() or pass an explicit cap", date=day)
    return fixings[index - 1].rate


def judicial_cap(contract_date: dt.date) -> Decimal:
    """Four times the one-year LPR in force at ``contract_date``.

    This is the limit Chinese courts protect for private lending contracts
    made since the 2020 revision of the Supreme People's Court provisions;
    for older contracts pass the cap that applied explicitly.
    """
    return JUDICIAL_CAP_MULTIPLE * lpr_on(contract_date)


def _percent(rate: Decimal) -> str:
    return f"{(rate * HUNDRED).normalize():f}%"


def check_rate(rate, contract_date: dt.date, cap=None, *, what: str = "annual cost") -> Decimal:
    """Refuse ``rate`` above ``cap`` (default :func:`judicial_cap` at the contract date).

    Returns the cap applied. A rate equal to the cap passes.
    """
    rate = parse_rate(rate, what=what, maximum=None)
    if cap is None:
        cap = judicial_cap(contract_date)
        source = (f"{JUDICIAL_CAP_MULTIPLE} x one-year LPR {_percent(lpr_on(contract_date))} "
                  f"on {contract_date}")
    else:
        cap = parse_rate(cap, what="cap", maximum=None)
        source = "the configured cap"
    if rate > cap:
        raise RateCapExceededError(
            f"{what} {_percent(rate)} exceeds the cap {_percent(cap)} ({source})",
            rate=rate, cap=cap, contract_date=contract_date)
    return cap


# --- internal rate of return -------------------------------------------------------------------------

IRR_PRECISION = 40
IRR_TOLERANCE = Decimal("1e-24")
IRR_MAX_STEPS = 200
#: Annual rates are given to this many places (1e-10 is a millionth of a basis point).
IRR_QUANTUM = Decimal("1e-10")


def _npv(rate: Decimal, flows: Sequence[tuple[int, int]]) -> tuple[Decimal, Decimal]:
    """Net present value at the periodic ``rate`` and its derivative."""
    v = ONE / (ONE + rate)
    value = ZERO
    slope = ZERO
    for t, amount in flows:
        discounted = amount * v ** t
        value += discounted
        slope -= t * discounted * v
    return value, slope


def annualised_irr(flows: Iterable[tuple[int, int]], periods_per_year: int) -> Decimal:
    """The periodic IRR of ``flows`` times ``periods_per_year``.

    ``flows`` are ``(t, amount)`` pairs: ``t`` whole periods from the start
    and ``amount`` in minor units, money lent negative and money paid back
    positive. The periodic rate is found by Newton steps kept inside a
    bracket (bisection when a step leaves it) in 40-digit Decimal
    arithmetic, and the annual figure is the periodic rate times
    ``periods_per_year`` (a nominal rate, as IRR disclosures in China state
    it), rounded to ten decimal places.
    """
    flows = [(int(t), int(amount)) for t, amount in flows]
    if not any(a > 0 for _, a in flows) or not any(a < 0 for _, a in flows):
        raise ScheduleError("an IRR needs money both lent and paid back", flows=flows)
    with localcontext() as ctx:
        ctx.prec = IRR_PRECISION
        lo, hi = Decimal("-0.9"), Decimal(1)
        while _npv(hi, flows)[0] > 0:
            hi *= 2
            if hi > 10 ** 6:
                raise ScheduleError("the IRR is beyond any sensible rate", flows=flows)
        if _npv(lo, flows)[0] < 0:
            raise ScheduleError("the IRR is below -90% a period", flows=flows)
        rate = Decimal("0.01")
        for _ in range(IRR_MAX_STEPS):
            value, slope = _npv(rate, flows)
            if value > 0:
                lo = rate
            else:
                hi = rate
            step = value / slope if slope else ZERO
            candidate = rate - step
            if not (lo < candidate < hi):
                candidate = (lo + hi) / 2
            if abs(candidate - rate) < IRR_TOLERANCE:
                rate = candidate
                break
            rate = candidate
        annual = rate * periods_per_year
    return annual.quantize(IRR_QUANTUM)
