"""What the call service asks of a PBX, in the calls' own words; ``pbx/`` answers it over AMI.

A PBX here is: is this device free, busy or absent; place this Originate; hang up this
channel; what is this leg's SIP Call-ID; which channels are up now; and, for call control,
connect a new leg to a channel, let a supervisor spy on one, park one, record one. Its failures are
``PbxError`` and kin: the link is down (and whether the request had been written), the PBX
refused, or it did not answer in time. What they mean for an API request is the service's
business; how they are spoken on the wire, ``pbx/``'s.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ..auto_answer import Bundle


class PbxError(Exception):
    """The PBX did not give a usable answer."""


class PbxLinkDown(PbxError):
    """The link is not logged in (``sent`` is False: nothing was written), or it dropped
    after the request was written and before its answer (``sent`` is True: the PBX may or
    may not have acted on it)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class PbxTimeout(PbxError):
    """The link is up but the request went unanswered within its deadline."""


class PbxRefused(PbxError):
    """The PBX answered the request with an error (the message is the PBX's)."""


class Availability(enum.Enum):
    FREE = "free"         # registered, not on a call
    BUSY = "busy"         # on a call, ringing or on hold
    ABSENT = "absent"     # no registered phone, or no such endpoint


@dataclass(frozen=True)
class DeviceState:
    availability: Availability
    detail: str           # the PBX's words for it (INUSE; NOT_INUSE, channel SIP/101-0000000a up), for messages


@dataclass(frozen=True)
class Channel:
    """A channel the PBX has up now."""
    uniqueid: str
    linkedid: str         # every leg of a click-to-call: its call_id
    name: str             # e.g. PJSIP/101-00000001
    up: bool              # answered


@dataclass(frozen=True)
class Originate:
    """Everything one click asks the PBX to dial, resolved (no defaults left to apply): the
    extension's device first, then, once it answers, the dialplan dials the number through
    the trunk (``pbx/originate.py`` says how, on AMI)."""
    call_id: str
    device: str                 # the extension's dial string, e.g. PJSIP/101
    context: str
    ext: str
    phone: str                  # digits only: also the dialplan extension
    hotline: str
    trunk: str
    caller_id_name: str         # shown on the extension's phone
    caller_id_number: str
    dest_cid_name: str          # sent to the called number
    dest_cid_number: str
    ring_timeout: float         # seconds the extension may ring
    dial_timeout: float         # seconds the number may ring (the dialplan's Dial timeout)
    auto_answer_headers: Bundle = ()            # in order, repeats kept; empty: no auto-answer
    customer_id: str | None = None              # None: no C2C_CUSTOMER_ID


@dataclass(frozen=True)
class LegRequest:
    """A leg call control adds to a call: ``device`` rings (``uniqueid`` is its channel's
    Uniqueid) and, once it answers, the PBX joins it to ``channel``: bridged with it (a
    transfer), or spying on it (a supervisor)."""
    uniqueid: str
    device: str
    channel: str
    ring_timeout: float
    caller_id_name: str
    caller_id_number: str
    auto_answer_headers: Bundle = ()


@dataclass(frozen=True)
class Finding:
    """One thing wrong on the Asterisk side (``pbx/check.py`` finds them): what, where, and
    the line to add or change. ``blocking``: no click-to-call at all can be placed on this PBX
    while it stands (/readyz counts the PBX as not ready)."""
    code: str                   # e.g. ami_permission, context_missing, context_no_dial, trunk_missing
    what: str
    where: str
    fix: str
    blocking: bool = False
    tenants: tuple[str, ...] = ()   # the tenants it concerns; () = the whole PBX (all its tenants)

    def concerns(self, tenant: str) -> bool:
        return not self.tenants or tenant in self.tenants

    def line(self) -> str:
        return f"{self.what} [{self.where}]: {self.fix}"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "what": self.what, "where": self.where, "fix": self.fix,
                "blocking": self.blocking}


@dataclass(frozen=True)
class CheckResult:
    """A check of one PBX: its findings, and what could not be checked (and why)."""
    findings: tuple[Finding, ...] = ()
    skipped: tuple[str, ...] = ()
    checked_at: float | None = None

    @property
    def blocking(self) -> bool:
        return any(f.blocking for f in self.findings)


class PbxPort(Protocol):
    """One PBX as the call service sees it. Every method raises only ``PbxError`` and kin."""
    name: str

    @property
    def ready(self) -> bool:
        """The link is logged in and usable."""

    @property
    def link_state(self) -> str:
        """The link's state in a word (ready, connecting, disconnected, auth_failed)."""

    @property
    def last_error(self) -> str | None:
        """Why the link is not ready, when it is not."""

    async def availability(self, device: str) -> DeviceState: ...

    async def originate(self, originate: Originate) -> None:
        """Sent exactly once (never retried); returns once the PBX queued it."""

    async def hangup(self, channel: str, cause: int = 16) -> None: ...

    async def channels(self) -> list[Channel]:
        """Every channel up now."""

    async def sip_call_id(self, channel: str) -> str | None: ...

    async def connect(self, leg: LegRequest) -> None:
        """``leg.device`` rings; once it answers it is bridged with ``leg.channel``, which
        leaves whatever bridge it was in (a transfer). Returns once the PBX queued it."""

    async def spy(self, leg: LegRequest, mode: str) -> None:
        """``leg.device`` rings; once it answers it hears ``leg.channel`` (listen), speaks to
        it (whisper) or to both parties (barge)."""

    async def park(self, channel: str, context: str, timeout: float) -> None:
        """``channel`` leaves its bridge to wait in ``context`` (music on hold) for at most
        ``timeout`` seconds; the party it was bridged with is left alone (and hung up)."""

    async def start_recording(self, channel: str, file: str) -> None:
        """Record ``channel``'s audio, both directions mixed, into ``file`` (as the PBX sees it)."""

    async def mute_recording(self, channel: str, muted: bool) -> None:
        """Write silence into ``channel``'s recording (``muted``), or its audio again."""

    @property
    def last_check(self) -> CheckResult | None:
        """The last check of the Asterisk side (None before the first)."""

    async def check(self) -> CheckResult:
        """Check the Asterisk side now (permissions, dialplan, trunks, modules)."""
