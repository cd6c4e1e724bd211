"""A client written only from the carrier's public docs, on the real rig: it exchanges its
api_key for a token, registers one callback per event with its own api key, places a v2
click-to-call for a customer, sees the call live, receives every event in the carrier's keys
and reads the CDR back by paging and by scrolling with carrier dates in Asia/Ho_Chi_Minh.
Nothing here uses a c2c-ami-only key."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from .conftest import rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

API_KEY = "carrier-client-api-key-0123456789"
CALLBACK_KEY = "crm-receiver-key"
TALK_3S = "0909000221"              # the trunk answers after ~1 s and hangs up ~3 s later
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CARRIER_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
EVENTS = ("ringing", "answered", "hangup", "cdr")


@pytest.fixture
async def crm(aiohttp_server):
    """The CRM's receiver: one URL per event, as the carrier's docs register them."""
    got: asyncio.Queue = asyncio.Queue()

    async def hook(request):
        await got.put((request.match_info["event"], dict(request.headers), json.loads(await request.read())))
        return web.Response(status=200)
    app = web.Application()
    app.router.add_post("/crm/{event}", hook)
    server = await aiohttp_server(app)
    server.got = got
    return server


async def test_a_client_written_from_the_carriers_docs_works_end_to_end(rig, make_rig_gateway, tmp_path, crm):
    config = rig_config(rig, tmp_path, api={"timezone": "Asia/Ho_Chi_Minh"},
                        auth={"signing_secret": "s" * 40},
                        webhooks={"timeout": 2.0, "backoff_base": 0.05, "backoff_max": 0.5,
                                  "allow_networks": ["127.0.0.0/8"]},
                        tenants=[{"domain": "crm.example", "api_keys": [API_KEY], "endpoint": f"{rig.tech}/{{ext}}",
                                  "context": "c2c-outbound", "extensions": "^[0-9]{3}$",
                                  "hotlines": {"02873001234": "hotline-trunk"}}])
    client = await make_rig_gateway(config)

    # docs/auth.md: POST /v1/auth/token {"api_key"} -> {"data": {"token", "expired", "user_id"}}
    resp = await client.post("/v1/auth/token", json={"api_key": API_KEY})
    issued = (await resp.json())["data"]
    assert resp.status == 200 and issued["token"] and issued["expired"] > 0
    auth = {"Authorization": f"Bearer {issued['token']}"}

    # docs/event.md: one registration per event
    for event in EVENTS:
        resp = await client.post("/v1/event", headers=auth, json={
            "callback_url": str(crm.make_url(f"/crm/{event}")), "callback_apikey": CALLBACK_KEY, "event": event})
        created = await resp.json()
        assert resp.status == 200 and created["created"] is True and created["id"], created
    listed = await (await client.get("/v1/event", headers=auth)).json()
    assert listed["total"] == 4 and sorted(h["event"] for h in listed["data"]) == sorted(EVENTS)

    # POST /v2/click2call {"id", "mobile", "agent"} -> {"code": "0", "status": "success", "call_id"}
    resp = await client.post("/v2/click2call", headers=auth,
                             json={"id": "KH-0042", "mobile": TALK_3S, "agent": "227"})
    placed = await resp.json()
    assert (resp.status, placed["code"], placed["status"]) == (200, "0", "success"), placed
    call_id = placed["call_id"]

    payloads: dict[str, list[dict]] = {event: [] for event in EVENTS}
    while not payloads["cdr"]:
        event, headers, payload = await asyncio.wait_for(crm.got.get(), 20)
        assert headers["X-Api-Key"] == CALLBACK_KEY and headers["Authorization"] == f"Bearer {CALLBACK_KEY}"
        assert payload["call_id"] == call_id and payload["state"] == event, payload
        payloads[event].append(payload)
        if event == "answered" and len(payloads["answered"]) == 1:      # the call is live now
            live = await (await client.get("/v1/call", headers=auth)).json()
            assert [c["call_id"] for c in live["data"]] == [call_id] and live["total"] == 1
            assert (live["data"][0]["direction"], live["data"][0]["customer_id"]) == ("outbound", "KH-0042")

    assert [len(payloads[e]) for e in EVENTS] == [2, 2, 1, 1]          # ringing/answered: once per leg
    for event in EVENTS:
        for payload in payloads[event]:
            assert (payload["domain"], payload["direction"], payload["from_number"], payload["to_number"],
                    payload["hotline"], payload["customer_id"]) == (
                "crm.example", "outbound", "227", TALK_3S, "02873001234", "KH-0042")
            assert CARRIER_TIME.fullmatch(payload["time_started"]) and isinstance(payload["recording_url"], str)
    cdr = payloads["cdr"][0]
    assert cdr["billsec"] >= 2 and cdr["duration"] >= cdr["billsec"] and isinstance(cdr["duration"], int)
    assert CARRIER_TIME.fullmatch(cdr["time_answered"]) and CARRIER_TIME.fullmatch(cdr["time_ended"])

    # CDRs: a page, and a scroll, with carrier dates in the API's time zone
    started = datetime.strptime(cdr["time_started"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE)
    assert abs((started - datetime.now(ZONE)).total_seconds()) < 120      # local time, not UTC
    window = {"start_date": started.strftime("%Y-%m-%d %H:%M:%S"),
              "end_date": (started + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")}
    page = await (await client.get("/v1/cdr", headers=auth, params={**window, "page": "1", "limit": "10"})).json()
    assert page["total"] == 1 and page["page"] == 1 and page["limit"] == 10
    record = page["data"][0]
    assert (record["id"], record["call_id"], record["status"], record["cause"], record["customer_id"]) == (
        call_id, call_id, "ANSWERED", "NORMAL_CLEARING", "KH-0042")
    later = {"start_date": (started + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")}
    assert (await (await client.get("/v1/cdr", headers=auth, params={**later, "page": "1"})).json())["total"] == 0

    scrolled, scroll = [], await (await client.get("/v1/cdr", headers=auth, params=window)).json()
    while scroll["data"]:
        scrolled += scroll["data"]
        scroll = await (await client.get("/v1/cdr", headers=auth, params={"scroll_id": scroll["scroll_id"]})).json()
    assert [r["call_id"] for r in scrolled] == [call_id]
    one = await (await client.get(f"/v1/cdr/{call_id}", headers=auth)).json()
    assert (one["call_id"], one["billsec"], one["time_started"]) == (call_id, cdr["billsec"], cdr["time_started"])
