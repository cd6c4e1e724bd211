"""The call service: the rules between a validated request and the PBX.

Placing a call: the tenant owns the ext and hotline -> its caller IDs are allowed and the
number is not on a do-not-call list (``calls/policy.py``) -> the extension's click limit -> join
an identical request still in flight (a double click, or a replayed ``Idempotency-Key``; on
every instance when several share the store) -> claim the device (one call per extension,
in the registry and, shared, in the store) -> ask the PBX whether it is free -> Originate
once -> optionally wait, bounded, for the extension to answer. Every failure path before
the Originate releases the claim; after it, the call is never dropped on a guess.

Controlling and reading calls: a tenant sees only its own calls and CDRs (another tenant's
call_id is "not found"), on any instance: a call another instance owns is read from the
store, and cancelled by telling its owner. PBX failures (``PbxError``, ``calls/pbx_port.py``)
become the API's errors here and nowhere else; so does a store that does not answer
(``StoreUnavailable``: a call is not placed while its record could not be kept).
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..auto_answer import BY_USER_AGENT, Bundle
from ..config import CallsConfig, Tenant
from ..errors import (
    CallFailed,
    CallNotFound,
    Forbidden,
    PbxUnavailable,
    RateLimited,
    StoreUnavailable,
    UserBusy,
    UserNotRegistered,
)
from ..store import Bucket, ClickClaim, LiveClaim, Storage, StorageError, StorageUnavailable, store_needed
from ..waits import Background, wait_set
from .call import Call
from .guards import Limiter, SingleFlight, fingerprint
from .pbx_port import Availability, CheckResult, Originate, PbxError, PbxLinkDown, PbxPort, PbxRefused
from .phones import PhoneBook
from .policy import DialPolicy, listed_refusal
from .record import call_record
from .registry import CallRegistry
from .requests import CdrQuery, ClickToCallRequest
from .shared_guards import Charge, KeyHeld, SharedFlight, SharedRateLimiter, Ticket

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "c2c_cancel"     # NOTIFY: {"call_id", "owner"} -- a cancel asked on another instance

# Between Originate and its OriginateResponse Asterisk rings for ring_timeout; allow this
# much more before deciding the PBX lost the call.
OUTCOME_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class PbxReadiness:
    name: str
    ami: str                    # the AMI link's state
    detail: str | None = None   # why not ready, when not
    findings: tuple[str, ...] = ()   # the last check of its Asterisk side (pbx/check.py)
    usable: bool = True         # the link is ready and no finding blocks every call


@dataclass(frozen=True)
class StoreReadiness:
    backend: str                # sqlite or postgresql
    state: str                  # ready, or unavailable
    down_seconds: int = 0       # how long it has not answered


@dataclass(frozen=True)
class Readiness:
    ready: bool                 # at least one PBX usable, the store answers, and not shutting down
    pbxs: tuple[PbxReadiness, ...]
    store: StoreReadiness


class CallService:
    def __init__(self, pbxs: Mapping[str, PbxPort], registry: CallRegistry, store: Storage, calls: CallsConfig, *,
                 duplicates: SingleFlight, idempotency: SingleFlight, instance_id: str = "solo",
                 shared_duplicates: SharedFlight | None = None, shared_idempotency: SharedFlight | None = None,
                 shared_claims: bool = True, clicks: Limiter | None = None,
                 policy: DialPolicy | None = None, phones: PhoneBook | None = None) -> None:
        self.pbxs = pbxs
        self.phones = phones or PhoneBook()              # registered phones: User-Agents for auto-answer
        self.policy = policy or DialPolicy(store)        # the do-not-call and caller-ID rules
        self.clicks = clicks                             # per tenant + ext; None: no such limit
        self.registry = registry
        self.instance_id = instance_id
        self.shared_claims = shared_claims               # False: this process is the only one
        self.shared_duplicates = shared_duplicates       # several instances: the same guards,
        self.shared_idempotency = shared_idempotency     # kept in the store
        self.store = store
        self.calls = calls
        self.duplicates = duplicates
        self.idempotency = idempotency
        self.accepting = True
        self.waiters = 0
        self._no_waiters = asyncio.Event()
        self._no_waiters.set()
        self._background = Background()

    # -- placing calls -------------------------------------------------------------------------
    async def place(self, tenant: Tenant, request: ClickToCallRequest, *, wait: bool,
                    idempotency_key: str | None = None, caller: str = "", charge: Charge | None = None) -> str:
        """Start a click-to-call (with ``wait``: return once the extension answered) and
        return its call_id. A request identical to one in flight joins it; with an
        ``idempotency_key`` the first answer for that key is replayed. Keys are remembered
        per ``caller`` (who asks: a token's rate-limit key), so no caller learns whether
        another used a key. Raises a C2CError for every refusal or failure.

        Every request is checked (the tenant owns ext and hotline) before it may join
        another: joining never skips a check. Only an identical request joins (every
        parameter, sync or async alike); a different one to the same extension meanwhile is
        USER_BUSY, as the extension is taken. The extension's click limit counts only
        requests that would start a call: a replay or a joiner gets the first answer.

        Several instances on one store: the click's request key, its extension, its click
        limit and the request's ``charge`` (its token of the per-token limit, if not taken
        yet) are taken in one statement, and the key is answered once the Originate is
        queued: two round trips."""
        hotline, trunk = self._authorize(tenant, request)
        self.policy.check_caller_ids(tenant, request.ext, request.src_cid_number, request.dest_cid_number)
        listed: tuple[str, str] | None = None
        if self.shared_claims:      # the store's do-not-call list is read with the click's claim
            listed = (tenant.domain, self.policy.store_key(tenant, request.phone))
        else:
            await self.policy.check_number(tenant, request.phone)
        printed = fingerprint(request, wait)

        async def start(ticket: Ticket | None = None) -> str:
            in_claim = ticket is not None and isinstance(self.clicks, SharedRateLimiter)
            if self.clicks is not None and not in_claim:
                await self.clicks.admit(tenant.domain, request.ext)
            if ticket is None and listed is not None:
                await self.policy.check_number(tenant, request.phone)
            return (await self._place(tenant, request, hotline, trunk, wait=wait, ticket=ticket,
                                      charge=charge, listed=listed)).call_id

        if idempotency_key is not None:
            shared = self.shared_idempotency
            run = start if shared is None else functools.partial(
                shared.run, "idempotency", f"{tenant.domain} {caller} {idempotency_key}", printed, start)
            return await self.idempotency.run(tenant.domain, (caller, idempotency_key), printed, run)
        shared = self.shared_duplicates
        run = start if shared is None else functools.partial(
            shared.run, "duplicate", f"{tenant.domain} {request.ext} {request.phone} {printed}", printed, start)
        return await self.duplicates.run(tenant.domain, (request.ext, request.phone, printed), printed, run)

    async def _place(self, tenant: Tenant, request: ClickToCallRequest, hotline: str, trunk: str, *,
                     wait: bool, ticket: Ticket | None = None, charge: Charge | None = None,
                     listed: tuple[str, str] | None = None) -> Call:
        if not self.accepting:
            raise PbxUnavailable("the gateway is shutting down")
        if not self.store.health.available:     # its record could not be kept
            raise StoreUnavailable()
        pbx = self.pbxs[tenant.pbx]
        if not pbx.ready:
            await self._listed_first(listed)
            raise PbxUnavailable(f"PBX link is {pbx.link_state}")
        call = Call(tenant=tenant.domain, ext=request.ext, device=tenant.device(request.ext),
                    phone=request.phone, hotline=hotline, trunk=trunk, pbx=pbx.name,
                    customer_id=request.customer_id,
                    record=tenant.recording.enabled if request.record is None else request.record)
        if not self.registry.claim(call):
            await self._listed_first(listed)
            raise UserBusy("a click-to-call to this extension is already in progress")
        try:
            await self._claim_in_store(call, ticket, charge, listed)
        except BaseException:
            self.registry.release(call)
            raise
        try:
            await self._check_device(pbx, call)
        except BaseException:
            self.registry.release(call)  # nothing was dialed: no call to report
            await self._release_in_store(call)
            raise
        await self._originate(pbx, call, self._originate_of(call, request, tenant))
        if wait:
            await self._wait_answered(call)
        return call

    async def _listed_first(self, listed: tuple[str, str] | None) -> None:
        """Refusing before the claim (which reads the do-not-call list on a shared store):
        a listed number is still PHONE_BLACKLISTED first, as on a store of one instance."""
        if listed is not None and await self.policy.is_listed(*listed):
            raise listed_refusal()

    async def _claim_in_store(self, call: Call, ticket: Ticket | None = None, charge: Charge | None = None,
                              listed: tuple[str, str] | None = None) -> None:
        """The extension, cluster-wide: the store holds one live call per extension and PBX,
        whichever instance placed it. (Alone on its store, the registry's claim is enough.)
        With the click's ``ticket``, one statement takes everything the click takes (and
        looks the number up in the do-not-call list: ``listed``)."""
        if not self.shared_claims:
            return
        try:
            if ticket is None:
                claimed = await self.store.claim_call(call.call_id, call.tenant, call.pbx, call.device,
                                                      self.instance_id, call.facts())
            else:
                claimed = await self._claim_click(call, ticket, charge, listed)
        except StorageUnavailable:
            raise StoreUnavailable() from None
        if not claimed:
            raise UserBusy("a click-to-call to this extension is already in progress")
        if ticket is not None:          # its facts and first events are stored: nothing to rewrite
            self.registry.stored(call)

    async def _claim_click(self, call: Call, ticket: Ticket, charge: Charge | None,
                           listed: tuple[str, str] | None) -> bool:
        """The charge's token, the do-not-call lookup, the ticket's key, the click limit's
        token, the extension and the call's first events; False if the extension is taken.
        Raises PhoneBlacklisted, KeyHeld, or RateLimited for a spent bucket."""
        charged = charge is not None and not charge.taken
        clicks = self.clicks if isinstance(self.clicks, SharedRateLimiter) else None
        buckets: tuple[Bucket, ...] = (charge.bucket,) if charged and charge is not None else ()
        key_buckets = (clicks.bucket(call.tenant, call.ext),) if clicks is not None else ()
        result = await self.store.claim_click(ClickClaim(
            buckets, ticket.key, key_buckets,
            LiveClaim(call.call_id, call.tenant, call.pbx, call.device, self.instance_id, call.facts()),
            listed=listed, events=self.registry.opening_events(call)))
        if charged and charge is not None:
            charge.taken = True
        ticket.taken = result.key_taken
        if result.refused == "listed":
            raise listed_refusal()
        if result.refused == "key":
            raise KeyHeld(result.held or {})
        if result.refused == "bucket":
            limiter = charge.limiter if charged and result.bucket == 0 and charge is not None else clicks
            raise limiter.refusal(result.tokens) if limiter is not None else RateLimited("rate limit exceeded")
        return result.refused is None

    async def _release_in_store(self, call: Call) -> None:
        if not self.shared_claims:
            return
        try:
            await self.store.release_call(call.call_id)
        except StorageError as exc:      # the extension stays held until the call row is adopted
            log.error("call %s: could not release the extension in the store: %s", call.call_id, exc)

    @staticmethod
    def _authorize(tenant: Tenant, request: ClickToCallRequest) -> tuple[str, str]:
        if not tenant.extensions.fullmatch(request.ext):
            raise Forbidden("ext: this extension is not allowed for this token")
        hotline = request.hotline or tenant.default_hotline
        trunk = tenant.hotlines.get(hotline)
        if trunk is None:
            raise Forbidden("hotline: this hotline is not allowed for this token")
        return hotline, trunk

    async def _check_device(self, pbx: PbxPort, call: Call) -> None:
        """Asterisk itself would happily send a second INVITE to a phone already on a call.
        Busy is known three ways: the gateway's own live call on the extension (its claim in
        the registry and store, ``_place``), the device's state, and any channel of the device
        up on the PBX (chan_sip shows a peer without ``callcounter=yes`` as free while it talks;
        ``Pbx.availability``)."""
        try:
            device = await pbx.availability(call.device)
        except PbxLinkDown as exc:
            raise PbxUnavailable(str(exc)) from None
        except PbxRefused as exc:
            raise CallFailed(f"device state check refused by the PBX: {exc}") from None
        except PbxError as exc:
            raise CallFailed(f"device state check failed: {exc}") from None
        if device.availability is Availability.BUSY:
            raise UserBusy(f"the extension is busy ({device.detail})")
        if device.availability is Availability.ABSENT:
            raise UserNotRegistered(f"the extension is not registered ({device.detail})")

    def _originate_of(self, call: Call, request: ClickToCallRequest, tenant: Tenant) -> Originate:
        """The defaults: the extension sees itself as the number, the called number sees the
        hotline."""
        dest_number = request.dest_cid_number or call.hotline
        headers = self._auto_answer(call, tenant) if request.auto_answer else ()
        return Originate(
            call_id=call.call_id, device=call.device, context=tenant.context, ext=call.ext,
            phone=call.phone, hotline=call.hotline, trunk=call.trunk,
            caller_id_name=request.src_cid_name, caller_id_number=request.src_cid_number or call.ext,
            dest_cid_name=request.dest_cid_name or dest_number, dest_cid_number=dest_number,
            ring_timeout=self.calls.ring_timeout, dial_timeout=self.calls.dial_timeout,
            auto_answer_headers=headers,
            customer_id=call.customer_id)

    def _auto_answer(self, call: Call, tenant: Tenant) -> Bundle:
        """The tenant's bundle, or with ``by_user_agent`` the one its phone's User-Agent picks
        (the user-agent table; ``standard`` for a phone none names, or not known yet). The
        call notes that it was asked and the User-Agent (auto_answer_honoured, /metrics)."""
        user_agent = self.phones.user_agent(call.pbx, call.device)
        headers = tenant.auto_answer_headers
        if tenant.auto_answer == BY_USER_AGENT:
            headers = self.calls.auto_answer_bundles[self.calls.auto_answer_user_agents.bundle_for(user_agent)]
        call.auto_answer_asked = bool(headers)
        call.auto_answer_user_agent = user_agent
        return headers

    async def _originate(self, pbx: PbxPort, call: Call, originate: Originate) -> None:
        """Send the Originate exactly once; its ack only means "queued". Once it may have
        reached the PBX the call is never dropped on a guess: it stays tracked (events, or
        the PBX asked again after a lost link, tell what became of it)."""
        try:
            await pbx.originate(originate)
        except PbxLinkDown as exc:
            if not exc.sent:
                self.registry.release(call)   # nothing reached the PBX: no call to report
                await self._release_in_store(call)
                raise PbxUnavailable(str(exc)) from None
            call.unobserved(time.time())
            self.registry.suspend_call(call)
            raise PbxUnavailable(f"{exc}; the call may or may not have been placed: it is checked with the "
                                 f"PBX once the link is back (GET /v1/calls/{call.call_id})",
                                 call_id=call.call_id) from None
        except PbxRefused as exc:
            self.registry.finish(call)
            raise CallFailed(f"Originate refused by the PBX: {exc}", call_id=call.call_id) from None
        except PbxError as exc:           # no ack in time: Asterisk may still have queued it
            self.registry.settle(call)
            raise CallFailed(f"Originate not acknowledged: {exc}; the call is tracked until the PBX reports "
                             f"an outcome (GET /v1/calls/{call.call_id})", call_id=call.call_id) from None
        except BaseException:             # cancelled after the write: the PBX may have it
            self.registry.settle(call)
            raise
        self.registry.settle(call)
        log.info("call %s: ext %s -> %s via %s on %s originated", call.call_id, call.ext, call.phone,
                 call.hotline, pbx.name)

    async def _wait_answered(self, call: Call) -> None:
        self.waiters += 1
        self._no_waiters.clear()
        try:
            async with asyncio.timeout(self.calls.sync_timeout):
                await call.wake_waiters.wait()
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
        if not call.outcome_known.is_set():   # out of sight: a lost link, or shutting down
            raise PbxUnavailable("the PBX link was lost (or the gateway is stopping) before the extension "
                                 "answered; the call is still tracked and checked with the PBX once the "
                                 f"link is back: follow it with GET /v1/calls/{call.call_id}", call_id=call.call_id)

    # -- controlling calls ---------------------------------------------------------------------
    async def cancel(self, tenant: Tenant, call_id: str, ext: str | None = None) -> str:
        """Hang up (or cancel while ringing) a live call; a waiting sync request is then
        answered CALL_CANCELLED. If the channel does not exist yet, it is hung up as soon
        as its Newchannel event arrives. A call another instance owns is marked cancelled
        in the store and its owner told (or, if it is gone, whoever adopts the call).
        With ``ext`` (an extension-scoped token) only a call of that extension is found."""
        call = self.registry.get(call_id)
        if call is None or call.tenant != tenant.domain or (ext is not None and call.ext != ext):
            return await self._cancel_elsewhere(tenant, call_id, ext)
        pbx = self.pbxs[call.pbx]
        if not pbx.ready or call.unobserved_since is not None:
            raise PbxUnavailable(f"PBX link is {pbx.link_state}" if not pbx.ready else
                                 "the call is being checked with the PBX after a lost link; retry",
                                 call_id=call.call_id)
        call.cancel()
        if call.ext_channel:
            await self.hangup_quietly(call)
        return call.call_id

    async def _cancel_elsewhere(self, tenant: Tenant, call_id: str, ext: str | None) -> str:
        with store_needed():
            row = await self.store.live_call(call_id)
            if row is None or row.get("tenant") != tenant.domain or (ext is not None and row.get("ext") != ext):
                raise CallNotFound("no live call with this call_id")
            owner = await self.store.request_cancel(call_id)
            if owner is None:
                raise CallNotFound("no live call with this call_id")     # it ended meanwhile
            await self.store.notify(CANCEL_CHANNEL, json.dumps({"call_id": call_id, "owner": owner}))
        return call_id

    async def listen(self) -> None:
        """Carry out cancels asked on other instances for calls this one owns."""
        await self.store.listen(CANCEL_CHANNEL, self._cancel_asked)

    def _cancel_asked(self, payload: str) -> None:
        try:
            asked = json.loads(payload)
        except ValueError:
            return
        call = self.registry.get(str(asked.get("call_id")))
        if call is None or asked.get("owner") != self.instance_id:
            return
        call.cancel()
        if call.ext_channel:
            self.hangup_later(call.call_id)

    async def hangup_quietly(self, call: Call) -> None:
        """Hang up the agent's leg (the extension's, or whoever took the customer in a
        transfer), which ends the customer's too; with no agent leg left (the customer
        parked), the customer's."""
        pbx = self.pbxs.get(call.pbx)
        agent_gone = call.ext_hungup or call.agent_released
        channel = (call.trunk_channel if call.customer_up else None) if agent_gone else call.current_agent_channel
        if channel and pbx is not None and pbx.ready:
            try:
                await pbx.hangup(channel)
            except PbxError as exc:
                log.warning("call %s: hangup failed: %s", call.call_id, exc)

    # -- asked by the AMI event translator, which must not await -------------------------------
    def hangup_later(self, call_id: str) -> None:
        call = self.registry.get(call_id)
        if call is not None:
            self._background.spawn(self.hangup_quietly(call))

    def fetch_sip_call_id_later(self, call_id: str) -> None:
        call = self.registry.get(call_id)
        if call is not None and call.trunk_channel and call.sip_call_id is None:
            self._background.spawn(self._fetch_sip_call_id(call, call.trunk_channel))

    async def _fetch_sip_call_id(self, call: Call, channel: str) -> None:
        try:
            sip_call_id = await self.pbxs[call.pbx].sip_call_id(channel)
        except PbxError as exc:
            log.info("call %s: SIP Call-ID not read: %s", call.call_id, exc)
            return
        if sip_call_id:
            call.sip_call_id_learned(sip_call_id)

    # -- reading calls -------------------------------------------------------------------------
    async def call(self, tenant: Tenant, call_id: str, ext: str | None = None) -> dict[str, Any]:
        """The call's live record (whichever instance owns it), or its CDR once it has ended.
        With ``ext`` (an extension-scoped token) only a call of that extension is found."""
        call = self.registry.get(call_id)
        if call is not None and call.tenant == tenant.domain and ext in (None, call.ext):
            return call_record(call)
        if self.registry.just_ended(call_id) is None:
            with store_needed():
                row = await self.store.live_call(call_id)
            if row is not None and row.get("tenant") == tenant.domain and ext in (None, row.get("ext")):
                return call_record(Call.from_facts(row))
        return await self.cdr(tenant, call_id, ext, missing="no call with this call_id")

    async def live_calls(self, tenant: Tenant, ext: str | None = None) -> list[dict[str, Any]]:
        """The records of the tenant's live calls (only ``ext``'s, if given), on every instance."""
        own = self.registry.live(tenant.domain)
        known = {call.call_id for call in own}
        with store_needed():
            stored = await self.store.live_calls_of(tenant.domain)
        others = [Call.from_facts(row) for row in stored
                  if row.get("call_id") not in known and self.registry.just_ended(row.get("call_id", "")) is None]
        return [call_record(call) for call in [*own, *others] if ext in (None, call.ext)]

    async def cdr(self, tenant: Tenant, call_id: str, ext: str | None = None,
                  missing: str = "no CDR with this call_id", *, by_sip_call_id: bool = False) -> dict[str, Any]:
        """The CDR of an ended call -- also in the moment it is being written (only a call
        of ``ext``, if given). With ``by_sip_call_id``, ``call_id`` may also be the call's SIP
        Call-ID."""
        record = self.registry.just_ended(call_id)
        with store_needed():
            if record is None and by_sip_call_id:
                record = await self.store.find_call(tenant.domain, call_id)
            elif record is None:
                record = await self.store.get_call(tenant.domain, call_id)
        if record is None or record.get("tenant") != tenant.domain or ext not in (None, record.get("extension")):
            raise CallNotFound(missing)
        return record

    async def cdrs(self, tenant: Tenant, query: CdrQuery) -> tuple[list[dict[str, Any]], int, bool]:
        """One page of the tenant's CDRs, newest first, how many match, and whether that count
        is exact (else it is a lower bound: ``Storage.list_calls``)."""
        if query.direction == "inbound":       # click-to-call places outbound calls only
            return [], 0, True
        with store_needed():
            return await self.store.list_calls(
                tenant.domain, start_date=query.start_date, end_date=query.end_date, extension=query.extension,
                phone=query.phone, status=query.status, customer_id=query.customer_id, limit=query.limit,
                page=query.page, offset=query.offset)

    async def scroll_cdrs(self, tenant: Tenant, query: CdrQuery,
                          after: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """The next ``query.limit`` of the tenant's CDRs after the row (time_started, call_id)
        ``after``, newest first (``Storage.scroll_calls``)."""
        if query.direction == "inbound":
            return []
        with store_needed():
            return await self.store.scroll_calls(
                tenant.domain, start_date=query.start_date, end_date=query.end_date, extension=query.extension,
                phone=query.phone, status=query.status, customer_id=query.customer_id, limit=query.limit,
                after=after)

    # -- the service's own life ----------------------------------------------------------------
    def readiness(self) -> Readiness:
        """Ready = at least one PBX's AMI link is logged in and usable, the store answers, and
        the gateway is not stopping; each PBX's own state besides (its tenants get
        PBX_UNAVAILABLE while it is down), with what the last check of its Asterisk side found,
        and the store's. A PBX whose check found something that stops every call (the AMI user
        may not Originate or Getvar, or reads no call events) is not usable; other findings (a
        tenant's context, a trunk, a module) are shown but leave it ready: other tenants' calls
        still work there."""
        pbxs = []
        for p in self.pbxs.values():
            check = p.last_check
            blocked = p.ready and check is not None and check.blocking
            detail = None if p.ready else p.last_error
            if blocked:
                detail = "; ".join(f.what for f in check.findings if f.blocking) if check else None
            pbxs.append(PbxReadiness(p.name, p.link_state, detail,
                                     tuple(f.line() for f in check.findings) if check is not None else (),
                                     p.ready and not blocked))
        health = self.store.health
        store = StoreReadiness(self.store.backend, "ready" if health.available else "unavailable",
                               round(health.down_for()))
        return Readiness(self.accepting and health.available and any(p.usable for p in pbxs), tuple(pbxs), store)

    def pbx_status(self, tenant: Tenant) -> dict[str, Any]:
        """The tenant's own PBX as the tenant may see it (GET /v1/pbx/status): its AMI link,
        whether calls can be placed, and the last check's findings that concern it (the whole
        PBX's and its own, not other tenants'); nothing is asked of the PBX."""
        pbx = self.pbxs[tenant.pbx]
        check = pbx.last_check
        ready = next(p for p in self.readiness().pbxs if p.name == tenant.pbx)
        findings = [f.as_dict() for f in (check.findings if check is not None else ()) if f.concerns(tenant.domain)]
        return {"name": pbx.name, "ami": ready.ami, "detail": ready.detail, "usable": ready.usable,
                "checked_at": check.checked_at if check is not None else None,
                "findings": findings, "skipped": list(check.skipped) if check is not None else []}

    async def check_pbxs(self) -> dict[str, CheckResult]:
        """Check the Asterisk side of every PBX now (GET /v1/pbx/check)."""
        results = await asyncio.gather(*(p.check() for p in self.pbxs.values()))
        return dict(zip(self.pbxs, results, strict=True))

    async def drain(self, grace: float) -> None:
        """Shutdown: refuse new calls, give waiting sync requests ``grace`` seconds, then
        answer the rest. Live calls are not ended: the next start tracks them again."""
        self.accepting = False
        await wait_set(self._no_waiters, grace)
        now = time.time()
        live = self.registry.live()
        for call in live:
            call.unobserved(now)
            self.registry.suspend_call(call)
        if live:
            log.warning("stopping with %d live call(s): not ended, left in the store for the next start "
                        "to check with the PBX", len(live))

    async def close(self) -> None:
        await self._background.close()
