"""CORS (``api.cors_origins``): preflights, the headers on answers and on failures, config.

The same in a real browser: tests/api/test_cors_browser.py.
"""
import copy

import pytest

from c2c_ami.config import ConfigError, parse_config
from tests.fixtures_gateway import AUTH
from tests.test_config import BASE

CRM = "https://crm.example.com"
LOCAL = "http://127.0.0.1:8000"
EVIL = "https://evil.example.net"
CORS = {"cors_origins": [CRM, LOCAL]}


def preflight(origin, method="GET", headers="authorization"):
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}


def cors_headers(resp):
    return {k: v for k, v in resp.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("origin", [CRM, LOCAL])
async def test_preflight_from_a_listed_origin_is_204_without_auth(make_gateway, fake_ami, origin):
    gateway = await make_gateway(api=CORS)
    resp = await gateway.options("/v1/click2call/async", headers=preflight(origin))
    assert resp.status == 204
    assert cors_headers(resp) == {
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "GET, POST, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, Last-Event-ID",
        "Access-Control-Max-Age": "600"}
    assert resp.headers["Vary"] == "Origin"
    assert fake_ami.actions_named("Originate") == []


async def test_preflight_from_another_origin_is_403_without_cors_headers(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS)
    for origin in (EVIL, "null", "https://crm.example.com:8443", "http://crm.example.com"):
        resp = await gateway.options("/v1/click2call/async", headers=preflight(origin))
        assert resp.status == 403 and cors_headers(resp) == {}, origin


async def test_preflights_are_not_rate_limited_nor_use_the_tokens_budget(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS, limits={"rate_per_minute": 1, "rate_burst": 1})
    for _ in range(20):
        assert (await gateway.options("/v1/calls/x", headers=preflight(CRM, "DELETE"))).status == 204
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                             headers={**AUTH, "Origin": CRM})
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == CRM


async def test_answers_to_a_listed_origin_carry_its_origin(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS)
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                             headers={**AUTH, "Origin": CRM})
    assert resp.status == 200 and (await resp.json())["call_id"]
    assert cors_headers(resp) == {"Access-Control-Allow-Origin": CRM,
                                  "Access-Control-Expose-Headers": "Retry-After, WWW-Authenticate"}
    assert resp.headers["Vary"] == "Origin"


async def test_answers_to_other_origins_and_to_no_origin_carry_no_cors_headers(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS)
    for headers in ({**AUTH, "Origin": EVIL}, AUTH):
        resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=headers)
        assert resp.status == 200 and cors_headers(resp) == {}
        assert resp.headers["Vary"] == "Origin"        # the answer depends on Origin: caches must know


async def test_failures_to_a_listed_origin_carry_the_cors_headers(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS, limits={"rate_per_minute": 1, "rate_burst": 1})
    origin = {"Origin": CRM}
    seen = {}
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101"}, headers=origin)   # no token
    seen[401] = resp
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "abc"}, headers={**AUTH, **origin})
    seen[400] = resp
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers={**AUTH, **origin})
    seen[429] = resp
    seen[404] = await gateway.get("/v1/nothing-here", headers=origin)               # aiohttp's own, raised
    seen[405] = await gateway.put("/v1/click2call", headers=origin)
    for status, resp in seen.items():
        assert resp.status == status
        assert resp.headers["Access-Control-Allow-Origin"] == CRM, status
        assert resp.headers["Vary"] == "Origin"
    assert seen[401].headers["WWW-Authenticate"] and seen[429].headers["Retry-After"]


async def test_pbx_unavailable_to_a_listed_origin_carries_the_cors_headers(make_gateway, fake_ami):
    gateway = await make_gateway(api=CORS)
    await fake_ami.stop()
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                             headers={**AUTH, "Origin": LOCAL})
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert resp.headers["Access-Control-Allow-Origin"] == LOCAL


async def test_without_cors_origins_nothing_changes(gateway, fake_ami):
    resp = await gateway.options("/v1/click2call/async", headers=preflight(CRM))
    assert resp.status == 405 and cors_headers(resp) == {}
    resp = await gateway.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"},
                             headers={**AUTH, "Origin": CRM})
    assert resp.status == 200 and cors_headers(resp) == {} and "Vary" not in resp.headers


def config_with(api):
    raw = copy.deepcopy(BASE)
    raw["api"] = api
    return parse_config(raw, {})


def test_cors_origins_default_to_none_and_are_kept_as_browsers_send_them():
    assert parse_config(copy.deepcopy(BASE), {}).api.cors_origins == ()
    config = config_with({"cors_origins": ["HTTPS://CRM.Example.com", "https://crm.example.com:443",
                                           "http://127.0.0.1:8000", "http://[0:0::1]:80", "http://localhost"]})
    assert config.api.cors_origins == ("https://crm.example.com", "https://crm.example.com",
                                       "http://127.0.0.1:8000", "http://[::1]", "http://localhost")


@pytest.mark.parametrize("api, where", [
    ({"cors_origins": ["*"]}, "api.cors_origins[0]: '[*]' is not allowed"),
    ({"cors_origins": [CRM, "https://crm.example.com/"]}, "api.cors_origins[1]: expected an origin"),
    ({"cors_origins": ["https://crm.example.com/app"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["crm.example.com"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["ftp://crm.example.com"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["https://user@crm.example.com"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["https://crm.example.com:70000"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["https://crm.example.com?x=1"]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": ["http://[1::2::3]"]}, "api.cors_origins[0]: .* is not an IPv6 address"),
    ({"cors_origins": [8000]}, "api.cors_origins[0]: expected an origin"),
    ({"cors_origins": CRM}, "api.cors_origins: expected a list"),
    ({"cors": [CRM]}, "api.cors: unknown key"),
])
def test_bad_cors_origins_name_the_key(api, where):
    with pytest.raises(ConfigError, match="^" + where.replace("s[", r"s\[").replace("]:", r"\]:")):
        config_with(api)
