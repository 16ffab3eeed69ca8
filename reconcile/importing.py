"""Importing statement lines: idempotent, a chunk at a time, each line fingerprinted.

:func:`import_lines` stores the lines of parsed statement files as
``bank_line`` rows inside the caller's transaction:

- every line is fingerprinted (:func:`fingerprint`: SHA-256 of its content
  and its occurrence within its file), so a line already imported from an
  earlier or overlapping file is recognised and not added again, while a
  line that repeats inside one file is kept and reported;
- a file whose day has no lines in yet (the daily case) reserves its ids
  first and hands each chunk over as soon as its fingerprints are known, to
  a :class:`~.parallel.Writer` thread when the run has one;
- columns every line of a chunk shares are written once into the insert on
  SQLite instead of being bound per line.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import partial
from hashlib import sha256
from json.encoder import encode_basestring as _json_str  # the C encoder json.dumps uses
from operator import countOf
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ledger import models as m
from ledger.accounts import utcnow
from ledger.errors import InputError

from .parallel import Writer
from .statements.model import line_fields
from .store import (date_param, insert_columns, insert_rows, reserve_ids, select_rows,
                    sql_constant)

IMPORT_CHUNK = 20_000


class ReconcileError(InputError):
    """A reconciliation request that cannot be carried out (bad input)."""


class Added(NamedTuple):
    """The lines an import added, in file order: their ids and the lines, side by side."""

    ids: list
    lines: list


@dataclass(frozen=True)
class ImportResult:
    """What an import brought in.

    Attributes:
        files: ``(filename, format, sha256, new lines, known lines)`` per file.
        statements: the parsed statements.
        line_ids: database ids of every line of the files (new or known).
        repeated: ids of lines that repeat another line of the same file.
    """

    files: tuple
    statements: tuple
    line_ids: tuple
    repeated: tuple


def _json(value) -> str:
    """``value`` as ``json.dumps(value, ensure_ascii=False)`` writes it."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


def fingerprint(line, occurrence: int, encoded: dict | None = None) -> str:
    """SHA-256 of the line's content and its occurrence within its file.

    The text hashed is the JSON array ``[account, booking date, amount,
    currency, bank ref, end-to-end ref, counterparty, description,
    occurrence]`` as ``json.dumps(..., ensure_ascii=False)`` writes it, built
    here without the encoder's per-call cost: the same lines give the same
    fingerprints in every version, so re-imports stay idempotent.
    ``encoded`` caches the JSON of what repeats from line to line (account,
    booking day and currency; counterparty and description).
    """
    return fingerprints((line,), {} if encoded is None else encoded, occurrence)[0]


def fingerprints(lines: Sequence, encoded: dict, occurrence: int = 0) -> list[str]:
    """``[fingerprint(line, occurrence, encoded) for line in lines]``: the JSON of the
    values a statement line holds written out without a call per value (the tests
    compare it with ``json.dumps``). What varies from line to line (amount and
    references) is written as text; the rest comes encoded: the head (account, day,
    currency) once per run of lines that share it, counterparty and description
    UTF-8 encoded once per distinct pair. The texts are hashed in one pass."""
    j, js, rep = _json, _json_str, int.__repr__
    end = f"{int(occurrence)}]".encode()
    texts: list[bytes] = []
    append = texts.append
    tails: dict = {}               # (counterparty, description) -> their JSON and the end
    last = head = None
    for account, day, currency, amount, ref, e2e, counterparty, description in map(
            _HASHED_FIELDS, lines):
        if last is None or account is not last[0] or day is not last[1] \
                or currency is not last[2]:
            last = (account, day, currency)
            head = encoded.get(last)
            if head is None:
                head = encoded[last] = (f"[{j(account)}, \"{day.isoformat()}\", ",
                                        f", {j(currency)}, ")
        tail_key = (counterparty, description)
        tail = tails.get(tail_key)
        if tail is None:
            shared = encoded.get(tail_key)
            if shared is None:
                shared = encoded[tail_key] = f"{j(counterparty)}, {j(description)}, ".encode()
            tail = tails[tail_key] = shared + end
        append(f"{head[0]}{rep(amount) if type(amount) is int else j(amount)}{head[1]}"
               f"{js(ref) if type(ref) is str else j(ref)}, "
               f"{js(e2e) if type(e2e) is str else j(e2e)}, ".encode() + tail)
    return list(map(_HEXDIGEST, map(sha256, texts)))


_HEXDIGEST = type(sha256()).hexdigest


#: The fields a fingerprint hashes, in the order :func:`fingerprints` takes them.
_HASHED_FIELDS = line_fields("account", "booking_date", "currency", "amount_minor", "bank_ref",
                         "end_to_end_ref", "counterparty", "description")


def check_days(path: Path, lines: Sequence) -> None:
    """Booking and value dates must be dates (the bank's business day), not times."""
    booked = set(map(type, map(line_fields("booking_date"), lines)))
    valued = set(map(type, map(line_fields("value_date"), lines)))
    if booked <= {dt.date} and valued <= {dt.date, type(None)}:
        return
    for line in lines:
        if type(line.booking_date) is not dt.date or not (
                line.value_date is None or type(line.value_date) is dt.date):
            raise ReconcileError(
                f"{path.name} {line.source_position}: booking and value dates must be dates "
                f"(the bank's business day), not {line.booking_date!r} / {line.value_date!r}",
                file=path.name, position=line.source_position)


_LINE_COLUMNS = ("id", "book_id", "file_id", "fingerprint", "account", "booking_date", "value_date",
                 "amount_minor", "currency", "bank_ref", "end_to_end_ref", "batch_id", "counterparty",
                 "description", "status", "source_position", "raw")


#: Columns that vary from line to line even in a one-account, one-day file.
_VARYING_COLUMNS = ("id", "fingerprint", "amount_minor", "bank_ref", "end_to_end_ref",
                    "counterparty", "description", "source_position", "raw")


def _shared_columns(lines: Sequence, day: Callable) -> dict | None:
    """The columns every line of ``lines`` has the same value in, outside
    :data:`_VARYING_COLUMNS` (account, days, currency, batch, status), as
    ``{column: value}``; None when one of them differs or cannot be written as a
    constant. A day file for one account usually shares them all: they are then
    written once into the insert statement instead of being bound for every line."""
    if not lines:
        return None
    first = _SHARED(lines[0])
    if countOf(map(_SHARED, lines), first) != len(lines):
        return None
    account, booked, valued, currency, batch, status = first
    shared = {"account": str(account)[:64], "booking_date": day(booked),
              "value_date": day(valued), "currency": currency, "batch_id": batch,
              "status": status or "booked"}
    if any(sql_constant(value) is None for value in shared.values()):
        return None
    return shared


#: The fields :func:`_shared_columns` looks for in every line, in the order it reads them.
_SHARED = line_fields("account", "booking_date", "value_date", "currency", "batch_id", "status")


def _known_lines(conn: Connection, book_id: int, days: set) -> dict[str, int]:
    """Fingerprint -> id of the lines already imported for those booking days.

    A fingerprint covers the booking date, so a line seen before was stored
    under the same day: one indexed query per distinct day of the file.
    """
    known: dict[str, int] = {}
    for day in sorted(days):
        known.update(select_rows(conn, select(m.BankLine.fingerprint, m.BankLine.id).where(
            m.BankLine.book_id == book_id, m.BankLine.booking_date == day)))
    return known


def import_parsed(conn: Connection, book_id: int, parsed: Sequence,
                  progress: Callable[[int], None] | None = None) -> ImportResult:
    """Store the lines of parsed files; idempotent by line fingerprint."""
    return import_lines(conn, book_id, parsed, progress)[0]


def import_lines(conn: Connection, book_id: int, parsed: Sequence,
                 progress: Callable[[int], None] | None,
                 writer: Writer | None = None) -> tuple[ImportResult, Added]:
    """:func:`import_parsed`, and the lines it added with their ids (:class:`Added`).

    With a ``writer`` the lines are inserted by its thread, in order, and may
    still be going in when this returns (:meth:`.parallel.Writer.finish` waits for them).
    """
    write = writer.submit if writer is not None else _call
    files, statements, line_ids, repeated = [], [], [], []
    added = Added([], [])
    table = m.BankLine.__table__
    day = date_param(conn)
    sqlite = conn.dialect.name == "sqlite"
    for path, pf in parsed:
        if writer is not None and files:
            writer.drain()   # the file before is in: its lines count as known, its ids as taken
        lines: list = []
        for statement in pf.statements:
            statements.append(statement)
            lines.extend(statement.lines)
        check_days(path, lines)
        days = set(map(line_fields("booking_date"), lines))
        known = _known_lines(conn, book_id, days)
        first = statements[-1] if statements else None
        sha = getattr(first, "source_sha256", None) or sha256(path.read_bytes()).hexdigest()

        def file_row(new: int) -> int:
            return conn.execute(insert(m.StatementFile).values(
                book_id=book_id, sha256=sha, filename=path.name[:255], format=str(pf.format),
                imported_at=utcnow(), lines_new=new, lines_known=len(lines) - new)
                .returning(m.StatementFile.id)).scalar_one()

        def insert_chunk(chunk_ids: list, chunk_fps: list, chunk_lines: list) -> None:
            write(partial(_insert_lines, conn, table, file_id, book_id, sqlite, day, progress,
                          chunk_ids, chunk_fps, chunk_lines))
            added.ids.extend(chunk_ids)
            added.lines.extend(chunk_lines)

        if not known:
            # The usual case, none of the day's lines in yet: every line is new, and a
            # chunk goes in as soon as its fingerprints are known.
            file_id = file_row(len(lines))
            ids = reserve_ids(conn, table, len(lines))
        encoded: dict = {}
        fps: list = []
        repeats: list = []
        firsts: set = set()            # fingerprints of first occurrences
        occurrences: dict = {}         # ... of those that repeat -> occurrences so far
        for start in range(0, len(lines), IMPORT_CHUNK):
            chunk_lines = lines[start:start + IMPORT_CHUNK]
            chunk_fps = fingerprints(chunk_lines, encoded)
            if len(set(chunk_fps)) == len(chunk_fps) and firsts.isdisjoint(chunk_fps):
                firsts.update(chunk_fps)
            else:
                # A line repeated inside the file: each repeat is told apart by its occurrence.
                for k, fp in enumerate(chunk_fps):
                    if fp in firsts:
                        occurrence = occurrences.get(fp, 1)
                        occurrences[fp] = occurrence + 1
                        chunk_fps[k] = fingerprint(chunk_lines[k], occurrence, encoded)
                        repeats.append(start + k)
                    else:
                        firsts.add(fp)
            fps += chunk_fps
            if not known:
                insert_chunk(ids[start:start + IMPORT_CHUNK], chunk_fps, chunk_lines)
        del encoded, firsts, occurrences
        new = range(len(fps)) if not known else [k for k, fp in enumerate(fps) if fp not in known]
        if known:
            file_id = file_row(len(new))
            fresh_ids = iter(reserve_ids(conn, table, len(new)))
            # Known lines keep their ids; new ones take the reserved ids in file order.
            ids = [known.get(fp) or next(fresh_ids) for fp in fps]
            for start in range(0, len(new), IMPORT_CHUNK):
                chunk = new[start:start + IMPORT_CHUNK]
                insert_chunk(list(map(ids.__getitem__, chunk)), list(map(fps.__getitem__, chunk)),
                             list(map(lines.__getitem__, chunk)))
        del known
        if progress and len(fps) > len(new):
            write(partial(progress, len(fps) - len(new)))   # lines already imported count as done
        line_ids.extend(ids)
        repeated.extend(map(ids.__getitem__, repeats))
        files.append((path.name, str(pf.format), sha, len(new), len(fps) - len(new)))
    return ImportResult(tuple(files), tuple(statements), tuple(line_ids), tuple(repeated)), added


def _call(job: Callable[[], object]) -> None:
    job()


#: The line fields of :data:`_VARYING_COLUMNS` after id and fingerprint, in order.
_VARYING_FIELDS = ("amount_minor", "bank_ref", "end_to_end_ref", "counterparty", "description",
                   "source_position", "raw")


def _insert_lines(conn: Connection, table, file_id: int, book_id: int, sqlite: bool,
                  day: Callable, progress: Callable[[int], None] | None, ids: list, fps: list,
                  lines: list) -> None:
    """Insert one chunk of new bank lines (``ids``, ``fps`` and ``lines`` side by side)."""
    # Written into the statement on SQLite, where binding is much of a row's cost.
    shared = _shared_columns(lines, day) if sqlite else None
    if shared is not None:
        shared.update(book_id=book_id, file_id=file_id)
        columns = [ids, fps, *(list(map(line_fields(name), lines)) for name in _VARYING_FIELDS)]
        positions, raws = columns[-2:]
        if set(map(type, positions)) == {str} and max(map(len, positions)) <= 64 \
                and None not in raws:
            # No value to convert: the lines' own values go in, column by column.
            insert_columns(conn, table, _VARYING_COLUMNS, columns, constants=shared)
        else:
            insert_rows(conn, table, _VARYING_COLUMNS, [
                (i, fp, line.amount_minor, line.bank_ref, line.end_to_end_ref,
                 line.counterparty, line.description, str(line.source_position)[:64],
                 line.raw or "") for i, fp, line in zip(ids, fps, lines)], constants=shared)
    else:
        insert_rows(conn, table, _LINE_COLUMNS, [
            (i, book_id, file_id, fp, str(line.account)[:64], day(line.booking_date),
             day(line.value_date), line.amount_minor, line.currency, line.bank_ref,
             line.end_to_end_ref, line.batch_id, line.counterparty, line.description,
             line.status or "booked", str(line.source_position)[:64], line.raw or "")
            for i, fp, line in zip(ids, fps, lines)])
    if progress:
        progress(len(lines))


__all__ = ["IMPORT_CHUNK", "Added", "ImportResult", "ReconcileError", "fingerprint", "fingerprints",
           "import_lines", "import_parsed"]
