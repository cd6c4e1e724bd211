"""One telephony truth on both channel drivers: every scenario runs at once on Asterisk 22
with PJSIP and on Asterisk 16 with chan_sip (the same phones, trunks and dialplan contract),
and the two call records must be identical — and what the cause table of docs/api.md says.

What differs between the drivers is only what each Asterisk says (a 486 is OriginateResponse
Reason 5 on chan_sip and Reason 0 + a cause-17 Hangup on PJSIP; a ring timeout ends with
cause 19 or 16; a cancel sends cause 0 or 16...): the records must not show it.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, REGISTRY, REPORTER, SERVICE
from c2c_ami.calls.record import call_record
from c2c_rig import SOFTPHONE
from tests.fixtures_gateway import Steps

from .conftest import AUTH, click, in_thread, now, rig_config

pytestmark = pytest.mark.rig

CALL_INFO_TOKEN = "e2e-token-call-info"
# The fields that tell what happened; channel names (PJSIP/… vs SIP/…) and times differ by nature.
OUTCOME = ("state", "status", "cause", "cause_txt", "hangup_by", "ext_failure", "number_failure")


@dataclass
class Driven:
    """One driver's rig and the gateway logged in to it."""
    rig: Any
    client: Any
    steps: Steps


@pytest.fixture
async def make_both(rig_pjsip, rig_chan_sip, aiohttp_client, tmp_path):
    """make_both(**calls) -> a gateway on each driver's rig (PJSIP, chan_sip), with these
    ``calls`` settings; each must end every call it placed."""
    made: list[Driven] = []

    async def make(**calls: Any) -> list[Driven]:
        made.extend(await _gateways(rig_pjsip, rig_chan_sip, aiohttp_client, tmp_path / str(len(made)), calls))
        return made[-2:]
    yield make
    for d in made:
        registry = d.client.app[REGISTRY]
        for call in registry.live():
            await d.client.app[SERVICE].hangup_quietly(call)
        assert await registry.wait_empty(10), f"{d.rig.driver}: calls left: {[call_record(c) for c in registry.live()]}"


@pytest.fixture
async def both(make_both):
    return await make_both()


async def _gateways(rig_pjsip: Any, rig_chan_sip: Any, aiohttp_client: Any, tmp_path: Any,
                    calls: dict) -> list[Driven]:
    driven = []
    for n, r in enumerate((rig_pjsip, rig_chan_sip)):
        (tmp_path / f"d{n}").mkdir(parents=True, exist_ok=True)
        config = rig_config(r, tmp_path / f"d{n}")
        if calls:
            config = type(config)(**{**config.__dict__, "calls": type(config.calls)(**{**config.calls.__dict__,
                                                                                         **calls})})
        tenants = list(config.tenants)
        call_info = rig_config(r, tmp_path / f"d{n}", tenants=[{
            "domain": "call-info", "tokens": [CALL_INFO_TOKEN], "endpoint": f"{r.tech}/{{ext}}",
            "context": "c2c-outbound", "extensions": "^11[0-9]$", "hotlines": {"02873001234": "hotline-trunk"},
            "auto_answer": "call-info"}]).tenants
        config = type(config)(**{**config.__dict__, "tenants": tuple(tenants) + tuple(call_info)})
        app = create_app(config)
        client = await aiohttp_client(app)
        assert await app[AMI].wait_ready(5), f"gateway did not log in to {r.driver}: {app[AMI].last_error}"
        driven.append(Driven(r, client, Steps(app)))
    return driven


async def record_when_ended(d: Driven, call_id: str, timeout: float = 15, headers: dict = AUTH) -> dict:
    """The call's record once it has ended and is stored (one call at a time per gateway)."""
    app = d.client.app
    assert await app[REGISTRY].wait_empty(timeout), f"{d.rig.driver}: call {call_id} did not end in {timeout} s"
    assert await app[REPORTER].flush(5), "call writes still queued after 5 s"
    resp = await d.client.get(f"/v1/calls/{call_id}", headers=headers)
    assert resp.status == 200
    return (await resp.json())["call"]


def asterisk_log(rig: Any) -> str:
    with open(os.path.join(rig.dir, "log", "messages.log"), errors="replace") as f:
        return f.read()


def outcome(record: dict) -> dict:
    return {key: record[key] for key in OUTCOME}


# scenario -> (click parameters, sync HTTP answer, the record's outcome)
SYNC = {
    "answered, the number hangs up": (
        dict(ext="206", phone="0909000111"), (200, None),
        dict(state="ended", status="ANSWERED", cause="16", cause_txt="Normal Clearing", hangup_by="number",
             ext_failure=None, number_failure=None)),
    "the phone rejects (486)": (
        dict(ext="102", phone="0909000111"), (409, "USER_BUSY"),
        dict(state="ended", status="BUSY", cause="17", cause_txt="User busy", hangup_by="extension",
             ext_failure="rejected", number_failure=None)),
    "the phone rings out": (
        dict(ext="103", phone="0909000111"), (409, "NO_ANSWER"),
        dict(state="ended", status="NO ANSWER", cause="19", cause_txt="User alerting, no answer", hangup_by="pbx",
             ext_failure="no_answer", number_failure=None)),
    "a registered phone that is dead": (
        dict(ext="110", phone="0909000111"), (404, "USER_NOT_REGISTERED"),
        dict(state="ended", status="FAILED", cause="18", cause_txt="No user responding", hangup_by="pbx",
             ext_failure="unavailable", number_failure=None)),
    "the agent hangs up while talking": (
        dict(ext="116", phone="0909000800"), (200, None),
        dict(state="ended", status="ANSWERED", cause="16", cause_txt="Normal Clearing", hangup_by="extension",
             ext_failure=None, number_failure=None)),
    "the agent hangs up while the number rings": (
        dict(ext="116", phone="0909000408"), (200, None),
        dict(state="ended", status="CANCEL", cause="16", cause_txt="Normal Clearing", hangup_by="extension",
             ext_failure=None, number_failure="cancelled")),
    "the number sends only 183 and rings out": (
        dict(ext="213", phone="0909000183"), (200, None),
        dict(state="ended", status="NO ANSWER", cause="19", cause_txt="User alerting, no answer",
             hangup_by="pbx", ext_failure=None, number_failure="no_answer")),
    "the number never answers the INVITE": (
        dict(ext="214", phone="0909000999"), (200, None),
        dict(state="ended", status="NO ANSWER", cause="18", cause_txt="No user responding",
             hangup_by="pbx", ext_failure=None, number_failure="no_answer")),
    "the number is busy": (
        dict(ext="207", phone="0909000486"), (200, None),
        dict(state="ended", status="BUSY", cause="17", cause_txt="User busy", hangup_by="number",
             ext_failure=None, number_failure="busy")),
    "the number never answers": (
        dict(ext="208", phone="0909000408"), (200, None),
        dict(state="ended", status="NO ANSWER", cause="19", cause_txt="User alerting, no answer",
             hangup_by="pbx", ext_failure=None, number_failure="no_answer")),
    "the carrier is congested (503)": (
        dict(ext="209", phone="0909000503"), (200, None),
        dict(state="ended", status="FAILED", cause="34", cause_txt="Circuit/channel congestion",
             hangup_by="number", ext_failure=None, number_failure="congestion")),
    "the number does not exist (404)": (
        dict(ext="210", phone="0909000404"), (200, None),
        dict(state="ended", status="NO ANSWER", cause="1", cause_txt="Unallocated (unassigned) number",
             hangup_by="number", ext_failure=None, number_failure="no_answer")),
}


@pytest.mark.parametrize("scenario", list(SYNC))
async def test_same_record_on_both_drivers(both, scenario):
    params, (want_status, want_error), want = SYNC[scenario]
    logged_before = {d.rig.driver: len(asterisk_log(d.rig)) for d in both}

    async def run(d: Driven) -> tuple[int, dict, dict]:
        t0 = now()
        status, body = await click(d.client, **params)
        call_id = body.get("call_id")
        assert call_id, f"{d.rig.driver}: {status} {body}"
        record = await record_when_ended(d, call_id)
        if record["trunk_channel"]:
            await in_thread(d.rig.wait_for_trunk_invite, params["phone"], after=t0)
        return status, body, record

    (s1, b1, r1), (s2, b2, r2) = await asyncio.gather(*(run(d) for d in both))
    assert (s1, b1.get("error")) == (s2, b2.get("error")) == (want_status, want_error)
    assert outcome(r1) == outcome(r2) == want, f"PJSIP {outcome(r1)}\nchan_sip {outcome(r2)}"
    if r1["trunk_channel"]:
        assert r1["trunk_channel"].startswith("PJSIP/") and r2["trunk_channel"].startswith("SIP/")
    if want["status"] == "ANSWERED":               # the trunk leg's SIP Call-ID, on both drivers
        assert r1["sip_call_id"] and r2["sip_call_id"]     # (a leg refused at once may be gone first)
        # Read the driver's own way: no error logged by this call (only its part of the log: an
        # earlier scenario's leg refused at once may have been gone before its read).
        for d in both:
            logged = asterisk_log(d.rig)[logged_before[d.rig.driver]:]
            assert "Unknown or unavailable item requested" not in logged, d.rig.driver


@pytest.mark.parametrize("when, ext, phone, want", [
    ("ext_ringing", "107", "0909000111",
     dict(state="ended", status="CANCEL", cause="16", cause_txt="Normal Clearing", hangup_by="api",
          ext_failure=None, number_failure=None)),
    ("number_ringing", "211", "0909000408",
     dict(state="ended", status="CANCEL", cause="16", cause_txt="Normal Clearing", hangup_by="api",
          ext_failure=None, number_failure="cancelled")),
    ("number_answered", "212", "0909000800",
     dict(state="ended", status="ANSWERED", cause="16", cause_txt="Normal Clearing", hangup_by="api",
          ext_failure=None, number_failure=None)),
])
async def test_api_hangup_is_cause_16_on_both_drivers(both, when, ext, phone, want):
    """DELETE /v1/calls/{id}: Asterisk is asked for cause 16 and the peers see it."""
    async def run(d: Driven) -> tuple[dict, object]:
        t0 = now()
        status, body = await click(d.client, "/v1/click2call/async", ext=ext, phone=phone)
        assert status == 200, body
        await d.steps.until(body["call_id"], when, timeout=10)
        resp = await d.client.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)
        assert resp.status == 200, await resp.text()
        record = await record_when_ended(d, body["call_id"])
        peer, method = (ext, "CANCEL") if when == "ext_ringing" else \
            ("hotline-trunk", "CANCEL" if when == "number_ringing" else "BYE")
        message = await in_thread(d.rig.wait_for_message, peer, method, after=t0)
        return record, message

    (r1, m1), (r2, m2) = await asyncio.gather(*(run(d) for d in both))
    assert outcome(r1) == outcome(r2) == want
    reasons = [m.header("Reason") for m in (m1, m2)]
    assert all(r is None or "cause=16" in r for r in reasons), reasons   # never cause=0
    assert reasons[0] is not None and "cause=16" in reasons[0]         # PJSIP sends one


async def test_a_dead_phone_past_timer_b_is_the_same_on_both_drivers(make_both):
    """Ring timeout longer than SIP timer B (6.4 s on the rig, 32 s by default): the INVITE
    times out first and Asterisk sends a HangupRequest of its own (cause 18) — the phone did
    nothing: ext_failure unavailable, hangup_by pbx, cause 18, on both drivers."""
    both = await make_both(ring_timeout=9.0, sync_timeout=14.0)

    async def run(d: Driven) -> tuple[int, dict, dict]:
        t0 = now()
        status, body = await click(d.client, ext="110", phone="0909000111")
        took = now() - t0
        assert 6 <= took < 9, f"{d.rig.driver}: ended after {took:.1f} s, not by timer B"
        return status, body, await record_when_ended(d, body["call_id"])

    (s1, b1, r1), (s2, b2, r2) = await asyncio.gather(*(run(d) for d in both))
    assert (s1, b1["error"]) == (s2, b2["error"]) == (404, "USER_NOT_REGISTERED")
    assert outcome(r1) == outcome(r2) == dict(
        state="ended", status="FAILED", cause="18", cause_txt="No user responding", hangup_by="pbx",
        ext_failure="unavailable", number_failure=None)


async def test_unreachable_phones_are_not_registered_without_an_invite(both):
    """Never registered (104), or registered but its qualify failed (114): USER_NOT_REGISTERED
    at once, and no INVITE is sent."""
    for d in both:
        t0 = now()
        for ext in ("104", "114"):
            status, body = await click(d.client, ext=ext, phone="0909000111")
            assert (status, body["error"]) == (404, "USER_NOT_REGISTERED"), (d.rig.driver, ext, body)
            assert "call_id" not in body or body["call_id"] is None
        assert d.rig.invites_to("114", after=t0) == []


async def test_agent_on_a_call_is_busy_even_without_callcounter(both):
    """105 on a call: PJSIP says INUSE; chan_sip without callcounter still says NOT_INUSE, and
    the gateway sees the call in the device's channels: USER_BUSY on both, no INVITE sent."""
    for d in both:
        state = await in_thread(d.rig.busy, "105")
        assert state == ("INUSE" if d.rig.driver == "pjsip" else "NOT_INUSE")
        try:
            t0 = now()
            status, body = await click(d.client, ext="105", phone="0909000111")
            assert (status, body["error"]) == (409, "USER_BUSY"), (d.rig.driver, body)
            assert d.rig.invites_to("105", after=t0) == []
        finally:
            await in_thread(d.rig.free, "105")


@pytest.mark.parametrize("token, answers", [
    ("default", {"111": True, "112": True, "113": True}),        # the standard bundle: all three
    ("call-info", {"111": True, "112": False, "113": False}),    # a tenant's call-info bundle
])
async def test_auto_answer_phones_obey_their_header(both, token, answers):
    """The rig's auto-answer phones answer at once only when the INVITE carries the header
    each obeys (else they ring); the tenant's bundle decides which headers go."""
    headers = AUTH if token == "default" else {"Authorization": f"Bearer {CALL_INFO_TOKEN}"}

    async def one(d: Driven, ext: str, answers_at_once: bool) -> str:
        t0 = now()
        status, body = await click(d.client, ext=ext, phone="0909000111", auto_answer="true", headers=headers)
        invite = await in_thread(d.rig.wait_for_invite, ext, after=t0)
        if answers_at_once:                       # answered without ever ringing (no 180)
            assert status == 200, (d.rig.driver, ext, status, body)
            assert not d.steps.seen(body["call_id"], "ext_ringing"), (d.rig.driver, ext)
        else:
            assert (status, body["error"]) == (409, "NO_ANSWER"), (d.rig.driver, ext, body)
        assert "answer-after=0" in (invite.header("Call-Info") or "")              # in both bundles
        assert ("info=alert-autoanswer" in " ".join(invite.headers_all("Alert-Info"))) == (token == "default")
        return body["call_id"]

    async def on(d: Driven) -> None:              # the three phones at once, then their records
        call_ids = await asyncio.gather(*(one(d, ext, yes) for ext, yes in answers.items()))
        assert await d.client.app[REGISTRY].wait_empty(15)
        for (ext, answers_at_once), call_id in zip(answers.items(), call_ids, strict=True):
            record = await record_when_ended(d, call_id, headers=headers)
            assert record["status"] == ("ANSWERED" if answers_at_once else "NO ANSWER"), (d.rig.driver, ext, record)

    await asyncio.gather(*(on(d) for d in both))


async def test_a_real_softphone_answers_by_itself_only_when_asked(both):
    """baresip 1.1 (Debian sid) registered as 115 with ``sip_autoanswer=yes``: with
    ``auto_answer=true`` (the standard bundle) it answers the click-to-call by itself; without,
    it rings until the ring timeout. On both drivers (at once)."""
    async def on(d: Driven) -> None:
        state = await in_thread(d.rig.device_state, SOFTPHONE)
        assert state == "NOT_INUSE", f"{d.rig.driver}: baresip is not registered ({state})"
        status, body = await click(d.client, ext=SOFTPHONE, phone="0909000111", auto_answer="true")
        assert status == 200, (d.rig.driver, status, body)      # without the headers: NO_ANSWER below
        record = await record_when_ended(d, body["call_id"])
        assert (record["status"], record["hangup_by"]) == ("ANSWERED", "number"), (d.rig.driver, record)
        status, body = await click(d.client, ext=SOFTPHONE, phone="0909000111")
        assert (status, body["error"]) == (409, "NO_ANSWER"), (d.rig.driver, body)
        await record_when_ended(d, body["call_id"])

    await asyncio.gather(*(on(d) for d in both))
