"""A run's breaks are found by their run without reading every break.

Every reconciliation run reads the breaks of the account's last run (what it
left open is taken up again, however old), and resolving an older break looks
for later runs' breaks that name its items; the open breaks are listed by
run too. ``recon_break`` had no index on ``run_id``, so each of these read the
whole table, which grows by a day's breaks every day.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_recon_break_run_id", "recon_break", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_recon_break_run_id", table_name="recon_break")
