"""A tenant's call detail records: filtered pages, and one by call_id."""
from __future__ import annotations

from aiohttp import web

from .common import call_id_of, principal_of, query_of, success
from .keys import SERVICE
from .schemas import CDR_PARAMS, parse_cdr_query

routes = web.RouteTableDef()


@routes.get("/v1/cdr")
async def list_cdrs(request: web.Request) -> web.Response:
    """?start_date&end_date&extension&phone&status&limit&page"""
    tenant = (await principal_of(request)).tenant
    query = parse_cdr_query(query_of(request, CDR_PARAMS))
    records, total, exact = await request.app[SERVICE].cdrs(tenant, query)
    return success(total=total, total_exact=exact, page=query.page, limit=query.limit, cdrs=records)


@routes.get("/v1/cdr/{call_id}")
async def get_cdr(request: web.Request) -> web.Response:
    tenant = (await principal_of(request)).tenant
    return success(call=await request.app[SERVICE].cdr(tenant, call_id_of(request)))
