"""A loan's dues check their loan and journal entry once per statement, not once per row.

A repayment to 50 investors writes about a hundred ``loan_due`` rows, every
one naming the same loan and the same journal entry. As foreign keys, those
two references were checked row by row: two look-ups per row, about 1.6 ms of
a repayment's ~25 ms on PostgreSQL (100 rows: 3.3-3.6 ms with the keys,
1.8-1.9 ms without, measured with pgbench), for two values per statement.

The references are now checked by a trigger instead, as strictly:

* PostgreSQL: an ``AFTER INSERT ... FOR EACH STATEMENT`` trigger reads the
  statement's new rows (a transition table) and refuses, with SQLSTATE 23503
  (``foreign_key_violation``, as a foreign key would), when a distinct
  ``loan_id`` names no loan or an ``entry_id`` no journal entry.
* SQLite: a ``BEFORE INSERT`` trigger per row does the same (SQLite's own
  foreign keys cost as much; this keeps both databases' schemas alike).

What a foreign key also guaranteed on the other side is kept: a journal entry
is already never updated, deleted or truncated (append-only); a loan now
refuses DELETE, TRUNCATE and any change of its ``id``. Its other columns (the
status) still change as before.

The downgrade puts the two foreign keys back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op

from migrations.ddl import append_only

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LOAN_FK = "fk_loan_due_loan_id_loan"
ENTRY_FK = "fk_loan_due_entry_id_journal_entry"

PG_UP = [
    """
    CREATE FUNCTION ledger_loan_due_references() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing bigint;
    BEGIN
        SELECT d.loan_id INTO missing FROM (SELECT DISTINCT loan_id FROM new_dues) AS d
            WHERE NOT EXISTS (SELECT 1 FROM loan WHERE loan.id = d.loan_id) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'loan_due_references: loan_id % names no loan', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        SELECT d.entry_id INTO missing FROM (SELECT DISTINCT entry_id FROM new_dues) AS d
            WHERE NOT EXISTS (SELECT 1 FROM journal_entry WHERE journal_entry.id = d.entry_id) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'loan_due_references: entry_id % names no journal entry', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER trg_loan_due_references AFTER INSERT ON loan_due "
    "REFERENCING NEW TABLE AS new_dues FOR EACH STATEMENT "
    "EXECUTE FUNCTION ledger_loan_due_references()",
    """
    CREATE FUNCTION ledger_loan_keeps_key() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'loan_keeps_key: % on loan refused; its dues and bids name it', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    "CREATE TRIGGER trg_loan_no_delete BEFORE DELETE ON loan "
    "FOR EACH ROW EXECUTE FUNCTION ledger_loan_keeps_key()",
    "CREATE TRIGGER trg_loan_no_truncate BEFORE TRUNCATE ON loan "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_loan_keeps_key()",
    "CREATE TRIGGER trg_loan_keeps_id BEFORE UPDATE OF id ON loan FOR EACH ROW "
    "WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ledger_loan_keeps_key()",
]

PG_DOWN = [
    "DROP TRIGGER IF EXISTS trg_loan_due_references ON loan_due",
    "DROP TRIGGER IF EXISTS trg_loan_no_delete ON loan",
    "DROP TRIGGER IF EXISTS trg_loan_no_truncate ON loan",
    "DROP TRIGGER IF EXISTS trg_loan_keeps_id ON loan",
    "DROP FUNCTION IF EXISTS ledger_loan_due_references()",
    "DROP FUNCTION IF EXISTS ledger_loan_keeps_key()",
]

SQLITE_UP = [
    "CREATE TRIGGER trg_loan_due_references BEFORE INSERT ON loan_due BEGIN "
    "SELECT RAISE(ABORT, 'loan_due_references: loan_id names no loan') "
    "WHERE NOT EXISTS (SELECT 1 FROM loan WHERE loan.id = NEW.loan_id); "
    "SELECT RAISE(ABORT, 'loan_due_references: entry_id names no journal entry') "
    "WHERE NOT EXISTS (SELECT 1 FROM journal_entry WHERE journal_entry.id = NEW.entry_id); END",
    "CREATE TRIGGER trg_loan_no_delete BEFORE DELETE ON loan BEGIN "
    "SELECT RAISE(ABORT, 'loan_keeps_key: DELETE on loan refused; its dues and bids name it'); END",
    "CREATE TRIGGER trg_loan_keeps_id BEFORE UPDATE OF id ON loan WHEN OLD.id IS NOT NEW.id BEGIN "
    "SELECT RAISE(ABORT, 'loan_keeps_key: UPDATE of loan.id refused; its dues and bids name it'); END",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS trg_loan_due_references",
    "DROP TRIGGER IF EXISTS trg_loan_no_delete",
    "DROP TRIGGER IF EXISTS trg_loan_keeps_id",
]


def _dialect() -> str:
    return op.get_bind().dialect.name


def _rebuilt_triggers() -> None:
    """SQLite drops a table's triggers when batch mode rebuilds it; PostgreSQL keeps them."""
    if _dialect() == "sqlite":
        for stmt in append_only("sqlite", "loan_due"):
            op.execute(stmt)


def upgrade() -> None:
    with op.batch_alter_table("loan_due") as batch:
        batch.drop_constraint(LOAN_FK, type_="foreignkey")
        batch.drop_constraint(ENTRY_FK, type_="foreignkey")
    _rebuilt_triggers()
    for stmt in PG_UP if _dialect() == "postgresql" else SQLITE_UP:
        op.execute(stmt)


def downgrade() -> None:
    for stmt in PG_DOWN if _dialect() == "postgresql" else SQLITE_DOWN:
        op.execute(stmt)
    with op.batch_alter_table("loan_due") as batch:
        batch.create_foreign_key(LOAN_FK, "loan", ["loan_id"], ["id"])
        batch.create_foreign_key(ENTRY_FK, "journal_entry", ["entry_id"], ["id"])
    _rebuilt_triggers()
