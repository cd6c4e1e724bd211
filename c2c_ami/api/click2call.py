"""``GET /v1/click2call`` (sync) and ``GET /v1/click2call/async``: parse, ask the service,
answer ``{"status": "success", "call_id": ...}``."""
from __future__ import annotations

import time

from aiohttp import web

from .. import patterns
from ..errors import C2CError, Forbidden
from .common import principal_of, query_of, success
from .keys import METRICS, SERVICE
from .schemas import checked, parse_click_to_call

routes = web.RouteTableDef()


@routes.get("/v1/click2call")
async def click2call_sync(request: web.Request) -> web.Response:
    """Returns once the extension answered (or with why not)."""
    return await _measured(request, "sync", wait=True)


@routes.get("/v1/click2call/async")
async def click2call_async(request: web.Request) -> web.Response:
    """Returns as soon as the Originate is queued."""
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


async def _click2call(request: web.Request, *, wait: bool) -> web.Response:
    principal = await principal_of(request)
    call_request = parse_click_to_call(query_of(request))
    if principal.ext is not None and call_request.ext != principal.ext:
        raise Forbidden("ext: this extension is not allowed for this token")
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = checked("Idempotency-Key", key, patterns.IDEMPOTENCY_KEY)
    call_id = await request.app[SERVICE].place(principal.tenant, call_request, wait=wait, idempotency_key=key)
    return success(call_id=call_id)
