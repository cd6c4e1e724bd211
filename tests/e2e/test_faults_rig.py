"""Faults on the real rig: PBX crash and restart, a phone leaving mid-ring, a trunk that
never answers, 20 concurrent real calls, and hostile input that must not reach Asterisk."""
import asyncio
import time

import pytest

from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY, SERVICE
from c2c_ami.calls.record import iso
from c2c_ami.pbx.ami import AmiState
from tests.fixtures_gateway import stored
from tests.hostile_corpus import cases

from .conftest import AUTH, DIAL_TIMEOUT, RING_TIMEOUT, click, in_thread, now
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

NO_ANSWER_PHONES = ["103", "107", "108", "109"]


async def test_sigkill_asterisk_answers_waiters_and_restart_is_used_again(gw, rig):
    """Asterisk dies while four phones ring: the waiting requests are answered at once, the
    calls stay (unobserved, nothing invented) until Asterisk is back, then end unobserved --
    the restarted PBX has none of them -- and the PBX is used again."""
    waiting = [asyncio.create_task(click(gw, ext=ext, phone="0899")) for ext in NO_ANSWER_PHONES]
    t0 = now()
    for ext in NO_ANSWER_PHONES:
        await in_thread(rig.wait_for_invite, ext, after=t0 - 1)
    ami, registry, reconciler = gw.app[AMI], gw.app[REGISTRY], gw.app[RECONCILER]
    try:
        killed_at = time.monotonic()
        await in_thread(rig.kill_asterisk)
        results = await asyncio.wait_for(asyncio.gather(*waiting), 5)
        answered_within = time.monotonic() - killed_at
        assert {(s, b["error"]) for s, b in results} == {(503, "PBX_UNAVAILABLE")}
        assert answered_within < 5 and gw.app[SERVICE].waiters == 0
        assert len(registry) == 4 and all(c.unobserved_since for c in registry.live())
        status, body = await click(gw, ext="201", phone="0899")
        assert (status, body["error"]) == (503, "PBX_UNAVAILABLE")
        runs = reconciler.runs
    finally:
        await in_thread(rig.start_asterisk)
    booted_at = time.monotonic()
    assert await ami.wait_ready(2), f"not ready 2 s after the restart: {ami.state}"
    print(f"ready {time.monotonic() - booted_at:.2f} s after Asterisk was up again")
    assert await reconciler.wait_run(runs + 1, 3) and len(registry) == 0
    for _, body in results:
        record = await stored(gw.app).get_call("default", body["call_id"])
        assert (record["status"], record["ended_unobserved"], record["state"]) == ("FAILED", True, "ended")
        assert record["time_ended"] <= iso(killed_at - time.monotonic() + time.time() + 0.5)
    status, body = await click(gw, ext="201", phone="0899")
    assert (status, body["status"]) == (200, "success")


async def test_phone_unregisters_while_ringing(gw, rig):
    t0 = now()
    ringing = asyncio.create_task(click(gw, ext="108", phone="0899"))
    await in_thread(rig.wait_for_invite, "108", after=t0)
    await in_thread(rig.unregister, "108")
    try:
        status, body = await asyncio.wait_for(ringing, RING_TIMEOUT + 3)
        assert (status, body["error"]) == (409, "NO_ANSWER")
        status, body = await click(gw, ext="108", phone="0899")
        assert (status, body["error"]) == (404, "USER_NOT_REGISTERED")
    finally:
        await in_thread(rig.register, "108")


async def test_trunk_never_answers(gw, rig):
    t0 = now()
    status, body = await click(gw, ext="212", phone="0909000408")
    assert status == 200  # the agent answered; the customer's phone then rings out
    await in_thread(rig.wait_for_trunk_invite, "0909000408", "hotline-trunk", after=t0)
    assert await gw.app[REGISTRY].wait_empty(DIAL_TIMEOUT + 5)
    record = (await stored(gw.app).get_call("default", body["call_id"]))
    assert (record["status"], record["number_failure"]) == ("NO ANSWER", "no_answer")
    assert record["billsec"] == 0 and record["time_answered"] is None


async def test_twenty_concurrent_real_calls(gw, rig):
    exts = [str(e) for e in range(211, 231)]
    t0 = now()
    results = await asyncio.wait_for(asyncio.gather(*(click(gw, ext=e, phone=f"09090001{e}") for e in exts)), 20)
    assert [b.get("error", b["status"]) for _, b in results] == ["success"] * 20
    for ext in exts:
        await in_thread(rig.wait_for_trunk_invite, f"09090001{ext}", "hotline-trunk", after=t0)
    registry = gw.app[REGISTRY]
    assert await registry.wait_empty(15), f"{len(registry)} calls still live"
    assert registry.claimed_devices == 0
    statuses = [(await stored(gw.app).get_call("default", b["call_id"]))["status"] for _, b in results]
    assert statuses == ["ANSWERED"] * 20


async def test_hostile_inputs_never_reach_asterisk(gw, rig):
    t0 = now()
    sample = cases()[::4]
    assert len(sample) >= 40
    for query, param in sample:
        resp = await gw.get(f"/v1/click2call?{query}", headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["error"]) == (400, "INVALID_PARAMS")
        assert body["message"].startswith(f"{param}:")
    assert rig.is_up() and gw.app[AMI].state is AmiState.READY
    assert rig.invites_to("101", after=t0) == [] and rig.trunk_invites(after=t0) == []
    assert await in_thread(rig.device_state, "101") == "NOT_INUSE"
