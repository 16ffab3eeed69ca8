"""PostgreSQL: the ledger's trigger functions read its own tables, not a session's look-alikes.

Revision 0009. A temporary table shadows a table of the same name for the
session that made it; a check that looked up ``posting`` or ``loan`` through
the caller's ``search_path`` would read it and let a wrong row through. Each
attack below is shown to work at revision 0008, then to be refused at head.
"""

from __future__ import annotations

import datetime as dt
from importlib import import_module

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import ledger
from ledger import db
from tests.conftest import new_pg_database
from tests.test_loans import DUE_COLUMNS, disbursed_loan, open_platform

DAY = dt.date(2026, 11, 20)
FUNCTIONS = import_module("migrations.versions.0009_trigger_functions_pin_search_path").FUNCTIONS


@pytest.fixture
def pg_book(pg_template):
    book = ledger.open(new_pg_database(pg_template))
    yield book
    book.dispose()


def _count(book, table: str) -> int:
    with book.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_every_ledger_function_has_a_fixed_search_path(pg_book):
    """Every function the migrations made: one added later must pin its path too."""
    with pg_book.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.proname, p.proconfig FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname LIKE 'ledger%'")).all()
    assert {name for name, _ in rows} == set(FUNCTIONS)
    for name, config in rows:
        assert config and "search_path=public, pg_temp" in config, (name, config)


def _forge_due(book, loan_id: int, entry_id: int) -> None:
    """A due naming no loan, with a temporary ``loan`` table that has its id."""
    with book.engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE loan (id bigint) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO pg_temp.loan VALUES (:id)"), {"id": loan_id + 1000})
        conn.execute(text(f"INSERT INTO loan_due ({DUE_COLUMNS}) VALUES ({loan_id + 1000}, 1, "
                          f"'interest', 'inv1', 5, 'repay', {entry_id}, '2026-02-15')"))


def test_a_temporary_loan_table_does_not_let_a_dangling_due_in(pg_book):
    loan_id, (entry_id, count, _) = disbursed_loan(open_platform(pg_book))
    db.downgrade(pg_book.engine, "0008")
    _forge_due(pg_book, loan_id, entry_id)                  # the hole: the forged due went in
    assert _count(pg_book, "loan_due") == count + 1
    db.upgrade(pg_book.engine)
    with pytest.raises(DBAPIError, match="loan_due_references: loan_id"):
        _forge_due(pg_book, loan_id, entry_id)
    assert _count(pg_book, "loan_due") == count + 1


def _forge_entry(book) -> None:
    """An entry whose one posting is +9.99, with a temporary ``posting`` table that sums to 0."""
    with book.engine.begin() as conn:
        book_id, account_id = conn.execute(text(
            "SELECT book_id, id FROM account WHERE code = 'assets:custody:bank'")).one()
        entry = conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM journal_entry")).scalar_one()
        conn.execute(text("CREATE TEMP TABLE posting (entry_id bigint, position integer, "
                          "amount_minor bigint, currency varchar(3)) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO pg_temp.posting VALUES (:e, 0, 0, 'CNY')"), {"e": entry})
        conn.execute(text(
            "INSERT INTO public.posting (entry_id, position, account_id, amount_minor, currency, "
            "effective_date, is_pending) VALUES (:e, 0, :a, 999, 'CNY', :d, false)"),
            {"e": entry, "a": account_id, "d": DAY})
        conn.execute(text(
            "INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, kind, phase, "
            "effective_date, posting_count, content_hash, created_at) VALUES "
            "(:e, :b, :k, 'x', 'fee', 'posted', :d, 1, 'x', now())"),
            {"e": entry, "b": book_id, "k": f"forged-{entry}", "d": DAY})


def test_a_temporary_posting_table_does_not_let_an_unbalanced_entry_in(pg_book):
    pg_book.open_account("assets:custody:bank", "asset")
    before = _count(pg_book, "journal_entry")
    db.downgrade(pg_book.engine, "0008")
    _forge_entry(pg_book)                                    # the hole: one posting of +9.99
    assert _count(pg_book, "journal_entry") == before + 1
    db.upgrade(pg_book.engine)
    with pytest.raises(DBAPIError, match="ck_journal_entry_balanced: entry .* does not balance"):
        _forge_entry(pg_book)
    assert _count(pg_book, "journal_entry") == before + 1
