"""Alembic owns the schema: upgrade, downgrade, upgrade again; models agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ledger import db
from ledger.models import Base
from tests.conftest import new_pg_database

# SQLite cannot reflect an expression index, so the comparison skips the statement lines'
# unique key there (tests/test_bank_line_key.py checks it on both databases).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index"),
]


@pytest.fixture
def empty_url(backend, request, tmp_path):
    if backend == "postgresql":
        server = request.getfixturevalue("pg_template")
        return new_pg_database(server, migrated=False)
    return f"sqlite:///{tmp_path / 'empty.db'}"


def _diff(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_downgrade_upgrade_and_models_agree(empty_url):
    engine = db.make_engine(empty_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert _diff(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert {"account", "journal_entry", "posting", "chain_link"} <= tables
    db.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


def _pg_checks(engine) -> dict:
    """The ledger's trigger functions and the triggers on its tables, as the server holds them."""
    from sqlalchemy import text

    with engine.connect() as conn:
        functions = dict(conn.execute(text(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'ledger_%'")).all())
        triggers = dict(conn.execute(text(
            "SELECT tgname || ' ON ' || tgrelid::regclass, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE NOT tgisinternal")).all())
    return {"functions": functions, "triggers": triggers}


def test_0005_downgrade_restores_the_0004_checks_exactly(pg_template):
    """0005 replaces two trigger functions; going back to 0004 puts the old ones back as they were."""
    engine = db.make_engine(new_pg_database(pg_template, migrated=False))
    db.upgrade(engine, "0004")
    before = _pg_checks(engine)
    assert "ledger_postings_before_header" in before["functions"]
    db.upgrade(engine)
    after = _pg_checks(engine)
    assert "ledger_posting_entry_open" in after["functions"]
    assert "ledger_postings_before_header" not in after["functions"]
    assert after["functions"]["ledger_check_entry"] != before["functions"]["ledger_check_entry"]
    assert "FOR EACH ROW" in after["triggers"]["trg_posting_before_header ON posting"]
    db.downgrade(engine, "0004")
    assert _pg_checks(engine) == before
    db.upgrade(engine)
    assert _pg_checks(engine) == after
    assert _diff(engine) == []
    engine.dispose()
