"""The call service: the rules between a validated request and the PBX.

Placing a call: join an identical request still in flight (a double click, or a replayed
``Idempotency-Key``) -> the tenant owns the ext and hotline -> claim the device (one call
per extension) -> ask the PBX whether it is free -> Originate once -> optionally wait,
bounded, for the extension to answer. Every failure path releases the claim.

Reading calls: a tenant sees only its own calls and CDRs; another tenant's call_id is "not
found". PBX failures (``AmiError``) become API errors here and nowhere else.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from ..config import CallsConfig, Tenant
from ..errors import CallFailed, CallNotFound, Forbidden, PbxUnavailable, UserBusy, UserNotRegistered
from ..pbx import AmiError, AmiLinkDown, AmiRefused, Availability, Originate, Pbx
from ..store import Storage
from ..waits import wait_set
from .call import Call
from .guards import SingleFlight, fingerprint
from .record import call_record, live_call_summary
from .registry import CallRegistry
from .requests import CdrQuery, ClickToCallRequest

log = logging.getLogger(__name__)

# Between Originate and its OriginateResponse Asterisk rings for ring_timeout; allow this
# much more before deciding the PBX lost the call.
OUTCOME_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    ami: str                    # the AMI link's state
    detail: str | None = None   # why not, when not


class CallService:
    def __init__(self, pbx: Pbx, registry: CallRegistry, store: Storage, calls: CallsConfig, *,
                 duplicates: SingleFlight, idempotency: SingleFlight) -> None:
        self.pbx = pbx
        self.registry = registry
        self.store = store
        self.calls = calls
        self.duplicates = duplicates
        self.idempotency = idempotency
        self.accepting = True
        self.waiters = 0
        self._no_waiters = asyncio.Event()
        self._no_waiters.set()
        self._background: set[asyncio.Task] = set()

    # -- placing calls -------------------------------------------------------------------------
    async def place(self, tenant: Tenant, request: ClickToCallRequest, *, wait: bool,
                    idempotency_key: str | None = None) -> str:
        """Start a click-to-call (with ``wait``: return once the extension answered) and
        return its call_id. A request identical to one in flight joins it; with an
        ``idempotency_key`` the first answer for that key is replayed. Raises a C2CError
        for every refusal or failure."""
        async def start() -> str:
            return (await self._place(tenant, request, wait=wait)).call_id

        if idempotency_key is not None:
            return await self.idempotency.run((tenant.domain, idempotency_key),
                                              fingerprint(request, wait), start)
        return await self.duplicates.run((tenant.domain, request.ext, request.phone), "", start)

    async def _place(self, tenant: Tenant, request: ClickToCallRequest, *, wait: bool) -> Call:
        hotline, trunk = self._authorize(tenant, request)
        if not self.accepting:
            raise PbxUnavailable("the gateway is shutting down")
        if not self.pbx.ready:
            raise PbxUnavailable(f"PBX link is {self.pbx.state.value}")
        call = Call(tenant=tenant.domain, ext=request.ext, device=tenant.device(request.ext),
                    phone=request.phone, hotline=hotline, trunk=trunk)
        if not self.registry.claim(call):
            raise UserBusy("a click-to-call to this extension is already in progress")
        try:
            await self._check_device(call)
        except BaseException:
            self.registry.release(call)  # nothing was dialed: no call to report
            raise
        try:
            await self._originate(call, self._originate_of(call, request, tenant))
        except BaseException:
            self.registry.finish(call)
            raise
        if wait:
            await self._wait_answered(call)
        return call

    @staticmethod
    def _authorize(tenant: Tenant, request: ClickToCallRequest) -> tuple[str, str]:
        if not tenant.extensions.fullmatch(request.ext):
            raise Forbidden("ext: this extension is not allowed for this token")
        hotline = request.hotline or tenant.default_hotline
        trunk = tenant.hotlines.get(hotline)
        if trunk is None:
            raise Forbidden("hotline: this hotline is not allowed for this token")
        return hotline, trunk

    async def _check_device(self, call: Call) -> None:
        """Asterisk itself would happily send a second INVITE to a phone already on a call."""
        try:
            device = await self.pbx.device_state(call.device)
        except AmiLinkDown as exc:
            raise PbxUnavailable(str(exc)) from None
        except AmiRefused as exc:
            raise CallFailed(f"device state check refused by the PBX: {exc}") from None
        except AmiError as exc:
            raise CallFailed(f"device state check failed: {exc}") from None
        if device.availability is Availability.BUSY:
            raise UserBusy(f"the extension is busy ({device.detail})")
        if device.availability is Availability.ABSENT:
            raise UserNotRegistered(f"the extension is not registered ({device.detail})")

    def _originate_of(self, call: Call, request: ClickToCallRequest, tenant: Tenant) -> Originate:
        """The defaults: the extension sees itself as the number, the called number sees the
        hotline."""
        dest_number = request.dest_cid_number or call.hotline
        return Originate(
            call_id=call.call_id, device=call.device, context=tenant.context, ext=call.ext,
            phone=call.phone, hotline=call.hotline, trunk=call.trunk,
            caller_id_name=request.src_cid_name, caller_id_number=request.src_cid_number or call.ext,
            dest_cid_name=request.dest_cid_name or dest_number, dest_cid_number=dest_number,
            ring_timeout=self.calls.ring_timeout, dial_timeout=self.calls.dial_timeout,
            auto_answer_headers=self.calls.auto_answer_headers if request.auto_answer else ())

    async def _originate(self, call: Call, originate: Originate) -> None:
        """Send the Originate exactly once; its ack only means "queued"."""
        try:
            await self.pbx.originate(originate)
        except AmiLinkDown as exc:
            if not exc.sent:
                self.registry.release(call)   # nothing reached the PBX: no call to report
                raise PbxUnavailable(str(exc)) from None
            raise PbxUnavailable(f"{exc}; the call may or may not have been placed",
                                 call_id=call.call_id) from None
        except AmiRefused as exc:
            raise CallFailed(f"Originate refused by the PBX: {exc}", call_id=call.call_id) from None
        except AmiError as exc:
            raise CallFailed(f"Originate not acknowledged: {exc}", call_id=call.call_id) from None
        self.registry.settle(call)
        log.info("call %s: ext %s -> %s via %s originated", call.call_id, call.ext, call.phone, call.hotline)

    async def _wait_answered(self, call: Call) -> None:
        self.waiters += 1
        self._no_waiters.clear()
        try:
            await asyncio.wait_for(call.outcome_known.wait(), self.calls.sync_timeout)
        except TimeoutError:
            # sync_timeout > ring_timeout, so Asterisk should have answered long ago.
            await self.hangup_quietly(call)
            self.registry.finish(call, CallFailed("no outcome from the PBX within sync_timeout"))
        finally:
            self.waiters -= 1
            if self.waiters == 0:
                self._no_waiters.set()
        if call.error is not None:
            raise call.error

    # -- controlling calls ---------------------------------------------------------------------
    async def cancel(self, tenant: Tenant, call_id: str) -> Call:
        """Hang up (or cancel while ringing) a live call; a waiting sync request is then
        answered CALL_CANCELLED. If the channel does not exist yet, it is hung up as soon
        as its Newchannel event arrives."""
        call = self._live_call(tenant, call_id)
        if not self.pbx.ready:
            raise PbxUnavailable(f"PBX link is {self.pbx.state.value}", call_id=call.call_id)
        call.cancel()
        if call.ext_channel:
            await self.hangup_quietly(call)
        return call

    async def hangup_quietly(self, call: Call) -> None:
        if call.ext_channel and self.pbx.ready:
            try:
                await self.pbx.hangup(call.ext_channel)
            except AmiError as exc:
                log.warning("call %s: hangup failed: %s", call.call_id, exc)

    # -- asked by the AMI event translator, which must not await -------------------------------
    def hangup_later(self, call_id: str) -> None:
        call = self.registry.get(call_id)
        if call is not None:
            self._spawn(self.hangup_quietly(call))

    def fetch_sip_call_id_later(self, call_id: str) -> None:
        call = self.registry.get(call_id)
        if call is not None and call.trunk_channel and call.sip_call_id is None:
            self._spawn(self._fetch_sip_call_id(call, call.trunk_channel))

    async def _fetch_sip_call_id(self, call: Call, channel: str) -> None:
        try:
            sip_call_id = await self.pbx.sip_call_id(channel)
        except AmiError as exc:
            log.info("call %s: SIP Call-ID not read: %s", call.call_id, exc)
            return
        if sip_call_id:
            call.sip_call_id_learned(sip_call_id)

    # -- reading calls -------------------------------------------------------------------------
    def _live_call(self, tenant: Tenant, call_id: str) -> Call:
        """A live call of this tenant; another tenant's call is reported as not found."""
        call = self.registry.get(call_id)
        if call is None or call.tenant != tenant.domain:
            raise CallNotFound("no live call with this call_id")
        return call

    def call(self, tenant: Tenant, call_id: str) -> dict[str, Any]:
        """The call's live record, or its CDR once it has ended."""
        call = self.registry.get(call_id)
        if call is not None and call.tenant == tenant.domain:
            return call_record(call)
        record = self.store.get_call(tenant.domain, call_id)
        if record is None:
            raise CallNotFound("no call with this call_id")
        return record

    def live_calls(self, tenant: Tenant) -> list[dict[str, Any]]:
        return [live_call_summary(call) for call in self.registry.live(tenant.domain)]

    def cdr(self, tenant: Tenant, call_id: str) -> dict[str, Any]:
        record = self.store.get_call(tenant.domain, call_id)
        if record is None:
            raise CallNotFound("no CDR with this call_id")
        return record

    def cdrs(self, tenant: Tenant, query: CdrQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of the tenant's CDRs, newest first, and how many match in all."""
        return self.store.list_calls(tenant.domain, **asdict(query))

    # -- the service's own life ----------------------------------------------------------------
    def readiness(self) -> Readiness:
        """Ready = the AMI link is logged in and usable, and the gateway is not stopping."""
        ready = self.pbx.ready and self.accepting
        return Readiness(ready, self.pbx.state.value, None if ready else self.pbx.last_error)

    def pbx_lost(self) -> None:
        """The AMI link dropped: no event about the live calls can arrive any more."""
        self.registry.finish_all(lambda: PbxUnavailable("the PBX link was lost while the call was in progress"))

    async def drain(self, grace: float) -> None:
        """Shutdown: refuse new calls, give waiting sync requests ``grace`` seconds, then
        answer the rest."""
        self.accepting = False
        await wait_set(self._no_waiters, grace)
        self.registry.finish_all(lambda: PbxUnavailable("the gateway is shutting down"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
