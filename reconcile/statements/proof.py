"""The balance proof: opening balance + booked lines = closing balance.

Every statement is proved before anything of its file is imported. A
statement proves when its opening booked balance plus the sum of its booked
lines equals its closing booked balance, all in the statement's currency;
where the bank states a running balance after each line (the CSV day file),
every one of those is checked too, so a break is pinned to its line.

A statement whose format gives no opening or no closing balance (an OFX
file, which states only its ledger balance) cannot be proved: it is marked
``"unproved"``, never proved by deriving the missing figure from the others.
A statement that does not add up makes the whole file fail with one
:class:`~reconcile.statements.errors.StatementImbalanceError` naming every
failing statement, its figures and the difference.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import Imbalance, StatementImbalanceError
from .model import BOOKED, PROVED, UNPROVED, ParsedFile, Statement


def check_statement(statement: Statement) -> tuple[str, tuple[Imbalance, ...]]:
    """The proof state of ``statement`` and every reason it fails (empty when it proves)."""
    found: list[Imbalance] = []
    cur = statement.currency
    label = statement.label

    def currency_problem(what: str, currency: str, position) -> None:
        found.append(Imbalance(label, position, cur, None, None, None, None,
                               f"{what} is in {currency}, the statement in {cur}"))

    for name, balance in (("the opening balance", statement.opening),
                          ("the closing balance", statement.closing)):
        if balance is not None and balance.currency != cur:
            currency_problem(name, balance.currency, balance.source_position or
                             statement.source_position)
    for line in statement.lines:
        if line.currency != cur:
            currency_problem(f"the line at {line.source_position}", line.currency,
                             line.source_position)
    if found:
        return UNPROVED, tuple(found)
    if statement.opening is None or statement.closing is None:
        return UNPROVED, ()

    opening = statement.opening.amount_minor
    running = opening
    breaks = 0
    for line in statement.lines:
        if line.status != BOOKED:
            continue
        running += line.amount_minor
        stated = line.balance_after_minor
        if stated is not None and stated != running:
            found.append(Imbalance(label, line.source_position, cur, opening, running - opening,
                                   stated, stated - running,
                                   f"the balance after {line.source_position}"))
            breaks += 1
            running = stated  # report each break once, not every line after it
    closing = statement.closing.amount_minor
    if not breaks and running != closing:
        found.append(Imbalance(label, statement.source_position, cur, opening, running - opening,
                               closing, closing - running, "the closing balance"))
    return (UNPROVED if found else PROVED), tuple(found)


def prove_statement(statement: Statement) -> Statement:
    """``statement`` marked proved or unproved; raises if it does not add up."""
    state, found = check_statement(statement)
    if found:
        raise StatementImbalanceError.of(found, file=statement.filename)
    return replace(statement, proof=state)


def prove_file(parsed: ParsedFile) -> ParsedFile:
    """Every statement of ``parsed`` proved; one error naming all that fail."""
    proved, found = [], []
    for statement in parsed.statements:
        state, problems = check_statement(statement)
        found.extend(problems)
        proved.append(replace(statement, proof=state))
    if found:
        raise StatementImbalanceError.of(found, file=parsed.filename)
    return replace(parsed, statements=tuple(proved))


__all__ = ["check_statement", "prove_statement", "prove_file"]
