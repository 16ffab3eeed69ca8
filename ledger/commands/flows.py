"""CLI of the P2P money flows: users, top-ups, withdrawals, loans, penalties."""

from __future__ import annotations

from decimal import Decimal

import click

from .common import db_option, emit, format_option, library_errors, to_json
from .core import open_book, parse_date

ENTRY_COLUMNS = ["id", "key", "kind", "phase", "effective_date", "external_ref", "status"]


def _entry_rows(entries) -> list[dict]:
    return [{"id": e.id, "key": e.key, "kind": e.kind, "phase": e.phase,
             "effective_date": e.effective_date, "external_ref": e.external_ref,
             "status": "replayed" if e.replayed else "posted"} for e in entries if e is not None]


def _show_entries(entries, fmt) -> None:
    emit(_entry_rows(entries), ENTRY_COLUMNS, fmt)


def _rate(value: str) -> Decimal:
    """``6%`` or ``0.06`` to Decimal("0.06")."""
    text = value.strip()
    try:
        return Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except ArithmeticError:
        raise click.BadParameter(f"{value!r} is not a rate (6% or 0.06)") from None


@click.group("user")
def user_group():
    """Users' custody wallets.

    Example:

        ledger user open alice
    """


@user_group.command("open")
@click.argument("user")
@click.option("--name", help="Description.")
@db_option
@library_errors
def user_open_cmd(user, name, db_url):
    """Open a user's wallet accounts (available, frozen, withdrawing).

    Example:

        ledger user open alice --name "Alice Wang"
    """
    book = open_book(db_url)
    book.flows.open_system_accounts()
    for code in book.flows.open_user(user, name):
        click.echo(code)


@click.command("topup")
@click.argument("user")
@click.argument("amount")
@click.option("--bank-ref", required=True, help="The bank's serial number.")
@click.option("--key", required=True, help="Idempotency key.")
@click.option("--date", "date_", help="Effective date (YYYY-MM-DD).")
@click.option("--pending", is_flag=True, help="Wait for the bank's confirmation.")
@db_option
@format_option
@library_errors
def topup_cmd(user, amount, bank_ref, key, date_, pending, db_url, fmt):
    """Record money paid into custody for USER.

    Example:

        ledger topup alice 1000.00 --bank-ref B20261122001 --key topup-B20261122001
    """
    book = open_book(db_url)
    entry = book.flows.top_up(user, amount, bank_ref=bank_ref, key=key,
                              effective_date=parse_date(date_), pending=pending)
    _show_entries([entry], fmt)


@click.group("withdraw")
def withdraw_group():
    """Two-phase withdrawals: request (hold), then confirm or fail.

    Example:

        ledger withdraw request alice 500 --fee 2 --key wd-1
    """


@withdraw_group.command("request")
@click.argument("user")
@click.argument("amount")
@click.option("--fee", default="0", show_default=True)
@click.option("--key", required=True)
@click.option("--order-ref", help="The platform's withdrawal order id.")
@click.option("--date", "date_", help="Effective date (YYYY-MM-DD).")
@db_option
@format_option
@library_errors
def withdraw_request_cmd(user, amount, fee, key, order_ref, date_, db_url, fmt):
    """Hold AMOUNT (+ fee) of USER's wallet until the bank pays it out.

    Example:

        ledger withdraw request alice 500 --fee 2 --key wd-1 --order-ref W001
    """
    entry = open_book(db_url).flows.withdraw(user, amount, fee=fee, key=key, order_ref=order_ref,
                                             effective_date=parse_date(date_))
    _show_entries([entry], fmt)


@withdraw_group.command("confirm")
@click.argument("entry_id", type=int)
@click.option("--bank-ref", required=True)
@click.option("--key", required=True)
@click.option("--date", "date_", help="Effective date (YYYY-MM-DD).")
@db_option
@format_option
@library_errors
def withdraw_confirm_cmd(entry_id, bank_ref, key, date_, db_url, fmt):
    """The bank paid withdrawal ENTRY_ID out.

    Example:

        ledger withdraw confirm 42 --bank-ref P20261122001 --key wd-1-paid
    """
    entry = open_book(db_url).flows.confirm_withdrawal(entry_id, bank_ref=bank_ref, key=key,
                                                       effective_date=parse_date(date_))
    _show_entries([entry], fmt)


@withdraw_group.command("fail")
@click.argument("entry_id", type=int)
@click.option("--reason", required=True)
@click.option("--key", required=True)
@db_option
@format_option
@library_errors
def withdraw_fail_cmd(entry_id, reason, key, db_url, fmt):
    """The bank rejected withdrawal ENTRY_ID: the money is available again.

    Example:

        ledger withdraw fail 42 --reason "account frozen" --key wd-1-failed
    """
    entry = open_book(db_url).flows.fail_withdrawal(entry_id, key=key, reason=reason)
    _show_entries([entry], fmt)


@click.group("loan")
def loan_group():
    """Loans: create, bid, disburse (or cancel), repay, show.

    Example:

        ledger loan show L001
    """


@loan_group.command("create")
@click.argument("loan_no")
@click.option("--borrower", required=True)
@click.option("--principal", required=True)
@click.option("--rate", required=True, help="Annual rate: 6% or 0.06.")
@click.option("--months", type=int, help="Term in months.")
@click.option("--days", type=int, help="Term in days (bullet / interest-only).")
@click.option("--method", default="equal-installment", show_default=True,
              type=click.Choice(["equal-installment", "equal-principal", "interest-only", "bullet"]))
@click.option("--start", required=True, help="Start date (YYYY-MM-DD).")
@click.option("--upfront-fee", default="0", show_default=True)
@click.option("--management-fee-rate", default="0", show_default=True, help="On investors' interest.")
@click.option("--key", required=True)
@db_option
@library_errors
def loan_create_cmd(loan_no, borrower, principal, rate, months, days, method, start, upfront_fee,
                    management_fee_rate, key, db_url):
    """Create a loan and its plan (refused above the rate cap).

    Example:

        ledger loan create L001 --borrower bob --principal 100000 --rate 6% --months 12 --start 2026-11-22 --key loan-L001
    """
    from ..schedules import ScheduleError
    from .common import BadInput

    if (months is None) == (days is None):
        raise click.UsageError("give exactly one of --months or --days")
    in_months = months is not None   # --months 0 is a term in months, refused as one
    book = open_book(db_url)
    book.flows.open_system_accounts()
    try:
        view = book.loans.create_loan(
            loan_no, borrower, principal, _rate(rate), months if in_months else days, key=key,
            method=method.replace("-", "_"), start=parse_date(start, "--start"),
            term_unit="month" if in_months else "day", upfront_fee=upfront_fee,
            management_fee_rate=_rate(management_fee_rate))
    except ScheduleError as exc:   # terms no plan can be made of: bad input, as for `ledger schedule`
        raise BadInput(f"{type(exc).__name__}: {exc}") from exc
    click.echo(f"loan {view.loan_no}: {view.principal} over {view.term} {view.term_unit}(s), "
               f"status {view.status}")


@loan_group.command("bid")
@click.argument("loan_no")
@click.argument("investor")
@click.argument("amount")
@click.option("--key", required=True)
@db_option
@format_option
@library_errors
def loan_bid_cmd(loan_no, investor, amount, key, db_url, fmt):
    """Freeze AMOUNT of INVESTOR's wallet for LOAN_NO.

    Example:

        ledger loan bid L001 alice 33333.33 --key bid-L001-alice
    """
    _show_entries([open_book(db_url).loans.bid(loan_no, investor, amount, key=key)], fmt)


@loan_group.command("disburse")
@click.argument("loan_no")
@click.option("--key", required=True)
@click.option("--date", "date_", help="Effective date (YYYY-MM-DD).")
@db_option
@format_option
@library_errors
def loan_disburse_cmd(loan_no, key, date_, db_url, fmt):
    """Pay a fully funded loan to its borrower.

    Example:

        ledger loan disburse L001 --key disburse-L001
    """
    entry = open_book(db_url).loans.disburse(loan_no, key=key, effective_date=parse_date(date_))
    _show_entries([entry], fmt)


@loan_group.command("cancel")
@click.argument("loan_no")
@click.option("--key", required=True)
@db_option
@format_option
@library_errors
def loan_cancel_cmd(loan_no, key, db_url, fmt):
    """Cancel a loan not disbursed: every bid is unfrozen.

    Example:

        ledger loan cancel L001 --key cancel-L001
    """
    _show_entries([open_book(db_url).loans.cancel_loan(loan_no, key=key)], fmt)


@loan_group.command("repay")
@click.argument("loan_no")
@click.argument("amount")
@click.option("--key", required=True)
@click.option("--date", "date_", required=True, help="Repayment date (YYYY-MM-DD).")
@click.option("--bank-ref", help="Paid straight from a bank card: the bank's serial.")
@db_option
@format_option
@library_errors
def loan_repay_cmd(loan_no, amount, key, date_, bank_ref, db_url, fmt):
    """The borrower repays AMOUNT of LOAN_NO.

    Example:

        ledger loan repay L001 8606.64 --date 2026-12-22 --key repay-L001-1
    """
    entry = open_book(db_url).loans.repay(loan_no, amount, key=key, on_date=parse_date(date_, "--date"),
                                          bank_ref=bank_ref)
    _show_entries([entry], fmt)


@loan_group.command("show")
@click.argument("loan_no")
@click.option("--as-of", help="Judge overdue installments on this date (default today).")
@db_option
@format_option
@library_errors
def loan_show_cmd(loan_no, as_of, db_url, fmt):
    """Print a loan's plan with paid and unpaid installments, and positions.

    Example:

        ledger loan show L001 --format json
    """
    view = open_book(db_url).loans.loan(loan_no, today=parse_date(as_of, "--as-of"))
    rows = [{"seq": i.seq, "due_date": i.due_date, "principal": i.principal, "interest": i.interest,
             "fee": i.fee, "paid": i.paid, "outstanding": i.outstanding,
             "penalty": i.penalty_outstanding, "status": i.status} for i in view.installments]
    positions = [{"party": p.party, "funded": p.funded, "acquired": p.acquired, "disposed": p.disposed,
                  "principal_received": p.principal_received, "interest_received": p.interest_received,
                  "outstanding_principal": p.outstanding_principal} for p in view.positions]
    if fmt == "json":
        click.echo(to_json({"loan_no": view.loan_no, "borrower": view.borrower, "status": view.status,
                            "principal": view.principal, "annual_rate": view.annual_rate,
                            "outstanding_principal": view.outstanding_principal,
                            "installments": rows, "positions": positions}))
        return
    emit(rows, list(rows[0]) if rows else ["seq"], fmt,
         title=f"loan {view.loan_no}  borrower {view.borrower}  {view.principal} at "
               f"{view.annual_rate * 100}%  {view.method}  status {view.status}  "
               f"outstanding principal {view.outstanding_principal}")
    if fmt == "table" and positions:
        click.echo("")
        emit(positions, list(positions[0]), fmt)


@click.group("penalties")
def penalties_group():
    """Overdue penalties (罚息).

    Example:

        ledger penalties accrue --as-of 2026-12-31
    """


@penalties_group.command("accrue")
@click.option("--as-of", required=True, help="Accrue through this date (YYYY-MM-DD).")
@db_option
@format_option
@library_errors
def penalties_accrue_cmd(as_of, db_url, fmt):
    """Accrue penalty interest on every overdue installment; once per date.

    Example:

        ledger penalties accrue --as-of 2026-12-31
    """
    entries = open_book(db_url).loans.accrue_penalties(parse_date(as_of, "--as-of"))
    _show_entries(entries, fmt)


COMMANDS = [user_group, topup_cmd, withdraw_group, loan_group, penalties_group]
