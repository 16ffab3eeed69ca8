"""The unique key of statement lines (revision 0006) and the migration that brings it."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import ledger
from ledger import db
from reconcile.runs import reconcile_parsed
from tests import test_reconcile_runs as runs_tests
from tests.test_reconcile_runs import DAY, STATEMENT, parsed

day_book = runs_tests.day_book   # the fixture: a book with a day of custody flows

LINE_INSERT = ("INSERT INTO bank_line (id, book_id, file_id, fingerprint, account, booking_date, "
               "amount_minor, currency, bank_ref, status, source_position, raw) "
               "VALUES (:id, :book, :file, :fp, '6222001', :day, 100, 'CNY', :ref, 'booked', 'x', 'x')")


def _a_line(conn) -> dict:
    row = conn.execute(text("SELECT book_id, file_id, fingerprint, booking_date, bank_ref "
                            "FROM bank_line ORDER BY id LIMIT 1")).one()
    top = conn.execute(text("SELECT max(id) FROM bank_line")).scalar()
    return {"id": top + 1, "book": row.book_id, "file": row.file_id, "fp": row.fingerprint,
            "day": row.booking_date, "ref": row.bank_ref}


@pytest.mark.parametrize("ref", ["B1", None], ids=["with a bank reference", "without one"])
def test_the_database_refuses_a_fingerprint_twice(day_book, ref):
    reconcile_parsed(day_book, [parsed("day.csv", STATEMENT, opening=0)])
    with day_book.engine.begin() as conn:
        first = _a_line(conn)
        first.update(fp="f" * 64, ref=ref)
        conn.execute(text(LINE_INSERT), first)
    again = dict(first, id=first["id"] + 1)
    with pytest.raises(IntegrityError, match="(?i)unique|duplicate"):
        with day_book.engine.begin() as conn:
            conn.execute(text(LINE_INSERT), again)
    with day_book.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bank_line WHERE fingerprint = :fp"),
                            {"fp": "f" * 64}).scalar() == 1


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
                for table in ("bank_line", "recon_match_bank", "recon_match_posting", "recon_match")}


def test_down_to_0005_and_up_again_keeps_lines_matches_and_rules(make_url):
    """The rebuild of ``bank_line`` runs while matches refer to its rows; nothing is lost,
    the append-only rule holds after each step and each revision's key refuses a repeat."""
    book = ledger.open(make_url())
    try:
        f = book.flows
        f.open_system_accounts()
        f.open_user("alice")
        f.top_up("alice", "100.00", bank_ref="B1", key="t1", effective_date=DAY)
        run = reconcile_parsed(book, [parsed("day.csv", STATEMENT, opening=0)])
        assert run.result.summary.matched_bank_lines >= 1
        before = _state(book.engine)

        for revision in ("0005", "head"):
            if revision == "head":
                db.upgrade(book.engine)
            else:
                db.downgrade(book.engine, revision)
            assert _state(book.engine) == before
            with pytest.raises(IntegrityError):
                with book.engine.begin() as conn:
                    conn.execute(text(LINE_INSERT), _a_line(conn))
            with pytest.raises(Exception, match="append_only_bank_line"):
                with book.engine.begin() as conn:
                    conn.execute(text("UPDATE bank_line SET raw = 'edited'"))
        assert db.current_revision(book.engine) == db.head_revision()
        if book.engine.dialect.name == "sqlite":   # enforcement is back on the pooled connection
            with book.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        book.dispose()


def test_a_migration_leaving_a_dangling_reference_is_rolled_back(tmp_path):
    """SQLite: enforcement is off while a migration runs, so the check before its commit
    must catch what enforcement would have; the schema stays where it was."""
    url = f"sqlite:///{tmp_path / 'book.db'}"
    book = ledger.open(url)
    book.dispose()
    raw = sqlite3.connect(tmp_path / "book.db")
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute("INSERT INTO recon_match_bank (match_id, bank_line_id) VALUES (999, 999)")
    raw.commit()
    raw.close()
    engine = db.make_engine(url)
    try:
        with pytest.raises(db.MigrationIntegrityError, match="recon_match_bank"):
            db.downgrade(engine, "0005")
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE tbl_name = 'bank_line'"
                                         ).scalars().all()
        assert "uq_bank_line_day_ref_fingerprint" in names
    finally:
        engine.dispose()
