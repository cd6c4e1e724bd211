"""The click-to-call service: the rules between a validated request and the PBX.

authorize (tenant owns ext and hotline) -> claim the device (one call per extension)
-> pre-check its device state -> Originate once -> optionally wait, bounded, for the
extension to answer. Every failure path releases the claim.
"""
from __future__ import annotations

import asyncio
import logging

from .ami import AmiClient, AmiError
from .calls import Call, CallRegistry
from .config import CallsConfig, Tenant
from .errors import (CallFailed, CallNotFound, Forbidden, PbxUnavailable, UserBusy,
                     UserNotRegistered)
from .originate import originate_action
from .schemas import ClickToCallRequest
from .waits import wait_set

log = logging.getLogger(__name__)

FREE_STATES = {"NOT_INUSE"}
BUSY_STATES = {"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"}
# Anything else (UNAVAILABLE, INVALID, UNKNOWN, ...) means: no phone to ring.

# Between Originate and its OriginateResponse Asterisk rings for ring_timeout; allow this
# much more before deciding the PBX lost the call.
OUTCOME_GRACE_SECONDS = 5.0


class CallService:
    def __init__(self, ami: AmiClient, registry: CallRegistry, calls: CallsConfig) -> None:
        self.ami = ami
        self.registry = registry
        self.calls = calls
        self.accepting = True
        self._background: set[asyncio.Task] = set()
        self.waiters = 0
        self._no_waiters = asyncio.Event()
        self._no_waiters.set()

    def stop_accepting(self) -> None:
        self.accepting = False

    async def wait_no_waiters(self, timeout: float) -> bool:
        """Shutdown: wait (bounded) until no synchronous request is waiting on a call."""
        return await wait_set(self._no_waiters, timeout)

    async def place(self, tenant: Tenant, request: ClickToCallRequest, *, wait: bool) -> Call:
        """Start a click-to-call; with ``wait`` return only once the extension answered.
        Raises a C2CError for every refusal or failure."""
        hotline, trunk = self._authorize(tenant, request)
        if not self.accepting:
            raise PbxUnavailable("the gateway is shutting down")
        if not self.ami.ready:
            raise PbxUnavailable(f"PBX link is {self.ami.state.value}")
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
            await self._originate(call, request, tenant)
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
        """One Getvar round trip tells registered/free/busy (Asterisk itself would happily
        send a second INVITE to a phone already on a call)."""
        try:
            reply = await self.ami.send({"Action": "Getvar",
                                         "Variable": f"DEVICE_STATE({call.device})"})
        except AmiError as exc:
            raise CallFailed(f"device state check failed: {exc}") from None
        if reply.get("Response") != "Success":
            raise CallFailed(f"device state check refused by the PBX: {reply.get('Message', '')}")
        state = reply.get("Value", "")
        if state in BUSY_STATES:
            raise UserBusy(f"the extension is busy ({state})")
        if state not in FREE_STATES:
            raise UserNotRegistered(f"the extension is not registered ({state or 'UNKNOWN'})")

    async def _originate(self, call: Call, request: ClickToCallRequest, tenant: Tenant) -> None:
        """Send the Originate exactly once; its ack only means "queued"."""
        action = originate_action(call, request, tenant, self.calls)
        try:
            ack = await self.ami.send(action)
        except PbxUnavailable as exc:
            raise PbxUnavailable(f"{exc.message}; the call may or may not have been placed",
                                 call_id=call.call_id) from None
        except AmiError as exc:
            raise CallFailed(f"Originate not acknowledged: {exc}", call_id=call.call_id) from None
        if ack.get("Response") != "Success":
            raise CallFailed(f"Originate refused by the PBX: {ack.get('Message', '')}",
                             call_id=call.call_id)
        self.registry.arm(call, self.calls.ring_timeout + OUTCOME_GRACE_SECONDS)
        log.info("call %s: ext %s -> %s via %s originated", call.call_id, call.ext, call.phone, call.hotline)

    async def _wait_answered(self, call: Call) -> None:
        self.waiters += 1
        self._no_waiters.clear()
        try:
            await asyncio.wait_for(call.outcome_known.wait(), self.calls.sync_timeout)
        except asyncio.TimeoutError:
            # sync_timeout > ring_timeout, so Asterisk should have answered long ago.
            await self.hangup_quietly(call)
            self.registry.finish(call, CallFailed("no outcome from the PBX within sync_timeout"))
        finally:
            self.waiters -= 1
            if self.waiters == 0:
                self._no_waiters.set()
        if call.error is not None:
            raise call.error

    async def hangup_quietly(self, call: Call) -> None:
        if call.ext_channel and self.ami.ready:
            try:
                await self.ami.send({"Action": "Hangup", "Channel": call.ext_channel})
            except (AmiError, PbxUnavailable) as exc:
                log.warning("call %s: hangup failed: %s", call.call_id, exc)

    def live_call(self, tenant: Tenant, call_id: str) -> Call:
        """A live call of this tenant; another tenant's call is reported as not found."""
        call = self.registry.get(call_id)
        if call is None or call.tenant != tenant.domain:
            raise CallNotFound("no live call with this call_id")
        return call

    async def cancel(self, tenant: Tenant, call_id: str) -> Call:
        """Hang up (or cancel while ringing) a live call; a waiting sync request is then
        answered CALL_CANCELLED. If the channel does not exist yet, it is hung up as soon
        as its Newchannel event arrives."""
        call = self.live_call(tenant, call_id)
        if not self.ami.ready:
            raise PbxUnavailable(f"PBX link is {self.ami.state.value}", call_id=call.call_id)
        call.cancel_requested = call.number_answered_at is None
        if call.hangup_by is None:
            call.hangup_by = "api"
        if call.ext_channel:
            await self.hangup_quietly(call)
        return call

    # -- asked by the event router, which must not await ----------------------------------------
    def hangup_later(self, call: Call) -> None:
        self._spawn(self.hangup_quietly(call))

    def fetch_sip_call_id_later(self, call: Call) -> None:
        if call.trunk_channel and call.sip_call_id is None:
            self._spawn(self._fetch_sip_call_id(call, call.trunk_channel))

    async def _fetch_sip_call_id(self, call: Call, channel: str) -> None:
        """The outbound leg's SIP Call-ID is not in any AMI event; ask the channel."""
        try:
            reply = await self.ami.send({"Action": "Getvar", "Channel": channel,
                                         "Variable": "CHANNEL(pjsip,call-id)"})
        except (AmiError, PbxUnavailable) as exc:
            log.info("call %s: SIP Call-ID not read: %s", call.call_id, exc)
            return
        if reply.get("Response") == "Success" and reply.get("Value"):
            call.sip_call_id = reply.get("Value")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
