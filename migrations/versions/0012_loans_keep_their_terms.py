"""A loan keeps its terms: borrower, principal, rate, plan and the rest never change.

The loan row is the one loan table that is not append-only: its ``status``
moves (bidding, funded, repaying, settled, cancelled) and ``raised_minor``
counts the bids. Everything else is what the loan was created with, and the
ledger reads it on every flow: a repayment takes the money from the wallet of
the ``borrower`` the row names, and the dues follow the row's plan. An UPDATE
of the borrower would have taken the next repayment from another user's
wallet. The database now refuses every UPDATE of those columns, whoever asks
(the writer role included; this also binds the table's owner), as migration
0010 did for accounts. Deleting a loan and changing its id were refused
already (0007).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The columns no UPDATE may name: all but ``status`` and ``raised_minor`` (and ``id``,
#: which trg_loan_keeps_id guards).
TERMS = ("book_id", "loan_no", "borrower", "currency", "principal_minor", "annual_rate", "term",
         "term_unit", "method", "start_date", "terms_json", "plan_json", "create_key", "created_at")


def upgrade() -> None:
    columns = ", ".join(TERMS)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER trg_loan_terms BEFORE UPDATE OF {columns} ON loan "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
    else:
        op.execute(f"CREATE TRIGGER trg_loan_terms BEFORE UPDATE OF {columns} ON loan "
                   "BEGIN SELECT RAISE(ABORT, 'append_only_loan: UPDATE on loan refused (its "
                   "terms never change; only status and raised_minor do)'); END")


def downgrade() -> None:
    on = " ON loan" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"DROP TRIGGER IF EXISTS trg_loan_terms{on}")
