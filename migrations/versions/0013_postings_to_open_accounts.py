"""A posting never lands on a closed account, whatever commits first (PostgreSQL).

The ledger refuses to post to a closed account when it reads the accounts,
and ``close_account`` refuses an account whose balance is not zero. On
PostgreSQL two transactions could still cross: a post that had read the
account open committed after a close that had read its balance without the
post, leaving a closed account holding money. ``close_account`` now locks
the account's row before it reads the balance (so it waits for every post
already writing to it), and the deferred check each entry gets at commit
(``ledger_check_entry``, revision 0005) also refuses an entry that moves an
account closed by then, with a snapshot taken at that moment. SQLite runs
one writer at a time, so its accounts cannot change under a post.

The downgrade restores revision 0005's function.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BODY = """
    CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        actual bigint;
        unbalanced text;
        closed text;
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
        %CLOSED%
        RETURN NULL;
    END $$
    """

_CLOSED = """SELECT min(a.code) INTO closed FROM posting p JOIN account a ON a.id = p.account_id
            WHERE p.entry_id = NEW.id AND a.closed_at IS NOT NULL;
        IF closed IS NOT NULL THEN
            RAISE EXCEPTION 'ck_posting_account_open: entry % moves account %, which is closed',
                NEW.id, closed USING ERRCODE = 'check_violation';
        END IF;"""

_PIN = ("DO $$ BEGIN EXECUTE format('ALTER FUNCTION ledger_check_entry() "
        "SET search_path = %I, pg_temp', current_schema()); END $$")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_BODY.replace("%CLOSED%", _CLOSED))
    op.execute(_PIN)   # (replacing a function drops its settings: revision 0009's pin again)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_BODY.replace("        %CLOSED%\n", ""))
    op.execute(_PIN)
