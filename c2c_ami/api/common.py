"""What every resource handler shares: who is calling, path parameters, the answer's
envelope, and the one middleware that turns errors into the API's failure body."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import patterns
from ..errors import C2CError, CallFailed
from .auth import Principal
from .keys import AUTH, RATE_LIMITER
from .schemas import checked, parse_query

log = logging.getLogger("c2c_ami.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def principal_of(request: web.Request) -> Principal:
    """Authenticate (401 without a valid Bearer token), then rate-limit per token, before
    any other work is done."""
    principal = request.app[AUTH].authenticate(request.headers.get("Authorization"))
    await request.app[RATE_LIMITER].admit(principal.tenant.domain, principal.token_key.hex())
    return principal


def call_id_of(request: web.Request) -> str:
    return checked("call_id", request.match_info["call_id"], patterns.CALL_ID)


def query_of(request: web.Request) -> dict[str, str]:
    return parse_query(request.rel_url.raw_query_string)


def success(**body: Any) -> web.Response:
    """``{"status": "success", ...}``: the envelope of every successful answer."""
    return web.json_response({"status": "success", **body})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every C2CError (and any bug) into the API's failure body."""
    try:
        return await handler(request)
    except C2CError as exc:
        return web.json_response(exc.body(), status=exc.http_status, headers=exc.headers)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return web.json_response(CallFailed("internal error").body(), status=500)
