"""The agents' phones as the PBXs see them: registered or not, in what device state, with
which User-Agent and from which address.

``pbx/presence.py`` keeps this book current from AMI events (device state changes, contact
and peer status) and a snapshot at each (re)login, so reading it never costs an AMI round
trip: the agent monitor (``calls/monitor.py``) and auto-answer by phone (``auto_answer:
by_user_agent``) read it at each request. Only devices some tenant's ``endpoint`` names are
kept (the book is as large as the PBXs' phone lists, no larger).
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..config import Tenant
from ..waits import wait_set

# Device states that mean no phone is there to ring (not registered, unreachable, no such device).
ABSENT_STATES = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN"})
RINGING_STATES = frozenset({"RINGING", "RINGINUSE"})
ON_CALL_STATES = frozenset({"INUSE", "BUSY", "ONHOLD"})


@dataclass
class Phone:
    """One device (``PJSIP/101``, ``SIP/101``) of one PBX."""
    device: str
    state: str = "UNKNOWN"          # the PBX's device state
    since: float = field(default_factory=time.time)   # when the state last changed
    user_agent: str = ""            # of the registered contact ("" until known)
    address: str = ""               # the contact's network address (IP)

    @property
    def registered(self) -> bool:
        return self.state not in ABSENT_STATES


class PhoneBook:
    """(PBX, device) -> Phone. ``wanted(pbx, device)`` says which devices to keep."""

    def __init__(self, wanted: Callable[[str, str], bool] = lambda pbx, device: True) -> None:
        self.wanted = wanted
        self._phones: dict[tuple[str, str], Phone] = {}
        self.synced: dict[str, float] = {}        # PBX -> when its last snapshot completed
        self._synced_events: dict[str, asyncio.Event] = {}
        # told of each change: (pbx, device), or (pbx, None) when a snapshot replaced the PBX's
        self.listeners: list[Callable[[str, str | None], None]] = []

    def _changed(self, pbx: str, device: str | None) -> None:
        for listener in self.listeners:
            listener(pbx, device)

    def get(self, pbx: str, device: str) -> Phone | None:
        return self._phones.get((pbx, _canonical(device)))

    def of_pbx(self, pbx: str) -> list[Phone]:
        return [phone for (name, _), phone in self._phones.items() if name == pbx]

    def user_agent(self, pbx: str, device: str) -> str | None:
        phone = self.get(pbx, device)
        return phone.user_agent or None if phone is not None and phone.registered else None

    def state_changed(self, pbx: str, device: str, state: str, at: float | None = None) -> Phone | None:
        """A device state (a DeviceStateChange, or the snapshot's); returns the phone kept."""
        key = (pbx, _canonical(device))
        phone = self._phones.get(key)
        if phone is None:
            if not self.wanted(pbx, device):
                return None
            phone = self._phones[key] = Phone(device)
        if phone.state != state:
            phone.state = state
            phone.since = at or time.time()
            if state in ABSENT_STATES:
                phone.user_agent = phone.address = ""
            self._changed(pbx, phone.device)
        return phone

    def contact_learned(self, pbx: str, device: str, user_agent: str, address: str) -> None:
        """The registered contact's details (or none: ``""``, ``""``)."""
        phone = self._phones.get((pbx, _canonical(device)))
        if phone is None and self.wanted(pbx, device):
            phone = self._phones[pbx, _canonical(device)] = Phone(device)
        if phone is not None and (phone.user_agent, phone.address) != (user_agent, address):
            phone.user_agent, phone.address = user_agent, address
            self._changed(pbx, phone.device)

    def replace(self, pbx: str, phones: Iterable[Phone], at: float | None = None) -> None:
        """A snapshot of the PBX's devices: it replaces what was known of that PBX."""
        for key in [key for key in self._phones if key[0] == pbx]:
            del self._phones[key]
        for phone in phones:
            if self.wanted(pbx, phone.device):
                self._phones[pbx, _canonical(phone.device)] = phone
        self.synced[pbx] = at or time.time()
        self._synced_event(pbx).set()
        self._changed(pbx, None)

    async def wait_synced(self, pbx: str, timeout: float) -> bool:
        """Until the PBX's first snapshot is in (bounded); whether it is."""
        return await wait_set(self._synced_event(pbx), timeout)

    def _synced_event(self, pbx: str) -> asyncio.Event:
        return self._synced_events.setdefault(pbx, asyncio.Event())


def _canonical(device: str) -> str:
    """Asterisk names ``PJSIP/101`` and ``pjsip/101`` one device (dialing ignores the tech's case)."""
    tech, sep, resource = device.partition("/")
    return f"{tech.upper()}{sep}{resource}"


class DeviceMap:
    """Which tenant extension a device is: each tenant's ``endpoint`` template read backwards
    (``PJSIP/{ext}`` -> ``PJSIP/(ext)``), for the tenants of one PBX."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._rules: list[tuple[str, re.Pattern[str], Tenant]] = []
        for tenant in tenants:
            before, _, after = tenant.endpoint.partition("{ext}")
            pattern = re.compile(re.escape(_canonical(before)) + "(?P<ext>[^/@]+)" + re.escape(after))
            self._rules.append((tenant.pbx, pattern, tenant))

    def extension_of(self, pbx: str, device: str) -> tuple[Tenant, str] | None:
        """The (tenant, extension) a device of ``pbx`` is, if any tenant's pattern allows it."""
        canonical = _canonical(device)
        for name, pattern, tenant in self._rules:
            if name != pbx:
                continue
            m = pattern.fullmatch(canonical)
            if m and tenant.extensions.fullmatch(m.group("ext")):
                return tenant, m.group("ext")
        return None

    def wanted(self, pbx: str, device: str) -> bool:
        return self.extension_of(pbx, device) is not None


@dataclass
class AutoAnswerTally:
    """Auto-answer asked, per phone User-Agent: how often the phone answered by itself and how
    often it rang instead (``/metrics``). At most ``max_agents`` User-Agents are told apart;
    the others are counted as ``other`` (the label set stays bounded)."""
    max_agents: int = 200
    counts: dict[tuple[str, bool], int] = field(default_factory=dict)

    def count(self, user_agent: str | None, honoured: bool) -> None:
        label = (user_agent or "unknown")[:80]
        if (label, True) not in self.counts and (label, False) not in self.counts \
                and len({ua for ua, _ in self.counts}) >= self.max_agents:
            label = "other"
        self.counts[label, honoured] = self.counts.get((label, honoured), 0) + 1
