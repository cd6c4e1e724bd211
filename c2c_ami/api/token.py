"""``POST /v1/auth/token``: an api key (``tenants[].api_keys``) in, a signed token out, as
the carrier documents it: ``{"api_key": K}`` -> ``{"data": {"token", "expired", "user_id"}}``.

With ``"ext"`` the token may act only for that extension (a CRM page in a browser then never
holds the tenant's key): see ``common.py`` for what such a token may do.

Failed attempts count against the failures of the client's address that every credential
shares (``common.authenticated``): once they are spent the address gets 429 before its key
is even compared, so keys cannot be guessed quickly. Successful exchanges count against the
api key's request rate, as every request counts against its token's.
"""
from __future__ import annotations

from aiohttp import web

from ..app_keys import AUTH, RATE_LIMITER
from ..errors import Forbidden
from .common import authenticated, body_of
from .schemas import parse_token_request

routes = web.RouteTableDef()


@routes.post("/v1/auth/token")
async def issue_token(request: web.Request) -> web.Response:
    token_request = parse_token_request(await body_of(request))
    authority = request.app[AUTH]
    tenant, key_digest = authenticated(request, token_request.api_key, authority.tenant_of_api_key)
    await request.app[RATE_LIMITER].admit(tenant.domain, key_digest.hex())
    ext = token_request.ext
    if ext is not None and not tenant.extensions.fullmatch(ext):
        raise Forbidden("ext: this extension is not allowed for this api_key")
    issued = authority.issue(tenant, key_digest, ext)
    return web.json_response({"data": {"token": issued.token, "expired": issued.expires,
                                       "user_id": issued.user_id}})

