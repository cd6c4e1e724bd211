"""CORS: browser pages on the origins listed in ``api.cors_origins`` may call the API.

A small middleware rather than aiohttp-cors (no longer actively maintained), installed only
when origins are listed. It sits outside ``error_middleware`` so every answer to a listed
origin carries its headers, failures included (401, 400, 429, 503, and aiohttp's own 404,
405 and 413): without them the browser hides the answer from the page. A preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered here, before routing, auth
and rate limits: 204 with the allowed methods and headers for a listed origin, 403
``FORBIDDEN`` (the failure body) with no CORS headers for any other (the browser then never
sends the request). It costs a set
look-up, and browsers cache it ``MAX_AGE`` seconds. ``*`` is refused by the config: the API
takes Bearer tokens, and any page on the web could use one it got hold of.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from ..errors import Forbidden
from .errors import Handler, failure_response

ALLOW_METHODS = "GET, POST, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"   # EventSource resumes with it
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate"
MAX_AGE = "600"
# the request's listed Origin (None: not listed), set by the middleware for mark_stream
_ORIGIN: Any = web.RequestKey("c2c_cors_origin", str) if hasattr(web, "RequestKey") else "c2c_cors_origin"


def cors_middleware(origins: Iterable[str]) -> Middleware:
    """The middleware for these exact origins (``scheme://host[:port]``, as browsers send)."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        listed = origin is not None and origin in allowed
        if request.method == "OPTIONS" and origin is not None and "Access-Control-Request-Method" in request.headers:
            if not listed:
                refused = failure_response(Forbidden("Origin: not allowed to call this API (api.cors_origins)"))
                refused.headers["Vary"] = "Origin"
                return refused
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin"})
        request[_ORIGIN] = origin if listed else None      # a stream marks its answer itself (mark_stream)
        try:
            response = await handler(request)
        except web.HTTPException as exc:        # (error_middleware answers aiohttp's own; any other)
            mark(exc.headers, origin if listed else None)
            raise
        if not response.prepared:
            mark(response.headers, origin if listed else None)
        return response

    return cors


def mark_stream(request: web.Request, response: web.StreamResponse) -> None:
    """A streamed answer is prepared by its handler, before the middleware sees it: the handler
    marks it first (nothing when CORS is off)."""
    if _ORIGIN in request:
        mark(response.headers, request[_ORIGIN])


def mark(headers: CIMultiDict[str], origin: str | None) -> None:
    """An answer's CORS headers: ``origin`` (a listed one) may read it."""
    headers.add("Vary", "Origin")       # answers differ by Origin: no cache may mix them up
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
