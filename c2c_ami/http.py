"""HTTP resources: parse, call the service, serialise. No business rules here."""
from __future__ import annotations

import logging
import re
import time

from aiohttp import web

from .app_keys import AMI, AUTH, DUPLICATES, IDEMPOTENCY, METRICS, RATE_LIMITER, REGISTRY, SERVICE
from .auth import Principal
from .calls import iso
from .errors import C2CError, CallFailed, InvalidParams
from .guards import fingerprint
from .metrics import CONTENT_TYPE_LATEST
from .openapi import build_openapi
from .schemas import parse_click_to_call, parse_query

log = logging.getLogger(__name__)

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


async def click2call_sync(request: web.Request) -> web.Response:
    """GET /v1/click2call: returns once the extension answered (or with why not)."""
    return await _measured(request, "sync", wait=True)


async def click2call_async(request: web.Request) -> web.Response:
    """GET /v1/click2call/async: returns as soon as the Originate is queued."""
    return await _measured(request, "async", wait=False)


async def _measured(request: web.Request, endpoint: str, *, wait: bool) -> web.Response:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    outcome = "success"
    try:
        return await _click2call(request, wait=wait)
    except C2CError as exc:
        outcome = exc.code
        raise
    except Exception:
        outcome = "ERROR"
        raise
    finally:
        metrics.requests.labels(endpoint, outcome).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def principal_of(request: web.Request) -> Principal:
    """Authenticate, then rate-limit per token (before any other work is done)."""
    principal = request.app[AUTH].authenticate(request.headers.get("Authorization"))
    request.app[RATE_LIMITER].check(principal.token_key)
    return principal


def call_id_of(request: web.Request) -> str:
    call_id = request.match_info["call_id"]
    if not _CALL_ID.fullmatch(call_id):
        raise InvalidParams("call_id: 1-64 letters, digits, '.', '_' or '-'")
    return call_id


async def _click2call(request: web.Request, *, wait: bool) -> web.Response:
    app = request.app
    principal = principal_of(request)
    call_request = parse_click_to_call(parse_query(request.rel_url.raw_query_string))
    tenant = principal.tenant

    async def place() -> str:
        return (await app[SERVICE].place(tenant, call_request, wait=wait)).call_id

    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidParams("Idempotency-Key: 1-128 letters, digits, '.', '_', ':' or '-'")
        call_id = await app[IDEMPOTENCY].run((tenant.domain, idempotency_key),
                                             fingerprint(call_request, wait), place)
    else:
        call_id = await app[DUPLICATES].run((tenant.domain, call_request.ext, call_request.phone), "", place)
    return web.json_response({"status": "success", "call_id": call_id})


async def delete_call(request: web.Request) -> web.Response:
    """DELETE /v1/calls/{call_id}: hang up, or cancel while the extension still rings."""
    tenant = principal_of(request).tenant
    call = await request.app[SERVICE].cancel(tenant, call_id_of(request))
    return web.json_response({"status": "success", "call_id": call.call_id})


async def live_calls(request: web.Request) -> web.Response:
    """GET /v1/call: this tenant's live calls, with the carrier's list fields."""
    tenant = principal_of(request).tenant
    calls = [{"call_id": c.call_id, "source": c.ext, "destination": c.phone, "direction": "outbound",
              "state": c.state.value, "created_time": iso(c.started_at), "hotline": c.hotline}
             for c in request.app[REGISTRY].live(tenant.domain)]
    return web.json_response({"status": "success", "calls": calls})


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
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


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready = the AMI link is logged in and usable (and we are not shutting down)."""
    ami = request.app[AMI]
    ready = ami.ready and request.app[SERVICE].accepting
    body = {"status": "ready" if ready else "not_ready", "ami": ami.state.value}
    if ami.last_error and not ready:
        body["detail"] = ami.last_error
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(_OPENAPI)


_OPENAPI = build_openapi()


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/click2call", click2call_sync)
    app.router.add_get("/v1/click2call/async", click2call_async)
    app.router.add_delete("/v1/calls/{call_id}", delete_call)
    app.router.add_get("/v1/call", live_calls)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/openapi.json", openapi)
