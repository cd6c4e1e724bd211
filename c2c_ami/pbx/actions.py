"""The AMI actions the call service needs, in its own terms: is this device free, busy or
absent; place this Originate; hang up this channel; what is this leg's SIP Call-ID; which
channels are up now (to reconcile after a lost link or a restart).

``Pbx`` is the call service's PBX (``calls/pbx_port.py``) spoken over AMI. Every method
raises only ``AmiError`` (and its subclasses), which are the port's ``PbxError`` and kin;
Asterisk's vocabulary (device states, Getvar, ``CHANNELS()``, ``SIPCALLID``, ``Response:
Success``) stays in this module. Both channel drivers are spoken: PJSIP (``PJSIP/...``) and
chan_sip (``SIP/...``).
"""
from __future__ import annotations

import asyncio
import logging
import re

from ..calls.pbx_port import Availability, Channel, CheckResult, DeviceState, LegRequest, Originate
from ..waits import Background
from .ami import AmiClient, AmiRefused, AmiState
from .check import PbxCheck
from .originate import UnsafeChannel, connect_action, originate_action, spy_action

log = logging.getLogger(__name__)

_FREE_STATES = {"NOT_INUSE"}
_BUSY_STATES = {"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"}
# Anything else (UNAVAILABLE, INVALID, UNKNOWN, ...) means: no phone to ring.

# A device whose channels can be found by name: TECH/resource, its channels TECH/resource-<n>.
# The resource's charset keeps CHANNELS()'s argument free of ( ) , | blanks and controls.
_PLAIN_DEVICE = re.compile(r"(PJSIP|SIP|IAX2)/([A-Za-z0-9_.+-]+)", re.IGNORECASE)   # dialing ignores case
_REGEX_SPECIAL = re.compile(r"([.+])")      # the resource charset's only regex metacharacters

# Where each channel driver keeps a channel's SIP Call-ID (no AMI event carries it).
_SIP_CALL_ID_VARIABLE = {"PJSIP": "CHANNEL(pjsip,call-id)", "SIP": "SIPCALLID"}


class Pbx:
    """One PBX as the call service sees it, over its AMI link."""

    def __init__(self, ami: AmiClient, name: str = "default", checker: PbxCheck | None = None) -> None:
        self.ami = ami
        self.name = name
        self.probes_channels = True   # False once this PBX refused CHANNELS(): not asked again
        self.checker = checker        # the check of the Asterisk side (pbx/check.py)
        self.last_check: CheckResult | None = None
        self.checked = asyncio.Event()    # set after each check (tests and tools await the first)
        self._background = Background()

    @property
    def ready(self) -> bool:
        return self.ami.ready

    @property
    def state(self) -> AmiState:
        return self.ami.state

    @property
    def link_state(self) -> str:
        return self.ami.state.value

    @property
    def last_error(self) -> str | None:
        """Why the link is not ready, when it is not."""
        return self.ami.last_error

    async def check(self) -> CheckResult:
        """Check the Asterisk side now; each finding not in the last check is logged as one
        WARNING (all of them at the first), each one gone as fixed."""
        if self.checker is None:
            return CheckResult()
        result = await self.checker.run()
        before = {f.line() for f in self.last_check.findings} if self.last_check is not None else set()
        now = {f.line() for f in result.findings}
        self.last_check = result
        for finding in result.findings:
            if finding.line() not in before:
                log.warning("PBX %s: %s", self.name, finding.line())
        for line in sorted(before - now):
            log.info("PBX %s: fixed: %s", self.name, line)
        if not result.findings:
            log.info("PBX %s: the Asterisk side provides what the gateway needs%s", self.name,
                     f" ({'; '.join(result.skipped)})" if result.skipped else "")
        self.checked.set()
        return result

    def check_later(self) -> None:
        """At each (re)login (an ``on_ready`` listener: it must not await)."""
        self._background.spawn(self.check())

    async def close(self) -> None:
        await self._background.close()

    async def availability(self, device: str) -> DeviceState:
        """Is the phone free, busy or absent, in one round trip: ``DEVICE_STATE(device)`` and,
        pipelined with it, ``CHANNELS()`` of the device. Asterisk itself would happily send a
        second INVITE to a phone already on a call, and chan_sip reports a peer on a call as
        NOT_INUSE unless it has ``callcounter=yes`` (or a call-limit): any channel of the
        device makes it BUSY. ABSENT stays ABSENT (a leftover channel rings no phone).

        The channel probe is made for a plain chan_sip or IAX2 device (``SIP/101``): PJSIP
        computes its device state from the endpoint's own channels, so a ``PJSIP/`` device
        needs no probe (and the click saves an action: ~10 % of the gateway's CPU per call).
        Other dial strings (``PJSIP/101@host``, ``Local/...``, ``SIP/trunk/101``) get
        DEVICE_STATE only. A PBX that refuses CHANNELS() is asked DEVICE_STATE only from then
        on. (The gateway's own calls are counted besides: the service holds one live call per
        extension.) A failed DEVICE_STATE raises; a failed probe raises unless refused."""
        pattern = channels_pattern(device) if self.probes_channels and _state_ignores_calls(device) else None
        asks = [self._getvar(f"DEVICE_STATE({device})")]
        if pattern is not None:
            asks.append(self._getvar(f"CHANNELS({pattern})"))
        replies = await asyncio.gather(*asks, return_exceptions=True)
        state = _device_state(_value_of(replies[0]))
        probe = replies[1] if len(replies) > 1 else ""
        if isinstance(probe, AmiRefused):
            self._stop_probing(probe)
            probe = ""
        if state.availability is not Availability.FREE:
            return state                      # busy or absent whatever the probe says
        channels = _value_of(probe).split()
        if not channels:
            return state
        more = f" and {len(channels) - 1} more" if len(channels) > 1 else ""
        return DeviceState(Availability.BUSY, f"{state.detail}, channel {channels[0]}{more} up")

    async def _getvar(self, variable: str) -> str:
        """The value of a global variable or function; AmiRefused if Asterisk says no."""
        reply = await self.ami.send({"Action": "Getvar", "Variable": variable})
        if reply.get("Response") != "Success":
            raise AmiRefused(reply.get("Message", ""))
        return str(reply.get("Value", "") or "")

    def _stop_probing(self, refusal: AmiRefused) -> None:
        """An older Asterisk, or a narrower AMI user: say it once, and ask no more."""
        if self.probes_channels:
            self.probes_channels = False
            log.warning("PBX %s refused Getvar CHANNELS() (%s): the busy check uses device state only from "
                        "now on (chan_sip peers then need callcounter=yes to show busy)", self.name, refusal)

    async def originate(self, originate: Originate) -> None:
        """Send the Originate exactly once (never retried); its ack only means "queued"."""
        ack = await self.ami.send(originate_action(originate))
        if ack.get("Response") != "Success":
            raise AmiRefused(ack.get("Message", ""))

    async def connect(self, leg: LegRequest) -> None:
        """Originate the target into ``Bridge(channel,x)`` (an attended transfer: nothing
        moves unless the target answers)."""
        try:
            action = connect_action(leg)
        except UnsafeChannel as exc:
            raise AmiRefused(str(exc)) from None
        await self._acked(action)

    async def spy(self, leg: LegRequest, mode: str) -> None:
        """Originate the supervisor into ``ChanSpy(channel,qEu[w|B])``."""
        try:
            action = spy_action(leg, mode)
        except UnsafeChannel as exc:
            raise AmiRefused(str(exc)) from None
        await self._acked(action)

    async def park(self, channel: str, context: str, timeout: float) -> None:
        """``Setvar C2C_PARK_TIMEOUT`` on the channel, then ``Redirect`` it to ``context,s,1``
        (docs/asterisk.md, "Call control"): its bridge dissolves and the other party's leg ends."""
        await self._acked({"Action": "Setvar", "Channel": channel, "Variable": "C2C_PARK_TIMEOUT",
                           "Value": str(max(1, round(timeout)))})
        await self._acked({"Action": "Redirect", "Channel": channel, "Context": context, "Exten": "s",
                           "Priority": "1"})

    async def start_recording(self, channel: str, file: str) -> None:
        """``MixMonitor`` (needs ``write = system`` on the AMI user; never a ``Command``)."""
        await self._acked({"Action": "MixMonitor", "Channel": channel, "File": file})

    async def mute_recording(self, channel: str, muted: bool) -> None:
        """``MixMonitorMute`` both directions: silence is written, the timeline kept. On
        Asterisk 16 it has no MixMonitorID and mutes the channel's first MixMonitor (the
        gateway starts only one)."""
        await self._acked({"Action": "MixMonitorMute", "Channel": channel, "Direction": "both",
                           "State": "1" if muted else "0"})

    async def _acked(self, action: dict[str, object]) -> None:
        reply = await self.ami.send(action)
        if reply.get("Response") != "Success":
            raise AmiRefused(reply.get("Message", "") or "refused")

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up with a Q.850 cause (16, normal clearing, by default: Asterisk's own default
        differs by driver — PJSIP sends ``Reason: Q.850;cause=0`` — and the phone sees it)."""
        await self.ami.send({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})

    async def channels(self) -> list[Channel]:
        """Every channel up now (one CoreShowChannels round trip)."""
        events = await self.ami.send_list({"Action": "CoreShowChannels"}, timeout=self.ami.config.action_timeout * 3)
        return [Channel(uniqueid=str(e.get("Uniqueid", "")), linkedid=str(e.get("Linkedid", "")),
                        name=str(e.get("Channel", "")), up=e.get("ChannelStateDesc") == "Up")
                for e in events if e.get("Event") == "CoreShowChannel"]

    async def sip_call_id(self, channel: str) -> str | None:
        """The SIP Call-ID of a PJSIP or chan_sip channel (no AMI event carries it); None,
        without asking, for any other technology."""
        variable = _SIP_CALL_ID_VARIABLE.get(channel.partition("/")[0])
        if variable is None:
            return None
        reply = await self.ami.send({"Action": "Getvar", "Channel": channel, "Variable": variable})
        if reply.get("Response") == "Success" and reply.get("Value"):
            return str(reply.get("Value"))
        return None


def _state_ignores_calls(device: str) -> bool:
    """chan_sip (without a call counter) and IAX2 can say NOT_INUSE of a device on a call."""
    return device.partition("/")[0].upper() in ("SIP", "IAX2")


def channels_pattern(device: str) -> str | None:
    """The CHANNELS() regex matching the channels of a plain ``TECH/resource`` device
    (``PJSIP/1.0`` -> ``^PJSIP/1\\.0-``), or None for any other dial string."""
    plain = _PLAIN_DEVICE.fullmatch(device)
    if plain is None:
        return None
    tech, resource = plain.groups()
    escaped = _REGEX_SPECIAL.sub(r"\\\1", resource)
    return f"^{tech.upper()}/{escaped}-"        # channel names spell the driver's own way


def _device_state(value: str) -> DeviceState:
    state = value or "UNKNOWN"
    if state in _FREE_STATES:
        return DeviceState(Availability.FREE, state)
    if state in _BUSY_STATES:
        return DeviceState(Availability.BUSY, state)
    return DeviceState(Availability.ABSENT, state)


def _value_of(reply: str | BaseException) -> str:
    """A gathered reply's value, or its error raised."""
    if isinstance(reply, BaseException):
        raise reply
    return reply
