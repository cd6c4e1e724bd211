"""AMI events -> call state: the event-consumption side of the call service.

Every event is routed in O(1) by one dictionary lookup: ``OriginateResponse`` by its
ActionID, channel events by Linkedid (every leg of a click-to-call shares the extension
channel's Uniqueid, which we chose to be the call_id). Events of other calls are ignored.
"""
from __future__ import annotations

import logging
from typing import Mapping

from .calls import Call, CallRegistry, CallState, max_state
from .errors import C2CError, CallFailed, NoAnswer, UserBusy, UserNotRegistered

log = logging.getLogger(__name__)

_ROUTING_KEYS = ("Linkedid", "DestLinkedid", "Uniqueid", "DestUniqueid")
_EXT_BUSY_CAUSES = {"17", "21"}   # user busy, call rejected


def correlation_id(event: Mapping[str, str]) -> str | None:
    """The call_id an event belongs to, if any."""
    if event.get("Event") == "OriginateResponse":
        return event.get("ActionID") or None
    for key in _ROUTING_KEYS:
        value = event.get(key)
        if value:
            return value
    return None


def originate_failure(call: Call, reason: str) -> C2CError:
    """Map OriginateResponse ``Reason`` (the last control frame seen) to an API error.

    Reason 0 means both "no such/unregistered endpoint" and "rejected while ringing"; the
    difference is whether the extension channel ever existed.
    """
    if reason == "3":
        return NoAnswer("the extension did not answer within the ring timeout")
    if reason in ("1", "5") or (reason == "0" and (call.ext_channel_seen or call.hangup_cause in _EXT_BUSY_CAUSES)):
        return UserBusy("the extension rejected the call or is busy")
    if reason == "0":
        return UserNotRegistered("the extension has no registered phone")
    if reason == "8":
        return CallFailed("the PBX reported congestion calling the extension")
    return CallFailed(f"the PBX could not call the extension (reason {reason})")


class CallEventRouter:
    """Feeds AMI events to the calls they belong to and finishes calls that are over."""

    def __init__(self, registry: CallRegistry, max_call_seconds: float) -> None:
        self.registry = registry
        self.max_call_seconds = max_call_seconds
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

    # -- handlers ------------------------------------------------------------------------------
    def _originate_response(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("Response") == "Success":
            self._answered(call)
        else:
            call.failed(originate_failure(call, event.get("Reason", "")))
            self.registry.finish(call)

    def _answered(self, call: Call) -> None:
        if call.outcome_known.is_set():
            return
        call.answered()
        if call.ext_hungup:
            self.registry.finish(call)
        else:
            self.registry.arm(call, self.max_call_seconds)

    def _new_channel(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("Uniqueid") == call.call_id:
            call.ext_channel = event.get("Channel")
            call.ext_channel_seen = True
        else:
            call.trunk_channel = event.get("Channel")
            call.state = max_state(call.state, CallState.DIALING)

    def _new_state(self, call: Call, event: Mapping[str, str]) -> None:
        desc = event.get("ChannelStateDesc")
        if event.get("Uniqueid") == call.call_id:
            call.ext_channel_seen = True
            if desc == "Ringing":
                call.state = max_state(call.state, CallState.EXT_RINGING)
            elif desc == "Up":
                self._answered(call)
        elif desc == "Ringing":
            call.state = max_state(call.state, CallState.NUMBER_RINGING)
        elif desc == "Up":
            call.state = max_state(call.state, CallState.NUMBER_ANSWERED)

    def _dial_state(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("DestUniqueid") != call.call_id and event.get("DialStatus") == "RINGING":
            call.state = max_state(call.state, CallState.NUMBER_RINGING)

    def _dial_end(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("DestUniqueid") == call.call_id:
            return  # the Originate's own dial of the extension
        call.dial_status = event.get("DialStatus")
        if call.dial_status == "ANSWER":
            call.state = max_state(call.state, CallState.NUMBER_ANSWERED)

    def _hangup(self, call: Call, event: Mapping[str, str]) -> None:
        if event.get("Uniqueid") != call.call_id:
            return
        call.ext_hungup = True
        call.hangup_cause = event.get("Cause")
        if call.outcome_known.is_set():
            self.registry.finish(call)


_HANDLERS = {
    "OriginateResponse": CallEventRouter._originate_response,
    "Newchannel": CallEventRouter._new_channel,
    "Newstate": CallEventRouter._new_state,
    "DialState": CallEventRouter._dial_state,
    "DialEnd": CallEventRouter._dial_end,
    "Hangup": CallEventRouter._hangup,
}
