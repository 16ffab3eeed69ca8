"""A throwaway PostgreSQL server for the tests and the benchmarks.

It finds the server binaries (``$PG_BINDIR``, ``pg_config --bindir``, the
Debian layout ``/usr/lib/postgresql/<version>/bin``, then ``$PATH``), runs
``initdb`` in a temporary directory and starts ``postgres`` on a free
loopback port with its socket in that directory. ``initdb`` refuses to run
as root, so when we are root the server runs as the unprivileged
``postgres`` user (``runuser``), over a directory that user owns; as any
other user it runs directly. :meth:`PgServer.stop` shuts it down and
removes the directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries could be found or started."""


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                      reverse=True)
    candidates.extend(Path(p) for p in versions)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A running throwaway server; use as a context manager or call stop()."""

    def __init__(self, bindir: Path | None = None, *, extra_conf: dict | None = None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                "install the postgresql package or set PG_BINDIR")
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.datadir = self.base / "data"
        self.port = _free_port()
        self.user = "postgres" if self.as_root else "ledger"
        self.extra_conf = extra_conf or {}
        self._start()

    def _run(self, args: list[str], **kwargs):
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, **kwargs)

    def _start(self) -> None:
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
            os.chmod(self.base, 0o700)
        out = self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                         "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        if out.returncode != 0:
            raise PgUnavailable(f"initdb failed: {out.stderr.strip() or out.stdout.strip()}")
        conf = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'", "max_connections": "300",
            "shared_buffers": "128MB", "fsync": "on", "synchronous_commit": "on",
            "max_prepared_transactions": "0",
        }
        conf.update(self.extra_conf)
        with open(self.datadir / "postgresql.conf", "a") as fh:
            for k, v in conf.items():
                fh.write(f"{k} = {v}\n")
        out = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                         str(self.base / "server.log"), "-w", "-t", "60", "start"])
        if out.returncode != 0:
            log = (self.base / "server.log")
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise PgUnavailable(f"pg_ctl start failed: {out.stderr.strip()} {detail}")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise PgUnavailable("PostgreSQL did not start listening")

    def url(self, dbname: str = "postgres", driver: str = "psycopg2") -> str:
        """SQLAlchemy URL of a database on this server."""
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psycopg2 with autocommit; returns nothing useful but raises on error."""
        import psycopg2

        conn = psycopg2.connect(self.dsn(dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.statusmessage
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.datadir.exists():
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                       "-w", "stop"])
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PgServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def drop_database(url: str) -> None:
    """Drop a PostgreSQL test database once a test is done with it (SQLite files stay in tmp)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
    finally:
        engine.dispose()
