"""The agent monitor (the carrier's ``GET /v1/monitor/agent``): a tenant's registered
extensions, each with what it is doing now.

Read from memory only: the phone book (``calls/phones.py``: registration, device state,
User-Agent, address, kept from AMI events) and the gateway's own live calls (the registry;
with several instances, the calls other instances own are read from the store). An
extension on one of the gateway's click-to-calls shows that call (its id, number, start);
one on a call the gateway did not place (a call the agent dialled on the phone) shows the
device state alone.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from ..carrier import carrier_time
from ..config import Tenant
from ..store import Storage, store_needed
from .call import Call, CallState
from .phones import ON_CALL_STATES, RINGING_STATES, DeviceMap, Phone, PhoneBook
from .registry import CallRegistry

IDLE, RINGING, ONCALL = "IDLE", "RINGING", "ONCALL"
_RINGING_CALL_STATES = {CallState.ORIGINATING, CallState.EXT_RINGING}


class AgentMonitor:
    def __init__(self, phones: PhoneBook, devices: DeviceMap, registry: CallRegistry, store: Storage,
                 pbx_hosts: Mapping[str, str], zone: tzinfo, *, shared_store: bool = False) -> None:
        self.phones = phones
        self.devices = devices
        self.registry = registry
        self.store = store
        self.pbx_hosts = pbx_hosts          # PBX name -> its host (the carrier's server_host)
        self.zone = zone
        self.shared_store = shared_store    # other instances' calls are in the store

    async def agents(self, tenant: Tenant, ext: str | None = None, *,
                     only: set[str] | None = None) -> list[dict[str, Any]]:
        """The tenant's registered extensions (only ``ext``, or those in ``only``, if given),
        by extension."""
        wanted = {ext} if ext is not None else only
        calls = {call.ext: call for call in self.registry.live(tenant.domain) if call.ended_at is None}
        rows = []
        for phone in self.phones.of_pbx(tenant.pbx):
            if not phone.registered:
                continue
            owner = self.devices.extension_of(tenant.pbx, phone.device)
            if owner is None or owner[0].domain != tenant.domain:
                continue
            extension = owner[1]
            if wanted is not None and extension not in wanted:
                continue
            rows.append((extension, phone))
        if self.shared_store and any(phone.state in RINGING_STATES | ON_CALL_STATES and e not in calls
                                     for e, phone in rows):
            with store_needed():        # 503 STORE_UNAVAILABLE, as every answer that needs it
                others = await self.store.live_calls_of(tenant.domain)
            for facts in others:
                if facts.get("ext") not in calls:
                    calls[facts["ext"]] = Call.from_facts(facts)
        return [self._row(tenant, extension, phone, calls.get(extension)) for extension, phone in sorted(rows)]

    def _row(self, tenant: Tenant, ext: str, phone: Phone, call: Call | None) -> dict[str, Any]:
        since: float | None
        if call is not None:
            state = RINGING if call.state in _RINGING_CALL_STATES else ONCALL
            call_id, since, destination, direction = call.call_id, call.started_at, call.phone, "outbound"
        else:
            state = RINGING if phone.state in RINGING_STATES else ONCALL if phone.state in ON_CALL_STATES else IDLE
            call_id, since, destination, direction = "", phone.since if state != IDLE else None, "", ""
        return {
            "extension": ext,
            "agent_name": tenant.agents.get(ext, ""),
            "call_state": state,
            "call_id": call_id,
            "call_time": carrier_time(since, self.zone),
            "destination": destination,
            "direction": direction,
            "user_agent": phone.user_agent,
            "network_ip": phone.address,
            "server_host": self.pbx_hosts.get(tenant.pbx, ""),
            "domain_name": tenant.domain,
            "username": ext,
        }
