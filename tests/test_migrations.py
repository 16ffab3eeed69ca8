"""Alembic owns the schema: upgrade, downgrade, upgrade again; models agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ledger import db
from ledger.models import Base
from tests.conftest import new_pg_database


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
