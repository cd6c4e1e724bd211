"""The guards shared by instances on one store: a request joining another instance's is
checked like any request, and joins only an identical one."""
import asyncio
import dataclasses
import time

import pytest

from c2c_ami.calls.guards import SingleFlight
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.calls.service import CallService
from c2c_ami.calls.shared_guards import SharedFlight, SharedRateLimiter
from c2c_ami.config import CallsConfig, StorageConfig
from c2c_ami.errors import Forbidden, RateLimited, UserBusy
from c2c_ami.store import open_storage
from c2c_ami.store.sql import BUCKET_IDLE_SECONDS

from .test_service import REQUEST, TENANT, GatedPbx, Reported, bounded


@pytest.fixture
async def store(storage_url):
    storage = await open_storage(StorageConfig(url=storage_url))
    for name in ("a", "b"):                   # both instances alive: a joiner waits for the answer
        await storage.heartbeat(name, time.time() + 600)
    try:
        yield storage
    finally:
        await storage.close()


def instance(store, name, pbx):
    """One gateway instance's call service on the shared store."""
    return CallService({"default": pbx}, CallRegistry(Reported()), store, CallsConfig(), instance_id=name,
                       duplicates=SingleFlight(5, remember_failures=False),
                       idempotency=SingleFlight(60, remember_failures=True),
                       shared_duplicates=SharedFlight(store, name, ttl=5, remember_failures=False, hold_seconds=10),
                       shared_idempotency=SharedFlight(store, name, ttl=60, remember_failures=True, hold_seconds=10))


@pytest.mark.parametrize("key", [None, "crm-7"])
async def test_a_request_on_another_instance_is_checked_before_it_joins(store, key):
    pbx_a, pbx_b = GatedPbx(), GatedPbx()
    a, b = instance(store, "a", pbx_a), instance(store, "b", pbx_b)
    first = asyncio.create_task(a.place(TENANT, REQUEST, wait=False, idempotency_key=key))
    await pbx_a.sent.wait()
    with pytest.raises(Forbidden, match="^hotline: "):           # it joined, and got 200, before
        await bounded(b.place(TENANT, dataclasses.replace(REQUEST, hotline="02439990000"), wait=False,
                              idempotency_key=key))
    if key is None:
        with pytest.raises(UserBusy):                             # sync never joins async
            await bounded(b.place(TENANT, REQUEST, wait=True))
        with pytest.raises(UserBusy):                             # nor other parameters
            await bounded(b.place(TENANT, dataclasses.replace(REQUEST, auto_answer=True), wait=False))
    identical = asyncio.create_task(b.place(TENANT, REQUEST, wait=False, idempotency_key=key))
    pbx_a.gate.set()
    assert await first == await identical == pbx_a.originated[0].call_id
    assert len(pbx_a.originated) == 1 and pbx_b.originated == []


async def test_the_click_limit_of_an_extension_is_shared_by_instances(store):
    limiter = SharedRateLimiter(store, 2, 2, what="click limit", namespace="ext")
    await limiter.admit("default", "101")
    await limiter.admit("default", "101")
    await limiter.admit("other", "101")                          # per tenant + ext
    with pytest.raises(RateLimited) as info:
        await SharedRateLimiter(store, 2, 2, what="click limit", namespace="ext").admit("default", "101")
    assert info.value.retry_after == 30


async def test_rate_buckets_idle_for_a_day_are_pruned_and_the_rest_kept(store):
    """Per-extension buckets would otherwise pile up in the store; an idle one is full again."""
    assert await store.take_token("ext default 101", 1 / 60, 2) == (True, 1.0)
    await store.prune(time.time())
    assert (await store.take_token("ext default 101", 1 / 60, 2))[0] is True
    assert (await store.take_token("ext default 101", 1 / 60, 2))[0] is False    # kept: still empty
    await store.prune(time.time() + BUCKET_IDLE_SECONDS + 1)
    assert await store.take_token("ext default 101", 1 / 60, 2) == (True, 1.0)    # forgotten: full


async def test_a_click_on_postgresql_costs_two_round_trips(make_gateway, fake_ami, postgres, monkeypatch):
    """Every statement the gateway sends PostgreSQL for one async click, counted at asyncpg
    (a pool's reset query would count too): the claim (token, key, click limit, extension in
    one statement) and the key's answer once the Originate is queued. Nothing else: the
    call's facts, the do-not-call lookup and its first event in the tenant's log are in its
    claim. (The webhook worker's, the membership lease's and the agent feed's own rounds, on
    their own timers, are not the click's: statements on the outbox, the instances and the
    leases, the only tables they touch, are left out.)"""
    import asyncpg

    from c2c_ami.app_keys import REPORTER
    from c2c_ami.testing.fake_ami import Behaviour
    from tests.fixtures_gateway import AUTH

    statements: list[str] = []
    create_pool = asyncpg.create_pool

    def logged(query):
        if not any(table in query.query for table in ("outbox", "instances", "leases")):
            statements.append(query.query)

    async def log_queries(conn):
        conn.add_query_logger(logged)
    monkeypatch.setattr(asyncpg, "create_pool", lambda *args, **kw: create_pool(*args, init=log_queries, **kw))
    client = await make_gateway(storage={"url": postgres.create_database()}, cluster={"lease_seconds": 600},
                                limits={"per_extension_per_minute": 10})
    fake_ami.default_behaviour = Behaviour("silent")      # no event: only the click's own writes
    reporter = client.app[REPORTER]
    for n, ext in enumerate(("101", "102", "103")):
        assert await reporter.flush(3)
        statements.clear()
        resp = await client.get("/v1/click2call/async", params={"ext": ext, "phone": f"090000{n}"}, headers=AUTH)
        assert resp.status == 200, await resp.text()
        assert await reporter.flush(3)
        assert len(statements) == 2, "\n".join(s[:150] for s in statements)
        assert statements[0].startswith("WITH") and "request_keys" in statements[1]


async def test_on_postgresql_every_click_request_pays_one_token_whenever_it_is_taken(make_gateway, fake_ami,
                                                                                     postgres):
    """The per-token limit's token is taken with the click's claim, or alone at the end for a
    request that never got there (bad parameters): over the limit, RATE_LIMITED either way,
    and nothing reached the PBX."""
    from tests.fixtures_gateway import AUTH
    client = await make_gateway(storage={"url": postgres.create_database()},
                                limits={"rate_per_minute": 1, "rate_burst": 2})

    async def click(**params):
        resp = await client.get("/v1/click2call/async", params=params, headers=AUTH)
        return resp.status, (await resp.json()).get("error")

    assert await click(ext="101", phone="0900001") == (200, None)              # token 1, with its claim
    assert await click(ext="102", phone="not a number") == (400, "INVALID_PARAMS")   # token 2, alone
    assert await click(ext="103", phone="0900003") == (429, "RATE_LIMITED")    # none left: no claim
    assert await click(ext="104", phone="nope") == (429, "RATE_LIMITED")       # the limit comes first
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_on_postgresql_the_claim_reads_the_do_not_call_list_and_logs_the_call_as_placed(make_gateway, fake_ami,
                                                                                             postgres):
    """The claim statement refuses a listed number (PHONE_BLACKLISTED, nothing taken, nothing
    dialed) and, for a call it takes, appends the call's first ``state`` event (``originating``)
    to the tenant's log, notified as any other event."""
    import json

    from c2c_ami.app_keys import REPORTER, STORAGE
    from c2c_ami.testing.fake_ami import Behaviour
    from tests.fixtures_gateway import AUTH
    client = await make_gateway(storage={"url": postgres.create_database()})
    fake_ami.default_behaviour = Behaviour("silent")
    store = client.app[STORAGE]
    resp = await client.post("/v1/blacklist", json={"blacklist": [{"phone_number": "0899990988"}]}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    refused = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899990988"}, headers=AUTH)
    assert (refused.status, (await refused.json())["error"]) == (403, "PHONE_BLACKLISTED")
    assert fake_ami.actions_named("Originate") == [] and await store.live_calls() == []
    assert await store.events_after("default", 0, 10) == []
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899990989"}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    call_id = (await resp.json())["call_id"]
    assert await client.app[REPORTER].flush(3)
    logged = await store.events_after("default", 0, 10)
    assert [(row["seq"], row["event"], row["call_id"]) for row in logged] == [(1, "state", call_id)]
    assert json.loads(logged[0]["data"])["call_state"] == "originating"
    assert await store.event_head("default") == (1, 0)


async def test_on_postgresql_a_click_refused_after_its_claim_closes_the_state_it_logged(make_gateway, fake_ami,
                                                                                          postgres):
    """The claim logged the call's ``originating`` state; the device check then refuses it
    (nothing dialled, no CDR, no webhook): the log says it ``ended``, so a live view drops it;
    and a listed number is PHONE_BLACKLISTED first whatever else would refuse the click."""
    import json

    from c2c_ami.app_keys import REPORTER, STORAGE
    from c2c_ami.testing.fake_ami import Behaviour
    from tests.fixtures_gateway import AUTH
    client = await make_gateway(storage={"url": postgres.create_database()})
    store, reporter = client.app[STORAGE], client.app[REPORTER]
    fake_ami.device_states["PJSIP/101"] = "UNAVAILABLE"
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899990989"}, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (404, "USER_NOT_REGISTERED")
    assert await reporter.flush(3)
    logged = [json.loads(row["data"]) for row in await store.events_after("default", 0, 10)]
    assert [(e["state"], e["call_state"]) for e in logged] == [("state", "originating"), ("state", "ended")]
    assert await store.live_calls() == [] and (await store.list_calls("default"))[1] == 0
    assert fake_ami.actions_named("Originate") == []
    assert reporter._shown == {} and reporter._written == {}              # nothing kept of it

    fake_ami.default_behaviour = Behaviour("silent")
    resp = await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899990989"}, headers=AUTH)
    assert resp.status == 200                                              # 102 is busy now
    resp = await client.post("/v1/blacklist", json={"blacklist": [{"phone_number": "0899990988"}]}, headers=AUTH)
    assert resp.status == 200
    resp = await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899990988"}, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (403, "PHONE_BLACKLISTED")


async def test_a_duplicate_joined_on_another_instance_gets_the_failure_of_a_placed_call(store):
    """The duplicate-click guard forgets failures, but not before the requests that joined
    the first one (polling on other instances) read its answer: the PBX refused the
    Originate (CALL_FAILED, with the call_id): the joiner gets that, never a call of its own."""
    from c2c_ami.calls.pbx_port import PbxRefused
    from c2c_ami.errors import CallFailed

    class RefusingPbx(GatedPbx):
        async def originate(self, originate):
            await super().originate(originate)
            raise PbxRefused("Originate failed")

    pbx_a, pbx_b = RefusingPbx(), GatedPbx()
    a, b = instance(store, "a", pbx_a), instance(store, "b", pbx_b)
    polled = asyncio.Event()
    request_answer = store.request_answer

    async def watched(scope, key):
        polled.set()
        return await request_answer(scope, key)
    store.request_answer = watched
    first = asyncio.create_task(a.place(TENANT, REQUEST, wait=False))
    await pbx_a.sent.wait()
    joiner = asyncio.create_task(b.place(TENANT, REQUEST, wait=False))
    await polled.wait()                                        # b waits on a's answer
    pbx_a.gate.set()
    with pytest.raises(CallFailed) as failed:
        await first
    with pytest.raises(CallFailed) as joined:
        await bounded(joiner)
    assert joined.value.call_id == failed.value.call_id == pbx_a.originated[0].call_id
    assert pbx_b.originated == []
