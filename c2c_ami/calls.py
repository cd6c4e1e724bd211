"""Live click-to-call calls: their state machine, and the registry that owns them.

A call moves forward only: originating -> ext_ringing -> ext_answered -> dialing ->
number_ringing -> number_answered -> ended (events about one call can arrive out of order,
so a late event never moves it back).

The registry is the only place per-call state lives. Every call leaves it by exactly one
path, ``finish``: when its legs have hung up, when the Originate fails, when its deadline
fires, or when the AMI link drops. So nothing survives its call, and two requests can
never ring one device at the same time.
"""
from __future__ import annotations

import asyncio
import enum
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from .errors import C2CError, CallFailed
from .waits import wait_set


class CallState(enum.Enum):
    ORIGINATING = "originating"          # Originate sent, no channel yet
    EXT_RINGING = "ext_ringing"
    EXT_ANSWERED = "ext_answered"
    DIALING = "dialing"                  # the dialplan is dialing the number
    NUMBER_RINGING = "number_ringing"
    NUMBER_ANSWERED = "number_answered"
    ENDED = "ended"


_ORDER = {state: n for n, state in enumerate(CallState)}

# DialEnd DialStatus of the trunk leg -> why the number was not reached.
NUMBER_FAILURES = {"BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
                   "CHANUNAVAIL": "unavailable", "CANCEL": "cancelled"}


class CallObserver(Protocol):
    """Whoever reports calls outward (webhooks, CDR store)."""

    def call_event(self, call: "Call", event: str) -> None:
        """``event``: ringing, answered, dialing, or ended (the call left the registry)."""


@dataclass(eq=False)
class Call:
    """One click-to-call attempt, identified by ``call_id`` (= Originate ActionID = ChannelId
    = the extension channel's Uniqueid = Linkedid of every leg)."""
    tenant: str
    ext: str
    device: str
    phone: str
    hotline: str
    trunk: str
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: CallState = CallState.ORIGINATING
    ext_channel: str | None = None
    trunk_channel: str | None = None
    trunk_uniqueid: str | None = None
    sip_call_id: str | None = None
    ext_channel_seen: bool = False
    ext_hungup: bool = False
    trunk_hungup: bool = False
    hangup_cause: str | None = None      # extension leg
    hangup_cause_txt: str | None = None
    trunk_cause: str | None = None
    trunk_cause_txt: str | None = None
    hangup_by: str | None = None         # extension, number, api
    dial_status: str | None = None
    ext_failure: str | None = None       # rejected, no_answer, unavailable
    number_failure: str | None = None    # busy, no_answer, congestion, unavailable, cancelled
    cancel_requested: bool = False
    error: C2CError | None = None        # why the extension leg failed, once known
    started_at: float = field(default_factory=time.time)
    ext_answered_at: float | None = None
    number_answered_at: float | None = None
    ended_at: float | None = None
    outcome_known: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    def advance(self, state: CallState) -> bool:
        """Move forward to ``state``; False if the call is already there or past it."""
        if _ORDER[state] <= _ORDER[self.state]:
            return False
        self.state = state
        return True

    def answered(self) -> None:
        """The extension picked up: a synchronous request may now return success."""
        if not self.outcome_known.is_set():
            self.ext_answered_at = time.time()
            self.outcome_known.set()

    def failed(self, error: C2CError) -> None:
        if not self.outcome_known.is_set():
            error.call_id = self.call_id
            self.error = error
            self.outcome_known.set()

    @property
    def status(self) -> str | None:
        """The carrier's CDR status, once the call has ended."""
        if self.state is not CallState.ENDED:
            return None
        if self.number_answered_at is not None:
            return "ANSWERED"
        if self.cancel_requested or self.number_failure == "cancelled":
            return "CANCEL"
        if self.ext_failure == "rejected" or self.number_failure == "busy":
            return "BUSY"
        if self.ext_failure == "no_answer" or self.number_failure == "no_answer":
            return "NO ANSWER"
        return "FAILED"

    @property
    def duration(self) -> int:
        end = self.ended_at or time.time()
        return max(0, round(end - self.started_at))

    @property
    def billsec(self) -> int:
        if self.number_answered_at is None:
            return 0
        end = self.ended_at or time.time()
        return max(0, round(end - self.number_answered_at))

    def record(self) -> dict[str, object]:
        """The call as the API, the webhooks and the CDR store show it."""
        trunk_known = self.trunk_uniqueid is not None
        return {
            "call_id": self.call_id, "tenant": self.tenant, "direction": "outbound",
            "extension": self.ext, "from_number": self.ext, "to_number": self.phone,
            "hotline": self.hotline, "trunk": self.trunk, "state": self.state.value,
            "status": self.status,
            "cause": (self.trunk_cause if trunk_known else self.hangup_cause),
            "cause_txt": (self.trunk_cause_txt if trunk_known else self.hangup_cause_txt),
            "hangup_by": self.hangup_by, "ext_failure": self.ext_failure,
            "number_failure": self.number_failure, "sip_call_id": self.sip_call_id,
            "ext_channel": self.ext_channel, "trunk_channel": self.trunk_channel,
            "time_started": iso(self.started_at), "time_ext_answered": iso(self.ext_answered_at),
            "time_answered": iso(self.number_answered_at), "time_ended": iso(self.ended_at),
            "duration": self.duration, "billsec": self.billsec,
        }


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


class CallRegistry:
    """call_id -> Call, and device -> call_id for the one-call-per-extension rule."""

    def __init__(self, observer: CallObserver | None = None) -> None:
        self._calls: dict[str, Call] = {}
        self._devices: dict[str, str] = {}
        self.observer = observer
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def claimed_devices(self) -> int:
        return len(self._devices)

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def claim(self, call: Call) -> bool:
        """Register the call and its device; False if the device already has a live call."""
        if call.device in self._devices:
            return False
        self._devices[call.device] = call.call_id
        self._calls[call.call_id] = call
        self._empty.clear()
        return True

    def arm(self, call: Call, seconds: float) -> None:
        """(Re)start the call's deadline: past it the call is forgotten as failed."""
        if call.timer is not None:
            call.timer.cancel()
        if call.call_id in self._calls:
            call.timer = asyncio.get_running_loop().call_later(seconds, self._expire, call)

    def _expire(self, call: Call) -> None:
        call.timer = None
        self.finish(call, CallFailed("the PBX reported no outcome for this call in time"))

    def release(self, call: Call) -> bool:
        """Forget a call and free its device; False if it was already gone. Alone, for a
        call refused before its Originate was sent (nothing to report)."""
        if self._calls.pop(call.call_id, None) is None:
            return False
        if self._devices.get(call.device) == call.call_id:
            del self._devices[call.device]
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if not self._calls:
            self._empty.set()
        return True

    def finish(self, call: Call, error: C2CError | None = None) -> None:
        """Remove the call for good, wake anyone waiting on its outcome, report it."""
        if not self.release(call):
            return
        if error is not None:
            call.failed(error)
        call.failed(CallFailed("the call ended before its outcome was known"))
        call.state = CallState.ENDED
        call.ended_at = time.time()
        if self.observer is not None:
            self.observer.call_event(call, "ended")

    async def wait_empty(self, timeout: float) -> bool:
        """Wait (bounded) until no call is live: for shutdown and for tests."""
        return await wait_set(self._empty, timeout)

    def finish_all(self, error_factory) -> int:
        """The AMI link dropped: no event about these calls can arrive any more."""
        calls = list(self._calls.values())
        for call in calls:
            self.finish(call, error_factory())
        return len(calls)

    def live(self, tenant: str | None = None) -> list[Call]:
        return [c for c in self._calls.values() if tenant is None or c.tenant == tenant]
