"""Fixtures: every database test runs on SQLite and on a throwaway PostgreSQL.

The PostgreSQL server is started once per session (``tests/pgserver.py``);
a migrated template database is made once, and each test gets a fresh copy
of it through pytest-postgresql's ``DatabaseJanitor``. Without PostgreSQL
the PostgreSQL cases are skipped, except under ``CI=true`` where that is a
failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.pgserver import PgServer, PgUnavailable

settings.register_profile(
    "ledger", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ledger"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEMPLATE_DB = "ledger_template"
BACKENDS = ["sqlite", "postgresql"]
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server."""
    try:
        server = PgServer()
    except PgUnavailable as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """A migrated template database on the session's server."""
    from pytest_postgresql.janitor import DatabaseJanitor

    import ledger.db

    janitor = DatabaseJanitor(user=pg_server.user, host="127.0.0.1", port=pg_server.port,
                              dbname=TEMPLATE_DB, as_template=True)
    janitor.init()
    engine = ledger.db.make_engine(pg_server.url(TEMPLATE_DB))
    ledger.db.upgrade(engine)
    engine.dispose()
    # No drop at the end: the whole server and its directory go with pg_server.
    return pg_server


def new_pg_database(server, migrated: bool = True) -> str:
    """A fresh database (a copy of the migrated template, or empty); returns its URL."""
    from pytest_postgresql.janitor import DatabaseJanitor

    name = f"t_{os.getpid()}_{next(_counter)}"
    DatabaseJanitor(user=server.user, host="127.0.0.1", port=server.port, dbname=name,
                    template_dbname=TEMPLATE_DB if migrated else None).init()
    return server.url(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file copied for each test (faster than migrating each time)."""
    import ledger.db

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = ledger.db.make_engine(f"sqlite:///{path}")
    ledger.db.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


def new_sqlite_database(template: Path, directory: Path) -> str:
    """A fresh migrated SQLite database file; returns its URL."""
    path = directory / f"ledger_{next(_counter)}.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The backend name of a test that runs on both databases."""
    return request.param


@pytest.fixture
def make_url(backend, request, tmp_path):
    """A factory of fresh, migrated databases of the test's backend."""
    if backend == "postgresql":
        server = request.getfixturevalue("pg_template")
        return lambda: new_pg_database(server)
    template = request.getfixturevalue("sqlite_template")
    return lambda: new_sqlite_database(template, tmp_path)


@pytest.fixture
def db_url(make_url):
    """A fresh, migrated database of the test's backend."""
    return make_url()


@pytest.fixture
def book(db_url):
    """An open book on a fresh database."""
    import ledger

    b = ledger.open(db_url)
    yield b
    b.dispose()
