"""Recordings on the real rig, on both channel drivers: the customer talks (the trunk streams a
tone), Asterisk records the call from the moment the customer answers to its end; the file is
a WAV as long as the call's billsec, silent exactly where the API masked it, and served byte
for byte through the signed link the CDR and the cdr webhook carry (and with HTTP Range)."""
from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from urllib.parse import urlsplit

import pytest

from c2c_ami.app_keys import REGISTRY
from c2c_ami.config import parse_config
from c2c_rig.audio import wav_levels, wav_seconds
from tests.fixtures_gateway import Steps, stored

from .conftest import AUTH, TOKEN, click
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

TALKS = "0909000700"
PUBLIC = "https://c2c.example.test"
API_KEY = "rec-api-key-0123456789"


@pytest.fixture
async def rec(make_rig_gateway, rig, tmp_path):
    """A gateway recording no call unless asked (record=true), the tenant with an api key."""
    config = parse_config({
        "listen": {"host": "127.0.0.1", "port": 8080},
        "ami": {**rig.ami, "reconnect_min": 0.05, "reconnect_max": 0.5},
        "calls": {"ring_timeout": 4, "dial_timeout": 4, "sync_timeout": 8},
        "limits": {"rate_per_minute": 100000, "rate_burst": 10000, "duplicate_window": 1,
                   "per_extension_per_minute": 0},
        "storage": {"path": str(tmp_path / "c2c.sqlite3")},
        "webhooks": {"backoff_base": 0.05, "backoff_max": 0.5, "allow_networks": ["127.0.0.0/8"]},
        "api": {"public_url": PUBLIC},
        "recording": {"dir": rig.recordings_dir, "local_dir": rig.recordings_local_dir},
        "tenants": [{"domain": "default", "tokens": [TOKEN], "api_keys": [API_KEY], "endpoint": f"{rig.tech}/{{ext}}",
                     "context": "c2c-outbound", "extensions": "^[0-9]{3}$",
                     "hotlines": {"02873001234": "hotline-trunk"}}],
    }, {})
    return await make_rig_gateway(config)


async def talk_then(client, ext: str, **params) -> tuple[str, Steps]:
    steps = Steps(client.app)
    status, body = await click(client, "/v1/click2call/async", ext=ext, phone=TALKS, **params)
    assert status == 200, body
    await steps.until(body["call_id"], "number_answered", timeout=10)
    return body["call_id"], steps


async def until(predicate, timeout=10.0):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


async def end_and_read(client, call_id):
    assert (await client.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    await until(lambda: client.app[REGISTRY].get(call_id) is None)
    return await stored(client.app).get_call("default", call_id)


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_a_recorded_call_is_a_wav_as_long_as_billsec_silent_where_masked_and_served_by_its_link(
        rec, rig, receiver):
    resp = await rec.post("/v1/event", headers=AUTH, json={"url": receiver.hook_url, "events": ["cdr"]})
    assert resp.status == 200
    call_id, _ = await talk_then(rec, "227", record="true")
    call = rec.app[REGISTRY].get(call_id)
    await until(lambda: call.recording_started_at is not None)
    await asyncio.sleep(1.0)               # the customer talks: a stretch of the tone (the test's own pacing)
    status = (await rec.post(f"/v1/call/{call_id}/recording/pause", headers=AUTH)).status
    assert status == 200
    await asyncio.sleep(1.5)               # the masked span
    resume = await rec.post(f"/v1/call/{call_id}/recording/resume", headers=AUTH)
    assert (resume.status, (await resume.json())["masked"]) == (200, False)
    await asyncio.sleep(1.5)
    cdr = await end_and_read(rec, call_id)
    assert cdr["recorded"] is True and len(cdr["recording_masked"]) == 1
    path = os.path.join(rig.recordings_local_dir, f"{call_id}.wav")
    await until(lambda: os.path.isfile(path) and wav_seconds(path) > 0)
    length = wav_seconds(path)
    assert abs(length - cdr["billsec"]) <= 1.0, (length, cdr["billsec"])
    levels = wav_levels(path, 0.1)
    start = seconds(cdr["time_answered"])
    masked = cdr["recording_masked"][0]
    quiet = range(int((seconds(masked["start"]) - start) * 10) + 3, int((seconds(masked["end"]) - start) * 10) - 2)
    loud = [n for n in range(3, len(levels) - 3) if n not in range(quiet.start - 5, quiet.stop + 5)]
    assert quiet and all(levels[n] < 50 for n in quiet), [round(levels[n]) for n in quiet]
    assert loud and all(levels[n] > 1000 for n in loud), [round(levels[n]) for n in loud]
    # the CDR's link: absolute, signed; it works without a token, byte for byte, with Range
    one = await (await rec.get(f"/v1/cdr/{call_id}", headers=AUTH)).json()
    link = urlsplit(one["recording_url"])
    assert one["recording_url"].startswith(f"{PUBLIC}/v1/recording/{call_id}?exp=")
    target = f"{link.path}?{link.query}"
    with open(path, "rb") as f:
        content = f.read()
    got = await rec.get(target)
    assert (got.status, got.headers["Content-Type"], await got.read()) == (200, "audio/wav", content)
    part = await rec.get(target, headers={"Range": "bytes=44-1043"})
    assert (part.status, await part.read()) == (206, content[44:1044])
    tampered = await rec.get(target[:-1] + ("0" if target[-1] != "0" else "1"))
    assert (tampered.status, (await tampered.json())["error"]) == (403, "FORBIDDEN")
    assert (await rec.get(f"/v1/recording/{call_id}")).status == 401              # neither link nor token
    assert await (await rec.get(f"/v1/recording/{call_id}", headers=AUTH)).read() == content
    # the cdr webhook carries a link too
    headers, body = await asyncio.wait_for(receiver.got.get(), 10)
    payload = json.loads(body)
    assert payload["call_id"] == call_id and payload["recording_url"].startswith(f"{PUBLIC}/v1/recording/{call_id}?")
    # an extension-scoped token sees its own calls' recordings only
    token = (await (await rec.post("/v1/auth/token", json={"api_key": API_KEY, "ext": "228"})).json())["data"]["token"]
    other = await rec.get(f"/v1/recording/{call_id}", headers={"Authorization": f"Bearer {token}"})
    assert (other.status, (await other.json())["error"]) == (404, "CALL_NOT_FOUND")


async def test_calls_not_asked_to_record_or_never_answered_have_no_recording(rec, rig):
    call_id, _ = await talk_then(rec, "229")
    cdr = await end_and_read(rec, call_id)
    assert cdr["recorded"] is False and not os.path.exists(os.path.join(rig.recordings_local_dir, f"{call_id}.wav"))
    one = await (await rec.get(f"/v1/cdr/{call_id}", headers=AUTH)).json()
    assert one["recording_url"] == ""
    status, body = await click(rec, "/v1/click2call/async", ext="230", phone="0909000486", record="true")
    assert status == 200
    await until(lambda: rec.app[REGISTRY].get(body["call_id"]) is None)
    busy = await (await rec.get(f"/v1/cdr/{body['call_id']}", headers=AUTH)).json()
    assert (busy["status"], busy["recording_url"], busy["call"]["recorded"]) == ("BUSY", "", False)
    call_id, _ = await talk_then(rec, "229")
    masked = await rec.post(f"/v1/call/{call_id}/recording/pause", headers=AUTH)
    assert (masked.status, (await masked.json())["error"]) == (409, "NOT_RECORDING")
    await end_and_read(rec, call_id)
