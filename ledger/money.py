"""Money: currencies, exact amounts, parsing and allocation.

Amounts are signed integers of a currency's minor unit (fen for CNY) inside
the ledger and :class:`~decimal.Decimal` at the API edge. Floats are refused
everywhere, with :class:`~ledger.errors.FloatAmountError`; an amount finer
than the minor unit is refused with :class:`~ledger.errors.PrecisionError`.
One posting moves at most :data:`MAX_AMOUNT_MINOR` minor units either way
(:func:`posting_minor`); more is an :class:`~ledger.errors.AmountError`
naming the limit.

Allocation (:func:`allocate`) splits an integer amount by weights with the
largest-remainder rule, so the parts always add up to the whole.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
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

#: The largest amount one posting may move, either way, in minor units: 10**15 fen is ten
#: trillion yuan, under a tenth of China's yearly GDP and several times everything the
#: country's P2P platforms ever had outstanding at once, so no real payment comes near it.
#: Balances and sums are signed 64-bit integers (at most 9.22 * 10**18): at this limit an
#: account would need more than 9,000 maximal postings, all one way, before its balance or
#: an entry's total could overflow, where a posting just inside 2**63 overflowed at once.
MAX_AMOUNT_MINOR = 10 ** 15

#: Digits of :data:`MAX_AMOUNT_MINOR`: an amount of 10**_LIMIT_DIGITS minor units or more is
#: beyond the limit whatever its other digits (judged from the exponent alone).
_LIMIT_DIGITS = len(str(MAX_AMOUNT_MINOR))

#: Digits the default decimal context keeps. :func:`to_minor` refuses an amount of more
#: minor units (the ledger's decimal arithmetic could not hold it exactly), and the fast paths
#: take a Decimal's integer ratio only while its leading digit is within this many places of
#: the point, so a huge or tiny exponent never builds a huge integer.
MAX_DIGITS = 28

#: A context in which scaling and normalizing never round, overflow or underflow.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


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

    Refuses floats, amounts finer than the currency's minor unit and amounts of more than
    :data:`MAX_DIGITS` digits of minor units (:func:`posting_minor` holds a posting to
    :data:`MAX_AMOUNT_MINOR`).
    """
    amount = to_decimal_exact(value, what=what)
    exp = exponent(currency)
    if amount and amount.adjusted() + exp >= MAX_DIGITS:   # before building a huge integer
        raise AmountError(
            f"{what}: {amount} {currency} is too large to be an amount "
            f"(more than {MAX_DIGITS} digits of minor units)",
            value=amount, currency=currency)
    scaled = amount.scaleb(exp, EXACT)
    if scaled != scaled.to_integral_value():
        raise PrecisionError(
            f"{what}: {amount} {currency} is finer than the minor unit (at most {exp} decimal places)",
            value=amount,
            currency=currency,
        )
    return int(scaled)


def posting_minor(value, currency: str = DEFAULT_CURRENCY, *, what: str = "amount") -> int:
    """:func:`to_minor` for one posting: also refuses more than :data:`MAX_AMOUNT_MINOR`
    minor units either way, judged from the exponent first (so ``1e999999999`` costs no
    more than ``1``)."""
    amount = to_decimal_exact(value, what=what)
    if amount and amount.adjusted() + exponent(currency) >= _LIMIT_DIGITS:
        raise beyond_limit(amount, currency, what=what)
    minor = to_minor(amount, currency, what=what)
    if -MAX_AMOUNT_MINOR <= minor <= MAX_AMOUNT_MINOR:
        return minor
    raise beyond_limit(amount, currency, what=what)


def check_posting_minor(minor: int, currency: str = DEFAULT_CURRENCY, *, what: str = "amount") -> int:
    """``minor`` (integer minor units) unless it is beyond :data:`MAX_AMOUNT_MINOR`."""
    if -MAX_AMOUNT_MINOR <= minor <= MAX_AMOUNT_MINOR:
        return minor
    raise beyond_limit(Decimal(minor).scaleb(-exponent(currency), EXACT), currency, what=what)


def beyond_limit(amount: Decimal, currency: str, *, what: str = "amount") -> AmountError:
    """The error for ``amount`` (major units), more than one posting may move."""
    limit = from_minor(MAX_AMOUNT_MINOR, currency)
    return AmountError(
        f"{what}: {amount} {currency} is beyond the limit of ±{limit:,} {currency} per posting",
        value=amount, currency=currency, limit=limit, limit_minor=MAX_AMOUNT_MINOR)


_SCALES: dict[str, int] = {}


def exact_minor(value, currency: str = DEFAULT_CURRENCY, what: str = "amount") -> int:
    """:func:`to_minor`, with a fast path for a Decimal holding a whole number of
    minor units (the usual case when plans and splits are made in bulk)."""
    if type(value) is Decimal and -MAX_DIGITS < value.adjusted() < MAX_DIGITS:
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
