"""A batch's rows in two statements on PostgreSQL (``ledger.postings._insert_batch_pg``).

Ints, dates, flags and plain ASCII words go into the statements as literals, every other
string through the driver; what comes back must be exactly what was posted, whatever the
strings hold.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy.exc import IntegrityError

import ledger
from ledger import postings

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U2 = "liabilities:users:u2:available"

AWKWARD = ["it's", "100%", "%s", "%(x)s", "back\\slash", "quote'); DROP TABLE posting; --",
           "新年 🎉", "tab\there", "line\nbreak", "", "$$", "E'x'"]


@pytest.fixture
def chart(db_url):
    book = ledger.open(db_url)
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.open_account(U2, "liability", no_overdraft=True)
    yield book
    book.dispose()


def test_a_batch_reads_back_exactly_as_posted(chart):
    items = []
    for i, word in enumerate(AWKWARD):
        items.append({
            "postings": [(BANK, D("1.23") + i), (U1 if i % 2 else U2, -(D("1.23") + i))],
            "key": f"k{i}-{word}", "kind": f"top_up{word}"[:64], "memo": word or None,
            "external_ref": word[:200] or None, "metadata": {"note": word, "n": i},
            "effective_date": dt.date(2026, 11, 1 + i)})
    written = chart.post_many(items)
    with chart.engine.connect() as conn:
        loaded = {e.key: e for _, e in postings.load_entries(conn, chart.book_id,
                                                              keys=[e.key for e in written])}
    for entry in written:
        got = loaded[entry.key]
        assert got == entry
        assert got.memo == entry.memo and got.metadata == entry.metadata
    assert chart.balance(BANK) == sum(D("1.23") + i for i in range(len(AWKWARD)))
    chart.seal()
    assert chart.verify().ok
    # a replay of the whole batch writes nothing and returns the same entries
    assert [e.id for e in chart.post_many(items)] == [e.id for e in written]


def test_a_refused_batch_raises_sqlalchemy_errors(chart, backend):
    if backend != "postgresql":
        pytest.skip("the two-statement batch is PostgreSQL's (psycopg2)")
    first = chart.post_many([
        {"postings": [(BANK, D("1")), (U1, D("-1"))], "key": "a"},
        {"postings": [(BANK, D("2")), (U1, D("-2"))], "key": "b"}])
    with chart.engine.begin() as conn:
        (row,) = conn.exec_driver_sql(
            "SELECT request_hash, content_hash FROM journal_entry WHERE id = %s",
            (first[0].id,)).all()
    header = {"id": 10**9, "book_id": chart.book_id, "idempotency_key": "a",
              "request_hash": row[0], "kind": "transfer", "phase": "posted",
              "effective_date": dt.date.today(), "external_ref": None, "memo": None,
              "metadata_json": None, "pending_id": None, "reverses_id": None,
              "posting_count": 0, "created_at": dt.datetime(2026, 11, 23), "content_hash": row[1]}
    with pytest.raises(IntegrityError) as info:
        with chart.engine.begin() as conn:
            postings._insert_batch_pg(conn, [], [header, {**header, "id": 10**9 + 1,
                                                          "idempotency_key": "c"}])
    assert "uq_journal_entry_book_id_idempotency_key" in str(info.value.orig)


def test_only_values_that_need_no_quoting_are_written_out():
    from enum import IntEnum

    from ledger.db import sql_literal, values_row

    class Small(IntEnum):
        ONE = 1

    written = {7: "7", -3: "-3", True: "true", None: "NULL", "CNY": "'CNY'", "ab12": "'ab12'",
               dt.date(2026, 11, 23): "'2026-11-23'::date",
               dt.datetime(2026, 11, 23, 9, 30, 0, 5): "'2026-11-23T09:30:00.000005'::timestamp"}
    for value, text in written.items():
        assert sql_literal(value) == text
    for value in AWKWARD + ["top_up", "a b", "ü", 1.5, D("1"), Small.ONE, b"x"]:
        assert sql_literal(value) is None, value
    params: list = []
    row = {"a": 1, "b": "it's", "c": None, "d": "abc", "e": "100%"}
    assert values_row(row, ("a", "b", "c", "d", "e"), params) == "(1, %s, NULL, 'abc', %s)"
    assert params == ["it's", "100%"]


def test_sealing_writes_the_chain_links_of_a_batch(chart):
    book = chart
    book.post_many([{"postings": [(BANK, D("1.00")), (U1, D("-1.00"))], "key": f"s{i}",
                     "kind": "top_up"} for i in range(30)])
    book.seal()
    with book.engine.connect() as conn:
        links = conn.exec_driver_sql("SELECT count(*), count(DISTINCT chain_hash) FROM chain_link")
        assert tuple(links.one()) == (30, 30)
    assert book.verify().ok


def test_a_batch_over_many_wallets_is_refused_whole_when_one_is_short(chart):
    from ledger.errors import InsufficientFundsError

    book = chart
    wallets = [f"liabilities:users:w{i}:available" for i in range(12)]
    for code in wallets:
        book.open_account(code, "liability", no_overdraft=True)
    book.post_many([{"postings": [(BANK, D("5.00")), (code, D("-5.00"))], "key": f"in-{code}"}
                    for code in wallets])
    spend = [{"postings": [(code, D("5.00")), (BANK, D("-5.00"))], "key": f"out-{code}"}
             for code in wallets]
    spend[7]["postings"] = [(wallets[7], D("5.01")), (BANK, D("-5.01"))]
    with pytest.raises(InsufficientFundsError) as info:
        book.post_many(spend)
    assert info.value.fields["account"] == wallets[7]
    assert str(info.value) == (f"insufficient funds in {wallets[7]}: available 5.00 CNY, the "
                               f"entry 'out-{wallets[7]}' needs 5.01")
    assert [book.balance(code, kind="available") for code in wallets] == [D("5.00")] * 12
    assert book.entry_by_key(f"out-{wallets[0]}") is None
    book.post_many(spend[:7] + spend[8:])
    assert book.balance(wallets[0]) == 0 and book.balance(wallets[7]) == D("5.00")


def test_a_batch_naming_unknown_accounts_names_them_all(chart):
    from ledger.errors import UnknownAccountError

    items = [{"postings": [(BANK, D("1")), (U1, D("-1"))], "key": f"k{i}"} for i in range(600)]
    items[3]["postings"] = [(BANK, D("1")), ("liabilities:users:nobody:available", D("-1"))]
    items[500]["postings"] = [("assets:nowhere", D("1")), (U1, D("-1"))]
    with pytest.raises(UnknownAccountError) as info:
        chart.post_many(items)
    assert str(info.value) == ("unknown accounts: assets:nowhere, "
                               "liabilities:users:nobody:available")


def test_sealing_a_batch_over_several_dates_marks_each_date(chart):
    from sqlalchemy import select

    from ledger.models import ChainDay

    book = chart
    days = [dt.date(2026, 11, d) for d in (3, 1, 2)]
    written = book.post_many([{"postings": [(BANK, D("1.00")), (U1, D("-1.00"))], "key": f"d{i}",
                               "effective_date": days[i % 3]} for i in range(9)])
    assert book.seal() == 9
    with book.engine.connect() as conn:
        marks = dict(conn.execute(select(ChainDay.effective_date, ChainDay.last_seq)).all())
        links = dict(conn.exec_driver_sql("SELECT entry_id, seq FROM chain_link").all())
        queued = conn.exec_driver_sql("SELECT count(*) FROM seal_queue").scalar()
    assert queued == 0
    assert sorted(links) == sorted(e.id for e in written)
    for day in days:
        assert marks[day] == max(links[e.id] for e in written if e.effective_date == day)
    assert book.verify().ok


def test_one_entry_with_many_legs_takes_the_multi_row_insert(chart, backend, monkeypatch):
    """A repayment to fifty investors is one entry of a hundred postings: on PostgreSQL its
    postings go in as one statement of literals, and read back exactly as posted."""
    book = chart
    investors = [f"liabilities:users:inv{i}:available" for i in range(40)]
    for code in investors:
        book.open_account(code, "liability", no_overdraft=True)
    calls = []
    real = postings._insert_batch_pg
    monkeypatch.setattr(postings, "_insert_batch_pg",
                        lambda conn, rows, headers: calls.append(len(rows)) or real(conn, rows, headers))
    shares = [(code, -(D("1.00") + D(i) / 100)) for i, code in enumerate(investors)]
    legs = [(BANK, -sum(amount for _, amount in shares))] + shares
    draft = postings.Draft(tuple(legs), "repay-1", "repayment", memo="it's 100%")
    # as the flows write an entry beside their own rows: through write(), in their transaction
    (entry,) = book.in_transaction(lambda conn, b: postings.write(conn, b.book_id, [draft]))
    assert calls == ([len(legs)] if backend == "postgresql" else [])
    with book.engine.connect() as conn:
        ((_, got),) = postings.load_entries(conn, book.book_id, keys=["repay-1"])
    assert got == entry and len(got.postings) == len(legs)
    assert book.balance(investors[39]) == D("1.39")
    book.seal()
    assert book.verify().ok
