"""``Storage`` on SQLite, the embedded default: one file, no server.

One stdlib connection, used only from the event loop thread: every query is short and local
(WAL, synchronous=NORMAL: a commit never waits on the disk), so running it in place is cheaper
than a thread hop. What does wait on the disk is the WAL checkpoint (two fsyncs; ~10 ms every
1,000 pages here, i.e. every half second at 2,000 answers/s): SQLite's automatic one would run
inside a commit on the event loop, so it is switched off and a second connection checkpoints
in a worker thread once enough rows changed. One gateway process owns the file.

Reads that may touch many rows (CDR listings: ``_read_session``) are the exception: they run
on read-only connections of their own in worker threads, so a burst of them never stalls
the loop (WAL: they see every committed write and never block the writer). An in-memory
database has no second connection: there they run in place.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .base import StorageError
from .health import StoreHealth
from .migrations import MIGRATIONS, Migration
from .sql import Row, SqlStorage

log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 500      # rows changed between two checkpoints (a few hundred WAL pages)
READ_THREADS = 2            # worker threads (each with its read-only connection) for long reads


def migrate(db: sqlite3.Connection, migrations: list[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to the last of ``migrations``; returns the resulting version.

    A database written by newer code is refused rather than guessed at."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StorageError(f"database schema is version {current}, newer than this c2c-ami "
                           f"(knows up to {latest}); upgrade c2c-ami or use another storage.path")
    for migration in migrations:
        if migration.version <= current:
            continue
        try:
            # executescript runs the whole script; BEGIN/COMMIT make it one transaction,
            # so a failed migration leaves the previous version intact.
            db.executescript(f"BEGIN IMMEDIATE;\n{migration.sqlite}\n"
                             f"PRAGMA user_version = {int(migration.version)};\nCOMMIT;")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"schema migration {migration.version} failed: {exc}") from exc
        current = migration.version
    return current


class _Connection:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(row) for row in self._db.execute(sql, args)]

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._db.execute(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)


class SqliteStorage(SqlStorage):
    """``path`` may be ``:memory:``."""
    backend = "sqlite"
    least = "min"
    greatest = "max"
    order_tiebreak = "rowid"     # ON CONFLICT ... DO UPDATE keeps a row's rowid
    hook_order = "created_at, rowid"

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__()
        self.health = StoreHealth("SQLite")
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            # isolation_level=None: no hidden transactions; each write is its own statement
            # (autocommit) or an explicit short BEGIN IMMEDIATE ... COMMIT.
            self._db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open database: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint = 0")    # see the module docstring
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self.schema_version = migrate(self._db)
            self._know_columns([(r["name"], r["type"], not r["notnull"])
                                for r in self._db.execute("PRAGMA table_info(calls)")])
        except BaseException:
            self._db.close()
            raise
        self._connection = _Connection(self._db)
        self._checkpointer = _Checkpointer(path) if path != ":memory:" else None
        self._reader = _Reader(path, busy_timeout_ms) if path != ":memory:" else None
        self._changes_checkpointed = 0

    async def close(self) -> None:
        if self._checkpointer is not None:
            await self._checkpointer.close()
        if self._reader is not None:
            await self._reader.close()
        self._db.close()      # the last connection to close checkpoints what is left

    def _changed(self) -> None:
        """After a statement: checkpoint off the event loop once enough rows changed."""
        changes = self._db.total_changes
        if self._checkpointer is not None and changes - self._changes_checkpointed >= CHECKPOINT_EVERY \
                and self._checkpointer.start():
            self._changes_checkpointed = changes

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[_Connection]:
        try:
            yield self._connection
        except sqlite3.OperationalError as exc:    # locked, disk full, I/O error
            raise self.health.failed(f"SQLite: {exc}") from exc
        self.health.answered()
        self._changed()

    @asynccontextmanager
    async def _read_session(self) -> AsyncIterator[Any]:
        if self._reader is None:
            async with self._session() as db:
                yield db
            return
        try:
            yield self._reader
        except sqlite3.OperationalError as exc:
            raise self.health.failed(f"SQLite: {exc}") from exc
        self.health.answered()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Connection]:
        # Nothing awaits between BEGIN and COMMIT for real (the connection runs in place), so
        # no other coroutine's statement can land inside this transaction.
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self.health.failed(f"SQLite: {exc}") from exc
        try:
            yield self._connection
        except BaseException as exc:
            with contextlib.suppress(sqlite3.OperationalError):     # (the file may be what failed)
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self.health.failed(f"SQLite: {exc}") from exc
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("ROLLBACK")
            raise self.health.failed(f"SQLite: {exc}") from exc
        self.health.answered()
        self._changed()


class _Checkpointer:
    """PASSIVE checkpoints of one database file on a connection of their own, in one worker
    thread: the writer on the event loop never waits for them, nor they for it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._db: sqlite3.Connection | None = None
        self._running: asyncio.Future | None = None

    def start(self) -> bool:
        """Begin a checkpoint unless one is running; True if begun."""
        if self._running is not None and not self._running.done():
            return False
        self._running = asyncio.get_running_loop().run_in_executor(self._pool, self._checkpoint)
        return True

    def _checkpoint(self) -> None:      # in the worker thread
        try:
            if self._db is None:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:     # the next one retries; the WAL only grows meanwhile
            log.warning("%s: WAL checkpoint failed (%s)", self.path, exc)

    def _close(self) -> None:           # in the worker thread
        if self._db is not None:
            self._db.close()

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)


class _Reader:
    """Read-only connections to one database file, one per worker thread: each ``fetch`` runs
    in a thread, the event loop only awaits it."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._uri = Path(path).absolute().as_uri() + "?mode=ro"
        self._busy_timeout_ms = busy_timeout_ms
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.run: Callable[[str, Sequence[Any]], list[Row]] = self._run   # tests slow it down

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        raise sqlite3.OperationalError("the read connection does not write")

    def _run(self, sql: str, args: Sequence[Any]) -> list[Row]:     # in a worker thread
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        return [dict(row) for row in db.execute(sql, args)]

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True)
        with self._lock:
            for db in self._opened:
                db.close()
