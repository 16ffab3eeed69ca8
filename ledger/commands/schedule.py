"""The ``schedule`` command: a repayment plan, and investors' plans, on the command line.

It only computes (no database): :func:`ledger.schedules.schedule` and
:func:`ledger.schedules.split` do the work; this module parses options and
the investors file and prints rows and totals as a table, CSV or JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import click

from ..errors import InputError, LedgerError
from ..schedules import (
    DAY_COUNTS, METHODS, ROUNDINGS, ScheduleError, all_in_rate, schedule, split,
)
from .common import BadInput, emit, format_option, library_errors, to_json

ROW_COLUMNS = ["seq", "due_date", "opening", "principal", "interest", "fee", "payment", "closing"]
INVESTOR_COLUMNS = ["investor", "seq", "due_date", "principal", "interest", "management_fee", "net"]
INVESTOR_TOTAL_COLUMNS = ["investor", "funded", "principal", "interest", "management_fee", "net"]
METHOD_CHOICES = [m.replace("_", "-") for m in METHODS]


def read_investors(handle, currency: str) -> list[tuple[str, Decimal]]:
    """``investor,amount`` lines (an optional header, blank and ``#`` lines skipped).

    Raises :class:`~ledger.errors.InputError` naming the line of a bad row.
    """
    name = getattr(handle, "name", "investors")
    out = []
    for number, row in enumerate(csv.reader(handle), start=1):
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        if len(row) < 2:
            raise InputError(f"{name} line {number}: expected investor,amount", line=number)
        investor, amount = row[0].strip(), row[1].strip()
        if number == 1 and not amount.replace(".", "", 1).replace(",", "").isdigit():
            continue  # a header line
        if not investor:
            raise InputError(f"{name} line {number}: the investor is empty", line=number)
        try:
            value = Decimal(amount.replace(",", ""))
        except ArithmeticError:
            raise InputError(f"{name} line {number}: {amount!r} is not an amount", line=number) from None
        out.append((investor, value))
    if not out:
        raise InputError(f"{name}: no investors", line=0)
    return out


def _row_dict(row) -> dict:
    return {"seq": row.seq, "due_date": row.due_date, "opening": row.opening,
            "principal": row.principal, "interest": row.interest, "fee": row.fee,
            "payment": row.payment, "closing": row.closing}


def _plan_totals(plan) -> dict:
    return {"principal": plan.total_principal, "interest": plan.total_interest,
            "fee": plan.total_fee, "payment": plan.total_payment}


def _investor_rows(inv) -> list[dict]:
    return [{"investor": inv.investor, "seq": r.seq, "due_date": r.due_date,
             "principal": r.principal, "interest": r.interest,
             "management_fee": r.management_fee, "net": r.net} for r in inv.rows]


def _investor_totals(inv) -> dict:
    return {"investor": inv.investor, "funded": inv.funded, "principal": inv.total_principal,
            "interest": inv.total_interest, "management_fee": inv.total_management_fee,
            "net": inv.total_net}


@click.command("schedule")
@click.option("--principal", required=True, help="Amount lent, e.g. 100000 or 100000.00.")
@click.option("--rate", required=True, help="Annual contract rate: 6% or 0.06.")
@click.option("--months", type=int, help="Term in months.")
@click.option("--days", type=int, help="Term in days (bullet and interest-only loans).")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="equal-installment",
              show_default=True, help="Repayment method.")
@click.option("--start", help="Start date, YYYY-MM-DD (default: today); due dates count from it.")
@click.option("--day-count", type=click.Choice(DAY_COUNTS, case_sensitive=False),
              help="Period interest: monthly (annual/12; default for months) or a day count "
                   "(default ACT/360 for days).")
@click.option("--rounding", type=click.Choice(ROUNDINGS, case_sensitive=False), default="HALF_UP",
              show_default=True, help="Rounding of every amount to the fen.")
@click.option("--multiple", help="Round the installment to a multiple of this amount (1: whole yuan).")
@click.option("--fee", help="Fee added to every installment.")
@click.option("--fee-rate", help="Fee added to every installment, as a rate of the principal.")
@click.option("--upfront-fee", default="0", help="Fee deducted at disbursement (counts in the APR).")
@click.option("--investors", "investors_file", type=click.File("r"),
              help="CSV of investor,amount: split the plan among the investors who funded it.")
@click.option("--management-fee", default="0", show_default=True,
              help="Platform fee on investors' interest: 10% or 0.1.")
@click.option("--currency", default="CNY", show_default=True, help="Currency code.")
@format_option
@library_errors
def schedule_cmd(principal, rate, months, days, method, start, day_count, rounding, multiple, fee,
                 fee_rate, upfront_fee, investors_file, management_fee, currency, fmt):
    """Print a loan's repayment plan, with totals (and investors' plans).

    Amounts are exact to the fen; the last installment absorbs rounding,
    and the totals are the sums of the rows. With --investors the
    borrower's rows are split among the investors (largest remainder on
    running totals); CSV output then lists the investors' rows.

    Example:

        ledger schedule --principal 100000 --rate 6% --months 12 --method equal-installment

    prints twelve installments of 8606.64 (the last 8606.69, taking up the
    rounding), total interest 3279.73. Also:

        ledger schedule --principal 50000 --rate 0.08 --days 90 --method bullet --start 2025-06-01

        ledger schedule --principal 100000 --rate 6% --months 12 --investors investors.csv --format json
    """
    if (months is None) == (days is None):
        raise BadInput("give the term as exactly one of --months N or --days N")
    start_date = None
    if start is not None:
        try:
            start_date = dt.date.fromisoformat(start)
        except ValueError:
            raise BadInput(f"--start: {start!r} is not a date (YYYY-MM-DD)") from None
    try:
        plan = schedule(principal, rate, months if days is None else days, method.replace("-", "_"),
                        start=start_date, term_unit="month" if days is None else "day",
                        day_count=day_count, rounding=rounding.upper(), installment_multiple=multiple,
                        periodic_fee=fee, periodic_fee_rate=fee_rate, currency=currency)
        cost = _annual_cost(plan, upfront_fee)
        investors = None
        if investors_file is not None:
            investors = split(plan, read_investors(investors_file, currency),
                              management_fee_rate=management_fee)
    except InputError:
        raise
    except LedgerError as exc:
        raise BadInput(f"{type(exc).__name__}: {exc}") from exc
    _print(plan, cost, investors, fmt)


def _annual_cost(plan, upfront_fee) -> Decimal | None:
    try:
        return all_in_rate(plan, upfront_fee=upfront_fee)
    except ScheduleError:
        return None  # no meaningful IRR (e.g. the fee takes all the principal)


def _percent(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.0001'))}%"


def _print(plan, cost, investors, fmt: str) -> None:
    rows = [_row_dict(r) for r in plan.rows]
    totals = _plan_totals(plan)
    if fmt == "json":
        data = {"plan": {"principal": plan.principal, "annual_rate": plan.annual_rate,
                         "term": plan.term, "term_unit": plan.term_unit,
                         "method": plan.method, "start": plan.start, "day_count": plan.day_count,
                         "rounding": plan.rounding, "currency": plan.currency,
                         "installment": plan.installment, "annual_cost": cost},
                "rows": rows, "totals": totals}
        if investors is not None:
            data["management_fee_rate"] = investors.management_fee_rate
            data["investors"] = [{**_investor_totals(inv), "rows": _investor_rows(inv)}
                                 for inv in investors.investors]
        click.echo(to_json(data))
        return
    if fmt == "csv":
        if investors is None:
            emit(rows + [{"seq": "total", **totals}], ROW_COLUMNS, "csv")
        else:
            emit([r for inv in investors.investors for r in _investor_rows(inv)],
                 INVESTOR_COLUMNS, "csv")
        return
    cur = plan.currency
    title = (f"{plan.method.replace('_', ' ')}: {plan.principal} {cur} at "
             f"{_percent(plan.annual_rate)} for {plan.term} {plan.term_unit}s from {plan.start} "
             f"({plan.day_count}, {plan.rounding})")
    footer = [f"total: principal {totals['principal']}, interest {totals['interest']}, "
              f"fee {totals['fee']}, payment {totals['payment']} {cur}"]
    if plan.installment is not None:
        footer.append(f"installment: {plan.installment} {cur} (the last row takes up the rounding)")
    footer.append(f"annual cost (interest and fees): {_percent(cost)}")
    emit(rows, ROW_COLUMNS, "table", title=title, footer=footer)
    if investors is not None:
        click.echo("")
        inv_rows = [r for inv in investors.investors for r in _investor_rows(inv)]
        emit(inv_rows, INVESTOR_COLUMNS, "table",
             title=f"investors (management fee {_percent(investors.management_fee_rate)} of interest)")
        click.echo("")
        emit([_investor_totals(inv) for inv in investors.investors], INVESTOR_TOTAL_COLUMNS, "table",
             title="investor totals")


COMMANDS = [schedule_cmd]
