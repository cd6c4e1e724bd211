"""Call lifecycle against the fake AMI: states, webhooks in order with valid signatures,
CDRs, cancel, and tenant isolation."""
import asyncio
import json

import pytest

from c2c_ami.app_keys import REGISTRY, WEBHOOKS
from c2c_ami.notify.webhooks import verify
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, stored

OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}


async def register(client, url, events=("*",), headers=AUTH):
    resp = await client.post("/v1/event", json={"url": url, "events": list(events)}, headers=headers)
    assert resp.status == 200
    return (await resp.json())["hook"]


async def deliveries(receiver, count, secret):
    out = []
    for _ in range(count):
        headers, body = await asyncio.wait_for(receiver.got.get(), 5)
        assert verify(secret, headers["X-C2C-Timestamp"], headers["X-C2C-Signature"], body)
        out.append((headers["X-C2C-Event"], json.loads(body)))
    return out


async def test_answered_call_reports_every_step_in_order(gateway, fake_ami, receiver):
    hook = await register(gateway, receiver.hook_url)
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial_delay=0.05, talk_time=1.1)
    resp = await gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899098899"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    events = await deliveries(receiver, 6, hook["secret"])
    assert [(e, p["state"], p.get("leg"), p["call_state"]) for e, p in events] == [
        ("ringing", "ringing", "extension", "ext_ringing"), ("answered", "answered", "extension", "ext_answered"),
        ("ringing", "ringing", "number", "number_ringing"), ("answered", "answered", "number", "number_answered"),
        ("hangup", "hangup", None, "ended"), ("cdr", "cdr", None, "ended")]
    cdr = events[-1][1]
    assert cdr["call_id"] == call_id and cdr["domain"] == "default" and cdr["direction"] == "outbound"
    assert cdr["from_number"] == "101" and cdr["to_number"] == "0899098899" and cdr["hotline"] == "02873001234"
    assert cdr["status"] == "ANSWERED" and (cdr["cause"], cdr["cause_code"]) == ("NORMAL_CLEARING", 16)
    assert cdr["billsec"] >= 1
    assert cdr["duration"] >= cdr["billsec"] and cdr["ext_channel"] and cdr["trunk_channel"]
    stored = await (await gateway.get(f"/v1/calls/{call_id}", headers=AUTH)).json()
    assert stored["call"]["status"] == "ANSWERED" and stored["call"]["billsec"] == cdr["billsec"]
    listed = await (await gateway.get("/v1/cdr", params={"status": "ANSWERED", "extension": "101", "page": "1"},
                                      headers=AUTH)).json()
    assert listed["total"] == 1 and listed["cdrs"][0]["call_id"] == call_id


@pytest.mark.parametrize("dial_status, status, failure, cause, hangup_by", [
    ("BUSY", "BUSY", "busy", "17", "number"), ("NOANSWER", "NO ANSWER", "no_answer", "19", "pbx"),
    ("CONGESTION", "FAILED", "congestion", "34", "number"), ("CHANUNAVAIL", "FAILED", "unavailable", "20", "pbx")])
async def test_number_failures_give_status_and_cause(gateway, fake_ami, dial_status, status, failure, cause,
                                                     hangup_by):
    """The number's side ended it (busy, congestion) or the PBX did (its dial timeout, a
    trunk it could not reach): never the number for a timeout."""
    fake_ami.default_behaviour = Behaviour("answer", dial_status=dial_status)
    resp = await gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    assert await gateway.app[REGISTRY].wait_empty(3)
    record = (await stored(gateway.app).get_call("default", call_id))
    assert (record["status"], record["number_failure"], record["cause"]) == (status, failure, cause)
    assert record["hangup_by"] == hangup_by and record["billsec"] == 0


async def test_extension_failures_are_recorded(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("reject")
    body = await (await gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH)).json()
    record = (await stored(gateway.app).get_call("default", body["call_id"]))
    assert (record["status"], record["ext_failure"], record["state"]) == ("BUSY", "rejected", "ended")


async def test_cancel_while_ringing_answers_the_waiting_request(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=30)
    waiting = asyncio.create_task(gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH))
    originate = await fake_ami.wait_for_action("Originate")
    call_id = originate["ActionID"]
    live = await (await gateway.get("/v1/call", headers=AUTH)).json()
    assert [c["call_id"] for c in live["calls"]] == [call_id] and live["calls"][0]["source"] == "101"
    other = await gateway.delete(f"/v1/calls/{call_id}", headers=OTHER)
    assert other.status == 404 and (await other.json())["error"] == "CALL_NOT_FOUND"
    assert (await (await gateway.get("/v1/call", headers=OTHER)).json())["calls"] == []
    resp = await gateway.delete(f"/v1/calls/{call_id}", headers=AUTH)
    assert resp.status == 200
    answer = await asyncio.wait_for(waiting, 3)
    body = await answer.json()
    assert (answer.status, body["error"], body["call_id"]) == (409, "CALL_CANCELLED", call_id)
    hangup = await fake_ami.wait_for_action("Hangup")
    assert hangup["Channel"].startswith("PJSIP/101-") and hangup["Cause"] == "16"   # PJSIP's default is 0
    record = (await stored(gateway.app).get_call("default", call_id))
    assert (record["status"], record["hangup_by"], record["cause"], record["cause_txt"]) == (
        "CANCEL", "api", "16", "Normal Clearing")


async def test_cancel_before_the_channel_exists_hangs_it_up_when_it_appears(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("silent")  # acknowledged, no channel event yet
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    assert (await gateway.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    assert fake_ami.actions_named("Hangup") == []  # nothing to hang up yet
    fake_ami.emit_event({"Event": "Newchannel", "Channel": "PJSIP/101-00000009", "Uniqueid": call_id,
                         "Linkedid": call_id, "ChannelStateDesc": "Down"})
    hangup = await fake_ami.wait_for_action("Hangup")
    assert hangup["Channel"] == "PJSIP/101-00000009"


async def test_other_tenant_cannot_read_a_call_or_its_cdr(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("reject")
    body = await (await gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH)).json()
    for path in (f"/v1/calls/{body['call_id']}", f"/v1/cdr/{body['call_id']}"):
        resp = await gateway.get(path, headers=OTHER)
        assert resp.status == 404
        assert (await gateway.get(path, headers=AUTH)).status == 200
    assert (await (await gateway.get("/v1/cdr", params={"page": "1"}, headers=OTHER)).json())["total"] == 0
    assert (await (await gateway.get("/v1/cdr", headers=OTHER)).json())["data"] == []      # the scroll


async def test_webhook_registration_is_validated_and_tenant_scoped(gateway, receiver):
    for bad in ({"url": "ftp://x/"}, {"url": "http://x/\r\nHost: y"}, {"url": "http://x/", "events": ["nope"]},
                {"url": "http://x/", "secret": "short"}, []):
        resp = await gateway.post("/v1/event", json=bad, headers=AUTH)
        assert resp.status == 400 and (await resp.json())["error"] == "INVALID_PARAMS"
    hook = await register(gateway, receiver.hook_url, events=["cdr"])
    listed = await (await gateway.get("/v1/event", headers=AUTH)).json()
    assert [h["id"] for h in listed["hooks"]] == [hook["id"]] and "secret" not in listed["hooks"][0]
    assert (await (await gateway.get("/v1/event", headers=OTHER)).json())["hooks"] == []
    assert (await gateway.delete(f"/v1/event/{hook['id']}", headers=OTHER)).status == 404
    assert (await gateway.delete(f"/v1/event?id={hook['id']}", headers=AUTH)).status == 200
    assert (await (await gateway.get("/v1/event", headers=AUTH)).json())["hooks"] == []


async def test_undelivered_webhooks_survive_a_gateway_restart(aiohttp_client, fake_ami, receiver, tmp_path):
    from c2c_ami.app import create_app
    from c2c_ami.app_keys import AMI
    from tests.fixtures_gateway import gateway_config
    config = gateway_config(fake_ami.port, storage={"path": str(tmp_path / "c2c.sqlite3")})
    first = await aiohttp_client(create_app(config))
    assert await first.app[AMI].wait_ready(3)
    hook = await register(first, receiver.hook_url, events=["cdr"])
    await first.app[WEBHOOKS].close()  # the receiver is "down": nothing is delivered now
    fake_ami.default_behaviour = Behaviour("reject")
    body = await (await first.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH)).json()
    assert (await stored(first.app).outbox_counts())["pending"] == 1
    await first.close()
    second = await aiohttp_client(create_app(config))
    [(event, payload)] = await deliveries(receiver, 1, hook["secret"])
    assert (event, payload["call_id"]) == ("cdr", body["call_id"])
    await second.close()
