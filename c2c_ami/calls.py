"""Live click-to-call calls: their state, and the registry that owns them.

The registry is the only place per-call state lives. Every call leaves it by exactly one
path, ``finish``: when its extension leg hangs up after the outcome is known, when the
Originate fails, when its deadline fires, or when the AMI link drops. So nothing survives
its call, and two requests can never ring one device at the same time.
"""
from __future__ import annotations

import asyncio
import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from .errors import C2CError, CallFailed


class CallState(enum.Enum):
    ORIGINATING = "originating"          # Originate sent, no channel yet
    EXT_RINGING = "ext_ringing"
    EXT_ANSWERED = "ext_answered"
    DIALING = "dialing"                  # the dialplan is dialing the number
    NUMBER_RINGING = "number_ringing"
    NUMBER_ANSWERED = "number_answered"
    ENDED = "ended"


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
    ext_channel_seen: bool = False
    ext_hungup: bool = False
    hangup_cause: str | None = None
    dial_status: str | None = None
    error: C2CError | None = None        # why the extension leg failed, once known
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    outcome_known: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    def answered(self) -> None:
        """The extension picked up: a synchronous request may now return success."""
        if not self.outcome_known.is_set():
            self.answered_at = time.time()
            self.state = max_state(self.state, CallState.EXT_ANSWERED)
            self.outcome_known.set()

    def failed(self, error: C2CError) -> None:
        if not self.outcome_known.is_set():
            error.call_id = self.call_id
            self.error = error
            self.outcome_known.set()


_ORDER = list(CallState)


def max_state(current: CallState, new: CallState) -> CallState:
    """States only move forward (events about one call may arrive out of order)."""
    return new if _ORDER.index(new) > _ORDER.index(current) else current


class CallRegistry:
    """call_id -> Call, and device -> call_id for the one-call-per-extension rule."""

    def __init__(self, on_finish: Callable[[Call], None] | None = None) -> None:
        self._calls: dict[str, Call] = {}
        self._devices: dict[str, str] = {}
        self._on_finish = on_finish
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

    def finish(self, call: Call, error: C2CError | None = None) -> None:
        """Remove the call for good and wake anyone waiting on its outcome."""
        if self._calls.pop(call.call_id, None) is None:
            return
        if self._devices.get(call.device) == call.call_id:
            del self._devices[call.device]
        if not self._calls:
            self._empty.set()
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if error is not None:
            call.failed(error)
        call.failed(CallFailed("the call ended before its outcome was known"))
        call.state = CallState.ENDED
        call.ended_at = time.time()
        if self._on_finish is not None:
            self._on_finish(call)

    async def wait_empty(self, timeout: float) -> bool:
        """Wait (bounded) until no call is live: for shutdown and for tests."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def finish_all(self, error_factory: Callable[[], C2CError]) -> int:
        """The AMI link dropped: no event about these calls can arrive any more."""
        calls = list(self._calls.values())
        for call in calls:
            self.finish(call, error_factory())
        return len(calls)

    def live(self, tenant: str | None = None) -> list[Call]:
        return [c for c in self._calls.values() if tenant is None or c.tenant == tenant]
