"""POST /v2/click2call on the real rig: Asterisk itself holds C2C_CUSTOMER_ID on the
extension's channel (read back with Getvar while the call is up), and the CDR carries the
customer; a v1 call without a customer sets no such variable."""
import pytest

from c2c_ami.app_keys import AMI, REGISTRY
from tests.fixtures_gateway import Steps, stored

from .conftest import AUTH
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

TALK_8S = "0909000800"      # the trunk answers after ~1 s and hangs up ~8 s later


async def channel_variable(client, channel: str, name: str) -> str | None:
    reply = await client.app[AMI].send({"Action": "Getvar", "Channel": channel, "Variable": name})
    assert reply.get("Response") == "Success", dict(reply)
    return reply.get("Value") or None


async def test_v2_customer_id_is_a_channel_variable_in_asterisk_and_in_the_cdr(gw, rig):
    steps = Steps(gw.app)
    resp = await gw.post("/v2/click2call", json={"id": "KH-rig:1@crm", "mobile": TALK_8S, "agent": "226"},
                         headers=AUTH)
    body = await resp.json()
    assert (resp.status, body["code"], body["status"]) == (200, "0", "success"), body
    call_id = body["call_id"]
    await steps.until(call_id, "number_answered", timeout=10)
    call = gw.app[REGISTRY].get(call_id)
    assert call is not None and call.ext_channel
    assert await channel_variable(gw, call.ext_channel, "C2C_CUSTOMER_ID") == "KH-rig:1@crm"
    assert await channel_variable(gw, call.ext_channel, "C2C_CALL_ID") == call_id     # the same channel
    assert (await gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    assert await gw.app[REGISTRY].wait_empty(10)
    record = await stored(gw.app).get_call("default", call_id)
    assert (record["customer_id"], record["status"], record["hangup_by"]) == ("KH-rig:1@crm", "ANSWERED", "api")


async def test_v1_without_a_customer_sets_no_channel_variable(gw, rig):
    steps = Steps(gw.app)
    resp = await gw.get("/v1/click2call", params={"ext": "227", "phone": TALK_8S}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    await steps.until(body["call_id"], "ext_answered", timeout=10)
    call = gw.app[REGISTRY].get(body["call_id"])
    assert call is not None and call.ext_channel
    assert await channel_variable(gw, call.ext_channel, "C2C_CALL_ID") == body["call_id"]
    assert await channel_variable(gw, call.ext_channel, "C2C_CUSTOMER_ID") is None
    assert (await gw.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200
    assert await gw.app[REGISTRY].wait_empty(10)
    assert (await stored(gw.app).get_call("default", body["call_id"]))["customer_id"] is None
