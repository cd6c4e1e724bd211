"""Call lifecycle on the real rig: webhooks in order with valid signatures and real durations,
number failures, cancel while ringing, restart with undelivered webhooks, tenant isolation."""
import asyncio
import json
import re
from urllib.parse import quote

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, REGISTRY, WEBHOOKS
from c2c_ami.notify.webhooks import verify
from tests.fixtures_gateway import stored

from .conftest import AUTH, OTHER, click, in_thread, now, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig



async def register_hook(client, url, events=("*",)):
    resp = await client.post("/v1/event", json={"url": url, "events": list(events)}, headers=AUTH)
    return (await resp.json())["hook"]


async def next_deliveries(receiver, secret, count, timeout=15):
    out = []
    for _ in range(count):
        headers, body = await asyncio.wait_for(receiver.got.get(), timeout)
        assert verify(secret, headers["X-C2C-Timestamp"], headers["X-C2C-Signature"], body)
        out.append((headers["X-C2C-Event"], json.loads(body)))
    return out


async def test_answered_call_webhooks_in_order_with_real_durations(gw, rig, receiver):
    hook = await register_hook(gw, receiver.hook_url)
    t0 = now()
    status, body = await click(gw, ext="221", phone="0909000221")
    assert status == 200
    events = await next_deliveries(receiver, hook["secret"], 6)
    assert [(e, p["state"], p.get("leg"), p["call_state"]) for e, p in events] == [
        ("ringing", "ringing", "extension", "ext_ringing"), ("answered", "answered", "extension", "ext_answered"),
        ("ringing", "ringing", "number", "number_ringing"), ("answered", "answered", "number", "number_answered"),
        ("hangup", "hangup", None, "ended"), ("cdr", "cdr", None, "ended")]
    assert {p["call_id"] for _, p in events} == {body["call_id"]}
    cdr = events[-1][1]
    trunk_invite = rig.trunk_invites("0909000221", "hotline-trunk", after=t0)[0]
    assert cdr["sip_call_id"] == trunk_invite.call_id  # the outbound leg's SIP Call-ID
    assert cdr["status"] == "ANSWERED" and cdr["hangup_by"] == "number"
    assert (cdr["cause"], cdr["cause_code"]) == ("NORMAL_CLEARING", 16)
    assert 2 <= cdr["billsec"] <= 5, cdr  # the trunk hangs up ~3 s after answering
    assert cdr["billsec"] <= cdr["duration"] <= cdr["billsec"] + 3
    assert cdr["domain"] == "default" and cdr["from_number"] == "221" and cdr["to_number"] == "0909000221"
    # the carrier's CDR, found by the real SIP Call-ID as by the call_id
    by_sip = await gw.get(f"/v1/cdr/{quote(trunk_invite.call_id, safe='')}", headers=AUTH)
    carrier = await by_sip.json()
    assert by_sip.status == 200 and carrier == await (await gw.get(f"/v1/cdr/{body['call_id']}", headers=AUTH)).json()
    assert (carrier["id"], carrier["sip_call_id"], carrier["status"], carrier["cause"], carrier["cause_code"]) == (
        body["call_id"], trunk_invite.call_id, "ANSWERED", "NORMAL_CLEARING", 16)
    assert all(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", carrier[t])
               for t in ("time_started", "time_answered", "time_ended"))
    # the cdr webhook carries that same carrier CDR
    # (but for the record's own tenant and state: the payload's domain and call_state)
    same = [k for k in carrier if k not in ("call", "tenant", "state")]
    assert {k: cdr[k] for k in same} == {k: carrier[k] for k in same}
    assert (cdr["domain"], cdr["call_state"]) == (carrier["tenant"], carrier["state"])


async def test_a_carrier_client_registering_one_url_per_event_gets_each_with_its_key(gw, rig, receiver):
    """The carrier's registration: one hook per event, each delivering only its event with the
    receiver's own key as X-Api-Key and Authorization: Bearer."""
    secrets = {}
    for event in ("ringing", "answered", "hangup", "cdr"):
        resp = await gw.post("/v1/event", json={"callback_url": receiver.hook_url, "event": event,
                                                "callback_apikey": f"key-{event}"}, headers=AUTH)
        body = await resp.json()
        assert resp.status == 200 and set(body) == {"created", "id", "secret"} and body["created"] is True
        secrets[event] = body["secret"]
    status, body = await click(gw, ext="221", phone="0909000231")
    assert status == 200
    got = []
    for _ in range(6):                     # ringing and answered twice (extension, number)
        headers, raw = await asyncio.wait_for(receiver.got.get(), 15)
        event = headers["X-C2C-Event"]
        assert headers["X-Api-Key"] == f"key-{event}" and headers["Authorization"] == f"Bearer key-{event}"
        assert verify(secrets[event], headers["X-C2C-Timestamp"], headers["X-C2C-Signature"], raw)
        assert json.loads(raw)["call_id"] == body["call_id"]
        got.append(event)
    assert sorted(got) == ["answered", "answered", "cdr", "hangup", "ringing", "ringing"]
    assert await gw.app[WEBHOOKS].wait_idle(5) and receiver.got.empty()


@pytest.mark.parametrize("phone, status, failure", [("0909000486", "BUSY", "busy"),
                                                    ("0909000408", "NO ANSWER", "no_answer"),
                                                    ("0909000503", "FAILED", "congestion")])
async def test_number_failures_status_and_cause(gw, rig, phone, status, failure):
    code, body = await click(gw, ext="222", phone=phone)
    assert code == 200
    assert await gw.app[REGISTRY].wait_empty(10)
    record = (await stored(gw.app).get_call("default", body["call_id"]))
    assert (record["status"], record["number_failure"]) == (status, failure)
    assert record["cause"] and record["billsec"] == 0


async def test_cancel_while_ringing_sends_cancel_to_the_phone(gw, rig):
    t0 = now()
    waiting = asyncio.create_task(click(gw, ext="109", phone="0899"))
    invite = await in_thread(rig.wait_for_invite, "109", after=t0)
    call_id = next(iter(gw.app[REGISTRY].live())).call_id
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=OTHER)).status == 404
    assert (await gw.get(f"/v1/calls/{call_id}", headers=OTHER)).status == 404
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    status, body = await asyncio.wait_for(waiting, 5)
    assert (status, body["error"]) == (409, "CALL_CANCELLED")
    await in_thread(rig.wait_for_message, "109", "CANCEL", call_id=invite.call_id, after=t0)
    assert await gw.app[REGISTRY].wait_empty(5)
    record = (await (await gw.get(f"/v1/cdr/{call_id}", headers=AUTH)).json())["call"]
    assert (record["status"], record["hangup_by"]) == ("CANCEL", "api")
    assert (await gw.get(f"/v1/cdr/{call_id}", headers=OTHER)).status == 404


async def test_restart_delivers_webhooks_left_undelivered(rig, aiohttp_client, receiver, tmp_path):
    config = rig_config(rig, tmp_path)
    first = await aiohttp_client(create_app(config))
    assert await first.app[AMI].wait_ready(5)
    hook = await register_hook(first, receiver.hook_url, events=["hangup", "cdr"])
    await first.app[WEBHOOKS].close()          # deliveries stop, as if the receiver were down
    status, body = await click(first, ext="102", phone="0899")  # rejected: ends at once
    assert status == 409 and await first.app[REGISTRY].wait_empty(5)
    assert (await stored(first.app).outbox_counts())["pending"] == 2
    await first.close()
    second = await aiohttp_client(create_app(config))
    events = await next_deliveries(receiver, hook["secret"], 2)
    assert [(e, p["call_id"], p["status"]) for e, p in events] == [
        ("hangup", body["call_id"], "BUSY"), ("cdr", body["call_id"], "BUSY")]
    await second.close()
