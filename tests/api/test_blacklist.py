"""The do-not-call list over HTTP, the carrier's way, and the clicks it refuses (fake AMI):
nothing is sent to the PBX for a listed number or a caller ID outside the allow-list."""
import dataclasses

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI
from c2c_ami.config import StorageConfig
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, TOKEN, gateway_config, started

TENANTS = [
    {"domain": "default", "tokens": [TOKEN], "api_keys": ["key-default-0123456789"], "endpoint": "PJSIP/{ext}",
     "extensions": "^1[0-9]{2}$", "default_region": "VN", "hotlines": {"02873001234": "hotline-trunk"},
     "caller_ids": ["02873009999"]},
    {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": "PJSIP/{ext}", "extensions": "^2[0-9]{2}$",
     "hotlines": {"02439990000": "other-trunk"}},
]


@pytest.fixture
async def client(make_gateway):
    return await make_gateway(tenants=TENANTS, auth={"signing_secret": "s" * 32})


async def post(client, entries, headers=AUTH):
    resp = await client.post("/v1/blacklist", json={"blacklist": entries}, headers=headers)
    return resp.status, await resp.json()


async def test_the_carriers_shapes(client):
    status, body = await post(client, [{"phone_number": "0899990988", "description": "spam"},
                                       {"phone_number": "0899990989", "description": "dnc"},
                                       {"phone_number": "+84 899 990 988"}, {"phone_number": "12"}])
    assert status == 200
    assert body == {"fail": [{"+84 899 990 988": "phone_number is duplicate"}, {"12": "phone_number is invalid"}],
                    "message": "successfully", "success": ["0899990988", "0899990989"]}
    listing = await (await client.get("/v1/blacklist?limit=1&offset=1", headers=AUTH)).json()
    assert listing["limit"] == 1 and listing["offset"] == 1 and listing["total"] == 2
    assert [(e["phone_number"], e["description"]) for e in listing["data"]] == [("0899990989", "dnc")]
    one = listing["data"][0]
    assert set(one) == {"id", "phone_number", "description"}
    assert await (await client.get(f"/v1/blacklist/{one['id']}", headers=AUTH)).json() == one
    assert await (await client.get("/v1/blacklist/84899990989", headers=AUTH)).json() == one
    missing = await client.get("/v1/blacklist/0899000000", headers=AUTH)
    assert (missing.status, (await missing.json())["error"]) == (404, "BLACKLIST_NOT_FOUND")
    other = await client.get(f"/v1/blacklist/{one['id']}", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert other.status == 404                                      # another tenant's entry
    resp = await client.delete("/v1/blacklist", json={"blacklist": ["0899990988", "0899000000"]}, headers=AUTH)
    assert await resp.json() == {"fail": [{"0899000000": "phone_number is not in the blacklist"}],
                                 "message": "successfully", "success": ["0899990988"]}
    assert (await (await client.get("/v1/blacklist", headers=AUTH)).json())["total"] == 1


@pytest.mark.parametrize("body, message", [
    ({}, "blacklist: a non-empty list is required"),
    ({"blacklist": [{"description": "x"}]}, "blacklist[0]: an object with phone_number"),
    ({"blacklist": [{"phone_number": "0899", "description": "a\nb"}]}, "blacklist[0].description:"),
    ({"blacklist": [{"phone_number": str(i)} for i in range(1001)]}, "blacklist: at most 1000"),
])
async def test_malformed_bodies_are_refused(client, body, message):
    resp = await client.post("/v1/blacklist", json=body, headers=AUTH)
    got = await resp.json()
    assert (resp.status, got["error"]) == (400, "INVALID_PARAMS") and got["message"].startswith(message), got


async def test_a_token_for_one_extension_reads_but_never_changes_the_list(client):
    token = (await (await client.post("/v1/auth/token",
                                      json={"api_key": "key-default-0123456789", "ext": "101"})).json())
    scoped = {"Authorization": f"Bearer {token['data']['token']}"}
    assert (await client.get("/v1/blacklist", headers=scoped)).status == 200
    status, body = await post(client, [{"phone_number": "0899990988"}], headers=scoped)
    assert (status, body["error"]) == (403, "FORBIDDEN")
    resp = await client.delete("/v1/blacklist", json={"blacklist": ["0899990988"]}, headers=scoped)
    assert resp.status == 403


@pytest.mark.parametrize("path", ["/v1/click2call", "/v1/click2call/async"])
async def test_a_listed_number_sends_nothing_to_the_pbx(client, fake_ami, path):
    await post(client, [{"phone_number": "+84899990988"}])
    for form in ("0899990988", "84899990988", "+84899990988"):
        resp = await client.get(path, params={"ext": "101", "phone": form}, headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["status"], body["error"]) == (403, "fail", "PHONE_BLACKLISTED")
    resp = await client.post("/v2/click2call", json={"id": "c", "mobile": "0899990988", "agent": "101"}, headers=AUTH)
    assert (resp.status, (await resp.json())["code"]) == (403, "1")
    assert fake_ami.received_actions == []                      # not even the device check
    metrics = await (await client.get("/metrics")).text()
    assert 'c2c_click_refusals_total{code="PHONE_BLACKLISTED",tenant="default"} 4.0' in metrics
    # the other tenant has its own list
    resp = await client.get(path, params={"ext": "201", "phone": "0899990988"},
                            headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert resp.status == 200


async def test_a_caller_id_outside_the_allow_list_sends_nothing(client, fake_ami):
    for params in ({"src_cid_number": "0911111111"}, {"dest_cid_number": "+84911111111"}):
        resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899", **params}, headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["error"]) == (403, "CALLER_ID_NOT_ALLOWED"), body
    assert fake_ami.received_actions == []
    resp = await client.get("/v1/click2call/async", headers=AUTH,
                            params={"ext": "101", "phone": "0899", "dest_cid_number": "+842873009999"})
    assert resp.status == 200
    originate = await fake_ami.wait_for_action("Originate")
    assert "C2C_DEST_CID_NUMBER=+842873009999" in originate["Variable"]


async def test_listed_on_one_instance_refused_on_another_at_once(aiohttp_client, fake_ami, postgres):
    url = postgres.create_database()
    clients = []
    for instance in ("gw-a", "gw-b"):
        config = gateway_config(fake_ami.port, tenants=TENANTS, cluster={"instance_id": instance})
        app = create_app(dataclasses.replace(config, storage=StorageConfig(url=url)))
        clients.append(await aiohttp_client(app))
        assert await app[AMI].wait_ready(3)
        await started(app)
    first, second = clients
    status, _ = await post(first, [{"phone_number": "0899990988"}])
    assert status == 200
    resp = await second.get("/v1/click2call/async", params={"ext": "101", "phone": "+84899990988"}, headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (403, "PHONE_BLACKLISTED")
    await second.delete("/v1/blacklist", json={"blacklist": ["0899990988"]}, headers=AUTH)
    resp = await first.get("/v1/click2call/async", params={"ext": "101", "phone": "+84899990988"}, headers=AUTH)
    assert resp.status == 200
