"""The store's schema, as versioned migrations applied in order, the same on every backend.

Each migration is one script per backend (SQLite's types, PostgreSQL's types, same tables and
columns); ``tests/store/test_storage.py`` checks that both backends end with the same columns, and
``tests/calls/test_record.py`` that the calls table holds exactly the call record's fields
(``calls/record.py``). Never edit a released migration: append a new one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    sqlite: str
    postgresql: str


MIGRATIONS: list[Migration] = [
    Migration(1, sqlite="""
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
    """, postgresql="""
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
    Migration(2, sqlite="""
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
    """, postgresql="""
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
            id BIGSERIAL PRIMARY KEY,
            hook_id TEXT NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            event TEXT NOT NULL,
            body BYTEA NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            next_attempt_at DOUBLE PRECISION NOT NULL,
            last_error TEXT,
            finished_at DOUBLE PRECISION
        );
        CREATE INDEX outbox_pending ON outbox (hook_id, call_id, id) WHERE state = 'pending';
        CREATE INDEX outbox_state ON outbox (state);
    """),
    # Live calls' durable facts (a restart adopts them), and two record fields: the PBX a
    # call was placed on, and whether its end was unobserved (reconciled, not seen).
    Migration(3, sqlite="""
        ALTER TABLE calls ADD COLUMN pbx TEXT;
        ALTER TABLE calls ADD COLUMN ended_unobserved BOOLEAN NOT NULL DEFAULT 0;
        CREATE TABLE live_calls (
            call_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            pbx TEXT NOT NULL,
            facts TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX live_calls_pbx ON live_calls (pbx);
    """, postgresql="""
        ALTER TABLE calls ADD COLUMN pbx TEXT;
        ALTER TABLE calls ADD COLUMN ended_unobserved BOOLEAN NOT NULL DEFAULT FALSE;
        CREATE TABLE live_calls (
            call_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            pbx TEXT NOT NULL,
            facts TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX live_calls_pbx ON live_calls (pbx);
    """),
    # Several gateway instances on one database: which instance owns each live call (and
    # holds its extension: one live call per extension), the instances' leases, request keys
    # (duplicate clicks, Idempotency-Key), rate buckets, and webhook delivery claims.
    Migration(4, sqlite="""
        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            lease_until REAL NOT NULL
        );
        ALTER TABLE live_calls ADD COLUMN device TEXT;
        ALTER TABLE live_calls ADD COLUMN owner TEXT;
        ALTER TABLE live_calls ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT 0;
        CREATE UNIQUE INDEX live_calls_device ON live_calls (pbx, device);
        CREATE INDEX live_calls_owner ON live_calls (owner);
        CREATE TABLE request_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            owner TEXT NOT NULL,
            answer TEXT,
            expires_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX request_keys_expiry ON request_keys (expires_at);
        CREATE TABLE rate_buckets (
            key TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL,
            allowed BOOLEAN NOT NULL DEFAULT 1
        );
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
        ALTER TABLE outbox ADD COLUMN claimed_until REAL NOT NULL DEFAULT 0;
    """, postgresql="""
        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            started_at DOUBLE PRECISION NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL
        );
        ALTER TABLE live_calls ADD COLUMN device TEXT;
        ALTER TABLE live_calls ADD COLUMN owner TEXT;
        ALTER TABLE live_calls ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
        CREATE UNIQUE INDEX live_calls_device ON live_calls (pbx, device);
        CREATE INDEX live_calls_owner ON live_calls (owner);
        CREATE TABLE request_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            owner TEXT NOT NULL,
            answer TEXT,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX request_keys_expiry ON request_keys (expires_at);
        CREATE TABLE rate_buckets (
            key TEXT PRIMARY KEY,
            tokens DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            allowed BOOLEAN NOT NULL DEFAULT TRUE
        );
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
        ALTER TABLE outbox ADD COLUMN claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    """),
    # Fair, bounded webhooks: a random delivery id per row (X-C2C-Delivery; a global sequence
    # told every tenant the others' volume); the worker reads only due rows (an index on the
    # next attempt; rows waiting behind an earlier one of their hook and call are parked at
    # 1e15, the HELD time of store/sql.py, and released when it finishes); finished rows are
    # purged by age (an index on finished_at). The index on state alone goes: planners took it
    # for the due rows (every pending row) over the index on their next attempt. Only pending
    # rows get an id (finished ones are never sent again: no rewrite of the whole history).
    # Stop every instance before this upgrade: older code neither writes delivery ids nor
    # releases rows parked behind the one it finishes.
    Migration(5, sqlite="""
        ALTER TABLE outbox ADD COLUMN delivery_id TEXT;
        UPDATE outbox SET delivery_id = lower(hex(randomblob(16))) WHERE state = 'pending';
        UPDATE outbox SET next_attempt_at = 1e15 WHERE state = 'pending' AND id NOT IN (
            SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY hook_id, call_id);
        CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
        CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';
        CREATE INDEX outbox_claimed ON outbox (claimed_by) WHERE claimed_until > 0;
        DROP INDEX outbox_state;
    """, postgresql="""
        ALTER TABLE outbox ADD COLUMN delivery_id TEXT;
        UPDATE outbox SET delivery_id = md5(random()::text || clock_timestamp()::text || id::text)
            WHERE state = 'pending';
        UPDATE outbox SET next_attempt_at = 1e15 WHERE state = 'pending' AND id NOT IN (
            SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY hook_id, call_id);
        CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
        CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';
        CREATE INDEX outbox_claimed ON outbox (claimed_by) WHERE claimed_until > 0;
        DROP INDEX outbox_state;
    """),
    # The CRM's customer a call is about (POST /v2/click2call's id, v1's customer_id): a
    # record field, and GET /v1/cdr?customer_id= served by an index in time order.
    Migration(6, sqlite="""
        ALTER TABLE calls ADD COLUMN customer_id TEXT;
        CREATE INDEX calls_tenant_customer ON calls (tenant, customer_id, time_started);
    """, postgresql="""
        ALTER TABLE calls ADD COLUMN customer_id TEXT;
        CREATE INDEX calls_tenant_customer ON calls (tenant, customer_id, time_started);
    """),
    # The carrier's registration (POST /v1/event {"callback_url", "callback_apikey", "event"}):
    # the receiver's own key, sent with every delivery as X-Api-Key and Authorization: Bearer.
    # The gateway must send it, so it is stored as given (not hashed); NULL: none.
    Migration(7, sqlite="""
        ALTER TABLE hooks ADD COLUMN api_key TEXT;
    """, postgresql="""
        ALTER TABLE hooks ADD COLUMN api_key TEXT;
    """),
    # GET /v1/cdr/{id}: the id may be a call's SIP Call-ID. Partial (only calls that have
    # one), so planners never take it for a listing's other tenant-wide reads.
    Migration(8, sqlite="""
        CREATE INDEX calls_tenant_sip_call_id ON calls (tenant, sip_call_id) WHERE sip_call_id IS NOT NULL;
    """, postgresql="""
        CREATE INDEX calls_tenant_sip_call_id ON calls (tenant, sip_call_id) WHERE sip_call_id IS NOT NULL;
    """),
    # Call control (transfers, parks, supervisors) and recordings: the record's new fields.
    # Lists are JSON (jsonb on PostgreSQL), read back as lists.
    Migration(9, sqlite="""
        ALTER TABLE calls ADD COLUMN final_ext TEXT;
        ALTER TABLE calls ADD COLUMN transfers JSON NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN parks JSON NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN supervisors JSON NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT 0;
        ALTER TABLE calls ADD COLUMN recording_masked JSON NOT NULL DEFAULT '[]';
        UPDATE calls SET final_ext = extension;
    """, postgresql="""
        ALTER TABLE calls ADD COLUMN final_ext TEXT;
        ALTER TABLE calls ADD COLUMN transfers JSONB NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN parks JSONB NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN supervisors JSONB NOT NULL DEFAULT '[]';
        ALTER TABLE calls ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT FALSE;
        ALTER TABLE calls ADD COLUMN recording_masked JSONB NOT NULL DEFAULT '[]';
        UPDATE calls SET final_ext = extension;
    """),
    # The do-not-call list (GET/POST/DELETE /v1/blacklist), per tenant: ``phone`` is the number
    # as compared (E.164 by the tenant's region, or its digits), ``phone_number`` as given.
    # One row per tenant and number; a click looks its number up on the unique index; listings
    # go in the order numbers were listed (seq).
    Migration(10, sqlite="""
        CREATE TABLE blacklist (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            phone TEXT NOT NULL,
            phone_number TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX blacklist_tenant_phone ON blacklist (tenant, phone);
        CREATE INDEX blacklist_tenant_order ON blacklist (tenant, seq);
    """, postgresql="""
        CREATE TABLE blacklist (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            phone TEXT NOT NULL,
            phone_number TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX blacklist_tenant_phone ON blacklist (tenant, phone);
        CREATE INDEX blacklist_tenant_order ON blacklist (tenant, seq);
    """),
    # A call record field: whether the agent's phone answered by itself when auto-answer was
    # asked (NULL: not asked, or nothing tells).
    Migration(11, sqlite="""
        ALTER TABLE calls ADD COLUMN auto_answer_honoured BOOLEAN;
    """, postgresql="""
        ALTER TABLE calls ADD COLUMN auto_answer_honoured BOOLEAN;
    """),
    # The event log behind GET /v1/events/stream: each tenant's events in one durable order
    # (``seq``, per tenant, allocated under the tenant's ``event_heads`` row lock, so rows
    # commit in seq order and a reader never skips one), kept ``events.retention`` seconds;
    # ``purged_seq`` says how far a tenant's log was purged (a resume from before it is told
    # ``reset``). ``ext``: the extension an event is about (extension-scoped streams).
    # ``agent_rows``: the agent monitor's last logged row per extension, so an agent change is
    # logged once whichever instance sees it; ``leases``: which instance writes them.
    Migration(12, sqlite="""
        CREATE TABLE events (
            tenant TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            ext TEXT,
            call_id TEXT,
            data TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (tenant, seq)
        );
        CREATE INDEX events_created ON events (created_at);
        CREATE TABLE event_heads (
            tenant TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            purged_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE agent_rows (
            tenant TEXT NOT NULL,
            ext TEXT NOT NULL,
            row TEXT NOT NULL,
            PRIMARY KEY (tenant, ext)
        );
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            lease_until REAL NOT NULL
        );
    """, postgresql="""
        CREATE TABLE events (
            tenant TEXT NOT NULL,
            seq BIGINT NOT NULL,
            event TEXT NOT NULL,
            ext TEXT,
            call_id TEXT,
            data TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (tenant, seq)
        );
        CREATE INDEX events_created ON events (created_at);
        CREATE TABLE event_heads (
            tenant TEXT PRIMARY KEY,
            last_seq BIGINT NOT NULL,
            purged_seq BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE agent_rows (
            tenant TEXT NOT NULL,
            ext TEXT NOT NULL,
            row TEXT NOT NULL,
            PRIMARY KEY (tenant, ext)
        );
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL
        );
    """),
]

SCHEMA_VERSION = MIGRATIONS[-1].version
