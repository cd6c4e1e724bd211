"""``POST /v1/auth/token``: an api key (``tenants[].api_keys``) in, a signed token out, as
the carrier documents it: ``{"api_key": K}`` -> ``{"data": {"token", "expired", "user_id"}}``.

With ``"ext"`` the token may act only for that extension (a CRM page in a browser then never
holds the tenant's key): see ``common.py`` for what such a token may do.

Failed attempts are limited per client address (an IPv6 client per /64):
``auth.failure_burst`` at once, refilled at ``auth.failures_per_minute``; when they are spent
the address gets 429 before its key is even compared, so keys cannot be guessed quickly.
Successful exchanges count against the api key's request rate, as every request counts
against its token's.
"""
from __future__ import annotations

import ipaddress

from aiohttp import web

from ..app_keys import AUTH, AUTH_FAILURES, RATE_LIMITER
from ..errors import Forbidden, Unauthorized
from .common import body_of
from .schemas import parse_token_request

routes = web.RouteTableDef()

FAILURE_SCOPE = "auth-token"


@routes.post("/v1/auth/token")
async def issue_token(request: web.Request) -> web.Response:
    raw = await body_of(request)
    failures, client = request.app[AUTH_FAILURES], client_of(request)
    failures.peek(FAILURE_SCOPE, client)
    authority = request.app[AUTH]
    try:            # no await from the peek to the failure's record: one attempt at a time
        token_request = parse_token_request(raw)
        if not token_request.api_key:
            raise Unauthorized("invalid api_key")
        tenant, key_digest = authority.tenant_of_api_key(token_request.api_key)
    except Unauthorized:
        failures.check(FAILURE_SCOPE, client)       # takes one; the next may be refused
        raise
    await request.app[RATE_LIMITER].admit(tenant.domain, key_digest.hex())
    ext = token_request.ext
    if ext is not None and not tenant.extensions.fullmatch(ext):
        raise Forbidden("ext: this extension is not allowed for this api_key")
    issued = authority.issue(tenant, key_digest, ext)
    return web.json_response({"data": {"token": issued.token, "expired": issued.expires,
                                       "user_id": issued.user_id}})


def client_of(request: web.Request) -> str:
    """The client's address as the failure limit's key: an IPv6 client by its /64 (one
    host commonly has a whole /64 to choose from)."""
    remote = request.remote or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
