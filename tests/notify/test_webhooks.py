import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from dataclasses import dataclass

import pytest
from aiohttp import web

from c2c_ami.config import StorageConfig
from c2c_ami.notify.egress import EgressPolicy
from c2c_ami.notify.webhooks import WebhookNotifier, sign, verify
from c2c_ami.store import open_storage

HANG = None  # a Receiver plan answer: never respond
LOCAL = EgressPolicy(allow=["127.0.0.0/8"])


@dataclass
class Hit:
    path: str
    headers: dict
    body: bytes
    at: float

    @property
    def event(self):
        return self.headers["X-C2C-Event"]

    @property
    def call_id(self):
        return json.loads(self.body)["call_id"]


class Receiver:
    """A local webhook endpoint: records every POST, answers per ``plan(hit) -> status``."""

    def __init__(self):
        self.hits: list[Hit] = []
        self.plans = {}
        self.release = asyncio.Event()   # lets hanging handlers finish at teardown
        self._waiters = []
        self.base = ""

    @classmethod
    async def serving(cls, aiohttp_server) -> "Receiver":
        """A receiver listening on a test server: every POST /{name} is a hit."""
        r = cls()
        app = web.Application()
        app.router.add_post("/{name}", r.handle)
        server = await aiohttp_server(app)
        r.base = str(server.make_url("")).rstrip("/")
        return r

    def url(self, name):
        return f"{self.base}/{name}"

    def on(self, name):
        return [h for h in self.hits if h.path == f"/{name}"]

    async def handle(self, request):
        hit = Hit(request.path, dict(request.headers), await request.read(), time.time())
        self.hits.append(hit)
        for predicate, fut in list(self._waiters):
            if not fut.done() and predicate():
                fut.set_result(None)
        status = self.plans.get(request.match_info["name"], lambda h: 200)(hit)
        if status is HANG:
            await self.release.wait()
            status = 200
        return web.Response(status=status)

    async def until(self, predicate, timeout=5.0):
        """Wait, bounded, until ``predicate()`` holds (checked on every hit)."""
        if predicate():
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.remove((predicate, fut))


@pytest.fixture
async def receiver(aiohttp_server):
    r = await Receiver.serving(aiohttp_server)
    yield r
    r.release.set()


@pytest.fixture
async def store(storage_url):
    s = await open_storage(StorageConfig(url=storage_url))
    yield s
    await s.close()


@pytest.fixture
async def notifiers():
    made = []

    async def make(storage, start=True, **kw):
        kw.setdefault("egress", LOCAL)          # the test receivers listen on 127.0.0.1
        n = WebhookNotifier(storage, **kw)
        made.append(n)
        if start:
            await n.start()
        return n

    yield make
    for n in made:
        await n.close(grace=0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- signatures -----------------------------------------------------------------------------

def test_sign_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"k", b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, b'{"a":1}') == expected


def test_verify_accepts_good_and_rejects_tampered_or_stale():
    body, ts = b'{"event":"cdr"}', 1_700_000_000
    good = "sha256=" + sign("secret", ts, body)
    assert verify("secret", str(ts), good, body, now=ts + 10)
    assert not verify("secret", str(ts), "sha256=" + "0" * 64, body, now=ts)        # bad signature
    assert not verify("other", str(ts), good, body, now=ts)                         # wrong secret
    assert not verify("secret", str(ts), good, body + b" ", now=ts)                 # modified body
    assert not verify("secret", str(ts + 1), good, body, now=ts)                    # modified timestamp
    assert not verify("secret", str(ts), good, body, now=ts + 301)                  # stale
    assert not verify("secret", str(ts), good, body, now=ts - 301)                  # from the future
    assert verify("secret", str(ts), good, body, now=ts + 1000, tolerance=1000)
    assert not verify("secret", str(ts), good[len("sha256="):], body, now=ts)       # no scheme
    assert not verify("secret", "soon", good, body, now=ts)
    assert not verify("secret", None, good, body, now=ts)
    assert not verify("secret", str(ts), None, body, now=ts)


# ---- delivery -------------------------------------------------------------------------------

async def test_delivery_is_signed_and_carries_the_documented_headers(receiver, store, notifiers):
    hook = (await store.add_hook("acme", receiver.url("crm"), ["ringing", "cdr"], "s3cret"))
    n = await notifiers(store, start=False)
    payload = {"call_id": "c1", "extension": "101", "name": "Nguyễn Văn A"}
    assert (await n.publish("acme", "ringing", payload)) == 1
    assert (await n.publish("acme", "answered", payload)) == 0          # not subscribed
    delivery_id = (await store.pending_deliveries(10))[0]["delivery_id"]
    await n.start()

    await receiver.until(lambda: len(receiver.hits) == 1)
    assert await n.wait_idle(5)
    hit = receiver.hits[0]
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["X-C2C-Event"] == "ringing"
    assert hit.headers["X-C2C-Delivery"] == delivery_id
    assert abs(int(hit.headers["X-C2C-Timestamp"]) - time.time()) < 60
    assert hit.headers["X-C2C-Signature"].startswith("sha256=")
    assert verify("s3cret", hit.headers["X-C2C-Timestamp"], hit.headers["X-C2C-Signature"], hit.body)
    assert json.loads(hit.body) == {**payload, "event": "ringing"}
    assert "Nguyễn".encode() in hit.body and b'": ' not in hit.body   # UTF-8, compact
    assert n.delivered_count == 1
    assert (await store.outbox_counts()) == {"pending": 0, "delivered": 1, "dead": 0}
    assert hook["id"]


async def test_a_hook_with_an_api_key_sends_it_as_x_api_key_and_bearer(receiver, store, notifiers):
    """The carrier's callback_apikey: the receiver authenticates the gateway with its own key."""
    await store.add_hook("acme", receiver.url("keyed"), ["cdr"], "s1", api_key="rcv-key.123")
    await store.add_hook("acme", receiver.url("plain"), ["cdr"], "s2")
    n = await notifiers(store)
    assert (await n.publish("acme", "cdr", {"call_id": "c1"})) == 2
    await receiver.until(lambda: len(receiver.hits) == 2)
    [keyed] = receiver.on("keyed")
    assert keyed.headers["X-Api-Key"] == "rcv-key.123"
    assert keyed.headers["Authorization"] == "Bearer rcv-key.123"
    assert verify("s1", keyed.headers["X-C2C-Timestamp"], keyed.headers["X-C2C-Signature"], keyed.body)
    [plain] = receiver.on("plain")
    assert "X-Api-Key" not in plain.headers and "Authorization" not in plain.headers


async def test_a_stored_key_that_could_inject_a_header_is_never_sent(receiver, store, notifiers):
    """Registration refuses such keys; a row written around it still never reaches the wire."""
    await store.add_hook("acme", receiver.url("bad"), ["cdr"], "s1", api_key="k\r\nX-Evil: 1")
    n = await notifiers(store, max_attempts=1)
    await n.publish("acme", "cdr", {"call_id": "c1"})
    assert await n.wait_idle(5)
    assert receiver.hits == [] and (await store.outbox_counts())["dead"] == 1


async def test_per_call_order_survives_a_failed_first_attempt(receiver, store, notifiers):
    failed_once = []

    def plan(hit):
        if hit.call_id == "c1" and hit.event == "ringing" and not failed_once:
            failed_once.append(hit)
            return 500
        return 200

    receiver.plans["crm"] = plan
    await store.add_hook("acme", receiver.url("crm"), [], "k")
    n = await notifiers(store, backoff_base=0.3)
    await n.publish("acme", "ringing", {"call_id": "c1"})
    await n.publish("acme", "answered", {"call_id": "c1"})
    await n.publish("acme", "ringing", {"call_id": "c2"})

    await receiver.until(lambda: len(receiver.hits) == 4)
    assert await n.wait_idle(5)
    c1 = [(h.event, h.headers["X-C2C-Delivery"]) for h in receiver.hits if h.call_id == "c1"]
    assert [e for e, _ in c1] == ["ringing", "ringing", "answered"]
    assert c1[0][1] == c1[1][1]                     # a retry keeps its delivery id
    # another call is not held up by c1's retry: sequencing is per call, not global
    assert receiver.hits.index(failed_once[0]) < [h.call_id for h in receiver.hits].index("c2") < 2
    assert (await store.outbox_counts()) == {"pending": 0, "delivered": 3, "dead": 0}


async def test_a_hanging_receiver_does_not_delay_another_hook(receiver, store, notifiers):
    receiver.plans["slow"] = lambda hit: HANG
    await store.add_hook("acme", receiver.url("slow"), ["*"], "k1")
    await store.add_hook("acme", receiver.url("fast"), ["*"], "k2")
    # concurrency 4 -> one POST per hook: even 6 hanging calls cannot take the fast hook's share
    n = await notifiers(store, timeout=0.5, concurrency=4, backoff_base=0.01)
    for i in range(6):
        assert (await n.publish("acme", "ringing", {"call_id": f"c{i}"})) == 2

    await receiver.until(lambda: len(receiver.on("fast")) == 6, timeout=3)
    assert len(receiver.on("slow")) == 1
    assert all(r["attempts"] == 0 for r in (await store.pending_deliveries(100)))   # nothing timed out yet

    # the hang ends as a timeout, which is retried like any failure
    await receiver.until(lambda: len(receiver.on("slow")) >= 2, timeout=3)
    timed_out = [r for r in (await store.pending_deliveries(100)) if r["attempts"]]
    assert timed_out and timed_out[0]["last_error"].startswith("no answer within")
    assert n.delivered_count == 6


async def test_retries_back_off_then_the_delivery_is_dead(receiver, store, notifiers, caplog):
    receiver.plans["down"] = lambda hit: 503
    await store.add_hook("acme", receiver.url("down"), ["cdr"], "k")
    n = await notifiers(store, max_attempts=3, backoff_base=0.05)
    with caplog.at_level(logging.WARNING, logger="c2c_ami.notify.webhooks"):
        await n.publish("acme", "cdr", {"call_id": "c1"})
        await receiver.until(lambda: len(receiver.hits) == 3)
        assert await n.wait_idle(5)
    times = [h.at for h in receiver.hits]
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1   # base * 2**(attempts-1)
    assert (await store.outbox_counts()) == {"pending": 0, "delivered": 0, "dead": 1}
    assert n.dead_count == 1 and n.delivered_count == 0
    assert "dead after 3 attempts: HTTP 503" in caplog.text
    assert len(receiver.hits) == 3


async def test_a_dead_delivery_is_logged_without_the_receivers_query_string(receiver, store, notifiers, caplog):
    """Receivers often put their token in the query string: it is neither logged nor kept."""
    receiver.plans["down"] = lambda hit: 503
    refused = f"http://127.0.0.1:{free_port()}/refused?token=s3cret-in-the-url"      # connection refused
    await store.add_hook("acme", receiver.url("down") + "?token=s3cret-in-the-url", ["cdr"], "k")
    await store.add_hook("acme", refused, ["cdr"], "k")
    n = await notifiers(store, max_attempts=1, backoff_base=0.05)
    with caplog.at_level(logging.WARNING, logger="c2c_ami.notify.webhooks"):
        await n.publish("acme", "cdr", {"call_id": "c1"})
        await receiver.until(lambda: len(receiver.hits) == 1)
        assert await n.wait_idle(5)
    assert (await store.outbox_counts())["dead"] == 2
    dead = [r.getMessage() for r in caplog.records if "is dead" in r.getMessage()]
    assert len(dead) == 2 and f"to {receiver.url('down')} is dead" in "".join(dead)
    assert "s3cret-in-the-url" not in caplog.text


async def test_outbox_is_durable_across_a_restart(aiohttp_server, storage_url, notifiers):
    port = free_port()
    store = await open_storage(StorageConfig(url=storage_url))
    await store.add_hook("acme", f"http://127.0.0.1:{port}/crm", ["*"], "k")
    n = await notifiers(store, backoff_base=0.05)
    await n.publish("acme", "ringing", {"call_id": "c1"})          # receiver down: refused, retried
    await n.publish("acme", "hangup", {"call_id": "c1"})
    assert await n.wait_idle(5)
    assert (await store.pending_deliveries(10))[0]["attempts"] >= 1
    await n.close()
    await n.publish("acme", "cdr", {"call_id": "c1"})              # worker stopped: still queued
    await store.close()

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", receiver.handle)
    await aiohttp_server(app, port=port)
    store = await open_storage(StorageConfig(url=storage_url))
    n2 = await notifiers(store, backoff_base=0.05)
    try:
        await receiver.until(lambda: len(receiver.hits) == 3)
        assert await n2.wait_idle(5)
        assert [h.event for h in receiver.hits] == ["ringing", "hangup", "cdr"]
        assert (await store.outbox_counts()) == {"pending": 0, "delivered": 3, "dead": 0}
    finally:
        await n2.close()
        await store.close()


async def test_publish_without_hooks_writes_nothing(store, notifiers):
    n = await notifiers(store, start=False)
    assert (await n.publish("acme", "ringing", {"call_id": "c1"})) == 0
    await store.add_hook("acme", "http://127.0.0.1:9/", ["cdr"], "k")
    assert (await n.publish("acme", "ringing", {"call_id": "c1"})) == 0
    assert (await n.publish("globex", "cdr", {"call_id": "c1"})) == 0
    assert (await store.outbox_counts()) == {"pending": 0, "delivered": 0, "dead": 0}


async def test_hooks_only_receive_their_own_tenants_events(receiver, store, notifiers):
    await store.add_hook("acme", receiver.url("acme"), ["*"], "ka")
    await store.add_hook("globex", receiver.url("globex"), ["*"], "kg")
    n = await notifiers(store)
    assert (await n.publish("globex", "ringing", {"call_id": "g1"})) == 1
    assert (await n.publish("acme", "ringing", {"call_id": "a1"})) == 1
    assert (await n.publish("globex", "hangup", {"call_id": "g1"})) == 1
    await receiver.until(lambda: len(receiver.hits) == 3)
    assert await n.wait_idle(5)
    assert [h.call_id for h in receiver.on("acme")] == ["a1"]
    assert [(h.call_id, h.event) for h in receiver.on("globex")] == [("g1", "ringing"), ("g1", "hangup")]
    hit = receiver.on("acme")[0]
    assert verify("ka", hit.headers["X-C2C-Timestamp"], hit.headers["X-C2C-Signature"], hit.body)
    assert not verify("kg", hit.headers["X-C2C-Timestamp"], hit.headers["X-C2C-Signature"], hit.body)


async def test_wait_idle_is_bounded_when_nothing_delivers(store, notifiers):
    await store.add_hook("acme", "http://127.0.0.1:9/", ["*"], "k")
    n = await notifiers(store, start=False)
    await n.publish("acme", "ringing", {"call_id": "c1"})
    assert await n.wait_idle(0.05) is False
    assert (await store.outbox_counts())["pending"] == 1


async def test_close_cancels_a_hanging_post_and_keeps_its_row(receiver, store, notifiers):
    receiver.plans["slow"] = lambda hit: HANG
    await store.add_hook("acme", receiver.url("slow"), ["*"], "k")
    n = await notifiers(store, timeout=30)
    await n.publish("acme", "ringing", {"call_id": "c1"})
    await receiver.until(lambda: len(receiver.hits) == 1)
    await asyncio.wait_for(n.close(grace=0.05), 2)
    assert (await store.pending_deliveries(10))[0]["attempts"] == 0


# ---- fairness and bounded work: one tenant or hook cannot starve the others ---------------

async def test_a_tenant_with_many_hanging_hooks_does_not_delay_another_tenant(receiver, store, notifiers):
    """Four of acme's hooks hang: acme's POSTs stop at its share, globex's goes out in the same round."""
    for i in range(4):
        receiver.plans[f"acme{i}"] = lambda hit: HANG
        await store.add_hook("acme", receiver.url(f"acme{i}"), ["*"], "k")
    await store.add_hook("globex", receiver.url("globex"), ["*"], "k")
    n = await notifiers(store, start=False, timeout=30, concurrency=4, per_tenant=2, per_hook=1)
    for i in range(5):                                   # acme's rows are all older than globex's
        assert (await n.publish("acme", "ringing", {"call_id": f"a{i}"})) == 4
    await n.publish("globex", "ringing", {"call_id": "g1"})
    await n.start()

    await receiver.until(lambda: len(receiver.on("globex")) == 1)
    acme_hits = [h for h in receiver.hits if h.path.startswith("/acme")]
    assert len(acme_hits) == 2                            # per_tenant: acme holds 2 of the 4 slots
    acme_pending = [r for r in await store.pending_deliveries(100) if r["tenant"] == "acme"]
    assert len(acme_pending) == 20                        # none of acme's has finished: they hang
    receiver.release.set()


async def test_a_dead_receiver_backs_off_as_a_whole_without_an_attempt_per_row(receiver, store, notifiers):
    dead = f"http://127.0.0.1:{free_port()}/dead"          # nothing listens: connection refused
    hook = await store.add_hook("acme", dead, ["*"], "k")
    await store.add_hook("globex", receiver.url("globex"), ["*"], "k")
    n = await notifiers(store, start=False, concurrency=4, per_tenant=2, per_hook=1,
                        backoff_base=30, backoff_max=30)
    for i in range(50):
        await n.publish("acme", "ringing", {"call_id": f"a{i}"})
    await n.publish("globex", "ringing", {"call_id": "g1"})
    await n.start()

    await receiver.until(lambda: len(receiver.on("globex")) == 1)
    assert await n.wait_idle(5)                         # nothing due: the dead hook waits 30 s as a whole
    rows = [r for r in await store.pending_deliveries(100) if r["hook_id"] == hook["id"]]
    assert len(rows) == 50
    tried = [r for r in rows if r["attempts"]]
    assert len(tried) == 1 and tried[0]["last_error"].startswith("ClientConnector")
    assert min(r["next_attempt_at"] for r in rows) >= tried[0]["next_attempt_at"] - 0.01
    assert n.outcomes["acme", "retried"] == 1 and n.outcomes["globex", "delivered"] == 1


async def test_the_worker_reads_only_due_rows_and_bodies_of_those_it_sends(receiver, store, notifiers):
    """With thousands of rows queued behind a retry, a round costs what is due, not the outbox."""
    hook = await store.add_hook("acme", receiver.url("crm"), ["*"], "k")
    later = 10**10
    first = await store.enqueue(hook["id"], "c0", "ringing", b'{"call_id":"c0"}', now=1.0)
    await store.mark_retry(first, 1, later, "HTTP 500")          # the head waits for a retry...
    for _ in range(300):                                          # ...and these wait behind it
        await store.enqueue(hook["id"], "c0", "answered", b'{"call_id":"c0"}', now=2.0)
    for i in range(300):                                          # retries not due yet
        rid = await store.enqueue(hook["id"], f"r{i}", "ringing", b'{"call_id":"r"}', now=3.0)
        await store.mark_retry(rid, 1, later, "HTTP 500")
    due = [await store.enqueue(hook["id"], f"d{i}", "ringing", json.dumps({"call_id": f"d{i}"}).encode())
           for i in range(3)]

    heads = await store.due_heads(time.time(), per_hook=100, per_tenant=100)
    assert sorted(r["id"] for r in heads) == due and all(set(r) == {"id", "hook_id", "call_id", "tenant"}
                                                         for r in heads)
    claimed: list[int] = []
    real_claim = store.claim

    async def counting_claim(owner, ids, now, lease):
        rows = await real_claim(owner, ids, now, lease)
        claimed.extend(r["id"] for r in rows)
        return rows
    store.claim = counting_claim
    n = await notifiers(store)
    await receiver.until(lambda: len(receiver.hits) == 3)
    assert await n.wait_idle(5)
    assert sorted(claimed) == due                       # bodies loaded: exactly the three sent


async def test_the_due_queries_use_the_next_attempt_and_finished_indexes(tmp_path):
    """SQLite's plans of the worker's reads: index ranges, never a scan of every pending row."""
    store = await open_storage(StorageConfig(url=f"sqlite:///{tmp_path}/plan.sqlite3"))
    seen: list[str] = []
    real_fetch = store._connection.fetch

    async def fetch(sql, args=()):
        seen.append(" ".join(str(r[-1]) for r in store._db.execute("EXPLAIN QUERY PLAN " + sql, args)))
        return await real_fetch(sql, args)
    store._connection.fetch = fetch
    try:
        await store.due_heads(5.0, per_hook=4, per_tenant=8)
        await store.has_due(5.0)
        await store.next_due_at(5.0)
        await store.purge_finished(5.0, 100)
        # ("USING INDEX" or, newer SQLite, "USING COVERING INDEX")
        assert all("INDEX outbox_due" in plan for plan in seen[:3]), seen
        assert "outbox_finished" in seen[3], seen
        assert not any(" SCAN o" in plan or "SCAN outbox" in plan for plan in seen), seen
    finally:
        await store.close()


async def test_retention_purges_finished_rows_in_batches_and_keeps_pending_ones(store, notifiers):
    hook = await store.add_hook("acme", "http://127.0.0.1:9/", ["*"], "k")
    done = [await store.enqueue(hook["id"], f"c{i}", "cdr", b"{}") for i in range(5)]
    for rid in done[:3]:
        await store.mark_delivered(rid)
    await store.mark_dead(done[3], "gone")
    assert await store.purge_finished(time.time() - 3600, 10) == 0          # not old enough
    assert await store.purge_finished(time.time() + 1, 2) == 2              # one bounded batch
    assert (await store.outbox_counts()) == {"pending": 1, "delivered": 1, "dead": 1}

    eight_days_on = time.time() + 8 * 86400
    n = await notifiers(store, start=False, retention_days=7, clock=lambda: eight_days_on)
    assert await n.housekeeping() == 2
    assert (await store.outbox_counts()) == {"pending": 1, "delivered": 0, "dead": 0}
    assert n.pending_by_tenant == {"acme": 1}


async def test_delivery_ids_are_random_not_a_sequence_shared_by_tenants(receiver, store, notifiers):
    await store.add_hook("acme", receiver.url("acme"), ["*"], "k")
    await store.add_hook("globex", receiver.url("globex"), ["*"], "k")
    n = await notifiers(store)
    await n.publish("acme", "ringing", {"call_id": "a1"})
    for i in range(20):                                  # globex's volume...
        await n.publish("globex", "ringing", {"call_id": f"g{i}"})
    await n.publish("acme", "ringing", {"call_id": "a2"})
    await receiver.until(lambda: len(receiver.hits) == 22)
    ids = [h.headers["X-C2C-Delivery"] for h in receiver.on("acme")]
    assert len(ids) == 2 and len(set(h.headers["X-C2C-Delivery"] for h in receiver.hits)) == 22
    assert not any(i.isdigit() for i in ids)             # ...cannot be read off acme's ids
    assert all(len(i) == 36 for i in ids)                # UUIDs


async def test_metrics_count_deliveries_per_tenant(receiver, store, notifiers):
    from c2c_ami.metrics import Metrics
    receiver.plans["down"] = lambda hit: 500
    await store.add_hook("acme", receiver.url("ok"), ["*"], "k")
    await store.add_hook("globex", receiver.url("down"), ["*"], "k")
    n = await notifiers(store, max_attempts=2, backoff_base=0.01)
    metrics = Metrics()
    metrics.watch_webhooks(n)
    await n.publish("acme", "ringing", {"call_id": "a1"})
    await n.publish("acme", "hangup", {"call_id": "a1"})
    await n.publish("globex", "ringing", {"call_id": "g1"})
    await receiver.until(lambda: len(receiver.hits) == 4)
    assert await n.wait_idle(5)
    await n.housekeeping()
    text = metrics.render().decode()
    assert 'c2c_webhook_deliveries_total{outcome="delivered",tenant="acme"} 2.0' in text
    assert 'c2c_webhook_deliveries_total{outcome="retried",tenant="globex"} 1.0' in text
    assert 'c2c_webhook_deliveries_total{outcome="dead",tenant="globex"} 1.0' in text
    assert "c2c_webhook_pending" in text and 'c2c_webhook_pending{tenant="acme"}' not in text


async def test_a_row_claimed_by_a_vanished_instance_is_looked_at_again_once_its_claim_runs_out(
        receiver, store, notifiers):
    """Nothing announces that another instance's claim ran out: the worker's idle wait is
    never longer than a claim, so the row is sent within one claim of its owner's death."""
    await store.add_hook("acme", receiver.url("ok"), ["*"], "k")
    n = await notifiers(store, start=False, timeout=1)
    await n.publish("acme", "ringing", {"call_id": "c1"})
    [row] = await store.pending_deliveries(10)
    assert await store.claim("gone-instance", [row["id"]], time.time(), 3600)
    wait = await n._dispatch()              # nothing it may send: it sleeps ...
    assert receiver.hits == [] and 0 < wait <= n.claim_seconds   # ... but not past a claim
