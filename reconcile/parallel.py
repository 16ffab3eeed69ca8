"""A reconciliation run on two cores: when it may, and the thread that writes.

A run writes about as many rows as its statement has lines and reads about
as many postings. On SQLite a statement of thousands of rows runs inside
SQLite with Python's lock released (:func:`reconcile.store.insert_rows`), so
the run hands its bank-line inserts to a :class:`Writer` thread on its own
connection, and reads the ledger side through other connections, while its
own thread fingerprints and matches.

That is only sound where :func:`can_overlap` says so: a SQLite database file
in WAL mode (readers then see the last commit while the run writes), an
engine whose write transactions take the write lock at BEGIN (so the last
commit is exactly what the run's transaction started from, and nobody can
commit until it ends: ``ledger.db.make_engine`` sets that up), and a pool
that can lend the readers connections of their own.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool, QueuePool

from ledger.db import locks_at_begin

#: Connections a run holds at once when it overlaps: its own and two readers'.
CONNECTIONS = 3


def can_overlap(conn: Connection) -> bool:
    """Whether a run in ``conn``'s transaction may write from a second thread and read
    through other connections (see the module docstring)."""
    if conn.dialect.name != "sqlite" or not locks_at_begin(conn.engine):
        return False
    url = conn.engine.url
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return False
    pool = conn.engine.pool
    if type(pool) is QueuePool:
        overflow = getattr(pool, "_max_overflow", 0)
        if overflow >= 0 and pool.size() + overflow < CONNECTIONS:
            return False   # the readers would wait for a connection the run never gives back
    elif type(pool) is not NullPool:
        return False       # a pool that shares its connection, or one we do not know
    if not conn.connection.driver_connection.in_transaction:
        return False       # the write lock is not held yet: readers could see a later commit
    return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


class Writer:
    """Runs a transaction's inserts on its connection from a second thread, in order.

    The first failure skips the jobs after it; :meth:`submit` and :meth:`check`
    raise it in the caller's thread as soon as it is known, :meth:`finish` at
    the latest. :meth:`abandon` is for a run that failed itself. Both wait for
    the thread, so that the transaction never ends while one of its statements
    is running.
    """

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="reconcile-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        self.check()
        self._jobs.put(job)

    def check(self) -> None:
        """Raise the failure of a job, if one failed."""
        if self._error is not None:
            error, self._error = self._error, None
            self._stopped = True
            raise error

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None and not self._stopped:
                    job()
            except BaseException as exc:   # raised again in the caller's thread
                self._error = exc
            finally:
                self._jobs.task_done()

    def drain(self) -> None:
        """Wait until every job given so far is done (the connection is then free);
        raise the first failure."""
        self._jobs.join()
        self.check()

    def _join(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def finish(self) -> None:
        """Wait for every job; raise the first failure."""
        self._join()
        self.check()

    def abandon(self) -> None:
        """Skip the jobs not started yet and wait for the one running."""
        self._stopped = True
        self._join()


__all__ = ["CONNECTIONS", "can_overlap", "Writer"]
