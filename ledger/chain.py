"""Content hashes of entries and the per-book hash chain.

Every entry stores, when written, the SHA-256 of its canonical content (its
header fields and its postings). Sealing then links entries into the book's
chain: link *n* stores ``sha256(prev_hash + content_hash)``. Writers never
wait for the chain: they queue the entry id in ``seal_queue`` inside their
own transaction, and :func:`seal` (batched, in a transaction of its own,
one sealer per book at a time) appends the links and raises the book's
``chain_day`` row of each date sealed (what as-of reports read). The chain's
order is the sealing order; it never assumes entry ids are gapless or commit
in order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Iterable, Sequence

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection

from . import models as m
from .db import sql_literal

GENESIS = "0" * 64
SEAL_BATCH = 5000
_LINK_COLUMNS = ("book_id", "seq", "entry_id", "prev_hash", "chain_hash", "sealed_at")


#: Built once: ``json.dumps`` with these arguments builds an encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: How :func:`canonical_json` writes a string: the standard library's own function (its C
#: version when there is one), as ``reconcile.runs`` uses it for fingerprints.
json_string = json.encoder.encode_basestring


def canonical_json(value) -> str:
    """Compact, key-sorted JSON; the one serialisation used for hashing."""
    return _CANONICAL.encode(value)


def content_hash(header: dict, postings: Iterable[Sequence]) -> str:
    """SHA-256 of an entry's header fields and postings.

    ``header`` holds the journal_entry columns (dates as ``date``/``datetime``);
    ``postings`` are ``(position, account_id, amount_minor, currency, is_pending)``.
    """
    return ContentHasher().hash(
        header, sorted((int(p[0]), int(p[1]), int(p[2]), p[3], bool(p[4])) for p in postings))


def _content_doc(header: dict, rows: list[tuple]) -> dict:
    """The document an entry's content hash is taken of (``rows`` as :meth:`ContentHasher.hash`
    takes them)."""
    return {
        "id": int(header["id"]),
        "book_id": int(header["book_id"]),
        "key": header["idempotency_key"],
        "request_hash": header["request_hash"],
        "kind": header["kind"],
        "phase": header["phase"],
        "effective_date": header["effective_date"].isoformat(),
        "external_ref": header["external_ref"],
        "memo": header["memo"],
        "metadata": header["metadata_json"],
        "pending_id": header["pending_id"],
        "reverses_id": header["reverses_id"],
        "posting_count": int(header["posting_count"]),
        "created_at": header["created_at"].isoformat(timespec="microseconds"),
        "postings": [list(r) for r in rows],
    }


class ContentHasher:
    """:func:`content_hash` for many entries: the JSON text of each date and time it
    meets is written once (a batch shares one ``created_at`` and mostly one date).

    :meth:`hash` writes the document out for the usual value types, keys in sorted
    order, exactly as :func:`canonical_json` would; any other value type goes through
    :func:`canonical_json` itself.
    """

    __slots__ = ("_dates", "_times")

    def __init__(self) -> None:
        self._dates: dict = {}
        self._times: dict = {}

    def hash(self, header: dict, rows: Sequence[tuple]) -> str:
        """The content hash of ``header`` with ``rows``: ``(position, account_id,
        amount_minor, currency, is_pending)`` of exact ints, a string and a bool, sorted."""
        key, request_hash, kind, phase = (header["idempotency_key"], header["request_hash"],
                                          header["kind"], header["phase"])
        external_ref, memo, metadata = (header["external_ref"], header["memo"],
                                        header["metadata_json"])
        pending_id, reverses_id = header["pending_id"], header["reverses_id"]
        if (type(key) is str and type(request_hash) is str and type(kind) is str
                and type(phase) is str and (external_ref is None or type(external_ref) is str)
                and (memo is None or type(memo) is str)
                and (metadata is None or type(metadata) is str)
                and (pending_id is None or type(pending_id) is int)
                and (reverses_id is None or type(reverses_id) is int)):
            day, created = header["effective_date"], header["created_at"]
            day_text = self._dates.get(day)
            if day_text is None:
                day_text = self._dates[day] = json_string(day.isoformat())
            created_text = self._times.get(created)
            if created_text is None:
                created_text = self._times[created] = json_string(
                    created.isoformat(timespec="microseconds"))
            try:
                postings = ",".join([
                    f"[{r[0]},{r[1]},{r[2]},{json_string(r[3])},{'true' if r[4] else 'false'}]"
                    for r in rows])
            except TypeError:   # a currency that is not a string
                postings = None
            if postings is not None:
                text = (
                    f'{{"book_id":{int(header["book_id"])},"created_at":{created_text},'
                    f'"effective_date":{day_text},"external_ref":'
                    f'{"null" if external_ref is None else json_string(external_ref)},'
                    f'"id":{int(header["id"])},"key":{json_string(key)},'
                    f'"kind":{json_string(kind)},'
                    f'"memo":{"null" if memo is None else json_string(memo)},'
                    f'"metadata":{"null" if metadata is None else json_string(metadata)},'
                    f'"pending_id":{"null" if pending_id is None else int.__repr__(pending_id)},'
                    f'"phase":{json_string(phase)},'
                    f'"posting_count":{int(header["posting_count"])},"postings":[{postings}],'
                    f'"request_hash":{json_string(request_hash)},"reverses_id":'
                    f'{"null" if reverses_id is None else int.__repr__(reverses_id)}}}')
                return hashlib.sha256(text.encode()).hexdigest()
        return hashlib.sha256(canonical_json(_content_doc(header, rows)).encode()).hexdigest()


def link_hash(prev_hash: str, entry_content_hash: str) -> str:
    """The chain hash of a link."""
    return hashlib.sha256(f"{prev_hash}:{entry_content_hash}".encode()).hexdigest()


def _lock_book_chain(conn: Connection, book_id: int, wait: bool) -> bool:
    """Take the book's sealing lock for this transaction (PostgreSQL); SQLite is serial."""
    if conn.dialect.name != "postgresql":
        return True
    key = 0x4C454447 * 1_000_003 + book_id  # one lock per book
    if wait:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def chain_head(conn: Connection, book_id: int) -> tuple[int, str]:
    """(last seq, last chain hash) of the book; (0, GENESIS) when empty."""
    row = conn.execute(
        select(m.ChainLink.seq, m.ChainLink.chain_hash)
        .where(m.ChainLink.book_id == book_id)
        .order_by(m.ChainLink.seq.desc())
        .limit(1)
    ).first()
    return (row.seq, row.chain_hash) if row else (0, GENESIS)


def seal(conn: Connection, book_id: int, *, wait: bool = True, limit: int | None = None) -> int:
    """Link queued entries into the chain; returns how many were sealed.

    With ``wait=False`` it returns 0 at once when another sealer holds the book.
    """
    if not _lock_book_chain(conn, book_id, wait):
        return 0
    seq, prev = chain_head(conn, book_id)
    sealed = 0
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    written_out = conn.dialect.driver == "psycopg2"
    while limit is None or sealed < limit:
        batch = SEAL_BATCH if limit is None else min(SEAL_BATCH, limit - sealed)
        rows = conn.execute(
            select(m.JournalEntry.id, m.JournalEntry.content_hash, m.JournalEntry.effective_date)
            .join(m.SealQueue, m.SealQueue.entry_id == m.JournalEntry.id)
            .where(m.SealQueue.book_id == book_id)
            .order_by(m.JournalEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        if written_out:
            seq, prev = _seal_pg(conn, book_id, rows, seq, prev, now)
        else:
            links = []
            days: dict[dt.date, int] = {}
            for row in rows:
                seq += 1
                chained = link_hash(prev, row.content_hash)
                links.append({"book_id": book_id, "seq": seq, "entry_id": row.id,
                              "prev_hash": prev, "chain_hash": chained, "sealed_at": now})
                prev = chained
                days[row.effective_date] = seq
            conn.execute(insert(m.ChainLink), links)
            mark_days(conn, book_id, days)
            conn.execute(delete(m.SealQueue).where(m.SealQueue.entry_id.in_([r.id for r in rows])))
        sealed += len(rows)
        if len(rows) < batch:
            break
    return sealed


def _seal_pg(conn: Connection, book_id: int, rows: Sequence, seq: int, prev: str,
             now: dt.datetime) -> tuple[int, str]:
    """Link ``rows`` (id, content hash, effective date; in id order) after ``(seq, prev)`` in
    one statement (psycopg2): their chain links, the ``chain_day`` upsert of their dates
    and their removal from the seal queue. Returns the new head.

    Ints, dates and the chain hashes made here are written as literals; the head's hash,
    read from the database, as a literal only when :func:`~ledger.db.sql_literal` can
    write it (else the driver quotes it). What each link hashes is the content hash as stored.
    """
    params: list = []
    head = sql_literal(prev)
    if head is None:
        params.append(prev)
        head = "%s"
    sealed_at = sql_literal(now)
    links = []
    days: dict[dt.date, int] = {}
    for entry_id, stored_hash, day in rows:
        seq += 1
        chained = link_hash(prev, stored_hash)
        links.append(f"({book_id}, {seq}, {int(entry_id)}, {head}, '{chained}', {sealed_at})")
        prev, head = chained, f"'{chained}'"
        days[day] = seq
    marks = ", ".join(f"({book_id}, {_date_literal(day)}, {last})" for day, last in days.items())
    conn.exec_driver_sql(
        "WITH queued AS (DELETE FROM seal_queue WHERE entry_id IN ("
        + ", ".join([str(int(r[0])) for r in rows]) + ")), "
        "marked AS (INSERT INTO chain_day (book_id, effective_date, last_seq) VALUES "
        + marks + " ON CONFLICT (book_id, effective_date) DO UPDATE SET last_seq = "
        f"excluded.last_seq) INSERT INTO chain_link ({', '.join(_LINK_COLUMNS)}) VALUES "
        + ", ".join(links), tuple(params))
    return seq, prev


def _date_literal(day) -> str:
    text_ = sql_literal(day)
    if text_ is None:   # a date column reads back as a date; anything else is refused
        raise TypeError(f"effective date {day!r} is not a date")
    return text_


def mark_days(conn: Connection, book_id: int, days: dict[dt.date, int]) -> None:
    """Raise ``chain_day.last_seq`` of each date to the link just sealed (an upsert)."""
    if not days:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    stmt = upsert(m.ChainDay).values(
        [{"book_id": book_id, "effective_date": d, "last_seq": s} for d, s in days.items()])
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["book_id", "effective_date"], set_={"last_seq": stmt.excluded.last_seq}))


def unsealed_count(conn: Connection, book_id: int) -> int:
    """Entries written but not yet linked into the chain."""
    from sqlalchemy import func

    return conn.execute(
        select(func.count()).select_from(m.SealQueue).where(m.SealQueue.book_id == book_id)
    ).scalar_one()
