"""A tenant's webhook registrations (``/v1/event``): the tenant's, so an extension-scoped
token may neither list, add nor remove them (FORBIDDEN).

Two request shapes, told apart by the URL key (``schemas.parse_hook``): c2c-ami's
``{"url", "events", "secret"}`` answered ``{"status": "success", "hook": {...}}``, and the
carrier's ``{"callback_url", "callback_apikey", "event"}`` answered in the carrier's keys
``{"created": true, "id", "secret"}``. Listing and removal answer both kinds of client at
once: ``{"data", "total"}`` (the carrier's) beside ``{"status", "hooks", "page", "limit"}``.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import patterns
from ..app_keys import SUBSCRIPTIONS, WEBHOOKS
from ..config import Tenant
from ..errors import Forbidden
from ..notify.webhooks import ALL_EVENTS
from .common import body_of, principal_of, query_of, success
from .schemas import HOOK_PAGE_PARAMS, HOOK_PARAMS, checked, parse_hook, parse_page

routes = web.RouteTableDef()


async def _tenant_of(request: web.Request) -> Tenant:
    principal = await principal_of(request)
    if principal.ext is not None:
        raise Forbidden("token: a token for one extension may not manage webhooks")
    return principal.tenant


def carrier_event(events: list[str]) -> str:
    """A hook's events as the carrier's single ``event``: the event itself for a hook of one
    event (every carrier registration); ``"*"`` for a hook of every event; the events joined
    by commas (``"cdr,hangup"``) for a c2c-ami hook of several, which no single name would
    describe truly."""
    if not events or ALL_EVENTS in events:
        return ALL_EVENTS
    return ",".join(events)


def _carrier_view(hook: dict[str, Any]) -> dict[str, Any]:
    return {"id": hook["id"], "event": carrier_event(hook["events"]), "callback_url": hook["url"],
            "callback_apikey": hook.get("api_key") or ""}


def _c2c_view(hook: dict[str, Any]) -> dict[str, Any]:
    return {"id": hook["id"], "url": hook["url"], "events": hook["events"], "created_at": hook["created_at"]}


@routes.get("/v1/event")
async def list_hooks(request: web.Request) -> web.Response:
    """?limit&page: one page of the tenant's webhooks, oldest first (secrets are never shown
    again), as the carrier's ``data`` and as c2c-ami's ``hooks``; ``total``: all of them."""
    tenant = await _tenant_of(request)
    limit, page = parse_page(query_of(request, HOOK_PAGE_PARAMS))
    hooks, total = await request.app[SUBSCRIPTIONS].list(tenant.domain, limit=limit, page=page)
    return success(data=[_carrier_view(h) for h in hooks], total=total, page=page, limit=limit,
                   hooks=[_c2c_view(h) for h in hooks])


@routes.post("/v1/event")
async def add_hook(request: web.Request) -> web.Response:
    """{"url", "events", "secret"} -> the hook, with its secret; {"callback_url", "event",
    "callback_apikey"} -> {"created": true, "id", "secret"}."""
    tenant = await _tenant_of(request)
    wanted = parse_hook(await body_of(request))
    hook = await request.app[SUBSCRIPTIONS].add(tenant.domain, wanted.url, wanted.events, wanted.secret,
                                                api_key=wanted.api_key, url_field=wanted.url_field)
    if wanted.carrier:
        return web.json_response({"created": True, "id": hook["id"], "secret": hook["secret"]})
    return success(hook=hook)


@routes.delete("/v1/event")
@routes.delete("/v1/event/{hook_id}")
async def delete_hook(request: web.Request) -> web.Response:
    """DELETE /v1/event/{hook_id}, or DELETE /v1/event?id=..."""
    tenant = await _tenant_of(request)
    hook_id = request.match_info.get("hook_id") or query_of(request, HOOK_PARAMS).get("id", "")
    await request.app[SUBSCRIPTIONS].remove(tenant.domain, checked("id", hook_id, patterns.HOOK_ID))
    return success(deleted=True)


@routes.get("/v1/event/deliveries")
async def hook_deliveries(request: web.Request) -> web.Response:
    """Every webhook of the tenant with its deliveries: ``pending``, ``delivered``, ``dead``
    (those still in the outbox, i.e. of the last ``webhooks.retention_days``) and the last
    error a receiver gave (the console's webhooks tab)."""
    tenant = await _tenant_of(request)
    hooks = await request.app[SUBSCRIPTIONS].deliveries(tenant.domain)
    return success(data=[{**_c2c_view(h), "event": carrier_event(h["events"]), "pending": h["pending"],
                          "delivered": h["delivered"], "dead": h["dead"], "last_error": h["last_error"]}
                         for h in hooks], total=len(hooks))


@routes.post("/v1/event/{hook_id}/retry")
async def retry_dead(request: web.Request) -> web.Response:
    """Queue the hook's dead deliveries again (from their first attempt)."""
    tenant = await _tenant_of(request)
    hook_id = checked("id", request.match_info["hook_id"], patterns.HOOK_ID)
    retried = await request.app[SUBSCRIPTIONS].retry_dead(tenant.domain, hook_id)
    request.app[WEBHOOKS].wake()
    return success(id=hook_id, retried=retried)
