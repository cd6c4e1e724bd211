"""AMI link faults: wrong credentials, drops, a silent peer, garbage, split UTF-8, leaks."""
import asyncio
import logging

import pytest

from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY, SERVICE
from c2c_ami.calls.record import iso
from c2c_ami.pbx.ami import AmiClient, AmiState, AmiTimeout, UnsafeAmiValue, check_safe
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, Steps, gateway_config, stored


def state_waiter(ami: AmiClient):
    """An awaitable for 'the link reached one of these states' (no polling, no sleeps)."""
    changes: asyncio.Queue = asyncio.Queue()
    ami.on_state(changes.put_nowait)

    async def wait(*states, timeout=3.0):
        async def until():
            while ami.state not in states:
                await changes.get()
        await asyncio.wait_for(until(), timeout)
    return wait


async def sync_call(client, **params):
    resp = await client.get("/v1/click2call", params=params, headers=AUTH)
    return resp.status, await resp.json()


async def test_wrong_credentials_are_logged_and_never_ready(fake_ami, caplog):
    caplog.set_level(logging.ERROR, logger="c2c_ami.pbx.ami")
    config = gateway_config(fake_ami.port, ami={"secret": "wrong-secret"})
    ami = AmiClient(config.ami)
    wait = state_waiter(ami)
    ami.start()
    try:
        await wait(AmiState.AUTH_FAILED)
        assert not ami.ready and "Authentication failed" in ami.last_error
        assert "AMI login refused for user 'c2c'" in caplog.text
        assert "wrong-secret" not in caplog.text
    finally:
        await ami.close()
    logins = fake_ami.actions_named("Login")
    assert logins and all(a["Secret"] == "wrong-secret" for a in logins)


async def test_a_clean_stop_is_said_at_info_and_a_lost_link_still_warns(fake_ami, caplog):
    caplog.set_level(logging.INFO, logger="c2c_ami.pbx.ami")
    ami = AmiClient(gateway_config(fake_ami.port).ami)
    ami.start()
    assert await ami.wait_ready(3)
    await ami.close()                           # Logoff: the PBX closes the socket, then we stop
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "AMI link" in r.getMessage()]
    assert said == [("INFO", f"PBX default: AMI link to 127.0.0.1:{fake_ami.port} closed")]
    caplog.clear()
    wait = state_waiter(ami)
    ami.start()                                 # the same client again: a drop is a fault
    try:
        assert await ami.wait_ready(3)
        await fake_ami.drop_connections()
        await wait(AmiState.DISCONNECTED, AmiState.CONNECTING)
        assert [r.levelname for r in caplog.records if "AMI link" in r.getMessage() and "lost" in r.getMessage()] \
            == ["WARNING"]
    finally:
        await ami.close()


async def test_readyz_reports_the_login_failure(make_gateway, fake_ami, aiohttp_client):
    from c2c_ami.app import create_app
    app = create_app(gateway_config(fake_ami.port, ami={"secret": "nope-nope"}))
    client = await aiohttp_client(app)
    await state_waiter(app[AMI])(AmiState.AUTH_FAILED)
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["ami"] == "auth_failed" and "Authentication failed" in body["detail"]
    status, call = await sync_call(client, ext="101", phone="0899")
    assert (status, call["error"]) == (503, "PBX_UNAVAILABLE")


async def test_drop_answers_waiting_sync_requests_keeps_the_calls_and_never_replays(gateway, fake_ami):
    """A lost link is not the calls' end: waiting requests get PBX_UNAVAILABLE with their
    call_id at once; after the reconnect the PBX is asked, the calls (still ringing there)
    are tracked again and can be cancelled; no Originate is ever sent twice."""
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=60)
    reconciler, registry = gateway.app[RECONCILER], gateway.app[REGISTRY]
    assert await reconciler.wait_run(1, 3)          # the one at start
    requests = [asyncio.create_task(sync_call(gateway, ext=f"1{n:02d}", phone="0899")) for n in range(10)]
    await fake_ami.wait_for_action("Originate", count=10)
    wait = state_waiter(gateway.app[AMI])
    runs = reconciler.runs
    await fake_ami.drop_connections()
    results = await asyncio.wait_for(asyncio.gather(*requests), 2)
    assert {(s, b["error"]) for s, b in results} == {(503, "PBX_UNAVAILABLE")}
    call_ids = {b["call_id"] for _, b in results}
    assert len(call_ids) == 10 and {c.call_id for c in registry.live()} == call_ids
    assert all(c.unobserved_since for c in registry.live()) and gateway.app[SERVICE].waiters == 0
    await wait(AmiState.READY)
    assert await reconciler.wait_run(runs + 1, 3)
    assert len(fake_ami.actions_named("CoreShowChannels")) >= 1
    assert {c.call_id for c in registry.live()} == call_ids and not any(c.unobserved_since for c in registry.live())
    assert len(fake_ami.actions_named("Originate")) == 10  # nothing replayed after reconnect
    cancelled = await gateway.delete(f"/v1/calls/{results[0][1]['call_id']}", headers=AUTH)
    assert cancelled.status == 200
    hangup = await fake_ami.wait_for_action("Hangup")
    assert hangup["Channel"].startswith("PJSIP/100-")


async def test_calls_that_ended_while_the_link_was_down_end_unobserved(gateway, fake_ami):
    """Answered, then hung up while nobody watched: the CDR keeps the last known state
    (ANSWERED, with the answer time seen), ends when the call was last known up, and says so."""
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.01, dial="trunk", dial_delay=0.01, talk_time=None)
    reconciler, registry = gateway.app[RECONCILER], gateway.app[REGISTRY]
    assert await reconciler.wait_run(1, 3)
    steps = Steps(gateway.app)
    status, body = await sync_call(gateway, ext="101", phone="0899")
    assert status == 200
    call = registry.get(body["call_id"])
    await steps.until(call.call_id, "number_answered")
    wait = state_waiter(gateway.app[AMI])
    runs = reconciler.runs
    await fake_ami.pause_accepting()                  # the link stays down a moment...
    await fake_ami.drop_connections()
    await wait(AmiState.CONNECTING, AmiState.DISCONNECTED)
    lost_at = call.unobserved_since
    fake_ami.hang_up(call.ext_channel)                # ...and the call ends meanwhile
    await fake_ami.start()
    await wait(AmiState.READY)
    assert await reconciler.wait_run(runs + 1, 3)
    assert registry.get(body["call_id"]) is None
    record = await stored(gateway.app).get_call("default", body["call_id"])
    assert (record["status"], record["ended_unobserved"], record["state"]) == ("ANSWERED", True, "ended")
    assert record["time_ended"] == iso(lost_at) and record["hangup_by"] is None


async def test_silent_peer_is_detected_by_ping_deadline(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=60)
    waiting = asyncio.create_task(sync_call(gateway, ext="101", phone="0899"))
    await fake_ami.wait_for_action("Originate")
    wait = state_waiter(gateway.app[AMI])
    fake_ami.go_silent(True)
    await wait(AmiState.CONNECTING, AmiState.DISCONNECTED, timeout=2)  # ping 0.5 s + deadline 0.3 s
    status, body = await asyncio.wait_for(waiting, 1)
    assert (status, body["error"]) == (503, "PBX_UNAVAILABLE")
    fake_ami.go_silent(False)
    await fake_ami.drop_connections()  # the hung sessions go away, as after a PBX restart
    await wait(AmiState.READY)
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)
    status, body = await sync_call(gateway, ext="102", phone="0899")
    assert status == 200


async def test_garbage_on_the_socket_does_not_break_the_link(gateway, fake_ami):
    fake_ami.send_garbage(b"\x00\xff\xfe garbage\r\nno colon here\r\n\r\nEvent: \r\n\r\n\n\n:::\r\n\r\n")
    fake_ami.emit_event({"Event": "OriginateResponse", "ActionID": "not-ours", "Response": "Failure"})
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)
    status, body = await sync_call(gateway, ext="101", phone="0899")
    assert status == 200 and gateway.app[AMI].ready


async def test_unanswered_action_times_out_and_is_unregistered(gateway, fake_ami):
    ami = gateway.app[AMI]
    fake_ami.go_silent(True)
    with pytest.raises(AmiTimeout):
        await ami.send({"Action": "Getvar", "Variable": "DEVICE_STATE(PJSIP/101)"}, timeout=0.05)
    assert ami._session is None or not ami._session.protocol.responses
    assert not ami._inflight


@pytest.mark.parametrize("value", ["a\r\nAction: Command", "a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb",
                                   "a\x85b", "a\u2028b", "a\u2029b"])
def test_control_characters_never_reach_the_socket(value):
    with pytest.raises(UnsafeAmiValue):
        check_safe({"Action": "Originate", "CallerID": value})
    with pytest.raises(UnsafeAmiValue):
        check_safe({"Action": "Originate", "Variable": ["A=1", f"B={value}"]})


async def test_fault_storm_leaves_no_per_call_state(gateway, fake_ami):
    """Calls in every phase while the link drops, goes silent and comes back: every request
    gets a declared answer, and once the calls still up are hung up every per-call
    structure is empty again."""
    ami, registry, service = gateway.app[AMI], gateway.app[REGISTRY], gateway.app[SERVICE]
    reconciler = gateway.app[RECONCILER]
    assert await reconciler.wait_run(1, 3)
    wait = state_waiter(ami)
    behaviours = [Behaviour("answer", ring_delay=0.05, dial="none", talk_time=0.05),
                  Behaviour("answer", ring_delay=30), Behaviour("reject", ring_delay=0.02),
                  Behaviour("silent"), Behaviour("no_answer", ring_timeout=0.05)]
    outcomes = []
    for round_ in range(4):
        exts = [f"1{round_}{n}" for n in range(len(behaviours))]
        for ext, behaviour in zip(exts, behaviours, strict=True):
            fake_ami.behaviours[f"PJSIP/{ext}"] = behaviour
        tasks = [asyncio.create_task(sync_call(gateway, ext=ext, phone="0899")) for ext in exts]
        await fake_ami.wait_for_action("Originate", count=len(behaviours) * (round_ + 1), timeout=3)
        runs = reconciler.runs
        if round_ % 2:
            await fake_ami.drop_connections()
        else:
            fake_ami.go_silent(True)
            await wait(AmiState.CONNECTING, AmiState.DISCONNECTED)
            fake_ami.go_silent(False)
            await fake_ami.drop_connections()
        outcomes += await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await wait(AmiState.READY)
        assert await reconciler.wait_run(runs + 1, 3)
    declared = {"success", "USER_BUSY", "NO_ANSWER", "PBX_UNAVAILABLE", "CALL_FAILED"}
    assert {b.get("error", "success") for _, b in outcomes} <= declared
    assert not any(c.unobserved_since for c in registry.live())
    for call in registry.live():                      # the 30 s ringers are still up: hang up
        assert (await gateway.delete(f"/v1/calls/{call.call_id}", headers=AUTH)).status == 200
    assert await registry.wait_empty(3)
    assert registry.claimed_devices == 0 and service.waiters == 0
    assert not [f for f in ami._inflight if not f.done()]   # no action left unanswered
    assert not ami._session.protocol.responses


async def test_asterisk_is_asked_only_for_the_classes_of_the_events_read(fake_ami):
    """The mask is derived from what subscribers read: call,system for the call events;
    a subscriber of another class's event widens it, at once if the link is up."""
    from c2c_ami.pbx.events import CallEvents
    config = gateway_config(fake_ami.port)
    ami = AmiClient(config.ami)
    seen: asyncio.Queue = asyncio.Queue()

    def calls(event):
        seen.put_nowait(("calls", event.get("Event")))
    ami.subscribe(calls, CallEvents.EVENTS)
    ami.start()
    try:
        assert await ami.wait_ready(3)
        assert fake_ami.actions_named("Login")[-1]["Events"] == "call,system"
        before = ami.events_received
        fake_ami.emit_event({"Event": "VarSet", "Privilege": "dialplan,all", "Variable": "X"})   # not sent
        fake_ami.emit_event({"Event": "DeviceStateChange", "Privilege": "call,all", "State": "INUSE"})
        fake_ami.emit_event({"Event": "Newstate", "Privilege": "call,all", "Uniqueid": "u1"})
        assert await asyncio.wait_for(seen.get(), 3) == ("calls", "Newstate")
        assert ami.events_received - before == 2    # DeviceStateChange: received, read by nobody, unparsed
        ami.subscribe(lambda event: seen.put_nowait(("cdr", event.get("Event"))), ["Cdr"])
        await fake_ami.wait_for_action("Events", 3)
        assert fake_ami.actions_named("Events")[-1]["EventMask"] == "call,system,cdr"
        fake_ami.emit_event({"Event": "Cdr", "Privilege": "cdr,all", "Disposition": "ANSWERED"})
        assert await asyncio.wait_for(seen.get(), 3) == ("cdr", "Cdr")
        fake_ami.emit_event({"Event": "Newstate", "Privilege": "call,all", "Uniqueid": "u2"})
        assert await asyncio.wait_for(seen.get(), 3) == ("calls", "Newstate")
        assert seen.empty()                         # each handler gets only the events it names
    finally:
        await ami.close()
