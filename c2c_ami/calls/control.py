"""Call control: the rules of acting on a call whose customer talks — transfer, park,
supervise (listen, whisper, barge) and mask its recording — and starting that recording.

Every action is checked before anything reaches the PBX: the call is the tenant's (and, for an
extension-scoped token, that extension's), the customer answered, no other action clashes (a
transfer ringing, a party parked), the target extension is the tenant's, registered and free.
Each new leg is written into the call (and so into the store) before its Originate, so its
events find the call, after a restart too.

A transfer is attended by the gateway: the target rings and only once it answers does the PBX
move the party (``PbxPort.connect``); so if it does not answer, nothing changed and the answer
says so. Transfers wait for that outcome; the other actions answer once the PBX took them.

On several instances, the instance that tracks the call carries the action out: another one
asks it through the store's notify channel and waits for its answer (bounded).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..config import CallsConfig, Tenant
from ..errors import (
    C2CError,
    CallBusy,
    CallFailed,
    CallNotAnswered,
    CallNotFound,
    Forbidden,
    NoAnswer,
    NotRecording,
    PbxUnavailable,
    UserBusy,
    UserNotRegistered,
    error_from,
)
from ..store import Storage, StorageError, store_needed
from ..waits import Background, wait_set
from .call import Call
from .legs import Legs, Park, Supervision, SupervisionMode, Transfer
from .pbx_port import Availability, LegRequest, PbxError, PbxLinkDown, PbxPort, PbxRefused
from .recordings import pbx_file
from .registry import CallRegistry

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "c2c_control"         # NOTIFY: an action asked on one instance for another's call
REPLY_CHANNEL = "c2c_control_reply"     # NOTIFY: that instance's answer
OTHER_INSTANCE_GRACE = 10.0             # seconds beyond an action's own bound to hear back
WRITTEN_WAIT = 2.0                      # seconds the owner waits for the action's write before answering
TRANSFER_GRACE = 5.0                    # beyond the ring timeout, for the PBX's word on the target

Result = dict[str, Any]


class CallControl:
    def __init__(self, pbxs: Mapping[str, PbxPort], registry: CallRegistry, store: Storage, calls: CallsConfig,
                 tenants: Mapping[str, Tenant], *, instance_id: str = "solo",
                 hangup_later: Callable[[str], None] | None = None,
                 fetch_sip_call_id_later: Callable[[str], None] | None = None,
                 transfer_grace: float = TRANSFER_GRACE) -> None:
        self.pbxs = pbxs
        self.registry = registry
        self.store = store
        self.calls = calls
        self.tenants = tenants                 # by domain: a call's tenant's settings (recording)
        self.instance_id = instance_id
        self.transfer_grace = transfer_grace
        self._hangup_later = hangup_later
        self._fetch_sip_call_id_later = fetch_sip_call_id_later
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}    # request id -> its answer
        self._background = Background()

    # -- the actions -----------------------------------------------------------------------------
    async def transfer(self, tenant: Tenant, call_id: str, ext: str, legs: Legs, scope: str | None) -> Result:
        """Connect the customer (bleg) or the agent (aleg) to ``ext`` — or, when a party waits
        in a park, that party — once ``ext`` answers; the other party's leg then ends."""
        return await self._act(tenant, call_id, scope, "transfer", {"ext": ext, "legs": legs})

    async def park(self, tenant: Tenant, call_id: str, legs: Legs, scope: str | None) -> Result:
        """The ``legs`` party waits (music on hold) for a transfer, at most ``calls.park_timeout``."""
        return await self._act(tenant, call_id, scope, "park", {"legs": legs})

    async def supervise(self, tenant: Tenant, call_id: str, ext: str, mode: SupervisionMode, auto_answer: bool,
                        scope: str | None) -> Result:
        """``ext`` rings and, once it answers, hears the agent's call (``mode``)."""
        return await self._act(tenant, call_id, scope, "supervise",
                               {"ext": ext, "mode": mode, "auto_answer": auto_answer})

    async def mask_recording(self, tenant: Tenant, call_id: str, masked: bool, scope: str | None) -> Result:
        """Pause (``masked``) or resume the recording: silence keeps its timeline."""
        return await self._act(tenant, call_id, scope, "mask", {"masked": masked})

    async def _act(self, tenant: Tenant, call_id: str, scope: str | None, action: str,
                   params: dict[str, Any]) -> Result:
        call = self.registry.get(call_id)
        if call is not None and _visible(call.tenant, call.ext, tenant, scope):
            return await self._run(call, tenant, action, params)
        return await self._elsewhere(tenant, call_id, scope, action, params)

    async def _run(self, call: Call, tenant: Tenant, action: str, params: dict[str, Any]) -> Result:
        handler: dict[str, Callable[..., Awaitable[Result]]] = {
            "transfer": self._transfer, "park": self._park, "supervise": self._supervise, "mask": self._mask}
        self._usable(call)
        return await handler[action](call, tenant, **params)

    def _usable(self, call: Call) -> None:
        if self.registry.get(call.call_id) is not call:
            raise CallNotFound("no live call with this call_id")
        pbx = self.pbxs[call.pbx]
        if not pbx.ready:
            raise PbxUnavailable(f"PBX link is {pbx.link_state}", call_id=call.call_id)
        if call.unobserved_since is not None:
            raise PbxUnavailable("the call is being checked with the PBX after a lost link; retry",
                                 call_id=call.call_id)

    async def _transfer(self, call: Call, tenant: Tenant, ext: str, legs: Legs) -> Result:
        if call.pending_transfer is not None:
            raise CallBusy(f"a transfer of this call to {call.pending_transfer.ext} is ringing", call_id=call.call_id)
        park = call.park
        if park is None:
            _customer_talks(call)
            target = call.trunk_channel if legs == "bleg" else call.current_agent_channel
            if legs == "aleg" and (call.ext_hungup or call.agent_released):
                raise CallBusy("the agent's leg is no longer in the call", call_id=call.call_id)
        else:
            target = park.channel          # the waiting party, whichever legs was asked
        pbx, device = await self._free_extension(call, tenant, ext)
        transfer = Transfer(ext=ext, legs=legs, time=time.time(), uniqueid=str(uuid.uuid4()), device=device,
                            from_park=park is not None)
        await self._add_leg(call, transfer.uniqueid, lambda: call.transfer_asked(transfer))
        leg = LegRequest(transfer.uniqueid, device, target or "", self.calls.ring_timeout,
                         caller_id_name=call.customer_id or call.phone, caller_id_number=call.phone)
        try:
            await pbx.connect(leg)
        except (PbxLinkDown, PbxRefused) as exc:
            if not (isinstance(exc, PbxLinkDown) and exc.sent):     # nothing reached the PBX
                call.transfer_failed(transfer.uniqueid, "unavailable")
                self.registry.settle(call)
            raise _pbx_error(exc, "the PBX refused the transfer", call.call_id) from None
        except PbxError as exc:             # no ack in time: the PBX may have queued it
            log.warning("call %s: transfer to %s not acknowledged (%s); its events decide", call.call_id, ext, exc)
        log.info("call %s: transfer (%s) to %s ringing", call.call_id, legs, ext)
        await wait_set(call.action_done, self.calls.ring_timeout + self.transfer_grace)
        if transfer.answered is None:       # the PBX said nothing in time: give up on the target
            if transfer.channel:
                self.hangup_channel_later(call.call_id, transfer.channel)
            call.transfer_failed(transfer.uniqueid, "no_answer")
            self.registry.settle(call)
        if transfer.answered:
            log.info("call %s: transferred (%s) to %s", call.call_id, legs, ext)
            return {"call_id": call.call_id, "ext": ext, "legs": legs}
        if transfer.failure == "rejected":
            raise UserBusy(f"ext {ext} refused the transfer; nothing moved", call_id=call.call_id)
        if transfer.failure == "no_answer":
            stays = "the parked party waits" if park else "the customer stays with the agent"
            raise NoAnswer(f"ext {ext} did not answer within the ring timeout; nothing moved ({stays})",
                           call_id=call.call_id)
        raise CallFailed(f"ext {ext} could not be reached; nothing moved", call_id=call.call_id)

    async def _park(self, call: Call, tenant: Tenant, legs: Legs) -> Result:
        if call.park is not None:
            raise CallBusy("a party of this call is already parked", call_id=call.call_id)
        if call.pending_transfer is not None:
            raise CallBusy("a transfer of this call is ringing", call_id=call.call_id)
        _customer_talks(call)
        if call.ext_hungup or call.agent_released:
            raise CallBusy("the agent's leg is no longer in the call", call_id=call.call_id)
        channel = call.trunk_channel if legs == "bleg" else call.current_agent_channel
        uniqueid = call.trunk_uniqueid if legs == "bleg" else call.agent_id
        park = Park(legs=legs, time=time.time(), channel=channel or "", uniqueid=uniqueid or "")
        call.parked_at(park)
        await self._stored(call)                # stored before the PBX moves anyone
        try:
            await self.pbxs[call.pbx].park(park.channel, self.calls.park_context, self.calls.park_timeout)
        except PbxError as exc:
            if isinstance(exc, PbxLinkDown) and exc.sent:
                raise _pbx_error(exc, "", call.call_id) from None   # the park may have happened
            call.parks.remove(park)
            self.registry.settle(call)
            raise _pbx_error(exc, f"the PBX refused the park (is the dialplan context "
                                  f"{self.calls.park_context!r} there?)", call.call_id) from None
        log.info("call %s: %s parked for %g s", call.call_id, "customer" if legs == "bleg" else "agent",
                 self.calls.park_timeout)
        return {"call_id": call.call_id, "legs": legs}

    async def _supervise(self, call: Call, tenant: Tenant, ext: str, mode: SupervisionMode,
                         auto_answer: bool) -> Result:
        _customer_talks(call)
        if call.park is not None:
            raise CallBusy("a party of this call is parked: nobody talks to supervise", call_id=call.call_id)
        if call.ext_hungup or call.agent_released or not call.current_agent_channel:
            raise CallBusy("the agent's leg is no longer in the call", call_id=call.call_id)
        pbx, device = await self._free_extension(call, tenant, ext)
        supervision = Supervision(ext=ext, mode=mode, uniqueid=str(uuid.uuid4()), device=device, time=time.time())
        await self._add_leg(call, supervision.uniqueid, lambda: call.supervisor_asked(supervision))
        leg = LegRequest(supervision.uniqueid, device, call.current_agent_channel, self.calls.ring_timeout,
                         caller_id_name=f"{mode} {call.final_ext}", caller_id_number=call.final_ext,
                         auto_answer_headers=tenant.auto_answer_headers if auto_answer else ())
        try:
            await pbx.spy(leg, mode)
        except PbxError as exc:
            if not (isinstance(exc, PbxLinkDown) and exc.sent):
                call.supervisor_ended(supervision.uniqueid)
                self.registry.settle(call)
            raise _pbx_error(exc, "the PBX refused the supervisor's call", call.call_id) from None
        log.info("call %s: %s by %s ringing", call.call_id, mode, ext)
        return {"call_id": call.call_id, "ext": ext, "mode": mode}

    async def _mask(self, call: Call, tenant: Tenant, masked: bool) -> Result:
        if call.recording_started_at is None or not call.trunk_channel:
            raise NotRecording("this call has no recording", call_id=call.call_id)
        if masked != call.recording_masked:
            try:
                await self.pbxs[call.pbx].mute_recording(call.trunk_channel, masked)
            except PbxError as exc:
                raise _pbx_error(exc, "the PBX refused to mask the recording", call.call_id) from None
            call.recording_muted(masked)
            self.registry.settle(call)
        return {"call_id": call.call_id, "masked": masked}

    async def _free_extension(self, call: Call, tenant: Tenant, ext: str) -> tuple[PbxPort, str]:
        """The PBX, and the dial string of ``ext``: the tenant's, registered and free."""
        if not tenant.extensions.fullmatch(ext):
            raise Forbidden("ext: this extension is not allowed for this token", call_id=call.call_id)
        pbx, device = self.pbxs[call.pbx], tenant.device(ext)
        try:
            state = await pbx.availability(device)
        except PbxError as exc:
            raise _pbx_error(exc, "device state check failed", call.call_id) from None
        if state.availability is Availability.BUSY:
            raise UserBusy(f"ext {ext} is busy ({state.detail})", call_id=call.call_id)
        if state.availability is Availability.ABSENT:
            raise UserNotRegistered(f"ext {ext} is not registered ({state.detail})", call_id=call.call_id)
        return pbx, device

    async def _add_leg(self, call: Call, uniqueid: str, record: Callable[[], None]) -> None:
        """Note the new leg in the call and route its events to it, then store that (a
        restart finds the leg), before its Originate is sent."""
        record()
        self.registry.add_leg(call, uniqueid)
        await self._stored(call)

    async def _stored(self, call: Call) -> None:
        """Settle the call and wait (bounded) until the change is in the store, without the
        group commit's linger: the PBX is asked to act next, and a gateway killed meanwhile
        must find what it asked for after its restart."""
        self.registry.settle(call)
        await self.registry.written(WRITTEN_WAIT)   # (a store down: its health says so; it is kept)

    # -- recording ---------------------------------------------------------------------------------
    def record_later(self, call_id: str) -> None:
        """The customer answered a call to be recorded (asked by the event translator)."""
        call = self.registry.get(call_id)
        if call is not None and call.trunk_channel:
            self._background.spawn(self._start_recording(call, call.trunk_channel))

    async def _start_recording(self, call: Call, channel: str) -> None:
        tenant = self.tenants.get(call.tenant)
        if tenant is None:
            return
        try:
            await self.pbxs[call.pbx].start_recording(channel, pbx_file(tenant.recording, call.call_id))
        except PbxError as exc:
            log.warning("call %s: recording not started: %s (MixMonitor needs app_mixmonitor and an AMI user "
                        "with write=system)", call.call_id, exc)
            return
        if self.registry.get(call.call_id) is call:
            call.recording_started()
            self.registry.settle(call)
        log.info("call %s: recording", call.call_id)

    # -- asked by the AMI event translator, which must not await -----------------------------------
    def hangup_channel_later(self, call_id: str, channel: str) -> None:
        """Hang up a leg call control left behind (the PBX usually ends it itself)."""
        call = self.registry.get(call_id)
        if call is not None:
            self._background.spawn(self._hangup_channel(call.pbx, channel))

    async def _hangup_channel(self, pbx: str, channel: str) -> None:
        try:
            await self.pbxs[pbx].hangup(channel)
        except PbxError as exc:
            log.debug("hangup of %s: %s", channel, exc)

    def hangup_later(self, call_id: str) -> None:
        if self._hangup_later is not None:
            self._hangup_later(call_id)

    def fetch_sip_call_id_later(self, call_id: str) -> None:
        if self._fetch_sip_call_id_later is not None:
            self._fetch_sip_call_id_later(call_id)

    # -- a call another instance tracks --------------------------------------------------------------
    async def _elsewhere(self, tenant: Tenant, call_id: str, scope: str | None, action: str,
                         params: dict[str, Any]) -> Result:
        with store_needed():
            row = await self.store.live_call(call_id)
        if row is None or not _visible(row.get("tenant"), row.get("ext"), tenant, scope):
            raise CallNotFound("no live call with this call_id")
        owner = row.get("owner")
        if not owner or owner == self.instance_id:
            raise PbxUnavailable("the call is being taken over by another instance; retry", call_id=call_id)
        request_id = str(uuid.uuid4())
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            with store_needed():
                await self.store.notify(CONTROL_CHANNEL, json.dumps({
                    "id": request_id, "call_id": call_id, "owner": owner, "reply_to": self.instance_id,
                    "tenant": tenant.domain, "scope": scope, "action": action, "params": params}))
            bound = self.calls.ring_timeout + self.transfer_grace if action == "transfer" else 0.0
            try:
                async with asyncio.timeout(bound + OTHER_INSTANCE_GRACE):
                    reply = await answer
            except TimeoutError:
                raise PbxUnavailable(f"instance {owner}, which tracks the call, did not answer in time; retry",
                                     call_id=call_id) from None
        finally:
            self._waiting.pop(request_id, None)
        if "error" in reply:
            raise error_from(str(reply["error"]), str(reply.get("message", "")), reply.get("call_id"),
                             reply.get("retry_after"))
        return dict(reply.get("result") or {})

    async def listen(self) -> None:
        """Carry out actions asked on other instances for calls this one tracks, and hear
        their answers for the actions it asked."""
        await self.store.listen(CONTROL_CHANNEL, self._asked)
        await self.store.listen(REPLY_CHANNEL, self._answered)

    def _asked(self, payload: str) -> None:
        try:
            asked = json.loads(payload)
        except ValueError:
            return
        if not isinstance(asked, dict) or asked.get("owner") != self.instance_id:
            return
        self._background.spawn(self._carry_out(asked))

    async def _carry_out(self, asked: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": asked.get("id"), "reply_to": asked.get("reply_to")}
        try:
            tenant = self.tenants.get(str(asked.get("tenant")))
            call = self.registry.get(str(asked.get("call_id")))
            if tenant is None or call is None or asked.get("action") not in ("transfer", "park", "supervise", "mask") \
                    or not _visible(call.tenant, call.ext, tenant, asked.get("scope")):
                raise CallNotFound("no live call with this call_id")
            reply["result"] = await self._run(call, tenant, str(asked["action"]), dict(asked.get("params") or {}))
            await self.registry.written(WRITTEN_WAIT)   # the asker reads the call from the store next
        except C2CError as exc:
            reply.update(error=exc.code, message=exc.message, call_id=exc.call_id, retry_after=exc.retry_after)
        except Exception:
            log.exception("call %s: %s asked by another instance failed", asked.get("call_id"), asked.get("action"))
            reply.update(error=CallFailed.code, message="internal error")
        try:
            await self.store.notify(REPLY_CHANNEL, json.dumps(reply))
        except StorageError as exc:          # the asker times out and says the call's owner did not answer
            log.warning("call %s: the answer to another instance's %s was not sent: %s", asked.get("call_id"),
                        asked.get("action"), exc)

    def _answered(self, payload: str) -> None:
        try:
            reply = json.loads(payload)
        except ValueError:
            return
        if not isinstance(reply, dict) or reply.get("reply_to") != self.instance_id:
            return
        waiting = self._waiting.get(str(reply.get("id")))
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    async def close(self) -> None:
        await self._background.close()


def _visible(call_tenant: Any, ext: Any, tenant: Tenant, scope: str | None) -> bool:
    """The call is the tenant's and, for an extension-scoped token, its extension's (the one
    that placed it: as for reading and hanging up calls, CDRs and recordings)."""
    return call_tenant == tenant.domain and scope in (None, ext)


def _customer_talks(call: Call) -> None:
    if not call.customer_answered:
        raise CallNotAnswered("the customer has not answered yet", call_id=call.call_id)
    if call.trunk_hungup:
        raise CallNotFound("the customer has hung up: the call is ending", call_id=call.call_id)


def _pbx_error(exc: PbxError, refused: str, call_id: str) -> C2CError:
    if isinstance(exc, PbxLinkDown):
        return PbxUnavailable(f"{exc}; the call is checked with the PBX once the link is back", call_id=call_id)
    if isinstance(exc, PbxRefused):
        return CallFailed(f"{refused}: {exc}", call_id=call_id)
    return CallFailed(f"{refused}: no answer from the PBX ({exc})", call_id=call_id)
