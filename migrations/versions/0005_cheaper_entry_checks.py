"""Cheaper entry checks on PostgreSQL, with the same guarantees.

* ``trg_posting_before_header`` (no postings for an existing entry) becomes a
  row-level ``BEFORE INSERT`` trigger: each posting looks its entry's header
  up by primary key. The statement-level trigger it replaces joined a
  transition table, which the server plans afresh on every statement; that
  was about a third of the server's time per single post.
* ``ledger_check_entry`` (the deferred check that an entry's postings match
  its ``posting_count`` and sum to zero per currency) takes the count from
  the header row it fires for (``NEW``; headers are append-only) and counts
  and sums the postings in one query instead of three.

The error names, SQLSTATEs and timing are unchanged: a posting for an
existing entry is refused when it is inserted, a header that does not match
its postings when the transaction commits. SQLite is unchanged (its triggers
are row-level already). The downgrade restores revision 0001's functions and
trigger as they were.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHECK_ENTRY = """
    CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        actual bigint;
        unbalanced text;
    BEGIN
        SELECT coalesce(sum(n), 0),
               string_agg(currency || ' ' || s::text, ', ' ORDER BY currency) FILTER (WHERE s <> 0)
            INTO actual, unbalanced
            FROM (SELECT currency, count(*) AS n, sum(amount_minor) AS s FROM posting
                  WHERE entry_id = NEW.id GROUP BY currency) t;
        IF actual <> NEW.posting_count THEN
            RAISE EXCEPTION 'ck_journal_entry_balanced: entry % has % postings, its header says %',
                NEW.id, actual, NEW.posting_count USING ERRCODE = 'check_violation';
        END IF;
        IF unbalanced IS NOT NULL THEN
            RAISE EXCEPTION 'ck_journal_entry_balanced: entry % does not balance (%)',
                NEW.id, unbalanced USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """

POSTING_ENTRY_OPEN = """
    CREATE FUNCTION ledger_posting_entry_open() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM journal_entry WHERE id = NEW.entry_id) THEN
            RAISE EXCEPTION 'ck_posting_entry_open: postings cannot be added to existing entry %',
                NEW.entry_id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """

# Revision 0001's versions, restored by the downgrade.
OLD_CHECK_ENTRY = """
    CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
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
    """

OLD_POSTINGS_BEFORE_HEADER = """
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
    """

UPGRADE = [
    CHECK_ENTRY,
    POSTING_ENTRY_OPEN,
    "DROP TRIGGER trg_posting_before_header ON posting",
    "DROP FUNCTION ledger_postings_before_header()",
    "CREATE TRIGGER trg_posting_before_header BEFORE INSERT ON posting "
    "FOR EACH ROW EXECUTE FUNCTION ledger_posting_entry_open()",
]

DOWNGRADE = [
    OLD_CHECK_ENTRY,
    OLD_POSTINGS_BEFORE_HEADER,
    "DROP TRIGGER trg_posting_before_header ON posting",
    "DROP FUNCTION ledger_posting_entry_open()",
    "CREATE TRIGGER trg_posting_before_header AFTER INSERT ON posting "
    "REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT "
    "EXECUTE FUNCTION ledger_postings_before_header()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in UPGRADE:
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in DOWNGRADE:
            op.execute(stmt)
