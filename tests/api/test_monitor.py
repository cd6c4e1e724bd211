"""GET /v1/monitor/agent on the fake AMI: registered extensions only, with their phones'
User-Agent and address, what each is doing (the gateway's call, or the device state), kept
from events -- no AMI action per request -- and an extension's token sees itself only."""
import asyncio

import pytest

from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, TOKEN, Steps

TENANTS = [
    {"domain": "default", "tokens": [TOKEN], "api_keys": ["key-default-0123456789"], "endpoint": "PJSIP/{ext}",
     "extensions": "^1[0-9]{2}$", "hotlines": {"02873001234": "hotline-trunk"},
     "agents": {"101": "Nguyễn Văn A"}},
    {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": "SIP/{ext}", "extensions": "^2[0-9]{2}$",
     "hotlines": {"02439990000": "other-trunk"}},
]


@pytest.fixture
async def client(make_gateway, fake_ami):
    fake_ami.device_states.clear()
    fake_ami.register_phone("PJSIP/101", "Yealink SIP-T46S 66.86.0.15", "10.0.0.15")
    fake_ami.register_phone("PJSIP/102", "MicroSIP/3.20.6", "10.0.0.16")
    fake_ami.device_states["PJSIP/103"] = "UNAVAILABLE"          # configured, never registered
    fake_ami.register_phone("SIP/201", "Grandstream GXP2170", "10.0.1.20")
    fake_ami.register_phone("PJSIP/hotline-trunk")                # a trunk: no tenant's extension
    return await make_gateway(tenants=TENANTS, auth={"signing_secret": "s" * 32})


async def agents(client, headers=AUTH):
    resp = await client.get("/v1/monitor/agent", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == len(body["data"])
    return body["data"]


async def until(predicate, timeout=2.0):
    async def wait():
        while not await predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)


async def test_registered_extensions_with_their_phones(client, fake_ami):
    data = await agents(client)
    assert [a["extension"] for a in data] == ["101", "102"]
    assert data[0] == {"extension": "101", "agent_name": "Nguyễn Văn A", "call_state": "IDLE", "call_id": "",
                       "call_time": "", "destination": "", "direction": "", "user_agent": "Yealink SIP-T46S 66.86.0.15",
                       "network_ip": "10.0.0.15", "server_host": "127.0.0.1", "domain_name": "default",
                       "username": "101"}
    other = await agents(client, {"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert [(a["extension"], a["user_agent"], a["network_ip"]) for a in other] == \
        [("201", "Grandstream GXP2170", "10.0.1.20")]             # chan_sip: SIPshowpeer
    fake_ami.forget_received()
    await agents(client)
    assert fake_ami.received_actions == []                        # read from memory


async def test_changes_are_seen_from_events(client, fake_ami):
    fake_ami.unregister_phone("PJSIP/102")
    fake_ami.register_phone("PJSIP/103", "Zoiper rv2.10", "10.0.0.17")

    async def changed():
        return [(a["extension"], a["user_agent"]) for a in await agents(client)] == \
            [("101", "Yealink SIP-T46S 66.86.0.15"), ("103", "Zoiper rv2.10")]
    await until(changed)
    fake_ami.set_device_state("PJSIP/101", "INUSE")               # a call the gateway did not place

    async def busy():
        row = (await agents(client))[0]
        return row["call_state"] == "ONCALL" and row["call_id"] == "" and row["call_time"] != ""
    await until(busy)


async def test_the_gateways_calls_ringing_then_talking(client, fake_ami):
    fake_ami.device_state_events = True
    fake_ami.behaviours["PJSIP/102"] = Behaviour("answer", ring_delay=0.3, talk_time=None)
    steps = Steps(client.app)
    resp = await client.get("/v1/click2call/async", params={"ext": "102", "phone": "0899123456"}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    await steps.until(call_id, "ext_ringing")
    row = [a for a in await agents(client) if a["extension"] == "102"][0]
    assert (row["call_state"], row["call_id"], row["destination"], row["direction"]) == \
        ("RINGING", call_id, "0899123456", "outbound")
    await steps.until(call_id, "number_answered")
    row = [a for a in await agents(client) if a["extension"] == "102"][0]
    assert (row["call_state"], row["call_id"]) == ("ONCALL", call_id)
    await client.delete(f"/v1/calls/{call_id}", headers=AUTH)


async def test_an_extensions_token_sees_itself_only(client):
    token = (await (await client.post("/v1/auth/token",
                                      json={"api_key": "key-default-0123456789", "ext": "102"})).json())
    data = await agents(client, {"Authorization": f"Bearer {token['data']['token']}"})
    assert [a["extension"] for a in data] == ["102"]
    assert (await client.get("/v1/monitor/agent")).status == 401
