"""GET /v1/events/stream: the tenant's events as Server-Sent Events (``notify/stream.py``
fans them out). The wire format is aio-libs' aiohttp-sse (``EventSourceResponse``: headers,
heartbeats, the stalled-client timeout); the hub hands it frames already encoded once per
event for all streams (the same bytes ``send(data, id, event)`` writes).

A browser's ``EventSource`` cannot set headers, so the token may come as ``?token=`` (the
access log never shows it: ``http_server.AccessLogger``); ``Last-Event-ID`` (which
EventSource sends when it reconnects) or ``?last_event_id=`` resumes."""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..app_keys import AUTH, CONFIG, EVENTS, RATE_LIMITER
from ..errors import InvalidParams
from ..notify.stream import Dropped
from .common import authenticated, authorization_of
from .cors import mark_stream
from .schemas import parse_query

routes = web.RouteTableDef()
RETRY_MS = 2000                 # EventSource reconnects this long after a cut
_PARAMS = ("token", "last_event_id")


@routes.get("/v1/events/stream")
async def event_stream(request: web.Request) -> web.StreamResponse:
    query = parse_query(request.rel_url.raw_query_string, _PARAMS)
    header, token = authorization_of(request), query.get("token")
    if header and token:
        raise InvalidParams("token: give the token in the Authorization header or in ?token=, not both")
    principal = authenticated(request, header or (f"Bearer {token}" if token else None), request.app[AUTH].authenticate)
    await request.app[RATE_LIMITER].admit(principal.tenant.domain, principal.token_key.hex())
    last_event_id = request.headers.get("Last-Event-ID") or query.get("last_event_id") or None
    config, hub = request.app[CONFIG].events, request.app[EVENTS]
    sub = await hub.subscribe(principal.tenant.domain, principal.ext)
    response = EventSourceResponse(ping_interval=config.heartbeat, send_timeout=config.send_timeout)
    try:
        mark_stream(request, response)
        await response.prepare(request)

        async def write(data: bytes) -> None:
            try:
                async with asyncio.timeout(config.send_timeout):
                    await response.write(data)
            except TimeoutError:
                if request.transport is not None:
                    request.transport.abort()        # a stalled client: drop it, it resumes
                raise Dropped("the client did not take the stream's data in time") from None

        async with response:
            await write(b"retry: %d\r\n\r\n" % RETRY_MS)
            streaming = asyncio.ensure_future(hub.run(sub, last_event_id, write))
            connected = asyncio.ensure_future(response.wait())     # ends when a heartbeat fails
            try:
                await asyncio.wait({streaming, connected}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (streaming, connected):
                    task.cancel()
                for task in (streaming, connected):
                    with contextlib.suppress(asyncio.CancelledError, Dropped, ConnectionError, RuntimeError):
                        await task
    finally:
        hub.unsubscribe(sub)
    return response
