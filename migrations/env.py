"""Alembic environment: runs on a connection handed over by ``ledger.db``.

``ledger.db.upgrade`` puts an open connection in ``config.attributes``; the
``alembic`` command line works too, with ``sqlalchemy.url`` or the
``LEDGER_DATABASE_URL`` environment variable.
"""

from alembic import context

from ledger.db import make_engine, migration_transaction, resolve_url
from ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or resolve_url())
    with migration_transaction(engine) as conn:
        _run(conn)
