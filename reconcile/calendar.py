"""Business days for reconciliation windows: weekends plus a holiday table.

This module owns the business-day arithmetic the matching engine uses to
decide whether a bank line and a ledger posting are "within N business days"
of each other. It is pure: no clock, no files.

Holidays and adjusted working days are *data the user supplies*, never
guesses baked into the code. China moves working days around public holidays
each year (调休: a Saturday or Sunday becomes a working day to bridge a
holiday); the State Council publishes the table every winter, so the
platform keeps it as a small text file and hands its lines to
:func:`parse_calendar`::

    # date        kind      note
    2026-10-01    holiday   National Day
    2026-10-10    workday   adjusted working day (a Saturday)

Distance. :meth:`BusinessCalendar.distance` counts the business days from
the earlier date (inclusive) to the later one (exclusive). Friday to Monday
is 1, Saturday to Monday is 0 (nothing could have happened at the bank in
between), Friday to Tuesday is 2. A window of 1 business day therefore
accepts a Friday posting the bank books on Monday.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, timedelta
from typing import Iterable, NamedTuple

from ledger.errors import InputError

#: Monday is 0 ... Sunday is 6, as in :meth:`datetime.date.weekday`.
SATURDAY_SUNDAY = frozenset({5, 6})

HOLIDAY = "holiday"
WORKDAY = "workday"


class CalendarError(InputError):
    """A calendar file with bad lines; ``problems`` lists every one of them.

    Attributes:
      source: the name the caller gave the calendar text (a file name).
      problems: tuple of ``(line_number, message)``, one per bad line.
    """


class BusinessCalendar(NamedTuple):
    """Which days a bank books on.

    Attributes:
      holidays: dates that are not business days although they fall on a
        weekday (public holidays).
      workdays: dates that are business days although they fall on a weekend
        day (adjusted working days, 调休).
      weekend: weekday numbers (Monday 0 ... Sunday 6) that are not business
        days unless listed in ``workdays``.
    """

    holidays: frozenset = frozenset()
    workdays: frozenset = frozenset()
    weekend: frozenset = SATURDAY_SUNDAY

    def is_business_day(self, day: date) -> bool:
        """True when the bank books on ``day``."""
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays

    def add_business_days(self, day: date, count: int) -> date:
        """The date ``count`` business days after ``day`` (before it when negative).

        ``add_business_days(friday, 1)`` is the next Monday; from a weekend
        day, one business day later is the first business day after it.
        """
        step = timedelta(days=1 if count >= 0 else -1)
        remaining = abs(count)
        current = day
        while remaining:
            current += step
            if self.is_business_day(current):
                remaining -= 1
        return current

    def distance(self, first: date, second: date) -> int:
        """Business days between two dates, in either order (never negative)."""
        if second < first:
            first, second = second, first
        return _count(self, first, second, *_sorted_exceptions(self))

    def positions(self, days: Iterable[date]) -> dict:
        """Each date's business-day position: ``distance(a, b) == abs(pos[a] - pos[b])``.

        Positions count business days from the earliest of ``days``; they let
        the matching engine compare millions of dates with one subtraction.
        Cost grows with the number of distinct dates, not the span.
        """
        distinct = sorted(set(days))
        if not distinct:
            return {}
        exceptions = _sorted_exceptions(self)
        result = {distinct[0]: 0}
        position = 0
        for before, day in zip(distinct, distinct[1:]):
            position += _count(self, before, day, *exceptions)
            result[day] = position
        return result


WEEKENDS_ONLY = BusinessCalendar()


def _sorted_exceptions(calendar: BusinessCalendar) -> tuple[list, list]:
    """Weekday holidays and weekend workdays, each sorted (the ones that change counts)."""
    weekend = calendar.weekend
    holidays = sorted(d for d in calendar.holidays
                      if d.weekday() not in weekend and d not in calendar.workdays)
    workdays = sorted(d for d in calendar.workdays if d.weekday() in weekend)
    return holidays, workdays


def _count(calendar: BusinessCalendar, start: date, end: date,
           holidays: list, workdays: list) -> int:
    """Business days in ``[start, end)``; ``start <= end``."""
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    per_week = 7 - len(calendar.weekend)
    first = start.weekday()
    count = weeks * per_week + sum(
        1 for offset in range(rest) if (first + offset) % 7 not in calendar.weekend)
    count -= bisect_left(holidays, end) - bisect_left(holidays, start)
    count += bisect_left(workdays, end) - bisect_left(workdays, start)
    return count


def parse_calendar(lines: Iterable[str], *, source: str = "<calendar>",
                   weekend: frozenset = SATURDAY_SUNDAY) -> BusinessCalendar:
    """A :class:`BusinessCalendar` from text lines ``YYYY-MM-DD holiday|workday [note]``.

    Blank lines and ``#`` comments are ignored. Every bad line is collected
    and reported together in one :class:`CalendarError`: an unreadable date,
    an unknown kind, or a date listed as both a holiday and a workday.
    """
    holidays: dict = {}
    workdays: dict = {}
    problems = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split(None, 2)
        if len(fields) < 2:
            problems.append((number, f"expected 'YYYY-MM-DD holiday|workday', got {raw.strip()!r}"))
            continue
        try:
            day = date.fromisoformat(fields[0])
        except ValueError:
            problems.append((number, f"{fields[0]!r} is not a date (YYYY-MM-DD)"))
            continue
        kind = fields[1].lower()
        if kind not in (HOLIDAY, WORKDAY):
            problems.append((number, f"kind {fields[1]!r} is neither {HOLIDAY!r} nor {WORKDAY!r}"))
            continue
        mine, other = (holidays, workdays) if kind == HOLIDAY else (workdays, holidays)
        if day in other:
            problems.append((number, f"{day} is listed as both a holiday and a workday "
                                     f"(see line {other[day]})"))
            continue
        mine.setdefault(day, number)
    if problems:
        listing = "; ".join(f"line {n}: {m}" for n, m in problems)
        raise CalendarError(f"{source}: {len(problems)} bad calendar line(s): {listing}",
                            source=source, problems=tuple(problems))
    return BusinessCalendar(frozenset(holidays), frozenset(workdays), frozenset(weekend))
