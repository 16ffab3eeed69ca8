"""Benchmark: the posting engine against raw inserts of the same rows, on PostgreSQL.

It starts a throwaway PostgreSQL (``tests.pgserver.PgServer``, fsync and
synchronous_commit on, so a commit is durable) and, for every run, a fresh
pair of databases migrated the same way: one written through the ledger,
one by the raw baseline. The raw baseline writes the same rows (per entry
one ``journal_entry`` header and its two ``posting`` rows, postings first,
into the identical schema with its triggers) with plain psycopg2 and no
ledger logic: no validation, idempotency look-up, balances, hashes or seal
queue. Every entry is a top-up: the custody bank debited, a user's wallet
(a no-overdraft account) credited.

Figures, each the median of ``--repeat`` runs. In figures 1 and 2 the
ledger and the raw baseline write in alternating slices of one run (1000
entries or 25 posts), so both see the same fsync latency and the same load
from other processes; in figure 3 the 1-writer and the 8-writer runs
alternate.

1. ``post_many`` in batches of 1000 vs raw batched inserts (``execute_values``,
   one transaction per 1000 entries). Target: ledger >= 0.5x raw.
2. ``post``, one durable commit per entry, vs raw one-commit-per-entry.
   Target: ledger >= 0.7x raw. The ledger's post is one round trip
   (``ledger.postings.FastPoster``), the raw baseline's four (BEGIN, two
   INSERTs, COMMIT); the client CPU time per entry of both is printed too.
3. 8 writer processes, each posting top-ups (one commit each) for its own
   users against the one custody account, vs 1 writer, each run for the
   same few seconds with every writer stopping at one deadline (steady
   throughput, no tail of a last writer alone). Target: ledger
   8-writer throughput >= 1.6x its 1-writer throughput. For reference the
   same for raw inserts (no shared row) and for raw inserts that also
   update one hot balance row of the custody account (every writer queues
   behind that row lock).

Run: ``python bench/posting.py [--batch-entries N] [--single-entries N]
[--writer-seconds S] [--writers W] [--repeat R]`` (the defaults finish in a
few minutes on two cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ledger  # noqa: E402
from ledger.money import from_minor  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

BANK = "assets:custody:bank"
BATCH = 1000
WARMUP = 20
TODAY = dt.date.today()
POSTING_SQL = ("INSERT INTO posting (entry_id, position, account_id, amount_minor, currency, "
               "effective_date, is_pending) VALUES ")
HEADER_SQL = ("INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, kind, phase, "
              "effective_date, posting_count, created_at, content_hash) VALUES ")
HOT_ROW_SQL = ("UPDATE account_balance SET posted_minor = posted_minor + %s "
               "WHERE account_id = %s")
DUMMY_HASH = "0" * 64
CPU_MS: list[tuple[float, float]] = []   # (ledger, raw) client CPU ms per entry, per run


def wallet(n: int) -> str:
    return f"liabilities:users:u{n}:available"


def amount_minor(i: int) -> int:
    return 100 + i % 9901


# --- databases ----------------------------------------------------------------------
class Databases:
    """Fresh migrated databases on one server, with the chart of accounts opened."""

    def __init__(self, server: PgServer, users: int):
        self.server = server
        self.users = users
        self.count = 0
        template = self._create("bench_template")
        book = ledger.open(server.url(template))
        book.open_account(BANK, "asset")
        for n in range(users):
            book.open_account(wallet(n), "liability", no_overdraft=True)
        book.dispose()
        self.template = template

    def _create(self, name: str, template: str | None = None) -> str:
        self.server.psql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def fresh(self) -> str:
        """A new database copied from the template; returns its name."""
        self.count += 1
        return self._create(f"bench_{self.count}", self.template)

    def drop(self, name: str) -> None:
        self.server.psql(f'DROP DATABASE "{name}"')


def ids(dsn: str) -> tuple[int, dict[str, int]]:
    """(book id, account ids by code) of a bench database."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM book")
        book_id = cur.fetchone()[0]
        cur.execute("SELECT code, id FROM account")
        accounts = dict(cur.fetchall())
    conn.close()
    return book_id, accounts


# --- raw baseline -----------------------------------------------------------------
class Raw:
    """Plain psycopg2 inserts of the ledger's rows, no ledger logic."""

    def __init__(self, dsn: str, first_id: int = 1, hot_row: bool = False):
        import psycopg2

        self.conn = psycopg2.connect(dsn)
        self.book_id, self.accounts = ids(dsn)
        self.bank = self.accounts[BANK]
        self.next_id = first_id
        self.hot_row = hot_row
        if hot_row:   # a balance row for the custody account, as a locking design would keep
            with self.conn.cursor() as cur:
                cur.execute("INSERT INTO account_balance (account_id, posted_minor, held_minor) "
                            "VALUES (%s, 0, 0) ON CONFLICT DO NOTHING", (self.bank,))
            self.conn.commit()

    def rows(self, user: int, i: int, key: str):
        entry_id = self.next_id
        self.next_id += 1
        minor = amount_minor(i)
        postings = [(entry_id, 0, self.bank, minor, "CNY", TODAY, False),
                    (entry_id, 1, self.accounts[wallet(user)], -minor, "CNY", TODAY, False)]
        header = (entry_id, self.book_id, key, DUMMY_HASH, "top_up", "posted", TODAY, 2,
                  dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), DUMMY_HASH)
        return postings, header

    def post_batch(self, entries) -> None:
        from psycopg2.extras import execute_values

        postings, headers = [], []
        for user, i, key in entries:
            p, h = self.rows(user, i, key)
            postings.extend(p)
            headers.append(h)
        with self.conn.cursor() as cur:
            execute_values(cur, POSTING_SQL + "%s", postings, page_size=len(postings))
            execute_values(cur, HEADER_SQL + "%s", headers, page_size=len(headers))
        self.conn.commit()

    def post_one(self, user: int, i: int, key: str) -> None:
        postings, header = self.rows(user, i, key)
        with self.conn.cursor() as cur:
            cur.execute(POSTING_SQL + "(%s,%s,%s,%s,%s,%s,%s), (%s,%s,%s,%s,%s,%s,%s)",
                        postings[0] + postings[1])
            cur.execute(HEADER_SQL + "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", header)
            if self.hot_row:
                cur.execute(HOT_ROW_SQL, (postings[0][3], self.bank))
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


# --- ledger -----------------------------------------------------------------------
def ledger_items(entries):
    return [{"postings": [(BANK, from_minor(amount_minor(i))), (wallet(user), -from_minor(amount_minor(i)))],
             "key": key, "kind": "top_up"} for user, i, key in entries]


def ledger_post_one(book, user: int, i: int, key: str) -> None:
    amount = from_minor(amount_minor(i))
    book.post([(BANK, amount), (wallet(user), -amount)], key=key, kind="top_up")


# --- figure 1 and 2: one process ---------------------------------------------------------
def run_interleaved(server, dbs, n_entries: int, batched: bool) -> tuple[float, float]:
    """(ledger rate, raw rate): the two write their own databases in alternating slices.

    Slices of 1000 entries (one batch) or 25 single posts alternate between
    the ledger and the raw baseline, so both see the same machine: fsync
    latency and the load of other processes change from second to second.
    """
    ledger_db, raw_db = dbs.fresh(), dbs.fresh()
    book = ledger.open(server.url(ledger_db), upgrade=False)
    raw = Raw(server.dsn(raw_db), first_id=10**9)
    if batched:
        step = BATCH
        run_ledger = lambda part: book.post_many(ledger_items(part))  # noqa: E731
        run_raw = raw.post_batch
    else:
        step = 25

        def run_ledger(part):
            for user, i, key in part:
                ledger_post_one(book, user, i, key)

        def run_raw(part):
            for user, i, key in part:
                raw.post_one(user, i, key)
    warm = [(i % dbs.users, i, f"warm{i}") for i in range(WARMUP)]
    run_ledger(warm)
    run_raw(warm)
    entries = [(i % dbs.users, i, f"e{i}") for i in range(n_entries)]
    spent = {"ledger": 0.0, "raw": 0.0}
    cpu = {"ledger": 0.0, "raw": 0.0}
    for k in range(0, n_entries, step):
        part = entries[k:k + step]
        for side, run in (("raw", run_raw), ("ledger", run_ledger)) if k // step % 2 else (
                ("ledger", run_ledger), ("raw", run_raw)):
            start, start_cpu = time.perf_counter(), time.process_time()
            run(part)
            spent[side] += time.perf_counter() - start
            cpu[side] += time.process_time() - start_cpu
    CPU_MS.append((1000 * cpu["ledger"] / n_entries, 1000 * cpu["raw"] / n_entries))
    _check(book, n_entries + WARMUP)
    book.dispose()
    raw.close()
    dbs.drop(ledger_db)
    dbs.drop(raw_db)
    return n_entries / spent["ledger"], n_entries / spent["raw"]


def _check(book, expected_entries: int) -> None:
    report = book.verify()
    if not report.ok or report.entries != expected_entries:
        raise SystemExit(f"the ledger run is wrong: {report.entries} entries, {report.problems[:3]}")


# --- figure 3: concurrent writers ------------------------------------------------------
def _writer(mode, url, dsn, number, users, seconds, start, results):
    """One writer process: top-ups for its own users, as many as it can in ``seconds`` after
    the common start; reports its (start, end) wall times and how many it posted."""
    try:
        mine = [number * users + u for u in range(users)]
        if mode == "ledger":
            book = ledger.open(url, upgrade=False)
            post = lambda user, i, key: ledger_post_one(book, user, i, key)  # noqa: E731
        else:
            writer = Raw(dsn, first_id=(number + 1) * 10**9 + 10**8, hot_row=(mode == "raw-hot-row"))
            post = writer.post_one
        for i in range(WARMUP):
            post(mine[i % users], i, f"warm-{number}-{i}")
        start.wait()
        began = time.time()
        deadline = began + seconds
        i = 0
        while time.time() < deadline:
            post(mine[i % users], i, f"c-{number}-{i}")
            i += 1
        results.put((number, began, time.time(), i, None))
    except BaseException as exc:  # report, do not hang the barrier's other side
        import traceback

        results.put((number, 0.0, 0.0, 0, traceback.format_exc()))
        raise exc


def run_writers(server, dbs, mode: str, writers: int, seconds: float, users_each: int) -> float:
    """Entries per second of ``writers`` processes posting for ``seconds`` together.

    Every writer stops at the same deadline, so the window is one where all of them are
    writing: a fixed number of entries each would end with the slowest writing alone.
    """
    name = dbs.fresh()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(writers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(mode, server.url(name), server.dsn(name), n,
                                               users_each, seconds, start, results))
             for n in range(writers)]
    for p in procs:
        p.start()
    got = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    errors = [e for *_, e in got if e]
    if errors:
        raise SystemExit(errors[0])
    began = min(g[1] for g in got)
    ended = max(g[2] for g in got)
    posted = sum(g[3] for g in got)
    if mode == "ledger":
        book = ledger.open(server.url(name), upgrade=False)
        _check(book, posted + writers * WARMUP)
        book.dispose()
    dbs.drop(name)
    return posted / (ended - began)


# --- main ---------------------------------------------------------------------------
def commit_latency_ms(server, n: int = 200) -> float:
    """Median time of a one-row insert and its commit: what fsync costs on this machine now."""
    import psycopg2

    conn = psycopg2.connect(server.dsn())
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_commit (n int)")
        conn.commit()
        times = []
        for i in range(n):
            start = time.perf_counter()
            cur.execute("INSERT INTO bench_commit VALUES (%s)", (i,))
            conn.commit()
            times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times) * 1000


def median_pair(repeat: int, run) -> tuple[float, float]:
    """Median rates of the ledger and raw runs."""
    pairs = [run() for _ in range(repeat)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def cpu_line() -> str:
    """The median client CPU time per entry of the runs just made (this process only)."""
    return (f"client CPU per entry: ledger {statistics.median(c[0] for c in CPU_MS):.2f} ms, "
            f"raw {statistics.median(c[1] for c in CPU_MS):.2f} ms")


def verdict(ratio: float, target: float) -> str:
    return f"{'meets' if ratio >= target else 'MISSES'} the target >= {target}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-entries", type=int, default=10_000,
                        help="entries per post_many run, in batches of 1000 (default 10000)")
    parser.add_argument("--single-entries", type=int, default=600,
                        help="entries per one-commit-each run (default 600)")
    parser.add_argument("--writer-seconds", type=float, default=3.0,
                        help="seconds each concurrent run posts for, all writers together "
                             "(default 3)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument("--users", type=int, default=1000, help="wallets per run (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, median (default 3)")
    parser.add_argument("--only", choices=["batch", "single", "writers"], action="append",
                        help="run only these figures (repeatable)")
    args = parser.parse_args()
    only = set(args.only or ["batch", "single", "writers"])
    users_each = max(1, args.users // args.writers)

    print(f"PostgreSQL, fsync and synchronous_commit on; {os.cpu_count()} CPUs; "
          f"median of {args.repeat} runs", flush=True)
    server = PgServer(extra_conf={"max_connections": "100"})
    try:
        dbs = Databases(server, max(args.users, users_each * args.writers))
        print(f"one durable commit (a one-row insert) takes {commit_latency_ms(server):.2f} ms here: "
              "the single-post figures depend on it", flush=True)
        results = []
        interleaved = (
            ("batch", args.batch_entries, True, 0.5, "post_many, batches of 1000",
             f"post_many, batches of {BATCH}", "raw batched insert"),
            ("single", args.single_entries, False, 0.7, "post, one commit each",
             "post, one durable commit each", "raw one commit per entry"))
        for figure, entries, batched, target, name, label, baseline in interleaved:
            if figure not in only:
                continue
            CPU_MS.clear()
            led, raw = median_pair(args.repeat, lambda: run_interleaved(
                server, dbs, entries, batched=batched))
            results.append((name, led, raw, target))
            print(f"{label}: ledger {led:,.0f} entries/s, {baseline} {raw:,.0f} entries/s, "
                  f"ratio {led / raw:.2f}x ({verdict(led / raw, target)}); {cpu_line()}", flush=True)
        if "writers" in only:
            rates = {}
            for mode in ("ledger", "raw", "raw-hot-row"):
                one, many = [], []
                for _ in range(args.repeat):
                    one.append(run_writers(server, dbs, mode, 1, args.writer_seconds, users_each))
                    many.append(run_writers(server, dbs, mode, args.writers, args.writer_seconds,
                                            users_each))
                rates[mode] = statistics.median(one), statistics.median(many)
                o, w = rates[mode]
                label = {"ledger": "ledger", "raw": "raw insert, no shared row",
                         "raw-hot-row": "raw insert + hot balance row"}[mode]
                line = (f"{args.writers} writers vs 1, {label}: {w:,.0f} vs {o:,.0f} entries/s, "
                        f"ratio {w / o:.2f}x")
                if mode == "ledger":
                    line += f" ({verdict(w / o, 1.6)})"
                    results.append((f"{args.writers} writers vs 1", w, o, 1.6))
                print(line, flush=True)
        print()
        print(f"{'figure':<32} {'ledger/s':>10} {'baseline/s':>11} {'ratio':>7} {'target':>7}")
        for label, a, b, target in results:
            print(f"{label:<32} {a:>10,.0f} {b:>11,.0f} {a / b:>6.2f}x {target:>6.1f}x"
                  f"{'' if a / b >= target else '  MISSED'}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
