"""``Storage`` on SQLite: call records (CDRs), webhook subscriptions and the webhook outbox.

One connection, used only from the event loop thread: every query is short and local (WAL,
synchronous=NORMAL), so blocking the loop for it is cheaper than a thread hop.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from .base import MAX_PAGE, StorageError
from .migrations import MIGRATIONS


def migrate(db: sqlite3.Connection, migrations: list[tuple[int, str]] = MIGRATIONS) -> int:
    """Bring the schema up to the last of ``migrations``; returns the resulting version.

    A database written by newer code is refused rather than guessed at."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    latest = migrations[-1][0] if migrations else 0
    if current > latest:
        raise StorageError(f"database schema is version {current}, newer than this c2c-ami "
                           f"(knows up to {latest}); upgrade c2c-ami or use another storage.path")
    for version, sql in migrations:
        if version <= current:
            continue
        try:
            # executescript runs the whole script; BEGIN/COMMIT make it one transaction,
            # so a failed migration leaves the previous version intact.
            db.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {int(version)};\nCOMMIT;")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"schema migration {version} failed: {exc}") from exc
        current = version
    return current


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SqliteStorage:
    """``Storage`` over one stdlib sqlite3 connection; ``path`` may be ``:memory:``."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
        try:
            # isolation_level=None: no hidden transactions; each write is its own statement
            # (autocommit) or an explicit short BEGIN IMMEDIATE ... COMMIT.
            self._db = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open database: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self._hooks_cache: dict[str, list[dict[str, Any]]] = {}  # tenant -> hooks, per event path
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self.schema_version = migrate(self._db)
            # The calls table's own columns (the call record's fields) hold a record; any
            # other key of a record is kept in its JSON ``extra`` column.
            self.call_columns: tuple[str, ...] = tuple(
                row["name"] for row in self._db.execute("PRAGMA table_info(calls)") if row["name"] != "extra")
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- calls ------------------------------------------------------------------------

    def save_call(self, record: dict[str, Any]) -> None:
        """Insert or update the CDR ``record["call_id"]``.

        Keys absent from ``record`` keep their stored value, so a CDR can be written as the
        call progresses; unknown keys go to the JSON ``extra`` column. A call_id never
        moves to another tenant: such an update is refused."""
        call_id, tenant = record.get("call_id"), record.get("tenant")
        if not call_id or not tenant:
            raise ValueError("a call record needs call_id and tenant")
        with self._transaction() as db:
            row = db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            merged = self._call_from_row(row) if row is not None else {}
            if row is not None and row["tenant"] != tenant:
                raise ValueError(f"call {call_id} belongs to another tenant")
            merged.update(record)
            columns = {k: merged.get(k) for k in self.call_columns}
            extra = {k: v for k, v in merged.items() if k not in columns}
            names = [*self.call_columns, "extra"]
            values = [*columns.values(), json.dumps(extra, separators=(",", ":"), default=str)]
            updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
            # ON CONFLICT ... DO UPDATE keeps the rowid (the tie-break of list_calls' order).
            db.execute(f"INSERT INTO calls ({', '.join(names)}) "
                       f"VALUES ({', '.join('?' * len(names))}) "
                       f"ON CONFLICT (call_id) DO UPDATE SET {updates}", values)

    def get_call(self, tenant: str, call_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM calls WHERE tenant = ? AND call_id = ?",
                               (tenant, call_id)).fetchone()
        return self._call_from_row(row) if row is not None else None

    def list_calls(self, tenant: str, *, start_date: str | None = None,
                   end_date: str | None = None, extension: str | None = None,
                   phone: str | None = None, status: str | None = None,
                   limit: int = 50, page: int = 1) -> tuple[list[dict[str, Any]], int]:
        """One page of the tenant's calls, newest first, and the total matching.

        ``start_date`` (inclusive) and ``end_date`` (exclusive) compare as ISO-8601 strings
        with ``time_started``, so a bare date like ``2024-05-01`` works too. ``phone``
        matches either party's number."""
        where, args = ["tenant = ?"], [tenant]
        if start_date:
            where.append("time_started >= ?")
            args.append(start_date)
        if end_date:
            where.append("time_started < ?")
            args.append(end_date)
        if extension:
            where.append("extension = ?")
            args.append(extension)
        if phone:
            where.append("(to_number = ? OR from_number = ?)")
            args += [phone, phone]
        if status:
            where.append("status = ?")
            args.append(status)
        clause = " AND ".join(where)
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = (max(1, int(page)) - 1) * limit
        total = self._db.execute(f"SELECT COUNT(*) FROM calls WHERE {clause}", args).fetchone()[0]
        rows = self._db.execute(
            f"SELECT * FROM calls WHERE {clause} "
            "ORDER BY time_started DESC, rowid DESC LIMIT ? OFFSET ?", [*args, limit, offset])
        return [self._call_from_row(r) for r in rows], total

    def _call_from_row(self, row: sqlite3.Row) -> dict[str, Any]:
        record = {k: row[k] for k in self.call_columns}
        extra = json.loads(row["extra"] or "{}")
        return {**extra, **record}

    # ---- webhook subscriptions -----------------------------------------------------------

    def add_hook(self, tenant: str, url: str, events: list[str], secret: str) -> dict[str, Any]:
        """Subscribe ``url`` to ``events`` (``[]`` or ``["*"]``: every event)."""
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ValueError("events must be a list of strings")
        hook = {"id": str(uuid.uuid4()), "url": url, "events": list(events),
                "created_at": _utc_now()}
        self._db.execute(
            "INSERT INTO hooks (id, tenant, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (hook["id"], tenant, url, json.dumps(hook["events"]), secret, hook["created_at"]))
        self._hooks_cache.pop(tenant, None)
        return hook

    def list_hooks(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's hooks without their secrets (those are write-only)."""
        rows = self._db.execute("SELECT id, url, events, created_at FROM hooks WHERE tenant = ? "
                                "ORDER BY created_at, rowid", (tenant,))
        return [{**dict(r), "events": json.loads(r["events"])} for r in rows]

    def hooks_for(self, tenant: str, event: str) -> list[dict[str, Any]]:
        """The tenant's hooks subscribed to ``event``, with secrets, for signing.

        Called for every call event, so the tenant's hooks are cached in memory; this
        object's own add_hook/delete_hook invalidate the cache (one gateway process owns
        the file)."""
        hooks = self._hooks_cache.get(tenant)
        if hooks is None:
            rows = self._db.execute("SELECT id, url, events, secret, created_at FROM hooks "
                                    "WHERE tenant = ? ORDER BY created_at, rowid", (tenant,))
            hooks = [{**dict(r), "events": json.loads(r["events"])} for r in rows]
            self._hooks_cache[tenant] = hooks
        return [h for h in hooks if not h["events"] or "*" in h["events"] or event in h["events"]]

    def delete_hook(self, tenant: str, hook_id: str) -> bool:
        """Remove the hook and its undelivered (and past) outbox rows."""
        with self._transaction() as db:
            found = db.execute("SELECT 1 FROM hooks WHERE tenant = ? AND id = ?",
                               (tenant, hook_id)).fetchone()
            if found is None:
                return False
            db.execute("DELETE FROM outbox WHERE hook_id = ?", (hook_id,))
            db.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))
        self._hooks_cache.pop(tenant, None)
        return True

    # ---- webhook outbox ---------------------------------------------------------------

    def enqueue(self, hook_id: str, call_id: str, event: str, body: bytes, *,
                now: float | None = None) -> int:
        """Queue one delivery, due at once; the returned id is the global order."""
        now = time.time() if now is None else now
        cur = self._db.execute(
            "INSERT INTO outbox (hook_id, call_id, event, body, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (hook_id, call_id, event, body, now, now))
        assert cur.lastrowid is not None   # set by every INSERT
        return cur.lastrowid

    def pending_deliveries(self, limit: int) -> list[dict[str, Any]]:
        """Undelivered, not dead rows in queue order, with the hook's url and secret."""
        rows = self._db.execute(
            f"SELECT {_OUTBOX_FIELDS} FROM outbox o JOIN hooks h ON h.id = o.hook_id "
            "WHERE o.state = 'pending' ORDER BY o.id LIMIT ?", (int(limit),))
        return [dict(r) for r in rows]

    def due_deliveries(self, now: float, per_hook: int) -> list[dict[str, Any]]:
        """What the notifier may send now: the oldest pending row of each (hook, call) --
        later rows of a call wait for it -- if due, at most ``per_hook`` per hook (earliest
        due first) so one hook's backlog never hides another hook's rows."""
        rows = self._db.execute(
            "WITH heads AS ("
            "  SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY hook_id, call_id"
            "), ranked AS ("
            "  SELECT o.id, ROW_NUMBER() OVER ("
            "    PARTITION BY o.hook_id ORDER BY o.next_attempt_at, o.id) AS rank"
            "  FROM outbox o JOIN heads USING (id) WHERE o.next_attempt_at <= ?"
            ") "
            f"SELECT {_OUTBOX_FIELDS} FROM ranked r JOIN outbox o ON o.id = r.id "
            "JOIN hooks h ON h.id = o.hook_id "
            "WHERE r.rank <= ? ORDER BY o.next_attempt_at, o.id", (now, int(per_hook)))
        return [dict(r) for r in rows]

    def next_due_at(self, after: float) -> float | None:
        """The earliest retry time later than ``after`` among rows that are next in line."""
        row = self._db.execute(
            "SELECT MIN(o.next_attempt_at) FROM outbox o JOIN ("
            "  SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY hook_id, call_id"
            ") heads USING (id) WHERE o.next_attempt_at > ?", (after,)).fetchone()
        return row[0]

    def mark_delivered(self, delivery_id: int) -> None:
        self._db.execute("UPDATE outbox SET state = 'delivered', finished_at = ?, last_error = NULL "
                         "WHERE id = ?", (time.time(), delivery_id))

    def mark_retry(self, delivery_id: int, attempts: int, next_attempt_at: float,
                   error: str) -> None:
        self._db.execute("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
                         "WHERE id = ? AND state = 'pending'",
                         (attempts, next_attempt_at, error, delivery_id))

    def mark_dead(self, delivery_id: int, error: str) -> None:
        """Give up on the row; ``attempts`` counts the failed attempt that ended it."""
        self._db.execute("UPDATE outbox SET state = 'dead', attempts = attempts + 1, "
                         "finished_at = ?, last_error = ? WHERE id = ? AND state = 'pending'",
                         (time.time(), error, delivery_id))

    def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        for state, n in self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"):
            counts[state] = n
        return counts


_OUTBOX_FIELDS = ("o.id, o.hook_id, o.call_id, o.event, o.body, o.attempts, "
                  "o.next_attempt_at, o.created_at, o.last_error, h.url, h.secret")
