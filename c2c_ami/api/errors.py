"""What each domain error means over HTTP: its status, its headers, and the failure body
``{"status": "fail", "error": CODE, "message": ..., "call_id": ...}``. The one table of it;
the OpenAPI document is built from it (``api/openapi.py``) and its test keeps them in step.
The one middleware that turns errors (and any bug) into that body lives here too, and the
same body for what aiohttp refuses itself: no route (``NOT_FOUND``), a method not routed
(``METHOD_NOT_ALLOWED``), a body too large (413), and a request head it cannot parse or that
is too long (``malformed``, answered by the listener: ``http_server.py``), never echoing the
request."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)

from ..errors import ERROR_CLASSES, C2CError, CallFailed, InvalidParams

log = logging.getLogger("c2c_ami.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# code -> HTTP status
HTTP_STATUS: dict[str, int] = {
    "INVALID_PARAMS": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "USER_NOT_REGISTERED": 404,
    "USER_BUSY": 409,
    "NO_ANSWER": 409,
    "CALL_CANCELLED": 409,
    "CALL_NOT_FOUND": 404,
    "CALL_NOT_ANSWERED": 409,
    "CALL_BUSY": 409,
    "NOT_RECORDING": 409,
    "HOOK_NOT_FOUND": 404,
    "TOO_MANY_HOOKS": 409,
    "RATE_LIMITED": 429,
    "CALL_FAILED": 502,
    "PBX_UNAVAILABLE": 503,
    "PHONE_BLACKLISTED": 403,
    "CALLER_ID_NOT_ALLOWED": 403,
    "BLACKLIST_NOT_FOUND": 404,
    "STORE_UNAVAILABLE": 503,
}
assert set(HTTP_STATUS) == {cls.code for cls in ERROR_CLASSES}, "every error code has its HTTP status"
# aiohttp's own refusals of a request no route takes: HTTP's words, not the domain's
ROUTING_CODES: dict[int, str] = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="c2c-ami"'}   # RFC 6750: a 401 names the scheme


def status_of(error: C2CError) -> int:
    return HTTP_STATUS.get(error.code, 500)


def headers_of(error: C2CError) -> dict[str, str]:
    headers = dict(_CHALLENGE) if error.code == "UNAUTHORIZED" else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return headers


def failure_body(error: C2CError) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "fail", "error": error.code, "message": error.message}
    if error.call_id:
        body["call_id"] = error.call_id
    return body


def failure_response(error: C2CError, *, extra: dict[str, Any] | None = None,
                     status: int | None = None) -> web.Response:
    """The answer to a request that failed with ``error`` (``extra`` keys first: the carrier's
    v2 ``"code": "1"``); ``status`` overrides the table (aiohttp's own 413)."""
    body = {**extra, **failure_body(error)} if extra else failure_body(error)
    return web.json_response(body, status=status or status_of(error), headers=headers_of(error))


class ClientGone(Exception):
    """The client closed the connection before its request body was complete."""


def http_failure(exc: web.HTTPException, request: web.BaseRequest) -> web.Response:
    """aiohttp's own refusal (an ``HTTPException``: no route, a method not routed, a body
    too large), in the API's failure body; its headers (``Allow``) kept."""
    headers = {name: value for name, value in exc.headers.items() if name.lower() == "allow"}
    if exc.status in ROUTING_CODES:
        message = (f"{request.method} is not allowed here (allowed: {exc.headers.get('Allow', '')})"
                   if exc.status == 405 else "no such endpoint (see GET /v1/openapi.json)")
        return web.json_response({"status": "fail", "error": ROUTING_CODES[exc.status], "message": message},
                                 status=exc.status, headers=headers)
    if exc.status == 413:
        error = InvalidParams(f"body: larger than {request.client_max_size} bytes")
    else:
        error = InvalidParams(f"request: {exc.reason.lower()}")
    return failure_response(error, status=exc.status)


def malformed(status: int, exc: BaseException | None, limits: Any) -> web.Response:
    """The answer to a request aiohttp could not take (``status`` 400 and the parser's
    error; 500 for an error no middleware answered): never the request's bytes."""
    if status >= 500 or not isinstance(exc, HttpProcessingError):
        return failure_response(CallFailed("internal error"), status=status if status >= 500 else 500)
    if isinstance(exc, LineTooLong):
        what = (f"request: its line or a header is too long (longer than {limits.max_line_size} bytes: "
                "http.max_line_size, http.max_field_size)")
    elif "Too many headers" in str(exc):
        what = f"request: more than {limits.max_headers} headers (http.max_headers)"
    elif isinstance(exc, InvalidHeader):
        what = "request: a header is malformed"
    elif isinstance(exc, InvalidURLError):
        what = "request: the URL is malformed"
    elif isinstance(exc, BadStatusLine):
        what = "request: not an HTTP/1.1 request line"
    elif isinstance(exc, PayloadEncodingError):
        what = "body: malformed or incomplete (Content-Length, Transfer-Encoding)"
    else:
        what = "request: malformed HTTP request"
    return failure_response(InvalidParams(what), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every C2CError (and any bug), and aiohttp's own refusals, into the API's failure body."""
    try:
        return await handler(request)
    except C2CError as exc:
        return failure_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_failure(exc, request)
    except ClientGone:      # nobody to answer; nothing wrong on our side
        log.info("%s %s: client closed the connection mid-body", request.method, request.path)
        return failure_response(InvalidParams("body: incomplete"))
    except Exception:       # one line; the traceback at most once a minute (log_filters.py)
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return failure_response(CallFailed("internal error"), status=500)
