"""The database itself refuses bad writes: raw SQL that bypasses the Python code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"


@pytest.fixture
def posted(book):
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    entry = book.post([(BANK, D("10")), (U1, D("-10"))], key="t1")
    return book, entry


def raw(book, *statements, params=None):
    """Run raw SQL in one transaction (committed at the end)."""
    with book.engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt), params or {})


def refused(book, constraint, *statements, params=None):
    with pytest.raises(DBAPIError) as info:
        raw(book, *statements, params=params)
    assert constraint in str(info.value.orig), str(info.value.orig)


def ids(book):
    with book.engine.connect() as conn:
        acct = dict(conn.execute(text("SELECT code, id FROM account")).all())
        book_id = conn.execute(text("SELECT id FROM book")).scalar()
    return acct, book_id


def test_posting_rows_cannot_be_updated_or_deleted(posted):
    book, entry = posted
    refused(book, "append_only_posting", "UPDATE posting SET amount_minor = 1")
    refused(book, "append_only_posting", "DELETE FROM posting")
    refused(book, "append_only_journal_entry", "UPDATE journal_entry SET memo = 'x'")
    refused(book, "append_only_journal_entry", "DELETE FROM journal_entry")
    book.seal()
    refused(book, "append_only_chain_link", "DELETE FROM chain_link")
    assert book.verify().ok


def test_truncate_is_refused_on_postgresql(pg_template):
    import ledger
    from tests.conftest import new_pg_database

    book = ledger.open(new_pg_database(pg_template))
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.post([(BANK, D("10")), (U1, D("-10"))], key="t1")
    refused(book, "append_only_posting", "TRUNCATE posting CASCADE")
    book.dispose()


def _insert_entry(book, entry_id, postings, count=None, effective="2026-11-22"):
    acct, book_id = ids(book)
    stmts = []
    for pos, (code, amount) in enumerate(postings):
        stmts.append(
            f"INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES ({entry_id}, {pos}, {acct[code]}, {amount}, 'CNY', "
            f"'{effective}', false)")
    stmts.append(
        "INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, kind, phase, "
        "effective_date, posting_count, created_at, content_hash) VALUES "
        f"({entry_id}, {book_id}, 'raw-{entry_id}', 'x', 'raw', 'posted', '{effective}', "
        f"{len(postings) if count is None else count}, '2026-11-22 00:00:00', 'x')")
    return stmts


def test_unbalanced_entry_is_refused(posted):
    book, _ = posted
    refused(book, "ck_journal_entry_balanced", *_insert_entry(book, 900, [(BANK, 500), (U1, -400)]))


def test_header_must_match_its_postings(posted):
    book, _ = posted
    refused(book, "ck_journal_entry_balanced",
            *_insert_entry(book, 901, [(BANK, 500), (U1, -500)], count=3))


def test_a_balanced_raw_entry_is_accepted(posted):
    book, _ = posted
    raw(book, *_insert_entry(book, 902, [(BANK, 500), (U1, -500)]))
    with book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posting WHERE entry_id = 902")).scalar() == 2


def test_zero_amount_is_refused(posted):
    book, _ = posted
    refused(book, "amount_nonzero", *_insert_entry(book, 903, [(BANK, 0), (U1, 0)]))


def test_postings_cannot_be_added_to_an_existing_entry(posted):
    book, entry = posted
    acct, _ = ids(book)
    refused(book, "ck_posting_entry_open",
            "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES ({entry.id}, 5, {acct[BANK]}, 1, 'CNY', "
            "'2026-11-22', false)",
            "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES ({entry.id}, 6, {acct[U1]}, -1, 'CNY', "
            "'2026-11-22', false)")


def test_postings_without_a_header_are_refused(posted):
    book, _ = posted
    acct, _ = ids(book)
    with pytest.raises(DBAPIError):
        raw(book,
            "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES (904, 0, {acct[BANK]}, 1, 'CNY', '2026-11-22', false)")


def test_closed_period_is_refused_by_the_database(posted):
    book, _ = posted
    book.close_period(dt.date(2026, 11, 30), "2026-11")
    refused(book, "ck_journal_entry_open_period",
            *_insert_entry(book, 905, [(BANK, 500), (U1, -500)], effective="2026-11-15"))


def test_bad_phase_is_refused(posted):
    book, _ = posted
    stmts = _insert_entry(book, 906, [(BANK, 500), (U1, -500)])
    stmts[-1] = stmts[-1].replace("'posted'", "'deleted'")
    refused(book, "ck_journal_entry_phase", *stmts)


def test_postings_after_their_header_are_refused_in_the_same_transaction(posted, backend):
    book, _ = posted
    *postings, header = _insert_entry(book, 907, [(BANK, 500), (U1, -500)])
    # SQLite checks a header when it is inserted, so there the header is refused first.
    refused(book, "ck_posting_entry_open" if backend == "postgresql" else "ck_journal_entry_balanced",
            header, *postings)


def test_a_multi_row_insert_for_an_existing_entry_is_refused(posted):
    book, entry = posted
    acct, _ = ids(book)
    refused(book, "ck_posting_entry_open",
            "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES ({entry.id}, 5, {acct[BANK]}, 1, 'CNY', "
            f"'2026-11-22', false), ({entry.id}, 6, {acct[U1]}, -1, 'CNY', '2026-11-22', false)")


def test_a_header_without_its_postings_is_refused(posted):
    book, _ = posted
    header = _insert_entry(book, 908, [(BANK, 500), (U1, -500)])[-1]
    refused(book, "ck_journal_entry_balanced", header)


def test_a_header_counting_fewer_postings_than_written_is_refused(posted):
    book, _ = posted
    refused(book, "ck_journal_entry_balanced",
            *_insert_entry(book, 909, [(BANK, 500), (U1, -500)], count=1))


def test_postgresql_names_the_count_and_the_unbalanced_currency(posted, backend):
    if backend != "postgresql":
        pytest.skip("SQLite's trigger has one fixed message")
    book, _ = posted
    with pytest.raises(DBAPIError) as info:
        raw(book, *_insert_entry(book, 910, [(BANK, 500), (U1, -500)], count=3))
    assert "entry 910 has 2 postings, its header says 3" in str(info.value.orig)
    with pytest.raises(DBAPIError) as info:
        raw(book, *_insert_entry(book, 911, [(BANK, 500), (U1, -400)]))
    assert "entry 911 does not balance (CNY 100)" in str(info.value.orig)
    assert info.value.orig.pgcode == "23514"   # check_violation


def test_an_account_keeps_its_identity(posted):
    """Swapping two wallets' codes would move money between users in every report while
    each entry kept its hash: only closing (and naming) an account changes its row."""
    book, _ = posted
    book.open_account("liabilities:users:u2:available", "liability", no_overdraft=True)
    for sql in (
        "UPDATE account SET code = 'liabilities:users:u2:available' WHERE code = :u1",
        "UPDATE account SET code = code || '-x'",
        "UPDATE account SET type = 'asset' WHERE code = :u1",
        "UPDATE account SET currency = 'USD' WHERE code = :u1",
        "UPDATE account SET is_no_overdraft = :no WHERE code = :u1",
        "UPDATE account SET book_id = book_id + 1",
        "UPDATE account SET opened_at = closed_at",
        "DELETE FROM account WHERE code = 'liabilities:users:u2:available'",
    ):
        refused(book, "append_only_account", sql, params={"u1": U1, "no": False})
    with book.engine.connect() as conn:
        rows = conn.execute(text("SELECT code, type, currency, is_no_overdraft FROM account "
                                 "ORDER BY code")).all()
    assert [tuple(r) for r in rows] == [
        (BANK, "asset", "CNY", False), ("liabilities:users:u1:available", "liability", "CNY", True),
        ("liabilities:users:u2:available", "liability", "CNY", True)]
    raw(book, "UPDATE account SET name = 'second wallet' WHERE code = 'liabilities:users:u2:available'")
    closed = book.close_account("liabilities:users:u2:available")
    assert closed.is_closed and book.verify().ok


def test_a_loan_keeps_its_terms(book):
    """A repayment takes the money from the wallet of the borrower the loan row names:
    only the loan's status and the amount its bids raised ever change."""
    import datetime as dt

    book.flows.open_system_accounts()
    for user in ("bob", "eve", "i1"):
        book.flows.open_user(user)
    book.loans.create_loan("L1", "bob", "1200", "0.06", 12, key="c1", start=dt.date(2026, 11, 1))
    for sql in (
        "UPDATE loan SET borrower = 'eve'",
        "UPDATE loan SET principal_minor = principal_minor + 1",
        "UPDATE loan SET annual_rate = '0.36'",
        "UPDATE loan SET plan_json = plan_json",
        "UPDATE loan SET terms_json = '{}'",
        "UPDATE loan SET loan_no = 'L2'",
        "UPDATE loan SET start_date = start_date",
        "UPDATE loan SET term = 24, term_unit = term_unit",
        "UPDATE loan SET currency = 'USD'",
    ):
        refused(book, "append_only_loan", sql)
    with book.engine.connect() as conn:
        row = conn.execute(text("SELECT borrower, principal_minor, annual_rate, loan_no FROM loan")).one()
    assert tuple(row) == ("bob", 120000, "0.06", "L1")
    raw(book, "UPDATE loan SET status = status, raised_minor = raised_minor")   # what the flows move
    book.flows.top_up("i1", "1200", bank_ref="B1", key="t1")
    book.loans.bid("L1", "i1", "1200", key="b1")
    assert book.loans.loan("L1").status == "funded"
