"""The posting engine: the one path every write goes through.

:func:`write` takes a batch of :class:`Draft` entries and, inside the
caller's transaction:

1. validates each draft (key, kind, amounts, metadata; floats refused);
2. answers replays: a key seen before with the same content returns the
   first entry, with different content raises
   :class:`~ledger.errors.IdempotencyConflictError`;
3. resolves accounts (closed, currency, precision), checks that postings sum
   to zero per currency (memo postings among themselves), refuses dates in a
   closed period;
4. moves no-overdraft balances with one atomic conditional ``UPDATE`` per
   account and batch, whose condition is the lowest running balance the
   batch reaches: the batch behaves as if posted entry by entry, and no row
   of a hot account is ever locked;
5. writes postings, then headers (the database checks them), then queues the
   entries for the hash chain.

Nothing commits here: the caller owns the transaction, so a refused batch
writes nothing. :class:`~ledger.book.Book` wraps this in retried
transactions.

:class:`FastPoster` writes a single new entry on PostgreSQL in one round
trip (statements and commit), with the same rows, hashes and database
checks; whatever it cannot write, or the database refuses, is then written
(or refused with its typed error) by :func:`write`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

from sqlalchemy import bindparam, event, func, insert, select, text
from sqlalchemy.engine import Connection

from . import models as m
from .accounts import _ACCOUNT_COLUMNS, Account, _row_to_account, check_postable, get_accounts, utcnow
from .chain import ContentHasher, canonical_json, json_string
from .db import sql_literal
from .errors import (
    AlreadyReversedError,
    AmountError,
    ClosedPeriodError,
    CurrencyMismatchError,
    EntryNotFoundError,
    FloatAmountError,
    IdempotencyConflictError,
    InsufficientFundsError,
    LedgerError,
    PendingStateError,
    PostingError,
    UnbalancedEntryError,
    ZeroAmountError,
)
from .money import (
    EXACT, MAX_AMOUNT_MINOR, MAX_DIGITS, check_posting_minor, exponent, from_minor,
    posting_minor, to_decimal_exact, to_minor,
)

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry to write.

    Attributes:
        legs: ``(account code, amount)`` pairs, debit positive; amounts are
            Decimal/int/str in major units, or ints in minor units when
            ``minor`` is true.
        key: idempotency key (required).
        kind: business kind of the entry.
        effective_date: business date; today when None.
        phase: posted, pending, commit or void.
        external_ref, memo, metadata: descriptive fields.
        pending_id: for commit/void, the pending entry completed.
        reverses_id: for reversals, the entry reversed.
        minor: amounts in ``legs`` are already integer minor units.
        releases: holds released by a commit/void: ``(account_id, held_minor)``.
        record: the ledger's own record of an event, without postings (a period's
            close, :data:`CLOSE_KIND`); never set from the posting API.
    """

    legs: tuple
    key: str
    kind: str = "transfer"
    effective_date: dt.date | None = None
    phase: str = "posted"
    external_ref: str | None = None
    memo: str | None = None
    metadata: Mapping[str, Any] | None = None
    pending_id: int | None = None
    reverses_id: int | None = None
    minor: bool = False
    releases: tuple = ()
    record: bool = False


#: The kind of the entry that records a period's close in the hash chain (no postings;
#: written by :func:`ledger.periods.close_period` only).
CLOSE_KIND = "period_close"


@dataclass(frozen=True, slots=True)
class PostingView:
    """One posting of a written entry.

    Attributes:
        account: account code.
        amount: signed Decimal, debit positive.
        amount_minor: the same in minor units.
        currency: ISO code.
    """

    account: str
    amount: Decimal
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal entry as written.

    Attributes:
        id: entry id.
        key: idempotency key.
        kind: business kind.
        phase: posted, pending, commit or void.
        effective_date: business date.
        external_ref, memo: descriptive fields.
        metadata: the caller's metadata (a dict).
        pending_id: the pending entry a commit/void completes.
        reverses_id: the entry a reversal reverses.
        created_at: UTC time written.
        content_hash: SHA-256 of the entry's content.
        postings: the postings, in order.
        replayed: True when this call returned an entry written earlier.
    """

    id: int
    key: str
    kind: str
    phase: str
    effective_date: dt.date
    external_ref: str | None
    memo: str | None
    metadata: dict
    pending_id: int | None
    reverses_id: int | None
    created_at: dt.datetime
    content_hash: str
    postings: tuple[PostingView, ...]
    replayed: bool = field(default=False, compare=False)


# --- validation --------------------------------------------------------------
def _check_text(value, what: str, max_len: int | None = None, required: bool = False):
    if value is None:
        if required:
            raise PostingError(f"{what} is required", field=what)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise PostingError(f"{what} must be a non-empty string, got {value!r}", field=what)
    if max_len and len(value) > max_len:
        raise PostingError(f"{what} is longer than {max_len} characters", field=what)
    _encodable(value, what)
    return value


def _encodable(value: str, what: str) -> None:
    """Text is stored and hashed as UTF-8: a lone surrogate (half of a pair, as a bad
    decoder leaves it) is refused by name, not by the encoder's traceback."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PostingError(f"{what} is not valid text: character {exc.start} is a lone "
                               f"surrogate {value[exc.start]!r}", field=what) from None


def _plain(value, path: str):
    """Metadata as JSON-safe values; floats refused so hashes stay exact."""
    if isinstance(value, float):
        raise FloatAmountError(f"metadata {path}: float {value!r} refused; use a string or Decimal",
                               value=value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Mapping):
        plain = {}
        for k, v in value.items():
            _encodable(str(k), f"metadata key {k!r}")
            plain[str(k)] = _plain(v, f"{path}.{k}")
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        _encodable(value, f"metadata {path}")
        return value
    if value is None or isinstance(value, (int, bool)):
        return value
    raise PostingError(f"metadata {path}: {type(value).__name__} is not JSON data", field="metadata")


def _amount_text(amount, minor: bool) -> str:
    """An amount as the request hash sees it: exact, never rounded. A leading digit more
    than :data:`~ledger.money.MAX_DIGITS` places from the point (never an amount the
    ledger takes) is written in exponent form, not as a billion digits."""
    if minor:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise AmountError(f"minor-unit amount must be an int, got {amount!r}", value=amount)
        return f"m{amount}"
    value = to_decimal_exact(amount)
    if not value:
        return "0"
    if -MAX_DIGITS < value.adjusted() < MAX_DIGITS:
        return format(value.normalize(EXACT), "f")
    return str(value.normalize(EXACT))


@dataclass(slots=True)
class _Prepared:
    draft: Draft
    request_hash: str
    metadata_json: str | None
    effective_date: dt.date
    amounts: list  # normalized amount text per leg, for the request hash


#: Keys of the ledger's own records (:attr:`Draft.record`): no other entry takes one.
RECORD_KEY_PREFIX = "period-close:"


#: Phases only :func:`commit_draft` and :func:`void_draft` make.
_COMPLETIONS = ("commit", "void")


def _prepare(draft: Draft, today: dt.date, records: bool = False,
             completions: bool = False) -> _Prepared:
    # Each check runs the generic validator (which raises the error) only when the quick
    # test of the usual case fails, so errors and their order are the validators'.
    key, kind, external_ref, memo = draft.key, draft.kind, draft.external_ref, draft.memo
    if not (type(key) is str and len(key) <= MAX_KEY_LENGTH and key.strip()):
        _check_text(key, "key", MAX_KEY_LENGTH, required=True)
    if not (type(kind) is str and len(kind) <= 64 and kind.strip()):
        _check_text(kind, "kind", 64, required=True)
    if not (external_ref is None or (type(external_ref) is str and len(external_ref) <= 200)):
        _check_text(external_ref, "external_ref", 200)
    if not (memo is None or type(memo) is str):
        _check_text(memo, "memo")
    if draft.phase not in m.PHASES:
        raise PostingError(f"unknown phase {draft.phase!r}", field="phase")
    if not completions and (draft.phase in _COMPLETIONS or draft.pending_id is not None
                            or draft.reverses_id is not None or draft.releases):
        # Built elsewhere, such a draft skips the checks of its builder: a "void" of a posted
        # entry, a commit of more than was pending that leaves the holds in place, a
        # "reversal" that is not the opposite of its entry (and takes its one reversal).
        raise PostingError(
            f"entry {draft.key!r}: a pending entry is completed by commit_pending or "
            "void_pending, an entry undone by reverse; a draft that completes or reverses "
            "another is not posted directly", key=draft.key, field="phase")
    if draft.effective_date is not None and (
        not isinstance(draft.effective_date, dt.date) or isinstance(draft.effective_date, dt.datetime)
    ):
        raise PostingError(
            f"effective_date must be a date, got {draft.effective_date!r}", field="effective_date")
    legs = draft.legs
    if not isinstance(legs, (list, tuple)):
        raise PostingError("postings must be a list of (account, amount) pairs", field="postings")
    amounts = []
    minor = draft.minor
    for i, leg in enumerate(legs):
        if not isinstance(leg, (list, tuple)) or len(leg) not in (2, 3):
            raise PostingError(f"posting {i}: expected (account, amount[, currency]), got {leg!r}",
                               field="postings")
        if not isinstance(leg[0], str):
            raise PostingError(f"posting {i}: account code must be a string", field="postings")
        amount = leg[1]
        if (not minor and type(amount) is Decimal and amount.is_finite() and amount
                and -MAX_DIGITS < amount.adjusted() < MAX_DIGITS):
            amounts.append(format(amount.normalize(EXACT), "f"))
            continue
        if minor and type(amount) is int:
            amounts.append(f"m{amount}")
            continue
        try:
            amounts.append(_amount_text(amount, minor))
        except AmountError as exc:
            raise type(exc)(f"posting {i} ({leg[0]}): {exc}", **exc.fields) from None
    if draft.record and not records:
        raise PostingError("a record of the ledger's own (a period's close) is written by the "
                           "ledger alone (ledger period close)", key=draft.key)
    if draft.kind == CLOSE_KIND and not draft.record:
        raise PostingError(f"kind {CLOSE_KIND!r} is the ledger's own record of a period's close "
                           "(ledger period close); post under another kind", field="kind")
    if (type(draft.key) is str and draft.key.startswith(RECORD_KEY_PREFIX)) != draft.record:
        raise PostingError(f"keys beginning {RECORD_KEY_PREFIX!r} are the ledger's own records' "
                           f"(got {draft.key!r}); use another key", field="key", key=draft.key)
    if draft.record:
        if legs or draft.kind != CLOSE_KIND or draft.phase != "posted":
            raise PostingError("a record of the ledger's own has no postings", key=draft.key)
    elif draft.phase != "void" and len(legs) < 2:
        raise UnbalancedEntryError("an entry needs at least two postings", key=draft.key)
    if draft.metadata and not isinstance(draft.metadata, Mapping):
        raise PostingError(f"metadata must be a mapping (a dict), got {type(draft.metadata).__name__}",
                           field="metadata", key=draft.key)
    metadata = _plain(dict(draft.metadata), "") if draft.metadata else None
    metadata_json = canonical_json(metadata) if metadata else None
    effective = draft.effective_date or today
    text = _request_text(draft, amounts, metadata_json)
    if text is None:
        text = canonical_json(_request_doc(draft, amounts, metadata_json))
    try:
        encoded = text.encode()
    except UnicodeEncodeError:
        for what, value in (("key", draft.key), ("kind", draft.kind), ("memo", draft.memo),
                            ("external_ref", draft.external_ref),
                            *((f"posting {i} account", leg[0]) for i, leg in enumerate(legs))):
            if type(value) is str:
                _encodable(value, what)
        raise
    return _Prepared(draft, hashlib.sha256(encoded).hexdigest(), metadata_json, effective, amounts)


def _request_doc(draft: Draft, amounts: list[str], metadata_json: str | None) -> dict:
    """What the request hash is taken of: the draft as the caller gave it, amounts normalized."""
    return {
        "legs": [[leg[0], a, *leg[2:]] for leg, a in zip(draft.legs, amounts)],
        "kind": draft.kind, "phase": draft.phase,
        "effective_date": draft.effective_date.isoformat() if draft.effective_date else None,
        "external_ref": draft.external_ref, "memo": draft.memo, "metadata": metadata_json,
        "pending_id": draft.pending_id, "reverses_id": draft.reverses_id,
    }


def _request_text(draft: Draft, amounts: list[str], metadata_json: str | None) -> str | None:
    """``canonical_json(_request_doc(...))`` written out (keys in sorted order) for the usual
    value types of a validated draft; None for any other, which the generic encoder writes."""
    pending_id, reverses_id = draft.pending_id, draft.reverses_id
    if not ((pending_id is None or type(pending_id) is int)
            and (reverses_id is None or type(reverses_id) is int)):
        return None
    legs = []
    for leg, amount in zip(draft.legs, amounts):
        if len(leg) == 2:
            legs.append(f"[{json_string(leg[0])},{json_string(amount)}]")
        elif type(leg[2]) is str:
            legs.append(f"[{json_string(leg[0])},{json_string(amount)},{json_string(leg[2])}]")
        else:
            return None
    day, external_ref, memo = draft.effective_date, draft.external_ref, draft.memo
    return (
        f'{{"effective_date":{"null" if day is None else json_string(day.isoformat())},'
        f'"external_ref":{"null" if external_ref is None else json_string(external_ref)},'
        f'"kind":{json_string(draft.kind)},"legs":[{",".join(legs)}],'
        f'"memo":{"null" if memo is None else json_string(memo)},'
        f'"metadata":{"null" if metadata_json is None else json_string(metadata_json)},'
        f'"pending_id":{"null" if pending_id is None else int.__repr__(pending_id)},'
        f'"phase":{json_string(draft.phase)},'
        f'"reverses_id":{"null" if reverses_id is None else int.__repr__(reverses_id)}}}')


# --- reading entries back ----------------------------------------------------
_ENTRY_COLUMNS = (
    m.JournalEntry.id, m.JournalEntry.idempotency_key, m.JournalEntry.request_hash,
    m.JournalEntry.kind, m.JournalEntry.phase, m.JournalEntry.effective_date,
    m.JournalEntry.external_ref, m.JournalEntry.memo, m.JournalEntry.metadata_json,
    m.JournalEntry.pending_id, m.JournalEntry.reverses_id, m.JournalEntry.created_at,
    m.JournalEntry.content_hash,
)


#: The idempotency look-up of every write, built once (building it cost more than running it).
_BY_KEYS = select(*_ENTRY_COLUMNS).where(
    m.JournalEntry.book_id == bindparam("book_id"),
    m.JournalEntry.idempotency_key.in_(bindparam("keys", expanding=True)))

_BY_KEYS_PG = ("SELECT id, idempotency_key, request_hash, kind, phase, effective_date, "
               "external_ref, memo, metadata_json, pending_id, reverses_id, created_at, "
               "content_hash FROM journal_entry WHERE book_id = %s AND idempotency_key = ANY(%s)")


def load_entries(conn: Connection, book_id: int, *, ids: Sequence[int] | None = None,
                 keys: Sequence[str] | None = None) -> list[tuple[str, Entry]]:
    """Entries by id or by key, with postings: ``[(request_hash, Entry)]``."""
    if ids is None and keys is not None:
        if conn.dialect.driver == "psycopg2":   # the keys as one array parameter
            headers = conn.exec_driver_sql(_BY_KEYS_PG, (book_id, list(keys))).all()
        else:
            headers = conn.execute(_BY_KEYS, {"book_id": book_id, "keys": list(keys)}).all()
    else:
        query = select(*_ENTRY_COLUMNS).where(m.JournalEntry.book_id == book_id)
        if ids is not None:
            query = query.where(m.JournalEntry.id.in_(list(ids)))
        if keys is not None:
            query = query.where(m.JournalEntry.idempotency_key.in_(list(keys)))
        headers = conn.execute(query).all()
    if not headers:
        return []
    postings: dict[int, list[PostingView]] = {}
    rows = conn.execute(
        select(m.Posting.entry_id, m.Account.code, m.Posting.amount_minor, m.Posting.currency)
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .where(m.Posting.entry_id.in_([h.id for h in headers]))
        .order_by(m.Posting.entry_id, m.Posting.position)
    )
    for r in rows:
        postings.setdefault(r.entry_id, []).append(
            PostingView(r.code, from_minor(r.amount_minor, r.currency), r.amount_minor, r.currency))
    out = []
    for h in headers:
        out.append((h.request_hash, Entry(
            id=h.id, key=h.idempotency_key, kind=h.kind, phase=h.phase,
            effective_date=h.effective_date, external_ref=h.external_ref, memo=h.memo,
            metadata=_loads(h.metadata_json), pending_id=h.pending_id,
            reverses_id=h.reverses_id, created_at=h.created_at, content_hash=h.content_hash,
            postings=tuple(postings.get(h.id, ())),
        )))
    return out


def _loads(text_: str | None) -> dict:
    return json.loads(text_) if text_ else {}


# --- ids ---------------------------------------------------------------------
def allocate_entry_ids(conn: Connection, count: int) -> list[int]:
    """Reserve ``count`` entry ids (a sequence on PostgreSQL; max+1 under SQLite's write lock)."""
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        return list(conn.execute(
            text("SELECT nextval('journal_entry_id_seq') FROM generate_series(1, :n)"), {"n": count}
        ).scalars())
    start = conn.execute(select(func.coalesce(func.max(m.JournalEntry.id), 0))).scalar_one()
    return list(range(start + 1, start + 1 + count))


# --- the write path ----------------------------------------------------------
def closed_through(conn: Connection, book_id: int) -> dt.date | None:
    """Last date of the book's closed periods, or None."""
    return conn.execute(
        select(func.max(m.ClosedPeriod.closed_through)).where(m.ClosedPeriod.book_id == book_id)
    ).scalar()


_RESOLVE: dict[str, Any] = {}
_RESOLVE_CHUNK = 500


def _resolve_statement(dialect: str):
    """Accounts by code, the book's closed-through date and new entry ids, in one round trip.

    The two extra columns are uncorrelated scalar subqueries: evaluated once
    per execution, whatever the number of account rows.
    """
    if dialect not in _RESOLVE:
        through = (select(func.max(m.ClosedPeriod.closed_through))
                   .where(m.ClosedPeriod.book_id == bindparam("book_id")).scalar_subquery())
        if dialect == "postgresql":
            new_ids = select(func.array_agg(func.nextval("journal_entry_id_seq"))).select_from(
                func.generate_series(1, bindparam("count"))).scalar_subquery()
        else:   # max + 1, under SQLite's write lock (taken at BEGIN IMMEDIATE)
            new_ids = select(func.coalesce(func.max(m.JournalEntry.id), 0)).scalar_subquery()
        replays = (select(func.count()).select_from(m.JournalEntry).where(
            m.JournalEntry.book_id == bindparam("book_id"),
            m.JournalEntry.idempotency_key.in_(bindparam("keys", expanding=True)))
            .scalar_subquery())
        _RESOLVE[dialect] = select(*_ACCOUNT_COLUMNS, through.label("closed_through"),
                                   new_ids.label("new_ids"), replays.label("replays")).where(
            m.Account.book_id == bindparam("book_id"),
            m.Account.code.in_(bindparam("codes", expanding=True)))
    return _RESOLVE[dialect]


@dataclass(slots=True)
class _Resolved:
    """What a batch needs from the database before it writes."""

    accounts: dict[str, Account]
    closed_through: dt.date | None
    ids: list[int]
    replays: int | None   # entries already written under the batch's keys; None: not counted


def _resolve(conn: Connection, book_id: int, codes: set[str], keys: list[str]) -> _Resolved:
    """Accounts, closed-through date, one new entry id per key and how many keys were used."""
    wanted = sorted(codes)
    head, rest = wanted[:_RESOLVE_CHUNK], wanted[_RESOLVE_CHUNK:]
    if not head or len(keys) > _RESOLVE_CHUNK:
        rows = []
    else:
        rows = conn.execute(_resolve_statement(conn.dialect.name), {
            "book_id": book_id, "codes": head, "count": len(keys), "keys": keys}).all()
    if len(rows) < len(head) or not rows:
        # Some code is unknown (get_accounts names them all), or a void (no accounts), or
        # a large batch (keys looked up in chunks): one query each.
        accounts = get_accounts(conn, book_id, wanted)
        return _Resolved(accounts, closed_through(conn, book_id),
                         allocate_entry_ids(conn, len(keys)), None)
    accounts = {row.code: _row_to_account(row) for row in rows}
    if rest:
        accounts.update(get_accounts(conn, book_id, rest))
    first = rows[0]
    if conn.dialect.name == "postgresql":
        ids = sorted(first.new_ids)
    else:
        ids = list(range(first.new_ids + 1, first.new_ids + 1 + len(keys)))
    return _Resolved(accounts, first.closed_through, ids, first.replays)


@dataclass(slots=True)
class _BalanceMove:
    """The effect of a batch on one no-overdraft account."""

    account: Account
    posted: int = 0
    held: int = 0
    running: int = 0   # change of available balance so far
    lowest: int = 0    # lowest running change (<= 0)
    first_entry: str | None = None


def write(conn: Connection, book_id: int, drafts: Sequence[Draft], *,
          today: dt.date | None = None,
          account_cache: dict[str, Account] | None = None, records: bool = False,
          completions: bool = False) -> list[Entry]:
    """Write ``drafts`` as one all-or-nothing batch; returns one Entry per draft.

    ``account_cache`` (a :class:`FastPoster`'s) learns the open accounts the batch resolved.
    ``records``: drafts may be the ledger's own records (:attr:`Draft.record`); only
    :func:`ledger.periods.close_period` asks for it. ``completions``: drafts may commit,
    void or reverse another entry, as built by :func:`commit_draft`, :func:`void_draft`
    and :func:`reversal_draft` after their checks (:meth:`ledger.book.Book._complete`).
    """
    today = today or dt.date.today()
    prepared = [_prepare(d, today, records, completions) for d in drafts]

    # Idempotency: inside the batch, then against the database.
    first_by_key: dict[str, int] = {}
    for i, p in enumerate(prepared):
        j = first_by_key.setdefault(p.draft.key, i)
        if j != i and prepared[j].request_hash != p.request_hash:
            raise IdempotencyConflictError(
                f"key {p.draft.key!r} appears twice in the batch with different content",
                key=p.draft.key)
    existing = {}
    keys = list(first_by_key)
    # One round trip: accounts, closed-through date, ids, and whether any key was used before.
    resolved = _resolve(conn, book_id, {leg[0] for p in prepared for leg in p.draft.legs}, keys)
    if account_cache is not None:
        for code, acct in resolved.accounts.items():
            if acct.is_closed:
                account_cache.pop(code, None)
            else:
                account_cache[code] = acct
    chunk = max(len(keys), 1) if conn.dialect.driver == "psycopg2" else 500   # one array param
    for start in range(0, len(keys) if resolved.replays != 0 else 0, chunk):
        for request_hash, entry in load_entries(conn, book_id, keys=keys[start:start + chunk]):
            existing[entry.key] = (request_hash, entry)
    for key, (request_hash, entry) in existing.items():
        if prepared[first_by_key[key]].request_hash != request_hash:
            raise IdempotencyConflictError(
                f"key {key!r} was used for entry {entry.id} with different content",
                key=key, entry_id=entry.id)
    new = [p for i, p in enumerate(prepared)
           if first_by_key[p.draft.key] == i and p.draft.key not in existing]

    written: dict[str, Entry] = {}
    if new:
        written = _write_new(conn, book_id, new, resolved)
    results = []
    for p in prepared:
        if p.draft.key in written:
            results.append(written[p.draft.key])
        else:
            entry = existing[p.draft.key][1]
            results.append(dataclasses.replace(entry, replayed=True))
    return results


_SCALES: dict[str, tuple[int, Decimal, int]] = {}


def _scale(currency: str) -> tuple[int, Decimal, int]:
    """(10 ** exponent, the minor unit as a Decimal, -exponent) of a currency."""
    found = _SCALES.get(currency)
    if found is None:
        exp = exponent(currency)
        found = _SCALES[currency] = (10 ** exp, Decimal(1).scaleb(-exp), -exp)
    return found


def _build_entry(p: _Prepared, entry_id: int, book_id: int, accounts: Mapping[str, Account],
                 now: dt.datetime, moves: dict[int, _BalanceMove],
                 hasher: ContentHasher | None = None) -> tuple[list[tuple], dict, Entry]:
    """One entry's posting rows (tuples in :data:`_POSTING_COLUMNS` order), header row and
    :class:`Entry`; its balance moves into ``moves``.

    Checks currencies, amounts and the zero sum; touches no database.
    """
    d = p.draft
    key, day = d.key, p.effective_date
    is_pending = d.phase == "pending"
    rows, views, hashed, sums = [], [], [], {}
    for pos, (code, amount, *currency) in enumerate(d.legs):
        acct = accounts[code]
        cur = acct.currency
        if currency and currency[0] != cur:
            raise CurrencyMismatchError(
                f"entry {key!r}: posting {pos} is in {currency[0]} but {code} holds {cur}",
                key=key, account=code, currency=currency[0], account_currency=cur)
        scale, unit, shift = _scale(cur)
        minor = None
        if d.minor:
            if -MAX_AMOUNT_MINOR <= amount <= MAX_AMOUNT_MINOR:
                minor = amount
        elif type(amount) is Decimal and -MAX_DIGITS < amount.adjusted() < MAX_DIGITS:
            # the usual case: exact in one division (the exponent keeps the ratio small)
            num, den = amount.as_integer_ratio()
            whole, rest = divmod(num * scale, den)
            if not rest and -MAX_AMOUNT_MINOR <= whole <= MAX_AMOUNT_MINOR:
                minor = whole
        if minor is None:   # refused below, with the reason; or an amount of another type
            what = f"posting {pos} ({code})"
            try:
                minor = (check_posting_minor(amount, cur, what=what) if d.minor
                         else posting_minor(amount, cur, what=what))
            except AmountError as exc:
                raise type(exc)(f"entry {key!r}: {exc}", key=key, **exc.fields) from None
        if minor == 0:
            raise ZeroAmountError(f"entry {key!r}: posting {pos} ({code}) is zero",
                                  key=key, account=code)
        side = (cur, acct.type == "memo")
        sums[side] = sums.get(side, 0) + minor
        rows.append((entry_id, pos, acct.id, minor, cur, day, is_pending))
        hashed.append((pos, acct.id, minor if type(minor) is int else int(minor), cur, is_pending))
        # from_minor(minor, cur), its pieces looked up once per currency
        views.append(PostingView(code, Decimal(minor).scaleb(shift).quantize(unit), minor, cur))
        if acct.no_overdraft:
            _move(moves, acct, minor, is_pending, key)
    for total in sums.values():
        if total:
            _unbalanced(key, sums)
    header = {
        "id": entry_id, "book_id": book_id, "idempotency_key": key,
        "request_hash": p.request_hash, "kind": d.kind, "phase": d.phase,
        "effective_date": day, "external_ref": d.external_ref, "memo": d.memo,
        "metadata_json": p.metadata_json, "pending_id": d.pending_id,
        "reverses_id": d.reverses_id, "posting_count": len(rows), "created_at": now,
    }
    # the rows are in position order: already sorted as the content hash sorts them
    header["content_hash"] = digest = (hasher or ContentHasher()).hash(header, hashed)
    entry = Entry(
        id=entry_id, key=key, kind=d.kind, phase=d.phase, effective_date=day,
        external_ref=d.external_ref, memo=d.memo,
        metadata=json.loads(p.metadata_json) if p.metadata_json else {},
        pending_id=d.pending_id, reverses_id=d.reverses_id, created_at=now,
        content_hash=digest, postings=tuple(views))
    return rows, header, entry


def _unbalanced(key: str, sums: dict[tuple[str, bool], int]) -> None:
    """Raise :class:`UnbalancedEntryError` for the sides of an entry that do not sum to zero."""
    unbalanced = {k: v for k, v in sums.items() if v}
    detail = ", ".join(
        f"{'memo ' if memo else ''}{cur} off by {from_minor(v, cur)}"
        for (cur, memo), v in sorted(unbalanced.items()))
    raise UnbalancedEntryError(f"entry {key!r} does not balance: {detail}",
                               key=key, imbalance={f"{c}{'/memo' if mm else ''}": v
                                                   for (c, mm), v in unbalanced.items()})


def _write_new(conn: Connection, book_id: int, batch: list[_Prepared],
               resolved: _Resolved) -> dict[str, Entry]:
    accounts, through, ids = resolved.accounts, resolved.closed_through, resolved.ids
    check_postable([accounts[code] for code in {leg[0] for p in batch for leg in p.draft.legs}])
    now = utcnow()
    posting_rows: list[tuple] = []
    header_rows: list[dict] = []
    moves: dict[int, _BalanceMove] = {}
    out: dict[str, Entry] = {}
    hasher = ContentHasher()

    for entry_id, p in zip(ids, batch):
        d = p.draft
        if through is not None and p.effective_date <= through:
            if d.pending_id is not None:   # a commit or void, dated its pending entry's day by default
                raise ClosedPeriodError(
                    f"entry {d.key!r}: completing pending entry {d.pending_id} on "
                    f"{p.effective_date}, in the period closed through {through}: give the "
                    f"completion the day it happened (effective_date after {through}); the hold "
                    "stays until then", key=d.key, effective_date=p.effective_date,
                    closed_through=through, pending_id=d.pending_id)
            raise ClosedPeriodError(
                f"entry {d.key!r}: effective date {p.effective_date} is in a period closed "
                f"through {through}; post the correction into an open period",
                key=d.key, effective_date=p.effective_date, closed_through=through)
        # Holds released by a commit or void count first: the money they held is what is posted.
        for account_id, held in d.releases:
            move = moves.get(account_id)
            if move is None:
                move = moves[account_id] = _BalanceMove(_account_by_id(accounts, conn, account_id))
            move.held -= held
            move.running += held
        rows, header, out[d.key] = _build_entry(p, entry_id, book_id, accounts, now, moves,
                                                hasher)
        posting_rows.extend(rows)
        header_rows.append(header)

    _apply_moves(conn, moves)
    if (len(header_rows) > 1 or len(posting_rows) > _FEW_POSTINGS) \
            and conn.dialect.driver == "psycopg2":
        # a batch, or one entry with many legs (a repayment to fifty investors)
        _insert_batch_pg(conn, posting_rows, header_rows)
        return out
    if posting_rows:
        conn.execute(_INSERT_POSTING, [dict(zip(_POSTING_COLUMNS, r)) for r in posting_rows])
    if len(header_rows) == 1 and conn.dialect.name == "postgresql":
        # one entry: header and seal queue row in one statement (one round trip)
        conn.execute(_header_and_queue(tuple(header_rows[0])), header_rows[0])
        return out
    queued = [{"entry_id": h["id"], "book_id": book_id} for h in header_rows]
    if len(header_rows) == 1:   # one row: a plain execute is cheaper than the executemany path
        header_rows, queued = header_rows[0], queued[0]
    conn.execute(_INSERT_HEADER, header_rows)
    conn.execute(_INSERT_QUEUED, queued)
    return out


#: Up to this many postings, one entry's rows go through SQLAlchemy (statements it caches);
#: beyond, :func:`_insert_batch_pg` writes them as one statement of literals.
_FEW_POSTINGS = 4
_POSTING_COLUMNS = ("entry_id", "position", "account_id", "amount_minor", "currency",
                    "effective_date", "is_pending")
_HEADER_COLUMNS = ("id", "book_id", "idempotency_key", "request_hash", "kind", "phase",
                   "effective_date", "external_ref", "memo", "metadata_json", "pending_id",
                   "reverses_id", "posting_count", "created_at", "content_hash")


def _insert_batch_pg(conn: Connection, posting_rows: list[tuple], header_rows: list[dict]) -> None:
    """A batch's postings, then its headers and seal queue rows: two statements (psycopg2).

    ``posting_rows`` are tuples in :data:`_POSTING_COLUMNS` order, ``header_rows`` dicts
    of :data:`_HEADER_COLUMNS`. The statement text carries ints, dates, flags and strings
    of ASCII letters and digits only (hashes, phases, currencies) as literals and leaves
    every other string to the driver: quoting every value through the driver (or
    SQLAlchemy's many-values insert) cost more client time than the server spent
    inserting the rows. It still runs through the connection (events, errors raised as
    SQLAlchemy's, so retries and the translation of integrity errors apply as elsewhere).
    """
    strings: list = []
    # the text of the values a batch repeats (currencies, kinds, phases, dates, times), or
    # None for one the driver quotes
    repeated: dict = {}

    def value(v) -> str:
        """The literal of ``v``, else ``%s`` with ``v`` queued for the driver."""
        text_ = sql_literal(v)
        if text_ is None:
            strings.append(v)
            return "%s"
        return text_

    def repeated_value(v) -> str:
        """:func:`value` of a string, date or time, each written once per batch."""
        kind = type(v)
        if kind is not str and kind is not dt.date and kind is not dt.datetime:
            return value(v)
        text_ = repeated.get(v, "")
        if text_ == "":
            text_ = repeated[v] = sql_literal(v)
        if text_ is None:
            strings.append(v)
            return "%s"
        return text_

    def posting_text(row: tuple) -> str:
        # the usual row (what _build_entry makes), formatted at once; anything else generically
        entry_id, position, account_id, amount, currency, day, pending = row
        if (type(entry_id) is int and type(position) is int and type(account_id) is int
                and type(amount) is int and type(pending) is bool
                and repeated.get(currency) is not None and repeated.get(day) is not None):
            return (f"({entry_id}, {position}, {account_id}, {amount}, {repeated[currency]}, "
                    f"{repeated[day]}, {'true' if pending else 'false'})")
        return "(" + ", ".join(map(repeated_value, row)) + ")"

    def header_text(h: dict) -> str:
        (entry_id, book_id, key, request_hash, kind, phase, day, external_ref, memo, metadata,
         pending_id, reverses_id, count, created, digest) = map(h.__getitem__, _HEADER_COLUMNS)
        # in column order, so the driver's %s follow the order of the strings queued
        return (
            f"({entry_id if type(entry_id) is int else value(entry_id)}, "
            f"{book_id if type(book_id) is int else value(book_id)}, {value(key)}, "
            f"{value(request_hash)}, {repeated_value(kind)}, {repeated_value(phase)}, "
            f"{repeated_value(day)}, {'NULL' if external_ref is None else value(external_ref)}, "
            f"{'NULL' if memo is None else value(memo)}, "
            f"{'NULL' if metadata is None else value(metadata)}, "
            f"{'NULL' if pending_id is None else value(pending_id)}, "
            f"{'NULL' if reverses_id is None else value(reverses_id)}, "
            f"{count if type(count) is int else value(count)}, {repeated_value(created)}, "
            f"{value(digest)})")

    if posting_rows:
        conn.exec_driver_sql(
            f"INSERT INTO posting ({', '.join(_POSTING_COLUMNS)}) VALUES "
            + ", ".join(map(posting_text, posting_rows)), tuple(strings))
        strings.clear()
    conn.exec_driver_sql(
        f"WITH e AS (INSERT INTO journal_entry ({', '.join(_HEADER_COLUMNS)}) VALUES "
        + ", ".join(map(header_text, header_rows))
        + " RETURNING id, book_id) INSERT INTO seal_queue (entry_id, book_id) "
        "SELECT id, book_id FROM e", tuple(strings))


_INSERT_POSTING = insert(m.Posting)
_INSERT_HEADER = insert(m.JournalEntry)
_INSERT_QUEUED = insert(m.SealQueue)
_HEADER_AND_QUEUE: dict[tuple, Any] = {}


def _header_and_queue(columns: tuple[str, ...]):
    """``WITH e AS (INSERT INTO journal_entry ... RETURNING id, book_id) INSERT INTO seal_queue ...``"""
    if columns not in _HEADER_AND_QUEUE:
        entry = (insert(m.JournalEntry).values({c: bindparam(c) for c in columns})
                 .returning(m.JournalEntry.id, m.JournalEntry.book_id).cte("new_entry"))
        _HEADER_AND_QUEUE[columns] = insert(m.SealQueue).from_select(
            ["entry_id", "book_id"], select(entry.c.id, entry.c.book_id))
    return _HEADER_AND_QUEUE[columns]


# --- a single post in one round trip (PostgreSQL, psycopg2) -----------------------
#: A reserved entry id older than this is dropped for a fresh one, so ids stay near write order.
ID_FRESH_SECONDS = 1.0
#: Accounts a FastPoster remembers at most (it starts over when full).
ACCOUNT_CACHE_SIZE = 100_000
#: Accounts not yet seen that one cache miss loads besides the ones it needs.
ACCOUNT_CHUNK = 10_000
#: Prepared statements of the fast path: name -> ``PREPARE`` text. Each connection
#: prepares the ones it uses once (the pool keeps the names in the connection's info).
_FETCH_COLUMNS = "id, code, type, currency, is_no_overdraft, name, opened_at, closed_at, book_id"
_PREPARED: dict[str, str] = {
    # The accounts asked for (one look-up of the unique (book_id, code) index each), and
    # the next ones by id the cache has not seen (the primary key's order; other books'
    # accounts are skipped by the caller), whatever statistics the planner has.
    "ledger_accounts": (
        "PREPARE ledger_accounts (bigint, text[], bigint, integer) AS "
        f"SELECT a.*, 0 FROM unnest($2) AS w(code), LATERAL (SELECT {_FETCH_COLUMNS} "
        "FROM account WHERE book_id = $1 AND code = w.code LIMIT 1) a UNION ALL "
        f"(SELECT {_FETCH_COLUMNS}, 1 FROM account WHERE id > $3 ORDER BY id LIMIT $4)"),
    # ... and a new entry id (an uncorrelated subquery: one id, however many rows)
    "ledger_accounts_id": (
        "PREPARE ledger_accounts_id (bigint, text[], bigint, integer) AS "
        "SELECT f.*, (SELECT nextval('journal_entry_id_seq')) FROM ("
        f"SELECT a.*, 0 FROM unnest($2) AS w(code), LATERAL (SELECT {_FETCH_COLUMNS} "
        "FROM account WHERE book_id = $1 AND code = w.code LIMIT 1) a UNION ALL "
        f"(SELECT {_FETCH_COLUMNS}, 1 FROM account WHERE id > $3 ORDER BY id LIMIT $4)) f"),
}
_FAST_PHASES = ("posted", "pending")
_FAST_SQL: dict[tuple, tuple[tuple[str, ...], str]] = {}
_HEADER_TYPES = ("bigint, bigint, varchar, varchar, varchar, varchar, date, varchar, text, text, "
                 "integer, timestamp, varchar")


def _fast_sql(postings: int, signs: tuple[int, ...]) -> tuple[tuple[str, ...], str]:
    """(prepared statement names, the query executing them) for one post of this shape.

    Two statements: the postings, then balances + header + seal queue in one CTE. The
    postings go first, in a statement of their own, so the posting trigger (no postings
    for an existing entry) runs before the header exists. The header is inserted only when
    every no-overdraft UPDATE found enough money and none of the accounts was closed;
    otherwise the postings are left without their header and the deferred foreign key
    refuses the commit. Its row also reserves the next post's entry id.
    """
    key = (postings, signs)
    if key not in _FAST_SQL:
        rows_name = f"ledger_postings_{postings}"
        entry_name = f"ledger_entry_{postings}_" + "".join("d" if s_ == 1 else "c" for s_ in signs)
        if rows_name not in _PREPARED:
            values = ", ".join(
                "(" + ", ".join(f"${7 * i + j}" for j in range(1, 8)) + ")" for i in range(postings))
            types = ", ".join(["bigint, smallint, bigint, bigint, varchar, date, boolean"] * postings)
            _PREPARED[rows_name] = (
                f"PREPARE {rows_name} ({types}) AS INSERT INTO posting (entry_id, position, "
                f"account_id, amount_minor, currency, effective_date, is_pending) VALUES {values}")
        if entry_name not in _PREPARED:
            moves = [
                f"m{i} AS (UPDATE account_balance SET posted_minor = posted_minor + ${4 * i + 1}, "
                f"held_minor = held_minor + ${4 * i + 2} WHERE account_id = ${4 * i + 3} "
                f"AND {'' if sign == 1 else '-'}posted_minor - held_minor + ${4 * i + 4} >= 0 "
                f"RETURNING 1)"
                for i, sign in enumerate(signs)]
            n = 4 * len(signs)
            moved = "".join(f"(SELECT count(*) FROM m{i}) + " for i in range(len(signs)))
            types = ", ".join(["bigint, bigint, bigint, bigint"] * len(signs) + [_HEADER_TYPES]
                              + ["bigint"] * postings)
            # one primary-key look-up per posting's account (a filter on closed_at would
            # be planned as a scan of the whole account table)
            still_open = "".join(f" AND (SELECT closed_at FROM account WHERE id = ${n + 14 + i}) "
                                 "IS NULL" for i in range(postings))
            _PREPARED[entry_name] = (
                f"PREPARE {entry_name} ({types}) AS WITH " + "".join(f"{m_}, " for m_ in moves)
                + "e AS (INSERT INTO journal_entry (id, book_id, idempotency_key, request_hash, "
                "kind, phase, effective_date, external_ref, memo, metadata_json, posting_count, "
                "created_at, content_hash) SELECT "
                + ", ".join(f"${n + j}" for j in range(1, 14))
                + f" WHERE {moved}0 = {len(signs)}{still_open} RETURNING id, book_id), "
                "q AS (INSERT INTO seal_queue (entry_id, book_id) SELECT id, book_id FROM e) "
                "SELECT (SELECT count(*) FROM e), nextval('journal_entry_id_seq')")
        _FAST_SQL[key] = ((rows_name, entry_name), (
            f"EXECUTE {rows_name} ({', '.join(['%s'] * 7 * postings)}); "
            f"EXECUTE {entry_name} ({', '.join(['%s'] * (4 * len(signs) + 13 + postings))})"))
    return _FAST_SQL[key]


def _prepare_on(cur, info: dict, names: Sequence[str]) -> None:
    """Prepare on this connection (one round trip) the statements it has not prepared yet."""
    done = info.setdefault("ledger_prepared", set())
    todo = [name for name in names if name not in done]
    if todo:
        cur.execute("; ".join(_PREPARED[name] for name in todo))
        done.update(todo)


class FastPoster:
    """One book's single posts in one round trip on PostgreSQL (psycopg2).

    :func:`write` reads before it writes: the accounts, the closed-through
    date, a new entry id, whether the key was used. For one new entry each of
    those is known here without asking, or left to the database to refuse:

    * accounts come from a cache of the open accounts :func:`write` resolved
      (an account's id, type, currency and no-overdraft flag never change);
      that none was closed since is checked in the statement;
    * the entry id was reserved by the previous post's round trip (or is
      fetched when there is none, or it is older than :data:`ID_FRESH_SECONDS`);
    * a closed period is refused by the ``journal_entry`` trigger, a used key
      by the unique constraint, a short no-overdraft account by its
      conditional UPDATE (the header is then not inserted, and the postings'
      deferred foreign key refuses the commit); balance and posting count by
      the deferred entry trigger, as always.

    The statements go as one query in autocommit mode, which PostgreSQL runs
    as one implicit transaction, committed at its end: one round trip. Any
    refusal rolls all of it back and :meth:`post` returns None: the caller
    then runs :func:`write`, which reads what it needs and raises the typed
    error, answers the replay, or writes.
    """

    def __init__(self, engine, book_id: int):
        self.engine = engine
        self.book_id = book_id
        if not event.contains(engine, "checkout", _no_autocommit):
            event.listen(engine, "checkout", _no_autocommit)
        self.accounts: dict[str, Account] = {}
        self._next_id: tuple[int, int, float] | None = None   # (pid, id, reserved at)
        self._seen_id = 0   # accounts up to this id were loaded into the cache
        # A pooled connection kept between posts (checking one out costs as much as
        # building the entry): (pid, connection); the lock keeps it to one thread.
        self._held: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def supports(engine) -> bool:
        """True for the engines it can drive (PostgreSQL through psycopg2)."""
        return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"

    def post(self, draft: Draft, *, today: dt.date | None = None) -> Entry | None:
        """Write one new entry in one round trip; None when :func:`write` must do it."""
        engine = self.engine
        if (draft.phase not in _FAST_PHASES or draft.releases or draft.pending_id is not None
                or draft.reverses_id is not None):
            return None
        try:
            p = _prepare(draft, today or dt.date.today())
        except LedgerError:   # the full path raises it (after answering a replay)
            return None
        if not self._lock.acquire(blocking=False):   # another thread is posting: use the pool
            fairy = engine.raw_connection()
            try:
                return self._post(engine, fairy, p)
            finally:
                _give_back(fairy)
        try:
            held = self._held
            if held is None or held[0] != os.getpid() or not held[1].is_valid:
                held = self._held = (os.getpid(), engine.raw_connection())
            entry = self._post(engine, held[1], p)
            if not held[1].is_valid:   # it broke: back to the pool, which discards it
                self._held = None
                held[1].close()
            return entry
        finally:
            self._lock.release()

    def close(self) -> None:
        """Give the connection kept between posts back to the pool."""
        with self._lock:
            held, self._held = self._held, None
            if held is not None and held[0] == os.getpid():
                _give_back(held[1])

    def _post(self, engine, fairy, p: _Prepared) -> Entry | None:
        dbapi = fairy.dbapi_connection
        if not dbapi.autocommit:   # a held connection stays in autocommit mode
            dbapi.autocommit = True
        try:
            with dbapi.cursor() as cur:
                accounts, entry_id = self._accounts_and_id(cur, fairy.info,
                                                           {leg[0] for leg in p.draft.legs})
                if accounts is None:
                    return None
                moves: dict[int, _BalanceMove] = {}
                try:
                    rows, header, entry = _build_entry(p, entry_id, self.book_id, accounts,
                                                       utcnow(), moves)
                except LedgerError:
                    return None
                todo = [moves[a] for a in sorted(moves) if moves[a].posted or moves[a].held]
                params: list = []
                for r in rows:   # (entry_id, position, account_id, amount_minor, currency,
                    params += r      #  effective_date, is_pending)
                for move in todo:
                    params += (move.posted, move.held, move.account.id, move.lowest)
                params += (entry_id, self.book_id, header["idempotency_key"],
                           header["request_hash"], header["kind"], header["phase"],
                           header["effective_date"], header["external_ref"], header["memo"],
                           header["metadata_json"], header["posting_count"],
                           header["created_at"], header["content_hash"])
                params += [r[2] for r in rows]
                names, sql = _fast_sql(len(rows), tuple(m_.account.sign for m_ in todo))
                _prepare_on(cur, fairy.info, names)
                cur.execute(sql, params)
                written, next_id = cur.fetchone()
        except engine.dialect.loaded_dbapi.Error as exc:
            # Refused (or a conflict, or the connection broke): nothing was written, or,
            # if the connection broke while committing, the full path finds the entry by key.
            if dbapi.closed or engine.dialect.is_disconnect(exc, dbapi, None):
                fairy.invalidate(exc)
            return None
        if written != 1:   # the deferred foreign key makes this unreachable
            raise AssertionError(f"entry {entry_id} was committed without its header")
        self._next_id = (os.getpid(), next_id, time.monotonic())
        return entry

    def _accounts_and_id(self, cur, info: dict,
                         codes: set[str]) -> tuple[dict[str, Account] | None, int]:
        """The entry's accounts and its id: from the caches, else one read.

        The read also loads up to :data:`ACCOUNT_CHUNK` accounts the cache has not seen
        (by id), so a book's accounts are soon all known. It runs outside any
        transaction: what it reads of an account never changes (but ``closed_at``,
        which the write checks again). None for the accounts when one is unknown or
        closed.
        """
        cache = self.accounts
        missing = [c for c in codes if c not in cache]
        reserved, self._next_id = self._next_id, None
        entry_id = None
        if (reserved is not None and reserved[0] == os.getpid()
                and time.monotonic() - reserved[2] < ID_FRESH_SECONDS):
            entry_id = reserved[1]
        if missing:
            if len(cache) >= ACCOUNT_CACHE_SIZE:
                cache.clear()   # and load only accounts opened from now on
            name = "ledger_accounts_id" if entry_id is None else "ledger_accounts"
            _prepare_on(cur, info, (name,))
            cur.execute(f"EXECUTE {name} (%s, %s, %s, %s)", (
                self.book_id, missing, self._seen_id,
                ACCOUNT_CHUNK if len(cache) + ACCOUNT_CHUNK <= ACCOUNT_CACHE_SIZE else 0))
            found = cur.fetchall()
            for row in found:
                if row[7] is None and row[8] == self.book_id:   # open, this book's
                    cache[row[1]] = Account(*row[:8])
                if row[9] == 1 and row[0] > self._seen_id:
                    self._seen_id = row[0]
            if any(c not in cache for c in missing):
                return None, 0   # unknown or closed: the full path says which
            if entry_id is None:
                entry_id = found[0][10]
        elif entry_id is None:
            cur.execute("SELECT nextval('journal_entry_id_seq')")
            entry_id = cur.fetchone()[0]
        return {c: cache[c] for c in codes}, entry_id


def _no_autocommit(dbapi_conn, _record, _proxy) -> None:
    """Pool checkout: a connection the fast path kept and lost (never closed) is handed
    out in the mode everything else expects."""
    if dbapi_conn.autocommit:
        dbapi_conn.autocommit = False


def _give_back(fairy) -> None:
    """Return a fast-path connection to the pool as the pool handed it out (no autocommit)."""
    dbapi = fairy.dbapi_connection
    if dbapi is not None and not dbapi.closed and dbapi.autocommit:
        dbapi.autocommit = False
    fairy.close()


def _account_by_id(accounts: Mapping[str, Account], conn: Connection, account_id: int) -> Account:
    for acct in accounts.values():
        if acct.id == account_id:
            return acct
    from .accounts import _ACCOUNT_COLUMNS, _row_to_account

    row = conn.execute(select(*_ACCOUNT_COLUMNS).where(m.Account.id == account_id)).one()
    return _row_to_account(row)


def _move(moves: dict, acct: Account, minor: int, is_pending: bool, key: str) -> None:
    move = moves.get(acct.id)
    if move is None:
        move = moves[acct.id] = _BalanceMove(acct)
    normal = acct.sign * minor
    if is_pending:
        if normal >= 0:
            return  # incoming pending money is not available until posted
        move.held += -normal
        move.running += normal
    else:
        move.posted += minor
        move.running += normal
    if move.running < move.lowest:
        move.lowest = move.running
        move.first_entry = move.first_entry or key


_MOVE_SQL = {
    1: text(
        "UPDATE account_balance SET posted_minor = posted_minor + :posted, "
        "held_minor = held_minor + :held WHERE account_id = :account_id "
        "AND posted_minor - held_minor + :lowest >= 0"),
    -1: text(
        "UPDATE account_balance SET posted_minor = posted_minor + :posted, "
        "held_minor = held_minor + :held WHERE account_id = :account_id "
        "AND -posted_minor - held_minor + :lowest >= 0"),
}


#: Above this many accounts a PostgreSQL batch moves its balances in one statement.
_BULK_MOVES = 8
_LOCK_BALANCES = ("SELECT account_id FROM account_balance WHERE account_id = ANY({ids}) "
                  "ORDER BY account_id FOR UPDATE")
_BULK_MOVE_SQL = (
    "UPDATE account_balance AS b SET posted_minor = b.posted_minor + v.posted, "
    "held_minor = b.held_minor + v.held FROM unnest({ids}, {posted}, {held}, {lowest}, {signs}) "
    "AS v(account_id, posted, held, lowest, sign) "
    "WHERE b.account_id = v.account_id AND v.sign * b.posted_minor - b.held_minor + v.lowest >= 0 "
    "RETURNING b.account_id")


def _bigint_array(values) -> str:
    """A ``bigint[]`` literal of ints (the driver's adaptation of a list costs ~100x more)."""
    return "'{" + ",".join(map(str, map(int, values))) + "}'::bigint[]"


def _apply_moves(conn: Connection, moves: Mapping[int, _BalanceMove]) -> None:
    """One conditional UPDATE per no-overdraft account, in id order (no deadlock cycles).

    A PostgreSQL batch touching many accounts locks their rows in id order,
    then moves them all with one conditional UPDATE: two round trips, not one per account.
    """
    todo = [moves[a] for a in sorted(moves) if moves[a].posted or moves[a].held]
    if len(todo) > _BULK_MOVES and conn.dialect.name == "postgresql":
        ids = _bigint_array([move.account.id for move in todo])
        conn.exec_driver_sql(_LOCK_BALANCES.format(ids=ids))
        moved = set(conn.exec_driver_sql(_BULK_MOVE_SQL.format(
            ids=ids, posted=_bigint_array([move.posted for move in todo]),
            held=_bigint_array([move.held for move in todo]),
            lowest=_bigint_array([move.lowest for move in todo]),
            signs=_bigint_array([move.account.sign for move in todo]))).scalars())
        for move in todo:
            if move.account.id not in moved:
                _refuse(conn, move)
        return
    for move in todo:
        result = conn.execute(_MOVE_SQL[move.account.sign], {
            "posted": move.posted, "held": move.held, "account_id": move.account.id,
            "lowest": move.lowest})
        if result.rowcount != 1:
            _refuse(conn, move)


def _refuse(conn: Connection, move: _BalanceMove) -> None:
    """Raise InsufficientFundsError for an account whose conditional update found too little."""
    row = conn.execute(select(m.AccountBalance.posted_minor, m.AccountBalance.held_minor)
                       .where(m.AccountBalance.account_id == move.account.id)).one()
    available = move.account.sign * row.posted_minor - row.held_minor
    cur = move.account.currency
    raise InsufficientFundsError(
        f"insufficient funds in {move.account.code}: available {from_minor(available, cur)} "
        f"{cur}, the {'batch' if move.first_entry is None else 'entry ' + repr(move.first_entry)} "
        f"needs {from_minor(-move.lowest, cur)}",
        account=move.account.code, available_minor=available,
        required_minor=-move.lowest, key=move.first_entry)


def pending_holds(conn: Connection, entry_id: int) -> list[tuple[int, int]]:
    """Holds a pending entry placed on no-overdraft accounts: ``[(account_id, held_minor)]``."""
    rows = conn.execute(
        select(m.Posting.account_id, m.Posting.amount_minor, m.Account.type)
        .join(m.Account, m.Account.id == m.Posting.account_id)
        .where(m.Posting.entry_id == entry_id, m.Account.is_no_overdraft.is_(True))
    )
    holds = []
    for r in rows:
        normal = (1 if r.type in ("asset", "expense", "memo") else -1) * r.amount_minor
        if normal < 0:
            holds.append((r.account_id, -normal))
    return holds



# --- completing pending entries and reversing (conn-level draft builders) -------
def find_replay(conn: Connection, book_id: int, key: str) -> Entry | None:
    """The entry already written under ``key``, marked replayed, or None."""
    found = load_entries(conn, book_id, keys=[key])
    return dataclasses.replace(found[0][1], replayed=True) if found else None


def get_entry(conn: Connection, book_id: int, entry_id: int) -> Entry:
    """One entry with its postings; raises :class:`EntryNotFoundError`."""
    found = load_entries(conn, book_id, ids=[entry_id])
    if not found:
        raise EntryNotFoundError(f"no entry {entry_id} in this book", entry_id=entry_id)
    return found[0][1]


def open_pending(conn: Connection, book_id: int, entry_id: int, *,
                 replay_of: int | None = None) -> Entry:
    """A pending entry not yet committed or voided; raises :class:`PendingStateError`.

    ``replay_of`` is the entry already written under the caller's key: when it
    is the one that completed the pending entry, the call is a replay and the
    entry is returned so the draft can be rebuilt and compared.
    """
    entry = get_entry(conn, book_id, entry_id)
    if entry.phase != "pending":
        raise PendingStateError(f"entry {entry_id} is not pending (it is {entry.phase})",
                                entry_id=entry_id)
    done = conn.execute(select(m.JournalEntry.id, m.JournalEntry.phase)
                        .where(m.JournalEntry.pending_id == entry_id)).first()
    if done is not None and done.id != replay_of:
        how = "committed" if done.phase == "commit" else "voided"
        raise PendingStateError(f"pending entry {entry_id} was already {how} by entry {done.id}",
                                entry_id=entry_id, completed_by=done.id)
    return entry


def commit_draft(conn: Connection, book_id: int, entry_id: int, *, key: str, amount: Any = None,
                 postings: Sequence[tuple[str, Any]] | None = None,
                 effective_date: dt.date | None = None, external_ref: str | None = None,
                 memo: str | None = None, metadata: Mapping[str, Any] | None = None,
                 replay_of: int | None = None) -> Draft:
    """The entry that commits pending ``entry_id`` (all of it, ``amount``, or ``postings``)."""
    pend = open_pending(conn, book_id, entry_id, replay_of=replay_of)
    legs = _commit_legs(pend, amount, postings)
    _not_before(effective_date, pend, "committed")
    return Draft(legs, key, pend.kind, effective_date or pend.effective_date, "commit",
                 external_ref if external_ref is not None else pend.external_ref,
                 memo if memo is not None else pend.memo,
                 metadata if metadata is not None else (pend.metadata or None),
                 pending_id=entry_id, minor=True, releases=tuple(pending_holds(conn, entry_id)))


def void_draft(conn: Connection, book_id: int, entry_id: int, *, key: str,
               effective_date: dt.date | None = None, memo: str | None = None,
               replay_of: int | None = None) -> Draft:
    """The entry that voids pending ``entry_id`` (no postings; releases its holds)."""
    pend = open_pending(conn, book_id, entry_id, replay_of=replay_of)
    _not_before(effective_date, pend, "voided")
    return Draft((), key, pend.kind, effective_date or pend.effective_date, "void",
                 pend.external_ref, memo, None, pending_id=entry_id, minor=True,
                 releases=tuple(pending_holds(conn, entry_id)))


def reversal_draft(conn: Connection, book_id: int, entry_id: int, *, key: str, reason: str,
                   effective_date: dt.date | None = None, replay_of: int | None = None) -> Draft:
    """The entry that reverses ``entry_id`` (every posting negated, linked, once)."""
    original = get_entry(conn, book_id, entry_id)
    if original.phase in ("pending", "void"):
        raise PostingError(
            f"entry {entry_id} is {original.phase}; void a pending entry instead of reversing it",
            entry_id=entry_id)
    if original.kind == CLOSE_KIND:
        raise PostingError(f"entry {entry_id} records a period's close, which is not reversed "
                           "(a closed period stays closed)", entry_id=entry_id)
    done = conn.execute(select(m.JournalEntry.id).where(m.JournalEntry.reverses_id == entry_id)).scalar()
    if done is not None and done != replay_of:
        raise AlreadyReversedError(f"entry {entry_id} was already reversed by entry {done}",
                                   entry_id=entry_id, reversed_by=done)
    # Given no date, it is dated today (the request keeps no date, so a retry replays).
    _not_before(effective_date or dt.date.today(), original, "reversed")
    legs = tuple((p.account, -p.amount_minor) for p in original.postings)
    return Draft(legs, key, "reversal", effective_date, "posted", original.external_ref, reason,
                 {"reverses": entry_id, "reason": reason}, reverses_id=entry_id, minor=True)


def _not_before(day: dt.date | None, entry: Entry, done: str) -> None:
    """A completion or reversal is not dated before the entry it completes or undoes: the
    balances as of a day in between would show money moved before it was asked for (a
    no-overdraft wallet below zero on a statement)."""
    if day is not None and (not isinstance(day, dt.date) or isinstance(day, dt.datetime)):
        raise PostingError(f"effective_date must be a date, got {day!r}", field="effective_date",
                           entry_id=entry.id)
    if day is not None and day < entry.effective_date:
        raise PostingError(
            f"entry {entry.id} is dated {entry.effective_date}; it cannot be {done} as of {day}, "
            "before it (give its date or a later one)", entry_id=entry.id,
            effective_date=day)


def _commit_legs(pend: Entry, amount: Any, postings: Sequence[tuple[str, Any]] | None) -> tuple:
    full = tuple((p.account, p.amount_minor) for p in pend.postings)
    if amount is None and postings is None:
        return full
    if amount is not None and postings is not None:
        raise PendingStateError("give amount or postings, not both", entry_id=pend.id)
    currency = pend.postings[0].currency
    if amount is not None:
        if len(full) != 2:
            raise PendingStateError(
                f"pending entry {pend.id} has {len(full)} postings; commit part of it with explicit postings",
                entry_id=pend.id)
        part = to_minor(amount, currency, what="amount")
        whole = abs(full[0][1])
        if not 0 < part <= whole:
            raise PendingStateError(
                f"commit amount {from_minor(part, currency)} must be positive and at most "
                f"the pending {from_minor(whole, currency)}", entry_id=pend.id)
        return tuple((code, part if minor > 0 else -part) for code, minor in full)
    by_account = {p.account: p for p in pend.postings}
    legs = []
    for leg in postings:
        if not isinstance(leg, (list, tuple)) or len(leg) != 2:
            raise PendingStateError(f"commit postings of pending entry {pend.id} must be "
                                    f"(account, amount) pairs, got {leg!r}", entry_id=pend.id)
        code, value = leg
        original = by_account.get(code)
        if original is None:
            raise PendingStateError(f"{code} is not a posting of pending entry {pend.id}",
                                    entry_id=pend.id, account=code)
        if any(code == done for done, _ in legs):   # each amount alone is held to the pending one
            raise PendingStateError(
                f"{code} is named twice in the commit of pending entry {pend.id}; give its "
                "amount once", entry_id=pend.id, account=code)
        minor = to_minor(value, original.currency, what=f"amount for {code}")
        if minor == 0 or (minor > 0) != (original.amount_minor > 0) or abs(minor) > abs(original.amount_minor):
            raise PendingStateError(
                f"commit amount for {code} must have the pending amount's sign and not exceed it",
                entry_id=pend.id, account=code)
        legs.append((code, minor))
    return tuple(legs)

__all__ = [
    "Draft", "Entry", "PostingView", "FastPoster", "write", "load_entries", "allocate_entry_ids",
    "pending_holds", "closed_through", "find_replay", "get_entry", "open_pending", "commit_draft",
    "void_draft", "reversal_draft", "CLOSE_KIND",
]
