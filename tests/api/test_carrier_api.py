"""The carrier's CDR and live-call API: page and scroll envelopes, signed scroll ids, carrier
dates in api.timezone, cause names, one CDR by call_id or SIP Call-ID, the live-call list."""
import asyncio
import base64
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from openapi_schema_validator import OAS30Validator

from c2c_ami.api.openapi import build_openapi
from c2c_ami.app_keys import STORAGE
from c2c_ami.calls.record import NAMES
from c2c_ami.carrier import carrier_time, cause_name, date_bound
from c2c_ami.config import ConfigError
from c2c_ami.store import CallWrite
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, gateway_config

OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
CARRIER_KEYS = ["id", "call_id", "sip_call_id", "cause", "cause_code", "duration", "billsec", "direction",
                "recording_url", "extension", "from_number", "to_number", "receive_dest", "hotline",
                "time_started", "time_answered", "time_ended", "status", "customer_id"]
CARRIER_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def cdr(call_id, started="2021-02-18T10:20:58.300+00:00", tenant="default", **kw):
    record = dict.fromkeys(NAMES)
    record.update(call_id=call_id, tenant=tenant, direction="outbound", extension="101", from_number="101",
                  to_number="0899888999", hotline="02873001234", trunk="hotline-trunk", state="ended",
                  status="ANSWERED", cause="16", cause_txt="Normal Clearing", time_started=started,
                  time_ext_answered=started, time_answered=started, time_ended=started, duration=7, billsec=5,
                  pbx="default", ended_unobserved=False)
    record.update(kw)
    return record


async def seed(client, *records):
    await client.app[STORAGE].save_call_writes(
        [CallWrite(r["call_id"], r["tenant"], "default", record=r) for r in records])


@pytest.fixture
async def hcm(make_gateway):
    """A gateway whose carrier times are in Asia/Ho_Chi_Minh (UTC+7, no DST)."""
    return await make_gateway(api={"timezone": "Asia/Ho_Chi_Minh"})


def schema_errors(name, value):
    """What in ``value`` the OpenAPI document's schema ``name`` (without $refs) refuses."""
    schema = build_openapi()["components"]["schemas"][name]
    return [e.message for e in OAS30Validator(schema).iter_errors(value)]


async def get_json(client, path, params=None, headers=AUTH):
    resp = await client.get(path, params=params, headers=headers)
    return resp.status, await resp.json()


# ---- the carrier's formats -----------------------------------------------------------------

def test_carrier_times_are_local_to_the_second_and_empty_for_none():
    assert carrier_time("2021-02-18T10:20:58.999+00:00", HCM) == "2021-02-18 17:20:58"
    assert carrier_time("2021-02-18T23:00:00.000+00:00", HCM) == "2021-02-19 06:00:00"
    assert carrier_time(datetime(2021, 2, 18, 10, 20, 58, tzinfo=UTC).timestamp(), UTC) == "2021-02-18 10:20:58"
    assert carrier_time(None, HCM) == "" and carrier_time("", HCM) == ""


def test_date_filters_become_utc_bounds_start_inclusive_end_inclusive_to_the_second():
    assert date_bound("2021-02-18 17:20:58", HCM, end=False) == "2021-02-18T10:20:58.000+00:00"
    assert date_bound("2021-02-18 17:20:58", HCM, end=True) == "2021-02-18T10:20:59.000+00:00"
    assert date_bound("2021-02-18", HCM, end=False) == "2021-02-17T17:00:00.000+00:00"
    assert date_bound("2021-02-18", HCM, end=True) == "2021-02-18T17:00:00.000+00:00"   # the whole day
    assert date_bound("2021-02-18T10:20:58Z", HCM, end=False) == "2021-02-18T10:20:58.000+00:00"
    assert date_bound("2021-02-18T12:20:58+02:00", HCM, end=True) == "2021-02-18T10:20:59.000+00:00"
    for bad in ("2021-02-30", "18/02/2021", "2021-02-18 25:00:00", "20210218", "yesterday", "2021-02-18 17:20:58 +7"):
        with pytest.raises(ValueError):
            date_bound(bad, HCM, end=False)


@pytest.mark.parametrize("code, name", [
    ("16", "NORMAL_CLEARING"), ("17", "USER_BUSY"), ("18", "NO_USER_RESPONSE"), ("19", "NO_ANSWER"),
    ("21", "CALL_REJECTED"), ("34", "NORMAL_CIRCUIT_CONGESTION"), ("1", "UNALLOCATED_NUMBER"), ("250", "UNKNOWN"),
    (None, "")])
def test_cause_names(code, name):
    assert cause_name(code) == name


def test_api_timezone_defaults_to_utc_and_a_bad_one_names_the_key():
    assert gateway_config(5038).api.timezone == "UTC"
    assert gateway_config(5038, api={"timezone": "Asia/Ho_Chi_Minh"}).api.timezone == "Asia/Ho_Chi_Minh"
    for bad in ("Mars/Olympus_Mons", "", "../../etc/passwd", 7, "Asia"):
        with pytest.raises(ConfigError, match=r"^api\.timezone: "):
            gateway_config(5038, api={"timezone": bad})


# ---- GET /v1/cdr: pages ----------------------------------------------------------------------

async def test_a_page_has_the_carriers_envelope_and_records(hcm):
    await seed(hcm, cdr("c1", sip_call_id="abc@10.0.0.1", time_answered=None, status="BUSY", cause="17"),
               cdr("c2", started="2021-02-18T10:21:00.000+00:00"))
    status, body = await get_json(hcm, "/v1/cdr", {"page": "1", "limit": "10"})
    assert status == 200
    assert set(body) == {"data", "total", "page", "limit", "offset", "status", "total_exact", "cdrs"}
    assert (body["total"], body["page"], body["limit"], body["offset"]) == (2, 1, 10, 0)
    assert [r["id"] for r in body["data"]] == ["c2", "c1"]
    record = body["data"][1]
    assert list(record)[:len(CARRIER_KEYS)] == CARRIER_KEYS
    assert {k: record[k] for k in CARRIER_KEYS} == {
        "id": "c1", "call_id": "c1", "sip_call_id": "abc@10.0.0.1", "cause": "USER_BUSY", "cause_code": 17,
        "duration": 7, "billsec": 5, "direction": "outbound", "recording_url": "", "extension": "101",
        "from_number": "101", "to_number": "0899888999", "receive_dest": "", "hotline": "02873001234",
        "time_started": "2021-02-18 17:20:58", "time_answered": "", "time_ended": "2021-02-18 17:20:58",
        "status": "BUSY", "customer_id": None}
    assert record["time_started_utc"] == "2021-02-18T10:20:58.300+00:00" and record["time_answered_utc"] is None
    assert record["time_ext_answered"] == "2021-02-18 17:20:58" and record["cause_txt"] == "Normal Clearing"
    assert record["tenant"] == "default" and record["trunk"] == "hotline-trunk"
    assert schema_errors("CarrierCdr", record) == [] and schema_errors("CarrierCdr", body["data"][0]) == []
    # the earlier answer, unchanged, as extras
    assert body["status"] == "success" and body["total_exact"] is True
    assert body["cdrs"][1]["cause"] == "17" and body["cdrs"][1]["time_started"] == "2021-02-18T10:20:58.300+00:00"


async def test_offset_replaces_page(gateway):
    await seed(gateway, *(cdr(f"c{i}", started=f"2024-05-01T10:00:{i:02d}.000+00:00") for i in range(7)))
    _, body = await get_json(gateway, "/v1/cdr", {"offset": "2", "limit": "3"})
    assert [r["id"] for r in body["data"]] == ["c4", "c3", "c2"]
    assert (body["total"], body["page"], body["limit"], body["offset"]) == (7, 1, 3, 2)
    _, body = await get_json(gateway, "/v1/cdr", {"offset": "6", "limit": "3", "page": "1"})
    assert [r["id"] for r in body["data"]] == ["c0"] and body["page"] == 3
    _, body = await get_json(gateway, "/v1/cdr", {"page": "2", "limit": "3"})
    assert [r["id"] for r in body["data"]] == ["c3", "c2", "c1"] and body["offset"] == 3
    status, body = await get_json(gateway, "/v1/cdr", {"offset": "-1"})
    assert status == 400 and body["message"].startswith("offset:")


# ---- GET /v1/cdr: the scroll -------------------------------------------------------------------

async def scroll_all(client, params=None, headers=AUTH, then=None):
    """Every batch of a scroll until data is empty: (batch sizes, rows)."""
    sizes, rows = [], []
    status, body = await get_json(client, "/v1/cdr", params, headers)
    while True:
        assert status == 200 and set(body) == {"data", "scroll_id", "status", "cdrs"}, body
        sizes.append(len(body["data"]))
        rows += body["data"]
        if not body["data"]:
            assert body["scroll_id"] == ""
            return sizes, rows
        status, body = await get_json(client, "/v1/cdr", {"scroll_id": body["scroll_id"], **(then or {})}, headers)


async def test_a_scroll_reads_every_row_once_in_order_also_across_equal_times(gateway):
    # 120 CDRs, four at a time share a time_started: batches of 50 end inside such groups
    rows = [cdr(f"c{(i * 37) % 120:03d}", started=f"2024-05-01T10:{i // 4:02d}:00.000+00:00") for i in range(120)]
    await seed(gateway, *rows, cdr("theirs", tenant="other", extension="201"))
    sizes, got = await scroll_all(gateway)
    assert sizes == [50, 50, 20, 0]
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == 120 and set(ids) == {r["call_id"] for r in rows}
    expected = sorted(rows, key=lambda r: (r["time_started"], r["call_id"]), reverse=True)
    assert ids == [r["call_id"] for r in expected]
    sizes, again = await scroll_all(gateway, then={"limit": "7"})     # limit again: the batch size
    assert sizes == [50, *[7] * 10, 0] and [r["id"] for r in again] == ids


async def test_a_scroll_keeps_its_filters_and_a_new_call_moves_nothing(gateway):
    rows = [cdr(f"c{i:03d}", started=f"2024-05-01T10:00:{i % 60:02d}.{i:03d}+00:00",
                extension="102" if i % 2 else "101") for i in range(130)]
    await seed(gateway, *rows)
    status, first = await get_json(gateway, "/v1/cdr", {"extension": "102"})
    assert status == 200 and len(first["data"]) == 50
    await seed(gateway, cdr("newest", started="2024-05-02T00:00:00.000+00:00", extension="102"))
    seen = [r["id"] for r in first["data"]]
    scroll_id = first["scroll_id"]
    while scroll_id:
        status, body = await get_json(gateway, "/v1/cdr", {"scroll_id": scroll_id})
        assert status == 200
        seen += [r["id"] for r in body["data"]]
        assert all(r["extension"] == "102" for r in body["data"])
        scroll_id = body["scroll_id"]
    assert sorted(seen) == sorted(r["call_id"] for r in rows if r["extension"] == "102")
    # the same filters may be given again; others may not, nor a page
    status, body = await get_json(gateway, "/v1/cdr", {"scroll_id": first["scroll_id"], "extension": "102"})
    assert status == 200 and body["data"]
    for extra in ({"extension": "101"}, {"status": "BUSY"}, {"page": "2"}, {"offset": "5"}):
        status, body = await get_json(gateway, "/v1/cdr", {"scroll_id": first["scroll_id"], **extra})
        assert (status, body["error"]) == (400, "INVALID_PARAMS") and body["message"].startswith("scroll_id:")


def _edit_payload(scroll_id, change):
    payload, _, mac = scroll_id.partition(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = base64.urlsafe_b64encode(change(raw)).rstrip(b"=").decode()
    return f"{edited}.{mac}"


async def test_a_garbled_forged_or_other_tenants_scroll_id_is_refused(gateway):
    await seed(gateway, *(cdr(f"c{i:03d}", started=f"2024-05-01T10:00:{i % 60:02d}.{i:03d}+00:00")
                          for i in range(60)),
               *(cdr(f"t{i:03d}", tenant="other", extension="201", started=f"2024-05-01T11:00:{i:02d}.000+00:00")
                 for i in range(55)))
    _, mine = await get_json(gateway, "/v1/cdr")
    _, theirs = await get_json(gateway, "/v1/cdr", headers=OTHER)
    assert mine["scroll_id"] and theirs["scroll_id"] and all(r["id"].startswith("t") for r in theirs["data"])
    forged = [
        "garbage", "a.b", "." + mine["scroll_id"].split(".")[1], mine["scroll_id"] + "x", mine["scroll_id"][:-2],
        mine["scroll_id"].replace(".", ".A", 1), "é" * 10, "x" * 2000,
        _edit_payload(mine["scroll_id"], lambda raw: raw.replace(b'"c":"c', b'"c":"d')),   # another position
        _edit_payload(mine["scroll_id"], lambda raw: raw.replace(b'"n":50', b'"n":500')),
        theirs["scroll_id"],                         # made for the other tenant
    ]
    for scroll_id in forged:
        status, body = await get_json(gateway, "/v1/cdr", {"scroll_id": scroll_id})
        assert (status, body["error"]) == (400, "INVALID_PARAMS"), scroll_id
        assert body["message"].startswith("scroll_id:")
    # each tenant's own scroll id goes on with its own rows only
    _, rest = await get_json(gateway, "/v1/cdr", {"scroll_id": theirs["scroll_id"]}, headers=OTHER)
    assert [r["id"] for r in rest["data"]] == [f"t{i:03d}" for i in range(4, -1, -1)]
    status, body = await get_json(gateway, "/v1/cdr", {"scroll_id": mine["scroll_id"]}, headers=OTHER)
    assert status == 400 and body["message"].startswith("scroll_id:")


async def test_an_extension_token_scroll_stays_on_its_extension(make_gateway):
    # an api key and a token for ext 101 only (POST /v1/auth/token)
    client = await make_gateway(tenants=[
        {"domain": "default", "tokens": ["dev-token-change-me"], "api_keys": ["api-key-0123456789"],
         "endpoint": "PJSIP/{ext}",
         "context": "c2c-outbound", "extensions": "^1[0-9]{2}$", "hotlines": {"02873001234": "hotline-trunk"}}])
    await seed(client, *(cdr(f"c{i:03d}", started=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.000+00:00",
                             extension="101" if i % 3 else "102") for i in range(150)))
    issued = await (await client.post("/v1/auth/token", json={"api_key": "api-key-0123456789", "ext": "101"})).json()
    scoped = {"Authorization": f"Bearer {issued['data']['token']}"}
    _, rows = await scroll_all(client, headers=scoped)
    assert len(rows) == 100 and {r["extension"] for r in rows} == {"101"}
    _, tenant_wide = await get_json(client, "/v1/cdr", {"extension": "102"})     # another extension's scroll
    status, body = await get_json(client, "/v1/cdr", {"scroll_id": tenant_wide["scroll_id"]}, headers=scoped)
    assert (status, body["error"]) == (403, "FORBIDDEN")


# ---- GET /v1/cdr: filters ------------------------------------------------------------------

async def test_carrier_dates_are_read_in_the_api_timezone(hcm):
    await seed(hcm, cdr("it"))                       # 2021-02-18 10:20:58.300 UTC = 17:20:58 in Ho Chi Minh City

    async def ids(**params):
        status, body = await get_json(hcm, "/v1/cdr", {**params, "limit": "50"})
        assert status == 200, body
        return [r["id"] for r in body["data"]]
    assert await ids(start_date="2021-02-18 17:20:58") == ["it"]
    assert await ids(start_date="2021-02-18 17:20:59") == []
    assert await ids(end_date="2021-02-18 17:20:58") == ["it"]            # inclusive to the second
    assert await ids(end_date="2021-02-18 17:20:57") == []
    assert await ids(start_date="2021-02-18", end_date="2021-02-18") == ["it"]   # the whole day
    assert await ids(end_date="2021-02-17") == [] and await ids(start_date="2021-02-19") == []
    assert await ids(start_date="2021-02-18T10:20:58Z", end_date="2021-02-18T10:20:58+00:00") == ["it"]
    assert await ids(start_date="2021-02-18T17:20:59+07:00") == []
    # the scroll reads them the same way
    _, body = await get_json(hcm, "/v1/cdr", {"start_date": "2021-02-18 17:20:58", "end_date": "2021-02-18"})
    assert [r["id"] for r in body["data"]] == ["it"] and body["data"][0]["time_started"] == "2021-02-18 17:20:58"
    for bad in ("2021-02-30", "18-02-2021", "2021-02-18T17:20:58 07:00", "now"):
        status, body = await get_json(hcm, "/v1/cdr", {"start_date": bad})
        assert status == 400 and body["message"].startswith("start_date:")


async def test_utc_is_the_default_timezone(gateway):
    await seed(gateway, cdr("it"))
    _, body = await get_json(gateway, "/v1/cdr", {"start_date": "2021-02-18 10:20:58",
                                                  "end_date": "2021-02-18 10:20:58"})
    assert [r["time_started"] for r in body["data"]] == ["2021-02-18 10:20:58"]


async def test_direction_filter(gateway):
    await seed(gateway, cdr("c1"), cdr("c2", started="2021-02-18T10:21:00.000+00:00"))
    for params, expected in (({}, ["c2", "c1"]), ({"direction": "outbound"}, ["c2", "c1"]),
                             ({"direction": "inbound"}, [])):
        for mode in ({"page": "1"}, {}):
            status, body = await get_json(gateway, "/v1/cdr", {**params, **mode})
            assert status == 200 and [r["id"] for r in body["data"]] == expected
    _, body = await get_json(gateway, "/v1/cdr", {"direction": "inbound", "limit": "5"})
    assert (body["total"], body["total_exact"]) == (0, True)
    for bad in ("local", "OUTBOUND", "both"):
        status, body = await get_json(gateway, "/v1/cdr", {"direction": bad})
        assert status == 400 and body["message"].startswith("direction:")


async def test_cause_names_and_codes_in_records(gateway):
    causes = {"16": "NORMAL_CLEARING", "17": "USER_BUSY", "19": "NO_ANSWER", "21": "CALL_REJECTED",
              "127": "INTERWORKING"}
    await seed(gateway, *(cdr(f"c{code}", cause=code) for code in causes), cdr("none", cause=None))
    _, body = await get_json(gateway, "/v1/cdr", {"limit": "10"})
    got = {r["id"]: (r["cause"], r["cause_code"]) for r in body["data"]}
    assert got == {**{f"c{code}": (name, int(code)) for code, name in causes.items()}, "none": ("", None)}


# ---- GET /v1/cdr/{id} ------------------------------------------------------------------------

async def test_one_cdr_by_call_id_or_sip_call_id_is_the_bare_record(hcm):
    sip = "a84b4c76e66710@pc33.atlanta.example.com"
    await seed(hcm, cdr("c1", sip_call_id=sip, time_answered=None, status="NO ANSWER", cause="19"),
               cdr("t1", tenant="other", extension="201", sip_call_id="theirs@x"))
    by_id = await get_json(hcm, "/v1/cdr/c1")
    by_sip = await get_json(hcm, f"/v1/cdr/{quote(sip, safe='')}")
    assert by_id == by_sip and by_id[0] == 200
    body = by_id[1]
    assert list(body)[:len(CARRIER_KEYS)] == CARRIER_KEYS
    assert (body["id"], body["sip_call_id"], body["status"], body["cause"], body["cause_code"]) == (
        "c1", sip, "NO ANSWER", "NO_ANSWER", 19)
    assert (body["time_started"], body["time_answered"]) == ("2021-02-18 17:20:58", "")
    assert body["call"]["call_id"] == "c1" and body["call"]["cause"] == "19"        # the earlier answer
    for path, headers in (("/v1/cdr/theirs%40x", AUTH), ("/v1/cdr/t1", AUTH), ("/v1/cdr/c1", OTHER),
                          (f"/v1/cdr/{quote(sip, safe='')}", OTHER), ("/v1/cdr/nope", AUTH)):
        resp = await hcm.get(path, headers=headers)
        assert resp.status == 404 and (await resp.json())["error"] == "CALL_NOT_FOUND", path
    resp = await hcm.get("/v1/cdr/" + "a" * 300, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["message"].startswith("id:")


# ---- GET /v1/call ----------------------------------------------------------------------------

async def test_live_calls_have_the_carriers_shape(hcm, fake_ami):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=30)
    waiting = asyncio.create_task(hcm.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH))
    call_id = (await fake_ami.wait_for_action("Originate"))["ActionID"]
    status, body = await get_json(hcm, "/v1/call")
    assert status == 200 and set(body) == {"data", "total", "status", "calls"} and body["total"] == 1
    (live,) = body["data"]
    assert list(live)[:10] == ["call_id", "context", "created_time", "destination", "direction", "ip", "source",
                               "state", "hotline", "customer_id"]
    assert (live["call_id"], live["context"], live["destination"], live["direction"], live["source"],
            live["hotline"], live["customer_id"]) == (call_id, "default", "0899", "outbound", "101",
                                                      "02873001234", None)
    assert live["state"] in ("CS_INIT", "CS_ROUTING") and live["call_state"] in ("originating", "ext_ringing")
    started = datetime.fromisoformat(live["created_time_utc"])
    assert CARRIER_TIME.fullmatch(live["created_time"])
    assert live["created_time"] == (started.replace(microsecond=0) + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    assert body["calls"] == [{"call_id": call_id, "source": "101", "destination": "0899", "direction": "outbound",
                              "state": live["call_state"], "created_time": live["created_time_utc"],
                              "hotline": "02873001234"}]
    assert schema_errors("LiveCalls", body) == []
    assert (await get_json(hcm, "/v1/call", headers=OTHER))[1]["data"] == []
    assert (await hcm.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200
    assert (await asyncio.wait_for(waiting, 3)).status == 409
