"""``Storage`` on PostgreSQL (asyncpg): a server database, for deployments that outgrow a file.

A small connection pool; queries never block the event loop. Migrations run under an
advisory lock, so gateways starting together apply each one once; the applied version is
kept in the table ``c2c_schema``.

Round trips are what a click pays on PostgreSQL: a connection goes back to the pool without
asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``: a round trip per use; nothing here
leaves session state behind: LISTEN has its own connection, locks are transaction-scoped),
and everything a click takes (rate buckets, the do-not-call lookup, its request key, its
extension, its first event in the tenant's log) is one statement (``claim_click``).
"""
from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from .base import Bucket, ClickClaim, ClickClaimed, StorageError
from .health import StoreHealth
from .migrations import MIGRATIONS, Migration
from .sql import EVENTS_CHANNEL, Row, SqlStorage, _json

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

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_numbered(sql), rows)


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
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_no_reset)
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

    async def claim_click(self, claim: ClickClaim) -> ClickClaimed:
        """``SqlStorage.claim_click`` in one statement (one round trip): each step is a CTE
        that runs only if the steps before it granted (PostgreSQL runs each once, in the
        order their results are needed); the key's holder is read from the same snapshot."""
        sql, args = _click_statement(claim, time.time())
        async with self._session() as db:
            row = (await db.fetch(sql, args))[0]
        buckets = [*claim.buckets, *claim.key_buckets]
        for n in range(len(claim.buckets)):
            if not row[f"b{n}_allowed"]:
                return ClickClaimed("bucket", n, float(row[f"b{n}_tokens"]))
        if claim.listed is not None and row["listed"]:
            return ClickClaimed("listed")
        if not row["key_taken"]:
            held = {k: row[k] for k in ("fingerprint", "owner", "answer")} if row["owner"] is not None else \
                {"fingerprint": claim.key.fingerprint, "owner": claim.key.owner, "answer": None}
            return ClickClaimed("key", held=held)
        for n in range(len(claim.buckets), len(buckets)):
            if not row[f"b{n}_allowed"]:
                return ClickClaimed("bucket", n, float(row[f"b{n}_tokens"]), key_taken=True)
        if not row["call_claimed"]:
            return ClickClaimed("call", key_taken=True)
        return ClickClaimed(key_taken=True)

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


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """A pooled connection needs no reset: nothing here leaves session state on it (asyncpg
    still rolls back a transaction left open)."""


def _click_statement(claim: ClickClaim, now: float) -> tuple[str, list[Any]]:
    """``claim_click`` as one data-modifying statement with ``$n`` parameters."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    def take(bucket: Bucket, granted: str) -> str:
        burst, rate = arg(bucket.burst), arg(bucket.rate)
        refill = (f"LEAST({burst}::float8, rate_buckets.tokens "
                  f"+ (excluded.updated_at - rate_buckets.updated_at) * {rate}::float8)")
        return (f"INSERT INTO rate_buckets (key, tokens, updated_at, allowed) "
                f"SELECT {arg(bucket.key)}::text, {burst}::float8 - 1, {now_}, TRUE WHERE {granted} "
                f"ON CONFLICT (key) DO UPDATE SET "
                f"tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END, "
                f"allowed = {refill} >= 1, updated_at = excluded.updated_at RETURNING allowed, tokens")

    now_ = arg(now) + "::float8"
    ctes, outputs = [], []
    granted = "TRUE"
    for n, bucket in enumerate(claim.buckets):
        ctes.append(f"b{n} AS ({take(bucket, granted)})")
        outputs += [f"(SELECT allowed FROM b{n}) AS b{n}_allowed", f"(SELECT tokens FROM b{n}) AS b{n}_tokens"]
        granted = f"(SELECT allowed FROM b{n})"
    if claim.listed is not None:       # the do-not-call list: read only once the buckets granted
        tenant, number = claim.listed
        ctes.append(f"l AS (SELECT EXISTS (SELECT 1 FROM blacklist WHERE tenant = {arg(tenant)}::text "
                    f"AND phone = {arg(number)}::text) AS listed)")
        outputs.append("(SELECT listed FROM l) AS listed")
        granted = f"({granted} AND NOT (SELECT listed FROM l))"
    key = claim.key
    scope_, key_ = arg(key.scope) + "::text", arg(key.key) + "::text"
    ctes.append(
        f"k AS (INSERT INTO request_keys (scope, key, fingerprint, owner, expires_at) "
        f"SELECT {scope_}, {key_}, {arg(key.fingerprint)}::text, {arg(key.owner)}::text, "
        f"{arg(key.expires_at)}::float8 WHERE {granted} "
        f"ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, owner = excluded.owner, "
        f"answer = NULL, expires_at = excluded.expires_at WHERE request_keys.expires_at < {now_} RETURNING key)")
    outputs.append("EXISTS (SELECT 1 FROM k) AS key_taken")
    granted = "EXISTS (SELECT 1 FROM k)"
    for n, bucket in enumerate(claim.key_buckets, start=len(claim.buckets)):
        ctes.append(f"b{n} AS ({take(bucket, granted)})")
        outputs += [f"(SELECT allowed FROM b{n}) AS b{n}_allowed", f"(SELECT tokens FROM b{n}) AS b{n}_tokens"]
        granted = f"(SELECT allowed FROM b{n})"
    call = claim.call
    ctes.append(
        f"c AS (INSERT INTO live_calls (call_id, tenant, pbx, device, owner, facts, updated_at) "
        f"SELECT {arg(call.call_id)}::text, {arg(call.tenant)}::text, {arg(call.pbx)}::text, "
        f"{arg(call.device)}::text, {arg(call.owner)}::text, {arg(_json(call.facts))}::text, {now_} "
        f"WHERE {granted} ON CONFLICT DO NOTHING RETURNING call_id)")
    outputs.append("EXISTS (SELECT 1 FROM c) AS call_claimed")
    if claim.events:                   # the call's first events, in its tenant's log (store/sql.py)
        tenant_ = arg(call.tenant) + "::text"
        count = arg(len(claim.events)) + "::bigint"
        rows = ", ".join(f"({arg(n)}::bigint, {arg(e.event)}::text, {arg(e.ext)}::text, {arg(e.call_id)}::text, "
                         f"{arg(e.data)}::text)" for n, e in enumerate(claim.events, start=1))
        ctes.append(f"h AS (INSERT INTO event_heads (tenant, last_seq) SELECT {tenant_}, {count} "
                    f"WHERE EXISTS (SELECT 1 FROM c) ON CONFLICT (tenant) DO UPDATE "
                    f"SET last_seq = event_heads.last_seq + excluded.last_seq RETURNING last_seq)")
        ctes.append(f"e AS (INSERT INTO events (tenant, seq, event, ext, call_id, data, created_at) "
                    f"SELECT {tenant_}, h.last_seq - {count} + v.n, v.event, v.ext, v.call_id, v.data, {now_} "
                    f"FROM h, (VALUES {rows}) AS v (n, event, ext, call_id, data) RETURNING seq)")
        outputs.append(f"(SELECT pg_notify({arg(EVENTS_CHANNEL)}::text, last_seq::text || ' ' || {tenant_}) "
                       f"FROM h) AS notified")
    sql = (f"WITH {', '.join(ctes)} SELECT {', '.join(outputs)}, h.fingerprint, h.owner, h.answer "
           f"FROM (SELECT 1) AS one LEFT JOIN request_keys h ON h.scope = {scope_} AND h.key = {key_}")
    return sql, args
