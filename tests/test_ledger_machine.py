"""The ledger against an in-memory model, driven by a hypothesis state machine.

Every rule does the same thing to the real book (on SQLite and on
PostgreSQL, a fresh database per example) and to :class:`Model`, a few
dictionaries of integer minor units. The model decides what must be refused
(an overdraft, a second completion, a second reversal, a reused key with new
content, a batch holding one bad entry), and a refused call must change
nothing. After every step each balance (posted, pending, available) equals
the model's, every currency sums to zero, no no-overdraft account is below
zero and the number of entries is the model's; ``book.verify()`` is a rule
of its own and runs again at teardown.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

import ledger
from ledger import accounts as acc
from ledger import balances
from ledger import models as m
from ledger.errors import (
    AlreadyReversedError,
    FloatAmountError,
    IdempotencyConflictError,
    InsufficientFundsError,
    PendingStateError,
    UnbalancedEntryError,
    UnknownAccountError,
)
from ledger.money import from_minor
from tests.pgserver import drop_database

BANK = "assets:custody:bank"
MAX_WALLETS = 5
KINDS = ("posted", "pending", "available")

amounts = st.integers(min_value=1, max_value=100_000)   # 0.01 .. 1000.00 CNY
mostly_true = st.sampled_from([True, True, True, False])
VERIFY_EVERY = 5   # steps between full verifications (slower than the invariants)
picks = st.integers(min_value=0, max_value=10**6)       # an index, taken modulo a list's length


def wallet(n: int) -> str:
    return f"liabilities:users:u{n}:available"


def money(minor: int) -> Decimal:
    return from_minor(minor)


# --- the model -------------------------------------------------------------------
@dataclass
class Op:
    """One entry as the model sees it: raw legs (debit positive, minor units)."""

    legs: tuple = ()
    pending: bool = False
    completes: int | None = None   # the pending entry a commit/void completes


@dataclass
class Model:
    """Balances as plain integers: what the ledger must report."""

    sign: dict = field(default_factory=dict)           # code -> +1 debit-normal, -1 credit-normal
    no_overdraft: set = field(default_factory=set)
    posted: dict = field(default_factory=dict)         # code -> raw posted sum
    open_pending: dict = field(default_factory=dict)   # entry id -> raw legs
    entries: int = 0

    def open(self, code: str, sign: int, no_overdraft: bool) -> None:
        self.sign[code] = sign
        self.posted[code] = 0
        if no_overdraft:
            self.no_overdraft.add(code)

    def holds(self, code: str) -> int:
        sign = self.sign[code]
        return sum(-sign * minor for legs in self.open_pending.values()
                   for acct, minor in legs if acct == code and sign * minor < 0)

    def balance(self, code: str, kind: str) -> int:
        sign = self.sign[code]
        if kind == "posted":
            return sign * self.posted[code]
        if kind == "pending":
            return sign * sum(minor for legs in self.open_pending.values()
                              for acct, minor in legs if acct == code)
        return sign * self.posted[code] - self.holds(code)

    def accepts(self, ops: list[Op]) -> bool:
        """Would the batch keep every no-overdraft account at or above zero, entry by entry?"""
        running: dict[str, int] = {}
        lowest: dict[str, int] = {}
        for op in ops:
            if op.completes is not None:   # released holds count first
                for acct, minor in self.open_pending[op.completes]:
                    normal = self.sign[acct] * minor
                    if acct in self.no_overdraft and normal < 0:
                        running[acct] = running.get(acct, 0) - normal
            for acct, minor in op.legs:
                if acct not in self.no_overdraft:
                    continue
                normal = self.sign[acct] * minor
                if op.pending and normal >= 0:
                    continue   # incoming pending money is not available yet
                running[acct] = running.get(acct, 0) + normal
                lowest[acct] = min(lowest.get(acct, 0), running[acct])
        return all(self.balance(a, "available") + low >= 0 for a, low in lowest.items())

    def apply(self, op: Op, entry_id: int) -> None:
        self.entries += 1
        if op.completes is not None:
            del self.open_pending[op.completes]
        if op.pending:
            self.open_pending[entry_id] = op.legs
            return
        for acct, minor in op.legs:
            self.posted[acct] += minor


@dataclass
class Written:
    """A call that wrote an entry, kept to replay it."""

    method: str
    args: tuple
    kwargs: dict
    entry_id: int
    legs: tuple = ()


# --- the machine -----------------------------------------------------------------
class LedgerMachine(RuleBasedStateMachine):
    """Real book and model side by side; set ``make_url`` on the class first."""

    make_url = None   # a factory of fresh migrated database URLs (set by the test)

    def __init__(self):
        super().__init__()
        self.url = type(self).make_url()
        self.book = ledger.open(self.url)
        self.model = Model()
        self.wallets: list[str] = []
        self.written: list[Written] = []      # every call that wrote an entry
        self.reversible: list[Written] = []   # posted and commit entries
        self.reversed: set[int] = set()
        self.completed: set[int] = set()      # pending ids committed or voided
        self.keys = itertools.count(1)
        self.steps = 0

    def teardown(self):
        try:
            report = self.book.verify()
            assert report.ok, report.problems
        finally:
            self.book.dispose()
            drop_database(self.url)

    def key(self, prefix: str) -> str:
        return f"{prefix}-{next(self.keys)}"

    # --- helpers -------------------------------------------------------------
    def pick(self, items, index):
        return items[index % len(items)]

    def record(self, method: str, args: tuple, kwargs: dict, op: Op, entry) -> None:
        assert not entry.replayed
        self.model.apply(op, entry.id)
        w = Written(method, args, kwargs, entry.id, op.legs)
        self.written.append(w)
        if not op.pending and method != "void_pending":
            self.reversible.append(w)

    def snapshot(self):
        """Every account's (posted, pending, holds) and the number of entries, in one read."""
        with self.book.reading() as conn:
            sums = {a.code: balances.raw_sums(conn, a)
                    for a in acc.list_accounts(conn, self.book.book_id)}
            count = conn.execute(select(func.count()).select_from(m.JournalEntry)).scalar_one()
        return sums, count

    def entry_count(self) -> int:
        with self.book.reading() as conn:
            return conn.execute(select(func.count()).select_from(m.JournalEntry)).scalar_one()

    def refused(self, error, call, *args, **kwargs):
        """``call`` must raise ``error`` and change nothing."""
        event(f"refused: {error.__name__} from {call.__name__}")
        before = self.snapshot()
        with pytest.raises(error):
            call(*args, **kwargs)
        assert self.snapshot() == before

    def post(self, legs, *, pending=False):
        """Post through the book (or expect a refusal) and keep the model in step."""
        op = Op(tuple(legs), pending)
        postings = [(code, money(minor)) for code, minor in legs]
        kwargs = {"key": self.key("pend" if pending else "post"), "pending": pending}
        if not self.model.accepts([op]):
            self.refused(InsufficientFundsError, self.book.post, postings, **kwargs)
            return None
        entry = self.book.post(postings, **kwargs)
        assert entry.phase == ("pending" if pending else "posted")
        self.record("post", (postings,), kwargs, op, entry)
        return entry

    # --- rules ---------------------------------------------------------------
    @initialize(seed=st.lists(amounts, min_size=3, max_size=3))
    def open_chart(self, seed):
        """The custody account and three wallets, each topped up once."""
        self.book.open_account(BANK, "asset")
        self.model.open(BANK, +1, False)
        for amount in seed:
            self.open_wallet()
            self.top_up(len(self.wallets) - 1, amount)

    @precondition(lambda self: len(self.wallets) < MAX_WALLETS)
    @rule()
    def open_wallet(self):
        code = wallet(len(self.wallets))
        self.book.open_account(code, "liability", no_overdraft=True)
        self.model.open(code, -1, True)
        self.wallets.append(code)

    @rule(who=picks, amount=amounts)
    def top_up(self, who, amount):
        self.post([(BANK, amount), (self.pick(self.wallets, who), -amount)])

    def sized(self, code, amount, fits):
        """``amount``, or when ``fits`` something the account's available balance covers."""
        available = self.model.balance(code, "available")
        return 1 + amount % available if fits and available > 0 else amount

    @rule(src=picks, dst=picks, amount=amounts, fits=mostly_true)
    def transfer(self, src, dst, amount, fits):
        src, dst = self.pick(self.wallets, src), self.pick(self.wallets, dst + 1 + src)
        if src != dst:
            amount = self.sized(src, amount, fits)
            self.post([(src, amount), (dst, -amount)])

    @rule(src=picks, dst=picks, extra=st.integers(min_value=1, max_value=10_000))
    def overdraw(self, src, dst, extra):
        src, dst = self.pick(self.wallets, src), self.pick(self.wallets, dst + 1 + src)
        if src != dst:
            amount = self.model.balance(src, "available") + extra
            assert not self.model.accepts([Op(((src, amount), (dst, -amount)))])
            self.post([(src, amount), (dst, -amount)])

    @rule(who=picks, amount=amounts, to_bank=st.booleans(), dst=picks, fits=mostly_true)
    def hold(self, who, amount, to_bank, dst, fits):
        """A pending withdrawal (wallet -> bank) or a pending transfer between wallets."""
        src = self.pick(self.wallets, who)
        target = BANK if to_bank else self.pick(self.wallets, dst + 1 + who)
        if target != src:
            amount = self.sized(src, amount, fits)
            self.post([(src, amount), (target, -amount)], pending=True)

    def open_pendings(self):
        return sorted(self.model.open_pending)

    @precondition(lambda self: self.model.open_pending)
    @rule(which=picks, how=st.sampled_from(["commit", "commit part", "void"]), part=picks)
    def complete(self, which, how, part):
        """Commit a pending entry (all of it or part) or void it; its holds are released."""
        pending_id = self.pick(self.open_pendings(), which)
        legs = self.model.open_pending[pending_id]
        if how == "void":
            kwargs = {"key": self.key("void")}
            entry = self.book.void_pending(pending_id, **kwargs)
            assert entry.phase == "void" and entry.postings == ()
            self.record("void_pending", (pending_id,), kwargs, Op(completes=pending_id), entry)
            self.completed.add(pending_id)
            return
        kwargs = {"key": self.key("commit")}
        if how == "commit part":
            part = 1 + part % abs(legs[0][1])
            kwargs["amount"] = money(part)
            legs = tuple((acct, part if minor > 0 else -part) for acct, minor in legs)
        op = Op(legs, completes=pending_id)
        assert self.model.accepts([op])   # committing never needs more than the hold
        entry = self.book.commit_pending(pending_id, **kwargs)
        assert entry.phase == "commit" and entry.pending_id == pending_id
        assert [(p.account, p.amount_minor) for p in entry.postings] == list(legs)
        self.record("commit_pending", (pending_id,), kwargs, op, entry)
        self.completed.add(pending_id)

    @precondition(lambda self: self.completed)
    @rule(which=picks, void=st.booleans())
    def complete_again(self, which, void):
        pending_id = self.pick(sorted(self.completed), which)
        if void:
            self.refused(PendingStateError, self.book.void_pending, pending_id, key=self.key("again"))
        else:
            self.refused(PendingStateError, self.book.commit_pending, pending_id,
                         key=self.key("again"))

    @precondition(lambda self: self.reversible)
    @rule(which=picks)
    def reverse(self, which):
        original = self.pick(self.reversible, which)
        kwargs = {"key": self.key("rev"), "reason": "mistake"}
        if original.entry_id in self.reversed:
            self.refused(AlreadyReversedError, self.book.reverse, original.entry_id, **kwargs)
            return
        op = Op(tuple((acct, -minor) for acct, minor in original.legs))
        if not self.model.accepts([op]):
            self.refused(InsufficientFundsError, self.book.reverse, original.entry_id, **kwargs)
            return
        entry = self.book.reverse(original.entry_id, **kwargs)
        assert entry.reverses_id == original.entry_id
        self.record("reverse", (original.entry_id,), kwargs, op, entry)
        self.reversed.add(original.entry_id)

    @precondition(lambda self: self.written)
    @rule(which=picks)
    def replay_same(self, which):
        """The same key with the same content returns the first entry and posts nothing."""
        w = self.pick(self.written, which)
        event(f"replayed: {w.method}")
        before = self.snapshot()
        entry = getattr(self.book, w.method)(*w.args, **w.kwargs)
        assert entry.id == w.entry_id and entry.replayed
        assert self.snapshot() == before

    @precondition(lambda self: self.written)
    @rule(which=picks, how=st.sampled_from(["amount", "memo", "pending"]))
    def replay_different(self, which, how):
        """The same key with different content is refused and changes nothing."""
        w = self.pick(self.written, which)
        if w.method != "post":
            return
        postings, kwargs = w.args[0], dict(w.kwargs)
        if how == "amount":
            postings = [(code, amount * 2) for code, amount in postings]
        elif how == "memo":
            kwargs["memo"] = "something else"
        else:
            kwargs["pending"] = not kwargs.get("pending", False)
        self.refused(IdempotencyConflictError, self.book.post, postings, **kwargs)

    @precondition(lambda self: self.written)
    @rule(which=picks, other=picks, how=st.sampled_from(["commit", "void", "reverse"]))
    def replay_completion_key_elsewhere(self, which, other, how):
        """A used key given to a completion or reversal of another entry is refused."""
        w = self.pick(self.written, which)
        if how == "reverse":
            if not self.reversible:
                return
            original = self.pick(self.reversible, other)
            if w.method == "reverse" and w.args[0] == original.entry_id:
                return   # that would be a true replay
            if original.entry_id in self.reversed:
                return   # refused anyway, as a second reversal
            self.refused(IdempotencyConflictError, self.book.reverse, original.entry_id,
                         key=w.kwargs["key"], reason="mistake")
            return
        if not self.model.open_pending:
            return
        pending_id = self.pick(self.open_pendings(), other)
        call = self.book.commit_pending if how == "commit" else self.book.void_pending
        self.refused(IdempotencyConflictError, call, pending_id, key=w.kwargs["key"])

    def batch_item(self, legs, key=None):
        return {"postings": [(code, money(minor)) for code, minor in legs],
                "key": key or self.key("batch"), "kind": "transfer"}

    def good_batch(self, data, size):
        """Top-ups and transfers each of which fits, in order; returns (items, ops)."""
        items, ops = [], []
        for _ in range(size):
            src = self.pick(self.wallets, data.draw(picks))
            dst = self.pick(self.wallets, data.draw(picks))
            amount = data.draw(amounts)
            legs = ((src, amount), (dst, -amount))
            if src == dst or not self.model.accepts(ops + [Op(legs)]):
                legs = ((BANK, amount), (dst, -amount))
            items.append(self.batch_item(legs))
            ops.append(Op(legs))
        return items, ops

    @rule(data=st.data(), size=st.integers(min_value=1, max_value=6),
          extra=st.sampled_from(["none", "duplicate", "earlier"]))
    def post_many_good(self, data, size, extra):
        """A batch lands whole; a key repeated in it, or one written before, is a replay."""
        items, ops = self.good_batch(data, size)
        earlier = None
        if extra == "duplicate":
            items.append(dict(items[0]))
        elif extra == "earlier":
            posts = [w for w in self.written if w.method == "post"]
            if posts:
                earlier = self.pick(posts, data.draw(picks))
                items.insert(data.draw(st.integers(min_value=0, max_value=size)),
                             {"postings": earlier.args[0], **earlier.kwargs})
        before = self.entry_count()
        entries = self.book.post_many(items)
        assert len(entries) == len(items)
        assert self.entry_count() == before + len(ops)
        ids_by_key: dict[str, int] = {}
        fresh = []
        for item, entry in zip(items, entries):
            assert entry.key == item["key"]
            # a key repeated inside the batch gets the entry the batch wrote for it
            assert ids_by_key.setdefault(entry.key, entry.id) == entry.id
            if not entry.replayed and entry.id not in {e.id for _, e in fresh}:
                fresh.append((item, entry))
        assert len(fresh) == len(ops)
        for (item, entry), op in zip(fresh, ops):
            self.record("post", (item["postings"],), {"key": item["key"], "kind": "transfer"},
                        op, entry)
        if earlier is not None:
            assert ids_by_key[earlier.kwargs["key"]] == earlier.entry_id

    @rule(data=st.data(), size=st.integers(min_value=0, max_value=5),
          bad=st.sampled_from(["unbalanced", "unknown", "overdraft", "conflict", "float"]))
    def post_many_with_bad_entry(self, data, size, bad):
        """One bad entry anywhere in the batch: nothing of the batch lands."""
        items, ops = self.good_batch(data, size)
        at = data.draw(st.integers(min_value=0, max_value=size))
        dst = self.pick(self.wallets, data.draw(picks))
        if bad == "unbalanced":
            item, error = self.batch_item(((BANK, 100), (dst, -99))), UnbalancedEntryError
        elif bad == "unknown":
            item = self.batch_item(((BANK, 100), ("liabilities:users:nobody:available", -100)))
            error = UnknownAccountError
        elif bad == "float":
            item = {"postings": [(BANK, 1.5), (dst, -1.5)], "key": self.key("batch")}
            error = FloatAmountError
        elif bad == "conflict":
            posts = [w for w in self.written if w.method == "post"]
            if not posts:
                return
            w = self.pick(posts, data.draw(picks))
            item = {"postings": [(c, a * 2) for c, a in w.args[0]], **w.kwargs}
            error = IdempotencyConflictError
        else:
            src = self.pick(self.wallets, data.draw(picks))
            dst = self.pick(self.wallets, data.draw(picks) + 1)
            if src == dst:
                return
            # one fen more than the source holds at that point of the batch
            amount = self.model.balance(src, "available") + 1 + sum(
                self.model.sign[a] * minor for op in ops[:at] for a, minor in op.legs if a == src)
            legs = ((src, amount), (dst, -amount))
            assert not self.model.accepts(ops[:at] + [Op(legs)] + ops[at:])
            item, error = self.batch_item(legs), InsufficientFundsError
        items.insert(at, item)
        self.refused(error, self.book.post_many, items)
        for other in items:
            if other is not item:
                assert self.book.entry_by_key(other["key"]) is None

    @invariant()
    def verifies_every_few_steps(self):
        self.steps += 1
        if self.steps % VERIFY_EVERY == 0:
            report = self.book.verify()
            assert report.ok, report.problems

    # --- invariants ------------------------------------------------------------
    @invariant()
    def balances_match_the_model_and_add_up(self):
        if not self.model.sign:
            return
        sums, count = self.snapshot()
        assert count == self.model.entries
        book = {}
        for code, (posted, pending, holds) in sums.items():
            sign = self.model.sign[code]
            book[code] = {"posted": sign * posted, "pending": sign * pending,
                          "available": sign * posted - holds}
            for kind in KINDS:
                assert book[code][kind] == self.model.balance(code, kind), (code, kind)
        # and through the public API, one kind per step in turn
        kind = KINDS[self.steps % len(KINDS)]
        for code in self.model.sign:
            assert self.book.balance(code, kind=kind) == money(book[code][kind]), (code, kind)
        for kind in ("posted", "pending"):   # debit-positive sums of the whole book
            assert sum(self.model.sign[c] * book[c][kind] for c in self.model.sign) == 0
        for code in self.model.no_overdraft:
            assert book[code]["available"] >= 0, code
        with self.book.reading() as conn:
            totals = conn.execute(
                select(m.Posting.currency, func.sum(m.Posting.amount_minor))
                .group_by(m.Posting.currency)).all()
            stored = conn.execute(
                select(m.AccountBalance.posted_minor, m.AccountBalance.held_minor)).all()
        assert all(total == 0 for _, total in totals), totals
        for posted_minor, held_minor in stored:   # every stored balance here is a wallet
            assert -posted_minor - held_minor >= 0


def test_ledger_matches_model(make_url):
    LedgerMachine.make_url = staticmethod(make_url)
    run_state_machine_as_test(
        LedgerMachine, settings=settings(max_examples=20, stateful_step_count=20, deadline=None))


# --- regressions the machine found ---------------------------------------------------
def test_completion_key_reused_for_another_entry_is_a_conflict(book):
    """A commit, void or reversal under a key already used for something else is refused.

    It used to return the entry written under that key as if it were the
    completion asked for (a reversal "returned" the top-up it should undo).
    """
    book.open_account(BANK, "asset")
    book.open_account(wallet(0), "liability", no_overdraft=True)
    top_up = book.post([(BANK, Decimal(100)), (wallet(0), Decimal(-100))], key="t1")
    first = book.post([(wallet(0), Decimal(10)), (BANK, Decimal(-10))], key="p1", pending=True)
    second = book.post([(wallet(0), Decimal(10)), (BANK, Decimal(-10))], key="p2", pending=True)
    commit = book.commit_pending(first.id, key="c1", amount=Decimal(5))
    count = book.verify().entries
    with pytest.raises(IdempotencyConflictError):
        book.commit_pending(first.id, key="c1", amount=Decimal(7))
    with pytest.raises(IdempotencyConflictError):
        book.void_pending(second.id, key="c1")
    with pytest.raises(IdempotencyConflictError):
        book.commit_pending(second.id, key="p2")
    with pytest.raises(IdempotencyConflictError):
        book.reverse(top_up.id, key="t1", reason="mistake")
    assert book.verify().entries == count
    assert book.balance(wallet(0), kind="available") == Decimal(85)
    # true replays still return the first entry
    again = book.commit_pending(first.id, key="c1", amount=Decimal("5.00"))
    assert again.id == commit.id and again.replayed
    reversal = book.reverse(commit.id, key="r1", reason="mistake")
    assert book.reverse(commit.id, key="r1", reason="mistake").id == reversal.id
    void = book.void_pending(second.id, key="v1")
    assert book.void_pending(second.id, key="v1").id == void.id


def test_batch_over_many_wallets_moves_every_balance_or_none(book):
    """A batch touching many wallets (one statement for all of them on PostgreSQL) is all or nothing."""
    book.open_account(BANK, "asset")
    wallets = [wallet(n) for n in range(20)]
    for code in wallets:
        book.open_account(code, "liability", no_overdraft=True)
    book.post_many([{"postings": [(BANK, Decimal(n + 1)), (code, -Decimal(n + 1))], "key": f"t{n}"}
                    for n, code in enumerate(wallets)])
    before = {code: book.balance(code) for code in [BANK, *wallets]}
    transfers = [{"postings": [(wallets[n], Decimal(1)), (wallets[(n + 1) % 20], Decimal(-1))],
                  "key": f"x{n}"} for n in range(20)]
    # wallet 7 holds 8.00, receives 1.00 from wallet 6 first, then is asked for 9.50 more
    bad = {"postings": [(wallets[7], Decimal("9.50")), (wallets[3], Decimal("-9.50"))], "key": "bad"}
    with pytest.raises(InsufficientFundsError) as info:
        book.post_many(transfers[:10] + [bad] + transfers[10:])
    assert info.value.account == wallets[7]
    assert {code: book.balance(code) for code in before} == before
    assert book.entry_by_key("x0") is None
    book.post_many(transfers)
    for n, code in enumerate(wallets):
        assert book.balance(code) == before[code]   # each sends 1.00 and receives 1.00
    assert book.verify().ok
