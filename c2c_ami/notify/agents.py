"""The agent monitor's changes, as ``agent`` events of each tenant's event log.

What ``GET /v1/monitor/agent`` shows of an extension changes when its phone does (it
registers, goes away, rings, is on a call: ``calls/phones.py`` tells of each change) or when a
call of the gateway on it does. Every instance sees the same PBX events, so one instance per
PBX writes them: the holder of the store lease ``agents:<pbx>`` (renewed every third of
``cluster.lease_seconds``; another instance takes it over when it lapses). Each change is
written with a compare-and-set on the extension's last logged row (``Storage.log_agent_rows``),
in one transaction with the event: two writers for a moment (a lease handed over), or a new
writer that starts by comparing every row, never log a change twice, and a change made while
nobody wrote is logged by the next writer's first pass. Besides the phones' changes, every
``RESYNC_SECONDS`` the writer compares all its rows (a call that started or ended without its
phone changing state).

An extension whose phone is not registered is ``{"extension", "agent_name", "domain_name",
"registered": false}``; a registered one is the monitor's row plus ``"registered": true``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

from ..calls.monitor import AgentMonitor
from ..calls.phones import DeviceMap, PhoneBook
from ..config import Tenant
from ..errors import StoreUnavailable
from ..store import Storage, StorageUnavailable
from ..waits import Background

log = logging.getLogger(__name__)

RESYNC_SECONDS = 10.0
GATHER_SECONDS = 0.05   # a change waits this long for company: a call changes its phone 3-5
                        # times in a few ms (ringing, in use, ...); one pass writes them together


class AgentFeed:
    """The writer of one PBX's agent events (while it holds the PBX's lease)."""

    def __init__(self, pbx: str, tenants: Mapping[str, Tenant], monitor: AgentMonitor, phones: PhoneBook,
                 devices: DeviceMap, storage: Storage, owner: str, *, lease_seconds: float = 10.0) -> None:
        self.pbx = pbx
        self.tenants = {domain: t for domain, t in tenants.items() if t.pbx == pbx}
        self.monitor = monitor
        self.phones = phones
        self.devices = devices
        self.storage = storage
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.holding = False
        self._logged: dict[tuple[str, str], str] = {}     # (tenant, ext) -> the row last logged by us
        self._dirty: set[tuple[str, str]] = set()
        self._full = True                                   # compare every row at the next pass
        self._wake = asyncio.Event()
        self._background = Background()
        self.passes = 0
        phones.listeners.append(self._phone_changed)

    def _phone_changed(self, pbx: str, device: str | None) -> None:
        if pbx != self.pbx:
            return
        if device is None:
            self._full = True
        else:
            owner = self.devices.extension_of(pbx, device)
            if owner is None or owner[0].domain not in self.tenants:
                return
            self._dirty.add((owner[0].domain, owner[1]))
        self._wake.set()

    def start(self) -> None:
        self._background.spawn(self._lease_loop())
        self._background.spawn(self._write_loop())

    async def close(self) -> None:
        await self._background.close()

    async def _lease_loop(self) -> None:
        while True:
            try:
                held = await self.storage.take_lease(f"agents:{self.pbx}", self.owner,
                                                     time.time() + self.lease_seconds)
            except (StorageUnavailable, StoreUnavailable):    # the store's health logs it (once)
                held = False                # not holding it until the store answers
            except Exception as exc:  # noqa: BLE001 - not holding it until the store answers
                log.warning("agent events of %s: lease not renewed (%s)", self.pbx, exc)
                held = False
            if held and not self.holding:
                self._logged.clear()             # compare every row with the store's
                self._full = True
                self._wake.set()
            self.holding = held
            await asyncio.sleep(self.lease_seconds / 3)

    async def _write_loop(self) -> None:
        while True:
            try:        # asyncio.timeout, not wait_for: 3.11's wait_for may swallow a cancel
                async with asyncio.timeout(RESYNC_SECONDS):   # that comes as the event is set
                    await self._wake.wait()
            except TimeoutError:
                self._full = True
            if not self.holding:
                self._wake.clear()
                self._dirty.clear()
                continue
            await asyncio.sleep(GATHER_SECONDS)
            self._wake.clear()
            try:
                await self.write_changes()
            except (StorageUnavailable, StoreUnavailable):    # the store's health logs it (once)
                self._full = True
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("agent events of %s: write failed", self.pbx)
                self._full = True
                await asyncio.sleep(1.0)

    async def write_changes(self) -> None:
        """Compare the rows of the changed extensions (all of them after a snapshot, a new
        lease or ``RESYNC_SECONDS``) with those last logged; log those that differ."""
        full, self._full = self._full, False
        dirty, self._dirty = self._dirty, set()
        wanted: dict[str, set[str]] = {}
        if full:
            for phone in self.phones.of_pbx(self.pbx):
                owner = self.devices.extension_of(self.pbx, phone.device)
                if owner is not None and owner[0].domain in self.tenants:
                    wanted.setdefault(owner[0].domain, set()).add(owner[1])
            for tenant, ext in self._logged:
                wanted.setdefault(tenant, set()).add(ext)
        for tenant, ext in dirty:
            wanted.setdefault(tenant, set()).add(ext)
        for domain, exts in wanted.items():
            of = self.tenants[domain]
            rows = {row["extension"]: row for row in await self.monitor.agents(of, only=None if full else exts)}
            changed = []
            for ext in sorted(exts):
                row = rows.get(ext)
                body = json.dumps({**row, "registered": True} if row is not None else
                                  {"extension": ext, "agent_name": of.agents.get(ext, ""),
                                   "domain_name": domain, "registered": False},
                                  separators=(",", ":"), ensure_ascii=False)
                if self._logged.get((domain, ext)) != body:
                    changed.append((ext, body))
            if changed:
                await self.storage.log_agent_rows(domain, changed)
                for ext, body in changed:
                    self._logged[domain, ext] = body
        self.passes += 1
