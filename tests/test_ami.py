"""AMI link faults: wrong credentials, drops, a silent peer, garbage, split UTF-8, leaks."""
import asyncio
import logging

import pytest

from c2c_ami.api.keys import AMI, REGISTRY, SERVICE
from c2c_ami.pbx.ami import AmiClient, AmiState, AmiTimeout, UnsafeAmiValue, check_safe
from c2c_ami.testing.fake_ami import Behaviour

from .fixtures_gateway import AUTH, gateway_config


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


async def test_drop_answers_waiting_sync_requests_and_never_replays(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=60)
    requests = [asyncio.create_task(sync_call(gateway, ext=f"1{n:02d}", phone="0899")) for n in range(10)]
    await fake_ami.wait_for_action("Originate", count=10)
    wait = state_waiter(gateway.app[AMI])
    await fake_ami.drop_connections()
    results = await asyncio.wait_for(asyncio.gather(*requests), 2)
    assert {(s, b["error"]) for s, b in results} == {(503, "PBX_UNAVAILABLE")}
    assert all(b["call_id"] for _, b in results)
    assert len(gateway.app[REGISTRY]) == 0 and gateway.app[SERVICE].waiters == 0
    await wait(AmiState.READY)
    assert len(fake_ami.actions_named("Originate")) == 10  # nothing replayed after reconnect


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
    """Calls in every phase while the link drops, goes silent and comes back: afterwards
    every per-call structure is empty again."""
    ami, registry, service = gateway.app[AMI], gateway.app[REGISTRY], gateway.app[SERVICE]
    wait = state_waiter(ami)
    behaviours = [Behaviour("answer", ring_delay=0.05, dial="none", talk_time=0.05),
                  Behaviour("answer", ring_delay=30), Behaviour("reject", ring_delay=0.02),
                  Behaviour("silent"), Behaviour("no_answer", ring_timeout=0.05)]
    for n, behaviour in enumerate(behaviours):
        fake_ami.behaviours[f"PJSIP/1{n:02d}"] = behaviour
    outcomes = []
    for round_ in range(4):
        tasks = [asyncio.create_task(sync_call(gateway, ext=f"1{n:02d}", phone=f"0899{round_}"))
                 for n in range(len(behaviours))]
        await fake_ami.wait_for_action("Originate", count=len(behaviours) * (round_ + 1), timeout=3)
        if round_ % 2:
            await fake_ami.drop_connections()
        else:
            fake_ami.go_silent(True)
            await wait(AmiState.CONNECTING, AmiState.DISCONNECTED)
            fake_ami.go_silent(False)
            await fake_ami.drop_connections()
        outcomes += await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await wait(AmiState.READY)
    declared = {"success", "USER_BUSY", "NO_ANSWER", "PBX_UNAVAILABLE", "CALL_FAILED"}
    assert {b.get("error", "success") for _, b in outcomes} <= declared
    assert len(registry) == 0 and registry.claimed_devices == 0 and service.waiters == 0 and not ami._inflight
    assert not ami._session.protocol.responses

