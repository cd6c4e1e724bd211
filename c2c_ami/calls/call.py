"""One click-to-call and its state machine: the only code that changes a call's state.

A call moves forward only: originating -> ext_ringing -> ext_answered -> dialing ->
number_ringing -> number_answered -> ended (events about one call can arrive out of order,
so a late event never moves it back). Each method below is one thing that happened to the
call, in the domain's words (``calls/legs.py``); the AMI event translator (``pbx/events.py``),
the service and the registry call them and never write a field themselves.

Every step forward is noted in the call (``take_steps``); the registry, which settles the
call after each change, reports the steps and the changed facts to the call's observer
(webhooks, logs, the store) in one go, and the end once, when it lets the call go.
"""
from __future__ import annotations

import asyncio
import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import C2CError, CallCancelled, CallFailed, NoAnswer, UserBusy, UserNotRegistered
from .legs import ExtLegFailure, Leg, NumberFailure

__all__ = ["Call", "CallObserver", "CallState", "CdrStatus", "ExtFailure", "ExtLegFailure", "HangupBy",
           "Leg", "NumberFailure", "Step"]


class CallState(enum.Enum):
    ORIGINATING = "originating"          # Originate sent, no channel yet
    EXT_RINGING = "ext_ringing"
    EXT_ANSWERED = "ext_answered"
    DIALING = "dialing"                  # the dialplan is dialing the number
    NUMBER_RINGING = "number_ringing"
    NUMBER_ANSWERED = "number_answered"
    ENDED = "ended"


_ORDER = {state: n for n, state in enumerate(CallState)}


# The values a call record shows (docs/api.md, "Call states" and "The call record").
HangupBy = Literal["extension", "number", "api", "pbx"]
ExtFailure = Literal["rejected", "no_answer", "unavailable"]
CdrStatus = Literal["ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CANCEL"]
# What gets announced while a call is live (its end is announced once, apart: ``CallObserver``).
Step = Literal["ringing", "answered", "dialing"]


# ExtLegFailure -> (API error, its message, the record's ext_failure)
_EXT_FAILURES: dict[ExtLegFailure, tuple[type[C2CError], str, ExtFailure]] = {
    ExtLegFailure.REJECTED: (UserBusy, "the extension rejected the call or is busy", "rejected"),
    ExtLegFailure.NO_ANSWER: (NoAnswer, "the extension did not answer within the ring timeout", "no_answer"),
    ExtLegFailure.NO_RESPONSE: (UserNotRegistered, "the extension's phone is registered but did not respond "
                                "(no ringing within the ring timeout): unreachable", "unavailable"),
    ExtLegFailure.NOT_REGISTERED: (UserNotRegistered, "the extension has no registered phone", "unavailable"),
    ExtLegFailure.CONGESTION: (CallFailed, "the PBX reported congestion calling the extension", "unavailable"),
    ExtLegFailure.OTHER: (CallFailed, "the PBX could not call the extension", "unavailable"),
}


# The causes the gateway states itself, in Asterisk's words (its ``Cause-txt``).
CANCEL_CAUSE = "16"        # the API hung up or cancelled: sent to Asterisk as the Hangup's Cause
NO_RESPONSE_CAUSE = "18"   # nobody answered the INVITE at all within the time (no 180/183)
NO_ANSWER_CAUSE = "19"     # it rang for the whole ring or dial timeout
CAUSE_TEXTS = {CANCEL_CAUSE: "Normal Clearing", NO_RESPONSE_CAUSE: "No user responding",
               NO_ANSWER_CAUSE: "User alerting, no answer"}
_PBX_TIMEOUTS = {ExtLegFailure.NO_ANSWER: NO_ANSWER_CAUSE, ExtLegFailure.NO_RESPONSE: NO_RESPONSE_CAUSE}


class CallObserver(Protocol):
    """Whoever reports calls outward (webhooks, CDR store, logs)."""

    def call_changed(self, call: Call, steps: list[tuple[Step, CallState]]) -> None:
        """Something happened to the live call: the steps it took since it was last reported
        (each with the state it reached, in order; often none), and its durable facts may
        have changed."""

    def call_ended(self, call: Call) -> None:
        """Once, after the call left the registry."""

    def call_stored(self, call: Call) -> None:
        """The call's facts as they are now are in the store already (its claim wrote them):
        nothing to write until they change."""

    def unstored_end(self, call_id: str) -> dict[str, Any] | None:
        """The record of a call that ended and whose CDR is not stored yet, if any."""


# The fields ``facts`` keeps (besides the state): everything but runtime plumbing and the
# waiting request's error.
_DURABLE = ("tenant", "ext", "device", "phone", "hotline", "trunk", "call_id", "pbx", "ext_channel",
            "trunk_channel", "trunk_uniqueid", "sip_call_id", "ext_channel_seen", "ext_hungup", "trunk_hungup",
            "hangup_cause", "hangup_cause_txt", "trunk_cause", "trunk_cause_txt", "hangup_by", "ext_failure",
            "number_failure", "cancel_requested", "started_at", "ext_answered_at", "number_answered_at",
            "unobserved_since", "customer_id", "ext_alerted", "number_alerted", "pbx_cause", "ext_failure_reason")


@dataclass(eq=False, slots=True)
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
    pbx: str = "default"
    customer_id: str | None = None       # the CRM's customer the call is about, when given
    state: CallState = CallState.ORIGINATING
    ext_channel: str | None = None
    trunk_channel: str | None = None
    trunk_uniqueid: str | None = None
    sip_call_id: str | None = None
    ext_channel_seen: bool = False
    ext_hungup: bool = False
    ext_alerted: bool = False            # the phone said it rings or progresses (180/183): alive
    ext_failure_reason: str | None = None  # OriginateResponse Reason, held until the channel's Hangup
    number_alerted: bool = False         # the called side sent 180 or 183
    trunk_hungup: bool = False
    hangup_cause: str | None = None      # extension leg
    hangup_cause_txt: str | None = None
    trunk_cause: str | None = None
    trunk_cause_txt: str | None = None
    hangup_by: HangupBy | None = None
    pbx_cause: str | None = None         # the cause of an end the PBX itself decided (a timeout)
    ext_failure: ExtFailure | None = None
    number_failure: NumberFailure | None = None
    cancel_requested: bool = False
    ended_unobserved: bool = False       # it ended while the gateway could not see it
    unobserved_since: float | None = None   # the PBX link is down (or the gateway was) since
    error: C2CError | None = None        # why the extension leg failed, once known
    started_at: float = field(default_factory=time.time)
    ext_answered_at: float | None = None
    number_answered_at: float | None = None
    ended_at: float | None = None
    outcome_known: asyncio.Event = field(default_factory=asyncio.Event)
    # set when a waiting sync request has its answer: the outcome, or the call went unobserved
    wake_waiters: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)   # the registry's
    deadline: str | None = field(default=None, repr=False)               # the registry's
    steps: list[tuple[Step, CallState]] = field(default_factory=list, repr=False)   # not yet reported

    # -- questions -----------------------------------------------------------------------------
    def leg_of(self, uniqueid: str | None) -> Leg | None:
        """Which of this call's channels a Uniqueid names, if any."""
        if uniqueid is None:
            return None
        if uniqueid == self.call_id:
            return Leg.EXTENSION
        if uniqueid == self.trunk_uniqueid:
            return Leg.NUMBER
        return None

    @property
    def over(self) -> bool:
        """Nothing more can happen: the extension leg failed, or it ended after its outcome
        was known and the number's leg (if there is one) ended too."""
        if self.error is not None:
            return True
        return (self.ext_hungup and self.outcome_known.is_set()
                and (self.trunk_uniqueid is None or self.trunk_hungup))

    @property
    def awaiting_number_hangup(self) -> bool:
        """The extension leg ended; the number's leg has yet to report its own end."""
        return (self.ext_hungup and self.outcome_known.is_set()
                and self.trunk_uniqueid is not None and not self.trunk_hungup)

    # -- the extension's leg -------------------------------------------------------------------
    def ext_leg_created(self, channel: str | None) -> None:
        self.ext_channel = channel
        self.ext_channel_seen = True

    def ext_leg_seen(self) -> None:
        """A state change of the extension's channel: it exists (so a failure with no
        channel at all can be told from a rejection)."""
        self.ext_channel_seen = True

    def ext_ringing(self) -> None:
        self.ext_alerted = True
        self._advance(CallState.EXT_RINGING, "ringing")

    def ext_alerting(self) -> None:
        """The phone answered the INVITE with a provisional response (183): it is alive."""
        self.ext_alerted = True

    def ext_answered(self, at: float | None = None) -> None:
        """The extension picked up (``at``: when the gateway learned it; now by default):
        a synchronous request may now return success."""
        if self.outcome_known.is_set():
            return
        self.ext_answered_at = at or time.time()
        self.outcome_known.set()
        self.wake_waiters.set()
        self._advance(CallState.EXT_ANSWERED, "answered")

    def ext_failure_pending(self, reason: str) -> None:
        """The PBX gave up on the extension (OriginateResponse ``reason``) while its channel
        is still up: why is decided when the channel's Hangup (and its cause) comes."""
        self.ext_failure_reason = reason

    def ext_failed(self, why: ExtLegFailure, detail: str = "") -> None:
        """The PBX gave up on the extension (or the API cancelled it while it rang)."""
        if self.outcome_known.is_set():
            return
        if self.cancel_requested:
            self._fail(CallCancelled("the call was cancelled before the extension answered"))
            return
        error_class, message, failure = _EXT_FAILURES[why]
        self.ext_failure = failure
        if why is ExtLegFailure.REJECTED:
            self._hung_up_by("extension")
        elif why in _PBX_TIMEOUTS:
            if self.hangup_by == "extension" and why is ExtLegFailure.NO_RESPONSE:
                self.hangup_by = None   # timer B's HangupRequest (cause 18) was the PBX's, not the phone's
            self._hung_up_by("pbx")
            self.pbx_cause = _PBX_TIMEOUTS[why]
        self._fail(error_class(f"{message} ({detail})" if detail else message))

    # -- the number's leg ----------------------------------------------------------------------
    def number_leg_created(self, uniqueid: str | None, channel: str | None) -> None:
        """The dialplan created the leg to the number (only the first such leg counts)."""
        if self.trunk_uniqueid is not None or uniqueid is None:
            return
        self.trunk_uniqueid = uniqueid
        self.trunk_channel = channel
        self._advance(CallState.DIALING, "dialing")

    def number_ringing(self) -> None:
        self.number_alerted = True
        self._advance(CallState.NUMBER_RINGING, "ringing")

    def number_alerting(self) -> None:
        """The called side sent progress (183, early media) without ringing: it is alive."""
        self.number_alerted = True

    def number_answered(self, at: float | None = None) -> None:
        if self.number_answered_at is None:
            self.number_answered_at = at or time.time()
        self._advance(CallState.NUMBER_ANSWERED, "answered")

    def number_failed(self, failure: NumberFailure) -> None:
        """The number was not reached.  Busy or congestion: the number's side said so. No
        answer: the number's side, if it refused first (a 404 reads NOANSWER too), else the
        PBX's dial timeout ended it, not the number.  Unavailable: the PBX could not reach
        the trunk.  Cancelled: whoever hung up first (the API or the extension) says it."""
        self.number_failure = failure
        if failure in ("busy", "congestion"):
            self._hung_up_by("number")
        elif failure == "no_answer" and self.hangup_by is None:
            self._hung_up_by("pbx")
            self.pbx_cause = NO_ANSWER_CAUSE if self.number_alerted else NO_RESPONSE_CAUSE
        elif failure == "unavailable":
            self._hung_up_by("pbx")

    def sip_call_id_learned(self, sip_call_id: str) -> None:
        self.sip_call_id = sip_call_id

    # -- the end -------------------------------------------------------------------------------
    def hangup_requested(self, leg: Leg) -> None:
        """That side sent the first hangup (a BYE or CANCEL from its phone)."""
        self._hung_up_by("extension" if leg is Leg.EXTENSION else "number")

    def cancel(self) -> None:
        """``DELETE /v1/calls/{id}``: before the number answered this is a cancel (a waiting
        sync request gets CALL_CANCELLED); after, a plain hangup by the API."""
        self.cancel_requested = self.number_answered_at is None
        self._hung_up_by("api")

    def leg_hung_up(self, leg: Leg, cause: str | None, cause_txt: str | None) -> None:
        if leg is Leg.EXTENSION:
            self.ext_hungup = True
            self.hangup_cause, self.hangup_cause_txt = cause, cause_txt
        else:
            self.trunk_hungup = True
            self.trunk_cause, self.trunk_cause_txt = cause, cause_txt

    def end(self, error: C2CError | None = None, at: float | None = None) -> None:
        """The registry let the call go: wake anyone waiting on its outcome (the registry
        reports the end). ``error`` says why, if the outcome was still unknown."""
        self._fail(error or CallFailed("the call ended before its outcome was known"))
        self.state = CallState.ENDED
        self.ended_at = at or time.time()

    def unobserved(self, since: float) -> None:
        """The gateway lost sight of the call (its PBX link dropped): nothing is known of it
        from ``since`` until the PBX is asked again."""
        if self.unobserved_since is None:
            self.unobserved_since = since
        self.wake_waiters.set()

    def observed(self) -> None:
        """The PBX was asked again and still has the call."""
        self.unobserved_since = None

    def ended_unseen(self) -> None:
        """The PBX no longer has the call and nobody saw it end: keep the last known state,
        end it when it was last known to be up, and say so."""
        self.ended_unobserved = True
        self._fail(CallFailed("the call ended while the gateway could not observe it"))
        last_seen = self.unobserved_since or time.time()
        self.state = CallState.ENDED
        self.ended_at = max(last_seen, self.number_answered_at or 0.0, self.ext_answered_at or 0.0,
                            self.started_at)

    # -- what the record shows -----------------------------------------------------------------
    @property
    def status(self) -> CdrStatus | None:
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
    def cause(self) -> str | None:
        """The Q.850 cause of the end, the same on every channel driver: 16 when the API hung
        up or cancelled (the gateway asks Asterisk for 16); the Q.850 cause of a timeout the
        PBX decided (19 no answer, 18 no response: Asterisk reports 0, 16 or 19 for these
        depending on the driver); otherwise the cause Asterisk reported for the leg that tells
        how the call ended: the number's, if dialed."""
        if self._hung_up_by_api:
            return CANCEL_CAUSE
        if self.pbx_cause is not None:
            return self.pbx_cause
        return self.trunk_cause if self.trunk_uniqueid is not None else self.hangup_cause

    @property
    def _hung_up_by_api(self) -> bool:
        """The gateway hung up a channel with cause 16 (a cancel before any channel existed
        sent no Hangup: then Asterisk's own cause, if any, is the record's)."""
        return self.hangup_by == "api" and self.ext_channel_seen

    @property
    def cause_txt(self) -> str | None:
        if self._hung_up_by_api or self.pbx_cause is not None:
            return CAUSE_TEXTS[self.cause or ""]
        return self.trunk_cause_txt if self.trunk_uniqueid is not None else self.hangup_cause_txt

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

    # -- durable form ---------------------------------------------------------------------------
    def facts(self) -> dict[str, Any]:
        """What must outlive the process for the call to be tracked again after a restart."""
        facts = {name: getattr(self, name) for name in _DURABLE}
        facts["state"] = self.state.value
        return facts

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> Call:
        """The call as ``facts`` left it; its outcome is known once the extension answered."""
        call = cls(**{name: facts[name] for name in _DURABLE if name in facts},
                   state=CallState(facts.get("state", CallState.ORIGINATING.value)))
        if call.ext_answered_at is not None:
            call.outcome_known.set()
        return call

    # -- internals -----------------------------------------------------------------------------
    def take_steps(self) -> list[tuple[Step, CallState]]:
        """The steps taken since last asked (the registry reports them), oldest first."""
        steps, self.steps = self.steps, []
        return steps

    def _advance(self, state: CallState, step: Step) -> None:
        if _ORDER[state] <= _ORDER[self.state]:
            return
        self.state = state
        self.steps.append((step, state))

    def _hung_up_by(self, party: HangupBy) -> None:
        """The first to hang up is the one the record names; later reports do not change it."""
        if self.hangup_by is None:
            self.hangup_by = party

    def _fail(self, error: C2CError) -> None:
        if not self.outcome_known.is_set():
            error.call_id = self.call_id
            self.error = error
            self.outcome_known.set()
            self.wake_waiters.set()
