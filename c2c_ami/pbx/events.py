"""AMI events -> call transitions: the only module that reads Asterisk's call events.

Every event is routed in O(1) by one dictionary lookup: ``OriginateResponse`` by its
ActionID, channel events by Linkedid (every leg of a click-to-call shares the extension
channel's Uniqueid, which we chose to be the call_id). Events of other calls are ignored.
Each handler only says, in the call's own words (``calls/call.py``, ``calls/legs.py``), what
the event means; the call decides its state, and the registry of live calls, settling the
call once the event is applied, whether it is over.

What each transition is read from:
  ext leg created   Newchannel with Uniqueid = call_id
  ext ringing       Newstate Ringing of the extension channel
  ext answered      Newstate Up of the extension channel, or OriginateResponse Success
  ext failed        OriginateResponse Failure; Reason says why (see ``ext_failure``), with
                    the extension channel's Hangup cause when the channel existed (the
                    failure is decided once both are in: they come in either order)
  number leg        Newchannel of another channel with Linkedid = call_id (the trunk leg)
  number ringing    Newstate Ringing of the trunk leg, or DialState RINGING
  alerted           DialState PROGRESS/PROCEEDING (a 183 without 180) of either leg: the far
                    end is alive (decides cause 19 vs 18 at a timeout; no "ringing" step)
  number answered   DialEnd DialStatus=ANSWER for the trunk leg
  number failed     DialEnd with any other DialStatus (NOANSWER with no hangup from the
                    number's side first = the PBX's dial timeout ended it)
  hung up by        the first HangupRequest (a BYE, CANCEL or final refusal from that side)
  leg hung up       Hangup, with Cause and Cause-txt
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ..calls.call import Call
from ..calls.legs import ExtLegFailure, Leg, NumberFailure, Role
from ..calls.pbx_port import Channel
from .journal import EventJournal, looks_like_call_id


class LiveCalls(Protocol):
    """What the translator needs of the registry of live calls."""

    def find(self, pbx: str, call_id: str) -> Call | None:
        """The live call ``call_id`` of the PBX ``pbx``, if any."""

    def settle(self, call: Call, at: float | None = None) -> None:
        """Something happened to the call (at ``at``): see whether it is over, report it."""


class LegActions(Protocol):
    """What the translator may ask of the call service, never awaited here: it runs inside
    the socket read and must stay synchronous."""

    def hangup_later(self, call_id: str) -> None: ...

    def fetch_sip_call_id_later(self, call_id: str) -> None: ...

    def record_later(self, call_id: str) -> None: ...

    def hangup_channel_later(self, call_id: str, channel: str) -> None: ...


_ROUTING_KEYS = ("Linkedid", "DestLinkedid", "Uniqueid", "DestUniqueid", "SpyeeLinkedid")
_EXT_BUSY_CAUSES = {"17", "21"}   # user busy, call rejected
_NO_RESPONSE_CAUSES = {"18"}      # no user responding: the INVITE timed out (SIP 408)
_DECISIVE_REASONS = {"3", "5", "8"}   # OriginateResponse Reasons that tell why without a cause
_ALERTING = {"RINGING", "PROGRESS", "PROCEEDING"}   # DialState: the called side is alive

# DialEnd DialStatus of the trunk leg -> why the number was not reached.
NUMBER_FAILURES: dict[str, NumberFailure] = {
    "BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
    "CHANUNAVAIL": "unavailable", "CANCEL": "cancelled"}


def correlation_id(event: Mapping[str, str]) -> str | None:
    """The call_id an event belongs to, if any."""
    if event.get("Event") == "OriginateResponse":
        return event.get("ActionID") or None
    for key in _ROUTING_KEYS:
        value = event.get(key)
        if value:
            return value
    return None


def ext_failure(call: Call, reason: str) -> tuple[ExtLegFailure, str]:
    """OriginateResponse ``Reason`` (the last control frame seen) and the extension channel's
    Hangup cause, if it had one -> why, and a detail.  The drivers word the same outcome
    differently (a 486 is Reason 5 on chan_sip, Reason 0 + cause 17 on PJSIP; a dead phone
    is Reason 3 like a ring timeout, but it never rang): this reads them alike.

    Reason 0 means both "no such/unregistered endpoint" and "rejected while ringing"; the
    difference is whether the extension channel ever existed (or hung up busy)."""
    if reason == "3":
        return (ExtLegFailure.NO_ANSWER if call.ext_alerted else ExtLegFailure.NO_RESPONSE), ""
    if call.ext_channel_seen and not call.ext_alerted and call.hangup_cause in _NO_RESPONSE_CAUSES:
        return ExtLegFailure.NO_RESPONSE, ""         # timer B: the INVITE got no answer at all
    if call.hangup_cause in _EXT_BUSY_CAUSES or reason in ("1", "5"):
        return ExtLegFailure.REJECTED, ""
    if reason == "0" and call.ext_channel_seen:
        return ExtLegFailure.REJECTED, ""
    if reason == "0":
        return ExtLegFailure.NOT_REGISTERED, ""
    if reason == "8":
        return ExtLegFailure.CONGESTION, ""
    return ExtLegFailure.OTHER, f"reason {reason}"


class CallEvents:
    """Feeds AMI events to the calls they belong to; subscribe it to the AMI client with the
    events it reads: ``ami.subscribe(call_events, CallEvents.EVENTS)``."""

    EVENTS: frozenset[str] = frozenset()      # the names of _HANDLERS (set below)

    def __init__(self, pbx: str, calls: LiveCalls, actions: LegActions,
                 journal: EventJournal | None = None) -> None:
        self.pbx = pbx            # the PBX whose AMI link this reads
        self.calls = calls
        self.actions = actions
        self.journal = journal    # several instances: other instances' calls' events, kept a while
        self.events_routed = 0    # events that told a live call something

    def __call__(self, event: Mapping[str, str]) -> None:
        handler = _HANDLERS.get(event.get("Event", ""))
        if handler is None:       # most of what Asterisk sends (VarSet, Newexten, ...)
            return
        key = correlation_id(event)
        if key is None:
            return
        at = time.time()
        call = self.calls.find(self.pbx, key)
        if call is not None:
            handler(self, call, event, at)
            self.calls.settle(call, at)
            self.events_routed += 1
        elif self.journal is not None and looks_like_call_id(key):
            self.journal.add(key, at, event)

    def replay(self, call_id: str) -> int:
        """What the journal kept of a call just adopted, applied as if seen live (with the
        times it was seen); returns how many events."""
        if self.journal is None:
            return 0
        call = self.calls.find(self.pbx, call_id)
        legs = call.leg_ids() if call is not None else []
        kept = sorted([*self.journal.take(call_id), *(e for leg in legs for e in self.journal.take(leg))],
                      key=lambda kept_event: kept_event[0])
        for at, event in kept:
            call = self.calls.find(self.pbx, call_id)
            if call is None:
                break             # it ended on the way
            _HANDLERS[event["Event"]](self, call, event, at)
            self.calls.settle(call, at)
        return len(kept)

    def _originate_response(self, call: Call, event: Mapping[str, str], at: float) -> None:
        leg_id = event.get("ActionID")
        if leg_id != call.call_id:                # a call-control leg's own Originate
            role = call.role_of(leg_id)
            if role is Role.TRANSFER:
                reason = event.get("Reason", "")
                pending = call.pending_transfer
                if event.get("Response") == "Success":
                    call.transfer_answered(leg_id or "", at)
                elif pending is not None and reason == "0" and pending.channel and pending.cause is None:
                    pending.reason = reason       # a refusal or a dead phone: its Hangup's cause tells
                else:
                    call.transfer_failed(leg_id or "", _leg_failure(reason, pending.cause if pending else None))
            elif role is Role.SUPERVISOR and event.get("Response") != "Success":
                call.supervisor_ended(leg_id or "", at)       # never answered
            return
        if event.get("Response") == "Success":
            call.ext_answered(at)
        elif call.ext_channel_seen and not call.ext_hungup:
            call.ext_failure_pending(event.get("Reason", ""))   # decided at the channel's Hangup
        else:
            call.ext_failed(*ext_failure(call, event.get("Reason", "")))

    def _new_channel(self, call: Call, event: Mapping[str, str], at: float) -> None:
        uniqueid = event.get("Uniqueid")
        if uniqueid == call.call_id:
            call.ext_leg_created(event.get("Channel"), at)
            if call.cancel_requested:
                self.actions.hangup_later(call.call_id)   # DELETE arrived before the channel existed
        elif uniqueid in call.leg_ids():
            call.transfer_leg_created(uniqueid or "", event.get("Channel"))
        else:
            call.number_leg_created(uniqueid, event.get("Channel"))

    def _new_state(self, call: Call, event: Mapping[str, str], at: float) -> None:
        desc = event.get("ChannelStateDesc")
        role = call.role_of(event.get("Uniqueid"))
        if role is Role.AGENT and not call.transfers:
            call.ext_leg_seen()
            if desc == "Ringing":
                call.ext_ringing()
            elif desc == "Up":
                call.ext_answered(at)
        elif role is Role.CUSTOMER and desc == "Ringing":
            call.number_ringing()
        elif role is Role.TRANSFER and desc == "Up":
            call.transfer_answered(event.get("Uniqueid") or "", at)   # the PBX bridges it next

    def _dial_begin(self, call: Call, event: Mapping[str, str], at: float) -> None:
        if call.role_of(event.get("DestUniqueid")) is Role.CUSTOMER:
            self.actions.fetch_sip_call_id_later(call.call_id)

    def _dial_state(self, call: Call, event: Mapping[str, str], at: float) -> None:
        status = event.get("DialStatus")
        dest = event.get("DestUniqueid")
        if dest == call.call_id:
            if status in _ALERTING:
                call.ext_alerting()                   # e.g. a phone's 183: alive, not ringing
        elif call.role_of(dest) is not Role.CUSTOMER:
            return                                    # a transfer target or supervisor rings
        elif status == "RINGING":
            call.number_ringing()
        elif status in _ALERTING:
            call.number_alerting()                    # 183 early media: alive, no 180

    def _dial_end(self, call: Call, event: Mapping[str, str], at: float) -> None:
        if call.role_of(event.get("DestUniqueid")) is not Role.CUSTOMER:
            return  # the Originate's own dial of the extension, a transfer target's, a supervisor's
        status = event.get("DialStatus") or ""
        if status == "ANSWER":
            call.number_answered(at)
            if call.record and call.recording_started_at is None:
                self.actions.record_later(call.call_id)
        else:
            call.number_failed(NUMBER_FAILURES.get(status, "unavailable"))

    def _hangup_request(self, call: Call, event: Mapping[str, str], at: float) -> None:
        leg = call.leg_of(event.get("Uniqueid"))
        if leg is not None:
            call.hangup_requested(leg)

    def _hangup(self, call: Call, event: Mapping[str, str], at: float) -> None:
        uniqueid = event.get("Uniqueid")
        role = call.role_of(uniqueid)
        if role is Role.AGENT or role is Role.CUSTOMER:
            leg = Leg.EXTENSION if role is Role.AGENT else Leg.NUMBER
            pending = call.pending_transfer if leg is Leg.NUMBER else None
            call.leg_hung_up(leg, event.get("Cause"), event.get("Cause-txt"), at)
            if leg is Leg.EXTENSION and call.ext_failure_reason is not None:
                call.ext_failed(*ext_failure(call, call.ext_failure_reason))
            if pending is not None and pending.channel and not call.parked:
                self.actions.hangup_channel_later(call.call_id, pending.channel)   # nobody left to connect
        elif role is Role.TRANSFER:
            pending, cause = call.pending_transfer, event.get("Cause")
            if pending is not None and pending.reason is None and cause not in _EXT_BUSY_CAUSES | {"19"}:
                pending.cause = cause or "0"   # the Originate's Reason tells (a ring-out on chan_sip: cause 0)
            else:
                call.transfer_failed(uniqueid or "", _leg_failure(pending.reason or "" if pending else "", cause))
        elif role is Role.SUPERVISOR:
            call.supervisor_ended(uniqueid or "", at)
        elif role is Role.FORMER_AGENT:
            call.former_leg_hung_up(uniqueid or "")

    def _bridge_enter(self, call: Call, event: Mapping[str, str], at: float) -> None:
        """A transfer's target joined its bridge, so the party that moved is out of its old
        one: a leg left behind (the former agent after a customer transfer; the customer
        after an agent transfer) ends if the dialplan did not end it already."""
        uniqueid = event.get("Uniqueid")
        transfer = next((t for t in call.transfers if t.uniqueid == uniqueid and t.answered), None)
        if transfer is None:
            return
        for channel in list(call.former_legs.values()):
            self.actions.hangup_channel_later(call.call_id, channel)
        if call.agent_released and not call.trunk_hungup and call.trunk_channel:
            self.actions.hangup_channel_later(call.call_id, call.trunk_channel)

    def _chan_spy(self, call: Call, event: Mapping[str, str], at: float) -> None:
        spyer = event.get("SpyerUniqueid")
        if call.role_of(spyer) is Role.SUPERVISOR:
            if event.get("Event") == "ChanSpyStart":
                call.supervisor_started(spyer or "", at)
            else:
                call.supervisor_ended(spyer or "", at)


def _leg_failure(reason: str, cause: str | None = None) -> str:
    """Why a call-control leg was not answered, in the transfer's words: rejected (busy,
    refused), no_answer (rang out), unavailable (anything else)."""
    if reason in ("1", "5") or cause in _EXT_BUSY_CAUSES:
        return "rejected"
    if reason == "3" or cause in ("19",):
        return "no_answer"
    return "unavailable"


def decide_pending_failure(call: Call) -> None:
    """The extension's Originate failed but its channel's Hangup was never seen (a lost link,
    a restart): Reasons 3 (no answer / no response), 5 (busy) and 8 (congestion) say why on
    their own; Reason 0 needs the cause, so such a call stays without a failure (unobserved)."""
    if call.ext_failure_reason in _DECISIVE_REASONS:
        call.ext_failed(*ext_failure(call, call.ext_failure_reason))


def apply_channels(call: Call, legs: list[Channel]) -> None:
    """What a CoreShowChannels snapshot says of one call that was out of sight (a lost link,
    a restart): legs that are up now, answered or not, and legs that are gone (``legs``: the
    channels linked to the call, and its call-control legs). A leg first seen answered here
    is taken as answered now (the moment itself was not seen)."""
    present = {leg.uniqueid: leg for leg in legs}
    for transfer in list(call.transfers):             # a transfer that rang meanwhile
        if transfer.answered is None:
            target = present.get(transfer.uniqueid)
            if target is not None and not transfer.channel:     # (stored before its Originate:
                call.transfer_leg_created(transfer.uniqueid, target.name)   # its channel unknown)
            if target is not None and target.up:
                call.transfer_answered(transfer.uniqueid)
            elif target is None:
                call.transfer_failed(transfer.uniqueid, "unavailable")
    for supervision in call.supervisors:
        if supervision.time_ended is None and supervision.uniqueid not in present:
            call.supervisor_ended(supervision.uniqueid)
    for uniqueid in list(call.former_legs):
        if uniqueid not in present:
            call.former_leg_hung_up(uniqueid)
    agent = present.get(call.agent_id)
    if agent is not None:
        if call.ext_channel is None:
            call.ext_leg_created(agent.name)
        if agent.up:
            call.ext_answered()
    elif call.ext_channel_seen and not call.ext_hungup and not call.agent_released:
        call.leg_hung_up(Leg.EXTENSION, None, None)
        decide_pending_failure(call)
    others = {call.call_id, call.agent_id, *call.leg_ids(), *call.former_legs}
    number = next((leg for leg in legs if leg.uniqueid not in others), None)
    if number is not None:
        call.number_leg_created(number.uniqueid, number.name)
        if number.up and call.leg_of(number.uniqueid) is Leg.NUMBER:
            call.number_answered()
    if call.trunk_uniqueid is not None and not call.trunk_hungup and call.trunk_uniqueid not in present:
        call.leg_hung_up(Leg.NUMBER, None, None)


_HANDLERS: dict[str, Callable[[CallEvents, Call, Mapping[str, str], float], None]] = {
    "BridgeEnter": CallEvents._bridge_enter,
    "ChanSpyStart": CallEvents._chan_spy,
    "ChanSpyStop": CallEvents._chan_spy,
    "OriginateResponse": CallEvents._originate_response,
    "Newchannel": CallEvents._new_channel,
    "Newstate": CallEvents._new_state,
    "DialBegin": CallEvents._dial_begin,
    "DialState": CallEvents._dial_state,
    "DialEnd": CallEvents._dial_end,
    "HangupRequest": CallEvents._hangup_request,
    "Hangup": CallEvents._hangup,
}
CallEvents.EVENTS = frozenset(_HANDLERS)
