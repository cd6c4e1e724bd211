"""GET /v1/events/stream on the fake AMI: a call's events as SSE (the webhook bodies, state
changes, agent changes), per-tenant ids, resuming with Last-Event-ID (no loss, no duplicate),
reset past the retention, extension-scoped tokens, tokens in the query and the access log."""
import asyncio
import logging

import pytest

from c2c_ami.app_keys import AGENT_FEEDS, EVENTS, STORAGE
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, TOKEN, stored
from tests.sse import SseReader

TENANTS = [
    {"domain": "default", "tokens": [TOKEN], "api_keys": ["key-default-0123456789"], "endpoint": "PJSIP/{ext}",
     "extensions": "^1[0-9]{2}$", "hotlines": {"02873001234": "hotline-trunk"},
     "agents": {"101": "Nguyễn Văn A"}},
    {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": "PJSIP/{ext}", "extensions": "^2[0-9]{2}$",
     "hotlines": {"02439990000": "other-trunk"}},
]
CALL_EVENTS = ("state", "ringing", "answered", "hangup", "cdr")


@pytest.fixture
async def client(make_gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", dial="trunk", talk_time=0.05)
    return await make_gateway(tenants=TENANTS, auth={"signing_secret": "s" * 32})


async def open_stream(client, headers=AUTH, **params):
    resp = await client.get("/v1/events/stream", headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/event-stream"
    return SseReader(resp)


_numbers = iter(range(10**6))


async def call(client, ext="101", headers=AUTH):
    """A click-to-call (each to another number: the same click twice would be a double click)."""
    phone = f"08990{next(_numbers):05d}"
    resp = await client.get("/v1/click2call/async", params={"ext": ext, "phone": phone}, headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["call_id"]


def call_events(events, call_id):
    return [e for e in events if e.event in CALL_EVENTS and e.json["call_id"] == call_id]


async def test_a_call_streams_its_webhook_events_and_state_changes(client):
    stream = await open_stream(client)
    call_id = await call(client)
    events = call_events(await stream.until(lambda e: e.event == "cdr"), call_id)
    names = [(e.event, e.json.get("leg") or e.json["call_state"]) for e in events]
    webhooks = [n for n in names if n[0] != "state"]
    assert webhooks == [("ringing", "extension"), ("answered", "extension"), ("ringing", "number"),
                        ("answered", "number"), ("hangup", "ended"), ("cdr", "ended")]
    states = [state for event, state in names if event == "state"]
    assert states[0] == "originating" and states[-1] == "ended"
    assert {"ext_ringing", "ext_answered", "number_answered"} <= set(states)
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    cdr = events[-1].json
    assert cdr["event"] == cdr["state"] == "cdr" and cdr["domain"] == "default" and cdr["status"] == "ANSWERED"
    stored_cdr = await stored(client.app).get_call("default", call_id)
    assert stored_cdr["status"] == "ANSWERED"


async def test_the_data_is_the_webhook_body(client, aiohttp_server):
    """Byte for byte: what a hook receives is what the stream says."""
    from aiohttp import web
    bodies = []

    async def receive(request):
        bodies.append((request.headers["X-C2C-Event"], await request.text()))
        return web.Response()
    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app)
    resp = await client.post("/v1/event", json={"url": f"http://127.0.0.1:{server.port}/hook", "events": ["cdr"]},
                             headers=AUTH)
    assert resp.status == 200
    stream = await open_stream(client)
    call_id = await call(client)
    cdr = (await stream.until(lambda e: e.event == "cdr"))[-1]
    assert cdr.json["call_id"] == call_id

    async def delivered():
        while not bodies:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(delivered(), 5)
    assert bodies == [("cdr", cdr.data)]


async def test_ids_are_per_tenant_and_tenants_see_only_their_own(client):
    mine, theirs = await open_stream(client), await open_stream(client, {"Authorization": f"Bearer {OTHER_TOKEN}"})
    other_call = await call(client, ext="201", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    their_events = await theirs.until(lambda e: e.event == "cdr")
    my_call = await call(client)
    my_events = await mine.until(lambda e: e.event == "cdr")
    assert {e.json["call_id"] for e in my_events if e.event in CALL_EVENTS} == {my_call}
    assert {e.json["call_id"] for e in their_events if e.event in CALL_EVENTS} == {other_call}
    assert int(their_events[0].id) == 1 and int(my_events[0].id) == 1     # each tenant its own sequence


async def test_resume_with_last_event_id_loses_nothing_and_repeats_nothing(client):
    first = await open_stream(client)
    call_a = await call(client)
    events = await first.until(lambda e: e.event == "cdr")
    cut = events[2]                                  # the client got this far, then lost the connection
    first.response.close()
    call_b = await call(client)                      # happens while it is away
    await stored(client.app).get_call("default", call_b)
    second = await open_stream(client, {**AUTH, "Last-Event-ID": cut.id})
    resumed = await second.until(lambda e: e.event == "cdr" and e.json["call_id"] == call_b)
    assert [e.id for e in resumed[:len(events) - 3]] == [e.id for e in events[3:]]
    ids = [int(e.id) for e in resumed]
    assert ids == list(range(int(cut.id) + 1, int(cut.id) + 1 + len(ids)))     # every one, once
    assert {e.json["call_id"] for e in resumed if e.event in CALL_EVENTS} == {call_a, call_b}
    third = await open_stream(client, last_event_id=resumed[-1].id)      # ?last_event_id= for a page reload
    call_c = await call(client)
    later = await third.until(lambda e: e.event == "cdr")
    assert int(later[0].id) == int(resumed[-1].id) + 1 and later[-1].json["call_id"] == call_c


async def test_an_id_past_the_retention_or_unknown_gets_a_reset(client):
    stream = await open_stream(client)
    await call(client)
    events = await stream.until(lambda e: e.event == "cdr")
    hub = client.app[EVENTS]
    assert await hub.purge(now=10**10) == len(events)          # everything is older than the retention
    reset = await (await open_stream(client, {**AUTH, "Last-Event-ID": events[1].id})).next()
    assert reset.event == "reset" and reset.id == events[-1].id
    assert reset.json == {"reason": "purged", "last_event_id": events[1].id, "id": int(events[-1].id)}
    for bad in ("99999", "garbage"):
        reset = await (await open_stream(client, {**AUTH, "Last-Event-ID": bad})).next()
        assert reset.event == "reset" and reset.json["reason"] == "unknown"
    after_reset = await open_stream(client, {**AUTH, "Last-Event-ID": events[-1].id})    # the reset's id: resumes
    call_id = await call(client)
    assert (await after_reset.next()).json["call_id"] == call_id


async def issued(client, ext=None):
    body = {"api_key": "key-default-0123456789", **({"ext": ext} if ext else {})}
    resp = await client.post("/v1/auth/token", json=body)
    assert resp.status == 200
    return (await resp.json())["data"]["token"]


async def test_an_extension_token_sees_only_its_extension(client, fake_ami):
    token = await issued(client, ext="102")
    scoped = await open_stream(client, {}, token=token)                # ?token=, as EventSource sends it
    everything = await open_stream(client)
    await call(client, ext="101")
    mine = await call(client, ext="102")
    seen = await everything.until(lambda e: e.event == "cdr" and e.json["call_id"] == mine)
    assert {e.json["call_id"] for e in seen if e.event in CALL_EVENTS} >= {mine}
    scoped_seen = await scoped.until(lambda e: e.event == "cdr")
    assert {e.json["call_id"] for e in scoped_seen if e.event in CALL_EVENTS} == {mine}
    assert all(e.json["extension"] == "102" for e in scoped_seen if e.event == "agent")


async def test_tokens_are_checked(client):
    assert (await client.get("/v1/events/stream")).status == 401
    assert (await client.get("/v1/events/stream", params={"token": "nope"})).status == 401
    both = await client.get("/v1/events/stream", params={"token": TOKEN}, headers=AUTH)
    assert both.status == 400 and (await both.json())["message"].startswith("token:")


async def test_the_token_in_the_query_never_reaches_the_access_log(caplog):
    from unittest import mock

    from c2c_ami.http_server import QueryAccessLogger
    logger = logging.getLogger("test.access")
    request = mock.Mock(path="/v1/events/stream", query_string="last_event_id=4&token=secret-token&x=1",
                        remote="127.0.0.1", method="GET", version=mock.Mock(major=1, minor=1))
    with caplog.at_level(logging.INFO, logger="test.access"):
        QueryAccessLogger(logger, "").log(request, mock.Mock(status=200, body_length=0), 0.1)
    assert "secret-token" not in caplog.text
    assert "/v1/events/stream?last_event_id=4&token=[redacted]&x=1" in caplog.text


async def test_agent_changes_are_streamed(client, fake_ami):
    stream = await open_stream(client)
    fake_ami.register_phone("PJSIP/101", "Yealink SIP-T46S", "10.0.0.15")
    agent = (await stream.until(lambda e: e.event == "agent" and e.json["extension"] == "101"
                                and e.json.get("user_agent")))[-1].json      # the contact is read after the state
    assert agent["agent_name"] == "Nguyễn Văn A" and agent["user_agent"] == "Yealink SIP-T46S"
    assert agent["call_state"] == "IDLE"
    fake_ami.unregister_phone("PJSIP/101")
    gone = (await stream.until(lambda e: e.event == "agent" and not e.json["registered"]))[-1].json
    assert gone == {"extension": "101", "agent_name": "Nguyễn Văn A", "domain_name": "default",
                    "registered": False}
    # the same rows again (a new writer's first pass compares every row): nothing new is logged
    feed = client.app[AGENT_FEEDS]["default"]
    head = await client.app[STORAGE].event_head("default")
    feed._logged.clear()
    await feed.write_changes()
    assert await client.app[STORAGE].event_head("default") == head


async def test_a_phone_change_rebuilds_only_the_rows_of_the_changed_extensions(client, fake_ami):
    """A call changes its phone several times: each pass of the writer builds the rows of the
    changed extensions only, not the tenant's (item 7 of the bench: the tenant's whole list per
    change was 12 % of the gateway's CPU per call)."""
    stream = await open_stream(client)
    fake_ami.register_phone("PJSIP/101", "Yealink SIP-T46S", "10.0.0.15")     # (the writer's first,
    await stream.until(lambda e: e.event == "agent" and e.json["extension"] == "101"     # full pass)
                       and e.json.get("user_agent"))
    feed = client.app[AGENT_FEEDS]["default"]
    asked = []
    agents = feed.monitor.agents

    async def spied(tenant, ext=None, *, only=None):
        asked.append(only)
        return await agents(tenant, ext, only=only)
    feed.monitor.agents = spied
    fake_ami.register_phone("PJSIP/102", "Yealink SIP-T46S", "10.0.0.16")
    fake_ami.register_phone("PJSIP/103", "Yealink SIP-T46S", "10.0.0.17")
    await stream.until(lambda e: e.event == "agent" and e.json["extension"] == "103" and e.json.get("user_agent"))
    assert asked and all(only is not None and only <= {"102", "103"} for only in asked), asked


async def test_stream_limits_are_per_tenant(make_gateway, fake_ami):
    client = await make_gateway(tenants=TENANTS, events={"max_streams_per_tenant": 1})
    await open_stream(client)
    refused = await client.get("/v1/events/stream", headers=AUTH)
    assert refused.status == 429 and "Retry-After" in refused.headers
    await open_stream(client, {"Authorization": f"Bearer {OTHER_TOKEN}"})    # another tenant's is not refused


async def test_metrics_count_streams_and_events(client):
    stream = await open_stream(client)
    await call(client)
    await stream.until(lambda e: e.event == "cdr")
    text = await (await client.get("/metrics")).text()
    assert "c2c_event_streams 1.0" in text
    sent = next(line for line in text.splitlines() if line.startswith("c2c_event_frames_sent_total"))
    assert float(sent.split()[-1]) >= 6
