"""Statement lines keyed by booking day and bank serial, so imports append to the key.

The unique key that makes imports idempotent was ``(book_id, fingerprint)``.
A fingerprint is a SHA-256, so every new line went into that index at a
random place: at a million lines a day the index no longer stays in memory
and each insert costs a page fault, which was over half of an import's time.

The unique key is now ``(book_id, booking_date, coalesce(bank_ref, ''),
fingerprint)``. A bank hands out its serials in order, so a day's lines go in
at the end of the key. The fingerprint hashes the booking date and the bank
reference along with the rest of the line, so the key is unique exactly when
the fingerprint is (the ``coalesce`` keeps lines without a reference unique
too: a NULL never equals another NULL in a unique index). Its prefix serves the
lookups by day, so the ``(book_id, booking_date)`` index goes.

SQLite cannot drop a table's unique constraint in place: the table is
rebuilt (batch mode) and its append-only triggers are made again. The
downgrade restores revision 0004's key and index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from migrations.ddl import append_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DAY_KEY = "uq_bank_line_day_ref_fingerprint"
DAY_KEY_COLUMNS = ["book_id", "booking_date", sa.text("coalesce(bank_ref, '')"), "fingerprint"]


def _rebuilt_triggers() -> None:
    """SQLite drops a table's triggers when batch mode rebuilds it; PostgreSQL keeps them."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for stmt in append_only(dialect, "bank_line"):
            op.execute(stmt)


def upgrade() -> None:
    op.drop_index("ix_bank_line_book_id_booking_date", table_name="bank_line")
    with op.batch_alter_table("bank_line") as batch:
        batch.drop_constraint("uq_bank_line_book_id_fingerprint", type_="unique")
    _rebuilt_triggers()
    op.create_index(DAY_KEY, "bank_line", DAY_KEY_COLUMNS, unique=True)


def downgrade() -> None:
    op.drop_index(DAY_KEY, table_name="bank_line")
    with op.batch_alter_table("bank_line") as batch:
        batch.create_unique_constraint("uq_bank_line_book_id_fingerprint", ["book_id", "fingerprint"])
    _rebuilt_triggers()
    op.create_index("ix_bank_line_book_id_booking_date", "bank_line", ["book_id", "booking_date"])
