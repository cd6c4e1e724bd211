"""The store's schema, as versioned migrations applied in order.

Never edit a released migration: append a new one. The calls table's columns are the call
record's fields (``calls/record.py``); ``tests/test_storage.py`` keeps the two in step.
"""
from __future__ import annotations

# (version, SQL script); on SQLite each runs in its own transaction and PRAGMA user_version
# records the last one applied.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
        CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            direction TEXT, extension TEXT, from_number TEXT, to_number TEXT,
            hotline TEXT, trunk TEXT, state TEXT, status TEXT, cause TEXT, cause_txt TEXT,
            hangup_by TEXT, ext_failure TEXT, number_failure TEXT, sip_call_id TEXT,
            ext_channel TEXT, trunk_channel TEXT,
            time_started TEXT, time_ext_answered TEXT, time_answered TEXT, time_ended TEXT,
            duration INTEGER, billsec INTEGER,
            extra TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX calls_tenant_started ON calls (tenant, time_started);
        CREATE INDEX calls_tenant_extension ON calls (tenant, extension, time_started);
        CREATE INDEX calls_tenant_to ON calls (tenant, to_number, time_started);
        CREATE INDEX calls_tenant_from ON calls (tenant, from_number, time_started);
        CREATE INDEX calls_tenant_status ON calls (tenant, status, time_started);
    """),
    (2, """
        CREATE TABLE hooks (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX hooks_tenant ON hooks (tenant);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            next_attempt_at REAL NOT NULL,
            last_error TEXT,
            finished_at REAL
        );
        CREATE INDEX outbox_pending ON outbox (hook_id, call_id, id) WHERE state = 'pending';
        CREATE INDEX outbox_state ON outbox (state);
    """),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
