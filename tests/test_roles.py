"""PostgreSQL roles: the writer can only append, the auditor can only read.

Log-in users are made members of the roles ``ledger db roles`` creates;
each test connects as them and proves what the database refuses.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

import ledger
from cli import main
from ledger import reports
from ledger.errors import PeriodCloseError
from tests.conftest import new_pg_database

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
SUFFIX = os.getpid()


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def owner_url(pg_template):
    url = new_pg_database(pg_template)
    result = invoke("db", "roles", "--db", url)
    assert result.exit_code == 0, result.output
    assert invoke("db", "roles", "--db", url).exit_code == 0  # idempotent
    engine = create_engine(url)
    with engine.begin() as conn:
        for user, role in ((f"app_{SUFFIX}", "ledger_writer"), (f"audit_{SUFFIX}", "ledger_auditor")):
            conn.exec_driver_sql(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') "
                f"THEN CREATE ROLE {user} LOGIN IN ROLE {role}; END IF; END $$")
    engine.dispose()
    book = ledger.open(url)
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", effective_date=dt.date(2026, 10, 1))
    book.dispose()
    return url


def as_user(url: str, user: str) -> str:
    return make_url(url).set(username=user).render_as_string(hide_password=False)


def refused(engine, sql: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    assert info.value.orig.pgcode in ("42501", "42P01") or "must be owner" in str(info.value), sql


def test_writer_posts_and_seals_but_cannot_change_or_delete_anything(owner_url):
    url = as_user(owner_url, f"app_{SUFFIX}")
    book = ledger.open(url)
    book.open_account("liabilities:users:u2:available", "liability", no_overdraft=True)
    entry = book.post([(U1, "10.00"), ("liabilities:users:u2:available", "-10.00")], key="x1",
                      effective_date=dt.date(2026, 10, 2))
    pend = book.post([(U1, "5.00"), (BANK, "-5.00")], key="w1", pending=True,
                     effective_date=dt.date(2026, 10, 3))
    book.void_pending(pend.id, key="w1-void")
    assert book.seal() == 4
    assert book.verify(seal=False).ok
    assert book.balance(U1) == 90
    result = invoke("post", "-", "--db", url, input=json.dumps(
        {"key": "cli-1", "postings": [[BANK, "1.00"], [U1, "-1.00"]], "effective_date": "2026-10-04"}))
    assert result.exit_code == 0, result.output
    engine = book.engine
    for sql in (
        f"UPDATE posting SET amount_minor = 1 WHERE entry_id = {entry.id}",
        f"DELETE FROM posting WHERE entry_id = {entry.id}",
        f"UPDATE journal_entry SET memo = 'x' WHERE id = {entry.id}",
        f"DELETE FROM journal_entry WHERE id = {entry.id}",
        "DELETE FROM chain_link",
        "TRUNCATE posting",
        "UPDATE account SET code = 'assets:elsewhere' WHERE code = 'assets:custody:bank'",
        "DELETE FROM account_balance",
        "INSERT INTO closed_period (book_id, closed_through, label, closed_at) "
        "VALUES (1, '2026-09-30', 'x', now())",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE TABLE sneaky (id int)",
        "DROP TABLE posting",
        "ALTER TABLE posting DISABLE TRIGGER USER",
    ):
        refused(engine, sql)
    with pytest.raises(PeriodCloseError, match="owner"):
        book.close_period(dt.date(2026, 9, 30), "2026-09")  # closing is the owner's duty
    book.dispose()


def test_auditor_reads_everything_and_writes_nothing(owner_url):
    url = as_user(owner_url, f"audit_{SUFFIX}")
    book = ledger.open(url, upgrade=False)
    tb = reports.trial_balance(book)
    assert tb.totals == {"CNY": (10000, 10000)} and tb.footer.unsealed_entries == 1
    assert book.verify(seal=False).ok
    result = invoke("trial-balance", "--db", url)  # tries to seal, cannot, reports anyway
    assert result.exit_code == 0 and "not yet sealed: 1" in result.output
    with pytest.raises(Exception) as info:
        book.post([(BANK, "1.00"), (U1, "-1.00")], key="nope")
    assert "permission denied" in str(info.value)
    engine = book.engine
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posting")).scalar() == 2
    for sql in (
        "INSERT INTO seal_queue (entry_id, book_id) VALUES (999, 1)",
        "UPDATE account_balance SET posted_minor = 0",
        "DELETE FROM seal_queue",
        "CREATE TABLE sneaky (id int)",
    ):
        refused(engine, sql)
    book.dispose()
