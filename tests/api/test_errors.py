"""Every error is the failure body ``{"status": "fail", "error", "message"}``: the domain's
(api/errors.py's table) and aiohttp's own refusals (no route, a method not routed, a body too
large, a preflight from an origin not listed), with CORS headers where CORS applies."""
import pytest

from ..fixtures_gateway import AUTH

CRM = "https://crm.example.com"


@pytest.mark.parametrize("method, path, status, error, message", [
    ("GET", "/v1/nothing-here", 404, "NOT_FOUND", "no such endpoint (see GET /v1/openapi.json)"),
    ("GET", "/", 404, "NOT_FOUND", "no such endpoint"),
    ("PUT", "/v1/click2call", 405, "METHOD_NOT_ALLOWED", "PUT is not allowed here (allowed: GET"),
    ("GET", "/v2/click2call", 405, "METHOD_NOT_ALLOWED", "GET is not allowed here (allowed: POST)"),
])
@pytest.mark.parametrize("origin", [None, CRM])
async def test_aiohttp_routing_refusals_are_the_failure_body(make_gateway, fake_ami, method, path, status, error,
                                                           message, origin):
    gateway = await make_gateway(api={"cors_origins": [CRM]})
    resp = await gateway.request(method, path, headers={**AUTH, **({"Origin": origin} if origin else {})})
    body = await resp.json()
    assert (resp.status, body["status"], body["error"]) == (status, "fail", error)
    assert body["message"].startswith(message)
    assert resp.headers.get("Access-Control-Allow-Origin") == origin
    if status == 405:
        assert resp.headers["Allow"]


async def test_a_body_past_client_max_size_is_413_in_the_failure_body(make_gateway, fake_ami):
    gateway = await make_gateway(http={"client_max_size": 1000}, api={"cors_origins": [CRM]})
    resp = await gateway.post("/v1/event", data=b"y" * 2000, headers={**AUTH, "Origin": CRM})
    body = await resp.json()
    assert (resp.status, body["error"], body["message"]) == (413, "INVALID_PARAMS", "body: larger than 1000 bytes")
    assert resp.headers["Access-Control-Allow-Origin"] == CRM


async def test_a_preflight_from_an_origin_not_listed_is_403_in_the_failure_body(make_gateway, fake_ami):
    gateway = await make_gateway(api={"cors_origins": [CRM]})
    resp = await gateway.options("/v1/click2call", headers={"Origin": "https://evil.example",
                                                            "Access-Control-Request-Method": "GET"})
    body = await resp.json()
    assert (resp.status, body["error"]) == (403, "FORBIDDEN") and "Access-Control-Allow-Origin" not in resp.headers


def test_routing_codes_are_not_domain_codes():
    from c2c_ami.api.errors import HTTP_STATUS, ROUTING_CODES
    assert not set(ROUTING_CODES.values()) & set(HTTP_STATUS)
