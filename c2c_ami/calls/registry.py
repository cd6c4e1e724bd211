"""The registry of live calls: the only place per-call state lives while a call is up.

Every call leaves it by ``finish`` (or ``finish_unseen``): when it is over (``settle`` sees
that after each event), when its Originate fails, when its deadline fires, or when the PBX,
asked again after a lost link or a restart, no longer has it. So nothing survives its call,
and two requests can never ring one device at once.

The registry is also where a call is reported: after each change (``settle``) its observer
gets the steps the call took and its facts, once; at the end, the ended call, once.

Each live call has one deadline, chosen by its phase: waiting for the PBX's outcome
(ring timeout plus a grace), talking (``max_call_seconds``), waiting for the number's leg
to report its end after the extension's did, or unobserved (its PBX link is down:
``max_call_seconds``, then it is ended as unobserved). Past it the call is let go.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..errors import C2CError, CallFailed
from ..waits import wait_set
from .call import Call, CallObserver
from .phones import AutoAnswerTally

NUMBER_HANGUP_WAIT = 2.0    # after the extension leg ended, wait this long for the number's


class CallRegistry:
    """call_id -> Call, and device -> call_id for the one-call-per-extension rule."""

    def __init__(self, observer: CallObserver | None = None, *, outcome_wait: float = 35.0,
                 max_call_seconds: float = 4 * 3600.0) -> None:
        self.observer = observer
        self.outcome_wait = outcome_wait
        self.max_call_seconds = max_call_seconds
        self._calls: dict[str, Call] = {}
        self._devices: dict[tuple[str, str], str] = {}    # (pbx, device) -> call_id
        self._legs: dict[str, str] = {}       # a call-control leg's Uniqueid -> its call_id
        self._empty = asyncio.Event()
        self._empty.set()
        self.auto_answer = AutoAnswerTally()     # per phone User-Agent, counted at each call's end

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def claimed_devices(self) -> int:
        return len(self._devices)

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def find(self, pbx: str, call_id: str) -> Call | None:
        """The live call ``call_id`` placed on ``pbx``, if any (events of one PBX never touch
        another PBX's calls)."""
        call = self._calls.get(call_id) or self._calls.get(self._legs.get(call_id, ""))
        return call if call is not None and call.pbx == pbx else None

    def add_leg(self, call: Call, uniqueid: str) -> None:
        """Events of ``uniqueid`` (a transfer target's, a supervisor's leg) belong to ``call``:
        the PBX links such a leg to the call only once bridged with it, or never."""
        if call.call_id in self._calls:
            self._legs[uniqueid] = call.call_id

    def just_ended(self, call_id: str) -> dict[str, Any] | None:
        """The record of a call that has left the registry but whose CDR is still being
        written (so a read right after the end never misses it)."""
        return self.observer.unstored_end(call_id) if self.observer is not None else None

    def live(self, tenant: str | None = None, *, pbx: str | None = None) -> list[Call]:
        return [c for c in self._calls.values()
                if (tenant is None or c.tenant == tenant) and (pbx is None or c.pbx == pbx)]

    def claim(self, call: Call) -> bool:
        """Register the call and its device; False if the device already has a live call."""
        if (call.pbx, call.device) in self._devices:
            return False
        self._devices[call.pbx, call.device] = call.call_id
        self._calls[call.call_id] = call
        self._empty.clear()
        return True

    def adopt(self, call: Call) -> bool:
        """Track again a call placed before a restart (its facts came from the store);
        False if it is already tracked."""
        if call.call_id in self._calls:
            return False
        self._devices.setdefault((call.pbx, call.device), call.call_id)
        self._calls[call.call_id] = call
        for uniqueid in call.leg_ids():
            self._legs[uniqueid] = call.call_id
        self._empty.clear()
        return True

    async def written(self, timeout: float) -> bool:
        """Everything reported so far is in the store (bounded wait; see ``CallObserver``)."""
        return await self.observer.written(timeout) if self.observer is not None else True

    def opening_events(self, call: Call) -> tuple[Any, ...]:
        """What the observer logs of a call as placed, for its claim to store (several instances)."""
        return self.observer.opening_events(call) if self.observer is not None else ()

    def stored(self, call: Call) -> None:
        """The call's facts as they are now were stored with its claim (several instances)."""
        if self.observer is not None:
            self.observer.call_stored(call)

    def suspend(self, pbx: str, since: float) -> list[Call]:
        """The PBX's link dropped: its calls are unobserved until it is asked again; they
        keep only the unobserved deadline."""
        calls = self.live(pbx=pbx)
        for call in calls:
            call.unobserved(since)
            self.suspend_call(call)
        return calls

    def suspend_call(self, call: Call) -> None:
        """An unobserved call keeps only the unobserved deadline (and its facts say since when)."""
        self._deadline(call, "unobserved", self.max_call_seconds)
        self._report(call)

    def settle(self, call: Call, at: float | None = None) -> None:
        """After something happened to a live call (at ``at``): let it go if it is over, else
        report what changed and keep the deadline of its phase."""
        if call.call_id not in self._calls:
            return
        if call.over:
            self.finish(call, at=at)
            return
        self._report(call)
        if call.unobserved_since is not None:
            self._deadline(call, "unobserved", self.max_call_seconds)
        elif call.awaiting_number_hangup:
            self._deadline(call, "number_hangup", NUMBER_HANGUP_WAIT)
        elif call.outcome_known.is_set():
            self._deadline(call, "talk", self.max_call_seconds)
        else:
            self._deadline(call, "outcome", self.outcome_wait)

    def release(self, call: Call) -> bool:
        """Forget a call refused before its Originate was sent (nothing to report, but what
        its claim stored is closed); False if it was already gone."""
        if not self.forget(call):
            return False
        if self.observer is not None:
            self.observer.call_dropped(call)
        return True

    def forget(self, call: Call) -> bool:
        """Forget a call and free its device, saying nothing of it (another instance adopted
        it, or the caller reports its end); False if it was already gone."""
        if self._calls.pop(call.call_id, None) is None:
            return False
        if self._devices.get((call.pbx, call.device)) == call.call_id:
            del self._devices[call.pbx, call.device]
        for uniqueid in call.leg_ids():
            if self._legs.get(uniqueid) == call.call_id:
                del self._legs[uniqueid]
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if not self._calls:
            self._empty.set()
        return True

    def finish(self, call: Call, error: C2CError | None = None, *, at: float | None = None) -> None:
        """Remove the call for good, wake anyone waiting on its outcome, report it."""
        if self.forget(call):
            call.end(error, at)
            self._report_end(call)

    def finish_unseen(self, call: Call) -> None:
        """The PBX no longer has the call and nobody saw it end."""
        if self.forget(call):
            call.ended_unseen()
            self._report_end(call)

    def finish_all(self, error_factory: Callable[[], C2CError]) -> int:
        """No event about these calls can arrive any more (the AMI link dropped, or the
        gateway is stopping)."""
        calls = list(self._calls.values())
        for call in calls:
            self.finish(call, error_factory())
        return len(calls)

    async def wait_empty(self, timeout: float) -> bool:
        """Wait (bounded) until no call is live: for shutdown and for tests."""
        return await wait_set(self._empty, timeout)

    def _report(self, call: Call) -> None:
        if self.observer is not None:
            self.observer.call_changed(call, call.take_steps())

    def _report_end(self, call: Call) -> None:
        honoured = call.auto_answer_honoured()
        if honoured is not None:
            self.auto_answer.count(call.auto_answer_user_agent, honoured)
        if self.observer is None:
            return
        steps = call.take_steps()
        if steps:                 # taken on the way out (rare): reported before the end
            self.observer.call_changed(call, steps)
        self.observer.call_ended(call)

    def _deadline(self, call: Call, phase: str, seconds: float) -> None:
        if call.deadline == phase:
            return
        if call.timer is not None:
            call.timer.cancel()
        call.deadline = phase
        call.timer = asyncio.get_running_loop().call_later(seconds, self._expire, call)

    def _expire(self, call: Call) -> None:
        call.timer = None
        if call.deadline == "unobserved":
            self.finish_unseen(call)
        else:
            self.finish(call, CallFailed("the PBX reported no outcome for this call in time"))
