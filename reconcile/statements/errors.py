"""Typed errors of the statement parsers.

Every error a parser raises on purpose is a :class:`StatementError`, itself an
:class:`ledger.errors.InputError`: bad input from a file. Each one names the
file and, where known, the position in it (``"line 12"``), so finance staff
can open the bank's file at the right place. Errors in user data are
collected and reported together: a :class:`StatementFormatError` carries
every bad line it found as :class:`Problem` values, not just the first.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Optional

from ledger.errors import InputError, LedgerError
from ledger.money import format_minor

#: How many problems an error message spells out; all are kept in ``problems``.
MESSAGE_PROBLEMS = 20


class Problem(NamedTuple):
    """One bad line (or field) of a statement file.

    Attributes:
      line: 1-based line number in the file, or None when the format has no
        meaningful line (then ``position`` in the message says where).
      field: the field or column concerned (``"amount"``, ``"DTPOSTED"``).
      message: what is wrong, in words finance staff can act on.
    """

    line: Optional[int]
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}, {self.field}: {self.message}"


class StatementError(InputError):
    """A statement file that cannot be imported.

    Attributes:
      file: the file's name (or None for bytes given without a name).
      position: where in the file (``"line 12"``), or None.
    """

    def __init__(self, message: str, *, file: Optional[str] = None,
                 position: Optional[str] = None, **fields):
        prefix = f"{file}: " if file else ""
        where = f"{position}: " if position else ""
        fields.setdefault("problems", ())
        super().__init__(f"{prefix}{where}{message}", file=file, position=position, **fields)

    @classmethod
    def collected(cls, problems: Iterable[Problem], *, file: Optional[str],
                  what: str = "problem") -> "StatementError":
        """One error reporting every problem, sorted by line."""
        found = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        first = found[0]
        position = f"line {first.line}" if first.line is not None else None
        if len(found) == 1:
            return cls(f"{first.field}: {first.message}", file=file, position=position,
                       problems=tuple(found))
        shown = "\n".join(f"  {p}" for p in found[:MESSAGE_PROBLEMS])
        more = len(found) - MESSAGE_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return cls(f"{len(found)} {what}s:\n{shown}{tail}", file=file, position=position,
                   problems=tuple(found))


class StatementFormatError(StatementError):
    """The file is not a well-formed statement of its format.

    Attributes:
      problems: tuple of every :class:`Problem` found (at least one).
    """


class UnsupportedFormatError(StatementError):
    """The file is not one of the formats the parsers read (or a variant they refuse).

    Attributes:
      format: the format asked for or detected, when there is one.
    """


class MappingError(StatementError):
    """A CSV column-mapping file that cannot be used.

    Attributes:
      problems: tuple of what is wrong with it.
    """


class Imbalance(NamedTuple):
    """Why one statement does not prove.

    Attributes:
      statement: the statement's label (account, id, dates).
      position: where the statement (or the first bad line) is in the file.
      currency: the statement's currency.
      opening_minor: the opening balance.
      lines_minor: the sum of the booked lines up to the point checked.
      closing_minor: the balance the bank states there.
      difference_minor: stated minus computed (None for a currency problem).
      reason: the explanation in words.
    """

    statement: str
    position: Optional[str]
    currency: str
    opening_minor: Optional[int]
    lines_minor: Optional[int]
    closing_minor: Optional[int]
    difference_minor: Optional[int]
    reason: str


class StatementImbalanceError(StatementError):
    """A statement that does not add up: opening + lines != closing.

    The statement is quarantined: nothing of the file may be imported.

    Attributes:
      statement, currency, opening_minor, lines_minor, closing_minor,
      difference_minor: the figures of the first failing statement.
      imbalances: tuple of :class:`Imbalance`, one per failing statement or
        running-balance break, in file order.
    """

    @classmethod
    def of(cls, imbalances: Iterable[Imbalance], *,
           file: Optional[str]) -> "StatementImbalanceError":
        """One error naming every failing statement with its figures."""
        found = tuple(imbalances)
        first = found[0]
        lines = [_describe(i) for i in found[:MESSAGE_PROBLEMS]]
        if len(found) > MESSAGE_PROBLEMS:
            lines.append(f"... and {len(found) - MESSAGE_PROBLEMS} more")
        message = lines[0] if len(found) == 1 else (
            f"{len(found)} balance failures:\n" + "\n".join(f"  {x}" for x in lines))
        return cls(message, file=file, position=first.position, statement=first.statement,
                   currency=first.currency, opening_minor=first.opening_minor,
                   lines_minor=first.lines_minor, closing_minor=first.closing_minor,
                   difference_minor=first.difference_minor, imbalances=found)


def money_reason(exc: Exception) -> str:
    """A money error's message without the ``value: `` prefix the parsers give it."""
    return str(exc).removeprefix("value: ")


def _money(minor: Optional[int], currency: str) -> str:
    if minor is None:
        return "none"
    try:
        return format_minor(minor, currency, grouping=True)
    except LedgerError:  # an unknown currency: still show the figure
        return str(minor)


def _describe(i: Imbalance) -> str:
    if i.difference_minor is None:
        return f"statement {i.statement} does not prove: {i.reason}"
    c = i.currency
    return (f"statement {i.statement} does not add up at {i.reason}: opening "
            f"{_money(i.opening_minor, c)} + lines {_money(i.lines_minor, c)} = "
            f"{_money((i.opening_minor or 0) + (i.lines_minor or 0), c)}, but the bank states "
            f"{_money(i.closing_minor, c)} {c} (difference {_money(i.difference_minor, c)})")


__all__ = ["money_reason", "Problem", "StatementError", "StatementFormatError",
           "UnsupportedFormatError", "MappingError", "Imbalance", "StatementImbalanceError"]
