"""Guard rails on the real rig, on both drivers: the do-not-call list and the caller-ID
allow-list refuse before any INVITE (the sipp traces say what the phone and the trunk
received), the agent monitor shows ringing and talking agents with their phones' User-Agent
and address, auto-answer picks each vendor's header from the phone's User-Agent and notices
a phone that rings instead."""
import asyncio

import pytest

from c2c_ami.app_keys import PHONES, REGISTRY, SERVICE
from c2c_rig import HOTLINES
from tests.fixtures_gateway import Steps, started

from .conftest import AUTH, TOKEN, click, in_thread, now, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

LISTED = "0899990988"
TALK_8S = "0909000800"       # the trunk answers after ~1 s and hangs up ~8 s later


def guarded_config(rig, tmp_path, **tenant):
    base = {"domain": "default", "tokens": [TOKEN], "endpoint": f"{rig.tech}/{{ext}}", "context": "c2c-outbound",
            "extensions": "^[0-9]{3}$", "hotlines": dict(HOTLINES), "default_region": "VN",
            "caller_ids": ["02873009999", "^1900[0-9]{4}$"], "agents": {"107": "Trần Thị Bích", "228": "Lê Văn An"},
            "auto_answer": "by_user_agent"}
    return rig_config(rig, tmp_path, tenants=[{**base, **tenant}], calls={
        "ring_timeout": 4, "dial_timeout": 3, "sync_timeout": 8, "blacklist": ["0899990977"]})


@pytest.fixture
async def guarded(make_rig_gateway, rig, tmp_path):
    client = await make_rig_gateway(guarded_config(rig, tmp_path))
    await started(client.app, timeout=10)
    yield client
    registry = client.app[REGISTRY]
    for call in registry.live():
        await client.app[SERVICE].hangup_quietly(call)
    assert await registry.wait_empty(10)


async def test_a_listed_number_in_each_of_its_forms_rings_nothing(guarded, rig):
    resp = await guarded.post("/v1/blacklist", json={"blacklist": [{"phone_number": LISTED, "description": "dnc"}]},
                              headers=AUTH)
    assert (resp.status, (await resp.json())["success"]) == (200, [LISTED])
    t0 = now()
    forms = ["0899990988", "+84899990988", "84899990988", "0084 899 990 988", "0899990977"]   # last: config
    for form, path in zip(forms, ["/v1/click2call", "/v1/click2call/async", "/v1/click2call", "/v1/click2call/async",
                                  "/v1/click2call"], strict=True):
        status, body = await click(guarded, path, ext="228", phone=form)
        assert (status, body["error"]) == (403, "PHONE_BLACKLISTED"), (form, body)
    resp = await guarded.post("/v2/click2call", json={"id": "KH1", "mobile": "+84 899 990 988", "agent": "228"},
                              headers=AUTH)
    body = await resp.json()
    assert (resp.status, body["code"], body["error"]) == (403, "1", "PHONE_BLACKLISTED")
    # nothing reached a phone or a trunk: not even an INVITE to the agent
    await asyncio.sleep(0)
    assert rig.invites_to("228", after=t0) == []
    assert rig.trunk_invites(after=t0) == [] and rig.trunk_invites(trunk="hotline-trunk-2", after=t0) == []
    metrics = await (await guarded.get("/metrics")).text()
    assert 'c2c_click_refusals_total{code="PHONE_BLACKLISTED",tenant="default"} 6.0' in metrics
    # unlisted again: the same number is dialled
    resp = await guarded.delete("/v1/blacklist", json={"blacklist": ["+84899990988"]}, headers=AUTH)
    assert (await resp.json())["success"] == ["+84899990988"]
    t1 = now()
    status, body = await click(guarded, ext="228", phone="0899990988")
    assert status == 200, body
    await in_thread(rig.wait_for_trunk_invite, "0899990988", after=t1, timeout=8)
    assert (await guarded.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200


async def test_a_spoofed_caller_id_is_refused_and_an_allowed_one_reaches_the_trunk(guarded, rig):
    t0 = now()
    for params in ({"src_cid_number": "0911111111"}, {"dest_cid_number": "0911111111"},
                   {"dest_cid_number": "+84911111111"}):
        status, body = await click(guarded, ext="229", phone="0899123456", **params)
        assert (status, body["error"]) == (403, "CALLER_ID_NOT_ALLOWED"), (params, body)
    assert rig.invites_to("229", after=t0) == [] and rig.trunk_invites(after=t0) == []
    status, body = await click(guarded, ext="229", phone="0899123456", dest_cid_number="+842873009999",
                               src_cid_number="19001234", dest_cid_name="Shop")
    assert status == 200, body
    trunk = await in_thread(rig.wait_for_trunk_invite, "0899123456", after=t0, timeout=8)
    assert trunk.from_user == "+842873009999" and trunk.from_display_name == "Shop"
    assert (await guarded.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200


async def agents(client):
    resp = await client.get("/v1/monitor/agent", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == len(body["data"])
    return {a["extension"]: a for a in body["data"]}


async def until(predicate, timeout=5.0):
    """Poll the gateway (not the rig) until ``predicate()`` holds: the monitor is read from memory."""
    async def wait():
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(wait(), timeout)


async def test_the_monitor_shows_a_ringing_and_a_talking_agent_with_their_phones(guarded, rig):
    async def contacts_read():      # (a phone's contact is read after its state, at the start)
        rows = await agents(guarded)
        return all(rows.get(ext, {}).get("user_agent") for ext in ("117", "228"))
    await until(contacts_read)
    listed = await agents(guarded)
    assert "104" not in listed and "114" not in listed          # never registered; unreachable
    assert listed["117"]["user_agent"] == "Yealink SIP-T46S 66.86.0.15"
    idle = listed["228"]
    assert (idle["call_state"], idle["agent_name"], idle["call_id"], idle["destination"]) == \
        ("IDLE", "Lê Văn An", "", "")
    assert (idle["user_agent"], idle["network_ip"], idle["server_host"]) == ("c2c-ami-test-rig", "127.0.0.1",
                                                                           "127.0.0.1")
    steps = Steps(guarded.app)
    status, ringing = await click(guarded, "/v1/click2call/async", ext="107", phone="0899000111")
    assert status == 200
    await steps.until(ringing["call_id"], "ext_ringing", timeout=5)
    row = (await agents(guarded))["107"]
    assert (row["call_state"], row["call_id"], row["destination"], row["direction"], row["agent_name"]) == \
        ("RINGING", ringing["call_id"], "0899000111", "outbound", "Trần Thị Bích")
    assert row["call_time"] and row["user_agent"] == "c2c-ami-test-rig" and row["network_ip"] == "127.0.0.1"
    status, talking = await click(guarded, ext="228", phone=TALK_8S)
    assert status == 200, talking
    row = (await agents(guarded))["228"]
    assert (row["call_state"], row["call_id"], row["destination"]) == ("ONCALL", talking["call_id"], TALK_8S)
    for call_id in (ringing["call_id"], talking["call_id"]):
        assert (await guarded.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    assert await guarded.app[REGISTRY].wait_empty(10)

    async def idle_again():
        rows = await agents(guarded)
        return rows["107"]["call_state"] == rows["228"]["call_state"] == "IDLE"
    await until(idle_again)
    # a phone going away leaves the monitor within a second, and comes back with its User-Agent
    await in_thread(rig.unregister, "230")

    async def gone():
        return "230" not in await agents(guarded)
    await until(gone, timeout=1.5)
    await in_thread(rig.register, "230")

    async def back():
        row = (await agents(guarded)).get("230")
        return row is not None and row["user_agent"] == "c2c-ami-test-rig"
    await until(back, timeout=1.5)


@pytest.mark.parametrize("ext, header, value, absent", [
    ("117", "Call-Info", "answer-after=0", "Answer-Mode"),        # Yealink: call-info
    ("118", "Call-Info", "answer-after=0", "Alert-Info"),         # Grandstream: call-info
    ("119", "Alert-Info", "Ring Answer", "Call-Info"),            # Polycom: polycom
])
async def test_each_vendor_phone_gets_its_header_and_answers_by_itself(guarded, rig, ext, header, value, absent):
    assert guarded.app[PHONES].user_agent("default", f"{rig.tech}/{ext}")     # known since the snapshot
    t0 = now()
    status, body = await click(guarded, ext=ext, phone="0899123456", auto_answer="true")
    assert status == 200, body
    invite = await in_thread(rig.wait_for_invite, ext, after=t0)
    assert value in (invite.header(header) or "") and invite.header(absent) is None, invite.raw
    assert rig.messages(ext)[-1].method != "CANCEL"
    call = await guarded.get(f"/v1/calls/{body['call_id']}", headers=AUTH)
    assert (await call.json())["call"]["auto_answer_honoured"] is True
    assert (await guarded.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200


async def test_a_phone_that_rings_instead_is_reported(guarded, rig):
    steps = Steps(guarded.app)
    t0 = now()
    status, body = await click(guarded, "/v1/click2call/async", ext="120", phone="0899123456", auto_answer="1")
    assert status == 200, body
    invite = await in_thread(rig.wait_for_invite, "120", after=t0)
    assert "answer-after=0" in (invite.header("Call-Info") or "")           # Fanvil: call-info, ignored
    await steps.until(body["call_id"], "ext_ringing", timeout=5)

    async def reported():
        call = await (await guarded.get(f"/v1/calls/{body['call_id']}", headers=AUTH)).json()
        return call["call"]["auto_answer_honoured"] is False
    await until(reported, timeout=3)
    assert (await guarded.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200
    assert await guarded.app[REGISTRY].wait_empty(10)
    metrics = await (await guarded.get("/metrics")).text()
    assert 'c2c_auto_answer_total{honoured="false",user_agent="Fanvil X4U 2.12.1"} 1.0' in metrics
