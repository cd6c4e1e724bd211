"""What every resource handler shares: who is calling, path parameters, the request body,
the answer's envelope."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import tzinfo
from typing import Any, TypeVar

from aiohttp import web

from .. import patterns
from ..addresses import client_key
from ..app_keys import AUTH, AUTH_FAILURES, CONFIG, RATE_LIMITER
from ..auth import Principal
from ..calls.shared_guards import Charge, SharedRateLimiter
from ..carrier import zone
from ..errors import InvalidParams, Unauthorized
from .errors import ClientGone
from .schemas import KNOWN_PARAMS, checked, parse_query

T = TypeVar("T")
FAILURE_SCOPE = "auth"      # failed credentials of every kind: static, issued, metrics token, api key


async def principal_of(request: web.Request) -> Principal:
    """Authenticate (401 without a valid Bearer token; 429 once this address failed too
    often), then rate-limit per token, before any other work is done."""
    authorization = authorization_of(request)
    principal = authenticated(request, authorization, request.app[AUTH].authenticate)
    await request.app[RATE_LIMITER].admit(principal.tenant.domain, principal.token_key.hex())
    return principal


def authenticated(request: web.Request, credential: str | None, check: Callable[[str | None], T]) -> T:
    """``check(credential)``, paid for when it fails: every credential (a static or issued
    token, the metrics token, an api key) shares one limit of failures per client address
    (``auth.failure_burst`` at once, refilled at ``auth.failures_per_minute``). Once it is
    spent the address gets 429 before anything is compared, so guessing cannot go on. No
    credential at all is no guess: it is not counted. Nothing awaits between the look and
    the count, so concurrent guesses cannot slip past it."""
    failures, client = request.app[AUTH_FAILURES], client_key(request.remote)
    failures.peek(FAILURE_SCOPE, client)
    try:
        return check(credential)
    except Unauthorized:
        if credential:
            failures.check(FAILURE_SCOPE, client)       # takes one; the next may be refused
        raise


async def principal_and_charge(request: web.Request) -> tuple[Principal, Charge | None]:
    """``principal_of`` for a click: with a limit shared in the store, the request's token is
    not taken now but with the click's claim (one round trip less), or at the end
    (``settle``); RATE_LIMITED all the same."""
    limiter = request.app[RATE_LIMITER]
    if not isinstance(limiter, SharedRateLimiter):
        return await principal_of(request), None
    principal = authenticated(request, authorization_of(request), request.app[AUTH].authenticate)
    return principal, limiter.charge(principal.tenant.domain, principal.token_key.hex())


async def settle(charge: Charge | None) -> None:
    """After a click: take the charge's token if the click did not. Over the limit the answer
    is RATE_LIMITED, whatever else happened (as if it had been taken first)."""
    if charge is not None:
        await charge.settle()


def authorization_of(request: web.Request) -> str | None:
    """The one Authorization header, if any; two are refused (which one counts would
    depend on the proxy in front)."""
    given = request.headers.getall("Authorization", [])
    if len(given) > 1:
        raise InvalidParams("Authorization: given more than once")
    return given[0] if given else None


def call_id_of(request: web.Request) -> str:
    return checked("call_id", request.match_info["call_id"], patterns.CALL_ID)


def zone_of(request: web.Request) -> tzinfo:
    """``api.timezone``: where the carrier's times are shown and its date filters read."""
    return zone(request.app[CONFIG].api.timezone)


def query_of(request: web.Request, known: tuple[str, ...] = KNOWN_PARAMS) -> dict[str, str]:
    """The decoded query; each of the endpoint's ``known`` parameters at most once."""
    return parse_query(request.rel_url.raw_query_string, known)


async def body_of(request: web.Request) -> bytes:
    """The request body, read within ``http.body_timeout`` (a client trickling it holds a
    connection, not the gateway), and ClientGone if the client hangs up halfway."""
    timeout = request.app[CONFIG].http.body_timeout
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise InvalidParams(f"body: not received within {timeout:g} s") from None
    except ConnectionError:
        raise ClientGone() from None


def success(**body: Any) -> web.Response:
    """``{"status": "success", ...}``: the envelope of every successful answer."""
    return web.json_response({"status": "success", **body})
