"""The agents' phones of one PBX, kept current from AMI (``calls/phones.py`` holds them).

Events, as Asterisk 16 and 22 send them (read classes ``call`` and ``system``):

* ``DeviceStateChange`` (call): ``Device: PJSIP/101``, ``State: NOT_INUSE`` -- registered
  or not (UNAVAILABLE), ringing, on a call;
* ``ContactStatus`` (system, PJSIP): ``AOR``, ``EndpointName``, ``ContactStatus: Created |
  NonQualified | Reachable | Unreachable | Removed | Updated`` -- a contact came or went: its
  User-Agent and address are read again;
* ``PeerStatus`` (system, chan_sip): ``Peer: SIP/101``, ``PeerStatus: Registered |
  Unregistered | Reachable | Unreachable`` -- the same for a chan_sip peer.

Neither contact event carries the User-Agent, so each change costs a few reads of the one
phone (never one per API request), with the user the gateway already has (``reporting``):
PJSIP ``Getvar PJSIP_AOR(aor,contact)`` then ``PJSIP_CONTACT(contact,user_agent|via_addr|uri)``
(func_pjsip_aor, func_pjsip_contact); chan_sip ``SIPshowpeer`` (``SIP-Useragent``,
``Address-IP``). At each (re)login a snapshot: ``DeviceStateList`` (every device's state),
then the same reads for each registered phone some tenant names. ``PJSIPShowContacts`` would
do it in one action but needs ``write = system``, which the gateway does not ask for.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from ..calls.phones import Phone, PhoneBook
from ..waits import Background
from .ami import AmiClient, AmiError

log = logging.getLogger(__name__)

PRESENCE_EVENTS = ("DeviceStateChange", "ContactStatus", "PeerStatus")
READS_IN_FLIGHT = 16           # contact reads at once per PBX (a snapshot of 1,000 phones queues)


class PhoneWatch:
    """Subscribe it to the PBX's AMI link (``PRESENCE_EVENTS``); call ``link_ready`` when the
    link is (again) logged in."""

    def __init__(self, pbx: str, ami: AmiClient, book: PhoneBook) -> None:
        self.pbx = pbx
        self.ami = ami
        self.book = book
        self._background = Background()
        self._reading: dict[str, asyncio.Task] = {}     # device -> its contact read under way
        self._again: set[str] = set()                    # devices changed again during their read
        self._slots = asyncio.Semaphore(READS_IN_FLIGHT)
        self.snapshots = 0

    # -- events ----------------------------------------------------------------------------
    def __call__(self, event: Mapping[str, str]) -> None:
        name = event.get("Event")
        if name == "DeviceStateChange":
            device = event.get("Device") or ""
            before = self.book.get(self.pbx, device)
            was_registered = before is not None and before.registered
            phone = self.book.state_changed(self.pbx, device, event.get("State") or "UNKNOWN")
            if phone is not None and phone.registered and (not was_registered or not phone.user_agent):
                self.read_contact(phone.device)
        elif name == "ContactStatus":
            endpoint = event.get("EndpointName")
            if endpoint:
                self.read_contact(f"PJSIP/{endpoint}", aor=event.get("AOR"))
        elif name == "PeerStatus" and (event.get("ChannelType") or "").upper() == "SIP":
            peer = event.get("Peer") or ""
            if event.get("PeerStatus") == "Unregistered":
                self.book.contact_learned(self.pbx, peer, "", "")
            else:
                self.read_contact(peer)

    # -- the link's life ---------------------------------------------------------------------
    def link_ready(self) -> None:
        self._background.spawn(self.snapshot())

    async def snapshot(self) -> None:
        """Every device's state (``DeviceStateList``), then the contact of each registered
        phone a tenant names."""
        try:
            events = await self.ami.send_list({"Action": "DeviceStateList"},
                                              timeout=self.ami.config.action_timeout * 3)
        except AmiError as exc:
            log.warning("PBX %s: DeviceStateList failed (%s): the agent monitor knows only the devices whose "
                        "state changes from now on", self.pbx, exc)
            self.book.replace(self.pbx, self.book.of_pbx(self.pbx))     # what is known stands
            return
        now = time.time()
        known = {p.device: p for p in self.book.of_pbx(self.pbx)}
        phones = []
        for e in events:
            device, state = e.get("Device") or "", e.get("State") or "UNKNOWN"
            if not self.book.wanted(self.pbx, device):
                continue
            old = known.get(device)
            phone = Phone(device, state, since=old.since if old is not None and old.state == state else now)
            if old is not None and phone.registered:
                phone.user_agent, phone.address = old.user_agent, old.address
            phones.append(phone)
        self.book.replace(self.pbx, phones, now)
        self.snapshots += 1
        for phone in phones:
            if phone.registered:
                self.read_contact(phone.device)

    async def close(self) -> None:
        await self._background.close()

    # -- one phone's contact -----------------------------------------------------------------
    def read_contact(self, device: str, aor: str | None = None) -> None:
        """Read the phone's User-Agent and address (once at a time per device: a change during
        a read is read again after it)."""
        if not self.book.wanted(self.pbx, device):
            return
        if device in self._reading:
            self._again.add(device)
            return
        self._reading[device] = self._background.spawn(self._read(device, aor))

    async def _read(self, device: str, aor: str | None) -> None:
        try:
            while True:
                self._again.discard(device)
                async with self._slots:
                    try:
                        user_agent, address = await self._contact(device, aor)
                    except AmiError as exc:
                        log.info("PBX %s: contact of %s not read: %s", self.pbx, device, exc)
                        return
                self.book.contact_learned(self.pbx, device, user_agent, address)
                if device not in self._again:
                    return
        finally:
            self._reading.pop(device, None)

    async def _contact(self, device: str, aor: str | None) -> tuple[str, str]:
        tech, _, name = device.partition("/")
        if tech.upper() == "SIP":
            reply = await self.ami.send({"Action": "SIPshowpeer", "Peer": name})
            if reply.get("Response") != "Success":
                return "", ""
            address = str(reply.get("Address-IP") or "")
            return str(reply.get("SIP-Useragent") or ""), "" if address in ("(null)", "-none-") else address
        if tech.upper() != "PJSIP":
            return "", ""
        aors = [aor] if aor else _items(await self._getvar(f"PJSIP_ENDPOINT({name},aors)"))
        contacts = [c for a in aors for c in _items(await self._getvar(f"PJSIP_AOR({a},contact)"))]
        if not contacts:
            return "", ""
        contact = contacts[-1]          # the newest registration of the AOR
        user_agent, via, uri = await asyncio.gather(*(self._getvar(f"PJSIP_CONTACT({contact},{field})")
                                                      for field in ("user_agent", "via_addr", "uri")))
        return user_agent, via or _host_of(uri)

    async def _getvar(self, variable: str) -> str:
        reply = await self.ami.send({"Action": "Getvar", "Variable": variable})
        return str(reply.get("Value") or "") if reply.get("Response") == "Success" else ""


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _host_of(uri: str) -> str:
    """``sip:101@10.0.0.15:5060;transport=udp`` -> ``10.0.0.15``."""
    rest = uri.split(":", 1)[-1].split(";", 1)[0]
    host = rest.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.split(":", 1)[0]
