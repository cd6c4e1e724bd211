"""The store, on both backends (SQLite, and a private PostgreSQL): same schema, same answers."""
import asyncio
import contextlib
import sqlite3
import time

import asyncpg
import pytest

from c2c_ami.config import StorageConfig
from c2c_ami.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CallWrite,
    Delivery,
    Migration,
    SqliteStorage,
    StorageError,
    migrate,
    open_storage,
)
from c2c_ami.store.postgres import PostgresStorage


@pytest.fixture
async def store(storage_url):
    s = await open_storage(StorageConfig(url=storage_url))
    yield s
    await s.close()


def call(call_id, tenant="acme", **kw):
    record = {"call_id": call_id, "tenant": tenant, "direction": "outbound", "extension": "101",
              "from_number": "02812345678", "to_number": "0901234567", "hotline": "02812345678",
              "trunk": "trunk1", "state": "ended", "status": "ANSWERED",
              "time_started": "2024-05-01T10:00:00.000+00:00", "duration": 30, "billsec": 20}
    record.update(kw)
    return record


def user_version(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


# ---- schema -------------------------------------------------------------------------------

async def test_fresh_database_gets_every_migration_and_its_directory(tmp_path):
    path = tmp_path / "not" / "yet" / "c2c.sqlite3"
    s = SqliteStorage(str(path))
    assert path.exists()
    assert s.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await s.close()
    assert user_version(path) == SCHEMA_VERSION


def test_versions_are_ordered_and_unique():
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1


async def test_both_backends_end_with_the_same_tables_and_columns(postgres, tmp_path):
    lite = SqliteStorage(str(tmp_path / "c2c.sqlite3"))
    tables = ("calls", "hooks", "outbox", "live_calls")
    sqlite_columns = {t: [r[1] for r in lite._db.execute(f"PRAGMA table_info({t})")] for t in tables}
    await lite.close()
    url = postgres.create_database()
    pg = await PostgresStorage.connect(url)
    assert pg.schema_version == SCHEMA_VERSION
    await pg.close()
    conn = await asyncpg.connect(url)
    try:
        pg_columns = {t: [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
            "ORDER BY ordinal_position", t)] for t in tables}
        assert await conn.fetchval("SELECT max(version) FROM c2c_schema") == SCHEMA_VERSION
    finally:
        await conn.close()
    assert pg_columns == sqlite_columns


async def test_postgresql_gateways_starting_together_migrate_once(postgres):
    url = postgres.create_database()
    stores = await asyncio.gather(*(PostgresStorage.connect(url) for _ in range(4)))
    assert {s.schema_version for s in stores} == {SCHEMA_VERSION}
    await asyncio.gather(*(s.close() for s in stores))
    conn = await asyncpg.connect(url)
    try:
        assert [r["version"] for r in await conn.fetch("SELECT version FROM c2c_schema ORDER BY version")] == \
            [m.version for m in MIGRATIONS]
    finally:
        await conn.close()


async def test_upgrade_from_v1_applies_only_missing_migrations_and_keeps_data(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, MIGRATIONS[:1]) == 1
    db.execute("INSERT INTO calls (call_id, tenant, time_started) VALUES ('c1', 'acme', '2024')")
    db.close()
    assert user_version(path) == 1

    s = SqliteStorage(path)
    assert s.schema_version == SCHEMA_VERSION
    assert (await s.get_call("acme", "c1"))["time_started"] == "2024"
    assert (await s.add_hook("acme", "http://x/", ["*"], "k"))["id"]   # v2 tables exist
    await s.close()
    await SqliteStorage(path).close()   # reopening an up-to-date file changes nothing
    assert user_version(path) == SCHEMA_VERSION


async def test_upgrade_to_v5_holds_rows_behind_their_call_head_and_gives_delivery_ids(tmp_path):
    path = str(tmp_path / "v4.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, [m for m in MIGRATIONS if m.version <= 4]) == 4
    db.execute("INSERT INTO hooks (id, tenant, url, events, secret, created_at) "
               "VALUES ('h', 'acme', 'http://x/', '[]', 'k', '2024')")
    for call_id, event in (("c1", "ringing"), ("c1", "hangup"), ("c2", "ringing")):
        db.execute("INSERT INTO outbox (hook_id, call_id, event, body, created_at, next_attempt_at) "
                   "VALUES ('h', ?, ?, x'7b7d', 5, 5)", (call_id, event))
    db.execute("INSERT INTO outbox (hook_id, call_id, event, body, created_at, next_attempt_at, state) "
               "VALUES ('h', 'c0', 'cdr', x'7b7d', 1, 1, 'delivered')")        # history: left as it was
    db.close()

    s = SqliteStorage(path)
    try:
        rows = await s.pending_deliveries(10)
        ring1, hangup1, ring2 = (r["id"] for r in rows)
        assert [r["id"] for r in await s.due_heads(10.0, per_hook=9, per_tenant=9)] == [ring1, ring2]
        assert len({r["delivery_id"] for r in rows}) == 3 and all(len(r["delivery_id"]) == 32 for r in rows)
        finished = sqlite3.connect(path).execute("SELECT delivery_id FROM outbox WHERE state <> 'pending'").fetchall()
        assert finished == [(None,)]
        await s.mark_delivered(ring1)                                    # c1's hangup waited for it
        assert [r["id"] for r in await s.due_heads(10.0, per_hook=9, per_tenant=9)] == [hangup1, ring2]
    finally:
        await s.close()


async def test_upgrade_from_v5_adds_customer_id_and_keeps_rows(tmp_path):
    path = str(tmp_path / "v5.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, [m for m in MIGRATIONS if m.version <= 5]) == 5
    assert "customer_id" not in [r[1] for r in db.execute("PRAGMA table_info(calls)")]
    db.execute("INSERT INTO calls (call_id, tenant, extension, status, time_started, extra) "
               "VALUES ('old', 'acme', '101', 'BUSY', '2024-05-01', '{\"note\": \"kept\"}')")
    db.execute("INSERT INTO live_calls (call_id, tenant, pbx, facts, updated_at) "
               "VALUES ('live', 'acme', 'default', '{\"call_id\": \"live\"}', 1)")
    db.close()

    s = SqliteStorage(path)
    try:
        assert s.schema_version == SCHEMA_VERSION and user_version(path) == SCHEMA_VERSION >= 6
        old = await s.get_call("acme", "old")
        assert (old["extension"], old["status"], old["note"], old["customer_id"]) == ("101", "BUSY", "kept", None)
        assert [r["call_id"] for r in await s.live_calls()] == ["live"]
        await s.save_call(call("new", customer_id="KH1", time_started="2024-05-02"))
        assert [r["call_id"] for r in (await s.list_calls("acme", customer_id="KH1"))[0]] == ["new"]
        assert (await s.list_calls("acme"))[1] == 2
        indexes = [r[1] for r in s._db.execute("PRAGMA index_list(calls)")]
        assert "calls_tenant_customer" in indexes
    finally:
        await s.close()


async def postgres_at_v5(postgres, *rows: str) -> str:
    """A new PostgreSQL database migrated to schema 5 only, holding ``rows`` (INSERTs)."""
    from c2c_ami.store.postgres import migrate as pg_migrate
    url = postgres.create_database()
    conn = await asyncpg.connect(url)
    try:
        assert await pg_migrate(conn, [m for m in MIGRATIONS if m.version <= 5]) == 5
        for row in rows:
            await conn.execute(row)
    finally:
        await conn.close()
    return url


async def test_postgresql_upgrade_from_v5_adds_customer_id_and_keeps_rows(postgres):
    url = await postgres_at_v5(postgres, "INSERT INTO calls (call_id, tenant, extension, time_started) "
                                         "VALUES ('old', 'acme', '101', '2024-05-01')")
    s = await PostgresStorage.connect(url)
    try:
        assert s.schema_version == SCHEMA_VERSION
        old = await s.get_call("acme", "old")
        assert (old["extension"], old["customer_id"]) == ("101", None)
        await s.save_call(call("new", customer_id="KH1", time_started="2024-05-02"))
        assert [r["call_id"] for r in (await s.list_calls("acme", customer_id="KH1"))[0]] == ["new"]
    finally:
        await s.close()


async def test_newer_database_is_refused(tmp_path):
    path = str(tmp_path / "new.sqlite3")
    await SqliteStorage(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer than this c2c-ami"):
        SqliteStorage(path)


async def test_failed_migration_rolls_back_entirely(tmp_path):
    db = sqlite3.connect(str(tmp_path / "x.sqlite3"), isolation_level=None)
    bad = [Migration(1, sqlite="CREATE TABLE a (x); CREATE TABLE a (x);", postgresql="")]
    with pytest.raises(StorageError, match="migration 1"):
        migrate(db, bad)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'a'").fetchone() is None
    db.close()


async def test_sqlite_checkpoints_off_the_event_loop_once_enough_rows_changed(tmp_path, monkeypatch):
    """Commits on the event loop never checkpoint (that waits on the disk); a worker does,
    every CHECKPOINT_EVERY changed rows. The main file (read ignoring the WAL) shows it."""
    import c2c_ami.store.sqlite as sqlite_store
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "c2c.sqlite3"
    s = SqliteStorage(str(path))
    assert s._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0

    def rows_in_main_file():
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calls'").fetchone() is None:
                return 0        # even the schema is still only in the WAL
            return db.execute("SELECT count(*) FROM calls").fetchone()[0]
        finally:
            db.close()

    for n in range(19):
        await s.save_call(call(f"c{n}"))
    assert s._checkpointer._running is None and rows_in_main_file() == 0   # all in the WAL
    await s.save_call(call("c19"))
    await s._checkpointer._running                          # begun by the 20th row
    assert rows_in_main_file() == 20
    await s.close()


# ---- calls ----------------------------------------------------------------------------------

async def test_save_and_get_round_trip_with_extra_keys(store):
    await store.save_call(call("c1", recording="rec/c1.wav", tags=["vip"]))
    got = (await store.get_call("acme", "c1"))
    assert got["status"] == "ANSWERED" and got["duration"] == 30 and got["time_ended"] is None
    assert got["recording"] == "rec/c1.wav" and got["tags"] == ["vip"]
    assert "extra" not in got


async def test_save_is_an_upsert_that_keeps_absent_keys(store):
    await store.save_call(call("c1", status=None, state="ext_ringing", duration=None, note="a"))
    (await store.save_call({"call_id": "c1", "tenant": "acme", "state": "ended", "status": "BUSY",
                     "duration": 5, "other": 1}))
    got = (await store.get_call("acme", "c1"))
    assert (got["state"], got["status"], got["duration"], got["extension"]) == ("ended", "BUSY", 5, "101")
    assert (got["note"], got["other"]) == ("a", 1)
    assert (await store.list_calls("acme"))[1] == 1


async def test_save_requires_ids_and_never_moves_a_call_to_another_tenant(store):
    with pytest.raises(ValueError):
        await store.save_call({"call_id": "c1"})
    await store.save_call(call("c1"))
    with pytest.raises(ValueError, match="another tenant"):
        await store.save_call(call("c1", tenant="evil", status="FAILED"))
    assert (await store.get_call("acme", "c1"))["status"] == "ANSWERED"
    assert (await store.get_call("evil", "c1")) is None


async def test_list_filters_order_and_pagination(store):
    for i in range(7):
        (await store.save_call(call(f"c{i}", time_started=f"2024-05-0{i + 1}T10:00:00.000+00:00",
                             extension="101" if i % 2 else "102",
                             to_number="0900000000" if i == 3 else "0901234567",
                             status="BUSY" if i in (2, 4) else "ANSWERED")))
    await store.save_call(call("other", tenant="globex", time_started="2024-05-03T10:00:00.000+00:00"))

    rows, total, _ = (await store.list_calls("acme"))
    assert total == 7 and [r["call_id"] for r in rows] == [f"c{i}" for i in range(6, -1, -1)]

    rows, total, _ = (await store.list_calls("acme", start_date="2024-05-02", end_date="2024-05-04"))
    assert total == 2 and [r["call_id"] for r in rows] == ["c2", "c1"]   # start incl., end excl.
    assert (await store.list_calls("acme", extension="101"))[1] == 3
    assert [r["call_id"] for r in (await store.list_calls("acme", phone="0900000000"))[0]] == ["c3"]
    assert [r["call_id"] for r in (await store.list_calls("acme", phone="02812345678"))[0]][:1] == ["c6"]
    assert [r["call_id"] for r in (await store.list_calls("acme", status="BUSY"))[0]] == ["c4", "c2"]
    assert (await store.list_calls("acme", customer_id="KH1")) == ([], 0, True)
    await store.save_call({"call_id": "c1", "tenant": "acme", "customer_id": "KH1"})   # an upsert
    await store.save_call(call("k", tenant="globex", customer_id="KH1"))
    rows, total, _ = await store.list_calls("acme", customer_id="KH1")
    assert (total, [r["call_id"] for r in rows], rows[0]["extension"]) == (1, ["c1"], "101")

    page2, total, _ = (await store.list_calls("acme", limit=3, page=2))
    assert total == 7 and [r["call_id"] for r in page2] == ["c3", "c2", "c1"]
    page3, _, _ = (await store.list_calls("acme", limit=3, page=3))
    assert [r["call_id"] for r in page3] == ["c0"]
    assert (await store.list_calls("acme", limit=3, page=9)) == ([], 7, True)


async def test_list_offset_replaces_page(store):
    for i in range(5):
        await store.save_call(call(f"c{i}", time_started=f"2024-05-0{i + 1}T10:00:00.000+00:00"))
    rows, total, exact = await store.list_calls("acme", limit=2, page=1, offset=3)
    assert ([r["call_id"] for r in rows], total, exact) == (["c1", "c0"], 5, True)


async def test_scroll_is_keyset_paging_newest_first_ties_by_call_id(store):
    # nine calls, three per time_started; another tenant's in between
    for i in range(9):
        await store.save_call(call(f"c{(i * 4) % 9}", time_started=f"2024-05-0{1 + i // 3}T10:00:00.000+00:00",
                                   to_number="0900000000" if i % 2 else "0901234567"))
    await store.save_call(call("other", tenant="globex", time_started="2024-05-02T10:00:00.000+00:00"))
    everything = await store.scroll_calls("acme", limit=500)
    order = [(r["time_started"], r["call_id"]) for r in everything]
    assert order == sorted(order, reverse=True) and len(order) == 9
    seen, after = [], None
    while True:
        batch = await store.scroll_calls("acme", limit=2, after=after)
        if not batch:
            break
        seen += [(r["time_started"], r["call_id"]) for r in batch]
        after = seen[-1]
    assert seen == order
    phone = await store.scroll_calls("acme", phone="0900000000", limit=2, after=order[0])
    dialed = {(r["time_started"], r["call_id"]) for r in everything if r["to_number"] == "0900000000"}
    assert [(r["time_started"], r["call_id"]) for r in phone] == [o for o in order[1:] if o in dialed][:2]
    dated = await store.scroll_calls("acme", start_date="2024-05-02", end_date="2024-05-03", limit=500)
    assert [r["call_id"] for r in dated] == [c for t, c in order if t.startswith("2024-05-02")]


async def test_find_call_by_call_id_or_sip_call_id_of_the_tenant_only(store):
    await store.save_call(call("c1", sip_call_id="abc@host"))
    await store.save_call(call("c2", sip_call_id="c1"))                      # a SIP Call-ID that is another call's id
    await store.save_call(call("g1", tenant="globex", sip_call_id="xyz@host"))
    assert (await store.find_call("acme", "c1"))["call_id"] == "c1"          # the call_id first
    assert (await store.find_call("acme", "abc@host"))["call_id"] == "c1"
    assert await store.find_call("acme", "xyz@host") is None and await store.find_call("acme", "g1") is None
    assert (await store.find_call("globex", "xyz@host"))["call_id"] == "g1"


async def test_list_limit_is_capped(store):
    for i in range(502):
        await store.save_call(call(f"c{i:03d}"))
    rows, total, _ = (await store.list_calls("acme", limit=10_000))
    assert total == 502 and len(rows) == 500
    assert len((await store.list_calls("acme", limit=0))[0]) == 1


async def test_calls_are_tenant_scoped(store):
    await store.save_call(call("a1", tenant="acme"))
    await store.save_call(call("g1", tenant="globex"))
    assert (await store.get_call("globex", "a1")) is None
    assert [r["call_id"] for r in (await store.list_calls("globex"))[0]] == ["g1"]
    assert (await store.list_calls("nobody")) == ([], 0, True)


# ---- hooks ----------------------------------------------------------------------------------

async def test_hooks_crud_hides_secrets_and_is_tenant_scoped(store):
    h1 = (await store.add_hook("acme", "https://crm.example/hook", ["ringing", "hangup"], "s1"))
    h2 = (await store.add_hook("acme", "https://crm.example/all", [], "s2"))
    g1 = (await store.add_hook("globex", "https://globex.example/", ["*"], "s3"))
    assert set(h1) == {"id", "url", "events", "created_at"} and h1["events"] == ["ringing", "hangup"]

    listed = (await store.list_hooks("acme"))
    assert [h["id"] for h in listed] == [h1["id"], h2["id"]]
    assert all("secret" not in h for h in listed)

    assert [(h["id"], h["secret"]) for h in (await store.hooks_for("acme", "ringing"))] == [
        (h1["id"], "s1"), (h2["id"], "s2")]
    assert [h["id"] for h in (await store.hooks_for("acme", "cdr"))] == [h2["id"]]
    assert [h["id"] for h in (await store.hooks_for("globex", "cdr"))] == [g1["id"]]

    assert (await store.delete_hook("globex", h1["id"])) is False      # not theirs
    assert (await store.delete_hook("acme", h1["id"])) is True
    assert (await store.delete_hook("acme", h1["id"])) is False
    assert [h["id"] for h in (await store.list_hooks("acme"))] == [h2["id"]]
    assert [h["id"] for h in (await store.list_hooks("globex"))] == [g1["id"]]


async def test_a_hooks_api_key_is_kept_as_given_for_its_deliveries(store):
    keyed = await store.add_hook("acme", "https://crm.example/k", ["cdr"], "s1", api_key="Rcv-Key.1~")
    plain = await store.add_hook("acme", "https://crm.example/p", ["cdr"], "s2", api_key="")
    assert set(keyed) == {"id", "url", "events", "created_at"}          # not echoed by the store
    expected = {(keyed["id"], "Rcv-Key.1~"), (plain["id"], None)}       # ("": none)
    assert {(h["id"], h["api_key"]) for h in await store.list_hooks("acme")} == expected
    assert {(h["id"], h["api_key"]) for h in await store.hooks_for("acme", "cdr")} == expected
    for hook in (keyed, plain):
        await store.enqueue(hook["id"], "c1", "cdr", b"{}")
    rows = await store.pending_deliveries(10)
    claimed = await store.claim("me", [r["id"] for r in rows], 10**10, 60)
    assert {(r["hook_id"], r["api_key"]) for r in claimed} == expected


async def test_add_hook_rejects_non_list_events(store):
    with pytest.raises(ValueError):
        await store.add_hook("acme", "http://x/", "ringing", "s")


# ---- outbox ---------------------------------------------------------------------------------

async def test_outbox_order_and_state_transitions(store):
    h = (await store.add_hook("acme", "http://x/", ["*"], "sec"))
    ids = [(await store.enqueue(h["id"], "c1", ev, f'{{"n":{i}}}'.encode(), now=100.0))
           for i, ev in enumerate(["ringing", "answered", "hangup"])]
    assert ids == sorted(ids)
    pending = (await store.pending_deliveries(10))
    assert [p["id"] for p in pending] == ids
    first = pending[0]
    assert (first["url"], first["secret"], first["attempts"], first["next_attempt_at"]) == (
        "http://x/", "sec", 0, 100.0)
    assert first["body"] == b'{"n":0}' and first["event"] == "ringing" and first["call_id"] == "c1"
    assert [p["id"] for p in (await store.pending_deliveries(2))] == ids[:2]

    await store.mark_retry(ids[0], 1, 200.0, "HTTP 500")
    row = (await store.pending_deliveries(1))[0]
    assert (row["attempts"], row["next_attempt_at"], row["last_error"]) == (1, 200.0, "HTTP 500")

    await store.mark_delivered(ids[1])
    await store.mark_dead(ids[2], "gone")
    assert (await store.outbox_counts()) == {"pending": 1, "delivered": 1, "dead": 1}
    assert [p["id"] for p in (await store.pending_deliveries(10))] == [ids[0]]
    (await store.mark_retry(ids[2], 5, 1.0, "late"))            # a finished row stays finished
    assert (await store.outbox_counts())["dead"] == 1


async def test_due_heads_offers_only_the_head_of_each_call_within_the_caps(store):
    a = (await store.add_hook("acme", "http://a/", ["*"], "sa"))["id"]
    b = (await store.add_hook("acme", "http://b/", ["*"], "sb"))["id"]
    g = (await store.add_hook("globex", "http://g/", ["*"], "sg"))["id"]
    a1 = (await store.enqueue(a, "c1", "ringing", b"1", now=10.0))
    a2 = (await store.enqueue(a, "c1", "answered", b"2", now=11.0))
    a3 = (await store.enqueue(a, "c2", "ringing", b"3", now=12.0))
    b1 = (await store.enqueue(b, "c1", "ringing", b"4", now=13.0))
    g1 = (await store.enqueue(g, "c9", "ringing", b"5", now=14.0))

    def ids(rows):
        return [r["id"] for r in rows]
    heads = await store.due_heads(100.0, per_hook=10, per_tenant=10)
    assert ids(heads) == [a1, a3, b1, g1] and "body" not in heads[0]
    assert [(r["tenant"], r["hook_id"], r["call_id"]) for r in heads][-1] == ("globex", g, "c9")
    assert ids(await store.due_heads(12.5, per_hook=10, per_tenant=10)) == [a1, a3]
    assert ids(await store.due_heads(100.0, per_hook=1, per_tenant=10)) == [a1, b1, g1]    # per-hook share
    assert ids(await store.due_heads(100.0, per_hook=10, per_tenant=1)) == [a1, g1]        # per-tenant share

    (await store.mark_retry(a1, 1, 50.0, "HTTP 500"))     # c1's head waits: a2 must wait with it
    assert ids(await store.due_heads(20.0, per_hook=10, per_tenant=10)) == [a3, b1, g1]
    assert (await store.next_due_at(20.0)) == 50.0
    assert ids(await store.due_heads(60.0, per_hook=10, per_tenant=10)) == [a3, b1, g1, a1]
    await store.mark_dead(a1, "gone")
    assert ids(await store.due_heads(60.0, per_hook=10, per_tenant=10)) == [a2, a3, b1, g1]
    assert (await store.next_due_at(60.0)) is None


async def test_claimed_rows_are_not_offered_again_until_released(store):
    h = (await store.add_hook("acme", "http://a/", ["*"], "s"))["id"]
    r1 = await store.enqueue(h, "c1", "ringing", b"body-1", now=10.0)
    r2 = await store.enqueue(h, "c2", "ringing", b"body-2", now=10.0)
    got = await store.claim("gw1", [r1], 20.0, 30.0)
    assert [(r["id"], r["body"], r["tenant"]) for r in got] == [(r1, b"body-1", "acme")]
    assert got[0]["delivery_id"] and got[0]["delivery_id"] != str(r1)
    assert [r["id"] for r in await store.claim("gw2", [r1, r2], 21.0, 30.0)] == [r2]   # r1 is gw1's
    assert [r["id"] for r in await store.due_heads(22.0, per_hook=10, per_tenant=10)] == []   # r2: gw2's now
    await store.release_claims("gw1")
    assert [r["id"] for r in await store.due_heads(22.0, per_hook=10, per_tenant=10)] == [r1]


async def test_a_row_queued_while_its_head_finishes_on_another_connection_is_not_stranded(postgres):
    """PostgreSQL, several connections: the head's delivery commits while the next event of its
    call is queued. The new row must end up due, never held behind a head that is gone."""
    from c2c_ami.store.sql import _RELEASE_NEXT, HELD
    url = postgres.create_database()
    store = await open_storage(StorageConfig(url=url))
    other = await asyncpg.connect(url)
    try:
        h = (await store.add_hook("acme", "http://x/", ["*"], "s"))["id"]
        head = await store.enqueue(h, "c1", "ringing", b"1", now=10.0)
        finishing = other.transaction()
        await finishing.start()                              # another instance marks the head delivered...
        await other.execute("UPDATE outbox SET state = 'delivered', finished_at = 11 WHERE id = $1", head)
        queued = asyncio.create_task(store.enqueue(h, "c1", "hangup", b"2", now=12.0))
        done, _ = await asyncio.wait([queued], timeout=0.3)
        assert not done                                      # ...the writer waits for the head's lock
        await other.execute(_RELEASE_NEXT.replace("?", "$1", 1).replace("?", "$2", 1), head, HELD)
        await finishing.commit()
        second = await asyncio.wait_for(queued, 5)
        assert [r["id"] for r in await store.due_heads(100.0, per_hook=9, per_tenant=9)] == [second]
    finally:
        await other.close()
        await store.close()


async def test_deleting_a_hook_drops_its_outbox_rows(store):
    h = (await store.add_hook("acme", "http://x/", ["*"], "s"))
    keep = (await store.add_hook("acme", "http://y/", ["*"], "s"))
    await store.enqueue(h["id"], "c1", "ringing", b"{}")
    kept = (await store.enqueue(keep["id"], "c1", "ringing", b"{}"))
    assert (await store.delete_hook("acme", h["id"]))
    assert [p["id"] for p in (await store.pending_deliveries(10))] == [kept]


async def test_outbox_survives_reopen(storage_url):
    s = await open_storage(StorageConfig(url=storage_url))
    h = await s.add_hook("acme", "http://x/", ["cdr"], "s")
    rid = await s.enqueue(h["id"], "c1", "cdr", b"{}")
    await s.close()
    s = await open_storage(StorageConfig(url=storage_url))
    assert [p["id"] for p in await s.pending_deliveries(10)] == [rid]
    assert await s.enqueue(h["id"], "c1", "cdr", b"{}") > rid
    await s.close()


# ---- live calls -----------------------------------------------------------------------------

async def test_live_facts_replace_each_other_then_the_cdr_replaces_them(store):
    hook = await store.add_hook("acme", "http://x/", ["*"], "s")
    ring = Delivery(hook["id"], "c1", "ringing", b'{"n":1}')
    await store.save_call_writes([CallWrite("c1", "acme", "pbx-a", {"call_id": "c1", "state": "ext_ringing"},
                                            deliveries=(ring,))])
    await store.save_call_writes([CallWrite("c1", "acme", "pbx-a", {"call_id": "c1", "state": "ext_answered"}),
                                  CallWrite("c2", "acme", "pbx-b", {"call_id": "c2", "state": "originating"})])
    live = await store.live_calls("pbx-a")
    assert [(f["call_id"], f["state"]) for f in live] == [("c1", "ext_answered")] and live[0]["saved_at"] > 0
    assert {f["call_id"] for f in await store.live_calls()} == {"c1", "c2"}
    cdr = Delivery(hook["id"], "c1", "cdr", b'{"n":2}')
    end = call("c1", pbx="pbx-a", ended_unobserved=True)
    await store.save_call_writes([CallWrite("c1", "acme", "pbx-a", record=end, deliveries=(cdr,))])
    assert [f["call_id"] for f in await store.live_calls()] == ["c2"]
    got = await store.get_call("acme", "c1")
    assert (got["pbx"], got["ended_unobserved"]) == ("pbx-a", True)
    assert [(p["event"], p["body"]) for p in await store.pending_deliveries(10)] == [
        ("ringing", b'{"n":1}'), ("cdr", b'{"n":2}')]


async def test_a_batch_that_fails_changes_nothing(store):
    await store.save_call_writes([CallWrite("c1", "acme", "pbx-a", {"call_id": "c1", "state": "ext_ringing"})])
    with pytest.raises(ValueError):                     # the end has no tenant: the batch is refused
        await store.save_call_writes([CallWrite("c2", "acme", "pbx-a", {"call_id": "c2", "state": "ext_ringing"}),
                                      CallWrite("c1", "acme", "pbx-a", record={"call_id": "c1"})])
    assert [f["call_id"] for f in await store.live_calls()] == ["c1"]


# ---- CDR listings at scale: indexes, a bounded count, never on the event loop -----------------

CDR_FILTERS = {          # each documented filter -> the index that must serve it
    "tenant": ({}, ["calls_tenant_started"]),
    "dates": ({"start_date": "2024-05-02", "end_date": "2024-05-09"}, ["calls_tenant_started"]),
    "extension": ({"extension": "105"}, ["calls_tenant_extension"]),
    "status": ({"status": "BUSY"}, ["calls_tenant_status"]),
    "phone": ({"phone": "0900000007"}, ["calls_tenant_to", "calls_tenant_from"]),
    "customer_id": ({"customer_id": "KH7"}, ["calls_tenant_customer"]),
}


async def _many_calls(store, n=3000):
    await store.save_call_writes([CallWrite(f"c{i}", "acme" if i % 3 else "globex", "default", record=call(
        f"c{i}", tenant="acme" if i % 3 else "globex", extension=f"1{i % 50:02d}",
        to_number=f"09000000{i % 40:02d}", status="BUSY" if i % 7 == 0 else "ANSWERED",
        customer_id=f"KH{i % 30}" if i % 4 else None,
        time_started=f"2024-05-{1 + i % 28:02d}T10:{i % 60:02d}:00.000+00:00")) for i in range(n)])


@contextlib.asynccontextmanager
async def _recorded_sqlite(tmp_path):
    """A SQLite store with many CDRs, analysed, whose reads are written down as (sql, args)."""
    store = SqliteStorage(str(tmp_path / "c2c.sqlite3"))
    try:
        await _many_calls(store)
        store._db.execute("ANALYZE")
        issued = []
        run = store._reader.run
        store._reader.run = lambda sql, args: issued.append((sql, args)) or run(sql, args)
        yield store, issued
    finally:
        await store.close()


def _sqlite_plan(store, sql, args):
    return " | ".join(r[3] for r in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def _assert_indexed(store, issued, indexes):
    """Every statement looks its rows up by the filter's indexes (tenant first), none scans."""
    plans = [_sqlite_plan(store, sql, args) for sql, args in issued]
    for plan in plans:
        assert "SCAN calls" not in plan, plan
        assert all(f"INDEX {index} (tenant=?" in plan for index in indexes), plan
    return plans


@pytest.mark.parametrize("name", CDR_FILTERS)
async def test_sqlite_cdr_queries_use_an_index_for_every_filter(tmp_path, name):
    async with _recorded_sqlite(tmp_path) as (store, issued):
        filters, indexes = CDR_FILTERS[name]
        rows, total, exact = await store.list_calls("acme", **filters)
        assert rows and exact and len(issued) == 2            # the count, then the page
        for plan in _assert_indexed(store, issued, indexes):
            assert name == "tenant" or "(tenant=?)" not in plan, plan    # the filter is in the lookup


@pytest.mark.parametrize("name", CDR_FILTERS)
async def test_sqlite_cdr_scrolls_use_an_index_for_every_filter(tmp_path, name):
    async with _recorded_sqlite(tmp_path) as (store, issued):
        filters, indexes = CDR_FILTERS[name]
        first = await store.scroll_calls("acme", limit=20, **filters)
        assert len(first) == 20
        assert await store.scroll_calls("acme", limit=20, after=(first[-1]["time_started"], first[-1]["call_id"]),
                                        **filters)
        assert len(issued) == 2
        _assert_indexed(store, issued, indexes)


async def test_sqlite_finds_a_cdr_by_sip_call_id_on_its_index(tmp_path):
    store = SqliteStorage(str(tmp_path / "c2c.sqlite3"))
    try:
        await _many_calls(store, 300)
        await store.save_call(call("s1", sip_call_id="abc@host"))
        store._db.execute("ANALYZE")
        issued = []
        run = store._session
        store._session = lambda: _Recording(run(), issued)
        assert (await store.find_call("acme", "abc@host"))["call_id"] == "s1"
        plan = _sqlite_plan(store, *issued[-1])
        assert "INDEX calls_tenant_sip_call_id (tenant=? AND sip_call_id=?)" in plan, plan
    finally:
        await store.close()


class _Recording:
    """A session whose statements are also written down."""

    def __init__(self, session, issued):
        self._session, self._issued = session, issued

    async def __aenter__(self):
        db = await self._session.__aenter__()
        fetch = db.fetch

        async def recording(sql, args=()):
            self._issued.append((sql, list(args)))
            return await fetch(sql, args)
        db.fetch = recording
        return db

    async def __aexit__(self, *exc):
        return await self._session.__aexit__(*exc)


@pytest.mark.parametrize("name", CDR_FILTERS)
async def test_postgresql_cdr_queries_can_use_an_index_for_every_filter(postgres, name, monkeypatch):
    from c2c_ami.store import postgres as pg_module
    url = postgres.create_database()
    store = await PostgresStorage.connect(url)
    issued = []
    fetch = pg_module._Connection.fetch

    async def recording(self, sql, args=()):
        issued.append((pg_module._numbered(sql), list(args)))
        return await fetch(self, sql, args)
    try:
        await _many_calls(store)
        monkeypatch.setattr(pg_module._Connection, "fetch", recording)
        filters, indexes = CDR_FILTERS[name]
        assert (await store.list_calls("acme", **filters))[0]
    finally:
        monkeypatch.undo()
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE calls; SET enable_seqscan = off")
        for sql, args in issued:
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert "Seq Scan" not in plan, plan      # any tenant index serves the tenant; phone: both
            assert name == "tenant" or all(index in plan for index in indexes), plan
    finally:
        await conn.close()


async def test_cdr_total_is_counted_up_to_a_cap_then_a_lower_bound(store, monkeypatch):
    monkeypatch.setattr("c2c_ami.store.sql.COUNT_CAP", 5)
    for i in range(7):
        await store.save_call(call(f"c{i}", time_started=f"2024-05-0{i + 1}T10:00:00.000+00:00",
                                   from_number="0911" if i % 2 else "0912"))
    rows, total, exact = await store.list_calls("acme", limit=2)
    assert ([r["call_id"] for r in rows], total, exact) == (["c6", "c5"], 5, False)   # at least 5
    rows, total, exact = await store.list_calls("acme", limit=2, page=4)
    assert ([r["call_id"] for r in rows], total, exact) == (["c0"], 7, True)          # counted to the page
    rows, total, exact = await store.list_calls("acme", phone="0911")
    assert ([r["call_id"] for r in rows], total, exact) == (["c5", "c3", "c1"], 3, True)
    assert (await store.list_calls("acme", phone="0912", limit=1))[1:] == (4, True)
    assert (await store.list_calls("acme", phone="0901234567", limit=1))[1:] == (5, False)  # to_number of all 7


async def test_concurrent_registrations_on_two_instances_never_pass_the_hook_cap(storage_url):
    """The cap's count and the insert are one step per tenant, whichever instance registers."""
    from c2c_ami.store import HookLimitReached
    first, second = [await open_storage(StorageConfig(url=storage_url)) for _ in range(2)]
    try:
        for n in range(8):
            await first.add_hook("acme", f"http://h{n}/", [], "k", max_hooks=10)

        async def register(store, n):
            try:
                await store.add_hook("acme", f"http://r{n}/", [], "k", max_hooks=10)
                return True
            except HookLimitReached:
                return False
        added = await asyncio.gather(*(register(s, n) for n in range(10) for s in (first, second)))
        assert sum(added) == 2 and len(await second.list_hooks("acme")) == 10
    finally:
        await first.close()
        await second.close()


async def test_upgrade_from_v5_gives_existing_hooks_no_api_key(tmp_path):
    """Migration 7 (hooks.api_key) on top of 5 (and 6): existing hooks have no key."""
    path = str(tmp_path / "v5.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, [m for m in MIGRATIONS if m.version <= 5]) == 5
    db.execute("INSERT INTO hooks (id, tenant, url, events, secret, created_at) "
               "VALUES ('h', 'acme', 'http://x/', '[]', 'k', '2024')")
    db.execute("INSERT INTO outbox (hook_id, call_id, event, body, delivery_id, created_at, next_attempt_at) "
               "VALUES ('h', 'c1', 'cdr', x'7b7d', 'd1', 5, 5)")
    db.close()

    s = SqliteStorage(path)
    try:
        assert s.schema_version == SCHEMA_VERSION >= 7
        assert [(h["id"], h["api_key"]) for h in await s.hooks_for("acme", "cdr")] == [("h", None)]
        assert [r["api_key"] for r in await s.pending_deliveries(10)] == [None]
        await s.add_hook("acme", "http://y/", ["cdr"], "k2", api_key="rk")
        assert [h["api_key"] for h in await s.list_hooks("acme")] == [None, "rk"]
    finally:
        await s.close()
    assert user_version(path) == SCHEMA_VERSION


async def test_postgresql_upgrade_from_v5_gives_existing_hooks_no_api_key(postgres):
    url = await postgres_at_v5(postgres, "INSERT INTO hooks (id, tenant, url, events, secret, created_at) "
                                         "VALUES ('h', 'acme', 'http://x/', '[]', 'k', '2024')")
    pg = await PostgresStorage.connect(url)
    try:
        assert pg.schema_version == SCHEMA_VERSION >= 7
        assert [(h["id"], h["api_key"]) for h in await pg.hooks_for("acme", "cdr")] == [("h", None)]
        await pg.add_hook("acme", "http://y/", ["cdr"], "k2", api_key="rk")
        assert [h["api_key"] for h in await pg.list_hooks("acme")] == [None, "rk"]
    finally:
        await pg.close()


# ---- several instances ----------------------------------------------------------------------

async def test_an_instance_restarted_under_its_id_adopts_the_calls_its_previous_process_left(store):
    """A clean stop ends the lease; a restart under the same id renews it at once, maybe
    before any other instance looked: its own calls are adopted at join, or nobody ever would
    (seen as a lost call in the rolling-restart rig test)."""
    now = time.time()
    await store.heartbeat("gw1", now + 60)
    await store.heartbeat("gw2", now + 60)
    assert await store.claim_call("c-1", "acme", "default", "PJSIP/101", "gw1", {"call_id": "c-1"})
    await store.leave("gw1")                                     # SIGTERM: the call is left live
    await store.heartbeat("gw1", time.time() + 60)               # back before gw2's next look
    assert await store.take_over("gw2") == []                    # gw1 is alive again: not gw2's
    assert await store.take_over("gw1") == []                    # a running instance's own: no
    adopted = await store.take_over("gw1", own=True)             # what join() asks
    assert [row["call_id"] for row in adopted] == ["c-1"]
    assert (await store.live_call("c-1"))["owner"] == "gw1"


# ---- the do-not-call list (issue 22) ------------------------------------------------------

async def test_blacklist_one_row_per_tenant_and_number(store):
    added = await store.add_blacklisted("acme", [("+84899990988", "0899990988", "spam"),
                                                 ("+84899990989", "0899990989", "")])
    assert added == {"+84899990988", "+84899990989"}
    again = await store.add_blacklisted("acme", [("+84899990988", "84899990988", "twice"),
                                                 ("+84899990990", "+84899990990", "dnc")])
    assert again == {"+84899990990"}                     # the listed one is left as it was
    assert await store.add_blacklisted("other", [("+84899990988", "0899990988", "")]) == {"+84899990988"}
    assert await store.is_blacklisted("acme", "+84899990988")
    assert not await store.is_blacklisted("acme", "+84899990999")
    rows, total = await store.list_blacklisted("acme", limit=2, offset=0)
    assert total == 3 and [r["phone_number"] for r in rows] == ["0899990988", "0899990989"]
    assert rows[0]["description"] == "spam"
    rows, _ = await store.list_blacklisted("acme", limit=2, offset=2)
    assert [r["phone_number"] for r in rows] == ["+84899990990"]
    first = (await store.list_blacklisted("acme", limit=1, offset=0))[0][0]
    assert (await store.get_blacklisted("acme", first["id"], "-"))["phone_number"] == "0899990988"
    assert (await store.get_blacklisted("acme", "0899990989", "+84899990989"))["description"] == ""
    assert await store.get_blacklisted("other", first["id"], "-") is None     # another tenant's id
    assert await store.remove_blacklisted("acme", ["+84899990988", "+84899990999"]) == {"+84899990988"}
    assert not await store.is_blacklisted("acme", "+84899990988")
    assert await store.is_blacklisted("other", "+84899990988")


async def test_blacklist_takes_a_thousand_numbers_in_one_request(store):
    entries = [(f"+8489{i:07d}", f"089{i:07d}", "bulk") for i in range(1200)]
    assert len(await store.add_blacklisted("acme", entries)) == 1200
    assert (await store.list_blacklisted("acme", limit=1, offset=0))[1] == 1200
    assert len(await store.remove_blacklisted("acme", [e[0] for e in entries[:700]])) == 700


# ---- the event log (GET /v1/events/stream) ------------------------------------------------------

def log_event(tenant, n, ext="101"):
    from c2c_ami.store import LogEvent
    return LogEvent(tenant, "state", f'{{"n":{n}}}', ext, f"call-{n}")


async def test_each_tenant_log_has_its_own_gapless_sequence(store):
    notified = []
    from c2c_ami.store import EVENTS_CHANNEL
    await store.listen(EVENTS_CHANNEL, notified.append)
    await store.log_events([log_event("acme", 1), log_event("other", 1), log_event("acme", 2)])
    await store.log_events([log_event("acme", 3)])
    rows = await store.events_after("acme", 0, 10)
    assert [(r["seq"], r["data"], r["ext"], r["call_id"]) for r in rows] == [
        (1, '{"n":1}', "101", "call-1"), (2, '{"n":2}', "101", "call-2"), (3, '{"n":3}', "101", "call-3")]
    assert [r["seq"] for r in await store.events_after("other", 0, 10)] == [1]
    assert await store.event_head("acme") == (3, 0) and await store.event_head("nobody") == (0, 0)
    for _ in range(50):                          # PostgreSQL's NOTIFY comes back over its own connection
        if len(notified) >= 3:
            break
        await asyncio.sleep(0.02)
    assert set(notified) >= {"2 acme", "1 other", "3 acme"}


async def test_one_read_serves_every_tenant_after_its_cursor(store):
    await store.log_events([log_event("acme", n) for n in range(1, 6)] + [log_event("other", n) for n in range(1, 4)])
    rows = await store.read_events({"acme": 3, "other": 1, "absent": 0}, 100)
    assert [(r["tenant"], r["seq"]) for r in rows] == [("acme", 4), ("acme", 5), ("other", 2), ("other", 3)]
    assert len(await store.read_events({"acme": 0, "other": 0}, 3)) == 3
    assert await store.read_events({}, 10) == []


async def test_the_events_of_a_call_write_commit_with_it(store):
    from c2c_ami.store import CallWrite
    await store.save_call_writes([CallWrite("c1", "acme", "default", {"call_id": "c1", "tenant": "acme"},
                                            events=(log_event("acme", 1), log_event("acme", 2)))])
    assert [r["seq"] for r in await store.events_after("acme", 0, 10)] == [1, 2]
    with pytest.raises(ValueError):           # a bad write rolls its events back too: no seq is lost
        await store.save_call_writes([CallWrite("c2", "acme", "default", None, {"call_id": "c2"},
                                                events=(log_event("acme", 3),))])
    assert await store.event_head("acme") == (2, 0)
    await store.log_events([log_event("acme", 4)])
    assert [r["seq"] for r in await store.events_after("acme", 0, 10)] == [1, 2, 3]


async def test_purging_notes_how_far_each_log_went(store):
    await store.log_events([log_event("acme", n) for n in range(1, 4)] + [log_event("other", 1)])
    assert await store.purge_events(time.time() + 1, 2) == 2
    assert await store.purge_events(time.time() + 1, 100) == 2
    assert await store.event_head("acme") == (3, 3) and await store.event_head("other") == (1, 1)
    await store.log_events([log_event("acme", 4)])
    assert [r["seq"] for r in await store.events_after("acme", 0, 10)] == [4]
    assert await store.purge_events(time.time() - 3600, 100) == 0


async def test_agent_rows_are_logged_once_per_change(store):
    assert await store.log_agent_rows("acme", [("101", '{"s":"IDLE"}'), ("102", '{"s":"IDLE"}')]) == ["101", "102"]
    assert await store.log_agent_rows("acme", [("101", '{"s":"IDLE"}'), ("102", '{"s":"RINGING"}')]) == ["102"]
    assert await store.log_agent_rows("acme", [("101", '{"s":"IDLE"}')]) == []        # another writer, same view
    rows = await store.events_after("acme", 0, 10)
    assert [(r["event"], r["ext"], r["data"]) for r in rows] == [
        ("agent", "101", '{"s":"IDLE"}'), ("agent", "102", '{"s":"IDLE"}'), ("agent", "102", '{"s":"RINGING"}')]


async def test_a_lease_has_one_holder_until_it_lapses(store):
    now = time.time()
    assert await store.take_lease("agents:default", "a", now + 10)
    assert not await store.take_lease("agents:default", "b", now + 10)
    assert await store.take_lease("agents:default", "a", now + 20)        # renewed
    assert await store.take_lease("agents:other", "b", now + 10)
    assert await store.take_lease("agents:default", "a", now - 1)         # lapses...
    assert await store.take_lease("agents:default", "b", now + 10)        # ...and another takes it


async def test_hook_stats_and_retrying_dead_deliveries(store):
    hook = await store.add_hook("acme", "https://crm.example/hook", [], "secret")
    other = await store.add_hook("other", "https://other.example/hook", [], "secret")
    ids = [await store.enqueue(hook["id"], f"call-{n}", "cdr", b"{}") for n in range(3)]
    await store.enqueue(other["id"], "call-x", "cdr", b"{}")
    await store.mark_delivered(ids[0])
    await store.mark_retry(ids[1], 1, time.time() + 60, "HTTP 500")
    await store.mark_dead(ids[2], "HTTP 404")
    stats = await store.hook_stats("acme")
    assert stats == {hook["id"]: {"pending": 1, "delivered": 1, "dead": 1, "last_error": "HTTP 404"}}
    assert await store.retry_dead("other", hook["id"]) is None          # not the other tenant's
    assert await store.retry_dead("acme", hook["id"]) == 1
    assert (await store.hook_stats("acme"))[hook["id"]]["dead"] == 0
    assert ids[2] in [r["id"] for r in await store.due_heads(time.time() + 1, per_hook=10, per_tenant=10)]
async def test_a_click_takes_its_buckets_key_and_extension_together_or_stops_at_the_first_refusal(store):
    """``claim_click``: token bucket -> request key -> the click limit -> the extension, each
    only if everything before it was granted (on PostgreSQL in one statement)."""
    from c2c_ami.store import Bucket, ClickClaim, LiveClaim, RequestKey
    later = time.time() + 60

    def click(n, ext, *, token_burst=5.0, ext_burst=5.0, key=None, token="token"):
        return ClickClaim(buckets=(Bucket(token, 1 / 60, token_burst),),
                          key=RequestKey("duplicate", key or f"k{n}", f"fp{n}", "gw1", later),
                          key_buckets=(Bucket(f"ext {ext}", 1 / 60, ext_burst),),
                          call=LiveClaim(f"c-{n}", "acme", "default", f"PJSIP/{ext}", "gw1", {"call_id": f"c-{n}"}))

    from c2c_ami.store import ClickClaimed
    assert await store.claim_click(click(1, "101")) == ClickClaimed(key_taken=True)
    assert (await store.live_call("c-1"))["owner"] == "gw1"
    held = await store.claim_click(click(2, "102", key="k1"))             # the same key: joined, nothing else taken
    assert (held.refused, held.key_taken, held.held["fingerprint"], held.held["owner"]) == ("key", False, "fp1", "gw1")
    assert await store.live_call("c-2") is None
    busy = await store.claim_click(click(3, "101"))                       # the extension has a call
    assert (busy.refused, busy.key_taken) == ("call", True)
    assert await store.request_answer("duplicate", "k3") is not None      # the caller lets the key go
    limited = await store.claim_click(click(4, "103", ext_burst=1.0))     # 'ext 103' has 1 token: granted
    assert limited.refused is None
    await store.release_call("c-4")
    again = await store.claim_click(click(5, "103", ext_burst=1.0))       # ...and none left
    assert (again.refused, again.bucket, again.key_taken) == ("bucket", 1, True)
    assert await store.live_call("c-5") is None
    spent = await store.claim_click(click(6, "104", token_burst=5.0))     # 5 tokens, 5 takes so far
    assert (spent.refused, spent.bucket, spent.key_taken) == ("bucket", 0, False)
    assert await store.request_answer("duplicate", "k6") is None and await store.live_call("c-6") is None
    await store.answer_request("duplicate", "k1", '{"call_id": "c-1"}', time.time() - 1)   # expired...
    assert (await store.claim_click(click(7, "105", key="k1", token="another token"))).refused is None   # ...taken over
    assert (await store.request_answer("duplicate", "k1"))["answer"] is None
