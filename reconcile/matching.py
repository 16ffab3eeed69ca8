"""Matching: pair custody bank lines with custody-account postings, explain the rest.

This module owns the reconciliation cascade. It is pure: values in, values
out, no database, no files, no clock. The caller (a reconciliation run) turns
statement lines and ledger postings into :class:`BankItem` and
:class:`LedgerItem` values, calls :func:`match`, and stores the
:class:`MatchResult`.

Design overview
---------------
Every input item ends in exactly one :class:`Match` or exactly one
:class:`Break`; nothing is dropped and nothing is used twice. The cascade
runs in a fixed order and every match records the rule that made it:

1. ``exact_reference`` — a bank line's ``bank_ref`` (then, over all lines,
   its ``end_to_end_ref``) equals a posting's ``external_ref``, same currency,
   same amount, dates within the window.
2. reference links that do not match become breaks, never matches:
   equal amount but dates too far apart → ``date_outside_window``; different
   amounts → ``amount_mismatch`` (one break per linked group, so a payment
   the bank split into two lines is one break naming all three items).
3. ``batch`` — a bank line carrying a batch payout id, and the postings
   carrying the same id, when their sum equals the line. Batch ids are
   identifiers like references, so they are tried before the fuzzy pass 4:
   a batch member must not be taken by an unrelated line of the same amount.
   The batch pass runs before the breaks of pass 2 are made, so a batch line
   whose reference also names its postings (the batch id, or one member's
   order id) is matched as the batch, not broken on one posting's amount.
   A batch whose sums differ is an ``amount_mismatch``; one whose sums agree
   but whose dates do not is ``date_outside_window``.
4. ``amount_date`` — same currency and amount, dates within the window, and
   exactly one candidate on each side. Anything else with candidates on
   both sides is one ``ambiguous`` break listing them all: never a guess.
5. subset-sum *suggestions*: for a bank line still unmatched, a small set of
   unmatched postings in the window that sum to it. A suggestion is advice
   for finance staff; the line stays an ``in_bank_not_in_ledger`` break
   with the suggestion attached.

Leftovers: a bank line is ``in_bank_not_in_ledger``; a posting is
``in_transit`` when dated on the statement date or later (the bank books it
tomorrow), or on the weekend or holiday just before it, or, for a statement
dated on a day the bank does not book, on the business day before it;
otherwise ``in_ledger_not_in_bank``. A bank line whose
``bank_ref`` repeats an earlier line's is a ``duplicate`` break: reported,
not dropped, not matched (the first line is matched normally).

Carry forward: pass yesterday's in-transit postings as ``carried``; those
that now match record the rule ``carried_forward`` (and in ``basis`` the
rule that linked them). A carried posting still missing stays in transit
while the statement date is within the window of its own date, then
becomes ``in_ledger_not_in_bank``.

Determinism: both sides are sorted by id first, so the same items in any
order give an identical result. Ids must be unique per side and comparable
(all ``int`` or all ``str``); ordering by id should follow statement order,
since of two lines sharing a ``bank_ref`` the one with the larger id is the
repeat.

Dates: a bank line's ``booking_date`` (or ``value_date`` with
``MatchConfig.use_value_date``) is compared with a posting's
``effective_date`` in business days of ``MatchConfig.calendar`` (see
:mod:`reconcile.calendar`). References and batch ids are compared without
the blanks around them and case-insensitively (both configurable); an empty
reference is no reference. They only link items of the same currency.

Performance: the hot passes work on columns, read from the items once and
only for the fields a pass needs (dates and currencies, which take few
distinct values, are checked on those and read per item only where looked
at). References are probed in dicts with C-level ``map`` sweeps; amounts,
consumption flags and the positions the probes return are numpy arrays, so
the checks and the bookkeeping of a million pairs are array operations;
``(amount, currency)`` buckets hold the few items still unmatched. No pass
loops in Python over every item (save the grouping of references several
postings share, when the ledger has some). One-to-one matches stay columns too:
:class:`Matches` builds each :class:`Match` when it is read, so a million
matches cost no million objects. A side may come as columns as well
(:class:`ItemColumns`, :func:`item_columns`): a run hands the day's lines
and the window's postings over so, without an item per line. The cyclic
garbage collector is paused for the run (see :func:`_collector_paused`).
Cost is near-linear in the number of items; ``bench/matching.py`` measures
it against a hash join.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import date
from itertools import compress, islice, repeat
from operator import eq, is_not, itemgetter, lt, not_
from typing import Any, Iterable, Iterator, NamedTuple, Optional

import numpy as np

from ledger.errors import InputError
from ledger.money import CURRENCY_EXPONENTS

from reconcile.calendar import WEEKENDS_ONLY, BusinessCalendar
from reconcile.statements.source import gc_paused

# --- rules and break types ---------------------------------------------------
EXACT_REFERENCE = "exact_reference"
BATCH = "batch"
AMOUNT_DATE = "amount_date"
CARRIED_FORWARD = "carried_forward"
#: Match rules in cascade order.
RULES = (EXACT_REFERENCE, BATCH, AMOUNT_DATE, CARRIED_FORWARD)

AMOUNT_MISMATCH = "amount_mismatch"
DATE_OUTSIDE_WINDOW = "date_outside_window"
AMBIGUOUS = "ambiguous"
DUPLICATE = "duplicate"
IN_BANK_NOT_IN_LEDGER = "in_bank_not_in_ledger"
IN_LEDGER_NOT_IN_BANK = "in_ledger_not_in_bank"
IN_TRANSIT = "in_transit"
#: Break types, in the order summaries and reports list them.
BREAK_TYPES = (AMOUNT_MISMATCH, DATE_OUTSIDE_WINDOW, AMBIGUOUS, DUPLICATE,
               IN_BANK_NOT_IN_LEDGER, IN_LEDGER_NOT_IN_BANK, IN_TRANSIT)

SUBSET_SUM = "subset_sum"
REFERENCE_SUM = "reference_sum"
#: Suggestion kinds: postings found by subset sum; a linked group whose sums agree.
SUGGESTION_KINDS = (SUBSET_SUM, REFERENCE_SUM)


class MatchInputError(InputError):
    """Items the engine cannot work with; ``problems`` lists every one found.

    Attributes:
      problems: tuple of human-readable problems (which side, which id, what).
    """


# --- inputs ------------------------------------------------------------------
class BankItem(NamedTuple):
    """One custody bank statement line, as the matching engine sees it.

    Attributes:
      id: unique among the run's bank lines (int or str; one type per run).
      booking_date: the day the bank booked the line.
      amount_minor: signed minor units; money into the custody account is positive.
      currency: ISO code, e.g. ``"CNY"``.
      bank_ref: the bank's own reference (serial number, FITID), or None.
      end_to_end_ref: the payer's reference (the platform's order id), or None.
      value_date: the value date when the statement gives one, else None.
      batch_id: the batch payout id the bank gives for a batch line, or None.
      description: the bank's own words, for the report.
    """

    id: Any
    booking_date: date
    amount_minor: int
    currency: str
    bank_ref: Optional[str] = None
    end_to_end_ref: Optional[str] = None
    value_date: Optional[date] = None
    batch_id: Optional[str] = None
    description: str = ""


class LedgerItem(NamedTuple):
    """One posting to the custody bank account, as the matching engine sees it.

    Attributes:
      id: the posting id, unique among the run's ledger items.
      entry_id: the journal entry the posting belongs to.
      effective_date: the posting's business date.
      amount_minor: signed minor units; debit (money into custody) positive,
        so the sign agrees with :attr:`BankItem.amount_minor`.
      currency: ISO code.
      external_ref: the reference the bank will show (order id), or None.
      batch_id: the batch payout id from the entry's metadata, or None.
      kind: the business flow (``"topup"``, ``"withdrawal"``, ...), for the report.
    """

    id: Any
    entry_id: Any
    effective_date: date
    amount_minor: int
    currency: str
    external_ref: Optional[str] = None
    batch_id: Optional[str] = None
    kind: str = ""


class ItemColumns(Sequence):
    """Matching items given as columns: one sequence per field of ``cls`` (:class:`BankItem`
    or :class:`LedgerItem`), side by side, in the order of its fields.

    A day's million bank lines or postings are read column by column; handed to
    :func:`match` as columns they are matched as they are, with no item made per
    line, and an item is made only when one is read (a break names it, say).
    Iterating, indexing and ``len`` behave as for a list of the items.
    """

    __slots__ = ("cls", "columns")

    def __init__(self, cls, columns: Sequence[Sequence]):
        if cls not in (BankItem, LedgerItem):
            raise MatchInputError(f"item columns are of BankItem or LedgerItem, not {cls!r}")
        columns = tuple(columns)
        if len(columns) != len(cls._fields) or len(set(map(len, columns))) > 1:
            raise MatchInputError(f"{cls.__name__} columns: one column of equal length for each "
                                  f"of {', '.join(cls._fields)}")
        self.cls, self.columns = cls, columns

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(map(self.__getitem__, range(len(self))[index]))
        return tuple.__new__(self.cls, [column[index] for column in self.columns])

    def __iter__(self):
        return map(tuple.__new__, repeat(self.cls), zip(*self.columns))

    def __repr__(self) -> str:
        return f"ItemColumns({self.cls.__name__}, {len(self)} items)"


def item_columns(cls, ids: Sequence, rows: Sequence, fields: Sequence[int]) -> ItemColumns:
    """:class:`ItemColumns` of ``cls`` items: the k-th has id ``ids[k]`` and, for its other
    fields in order, the values at ``fields`` of ``rows[k]`` (a statement line, say), read
    from the rows when matching reads them instead of copied."""
    return ItemColumns(cls, [ids, *(_Field(rows, k) for k in fields)])


class MatchConfig(NamedTuple):
    """How the cascade compares items.

    Attributes:
      window_days: business days two dates may be apart and still match.
      calendar: the business-day calendar (weekends, holidays, workdays).
      subset_max_items: most postings a subset-sum suggestion may combine;
        below 2 disables suggestions.
      subset_max_pool: most candidate postings a subset-sum search looks at;
        with more candidates than this in the window no suggestion is made,
        because some subset of a large pool sums to almost anything.
      subset_max_steps: search steps per bank line before giving up.
      strip_refs: ignore blanks around references and batch ids.
      casefold_refs: compare references and batch ids case-insensitively.
      use_value_date: compare the bank's value date (falling back to the
        booking date) instead of the booking date.
    """

    window_days: int = 1
    calendar: BusinessCalendar = WEEKENDS_ONLY
    subset_max_items: int = 6
    subset_max_pool: int = 20
    subset_max_steps: int = 20_000
    strip_refs: bool = True
    casefold_refs: bool = True
    use_value_date: bool = False


DEFAULT_CONFIG = MatchConfig()


# --- outputs -----------------------------------------------------------------
class Match(NamedTuple):
    """Bank lines and postings the cascade paired; each item is in one match at most.

    Attributes:
      rule: the rule that made it (one of :data:`RULES`).
      bank_ids: the bank line ids (one for every rule).
      ledger_ids: the posting ids (several for ``batch``).
      amount_minor: the matched amount (bank side, equal to the ledger side).
      currency: ISO code.
      basis: the linking rule; equals ``rule`` except for ``carried_forward``,
        where it says how the carried posting was found.
    """

    rule: str
    bank_ids: tuple
    ledger_ids: tuple
    amount_minor: int
    currency: str
    basis: str


class Suggestion(NamedTuple):
    """A proposed pairing for finance staff to confirm; never cleared automatically.

    Attributes:
      kind: one of :data:`SUGGESTION_KINDS`.
      bank_ids: the bank line ids.
      ledger_ids: the posting ids whose sum equals the bank side.
      amount_minor: the common sum.
      currency: ISO code.
    """

    kind: str
    bank_ids: tuple
    ledger_ids: tuple
    amount_minor: int
    currency: str


class Break(NamedTuple):
    """Items the cascade could not match, with both sides named.

    Attributes:
      type: one of :data:`BREAK_TYPES`.
      bank_ids: the bank lines this break accounts for (may be empty).
      ledger_ids: the postings this break accounts for (may be empty).
      bank_amount_minor: sum of the bank side (0 when it has none).
      ledger_amount_minor: sum of the ledger side (0 when it has none).
      currency: ISO code of the items.
      detail: plain words naming each side, what it holds and why it broke.
      suggestion: a :class:`Suggestion` for this break, or None.
      duplicate_of: for ``duplicate``, the id of the earlier bank line whose
        ``bank_ref`` the break's line repeats; else None.
    """

    type: str
    bank_ids: tuple
    ledger_ids: tuple
    bank_amount_minor: int
    ledger_amount_minor: int
    currency: str
    detail: str
    suggestion: Optional[Suggestion] = None
    duplicate_of: Any = None

    @property
    def difference_minor(self) -> int:
        """Bank side minus ledger side."""
        return self.bank_amount_minor - self.ledger_amount_minor


class RuleTotal(NamedTuple):
    """Matches made by one rule in one currency.

    Attributes:
      rule: the rule.
      currency: ISO code.
      count: number of matches.
      amount_minor: sum of the matched amounts.
    """

    rule: str
    currency: str
    count: int
    amount_minor: int


class BreakTotal(NamedTuple):
    """Breaks of one type in one currency.

    Attributes:
      type: the break type.
      currency: ISO code.
      count: number of breaks.
      bank_amount_minor: sum of their bank sides.
      ledger_amount_minor: sum of their ledger sides.
    """

    type: str
    currency: str
    count: int
    bank_amount_minor: int
    ledger_amount_minor: int


class Summary(NamedTuple):
    """Counts and sums of a matching run.

    Attributes:
      bank_lines: bank lines given.
      ledger_items: postings given (carried ones included).
      matched_bank_lines: bank lines in a match.
      matched_ledger_items: postings in a match.
      matches: :class:`RuleTotal` per rule and currency, in cascade order.
      breaks: :class:`BreakTotal` per type and currency, in :data:`BREAK_TYPES` order.
      suggestions: number of suggestions made.
    """

    bank_lines: int
    ledger_items: int
    matched_bank_lines: int
    matched_ledger_items: int
    matches: tuple
    breaks: tuple
    suggestions: int

    @property
    def match_counts(self) -> dict:
        """Matches per rule, all currencies together."""
        counts: dict = {}
        for total in self.matches:
            counts[total.rule] = counts.get(total.rule, 0) + total.count
        return counts

    @property
    def break_counts(self) -> dict:
        """Breaks per type, all currencies together."""
        counts: dict = {}
        for total in self.breaks:
            counts[total.type] = counts.get(total.type, 0) + total.count
        return counts


class Matches(Sequence):
    """The run's matches: an immutable sequence of :class:`Match`, built when read.

    A million-line run makes about a million matches. They are kept as
    columns (positions into the run's id and amount columns) and each
    :class:`Match` value is built when it is read, so the cascade itself
    creates no per-match objects. Iterating, indexing, slicing, ``len``,
    ``==`` (also against a tuple of :class:`Match`) and ``hash`` behave as
    for a tuple; order is the cascade's: by rule, then as each pass found them.
    """

    __slots__ = ("_chunks", "_ends")

    def __init__(self, chunks: Iterable = ()):
        self._chunks = tuple(chunk for chunk in chunks if len(chunk))
        ends, total = [], 0
        for chunk in self._chunks:
            total += len(chunk)
            ends.append(total)
        self._ends = tuple(ends)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self):
        for chunk in self._chunks:
            yield from chunk

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(map(self.__getitem__, range(len(self))[index]))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("match index out of range")
        k = bisect_right(self._ends, index)
        return self._chunks[k][index - (self._ends[k - 1] if k else 0)]

    def id_blocks(self) -> Iterator[tuple]:
        """The matches in order, a block at a time, for bulk storage.

        Yields ``(rule, bank_ids, ledger_ids)`` for a block of one-to-one matches
        of one rule: int64 numpy arrays side by side, the k-th match pairing
        ``bank_ids[k]`` with ``ledger_ids[k]``; and ``(None, block, None)`` for
        any other block, a sequence of :class:`Match`.
        """
        for chunk in self._chunks:
            if type(chunk) is _Pairs and type(chunk.b_id) is array and type(chunk.l_id) is array:
                yield (chunk.rule, _int64(chunk.b_id)[_int64(chunk.banks)],
                       _int64(chunk.l_id)[_int64(chunk.ledgers)])
            else:
                yield None, chunk, None

    def __eq__(self, other) -> bool:
        if not isinstance(other, (Matches, tuple, list)):
            return NotImplemented
        return len(self) == len(other) and all(map(eq, self, other))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        shown = ", ".join(map(repr, islice(self, 3)))
        more = f", ... {len(self) - 3} more" if len(self) > 3 else ""
        return f"Matches([{shown}{more}])"


class _Pairs:
    """One-to-one matches of one rule, as positions into the run's columns (private).

    ``currency`` is a string when the run has one currency, else a column.
    """

    __slots__ = ("rule", "banks", "ledgers", "b_id", "l_id", "b_amt", "currency")

    def __init__(self, rule: str, banks, ledgers, columns: tuple = ((), (), (), "")):
        self.rule, self.banks, self.ledgers = rule, banks, ledgers
        self.b_id, self.l_id, self.b_amt, self.currency = columns

    def frozen(self, columns: tuple) -> "_Pairs":
        """The same pairs in compact, immutable storage the garbage collector ignores."""
        return _Pairs(self.rule, _compact(self.banks), _compact(self.ledgers), columns)

    def __len__(self) -> int:
        return len(self.banks)

    def __getitem__(self, k: int) -> Match:
        bi = self.banks[k]
        currency = self.currency if isinstance(self.currency, str) else self.currency[bi]
        return Match(self.rule, (self.b_id[bi],), (self.l_id[self.ledgers[k]],),
                     self.b_amt[bi], currency, self.rule)

    def __iter__(self):
        banks = self.banks
        currencies = (repeat(self.currency) if isinstance(self.currency, str)
                      else map(self.currency.__getitem__, banks))
        return map(tuple.__new__, repeat(Match), zip(
            repeat(self.rule), zip(map(self.b_id.__getitem__, banks)),
            zip(map(self.l_id.__getitem__, self.ledgers)), map(self.b_amt.__getitem__, banks),
            currencies, repeat(self.rule)))


def _int64(values) -> np.ndarray:
    """An int64 numpy view of an ``array('q')``, or a copy of another sequence of ints."""
    if type(values) is array and values.typecode == "q":
        return np.frombuffer(values, np.int64) if len(values) else np.zeros(0, np.int64)
    return np.fromiter(values, np.int64, len(values))


def _compact(values):
    """A column as an ``array`` of 64-bit ints when it is one, else a tuple."""
    if type(values) is array:
        return values
    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return array("q", values.tobytes())
    try:
        return array("q", values)
    except (TypeError, OverflowError):
        return tuple(values)


class MatchResult(NamedTuple):
    """Everything one matching run decided.

    Attributes:
      matches: :class:`Matches`, a tuple-like sequence of :class:`Match` in cascade order.
      breaks: tuple of :class:`Break`, in the order the cascade found them.
      suggestions: tuple of every :class:`Suggestion` (each also sits on its break).
      summary: the :class:`Summary`.
    """

    matches: Matches
    breaks: tuple
    suggestions: tuple
    summary: Summary

    @property
    def is_reconciled(self) -> bool:
        """True when every item matched: no break of any type."""
        return not self.breaks

    @property
    def in_transit_ids(self) -> tuple:
        """Ids of the postings in transit, to carry into the next run."""
        return tuple(i for b in self.breaks if b.type == IN_TRANSIT for i in b.ledger_ids)


# --- public functions --------------------------------------------------------
def match(bank: Iterable[BankItem], ledger: Iterable[LedgerItem], *,
          statement_date: Optional[date] = None,
          config: MatchConfig = DEFAULT_CONFIG,
          carried: Iterable[LedgerItem] = (),
          repeats_of: Optional[Mapping[Any, tuple]] = None) -> MatchResult:
    """Run the cascade over one statement's bank lines and the unmatched postings.

    ``statement_date`` is the statement's last day: unmatched postings dated
    on it or later are ``in_transit`` (without it, none are). ``carried``
    are yesterday's in-transit postings (see :func:`carry_forward`); a
    carried posting that also appears in ``ledger`` (same id) counts once.
    ``repeats_of``: bank line id -> ``(id, amount_minor)`` of the earlier line
    it repeats when that one is not among ``bank`` (matched by an earlier run,
    say): the line is a ``duplicate`` as if both were given.
    Raises :class:`MatchInputError` listing every problem with the input.
    """
    with _collector_paused():
        work = _prepare(_as_list(bank), _as_list(ledger), _as_list(carried), statement_date,
                        config)
        _find_repeats(work)
        if repeats_of:
            _known_repeats(work, repeats_of)
        _pass_exact_reference(work)
        _pass_batch(work)  # before the reference breaks: a batch line's reference may
        _pass_reference_breaks(work)  # name its postings, whose amounts each differ
        _pass_amount_date(work)
        _pass_subset_sum(work)
        _leftovers(work)
        result = _result(work)
        del work  # the columns go before the collector resumes, so it never walks them
    return result


def _as_list(items: Iterable) -> list:
    """The items as a list, not copied when they are one (the cascade never changes it)."""
    return items if type(items) in (list, ItemColumns) else list(items)


def carry_forward(in_transit: Iterable[LedgerItem], bank: Iterable[BankItem],
                  ledger: Iterable[LedgerItem], *, statement_date: Optional[date] = None,
                  config: MatchConfig = DEFAULT_CONFIG) -> MatchResult:
    """Today's run with yesterday's in-transit postings carried into it.

    Carried postings that now find their bank line match with the rule
    ``carried_forward``; the rest stay ``in_transit`` while within the window
    of the statement date, then become ``in_ledger_not_in_bank``.
    """
    return match(bank, ledger, statement_date=statement_date, config=config,
                 carried=in_transit)


def in_transit_items(result: MatchResult, ledger: Iterable[LedgerItem]) -> tuple:
    """The postings that ``result`` left in transit, in id order: tomorrow's ``carried``.

    ``ledger`` is what the run was given (today's postings and the carried ones).
    """
    wanted = set(result.in_transit_ids)
    return tuple(sorted((item for item in ledger if item.id in wanted), key=_ID))


# --- working state -----------------------------------------------------------
_ID = itemgetter(0)


# Pause the cyclic garbage collector while the cascade runs. The passes make
# many short-lived lists of a million references (columns, masks, probe
# results). They never form reference cycles, but every collection that
# catches one walks all its elements, and the collector triggered often
# enough to take a third of a million-line run. Reference counting still
# frees everything at once; what the result keeps is in arrays and tuples of
# plain values, which the collector does not walk again.
_collector_paused = gc_paused


class _Work:
    """Columns and consumption flags of one run (private, mutable, short-lived).

    ``b_done``/``l_done`` are bytearrays and ``b_amt``/``l_amt`` 64-bit
    arrays; ``*_done_np`` and ``*_amt_np`` are numpy views of the same memory
    (a write through one is a write to the other). ``*_id``, ``*_date`` and
    ``*_cur`` read the items (see :class:`_Field`); ``*_ids`` are the int ids
    as an array, or None.
    """

    __slots__ = (
        "config", "window", "statement_date", "bank", "ledger", "positions",
        "b_id", "b_ids", "b_date", "b_amt", "b_cur", "b_pos", "b_ref", "b_e2e",
        "b_batch", "b_done", "b_amt_np", "b_done_np", "b_pos_np",
        "l_id", "l_ids", "l_date", "l_amt", "l_cur", "l_pos", "l_ref", "l_batch", "l_carried",
        "l_done", "l_amt_np", "l_done_np", "l_pos_np",
        "any_carried", "single_currency", "far_positions",
        "ref_index", "ref_groups", "b_ref_set", "linked", "repeats",
        "chunks", "explicit", "breaks", "suggestions", "bank_suggestion", "rule_totals",
    )


def _prepare(bank: list, ledger: list, carried: list, statement_date, config) -> _Work:
    """Validate, sort by id, and lay both sides out as columns.

    Only the fields the cascade reads become columns: value dates when
    configured, batch ids when some bank line has one.
    """
    problems = _check_config(config)
    if statement_date is not None and type(statement_date) is not date:
        problems.append(f"statement_date {statement_date!r} is not a date")
    if not isinstance(config, MatchConfig):  # reported; the columns can be checked too
        config = DEFAULT_CONFIG
    carried_ids: set = set()
    if carried:
        try:
            carried_ids = set(map(_ID, carried))
        except TypeError:  # an id that is not int or str (reported below)
            ledger = carried + ledger
        else:
            ledger = carried + list(compress(ledger, map(not_, map(carried_ids.__contains__,
                                                                  map(_ID, ledger)))))
    use_value = config.use_value_date
    bank, b_ids, b_cols, bank_problems = _table(
        "bank line", bank, BankItem, (4, 5, 6) if use_value else (4, 5))
    ledger, l_ids, l_cols, ledger_problems = _table("ledger posting", ledger, LedgerItem, (5,))
    problems += bank_problems + ledger_problems
    if not (bank_problems or ledger_problems):  # the columns can be checked too
        w = _Work()
        w.bank, w.ledger = bank, ledger
        w.b_ids, w.l_ids = b_ids, l_ids
        b_ref, b_e2e, *value = b_cols
        (l_ref,) = l_cols
        w.b_id, w.l_id = _field(bank, 0), _field(ledger, 0)
        value = value[0] if value else None
        del b_cols, l_cols
        w.b_amt, w.l_amt = _int_array(bank, 2), _int_array(ledger, 3)
        # Dates and currencies take few distinct values: checked on those, read
        # per item only for the few items a pass or a break looks at.
        booking, w.b_cur = _field(bank, 1), _field(bank, 3)
        w.l_date, w.l_cur = _field(ledger, 2), _field(ledger, 4)
        found, b_dates, b_currencies = _check_columns("bank line", w.b_id, w.b_amt, booking,
                                                      w.b_cur, value)
        problems += found
        found, l_dates, l_currencies = _check_columns("ledger posting", w.l_id, w.l_amt,
                                                      w.l_date, w.l_cur)
        problems += found
        w.b_ref = _normalize("bank line", "bank_ref", w.b_id, b_ref, config, problems)
        w.b_e2e = _normalize("bank line", "end_to_end_ref", w.b_id, b_e2e, config, problems)
        w.l_ref = _normalize("ledger posting", "external_ref", w.l_id, l_ref, config, problems)
        w.b_batch = w.l_batch = None  # no batch pass when no bank line has a batch id
        if any(_field(bank, _BATCH)):
            w.b_batch = _normalize("bank line", "batch_id", w.b_id, list(_field(bank, _BATCH)),
                                   config, problems)
            w.l_batch = _normalize("ledger posting", "batch_id", w.l_id,
                                   list(_field(ledger, _BATCH_ID)), config, problems)
    if problems:
        shown = "; ".join(problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise MatchInputError(f"cannot match: {shown}{more}", problems=tuple(problems))

    w.config = config
    w.window = config.window_days
    w.statement_date = statement_date
    if value is not None:
        w.b_date = [v if v is not None else b for b, v in zip(booking, value)]
        b_dates = set(w.b_date)
    else:
        w.b_date = booking
    w.b_done = bytearray(len(bank))
    w.l_done = bytearray(len(ledger))
    w.b_done_np, w.l_done_np = _view(w.b_done, np.uint8), _view(w.l_done, np.uint8)
    w.b_amt_np, w.l_amt_np = _amounts(w.b_amt), _amounts(w.l_amt)
    w.any_carried = bool(carried)
    if carried:
        w.l_carried = bytearray(map(carried_ids.__contains__, w.l_id))
    else:
        w.l_carried = bytearray(len(ledger))
    w.single_currency = len(b_currencies | l_currencies) <= 1
    if not w.single_currency:  # compared column-wise
        w.b_cur, w.l_cur = list(w.b_cur), list(w.l_cur)

    # Business-day positions: per item only when read (few items are), or as a
    # whole column when a pass needs one (see _position_column).
    w.positions = positions = config.calendar.positions(b_dates | l_dates)
    w.b_pos = _Positions(w.b_date, positions)
    w.l_pos = _Positions(w.l_date, positions)
    w.b_pos_np = w.l_pos_np = None
    ledger_span = [positions[d] for d in l_dates] or [0]
    lo, hi = min(ledger_span), max(ledger_span)
    w.far_positions = {p for p in (positions[d] for d in b_dates)
                       if p - lo > w.window or hi - p > w.window}

    # ref -> first ledger position; a reference several postings share maps to
    # -(k + 1), k indexing ref_groups (their positions in id order).
    index = dict(zip(w.l_ref, range(len(ledger))))  # the last position of each
    index.pop(None, None)
    w.ref_groups = []
    if len(index) != len(ledger) - w.l_ref.count(None):
        groups: dict = {}
        for li, ref in enumerate(w.l_ref):
            if ref is not None and index[ref] != li:
                groups.setdefault(ref, []).append(li)
        for ref, members in groups.items():
            members.append(index[ref])
            index[ref] = -(len(w.ref_groups) + 1)
            w.ref_groups.append(members)
    w.ref_index = index
    w.linked = []
    w.repeats = []
    w.chunks = []
    w.explicit = []
    w.breaks = []
    w.suggestions = []
    w.bank_suggestion = {}
    w.rule_totals = {}
    return w


_BATCH = BankItem._fields.index("batch_id")
_BATCH_ID = LedgerItem._fields.index("batch_id")


def _field(items, field: int):
    """One field of every item: the column itself when the items are :class:`ItemColumns`."""
    if type(items) is ItemColumns:
        return items.columns[field]
    return _Field(items, field)


class _Field:
    """One field of every item, read from the items when needed (private)."""

    __slots__ = ("items", "get")

    def __init__(self, items: list, field: int):
        self.items, self.get = items, itemgetter(field)

    def __getitem__(self, i: int):
        return self.get(self.items[i])

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return map(self.get, self.items)

    def take(self, positions: Iterable[int]) -> tuple:
        return tuple(map(self.get, map(self.items.__getitem__, positions)))


class _Positions:
    """Business-day positions of a date column, looked up when read (private)."""

    __slots__ = ("dates", "positions", "items", "field")

    def __init__(self, dates, positions: dict):
        self.dates, self.positions = dates, positions
        field = type(dates) is _Field
        self.items, self.field = (dates.items, dates.get) if field else (dates, None)

    def __getitem__(self, i: int) -> int:
        if self.field is None:
            return self.positions[self.items[i]]
        return self.positions[self.field(self.items[i])]


def _position_column(w: _Work, side: str):
    """The business-day positions of one side's dates as an int64 array (made once)."""
    if side == "bank":
        if w.b_pos_np is None:
            w.b_pos_np = _int_column(map(w.positions.__getitem__, w.b_date), len(w.b_date))
        return w.b_pos_np
    if w.l_pos_np is None:
        w.l_pos_np = _int_column(map(w.positions.__getitem__, w.l_date), len(w.l_date))
    return w.l_pos_np


def _int_column(values: Iterable[int], size: int):
    return np.fromiter(values, dtype=np.int64, count=size)


def _amounts(column):
    """An amount column as numpy: int64 over its array, else Python ints (beyond 64 bits)."""
    if type(column) is array:
        return _view(column, np.int64)
    return np.array(column, dtype=object)


def _view(column, dtype):
    """A numpy array sharing ``column``'s memory (an ``array``, a ``bytearray``)."""
    if not len(column):
        return np.zeros(0, dtype)
    return np.frombuffer(column, dtype=dtype)


def _check_config(config) -> list:
    if not isinstance(config, MatchConfig):
        return [f"config must be a MatchConfig, not {type(config).__name__}"]
    problems = []
    if type(config.window_days) is not int or config.window_days < 0:
        problems.append(f"window_days must be a non-negative int, not {config.window_days!r}")
    for name in ("subset_max_items", "subset_max_pool", "subset_max_steps"):
        value = getattr(config, name)
        if type(value) is not int or value < 0:
            problems.append(f"{name} must be a non-negative int, not {value!r}")
    if not isinstance(config.calendar, BusinessCalendar):
        problems.append("calendar must be a BusinessCalendar")
        return problems
    for name in ("holidays", "workdays"):
        days = getattr(config.calendar, name)
        try:
            bad = [d for d in days if type(d) is not date]
        except TypeError:
            bad = [days]
        if bad:
            problems.append(f"calendar {name} must be dates, got {bad[:3]!r}")
    try:
        bad = [d for d in config.calendar.weekend if type(d) is not int or not 0 <= d <= 6]
    except TypeError:
        bad = [config.calendar.weekend]
    if bad:
        problems.append(f"calendar weekend must be weekday numbers 0 (Monday) to 6 (Sunday), "
                        f"got {bad[:3]!r}")
    return problems


def _table(what: str, items: list, cls, fields: Iterable[int]) -> tuple:
    """``(items sorted by id, ids as a 64-bit array or None, the columns of fields, problems)``.

    One ``map`` per field wanted: the fields the cascade does not read
    (descriptions, kinds, entry ids) are never copied, and the ids, read
    back from the items when a break names them, only as an array of the
    ints they are (the result keeps it; see :func:`_compact`).
    """
    if type(items) is ItemColumns:
        if items.cls is cls:
            taken = _column_table(items, fields)
            if taken is not None:
                return taken
        items = list(items)   # (items of another class are named below; so are repeated ids)
    if set(map(type, items)) - {cls}:
        bad = [item for item in items if type(item) is not cls][:3]
        return items, None, [], [f"{what}s must be {cls.__name__} values, got {bad!r}"]
    if items and type(_ID(items[0])) not in (int, str):
        # (an int or str first id: the next checks find any other kind)
        kinds = sorted({type(item.id).__name__ for item in items})
        return items, None, [], [f"{what} ids must be int or str, got {', '.join(kinds)}"]
    try:
        ordered, compact = _increasing(items)
        if not ordered:  # not in id order, or ids repeat
            items = sorted(items, key=_ID)
            ordered, compact = _increasing(items)
    except TypeError:
        kinds = sorted({type(item.id).__name__ for item in items})
        return items, None, [], [f"{what} ids must all have one type, got {', '.join(kinds)}"]
    if not ordered:  # sorted, yet not increasing: some ids repeat
        ids = list(map(_ID, items))
        repeated = sorted({a for a, b in zip(ids, ids[1:]) if a == b})
        return items, None, [], [f"{what} ids repeat: {repeated[:10]!r}"]
    return items, compact, [list(map(itemgetter(k), items)) for k in fields], []


def _column_table(items: ItemColumns, fields: Iterable[int]) -> Optional[tuple]:
    """:func:`_table` of items given as columns whose ids are ints: the columns put in id
    order (one permutation of each) when they are not; None for the item path (ids of
    another kind, or repeated)."""
    ids = items.columns[0]
    try:
        compact = array("q", ids)
    except (TypeError, OverflowError):
        return None
    column = _view(compact, np.int64)
    if not _strictly_increasing(column):
        order = np.argsort(column, kind="stable")
        column = column[order]
        if not _strictly_increasing(column):
            return None   # repeated ids
        take = itemgetter(*order.tolist())
        items = ItemColumns(items.cls, [list(take(c)) for c in items.columns])
        compact = array("q", column.tobytes())
    return items, compact, [list(items.columns[k]) for k in fields], []


def _increasing(items: list) -> tuple:
    """``(whether the ids strictly increase, the ids as a 64-bit array or None)``."""
    try:
        compact = array("q", map(_ID, items))
    except (TypeError, OverflowError):  # not all ints (or too big): compared one by one
        ids = list(map(_ID, items))
        return all(map(lt, ids, islice(ids, 1, None))), None
    column = _view(compact, np.int64)
    return _strictly_increasing(column), compact


def _strictly_increasing(column: np.ndarray) -> bool:
    return bool((column[1:] > column[:-1]).all())


def _int_array(items: list, field: int):
    """A field of ints as a 64-bit ``array`` (refusing floats), else a list of the values."""
    values = _field(items, field)
    try:
        return array("q", values)
    except (TypeError, OverflowError):  # not all ints (reported by the checks), or too big
        return list(values)


def _check_columns(what: str, ids: list, amounts, dates: list, currencies: list,
                   value_dates: Optional[list] = None) -> tuple:
    """``(problems, distinct dates, distinct currencies)`` of one side's columns.

    Problems: non-int amounts (floats), non-date dates, bad currency codes.
    Dates and currencies repeat a lot, so they are checked on their distinct values.
    """
    problems = []
    if type(amounts) is not array and set(map(type, amounts)) - {int}:  # arrays hold ints
        bad = [i for i, v in zip(ids, amounts) if type(v) is not int][:10]
        problems.append(f"{what}s {bad!r}: amount_minor must be int minor units "
                        "(floats are refused)")
    distinct_dates: set = set()
    for label, values, allowed in (("date", dates, {date}),
                                   ("value_date", value_dates or (), {date, type(None)})):
        try:
            distinct = set(values)
            wrong = {type(v) for v in distinct} - allowed
        except TypeError:  # something unhashable: certainly not a date
            wrong = {None}
        if wrong:
            bad = [i for i, v in zip(ids, values) if type(v) not in allowed][:10]
            problems.append(f"{what}s {bad!r}: {label} must be a date"
                            + (" or None" if type(None) in allowed else ""))
        elif label == "date":
            distinct_dates = distinct
    try:
        distinct_currencies = set(currencies)
    except TypeError:  # something unhashable: certainly not a code
        distinct_currencies = {None, *(c for c in currencies if type(c) is str)}
    if not all(type(c) is str and c for c in distinct_currencies):
        bad = [c for c in currencies if type(c) is not str or not c][:5]
        problems.append(f"{what} currencies must be non-empty codes, got "
                        f"{sorted(map(repr, bad))}")
    return problems, distinct_dates, distinct_currencies


_ASCII_BLANKS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() strips in ASCII


def _needs_strip(joined: str, values: list) -> bool:
    """Whether any value has blanks at its edges (``joined``: the values joined by NUL)."""
    if joined.isascii() and not any(blank in joined for blank in _ASCII_BLANKS):
        return False
    present = list(filter(None, values))
    return any(map(is_not, map(str.strip, present), present))  # strip() returns self if clean


def _normalize(what: str, field: str, ids: list, values: list, config: MatchConfig,
               problems: list) -> list:
    """References as compared: stripped, case-insensitive per config; '' -> None.

    The case-insensitive form is ``casefold().upper()`` (``upper()`` for
    ASCII text). A column already in that form, the usual case for bank
    serials and order ids, is recognised from its text joined into one
    string and returned as it is, with no work per value. Non-text values
    are added to ``problems``.
    """
    holes = False
    try:
        joined = "\x00".join(values)
    except TypeError:  # some values are None (or not text)
        holes = True
        try:
            joined = "\x00".join(filter(None, values))  # leaves out None and empty text
        except TypeError:
            bad = [i for i, v in zip(ids, values) if v is not None and type(v) is not str]
            problems.append(f"{what}s {bad[:10]!r}: {field} must be text or None")
            return [None] * len(values)
    strip = config.strip_refs and _needs_strip(joined, values)
    if not config.casefold_refs:
        fold = None
    elif joined.isascii():
        fold = str.upper if joined.upper() != joined else None
    else:
        fold = _fold if _fold(joined) != joined else None
    if holes:
        empty = "" in values
    else:  # an empty value shows as two NULs side by side, or one at an end
        empty = (("\x00\x00" in joined or joined[:1] == "\x00" or joined[-1:] == "\x00")
                 or (not joined and len(values) > 0))  # (a NUL inside a value looks so too)
    if not (strip or fold or empty):  # the column is its own normal form
        return values
    texts = filter(None, values)
    if strip:
        texts = map(str.strip, texts)
    if fold:
        texts = map(fold, texts)
    normalized = iter(list(texts))
    return [next(normalized) or None if v else None for v in values]


def _fold(text: str) -> str:
    return text.upper() if text.isascii() else text.casefold().upper()


# --- the passes --------------------------------------------------------------
def _find_repeats(w: _Work) -> None:
    """Bank lines whose bank_ref an earlier line (by id) already has: set aside.

    A repeat shares its reference's hash with an earlier line, so only lines
    whose hash is not unique (found by sorting the hashes) are compared.
    """
    refs = w.b_ref
    w.b_ref_set = distinct = set(refs)
    if len(distinct) == len(refs) or (
            None in distinct and len(distinct) - 1 == len(refs) - refs.count(None)):
        distinct.discard(None)
        return
    distinct.discard(None)
    hashes = _int_column(map(hash, refs), len(refs))
    order = np.argsort(hashes)
    hashes = hashes[order]
    same = hashes[1:] == hashes[:-1]
    shared = np.zeros(len(refs), dtype=bool)
    shared[1:] = same
    shared[:-1] |= same
    candidates = np.sort(order[shared]).tolist()
    first: dict = {}
    for bi in compress(candidates, map(is_not, map(refs.__getitem__, candidates), repeat(None))):
        earlier = first.setdefault(refs[bi], bi)
        if earlier != bi:
            w.b_done[bi] = 1
            w.repeats.append((bi, earlier))


def _known_repeats(w: _Work, repeats_of: Mapping[Any, tuple]) -> None:
    """Lines that repeat an earlier line not among the items: set aside, as repeats are."""
    for bi, item in enumerate(w.bank):
        earlier = repeats_of.get(item[0])
        if earlier is not None and not w.b_done[bi]:
            w.b_done[bi] = 1
            w.repeats.append((bi, tuple(earlier)))


def _pass_exact_reference(w: _Work) -> None:
    """Rule 1: reference equal, currency and amount equal, dates within the window.

    ``bank_ref`` is tried over all lines first, then ``end_to_end_ref``. The
    checks run column-wise on numpy arrays of positions; only references
    several postings share take the item-by-item path.
    """
    b_done, l_done = w.b_done_np, w.l_done_np
    matched_b: list = []  # arrays of positions, in the order the pairs were found
    matched_l: list = []
    for banks, entries in _reference_hits(w):
        shared: list = []
        if w.ref_groups:
            unique = entries >= 0
            shared = list(zip(banks[~unique].tolist(), entries[~unique].tolist()))
            banks, entries = banks[unique], entries[unique]
        fits = _fits(w, banks, entries)
        if b_done.any():  # lines set aside as repeats, or matched in the first stage
            fits &= b_done[banks] == 0
        w.linked.append(banks[~fits])  # done ones are dropped later
        banks, ledgers = banks[fits], entries[fits]
        # In bulk when no posting is taken twice or was taken before: the
        # count of consumed postings then grows by exactly len(ledgers).
        before, was = np.count_nonzero(l_done), l_done[ledgers]
        l_done[ledgers] = 1
        if np.count_nonzero(l_done) - before != len(ledgers):
            # The first line (in id order; banks ascend) claiming a free posting takes it.
            l_done[ledgers] = was
            wins = np.zeros(len(ledgers), dtype=bool)
            wins[np.unique(ledgers, return_index=True)[1]] = True
            wins &= was == 0
            w.linked.append(banks[~wins])
            banks, ledgers = banks[wins], ledgers[wins]
            l_done[ledgers] = 1
        b_done[banks] = 1
        matched_b.append(banks)
        matched_l.append(ledgers)
        one_by_one_b, one_by_one_l = [], []
        for bi, entry in shared:  # references several postings share: one by one
            if b_done[bi]:
                continue
            li = _first_fit(w, bi, w.ref_groups[-entry - 1])
            if li is None:
                w.linked.append(_positions_array([bi]))
                continue
            b_done[bi] = l_done[li] = 1
            one_by_one_b.append(bi)
            one_by_one_l.append(li)
        matched_b.append(_positions_array(one_by_one_b))
        matched_l.append(_positions_array(one_by_one_l))
    if matched_b:
        _emit_pairs(w, EXACT_REFERENCE, np.concatenate(matched_b), np.concatenate(matched_l))


def _fits(w: _Work, banks, ledgers):
    """Per pair: same amount, same currency, dates within the window (column-wise).

    Dates take few distinct values, so the window is checked only for lines
    on a date some posting date lies too far from.
    """
    fits = w.b_amt_np[banks] == w.l_amt_np[ledgers]
    if not w.single_currency:
        fits &= np.fromiter(map(eq, map(w.b_cur.__getitem__, banks.tolist()),
                                map(w.l_cur.__getitem__, ledgers.tolist())),
                            dtype=bool, count=len(banks))
    if w.far_positions:
        b_pos = _position_column(w, "bank")[banks]
        far = np.flatnonzero(np.isin(b_pos, list(w.far_positions)) & fits)
        if len(far) > len(w.l_date) // 16:  # many: the whole column costs less
            l_pos = _position_column(w, "ledger")[ledgers[far]]
        else:
            l_pos = _int_column(map(w.l_pos.__getitem__, ledgers[far].tolist()), len(far))
        fits[far[np.abs(b_pos[far] - l_pos) > w.window]] = False
    return fits


#: What a reference the ledger does not know probes to (no index entry is this).
_NO_ENTRY = -(1 << 63)


def _reference_hits(w: _Work):
    """(bank positions, ledger index entries) for the bank references the ledger knows.

    Two stages: ``bank_ref`` then ``end_to_end_ref``. Bank serial numbers
    rarely appear in the ledger, so the ``bank_ref`` column is probed only
    when its set meets the index (a check on hashes already stored).
    """
    index = w.ref_index
    for refs in (w.b_ref, w.b_e2e):
        if refs is w.b_ref and w.b_ref_set.isdisjoint(index):
            continue
        entries = _int_column(map(index.get, refs, repeat(_NO_ENTRY)), len(refs))
        banks = np.flatnonzero(entries != _NO_ENTRY)
        yield banks, entries[banks]


def _positions_array(positions):
    """Positions (a list or an array) as an int64 numpy array."""
    return np.asarray(positions, dtype=np.int64)


def _first_fit(w: _Work, bi: int, candidates: list):
    amount, currency, pos = w.b_amt[bi], w.b_cur[bi], w.b_pos[bi]
    for li in candidates:
        if (not w.l_done[li] and w.l_amt[li] == amount and w.l_cur[li] == currency
                and abs(w.l_pos[li] - pos) <= w.window):
            return li
    return None


def _linked_postings(w: _Work, bi: int) -> list:
    """Unconsumed postings sharing a reference and the currency with bank line ``bi``."""
    found = []
    for ref in (w.b_ref[bi], w.b_e2e[bi]):
        hit = w.ref_index.get(ref) if ref is not None else None
        if hit is None:
            continue
        for li in (w.ref_groups[-hit - 1] if hit < 0 else (hit,)):
            if not w.l_done[li] and w.l_cur[li] == w.b_cur[bi] and li not in found:
                found.append(li)
    return found


def _pass_reference_breaks(w: _Work) -> None:
    """Rule 2: linked by reference but not matched → date_outside_window or amount_mismatch."""
    if not w.linked:
        return
    linked = np.unique(np.concatenate(w.linked))
    linked = linked[w.b_done_np[linked] == 0].tolist()
    if not linked:
        return
    for bi in linked:  # equal amounts first: the dates are what differs
        for li in _linked_postings(w, bi):
            if w.l_amt[li] == w.b_amt[bi]:
                _add_break(w, DATE_OUTSIDE_WINDOW, [bi], [li], _outside_window_detail(
                    w, "reference " + repr(w.ledger[li].external_ref), [bi], [li]))
                break
    # The rest: one amount_mismatch per group of items linked by shared references.
    parent: dict = {}

    def find(node):
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for bi in linked:
        if w.b_done[bi]:
            continue
        for li in _linked_postings(w, bi):
            parent[find(("b", bi))] = find(("l", li))
    components: dict = {}
    for node in sorted(parent):
        components.setdefault(find(node), []).append(node)
    for nodes in sorted(components.values()):
        banks = [i for side, i in nodes if side == "b"]
        ledgers = [i for side, i in nodes if side == "l"]
        refs = sorted({w.ledger[li].external_ref for li in ledgers})
        _group_mismatch(w, banks, ledgers, "reference " + ", ".join(map(repr, refs)))


def _group_mismatch(w: _Work, banks: list, ledgers: list, link: str) -> None:
    """One amount_mismatch break for a linked group; suggest it when the sums agree."""
    bank_sum = sum(w.b_amt[i] for i in banks)
    ledger_sum = sum(w.l_amt[i] for i in ledgers)
    suggestion = None
    if bank_sum == ledger_sum:
        suggestion = Suggestion(REFERENCE_SUM, _ids(w.b_id, banks), _ids(w.l_id, ledgers),
                                bank_sum, w.b_cur[banks[0]])
    detail = (f"{link} links {_side(w, 'bank', banks)} and {_side(w, 'ledger', ledgers)}; "
              f"{_difference(bank_sum, ledger_sum, w.b_cur[banks[0]])}")
    if suggestion is not None:
        detail += (f"; the {len(banks)} bank line(s) and {len(ledgers)} posting(s) sum to "
                   "the same total: suggested, not matched")
    _add_break(w, AMOUNT_MISMATCH, banks, ledgers, detail, suggestion)


def _pass_batch(w: _Work) -> None:
    """Rule 3: a bank line and the postings sharing its batch id, sums equal, in the window."""
    if w.b_batch is None:
        return
    bank_groups: dict = {}
    for bi in compress(range(len(w.b_batch)), map(is_not, w.b_batch, repeat(None))):
        if not w.b_done[bi]:
            bank_groups.setdefault((w.b_batch[bi], w.b_cur[bi]), []).append(bi)
    if not bank_groups:
        return
    ledger_groups: dict = {}
    for li in compress(range(len(w.l_batch)), map(is_not, w.l_batch, repeat(None))):
        key = (w.l_batch[li], w.l_cur[li])
        if not w.l_done[li] and key in bank_groups:
            ledger_groups.setdefault(key, []).append(li)
    matched_b, matched_l = [], []
    for key, banks in bank_groups.items():
        ledgers = ledger_groups.get(key)
        if not ledgers:
            continue
        bank_sum = sum(w.b_amt[i] for i in banks)
        link = f"batch id {key[0]!r}"
        if len(banks) == 1 and bank_sum == sum(w.l_amt[i] for i in ledgers):
            bi = banks[0]
            if all(abs(w.l_pos[li] - w.b_pos[bi]) <= w.window for li in ledgers):
                w.b_done[bi] = 1
                for li in ledgers:
                    w.l_done[li] = 1
                matched_b.append(bi)
                matched_l.append(ledgers)
            else:
                _add_break(w, DATE_OUTSIDE_WINDOW, banks, ledgers,
                           _outside_window_detail(w, link, banks, ledgers))
        else:
            _group_mismatch(w, banks, ledgers, link)
    _emit_groups(w, BATCH, matched_b, matched_l)


def _pass_amount_date(w: _Work) -> None:
    """Rule 4: same amount and currency within the window, one candidate each side."""
    buckets: dict = {}
    banks = _remaining(w.b_done)
    for key, bi in zip(_bucket_keys(w, "bank", banks), banks):
        buckets.setdefault(key, ([], []))[0].append(bi)
    if not buckets:
        return
    ledgers = _remaining(w.l_done)
    for key, li in zip(_bucket_keys(w, "ledger", ledgers), ledgers):
        bucket = buckets.get(key)
        if bucket is not None:
            bucket[1].append(li)
    window, b_pos, l_pos = w.window, w.b_pos, w.l_pos
    matched_b, matched_l = [], []
    ambiguous = []
    for banks, ledgers in buckets.values():
        if not ledgers:
            continue
        if len(banks) == 1 and len(ledgers) == 1:
            if abs(b_pos[banks[0]] - l_pos[ledgers[0]]) <= window:
                matched_b.append(banks[0])
                matched_l.append(ledgers[0])
            continue
        # Candidates of a bank line are a contiguous run of the ledger side
        # sorted by position; overlapping runs form one component.
        banks.sort(key=lambda i: (b_pos[i], i))
        ledgers.sort(key=lambda i: (l_pos[i], i))
        keys = [l_pos[i] for i in ledgers]
        component_banks: list = []
        lo_c = hi_c = 0
        for bi in banks:
            lo = bisect_left(keys, b_pos[bi] - window)
            hi = bisect_right(keys, b_pos[bi] + window)
            if lo == hi:
                continue
            if component_banks and lo < hi_c:
                component_banks.append(bi)
                hi_c = max(hi_c, hi)
                continue
            _close_component(component_banks, ledgers[lo_c:hi_c], matched_b, matched_l, ambiguous)
            component_banks, lo_c, hi_c = [bi], lo, hi
        _close_component(component_banks, ledgers[lo_c:hi_c], matched_b, matched_l, ambiguous)
    order = sorted(range(len(matched_b)), key=matched_b.__getitem__)
    matched_b = [matched_b[i] for i in order]
    matched_l = [matched_l[i] for i in order]
    for bi, li in zip(matched_b, matched_l):
        w.b_done[bi] = 1
        w.l_done[li] = 1
    _emit_pairs(w, AMOUNT_DATE, matched_b, matched_l)
    for banks, ledgers in sorted((sorted(b), sorted(l)) for b, l in ambiguous):
        currency = w.b_cur[banks[0]]
        _add_break(w, AMBIGUOUS, banks, ledgers,
                   f"{_money(w.b_amt[banks[0]], currency)} within {w.window} business day(s): "
                   f"{_side(w, 'bank', banks)} and {_side(w, 'ledger', ledgers)}; no unique "
                   "pair, nothing matched")


def _bucket_keys(w: _Work, side: str, positions: list):
    """``(amount, currency)`` of each position; the amount alone in a one-currency run."""
    amounts, currencies = (w.b_amt, w.b_cur) if side == "bank" else (w.l_amt, w.l_cur)
    keys = map(amounts.__getitem__, positions)
    if w.single_currency:
        return keys
    return zip(keys, map(currencies.__getitem__, positions))


def _close_component(banks: list, ledgers: list, matched_b: list, matched_l: list,
                     ambiguous: list) -> None:
    if not banks:
        return
    if len(banks) == 1 and len(ledgers) == 1:
        matched_b.append(banks[0])
        matched_l.append(ledgers[0])
    else:
        ambiguous.append((banks, ledgers))


def _pass_subset_sum(w: _Work) -> None:
    """Suggestions: unmatched postings in the window that sum to an unmatched bank line."""
    config = w.config
    if config.subset_max_items < 2:
        return
    banks = _remaining(w.b_done)
    if not banks:
        return
    pools: dict = {}
    for li in _remaining(w.l_done):
        amount = w.l_amt[li]
        if amount:
            key = (w.l_cur[li], amount > 0, w.l_pos[li])
            pools.setdefault(key, []).append((abs(amount), li))
    if not pools:
        return
    for entries in pools.values():
        entries.sort()
    magnitudes = {key: [m for m, _ in entries] for key, entries in pools.items()}
    for bi in banks:
        target = w.b_amt[bi]
        if not target:
            continue
        size = abs(target)
        keys = [(w.b_cur[bi], target > 0, p)
                for p in range(w.b_pos[bi] - w.window, w.b_pos[bi] + w.window + 1)]
        keys = [k for k in keys if k in pools]
        counts = [bisect_left(magnitudes[k], size) for k in keys]
        if not 2 <= sum(counts) <= config.subset_max_pool:
            continue
        pool = sorted((entry for k, c in zip(keys, counts) for entry in pools[k][:c]),
                      key=lambda e: (-e[0], e[1]))
        chosen = _subset_sum([m for m, _ in pool], size, config.subset_max_items,
                             config.subset_max_steps)
        if chosen is not None:
            ledgers = sorted(pool[i][1] for i in chosen)
            suggestion = Suggestion(SUBSET_SUM, (w.b_id[bi],), _ids(w.l_id, ledgers),
                                    target, w.b_cur[bi])
            w.bank_suggestion[bi] = (suggestion, ledgers)


def _subset_sum(values: list, target: int, max_items: int, max_steps: int):
    """Indexes of the fewest ``values`` (sorted descending) summing to ``target``, or None."""
    n = len(values)
    prefix = [0]
    for v in values:
        prefix.append(prefix[-1] + v)
    steps = 0
    chosen: list = []

    def search(start: int, remaining: int, left: int) -> bool:
        nonlocal steps
        if left == 0:
            return remaining == 0
        if prefix[n] - prefix[n - left] > remaining:  # even the smallest are too big
            return False
        for i in range(start, n - left + 1):
            value = values[i]
            if value > remaining:
                continue
            if prefix[i + left] - prefix[i] < remaining:  # even the largest are too small
                return False
            steps += 1
            if steps > max_steps:
                raise _Exhausted
            chosen.append(i)
            if search(i + 1, remaining - value, left - 1):
                return True
            chosen.pop()
        return False

    try:
        for size in range(2, min(max_items, n) + 1):
            if search(0, target, size):
                return list(chosen)
    except _Exhausted:
        return None
    return None


class _Exhausted(Exception):
    """The subset-sum search used its step budget (internal)."""


def _leftovers(w: _Work) -> None:
    """Everything still unconsumed becomes a break; repeats become duplicate breaks."""
    for bi in _remaining(w.b_done):
        suggestion, ledgers = w.bank_suggestion.get(bi, (None, None))
        detail = f"{_side(w, 'bank', [bi])} has no ledger posting"
        if suggestion is not None:
            detail += f"; suggestion: {_side(w, 'ledger', ledgers)} sum to it (not matched)"
        _add_break(w, IN_BANK_NOT_IN_LEDGER, [bi], [], detail, suggestion)
    statement_date = w.statement_date
    calendar = w.config.calendar
    # Business days from a posting's date to the statement date it may still be
    # in transit at: none, so a weekend or holiday posting before the statement's
    # business day counts as dated on it; one more when the statement itself is
    # dated on a day the bank does not book (the business day before it still
    # counts as the statement's day); a carried posting, up to the window.
    grace = 0
    if statement_date is not None and not calendar.is_business_day(statement_date):
        grace = 1
    carried_grace = max(grace, w.window)
    distances: dict = {}
    for li in _remaining(w.l_done):
        day = w.l_date[li]
        in_transit = False
        if statement_date is not None:
            if day >= statement_date:
                in_transit = True
            else:
                gap = distances.get(day)
                if gap is None:
                    gap = distances[day] = calendar.distance(day, statement_date)
                in_transit = gap <= (carried_grace if w.l_carried[li] else grace)
        if in_transit:
            _add_break(w, IN_TRANSIT, [], [li],
                       f"{_side(w, 'ledger', [li])} has no bank line yet; the statement "
                       f"ends {statement_date}, so it is carried to the next run")
        else:
            _add_break(w, IN_LEDGER_NOT_IN_BANK, [], [li],
                       f"{_side(w, 'ledger', [li])} has no bank line")
    for bi, first in w.repeats:
        ref = w.bank[bi].bank_ref
        # an earlier line among the items (its position), or one outside them (id, amount)
        first_id, first_amount = first if type(first) is tuple else (w.b_id[first], w.b_amt[first])
        same = "same" if w.b_amt[bi] == first_amount else "a different"
        w.b_done[bi] = 0
        _add_break(w, DUPLICATE, [bi], [],
                   f"{_side(w, 'bank', [bi])} repeats bank reference {ref!r} of bank line "
                   f"{first_id!r} ({same} amount); the repeat is reported, not matched",
                   duplicate_of=first_id)


# --- building the result -----------------------------------------------------
def _emit_pairs(w: _Work, rule: str, banks, ledgers) -> None:
    """One-to-one matches in bulk: kept as columns, no per-match objects."""
    banks, ledgers = _positions_array(banks), _positions_array(ledgers)
    if not len(banks):
        return
    if w.any_carried:
        carried = _view(w.l_carried, np.uint8)[ledgers] != 0
        if carried.any():
            _emit_groups(w, rule, banks[carried].tolist(),
                         [[li] for li in ledgers[carried].tolist()])
            banks, ledgers = banks[~carried], ledgers[~carried]
            if not len(banks):
                return
    _flush_explicit(w)
    w.chunks.append(_Pairs(rule, banks, ledgers))
    amounts = w.b_amt_np[banks]
    if w.single_currency:
        _total(w, rule, w.b_cur[banks[0]], len(banks), _sum(amounts))
        return
    currencies = list(map(w.b_cur.__getitem__, banks.tolist()))
    for currency in sorted(set(currencies)):
        mine = np.fromiter(map(eq, currencies, repeat(currency)), dtype=bool,
                           count=len(currencies))
        _total(w, rule, currency, int(np.count_nonzero(mine)), _sum(amounts[mine]))


def _sum(amounts) -> int:
    """The exact sum of an amount array (an int64 sum could wrap around)."""
    if amounts.dtype == np.int64 and len(amounts):
        largest = max(-int(amounts.min()), int(amounts.max()))
        if largest * len(amounts) < 1 << 63:
            return int(amounts.sum())
    return sum(amounts.tolist())


def _emit_groups(w: _Work, rule: str, banks: list, ledger_groups: list) -> None:
    """Matches one by one (batches, carried postings): explicit :class:`Match` values."""
    for bi, ledgers in zip(banks, ledger_groups):
        amount, currency = w.b_amt[bi], w.b_cur[bi]
        carried = any(w.l_carried[li] for li in ledgers)
        actual = CARRIED_FORWARD if carried else rule
        w.explicit.append(Match(actual, (w.b_id[bi],), _ids(w.l_id, ledgers),
                                amount, currency, rule))
        _total(w, actual, currency, 1, amount)


def _flush_explicit(w: _Work) -> None:
    if w.explicit:
        w.chunks.append(tuple(w.explicit))
        w.explicit = []


def _total(w: _Work, rule: str, currency: str, count: int, amount: int) -> None:
    key = (rule, currency)
    old = w.rule_totals.get(key, (0, 0))
    w.rule_totals[key] = (old[0] + count, old[1] + amount)


def _add_break(w: _Work, kind: str, banks: list, ledgers: list, detail: str,
               suggestion: Optional[Suggestion] = None, duplicate_of: Any = None) -> None:
    for bi in banks:
        assert not w.b_done[bi], "a bank line was consumed twice"
        w.b_done[bi] = 1
    for li in ledgers:
        assert not w.l_done[li], "a posting was consumed twice"
        w.l_done[li] = 1
    currency = w.b_cur[banks[0]] if banks else w.l_cur[ledgers[0]]
    w.breaks.append(Break(kind, _ids(w.b_id, banks), _ids(w.l_id, ledgers),
                          sum(w.b_amt[i] for i in banks), sum(w.l_amt[i] for i in ledgers),
                          currency, detail, suggestion, duplicate_of))
    if suggestion is not None:
        w.suggestions.append(suggestion)


def _result(w: _Work) -> MatchResult:
    rule_order = {rule: n for n, rule in enumerate(RULES)}
    match_totals = tuple(
        RuleTotal(rule, currency, count, amount)
        for (rule, currency), (count, amount)
        in sorted(w.rule_totals.items(), key=lambda kv: (rule_order[kv[0][0]], kv[0][1])))
    break_totals: dict = {}
    for brk in w.breaks:
        key = (brk.type, brk.currency)
        count, bank_sum, ledger_sum = break_totals.get(key, (0, 0, 0))
        break_totals[key] = (count + 1, bank_sum + brk.bank_amount_minor,
                             ledger_sum + brk.ledger_amount_minor)
    type_order = {kind: n for n, kind in enumerate(BREAK_TYPES)}
    break_summary = tuple(
        BreakTotal(kind, currency, *values)
        for (kind, currency), values
        in sorted(break_totals.items(), key=lambda kv: (type_order[kv[0][0]], kv[0][1])))
    matched_bank = sum(t.count for t in match_totals)  # one bank line per match
    matched_ledger = len(w.l_id) - sum(len(b.ledger_ids) for b in w.breaks)
    summary = Summary(len(w.b_id), len(w.l_id), matched_bank, matched_ledger,
                      match_totals, break_summary, len(w.suggestions))
    _flush_explicit(w)
    pairs = [chunk for chunk in w.chunks if isinstance(chunk, _Pairs)]
    if pairs:
        columns = (w.b_ids or _compact(w.b_id), w.l_ids or _compact(w.l_id), _compact(w.b_amt),
                   w.b_cur[0] if w.single_currency else tuple(w.b_cur))
        w.chunks = [chunk.frozen(columns) if isinstance(chunk, _Pairs) else chunk
                    for chunk in w.chunks]
    return MatchResult(Matches(w.chunks), tuple(w.breaks), tuple(w.suggestions), summary)


# --- small helpers -----------------------------------------------------------
def _remaining(done: bytearray) -> list:
    """Positions not yet consumed, in id order."""
    return np.flatnonzero(_view(done, np.uint8) == 0).tolist()


def _ids(ids, positions: Sequence[int]) -> tuple:
    if type(ids) is _Field:
        return ids.take(positions)
    return tuple(map(ids.__getitem__, positions))



def _major(minor: int, currency: str) -> str:
    """``-12345`` CNY -> ``"-123.45"``: exact, without Decimal (breaks can be many)."""
    places = CURRENCY_EXPONENTS.get(currency)
    if places is None:
        return f"{minor} minor units of"
    if not places:
        return str(minor)
    whole, part = divmod(abs(minor), 10 ** places)
    return f"{'-' if minor < 0 else ''}{whole}.{part:0{places}d}"


def _money(minor: int, currency: str) -> str:
    """``10000`` CNY -> ``"100.00 CNY in"``: which way the money moved, in words."""
    direction = "in" if minor > 0 else "out" if minor < 0 else "zero"
    return f"{_major(abs(minor), currency)} {currency} {direction}"


def _side(w: _Work, side: str, positions: list, limit: int = 10) -> str:
    """``bank line 7 (100.00 CNY in, booked 2026-11-22)`` or a list of them."""
    parts = []
    if side == "bank":
        noun, dates = "bank line", (w.b_date if type(w.b_date) is list else None)
        for i in positions[:limit]:
            item = w.bank[i]
            refs = [r for r in (item.bank_ref, item.end_to_end_ref) if r]
            day = item.booking_date if dates is None else dates[i]
            parts.append(f"{item.id!r} ({_money(item.amount_minor, item.currency)}, "
                         f"booked {day}{_refs_text(refs)})")
    else:
        noun = "ledger posting"
        for i in positions[:limit]:
            item = w.ledger[i]
            refs = [item.external_ref] if item.external_ref else []
            parts.append(f"{item.id!r} ({_money(item.amount_minor, item.currency)}, "
                         f"effective {item.effective_date}{_refs_text(refs)})")
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    plural = "s" if len(positions) > 1 else ""
    return f"{noun}{plural} {', '.join(parts)}{more}"


def _refs_text(refs: list) -> str:
    return f", ref {' / '.join(map(repr, refs))}" if refs else ""


def _difference(bank_sum: int, ledger_sum: int, currency: str) -> str:
    diff = bank_sum - ledger_sum
    if diff == 0:
        return "the totals agree but no single line pairs with a single posting"
    return (f"bank side {_money(bank_sum, currency)}, ledger side "
            f"{_money(ledger_sum, currency)} (bank minus ledger: {_major(diff, currency)} "
            f"{currency})")


def _outside_window_detail(w: _Work, link: str, banks: list, ledgers: list) -> str:
    gap = max(abs(w.b_pos[bi] - w.l_pos[li]) for bi in banks for li in ledgers)
    return (f"{link} links {_side(w, 'bank', banks)} and {_side(w, 'ledger', ledgers)}; "
            f"the amounts agree but the dates are up to {gap} business day(s) apart, "
            f"outside the {w.window}-day window")
