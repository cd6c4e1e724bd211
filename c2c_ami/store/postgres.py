"""``Storage`` on PostgreSQL (asyncpg): a server database, for deployments that outgrow a file.

A small connection pool; queries never block the event loop. Migrations run under an
advisory lock, so gateways starting together apply each one once; the applied version is
kept in the table ``c2c_schema``.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from .base import StorageError
from .health import StoreHealth
from .migrations import MIGRATIONS, Migration
from .sql import Row, SqlStorage

_MIGRATION_LOCK = 0x6332_6361_6D69   # pg_advisory_xact_lock key: "c2cami"
_PLACEHOLDER = re.compile(r"\?")
# The server is down, restarting, shutting down (or was killed: its backends' connections
# broke; a pooled connection whose server died under it can also be left in a protocol state
# asyncpg calls an internal error), unreachable, or out of connections: worth another try.
_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
                asyncpg.InternalClientError)


def _numbered(sql: str) -> str:
    """``?`` placeholders (the shared queries') -> ``$1, $2, ...`` (PostgreSQL's)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class _Connection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in await self._conn.fetch(_numbered(sql), *args)]

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._conn.execute(_numbered(sql), *args)


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to the last of ``migrations``, each in its own transaction."""
    latest = migrations[-1].version if migrations else 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS c2c_schema (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM c2c_schema") or 0
    if current > latest:
        raise StorageError(f"database schema is version {current}, newer than this c2c-ami "
                           f"(knows up to {latest}); upgrade c2c-ami or use another storage.url")
    for migration in migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            current = await conn.fetchval("SELECT max(version) FROM c2c_schema") or 0
            if migration.version <= current:
                continue
            try:
                await conn.execute(migration.postgresql)
            except asyncpg.PostgresError as exc:
                raise StorageError(f"schema migration {migration.version} failed: {exc}") from exc
            await conn.execute("INSERT INTO c2c_schema (version) VALUES ($1)", migration.version)
    return max(current, latest)


class PostgresStorage(SqlStorage):
    backend = "postgresql"
    lock_row = " FOR UPDATE"
    skip_locked_rows = " FOR UPDATE SKIP LOCKED"
    tenant_lock = "SELECT pg_advisory_xact_lock(hashtext(?))"
    order_tiebreak = "call_id"
    hook_order = "created_at, id"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__()
        self.health = StoreHealth("PostgreSQL")
        self._pool = pool
        self._url = url
        self._listening: asyncpg.Connection | None = None   # LISTEN needs a connection of its own

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 0, max_size: int = 10) -> PostgresStorage:
        # min_size 0: no connection floor for asyncpg to restore while the server is away (it
        # logs a traceback for each try); the store's probe (every 5 s) keeps one open anyway
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"storage.url: cannot connect to PostgreSQL: {exc}") from exc
        storage = cls(pool, url)
        try:
            async with pool.acquire() as conn:
                storage.schema_version = await migrate(conn)
                columns = await conn.fetch(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_name = 'calls' AND table_schema = current_schema() ORDER BY ordinal_position")
            storage._know_columns([(r["column_name"], r["data_type"], r["is_nullable"] == "YES")
                                   for r in columns])
            await storage._keep_listening(again=True)     # webhook changes on other instances
        except BaseException:
            await storage.close()
            raise
        return storage

    async def close(self) -> None:
        if self._listening is not None:
            await self._listening.close()
            self._listening = None
        await self._pool.close()

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY: every instance listening on ``channel`` gets ``payload`` (this one too)."""
        async with self._session() as db:
            await db.execute("SELECT pg_notify(?, ?)", (channel, payload))

    async def _notify_in(self, db: Any, channel: str, payload: str) -> None:
        await db.execute("SELECT pg_notify(?, ?)", (channel, payload))     # sent at the commit

    async def _announce(self, heads: Any) -> None:
        """NOTIFY went with the commit (``_notify_in``)."""

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        self._listeners.setdefault(channel, []).append(callback)
        await self._keep_listening(again=True)

    async def heartbeat(self, instance_id: str, lease_until: float) -> bool:
        alive = await super().heartbeat(instance_id, lease_until)
        await self._keep_listening()            # after a PostgreSQL restart, LISTEN again
        return alive

    async def _keep_listening(self, again: bool = False) -> None:
        if self._listening is not None and not self._listening.is_closed() and not again:
            return
        if self._listening is None or self._listening.is_closed():
            try:
                self._listening = await asyncpg.connect(self._url)
            except _UNAVAILABLE as exc:
                raise self.health.failed(f"PostgreSQL: {exc}") from exc
        for channel in self._listeners:
            await self._listening.remove_listener(channel, self._dispatch)
            await self._listening.add_listener(channel, self._dispatch)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._listeners.get(channel, []):
            callback(payload)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[_Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield _Connection(conn)
        except _UNAVAILABLE as exc:
            raise self.health.failed(f"PostgreSQL: {exc}") from exc
        self.health.answered()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Connection]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Connection(conn)
        except _UNAVAILABLE as exc:
            raise self.health.failed(f"PostgreSQL: {exc}") from exc
        self.health.answered()
