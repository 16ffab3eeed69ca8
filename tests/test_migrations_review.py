"""What the database guarantees, tried the way an operator or an attacker with SQL would.

Each test names the hole it closes: a row replaced in place behind the
append-only triggers, roles on a ledger kept outside the ``public`` schema,
a database left at a revision this version of the ledger does not know.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.flows import BANK
from reconcile.runs import reconcile_parsed, resolve
from tests.test_loans import disbursed_loan, open_platform
from tests.test_reconcile_runs import STATEMENT, parsed

DAY = dt.date(2026, 11, 20)

#: Every table whose rows never change or go, with the trigger message that says so.
APPEND_ONLY = ("journal_entry", "posting", "chain_link", "closed_period", "balance_checkpoint",
               "account", "loan", "loan_bid", "loan_due", "bank_line", "statement_file",
               "recon_run", "recon_match", "recon_match_bank", "recon_match_posting",
               "recon_break", "recon_resolution")


#: The columns the ledger itself updates (an upsert naming only these is an ordinary update).
CHANGEABLE = {("account", "name"), ("account", "closed_at"),
              *(("loan", c) for c in ("book_id", "loan_no", "borrower", "currency",
                                      "principal_minor", "raised_minor", "annual_rate", "term",
                                      "term_unit", "method", "start_date", "terms_json",
                                      "plan_json", "status", "create_key", "created_at"))}


@pytest.fixture
def full_book(book):
    """A book holding a row in every append-only table: entries, a loan, a close, a run."""
    open_platform(book)
    disbursed_loan(book)
    book.flows.open_user("alice")
    book.flows.open_user("bob")
    book.flows.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
    book.flows.top_up("bob", "50.00", bank_ref="ORDER-77", key="t2", effective_date=DAY)
    hold = book.flows.withdraw("alice", "30.00", key="w1", effective_date=DAY)
    book.flows.confirm_withdrawal(hold.id, bank_ref="P1", key="w1-paid", effective_date=DAY)
    run = reconcile_parsed(book, [parsed("day.csv", STATEMENT, opening=0)])
    resolve(book, run.break_ids[0], action="accept-timing", note="seen", by="Li Na")
    book.close_period(dt.date(2026, 1, 31), "2026-01")
    book.seal()
    return book


def _rows(book) -> dict:
    with book.engine.connect() as conn:
        return {t: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}")))
                for t in APPEND_ONLY}


def test_a_row_cannot_be_replaced_in_place(full_book, backend):
    """SQLite's INSERT OR REPLACE deletes the row it collides with, and by default fires no
    DELETE trigger for it: every append-only row could be rewritten (an entry's memo, a
    bank line's amount, a checkpoint's balance, a close's date). PostgreSQL's upsert is an
    UPDATE and its triggers refuse it."""
    book = full_book
    before = _rows(book)
    assert all(before.values()), [t for t, rows in before.items() if not rows]
    for table in APPEND_ONLY:
        if backend == "sqlite":
            stmt = f"INSERT OR REPLACE INTO {table} SELECT * FROM {table} LIMIT 1"
        else:
            with book.engine.connect() as conn:
                key = conn.execute(text(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(:t AS regclass) "
                    "AND i.indisprimary"), {"t": table}).scalars().all()
                columns = [c for c in conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys()]
            keep = [c for c in columns if c not in key and (table, c) not in CHANGEABLE]
            if not keep:
                continue
            stmt = (f"INSERT INTO {table} SELECT * FROM {table} LIMIT 1 "
                    f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in keep))
        with pytest.raises(DBAPIError) as info:
            with book.engine.begin() as conn:
                conn.execute(text(stmt))
        message = str(info.value.orig)
        assert f"_{table}" in message or "loan_keeps_key" in message, (table, message)
    assert _rows(book) == before
    assert book.verify().ok


# --- roles on a ledger kept in its own schema -------------------------------------------

def test_roles_reach_a_ledger_kept_outside_the_public_schema(pg_template):
    """A ledger migrated into its own schema (``options=-csearch_path=books``): ``ledger db
    roles`` granted on ``public`` only, so the writer could not even read the book and the
    auditor saw nothing. The roles now get their rights on the ledger's own schema."""
    import os

    from click.testing import CliRunner
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    import ledger
    from cli import main
    from tests.conftest import new_pg_database

    base = new_pg_database(pg_template, migrated=False)
    owner = create_engine(base)
    with owner.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA books")
    url = make_url(base).update_query_dict({"options": "-csearch_path=books"})
    owner_url = url.render_as_string(hide_password=False)
    book = ledger.open(owner_url)
    book.open_account(BANK, "asset")
    book.open_account("liabilities:users:u1:available", "liability", no_overdraft=True)
    book.post([(BANK, "100.00"), ("liabilities:users:u1:available", "-100.00")], key="t1",
              effective_date=DAY)
    book.dispose()
    result = CliRunner().invoke(main, ["db", "roles", "--db", owner_url,
                                       "--writer", "books_writer", "--auditor", "books_auditor"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    suffix = os.getpid()
    with owner.begin() as conn:
        for user, role in ((f"bw_{suffix}", "books_writer"), (f"ba_{suffix}", "books_auditor")):
            conn.exec_driver_sql(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') "
                f"THEN CREATE ROLE {user} LOGIN IN ROLE {role}; END IF; END $$")
    owner.dispose()

    writer = ledger.open(url.set(username=f"bw_{suffix}").render_as_string(hide_password=False),
                         upgrade=False)
    writer.post([("liabilities:users:u1:available", "10.00"), (BANK, "-10.00")], key="t2",
                effective_date=DAY)
    writer.seal()
    assert writer.balance(BANK) == 90
    for stmt in ("DELETE FROM seal_queue WHERE false", "SELECT 1"):
        with writer.engine.begin() as conn:
            conn.execute(text(stmt))
    for stmt in ("DELETE FROM books.posting", "UPDATE books.journal_entry SET memo = 'x'",
                 "TRUNCATE books.posting", "CREATE TABLE books.sneaky (id int)",
                 "INSERT INTO books.closed_period (book_id, closed_through, label, closed_at) "
                 "VALUES (1, '2026-01-31', 'x', now())"):
        with pytest.raises(DBAPIError) as info:
            with writer.engine.begin() as conn:
                conn.execute(text(stmt))
        assert info.value.orig.pgcode == "42501", (stmt, info.value.orig)
    writer.dispose()

    auditor = ledger.open(url.set(username=f"ba_{suffix}").render_as_string(hide_password=False),
                          upgrade=False)
    assert auditor.balance(BANK) == 90 and auditor.verify(seal=False).ok
    with pytest.raises(DBAPIError) as info:
        with auditor.engine.begin() as conn:
            conn.execute(text("INSERT INTO books.seal_queue (entry_id, book_id) VALUES (999, 1)"))
    assert info.value.orig.pgcode == "42501"
    auditor.dispose()


# --- a database a newer version migrated -------------------------------------------------

def test_a_database_at_a_revision_this_version_does_not_know_is_named_plainly(make_url):
    """A newer version upgraded the database (revision 0099, say) and an older one is run
    against it: every command died in Alembic with "Can't locate revision" and a traceback.
    It is a LedgerError naming both revisions, and nothing is changed."""
    from click.testing import CliRunner

    import ledger
    from cli import main
    from ledger import db

    url = make_url()
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(db.UnknownRevisionError) as info:
        ledger.open(url)
    assert "0099" in str(info.value) and db.head_revision() in str(info.value)
    for args in (["db", "upgrade"], ["verify"], ["account", "list"]):
        result = CliRunner().invoke(main, [*args, "--db", url], catch_exceptions=False)
        assert result.exit_code == 1, (args, result.output)
        assert "UnknownRevisionError" in result.output and "0099" in result.output, result.output
    with pytest.raises(db.UnknownRevisionError):
        db.downgrade(engine, "0010")
    assert db.current_revision(engine) == "0099"
    engine.dispose()
    result = CliRunner().invoke(main, ["db", "current", "--db", url], catch_exceptions=False)
    assert result.exit_code == 0
    assert "current: 0099" in result.output and "newer than this version" in result.output
    assert "needs `ledger db upgrade`" not in result.output   # the upgrade would be refused
