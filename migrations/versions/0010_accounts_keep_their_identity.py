"""An account keeps its identity: code, type, currency and the rest never change.

A posting names its account by id, and the entries' content hashes cover the
id, not the code. Swapping the codes of two wallets (or turning a liability
into an asset, or switching off a wallet's no-overdraft rule) would move
money between users in every report while every entry kept its hash. The
only change the ledger ever makes to an account is closing it
(``closed_at``) and giving it a name; the database now refuses every other
UPDATE of an account, and any DELETE (and, on PostgreSQL, TRUNCATE), whoever
asks (the writer role has no such rights anyway; this also binds the
tables' owner).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

from migrations.ddl import drop_no_truncate, no_truncate

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: The columns no UPDATE may name: everything but ``name`` and ``closed_at``.
IDENTITY = ("id", "book_id", "code", "type", "currency", "is_no_overdraft", "opened_at")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    columns = ", ".join(IDENTITY)
    if dialect == "postgresql":
        op.execute(f"CREATE TRIGGER trg_account_identity BEFORE UPDATE OF {columns} ON account "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
        op.execute("CREATE TRIGGER trg_account_no_delete BEFORE DELETE ON account "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
    else:
        op.execute(f"CREATE TRIGGER trg_account_identity BEFORE UPDATE OF {columns} ON account "
                   "BEGIN SELECT RAISE(ABORT, 'append_only_account: UPDATE on account refused "
                   f"(its {', '.join(IDENTITY[2:])} never change; only name and closed_at do)'); END")
        op.execute("CREATE TRIGGER trg_account_no_delete BEFORE DELETE ON account BEGIN "
                   "SELECT RAISE(ABORT, 'append_only_account: DELETE on account refused'); END")
    for stmt in no_truncate(dialect, "account"):
        op.execute(stmt)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for stmt in drop_no_truncate(dialect, "account"):
        op.execute(stmt)
    on = " ON account" if dialect == "postgresql" else ""
    op.execute(f"DROP TRIGGER IF EXISTS trg_account_no_delete{on}")
    op.execute(f"DROP TRIGGER IF EXISTS trg_account_identity{on}")
