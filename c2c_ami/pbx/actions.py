"""The AMI actions the call service needs, in its own terms: is this device free, busy or
absent; place this Originate; hang up this channel; what is this leg's SIP Call-ID; which
channels are up now (to reconcile after a lost link or a restart).

Every method raises only ``AmiError`` (and its subclasses); Asterisk's vocabulary (device
states, Getvar, ``Response: Success``) stays in this module.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .ami import AmiClient, AmiRefused, AmiState
from .originate import Originate


class Availability(enum.Enum):
    FREE = "free"         # registered, not on a call
    BUSY = "busy"         # on a call, ringing or on hold
    ABSENT = "absent"     # no registered phone, or no such endpoint


_FREE_STATES = {"NOT_INUSE"}
_BUSY_STATES = {"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"}
# Anything else (UNAVAILABLE, INVALID, UNKNOWN, ...) means: no phone to ring.


@dataclass(frozen=True)
class DeviceState:
    availability: Availability
    detail: str           # Asterisk's own word for it (INUSE, UNAVAILABLE, ...), for messages


@dataclass(frozen=True)
class Channel:
    """A channel Asterisk has up now."""
    uniqueid: str
    linkedid: str         # every leg of a click-to-call: its call_id
    name: str             # e.g. PJSIP/101-00000001
    up: bool              # answered


class Pbx:
    """One PBX as the call service sees it, over its AMI link."""

    def __init__(self, ami: AmiClient, name: str = "default") -> None:
        self.ami = ami
        self.name = name

    @property
    def ready(self) -> bool:
        return self.ami.ready

    @property
    def state(self) -> AmiState:
        return self.ami.state

    @property
    def last_error(self) -> str | None:
        """Why the link is not ready, when it is not."""
        return self.ami.last_error

    async def device_state(self, device: str) -> DeviceState:
        """One Getvar round trip tells registered/free/busy (Asterisk itself would happily
        send a second INVITE to a phone already on a call)."""
        reply = await self.ami.send({"Action": "Getvar", "Variable": f"DEVICE_STATE({device})"})
        if reply.get("Response") != "Success":
            raise AmiRefused(reply.get("Message", ""))
        state = reply.get("Value", "") or "UNKNOWN"
        if state in _FREE_STATES:
            return DeviceState(Availability.FREE, state)
        if state in _BUSY_STATES:
            return DeviceState(Availability.BUSY, state)
        return DeviceState(Availability.ABSENT, state)

    async def originate(self, originate: Originate) -> None:
        """Send the Originate exactly once (never retried); its ack only means "queued"."""
        ack = await self.ami.send(originate.action())
        if ack.get("Response") != "Success":
            raise AmiRefused(ack.get("Message", ""))

    async def hangup(self, channel: str) -> None:
        await self.ami.send({"Action": "Hangup", "Channel": channel})

    async def channels(self) -> list[Channel]:
        """Every channel up now (one CoreShowChannels round trip)."""
        events = await self.ami.send_list({"Action": "CoreShowChannels"}, timeout=self.ami.config.action_timeout * 3)
        return [Channel(uniqueid=str(e.get("Uniqueid", "")), linkedid=str(e.get("Linkedid", "")),
                        name=str(e.get("Channel", "")), up=e.get("ChannelStateDesc") == "Up")
                for e in events if e.get("Event") == "CoreShowChannel"]

    async def sip_call_id(self, channel: str) -> str | None:
        """The SIP Call-ID of a PJSIP channel (no AMI event carries it)."""
        reply = await self.ami.send({"Action": "Getvar", "Channel": channel,
                                     "Variable": "CHANNEL(pjsip,call-id)"})
        if reply.get("Response") == "Success" and reply.get("Value"):
            return str(reply.get("Value"))
        return None
