"""A tenant's calls: one call's live state or final record, hanging it up, the live list."""
from __future__ import annotations

from aiohttp import web

from .common import call_id_of, principal_of, success
from .keys import SERVICE

routes = web.RouteTableDef()


@routes.get("/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    """The live state, or the CDR once the call has ended."""
    tenant = (await principal_of(request)).tenant
    return success(call=await request.app[SERVICE].call(tenant, call_id_of(request)))


@routes.delete("/v1/calls/{call_id}")
async def delete_call(request: web.Request) -> web.Response:
    """Hang up, or cancel while the extension still rings."""
    tenant = (await principal_of(request)).tenant
    return success(call_id=await request.app[SERVICE].cancel(tenant, call_id_of(request)))


@routes.get("/v1/call")
async def live_calls(request: web.Request) -> web.Response:
    """This tenant's live calls, with the carrier's list fields."""
    tenant = (await principal_of(request)).tenant
    return success(calls=await request.app[SERVICE].live_calls(tenant))
