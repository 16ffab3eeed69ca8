"""`make demo`: one day of a P2P platform's custody ledger, on embedded SQLite.

It opens a fresh book in ``demo-out/ledger.db``, posts a small day of money
movements through the Python API (top-ups, a withdrawal held then paid, one
rejected by the bank, a service fee, a correction by reversal), shows a replay
being answered idempotently and an overdraft being refused, then prints the
balances and the verification an auditor would run.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D
from pathlib import Path

from click.testing import CliRunner

import ledger
from cli import main as ledger_cli

OUT = Path("demo-out")
DAY = dt.date(2026, 11, 22)
BANK = "assets:custody:bank"


def wallet(user: str, part: str = "available") -> str:
    return f"liabilities:users:{user}:{part}"


def run_cli(*args: str) -> None:
    print(f"\n$ ledger {' '.join(args)}")
    result = CliRunner().invoke(ledger_cli, [*args, "--db", URL], catch_exceptions=False)
    print(result.output.rstrip())


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    URL = f"sqlite:///{OUT / 'ledger.db'}"
    book = ledger.open(URL)
    print(f"Opened book {book.name!r} on {URL}")

    book.open_account(BANK, "asset", name="Custody account at the bank")
    book.open_account("income:platform:fees:withdrawal", "income")
    for user in ("alice", "bob", "carol"):
        for part in ("available", "withdrawing"):
            book.open_account(wallet(user, part), "liability", no_overdraft=True)

    print("\n-- the platform posts the day --")
    for user, amount, serial in (("alice", "50000.00", "B20261122001"),
                                 ("bob", "20000.00", "B20261122002"),
                                 ("carol", "8000.00", "B20261122003")):
        e = book.post([(BANK, D(amount)), (wallet(user), -D(amount))], key=f"topup-{serial}",
                      kind="top_up", effective_date=DAY, external_ref=serial)
        print(f"entry {e.id}: top-up {amount} for {user} (bank serial {serial})")

    again = book.post([(BANK, D("50000.00")), (wallet("alice"), D("-50000.00"))],
                      key="topup-B20261122001", kind="top_up", effective_date=DAY,
                      external_ref="B20261122001")
    print(f"retry of the first top-up: answered with entry {again.id} (replayed={again.replayed})")

    hold = book.post([(wallet("bob"), D("5000.00")), (wallet("bob", "withdrawing"), D("-5000.00"))],
                     key="wd-bob-1", kind="withdrawal", effective_date=DAY, pending=True)
    print(f"entry {hold.id}: bob asks to withdraw 5000.00 (held; available now "
          f"{book.balance(wallet('bob'), kind='available')})")
    book.commit_pending(hold.id, key="wd-bob-1-confirmed", effective_date=DAY)
    book.post([(wallet("bob", "withdrawing"), D("5000.00")),
               (BANK, D("-4998.00")), ("income:platform:fees:withdrawal", D("-2.00"))],
              key="wd-bob-1-paid", kind="withdrawal_paid", effective_date=DAY,
              external_ref="P20261122001")
    print("bank confirmed bob's withdrawal: 4998.00 paid out, 2.00 fee to the platform")

    hold2 = book.post([(wallet("carol"), D("3000.00")), (wallet("carol", "withdrawing"), D("-3000.00"))],
                      key="wd-carol-1", kind="withdrawal", effective_date=DAY, pending=True)
    book.void_pending(hold2.id, key="wd-carol-1-rejected", memo="bank rejected: account frozen")
    print("bank rejected carol's withdrawal: the hold is voided, her money is available again")

    wrong = book.post([(wallet("alice"), D("100.00")), (wallet("carol"), D("-100.00"))],
                      key="transfer-typo", kind="transfer", effective_date=DAY)
    book.reverse(wrong.id, key="transfer-typo-reversed", reason="wrong payee", effective_date=DAY)
    print(f"entry {wrong.id} posted to the wrong user and reversed (never edited)")

    try:
        book.post([(wallet("carol"), D("9000.00")), (wallet("alice"), D("-9000.00"))],
                  key="too-much", effective_date=DAY)
    except ledger.InsufficientFundsError as exc:
        print(f"refused: {exc}")

    run_cli("account", "list")
    run_cli("balance", wallet("bob"), "--as-of", DAY.isoformat())
    run_cli("verify")
