"""A tenant's call detail records: filtered pages, and one by call_id. An extension-scoped
token sees only its extension's CDRs: the list is filtered to it (another ``extension`` is
FORBIDDEN), any other CDR is CALL_NOT_FOUND."""
from __future__ import annotations

import dataclasses

from aiohttp import web

from ..errors import Forbidden
from .common import call_id_of, principal_of, query_of, success
from .keys import SERVICE
from .schemas import CDR_PARAMS, parse_cdr_query

routes = web.RouteTableDef()


@routes.get("/v1/cdr")
async def list_cdrs(request: web.Request) -> web.Response:
    """?start_date&end_date&extension&phone&status&customer_id&limit&page"""
    principal = await principal_of(request)
    query = parse_cdr_query(query_of(request, CDR_PARAMS))
    if principal.ext is not None:
        if query.extension not in (None, principal.ext):
            raise Forbidden("extension: this extension is not allowed for this token")
        query = dataclasses.replace(query, extension=principal.ext)
    records, total, exact = await request.app[SERVICE].cdrs(principal.tenant, query)
    return success(total=total, total_exact=exact, page=query.page, limit=query.limit, cdrs=records)


@routes.get("/v1/cdr/{call_id}")
async def get_cdr(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    return success(call=await request.app[SERVICE].cdr(principal.tenant, call_id_of(request), principal.ext))
