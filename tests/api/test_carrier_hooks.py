"""Webhook registration the carrier's way: ``POST /v1/event {"callback_url",
"callback_apikey", "event"}`` answered in the carrier's keys, listings readable by carrier and
c2c-ami clients alike, and the receiver's api key on every delivery -- beside c2c-ami's shape."""
import logging
import uuid
from collections import Counter

import pytest

from c2c_ami.app_keys import WEBHOOKS
from c2c_ami.notify.webhooks import verify
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN
from tests.notify.test_webhooks import Receiver

OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}


@pytest.fixture
async def hooks_receiver(aiohttp_server):
    """The receiver of tests/notify/test_webhooks.py: every POST /{name} recorded, answered per plan."""
    r = await Receiver.serving(aiohttp_server)
    yield r
    r.release.set()


async def register(client, headers=AUTH, **body):
    resp = await client.post("/v1/event", json=body, headers=headers)
    return resp.status, await resp.json()


async def refused(client, body, headers=AUTH):
    status, answer = await register(client, headers=headers, **body)
    assert (status, answer["status"], answer["error"]) == (400, "fail", "INVALID_PARAMS"), (body, answer)
    return answer["message"]


# ---- registration ---------------------------------------------------------------------------

async def test_a_carrier_registration_is_answered_in_exactly_the_carriers_keys(gateway):
    status, body = await register(gateway, callback_url="https://crm.example.com/hook",
                                  callback_apikey="foo", event="hangup")
    assert status == 200
    assert set(body) == {"created", "id", "secret"}
    assert body["created"] is True and str(uuid.UUID(body["id"])) == body["id"]
    assert isinstance(body["secret"], str) and len(body["secret"]) >= 32
    # without an api key, and with a secret of the client's own
    status, body = await register(gateway, callback_url="https://crm.example.com/hook", event="cdr",
                                  secret="my-own-signing-secret")
    assert (status, set(body), body["secret"]) == (200, {"created", "id", "secret"}, "my-own-signing-secret")


async def test_the_c2c_shape_is_answered_as_before(gateway):
    status, body = await register(gateway, url="https://crm.example.com/hook", events=["cdr"])
    assert status == 200 and body["status"] == "success"
    assert set(body["hook"]) == {"id", "url", "events", "created_at", "secret"}
    assert body["hook"]["events"] == ["cdr"]


async def test_the_shape_is_told_by_the_url_key_and_mixtures_are_refused(gateway):
    both = await refused(gateway, {"url": "https://a.example/", "callback_url": "https://a.example/",
                                   "event": "cdr"})
    assert both.startswith("callback_url: ") and "not both" in both
    assert (await refused(gateway, {"callback_url": "https://a.example/", "events": ["cdr"]})).startswith("events: ")
    assert (await refused(gateway, {"url": "https://a.example/", "event": "cdr"})).startswith("event: ")
    assert (await refused(gateway, {"url": "https://a.example/", "callback_apikey": "k"})).startswith(
        "callback_apikey: ")
    assert (await refused(gateway, {"callback_url": "ftp://a.example/", "event": "cdr"})).startswith(
        "callback_url: ")
    assert (await refused(gateway, {"callback_url": 5, "event": "cdr"})).startswith("callback_url: ")


async def test_only_the_events_this_gateway_produces_may_be_registered(gateway):
    for event in ("missed", "cdr_autocall"):
        message = await refused(gateway, {"callback_url": "https://a.example/", "event": event})
        assert message.startswith("event: one of ringing, answered, hangup, cdr"), message
        assert "click-to-call calls only" in message
    for body in ({"callback_url": "https://a.example/"}, {"callback_url": "https://a.example/", "event": "*"},
                 {"callback_url": "https://a.example/", "event": "create"},
                 {"callback_url": "https://a.example/", "event": ["cdr"]}):
        assert (await refused(gateway, body)) == "event: one of ringing, answered, hangup, cdr", body
    for event in ("ringing", "answered", "hangup", "cdr"):
        assert (await register(gateway, callback_url="https://a.example/", event=event))[0] == 200


async def test_a_bad_api_key_is_refused_without_being_echoed(gateway):
    for bad in ("abc\r\nX-Evil: 1", "abc\ndef", "abc\rdef", "x" * 513, "with space", "tab\there", "é-key",
                "nul\x00", 123, ["k"], {"k": "v"}, True):
        message = await refused(gateway, {"callback_url": "https://a.example/", "event": "cdr",
                                          "callback_apikey": bad})
        assert message == ("callback_apikey: 1-512 printable ASCII characters without spaces "
                           "or control characters"), (bad, message)
    for fine, stored in (("k" * 512, "k" * 512), ("", ""), (None, "")):
        status, body = await register(gateway, callback_url="https://a.example/", event="cdr", callback_apikey=fine)
        assert status == 200
        listed = (await (await gateway.get("/v1/event", headers=AUTH)).json())["data"]
        assert [h["callback_apikey"] for h in listed if h["id"] == body["id"]] == [stored]


async def test_the_egress_policy_and_the_cap_hold_for_carrier_registrations(make_gateway):
    client = await make_gateway(webhooks={"allow_networks": [], "max_hooks_per_tenant": 4})
    for url in ("http://127.0.0.1:9/", "http://10.0.0.1/", "http://localhost/", "http://u:p@a.example/"):
        message = await refused(client, {"callback_url": url, "event": "cdr"})
        assert message.startswith("callback_url: "), (url, message)
    for event in ("ringing", "answered", "hangup", "cdr"):      # one URL, four events: four hooks
        assert (await register(client, callback_url="https://crm.example.com/", event=event))[0] == 200
    status, body = await register(client, callback_url="https://crm.example.com/2", event="cdr")
    assert (status, body["error"]) == (409, "TOO_MANY_HOOKS")
    status, body = await register(client, url="https://crm.example.com/3")       # the cap is shared
    assert (status, body["error"]) == (409, "TOO_MANY_HOOKS")


# ---- listing and removal ----------------------------------------------------------------------

async def test_the_listing_answers_carrier_and_c2c_clients_alike(gateway):
    _, several = await register(gateway, url="https://a.example/several", events=["hangup", "cdr"])
    _, every = await register(gateway, url="https://a.example/every")
    _, keyed = await register(gateway, callback_url="https://a.example/keyed", event="ringing",
                              callback_apikey="foo")
    _, plain = await register(gateway, callback_url="https://a.example/plain", event="answered")
    await register(gateway, headers=OTHER, callback_url="https://other.example/", event="cdr")

    body = await (await gateway.get("/v1/event", headers=AUTH)).json()
    assert set(body) == {"data", "total", "status", "hooks", "page", "limit"}
    assert (body["total"], body["status"], body["page"], body["limit"]) == (4, "success", 1, 50)
    assert body["data"] == [
        {"id": several["hook"]["id"], "event": "cdr,hangup", "callback_url": "https://a.example/several",
         "callback_apikey": ""},
        {"id": every["hook"]["id"], "event": "*", "callback_url": "https://a.example/every", "callback_apikey": ""},
        {"id": keyed["id"], "event": "ringing", "callback_url": "https://a.example/keyed", "callback_apikey": "foo"},
        {"id": plain["id"], "event": "answered", "callback_url": "https://a.example/plain", "callback_apikey": ""},
    ]
    assert [(h["id"], h["url"], h["events"]) for h in body["hooks"]] == [
        (several["hook"]["id"], "https://a.example/several", ["cdr", "hangup"]),
        (every["hook"]["id"], "https://a.example/every", ["*"]),
        (keyed["id"], "https://a.example/keyed", ["ringing"]),
        (plain["id"], "https://a.example/plain", ["answered"])]
    assert all(set(h) == {"id", "url", "events", "created_at"} for h in body["hooks"])   # no secret, no key
    paged = await (await gateway.get("/v1/event", params={"limit": "2", "page": "2"}, headers=AUTH)).json()
    assert [h["id"] for h in paged["data"]] == [keyed["id"], plain["id"]] and paged["total"] == 4
    other = await (await gateway.get("/v1/event", headers=OTHER)).json()
    assert other["total"] == 1 and [h["callback_url"] for h in other["data"]] == ["https://other.example/"]


async def test_delete_answers_deleted_true(gateway):
    _, carrier = await register(gateway, callback_url="https://a.example/", event="cdr")
    _, c2c = await register(gateway, url="https://a.example/")
    resp = await gateway.delete(f"/v1/event/{carrier['id']}", headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"deleted": True, "status": "success"}
    resp = await gateway.delete("/v1/event", params={"id": c2c["hook"]["id"]}, headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"deleted": True, "status": "success"}
    again = await gateway.delete(f"/v1/event/{carrier['id']}", headers=AUTH)
    assert again.status == 404 and (await again.json())["error"] == "HOOK_NOT_FOUND"
    assert (await (await gateway.get("/v1/event", headers=AUTH)).json())["data"] == []


# ---- delivery ---------------------------------------------------------------------------------

async def test_one_url_registered_for_four_events_gets_each_event_once_with_its_hooks_key(
        gateway, fake_ami, hooks_receiver):
    secrets = {}
    for event in ("ringing", "answered", "hangup", "cdr"):
        status, body = await register(gateway, callback_url=hooks_receiver.url("crm"), event=event,
                                      callback_apikey=f"key-{event}")
        assert status == 200
        secrets[event] = body["secret"]
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial_delay=0.05, talk_time=1.1)
    resp = await gateway.get("/v1/click2call", params={"ext": "101", "phone": "0899098899"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]

    # ringing and answered fire for the extension and again for the number: 6 deliveries
    await hooks_receiver.until(lambda: len(hooks_receiver.hits) == 6, timeout=10)
    assert await gateway.app[WEBHOOKS].wait_idle(5)
    hits = hooks_receiver.on("crm")
    # (order holds per hook and call; these are four hooks, delivered independently)
    assert Counter(h.event for h in hits) == {"ringing": 2, "answered": 2, "hangup": 1, "cdr": 1}
    for hit in hits:                       # each delivery came from the hook of its own event
        assert hit.call_id == call_id
        assert hit.headers["X-Api-Key"] == f"key-{hit.event}"
        assert hit.headers["Authorization"] == f"Bearer key-{hit.event}"
        assert verify(secrets[hit.event], hit.headers["X-C2C-Timestamp"], hit.headers["X-C2C-Signature"], hit.body)
        assert not any(verify(secrets[e], hit.headers["X-C2C-Timestamp"], hit.headers["X-C2C-Signature"], hit.body)
                       for e in secrets if e != hit.event)


async def test_a_hook_without_a_key_sends_neither_key_header(gateway, hooks_receiver):
    await register(gateway, callback_url=hooks_receiver.url("plain"), event="ringing")
    await register(gateway, url=hooks_receiver.url("c2c"), events=["ringing"])
    assert await gateway.app[WEBHOOKS].publish("default", "ringing", {"call_id": "c1"}) == 2
    await hooks_receiver.until(lambda: len(hooks_receiver.hits) == 2)
    for hit in hooks_receiver.hits:
        assert "X-Api-Key" not in hit.headers and "Authorization" not in hit.headers


async def test_the_api_key_never_appears_in_the_logs(make_gateway, hooks_receiver, caplog):
    key = "k3y-NEVER-LOGGED-7f3a"
    hooks_receiver.plans["down"] = lambda hit: 500
    client = await make_gateway(webhooks={"max_attempts": 2})
    with caplog.at_level(logging.DEBUG):
        await refused(client, {"callback_url": hooks_receiver.url("down"), "event": "cdr",
                               "callback_apikey": key + "\r\nX-Evil: 1"})
        await refused(client, {"url": hooks_receiver.url("down"), "callback_apikey": key})
        await refused(client, {"callback_url": "http://10.0.0.1/", "event": "cdr", "callback_apikey": key})
        status, _ = await register(client, callback_url=hooks_receiver.url("down"), event="cdr",
                                   callback_apikey=key)
        assert status == 200
        assert (await client.get("/v1/event", headers=AUTH)).status == 200
        notifier = client.app[WEBHOOKS]
        await notifier.publish("default", "cdr", {"call_id": "c1"})
        await hooks_receiver.until(lambda: len(hooks_receiver.hits) == 2)
        assert await notifier.wait_idle(5)
    assert hooks_receiver.hits[0].headers["X-Api-Key"] == key           # it was sent...
    assert "dead after 2 attempts: HTTP 500" in caplog.text              # ...its failure logged...
    assert key not in caplog.text                                        # ...the key never
