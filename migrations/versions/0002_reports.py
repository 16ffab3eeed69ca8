"""Reports: balance checkpoints written at period close, and as-of read support.

* ``balance_checkpoint``: each account's posted balance at the end of a
  closed period. A closed period never changes again, so checkpoints stay
  exact and an as-of balance reads the nearest checkpoint plus the postings
  between it and the date.
* ``ix_posting_effective_date_account_id``: a covering index for the sum of
  postings over a date range.
* ``chain_day``: per book and effective date, the last chain link among
  that date's entries, kept by the sealer; an as-of report finds its last
  entry and chain hash from a few of these rows (filled from the existing
  chain here).
* ``closed_period`` and ``balance_checkpoint`` become append-only like the
  journal (deleting a close would reopen a period; changing a checkpoint
  would falsify every as-of report).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PROTECTED = ("closed_period", "balance_checkpoint")


def _pg_triggers() -> list[str]:
    # ledger_refuse_change() comes from 0001.
    stmts = []
    for t in PROTECTED:
        stmts.append(f"CREATE TRIGGER trg_{t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                     f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
        stmts.append(f"CREATE TRIGGER trg_{t}_no_truncate BEFORE TRUNCATE ON {t} "
                     f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
    return stmts


def _sqlite_triggers() -> list[str]:
    return [
        f"CREATE TRIGGER trg_{t}_no_{op_.lower()} BEFORE {op_} ON {t} BEGIN "
        f"SELECT RAISE(ABORT, 'append_only_{t}: {op_} on {t} refused; "
        f"a closed period never changes'); END"
        for t in PROTECTED for op_ in ("UPDATE", "DELETE")
    ]


def upgrade() -> None:
    op.create_table(
        "balance_checkpoint",
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("closed_period_id", BigId, nullable=False),
        sa.Column("posted_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("book_id", "as_of_date", "account_id", name="pk_balance_checkpoint"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_balance_checkpoint_book_id_book"),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name="fk_balance_checkpoint_account_id_account"),
        sa.ForeignKeyConstraint(["closed_period_id"], ["closed_period.id"],
                                name="fk_balance_checkpoint_closed_period_id_closed_period"),
    )
    op.create_index("ix_balance_checkpoint_closed_period_id", "balance_checkpoint",
                    ["closed_period_id"])
    op.create_table(
        "chain_day",
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("book_id", "effective_date", name="pk_chain_day"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_chain_day_book_id_book"),
    )
    op.execute(
        "INSERT INTO chain_day (book_id, effective_date, last_seq) "
        "SELECT c.book_id, j.effective_date, max(c.seq) FROM chain_link c "
        "JOIN journal_entry j ON j.id = c.entry_id GROUP BY c.book_id, j.effective_date")
    op.create_index("ix_posting_effective_date_account_id", "posting",
                    ["effective_date", "account_id", "is_pending", "amount_minor"])
    if op.get_bind().dialect.name == "postgresql":
        for stmt in _pg_triggers():
            op.execute(stmt)
    else:
        for stmt in _sqlite_triggers():
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for t in PROTECTED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_append_only ON {t}")
            op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_no_truncate ON {t}")
    else:
        for t in PROTECTED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_no_delete")
    op.drop_index("ix_posting_effective_date_account_id", table_name="posting")
    op.drop_index("ix_balance_checkpoint_closed_period_id", table_name="balance_checkpoint")
    op.drop_table("chain_day")
    op.drop_table("balance_checkpoint")
