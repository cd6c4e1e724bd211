"""Call control across processes, on the real rig and both channel drivers: a transfer ringing
when the gateway is SIGKILLed is still known to the restarted gateway (its leg was stored
before the Originate: the target's events find the call), and an action asked on one instance
of a cluster on PostgreSQL is carried out by the instance that tracks the call."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from .conftest import AUTH, in_thread, now
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)
from .gateways import GatewayProcess, free_port, write_config

pytestmark = pytest.mark.rig

TALKS = "0909000700"
RINGS_ON = "111"            # rings until cancelled unless the INVITE asks it to answer


async def record_of(http, gateway, call_id) -> dict:
    async with http.get(f"{gateway.base}/v1/calls/{call_id}") as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["call"]


async def until_record(http, gateway, call_id, predicate, timeout=15.0) -> dict:
    async def poll():
        while True:
            record = await record_of(http, gateway, call_id)
            if predicate(record):
                return record
            await asyncio.sleep(0.1)
    return await asyncio.wait_for(poll(), timeout)


async def talking(http, gateway, ext) -> str:
    async with http.get(f"{gateway.base}/v1/click2call/async", params={"ext": ext, "phone": TALKS}) as resp:
        body = await resp.json()
    assert resp.status == 200, body
    await until_record(http, gateway, body["call_id"], lambda r: r["state"] == "number_answered")
    return body["call_id"]


async def test_a_transfer_ringing_when_the_gateway_is_killed_is_followed_after_the_restart(rig, tmp_path):
    gateway = GatewayProcess(write_config(rig, tmp_path, 1, f"sqlite:///{tmp_path}/c2c.sqlite3"), port=free_port())
    async with aiohttp.ClientSession(headers=AUTH) as http:
        await gateway.start()
        try:
            call_id = await talking(http, gateway, "227")
            t1 = now()
            asked = asyncio.ensure_future(http.post(f"{gateway.base}/v1/call/{call_id}/transfer",
                                                    json={"ext": RINGS_ON}))
            await in_thread(rig.wait_for_invite, RINGS_ON, after=t1)         # the target rings...
            await gateway.kill()                                              # ...and the gateway dies
            with pytest.raises(aiohttp.ClientError):
                await asked
            await gateway.start(adopted=1)
            record = await until_record(http, gateway, call_id,
                                        lambda r: r["transfers"] and r["transfers"][0]["answered"] is not None)
            assert (record["transfers"][0]["answered"], record["final_ext"]) == (False, "227")
            assert record["state"] == "number_answered" and record["time_ended"] is None   # nothing moved
            async with http.post(f"{gateway.base}/v1/call/{call_id}/transfer", json={"ext": "228"}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.delete(f"{gateway.base}/v1/calls/{call_id}") as resp:
                assert resp.status == 200
            record = await until_record(http, gateway, call_id, lambda r: r["state"] == "ended")
            assert [(t["ext"], t["answered"]) for t in record["transfers"]] == [(RINGS_ON, False), ("228", True)]
            assert (record["final_ext"], record["status"]) == ("228", "ANSWERED")
        finally:
            await gateway.stop()


async def test_a_transfer_answered_while_the_gateway_was_down_is_found_by_asking_the_pbx(rig, tmp_path):
    """The target (a phone answering after ~0.5 s) answers while no gateway runs: the restarted
    gateway asks Asterisk which channels are up (the target's, now linked to the call) and
    sees the transfer done: the target is the agent, and hanging it up ends the call."""
    gateway = GatewayProcess(write_config(rig, tmp_path, 1, f"sqlite:///{tmp_path}/c2c.sqlite3"), port=free_port())
    async with aiohttp.ClientSession(headers=AUTH) as http:
        await gateway.start()
        try:
            call_id = await talking(http, gateway, "225")
            t1 = now()
            asked = asyncio.ensure_future(http.post(f"{gateway.base}/v1/call/{call_id}/transfer",
                                                    json={"ext": "226"}))
            await in_thread(rig.wait_for_invite, "226", after=t1)
            await gateway.kill()                          # before 226 answers
            with pytest.raises(aiohttp.ClientError):
                await asked
            await gateway.start(adopted=1)
            record = await until_record(http, gateway, call_id, lambda r: r["final_ext"] == "226")
            assert [(t["ext"], t["answered"]) for t in record["transfers"]] == [("226", True)]
            async with http.delete(f"{gateway.base}/v1/calls/{call_id}") as resp:
                assert resp.status == 200
            record = await until_record(http, gateway, call_id, lambda r: r["state"] == "ended")
            assert (record["status"], record["final_ext"], record["ended_unobserved"]) == ("ANSWERED", "226", False)
        finally:
            await gateway.stop()


async def test_any_instance_acts_on_a_call_another_instance_tracks(rig, tmp_path, postgres):
    config = write_config(rig, tmp_path, 1, postgres.create_database())
    first, second = (GatewayProcess(config, port=free_port(), instance_id=name) for name in ("gw1", "gw2"))
    async with aiohttp.ClientSession(headers=AUTH) as http:
        await first.start()
        await second.start()
        try:
            call_id = await talking(http, first, "229")                       # tracked by gw1
            t1 = now()
            async with http.post(f"{second.base}/v1/call/{call_id}/listen", json={"ext": "230"}) as resp:
                assert resp.status == 200, await resp.text()
            await in_thread(rig.wait_for_invite, "230", after=t1)
            async with http.post(f"{second.base}/v1/call/{call_id}/transfer", json={"ext": "228"}) as resp:
                body = await resp.json()
            assert (resp.status, body["ext"], body["legs"]) == (200, "228", "bleg"), body
            await in_thread(rig.wait_for_invite, "228", after=t1)
            async with http.post(f"{second.base}/v1/call/{call_id}/park", json={"legs": "cleg"}) as resp:
                assert (resp.status, (await resp.json())["error"]) == (400, "INVALID_PARAMS")
            async with http.post(f"{second.base}/v1/call/{call_id}/recording/pause") as resp:
                assert (resp.status, (await resp.json())["error"]) == (409, "NOT_RECORDING")   # gw1's refusal
            record = await record_of(http, second, call_id)
            assert record["final_ext"] == "228"
            async with http.delete(f"{second.base}/v1/calls/{call_id}") as resp:
                assert resp.status == 200
            await until_record(http, first, call_id, lambda r: r["state"] == "ended")
        finally:
            await asyncio.gather(first.stop(), second.stop())
