"""Core ledger: books, accounts, balances, entries, postings, hash chain.

Also the database's own defences, per dialect:
* append-only ``journal_entry``, ``posting`` and ``chain_link`` (no UPDATE,
  no DELETE, no TRUNCATE);
* postings may only be written before their header, never added to an
  existing entry;
* an entry's postings must match its ``posting_count`` and sum to zero per
  currency (PostgreSQL: a deferred constraint trigger checked at commit;
  SQLite: checked when the header is inserted, after its postings);
* no entry dated inside a closed period.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY_TABLES = ("journal_entry", "posting", "chain_link")

PG_FUNCTIONS = [
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'append_only_%: % on % refused; ledger rows are never changed, post a reversal',
            TG_TABLE_NAME, TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        expected integer;
        actual integer;
        unbalanced text;
    BEGIN
        SELECT posting_count INTO expected FROM journal_entry WHERE id = NEW.id;
        SELECT count(*) INTO actual FROM posting WHERE entry_id = NEW.id;
        IF expected IS DISTINCT FROM actual THEN
            RAISE EXCEPTION 'ck_journal_entry_balanced: entry % has % postings, its header says %',
                NEW.id, actual, expected USING ERRCODE = 'check_violation';
        END IF;
        SELECT string_agg(currency || ' ' || s::text, ', ') INTO unbalanced FROM (
            SELECT currency, sum(amount_minor) AS s FROM posting
            WHERE entry_id = NEW.id GROUP BY currency HAVING sum(amount_minor) <> 0) t;
        IF unbalanced IS NOT NULL THEN
            RAISE EXCEPTION 'ck_journal_entry_balanced: entry % does not balance (%)',
                NEW.id, unbalanced USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_postings_before_header() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        existing bigint;
    BEGIN
        SELECT j.id INTO existing FROM journal_entry j
            JOIN (SELECT DISTINCT entry_id FROM new_postings) n ON n.entry_id = j.id LIMIT 1;
        IF existing IS NOT NULL THEN
            RAISE EXCEPTION 'ck_posting_entry_open: postings cannot be added to existing entry %',
                existing USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_check_open_period() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        through date;
    BEGIN
        SELECT max(closed_through) INTO through FROM closed_period WHERE book_id = NEW.book_id;
        IF through IS NOT NULL AND NEW.effective_date <= through THEN
            RAISE EXCEPTION 'ck_journal_entry_open_period: effective date % is in a period closed through %',
                NEW.effective_date, through USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
]

PG_TRIGGERS = [
    *(
        f"CREATE TRIGGER trg_{t}_append_only BEFORE UPDATE OR DELETE ON {t} "
        f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        for t in APPEND_ONLY_TABLES
    ),
    *(
        f"CREATE TRIGGER trg_{t}_no_truncate BEFORE TRUNCATE ON {t} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        for t in APPEND_ONLY_TABLES
    ),
    "CREATE CONSTRAINT TRIGGER trg_journal_entry_balanced AFTER INSERT ON journal_entry "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry()",
    "CREATE TRIGGER trg_posting_before_header AFTER INSERT ON posting "
    "REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT "
    "EXECUTE FUNCTION ledger_postings_before_header()",
    "CREATE TRIGGER trg_journal_entry_open_period BEFORE INSERT ON journal_entry "
    "FOR EACH ROW EXECUTE FUNCTION ledger_check_open_period()",
]

PG_DROP = [
    *(f"DROP TRIGGER IF EXISTS trg_{t}_append_only ON {t}" for t in APPEND_ONLY_TABLES),
    *(f"DROP TRIGGER IF EXISTS trg_{t}_no_truncate ON {t}" for t in APPEND_ONLY_TABLES),
    "DROP TRIGGER IF EXISTS trg_journal_entry_balanced ON journal_entry",
    "DROP TRIGGER IF EXISTS trg_posting_before_header ON posting",
    "DROP TRIGGER IF EXISTS trg_journal_entry_open_period ON journal_entry",
    "DROP FUNCTION IF EXISTS ledger_refuse_change()",
    "DROP FUNCTION IF EXISTS ledger_check_entry()",
    "DROP FUNCTION IF EXISTS ledger_postings_before_header()",
    "DROP FUNCTION IF EXISTS ledger_check_open_period()",
]


def sqlite_triggers() -> list[str]:
    """The SQLite triggers; a batch table rebuild drops them, so recreate after one."""
    stmts = []
    for t in APPEND_ONLY_TABLES:
        for op_ in ("UPDATE", "DELETE"):
            stmts.append(
                f"CREATE TRIGGER trg_{t}_no_{op_.lower()} BEFORE {op_} ON {t} BEGIN "
                f"SELECT RAISE(ABORT, 'append_only_{t}: {op_} on {t} refused; "
                f"ledger rows are never changed, post a reversal'); END"
            )
    stmts.append(
        "CREATE TRIGGER trg_posting_before_header BEFORE INSERT ON posting "
        "WHEN EXISTS (SELECT 1 FROM journal_entry WHERE id = NEW.entry_id) BEGIN "
        "SELECT RAISE(ABORT, 'ck_posting_entry_open: postings cannot be added to an existing entry'); END"
    )
    stmts.append(
        "CREATE TRIGGER trg_journal_entry_balanced BEFORE INSERT ON journal_entry "
        "WHEN (SELECT count(*) FROM posting WHERE entry_id = NEW.id) <> NEW.posting_count "
        "OR EXISTS (SELECT 1 FROM posting WHERE entry_id = NEW.id "
        "GROUP BY currency HAVING sum(amount_minor) <> 0) BEGIN "
        "SELECT RAISE(ABORT, 'ck_journal_entry_balanced: the postings do not match the header "
        "or do not sum to zero per currency'); END"
    )
    stmts.append(
        "CREATE TRIGGER trg_journal_entry_open_period BEFORE INSERT ON journal_entry "
        "WHEN EXISTS (SELECT 1 FROM closed_period WHERE book_id = NEW.book_id "
        "AND closed_through >= NEW.effective_date) BEGIN "
        "SELECT RAISE(ABORT, 'ck_journal_entry_open_period: the effective date is in a closed period'); END"
    )
    return stmts


def upgrade() -> None:
    op.create_table(
        "book",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_book"),
        sa.UniqueConstraint("name", name="uq_book_name"),
    )
    op.create_table(
        "account",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("is_no_overdraft", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_account"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_account_book_id_book"),
        sa.UniqueConstraint("book_id", "code", name="uq_account_book_id_code"),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'income', 'expense', 'memo')",
            name="ck_account_type",
        ),
        sa.CheckConstraint("length(currency) = 3", name="ck_account_currency"),
    )
    op.create_table(
        "account_balance",
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("posted_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_account_balance"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name="fk_account_balance_account_id_account"
        ),
        sa.CheckConstraint("held_minor >= 0", name="ck_account_balance_held_nonnegative"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE journal_entry_id_seq")
    op.create_table(
        "journal_entry",
        sa.Column("id", BigId, nullable=False, autoincrement=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        sa.Column("pending_id", BigId, nullable=True),
        sa.Column("reverses_id", BigId, nullable=True),
        sa.Column("posting_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_entry"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_journal_entry_book_id_book"),
        sa.ForeignKeyConstraint(
            ["pending_id"], ["journal_entry.id"], name="fk_journal_entry_pending_id_journal_entry"
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"], ["journal_entry.id"], name="fk_journal_entry_reverses_id_journal_entry"
        ),
        sa.UniqueConstraint("book_id", "idempotency_key", name="uq_journal_entry_book_id_idempotency_key"),
        sa.UniqueConstraint("pending_id", name="uq_journal_entry_pending_id"),
        sa.UniqueConstraint("reverses_id", name="uq_journal_entry_reverses_id"),
        sa.CheckConstraint(
            "phase IN ('posted', 'pending', 'commit', 'void')", name="ck_journal_entry_phase"
        ),
        sa.CheckConstraint("posting_count >= 0", name="ck_journal_entry_posting_count"),
        sa.CheckConstraint(
            "(phase IN ('commit', 'void')) = (pending_id IS NOT NULL)",
            name="ck_journal_entry_pending_link",
        ),
    )
    op.create_index(
        "ix_journal_entry_book_id_effective_date", "journal_entry", ["book_id", "effective_date"]
    )
    op.create_index(
        "ix_journal_entry_book_id_external_ref", "journal_entry", ["book_id", "external_ref"]
    )
    op.create_table(
        "posting",
        sa.Column("id", BigId, nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("is_pending", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_posting"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name="fk_posting_entry_id_journal_entry",
            deferrable=True, initially="DEFERRED",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name="fk_posting_account_id_account"),
        sa.UniqueConstraint("entry_id", "position", name="uq_posting_entry_id_position"),
        sa.CheckConstraint("amount_minor <> 0", name="ck_posting_amount_nonzero"),
    )
    op.create_index(
        "ix_posting_account_id_effective_date", "posting", ["account_id", "effective_date"]
    )
    op.create_table(
        "chain_link",
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("book_id", "seq", name="pk_chain_link"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_chain_link_book_id_book"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entry.id"], name="fk_chain_link_entry_id_journal_entry"
        ),
        sa.UniqueConstraint("entry_id", name="uq_chain_link_entry_id"),
    )
    op.create_table(
        "seal_queue",
        sa.Column("entry_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("book_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name="pk_seal_queue"),
    )
    op.create_index("ix_seal_queue_book_id", "seal_queue", ["book_id"])
    op.create_table(
        "closed_period",
        sa.Column("id", BigId, nullable=False),
        sa.Column("book_id", BigId, nullable=False),
        sa.Column("closed_through", sa.Date(), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_closed_period"),
        sa.ForeignKeyConstraint(["book_id"], ["book.id"], name="fk_closed_period_book_id_book"),
        sa.UniqueConstraint("book_id", "closed_through", name="uq_closed_period_book_id_closed_through"),
    )

    if op.get_bind().dialect.name == "postgresql":
        for stmt in PG_FUNCTIONS + PG_TRIGGERS:
            op.execute(stmt)
    else:
        for stmt in sqlite_triggers():
            op.execute(stmt)


def downgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    if is_pg:
        for stmt in PG_DROP:
            op.execute(stmt)
    for table in ("closed_period", "seal_queue", "chain_link", "posting", "journal_entry",
                  "account_balance", "account", "book"):
        op.drop_table(table)
    if is_pg:
        op.execute("DROP SEQUENCE IF EXISTS journal_entry_id_seq")
