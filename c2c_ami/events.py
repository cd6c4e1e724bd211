"""AMI events -> call state: the event-consumption side of the call service.

Every event is routed in O(1) by one dictionary lookup: ``OriginateResponse`` by its
ActionID, channel events by Linkedid (every leg of a click-to-call shares the extension
channel's Uniqueid, which we chose to be the call_id). Events of other calls are ignored.

What each state is derived from:
  ext_ringing      Newstate Ringing of the extension channel (Uniqueid = call_id)
  ext_answered     Newstate Up of the extension channel, or OriginateResponse Success
  dialing          Newchannel of another channel with Linkedid = call_id (the trunk leg)
  number_ringing   Newstate Ringing of the trunk leg, or DialState RINGING
  number_answered  DialEnd DialStatus=ANSWER for the trunk leg
  ended            Hangup of the extension leg (and of the trunk leg, if there is one), or
                   OriginateResponse Failure
Who hung up comes from the first HangupRequest (a BYE from that side); failures from
OriginateResponse Reason (extension) and DialEnd DialStatus (number).
"""
from __future__ import annotations

import logging
import time
from typing import Mapping, Protocol

from .calls import NUMBER_FAILURES, Call, CallRegistry, CallState
from .errors import C2CError, CallCancelled, CallFailed, NoAnswer, UserBusy, UserNotRegistered

log = logging.getLogger(__name__)

_ROUTING_KEYS = ("Linkedid", "DestLinkedid", "Uniqueid", "DestUniqueid")
_EXT_BUSY_CAUSES = {"17", "21"}   # user busy, call rejected
TRUNK_HANGUP_WAIT = 2.0           # after the extension leg ends, wait this long for the trunk's


def correlation_id(event: Mapping[str, str]) -> str | None:
    """The call_id an event belongs to, if any."""
    if event.get("Event") == "OriginateResponse":
        return event.get("ActionID") or None
    for key in _ROUTING_KEYS:
        value = event.get(key)
        if value:
            return value
    return None


def originate_failure(call: Call, reason: str) -> tuple[C2CError, str | None]:
    """Map OriginateResponse ``Reason`` (the last control frame seen) to an API error and
    the extension's failure reason.

    Reason 0 means both "no such/unregistered endpoint" and "rejected while ringing"; the
    difference is whether the extension channel ever existed.
    """
    if call.cancel_requested:
        return CallCancelled("the call was cancelled before the extension answered"), None
    if reason == "3":
        return NoAnswer("the extension did not answer within the ring timeout"), "no_answer"
    if reason in ("1", "5") or (reason == "0" and (call.ext_channel_seen or call.hangup_cause in _EXT_BUSY_CAUSES)):
        return UserBusy("the extension rejected the call or is busy"), "rejected"
    if reason == "0":
        return UserNotRegistered("the extension has no registered phone"), "unavailable"
    if reason == "8":
        return CallFailed("the PBX reported congestion calling the extension"), "unavailable"
    return CallFailed(f"the PBX could not call the extension (reason {reason})"), "unavailable"


class CallActions(Protocol):
    """What the router may ask of the call service (which owns the AMI link) — never awaited
    here: the router runs inside panoramisk's data_received and must stay synchronous."""

    def hangup_later(self, call: Call) -> None: ...

    def fetch_sip_call_id_later(self, call: Call) -> None: ...


class CallEventRouter:
    """Feeds AMI events to the calls they belong to and finishes calls that are over."""

    def __init__(self, registry: CallRegistry, max_call_seconds: float,
                 actions: CallActions | None = None) -> None:
        self.registry = registry
        self.max_call_seconds = max_call_seconds
        self.actions = actions
        self.events_routed = 0

    def __call__(self, event: Mapping[str, str]) -> None:
        key = correlation_id(event)
        if key is None:
            return
        call = self.registry.get(key)
        if call is None:
            return
        self.events_routed += 1
        handler = _HANDLERS.get(event.get("Event", ""))
        if handler is not None:
            handler(self, call, event)

    def _notify(self, call: Call, state: CallState, event: str) -> None:
        if call.advance(state) and self.registry.observer is not None:
            self.registry.observer.call_event(call, event)

    # -- handlers ------------------------------------------------------------------------------
    def _originate_response(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("Response") == "Success":
            self._answered(call)
        else:
            error, call.ext_failure = originate_failure(call, event.get("Reason", ""))
            call.failed(error)
            self.registry.finish(call)

    def _answered(self, call: Call) -> None:
        if call.outcome_known.is_set():
            return
        call.answered()
        self._notify(call, CallState.EXT_ANSWERED, "answered")
        if call.ext_hungup:
            self.registry.finish(call)
        else:
            self.registry.arm(call, self.max_call_seconds)

    def _new_channel(self, call: Call, event: Mapping[str, str]) -> None:
        uniqueid = event.get("Uniqueid")
        if uniqueid == call.call_id:
            call.ext_channel = event.get("Channel")
            call.ext_channel_seen = True
            if call.cancel_requested and self.actions is not None:
                self.actions.hangup_later(call)  # DELETE arrived before the channel existed
        elif call.trunk_uniqueid is None:
            call.trunk_uniqueid = uniqueid
            call.trunk_channel = event.get("Channel")
            self._notify(call, CallState.DIALING, "dialing")

    def _new_state(self, call: Call, event: Mapping[str, str]) -> None:
        desc = event.get("ChannelStateDesc")
        uniqueid = event.get("Uniqueid")
        if uniqueid == call.call_id:
            call.ext_channel_seen = True
            if desc == "Ringing":
                self._notify(call, CallState.EXT_RINGING, "ringing")
            elif desc == "Up":
                self._answered(call)
        elif uniqueid == call.trunk_uniqueid and desc == "Ringing":
            self._notify(call, CallState.NUMBER_RINGING, "ringing")

    def _dial_begin(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("DestUniqueid") not in (None, call.call_id) and self.actions is not None:
            self.actions.fetch_sip_call_id_later(call)

    def _dial_state(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("DestUniqueid") != call.call_id and event.get("DialStatus") == "RINGING":
            self._notify(call, CallState.NUMBER_RINGING, "ringing")

    def _dial_end(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("DestUniqueid") == call.call_id:
            return  # the Originate's own dial of the extension
        call.dial_status = event.get("DialStatus")
        if call.dial_status == "ANSWER":
            call.number_answered_at = time.time()
            self._notify(call, CallState.NUMBER_ANSWERED, "answered")
            return
        call.number_failure = NUMBER_FAILURES.get(call.dial_status or "", "unavailable")
        if call.hangup_by is None and call.number_failure != "cancelled":
            call.hangup_by = "number"

    def _hangup_request(self, call: Call, event: Mapping[str, str]) -> None:
        if call.hangup_by is not None:
            return
        uniqueid = event.get("Uniqueid")
        if uniqueid == call.call_id:
            call.hangup_by = "extension"
        elif uniqueid == call.trunk_uniqueid:
            call.hangup_by = "number"

    def _hangup(self, call: Call, event: Mapping[str, str]) -> None:
        uniqueid = event.get("Uniqueid")
        if uniqueid == call.call_id:
            call.ext_hungup = True
            call.hangup_cause, call.hangup_cause_txt = event.get("Cause"), event.get("Cause-txt")
        elif uniqueid == call.trunk_uniqueid:
            call.trunk_hungup = True
            call.trunk_cause, call.trunk_cause_txt = event.get("Cause"), event.get("Cause-txt")
        else:
            return
        if not (call.ext_hungup and call.outcome_known.is_set()):
            return
        if call.trunk_uniqueid is None or call.trunk_hungup:
            self.registry.finish(call)
        else:
            self.registry.arm(call, TRUNK_HANGUP_WAIT)


_HANDLERS = {
    "OriginateResponse": CallEventRouter._originate_response,
    "Newchannel": CallEventRouter._new_channel,
    "Newstate": CallEventRouter._new_state,
    "DialBegin": CallEventRouter._dial_begin,
    "DialState": CallEventRouter._dial_state,
    "DialEnd": CallEventRouter._dial_end,
    "HangupRequest": CallEventRouter._hangup_request,
    "Hangup": CallEventRouter._hangup,
}
