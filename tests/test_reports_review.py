"""Reports read one snapshot, and their figures agree with each other and with the ledger."""

from __future__ import annotations

import datetime as dt
import io
import json

from sqlalchemy import event

from ledger import exports, reports
from tests.test_reports import BANK, U1, chart

D = dt.date


def _write_after_first_read(book, write):
    """Run ``write`` (on another connection) once, right after the first statement a
    report runs: a writer committing while the report is being read."""
    state = {"done": False}

    def after(conn, cursor, statement, parameters, context, executemany):
        if not state["done"] and statement.lstrip().upper().startswith("SELECT"):
            state["done"] = True
            write()

    event.listen(book.engine, "after_cursor_execute", after)
    return lambda: event.remove(book.engine, "after_cursor_execute", after)


def _late_account(book):
    def write():
        book.open_account("liabilities:users:u9:available", "liability")
        book.post([(BANK, "7.00"), ("liabilities:users:u9:available", "-7.00")], key="late",
                  effective_date=D(2026, 10, 2))
        book.seal()
    return write


def test_a_trial_balance_is_one_snapshot_while_another_writer_commits(book):
    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", effective_date=D(2026, 10, 1))
    book.seal()
    stop = _write_after_first_read(book, _late_account(book))
    try:
        tb = reports.trial_balance(book, D(2026, 10, 31))
    finally:
        stop()
    assert book.entry_by_key("late") is not None
    assert tb.balanced, tb.totals
    assert {r.account: r.balance_minor for r in tb.rows} == {BANK: 10000, U1: -10000}
    assert tb.footer.last_entry_id == book.entry_by_key("t1").id


def test_a_balance_sheet_is_one_snapshot_while_another_writer_commits(book):
    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", effective_date=D(2026, 10, 1))
    stop = _write_after_first_read(book, _late_account(book))
    try:
        bs = reports.balance_sheet(book, D(2026, 10, 31))
    finally:
        stop()
    assert bs.balanced, bs.totals


def test_a_journal_and_its_footer_are_one_snapshot_while_another_writer_commits(book):
    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", effective_date=D(2026, 10, 1))
    book.seal()
    stop = _write_after_first_read(book, _late_account(book))
    buf = io.StringIO()
    try:
        exports.write_journal(book, buf, fmt="jsonl")
    finally:
        stop()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    entries, foot = lines[:-1], lines[-1]["footer"]
    # the footer names the last entry the journal holds, and the journal holds nothing after it
    assert [x["key"] for x in entries] == ["t1"]
    assert foot["last_entry_id"] == entries[-1]["id"] and foot["unsealed_entries"] == 0


def test_journal_jsonl_keeps_each_entry_to_one_line_whatever_its_text(book):
    """U+2028, U+2029 and U+0085 are line breaks to most line readers (Python's
    ``splitlines``, editors): written raw inside a memo they split an entry's line in two."""
    chart(book)
    text_ = "a\u2028b\u2029c\x85d\ne"
    book.post([(BANK, "1.00"), (U1, "-1.00")], key="k\u2028", memo=text_,
              metadata={"note": text_}, external_ref="r\x85", effective_date=D(2026, 10, 1))
    buf = io.StringIO()
    exports.write_journal(book, buf, fmt="jsonl")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert (entry["memo"], entry["metadata"], entry["key"], entry["external_ref"]) == (
        text_, {"note": text_}, "k\u2028", "r\x85")
    assert list(json.loads(lines[1])) == ["footer"]


def test_every_read_through_the_book_is_one_snapshot(book):
    """``book.reading()`` (list_breaks, loan views, statements of the reconciliation...) sees
    one snapshot from its first statement on, a writer committing meanwhile or not."""
    from sqlalchemy import text

    chart(book)
    book.post([(BANK, "100.00"), (U1, "-100.00")], key="t1", effective_date=D(2026, 10, 1))
    count = text("SELECT count(*) FROM journal_entry")
    with book.reading() as conn:
        before = conn.execute(count).scalar()
        book.post([(BANK, "7.00"), (U1, "-7.00")], key="t2", effective_date=D(2026, 10, 2))
        assert conn.execute(count).scalar() == before
    with book.reading() as conn:
        assert conn.execute(count).scalar() == before + 1


def test_a_new_book_name_is_one_line_of_text(db_url):
    """The name heads every report's footer and CSV comment line: a line break in it broke
    the journal's footer. A new book is refused such a name; an ordinary one works."""
    import pytest

    import ledger
    from ledger.errors import InputError

    for name in ("a\nb", "tab\there", "\u2028", "", "   ", "x" * 101):
        with pytest.raises(InputError, match="book name"):
            ledger.open(db_url, book=name)
    audit = ledger.open(db_url, book="审计 2026")
    assert audit.name == "审计 2026"
    audit.dispose()
