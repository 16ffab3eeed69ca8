"""Benchmark: as-of trial balance from checkpoints, and the streamed journal export.

On a throwaway PostgreSQL (``tests.pgserver.PgServer``) it builds a book of
N entries (default 1,000,000, two postings each) spread over three years:
top-ups from the custody bank into user wallets and small fees from wallets
to platform income. The rows are bulk-loaded with ``COPY`` straight into the
schema, but they are real ledger rows: postings before headers, one
transaction per chunk (so the database's balance and posting-count triggers
check every entry), content hashes, chain links and the per-day chain index
computed as the ledger computes them, wallet balances stored. Then every month but the last is
closed, which writes the balance checkpoints.

Timed in the same run, warm, median of ``--repeat`` runs:

* baseline: ``SELECT account_id, sum(amount_minor) FROM posting WHERE
  effective_date <= D GROUP BY account_id`` over every posting up to D;
* :func:`ledger.reports.trial_balance` as of D (D late in the book: 20 days
  after the last close), footer included. Target: at most 0.25x the baseline.

Then the whole journal is exported as CSV to /dev/null: entries/s,
postings/s, and the process's resident memory sampled along the way (it
must stay flat: the export streams through a server-side cursor).

Run: ``PYTHONPATH=. python bench/reports.py [--entries N] [--users U] [--repeat R]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ledger  # noqa: E402
from ledger import chain, exports, periods, reports  # noqa: E402
from ledger import db as dbmod  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

START = dt.date(2023, 1, 1)
DAYS = 3 * 365
CHUNK = 50_000


def rss_mib() -> float:
    """Resident memory of this process, MiB (from /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    out, day = [], first
    while True:
        nxt = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        end = nxt - dt.timedelta(days=1)
        if end > last:
            return out
        out.append(end)
        day = nxt


def load(book, dsn: str, n_entries: int, n_users: int, seed: int) -> dict:
    """Bulk-load the book; returns counts."""
    import psycopg2

    rng = random.Random(seed)
    codes = ["assets:custody:bank", "income:platform:fees:service"] + [
        f"liabilities:users:u{i}:available" for i in range(n_users)]
    for code in codes[:2]:
        book.open_account(code)
    raw = psycopg2.connect(dsn)
    try:
        cur = raw.cursor()
        now = dt.datetime(2026, 11, 1)
        buf = io.StringIO()
        for code in codes[2:]:
            buf.write(f"{book.book_id}\t{code}\tliability\tCNY\ttrue\t\\N\t{now}\t\\N\n")
        buf.seek(0)
        cur.copy_expert("COPY account (book_id, code, type, currency, is_no_overdraft, name, "
                        "opened_at, closed_at) FROM STDIN", buf)
        cur.execute("INSERT INTO account_balance (account_id, posted_minor, held_minor) "
                    "SELECT id, 0, 0 FROM account WHERE is_no_overdraft AND book_id = %s",
                    (book.book_id,))
        cur.execute("SELECT code, id FROM account WHERE book_id = %s", (book.book_id,))
        ids = dict(cur.fetchall())
        raw.commit()
        bank, fees = ids[codes[0]], ids[codes[1]]
        users = [ids[c] for c in codes[2:]]
        balance = {u: 0 for u in users}
        prev = chain.GENESIS
        per_day = n_entries / DAYS
        entry_id = 0
        t0 = time.perf_counter()
        while entry_id < n_entries:
            size = min(CHUNK, n_entries - entry_id)
            postings, headers, links = io.StringIO(), io.StringIO(), io.StringIO()
            for _ in range(size):
                entry_id += 1
                day = START + dt.timedelta(days=int((entry_id - 1) / per_day))
                created = dt.datetime.combine(day, dt.time(12)) + dt.timedelta(microseconds=entry_id)
                user = users[rng.randrange(n_users)]
                fee = rng.randrange(1, 500)
                if balance[user] >= fee and rng.random() < 0.4:
                    kind, ref, legs = "fee", None, ((user, fee), (fees, -fee))
                    balance[user] -= fee
                else:
                    amount = rng.randrange(100, 500_000)
                    kind, ref, legs = "top_up", f"B{entry_id}", ((bank, amount), (user, -amount))
                    balance[user] += amount
                key = f"bench-{entry_id}"
                header = {"id": entry_id, "book_id": book.book_id, "idempotency_key": key,
                          "request_hash": hashlib.sha256(key.encode()).hexdigest(), "kind": kind,
                          "phase": "posted", "effective_date": day, "external_ref": ref,
                          "memo": None, "metadata_json": None, "pending_id": None,
                          "reverses_id": None, "posting_count": 2, "created_at": created}
                content = chain.content_hash(header, [(pos, acct, amt, "CNY", False)
                                                      for pos, (acct, amt) in enumerate(legs)])
                linked = chain.link_hash(prev, content)
                for pos, (acct, amt) in enumerate(legs):
                    postings.write(f"{entry_id}\t{pos}\t{acct}\t{amt}\tCNY\t{day}\tfalse\n")
                headers.write(f"{entry_id}\t{book.book_id}\t{key}\t{header['request_hash']}\t{kind}\t"
                              f"posted\t{day}\t{ref or chr(92) + 'N'}\t2\t{created}\t{content}\n")
                links.write(f"{book.book_id}\t{entry_id}\t{entry_id}\t{prev}\t{linked}\t{now}\n")
                prev = linked
            for data, sql in (
                (postings, "COPY posting (entry_id, position, account_id, amount_minor, currency, "
                           "effective_date, is_pending) FROM STDIN"),
                (headers, "COPY journal_entry (id, book_id, idempotency_key, request_hash, kind, "
                          "phase, effective_date, external_ref, posting_count, created_at, "
                          "content_hash) FROM STDIN"),
                (links, "COPY chain_link (book_id, seq, entry_id, prev_hash, chain_hash, sealed_at) "
                        "FROM STDIN"),
            ):
                data.seek(0)
                cur.copy_expert(sql, data)
            raw.commit()  # the deferred balance trigger checks every entry of the chunk here
            print(f"  loaded {entry_id:,} entries ({time.perf_counter() - t0:.0f} s)", flush=True)
        cur.execute("SELECT setval('journal_entry_id_seq', %s)", (n_entries,))
        cur.execute("INSERT INTO chain_day (book_id, effective_date, last_seq) "
                    "SELECT c.book_id, j.effective_date, max(c.seq) FROM chain_link c "
                    "JOIN journal_entry j ON j.id = c.entry_id GROUP BY c.book_id, j.effective_date")
        cur.execute("UPDATE account_balance b SET posted_minor = s.total FROM ("
                    "SELECT account_id, sum(amount_minor) AS total FROM posting GROUP BY account_id) s "
                    "WHERE s.account_id = b.account_id")
        raw.commit()
        raw.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()
    last_day = START + dt.timedelta(days=int((n_entries - 1) / per_day))
    return {"last_day": last_day, "load_s": time.perf_counter() - t0}


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    server = PgServer(extra_conf={"fsync": "off", "synchronous_commit": "off",
                                  "max_wal_size": "'4GB'", "work_mem": "'64MB'"})
    try:
        url = server.url("postgres")
        engine = dbmod.make_engine(url)
        book = ledger.open(engine=engine)
        print(f"loading {args.entries:,} entries ({2 * args.entries:,} postings), "
              f"{args.users:,} wallets ...", flush=True)
        info = load(book, server.dsn("postgres"), args.entries, args.users, args.seed)
        print(f"loaded in {info['load_s']:.0f} s; last effective date {info['last_day']}")

        closes = month_ends(START, info["last_day"])[:-1] or month_ends(START, info["last_day"])
        t = time.perf_counter()
        for end in closes:
            book.close_period(end, end.strftime("%Y-%m"))
        print(f"closed {len(closes)} months in {time.perf_counter() - t:.1f} s "
              f"(last close {closes[-1]})")

        as_of = min(closes[-1] + dt.timedelta(days=20), info["last_day"])
        plain_sql = ("SELECT account_id, sum(amount_minor) FROM posting "
                     "WHERE effective_date <= %s AND NOT is_pending GROUP BY account_id")

        def plain():
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(plain_sql, (as_of,))
                return dict(cur.fetchall())
            finally:
                raw.close()

        plain_s, plain_sums = timed(plain, args.repeat)
        report_s, tb = timed(lambda: reports.trial_balance(book, as_of=as_of), args.repeat)
        assert sum(r.debit_minor for r in tb.rows) == sum(v for v in plain_sums.values() if v > 0)
        assert len([v for v in plain_sums.values() if v]) == len(tb.rows)
        with book.reading() as conn:
            parts = {
                "account list": timed(lambda: reports._accounts(conn, book.book_id), args.repeat)[0],
                "checkpoint + postings since": timed(
                    lambda: periods.posted_sums(conn, book.book_id, as_of), args.repeat)[0],
                "footer (chain point, unsealed count)": timed(
                    lambda: reports.footer(conn, book.book_id, book.name, as_of), args.repeat)[0],
            }
        ratio = report_s / plain_s
        print(f"\nas-of trial balance at {as_of} ({len(tb.rows):,} accounts, balanced: {tb.balanced})")
        print(f"  plain SUM ... GROUP BY over postings up to {as_of}: {plain_s * 1000:8.1f} ms")
        print(f"  trial balance from checkpoint {closes[-1]} + postings since: "
              f"{report_s * 1000:8.1f} ms")
        print(f"  ratio: {ratio:.3f}x (target <= 0.25x) {'OK' if ratio <= 0.25 else 'MISSED'}")
        for name, seconds in parts.items():
            print(f"    of which {name}: {seconds * 1000:.1f} ms")

        samples: list[tuple[int, float]] = []

        class Sink:
            """Counts what is written; keeps nothing."""

            def __init__(self):
                self.chars = 0

            def write(self, text: str) -> int:
                self.chars += len(text)
                return len(text)

        def sampled(records):
            for i, record in enumerate(records, 1):
                if i % 100_000 == 0 or i == 1:
                    samples.append((i, rss_mib()))
                yield record

        before = rss_mib()
        t = time.perf_counter()
        sink = Sink()
        count = exports.write_journal_csv(sampled(exports.iter_journal(book)), sink)
        elapsed = time.perf_counter() - t
        samples.append((count, rss_mib()))
        print(f"\njournal export (CSV, whole book): {count:,} entries, {2 * count:,} postings, "
              f"{sink.chars / 2 ** 20:,.0f} MiB in {elapsed:.1f} s")
        print(f"  {count / elapsed:,.0f} entries/s, {2 * count / elapsed:,.0f} posting rows/s")
        rss = [r for _, r in samples]
        print(f"  resident memory: {before:.0f} MiB before; during export "
              f"min {min(rss):.0f} / max {max(rss):.0f} MiB over {len(samples)} samples "
              f"(at 1: {samples[0][1]:.0f} MiB, at {samples[-1][0]:,}: {samples[-1][1]:.0f} MiB)")
        book.dispose()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
