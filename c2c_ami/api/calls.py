"""A tenant's calls: one call's live state or final record, hanging it up, the live list.
An extension-scoped token sees only its extension's calls (any other is CALL_NOT_FOUND)."""
from __future__ import annotations

from aiohttp import web

from ..app_keys import RECORDINGS, SERVICE
from ..calls.record import LIVE_CALL_KEYS
from ..carrier import live_call
from .common import call_id_of, principal_of, success, zone_of

routes = web.RouteTableDef()


@routes.get("/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    """The live state, or the CDR once the call has ended."""
    principal = await principal_of(request)
    record = await request.app[SERVICE].call(principal.tenant, call_id_of(request), principal.ext)
    return success(call={**record, "recording_url": request.app[RECORDINGS].url(record, principal.tenant.recording)})


@routes.delete("/v1/calls/{call_id}")
async def delete_call(request: web.Request) -> web.Response:
    """Hang up, or cancel while the extension still rings."""
    principal = await principal_of(request)
    return success(call_id=await request.app[SERVICE].cancel(principal.tenant, call_id_of(request), principal.ext))


@routes.get("/v1/call")
async def live_calls(request: web.Request) -> web.Response:
    """This tenant's live calls, the carrier's way: ``{"data": [...], "total": N}``; the
    gateway's list of before stays as the extra key ``calls`` (with ``status``)."""
    principal = await principal_of(request)
    records = await request.app[SERVICE].live_calls(principal.tenant, principal.ext)
    zone = zone_of(request)
    return web.json_response({
        "data": [live_call(r, zone) for r in records], "total": len(records), "status": "success",
        "calls": [{key: r.get(name) for key, name in LIVE_CALL_KEYS.items()} for r in records]})
