"""A tenant's webhook registrations (``/v1/event``): the tenant's, so an extension-scoped
token may neither list, add nor remove them (FORBIDDEN)."""
from __future__ import annotations

from aiohttp import web

from .. import patterns
from ..config import Tenant
from ..errors import Forbidden
from .common import body_of, principal_of, query_of, success
from .keys import SUBSCRIPTIONS
from .schemas import HOOK_PAGE_PARAMS, HOOK_PARAMS, checked, parse_hook, parse_page

routes = web.RouteTableDef()


async def _tenant_of(request: web.Request) -> Tenant:
    principal = await principal_of(request)
    if principal.ext is not None:
        raise Forbidden("token: a token for one extension may not manage webhooks")
    return principal.tenant


@routes.get("/v1/event")
async def list_hooks(request: web.Request) -> web.Response:
    """?limit&page: one page of the tenant's webhooks, oldest first (secrets are never shown again)."""
    tenant = await _tenant_of(request)
    limit, page = parse_page(query_of(request, HOOK_PAGE_PARAMS))
    hooks, total = await request.app[SUBSCRIPTIONS].list(tenant.domain, limit=limit, page=page)
    return success(total=total, page=page, limit=limit, hooks=hooks)


@routes.post("/v1/event")
async def add_hook(request: web.Request) -> web.Response:
    """{"url": ..., "events": [...], "secret": optional} -> the hook, with its secret."""
    tenant = await _tenant_of(request)
    hook = parse_hook(await body_of(request))
    return success(hook=await request.app[SUBSCRIPTIONS].add(tenant.domain, hook.url, hook.events, hook.secret))


@routes.delete("/v1/event")
@routes.delete("/v1/event/{hook_id}")
async def delete_hook(request: web.Request) -> web.Response:
    """DELETE /v1/event/{hook_id}, or DELETE /v1/event?id=..."""
    tenant = await _tenant_of(request)
    hook_id = request.match_info.get("hook_id") or query_of(request, HOOK_PARAMS).get("id", "")
    await request.app[SUBSCRIPTIONS].remove(tenant.domain, checked("id", hook_id, patterns.HOOK_ID))
    return success()
