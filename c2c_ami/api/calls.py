"""A tenant's calls: one call's live state or final record, hanging it up, the live list.
An extension-scoped token sees only its extension's calls (any other is CALL_NOT_FOUND)."""
from __future__ import annotations

from aiohttp import web

from .common import call_id_of, principal_of, success
from .keys import SERVICE

routes = web.RouteTableDef()


@routes.get("/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    """The live state, or the CDR once the call has ended."""
    principal = await principal_of(request)
    return success(call=await request.app[SERVICE].call(principal.tenant, call_id_of(request), principal.ext))


@routes.delete("/v1/calls/{call_id}")
async def delete_call(request: web.Request) -> web.Response:
    """Hang up, or cancel while the extension still rings."""
    principal = await principal_of(request)
    return success(call_id=await request.app[SERVICE].cancel(principal.tenant, call_id_of(request), principal.ext))


@routes.get("/v1/call")
async def live_calls(request: web.Request) -> web.Response:
    """This tenant's live calls, with the carrier's list fields."""
    principal = await principal_of(request)
    return success(calls=await request.app[SERVICE].live_calls(principal.tenant, principal.ext))
