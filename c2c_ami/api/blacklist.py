"""The do-not-call list, the carrier's way (``docs/blacklist.md`` of its API): ``GET
/v1/blacklist?limit&offset``, ``GET /v1/blacklist/{id or phone}``, ``POST /v1/blacklist
{"blacklist": [{phone_number, description}]}``, ``DELETE /v1/blacklist {"blacklist":
[phones]}``. The tenant's list: an extension-scoped token may read it, never change it."""
from __future__ import annotations

from aiohttp import web

from .. import patterns
from ..app_keys import CONFIG, SERVICE
from ..auth import Principal
from ..errors import Forbidden
from .common import body_of, principal_of, query_of
from .schemas import (
    BLACKLIST_PAGE_PARAMS,
    checked,
    parse_blacklist_entries,
    parse_blacklist_page,
    parse_blacklist_phones,
)

routes = web.RouteTableDef()


async def _manager(request: web.Request) -> Principal:
    principal = await principal_of(request)
    if principal.ext is not None:
        raise Forbidden("token: a token for one extension may not change the do-not-call list")
    return principal


@routes.get("/v1/blacklist")
async def list_blacklist(request: web.Request) -> web.Response:
    """``{"data": [{id, phone_number, description}], "limit", "offset", "total"}``, oldest first."""
    principal = await principal_of(request)
    limit, offset = parse_blacklist_page(query_of(request, BLACKLIST_PAGE_PARAMS))
    entries, total = await request.app[SERVICE].policy.listing(principal.tenant, limit=limit, offset=offset)
    return web.json_response({"data": [e.carrier() for e in entries], "limit": limit, "offset": offset,
                              "total": total})


@routes.get("/v1/blacklist/{id}")
async def get_blacklist(request: web.Request) -> web.Response:
    """One entry, by its id or by its number (in any of its forms): the carrier's bare object."""
    principal = await principal_of(request)
    wanted = checked("id", request.match_info["id"], patterns.BLACKLIST_ID)
    entry = await request.app[SERVICE].policy.entry(principal.tenant, wanted)
    return web.json_response(entry.carrier())


@routes.post("/v1/blacklist")
async def add_blacklist(request: web.Request) -> web.Response:
    """``{"success": [numbers], "fail": [{number: reason}], "message": "successfully"}``."""
    principal = await _manager(request)
    max_bytes = request.app[CONFIG].http.client_max_size
    entries = parse_blacklist_entries(await body_of(request), max_bytes)
    result = await request.app[SERVICE].policy.add(principal.tenant, entries)
    return web.json_response({"fail": result.fail, "message": "successfully", "success": result.success})


@routes.delete("/v1/blacklist")
async def remove_blacklist(request: web.Request) -> web.Response:
    """``{"success": [numbers], "fail": [{number: reason}], "message": "successfully"}``."""
    principal = await _manager(request)
    max_bytes = request.app[CONFIG].http.client_max_size
    phones = parse_blacklist_phones(await body_of(request), max_bytes)
    result = await request.app[SERVICE].policy.remove(principal.tenant, phones)
    return web.json_response({"fail": result.fail, "message": "successfully", "success": result.success})
