"""Loans: terms and plan, bids, and the append-only dues ledger of each loan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from migrations.ddl import append_only, drop_append_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

LOAN_STATUSES = "('bidding', 'funded', 'repaying', 'settled', 'cancelled', 'defaulted')"
COMPONENTS = "('penalty', 'fee', 'interest', 'principal')"
APPEND_ONLY = ("loan_due", "loan_bid")


def upgrade() -> None:
    op.create_table(
        "loan",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("loan_no", sa.String(64), nullable=False),
        sa.Column("borrower", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("raised_minor", sa.BigInteger(), nullable=False),
        sa.Column("annual_rate", sa.String(32), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("term_unit", sa.String(8), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("terms_json", sa.Text(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("create_key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loan"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_loan_book_id_book"),
        sa.UniqueConstraint("book_id", "loan_no", name="uq_loan_book_id_loan_no"),
        sa.CheckConstraint(f"status IN {LOAN_STATUSES}", name="ck_loan_status"),
        sa.CheckConstraint("raised_minor >= 0 AND raised_minor <= principal_minor",
                           name="ck_loan_raised_within_principal"),
        sa.CheckConstraint("principal_minor > 0", name="ck_loan_principal_positive"),
    )
    op.create_table(
        "loan_bid",
        sa.Column("id", BigId, nullable=False),
        sa.Column("loan_id", BigId, nullable=False),
        sa.Column("investor", sa.String(100), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loan_bid"),
        sa.ForeignKeyConstraint(["loan_id"], ["loan.id"], name="fk_loan_bid_loan_id_loan"),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"],
                                name="fk_loan_bid_entry_id_journal_entry"),
        sa.UniqueConstraint("entry_id", name="uq_loan_bid_entry_id"),
        sa.CheckConstraint("amount_minor > 0", name="ck_loan_bid_amount_positive"),
    )
    op.create_index("ix_loan_bid_loan_id", "loan_bid", ["loan_id"])
    op.create_table(
        "loan_due",
        sa.Column("id", BigId, nullable=False),
        sa.Column("loan_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(16), nullable=False),
        sa.Column("party", sa.String(100), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loan_due"),
        sa.ForeignKeyConstraint(["loan_id"], ["loan.id"], name="fk_loan_due_loan_id_loan"),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"],
                                name="fk_loan_due_entry_id_journal_entry"),
        sa.CheckConstraint(f"component IN {COMPONENTS}", name="ck_loan_due_component"),
        sa.CheckConstraint("amount_minor <> 0", name="ck_loan_due_amount_nonzero"),
    )
    op.create_index("ix_loan_due_loan_id_seq", "loan_due", ["loan_id", "seq"])
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for stmt in append_only(dialect, table):
            op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for stmt in drop_append_only(dialect, table):
            op.execute(stmt)
    op.drop_table("loan_due")
    op.drop_table("loan_bid")
    op.drop_table("loan")
