"""`make demo`: a P2P platform's custody ledger at work, on embedded SQLite.

A fresh book in ``demo-out/ledger.db``. Users top up; a loan for a borrower
fills with three investors' bids and is disbursed; installments are repaid
(one late, with an overdue penalty; one straight from the borrower's bank
card); on the day itself a withdrawal is paid out and another is rejected
by the bank. Then the balances, the custody invariant and each investor's
position, and the daily reconciliation against the custody bank's statement
for the day: the bank's CSV day file, the breaks it shows, how finance works
them, and the HTML report (see ``reconcile_day``).
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
from pathlib import Path

from click.testing import CliRunner

import ledger
from cli import main as ledger_cli
from ledger.flows import BANK

OUT = Path("demo-out")
URL = f"sqlite:///{OUT / 'ledger.db'}"
DAY = dt.date(2026, 11, 20)          # a Friday: the business day reconciled
LOAN_START = dt.date(2026, 8, 20)


def say(text: str) -> None:
    print(text)


def run_cli(*args: str) -> int:
    print(f"\n$ ledger {shlex.join(args)}")
    result = CliRunner().invoke(ledger_cli, [*args, "--db", URL], catch_exceptions=False)
    print(result.output.rstrip())
    return result.exit_code


def platform_history(book) -> dict:
    """The months before the day: users, a loan, its first installments."""
    flows, loans = book.flows, book.loans
    flows.open_system_accounts()
    for user in ("alice", "bob", "carol", "dave"):
        flows.open_user(user)
    for n, (user, amount) in enumerate((("alice", "60000.00"), ("bob", "40000.00"),
                                        ("carol", "30000.00")), start=1):
        flows.top_up(user, amount, bank_ref=f"B20260819{n:03d}", key=f"topup-B20260819{n:03d}",
                     effective_date=LOAN_START - dt.timedelta(days=1))
    say("users alice, bob and carol topped up 60,000 / 40,000 / 30,000 in August")

    loans.create_loan("L2026001", "dave", "100000", "0.06", 12, key="loan-L2026001",
                      start=LOAN_START, upfront_fee="1000", management_fee_rate="0.10")
    for investor, amount in (("alice", "50000"), ("bob", "30000"), ("carol", "20000")):
        loans.bid("L2026001", investor, amount, key=f"bid-L2026001-{investor}",
                  effective_date=LOAN_START)
    loans.disburse("L2026001", key="disburse-L2026001", effective_date=LOAN_START)
    say("loan L2026001: 100,000 to dave at 6% over 12 months (equal installments), funded by "
        "alice 50,000, bob 30,000, carol 20,000; disbursed less a 1,000 service fee")

    plan = loans.loan("L2026001", today=LOAN_START).installments
    first, second, third = plan[0], plan[1], plan[2]
    loans.repay("L2026001", first.outstanding, key="repay-L2026001-1", on_date=first.due_date)
    say(f"installment 1 ({first.outstanding}) repaid on time, {first.due_date}")

    late = second.due_date + dt.timedelta(days=10)
    loans.accrue_penalties(late)
    owed = loans.loan("L2026001", today=late).installments[1]
    loans.repay("L2026001", owed.outstanding, key="repay-L2026001-2", on_date=late)
    say(f"installment 2 repaid 10 days late, {late}: {owed.outstanding} including "
        f"{owed.penalty_outstanding} overdue penalty")
    return {"third": third}


def the_day(book, third) -> dict:
    """The reconciled business day: what the platform posts on it."""
    flows, loans = book.flows, book.loans
    loans.repay("L2026001", third.outstanding, key="repay-L2026001-3", on_date=DAY,
                bank_ref="B20261120101")
    say(f"\n-- {DAY} --\ninstallment 3 ({third.outstanding}) paid straight from dave's bank card "
        "(bank serial B20261120101)")
    flows.top_up("carol", "5000.00", bank_ref="B20261120102", key="topup-B20261120102",
                 effective_date=DAY)
    say("carol topped up 5,000.00 at 23:58 (the bank will book it after midnight)")
    hold = flows.withdraw("alice", "8000.00", fee="2.00", key="wd-W1120001", order_ref="W1120001",
                          effective_date=DAY)
    flows.confirm_withdrawal(hold.id, bank_ref="P20261120001", key="wd-W1120001-paid",
                             effective_date=DAY)
    say("alice withdrew 8,000.00 (fee 2.00): held, then paid out by the bank (P20261120001)")
    hold = flows.withdraw("bob", "3000.00", fee="2.00", key="wd-W1120002", order_ref="W1120002",
                          effective_date=DAY)
    flows.confirm_withdrawal(hold.id, bank_ref="P20261120002", key="wd-W1120002-paid",
                             effective_date=DAY)
    say("bob withdrew 3,000.00 (fee 2.00): paid out by the bank (P20261120002)")
    hold = flows.withdraw("carol", "1000.00", key="wd-W1120003", order_ref="W1120003",
                          effective_date=DAY)
    flows.fail_withdrawal(hold.id, key="wd-W1120003-failed", reason="bank refused: name mismatch",
                          effective_date=DAY)
    say("carol's 1,000.00 withdrawal was refused by the bank: the hold is voided, nothing charged")
    try:
        flows.withdraw("carol", "99999.00", key="wd-too-much", effective_date=DAY)
    except ledger.InsufficientFundsError as exc:
        say(f"refused, nothing written: {exc}")
    again = flows.top_up("carol", "5000.00", bank_ref="B20261120102", key="topup-B20261120102",
                         effective_date=DAY)
    say(f"the top-up callback arrived twice: answered with entry {again.id}, replayed={again.replayed}")
    return {}


ACCOUNT_NO = "6222000011112222"


def bank_statement(book) -> Path:
    """The custody bank's CSV day file for DAY, as the bank would send it (T+1).

    Beside what the ledger expects, it shows what really happened at the bank:
    carol's 23:58 top-up is not on it (booked after midnight), bob's payout
    came back the same day (the receiving bank returned it), and the bank
    charged its monthly fee.
    """
    opening = book.balance(BANK, as_of=DAY - dt.timedelta(days=1))
    rows = [  # serial, order id, sub-account, counterparty, flag, amount, description
        ("B20261120101", "L2026001-3", "dave", "dave", "贷", "8606.64", "还款 card repayment"),
        ("P20261120001", "W1120001", "alice", "alice", "借", "8000.00", "提现 withdrawal"),
        ("P20261120002", "W1120002", "bob", "bob", "借", "3000.00", "提现 withdrawal"),
        ("R20261120002", "W1120002", "bob", "bob", "贷", "3000.00", "退汇 returned: account closed"),
        ("F20261120001", "", "", "", "借", "15.00", "手续费 monthly account fee"),
    ]
    lines = ["账号,交易日期,银行流水号,平台订单号,子账户,对方户名,借贷标志,金额,余额,摘要"]
    balance = opening
    for serial, order, sub, party, flag, amount, memo in rows:
        balance += ledger.money.to_decimal_exact(amount) * (1 if flag == "贷" else -1)
        lines.append(f"{ACCOUNT_NO},{DAY.isoformat()},{serial},{order},{sub},{party},{flag},"
                     f"{amount},{balance},{memo}")
    path = OUT / f"custody-{DAY.strftime('%Y%m%d')}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reconcile_day(book) -> None:
    print("\n== daily reconciliation (T+1) ==")
    statement = bank_statement(book)
    print(f"the custody bank's day file: {statement}")
    html = OUT / f"reconciliation-{DAY.isoformat()}.html"
    run_cli("reconcile", str(statement), "--html", str(html))
    print("\nfinance works the breaks:")
    book.open_account("expenses:platform:bank_fees", "expense")
    from reconcile.runs import list_breaks

    fee = next(b for b in list_breaks(book) if b.type == "in_bank_not_in_ledger" and b.amount_minor < 0)
    run_cli("breaks", "resolve", str(fee.id), "--action", "adjust", "--account",
            "expenses:platform:bank_fees", "--note", "monthly account fee, November", "--by", "Li Na")
    paid = book.entry_by_key("wd-W1120002-paid")
    book.reverse(paid.id, key="wd-W1120002-returned", reason="bank returned the payout: account closed",
                 effective_date=DAY)
    print("the platform reversed bob's returned payout: 3,002.00 back in his wallet")
    run_cli("reconcile", str(statement), "--html", str(html))
    print(f"\nopen the report in a browser: {html}")


def show_positions(book) -> None:
    view = book.loans.loan("L2026001", today=DAY)
    print(f"\nloan {view.loan_no}: status {view.status}, outstanding principal "
          f"{view.outstanding_principal}, next due {view.next_due.due_date} ({view.next_due.outstanding})")
    print(f"{'investor':10} {'funded':>10} {'principal back':>15} {'interest':>10} {'penalty':>8} "
          f"{'still owed':>11}")
    for p in view.positions:
        print(f"{p.party:10} {p.funded:>10} {p.principal_received:>15} {p.interest_received:>10} "
              f"{p.penalty_received:>8} {p.outstanding_principal:>11}")


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    book = ledger.open(URL)
    say(f"A fresh custody ledger on {URL}\n")
    history = platform_history(book)
    the_day(book, history["third"])
    run_cli("account", "list", "--prefix", "liabilities:users")
    show_positions(book)
    run_cli("balance", BANK, "--as-of", DAY.isoformat())
    run_cli("verify")
    reconcile_day(book)
    run_cli("verify")
