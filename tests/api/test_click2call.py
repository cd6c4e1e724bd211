"""The HTTP API end to end against the fake AMI: answers, errors and what reached AMI."""
import asyncio
import threading

import pytest

from c2c_ami.app_keys import AMI, REGISTRY, STORAGE
from c2c_ami.auto_answer import BUILT_IN
from c2c_ami.testing.fake_ami import ALL_CLASSES, Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, stored


async def get(client, path, headers=AUTH, **params):
    resp = await client.get(path, params=params, headers=headers)
    return resp.status, await resp.json(), resp


async def test_sync_returns_success_when_extension_answers(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)
    status, body, _ = await get(gateway, "/v1/click2call", ext="101", phone="0899 098 899")
    assert status == 200 and body["status"] == "success"
    originate = fake_ami.actions_named("Originate")[0]
    assert originate["ActionID"] == originate["ChannelId"] == body["call_id"]
    assert originate["Channel"] == "PJSIP/101" and originate["Exten"] == "0899098899"
    assert originate["Context"] == "c2c-outbound" and originate["Priority"] == "1"
    assert originate["Async"] == "true" and originate["CallerID"] == '"Click2Call" <101>'
    assert dict(originate.variables) == {
        "C2C_CALL_ID": body["call_id"], "C2C_EXT": "101", "C2C_PHONE": "0899098899",
        "C2C_HOTLINE": "02873001234", "C2C_TRUNK": "hotline-trunk",
        "C2C_DEST_CID_NAME": "02873001234", "C2C_DEST_CID_NUMBER": "02873001234",
        "C2C_DIAL_TIMEOUT": "60"}


async def test_given_caller_ids_hotline_and_auto_answer_reach_the_originate(gateway, fake_ami):
    status, body, _ = await get(gateway, "/v1/click2call/async", ext="102", phone="0899",
                                src_cid_name="Nguyễn Văn A", src_cid_number="+8428",
                                dest_cid_name="Shop", dest_cid_number="19001234",
                                hotline="02873005678", auto_answer="yes")
    assert status == 200
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["CallerID"] == '"Nguyễn Văn A" <+8428>'
    variables = dict(originate.variables)
    assert variables["C2C_HOTLINE"] == "02873005678" and variables["C2C_TRUNK"] == "hotline-trunk-2"
    assert variables["C2C_DEST_CID_NAME"] == "Shop" and variables["C2C_DEST_CID_NUMBER"] == "19001234"
    assert variables["PJSIP_HEADER(add,Call-Info)"].endswith(";answer-after=0")
    assert "alert-autoanswer" in variables["PJSIP_HEADER(add,Alert-Info)"]


async def test_no_auto_answer_headers_unless_asked(gateway, fake_ami):
    await get(gateway, "/v1/click2call/async", ext="101", phone="0899", auto_answer="false")
    originate = await fake_ami.wait_for_action("Originate")
    assert not [name for name, _ in originate.variables if name.startswith("PJSIP_HEADER")]


async def test_auto_answer_sends_the_standard_bundle_in_order(gateway, fake_ami):
    await get(gateway, "/v1/click2call/async", ext="101", phone="0899", auto_answer="true")
    originate = await fake_ami.wait_for_action("Originate")
    assert [v for v in originate["Variable"] if v.startswith("PJSIP_HEADER")] == [
        "PJSIP_HEADER(add,Call-Info)=<sip:127.0.0.1>;answer-after=0",
        "PJSIP_HEADER(add,Alert-Info)=<http://127.0.0.1>;info=alert-autoanswer;delay=0",
        "PJSIP_HEADER(add,Answer-Mode)=Auto",
        "PJSIP_HEADER(add,P-Auto-answer)=normal",
        "PJSIP_HEADER(add,Answer-After)=0"]


def tenant_with(**changes):
    return {"domain": "default", "tokens": ["dev-token-change-me"], "context": "c2c-outbound",
            "extensions": "^1[0-9]{2}$",
            "hotlines": {"02873001234": "hotline-trunk"}, **changes}


async def test_a_tenants_bundle_reaches_ami_with_a_repeated_header_twice_in_order(make_gateway, fake_ami):
    client = await make_gateway(
        calls={"auto_answer_bundles": {"two-alerts": [["Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer"],
                                                      ["Answer-Mode", "Auto"], ["Alert-Info", "Ring Answer"]]}},
        tenants=[tenant_with(auto_answer="two-alerts")])
    await get(client, "/v1/click2call/async", ext="101", phone="0899", auto_answer="1")
    originate = await fake_ami.wait_for_action("Originate")
    assert [v for v in originate["Variable"] if "HEADER" in v] == [
        "PJSIP_HEADER(add,Alert-Info)=<http://127.0.0.1>;info=alert-autoanswer",
        "PJSIP_HEADER(add,Answer-Mode)=Auto",
        "PJSIP_HEADER(add,Alert-Info)=Ring Answer"]


async def test_chan_sip_tenants_get_sipaddheader_lines(make_gateway, fake_ami):
    client = await make_gateway(calls={"auto_answer": "legacy"}, tenants=[tenant_with(endpoint="SIP/{ext}")])
    await get(client, "/v1/click2call/async", ext="101", phone="0899", auto_answer="yes")
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["Channel"] == "SIP/101"
    assert [v for v in originate["Variable"] if "HEADER" in v] == [
        "SIPADDHEADER01=Call-Info: <sip:127.0.0.1>;answer-after=0",
        "SIPADDHEADER02=Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0"]


async def test_bundle_none_sends_no_header_even_when_asked(make_gateway, fake_ami):
    client = await make_gateway(tenants=[tenant_with(auto_answer="none")])
    status, _, _ = await get(client, "/v1/click2call/async", ext="101", phone="0899", auto_answer="true")
    assert status == 200
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["Variable"] and not [v for v in originate["Variable"] if "HEADER" in v]


async def test_async_returns_before_the_extension_answers(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=30)
    status, body, _ = await get(gateway, "/v1/click2call/async", ext="101", phone="0899")
    assert status == 200 and body["status"] == "success"
    call = gateway.app[REGISTRY].get(body["call_id"])
    assert call is not None and not call.outcome_known.is_set()


@pytest.mark.parametrize("behaviour, code, http", [
    (Behaviour("reject"), "USER_BUSY", 409),
    (Behaviour("no_answer", ring_timeout=0.05), "NO_ANSWER", 409),
    (Behaviour("unregistered"), "USER_NOT_REGISTERED", 404),
    (Behaviour("congestion"), "CALL_FAILED", 502),
])
async def test_sync_failures_carry_code_and_call_id(gateway, fake_ami, behaviour, code, http):
    fake_ami.default_behaviour = behaviour
    status, body, _ = await get(gateway, "/v1/click2call", ext="101", phone="0899")
    assert (status, body["status"], body["error"]) == (http, "fail", code)
    assert body["call_id"] == fake_ami.actions_named("Originate")[0]["ActionID"]
    assert len(gateway.app[REGISTRY]) == 0


@pytest.mark.parametrize("state, code", [("UNAVAILABLE", "USER_NOT_REGISTERED"),
                                         ("INVALID", "USER_NOT_REGISTERED"),
                                         ("INUSE", "USER_BUSY"), ("RINGING", "USER_BUSY")])
async def test_device_precheck_refuses_without_originating(gateway, fake_ami, state, code):
    fake_ami.device_states["PJSIP/101"] = state
    status, body, _ = await get(gateway, "/v1/click2call/async", ext="101", phone="0899")
    assert body["error"] == code and "call_id" not in body
    assert fake_ami.actions_named("Originate") == []
    assert fake_ami.actions_named("Getvar")[0]["Variable"] == ["DEVICE_STATE(PJSIP/101)"]
    assert (await stored(gateway.app).list_calls("default")) == ([], 0, True)  # no call, so no CDR


async def test_two_concurrent_requests_never_ring_one_extension_twice(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.2, dial="none", talk_time=None)
    first, second = await asyncio.gather(
        get(gateway, "/v1/click2call", ext="101", phone="0899"),
        get(gateway, "/v1/click2call", ext="101", phone="0900"))
    outcomes = sorted([first[1].get("error", "success"), second[1].get("error", "success")])
    assert outcomes == ["USER_BUSY", "success"]
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_double_click_returns_the_first_call_id(gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.1, dial="none", talk_time=None)
    first, second = await asyncio.gather(
        get(gateway, "/v1/click2call", ext="101", phone="0899"),
        get(gateway, "/v1/click2call", ext="101", phone="08-99"))
    assert first[1]["call_id"] == second[1]["call_id"]
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_idempotency_key_replays_the_answer(gateway, fake_ami):
    headers = {**AUTH, "Idempotency-Key": "crm-42"}
    a = await get(gateway, "/v1/click2call/async", headers=headers, ext="101", phone="0899")
    b = await get(gateway, "/v1/click2call/async", headers=headers, ext="101", phone="0899")
    assert a[1] == b[1] and a[1]["status"] == "success"
    c = await get(gateway, "/v1/click2call/async", headers=headers, ext="101", phone="0900")
    assert c[0] == 400 and c[1]["message"].startswith("Idempotency-Key")
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_two_idempotency_keys_are_refused(gateway, fake_ami):
    """Which one counts would depend on the proxy in front: neither is guessed at."""
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                             headers=[*AUTH.items(), ("Idempotency-Key", "crm-1"), ("Idempotency-Key", "crm-2")])
    body = await resp.json()
    assert (resp.status, body["error"], body["message"]) == (400, "INVALID_PARAMS",
                                                             "Idempotency-Key: given more than once")
    assert fake_ami.actions_named("Originate") == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}])
async def test_bad_token_is_401_with_www_authenticate(gateway, fake_ami, headers):
    status, body, resp = await get(gateway, "/v1/click2call", headers=headers, ext="101", phone="0899")
    assert (status, body["error"]) == (401, "UNAUTHORIZED")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert fake_ami.actions_named("Getvar") == []


@pytest.mark.parametrize("params, message", [
    ({"ext": "201", "phone": "0899"}, "ext:"),
    ({"ext": "101", "phone": "0899", "hotline": "02439990000"}, "hotline:"),
])
async def test_tenant_cannot_use_foreign_extension_or_hotline(gateway, fake_ami, params, message):
    status, body, _ = await get(gateway, "/v1/click2call", **params)
    assert (status, body["error"]) == (403, "FORBIDDEN") and body["message"].startswith(message)
    assert fake_ami.actions_named("Originate") == []


async def test_other_tenant_uses_its_own_extensions(gateway, fake_ami):
    headers = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    status, body, _ = await get(gateway, "/v1/click2call/async", headers=headers, ext="201", phone="0899")
    assert status == 200
    originate = await fake_ami.wait_for_action("Originate")
    assert dict(originate.variables)["C2C_TRUNK"] == "other-trunk"


async def test_invalid_params_is_400_naming_the_parameter(gateway, fake_ami):
    status, body, _ = await get(gateway, "/v1/click2call", ext="101", phone="abc")
    assert (status, body["error"]) == (400, "INVALID_PARAMS") and body["message"].startswith("phone:")


async def test_pbx_unavailable_answers_at_once_and_never_replays(gateway, fake_ami):
    await fake_ami.stop()
    status, body, resp = await get(gateway, "/v1/click2call", ext="101", phone="0899")
    assert (status, body["error"]) == (503, "PBX_UNAVAILABLE") and resp.headers["Retry-After"]
    assert len(gateway.app[REGISTRY]) == 0
    await fake_ami.start()
    assert await gateway.app[AMI].wait_ready(3)
    assert (await gateway.get("/readyz")).status == 200
    assert fake_ami.actions_named("Originate") == []


async def test_health_ready_and_metrics(gateway, fake_ami):
    assert (await gateway.get("/healthz")).status == 200
    ready = await gateway.get("/readyz")
    assert ready.status == 200 and (await ready.json())["ami"] == "ready"
    await get(gateway, "/v1/click2call", ext="101", phone="x")
    text = await (await gateway.get("/metrics")).text()
    assert 'c2c_requests_total{endpoint="sync",outcome="INVALID_PARAMS"} 1.0' in text
    assert 'c2c_ami_up{pbx="default"} 1.0' in text and 'c2c_calls_in_flight{pbx="default"} 0.0' in text


async def test_metrics_count_the_ami_events_the_pbx_sent(gateway, fake_ami):
    """Newchannel, Newstate Ringing, Newstate Up, OriginateResponse: what Asterisk sent, counted."""
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=None)
    before = gateway.app[AMI].events_received
    status, _, _ = await get(gateway, "/v1/click2call", ext="101", phone="0899")
    assert status == 200
    assert gateway.app[AMI].events_received - before >= 4
    text = await (await gateway.get("/metrics")).text()
    assert f'c2c_ami_events_received_total{{pbx="default"}} {float(gateway.app[AMI].events_received)}' in text


async def test_rate_limit_is_per_token_with_retry_after(make_gateway, fake_ami):
    client = await make_gateway(limits={"rate_per_minute": 1, "rate_burst": 2})
    statuses = [(await get(client, "/v1/click2call/async", ext="101", phone="0899"))[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, body, resp = await get(client, "/v1/click2call/async", ext="101", phone="0899")
    assert (status, body["error"]) == (429, "RATE_LIMITED") and int(resp.headers["Retry-After"]) >= 1
    other = await get(client, "/v1/click2call/async", headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
                      ext="201", phone="0899")
    assert other[0] == 200


async def test_click_limit_per_extension_counts_sync_and_async_with_retry_after(make_gateway, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=0.05, dial="none", talk_time=None)
    client = await make_gateway(limits={"per_extension_per_minute": 2})
    first = await get(client, "/v1/click2call/async", ext="101", phone="0899")
    again = await get(client, "/v1/click2call/async", ext="101", phone="0899")     # joins: not counted
    assert first[0] == again[0] == 200 and first[1]["call_id"] == again[1]["call_id"]
    busy = await get(client, "/v1/click2call", ext="101", phone="0899")             # would start one: counted
    assert (busy[0], busy[1]["error"]) == (409, "USER_BUSY")
    status, body, resp = await get(client, "/v1/click2call", ext="101", phone="0899")
    assert (status, body["error"]) == (429, "RATE_LIMITED") and resp.headers["Retry-After"] == "30"
    assert body["message"].startswith("click limit of this extension (2 per minute) exceeded")
    assert (await get(client, "/v1/click2call/async", ext="102", phone="0899"))[0] == 200
    assert len(fake_ami.actions_named("Originate")) == 2


async def test_click_limit_zero_is_off(make_gateway, fake_ami):
    client = await make_gateway(limits={"per_extension_per_minute": 0})
    statuses = {(await get(client, "/v1/click2call/async", ext="101", phone="0899"))[0] for _ in range(30)}
    assert statuses == {200} and len(fake_ami.actions_named("Originate")) == 1


async def test_tokens_and_ami_secret_never_reach_the_logs(make_gateway, fake_ami, caplog):
    caplog.set_level("DEBUG")
    client = await make_gateway()
    fake_ami.default_behaviour = Behaviour("answer", dial="none", talk_time=0.01)
    await get(client, "/v1/click2call", ext="101", phone="0899")
    await get(client, "/v1/click2call", headers={"Authorization": "Bearer guessed-token-123"}, ext="101", phone="0")
    await fake_ami.drop_connections()
    assert await client.app[AMI].wait_ready(3)
    text = caplog.text
    assert "call " in text and "AMI logged in" in text  # the logs did capture the flow
    for secret in (AUTH["Authorization"].split()[1], OTHER_TOKEN, "guessed-token-123", "change-me"):
        assert secret not in text


async def test_a_slow_cdr_query_never_holds_up_the_event_loop(make_gateway, fake_ami, tmp_path):
    """A CDR listing stuck in the database (held here until released) runs in a worker
    thread: meanwhile /healthz and another tenant's requests are answered."""
    client = await make_gateway(storage={"path": str(tmp_path / "c2c.sqlite3")})
    reader = client.app[STORAGE]._reader
    started, release, threads = threading.Event(), threading.Event(), []
    run = reader.run

    def slow(sql, args):
        threads.append(threading.current_thread())
        started.set()
        assert release.wait(10), "never released"
        return run(sql, args)
    reader.run = slow
    listing = asyncio.create_task(client.get("/v1/cdr", params={"phone": "0899", "limit": "50"}, headers=AUTH))
    try:
        assert await asyncio.to_thread(started.wait, 5), "the CDR query never started"
        assert (await client.get("/healthz")).status == 200
        other = await get(client, "/v1/call", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert other[0] == 200
        assert not listing.done()
    finally:
        release.set()
    resp = await asyncio.wait_for(listing, 5)
    body = await resp.json()
    assert (resp.status, body["total"], body["total_exact"], body["cdrs"]) == (200, 0, True, [])
    assert threads and threading.main_thread() not in threads


async def test_metrics_can_require_a_token(make_gateway, fake_ami):
    client = await make_gateway(metrics={"token": "scrape-token-0123456789"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, AUTH):     # a tenant's token is not it
        resp = await client.get("/metrics", headers=headers)
        assert (resp.status, (await resp.json())["error"]) == (401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert resp.status == 200 and "c2c_ami_up" in await resp.text()
    resp = await client.get("/metrics", headers=[("Authorization", "Bearer scrape-token-0123456789")] * 2)
    assert (resp.status, (await resp.json())["error"]) == (400, "INVALID_PARAMS")


@pytest.mark.parametrize("user_agent, headers", [
    ("PolycomVVX-VVX_450-UA/6.4.3", ["PJSIP_HEADER(add,Alert-Info)=Ring Answer"]),
    ("Yealink SIP-T46S 66.86.0.15", ["PJSIP_HEADER(add,Call-Info)=<sip:127.0.0.1>;answer-after=0"]),
    ("snom D785/10.1.54.13", ["PJSIP_HEADER(add,Alert-Info)=<http://127.0.0.1>;info=alert-autoanswer;delay=0"]),
    ("Acme Phone 1.0", ["PJSIP_HEADER(add,Answer-Mode)=Auto"]),                  # the config's own row
    ("Unknown SIP Phone", [f"PJSIP_HEADER(add,{n})={v}" for n, v in BUILT_IN["standard"]]),   # the fallback
])
async def test_auto_answer_by_user_agent_picks_the_phones_bundle(make_gateway, fake_ami, user_agent, headers):
    fake_ami.register_phone("PJSIP/101", user_agent)
    client = await make_gateway(calls={"auto_answer": "by_user_agent",
                                       "auto_answer_user_agents": {"^acme": "answer-mode"}}, tenants=[tenant_with()])
    await get(client, "/v1/click2call/async", ext="101", phone="0899", auto_answer="true")
    originate = await fake_ami.wait_for_action("Originate")
    assert [v for v in originate["Variable"] if "HEADER" in v] == headers


async def test_a_phone_that_rings_instead_of_answering_is_counted_per_user_agent(make_gateway, fake_ami):
    fake_ami.register_phone("PJSIP/101", "Fanvil X4U 2.12.1")
    fake_ami.register_phone("PJSIP/102", "Yealink SIP-T46S")
    fake_ami.behaviours["PJSIP/101"] = Behaviour("answer", ring_delay=1.3, talk_time=0)
    fake_ami.behaviours["PJSIP/102"] = Behaviour("answer", ring_delay=0.05, talk_time=0)
    client = await make_gateway(tenants=[tenant_with(auto_answer="by_user_agent")])
    records = {}
    for ext in ("101", "102"):
        status, body, _ = await get(client, "/v1/click2call", ext=ext, phone="0899", auto_answer="true")
        assert status == 200, body
        assert await client.app[REGISTRY].wait_empty(5)
        records[ext] = (await stored(client.app).get_call("default", body["call_id"]))["auto_answer_honoured"]
    assert records == {"101": False, "102": True}
    status, body, _ = await get(client, "/v1/click2call", ext="102", phone="0899")      # not asked
    assert await client.app[REGISTRY].wait_empty(5)
    assert (await stored(client.app).get_call("default", body["call_id"]))["auto_answer_honoured"] is None
    metrics = await (await client.get("/metrics")).text()
    assert 'c2c_auto_answer_total{honoured="false",user_agent="Fanvil X4U 2.12.1"} 1.0' in metrics
    assert 'c2c_auto_answer_total{honoured="true",user_agent="Yealink SIP-T46S"} 1.0' in metrics


async def test_readyz_shows_the_checks_findings_and_503_only_when_no_call_can_be_placed(make_gateway, fake_ami):
    fake_ami.dialplan = {"c2c-outbound": [("_X.", 1, "Hangup", "")]}
    fake_ami.device_states.update({"PJSIP/101": "NOT_INUSE", "PJSIP/201": "NOT_INUSE"})    # both tenants' phones
    client = await make_gateway(metrics={"token": "operator-token-0123456789"})
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ready"            # a dialplan mistake: other tenants work
    assert [line.split(" [")[0] for line in body["pbxs"][0]["findings"]] == [
        "the context 'c2c-outbound' never runs Dial with ${C2C_TRUNK}: the agent's phone rings, but the number is "
        "never dialled"]
    fake_ami.write_classes = frozenset({"call", "reporting"})        # the AMI user loses originate
    operator = {"Authorization": "Bearer operator-token-0123456789"}
    for headers in ({}, AUTH):
        assert (await client.get("/v1/pbx/check", headers=headers)).status == 401     # never a tenant's token
    checked = await (await client.get("/v1/pbx/check", headers=operator)).json()
    assert checked["status"] == "findings" and checked["pbxs"][0]["blocking"] is True
    assert [f["code"] for f in checked["pbxs"][0]["findings"]] == ["ami_permission", "context_no_dial"]
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["pbxs"][0]["detail"].startswith("the AMI user 'c2c' may not run Originate")
    fake_ami.write_classes = ALL_CLASSES
    fake_ami.dialplan = {"c2c-outbound": [("_X.", 1, "Dial", "PJSIP/${EXTEN}@${C2C_TRUNK}")]}
    assert (await (await client.get("/v1/pbx/check", headers=operator)).json())["status"] == "ok"
    resp = await client.get("/readyz")
    assert resp.status == 200 and "findings" not in (await resp.json())["pbxs"][0]
