"""Call control on the real rig, on both channel drivers, asserted at the SIP peers and in
Asterisk's own events: transfers (the target gets the INVITE, the party left behind the BYE,
the customer's leg stays up), parks (a transfer connects the waiting party, or the PBX hangs
it up at the timeout), supervision (the supervisor's phone rings, Asterisk spies on the agent's
channel) and the refusals -- nothing reaches the PBX when an action is refused."""
from __future__ import annotations

import asyncio

import pytest

from c2c_ami.app_keys import REGISTRY
from c2c_rig import AmiWatch
from tests.fixtures_gateway import Steps, stored

from .conftest import AUTH, click, in_thread, now, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

TALKS = "0909000700"        # the trunk answers, then talks (a tone) until hung up
NEVER_ANSWERS = "107"       # rings until cancelled
REJECTS = "102"             # 486 Busy Here
UNREGISTERED = "104"


async def answered_call(client, ext: str, phone: str = TALKS, **params) -> tuple[str, Steps]:
    """A click-to-call whose customer answered: its call_id (and the steps seen)."""
    steps = Steps(client.app)
    status, body = await click(client, "/v1/click2call/async", ext=ext, phone=phone, **params)
    assert status == 200, body
    await steps.until(body["call_id"], "number_answered", timeout=10)
    return body["call_id"], steps


async def act(client, call_id: str, action: str, headers=AUTH, **body):
    resp = await client.post(f"/v1/call/{call_id}/{action}", json=body, headers=headers)
    return resp.status, await resp.json()


async def ended(client, call_id: str) -> dict:
    registry = client.app[REGISTRY]
    while registry.get(call_id) is not None:
        await asyncio.sleep(0.05)          # polled with a bound: the caller wraps it in wait_for
    return await stored(client.app).get_call("default", call_id)


async def the_record(client, call_id: str) -> dict:
    resp = await client.get(f"/v1/calls/{call_id}", headers=AUTH)
    assert resp.status == 200
    return (await resp.json())["call"]


def sip_call_id_of(rig, ext: str, after: float) -> str:
    return rig.invites_to(ext, after=after)[-1].call_id


# -- transfer -----------------------------------------------------------------------------------

async def test_customer_transfer_moves_the_customer_and_ends_the_agents_leg(gw, rig):
    t0 = now()
    call_id, _ = await answered_call(gw, "211")
    agent_call = await in_thread(sip_call_id_of, rig, "211", t0)
    t1 = now()
    status, body = await act(gw, call_id, "transfer", ext="212")
    assert (status, body) == (200, {"status": "success", "call_id": call_id, "ext": "212", "legs": "bleg"})
    await in_thread(rig.wait_for_invite, "212", after=t1)
    await in_thread(rig.wait_for_message, "211", "BYE", call_id=agent_call, after=t1)
    assert rig.messages("hotline-trunk") and not [m for m in rig.messages("hotline-trunk")
                                                   if m.method == "BYE" and m.time >= t1]
    record = await the_record(gw, call_id)
    assert record["final_ext"] == "212" and record["state"] == "number_answered"
    assert [(t["ext"], t["legs"], t["answered"]) for t in record["transfers"]] == [("212", "bleg", True)]
    t2 = now()
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200   # hangs up 212's leg
    cdr = await asyncio.wait_for(ended(gw, call_id), 10)
    assert (cdr["status"], cdr["final_ext"], cdr["extension"], cdr["hangup_by"]) == ("ANSWERED", "212", "211", "api")
    assert cdr["billsec"] >= round(t2 - t0) - 2          # the customer's whole talk, across the transfer
    await in_thread(rig.wait_for_message, "hotline-trunk", "BYE", after=t2)


async def test_agent_transfer_moves_the_agent_and_ends_the_customers_leg(gw, rig):
    t0 = now()
    call_id, _ = await answered_call(gw, "213")
    agent_call = await in_thread(sip_call_id_of, rig, "213", t0)
    t1 = now()
    status, body = await act(gw, call_id, "transfer", ext="214", legs="aleg")
    assert (status, body["legs"]) == (200, "aleg"), body
    await in_thread(rig.wait_for_invite, "214", after=t1)
    await in_thread(rig.wait_for_message, "hotline-trunk", "BYE", after=t1)   # the customer's leg ends
    cdr = await asyncio.wait_for(ended(gw, call_id), 10)
    assert (cdr["final_ext"], cdr["transfers"][0]["legs"], cdr["transfers"][0]["answered"]) == ("213", "aleg", True)
    assert not [m for m in rig.messages("213") if m.method == "BYE" and m.call_id == agent_call]   # agent talks on
    await in_thread(rig.asterisk_rx, "channel request hangup all")           # end 213 <-> 214


async def test_a_transfer_nobody_answers_moves_nothing(gw, rig):
    t0 = now()
    call_id, _ = await answered_call(gw, "215")
    agent_call = await in_thread(sip_call_id_of, rig, "215", t0)
    t1 = now()
    status, body = await act(gw, call_id, "transfer", ext=NEVER_ANSWERS)
    assert (status, body["error"], body["call_id"]) == (409, "NO_ANSWER", call_id), body
    assert "the customer stays with the agent" in body["message"]
    await in_thread(rig.wait_for_message, NEVER_ANSWERS, "CANCEL", after=t1)    # it rang, then was cancelled
    status, body = await act(gw, call_id, "transfer", ext=REJECTS)
    assert (status, body["error"]) == (409, "USER_BUSY"), body
    record = await the_record(gw, call_id)
    assert record["final_ext"] == "215" and [t["answered"] for t in record["transfers"]] == [False, False]
    assert not [m for m in rig.messages("215") if m.method == "BYE" and m.call_id == agent_call]
    assert not [m for m in rig.messages("hotline-trunk") if m.method == "BYE" and m.time >= t1]


async def test_refusals_reach_nothing(gw, rig):
    status, body = await act(gw, "00000000-0000-4000-8000-000000000000", "transfer", ext="212")
    assert (status, body["error"]) == (404, "CALL_NOT_FOUND")
    steps = Steps(gw.app)
    status, body = await click(gw, "/v1/click2call/async", ext=NEVER_ANSWERS, phone=TALKS)
    ringing = body["call_id"]
    await steps.until(ringing, "ext_ringing")
    for action, extra in (("transfer", {"ext": "212"}), ("park", {"legs": "bleg"}), ("listen", {"ext": "212"})):
        status, body = await act(gw, ringing, action, **extra)
        assert (status, body["error"]) == (409, "CALL_NOT_ANSWERED"), (action, body)
    assert (await gw.delete(f"/v1/calls/{ringing}", headers=AUTH)).status == 200
    call_id, _ = await answered_call(gw, "216")
    for ext, want in (("2001", (403, "FORBIDDEN")), (UNREGISTERED, (404, "USER_NOT_REGISTERED"))):
        status, body = await act(gw, call_id, "transfer", ext=ext)
        assert (status, body["error"]) == want, body
    await in_thread(rig.busy, "217")
    t2 = now()
    try:
        for action in ("transfer", "whisper"):
            status, body = await act(gw, call_id, action, ext="217")
            assert (status, body["error"]) == (409, "USER_BUSY"), body
    finally:
        await in_thread(rig.free, "217")
    for bad in ({"ext": "212", "legs": "cleg"}, {"legs": "bleg"}, {"ext": "212", "nope": 1}):
        status, body = await act(gw, call_id, "transfer", **bad)
        assert (status, body["error"]) == (400, "INVALID_PARAMS"), body
    assert rig.invites_to("217", after=t2) == []          # checked busy: never rung
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200


# -- park -------------------------------------------------------------------------------------------

async def test_a_parked_customer_is_connected_by_a_later_transfer(gw, rig):
    t0 = now()
    call_id, _ = await answered_call(gw, "218")
    agent_call = await in_thread(sip_call_id_of, rig, "218", t0)
    t1 = now()
    status, body = await act(gw, call_id, "park", legs="bleg")
    assert (status, body) == (200, {"status": "success", "call_id": call_id, "legs": "bleg"}), body
    await in_thread(rig.wait_for_message, "218", "BYE", call_id=agent_call, after=t1)   # the agent's leg ends
    record = await the_record(gw, call_id)
    assert [(p["legs"], p["outcome"]) for p in record["parks"]] == [("bleg", None)]
    status, body = await act(gw, call_id, "park", legs="bleg")
    assert (status, body["error"]) == (409, "CALL_BUSY")
    status, body = await act(gw, call_id, "transfer", ext="219")
    assert status == 200, body
    await in_thread(rig.wait_for_invite, "219", after=t1)
    assert not [m for m in rig.messages("hotline-trunk") if m.method == "BYE" and m.time >= t1]
    record = await the_record(gw, call_id)
    assert (record["final_ext"], record["parks"][0]["outcome"]) == ("219", "transferred")
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    cdr = await asyncio.wait_for(ended(gw, call_id), 10)
    assert (cdr["final_ext"], cdr["status"]) == ("219", "ANSWERED")


async def test_a_parked_customer_nobody_takes_is_hung_up_at_the_timeout(make_rig_gateway, rig, tmp_path):
    client = await make_rig_gateway(rig_config(rig, tmp_path, calls={
        "ring_timeout": 4, "dial_timeout": 3, "sync_timeout": 8, "park_timeout": 2}))
    call_id, _ = await answered_call(client, "220")
    t1 = now()
    assert (await act(client, call_id, "park", legs="bleg"))[0] == 200
    await in_thread(rig.wait_for_message, "hotline-trunk", "BYE", after=t1, timeout=8)   # the PBX hung it up
    cdr = await asyncio.wait_for(ended(client, call_id), 10)
    assert (cdr["hangup_by"], cdr["parks"][0]["outcome"], cdr["status"]) == ("pbx", "timed_out", "ANSWERED")
    assert now() - t1 >= 1.5 and cdr["parks"][0]["time_ended"] is not None


# -- supervision ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_a_supervisor_spies_on_the_agents_channel(gw, rig, mode):
    supervisor = {"listen": "221", "whisper": "222", "barge": "223"}[mode]
    async with AmiWatch(rig.ports.ami) as asterisk:
        t0 = now()
        call_id, _ = await answered_call(gw, "224" if mode == "listen" else "225" if mode == "whisper" else "226")
        agent_channel = gw.app[REGISTRY].get(call_id).ext_channel
        status, body = await act(gw, call_id, mode, ext=supervisor, auto_answer=True)
        assert (status, body) == (200, {"status": "success", "call_id": call_id, "ext": supervisor, "mode": mode})
        invite = await in_thread(rig.wait_for_invite, supervisor, after=t0)
        assert "answer-after=0" in (invite.header("Call-Info") or "")          # auto-answer asked
        spy = await asyncio.wait_for(asterisk.wait_for(
            lambda e: e.get("Event") == "ChanSpyStart" and e.get("SpyeeChannel") == agent_channel), 10)
        assert spy["SpyerChannel"].startswith(f"{rig.tech}/{supervisor}-")
        record = await the_record(gw, call_id)
        assert [(s["ext"], s["mode"]) for s in record["supervisors"]] == [(supervisor, mode)]
        assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
        cdr = await asyncio.wait_for(ended(gw, call_id), 10)
        assert cdr["supervisors"][0]["time_started"] and cdr["supervisors"][0]["time_ended"]
