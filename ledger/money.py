"""Money: currencies, exact amounts, parsing and allocation.

Amounts are signed integers of a currency's minor unit (fen for CNY) inside
the ledger and :class:`~decimal.Decimal` at the API edge. Floats are refused
everywhere, with :class:`~ledger.errors.FloatAmountError`; an amount finer
than the minor unit is refused with :class:`~ledger.errors.PrecisionError`.

Allocation (:func:`allocate`) splits an integer amount by weights with the
largest-remainder rule, so the parts always add up to the whole.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from operator import attrgetter
from typing import Iterable, Sequence

from .errors import AmountError, FloatAmountError, PrecisionError, UnknownCurrencyError

ZERO = Decimal(0)

#: ISO 4217 minor-unit exponents of the currencies the ledger knows.
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "AUD": 2,
    "CAD": 2, "SGD": 2, "NZD": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
    "TWD": 2, "MOP": 2, "JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3,
}

DEFAULT_CURRENCY = "CNY"


def exponent(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrencyError(
            f"unknown currency {currency!r}; known: {', '.join(sorted(CURRENCY_EXPONENTS))}",
            currency=currency,
        ) from None


def to_decimal_exact(value, *, what: str = "amount") -> Decimal:
    """``value`` (Decimal, int or str) as a finite Decimal; floats refused."""
    if isinstance(value, bool):
        raise AmountError(f"{what}: a boolean is not an amount", value=value)
    if isinstance(value, float):
        raise FloatAmountError(
            f"{what}: float {value!r} refused; pass a Decimal, an int or a string",
            value=value,
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise AmountError(f"{what}: {value!r} is not a number", value=value) from None
    else:
        raise AmountError(
            f"{what}: {type(value).__name__} is not an amount; pass a Decimal, an int or a string",
            value=value,
        )
    if not result.is_finite():
        raise AmountError(f"{what}: {value!r} is not a finite number", value=value)
    return result


def to_minor(value, currency: str = DEFAULT_CURRENCY, *, what: str = "amount") -> int:
    """Convert a major-unit amount (``Decimal("12.34")``) to minor units (``1234``).

    Refuses floats and amounts finer than the currency's minor unit.
    """
    amount = to_decimal_exact(value, what=what)
    exp = exponent(currency)
    scaled = amount.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise PrecisionError(
            f"{what}: {amount} {currency} is finer than the minor unit (at most {exp} decimal places)",
            value=amount,
            currency=currency,
        )
    return int(scaled)


_SCALES: dict[str, int] = {}


def exact_minor(value, currency: str = DEFAULT_CURRENCY, what: str = "amount") -> int:
    """:func:`to_minor`, with a fast path for a Decimal holding a whole number of
    minor units (the usual case when plans and splits are made in bulk)."""
    if type(value) is Decimal:
        scale = _SCALES.get(currency)
        if scale is None:
            scale = _SCALES[currency] = 10 ** exponent(currency)
        try:
            num, den = value.as_integer_ratio()
        except (ValueError, OverflowError):  # NaN, infinity: to_minor names the problem
            pass
        else:
            minor, rest = divmod(num * scale, den)
            if not rest:
                return minor
    return to_minor(value, currency, what=what)


def from_minor(minor: int, currency: str = DEFAULT_CURRENCY) -> Decimal:
    """Minor units back to a Decimal with exactly the currency's decimal places."""
    exp = exponent(currency)
    return Decimal(int(minor)).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def amount_property(field: str) -> property:
    """A read-only Decimal view of the minor-unit attribute ``field``, in the
    object's own ``currency`` (plan and split rows keep integers, show Decimals)."""
    get = attrgetter(field)
    return property(lambda self: from_minor(get(self), self.currency))


def format_minor(minor: int, currency: str = DEFAULT_CURRENCY, *, grouping: bool = False) -> str:
    """Minor units as text, ``123456`` -> ``"1234.56"`` (``"1,234.56"`` with grouping)."""
    value = from_minor(minor, currency)
    return f"{value:,}" if grouping else f"{value}"


def quantize(value: Decimal, currency: str = DEFAULT_CURRENCY, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round a Decimal to the currency's minor unit."""
    return value.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=rounding)


def allocate(total: int, weights: Sequence[int | Decimal | Fraction]) -> list[int]:
    """Split integer ``total`` in proportion to ``weights`` by largest remainder.

    The parts always sum exactly to ``total``. Each part is first the floor of
    its exact share; the leftover units go one each to the largest fractional
    remainders, ties broken by position (earlier first). Negative totals are
    split as the negation of the positive split. Weights must be >= 0 and not
    all zero.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise AmountError("allocate: total must be an integer of minor units", value=total)
    if total < 0:
        return [-part for part in allocate(-total, weights)]
    fracs = []
    for w in weights:
        if isinstance(w, float):
            raise FloatAmountError(f"allocate: float weight {w!r} refused", value=w)
        fw = Fraction(w)
        if fw < 0:
            raise AmountError("allocate: weights must not be negative", value=w)
        fracs.append(fw)
    denom = sum(fracs)
    if not fracs or denom == 0:
        raise AmountError("allocate: weights must not all be zero", value=list(weights))
    exact = [total * w / denom for w in fracs]
    parts = [int(e) for e in exact]  # floor: all non-negative
    leftover = total - sum(parts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


def sum_minor(values: Iterable[int]) -> int:
    """Sum of integer minor units (a named helper so intent reads clearly)."""
    return sum(values, 0)
