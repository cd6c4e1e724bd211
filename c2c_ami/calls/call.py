"""One click-to-call and its state machine: the only code that changes a call's state.

A call moves forward only: originating -> ext_ringing -> ext_answered -> dialing ->
number_ringing -> number_answered -> ended (events about one call can arrive out of order,
so a late event never moves it back). Once the customer talks, call control may change who
is with them (a transfer, a park) and who listens (supervisors) without a new state: the call
goes on under the same call_id until the customer's side has ended and nobody waits. Each
method below is one thing that happened to the call, in the domain's words
(``calls/legs.py``); the AMI event translator (``pbx/events.py``), the services and the
registry call them and never write a field themselves.

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
from .legs import (
    ExtLegFailure,
    Leg,
    Mask,
    NumberFailure,
    Park,
    Role,
    Supervision,
    Transfer,
    from_facts,
    to_facts,
)

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

    def opening_events(self, call: Call) -> tuple[Any, ...]:
        """The call's first events (as placed), for its claim to store with it; ``call_stored``
        follows once the claim took them."""

    def call_stored(self, call: Call) -> None:
        """The call's facts as they are now, and its ``opening_events``, are in the store
        already (its claim wrote them): nothing to write until they change."""

    def call_dropped(self, call: Call) -> None:
        """A call refused before its Originate was sent (``CallRegistry.release``): nothing
        is reported of it, but what its claim stored (``opening_events``) is closed."""

    def unstored_end(self, call_id: str) -> dict[str, Any] | None:
        """The record of a call that ended and whose CDR is not stored yet, if any."""

    async def written(self, timeout: float) -> bool:
        """Wait (bounded) until everything reported so far is stored; False if it is not."""


# The fields ``facts`` keeps (besides the state): everything but runtime plumbing and the
# waiting request's error.
_DURABLE = ("tenant", "ext", "device", "phone", "hotline", "trunk", "call_id", "pbx", "ext_channel",
            "trunk_channel", "trunk_uniqueid", "sip_call_id", "ext_channel_seen", "ext_hungup", "trunk_hungup",
            "hangup_cause", "hangup_cause_txt", "trunk_cause", "trunk_cause_txt", "hangup_by", "ext_failure",
            "number_failure", "cancel_requested", "started_at", "ext_answered_at", "number_answered_at",
            "unobserved_since", "customer_id", "ext_alerted", "number_alerted", "pbx_cause", "ext_failure_reason",
            "agent_uniqueid", "agent_channel", "agent_released", "former_legs", "record", "recording_started_at",
            "auto_answer_asked", "auto_answer_user_agent", "ext_channel_at")
# List facts: call control's transfers, parks, supervisors and recording masks.
_DURABLE_LISTS: dict[str, type] = {"transfers": Transfer, "parks": Park, "supervisors": Supervision,
                                   "masks": Mask}

# Auto-answer was honoured if the phone answered within this many seconds of its channel's
# creation (the INVITE); a phone that rang longer ignored the header.
AUTO_ANSWER_WITHIN = 1.0


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
    auto_answer_asked: bool = False      # the INVITE to the extension carried auto-answer headers
    auto_answer_user_agent: str | None = None   # the phone's User-Agent then, if known
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
    ext_channel_at: float | None = None  # when the extension's channel (its INVITE) was created
    ext_answered_at: float | None = None
    number_answered_at: float | None = None
    ended_at: float | None = None
    outcome_known: asyncio.Event = field(default_factory=asyncio.Event)
    # set when a waiting sync request has its answer: the outcome, or the call went unobserved
    wake_waiters: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)   # the registry's
    deadline: str | None = field(default=None, repr=False)               # the registry's
    steps: list[tuple[Step, CallState]] = field(default_factory=list, repr=False)   # not yet reported
    # -- call control (``calls/control.py``) --
    agent_uniqueid: str | None = None    # the agent leg with the customer, when not the extension's
    agent_channel: str | None = None     # (a customer transfer put another extension there)
    agent_released: bool = False         # the agent side left the call (a transfer took it away)
    former_legs: dict[str, str] = field(default_factory=dict)    # uniqueid -> channel, still up
    transfers: list[Transfer] = field(default_factory=list)
    parks: list[Park] = field(default_factory=list)
    supervisors: list[Supervision] = field(default_factory=list)
    record: bool = False                 # recording asked for this call
    recording_started_at: float | None = None
    masks: list[Mask] = field(default_factory=list)
    action_done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)   # a transfer resolved

    # -- questions -----------------------------------------------------------------------------
    @property
    def agent_id(self) -> str:
        """The Uniqueid of the agent leg with the customer: the extension's (= call_id) until a
        customer transfer put another extension's leg there."""
        return self.agent_uniqueid or self.call_id

    def leg_of(self, uniqueid: str | None) -> Leg | None:
        """Which of this call's two legs a Uniqueid names, if any."""
        if uniqueid is None:
            return None
        if uniqueid == self.agent_id:
            return Leg.EXTENSION
        if uniqueid == self.trunk_uniqueid:
            return Leg.NUMBER
        return None

    def role_of(self, uniqueid: str | None) -> Role | None:
        """What a Uniqueid is to this call: its agent or customer leg, a transfer target's or a
        supervisor's leg, or an agent leg call control took out of the call."""
        leg = self.leg_of(uniqueid)
        if leg is not None:
            return Role.AGENT if leg is Leg.EXTENSION else Role.CUSTOMER
        if uniqueid is None:
            return None
        if any(t.uniqueid == uniqueid and t.answered is None for t in self.transfers):
            return Role.TRANSFER
        if any(s.uniqueid == uniqueid for s in self.supervisors):
            return Role.SUPERVISOR
        if uniqueid in self.former_legs:
            return Role.FORMER_AGENT
        return None

    def leg_ids(self) -> list[str]:
        """The Uniqueids, other than call_id, whose events belong to this call (the PBX links
        a transfer target's or a supervisor's leg to the call only once bridged, or never)."""
        return [t.uniqueid for t in self.transfers] + [s.uniqueid for s in self.supervisors]

    @property
    def pending_transfer(self) -> Transfer | None:
        return next((t for t in self.transfers if t.answered is None), None)

    @property
    def park(self) -> Park | None:
        """The park in progress: a party waits."""
        return next((p for p in self.parks if p.outcome is None), None)

    @property
    def final_ext(self) -> str:
        """Who the customer talked to last: the extension of the last customer transfer that
        was answered, else the call's own."""
        answered = [t for t in self.transfers if t.answered and t.legs == "bleg"]
        return answered[-1].ext if answered else self.ext

    @property
    def customer_answered(self) -> bool:
        return self.number_answered_at is not None

    @property
    def customer_up(self) -> bool:
        return self.customer_answered and not self.trunk_hungup

    @property
    def current_agent_channel(self) -> str | None:
        """The agent leg's channel now (the extension's, or a transfer target's)."""
        return self.agent_channel or self.ext_channel

    @property
    def recording_masked(self) -> bool:
        return bool(self.masks) and self.masks[-1].end is None

    @property
    def _agent_done(self) -> bool:
        return self.ext_hungup or self.agent_released

    @property
    def over(self) -> bool:
        """Nothing more can happen: the extension leg failed, or, its outcome known, the agent
        side and the customer's leg (if there is one) have ended and no party waits in a park."""
        if self.error is not None:
            return True
        return (self.outcome_known.is_set() and self._agent_done and self.park is None
                and (self.trunk_uniqueid is None or self.trunk_hungup))

    @property
    def awaiting_number_hangup(self) -> bool:
        """The agent side ended; the number's leg has yet to report its own end (nothing else
        keeps it: no park, no transfer ringing)."""
        return (self._agent_done and self.outcome_known.is_set() and self.park is None
                and self.pending_transfer is None
                and self.trunk_uniqueid is not None and not self.trunk_hungup)

    @property
    def parked(self) -> bool:
        return self.park is not None

    # -- the extension's leg -------------------------------------------------------------------
    def ext_leg_created(self, channel: str | None, at: float | None = None) -> None:
        self.ext_channel = channel
        self.ext_channel_seen = True
        if at is not None and self.ext_channel_at is None:
            self.ext_channel_at = at

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
        park = self.park
        if park is not None and park.uniqueid == (self.agent_id if leg is Leg.EXTENSION else self.trunk_uniqueid):
            park.outcome = "hung_up"          # the waiting party hung up itself

    def cancel(self) -> None:
        """``DELETE /v1/calls/{id}``: before the number answered this is a cancel (a waiting
        sync request gets CALL_CANCELLED); after, a plain hangup by the API."""
        self.cancel_requested = self.number_answered_at is None
        self._hung_up_by("api")

    def leg_hung_up(self, leg: Leg, cause: str | None, cause_txt: str | None, at: float | None = None) -> None:
        uniqueid: str | None = self.agent_id
        if leg is Leg.EXTENSION:
            self.former_legs.pop(self.agent_id, None)
            self.ext_hungup = True
            self.hangup_cause, self.hangup_cause_txt = cause, cause_txt
        else:
            self.trunk_hungup = True
            self.trunk_cause, self.trunk_cause_txt = cause, cause_txt
            uniqueid = self.trunk_uniqueid
            self._close_mask(at)
        park = self.park
        if park is not None and park.uniqueid == uniqueid:
            if park.outcome is None:          # the waiting party did not hang up: the PBX did
                park.outcome = "timed_out"
                self._hung_up_by("pbx")
            park.time_ended = at or time.time()

    # -- call control: transfers, parks, supervisors, recording ---------------------------------
    def transfer_asked(self, transfer: Transfer) -> None:
        """A transfer to ``transfer.ext`` rings (the gateway originated its leg)."""
        self.transfers.append(transfer)
        self.action_done.clear()

    def transfer_leg_created(self, uniqueid: str, channel: str | None) -> None:
        for transfer in self.transfers:
            if transfer.uniqueid == uniqueid:
                transfer.channel = channel

    def transfer_answered(self, uniqueid: str, at: float | None = None) -> None:
        """The target answered: the PBX bridges it with the party that moves (bleg: the
        customer, who now talks with the target; aleg: the agent, who leaves the call)."""
        transfer = next((t for t in self.transfers if t.uniqueid == uniqueid and t.answered is None), None)
        if transfer is None:
            return
        transfer.answered = True
        park = self.park
        moved = park.legs if transfer.from_park and park is not None else transfer.legs
        if park is not None and transfer.from_park:
            park.outcome, park.time_ended = "transferred", at or time.time()
        if moved == "bleg":               # the customer goes to the target: it is the agent now
            if not self.ext_hungup and self.current_agent_channel is not None:
                self.former_legs[self.agent_id] = self.current_agent_channel
            self.agent_uniqueid, self.agent_channel = transfer.uniqueid, transfer.channel
            self.ext_hungup, self.hangup_cause, self.hangup_cause_txt = False, None, None
        else:                             # the agent goes to the target: the agent side is done and
            self.agent_released = True    # the customer's leg ends: the API's doing
            self._hung_up_by("api")
        self.action_done.set()

    def transfer_failed(self, uniqueid: str, failure: str = "unavailable") -> None:
        """The target did not answer (``failure``: rejected, no_answer, unavailable): nothing
        moved."""
        for transfer in self.transfers:
            if transfer.uniqueid == uniqueid and transfer.answered is None:
                transfer.answered, transfer.failure = False, failure
                self.action_done.set()

    def former_leg_hung_up(self, uniqueid: str) -> None:
        self.former_legs.pop(uniqueid, None)

    def parked_at(self, park: Park) -> None:
        """``park.legs``' party waits (music on hold); the other party's leg ends."""
        self.parks.append(park)

    def supervisor_asked(self, supervision: Supervision) -> None:
        self.supervisors.append(supervision)

    def supervisor_started(self, uniqueid: str, at: float | None = None) -> None:
        for supervision in self.supervisors:
            if supervision.uniqueid == uniqueid and supervision.time_started is None:
                supervision.time_started = at or time.time()

    def supervisor_ended(self, uniqueid: str, at: float | None = None) -> None:
        for supervision in self.supervisors:
            if supervision.uniqueid == uniqueid and supervision.time_ended is None:
                supervision.time_ended = at or time.time()

    def recording_started(self, at: float | None = None) -> None:
        if self.recording_started_at is None:
            self.recording_started_at = at or time.time()

    def recording_muted(self, muted: bool, at: float | None = None) -> None:
        """Masking: the recording keeps its timeline, silent from now (``muted``) or not."""
        if muted and not self.recording_masked:
            self.masks.append(Mask(at or time.time()))
        elif not muted:
            self._close_mask(at)

    def _close_mask(self, at: float | None) -> None:
        if self.recording_masked:
            self.masks[-1].end = at or time.time()

    def end(self, error: C2CError | None = None, at: float | None = None) -> None:
        """The registry let the call go: wake anyone waiting on its outcome (the registry
        reports the end). ``error`` says why, if the outcome was still unknown."""
        self._fail(error or CallFailed("the call ended before its outcome was known"))
        self.state = CallState.ENDED
        self.ended_at = at or time.time()
        self._closed_at(self.ended_at)

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
        self._closed_at(self.ended_at)

    def _closed_at(self, ended_at: float) -> None:
        """What call control left open ends with the call."""
        self._close_mask(ended_at)
        for supervision in self.supervisors:
            if supervision.time_ended is None:
                supervision.time_ended = ended_at
        for transfer in self.transfers:
            if transfer.answered is None:
                transfer.answered = False
        park = self.park
        if park is not None:
            park.outcome, park.time_ended = park.outcome or "hung_up", ended_at
        self.action_done.set()

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

    def auto_answer_honoured(self, now: float | None = None) -> bool | None:
        """Whether the phone answered by itself when auto-answer was asked: True if it answered
        within ``AUTO_ANSWER_WITHIN`` of its INVITE, False if it rang longer (answered later,
        or not at all); None when not asked, or when nothing tells (the phone never rang:
        not registered, refused at once, unreachable; or the INVITE's time is unknown)."""
        if not self.auto_answer_asked or self.ext_channel_at is None:
            return None
        if self.ext_answered_at is not None:
            return self.ext_answered_at - self.ext_channel_at <= AUTO_ANSWER_WITHIN
        if not self.ext_alerted:
            return None
        over = self.ext_hungup or self.state is CallState.ENDED
        if over or (now or time.time()) - self.ext_channel_at > AUTO_ANSWER_WITHIN:
            return False
        return None

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
        facts["former_legs"] = dict(self.former_legs)     # a copy: the write is stored later
        for name in _DURABLE_LISTS:
            items = getattr(self, name)
            if items:                                 # most calls have none: no key at all
                facts[name] = to_facts(items)
        return facts

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> Call:
        """The call as ``facts`` left it; its outcome is known once the extension answered."""
        values: dict[str, Any] = {name: facts[name] for name in _DURABLE if name in facts}
        values["former_legs"] = dict(values.get("former_legs") or {})
        for name, kind in _DURABLE_LISTS.items():
            values[name] = from_facts(kind, facts.get(name))
        call = cls(**values, state=CallState(facts.get("state", CallState.ORIGINATING.value)))
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
