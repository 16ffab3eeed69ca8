"""The matching cascade: each rule and break type on a small inline day, then
a property: a generated custody day reconciles with zero breaks, and one
perturbation of its statement yields exactly the expected breaks."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconcile.calendar import (WEEKENDS_ONLY, BusinessCalendar, CalendarError,
                                parse_calendar)
from reconcile.matching import (AMBIGUOUS, AMOUNT_DATE, AMOUNT_MISMATCH, BATCH, BREAK_TYPES,
                                CARRIED_FORWARD, DATE_OUTSIDE_WINDOW, DUPLICATE,
                                EXACT_REFERENCE, IN_BANK_NOT_IN_LEDGER, IN_LEDGER_NOT_IN_BANK,
                                IN_TRANSIT, REFERENCE_SUM, SUBSET_SUM, BankItem, LedgerItem,
                                MatchConfig, MatchInputError, carry_forward, in_transit_items,
                                match)

FRI = date(2026, 11, 20)
SAT = date(2026, 11, 21)
MON = date(2026, 11, 23)
TUE = date(2026, 11, 24)
WED = date(2026, 11, 25)
THU = date(2026, 11, 26)


def line(id, amount, day=MON, *, ref=None, e2e=None, batch=None, value=None, currency="CNY"):
    """A bank statement line; ``ref`` is the bank's serial, ``e2e`` the order id."""
    return BankItem(id, day, amount, currency, ref, e2e, value, batch, f"line {id}")


def post(id, amount, day=MON, *, ref=None, batch=None, currency="CNY"):
    """A custody-account posting of entry ``100 + id``."""
    return LedgerItem(id, 100 + id, day, amount, currency, ref, batch, "topup")


def check_exclusive(result, bank, ledger):
    """Every item sits in exactly one match or break; no match reuses an item."""
    bank_seen = Counter(i for m in result.matches for i in m.bank_ids)
    ledger_seen = Counter(i for m in result.matches for i in m.ledger_ids)
    assert all(n == 1 for n in bank_seen.values()), "a bank line is in two matches"
    assert all(n == 1 for n in ledger_seen.values()), "a posting is in two matches"
    bank_seen.update(i for b in result.breaks for i in b.bank_ids)
    ledger_seen.update(i for b in result.breaks for i in b.ledger_ids)
    assert bank_seen == Counter(item.id for item in bank)
    assert ledger_seen == Counter(item.id for item in ledger)


def run(bank, ledger, **kwargs):
    result = match(bank, ledger, **kwargs)
    check_exclusive(result, bank, ledger)
    return result


def only_break(result, kind):
    assert [b.type for b in result.breaks] == [kind], result.breaks
    return result.breaks[0]


# --- rule 1: exact reference -------------------------------------------------
def test_exact_reference_matches_order_id_ignoring_case_and_blanks():
    result = run([line(1, 10000, ref="SER1", e2e=" ord-7 ")], [post(7, 10000, ref="ORD-7")])
    assert result.is_reconciled
    assert result.matches[0] == (EXACT_REFERENCE, (1,), (7,), 10000, "CNY", EXACT_REFERENCE)


def test_exact_reference_by_bank_serial_when_the_ledger_stored_it():
    result = run([line(1, -500, ref="FIT-9")], [post(7, -500, ref="fit-9")])
    assert [m.rule for m in result.matches] == [EXACT_REFERENCE]


def test_reference_beats_an_equal_amount_on_the_same_day():
    bank = [line(1, 300, e2e="A"), line(2, 300, e2e="B")]
    ledger = [post(8, 300, ref="B"), post(9, 300, ref="A")]
    result = run(bank, ledger)
    pairs = sorted((m.bank_ids, m.ledger_ids) for m in result.matches)
    assert pairs == [((1,), (9,)), ((2,), (8,))]


def test_two_postings_sharing_a_reference_are_each_used_once():
    bank = [line(1, 300, e2e="R"), line(2, 300, e2e="R")]
    ledger = [post(8, 300, ref="R"), post(9, 300, ref="R")]
    result = run(bank, ledger)
    assert [(m.bank_ids, m.ledger_ids) for m in result.matches] == [((1,), (8,)), ((2,), (9,))]


def test_empty_and_blank_references_are_no_references():
    bank = [line(1, 300, ref="", e2e="  "), line(2, 400, ref="S2", e2e="")]
    ledger = [post(8, 301, ref=""), post(9, 401, ref=" ")]
    result = run(bank, ledger)
    assert AMOUNT_MISMATCH not in result.summary.break_counts
    assert Counter(b.type for b in result.breaks) == {IN_BANK_NOT_IN_LEDGER: 2,
                                                       IN_LEDGER_NOT_IN_BANK: 2}


def test_an_empty_reference_links_nothing_even_in_a_column_without_blanks_or_none():
    bank = [line(1, 300, ref="S1", e2e=""), line(2, 400, ref="S2", e2e="B")]
    ledger = [post(8, 301, ref=""), post(9, 500, ref="C")]
    for config in (MatchConfig(), MatchConfig(strip_refs=False, casefold_refs=False)):
        result = run(bank, ledger, config=config)
        assert Counter(b.type for b in result.breaks) == {IN_BANK_NOT_IN_LEDGER: 2,
                                                           IN_LEDGER_NOT_IN_BANK: 2}


def test_lines_competing_for_one_posting_the_first_by_id_takes_it():
    bank = [line(1, 300, ref="S1", e2e="R"), line(2, 300, ref="S2", e2e="R"), line(3, 5, e2e="Q")]
    ledger = [post(8, 300, ref="R"), post(9, 5, ref="Q")]
    for order in range(3):
        result = run(shuffled(bank, order), shuffled(ledger, order))
        assert [(m.rule, m.bank_ids, m.ledger_ids) for m in result.matches] == [
            (EXACT_REFERENCE, (1,), (8,)), (EXACT_REFERENCE, (3,), (9,))]
        assert [(b.type, b.bank_ids) for b in result.breaks] == [(IN_BANK_NOT_IN_LEDGER, (2,))]


@pytest.mark.parametrize("far_lines", [1, 20])  # checked one by one, or as whole columns
def test_the_window_is_checked_for_every_pair_on_a_date_far_from_some_posting(far_lines):
    # Postings MON and TUE; a line booked WED is 2 business days from the MON ones.
    ledger = [post(100 + n, 1000 + n, TUE if n == 39 else MON, ref=f"R{n}") for n in range(40)]
    bank = [line(n + 1, 1000 + n, WED if n == 39 or n < far_lines else MON, e2e=f"R{n}")
            for n in range(40)]
    result = run(bank, ledger)
    outside = [b.bank_ids for b in result.breaks if b.type == DATE_OUTSIDE_WINDOW]
    assert outside == [(n + 1,) for n in range(far_lines)]
    assert [m.bank_ids[0] for m in result.matches] == list(range(far_lines + 1, 41))


def test_amounts_beyond_64_bits_and_totals_past_them_stay_exact():
    big = 2**62
    result = run([line(1, big, e2e="A"), line(2, big, e2e="B"), line(3, 2**70, e2e="C")],
                 [post(7, big, ref="A"), post(8, big, ref="B"), post(9, 2**70, ref="C")])
    assert result.is_reconciled
    assert [m.amount_minor for m in result.matches] == [big, big, 2**70]
    assert [tuple(t) for t in result.summary.matches] == [
        (EXACT_REFERENCE, "CNY", 3, 2 * big + 2**70)]
    result = run([line(1, big, e2e="A"), line(2, big, e2e="B")],
                 [post(7, big, ref="A"), post(8, big, ref="B")])
    assert [tuple(t) for t in result.summary.matches] == [(EXACT_REFERENCE, "CNY", 2, 2 * big)]


def random_day(rng):
    """(bank, ledger, carried, config, statement date): a messy random day, small enough
    that every rule, break type and tie shows up across a few hundred seeds."""
    days = [MON + (TUE - MON) * rng.randint(-6, 6) for _ in range(4)]
    refs = [f"R{n}" for n in range(rng.randint(1, 25))]

    def ref():
        roll = rng.random()
        if roll < 0.25:
            return rng.choice([None, None, "", " "])
        text = rng.choice(refs)
        return text.lower() if roll > 0.9 else text

    amounts = [rng.choice([1, -1]) * rng.randint(1, 8) * 100 for _ in range(6)]
    currencies = ["CNY"] if rng.random() < 0.6 else ["CNY", "USD"]
    batches = [None] * 5 + ["B1", "b1", "B2"] if rng.random() < 0.3 else [None]
    bank = [BankItem(n, rng.choice(days), rng.choice(amounts), rng.choice(currencies), ref(),
                     ref(), rng.choice([None, rng.choice(days)]), rng.choice(batches), "text")
            for n in rng.sample(range(1, 200), rng.randint(0, 30))]
    ledger = [LedgerItem(n, n, rng.choice(days), rng.choice(amounts), rng.choice(currencies),
                         ref(), rng.choice(batches), "topup")
              for n in rng.sample(range(1, 200), rng.randint(0, 30))]
    carried = rng.sample(ledger, rng.randint(0, len(ledger))) if rng.random() < 0.3 else []
    config = MatchConfig(window_days=rng.randint(0, 2), use_value_date=rng.random() < 0.3,
                         strip_refs=rng.random() < 0.8, casefold_refs=rng.random() < 0.8)
    return bank, ledger, carried, config, rng.choice([None] + days)


def decisions(result, amount_scale=1, id_of=lambda i: i):
    """What a result decided, without its wording: rules, types, ids and amounts."""
    def ids(values):
        return tuple(map(id_of, values))

    def amount(value):
        assert value % amount_scale == 0
        return value // amount_scale

    def suggestion(s):
        return s and (s.kind, ids(s.bank_ids), ids(s.ledger_ids), amount(s.amount_minor))

    return ([(m.rule, ids(m.bank_ids), ids(m.ledger_ids), amount(m.amount_minor), m.currency,
              m.basis) for m in result.matches],
            [(b.type, ids(b.bank_ids), ids(b.ledger_ids), amount(b.bank_amount_minor),
              amount(b.ledger_amount_minor), b.currency, suggestion(b.suggestion),
              b.duplicate_of and id_of(b.duplicate_of)) for b in result.breaks],
            [(t.rule, t.currency, t.count, amount(t.amount_minor))
             for t in result.summary.matches])


def test_int_ids_and_64_bit_amounts_decide_as_text_ids_and_python_ints_do():
    """The columns take a faster route for int ids and amounts that fit 64 bits; text ids
    and larger amounts take the general one. Both must decide the same on messy days."""
    scale = 2**64  # scaling every amount keeps every equality, sum and sign
    for seed in range(300):
        bank, ledger, carried, config, day = random_day(random.Random(seed))
        plain = match(bank, ledger, carried=carried, config=config, statement_date=day)
        check_exclusive(plain, bank, {item.id: item for item in ledger + carried}.values())

        def as_text(items):
            return [item._replace(id=f"{item.id:04d}") for item in items]

        text = match(as_text(bank), as_text(ledger), carried=as_text(carried), config=config,
                     statement_date=day)
        assert decisions(text, id_of=int) == decisions(plain), seed

        def scaled(items):
            return [item._replace(amount_minor=item.amount_minor * scale) for item in items]

        big = match(scaled(bank), scaled(ledger), carried=scaled(carried), config=config,
                    statement_date=day)
        assert decisions(big, amount_scale=scale) == decisions(plain), seed


def test_a_reference_only_links_items_of_the_same_currency():
    result = run([line(1, 300, e2e="R", currency="USD")], [post(8, 300, ref="R")])
    assert sorted(b.type for b in result.breaks) == [IN_BANK_NOT_IN_LEDGER, IN_LEDGER_NOT_IN_BANK]


# --- rule 2: reference links that do not match --------------------------------
def test_reference_equal_amount_different_is_a_break_naming_both_sides():
    result = run([line(1, 9900, ref="SER1", e2e="ORD-7")], [post(7, 10000, ref="ORD-7")])
    brk = only_break(result, AMOUNT_MISMATCH)
    assert (brk.bank_ids, brk.ledger_ids) == ((1,), (7,))
    assert (brk.bank_amount_minor, brk.ledger_amount_minor) == (9900, 10000)
    assert brk.difference_minor == -100
    assert "bank line 1 (99.00 CNY in" in brk.detail
    assert "ledger posting 7 (100.00 CNY in" in brk.detail
    assert "bank minus ledger: -1.00 CNY" in brk.detail
    assert not result.matches


def test_a_line_the_bank_split_in_two_is_one_break_with_a_suggestion():
    bank = [line(1, 6000, ref="S1", e2e="ORD-7"), line(2, 4000, ref="S2", e2e="ORD-7")]
    result = run(bank, [post(7, 10000, ref="ORD-7")])
    brk = only_break(result, AMOUNT_MISMATCH)
    assert (brk.bank_ids, brk.ledger_ids) == ((1, 2), (7,))
    assert brk.suggestion.kind == REFERENCE_SUM
    assert result.suggestions == (brk.suggestion,)


def test_reference_equal_but_dated_outside_the_window():
    result = run([line(1, 500, THU, e2e="R")], [post(7, 500, MON, ref="R")])
    brk = only_break(result, DATE_OUTSIDE_WINDOW)
    assert (brk.bank_ids, brk.ledger_ids) == ((1,), (7,))
    assert "3 business day(s) apart" in brk.detail


def test_window_counts_business_days_friday_to_monday_is_one():
    assert run([line(1, 500, MON, e2e="R")], [post(7, 500, FRI, ref="R")]).is_reconciled
    result = run([line(1, 500, TUE, e2e="R")], [post(7, 500, FRI, ref="R")])
    only_break(result, DATE_OUTSIDE_WINDOW)


def test_holidays_and_adjusted_workdays_come_from_the_calendar():
    # Test data only (not a real year's table): Monday a holiday, Saturday a workday.
    calendar = parse_calendar(["2026-11-23 holiday", "2026-11-21 workday  # adjusted"])
    config = MatchConfig(calendar=calendar)
    assert run([line(1, 500, TUE, e2e="R")], [post(7, 500, SAT, ref="R")],
               config=config).is_reconciled
    only_break(run([line(1, 500, TUE, e2e="R")], [post(7, 500, FRI, ref="R")], config=config),
               DATE_OUTSIDE_WINDOW)


def test_value_date_can_be_compared_instead_of_booking_date():
    bank = [line(1, 500, THU, e2e="R", value=MON)]
    ledger = [post(7, 500, MON, ref="R")]
    only_break(run(bank, ledger), DATE_OUTSIDE_WINDOW)
    assert run(bank, ledger, config=MatchConfig(use_value_date=True)).is_reconciled


# --- rule 3: batch -----------------------------------------------------------
def test_batch_payout_matches_its_postings_when_the_sum_agrees():
    bank = [line(1, -30000, batch="PAY-1")]
    ledger = [post(7, -10000, batch="pay-1"), post(8, -20000, batch="PAY-1"), post(9, -5)]
    result = run(bank, ledger)
    assert result.matches[0] == (BATCH, (1,), (7, 8), -30000, "CNY", BATCH)
    assert [b.type for b in result.breaks] == [IN_LEDGER_NOT_IN_BANK]


def test_batch_whose_sum_differs_is_an_amount_mismatch():
    result = run([line(1, -30001, batch="PAY-1")],
                 [post(7, -10000, batch="PAY-1"), post(8, -20000, batch="PAY-1")])
    brk = only_break(result, AMOUNT_MISMATCH)
    assert (brk.bank_ids, brk.ledger_ids, brk.difference_minor) == ((1,), (7, 8), -1)
    assert "batch id" in brk.detail


def test_batch_outside_the_window_is_date_outside_window():
    result = run([line(1, -300, THU, batch="B")], [post(7, -100, MON, batch="B"),
                                                   post(8, -200, MON, batch="B")])
    assert only_break(result, DATE_OUTSIDE_WINDOW).ledger_ids == (7, 8)


def test_batch_id_wins_over_an_unrelated_line_of_the_same_amount():
    bank = [line(1, -100), line(2, -300, batch="B")]
    ledger = [post(7, -100, batch="B"), post(8, -200, batch="B"), post(9, -100)]
    result = run(bank, ledger)
    assert sorted((m.rule, m.bank_ids, m.ledger_ids) for m in result.matches) == [
        (AMOUNT_DATE, (1,), (9,)), (BATCH, (2,), (7, 8))]


# --- rule 4: amount and date -------------------------------------------------
def test_amount_and_date_with_one_candidate_each_side():
    result = run([line(1, 777, TUE)], [post(7, 777, MON), post(8, 778, MON)])
    assert [(m.rule, m.ledger_ids) for m in result.matches] == [(AMOUNT_DATE, (7,))]


def test_two_candidates_are_ambiguous_never_a_guess():
    result = run([line(1, 777, MON)], [post(7, 777, MON), post(8, 777, TUE)])
    brk = only_break(result, AMBIGUOUS)
    assert (brk.bank_ids, brk.ledger_ids) == ((1,), (7, 8))
    assert (brk.bank_amount_minor, brk.ledger_amount_minor) == (777, 1554)
    assert not result.matches


def test_candidates_far_apart_in_time_do_not_make_each_other_ambiguous():
    bank = [line(1, 777, MON), line(2, 777, THU)]
    ledger = [post(7, 777, MON), post(8, 777, THU)]
    result = run(bank, ledger)
    assert [(m.bank_ids, m.ledger_ids) for m in result.matches] == [((1,), (7,)), ((2,), (8,))]


def test_same_amount_outside_the_window_is_no_match():
    result = run([line(1, 777, THU)], [post(7, 777, MON)])
    assert sorted(b.type for b in result.breaks) == [IN_BANK_NOT_IN_LEDGER, IN_LEDGER_NOT_IN_BANK]


# --- suggestions -------------------------------------------------------------
def test_subset_sum_is_suggested_not_cleared():
    bank = [line(1, -1500)]
    ledger = [post(7, -1000), post(8, -700), post(9, -500), post(10, 500)]
    result = run(bank, ledger)
    brk = result.breaks[0]
    assert brk.type == IN_BANK_NOT_IN_LEDGER and brk.bank_ids == (1,)
    assert brk.suggestion == (SUBSET_SUM, (1,), (7, 9), -1500, "CNY")
    assert "suggestion: ledger postings 7" in brk.detail
    assert Counter(b.type for b in result.breaks) == {IN_BANK_NOT_IN_LEDGER: 1,
                                                       IN_LEDGER_NOT_IN_BANK: 4}
    assert not result.matches and result.suggestions == (brk.suggestion,)


def test_no_suggestion_from_a_pool_too_large_to_mean_anything():
    ledger = [post(i, -i) for i in range(1, 30)]
    result = run([line(100, -60)], ledger, config=MatchConfig(subset_max_pool=20))
    assert result.breaks[0].suggestion is None
    result = run([line(100, -60)], ledger, config=MatchConfig(subset_max_pool=100))
    assert sum(-i for i in result.breaks[0].suggestion.ledger_ids) == -60


def test_suggestions_can_be_switched_off():
    result = run([line(1, -1500)], [post(7, -1000), post(8, -500)],
                 config=MatchConfig(subset_max_items=0))
    assert not result.suggestions


# --- leftovers ---------------------------------------------------------------
def test_a_repeated_bank_serial_is_a_duplicate_reported_not_matched():
    bank = [line(1, 500, ref="SER1", e2e="R"), line(2, 500, ref="ser1 ", e2e="R")]
    result = run(bank, [post(7, 500, ref="R")])
    assert [m.bank_ids for m in result.matches] == [(1,)]
    brk = only_break(result, DUPLICATE)
    assert (brk.bank_ids, brk.duplicate_of, brk.ledger_ids) == ((2,), 1, ())
    assert "repeats bank reference" in brk.detail


def test_unmatched_postings_dated_on_the_statement_day_are_in_transit():
    ledger = [post(7, 500, FRI, ref="A"), post(8, 600, MON, ref="B"), post(9, 700, TUE)]
    result = run([], ledger, statement_date=MON)
    assert [(b.type, b.ledger_ids) for b in result.breaks] == [
        (IN_LEDGER_NOT_IN_BANK, (7,)), (IN_TRANSIT, (8,)), (IN_TRANSIT, (9,))]
    assert result.in_transit_ids == (8, 9)
    assert in_transit_items(result, ledger) == (ledger[1], ledger[2])
    assert "has no bank line yet" in result.breaks[1].detail


def test_without_a_statement_date_nothing_is_in_transit():
    result = run([], [post(8, 600, MON)])
    only_break(result, IN_LEDGER_NOT_IN_BANK)


def test_in_transit_postings_carry_forward_and_clear_the_next_day():
    friday = [post(7, 500, FRI, ref="A"), post(8, 600, FRI)]
    first = run([], friday, statement_date=FRI)
    carried = in_transit_items(first, friday)
    assert [i.id for i in carried] == [7, 8]
    monday_bank = [line(1, 500, MON, e2e="a"), line(2, 600, MON), line(3, 50, MON, e2e="C")]
    monday_ledger = [post(9, 50, MON, ref="C")]
    second = carry_forward(carried, monday_bank, monday_ledger, statement_date=MON)
    check_exclusive(second, monday_bank, monday_ledger + list(carried))
    assert sorted((m.rule, m.basis, m.ledger_ids) for m in second.matches) == [
        (CARRIED_FORWARD, AMOUNT_DATE, (8,)), (CARRIED_FORWARD, EXACT_REFERENCE, (7,)),
        (EXACT_REFERENCE, EXACT_REFERENCE, (9,))]
    assert second.is_reconciled
    assert second.summary.match_counts == {EXACT_REFERENCE: 1, CARRIED_FORWARD: 2}


def test_a_carried_posting_stays_in_transit_within_the_window_then_breaks():
    carried = [post(7, 500, FRI, ref="A")]
    monday = carry_forward(carried, [], [], statement_date=MON)
    assert [b.type for b in monday.breaks] == [IN_TRANSIT]
    tuesday = carry_forward(carried, [], [], statement_date=TUE)
    assert [b.type for b in tuesday.breaks] == [IN_LEDGER_NOT_IN_BANK]


def test_a_carried_posting_also_passed_as_todays_ledger_counts_once():
    carried = [post(7, 500, FRI, ref="A")]
    result = carry_forward(carried, [line(1, 500, MON, e2e="A")], carried, statement_date=MON)
    assert [(m.rule, m.ledger_ids) for m in result.matches] == [(CARRIED_FORWARD, (7,))]


# --- the result --------------------------------------------------------------
def test_summary_counts_and_sums_per_rule_and_break_type():
    bank = [line(1, 100, e2e="A"), line(2, 200, e2e="B"), line(3, 5), line(4, -40, currency="USD")]
    ledger = [post(7, 100, ref="A"), post(8, 250, ref="B"), post(9, 5), post(10, 1, FRI)]
    summary = run(bank, ledger, statement_date=MON).summary
    assert (summary.bank_lines, summary.ledger_items) == (4, 4)
    assert (summary.matched_bank_lines, summary.matched_ledger_items) == (2, 2)
    assert summary.match_counts == {EXACT_REFERENCE: 1, AMOUNT_DATE: 1}
    assert summary.break_counts == {AMOUNT_MISMATCH: 1, IN_BANK_NOT_IN_LEDGER: 1,
                                    IN_LEDGER_NOT_IN_BANK: 1}
    assert [tuple(t) for t in summary.matches] == [(EXACT_REFERENCE, "CNY", 1, 100),
                                                   (AMOUNT_DATE, "CNY", 1, 5)]
    assert [tuple(t) for t in summary.breaks] == [
        (AMOUNT_MISMATCH, "CNY", 1, 200, 250), (IN_BANK_NOT_IN_LEDGER, "USD", 1, -40, 0),
        (IN_LEDGER_NOT_IN_BANK, "CNY", 1, 0, 1)]


def test_breaks_and_matches_are_immutable_values():
    result = run([line(1, 5)], [post(7, 6)])
    with pytest.raises(AttributeError):
        result.breaks[0].type = AMOUNT_DATE
    assert isinstance(result.breaks, tuple)
    with pytest.raises(TypeError):
        result.matches[0] = None
    assert all(b.type in BREAK_TYPES for b in result.breaks)


def test_matches_read_like_a_tuple_of_match_values():
    bank = [line(1, 100, e2e="A"), line(2, 200, e2e="B"), line(3, -300, batch="P"), line(4, 5)]
    ledger = [post(7, 100, ref="A"), post(8, 200, ref="B"), post(9, -300, batch="P"),
              post(10, 5)]
    matches = run(bank, ledger).matches
    as_tuple = tuple(matches)
    assert len(matches) == 4 and [m.rule for m in as_tuple] == [
        EXACT_REFERENCE, EXACT_REFERENCE, BATCH, AMOUNT_DATE]
    assert matches == as_tuple and as_tuple == tuple(matches) and hash(matches) == hash(as_tuple)
    assert matches[-1] == as_tuple[-1] and matches[1:3] == as_tuple[1:3]
    assert matches[1] == (EXACT_REFERENCE, (2,), (8,), 200, "CNY", EXACT_REFERENCE)
    with pytest.raises(IndexError):
        matches[4]
    with pytest.raises(TypeError):
        matches[0] = None
    assert "Match(rule='exact_reference'" in repr(matches)


def test_empty_input_is_reconciled():
    result = match([], [])
    assert result.is_reconciled and result.summary.bank_lines == 0


# --- refused input -----------------------------------------------------------
def test_every_problem_with_the_input_is_reported_at_once():
    from decimal import Decimal
    bank = [line(1, Decimal("1.00")), line(2, 100, datetime(2026, 11, 23, 9, 30))]
    ledger = [post(7, 5, ref=42)]
    with pytest.raises(MatchInputError) as caught:
        match(bank, ledger, config=MatchConfig(window_days=-1))
    problems = caught.value.problems
    assert len(problems) == 4
    assert any("window_days" in p for p in problems)
    assert any("[1]: amount_minor must be int" in p for p in problems)
    assert any("[2]: date must be a date" in p for p in problems)
    assert any("[7]: external_ref must be text" in p for p in problems)


def test_floats_are_refused():
    with pytest.raises(MatchInputError, match="floats are refused"):
        match([line(1, 1.5)], [])


@pytest.mark.parametrize("bank, message", [
    ([line(1, 5), line(1, 6)], "ids repeat"),
    ([line(1, 5), line("2", 6)], "one type"),
    ([(1, MON, 5, "CNY")], "must be BankItem"),
])
def test_bad_ids_and_shapes_are_refused(bank, message):
    with pytest.raises(MatchInputError, match=message):
        match(bank, [])


# --- calendar ----------------------------------------------------------------
def test_calendar_file_errors_are_collected_with_line_numbers():
    lines = ["# holidays", "2026-10-01 holiday National Day", "2026-13-01 holiday",
             "2026-10-02 vacation", "2026-10-01 workday", "nonsense"]
    with pytest.raises(CalendarError) as caught:
        parse_calendar(lines, source="cn-2026.txt")
    assert [n for n, _ in caught.value.problems] == [3, 4, 5, 6]
    assert "cn-2026.txt" in str(caught.value)


def test_business_day_arithmetic():
    calendar = BusinessCalendar(holidays=frozenset({TUE}), workdays=frozenset({SAT}))
    assert calendar.add_business_days(FRI, 1) == SAT
    assert calendar.add_business_days(SAT, 2) == WED
    assert calendar.add_business_days(WED, -2) == SAT
    assert calendar.distance(FRI, WED) == calendar.distance(WED, FRI) == 3  # Fri, Sat, Mon
    assert WEEKENDS_ONLY.distance(SAT, MON) == 0


@given(st.lists(st.dates(date(2026, 9, 1), date(2027, 3, 1)), min_size=1, max_size=8),
       st.frozensets(st.dates(date(2026, 9, 1), date(2027, 3, 1)), max_size=6),
       st.frozensets(st.dates(date(2026, 9, 1), date(2027, 3, 1)), max_size=3))
@settings(max_examples=60, deadline=None)
def test_positions_agree_with_counting_day_by_day(days, holidays, workdays):
    calendar = BusinessCalendar(holidays - workdays, workdays)
    positions = calendar.positions(days)
    for a in days:
        for b in days:
            lo, hi = min(a, b), max(a, b)
            count = sum(1 for n in range((hi - lo).days)
                        if calendar.is_business_day(date.fromordinal(lo.toordinal() + n)))
            assert abs(positions[a] - positions[b]) == calendar.distance(a, b) == count


# --- the property: a generated day and its statement -------------------------
# Test data only: a holiday week with an adjusted working Saturday.
HOLIDAY_WEEK = parse_calendar(["2026-10-01 holiday", "2026-10-02 holiday",
                               "2026-10-05 holiday", "2026-10-10 workday"])
PERTURBATIONS = ("drop", "duplicate", "amount", "date", "unknown", "split")


@st.composite
def custody_days(draw):
    """(bank, ledger, groups, config, statement date): a day that reconciles exactly.

    ``groups`` maps each bank line id to its kind ("ref", "noref", "batch")
    and the postings it pays. Amounts are distinct, so amount and date alone
    never find two candidates.
    """
    calendar = draw(st.sampled_from([WEEKENDS_ONLY, HOLIDAY_WEEK]))
    window = draw(st.integers(0, 2))
    start = draw(st.dates(date(2026, 9, 28), date(2026, 10, 12)))
    days = [calendar.add_business_days(start, n) for n in range(1, 4)]
    kinds = draw(st.lists(st.sampled_from(["ref", "ref", "noref", "batch"]),
                          min_size=1, max_size=10))
    sizes = [draw(st.integers(2, 4)) if kind == "batch" else 1 for kind in kinds]
    # Distinct by construction: the last three digits number the posting.
    amounts = [draw(st.integers(0, 10**5)) * 1000 + n + 1 for n in range(sum(sizes))]
    amounts = [a if draw(st.booleans()) else -a for a in amounts]
    bank, ledger, groups = [], [], {}
    next_posting = 1000
    for number, (kind, size) in enumerate(zip(kinds, sizes), start=1):
        day = draw(st.sampled_from(days))
        booked = calendar.add_business_days(day, draw(st.integers(0, window))) if window else day
        members = []
        for _ in range(size):
            amount = amounts.pop()
            next_posting += draw(st.integers(1, 3))
            members.append(LedgerItem(next_posting, number, day, amount, "CNY",
                                      f"ORD-{number}" if kind == "ref" else None,
                                      f"PAY-{number}" if kind == "batch" else None, kind))
        order_id = None
        if kind == "ref":
            order_id = draw(st.sampled_from([f"ORD-{number}", f"ord-{number}", f" ORD-{number} "]))
        bank.append(BankItem(number * 10, booked, sum(m.amount_minor for m in members), "CNY",
                             f"SER{number:04d}", order_id, None,
                             f"pay-{number}" if kind == "batch" else None, "statement text"))
        ledger += members
        groups[number * 10] = (kind, members)
    statement_date = max(b.booking_date for b in bank)
    return bank, ledger, groups, MatchConfig(window_days=window, calendar=calendar), statement_date


def fresh_amount(draw, bank, ledger, sign=1):
    taken = {i.amount_minor for i in bank} | {i.amount_minor for i in ledger}
    amount = draw(st.integers(10**8 + 1, 10**9)) * sign
    assume(amount not in taken)
    return amount


def perturb(draw, bank, ledger, groups, config, statement_date, how):
    """(perturbed bank, expected break types) for one perturbation of one line."""
    target = draw(st.sampled_from(bank))
    kind, members = groups[target.id]
    missing = Counter(IN_TRANSIT if m.effective_date >= statement_date else IN_LEDGER_NOT_IN_BANK
                      for m in members)
    others = [b for b in bank if b.id != target.id]
    new_id = max(b.id for b in bank) + 1
    if how == "drop":
        return others, missing
    if how == "duplicate":
        return bank + [target._replace(id=new_id)], Counter([DUPLICATE])
    if how == "unknown":
        stranger = BankItem(new_id, target.booking_date, fresh_amount(draw, bank, ledger), "CNY",
                            "SER-NEW", "NOBODY-KNOWS", None, None, "unknown payer")
        return bank + [stranger], Counter([IN_BANK_NOT_IN_LEDGER])
    linked = kind in ("ref", "batch")
    if how == "amount":
        changed = target._replace(amount_minor=fresh_amount(draw, bank, ledger))
        expected = (Counter([AMOUNT_MISMATCH]) if linked
                    else missing + Counter([IN_BANK_NOT_IN_LEDGER]))
        return others + [changed], expected
    if how == "date":
        latest = max(m.effective_date for m in members)
        shifted = config.calendar.add_business_days(
            latest, config.window_days + 1 + draw(st.integers(0, 1)))
        expected = (Counter([DATE_OUTSIDE_WINDOW]) if linked
                    else missing + Counter([IN_BANK_NOT_IN_LEDGER]))
        return others + [target._replace(booking_date=shifted)], expected
    assert how == "split"
    total = target.amount_minor
    assume(abs(total) >= 2)
    sign = 1 if total > 0 else -1
    part = sign * draw(st.integers(1, abs(total) - 1))
    taken = {i.amount_minor for i in bank} | {i.amount_minor for i in ledger}
    assume(part not in taken and total - part not in taken)
    halves = [target._replace(amount_minor=part),
              target._replace(id=new_id, bank_ref="SER-SPLIT", amount_minor=total - part)]
    expected = (Counter([AMOUNT_MISMATCH]) if linked
                else missing + Counter({IN_BANK_NOT_IN_LEDGER: 2}))
    return others + halves, expected


def shuffled(items, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


@given(custody_days(), st.sampled_from(PERTURBATIONS), st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_day_reconciles_and_each_perturbation_gives_exactly_its_breaks(day, how, data):
    bank, ledger, groups, config, statement_date = day
    clean = run(bank, ledger, statement_date=statement_date, config=config)
    assert clean.is_reconciled, clean.breaks
    assert clean.summary.matched_ledger_items == len(ledger)

    perturbed, expected = perturb(data.draw, bank, ledger, groups, config, statement_date, how)
    result = run(perturbed, ledger, statement_date=statement_date, config=config)
    assert Counter(b.type for b in result.breaks) == expected, (how, result.breaks)
    assert sum(result.summary.break_counts.values()) == len(result.breaks)

    seed = data.draw(st.integers(0, 2**32))
    again = match(shuffled(perturbed, seed), shuffled(ledger, seed + 1),
                  statement_date=statement_date, config=config)
    assert again == result


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=12),
       st.dates(date(2026, 9, 28), date(2026, 10, 12)), st.data())
@settings(max_examples=100, deadline=None)
def test_postings_the_bank_books_a_day_late_clear_the_next_day(postings, start, data):
    """Day T: lines booked late are in transit; day T+1 they clear as carried_forward."""
    calendar = HOLIDAY_WEEK
    today = calendar.add_business_days(start, 1)
    tomorrow = calendar.add_business_days(today, 1)
    config = MatchConfig(calendar=calendar)
    ledger, today_lines, tomorrow_lines = [], [], []
    for n, (has_ref, late) in enumerate(postings, start=1):
        amount = data.draw(st.integers(0, 10**5)) * 100 + n
        ref = f"ORD-{n}" if has_ref else None
        ledger.append(LedgerItem(n, n, today, amount, "CNY", ref, None, "topup"))
        (tomorrow_lines if late else today_lines).append(
            BankItem(100 + n, tomorrow if late else today, amount, "CNY", f"SER{n}", ref))
    first = run(today_lines, ledger, statement_date=today, config=config)
    assert Counter(b.type for b in first.breaks) == Counter(
        {IN_TRANSIT: len(tomorrow_lines)} if tomorrow_lines else {})
    carried = in_transit_items(first, ledger)
    second = carry_forward(carried, tomorrow_lines, [], statement_date=tomorrow, config=config)
    check_exclusive(second, tomorrow_lines, list(carried))
    assert second.is_reconciled
    assert all(m.rule == CARRIED_FORWARD for m in second.matches)
    assert len(second.matches) == len(tomorrow_lines)


def test_a_line_known_to_repeat_one_outside_the_run_is_a_duplicate():
    """The line it repeats was matched by an earlier run, so is not among the items."""
    bank = [line(2, 500, ref="S1", e2e="T1"), line(3, 700, ref="S2", e2e="T2")]
    ledger = [post(2, 700, ref="T2")]        # T1's posting went with the line repeated
    result = match(bank, ledger, repeats_of={2: (1, 400)})
    assert [(b.type, b.bank_ids, b.duplicate_of) for b in result.breaks] == [(DUPLICATE, (2,), 1)]
    assert "of bank line 1 (a different amount)" in result.breaks[0].detail
    assert [(m.bank_ids, m.ledger_ids) for m in result.matches] == [((3,), (2,))]
    check_exclusive(result, bank, ledger)
    # a line whose earlier twin is among the items is told apart by the items themselves
    twins = [line(1, 500, ref="S1", e2e="T1"), *bank]
    both = match(twins, [post(1, 500, ref="T1"), *ledger], repeats_of={2: (1, 500)})
    assert [(b.type, b.bank_ids, b.duplicate_of) for b in both.breaks] == [(DUPLICATE, (2,), 1)]
    assert match(bank, ledger, repeats_of={}).breaks == match(bank, ledger).breaks
