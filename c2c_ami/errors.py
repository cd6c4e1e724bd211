"""Domain errors: one class per failure code of the API, each carrying its code and facts.

Services raise these; what each code means over HTTP (status, headers, the failure body) is
decided in one table, ``api/errors.py``. The facts an error carries: its message, the call it
is about (``call_id``, when a call was tried) and when a retry may succeed (``retry_after``,
seconds, when that is known).
"""
from __future__ import annotations


class C2CError(Exception):
    code = "CALL_FAILED"

    def __init__(self, message: str, *, call_id: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.call_id = call_id
        self.retry_after = retry_after


class InvalidParams(C2CError):
    """A parameter is missing, malformed or dangerous; the message names it."""
    code = "INVALID_PARAMS"


class Unauthorized(C2CError):
    """No valid credential: the token or api key is missing, wrong, expired or tampered with."""
    code = "UNAUTHORIZED"


class Forbidden(C2CError):
    """The token is valid but the extension or hotline belongs to no tenant of it."""
    code = "FORBIDDEN"


class PhoneBlacklisted(C2CError):
    """The number is on the tenant's do-not-call list (or the global one): nothing was dialed."""
    code = "PHONE_BLACKLISTED"


class CallerIdNotAllowed(C2CError):
    """A caller-ID number outside the tenant's ``caller_ids`` (carriers refuse spoofed ones)."""
    code = "CALLER_ID_NOT_ALLOWED"


class BlacklistEntryNotFound(C2CError):
    """No do-not-call entry with this id or number for this tenant."""
    code = "BLACKLIST_NOT_FOUND"


class UserNotRegistered(C2CError):
    """The extension is unknown or has no registered phone."""
    code = "USER_NOT_REGISTERED"


class UserBusy(C2CError):
    """The extension is on a call, ringing, or rejected this one."""
    code = "USER_BUSY"


class NoAnswer(C2CError):
    """The extension rang until the ring timeout (or the sync bound) and nobody picked up."""
    code = "NO_ANSWER"


class CallCancelled(C2CError):
    """DELETE /v1/calls/{call_id} ended the call before the extension answered."""
    code = "CALL_CANCELLED"


class CallNotFound(C2CError):
    """No live call or CDR with this call_id for this tenant."""
    code = "CALL_NOT_FOUND"


class CallNotAnswered(C2CError):
    """Call control needs the customer on the line: the number has not answered (yet)."""
    code = "CALL_NOT_ANSWERED"


class CallBusy(C2CError):
    """The call is in the middle of another call-control action (a transfer rings, a party
    waits in a park) that this one would clash with."""
    code = "CALL_BUSY"


class NotRecording(C2CError):
    """The call has no recording to pause or resume."""
    code = "NOT_RECORDING"


class HookNotFound(C2CError):
    """No webhook with this id for this tenant."""
    code = "HOOK_NOT_FOUND"


class TooManyHooks(C2CError):
    """The tenant already has ``webhooks.max_hooks_per_tenant`` webhooks."""
    code = "TOO_MANY_HOOKS"


class RateLimited(C2CError):
    """A limit was exceeded; ``retry_after`` says when the next request may pass."""
    code = "RATE_LIMITED"


class CallFailed(C2CError):
    """Anything else the PBX reported; the message carries the detail."""
    code = "CALL_FAILED"


class PbxUnavailable(C2CError):
    """The AMI link is down or not logged in: nothing was (or will be) sent."""
    code = "PBX_UNAVAILABLE"

    def __init__(self, message: str, *, call_id: str | None = None, retry_after: int | None = 2) -> None:
        super().__init__(message, call_id=call_id, retry_after=retry_after)


class StoreUnavailable(C2CError):
    """The gateway's store (its database) does not answer: nothing that needs it was done.
    The message never holds the database's address or the driver's words (they are logged)."""
    code = "STORE_UNAVAILABLE"

    def __init__(self, message: str = "the gateway's store is unavailable; retry later", *,
                 call_id: str | None = None, retry_after: int | None = 5) -> None:
        super().__init__(message, call_id=call_id, retry_after=retry_after)


ERROR_CLASSES: tuple[type[C2CError], ...] = (
    InvalidParams, Unauthorized, Forbidden, UserNotRegistered, UserBusy, NoAnswer,
    CallCancelled, CallNotFound, CallNotAnswered, CallBusy, NotRecording, HookNotFound, TooManyHooks, RateLimited,
    CallFailed, PbxUnavailable, PhoneBlacklisted, CallerIdNotAllowed, BlacklistEntryNotFound, StoreUnavailable,
)
_BY_CODE = {cls.code: cls for cls in ERROR_CLASSES}


def error_from(code: str, message: str, call_id: str | None = None, retry_after: int | None = None) -> C2CError:
    """The error an answer kept by code and facts stands for (replayed request keys); a
    ``retry_after`` not kept is the code's own default."""
    cls = _BY_CODE.get(code, CallFailed)
    if retry_after is None:
        return cls(message, call_id=call_id)
    return cls(message, call_id=call_id, retry_after=retry_after)
