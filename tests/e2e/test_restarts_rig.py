"""Restarts and lost links on the real rig, checked against Asterisk's own clock.

A gateway SIGKILLed during a talk and started again ends the call ANSWERED with Asterisk's
talk time (on SQLite and on PostgreSQL); an AMI link cut mid-talk leaves the call alone if
it is still up when the link is back, and ends it unobserved -- last known state, never
invented facts -- if it ended meanwhile. Asterisk's side comes from an AMI watch of its
own (event timestamps: when the number's leg answered and hung up).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY
from c2c_ami.pbx.ami import AmiState
from c2c_rig import AmiWatch
from tests.fixtures_gateway import Steps, stored

from .conftest import AUTH, TOKEN, click, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)
from .gateways import GatewayProcess, free_port, write_config
from .relay import Relay

pytestmark = pytest.mark.rig

TALK_8S = "0909000800"      # the trunk answers after ~1 s and hangs up ~8 s later
TALK_3S = "0909000221"      # ... ~3 s later


async def next_delivery(receiver, event: str, call_id: str, timeout: float = 20.0) -> dict:
    async def first():
        while True:
            headers, body = await receiver.got.get()
            payload = json.loads(body)
            if headers["X-C2C-Event"] == event and payload["call_id"] == call_id:
                return payload
    return await asyncio.wait_for(first(), timeout)


async def number_answered(receiver, call_id: str) -> dict:
    while True:
        payload = await next_delivery(receiver, "answered", call_id)
        if payload["leg"] == "number":          # the second answered: the number's leg
            assert (payload["state"], payload["call_state"]) == ("answered", "number_answered"), payload
            return payload


async def test_sigkill_mid_talk_then_restart_ends_the_call_answered(rig, tmp_path, receiver, storage_url):
    http_port = free_port()
    gateway = GatewayProcess(write_config(rig, tmp_path, http_port, storage_url))
    base = f"http://127.0.0.1:{http_port}"
    async with AmiWatch(rig.ports.ami) as asterisk, aiohttp.ClientSession(headers=AUTH) as http:
        await gateway.start()
        try:
            hook = await (await http.post(f"{base}/v1/event", json={"url": receiver.hook_url,
                                                                     "events": ["answered", "cdr"]})).json()
            assert hook["status"] == "success"
            body = await (await http.get(f"{base}/v1/click2call", params={"ext": "211", "phone": TALK_8S})).json()
            assert "call_id" in body, (body, gateway.log[-20:])
            call_id = body["call_id"]
            answered = await number_answered(receiver, call_id)
            await gateway.kill()                       # mid-talk: ~7 s of it left
            await gateway.start(adopted=1)
            cdr = await next_delivery(receiver, "cdr", call_id)
            stored = await (await http.get(f"{base}/v1/cdr/{call_id}")).json()
        finally:
            await gateway.stop()
        up, down = asterisk.leg_times(answered["trunk_channel"])
    assert up is not None and down is not None, "Asterisk never reported the number's leg"
    assert (cdr["status"], cdr["ended_unobserved"], cdr["hangup_by"]) == ("ANSWERED", False, "number")
    assert abs(cdr["billsec"] - (down - up)) <= 1, (cdr["billsec"], down - up)
    assert cdr["billsec"] >= 7 and stored["call"]["billsec"] == cdr["billsec"]
    print(f"billsec {cdr['billsec']} s; Asterisk: number's leg up {down - up:.2f} s")


async def test_link_cut_mid_talk_the_call_goes_on_and_ends_observed(rig, make_rig_gateway, tmp_path):
    relay = await Relay("127.0.0.1", rig.ports.ami).start()
    client = await make_rig_gateway(rig_config(rig, tmp_path, ami={
        **rig.ami, "port": relay.port, "reconnect_min": 0.05, "reconnect_max": 0.3,
        "ping_interval": 1.0, "ping_timeout": 1.0}))
    ami, registry, reconciler = client.app[AMI], client.app[REGISTRY], client.app[RECONCILER]
    async with AmiWatch(rig.ports.ami) as asterisk:
        steps = Steps(client.app)
        status, body = await click(client, ext="212", phone=TALK_8S)
        assert status == 200
        call = registry.get(body["call_id"])
        await steps.until(call.call_id, "number_answered")
        runs = reconciler.runs
        await relay.cut()
        await asyncio.wait_for(_state(ami, AmiState.CONNECTING, AmiState.DISCONNECTED), 3)
        assert call.unobserved_since is not None and registry.get(call.call_id) is call
        await relay.start()                                   # back ~at once: the call is still up
        await tracked_again_and_ends_as_asterisk_saw_it(client, call, runs, asterisk)


async def tracked_again_and_ends_as_asterisk_saw_it(client, call, runs: int, asterisk) -> None:
    """After a lost link, the call still up is tracked again (one reconciliation run after
    ``runs``) and ends observed: ANSWERED, hung up by the number, billsec = Asterisk's."""
    registry, reconciler = client.app[REGISTRY], client.app[RECONCILER]
    assert await reconciler.wait_run(runs + 1, 5)
    assert registry.get(call.call_id) is call and call.unobserved_since is None
    assert await registry.wait_empty(15)
    await asterisk.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == call.trunk_channel)
    up, down = asterisk.leg_times(call.trunk_channel)
    record = await stored(client.app).get_call("default", call.call_id)
    assert (record["status"], record["ended_unobserved"], record["hangup_by"]) == ("ANSWERED", False, "number")
    assert abs(record["billsec"] - (down - up)) <= 1, (record["billsec"], down - up)


async def test_call_that_ends_while_the_link_is_cut_ends_unobserved(rig, make_rig_gateway, tmp_path):
    relay = await Relay("127.0.0.1", rig.ports.ami).start()
    client = await make_rig_gateway(rig_config(rig, tmp_path, ami={
        **rig.ami, "port": relay.port, "reconnect_min": 0.05, "reconnect_max": 0.3}))
    ami, registry, reconciler = client.app[AMI], client.app[REGISTRY], client.app[RECONCILER]
    async with AmiWatch(rig.ports.ami) as asterisk:
        steps = Steps(client.app)
        status, body = await click(client, ext="213", phone=TALK_3S)
        assert status == 200
        call = registry.get(body["call_id"])
        await steps.until(call.call_id, "number_answered")      # the gateway saw the answer
        runs = reconciler.runs
        await relay.cut()
        await asyncio.wait_for(_state(ami, AmiState.CONNECTING, AmiState.DISCONNECTED), 3)
        cut_at = call.unobserved_since
        await asterisk.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == call.call_id)
        await relay.start()
        assert await reconciler.wait_run(runs + 1, 5)
        up, down = asterisk.leg_times(call.trunk_channel)
    assert registry.get(call.call_id) is None
    record = await stored(client.app).get_call("default", call.call_id)
    assert (record["status"], record["ended_unobserved"], record["state"]) == ("ANSWERED", True, "ended")
    assert record["hangup_by"] is None and record["cause"] is None        # nobody saw who or why
    assert record["billsec"] <= round(down - up)                           # a lower bound, never more
    assert record["time_ended"] is not None and abs(_epoch(record["time_ended"]) - cut_at) < 0.01


async def _state(ami, *states):
    changes: asyncio.Queue = asyncio.Queue()
    ami.on_state(changes.put_nowait)
    while ami.state not in states:
        await changes.get()


def _epoch(iso_time: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso_time).timestamp()


async def test_two_pbxs_each_tenant_on_its_own_and_one_down_hurts_only_its_own(
        rig, rig_factory, make_rig_gateway, tmp_path):
    from c2c_ami.app_keys import AMIS
    from c2c_ami.config import parse_config
    from c2c_rig import HOTLINES as RIG_HOTLINES

    from .conftest import OTHER, OTHER_TOKEN, in_thread, now
    second = await in_thread(rig_factory)
    fast = {"reconnect_min": 0.05, "reconnect_max": 0.3, "ping_interval": 1.0, "ping_timeout": 1.0}
    config = parse_config({
        "pbxs": [{"name": "pbx-a", "ami": {**rig.ami, **fast}}, {"name": "pbx-b", "ami": {**second.ami, **fast}}],
        "calls": {"ring_timeout": 4, "dial_timeout": 5, "sync_timeout": 8},
        "storage": {"url": f"sqlite:///{tmp_path}/c2c.sqlite3"},
        "limits": {"duplicate_window": 1, "per_extension_per_minute": 0},
        "tenants": [
            {"domain": "default", "tokens": [TOKEN], "extensions": "^[0-9]{3}$", "pbx": "pbx-a",
             "endpoint": f"{rig.tech}/{{ext}}", "hotlines": dict(RIG_HOTLINES)},
            {"domain": "other", "tokens": [OTHER_TOKEN], "extensions": "^2[0-9]{2}$", "pbx": "pbx-b",
             "endpoint": f"{second.tech}/{{ext}}", "hotlines": dict(RIG_HOTLINES)},   # PJSIP (and chan_sip on A)
        ]}, {})
    client = await make_rig_gateway(config)
    amis, registry = client.app[AMIS], client.app[REGISTRY]
    assert await amis["pbx-b"].wait_ready(5)
    t0 = now()
    a_status, a_call = await click(client, path="/v1/click2call/async", ext="214", phone="0899")
    b_status, b_call = await click(client, path="/v1/click2call/async", headers=OTHER, ext="215", phone="0899")
    assert (a_status, b_status) == (200, 200)
    await in_thread(rig.wait_for_invite, "214", after=t0)
    await in_thread(second.wait_for_invite, "215", after=t0)
    assert rig.invites_to("215", after=t0) == [] and second.invites_to("214", after=t0) == []
    for body, headers in ((a_call, AUTH), (b_call, OTHER)):
        assert (await client.delete(f"/v1/calls/{body['call_id']}", headers=headers)).status == 200
    assert await registry.wait_empty(10)
    records = [await stored(client.app).get_call(t, c["call_id"]) for t, c in (("default", a_call), ("other", b_call))]
    assert [r["pbx"] for r in records] == ["pbx-a", "pbx-b"]

    await in_thread(second.kill_asterisk)
    try:
        await asyncio.wait_for(_state(amis["pbx-b"], AmiState.CONNECTING, AmiState.DISCONNECTED), 5)
        status, body = await click(client, headers=OTHER, ext="216", phone="0899")
        assert (status, body["error"]) == (503, "PBX_UNAVAILABLE")
        ready = await client.get("/readyz")
        states = {p["name"]: p["ami"] for p in (await ready.json())["pbxs"]}
        assert ready.status == 200 and states["pbx-a"] == "ready" and states["pbx-b"] != "ready"
        metrics = await (await client.get("/metrics")).text()
        assert 'c2c_ami_up{pbx="pbx-a"} 1.0' in metrics and 'c2c_ami_up{pbx="pbx-b"} 0.0' in metrics
        status, body = await click(client, path="/v1/click2call/async", ext="217", phone="0899")
        assert status == 200                                 # the other PBX's tenants are unaffected
        assert (await client.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200
    finally:
        await in_thread(second.start_asterisk)
    assert await amis["pbx-b"].wait_ready(5)
    status, body = await click(client, path="/v1/click2call/async", headers=OTHER, ext="218", phone="0899")
    assert status == 200
    assert (await client.delete(f"/v1/calls/{body['call_id']}", headers=OTHER)).status == 200
    assert await registry.wait_empty(10)
