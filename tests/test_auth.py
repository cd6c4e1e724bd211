"""Bearer tokens map to tenants; anything else is UNAUTHORIZED with a WWW-Authenticate."""
import hashlib

import pytest

from c2c_ami.auth import TokenAuthority
from c2c_ami.config import parse_config
from c2c_ami.errors import Unauthorized

from .test_config import BASE


def authority():
    raw = dict(BASE)
    digest = hashlib.sha256(b"hashed-token-b").hexdigest()
    raw["tenants"] = [dict(BASE["tenants"][0]),
                      dict(BASE["tenants"][0], domain="b", tokens=[f"sha256:{digest}"])]
    return TokenAuthority(parse_config(raw, {}).tenants)


def test_plain_and_hashed_tokens_resolve_their_tenant():
    auth = authority()
    assert auth.authenticate("Bearer dev-token-change-me").tenant.domain == "default"
    assert auth.authenticate("bearer hashed-token-b").tenant.domain == "b"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dev-token-change-me",
                                    "Bearer dev-token-change-me-x", "Bearer sha256:" + "0" * 64, "dev-token-change-me"])
def test_bad_authorization_is_unauthorized(header):
    with pytest.raises(Unauthorized) as info:
        authority().authenticate(header)
    assert info.value.code == "UNAUTHORIZED"


def test_token_never_appears_in_repr_of_tenant():
    tenant = authority().authenticate("Bearer dev-token-change-me").tenant
    assert "dev-token-change-me" not in repr(tenant)


PUBLIC = {"/v1/openapi.json", "/v1/auth/token"}
SIGNED = {"/v1/recording/{call_id}"}        # a signed link, or else a token
IN_QUERY = {"/v1/events/stream"}            # the token in the header, or in ?token= (EventSource)


def v1_routes(app):
    """(method, concrete path) of every /v1 route, path parameters filled with valid values."""
    out = []
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD" or not path.startswith("/v1/") or path in PUBLIC:
            continue
        path = path.replace("{call_id}", "c2c-1").replace("{id}", "c2c-1")
        path = path.replace("{hook_id}", "0" * 8 + "-0000-0000-0000-" + "0" * 12)
        out.append((route.method, path))
    return out


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic eA=="}])
async def test_every_v1_route_needs_a_valid_token(make_gateway, fake_ami, headers):
    gateway = await make_gateway(auth={"failure_burst": 1000})     # more routes than guesses a client gets
    routes = v1_routes(gateway.app)
    assert len(routes) >= 10, routes      # every resource: click2call, calls, cdr, event
    for method, path in routes:
        resp = await gateway.request(method, path, headers=headers, json={} if method == "POST" else None)
        body = await resp.json()
        assert (resp.status, body["error"]) == (401, "UNAUTHORIZED"), (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
    assert fake_ami.actions_named("Getvar") == [] and fake_ami.actions_named("Originate") == []


async def test_the_openapi_document_marks_every_v1_route_secured(gateway):
    spec = await (await gateway.get("/v1/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in SIGNED:
                assert operation.get("security") == [{}, {"bearerAuth": []}], (method, path)
            elif path in IN_QUERY:
                assert operation.get("security") == [{"bearerAuth": []}, {"queryToken": []}], (method, path)
            elif path.startswith("/v1/") and path not in PUBLIC:
                assert operation.get("security") == [{"bearerAuth": []}], (method, path)
