"""The webhook payload in the carrier's keys (the carrier's "Event Hook Data"): ``state`` is the
event's name, ``leg`` tells which leg rang or answered, times in ``api.timezone``, the ``cdr``
event carrying the CDR ``GET /v1/cdr/{id}`` answers -- and c2c-ami's own fields as extras."""
import asyncio
import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from c2c_ami.app_keys import REGISTRY, WEBHOOKS
from c2c_ami.carrier import HOOK_KEYS, TIME_FIELDS, hook_payload
from c2c_ami.notify.webhooks import verify
from c2c_ami.testing.fake_ami import Behaviour
from tests.api.test_carrier_api import CARRIER_KEYS, cdr, schema_errors

from .fixtures_gateway import AUTH

CARRIER_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+00:00")
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def register(client):
    resp = await client.post("/v1/event", json={"url": client.receiver_url, "events": ["*"]}, headers=AUTH)
    assert resp.status == 200
    return (await resp.json())["hook"]["secret"]


async def deliveries(client, receiver, secret, count):
    """The next ``count`` deliveries, signed; then none more once the worker is idle."""
    out = []
    for _ in range(count):
        headers, body = await asyncio.wait_for(receiver.got.get(), 5)
        assert verify(secret, headers["X-C2C-Timestamp"], headers["X-C2C-Signature"], body)
        payload = json.loads(body)
        assert payload["state"] == payload["event"] == headers["X-C2C-Event"]
        out.append(payload)
    assert await client.app[REGISTRY].wait_empty(3)
    assert await client.app[WEBHOOKS].wait_idle(5) and receiver.got.empty()    # exactly these
    return out


def in_zone(iso_utc, zone):
    return datetime.fromisoformat(iso_utc).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def assert_carrier_keys(payload, call_id, ext, phone, zone):
    assert list(payload)[:len(HOOK_KEYS)] == list(HOOK_KEYS)        # the carrier's keys, in its order
    assert payload["call_id"] == call_id and payload["domain"] == "default"
    assert payload["direction"] == "outbound" and payload["hotline"] == "02873001234"
    assert (payload["from_number"], payload["to_number"]) == (ext, phone)
    assert isinstance(payload["sip_call_id"], str) and payload["recording_url"] == ""
    assert type(payload["duration"]) is int and type(payload["billsec"]) is int
    assert payload["customer_id"] is None
    for name in TIME_FIELDS:     # the carrier's format in api.timezone ("" when none), ISO UTC beside it
        utc = payload[f"{name}_utc"]
        if utc is None:
            assert payload[name] == ""
        else:
            assert ISO_UTC.fullmatch(utc) and CARRIER_TIME.fullmatch(payload[name])
            assert payload[name] == in_zone(utc, zone)


async def full_call(client, receiver, zone):
    secret = await register(client)
    resp = await client.get("/v1/click2call", params={"ext": "101", "phone": "0899098899"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    events = await deliveries(client, receiver, secret, 6)
    assert [(p["state"], p.get("leg")) for p in events] == [
        ("ringing", "extension"), ("answered", "extension"), ("ringing", "number"), ("answered", "number"),
        ("hangup", None), ("cdr", None)]
    assert [p["call_state"] for p in events] == [
        "ext_ringing", "ext_answered", "number_ringing", "number_answered", "ended", "ended"]
    for payload in events:
        assert_carrier_keys(payload, call_id, "101", "0899098899", zone)
        assert not schema_errors("WebhookPayload", payload)           # as the OpenAPI document says
    ringing, answered, hangup, cdr_ = events[0], events[3], events[4], events[5]
    assert ringing["time_answered"] == "" and ringing["time_ended"] == "" and ringing["billsec"] == 0
    assert answered["time_answered"] != "" and answered["time_ended"] == ""
    for end in (hangup, cdr_):
        assert end["status"] == "ANSWERED" and end["billsec"] >= 1 and end["duration"] >= end["billsec"]
        assert end["cause"] == "NORMAL_CLEARING" and end["cause_code"] == 16
        assert end["time_started"] and end["time_answered"] and end["time_ended"]
        assert end["ext_channel"] and end["trunk_channel"]
    # the cdr event holds the carrier's CDR exactly as GET /v1/cdr/{id} answers it
    api = await (await client.get(f"/v1/cdr/{call_id}", headers=AUTH)).json()
    assert {k: cdr_[k] for k in CARRIER_KEYS} == {k: api[k] for k in CARRIER_KEYS}
    assert {k: hangup[k] for k in CARRIER_KEYS} == {k: api[k] for k in CARRIER_KEYS}
    return events


async def test_a_full_call_sends_each_event_once_per_leg_in_the_carriers_keys_in_api_timezone(
        make_gateway, fake_ami, receiver):
    client = await make_gateway(api={"timezone": "Asia/Ho_Chi_Minh"})
    client.receiver_url = receiver.hook_url
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial_delay=0.05, talk_time=1.1)
    events = await full_call(client, receiver, HCM)
    started_utc = datetime.fromisoformat(events[-1]["time_started_utc"])
    assert events[-1]["time_started"] == started_utc.astimezone(HCM).strftime("%Y-%m-%d %H:%M:%S")
    # UTC+7: the carrier's time is not the UTC one
    assert events[-1]["time_started"] != started_utc.strftime("%Y-%m-%d %H:%M:%S")


async def test_a_full_call_in_utc(gateway, fake_ami, receiver):
    gateway.receiver_url = receiver.hook_url
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial_delay=0.05, talk_time=1.1)
    events = await full_call(gateway, receiver, UTC)
    assert events[-1]["time_started"] == events[-1]["time_started_utc"][:19].replace("T", " ")


async def test_a_call_failing_before_any_answer_sends_ringing_hangup_cdr(make_gateway, fake_ami, receiver):
    client = await make_gateway(api={"timezone": "Asia/Ho_Chi_Minh"})
    client.receiver_url = receiver.hook_url
    secret = await register(client)
    fake_ami.default_behaviour = Behaviour("reject", ring_delay=0.05)
    resp = await client.get("/v1/click2call", params={"ext": "101", "phone": "0899", "customer_id": "KH-9"},
                            headers=AUTH)
    call_id = (await resp.json())["call_id"]
    events = await deliveries(client, receiver, secret, 3)
    assert [(p["state"], p.get("leg")) for p in events] == [("ringing", "extension"), ("hangup", None), ("cdr", None)]
    for payload in events:
        assert_carrier_keys({**payload, "customer_id": None}, call_id, "101", "0899", HCM)
        assert not schema_errors("WebhookPayload", payload)
        assert payload["customer_id"] == "KH-9"
    for end in events[1:]:
        assert (end["status"], end["ext_failure"], end["call_state"]) == ("BUSY", "rejected", "ended")
        assert end["billsec"] == 0 and end["time_answered"] == "" and end["time_answered_utc"] is None
        assert end["time_ended"] != "" and end["cause"] == "USER_BUSY" and end["cause_code"] == 17


def test_the_payload_puts_the_carriers_keys_first_and_keeps_the_gateways_as_extras():
    record = cdr("c1", sip_call_id="abc@10.0.0.1", time_answered=None, status="BUSY", cause="17",
                 customer_id="KH1", number_failure="busy")
    payload = hook_payload(record, "hangup", HCM)
    assert {k: payload[k] for k in HOOK_KEYS} == {
        "call_id": "c1", "sip_call_id": "abc@10.0.0.1", "domain": "default", "direction": "outbound",
        "from_number": "101", "to_number": "0899888999", "hotline": "02873001234", "state": "hangup",
        "duration": 7, "billsec": 5, "recording_url": "", "time_started": "2021-02-18 17:20:58",
        "time_answered": "", "time_ended": "2021-02-18 17:20:58", "customer_id": "KH1"}
    assert "leg" not in payload and "tenant" not in payload
    assert (payload["call_state"], payload["status"], payload["cause"], payload["cause_code"]) == (
        "ended", "BUSY", "USER_BUSY", 17)
    assert (payload["number_failure"], payload["trunk"], payload["pbx"]) == ("busy", "hotline-trunk", "default")
    assert payload["time_started_utc"] == "2021-02-18T10:20:58.300+00:00" and payload["time_answered_utc"] is None
    assert payload["time_ext_answered"] == "2021-02-18 17:20:58"
    ringing = hook_payload({**record, "state": "number_ringing"}, "ringing", UTC, leg="number")
    assert (ringing["state"], ringing["leg"], ringing["call_state"]) == ("ringing", "number", "number_ringing")
    assert ringing["time_started"] == "2021-02-18 10:20:58"
    assert list(ringing)[:len(HOOK_KEYS) + 1] == [*HOOK_KEYS, "leg"]
