"""Click-to-call: ``GET /v1/click2call`` (sync), ``GET /v1/click2call/async`` and the
carrier's ``POST /v2/click2call`` (async, JSON body). Parse, ask the service, answer
``{"status": "success", "call_id": ...}`` -- v2 with the carrier's ``"code": "0"``, and its
failures with ``"code": "1"`` (same error codes, messages and HTTP statuses as v1)."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from .. import patterns
from ..app_keys import CONFIG, METRICS, SERVICE
from ..auth import Principal
from ..calls.requests import ClickToCallRequest
from ..calls.shared_guards import Charge
from ..errors import C2CError, CallerIdNotAllowed, CallFailed, Forbidden, InvalidParams, PhoneBlacklisted
from .common import body_of, principal_and_charge, query_of, settle, success
from .errors import ClientGone, failure_response
from .schemas import checked, parse_click_to_call, parse_click_to_call_v2, v2_named

log = logging.getLogger("c2c_ami.api")

routes = web.RouteTableDef()
T = TypeVar("T")


@routes.get("/v1/click2call")
async def click2call_sync(request: web.Request) -> web.Response:
    """Returns once the extension answered (or with why not)."""
    return await _measured("sync", _click2call(request, wait=True), request)


@routes.get("/v1/click2call/async")
async def click2call_async(request: web.Request) -> web.Response:
    """Returns as soon as the Originate is queued."""
    return await _measured("async", _click2call(request, wait=False), request)


@routes.post("/v2/click2call")
async def click2call_v2(request: web.Request) -> web.Response:
    """The carrier's asynchronous click-to-call: ``{"id", "mobile", "agent"}`` in a JSON body.
    Every failure is answered here, in the carrier's v2 shape."""
    try:
        call_id = await _measured("v2", _click2call_v2(request), request)
    except C2CError as exc:
        return _v2_failure(exc)
    except web.HTTPRequestEntityTooLarge:       # aiohttp's own 413, in the v2 shape too
        return _v2_failure(InvalidParams(f"body: larger than {request.app[CONFIG].http.client_max_size} bytes"),
                           status=413)
    except (web.HTTPException, ClientGone):     # nobody left to answer
        raise
    except Exception:       # as error_middleware does, in the v2 shape
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return _v2_failure(CallFailed("internal error"))
    return web.json_response({"code": "0", "status": "success", "call_id": call_id})


def _v2_failure(exc: C2CError, status: int | None = None) -> web.Response:
    return failure_response(exc, extra={"code": "1"}, status=status)


async def _measured(endpoint: str, work: Awaitable[T], request: web.Request) -> T:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    outcome = "success"
    try:
        return await work
    except C2CError as exc:
        outcome = exc.code
        raise
    except Exception:
        outcome = "ERROR"
        raise
    finally:
        metrics.request_done(endpoint, outcome, time.perf_counter() - started)


async def _click2call(request: web.Request, *, wait: bool) -> web.Response:
    principal, charge = await principal_and_charge(request)
    try:            # (inline, not a context manager: a pending sync request holds no extra frame)
        call_request = parse_click_to_call(query_of(request))
        call_id = await _place(request, principal, call_request, wait=wait, charge=charge)
    except Exception:
        await settle(charge)
        raise
    await settle(charge)
    return success(call_id=call_id)


async def _click2call_v2(request: web.Request) -> str:
    principal, charge = await principal_and_charge(request)
    try:
        parsed = parse_click_to_call_v2(await body_of(request))      # its errors name the body's keys
        try:
            call_id = await _place(request, principal, parsed.request, wait=False, charge=charge)
        except C2CError as exc:         # ext: ... is agent: ... (or ext: ..., if the body said ext)
            raise v2_named(exc, parsed.names) from None
    except Exception:
        await settle(charge)
        raise
    await settle(charge)
    return call_id


async def _place(request: web.Request, principal: Principal, call_request: ClickToCallRequest, *,
                 wait: bool, charge: Charge | None = None) -> str:
    """The one path of every click-to-call: the token's extension, the Idempotency-Key, the
    service (its guards, the PBX)."""
    if principal.ext is not None and call_request.ext != principal.ext:
        raise Forbidden("ext: this extension is not allowed for this token")
    keys = request.headers.getall("Idempotency-Key", [])
    if len(keys) > 1:                   # which one counts would depend on the proxy in front
        raise InvalidParams("Idempotency-Key: given more than once")
    key = checked("Idempotency-Key", keys[0], patterns.IDEMPOTENCY_KEY) if keys else None
    try:
        return await request.app[SERVICE].place(principal.tenant, call_request, wait=wait, idempotency_key=key,
                                                caller=principal.token_key.hex(), charge=charge)
    except (PhoneBlacklisted, CallerIdNotAllowed) as exc:
        request.app[METRICS].refusals.labels(principal.tenant.domain, exc.code).inc()
        raise

