"""Link loss is not call end, on the real rig: a PBX that goes silent, a re-login Asterisk
refuses, and a gateway stopped with SIGTERM. In each case live calls are kept as last seen
(never finished with invented facts), every loss is logged with its cause, a cancel while
the PBX is out of sight is answered "retry" (503, never 404), and once the link is back the
calls are checked with Asterisk and end with Asterisk's own facts.
"""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY
from c2c_ami.pbx.ami import AmiState
from c2c_rig import AmiWatch
from tests.fixtures_gateway import Steps, stored

from .conftest import AUTH, click, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)
from .gateways import GatewayProcess, free_port, write_config
from .relay import Relay
from .test_restarts_rig import (
    TALK_8S,
    _state,
    next_delivery,
    number_answered,
    tracked_again_and_ends_as_asterisk_saw_it,
)

pytestmark = pytest.mark.rig

NEVER_ANSWERS = "109"


def fast_ami(rig, relay: Relay, **extra) -> dict:
    return {**rig.ami, "port": relay.port, "reconnect_min": 0.05, "reconnect_max": 0.3,
            "ping_interval": 0.5, "ping_timeout": 0.5, "connect_timeout": 0.5, **extra}


async def test_silent_pbx_mid_talk_is_a_lost_link_not_the_end_of_the_call(rig, make_rig_gateway, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="c2c_ami")
    relay = await Relay("127.0.0.1", rig.ports.ami).start()
    client = await make_rig_gateway(rig_config(rig, tmp_path, ami=fast_ami(rig, relay)))
    ami, registry, reconciler = client.app[AMI], client.app[REGISTRY], client.app[RECONCILER]
    async with AmiWatch(rig.ports.ami) as asterisk:
        steps = Steps(client.app)
        status, body = await click(client, ext="223", phone=TALK_8S)
        assert status == 200, body
        call = registry.get(body["call_id"])
        await steps.until(call.call_id, "number_answered")
        runs = reconciler.runs
        relay.freeze()                                   # TCP open, not a byte either way
        await asyncio.wait_for(_state(ami, AmiState.CONNECTING, AmiState.DISCONNECTED), 5)
        assert f"AMI link to 127.0.0.1:{relay.port} lost (peer silent)" in caplog.text
        assert call.unobserved_since is not None and registry.get(call.call_id) is call
        seen = await (await client.get(f"/v1/calls/{call.call_id}", headers=AUTH)).json()
        assert (seen["call"]["state"], seen["call"]["status"]) == ("number_answered", None), seen
        relay.thaw()
        await tracked_again_and_ends_as_asterisk_saw_it(client, call, runs, asterisk)


async def test_refused_relogin_keeps_a_ringing_call_and_its_cancel_waits_for_the_link(
        rig, make_rig_gateway, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="c2c_ami")
    relay = await Relay("127.0.0.1", rig.ports.ami).start()
    client = await make_rig_gateway(rig_config(
        rig, tmp_path, ami=fast_ami(rig, relay, auth_retry=0.3, connect_timeout=3.0),  # a bad login: 1 s
        calls={"ring_timeout": 20, "dial_timeout": 3, "sync_timeout": 25}))
    ami, registry, reconciler = client.app[AMI], client.app[REGISTRY], client.app[RECONCILER]
    async with AmiWatch(rig.ports.ami) as asterisk:
        steps = Steps(client.app)
        status, body = await click(client, "/v1/click2call/async", ext=NEVER_ANSWERS, phone="0909000221")
        assert status == 200, body
        call_id = body["call_id"]
        await steps.until(call_id, "ext_ringing")
        runs = reconciler.runs
        relay.wrong_secret = b"not-the-secret"           # Asterisk itself refuses the next login
        await relay.cut()
        await relay.start()
        await asyncio.wait_for(_state(ami, AmiState.AUTH_FAILED), 8)
        assert "AMI login refused" in caplog.text and "lost (connection lost)" in caplog.text

        resp = await client.delete(f"/v1/calls/{call_id}", headers=AUTH)
        refused = await resp.json()
        assert (resp.status, refused["error"], refused["call_id"]) == (503, "PBX_UNAVAILABLE", call_id)
        seen = await (await client.get(f"/v1/calls/{call_id}", headers=AUTH)).json()
        assert (seen["call"]["state"], seen["call"]["status"]) == ("ext_ringing", None), seen

        relay.wrong_secret = None
        await asyncio.wait_for(_state(ami, AmiState.READY), 5)
        assert await reconciler.wait_run(runs + 1, 5)
        assert registry.get(call_id) is not None, "the phone still rings: the call must be kept"
        resp = await client.delete(f"/v1/calls/{call_id}", headers=AUTH)
        assert resp.status == 200, await resp.json()
        await asterisk.wait_for(lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == call_id)
        assert await registry.wait_empty(10)
    record = await stored(client.app).get_call("default", call_id)
    assert (record["status"], record["ended_unobserved"], record["hangup_by"]) == ("CANCEL", False, "api")


async def test_sigterm_mid_talk_leaves_the_call_to_the_next_start(rig, tmp_path, receiver):
    http_port = free_port()
    gateway = GatewayProcess(write_config(rig, tmp_path, http_port, f"sqlite:///{tmp_path}/c2c.sqlite3"))
    base = f"http://127.0.0.1:{http_port}"
    async with AmiWatch(rig.ports.ami) as asterisk, aiohttp.ClientSession(headers=AUTH) as http:
        await gateway.start()
        try:
            hook = await (await http.post(f"{base}/v1/event", json={
                "url": receiver.hook_url, "events": ["answered", "hangup", "cdr"]})).json()
            assert hook["status"] == "success", hook
            body = await (await http.get(f"{base}/v1/click2call", params={"ext": "224", "phone": TALK_8S})).json()
            assert "call_id" in body, (body, gateway.log[-20:])
            call_id = body["call_id"]
            answered = await number_answered(receiver, call_id)
            await gateway.stop()                         # SIGTERM mid-talk: ~7 s of it left
            assert gateway.proc.returncode == 0, gateway.log[-20:]
            early = [json.loads(b) for h, b in _drain(receiver.got) if h["X-C2C-Event"] in ("hangup", "cdr")]
            assert not [e for e in early if e["call_id"] == call_id], early
            assert any("live call" in line and "next start" in line for line in gateway.log), gateway.log[-10:]
            await gateway.start(adopted=1)
            hangup = await next_delivery(receiver, "hangup", call_id)
            cdr = await next_delivery(receiver, "cdr", call_id)
            await asterisk.wait_for(lambda e: e.get("Event") == "Hangup"
                                    and e.get("Channel") == answered["trunk_channel"])
        finally:
            await gateway.stop()
        up, down = asterisk.leg_times(answered["trunk_channel"])
    assert up is not None and down is not None, "Asterisk never reported the number's leg"
    assert hangup["hangup_by"] == "number"
    assert (cdr["status"], cdr["ended_unobserved"], cdr["hangup_by"]) == ("ANSWERED", False, "number")
    assert abs(cdr["billsec"] - (down - up)) <= 1, (cdr["billsec"], down - up)


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
