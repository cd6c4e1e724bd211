"""``Storage``'s queries, written once for both backends.

A backend (``sqlite.py``, ``postgres.py``) supplies a connection that runs a statement with
``?`` placeholders and returns rows as dicts, and a transaction; the SQL here is the subset
both SQLite (3.35+) and PostgreSQL understand. Where they differ (the tie-break of a
listing) the backend says how.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from .base import (
    COUNT_CAP,
    MAX_PAGE,
    Bucket,
    CallWrite,
    ClickClaim,
    ClickClaimed,
    Delivery,
    HookLimitReached,
    LiveClaim,
    LogEvent,
    RequestKey,
)
from .health import StoreHealth

Row = dict[str, Any]
HOOKS_CHANNEL = "c2c_hooks"       # NOTIFY: a tenant whose webhooks changed
EVENTS_CHANNEL = "c2c_events"     # NOTIFY "<last seq> <tenant>": the tenant's event log grew
BUCKET_IDLE_SECONDS = 86400.0   # a rate bucket untouched this long is full again (any sane rate)


class Connection(Protocol):
    """One database session, as the queries see it."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (PostgreSQL: one round trip)."""


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class SqlStorage:
    backend = "sql"
    least = "LEAST"                   # the smaller of two values (SQLite: min)
    greatest = "GREATEST"             # the larger of two values (SQLite: max)
    lock_row = ""                     # wait for a row's lock (PostgreSQL: FOR UPDATE)
    skip_locked_rows = ""             # pass over locked rows (PostgreSQL: FOR UPDATE SKIP LOCKED)
    order_tiebreak = "call_id"        # within one time_started: the backend's insertion order
    hook_order = "created_at, id"
    tenant_lock = ""                  # serialise one tenant's hook registrations (SQLite: one writer anyway)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[[str], None]]] = {HOOKS_CHANNEL: [self._forget_hooks]}
        self.schema_version = 0
        self.call_columns: tuple[str, ...] = ()      # the calls table's, from the database
        self._boolean_columns: frozenset[str] = frozenset()
        self._json_columns: frozenset[str] = frozenset()
        self._nullable_booleans: frozenset[str] = frozenset()
        self._hooks_cache: dict[str, list[Row]] = {}  # tenant -> hooks, for the event path

    health: StoreHealth               # whether it answers (every session reports to it)

    async def ping(self) -> None:
        """A trivial query: whether the store answers (``health.keep_watch``'s probe)."""
        async with self._session() as db:
            await db.fetch("SELECT 1")

    # ---- what a backend provides ---------------------------------------------------------
    def _session(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for a few statements, not a transaction."""
        raise NotImplementedError

    def _transaction(self) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    def _read_session(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for long reads (CDR listings) that must not hold up the event loop."""
        return self._session()

    async def close(self) -> None:
        raise NotImplementedError

    def _know_columns(self, columns: Sequence[tuple[str, str, bool]]) -> None:
        """The calls table's (name, type): its own columns hold a record; any other key of
        a record is kept in its JSON ``extra`` column."""
        self.call_columns = tuple(name for name, _, _ in columns if name != "extra")
        self._boolean_columns = frozenset(name for name, kind, _ in columns if kind.lower() == "boolean")
        # a boolean column that may be NULL keeps "not known"; the others read a missing value as false
        self._nullable_booleans = frozenset(name for name, kind, nullable in columns
                                            if kind.lower() == "boolean" and nullable)
        self._json_columns = frozenset(name for name, kind, _ in columns if kind.lower() in ("json", "jsonb"))

    # ---- calls ------------------------------------------------------------------------
    async def save_call(self, record: dict[str, Any]) -> None:
        """Insert or update the CDR ``record["call_id"]``.

        Keys absent from ``record`` keep their stored value, so a CDR can be written as the
        call progresses; unknown keys go to the JSON ``extra`` column. A call_id never
        moves to another tenant: such an update is refused."""
        async with self._transaction() as db:
            await self._save_call(db, record)

    async def _save_call(self, db: Connection, record: dict[str, Any]) -> None:
        call_id, tenant = record.get("call_id"), record.get("tenant")
        if not call_id or not tenant:
            raise ValueError("a call record needs call_id and tenant")
        rows = await db.fetch("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        merged = self._call_from_row(rows[0]) if rows else {}
        if rows and rows[0]["tenant"] != tenant:
            raise ValueError(f"call {call_id} belongs to another tenant")
        merged.update(record)
        columns = {k: merged.get(k) for k in self.call_columns}
        for name in self._boolean_columns:
            keep_none = columns[name] is None and name in self._nullable_booleans
            columns[name] = None if keep_none else bool(columns[name])
        for name in self._json_columns:
            columns[name] = _json(columns[name] or [])
        extra = {k: v for k, v in merged.items() if k not in columns}
        names = [*self.call_columns, "extra"]
        values = [*columns.values(), _json(extra)]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        await db.execute(f"INSERT INTO calls ({', '.join(names)}) "
                         f"VALUES ({', '.join('?' * len(names))}) "
                         f"ON CONFLICT (call_id) DO UPDATE SET {updates}", values)

    async def get_call(self, tenant: str, call_id: str) -> dict[str, Any] | None:
        async with self._session() as db:
            rows = await db.fetch("SELECT * FROM calls WHERE tenant = ? AND call_id = ?", (tenant, call_id))
        return self._call_from_row(rows[0]) if rows else None

    async def find_call(self, tenant: str, call_or_sip_id: str) -> dict[str, Any] | None:
        """The tenant's CDR whose call_id, or else whose SIP Call-ID, is ``call_or_sip_id`` (two
        lookups, each on its own index; of several calls with one SIP Call-ID, the newest)."""
        async with self._session() as db:
            rows = await db.fetch("SELECT * FROM calls WHERE tenant = ? AND call_id = ?", (tenant, call_or_sip_id))
            if not rows:
                rows = await db.fetch("SELECT * FROM calls WHERE tenant = ? AND sip_call_id = ? "
                                      "ORDER BY time_started DESC LIMIT 1", (tenant, call_or_sip_id))
        return self._call_from_row(rows[0]) if rows else None

    @staticmethod
    def _call_filters(tenant: str, start_date: str | None, end_date: str | None, extension: str | None,
                      status: str | None, customer_id: str | None) -> tuple[list[str], list[Any]]:
        where, args = ["tenant = ?"], [tenant]
        for column, op, value in (("time_started", ">=", start_date), ("time_started", "<", end_date),
                                  ("extension", "=", extension), ("status", "=", status),
                                  ("customer_id", "=", customer_id)):
            if value:
                where.append(f"{column} {op} ?")
                args.append(value)
        return where, args

    async def list_calls(self, tenant: str, *, start_date: str | None = None,
                         end_date: str | None = None, extension: str | None = None,
                         phone: str | None = None, status: str | None = None,
                         customer_id: str | None = None, limit: int = 50, page: int = 1,
                         offset: int | None = None) -> tuple[list[dict[str, Any]], int, bool]:
        """One page of the tenant's calls, newest first, how many match, and whether that count
        is exact.

        ``start_date`` (inclusive) and ``end_date`` (exclusive) compare as ISO-8601 strings
        with ``time_started``, so a bare date like ``2024-05-01`` works too. ``offset``, if
        given, replaces ``page``. ``phone``
        matches either party's number: two lookups (``to_number``, ``from_number``), each on
        its own index and already in time order, merged -- an ``OR`` would read every call of
        the tenant. Counting stops after ``max(COUNT_CAP, the rows up to this page)``: past
        that the total is a lower bound (``exact`` False), so a count never reads more index
        entries than the page itself, or COUNT_CAP."""
        where, args = self._call_filters(tenant, start_date, end_date, extension, status, customer_id)
        clause = " AND ".join(where)
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = (max(1, int(page)) - 1) * limit if offset is None else max(0, int(offset))
        bound = max(COUNT_CAP, offset + limit)
        tiebreak = f"{self.order_tiebreak} AS tiebreak_"
        if phone:
            branches = [(f"{clause} AND {column} = ?", [*args, phone]) for column in ("to_number", "from_number")]
            (first, first_args), (second, second_args) = branches
            rows_sql = (f"SELECT {tiebreak}, * FROM calls WHERE {first} UNION "
                        f"SELECT {tiebreak}, * FROM calls WHERE {second}")
            count_sql = (f"SELECT call_id FROM calls WHERE {first} UNION "
                         f"SELECT call_id FROM calls WHERE {second} LIMIT ?")
            rows_args = [*first_args, *second_args]
        else:
            rows_sql = f"SELECT {tiebreak}, * FROM calls WHERE {clause}"
            count_sql = f"SELECT call_id FROM calls WHERE {clause} LIMIT ?"
            rows_args = args
        async with self._read_session() as db:
            counted = (await db.fetch(f"SELECT COUNT(*) AS n FROM ({count_sql}) AS matching",
                                      [*rows_args, bound + 1]))[0]["n"]
            rows = await db.fetch(f"{rows_sql} ORDER BY time_started DESC, tiebreak_ DESC LIMIT ? OFFSET ?",
                                  [*rows_args, limit, offset])
        return [self._call_from_row(r) for r in rows], min(int(counted), bound), int(counted) <= bound

    async def scroll_calls(self, tenant: str, *, start_date: str | None = None,
                           end_date: str | None = None, extension: str | None = None,
                           phone: str | None = None, status: str | None = None,
                           customer_id: str | None = None, limit: int = 50,
                           after: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """The next ``limit`` of the tenant's calls, newest first (ties: call_id descending),
        after the row (``time_started``, ``call_id``) ``after`` if given: keyset pagination on
        the same indexes as ``list_calls``, so a batch costs its own rows however deep the
        scroll is, and rows added meanwhile (newer ones, at the top) move nothing. Filters as
        in ``list_calls``; no count."""
        where, args = self._call_filters(tenant, start_date, end_date, extension, status, customer_id)
        if after is not None:
            where.append("time_started <= ? AND (time_started < ? OR call_id < ?)")
            args += [after[0], after[0], after[1]]
        clause = " AND ".join(where)
        limit = max(1, min(int(limit), MAX_PAGE))
        order = "ORDER BY time_started DESC, call_id DESC LIMIT ?"
        if phone:       # each number's lookup stops at its first ``limit`` rows, then they merge
            sql = (f"SELECT * FROM (SELECT * FROM calls WHERE {clause} AND to_number = ? {order}) AS dialed UNION "
                   f"SELECT * FROM (SELECT * FROM calls WHERE {clause} AND from_number = ? {order}) AS dialing")
            sql_args = [*args, phone, limit, *args, phone, limit]
        else:
            sql, sql_args = f"SELECT * FROM calls WHERE {clause}", args
        async with self._read_session() as db:
            rows = await db.fetch(f"{sql} {order}", [*sql_args, limit])
        return [self._call_from_row(r) for r in rows]

    def _call_from_row(self, row: Row) -> dict[str, Any]:
        record = {k: row[k] for k in self.call_columns}
        for name in self._boolean_columns:
            record[name] = None if record[name] is None else bool(record[name])
        for name in self._json_columns:
            record[name] = json.loads(record[name]) if isinstance(record[name], str) else record[name] or []
        extra = json.loads(row["extra"] or "{}")
        return {**extra, **record}

    # ---- live calls -------------------------------------------------------------------
    async def save_call_writes(self, writes: list[CallWrite]) -> None:
        """Store the writes in one transaction: a live call's durable facts replace its last
        ones; a CDR replaces the live facts; each step's webhooks are queued with it. Each kind
        is one statement for all its rows (a round trip each on PostgreSQL, whatever the
        batch's size); a call's facts come before its CDR, its webhooks after both."""
        now = time.time()
        events = [event for write in writes for event in write.events]
        facts = [(w.call_id, w.tenant, w.pbx, _json(w.facts), now) for w in writes if w.facts is not None]
        ended = [w for w in writes if w.record is not None and w.facts is None]
        records = [self._cdr_row(w.record) for w in ended if w.record is not None]
        async with self._transaction() as db:
            if facts:
                await db.executemany("INSERT INTO live_calls (call_id, tenant, pbx, facts, updated_at) "
                                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET "
                                     "facts = excluded.facts, updated_at = excluded.updated_at", facts)
            if records:
                await db.executemany(self._cdr_upsert(), records)
                await db.executemany("DELETE FROM live_calls WHERE call_id = ?", [(w.call_id,) for w in ended])
            for write in writes:
                for delivery in write.deliveries:
                    await self._enqueue(db, delivery, now)
            heads = await self._append_events(db, events, now)    # last: the tenants' rows stay locked briefly
        await self._announce(heads)

    def _cdr_row(self, record: dict[str, Any]) -> list[Any]:
        """A whole CDR (the reporter's: every field) as the calls table's row."""
        if not record.get("call_id") or not record.get("tenant"):
            raise ValueError("a call record needs call_id and tenant")
        columns = {k: record.get(k) for k in self.call_columns}
        for name in self._boolean_columns:
            keep_none = columns[name] is None and name in self._nullable_booleans
            columns[name] = None if keep_none else bool(columns[name])
        for name in self._json_columns:
            columns[name] = _json(columns[name] or [])
        return [*columns.values(), _json({k: v for k, v in record.items() if k not in columns})]

    def _cdr_upsert(self) -> str:
        """Insert or replace a whole CDR; never one of another tenant (the update is refused)."""
        names = [*self.call_columns, "extra"]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        return (f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT (call_id) DO UPDATE SET {updates} WHERE calls.tenant = excluded.tenant")

    async def live_calls(self, pbx: str | None = None) -> list[dict[str, Any]]:
        """The durable facts of every call still live (of one PBX), oldest first, each with
        ``saved_at``: when they were last written."""
        sql = "SELECT facts, updated_at FROM live_calls"
        args: list[Any] = []
        if pbx is not None:
            sql += " WHERE pbx = ?"
            args.append(pbx)
        async with self._session() as db:
            rows = await db.fetch(sql + " ORDER BY updated_at", args)
        return [{**json.loads(r["facts"]), "saved_at": r["updated_at"]} for r in rows]

    # ---- several instances: who owns each live call, who is alive ----------------------
    async def claim_call(self, call_id: str, tenant: str, pbx: str, device: str, owner: str,
                         facts: dict[str, Any]) -> bool:
        """Register a new live call owned by ``owner`` and take its extension; False if that
        extension (on that PBX) already has a live call -- on any instance."""
        async with self._session() as db:
            return await self._claim_call(db, LiveClaim(call_id, tenant, pbx, device, owner, facts))

    async def _claim_call(self, db: Connection, call: LiveClaim) -> bool:
        rows = await db.fetch(
            "INSERT INTO live_calls (call_id, tenant, pbx, device, owner, facts, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING call_id",
            (call.call_id, call.tenant, call.pbx, call.device, call.owner, _json(call.facts), time.time()))
        return bool(rows)

    async def claim_click(self, claim: ClickClaim) -> ClickClaimed:
        """Everything a click takes in the store, in one transaction, in the order of
        ``ClickClaim``; stops at the first refusal (what was taken before it stays taken)."""
        async with self._transaction() as db:
            for n, bucket in enumerate(claim.buckets):
                allowed, tokens = await self._take_token(db, bucket)
                if not allowed:
                    return ClickClaimed("bucket", n, tokens)
            if claim.listed is not None and await self._is_blacklisted(db, *claim.listed):
                return ClickClaimed("listed")
            held = await self._claim_request(db, claim.key)
            if held is not None:
                return ClickClaimed("key", held=held)
            for n, bucket in enumerate(claim.key_buckets, start=len(claim.buckets)):
                allowed, tokens = await self._take_token(db, bucket)
                if not allowed:
                    return ClickClaimed("bucket", n, tokens, key_taken=True)
            if not await self._claim_call(db, claim.call):
                return ClickClaimed("call", key_taken=True)
            heads = await self._append_events(db, claim.events, time.time())
        await self._announce(heads)
        return ClickClaimed(key_taken=True)

    async def release_call(self, call_id: str) -> None:
        """Forget a call that never reached the PBX (and free its extension)."""
        async with self._session() as db:
            await db.execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

    async def live_call(self, call_id: str) -> dict[str, Any] | None:
        """A live call's facts (any owner's), with ``owner`` and ``cancel_requested``."""
        async with self._session() as db:
            rows = await db.fetch("SELECT facts, owner, cancel_requested, updated_at FROM live_calls "
                                  "WHERE call_id = ?", (call_id,))
        return self._live_row(rows[0]) if rows else None

    async def live_calls_of(self, tenant: str) -> list[dict[str, Any]]:
        """The facts of every live call of the tenant, whichever instance owns it."""
        async with self._session() as db:
            rows = await db.fetch("SELECT facts, owner, cancel_requested, updated_at FROM live_calls "
                                  "WHERE tenant = ? ORDER BY updated_at", (tenant,))
        return [self._live_row(r) for r in rows]

    async def request_cancel(self, call_id: str) -> str | None:
        """Mark a live call as cancelled through the API (whoever owns it, now or after an
        adoption, hangs it up); returns its owner, None if it is not live."""
        async with self._session() as db:
            rows = await db.fetch("UPDATE live_calls SET cancel_requested = ? WHERE call_id = ? RETURNING owner",
                                  (True, call_id))
        return rows[0]["owner"] if rows else None

    @staticmethod
    def _live_row(row: Row) -> dict[str, Any]:
        return {**json.loads(row["facts"]), "owner": row["owner"], "saved_at": row["updated_at"],
                "cancel_requested_via_api": bool(row["cancel_requested"])}

    async def heartbeat(self, instance_id: str, lease_until: float) -> bool:
        """Renew this instance's lease; False if it had been declared dead (its row was gone:
        its calls have been adopted by others)."""
        now = time.time()
        async with self._transaction() as db:
            rows = await db.fetch("UPDATE instances SET lease_until = ? WHERE id = ? AND lease_until >= ? "
                                  "RETURNING id", (lease_until, instance_id, now))
            if rows:
                return True
            await db.execute("INSERT INTO instances (id, started_at, lease_until) VALUES (?, ?, ?) "
                             "ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                             (instance_id, now, lease_until))
        return False

    async def leave(self, instance_id: str) -> None:
        """A clean stop: the instance's lease ends now, so others adopt its calls at once."""
        async with self._session() as db:
            await db.execute("UPDATE instances SET lease_until = 0 WHERE id = ?", (instance_id,))

    async def take_over(self, owner: str, *, everything: bool = False, own: bool = False) -> list[dict[str, Any]]:
        """Become the owner of the live calls of every instance whose lease has ended (and of
        calls nobody owns); with ``own``, also of those still under this instance's id (its
        previous process's: a restart under the same id may renew the lease before any other
        instance looked); with ``everything``, of all live calls (one process owns the store).
        Returns their facts; each call is taken by exactly one instance."""
        now = time.time()
        async with self._transaction() as db:
            if everything:
                rows = await db.fetch("UPDATE live_calls SET owner = ? "
                                      "RETURNING facts, owner, cancel_requested, updated_at", (owner,))
                await db.execute("UPDATE outbox SET claimed_until = 0 WHERE claimed_by <> ?", (owner,))
            else:
                rows = await db.fetch(
                    "UPDATE live_calls SET owner = ? WHERE owner IS NULL OR owner = ? OR owner IN "
                    "(SELECT id FROM instances WHERE lease_until < ? AND id <> ?) "
                    "OR (owner <> ? AND owner NOT IN (SELECT id FROM instances)) "
                    "RETURNING facts, owner, cancel_requested, updated_at",
                    (owner, owner if own else "", now, owner, owner))
                # the dead instances' webhook deliveries are free for anyone at once
                await db.execute("UPDATE outbox SET claimed_until = 0 WHERE state = 'pending' AND claimed_by IN "
                                 "(SELECT id FROM instances WHERE lease_until < ? AND id <> ?)", (now, owner))
            await db.execute("DELETE FROM instances WHERE lease_until < ? AND id <> ?", (now, owner))
        return [self._live_row(r) for r in rows]

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every instance listening on ``channel`` (here: this process only)."""
        for callback in self._listeners.get(channel, []):
            callback(payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        self._listeners.setdefault(channel, []).append(callback)

    async def instances(self) -> list[dict[str, Any]]:
        async with self._session() as db:
            return await db.fetch("SELECT id, started_at, lease_until FROM instances ORDER BY started_at")

    # ---- request keys (duplicate clicks, Idempotency-Key) and rate buckets -------------
    async def claim_request(self, scope: str, key: str, fingerprint: str, owner: str,
                            expires_at: float) -> dict[str, Any] | None:
        """Take a request key if it is free (or expired): None. Else the row of whoever holds
        it: ``fingerprint``, ``owner``, ``answer`` (None while that request runs)."""
        async with self._transaction() as db:
            return await self._claim_request(db, RequestKey(scope, key, fingerprint, owner, expires_at))

    async def _claim_request(self, db: Connection, key: RequestKey) -> dict[str, Any] | None:
        now = time.time()
        await db.execute("DELETE FROM request_keys WHERE scope = ? AND key = ? AND expires_at < ?",
                         (key.scope, key.key, now))
        rows = await db.fetch("INSERT INTO request_keys (scope, key, fingerprint, owner, expires_at) "
                              "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING key",
                              (key.scope, key.key, key.fingerprint, key.owner, key.expires_at))
        if rows:
            return None
        held = await db.fetch("SELECT fingerprint, owner, answer FROM request_keys WHERE scope = ? AND key = ?",
                              (key.scope, key.key))
        return held[0] if held else {"fingerprint": key.fingerprint, "owner": key.owner, "answer": None}

    async def request_answer(self, scope: str, key: str) -> dict[str, Any] | None:
        async with self._session() as db:
            rows = await db.fetch("SELECT fingerprint, owner, answer, expires_at FROM request_keys "
                                  "WHERE scope = ? AND key = ?", (scope, key))
        return rows[0] if rows else None

    async def answer_request(self, scope: str, key: str, answer: str, expires_at: float) -> None:
        async with self._session() as db:
            await db.execute("UPDATE request_keys SET answer = ?, expires_at = ? WHERE scope = ? AND key = ?",
                             (answer, expires_at, scope, key))

    async def drop_request(self, scope: str, key: str) -> None:
        async with self._session() as db:
            await db.execute("DELETE FROM request_keys WHERE scope = ? AND key = ?", (scope, key))

    async def prune(self, now: float) -> None:
        """Forget expired request keys, and rate buckets untouched for a day (full again, so
        the same as none: per-extension buckets would otherwise pile up)."""
        async with self._session() as db:
            await db.execute("DELETE FROM request_keys WHERE expires_at < ?", (now,))
            await db.execute("DELETE FROM rate_buckets WHERE updated_at < ?", (now - BUCKET_IDLE_SECONDS,))

    async def take_token(self, key: str, rate: float, burst: float) -> tuple[bool, float]:
        """One request against the token bucket ``key`` (``rate`` tokens per second, at most
        ``burst``): (allowed, tokens left). One statement, so instances never race."""
        async with self._session() as db:
            return await self._take_token(db, Bucket(key, rate, burst))

    async def _take_token(self, db: Connection, bucket: Bucket) -> tuple[bool, float]:
        rows = await db.fetch(
            f"INSERT INTO rate_buckets (key, tokens, updated_at, allowed) VALUES (?, ?, ?, ?) {self._take_tail()}",
            (bucket.key, bucket.burst - 1, time.time(), True, *self._refill_args(bucket)))
        return bool(rows[0]["allowed"]), float(rows[0]["tokens"])

    # ---- the do-not-call list ------------------------------------------------------------
    async def add_blacklisted(self, tenant: str, entries: Sequence[tuple[str, str, str]]) -> set[str]:
        """List ``(phone, phone_number, description)`` entries (``phone``: the compared form);
        returns the phones added -- one already listed is left as it is. One transaction."""
        added: set[str] = set()
        now = _utc_now()
        async with self._transaction() as db:
            for start in range(0, len(entries), _BATCH):
                chunk = entries[start:start + _BATCH]
                rows = await db.fetch(
                    "INSERT INTO blacklist (id, tenant, phone, phone_number, description, created_at) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)) + " ON CONFLICT DO NOTHING RETURNING phone",
                    [v for phone, given, description in chunk
                     for v in (str(uuid.uuid4()), tenant, phone, given, description, now)])
                added.update(r["phone"] for r in rows)
        return added

    async def remove_blacklisted(self, tenant: str, phones: Sequence[str]) -> set[str]:
        """Unlist the tenant's ``phones`` (compared forms); returns those that were listed."""
        removed: set[str] = set()
        async with self._transaction() as db:
            for start in range(0, len(phones), _BATCH):
                chunk = list(phones[start:start + _BATCH])
                rows = await db.fetch(f"DELETE FROM blacklist WHERE tenant = ? AND phone IN "
                                      f"({', '.join('?' * len(chunk))}) RETURNING phone", [tenant, *chunk])
                removed.update(r["phone"] for r in rows)
        return removed

    async def list_blacklisted(self, tenant: str, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the tenant's list, oldest first, and how many it holds."""
        async with self._read_session() as db:
            total = (await db.fetch("SELECT COUNT(*) AS n FROM blacklist WHERE tenant = ?", (tenant,)))[0]["n"]
            rows = await db.fetch("SELECT id, phone, phone_number, description, created_at FROM blacklist "
                                  "WHERE tenant = ? ORDER BY seq LIMIT ? OFFSET ?",
                                  (tenant, int(limit), int(offset)))
        return rows, int(total)

    async def get_blacklisted(self, tenant: str, id_or_phone: str, phone: str) -> dict[str, Any] | None:
        """The tenant's entry whose id is ``id_or_phone``, or else whose compared number is
        ``phone`` (two lookups, each on its own index)."""
        async with self._session() as db:
            rows = await db.fetch("SELECT id, phone, phone_number, description, created_at FROM blacklist "
                                  "WHERE id = ? AND tenant = ?", (id_or_phone, tenant))
            if not rows:
                rows = await db.fetch("SELECT id, phone, phone_number, description, created_at FROM blacklist "
                                      "WHERE tenant = ? AND phone = ?", (tenant, phone))
        return rows[0] if rows else None

    async def is_blacklisted(self, tenant: str, phone: str) -> bool:
        """Whether the tenant listed ``phone`` (its compared form): one lookup on the unique index."""
        async with self._session() as db:
            return await self._is_blacklisted(db, tenant, phone)

    @staticmethod
    async def _is_blacklisted(db: Connection, tenant: str, phone: str) -> bool:
        return bool(await db.fetch("SELECT 1 AS listed FROM blacklist WHERE tenant = ? AND phone = ?",
                                   (tenant, phone)))

    # ---- the event log (GET /v1/events/stream) ---------------------------------------------
    # Each tenant's events have their own sequence, allocated under the lock of the tenant's
    # event_heads row (held to the commit), so a tenant's rows commit in seq order: a reader
    # that has seen seq N and reads "seq > N" after a notification never skips a row. Tenants
    # are locked in name order, so two writers never deadlock.
    async def _append_events(self, db: Connection, events: Sequence[LogEvent], now: float) -> dict[str, int]:
        """In a transaction: append ``events`` (in order) to their tenants' logs; returns each
        tenant's new last seq, to announce once committed."""
        by_tenant: dict[str, list[LogEvent]] = {}
        for event in events:
            by_tenant.setdefault(event.tenant, []).append(event)
        heads: dict[str, int] = {}
        for tenant in sorted(by_tenant):
            batch = by_tenant[tenant]
            rows = await db.fetch("INSERT INTO event_heads (tenant, last_seq) VALUES (?, ?) ON CONFLICT (tenant) "
                                  "DO UPDATE SET last_seq = event_heads.last_seq + excluded.last_seq "
                                  "RETURNING last_seq", (tenant, len(batch)))
            last = int(rows[0]["last_seq"])
            first = last - len(batch) + 1
            for start in range(0, len(batch), _BATCH):
                chunk = batch[start:start + _BATCH]
                await db.execute("INSERT INTO events (tenant, seq, event, ext, call_id, data, created_at) VALUES "
                                 + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                                 [v for n, e in enumerate(chunk, first + start)
                                  for v in (tenant, n, e.event, e.ext, e.call_id, e.data, now)])
            heads[tenant] = last
            await self._notify_in(db, EVENTS_CHANNEL, f"{last} {tenant}")
        return heads

    async def _notify_in(self, db: Connection, channel: str, payload: str) -> None:
        """Inside a transaction: tell the listeners once it commits (PostgreSQL: NOTIFY, which
        is transactional; here: ``_announce`` after the commit, this process only)."""

    async def _announce(self, heads: Mapping[str, int]) -> None:
        """After the commit of ``_append_events``: the in-process notification (SQLite)."""
        for tenant, last in heads.items():
            await self.notify(EVENTS_CHANNEL, f"{last} {tenant}")

    async def log_events(self, events: Sequence[LogEvent]) -> None:
        """Append events to their tenants' logs, in one transaction."""
        async with self._transaction() as db:
            heads = await self._append_events(db, events, time.time())
        await self._announce(heads)

    async def read_events(self, cursors: Mapping[str, int], limit: int) -> list[dict[str, Any]]:
        """The events after each tenant's cursor (``{tenant: last seq seen}``), by tenant and
        seq, at most ``limit``: one statement for every tenant an instance streams."""
        if not cursors:
            return []
        where = " OR ".join(["(tenant = ? AND seq > ?)"] * len(cursors))
        args: list[Any] = [v for tenant, seq in cursors.items() for v in (tenant, int(seq))]
        async with self._session() as db:
            return await db.fetch(f"SELECT tenant, seq, event, ext, call_id, data FROM events WHERE {where} "
                                  "ORDER BY tenant, seq LIMIT ?", [*args, int(limit)])

    async def events_after(self, tenant: str, seq: int, limit: int) -> list[dict[str, Any]]:
        """The tenant's events after ``seq``, oldest first, at most ``limit`` (a resume)."""
        async with self._session() as db:
            return await db.fetch("SELECT tenant, seq, event, ext, call_id, data FROM events "
                                  "WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?", (tenant, int(seq), int(limit)))

    async def event_head(self, tenant: str) -> tuple[int, int]:
        """(the tenant's last seq, the last seq purged): 0, 0 for a log never written."""
        async with self._session() as db:
            rows = await db.fetch("SELECT last_seq, purged_seq FROM event_heads WHERE tenant = ?", (tenant,))
        return (int(rows[0]["last_seq"]), int(rows[0]["purged_seq"])) if rows else (0, 0)

    async def purge_events(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` events written before ``before`` (oldest first) and note, per
        tenant, the last seq purged; returns how many."""
        async with self._transaction() as db:
            rows = await db.fetch("DELETE FROM events WHERE (tenant, seq) IN (SELECT tenant, seq FROM events "
                                  "WHERE created_at < ? ORDER BY created_at LIMIT ?) RETURNING tenant, seq",
                                  (before, int(limit)))
            purged: dict[str, int] = {}
            for row in rows:
                purged[row["tenant"]] = max(purged.get(row["tenant"], 0), int(row["seq"]))
            for tenant in sorted(purged):
                await db.execute(f"UPDATE event_heads SET purged_seq = {self.greatest}(purged_seq, ?) "
                                 "WHERE tenant = ?", (purged[tenant], tenant))
        return len(rows)

    async def log_agent_rows(self, tenant: str, rows: Sequence[tuple[str, str]]) -> list[str]:
        """The agent monitor's rows ``(ext, row JSON)``: each one that differs from the row last
        logged for its extension is stored and appended to the tenant's log as an ``agent``
        event, in one transaction (so whichever instance logs a change, it is logged once);
        returns the extensions logged."""
        logged: list[str] = []
        now = time.time()
        async with self._transaction() as db:
            for ext, row in rows:
                changed = await db.fetch("INSERT INTO agent_rows (tenant, ext, row) VALUES (?, ?, ?) "
                                         "ON CONFLICT (tenant, ext) DO UPDATE SET row = excluded.row "
                                         "WHERE agent_rows.row <> excluded.row RETURNING ext", (tenant, ext, row))
                if changed:
                    logged.append(ext)
            heads = await self._append_events(
                db, [LogEvent(tenant, "agent", row, ext) for ext, row in rows if ext in logged], now)
        await self._announce(heads)
        return logged

    async def take_lease(self, name: str, owner: str, until: float) -> bool:
        """Hold the lease ``name`` until ``until`` if it is free, expired or already
        ``owner``'s; whether ``owner`` holds it now."""
        now = time.time()
        async with self._session() as db:
            rows = await db.fetch("INSERT INTO leases (name, owner, lease_until) VALUES (?, ?, ?) "
                                  "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                                  "lease_until = excluded.lease_until "
                                  "WHERE leases.owner = excluded.owner OR leases.lease_until < ? RETURNING owner",
                                  (name, owner, until, now))
        return bool(rows)

    def _take_tail(self) -> str:
        """A token take after its ``INSERT INTO rate_buckets ...`` (arguments: ``_refill_args``)."""
        refill = f"{self.least}(?, rate_buckets.tokens + (excluded.updated_at - rate_buckets.updated_at) * ?)"
        return ("ON CONFLICT (key) DO UPDATE SET "
                f"tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END, "
                f"allowed = {refill} >= 1, updated_at = excluded.updated_at RETURNING allowed, tokens")

    @staticmethod
    def _refill_args(bucket: Bucket) -> tuple[float, ...]:
        return (bucket.burst, bucket.rate) * 4

    # ---- webhook subscriptions -----------------------------------------------------------
    async def add_hook(self, tenant: str, url: str, events: list[str], secret: str, *,
                       max_hooks: int | None = None, api_key: str | None = None) -> dict[str, Any]:
        """Subscribe ``url`` to ``events`` (``[]`` or ``["*"]``: every event). With
        ``max_hooks``, a tenant that has that many already gets ``HookLimitReached``.
        ``api_key``: the receiver's key, sent with each delivery (stored as given)."""
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ValueError("events must be a list of strings")
        hook = {"id": str(uuid.uuid4()), "url": url, "events": list(events), "created_at": _utc_now()}
        cap = 2**31 - 1 if max_hooks is None else int(max_hooks)
        async with self._transaction() as db:
            if self.tenant_lock:      # concurrent registrations on other instances see this one's count
                await db.execute(self.tenant_lock, (tenant,))
            added = await db.fetch(
                "INSERT INTO hooks (id, tenant, url, events, secret, api_key, created_at) "
                "SELECT ?, ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM hooks WHERE tenant = ?) < ? RETURNING id",
                (hook["id"], tenant, url, json.dumps(hook["events"]), secret, api_key or None, hook["created_at"],
                 tenant, cap))
        if not added:
            raise HookLimitReached(f"a tenant may have at most {cap} webhooks")
        await self.notify(HOOKS_CHANNEL, tenant)
        return hook

    async def list_hooks(self, tenant: str, *, limit: int | None = None, page: int = 1) -> list[dict[str, Any]]:
        """The tenant's hooks (one page of ``limit`` if given), oldest first, without their
        secrets (those are write-only), with their ``api_key`` (the receiver's, None if none)."""
        sql = f"SELECT id, url, events, api_key, created_at FROM hooks WHERE tenant = ? ORDER BY {self.hook_order}"
        args: list[Any] = [tenant]
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), (max(1, int(page)) - 1) * int(limit)]
        async with self._session() as db:
            rows = await db.fetch(sql, args)
        return [{**r, "events": json.loads(r["events"])} for r in rows]

    async def count_hooks(self, tenant: str) -> int:
        async with self._session() as db:
            return int((await db.fetch("SELECT COUNT(*) AS n FROM hooks WHERE tenant = ?", (tenant,)))[0]["n"])

    async def hooks_for(self, tenant: str, event: str) -> list[dict[str, Any]]:
        """The tenant's hooks subscribed to ``event``, with secrets (for signing) and api keys.

        Called for every call event, so the tenant's hooks are cached in memory; add_hook and
        delete_hook, on any instance, invalidate every instance's cache (``HOOKS_CHANNEL``)."""
        hooks = self._hooks_cache.get(tenant)
        if hooks is None:
            async with self._session() as db:
                rows = await db.fetch(f"SELECT id, url, events, secret, api_key, created_at FROM hooks "
                                      f"WHERE tenant = ? ORDER BY {self.hook_order}", (tenant,))
            hooks = [{**r, "events": json.loads(r["events"])} for r in rows]
            self._hooks_cache[tenant] = hooks
        return [h for h in hooks if not h["events"] or "*" in h["events"] or event in h["events"]]

    async def delete_hook(self, tenant: str, hook_id: str) -> bool:
        """Remove the hook and its undelivered (and past) outbox rows."""
        async with self._transaction() as db:
            found = await db.fetch("SELECT 1 AS found FROM hooks WHERE tenant = ? AND id = ?", (tenant, hook_id))
            if not found:
                return False
            await db.execute("DELETE FROM outbox WHERE hook_id = ?", (hook_id,))
            await db.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))
        await self.notify(HOOKS_CHANNEL, tenant)
        return True

    def _forget_hooks(self, tenant: str) -> None:
        """A tenant's hooks changed (on any instance): read them again when next needed."""
        self._hooks_cache.pop(tenant, None)

    # ---- webhook outbox ---------------------------------------------------------------
    # Only the head (oldest pending row) of each (hook, call) may be sent; the rows behind it
    # are parked at next_attempt_at = HELD and released (due since their creation) when the
    # head is delivered or dead. So "due" is one range of the outbox_due index: the worker's
    # reads cost what is due, never what is queued or waiting for a retry.
    async def enqueue(self, hook_id: str, call_id: str, event: str, body: bytes, *,
                      now: float | None = None) -> int:
        """Queue one delivery (due at once unless an earlier one of its call and hook is
        pending); returns its row id (internal: receivers see ``delivery_id``)."""
        async with self._transaction() as db:
            return await self._enqueue(db, Delivery(hook_id, call_id, event, body), now)

    async def _enqueue(self, db: Connection, delivery: Delivery, now: float | None) -> int:
        """In a transaction. The head of the hook and call is locked (PostgreSQL) so it cannot
        finish -- and release the rows behind it -- between this check and this row's commit."""
        now = time.time() if now is None else now
        head = await db.fetch(f"SELECT id FROM outbox WHERE hook_id = ? AND call_id = ? AND state = 'pending' "
                              f"ORDER BY id LIMIT 1{self.lock_row}", (delivery.hook_id, delivery.call_id))
        rows = await db.fetch(
            "INSERT INTO outbox (hook_id, call_id, event, body, delivery_id, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (delivery.hook_id, delivery.call_id, delivery.event, delivery.body, str(uuid.uuid4()), now,
             HELD if head else now))
        return int(rows[0]["id"])

    async def pending_deliveries(self, limit: int) -> list[dict[str, Any]]:
        """Undelivered, not dead rows in queue order, with the hook's url and secret."""
        async with self._session() as db:
            return await db.fetch(f"SELECT {_OUTBOX_FIELDS} FROM outbox o JOIN hooks h ON h.id = o.hook_id "
                                  "WHERE o.state = 'pending' ORDER BY o.id LIMIT ?", (int(limit),))

    async def due_heads(self, now: float, *, per_hook: int, per_tenant: int) -> list[dict[str, Any]]:
        """What may be sent now and nobody has claimed: at most ``per_hook`` rows of a hook
        and ``per_tenant`` of a tenant (earliest due first), so one hook's or tenant's backlog
        never hides the others'. Only ids and keys (``id, hook_id, call_id, tenant``): no bodies."""
        async with self._session() as db:
            return await db.fetch(
                "SELECT id, hook_id, call_id, tenant FROM ("
                "  SELECT d.*, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY next_attempt_at, id) AS tenant_rank"
                "  FROM ("
                "    SELECT o.id, o.hook_id, o.call_id, h.tenant, o.next_attempt_at, ROW_NUMBER() OVER ("
                "      PARTITION BY o.hook_id ORDER BY o.next_attempt_at, o.id) AS hook_rank"
                "    FROM outbox o JOIN hooks h ON h.id = o.hook_id"
                "    WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND o.claimed_until <= ?"
                "  ) d WHERE hook_rank <= ?"
                ") t WHERE tenant_rank <= ? ORDER BY next_attempt_at, id",
                (now, now, int(per_hook), int(per_tenant)))

    async def claim(self, owner: str, ids: list[int], now: float, lease: float) -> list[dict[str, Any]]:
        """Claim the rows ``ids`` still free for ``lease`` seconds; returns those claimed, with
        bodies, url, secret and api key. A row another instance claimed meanwhile is not returned, so
        each delivery is attempted by one instance at a time, and none is lost if it dies."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        async with self._transaction() as db:
            # rows locked by a writer (an enqueue holding its call's head) are left for the next round
            claimed = await db.fetch(
                f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN (SELECT id FROM outbox "
                f"WHERE id IN ({marks}) AND state = 'pending' AND claimed_until <= ?{self.skip_locked_rows}) "
                "RETURNING id", (owner, now + lease, *ids, now))
            got = [row["id"] for row in claimed]
            if not got:
                return []
            return await db.fetch(f"SELECT {_OUTBOX_FIELDS} FROM outbox o JOIN hooks h ON h.id = o.hook_id "
                                  f"WHERE o.id IN ({', '.join('?' * len(got))}) ORDER BY o.next_attempt_at, o.id", got)

    async def release_claims(self, owner: str) -> None:
        """Forget ``owner``'s claims (it restarted: nothing of it is in flight any more)."""
        async with self._session() as db:
            await db.execute("UPDATE outbox SET claimed_until = 0 WHERE claimed_by = ? AND state = 'pending' "
                             "AND claimed_until > 0", (owner,))

    async def has_due(self, now: float) -> bool:
        async with self._session() as db:
            return bool(await db.fetch("SELECT 1 AS due FROM outbox WHERE state = 'pending' "
                                       "AND next_attempt_at <= ? LIMIT 1", (now,)))

    async def next_due_at(self, after: float) -> float | None:
        """The earliest retry time later than ``after`` (rows held behind another excluded)."""
        async with self._session() as db:
            rows = await db.fetch("SELECT MIN(next_attempt_at) AS at FROM outbox WHERE state = 'pending' "
                                  "AND next_attempt_at > ? AND next_attempt_at < ?", (after, HELD))
        return rows[0]["at"]

    async def defer_hook(self, hook_id: str, until: float, now: float) -> None:
        """The hook's receiver is failing: its due rows (not those in flight) wait until
        ``until`` without an attempt, rather than each failing in turn."""
        async with self._session() as db:
            await db.execute("UPDATE outbox SET next_attempt_at = ? WHERE id IN (SELECT id FROM outbox "
                             "WHERE hook_id = ? AND state = 'pending' AND next_attempt_at < ? AND claimed_until <= ?"
                             f"{self.skip_locked_rows})", (until, hook_id, until, now))

    async def mark_delivered(self, delivery_id: int) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE outbox SET state = 'delivered', finished_at = ?, last_error = NULL, "
                             "claimed_until = 0 WHERE id = ?", (time.time(), delivery_id))
            await db.execute(_RELEASE_NEXT, (delivery_id, HELD))

    async def mark_retry(self, delivery_id: int, attempts: int, next_attempt_at: float,
                         error: str) -> None:
        async with self._session() as db:
            await db.execute("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, claimed_until = 0 "
                             "WHERE id = ? AND state = 'pending'", (attempts, next_attempt_at, error, delivery_id))

    async def mark_dead(self, delivery_id: int, error: str) -> None:
        """Give up on the row; ``attempts`` counts the failed attempt that ended it."""
        async with self._transaction() as db:
            await db.execute("UPDATE outbox SET state = 'dead', attempts = attempts + 1, claimed_until = 0, "
                             "finished_at = ?, last_error = ? WHERE id = ? AND state = 'pending'",
                             (time.time(), error, delivery_id))
            await db.execute(_RELEASE_NEXT, (delivery_id, HELD))

    async def purge_finished(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` delivered or dead rows finished before ``before``; how many."""
        async with self._session() as db:
            rows = await db.fetch("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state <> 'pending' "
                                  "AND finished_at < ? ORDER BY finished_at LIMIT ?) RETURNING id",
                                  (before, int(limit)))
        return len(rows)

    async def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        async with self._session() as db:
            for row in await db.fetch("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"):
                counts[row["state"]] = int(row["n"])
        return counts

    async def hook_stats(self, tenant: str) -> dict[str, dict[str, Any]]:
        """Per hook of the tenant: its deliveries ``pending``, ``delivered`` and ``dead`` (those
        still in the outbox: finished ones are purged after ``webhooks.retention_days``), and
        the error of the latest delivery that failed an attempt (``last_error``, None if none)."""
        async with self._read_session() as db:
            counts = await db.fetch("SELECT o.hook_id, o.state, COUNT(*) AS n FROM outbox o JOIN hooks h "
                                    "ON h.id = o.hook_id WHERE h.tenant = ? GROUP BY o.hook_id, o.state", (tenant,))
            errors = await db.fetch(
                "SELECT hook_id, last_error FROM outbox WHERE id IN (SELECT MAX(e.id) FROM outbox e JOIN hooks h "
                "ON h.id = e.hook_id WHERE h.tenant = ? AND e.last_error IS NOT NULL GROUP BY e.hook_id)", (tenant,))
        stats: dict[str, dict[str, Any]] = {}
        for row in counts:
            entry = stats.setdefault(row["hook_id"], {"pending": 0, "delivered": 0, "dead": 0, "last_error": None})
            entry[row["state"]] = int(row["n"])
        for row in errors:
            entry = stats.setdefault(row["hook_id"], {"pending": 0, "delivered": 0, "dead": 0})
            entry["last_error"] = row["last_error"]
        return stats

    async def retry_dead(self, tenant: str, hook_id: str) -> int | None:
        """Queue the hook's dead deliveries again (due now, attempts from zero); how many,
        None if the tenant has no such hook."""
        now = time.time()
        async with self._transaction() as db:
            if not await db.fetch("SELECT 1 AS found FROM hooks WHERE tenant = ? AND id = ?", (tenant, hook_id)):
                return None
            rows = await db.fetch("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                                  "claimed_until = 0, finished_at = NULL WHERE hook_id = ? AND state = 'dead' "
                                  "RETURNING id", (now, hook_id))
        return len(rows)

    async def pending_by_tenant(self) -> dict[str, int]:
        """Undelivered deliveries per tenant (for ``/metrics``): a read of every pending row,
        so off the event loop where the backend has such reads (SQLite's reader threads)."""
        async with self._read_session() as db:
            rows = await db.fetch("SELECT h.tenant, COUNT(*) AS n FROM outbox o JOIN hooks h ON h.id = o.hook_id "
                                  "WHERE o.state = 'pending' GROUP BY h.tenant")
        return {r["tenant"]: int(r["n"]) for r in rows}


_BATCH = 500  # rows per statement of a bulk blacklist write (6 placeholders each: far below any limit)
HELD = 1e15   # next_attempt_at of a row waiting behind an earlier one of its hook and call
# After a row finished: the next row of its hook and call, if held, is due (since its creation).
_RELEASE_NEXT = ("UPDATE outbox SET next_attempt_at = created_at WHERE id = ("
                 "  SELECT MIN(n.id) FROM outbox n JOIN outbox f ON f.hook_id = n.hook_id AND f.call_id = n.call_id"
                 "  WHERE f.id = ? AND n.state = 'pending') AND next_attempt_at >= ?")

_OUTBOX_FIELDS = ("o.id, o.delivery_id, o.hook_id, o.call_id, o.event, o.body, o.attempts, "
                  "o.next_attempt_at, o.created_at, o.last_error, h.url, h.secret, h.api_key, h.tenant")

__all__ = ["HELD", "Connection", "Row", "SqlStorage"]
