"""Every record of the loans and of reconciliation refuses change, TRUNCATE included.

Revisions 0003 and 0004 made the dues, bids, bank lines, match links and
resolutions refuse UPDATE and DELETE, but on PostgreSQL not TRUNCATE (the
journal tables of 0001 and the report tables of 0002 refuse it), and left the
runs, matches, breaks and statement files without triggers. None of these
rows is ever changed by the code: a resolution, a correction or a re-import
is a new row. The database now refuses the rest too, whoever asks (the
writer role has no such rights anyway; this also binds the tables' owner):

* UPDATE and DELETE on ``recon_run``, ``recon_match``, ``recon_break`` and
  ``statement_file``;
* TRUNCATE (PostgreSQL) on those and on ``loan_due``, ``loan_bid``,
  ``bank_line``, ``recon_match_bank``, ``recon_match_posting`` and
  ``recon_resolution``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

from migrations.ddl import append_only, drop_append_only, drop_no_truncate, no_truncate

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NEWLY_APPEND_ONLY = ("recon_run", "recon_match", "recon_break", "statement_file")
NO_TRUNCATE = ("loan_due", "loan_bid", "bank_line", "recon_match_bank", "recon_match_posting",
               "recon_resolution") + NEWLY_APPEND_ONLY


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in NEWLY_APPEND_ONLY:
        for stmt in append_only(dialect, table):
            op.execute(stmt)
    for table in NO_TRUNCATE:
        for stmt in no_truncate(dialect, table):
            op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in NO_TRUNCATE:
        for stmt in drop_no_truncate(dialect, table):
            op.execute(stmt)
    for table in NEWLY_APPEND_ONLY:
        for stmt in drop_append_only(dialect, table):
            op.execute(stmt)
