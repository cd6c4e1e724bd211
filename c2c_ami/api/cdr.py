"""A tenant's call detail records, the carrier's way: pages or a scroll, and one CDR by its
id or SIP Call-ID. An extension-scoped token sees only its extension's CDRs: the list is
filtered to it (another ``extension`` is FORBIDDEN), any other CDR is CALL_NOT_FOUND.

``GET /v1/cdr`` with ``page``, ``limit`` or ``offset``: ``{"data", "total", "page", "limit"}``.
Without them it is the carrier's scroll: ``{"data", "scroll_id"}``, and ``?scroll_id=S``
answers the next batch, until ``data`` is empty. The records are the carrier's
(``carrier.cdr_record``); the gateway's own answer of before stays beside them as extra keys
(``status``, ``total_exact``, ``cdrs``; ``call`` in one CDR's answer).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from .. import patterns
from ..app_keys import RECORDINGS, SCROLL, SERVICE
from ..auth import Principal
from ..calls.requests import CdrQuery
from ..carrier import cdr_record
from ..errors import Forbidden, InvalidParams
from ..scroll import ScrollPosition
from .common import principal_of, query_of, zone_of
from .schemas import CDR_PARAMS, checked, is_paged, parse_cdr_query

routes = web.RouteTableDef()


def _scoped(query: CdrQuery, principal: Principal) -> CdrQuery:
    if principal.ext is None:
        return query
    if query.extension not in (None, principal.ext):
        raise Forbidden("extension: this extension is not allowed for this token")
    return dataclasses.replace(query, extension=principal.ext)


@routes.get("/v1/cdr")
async def list_cdrs(request: web.Request) -> web.Response:
    """?start_date&end_date&extension&phone&status&direction&customer_id & (page&limit&offset | scroll_id)"""
    principal = await principal_of(request)
    params = query_of(request, CDR_PARAMS)
    zone = zone_of(request)
    links, recording = request.app[RECORDINGS], principal.tenant.recording
    query = parse_cdr_query(params, zone)
    service, codec, tenant = request.app[SERVICE], request.app[SCROLL], principal.tenant.domain
    scroll_id = params.get("scroll_id", "")
    if not scroll_id and is_paged(params):
        query = _scoped(query, principal)
        records, total, exact = await service.cdrs(principal.tenant, query)
        offset = (query.page - 1) * query.limit if query.offset is None else query.offset
        return web.json_response({
            "data": [cdr_record(r, zone, recording_url=links.url(r, recording)) for r in records], "total": total,
            "page": offset // query.limit + 1, "limit": query.limit, "offset": offset,
            "status": "success", "total_exact": exact,
            "cdrs": [{**r, "recording_url": links.url(r, recording)} for r in records]})
    after: tuple[str, str] | None = None
    if scroll_id:
        query, after = _continued(query, params, codec.decode(tenant, scroll_id))
    query = _scoped(query, principal)
    records = await service.scroll_cdrs(principal.tenant, query, after)
    next_id = ""            # data empty: the scroll is over
    if records:
        last = records[-1]
        next_id = codec.encode(tenant, ScrollPosition(last["time_started"], last["call_id"],
                                                      query.filters(), query.limit))
    return web.json_response({"data": [cdr_record(r, zone, recording_url=links.url(r, recording)) for r in records],
                              "scroll_id": next_id, "status": "success",
                              "cdrs": [{**r, "recording_url": links.url(r, recording)} for r in records]})


def _continued(query: CdrQuery, params: dict[str, str],
               position: ScrollPosition) -> tuple[CdrQuery, tuple[str, str]]:
    """The query a scroll id continues: its filters (given ones must be the same) and batch
    size (unless ``limit`` is given again)."""
    if params.get("page", "") or params.get("offset", ""):
        raise InvalidParams("scroll_id: not with page or offset (a scroll or a page, not both)")
    for name, value in query.filters().items():
        if value is not None and value != position.filters.get(name):
            raise InvalidParams(f"scroll_id: the scroll was started with another {name} "
                                "(give the scroll_id alone, or with the same filters)")
    limit = query.limit if params.get("limit", "") else position.limit
    filters: dict[str, Any] = position.filters
    return dataclasses.replace(query, **filters, limit=limit), (position.time_started, position.call_id)


@routes.get("/v1/cdr/{id}")
async def get_cdr(request: web.Request) -> web.Response:
    """The carrier's bare CDR, found by call_id or by SIP Call-ID; the gateway's record of
    before as the extra key ``call``."""
    principal = await principal_of(request)
    cdr_id = checked("id", request.match_info["id"], patterns.CDR_ID)
    record = await request.app[SERVICE].cdr(principal.tenant, cdr_id, principal.ext,
                                            missing="no CDR with this call_id or sip_call_id",
                                            by_sip_call_id=True)
    link = request.app[RECORDINGS].url(record, principal.tenant.recording)
    return web.json_response({**cdr_record(record, zone_of(request), recording_url=link),
                              "call": {**record, "recording_url": link}})
