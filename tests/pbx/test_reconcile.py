"""Restarts against the fake AMI: live calls outlive the gateway process and are settled with
what the PBX says when it is asked again -- tracked on if still up, ended unobserved if not."""
from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY
from c2c_ami.calls.record import iso
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, Steps, gateway_config, stored

TALKING = Behaviour("answer", ring_delay=0.01, dial="trunk", dial_delay=0.01, talk_time=None)


async def start(aiohttp_client, config):
    """A gateway up, with every call it adopted checked with the PBX."""
    client = await aiohttp_client(create_app(config))
    assert await client.app[AMI].wait_ready(3)
    registry, reconciler = client.app[REGISTRY], client.app[RECONCILER]
    while any(c.unobserved_since for c in registry.live()):
        assert await reconciler.wait_run(reconciler.runs + 1, 3)
    return client


async def answered_call(client, ext="101"):
    steps = Steps(client.app)
    resp = await client.get("/v1/click2call", params={"ext": ext, "phone": "0899"}, headers=AUTH)
    assert resp.status == 200
    call_id = (await resp.json())["call_id"]
    await steps.until(call_id, "number_answered")
    return client.app[REGISTRY].get(call_id)


async def test_a_call_still_up_after_a_restart_is_tracked_again_to_its_end(aiohttp_client, fake_ami, tmp_path):
    fake_ami.default_behaviour = TALKING
    config = gateway_config(fake_ami.port, storage={"path": str(tmp_path / "c2c.sqlite3")})
    first = await start(aiohttp_client, config)
    call = await answered_call(first)
    answered_at = call.number_answered_at
    await first.close()                                  # SIGTERM: the call is left to the next start
    assert fake_ami.live_channels                        # still up at the PBX

    second = await start(aiohttp_client, config)
    again = second.app[REGISTRY].get(call.call_id)
    assert again is not None and again.unobserved_since is None
    assert again.number_answered_at == answered_at and again.ext_channel == call.ext_channel
    assert (await second.delete(f"/v1/calls/{call.call_id}", headers=AUTH)).status == 200   # cancel works
    assert await second.app[REGISTRY].wait_empty(3)
    record = await stored(second.app).get_call("default", call.call_id)
    assert (record["status"], record["ended_unobserved"], record["hangup_by"]) == ("ANSWERED", False, "api")
    assert record["time_answered"] == iso(answered_at)


async def test_a_call_that_ended_while_the_gateway_was_down_ends_unobserved(aiohttp_client, fake_ami, tmp_path):
    fake_ami.default_behaviour = TALKING
    config = gateway_config(fake_ami.port, storage={"path": str(tmp_path / "c2c.sqlite3")})
    first = await start(aiohttp_client, config)
    call = await answered_call(first)
    await first.close()
    stopped_at = (await first_facts(config, call.call_id))["unobserved_since"]
    fake_ami.hang_up(call.ext_channel)                   # the phone hangs up while no gateway runs

    second = await start(aiohttp_client, config)
    assert second.app[REGISTRY].get(call.call_id) is None
    record = await stored(second.app).get_call("default", call.call_id)
    assert (record["status"], record["ended_unobserved"], record["hangup_by"]) == ("ANSWERED", True, None)
    assert record["time_ended"] == iso(stopped_at)      # when it was last known up: the shutdown
    assert record["billsec"] == round(stopped_at - call.number_answered_at)


async def test_a_call_of_a_pbx_no_longer_configured_ends_unobserved_at_start(aiohttp_client, fake_ami, tmp_path):
    fake_ami.default_behaviour = TALKING
    storage = {"path": str(tmp_path / "c2c.sqlite3")}
    first = await start(aiohttp_client, gateway_config(fake_ami.port, storage=storage))
    call = await answered_call(first)
    await first.close()
    renamed = gateway_config(fake_ami.port, storage=storage, ami=None,
                             pbxs=[{"name": "renamed", "ami": {"host": "127.0.0.1", "port": fake_ami.port,
                                                               "username": "c2c", "secret": "change-me"}}])
    second = await start(aiohttp_client, renamed)
    assert second.app[REGISTRY].get(call.call_id) is None
    record = await stored(second.app).get_call("default", call.call_id)
    assert (record["pbx"], record["ended_unobserved"]) == ("default", True)


async def first_facts(config, call_id):
    from c2c_ami.store import open_storage
    store = await open_storage(config.storage)
    try:
        return next(f for f in await store.live_calls() if f["call_id"] == call_id)
    finally:
        await store.close()


def test_a_transfer_answered_out_of_sight_is_taken_with_its_channel():
    """A transfer's leg is stored before its Originate, so a gateway killed while it rang knows
    its uniqueid but not its channel: the snapshot after the restart gives both (hanging up the
    call then reaches the new agent)."""
    from c2c_ami.calls.call import Call, Transfer
    from c2c_ami.calls.pbx_port import Channel
    from c2c_ami.pbx.events import apply_channels
    call = Call(tenant="default", ext="225", device="PJSIP/225", phone="0909000700", hotline="028", trunk="t")
    call.ext_leg_created("PJSIP/225-00000000")
    call.ext_answered()
    call.number_leg_created("1.2", "PJSIP/hotline-trunk-00000001")
    call.number_answered()
    call.transfer_asked(Transfer(ext="226", legs="bleg", time=1.0, uniqueid="t-1", device="PJSIP/226"))
    apply_channels(call, [Channel("1.2", call.call_id, "PJSIP/hotline-trunk-00000001", True),
                          Channel("t-1", call.call_id, "PJSIP/226-00000002", True)])
    assert (call.final_ext, call.current_agent_channel) == ("226", "PJSIP/226-00000002")
