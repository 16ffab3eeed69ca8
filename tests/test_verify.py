"""Tamper evidence, tested honestly: the triggers are taken away first.

A superuser (PostgreSQL: ``ALTER TABLE ... DISABLE TRIGGER USER``; SQLite:
``DROP TRIGGER``) alters rows behind the ledger's back; ``verify`` must find
each change and name the first entry where something differs.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

import ledger
from cli import main
from ledger.money import format_minor

BANK = "assets:custody:bank"
U1 = "liabilities:users:u1:available"
U2 = "liabilities:users:u2:available"
FEES = "income:platform:fees:service"
TABLES = ("journal_entry", "posting", "chain_link", "balance_checkpoint", "closed_period", "account")


@pytest.fixture
def books(db_url):
    """A sealed book of five entries: ids in ``book.ids`` (by key)."""
    book = ledger.open(db_url)
    book.open_account(BANK, "asset")
    book.open_account(U1, "liability", no_overdraft=True)
    book.open_account(U2, "liability", no_overdraft=True)
    book.open_account(FEES, "income")
    day = dt.date(2026, 10, 1)
    entries = [
        ("e1", [(BANK, "100.00"), (U1, "-100.00")]),
        ("e2", [(BANK, "60.00"), (U2, "-60.00")]),
        ("e3", [(U1, "1.50"), (FEES, "-1.50")]),
        ("e4", [(U2, "2.50"), (FEES, "-2.50")]),
        ("e5", [(U1, "10.00"), (U2, "-10.00")]),
    ]
    book.ids = {}
    for i, (key, postings) in enumerate(entries):
        book.ids[key] = book.post(postings, key=key, effective_date=day + dt.timedelta(days=i),
                                  memo=f"memo {key}").id
    book.seal()
    assert book.verify().ok
    yield book
    book.dispose()


@contextmanager
def behind_the_ledgers_back(book):
    """A transaction with the append-only triggers gone (as a superuser could)."""
    if book.engine.dialect.name == "postgresql":
        with book.engine.begin() as conn:
            for t in TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {t} DISABLE TRIGGER USER")
        with book.engine.begin() as conn:
            yield conn
        with book.engine.begin() as conn:
            for t in TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {t} ENABLE TRIGGER USER")
    else:
        with book.engine.begin() as conn:
            names = [r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")]
            for name in names:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            yield conn


def first(book, **kwargs):
    report = book.verify(**kwargs)
    assert not report.ok
    return report.first


def test_a_closed_account_that_holds_money_or_moved_after_its_close_is_found(books):
    """Closing needs a zero balance; a post that raced the close (or a close written
    behind the ledger's back) leaves a closed account holding money. Verify says so."""
    u3 = "liabilities:users:u3:available"
    books.open_account(u3, "liability", no_overdraft=True)
    books.post([(U1, "5.00"), (u3, "-5.00")], key="e6", effective_date=dt.date(2026, 10, 9))
    books.post([(u3, "5.00"), (U1, "-5.00")], key="e7", effective_date=dt.date(2026, 10, 10))
    books.close_account(u3)                      # emptied first: a proper close
    assert books.verify().ok
    with books.engine.begin() as conn:           # closing is the one change an account takes
        conn.exec_driver_sql(f"UPDATE account SET closed_at = '2000-01-01 00:00:00' "
                             f"WHERE code = '{U2}'")
    found = [(p.check, p.message, p.entry_id) for p in books.verify().problems]
    assert found == [
        ("closed", f"{U2} was closed at 2000-01-01 00:00:00 yet holds 67.50", None),
        ("closed", f"{U2}: 3 posting(s) written after it was closed at 2000-01-01 00:00:00, "
                   f"the first by entry {books.ids['e2']}", books.ids["e2"])]


def test_changed_amount_is_found_at_its_entry(books):
    e3 = books.ids["e3"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE posting SET amount_minor = 1500 WHERE entry_id = {e3} AND position = 1")
        conn.exec_driver_sql(f"UPDATE posting SET amount_minor = -1500 WHERE entry_id = {e3} AND position = 0")
    problem = first(books)
    assert problem.entry_id == e3 and "was altered" in problem.message
    # Still balanced, so only the hash chain could tell; the stored wallet balance disagrees too.
    assert any(p.check == "balance" and p.account == U1 for p in books.verify().problems)


def test_changed_header_field_is_found_and_from_entry_starts_later(books):
    e2, e4 = books.ids["e2"], books.ids["e4"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE journal_entry SET memo = 'nothing to see' WHERE id = {e2}")
    assert first(books).entry_id == e2
    assert books.verify(from_entry=e4).ok  # the chain from e4 on is intact
    result = CliRunner().invoke(main, ["verify", "--db", books.engine.url.render_as_string(False)],
                                catch_exceptions=False)
    assert result.exit_code == 4 and f"first at entry {e2}" in result.output


def test_deleted_posting_is_found(books):
    e2 = books.ids["e2"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"DELETE FROM posting WHERE entry_id = {e2} AND position = 1")
    problems = books.verify().problems
    assert problems[0].entry_id == e2 and "was altered" in problems[0].message
    assert any(p.check == "entry" and p.entry_id == e2 and "does not balance" in p.message
               for p in problems)


def test_deleted_entry_is_found_where_the_chain_breaks(books):
    e2, e3 = books.ids["e2"], books.ids["e3"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"DELETE FROM chain_link WHERE entry_id = {e2}")
        conn.exec_driver_sql(f"DELETE FROM posting WHERE entry_id = {e2}")
        conn.exec_driver_sql(f"DELETE FROM journal_entry WHERE id = {e2}")
    problems = books.verify().problems
    assert problems[0].entry_id == e3 and "link 2 is missing" in problems[0].message
    assert any("does not follow link" in p.message for p in problems)


def test_an_entry_header_deleted_is_reported_by_the_command_not_a_traceback(books):
    """Opening the book ran the migration transaction even at the latest schema, whose
    foreign-key check refused the orphaned postings: every command ended in a traceback."""
    if books.engine.dialect.name != "sqlite":
        pytest.skip("the migration transaction's foreign-key check is SQLite's")
    e4 = books.ids["e4"]
    with behind_the_ledgers_back(books):
        pass   # the triggers gone; the sqlite3 shell enforces no foreign keys
    raw = sqlite3.connect(books.engine.url.database)
    with raw:
        raw.execute(f"DELETE FROM journal_entry WHERE id = {e4}")
    raw.close()
    result = CliRunner().invoke(main, ["verify", "--db", books.engine.url.render_as_string(False)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 4
    assert f"postings of entry {e4} have no header" in result.output


def test_inserted_posting_is_found(books):
    e4 = books.ids["e4"]
    account = books.account(FEES).id
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(
            "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
            f"effective_date, is_pending) VALUES ({e4}, 2, {account}, 100, 'CNY', '2026-10-04', false)")
    problems = books.verify().problems
    assert problems[0].entry_id == e4 and "was altered" in problems[0].message
    assert any(p.check == "entry" and "has 3 postings, its header says 2" in p.message for p in problems)


def test_inserted_entry_is_found(books):
    e5 = books.ids["e5"]
    forged = e5 + 100
    bank, u1 = books.account(BANK).id, books.account(U1).id
    with behind_the_ledgers_back(books) as conn:
        for pos, (acct, amount) in enumerate(((bank, 5000), (u1, -5000))):
            conn.exec_driver_sql(
                "INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
                f"effective_date, is_pending) VALUES ({forged}, {pos}, {acct}, {amount}, 'CNY', "
                "'2026-10-09', false)")
        conn.exec_driver_sql(
            "INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, kind, phase, "
            "effective_date, posting_count, created_at, content_hash) VALUES "
            f"({forged}, {books.book_id}, 'forged', 'x', 'top_up', 'posted', '2026-10-09', 2, "
            f"'2026-10-09 00:00:00', '{'0' * 64}')")
    problems = books.verify().problems
    assert problems[0].entry_id == forged and "neither in the chain nor queued" in problems[0].message


def test_reordered_chain_links_are_found(books):
    e2, e3 = books.ids["e2"], books.ids["e3"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql("UPDATE chain_link SET seq = -2 WHERE seq = 2")
        conn.exec_driver_sql("UPDATE chain_link SET seq = 2 WHERE seq = 3")
        conn.exec_driver_sql("UPDATE chain_link SET seq = 3 WHERE seq = -2")
    problem = first(books)
    assert problem.entry_id == e3 and "reordered" in problem.message  # e3 now sits at link 2
    assert e2 in {p.entry_id for p in books.verify().problems}


def test_swapped_entry_contents_are_found(books):
    e2, e3 = books.ids["e2"], books.ids["e3"]
    with behind_the_ledgers_back(books) as conn:
        # Two entries exchange their postings (the posting -> entry key is deferred).
        conn.exec_driver_sql(f"UPDATE posting SET entry_id = -1 WHERE entry_id = {e2}")
        conn.exec_driver_sql(f"UPDATE posting SET entry_id = {e2} WHERE entry_id = {e3}")
        conn.exec_driver_sql(f"UPDATE posting SET entry_id = {e3} WHERE entry_id = -1")
    problems = books.verify().problems
    assert problems[0].entry_id == e2 and "was altered" in problems[0].message
    assert any(p.entry_id == e3 and "was altered" in p.message for p in problems)


def test_altered_checkpoint_is_found(books):
    books.close_period(dt.date(2026, 10, 2), "2026-10-02")
    assert books.verify().ok
    bank = books.account(BANK).id
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE balance_checkpoint SET posted_minor = 1 WHERE account_id = {bank}")
    problems = books.verify().problems
    assert [p.check for p in problems] == ["checkpoint"]
    assert problems[0].account == BANK and "says 0.01, the postings say 160.00" in problems[0].message


def test_altered_chain_index_is_found(books):
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql("UPDATE chain_day SET last_seq = 1")
    problems = books.verify().problems
    assert {p.check for p in problems} == {"chain"}
    assert "the chain index of 2026-10-02 names link 1, the chain says link 2" in problems[0].message


def test_a_posting_moved_to_another_day_is_found(books):
    """The as-of reports read a posting's own date; the hash covers its entry's."""
    e1, e3 = books.ids["e1"], books.ids["e3"]
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE posting SET effective_date = '2026-12-31' WHERE entry_id = {e1}")
        conn.exec_driver_sql(f"UPDATE posting SET effective_date = '2026-12-31' "
                             f"WHERE entry_id = {e3} AND position = 0")
    found = [p for p in books.verify().problems if p.check == "entry"]
    assert [(p.entry_id, p.message) for p in found] == [
        (e1, f"entry {e1}: posting 0 is dated 2026-12-31, its entry 2026-10-01"),
        (e1, f"entry {e1}: posting 1 is dated 2026-12-31, its entry 2026-10-01"),
        (e3, f"entry {e3}: posting 0 is dated 2026-12-31, its entry 2026-10-03")]


def test_an_account_whose_currency_was_changed_is_found(books):
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE account SET currency = 'USD' WHERE code = '{FEES}'")
    found = [p for p in books.verify().problems if p.check == "entry"]
    assert {(p.entry_id, p.account) for p in found} == {(books.ids["e3"], FEES), (books.ids["e4"], FEES)}
    assert "is in CNY, its account income:platform:fees:service in USD" in found[0].message


def test_entries_cut_from_the_end_of_the_chain_are_found_by_the_head_written_down(books):
    """Verify checks the chain link by link: with the newest entries and their links gone,
    what is left is a sound shorter chain. Only a head kept outside the database tells."""
    book = books
    written_down = book.verify().chain_anchor
    assert written_down.startswith("5:")
    e6 = book.post([(BANK, "5000.00"), (FEES, "-5000.00")], key="e6",
                   effective_date=dt.date(2026, 10, 9)).id
    later = book.verify().chain_anchor
    assert later.startswith("6:") and book.verify(chain_anchor=written_down).ok   # it grew
    with behind_the_ledgers_back(book) as conn:
        conn.exec_driver_sql(f"DELETE FROM chain_link WHERE entry_id = {e6}")
        conn.exec_driver_sql("DELETE FROM chain_day WHERE effective_date = '2026-10-09'")
        conn.exec_driver_sql(f"DELETE FROM posting WHERE entry_id = {e6}")
        conn.exec_driver_sql(f"DELETE FROM journal_entry WHERE id = {e6}")
    assert book.verify().ok    # sound, and shorter
    assert [p.message for p in book.verify(chain_anchor=later).problems] == [
        "link 6 of the chain head written down is gone: the chain now ends at link 5 (entries "
        "were cut from its end)"]
    url = book.engine.url.render_as_string(False)
    result = CliRunner().invoke(main, ["verify", "--db", url, "--chain-head", later])
    assert result.exit_code == 4 and "link 6 of the chain head written down is gone" in result.output
    result = CliRunner().invoke(main, ["verify", "--db", url, "--chain-head", written_down])
    assert result.exit_code == 0, result.output
    assert f"5 entries in the chain, head {written_down}" in result.output
    bad = CliRunner().invoke(main, ["verify", "--db", url, "--chain-head", "5"])
    assert bad.exit_code == 2 and "--chain-head '5': give SEQ:HASH as verify prints it" in bad.output


def test_a_chain_head_of_an_empty_book_holds_and_a_malformed_one_is_named(db_url):
    book = ledger.open(db_url)
    book.open_account(BANK, "asset")
    book.open_account(FEES, "income")
    empty = book.verify().chain_anchor
    assert empty.startswith("0:")
    book.post([(BANK, "1.00"), (FEES, "-1.00")], key="e1")
    assert book.verify(chain_anchor=empty).ok
    assert [p.message for p in book.verify(chain_anchor="0:" + "0" * 63 + "1").problems][0].startswith(
        "link 0 is the chain's start")
    for odd in ("²:" + "0" * 64, "x", "1:short"):
        assert [p.message for p in book.verify(chain_anchor=odd).problems] == [
            f"{odd!r} is not a chain head (<link>:<hash>, as verify prints it)"]
    book.dispose()


def test_a_chain_recomputed_after_an_entry_was_changed_is_found_by_the_head_written_down(books):
    """The hashes use no secret: whoever can write the tables can change an entry and
    recompute its hash and every link after it. The chain is sound again; the head is not."""
    from ledger import chain

    book = books
    written_down = book.verify().chain_anchor
    e2 = book.ids["e2"]
    with behind_the_ledgers_back(book) as conn:
        conn.exec_driver_sql(f"UPDATE journal_entry SET memo = 'nothing to see' WHERE id = {e2}")
        links = conn.exec_driver_sql("SELECT seq, entry_id, prev_hash FROM chain_link "
                                     "ORDER BY seq").all()
        prev = links[0].prev_hash
        for seq, entry_id, _ in links:
            header = dict(conn.exec_driver_sql(
                f"SELECT * FROM journal_entry WHERE id = {entry_id}").mappings().one())
            for column in ("effective_date", "created_at"):
                value = header[column]
                if isinstance(value, str):
                    header[column] = (dt.date.fromisoformat(value) if column == "effective_date"
                                      else dt.datetime.fromisoformat(value))
            rows = conn.exec_driver_sql(
                "SELECT position, account_id, amount_minor, currency, is_pending FROM posting "
                f"WHERE entry_id = {entry_id}").all()
            content = chain.content_hash(header, rows)
            link = chain.link_hash(prev, content)
            conn.exec_driver_sql(f"UPDATE journal_entry SET content_hash = '{content}' "
                                 f"WHERE id = {entry_id}")
            conn.exec_driver_sql(f"UPDATE chain_link SET prev_hash = '{prev}', chain_hash = "
                                 f"'{link}' WHERE seq = {seq}")
            prev = link
    rewritten = book.verify()
    assert rewritten.ok, rewritten.problems     # every link follows, every hash matches
    problems = book.verify(chain_anchor=written_down).problems
    assert len(problems) == 1
    assert problems[0].message.startswith(f"link 5 (entry {book.ids['e5']}) now carries ")
    assert problems[0].message.endswith("written down: the chain was recomputed after an entry up "
                                        "to it was changed")


@pytest.mark.parametrize("sql, column, stored", [
    # read back as False: the entry drops out of every balance, its hash unchanged
    ("UPDATE posting SET is_pending = '' WHERE entry_id = {e}", "is_pending", "text ''"),
    # an ISO week date Python reads as the same day: out of every as-of report
    ("UPDATE posting SET effective_date = '2026-W40-7' WHERE entry_id = {e};"
     "UPDATE journal_entry SET effective_date = '2026-W40-7' WHERE id = {e}", "effective_date",
     "text '2026-W40-7'"),
    # int() reads 700 where SQL adds 700.7: the balances drift by fen
    ("UPDATE posting SET amount_minor = amount_minor + 0.7 WHERE entry_id = {e} AND amount_minor > 0",
     "amount_minor", "real"),
])
def test_a_value_stored_in_another_form_that_reads_back_the_same_is_found(books, sql, column, stored):
    """SQLite keeps any value in any column; the content hash is of the values as Python reads
    them, the reports add them in SQL. Each of these kept every hash and changed the trial
    balance, and verify said OK."""
    if books.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's column types take no other form")
    e4 = books.ids["e4"]
    reported = ("SELECT SUM(ABS(amount_minor)) FROM posting WHERE is_pending = 0 "
                "AND effective_date <= '2026-12-31'")   # what the as-of reports add up
    with books.engine.connect() as conn:
        before = conn.exec_driver_sql(reported).scalar()
    with behind_the_ledgers_back(books) as conn:
        for statement in sql.format(e=e4).split(";"):
            conn.exec_driver_sql(statement)
        assert conn.exec_driver_sql(reported).scalar() != before
    problems = books.verify().problems
    assert problems and problems[0].entry_id == e4
    assert any(p.message.startswith(f"entry {e4}: a posting holds {column} as {stored}")
               and p.message.endswith(", not in the form the ledger writes") for p in problems)


# --- loans: the plan and the dues of a disbursement are what the loan's terms make them -------
LOAN_TABLES = ("loan", "loan_due", "loan_bid")
INVESTORS = ("i1", "i2", "i3")


@contextmanager
def behind_the_loans_back(book):
    """As :func:`behind_the_ledgers_back`, with the loan tables' triggers gone too."""
    postgresql = book.engine.dialect.name == "postgresql"
    if postgresql:
        with book.engine.begin() as conn:
            for t in LOAN_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {t} DISABLE TRIGGER USER")
    try:
        with behind_the_ledgers_back(book) as conn:
            yield conn
    finally:
        if postgresql:
            with book.engine.begin() as conn:
                for t in LOAN_TABLES:
                    conn.exec_driver_sql(f"ALTER TABLE {t} ENABLE TRIGGER USER")


@pytest.fixture
def lent(db_url):
    """Loan L1 (12,000 at 6% over 12 months, a periodic fee of 5.00) disbursed to three
    investors and repaid once; loan L2 still bidding."""
    book = ledger.open(db_url)
    book.flows.open_system_accounts()
    for user in (*INVESTORS, "b"):
        book.flows.open_user(user)
        book.flows.top_up(user, "10000", bank_ref=f"B-{user}", key=f"topup-{user}")
    start = dt.date(2026, 1, 15)
    book.loans.create_loan("L1", "b", "12000", "6%", 12, key="c1", start=start,
                           conventions={"periodic_fee": "5"})
    for user in INVESTORS:
        book.loans.bid("L1", user, "4000", key=f"bid-{user}")
    book.ids = {"disbursement": book.loans.disburse("L1", key="d1", effective_date=start).id}
    first = book.loans.loan("L1").installments[0]
    book.loans.repay("L1", first.outstanding, key="r1", on_date=first.due_date)
    book.loans.create_loan("L2", "b", "3000", "6%", 6, key="c2", start=start)
    book.loans.bid("L2", "i1", "1000", key="bid-L2")
    assert book.verify().ok
    yield book
    book.dispose()


def disbursed_dues(book, seq: int, component: str) -> dict[str, int]:
    with book.engine.connect() as conn:
        return dict(conn.exec_driver_sql(
            "SELECT party, amount_minor FROM loan_due WHERE reason = 'disburse' "
            f"AND seq = {seq} AND component = '{component}'").all())


def loan_problems(book) -> list:
    return [p for p in book.verify().problems if p.check == "loans"]


def test_interest_inflated_behind_the_ledgers_back_is_found_per_party(lent):
    """Verify passed this, and the next repayment paid investors from the inflated interest."""
    scheduled = disbursed_dues(lent, 1, "interest")
    with behind_the_loans_back(lent) as conn:
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor + 50000 "
                             "WHERE seq = 1 AND component = 'interest' AND reason = 'disburse'")
    found = loan_problems(lent)
    assert [(p.message, p.entry_id) for p in found] == [
        (f"loan L1, installment 1, interest owed to {party}: its disbursement recorded "
         f"{format_minor(scheduled[party] + 50000)}, its terms make it {format_minor(scheduled[party])}",
         lent.ids["disbursement"]) for party in INVESTORS]


@pytest.mark.parametrize("component, party", [("fee", "@platform"), ("interest", "i2"),
                                              ("principal", "i3")])
def test_every_component_of_a_scheduled_due_is_checked(lent, component, party):
    scheduled = disbursed_dues(lent, 3, component)[party]
    with behind_the_loans_back(lent) as conn:
        conn.exec_driver_sql(f"UPDATE loan_due SET amount_minor = amount_minor - 1 WHERE seq = 3 "
                             f"AND component = '{component}' AND party = '{party}'")
    messages = [p.message for p in loan_problems(lent)]
    assert (f"loan L1, installment 3, {component} owed to {party}: its disbursement recorded "
            f"{format_minor(scheduled - 1)}, its terms make it {format_minor(scheduled)}") in messages
    # Principal is owed in the memo claims too: that check names the claim as well.
    assert len(messages) == (2 if component == "principal" else 1)


def test_a_changed_plan_or_rate_is_found_against_the_terms(lent):
    """The database refuses to change a loan's terms (only its status and raised amount
    move); whoever drops that trigger is found by verify."""
    with lent.engine.connect() as conn:
        plan = json.loads(conn.exec_driver_sql("SELECT plan_json FROM loan WHERE loan_no = 'L1'").scalar())
    interest = plan[1]["interest"]
    plan[1]["interest"] += 100
    with behind_the_loans_back(lent) as conn:
        conn.exec_driver_sql("UPDATE loan SET plan_json = ? WHERE loan_no = 'L1'"
                             if lent.engine.dialect.name == "sqlite" else
                             "UPDATE loan SET plan_json = %s WHERE loan_no = 'L1'", (json.dumps(plan),))
    assert [p.message for p in loan_problems(lent)] == [
        f"loan L1, installment 2: its plan says interest {format_minor(interest + 100)}, its terms "
        f"make it {format_minor(interest)}"]
    with behind_the_loans_back(lent) as conn:
        conn.exec_driver_sql("UPDATE loan SET annual_rate = '0.07' WHERE loan_no = 'L1'")
    messages = [p.message for p in loan_problems(lent)]
    assert "loan L1, installment 1: its plan says interest 60.00, its terms make it 70.00" in messages
    assert any(m.startswith("loan L1, installment 12, interest owed to i3: its disbursement recorded")
               for m in messages)


def test_dues_of_a_disbursement_removed_or_added_are_found(lent):
    with behind_the_loans_back(lent) as conn:
        conn.exec_driver_sql("DELETE FROM loan_due WHERE reason = 'disburse' AND component <> 'principal'")
        conn.exec_driver_sql(
            "INSERT INTO loan_due (loan_id, seq, component, party, amount_minor, reason, entry_id, "
            "effective_date) SELECT id, 1, 'interest', 'i1', 500, 'disburse', "
            f"{lent.ids['disbursement']}, start_date FROM loan WHERE loan_no = 'L2'")
    messages = [p.message for p in loan_problems(lent)]
    assert "loan L2 is bidding, yet dues of a disbursement are recorded for it" in messages
    assert ("loan L1, installment 12, fee owed to @platform: its disbursement recorded 0.00, its "
            "terms make it 5.00") in messages


# --- loans: what the dues of every later entry say moved is what the entry moved ---------
@pytest.fixture
def worked(db_url):
    """Loan L1 (12,000 at 6% over 12 months, a 10% management fee) repaid once, its second
    installment left overdue: penalties accrued, then compensated by the risk reserve;
    half of i1's claim sold to i4; the third installment repaid late. Entry ids by key
    in ``book.ids``."""
    book = ledger.open(db_url)
    book.flows.open_system_accounts()
    for user in (*INVESTORS, "i4", "b"):
        book.flows.open_user(user)
        book.flows.top_up(user, "20000", bank_ref=f"B-{user}", key=f"topup-{user}")
    book.flows.fund_risk_reserve("5000", bank_ref="RR", key="rr")
    start = dt.date(2026, 1, 15)
    book.loans.create_loan("L1", "b", "12000", "6%", 12, key="c1", start=start,
                           management_fee_rate="0.10")
    for user in INVESTORS:
        book.loans.bid("L1", user, "4000", key=f"bid-{user}")
    book.loans.disburse("L1", key="d1", effective_date=start)
    plan = book.loans.loan("L1").installments
    book.loans.repay("L1", plan[0].outstanding, key="r1", on_date=plan[0].due_date)
    late = plan[1].due_date + dt.timedelta(days=9)
    book.loans.accrue_penalties(late)
    book.loans.compensate("L1", 2, key="comp", on_date=late)
    book.loans.transfer_claim("L1", "i1", "i4", share="0.5", price="2000", key="x1", on_date=late)
    book.loans.repay("L1", "3000", key="r3", on_date=plan[2].due_date + dt.timedelta(days=2))
    book.ids = {key: book.entry_by_key(key).id
                for key in ("topup-b", "r1", "comp", "x1", "r3", f"penalty:L1:{late}")}
    book.ids["penalty"] = book.ids.pop(f"penalty:L1:{late}")
    assert book.verify().ok, book.verify().problems
    yield book
    book.dispose()


def loan_messages(book) -> list[str]:
    return [p.message for p in loan_problems(book)]


def test_interest_a_repayment_paid_one_investor_moved_to_another_is_found(worked):
    """The dues are not in the hash chain: moving what a repayment settled from one investor
    to another changed who the loan still owed, and verify passed it."""
    r1 = worked.ids["r1"]
    with behind_the_loans_back(worked) as conn:
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor + 100 WHERE reason = "
                             f"'repay' AND entry_id = {r1} AND component = 'interest' AND party = 'i1'")
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor - 100 WHERE reason = "
                             f"'repay' AND entry_id = {r1} AND component = 'interest' AND party = 'i2'")
    found = [m for m in loan_messages(worked) if m.startswith(f"loan L1, entry {r1}: its dues pay")]
    assert len(found) == 2
    assert found[0].startswith(f"loan L1, entry {r1}: its dues pay liabilities:users:i1:available ")
    assert found[1].startswith(f"loan L1, entry {r1}: its dues pay liabilities:users:i2:available ")


def test_a_changed_settlement_is_found_against_what_the_entry_paid(worked):
    r3 = worked.ids["r3"]
    with behind_the_loans_back(worked) as conn:
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor - 1 WHERE reason = "
                             f"'repay' AND entry_id = {r3} AND component = 'principal' AND party = 'i3' "
                             "AND seq = 3")
    owed, claim = claim_of(worked, "i3")
    assert loan_messages(worked) == [
        f"memo:claims:i3:L1: memo claim {format_minor(claim)} but the loan owes "
        f"{format_minor(owed)} in principal",
        f"loan L1, entry {r3}: its dues settle 3000.01, the entry says it paid 3000.00",
        "loan L1, entry %d: its dues pay liabilities:users:i3:available %s, the entry paid it %s"
        % ((r3,) + tuple(format_minor(v) for v in paid_to(worked, r3, "i3", extra=1)))]
    assert owed == claim - 1


def claim_of(book, party: str) -> tuple[int, int]:
    """(principal the dues say L1 owes ``party``, its memo claim)."""
    with book.engine.connect() as conn:
        owed = conn.exec_driver_sql("SELECT SUM(amount_minor) FROM loan_due WHERE "
                                    f"component = 'principal' AND party = '{party}'").scalar()
    return owed, int(book.balance(f"memo:claims:{party}:L1") * 100)


def paid_to(book, entry_id: int, user: str, extra: int) -> tuple[int, int]:
    """(what the dues now say ``user`` was paid net of fee, what the entry paid)."""
    with book.engine.connect() as conn:
        posted = conn.exec_driver_sql(
            "SELECT -SUM(p.amount_minor) FROM posting p JOIN account a ON a.id = p.account_id "
            f"WHERE p.entry_id = {entry_id} AND a.code = 'liabilities:users:{user}:available'").scalar()
    return posted + extra, posted


def test_a_due_pointed_at_another_entry_and_dues_deleted_are_found(worked):
    r1, r3, topup = worked.ids["r1"], worked.ids["r3"], worked.ids["topup-b"]
    with behind_the_loans_back(worked) as conn:
        conn.exec_driver_sql(f"UPDATE loan_due SET entry_id = {topup} WHERE entry_id = {r1}")
        conn.exec_driver_sql(f"DELETE FROM loan_due WHERE entry_id = {r3}")
    messages = loan_messages(worked)
    kind = worked.entry(topup).kind
    assert (f"loan L1: dues (repay) name entry {topup}, but it is a {kind} entry, not a repayment "
            f"or payoff; it names loan None; it is dated {worked.entry(topup).effective_date}, its "
            f"dues {worked.entry(r1).effective_date}") in messages
    assert f"repayment entry {r1} of loan L1: none of the loan's dues were recorded by it" in messages
    assert f"repayment entry {r3} of loan L1: none of the loan's dues were recorded by it" in messages


def test_changed_penalties_are_found_at_the_accrual_and_in_the_memo_account(worked):
    accrual = worked.ids["penalty"]
    with behind_the_loans_back(worked) as conn:
        accrued = conn.exec_driver_sql(
            f"SELECT SUM(amount_minor) FROM loan_due WHERE entry_id = {accrual}").scalar()
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor + 700 "
                             f"WHERE entry_id = {accrual} AND party = 'i2'")
    assert loan_messages(worked) == [
        "memo:penalties:L1: memo penalties 0.00 but the loan owes 7.00 in penalties",
        f"loan L1, entry {accrual}: its dues accrue {format_minor(accrued + 700)} of penalties, the "
        f"entry {format_minor(accrued)} on memo:penalties:L1"]


def test_a_claim_transfer_to_someone_else_is_found(worked):
    x1 = worked.ids["x1"]
    with behind_the_loans_back(worked) as conn:
        conn.exec_driver_sql(f"UPDATE loan_due SET party = 'i3' WHERE entry_id = {x1} AND party = 'i4' "
                             "AND component = 'interest' AND seq = 12")
    found = [m for m in loan_messages(worked) if f"entry {x1}" in m]
    assert len(found) == 1 and found[0].startswith(f"loan L1, entry {x1}: moves ")
    assert found[0].endswith(" of interest of installment 12 to i3; the entry transfers from i1 to i4")


def test_a_compensation_that_moved_more_to_its_payer_than_it_paid_is_found(worked):
    comp = worked.ids["comp"]
    with behind_the_loans_back(worked) as conn:
        conn.exec_driver_sql("UPDATE loan_due SET amount_minor = amount_minor + 5 WHERE entry_id = "
                             f"{comp} AND party = '@risk_reserve' AND component = 'interest'")
    found = [m for m in loan_messages(worked) if f"entry {comp}" in m]
    assert len(found) == 1
    assert found[0].startswith(f"loan L1, entry {comp}: paid the investors ")
    assert found[0].endswith(" of interest of installment 2 but moved " + found[0].split(" but moved ")[1])


def test_an_account_changed_behind_the_ledgers_back_is_found_by_the_anchor_written_down(books):
    """Swapping two wallets' codes keeps every entry's hash (they cover account ids): the
    accounts anchor an auditor wrote down beside the chain head tells."""
    anchor = books.verify().accounts_anchor
    assert books.verify(accounts_anchor=anchor).ok
    books.open_account("liabilities:users:u3:available", "liability", no_overdraft=True)
    assert books.verify(accounts_anchor=anchor).ok          # accounts are added, never changed
    assert books.verify().accounts_anchor != anchor
    with behind_the_ledgers_back(books) as conn:
        conn.exec_driver_sql(f"UPDATE account SET code = 'swap' WHERE code = '{U1}'")
        conn.exec_driver_sql(f"UPDATE account SET code = '{U1}' WHERE code = '{U2}'")
        conn.exec_driver_sql(f"UPDATE account SET code = '{U2}' WHERE code = 'swap'")
    assert books.verify().ok                                # nothing else can see it
    problem = first(books, accounts_anchor=anchor)
    assert problem.check == "accounts" and "up to id" in problem.message
    url = books.engine.url.render_as_string(False)
    result = CliRunner().invoke(main, ["verify", "--db", url, "--accounts-anchor", anchor],
                                catch_exceptions=False)
    assert result.exit_code == 4 and "[accounts] the accounts up to id" in result.output
    bad = CliRunner().invoke(main, ["verify", "--db", url, "--accounts-anchor", "x"],
                             catch_exceptions=False)
    assert bad.exit_code == 2 and "give ID:DIGEST as verify prints it" in bad.output
    assert "is not an accounts anchor" in first(books, accounts_anchor="x").message


def test_payments_charged_by_the_earlier_fee_rule_verify_beside_later_ones(db_url, monkeypatch):
    """Entries written before the management fee rounded as the loan and spared a payer's
    recovery were reported as altered. Each entry is checked by the rule it names."""
    from decimal import Decimal, ROUND_HALF_UP
    from ledger import loans as loans_module

    book = ledger.open(db_url)
    book.flows.open_system_accounts()
    for user in (*INVESTORS, "g", "b"):
        book.flows.open_user(user)
        book.flows.top_up(user, "100000", bank_ref=f"B-{user}", key=f"topup-{user}")
    start = dt.date(2026, 1, 15)
    book.loans.create_loan("L1", "b", "10000.01", "6%", 12, key="c1", start=start,
                           management_fee_rate="0.15", conventions={"rounding": "DOWN"})
    for user, amount in zip(INVESTORS, ("3333.33", "3333.34", "3333.34")):
        book.loans.bid("L1", user, amount, key=f"bid-{user}")
    book.loans.disburse("L1", key="d1", effective_date=start)
    plan = book.loans.loan("L1", today=start).installments
    with monkeypatch.context() as earlier:   # rule 1: every investor's interest, half up
        earlier.setattr(loans_module, "FEE_RULE", 1)
        earlier.setattr(loans_module, "charges_management_fee", lambda party, seq, _: not party.startswith("@"))
        earlier.setattr(loans_module, "management_fee", lambda before, interest, rate, rounding=None: (
            int((Decimal(before + interest) * rate).quantize(Decimal(1), ROUND_HALF_UP))
            - int((Decimal(before) * rate).quantize(Decimal(1), ROUND_HALF_UP))))
        for inst in plan[:3]:
            book.loans.repay("L1", inst.outstanding, key=f"r{inst.seq}", on_date=inst.due_date)
        late = plan[3].due_date + dt.timedelta(days=5)
        book.loans.compensate("L1", 4, key="comp", on_date=late, payer="g")
        book.loans.repay("L1", "1000", key="rec", on_date=late + dt.timedelta(days=3))
    assert book.verify().ok, book.verify().problems
    book.loans.repay("L1", "3000", key="now", on_date=plan[5].due_date)   # rule 2 from here
    assert book.entry_by_key("now").metadata["fee_rule"] == loans_module.FEE_RULE
    assert book.verify().ok, book.verify().problems
    book.dispose()


def test_a_closed_period_reopened_behind_the_ledgers_back_is_found(books):
    """A close was not in the hash chain: with its rows deleted, an entry dated in the period
    went in through the ledger and verify passed. The close is now an entry of the chain;
    the trial balance as of the period's last day names it in its footer."""
    from ledger import reports
    from ledger.errors import PostingError

    book = books
    book.close_period(dt.date(2026, 10, 31), today=dt.date(2026, 11, 5))
    record = book.entry_by_key("period-close:2026-10-31")
    assert (record.kind, record.postings, record.effective_date) == ("period_close", (), dt.date(2026, 10, 31))
    assert reports.trial_balance(book, as_of=dt.date(2026, 10, 31)).footer.last_entry_id == record.id
    assert book.verify().ok
    with pytest.raises(PostingError, match="records a period's close, which is not reversed"):
        book.reverse(record.id, key="undo-close", reason="reopen")
    with pytest.raises(PostingError, match="kind 'period_close' is the ledger's own record"):
        book.post([(BANK, "1.00"), (FEES, "-1.00")], key="fake", kind="period_close")
    with behind_the_ledgers_back(book) as conn:
        conn.exec_driver_sql("DELETE FROM balance_checkpoint")
        conn.exec_driver_sql("DELETE FROM closed_period")
    late = book.post([(BANK, "7.00"), (FEES, "-7.00")], key="late", effective_date=dt.date(2026, 10, 4))
    assert [p.message for p in book.verify().problems if p.check == "period"] == [
        f"entry {record.id} records the close of the period through 2026-10-31, but no close of it "
        "is recorded: its rows were deleted and the period reopened",
        f"entry {late.id} is dated 2026-10-04, in the period closed through 2026-10-31, yet was "
        f"linked after its close (link {link_of(book, late.id)}, the close link {link_of(book, record.id)})"]


def link_of(book, entry_id: int) -> int:
    with book.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT seq FROM chain_link WHERE entry_id = {entry_id}").scalar()


def test_an_entry_dated_in_an_earlier_closed_period_is_found_after_later_closes(books):
    book = books
    book.close_period(dt.date(2026, 10, 31), today=dt.date(2026, 12, 5))
    book.post([(BANK, "2.00"), (FEES, "-2.00")], key="nov", effective_date=dt.date(2026, 11, 3))
    book.close_period(dt.date(2026, 11, 30), today=dt.date(2026, 12, 5))
    assert book.verify().ok
    with behind_the_ledgers_back(book) as conn:
        conn.exec_driver_sql("DELETE FROM balance_checkpoint")
        conn.exec_driver_sql("DELETE FROM closed_period")
    late = book.post([(BANK, "7.00"), (FEES, "-7.00")], key="late", effective_date=dt.date(2026, 10, 4))
    messages = [p.message for p in book.verify().problems if p.check == "period"]
    assert len(messages) == 3
    assert messages[2].startswith(f"entry {late.id} is dated 2026-10-04, in the period closed "
                                  "through 2026-11-30, yet was linked after its close")


def test_only_a_close_writes_a_close_record_and_its_key_is_its_own(books):
    """A Draft marked as a record went through post_many: a close record with no close, which
    verify reported as a period reopened behind the database's back, for good; an entry under
    the key of a close blocked that close."""
    from ledger.errors import PostingError
    from ledger.postings import Draft

    book = books
    with book.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT COUNT(*) FROM journal_entry").scalar()
    with pytest.raises(PostingError, match="written by the ledger alone"):
        book.post_many([Draft((), "period-close:2026-10-31", "period_close", dt.date(2026, 10, 31),
                              record=True)])
    with pytest.raises(PostingError, match="keys beginning 'period-close:' are the ledger's own"):
        book.post([(BANK, "1.00"), (FEES, "-1.00")], key="period-close:2026-10-31")
    with book.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM journal_entry").scalar() == before
    book.close_period(dt.date(2026, 10, 31), today=dt.date(2026, 11, 5))
    assert book.verify().ok
