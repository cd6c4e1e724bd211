"""Domain errors: one class per failure code of the API, each carrying its HTTP status.

Handlers and services raise these; a single middleware turns them into
``{"status": "fail", "error": CODE, "message": ...}`` (plus ``call_id`` when a call was tried).
"""
from __future__ import annotations


class C2CError(Exception):
    code = "CALL_FAILED"
    http_status = 500

    def __init__(self, message: str, *, call_id: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.call_id = call_id
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        body = {"status": "fail", "error": self.code, "message": self.message}
        if self.call_id:
            body["call_id"] = self.call_id
        return body


class InvalidParams(C2CError):
    """A parameter is missing, malformed or dangerous; the message names it."""
    code, http_status = "INVALID_PARAMS", 400


class Unauthorized(C2CError):
    code, http_status = "UNAUTHORIZED", 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="c2c-ami"'})


class Forbidden(C2CError):
    """The token is valid but the extension or hotline belongs to no tenant of it."""
    code, http_status = "FORBIDDEN", 403


class UserNotRegistered(C2CError):
    """The extension is unknown or has no registered phone."""
    code, http_status = "USER_NOT_REGISTERED", 404


class UserBusy(C2CError):
    """The extension is on a call, ringing, or rejected this one."""
    code, http_status = "USER_BUSY", 409


class NoAnswer(C2CError):
    """The extension rang until the ring timeout (or the sync bound) and nobody picked up."""
    code, http_status = "NO_ANSWER", 409


class CallCancelled(C2CError):
    """DELETE /v1/calls/{call_id} ended the call before the extension answered."""
    code, http_status = "CALL_CANCELLED", 409


class CallNotFound(C2CError):
    """No live call or CDR with this call_id for this tenant."""
    code, http_status = "CALL_NOT_FOUND", 404


class HookNotFound(C2CError):
    """No webhook with this id for this tenant."""
    code, http_status = "HOOK_NOT_FOUND", 404


class TooManyHooks(C2CError):
    """The tenant already has ``webhooks.max_hooks_per_tenant`` webhooks."""
    code, http_status = "TOO_MANY_HOOKS", 409


class RateLimited(C2CError):
    code, http_status = "RATE_LIMITED", 429


class CallFailed(C2CError):
    """Anything else the PBX reported; the message carries the detail."""
    code, http_status = "CALL_FAILED", 502


class PbxUnavailable(C2CError):
    """The AMI link is down or not logged in: nothing was (or will be) sent."""
    code, http_status = "PBX_UNAVAILABLE", 503

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message, call_id=call_id, headers={"Retry-After": "2"})


ERROR_CLASSES: tuple[type[C2CError], ...] = (
    InvalidParams, Unauthorized, Forbidden, UserNotRegistered, UserBusy, NoAnswer,
    CallCancelled, CallNotFound, HookNotFound, TooManyHooks, RateLimited, CallFailed, PbxUnavailable,
)
_BY_CODE = {cls.code: cls for cls in ERROR_CLASSES}


def error_from(code: str, message: str, call_id: str | None = None) -> C2CError:
    """The error an answer kept by code and message stands for (shared request keys)."""
    cls = _BY_CODE.get(code, CallFailed)
    if cls is Unauthorized:
        return Unauthorized(message)
    if cls is PbxUnavailable:
        return PbxUnavailable(message, call_id=call_id)
    return cls(message, call_id=call_id)
