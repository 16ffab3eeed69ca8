"""Many processes writing one book on PostgreSQL at once.

Eight worker processes ("spawn", each with its own ``ledger.open(url)``)
post random transfers among one shared set of wallets, top-ups against the
one hot custody account, small batches, holds that are committed or voided,
and transfers meant to overdraw. Each worker reports what it wrote. Then the
book must add up exactly: verification passes, every wallet equals its
opening balance plus the postings the workers reported (nothing lost,
nothing doubled), none is negative, and posting every reported key again
writes nothing.

A second test runs the workers at SERIALIZABLE isolation on a few wallets,
where PostgreSQL aborts conflicting transactions with SQLSTATE 40001, and
shows that :func:`ledger.db.write_transaction` retries them until every
post lands.
"""

from __future__ import annotations

import multiprocessing
import random
import traceback
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import ledger
from ledger import models as m
from ledger.errors import ConcurrencyError, InsufficientFundsError
from ledger.money import from_minor

BANK = "assets:custody:bank"
WORKERS = 8
SEED_MINOR = 50_000   # every wallet opens with 500.00


def wallet(n: int) -> str:
    return f"liabilities:users:u{n}:available"


def _prepare_book(url: str, wallets: int) -> ledger.Book:
    book = ledger.open(url)
    book.open_account(BANK, "asset")
    for n in range(wallets):
        book.open_account(wallet(n), "liability", no_overdraft=True)
    book.post_many([{"postings": [(BANK, from_minor(SEED_MINOR)), (wallet(n), -from_minor(SEED_MINOR))],
                     "key": f"seed-{n}", "kind": "top_up"} for n in range(wallets)])
    return book


# --- the worker (runs in a spawned process) -----------------------------------------
def _worker(url, number, ops, wallets, engine_kwargs, start, results):
    """Post ``ops`` random operations; put (number, report) or (number, error) on ``results``."""
    try:
        results.put((number, _work(url, number, ops, wallets, engine_kwargs, start)))
    except BaseException:
        results.put((number, {"error": traceback.format_exc()}))


def _work(url, number, ops, wallets, engine_kwargs, start):
    import ledger.db

    # Count what write_transaction does: each failure it retries (by SQLSTATE), and the
    # calls that succeeded only after such a retry.
    conflicts, retried = Counter(), Counter()
    is_retryable, write_transaction = ledger.db.is_retryable, ledger.db.write_transaction

    def counting_is_retryable(exc):
        retry = is_retryable(exc)
        if retry:
            conflicts[getattr(exc.orig, "pgcode", None) or "other"] += 1
        return retry

    def counting_write_transaction(engine, fn, **kwargs):
        tries = 0

        def attempt(conn):
            nonlocal tries
            tries += 1
            return fn(conn)
        result = write_transaction(engine, attempt, **kwargs)
        retried[tries] += 1
        return result

    ledger.db.is_retryable = counting_is_retryable   # both are looked up on the module at call time
    ledger.db.write_transaction = counting_write_transaction

    book = ledger.open(url, upgrade=False, **engine_kwargs)
    rng = random.Random(number)
    written = []    # (key, entry id, ((code, minor), ...)) of every entry written
    refused = 0
    gave_up = 0
    items = []      # what was posted, to post again

    def call(method, *args, **kwargs):
        """A platform's call: after ConcurrencyError, the same call with the same key again."""
        nonlocal gave_up
        for _ in range(10):
            try:
                return getattr(book, method)(*args, **kwargs)
            except ConcurrencyError:
                gave_up += 1
        raise AssertionError(f"{method} {kwargs.get('key')} never got through")

    def post(postings, key, **kw):
        nonlocal refused
        try:
            entry = call("post", [(c, from_minor(a)) for c, a in postings], key=key, **kw)
        except InsufficientFundsError:
            refused += 1
            return None
        items.append({"postings": [(c, from_minor(a)) for c, a in postings], "key": key, **kw})
        assert not entry.replayed
        if not kw.get("pending"):
            written.append((key, entry.id, tuple(postings)))
        return entry

    start.wait()
    for i in range(ops):
        key = f"w{number}-{i}"
        src, dst = rng.sample(range(wallets), 2)
        roll = rng.random()
        if roll < 0.25:
            amount = rng.randint(1, 20_000)
            post([(BANK, amount), (wallet(dst), -amount)], key, kind="top_up")
        elif roll < 0.35:   # far more than any wallet holds
            post([(wallet(src), 10_000_000), (wallet(dst), -10_000_000)], key)
        elif roll < 0.45:   # a small batch: all of it or none
            batch, legs = [], []
            for j in range(3):
                a, b = rng.sample(range(wallets), 2)
                amount = rng.randint(1, 30_000)
                batch.append({"postings": [(wallet(a), from_minor(amount)),
                                           (wallet(b), -from_minor(amount))], "key": f"{key}-{j}"})
                legs.append(((wallet(a), amount), (wallet(b), -amount)))
            try:
                entries = call("post_many", batch)
            except InsufficientFundsError:
                refused += 1
            else:
                for item, entry, entry_legs in zip(batch, entries, legs):
                    written.append((item["key"], entry.id, entry_legs))
                items.extend(batch)
        elif roll < 0.55:   # a withdrawal held, then paid out or rejected
            amount = rng.randint(1, 20_000)
            held = post([(wallet(src), amount), (BANK, -amount)], key, kind="withdrawal",
                        pending=True)
            if held is not None:
                if rng.random() < 0.5:
                    done = call("commit_pending", held.id, key=f"{key}-done")
                    written.append((done.key, done.id, ((wallet(src), amount), (BANK, -amount))))
                else:
                    done = call("void_pending", held.id, key=f"{key}-done")
                    written.append((done.key, done.id, ()))
        else:
            amount = rng.randint(1, 30_000)
            post([(wallet(src), amount), (wallet(dst), -amount)], key)
    # a retry of everything this worker wrote posts nothing new
    again = call("post_many", items)
    assert all(e.replayed for e in again)
    book.dispose()
    return {"written": written, "refused": refused, "items": items, "gave_up": gave_up,
            "conflicts": dict(conflicts), "retried": dict(retried)}


def _run_workers(url, *, ops, wallets, engine_kwargs=None, workers=WORKERS):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, n, ops, wallets, engine_kwargs or {}, start,
                                               results)) for n in range(workers)]
    for p in procs:
        p.start()
    try:
        reports = dict(results.get(timeout=300) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = [r["error"] for r in reports.values() if "error" in r]
    assert not errors, errors[0]
    return [reports[n] for n in range(workers)]


def _check_book(book, reports, wallets):
    """Every invariant, and the book equals exactly what the workers say they wrote."""
    report = book.verify()
    assert report.ok, report.problems[:5]

    written = [w for r in reports for w in r["written"]]
    ids = [entry_id for _, entry_id, _ in written]
    assert len(set(ids)) == len(ids), "an entry was reported twice"
    with book.reading() as conn:
        stored = dict(conn.execute(select(m.JournalEntry.idempotency_key, m.JournalEntry.id)).all())
        phases = Counter(conn.execute(select(m.JournalEntry.phase)).scalars())
    for key, entry_id, _ in written:
        assert stored.get(key) == entry_id, f"entry {key} was lost"
    # every entry in the book is a seed, a reported entry or a pending one a reported commit/void completed
    assert len(stored) == wallets + len(written) + phases["commit"] + phases["void"]
    assert phases["pending"] == phases["commit"] + phases["void"], "a hold was left open"

    expected = Counter({wallet(n): -SEED_MINOR for n in range(wallets)})
    expected[BANK] = SEED_MINOR * wallets
    for _, _, legs in written:
        for code, minor in legs:
            expected[code] += minor
    for n in range(wallets):
        code = wallet(n)
        assert book.balance_minor(code) == -expected[code], code
        assert book.balance_minor(code, kind="available") >= 0
        assert book.balance_minor(code, kind="pending") == 0
    assert book.balance_minor(BANK) == expected[BANK]
    assert sum(expected.values()) == 0


def test_eight_writers_lose_nothing_and_overdraw_nothing(pg_template):
    from tests.conftest import new_pg_database

    url = new_pg_database(pg_template)
    wallets = 12
    book = _prepare_book(url, wallets)
    reports = _run_workers(url, ops=60, wallets=wallets)
    assert sum(r["refused"] for r in reports) > 0, "no transfer tried to overdraw"

    _check_book(book, reports, wallets)
    # posting every worker's entries again, all at once from here, writes nothing either
    before = book.verify().entries
    again = book.post_many([item for r in reports for item in r["items"]])
    assert again and all(e.replayed for e in again)
    assert book.verify().entries == before
    book.dispose()


def test_serializable_conflicts_are_retried(pg_template):
    """At SERIALIZABLE, PostgreSQL aborts racing writers (40001); retries make every post land.

    ``write_transaction`` retries a bounded number of times; a call that still
    loses raises :class:`ConcurrencyError` having written nothing, and the
    worker repeats it with the same key, as a platform would.
    """
    from tests.conftest import new_pg_database

    url = new_pg_database(pg_template)
    wallets = 4
    book = _prepare_book(url, wallets)
    reports = _run_workers(url, ops=25, wallets=wallets,
                           engine_kwargs={"isolation_level": "SERIALIZABLE"})
    conflicts, retried = Counter(), Counter()
    for r in reports:
        conflicts.update(r["conflicts"])
        retried.update(r["retried"])
    gave_up = sum(r["gave_up"] for r in reports)
    print(f"\nSERIALIZABLE: {dict(conflicts)} conflicts retried; calls by attempts needed "
          f"{sorted(retried.items())}; {gave_up} calls gave up and were repeated")
    assert conflicts["40001"] > 0, f"no serialization failure was provoked: {dict(conflicts)}"
    assert sum(n for tries, n in retried.items() if tries > 1) > 0, "no call succeeded on a retry"
    _check_book(book, reports, wallets)
    book.dispose()
