"""Reconciliation: imported statements and lines, runs, matches, breaks, resolutions.

* ``bank_line`` keeps every statement line with the bank's raw text; a
  fingerprint unique per book makes imports idempotent (the same line in an
  overlapping file is not imported twice; a line repeated inside one file
  gets its own occurrence number and is kept, then reported).
* Matches are exclusive, enforced here: a bank line and a ledger posting
  each belong to at most one match, ever (unique keys).
* Statement lines, matches and resolutions are append-only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from migrations.ddl import append_only, drop_append_only

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("bank_line", "recon_match_bank", "recon_match_posting", "recon_resolution")


def upgrade() -> None:
    op.create_table(
        "statement_file",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("lines_new", sa.Integer(), nullable=False),
        sa.Column("lines_known", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_statement_file"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_statement_file_book_id_book"),
    )
    op.create_table(
        "bank_line",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("file_id", BigId, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("bank_ref", sa.String(200), nullable=True),
        sa.Column("end_to_end_ref", sa.String(200), nullable=True),
        sa.Column("batch_id", sa.String(200), nullable=True),
        sa.Column("counterparty", sa.String(255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_position", sa.String(64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bank_line"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_bank_line_book_id_book"),
        sa.ForeignKeyConstraint(["file_id"], ["statement_file.id"], name="fk_bank_line_file_id_statement_file"),
        sa.UniqueConstraint("book_id", "fingerprint", name="uq_bank_line_book_id_fingerprint"),
    )
    op.create_index("ix_bank_line_book_id_booking_date", "bank_line", ["book_id", "booking_date"])
    op.create_table(
        "recon_run",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("account_code", sa.String(255), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("summary_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_run"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_recon_run_book_id_book"),
    )
    op.create_table(
        "recon_match",
        sa.Column("id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_match"),
        sa.ForeignKeyConstraint(["run_id"], ["recon_run.id"], name="fk_recon_match_run_id_recon_run"),
    )
    op.create_table(
        "recon_match_bank",
        sa.Column("match_id", BigId, nullable=False),
        sa.Column("bank_line_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("bank_line_id", name="pk_recon_match_bank"),
        sa.ForeignKeyConstraint(["match_id"], ["recon_match.id"], name="fk_recon_match_bank_match_id_recon_match"),
        sa.ForeignKeyConstraint(["bank_line_id"], ["bank_line.id"], name="fk_recon_match_bank_bank_line_id_bank_line"),
    )
    op.create_table(
        "recon_match_posting",
        sa.Column("match_id", BigId, nullable=False),
        sa.Column("posting_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("posting_id", name="pk_recon_match_posting"),
        sa.ForeignKeyConstraint(["match_id"], ["recon_match.id"], name="fk_recon_match_posting_match_id_recon_match"),
        sa.ForeignKeyConstraint(["posting_id"], ["posting.id"], name="fk_recon_match_posting_posting_id_posting"),
    )
    op.create_table(
        "recon_break",
        sa.Column("id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("bank_line_ids", sa.Text(), nullable=False),
        sa.Column("posting_ids", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_break"),
        sa.ForeignKeyConstraint(["run_id"], ["recon_run.id"], name="fk_recon_break_run_id_recon_run"),
    )
    op.create_table(
        "recon_resolution",
        sa.Column("id", BigId, nullable=False),
        sa.Column("break_id", BigId, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("resolved_by", sa.String(100), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
        sa.Column("entry_id", BigId, nullable=True),
        sa.Column("match_id", BigId, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recon_resolution"),
        sa.ForeignKeyConstraint(["break_id"], ["recon_break.id"], name="fk_recon_resolution_break_id_recon_break"),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"], name="fk_recon_resolution_entry_id_journal_entry"),
        sa.ForeignKeyConstraint(["match_id"], ["recon_match.id"], name="fk_recon_resolution_match_id_recon_match"),
        sa.UniqueConstraint("break_id", name="uq_recon_resolution_break_id"),
        sa.CheckConstraint("action IN ('adjust', 'accept-timing', 'match-with')",
                           name="ck_recon_resolution_action"),
    )
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for stmt in append_only(dialect, table):
            op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for stmt in drop_append_only(dialect, table):
            op.execute(stmt)
    for table in ("recon_resolution", "recon_break", "recon_match_posting", "recon_match_bank",
                  "recon_match", "recon_run", "bank_line", "statement_file"):
        op.drop_table(table)
