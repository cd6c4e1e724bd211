"""The carrier's ``POST /v2/click2call`` and the customer id it carries (v1:
``customer_id``) -- to the Originate (C2C_CUSTOMER_ID), the live call, its durable facts, the
CDR (and ``GET /v1/cdr?customer_id=``) and every webhook payload."""
import asyncio
import json

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, RECONCILER, REGISTRY
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, Steps, gateway_config, stored

RINGING = Behaviour("answer", ring_delay=30)                     # stays live: nothing else happens
TALKING = Behaviour("answer", ring_delay=0.01, dial="trunk", dial_delay=0.01, talk_time=None)


async def v2(client, body, headers=AUTH):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    resp = await client.post("/v2/click2call", data=data, headers={**headers, "Content-Type": "application/json"})
    return resp.status, await resp.json(), resp


async def v1(client, path="/v1/click2call/async", headers=AUTH, **params):
    resp = await client.get(path, params=params, headers=headers)
    return resp.status, await resp.json()


def variables(action):
    return dict(action.variables)


# -- v2: the carrier's shape ------------------------------------------------------------------

async def test_v2_success_is_the_carriers_shape_and_the_originate_carries_the_customer(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    status, body, _ = await v2(gateway, {"id": "KH1", "mobile": "0899 098 899", "agent": "101"})
    assert status == 200 and body == {"code": "0", "status": "success", "call_id": body["call_id"]}
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["ActionID"] == body["call_id"] and originate["Exten"] == "0899098899"
    assert originate["Channel"] == "PJSIP/101" and originate["CallerID"] == '"Click2Call" <101>'
    assert variables(originate) == {
        "C2C_CALL_ID": body["call_id"], "C2C_EXT": "101", "C2C_PHONE": "0899098899",
        "C2C_HOTLINE": "02873001234", "C2C_TRUNK": "hotline-trunk",
        "C2C_DEST_CID_NAME": "02873001234", "C2C_DEST_CID_NUMBER": "02873001234",
        "C2C_DIAL_TIMEOUT": "60", "C2C_CUSTOMER_ID": "KH1"}
    call = gateway.app[REGISTRY].get(body["call_id"])
    assert call is not None and call.customer_id == "KH1" and not call.outcome_known.is_set()   # async
    live = await (await gateway.get(f"/v1/calls/{body['call_id']}", headers=AUTH)).json()
    assert live["call"]["customer_id"] == "KH1" and live["call"]["state"] in ("originating", "ext_ringing")
    text = await (await gateway.get("/metrics")).text()
    assert 'c2c_requests_total{endpoint="v2",outcome="success"} 1.0' in text


async def test_v2_takes_every_v1_option_by_its_v1_name(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    status, body, _ = await v2(gateway, {
        "id": "crm:42@shop", "mobile": "MDg5OTExMTIyMg==", "is_encode": True, "agent": "102",
        "src_cid_name": "Nguyễn Văn A", "src_cid_number": "+8428", "dest_cid_name": "Shop",
        "dest_cid_number": "19001234", "hotline": "02873005678", "auto_answer": "yes", "unknown": [1]})
    assert (status, body["code"]) == (200, "0"), body
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["Exten"] == "0899111222" and originate["CallerID"] == '"Nguyễn Văn A" <+8428>'
    got = variables(originate)
    assert (got["C2C_HOTLINE"], got["C2C_TRUNK"]) == ("02873005678", "hotline-trunk-2")
    assert (got["C2C_DEST_CID_NAME"], got["C2C_DEST_CID_NUMBER"]) == ("Shop", "19001234")
    assert got["C2C_CUSTOMER_ID"] == "crm:42@shop" and "PJSIP_HEADER(add,Call-Info)" in got


async def test_v2_takes_agent_mobile_and_id_by_their_v1_names_too(gateway, fake_ami):
    """docs/api.md: every v1 parameter may be added by its v1 name (ext, phone, customer_id)."""
    fake_ami.default_behaviour = RINGING
    status, body, _ = await v2(gateway, {"customer_id": "KH7", "phone": "0899 111", "ext": "102"})
    assert (status, body["code"]) == (200, "0"), body
    originate = await fake_ami.wait_for_action("Originate")
    assert (originate["Channel"], originate["Exten"]) == ("PJSIP/102", "0899111")
    assert variables(originate)["C2C_CUSTOMER_ID"] == "KH7"
    status, body, _ = await v2(gateway, {"id": "KH7", "mobile": "0899", "ext": "250"})
    assert (status, body["error"]) == (403, "FORBIDDEN") and body["message"].startswith("ext: ")   # as it was said


@pytest.mark.parametrize("body, message", [
    ('{"id": "KH1", "mobile": "0899", "agent": "106", "agent": "101"}', "agent: given more than once in the body"),
    ({"id": "KH1", "mobile": "0899", "agent": "101", "ext": "106"}, "agent: given twice, as agent and as ext"),
    ({"id": "KH1", "mobile": "0899", "phone": "0900", "agent": "101"}, "mobile: given twice, as mobile and as phone"),
])
async def test_v2_ambiguity_is_refused_never_guessed(gateway, fake_ami, body, message):
    status, answer, _ = await v2(gateway, body)
    assert (status, answer["code"], answer["error"]) == (400, "1", "INVALID_PARAMS")
    assert answer["message"].startswith(message), answer
    assert fake_ami.actions_named("Originate") == []


@pytest.mark.parametrize("body, message", [
    ({"mobile": "0899", "agent": "101"}, "id: required"),
    ({"id": "", "mobile": "0899", "agent": "101"}, "id: required"),
    ({"id": "K" * 65, "mobile": "0899", "agent": "101"}, "id: "),
    ({"id": "KH 1", "mobile": "0899", "agent": "101"}, "id: "),
    ({"id": "KH1,Channel", "mobile": "0899", "agent": "101"}, "id: "),
    ({"id": "KH1\r\nAction: Hangup", "mobile": "0899", "agent": "101"}, "id: "),
    ({"id": 42, "mobile": "0899", "agent": "101"}, "id: must be a string"),
    ({"id": "KH1", "agent": "101"}, "mobile: required"),
    ({"id": "KH1", "mobile": "abc", "agent": "101"}, "mobile: "),
    ({"id": "KH1", "mobile": 899098899, "agent": "101"}, "mobile: must be a string"),
    ({"id": "KH1", "mobile": "!!", "is_encode": True, "agent": "101"}, "mobile: "),
    ({"id": "KH1", "mobile": "0899"}, "agent: required"),
    ({"id": "KH1", "mobile": "0899", "agent": "10 1"}, "agent: "),
    ({"id": "KH1", "mobile": "0899", "agent": 101}, "agent: must be a string"),
    ({"id": "KH1", "mobile": "0899", "agent": "101", "auto_answer": "maybe"}, "auto_answer: "),
    ({"id": "KH1", "mobile": "0899", "agent": "101", "hotline": "x"}, "hotline: "),
    ({"id": "KH1", "mobile": "0899", "agent": "101", "src_cid_name": 7}, "src_cid_name: must be a string"),
    (b"not json", "body: "),
    (b"[1, 2]", "body: "),
    (b"\xff\xfe{}", "body: "),
])
async def test_v2_invalid_params_is_400_code_1_naming_the_bodys_key(gateway, fake_ami, body, message):
    status, answer, _ = await v2(gateway, body)
    assert (status, answer["code"], answer["status"], answer["error"]) == (400, "1", "fail", "INVALID_PARAMS")
    assert answer["message"].startswith(message), answer
    assert "call_id" not in answer and fake_ami.actions_named("Originate") == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_v2_without_a_valid_token_is_401_code_1(gateway, fake_ami, headers):
    status, body, resp = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"}, headers=headers)
    assert (status, body["code"], body["status"], body["error"]) == (401, "1", "fail", "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert fake_ami.actions_named("Getvar") == []


@pytest.mark.parametrize("body, message", [
    ({"id": "KH1", "mobile": "0899", "agent": "201"}, "agent: "),
    ({"id": "KH1", "mobile": "0899", "agent": "101", "hotline": "02439990000"}, "hotline: "),
])
async def test_v2_foreign_agent_or_hotline_is_403_like_v1(gateway, fake_ami, body, message):
    status, answer, _ = await v2(gateway, body)
    assert (status, answer["code"], answer["error"]) == (403, "1", "FORBIDDEN")
    assert answer["message"].startswith(message)
    v1_status, v1_body = await v1(gateway, ext=body["agent"], phone="0899", hotline=body.get("hotline", ""))
    assert (v1_status, v1_body["error"]) == (status, answer["error"])
    assert "code" not in v1_body and v1_body["message"].startswith("ext:" if message == "agent: " else message)
    assert fake_ami.actions_named("Originate") == []


@pytest.mark.parametrize("state, code, http", [("INUSE", "USER_BUSY", 409), ("RINGING", "USER_BUSY", 409),
                                                ("UNAVAILABLE", "USER_NOT_REGISTERED", 404)])
async def test_v2_busy_or_unregistered_agent_has_v1s_status(gateway, fake_ami, state, code, http):
    fake_ami.device_states["PJSIP/101"] = state
    status, body, _ = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"})
    assert (status, body["code"], body["status"], body["error"]) == (http, "1", "fail", code)
    assert body["message"] and "call_id" not in body
    v1_status, v1_body = await v1(gateway, ext="101", phone="0899", customer_id="KH1")
    assert (v1_status, v1_body["error"]) == (status, body["error"])
    assert fake_ami.actions_named("Originate") == []


async def test_v2_extension_already_in_a_call_is_409_busy(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    assert (await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"}))[0] == 200
    status, body, _ = await v2(gateway, {"id": "KH2", "mobile": "0900", "agent": "101"})
    assert (status, body["code"], body["error"]) == (409, "1", "USER_BUSY")
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_v2_failure_after_the_originate_carries_the_call_id(gateway, fake_ami):
    fake_ami._handlers["originate"] = lambda conn, a: fake_ami._respond(conn, a, "Error", "Extension does not exist.")
    status, body, _ = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"})
    assert (status, body["code"], body["error"]) == (502, "1", "CALL_FAILED")
    assert body["call_id"] == fake_ami.actions_named("Originate")[0]["ActionID"]


async def test_v2_rate_limit_is_429_code_1_with_retry_after(make_gateway, fake_ami):
    client = await make_gateway(limits={"per_extension_per_minute": 1})
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.01, dial="none", talk_time=0.01)
    assert (await v2(client, {"id": "KH1", "mobile": "0899", "agent": "101"}))[0] == 200
    assert await client.app[REGISTRY].wait_empty(3)
    status, body, resp = await v2(client, {"id": "KH2", "mobile": "0899", "agent": "101"})
    assert (status, body["code"], body["error"]) == (429, "1", "RATE_LIMITED") and resp.headers["Retry-After"]


async def test_v2_double_click_and_an_identical_v1_async_join_the_first_call(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    body = {"id": "KH1", "mobile": "0899", "agent": "101"}
    first, second = await asyncio.gather(v2(gateway, body), v2(gateway, body))
    assert first[1]["call_id"] == second[1]["call_id"] and first[0] == second[0] == 200
    same = await v1(gateway, ext="101", phone="0899", customer_id="KH1")           # the same request
    assert same == (200, {"status": "success", "call_id": first[1]["call_id"]})
    other = await v1(gateway, ext="101", phone="0899", customer_id="KH2")           # another customer
    assert (other[0], other[1]["error"]) == (409, "USER_BUSY")
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_v2_idempotency_key_replays_and_refuses_other_parameters(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    headers = {**AUTH, "Idempotency-Key": "crm-v2-1"}
    a = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"}, headers=headers)
    b = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"}, headers=headers)
    assert a[1] == b[1] and a[1]["code"] == "0"
    c = await v2(gateway, {"id": "KH2", "mobile": "0899", "agent": "101"}, headers=headers)
    assert (c[0], c[1]["code"]) == (400, "1") and c[1]["message"].startswith("Idempotency-Key")
    d = await v2(gateway, {"id": "KH1", "mobile": "0899", "agent": "101"}, headers={**AUTH, "Idempotency-Key": "a b"})
    assert (d[0], d[1]["code"]) == (400, "1") and d[1]["message"].startswith("Idempotency-Key")
    assert len(fake_ami.actions_named("Originate")) == 1


# -- v1: customer_id --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/click2call", "/v1/click2call/async"])
async def test_v1_customer_id_reaches_the_originate_and_the_record(gateway, fake_ami, path):
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)
    status, body = await v1(gateway, path, ext="101", phone="0899", customer_id="KH-9.x_y")
    assert status == 200 and body["status"] == "success" and "code" not in body
    originate = await fake_ami.wait_for_action("Originate")
    assert variables(originate)["C2C_CUSTOMER_ID"] == "KH-9.x_y"
    record = (await (await gateway.get(f"/v1/calls/{body['call_id']}", headers=AUTH)).json())["call"]
    assert record["customer_id"] == "KH-9.x_y"


async def test_v1_without_customer_id_sets_no_dialplan_variable_and_records_null(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    status, body = await v1(gateway, ext="101", phone="0899", customer_id="")
    assert status == 200
    originate = await fake_ami.wait_for_action("Originate")
    assert "C2C_CUSTOMER_ID" not in variables(originate)
    assert not [line for line in originate.lines if "CUSTOMER" in line]
    record = (await (await gateway.get(f"/v1/calls/{body['call_id']}", headers=AUTH)).json())["call"]
    assert "customer_id" in record and record["customer_id"] is None


@pytest.mark.parametrize("customer_id", ["K" * 65, "KH 1", "KH1,x", "KH1\r\nAction: Logoff", "KH1;x", "KHÁCH",
                                         "KH/1", "KH\"1", "KH1\x00"])
@pytest.mark.parametrize("path", ["/v1/click2call", "/v1/click2call/async"])
async def test_v1_bad_customer_id_is_400_naming_it(gateway, fake_ami, path, customer_id):
    status, body = await v1(gateway, path, ext="101", phone="0899", customer_id=customer_id)
    assert (status, body["error"]) == (400, "INVALID_PARAMS") and body["message"].startswith("customer_id: ")
    assert fake_ami.actions_named("Originate") == []


async def test_v1_customer_id_given_twice_is_400(gateway, fake_ami):
    resp = await gateway.get("/v1/click2call/async?ext=101&phone=0899&customer_id=A&customer_id=B", headers=AUTH)
    body = await resp.json()
    assert (resp.status, body["message"]) == (400, "customer_id: given more than once")


async def test_the_longest_customer_id_is_accepted(gateway, fake_ami):
    fake_ami.default_behaviour = RINGING
    longest = "A1._-:@" * 9 + "Z"
    assert len(longest) == 64
    status, body, _ = await v2(gateway, {"id": longest, "mobile": "0899", "agent": "101"})
    assert status == 200, body
    assert variables(await fake_ami.wait_for_action("Originate"))["C2C_CUSTOMER_ID"] == longest


# -- the record, the CDR, webhooks ------------------------------------------------------------

async def test_customer_id_is_in_every_webhook_payload_and_the_cdr(gateway, fake_ami, receiver):
    hook = (await (await gateway.post("/v1/event", json={"url": receiver.hook_url, "events": ["*"]},
                                      headers=AUTH)).json())["hook"]
    assert hook["id"]
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial_delay=0.05, talk_time=0.2)
    status, body, _ = await v2(gateway, {"id": "KH7", "mobile": "0899098899", "agent": "101"})
    assert status == 200
    payloads = []
    while not payloads or payloads[-1][0] != "cdr":
        headers, raw = await asyncio.wait_for(receiver.got.get(), 5)
        payloads.append((headers["X-C2C-Event"], json.loads(raw)))
    assert [e for e, _ in payloads] == ["ringing", "answered", "ringing", "answered", "hangup", "cdr"]
    assert all(p["call_id"] == body["call_id"] and p["customer_id"] == "KH7" for _, p in payloads)
    cdr = (await (await gateway.get(f"/v1/cdr/{body['call_id']}", headers=AUTH)).json())["call"]
    assert (cdr["customer_id"], cdr["status"]) == ("KH7", "ANSWERED")
    assert (await stored(gateway.app).get_call("default", body["call_id"]))["customer_id"] == "KH7"


async def test_cdr_list_filters_by_customer_id(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=0.01)
    ids = {}
    for n, (customer, ext) in enumerate((("KH1", "101"), ("KH2", "102"), ("KH1", "103"), (None, "104"))):
        params = {"ext": ext, "phone": f"089900{n}"} | ({"customer_id": customer} if customer else {})
        status, body = await v1(gateway, "/v1/click2call", **params)
        assert status == 200, body
        ids.setdefault(customer, []).append(body["call_id"])
    assert await gateway.app[REGISTRY].wait_empty(3)
    await stored(gateway.app).list_calls("default")                   # every CDR written
    listed = await (await gateway.get("/v1/cdr", params={"customer_id": "KH1", "page": "1"}, headers=AUTH)).json()
    assert listed["total"] == 2 and {c["call_id"] for c in listed["data"]} == set(ids["KH1"])
    assert all(c["customer_id"] == "KH1" for c in listed["data"])
    both = await (await gateway.get("/v1/cdr", params={"customer_id": "KH1", "extension": "103", "page": "1"},
                                    headers=AUTH)).json()
    assert [c["call_id"] for c in both["data"]] == [ids["KH1"][1]]
    scrolled = await (await gateway.get("/v1/cdr", params={"customer_id": "KH1"}, headers=AUTH)).json()
    assert {c["call_id"] for c in scrolled["data"]} == set(ids["KH1"]) and scrolled["scroll_id"]
    resp = await gateway.get("/v1/cdr", params={"scroll_id": scrolled["scroll_id"]}, headers=AUTH)
    assert (resp.status, (await resp.json())["data"]) == (200, [])      # the scroll goes on, to its end
    assert (await (await gateway.get("/v1/cdr", params={"page": "1"}, headers=AUTH)).json())["total"] == 4
    other = await (await gateway.get("/v1/cdr", params={"customer_id": "KH1", "page": "1"},
                                     headers={"Authorization": f"Bearer {OTHER_TOKEN}"})).json()
    assert other["total"] == 0                                        # another tenant's customer
    for query in ("customer_id=KH1&customer_id=KH2", "customer_id=KH%201", "customer_id=" + "K" * 65):
        resp = await gateway.get(f"/v1/cdr?{query}", headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["error"]) == (400, "INVALID_PARAMS") and body["message"].startswith("customer_id: ")


async def test_customer_id_survives_a_restart_in_the_live_calls_facts(aiohttp_client, fake_ami, tmp_path):
    fake_ami.default_behaviour = TALKING
    config = gateway_config(fake_ami.port, storage={"path": str(tmp_path / "c2c.sqlite3")})
    first = await aiohttp_client(create_app(config))
    assert await first.app[AMI].wait_ready(3)
    steps = Steps(first.app)
    status, body, _ = await v2(first, {"id": "KH-restart", "mobile": "0899", "agent": "101"})
    assert status == 200
    call_id = body["call_id"]
    await steps.until(call_id, "number_answered")
    await first.close()                                  # SIGTERM: the call is left to the next start
    assert fake_ami.live_channels

    second = await aiohttp_client(create_app(config))
    assert await second.app[AMI].wait_ready(3)
    registry, reconciler = second.app[REGISTRY], second.app[RECONCILER]
    while any(c.unobserved_since for c in registry.live()):
        assert await reconciler.wait_run(reconciler.runs + 1, 3)
    again = registry.get(call_id)
    assert again is not None and again.customer_id == "KH-restart"
    live = (await (await second.get(f"/v1/calls/{call_id}", headers=AUTH)).json())["call"]
    assert live["customer_id"] == "KH-restart" and live["state"] == "number_answered"
    assert (await second.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    assert await registry.wait_empty(3)
    record = await stored(second.app).get_call("default", call_id)
    assert (record["customer_id"], record["status"]) == ("KH-restart", "ANSWERED")


async def test_v2_body_past_client_max_size_is_413_in_the_v2_shape(make_gateway, fake_ami):
    client = await make_gateway(http={"client_max_size": 1024})
    status, answer, _ = await v2(client, json.dumps({"id": "KH1", "mobile": "0899", "agent": "101",
                                                     "pad": "x" * 4096}))
    assert (status, answer["code"], answer["error"]) == (413, "1", "INVALID_PARAMS"), answer
    assert answer["message"] == "body: larger than 1024 bytes" and fake_ami.actions_named("Originate") == []
