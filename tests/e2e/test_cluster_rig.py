"""Three gateway instances, one PostgreSQL, two PBXs (rig instances): they act as one.

Any instance reads and cancels any call; two requests for one extension on two instances at
the same moment ring it once (a hundred times over); duplicate clicks and Idempotency-Keys
join across instances; an instance SIGKILLed mid-call has its calls adopted by a survivor
within the lease -- also those that end before it runs out -- with correct CDRs (checked
against Asterisk's clock) and their webhooks; a rolling restart under load loses no call,
CDR or webhook.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from c2c_rig import AmiWatch

from .conftest import AUTH, OTHER, in_thread, now
from .gateways import GatewayProcess, free_port, write_config

pytestmark = pytest.mark.rig
LEASE = 3.0                      # cluster.lease_seconds for these tests
NO_ANSWER = "107"                # rings until cancelled (rig a)
TALK_8S, TALK_3S = "0909000800", "0909000221"


@dataclass
class Cluster:
    rig: object
    second: object
    gateways: list[GatewayProcess]
    http: aiohttp.ClientSession
    hooks: dict = field(default_factory=dict)     # (event, call_id) -> [payloads]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def click(self, gateway, path="/v1/click2call/async", headers=None, **params):
        async with self.http.get(gateway.base + path, params=params, headers=headers) as resp:
            return resp.status, await resp.json()

    async def delivered(self, event: str, call_id: str, timeout: float = 20.0) -> dict:
        async def first():
            while not self.hooks.get((event, call_id)):
                self.arrived.clear()
                await self.arrived.wait()
            return self.hooks[event, call_id][0]
        return await asyncio.wait_for(first(), timeout)


@pytest.fixture
async def cluster(rig, rig_factory, postgres, tmp_path, aiohttp_server):
    from aiohttp import web
    second = await in_thread(rig_factory)
    config = write_config(rig, tmp_path, 1, postgres.create_database(), second_rig=second, lease=LEASE)
    gateways = [GatewayProcess(config, port=free_port(), instance_id=f"gw{n}") for n in (1, 2, 3)]
    hooks, arrived = {}, asyncio.Event()

    async def hook(request):
        payload = json.loads(await request.read())
        hooks.setdefault((request.headers["X-C2C-Event"], payload["call_id"]), []).append(payload)
        arrived.set()
        return web.Response(status=204)
    app = web.Application()
    app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(app)
    async with aiohttp.ClientSession(headers=AUTH) as http:
        try:
            for gateway in gateways:
                await gateway.start()
            for headers in (AUTH, OTHER):                      # both tenants' webhooks to the receiver
                resp = await http.post(gateways[0].base + "/v1/event", headers=headers,
                                       json={"url": str(receiver.make_url("/hook"))})
                assert resp.status == 200
            yield Cluster(rig, second, gateways, http, hooks, arrived)
        finally:
            await asyncio.gather(*(g.stop() for g in gateways))


async def test_any_instance_reads_and_cancels_a_call_placed_on_another(cluster):
    gw1, gw2, gw3 = cluster.gateways
    t0 = now()
    status, body = await cluster.click(gw1, ext=NO_ANSWER, phone="0899")
    assert status == 200
    call_id = body["call_id"]
    invite = await in_thread(cluster.rig.wait_for_invite, NO_ANSWER, after=t0)
    status, seen = await cluster.click(gw2, f"/v1/calls/{call_id}")
    assert status == 200 and seen["call"]["state"] in ("originating", "ext_ringing")
    status, live = await cluster.click(gw3, "/v1/call")
    assert call_id in [c["call_id"] for c in live["calls"]]
    async with cluster.http.delete(f"{gw3.base}/v1/calls/{call_id}") as resp:
        assert resp.status == 200                                # gw3 does not own it: gw1 is told
    await in_thread(cluster.rig.wait_for_message, NO_ANSWER, "CANCEL", call_id=invite.call_id, after=t0)
    cdr = await cluster.delivered("cdr", call_id)
    assert (cdr["status"], cdr["hangup_by"]) == ("CANCEL", "api")
    status, stored = await cluster.click(gw2, f"/v1/cdr/{call_id}")
    assert status == 200 and stored["call"]["status"] == "CANCEL"

    t0 = now()                                                   # the other tenant lives on the other PBX
    status, body = await cluster.click(gw2, headers=OTHER, ext="205", phone="0899")
    assert status == 200
    invite = await in_thread(cluster.second.wait_for_invite, "205", after=t0)
    assert cluster.rig.invites_to("205", after=t0) == []
    async with cluster.http.delete(f"{gw1.base}/v1/calls/{body['call_id']}", headers=OTHER) as resp:
        assert resp.status == 200
    cdr = await cluster.delivered("cdr", body["call_id"])
    assert (cdr["pbx"], cdr["hangup_by"]) == ("pbx-b", "api")
    ended_by = await in_thread(cluster.second.wait_for_message, "205", "CANCEL" if cdr["status"] == "CANCEL" else "BYE",
                               call_id=invite.call_id, after=t0)
    assert ended_by is not None


async def test_one_extension_on_two_instances_at_once_rings_once_a_hundred_times(cluster):
    gw1, gw2, _ = cluster.gateways
    t0 = now()
    for n in range(100):
        round_start = now()
        first, second = await asyncio.gather(cluster.click(gw1, ext=NO_ANSWER, phone=f"0899{n:03d}1"),
                                             cluster.click(gw2, ext=NO_ANSWER, phone=f"0899{n:03d}2"))
        outcomes = sorted(body.get("error", "success") for _, body in (first, second))
        assert outcomes == ["USER_BUSY", "success"], (n, first, second)
        call_id = next(body["call_id"] for _, body in (first, second) if "call_id" in body)
        # the phone rings before the cancel (else a cancel quicker than the INVITE rings nobody)
        await in_thread(cluster.rig.wait_for_invite, NO_ANSWER, after=round_start)
        async with cluster.http.delete(f"{gw1.base}/v1/calls/{call_id}") as resp:
            assert resp.status == 200
        await cluster.delivered("cdr", call_id)                  # over, and its extension free again
        assert len(cluster.rig.invites_to(NO_ANSWER, after=round_start)) == 1, n
    assert len(cluster.rig.invites_to(NO_ANSWER, after=t0)) == 100


async def test_duplicate_clicks_and_idempotency_keys_join_across_instances(cluster):
    gw1, gw2, gw3 = cluster.gateways
    t0 = now()
    for n in range(10):
        phone = f"0899555{n}"                  # a new click each round (a repeat within the window joins)
        clicks = await asyncio.gather(cluster.click(gw1, ext=NO_ANSWER, phone=phone),
                                      cluster.click(gw2, ext=NO_ANSWER, phone=phone))
        assert [s for s, _ in clicks] == [200, 200] and clicks[0][1]["call_id"] == clicks[1][1]["call_id"]
        key = {"Idempotency-Key": f"crm-order-{n}"}
        keyed = await asyncio.gather(cluster.click(gw2, headers=key, ext="103", phone="0899666"),
                                     cluster.click(gw3, headers=key, ext="103", phone="0899666"))
        assert keyed[0] == keyed[1] and keyed[0][0] == 200
        for call_id in {clicks[0][1]["call_id"], keyed[0][1]["call_id"]}:
            async with cluster.http.delete(f"{gw3.base}/v1/calls/{call_id}") as resp:
                assert resp.status == 200
            await cluster.delivered("cdr", call_id)
    assert len(cluster.rig.invites_to(NO_ANSWER, after=t0)) == 10       # one INVITE per double click
    assert len(cluster.rig.invites_to("103", after=t0)) == 10


async def test_an_instance_killed_mid_call_its_calls_end_correctly_elsewhere(cluster):
    gw1, gw2, gw3 = cluster.gateways
    async with AmiWatch(cluster.rig.ports.ami) as asterisk:
        long_call, short_call = await asyncio.gather(
            cluster.click(gw1, "/v1/click2call", ext="203", phone=TALK_8S),
            cluster.click(gw1, "/v1/click2call", ext="204", phone=TALK_3S))
        ids = [long_call[1]["call_id"], short_call[1]["call_id"]]
        for call_id in ids:
            await _number_answered(cluster, call_id)
        t0 = now()
        waiting = asyncio.ensure_future(cluster.click(gw1, "/v1/click2call", ext=NO_ANSWER, phone="0899"))
        await in_thread(cluster.rig.wait_for_invite, NO_ANSWER, after=t0)
        killed_at = time.monotonic()
        await gw1.kill()
        with pytest.raises(aiohttp.ClientConnectionError):        # a sync request dies with its instance
            await waiting
        adopter = await _first_to_log([gw2, gw3], "live call(s) left by an instance whose lease ended")
        adopted_after = time.monotonic() - killed_at
        cdrs = [await cluster.delivered("cdr", call_id, timeout=30) for call_id in ids]
        for call_id in ids:
            await cluster.delivered("hangup", call_id)
        legs = [asterisk.leg_times(cdr["trunk_channel"]) for cdr in cdrs]
    print(f"adopted by {adopter.instance_id} {adopted_after:.1f} s after the kill (lease {LEASE:g} s)")
    assert adopted_after <= LEASE + LEASE / 3 + 2
    for cdr, (up, down) in zip(cdrs, legs, strict=True):
        assert (cdr["status"], cdr["ended_unobserved"], cdr["hangup_by"]) == ("ANSWERED", False, "number"), cdr
        assert abs(cdr["billsec"] - (down - up)) <= 1, (cdr["billsec"], down - up)
    ringing = [c for c in (await cluster.click(gw2, "/v1/call"))[1]["calls"] if c["source"] == NO_ANSWER]
    for call in ringing:                                          # the dead instance's ringing call, adopted
        async with cluster.http.delete(f"{gw2.base}/v1/calls/{call['call_id']}") as resp:
            assert resp.status == 200
        await cluster.delivered("cdr", call["call_id"])


async def test_a_rolling_restart_under_load_loses_no_call_cdr_or_webhook(cluster):
    exts = itertools.cycle([str(e) for e in range(210, 231)])
    placed: list[str] = []
    busy = 0
    stop, one_more = asyncio.Event(), asyncio.Event()

    async def until_placed(count):
        while len(placed) < count:
            one_more.clear()
            await asyncio.wait_for(one_more.wait(), 10)

    async def load():
        nonlocal busy
        for n in itertools.count():
            if stop.is_set():
                return
            for gateway in _rotate(cluster.gateways, n):       # a load balancer: the next live one
                try:
                    status, body = await cluster.click(gateway, ext=next(exts), phone=f"09090{n:03d}21")
                except aiohttp.ClientConnectionError:
                    continue
                if status == 200:
                    placed.append(body["call_id"])
                    one_more.set()
                else:
                    assert body["error"] in ("USER_BUSY", "PBX_UNAVAILABLE"), body
                    busy += 1
                break
            await asyncio.sleep(0.1)                            # the load's pace: ~10 clicks a second

    task = asyncio.ensure_future(load())
    for gateway in cluster.gateways:                            # one at a time, as a deploy does
        await until_placed(len(placed) + 8)                     # under load before each restart
        await gateway.stop()
        await gateway.start()
    await until_placed(len(placed) + 8)
    stop.set()
    await task
    assert len(placed) >= 32
    for call_id in placed:
        try:
            cdr = await cluster.delivered("cdr", call_id, timeout=30)
        except TimeoutError:
            raise AssertionError(await _whereabouts(cluster, call_id)) from None
        assert cdr["status"] in ("ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CANCEL")
        await cluster.delivered("hangup", call_id)
    for call_id in placed[:: max(1, len(placed) // 5)]:
        status, stored = await cluster.click(cluster.gateways[len(call_id) % 3], f"/v1/cdr/{call_id}")
        assert status == 200
    print(f"{len(placed)} calls placed through a rolling restart ({busy} refused busy or unavailable)")


async def _whereabouts(cluster, call_id: str) -> str:
    """What the cluster and its logs say of a call whose CDR never came."""
    _, record = await cluster.click(cluster.gateways[0], f"/v1/calls/{call_id}")
    lines = [f"{g.instance_id}: {line.rstrip()}" for g in cluster.gateways
             for line in g.history + g.log if call_id in line]
    hooks = {event: len(got) for (event, cid), got in cluster.hooks.items() if cid == call_id}
    return f"no cdr webhook for {call_id}; hooks seen {hooks}; record {record}; logs:\n" + "\n".join(lines)


def _rotate(items, n):
    return items[n % len(items):] + items[:n % len(items)]


async def _number_answered(cluster, call_id, timeout=10.0):
    async def seen():
        while not any((p["state"], p["leg"], p["call_state"]) == ("answered", "number", "number_answered")
                      for p in cluster.hooks.get(("answered", call_id), [])):
            cluster.arrived.clear()
            await cluster.arrived.wait()
    await asyncio.wait_for(seen(), timeout)


async def _first_to_log(gateways, text, timeout=15.0):
    tasks = {asyncio.ensure_future(g.wait_log(text, timeout)): g for g in gateways}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED, timeout=timeout)
    for task in pending:
        task.cancel()
    assert done, f"no instance adopted within {timeout} s"
    return tasks[next(iter(done))]
