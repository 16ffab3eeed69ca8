"""The matching cascade on the edges: weekends and holidays around the
statement date, input the engine must refuse rather than trip over, and batch
lines that also carry a reference."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.calendar import WEEKENDS_ONLY, BusinessCalendar, parse_calendar
from reconcile.matching import (AMBIGUOUS, AMOUNT_DATE, AMOUNT_MISMATCH, BATCH,
                                IN_BANK_NOT_IN_LEDGER, IN_LEDGER_NOT_IN_BANK, IN_TRANSIT,
                                BankItem, ItemColumns, LedgerItem, MatchConfig,
                                MatchInputError, carry_forward, item_columns, match)

THU = date(2026, 11, 19)
FRI = date(2026, 11, 20)
SAT = date(2026, 11, 21)
SUN = date(2026, 11, 22)
MON = date(2026, 11, 23)
TUE = date(2026, 11, 24)


def line(id, amount, day=MON, *, ref=None, currency="CNY"):
    return BankItem(id, day, amount, currency, ref, None, None, None, f"line {id}")


def post(id, amount, day=MON, *, ref=None, currency="CNY"):
    return LedgerItem(id, 1, day, amount, currency, ref, None, "topup")


def kinds(result):
    return [(b.type, b.ledger_ids) for b in result.breaks]


# --- in transit around weekends and holidays ---------------------------------
def test_a_weekend_posting_is_in_transit_on_the_monday_statement():
    """Saturday and Sunday are Monday's business day: the bank may book them tomorrow."""
    ledger = [post(1, 100, SAT), post(2, 200, SUN), post(3, 300, FRI)]
    result = match([], ledger, statement_date=MON)
    assert kinds(result) == [(IN_TRANSIT, (1,)), (IN_TRANSIT, (2,)),
                             (IN_LEDGER_NOT_IN_BANK, (3,))]
    # the same as when the posting was carried from a run before the weekend
    assert kinds(carry_forward([post(2, 200, SUN)], [], [], statement_date=MON)) == [
        (IN_TRANSIT, (2,))]
    # and the bank booking it on Tuesday still matches it
    tuesday = carry_forward([post(2, 200, SUN)], [line(9, 200, TUE)], [], statement_date=TUE)
    assert tuesday.is_reconciled


def test_a_statement_dated_on_a_weekend_keeps_fridays_postings_in_transit():
    """A Saturday statement books nothing new: Friday's postings wait for Monday."""
    ledger = [post(1, 100, THU), post(2, 200, FRI), post(3, 300, SAT)]
    on_friday = match([], ledger, statement_date=FRI)
    on_saturday = match([], ledger, statement_date=SAT)
    assert kinds(on_saturday) == kinds(on_friday) == [
        (IN_LEDGER_NOT_IN_BANK, (1,)), (IN_TRANSIT, (2,)), (IN_TRANSIT, (3,))]


def test_a_statement_dated_on_a_holiday_keeps_the_last_business_days_postings_in_transit():
    calendar = parse_calendar(["2026-10-01 holiday", "2026-10-02 holiday"])
    config = MatchConfig(calendar=calendar)
    ledger = [post(1, 100, date(2026, 9, 29)), post(2, 200, date(2026, 9, 30))]
    result = match([], ledger, statement_date=date(2026, 10, 2), config=config)
    assert kinds(result) == [(IN_LEDGER_NOT_IN_BANK, (1,)), (IN_TRANSIT, (2,))]


# --- input refused with MatchInputError, never a TypeError -------------------
@pytest.mark.parametrize("calendar, message", [
    (BusinessCalendar(holidays=frozenset({datetime(2026, 11, 20)})), "holidays must be dates"),
    (BusinessCalendar(holidays=frozenset({"2026-11-20"})), "holidays must be dates"),
    (BusinessCalendar(workdays=frozenset({"2026-11-21"})), "workdays must be dates"),
    (BusinessCalendar(weekend=frozenset({5, 6, 7})), "weekend must be weekday numbers"),
    (BusinessCalendar(weekend=frozenset({"sat"})), "weekend must be weekday numbers"),
])
def test_a_calendar_of_other_things_than_dates_and_weekdays_is_refused(calendar, message):
    """A weekend day 7 miscounted every week; a datetime or text holiday crashed the run."""
    with pytest.raises(MatchInputError, match=message):
        match([line(1, 100, MON)], [post(1, 100, FRI)], statement_date=MON,
              config=MatchConfig(calendar=calendar))


@pytest.mark.parametrize("bank, ledger, carried, message", [
    ([line(1, 100, currency=["CNY"])], [], [], "currencies must be non-empty codes"),
    ([], [post(1, 100, currency={"CNY"})], [], "currencies must be non-empty codes"),
    ([line([1], 100), line([2], 100)], [], [], "ids must be int or str"),
    ([line([1], 100), line([1], 100)], [], [], "ids must be int or str"),
    ([], [post([1], 100)], [post([1], 100)], "ids must be int or str"),
    ([], [post(2, 100)], [post((1,), 100)], "ids must be int or str"),
])
def test_unhashable_currencies_and_ids_are_refused(bank, ledger, carried, message):
    with pytest.raises(MatchInputError, match=message):
        match(bank, ledger, carried=carried, statement_date=MON)


# --- batches whose line also carries a reference -----------------------------
def test_a_batch_line_whose_reference_is_the_batch_id_matches_the_batch():
    bank = [BankItem(1, MON, 300, "CNY", "SER1", "PAY-7", None, "PAY-7")]
    ledger = [LedgerItem(1, 9, MON, 100, "CNY", "PAY-7", "PAY-7"),
              LedgerItem(2, 9, MON, 200, "CNY", "PAY-7", "PAY-7")]
    result = match(bank, ledger)
    assert [(m.rule, m.bank_ids, m.ledger_ids) for m in result.matches] == [
        (BATCH, (1,), (1, 2))]
    assert result.is_reconciled


def test_a_batch_line_whose_reference_is_one_members_order_id_matches_the_batch():
    """It was an amount_mismatch against that one posting, the others left unexplained."""
    bank = [BankItem(1, MON, 300, "CNY", "SER1", "ORD-1", None, "B")]
    ledger = [LedgerItem(1, 9, MON, 100, "CNY", "ORD-1", "B"),
              LedgerItem(2, 9, MON, 200, "CNY", "ORD-2", "B")]
    result = match(bank, ledger)
    assert [(m.rule, m.ledger_ids) for m in result.matches] == [(BATCH, (1, 2))]
    assert result.is_reconciled


def test_a_batch_line_linked_by_reference_whose_batch_does_not_add_up_is_one_break():
    bank = [BankItem(1, MON, 350, "CNY", "SER1", "ORD-1", None, "B")]
    ledger = [LedgerItem(1, 9, MON, 100, "CNY", "ORD-1", "B"),
              LedgerItem(2, 9, MON, 200, "CNY", "ORD-2", "B")]
    result = match(bank, ledger)
    assert [(b.type, b.bank_ids, b.ledger_ids) for b in result.breaks] == [
        (AMOUNT_MISMATCH, (1,), (1, 2))]
    assert result.breaks[0].difference_minor == 50


# --- the property: any small day, however tangled ----------------------------
REFS = [None, "", " ", "a", "A", " a ", "b", "B ", "\u00df", "SS"]
BATCHES = [None, None, "X", "x ", "Y", "a"]
DAYS = st.dates(date(2026, 9, 28), date(2026, 10, 16))
HOLIDAY_WEEK = parse_calendar(["2026-10-01 holiday", "2026-10-02 holiday",
                               "2026-10-05 holiday", "2026-10-10 workday"])


@st.composite
def tangled_days(draw):
    """Few distinct amounts, references, batch ids and dates: every rule competes."""
    amounts = st.sampled_from([0, 50, 100, -100, 150, 200, 300])
    currencies = st.sampled_from(["CNY", "CNY", "USD"])
    bank_ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=7))
    ledger_ids = draw(st.lists(st.integers(1, 40), unique=True, max_size=7))
    bank = [BankItem(i, draw(DAYS), draw(amounts), draw(currencies), draw(st.sampled_from(REFS)),
                     draw(st.sampled_from(REFS)), draw(st.none() | DAYS),
                     draw(st.sampled_from(BATCHES))) for i in bank_ids]
    ledger = [LedgerItem(i, i, draw(DAYS), draw(amounts), draw(currencies),
                         draw(st.sampled_from(REFS)), draw(st.sampled_from(BATCHES)))
              for i in ledger_ids]
    carried = draw(st.lists(st.sampled_from(ledger), unique_by=lambda i: i.id)) if ledger else []
    config = MatchConfig(window_days=draw(st.integers(0, 3)),
                         calendar=draw(st.sampled_from([WEEKENDS_ONLY, HOLIDAY_WEEK])),
                         use_value_date=draw(st.booleans()))
    return bank, ledger, carried, config, draw(st.none() | DAYS)


@given(tangled_days(), st.randoms(use_true_random=False))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_item_once_no_guess_sums_agree_and_order_does_not_matter(day, rnd):
    bank, ledger, carried, config, statement_date = day
    result = match(bank, ledger, carried=carried, statement_date=statement_date, config=config)
    banks = {b.id: b for b in bank}
    postings = {**{p.id: p for p in ledger}, **{p.id: p for p in carried}}
    seen_b = Counter(i for m in result.matches for i in m.bank_ids)
    seen_l = Counter(i for m in result.matches for i in m.ledger_ids)
    seen_b.update(i for b in result.breaks for i in b.bank_ids)
    seen_l.update(i for b in result.breaks for i in b.ledger_ids)
    assert seen_b == Counter(list(banks)) and seen_l == Counter(list(postings))

    def booked(b):
        return (b.value_date or b.booking_date) if config.use_value_date else b.booking_date

    def near(b, p):
        return config.calendar.distance(booked(b), p.effective_date) <= config.window_days

    for m in result.matches:
        b, ps = banks[m.bank_ids[0]], [postings[i] for i in m.ledger_ids]
        assert {p.currency for p in ps} == {b.currency} == {m.currency}
        assert sum(p.amount_minor for p in ps) == b.amount_minor == m.amount_minor
        assert all(near(b, p) for p in ps)
    for brk in result.breaks:
        assert ({banks[i].currency for i in brk.bank_ids}
                | {postings[i].currency for i in brk.ledger_ids}) == {brk.currency}
    # amount and date: the pair was the only candidate on each side
    unpaired_b = [banks[i] for b in result.breaks if b.type in (AMBIGUOUS, IN_BANK_NOT_IN_LEDGER)
                  for i in b.bank_ids]
    unpaired_l = [postings[i] for b in result.breaks
                  if b.type in (AMBIGUOUS, IN_LEDGER_NOT_IN_BANK, IN_TRANSIT)
                  for i in b.ledger_ids]
    for m in result.matches:
        if m.basis == AMOUNT_DATE:
            b, p = banks[m.bank_ids[0]], postings[m.ledger_ids[0]]
            same = (b.amount_minor, b.currency)
            assert not any((o.amount_minor, o.currency) == same and near(o, p) for o in unpaired_b)
            assert not any((o.amount_minor, o.currency) == same and near(b, o) for o in unpaired_l)
    matched = {i for m in result.matches for i in m.ledger_ids}
    for brk in result.breaks:  # a suggestion is never cleared
        if brk.suggestion is not None:
            assert brk.type in (IN_BANK_NOT_IN_LEDGER, AMOUNT_MISMATCH)
            assert not set(brk.suggestion.ledger_ids) & matched
    again = match(rnd.sample(bank, len(bank)), rnd.sample(ledger, len(ledger)),
                  carried=rnd.sample(carried, len(carried)), statement_date=statement_date,
                  config=config)
    assert again == result
    # the same items given as columns, in any order, match the same
    as_columns = match(columns_of(BankItem, rnd.sample(bank, len(bank))),
                       columns_of(LedgerItem, rnd.sample(ledger, len(ledger))),
                       carried=carried, statement_date=statement_date, config=config)
    assert as_columns == result


def columns_of(cls, items):
    return ItemColumns(cls, [list(column) for column in zip(*items)] if items
                       else [[] for _ in cls._fields])


def test_item_columns_read_as_the_items_they_hold_and_refuse_what_items_would():
    bank = [BankItem(3, FRI, 100, "CNY", "B3", "O3"), BankItem(1, FRI, -50, "CNY", "B1", None)]
    ledger = [LedgerItem(7, 70, FRI, 100, "CNY", "O3"), LedgerItem(5, 50, FRI, -50, "CNY", "B1")]
    columns = columns_of(BankItem, bank)
    assert len(columns) == 2 and columns[1] == bank[1] and list(columns) == bank
    assert columns[::-1] == bank[::-1] and type(columns[0]) is BankItem
    assert match(columns, columns_of(LedgerItem, ledger)) == match(bank, ledger)
    # ids that are not ints, or repeat, or items of the other class: as given item by item
    named = [item._replace(id=f"b{item.id}") for item in bank]
    assert match(columns_of(BankItem, named), ledger) == match(named, ledger)
    twice = bank + [bank[0]]
    with pytest.raises(MatchInputError) as as_columns:
        match(columns_of(BankItem, twice), ledger)
    with pytest.raises(MatchInputError) as as_items:
        match(twice, ledger)
    assert str(as_columns.value) == str(as_items.value)
    with pytest.raises(MatchInputError, match="must be BankItem values"):
        match(columns_of(LedgerItem, ledger), ledger)
    # read from rows holding the fields elsewhere (statement lines, say): the same items
    rows = [("", item.amount_minor, item.booking_date, item.end_to_end_ref, item.bank_ref,
             item.currency, None) for item in bank]
    from_rows = item_columns(BankItem, [3, 1], rows, [2, 1, 5, 4, 3, 6, 6, 0])
    assert list(from_rows) == bank and from_rows[1] == bank[1]
    assert match(from_rows, ledger) == match(bank, ledger)
    with pytest.raises(MatchInputError, match="one column of equal length"):
        ItemColumns(BankItem, [[1, 2]] + [[None]] * 8)
    with pytest.raises(MatchInputError, match="BankItem or LedgerItem"):
        ItemColumns(tuple, [[1]])
