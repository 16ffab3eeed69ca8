"""DDL shared by the migrations: the append-only triggers, per dialect.

PostgreSQL uses the function ``ledger_refuse_change()`` created by revision
0001; SQLite gets one trigger per refused operation. A migration that
rebuilds a table in SQLite batch mode drops its triggers: recreate them with
these functions.
"""


def append_only(dialect: str, table: str) -> list[str]:
    """Statements that make ``table`` refuse UPDATE and DELETE (add :func:`no_truncate`
    for TRUNCATE)."""
    if dialect == "postgresql":
        return [f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"]
    return [f"CREATE TRIGGER trg_{table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
            f"SELECT RAISE(ABORT, 'append_only_{table}: {op} on {table} refused'); END"
            for op in ("UPDATE", "DELETE")]


def drop_append_only(dialect: str, table: str) -> list[str]:
    """Statements that drop what :func:`append_only` made (SQLite drops them with the table)."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS trg_{table}_append_only ON {table}"]
    return [f"DROP TRIGGER IF EXISTS trg_{table}_no_{op.lower()}" for op in ("update", "delete")]


def no_truncate(dialect: str, table: str) -> list[str]:
    """Statements that make ``table`` refuse TRUNCATE (PostgreSQL; SQLite has no TRUNCATE, and
    its DELETE without WHERE fires the row triggers of :func:`append_only`)."""
    if dialect == "postgresql":
        return [f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"]
    return []


def drop_no_truncate(dialect: str, table: str) -> list[str]:
    """Statements that drop what :func:`no_truncate` made."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS trg_{table}_no_truncate ON {table}"]
    return []
