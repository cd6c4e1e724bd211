"""The call service turns the PBX's own errors into API errors, and only a call that may have
reached the PBX is reported (CDR, webhooks); every request is checked before it joins another."""
import asyncio
import contextlib
import dataclasses
import logging

import pytest

from c2c_ami.calls.guards import RateLimiter, SingleFlight
from c2c_ami.calls.pbx_port import Availability, DeviceState
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.calls.requests import ClickToCallRequest
from c2c_ami.calls.service import CallService
from c2c_ami.config import CallsConfig, parse_config
from c2c_ami.errors import CallFailed, Forbidden, PbxUnavailable, RateLimited, UserBusy, UserNotRegistered
from c2c_ami.pbx import AmiLinkDown, AmiRefused, AmiTimeout
from c2c_ami.store import SqliteStorage
from tests.fixtures_gateway import AUTH
from tests.test_config import BASE


class StubPbx:
    """A Pbx whose answers the test sets: a DeviceState or an error per action."""
    name = "default"
    ready = True
    link_state = "ready"
    last_error = None
    last_check = None

    def __init__(self, device=None, originate=None):
        device = device or DeviceState(Availability.FREE, "NOT_INUSE")
        self.device, self.originate_error, self.originated = device, originate, []

    async def availability(self, device):
        if isinstance(self.device, Exception):
            raise self.device
        return self.device

    async def originate(self, originate):
        self.originated.append(originate)
        if self.originate_error is not None:
            raise self.originate_error


class Reported:
    def __init__(self):
        self.ended = []

    def call_changed(self, call, steps):
        pass

    def call_ended(self, call):
        self.ended.append(call.call_id)

    def opening_events(self, call):
        return ()

    def call_stored(self, call):
        pass

    def unstored_end(self, call_id):
        return None

    def call_dropped(self, call):
        pass

    async def written(self, timeout):
        return True


def service(pbx, clicks=None):
    registry = CallRegistry(Reported())
    return CallService({"default": pbx}, registry, store=SqliteStorage(":memory:"), calls=CallsConfig(),
                       duplicates=SingleFlight(5, remember_failures=False),
                       idempotency=SingleFlight(60, remember_failures=True), clicks=clicks)


TENANT = parse_config(BASE, {}).tenants[0]
REQUEST = ClickToCallRequest(ext="101", phone="0899")


@pytest.mark.parametrize("answer, error, message", [
    (AmiLinkDown("PBX link is connecting", sent=False), PbxUnavailable, "PBX link is connecting"),
    (AmiTimeout("no answer to Getvar within 3 s"), CallFailed, "device state check failed: no answer"),
    (AmiRefused("Permission denied"), CallFailed, "device state check refused by the PBX: Permission denied"),
    (DeviceState(Availability.BUSY, "INUSE"), UserBusy, "the extension is busy (INUSE)"),
    (DeviceState(Availability.ABSENT, "UNAVAILABLE"), UserNotRegistered, "the extension is not registered"),
])
async def test_device_check_refusals_place_and_report_nothing(answer, error, message):
    pbx = StubPbx(device=answer)
    calls = service(pbx)
    with pytest.raises(error) as info:
        await calls.place(TENANT, REQUEST, wait=False)
    assert info.value.message.startswith(message) and info.value.call_id is None
    assert pbx.originated == [] and len(calls.registry) == 0 and calls.registry.observer.ended == []


async def test_originate_not_sent_is_not_a_call():
    pbx = StubPbx(originate=AmiLinkDown("PBX link is disconnected", sent=False))
    calls = service(pbx)
    with pytest.raises(PbxUnavailable) as info:
        await calls.place(TENANT, REQUEST, wait=False)
    assert info.value.call_id is None and "may or may not" not in info.value.message
    assert len(calls.registry) == 0 and calls.registry.observer.ended == []


@pytest.mark.parametrize("failure, error, message, unobserved", [
    (AmiLinkDown("PBX link lost (connection lost)", sent=True), PbxUnavailable,
     "PBX link lost (connection lost); the call may or may not have been placed", True),
    (AmiTimeout("no answer to Originate within 3 s"), CallFailed, "Originate not acknowledged: no answer", False),
])
async def test_originate_that_may_have_reached_the_pbx_stays_tracked(failure, error, message, unobserved):
    """Never dropped on a guess: the call stays live, with a deadline, until events or the PBX
    asked again say what became of it."""
    pbx = StubPbx(originate=failure)
    calls = service(pbx)
    with pytest.raises(error) as info:
        await calls.place(TENANT, REQUEST, wait=False)
    call_id = pbx.originated[0].call_id
    assert info.value.message.startswith(message) and info.value.call_id == call_id
    call = calls.registry.get(call_id)
    assert call is not None and (call.unobserved_since is not None) == unobserved
    assert call.deadline == ("unobserved" if unobserved else "outcome") and calls.registry.observer.ended == []


async def test_originate_refused_by_the_pbx_is_a_failed_call():
    pbx = StubPbx(originate=AmiRefused("Extension does not exist."))
    calls = service(pbx)
    with pytest.raises(CallFailed) as info:
        await calls.place(TENANT, REQUEST, wait=False)
    call_id = pbx.originated[0].call_id
    assert info.value.message == "Originate refused by the PBX: Extension does not exist."
    assert len(calls.registry) == 0 and calls.registry.observer.ended == [call_id]


@pytest.mark.parametrize("bundle, auto_answer, headers", [
    (None, True, parse_config(BASE, {}).calls.auto_answer_bundles["standard"]),
    ("answer-mode", True, (("Answer-Mode", "Auto"),)),
    ("answer-mode", False, ()),
    ("none", True, ()),
])
async def test_the_originate_carries_the_tenants_auto_answer_bundle_only_when_asked(bundle, auto_answer, headers):
    raw = {**BASE, "tenants": [{**BASE["tenants"][0], **({"auto_answer": bundle} if bundle else {})}]}
    pbx = StubPbx()
    await service(pbx).place(parse_config(raw, {}).tenants[0],
                             dataclasses.replace(REQUEST, auto_answer=auto_answer), wait=False)
    assert pbx.originated[0].auto_answer_headers == headers


# -- a request that joins another is checked like any other -------------------------------

class GatedPbx(StubPbx):
    """Its Originate is in flight until the test opens the gate."""

    def __init__(self):
        super().__init__()
        self.sent, self.gate = asyncio.Event(), asyncio.Event()

    async def originate(self, originate):
        self.originated.append(originate)
        self.sent.set()
        await self.gate.wait()


def bounded(request):
    """A joiner that wrongly waits for the gated call fails the test instead of hanging it."""
    return asyncio.wait_for(request, 5)


async def in_flight(calls, pbx, request=REQUEST, **kwargs):
    """Start ``request`` (async by default) and return its task once its Originate is in flight."""
    first = asyncio.create_task(calls.place(TENANT, request, wait=kwargs.pop("wait", False), **kwargs))
    await pbx.sent.wait()
    return first


@pytest.mark.parametrize("key", [None, "crm-7"])
async def test_a_joiner_with_a_hotline_the_tenant_does_not_own_is_forbidden(key):
    pbx = GatedPbx()
    calls = service(pbx)
    first = await in_flight(calls, pbx, idempotency_key=key)
    foreign = dataclasses.replace(REQUEST, hotline="02439990000")
    with pytest.raises(Forbidden, match="^hotline: "):
        await bounded(calls.place(TENANT, foreign, wait=False, idempotency_key=key))
    pbx.gate.set()
    assert await first == pbx.originated[0].call_id and len(pbx.originated) == 1


async def test_a_sync_request_never_joins_an_async_call_it_would_not_wait_for():
    """It got 200 at once, though the phone never answered: now the extension is taken."""
    pbx = GatedPbx()
    calls = service(pbx)
    first = await in_flight(calls, pbx)
    with pytest.raises(UserBusy, match="already in progress"):
        await bounded(calls.place(TENANT, REQUEST, wait=True))  # while the async one is in flight
    pbx.gate.set()
    await first
    with pytest.raises(UserBusy, match="already in progress"):
        await bounded(calls.place(TENANT, REQUEST, wait=True))  # and while its call is live
    assert len(pbx.originated) == 1


async def test_other_parameters_to_the_same_extension_and_number_are_busy_not_joined():
    pbx = GatedPbx()
    calls = service(pbx)
    first = await in_flight(calls, pbx)
    with pytest.raises(UserBusy):
        await bounded(calls.place(TENANT, dataclasses.replace(REQUEST, src_cid_name="Sales"), wait=False))
    identical = asyncio.create_task(calls.place(TENANT, ClickToCallRequest(ext="101", phone="0899"), wait=False))
    pbx.gate.set()
    assert await first == await identical == pbx.originated[0].call_id and len(pbx.originated) == 1


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_the_same_click_after_its_call_ended_and_the_window_passed_rings_again():
    """While a sync request waited (at the front of the cache), the same ext + phone clicked
    9 s after its first call ended got 200 with the old call_id, and nobody was rung."""
    clock = Clock()
    pbx = GatedPbx()
    pbx.gate.set()
    calls = service(pbx)
    calls.duplicates = SingleFlight(5, remember_failures=False, clock=clock)
    calls.shared_claims = False                # alone on its store: the registry holds the extension
    waiting = asyncio.create_task(calls.place(TENANT, dataclasses.replace(REQUEST, ext="102"), wait=True))
    await pbx.sent.wait()                      # the sync request is in flight, waiting for 102 to answer
    first = await calls.place(TENANT, REQUEST, wait=False)
    calls.registry.finish(calls.registry.get(first))           # the call ended
    clock.now += 9
    second = await calls.place(TENANT, REQUEST, wait=False)
    assert second != first and [o.call_id for o in pbx.originated][1:] == [first, second]
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting


async def test_the_click_limit_counts_clicks_that_would_start_a_call_and_refuses_with_retry_after():
    clock = Clock()
    pbx = StubPbx()
    calls = service(pbx, clicks=RateLimiter(10, 10, clock=clock, what="click limit"))
    first = await calls.place(TENANT, REQUEST, wait=False)
    ids = {await calls.place(TENANT, REQUEST, wait=False) for _ in range(20)}    # a double click joins: free
    assert ids == {first} and len(pbx.originated) == 1
    for n in range(9):                       # a stuck button dialing on: each would start a call
        with pytest.raises(UserBusy):
            await calls.place(TENANT, dataclasses.replace(REQUEST, phone=f"0900{n:04d}"), wait=False)
    with pytest.raises(RateLimited) as info:
        await calls.place(TENANT, dataclasses.replace(REQUEST, phone="09009999"), wait=False)
    assert info.value.retry_after == 6
    with pytest.raises(RateLimited):
        await calls.place(TENANT, dataclasses.replace(REQUEST, phone="09009999"), wait=True)  # sync alike
    assert await calls.place(TENANT, REQUEST, wait=False) == first   # the identical click still joins
    await calls.place(TENANT, dataclasses.replace(REQUEST, ext="102"), wait=False)   # per extension
    clock.now += 6
    with pytest.raises(UserBusy):                                # a token again: refused for the busy ext
        await calls.place(TENANT, dataclasses.replace(REQUEST, phone="09009999"), wait=False)
    with pytest.raises(Forbidden):                               # a foreign extension: 403 as ever
        await calls.place(TENANT, dataclasses.replace(REQUEST, ext="x1"), wait=False)


def getvars(fake_ami):
    return [a["Variable"][0] for a in fake_ami.actions_named("Getvar")]


# -- chan_sip: a phone on a call the gateway did not place is busy --------------------------------

async def click(client, **params):
    resp = await client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899", **params}, headers=AUTH)
    return resp.status, await resp.json()


@pytest.fixture
async def sip_gateway(make_gateway):
    """The gateway with chan_sip endpoints (``SIP/{ext}``): the busy check probes channels."""
    return await make_gateway(tenants=[{"domain": "default", "tokens": [AUTH["Authorization"][7:]],
                                        "endpoint": "SIP/{ext}", "context": "c2c-outbound",
                                        "extensions": "^1[0-9]{2}$", "hotlines": {"02873001234": "hotline-trunk"}}])


async def test_a_phone_on_a_call_the_gateway_did_not_place_is_user_busy(sip_gateway, fake_ami):
    """chan_sip without callcounter says NOT_INUSE while the phone talks: its channel tells."""
    fake_ami.add_channel("SIP/101-00000001")
    status, body = await click(sip_gateway)
    assert (status, body["status"], body["error"]) == (409, "fail", "USER_BUSY") and "call_id" not in body
    assert "channel SIP/101-00000001 up" in body["message"]
    assert fake_ami.actions_named("Originate") == []
    fake_ami.hang_up("SIP/101-00000001")               # the phone hung up: free again
    status, body = await click(sip_gateway)
    assert (status, body["status"]) == (200, "success")
    assert len(fake_ami.actions_named("Originate")) == 1


async def test_a_free_phone_without_channels_is_called(sip_gateway, fake_ami):
    status, body = await click(sip_gateway)
    assert (status, body["status"]) == (200, "success")
    assert getvars(fake_ami)[:2] == ["DEVICE_STATE(SIP/101)", "CHANNELS(^SIP/101-)"]


async def test_an_unregistered_phone_with_a_leftover_channel_is_not_registered(sip_gateway, fake_ami):
    fake_ami.device_states["SIP/101"] = "UNAVAILABLE"
    fake_ami.add_channel("SIP/101-00000001")
    status, body = await click(sip_gateway)
    assert (status, body["error"]) == (404, "USER_NOT_REGISTERED")
    assert fake_ami.actions_named("Originate") == []


async def test_a_pbx_refusing_channels_still_places_calls(sip_gateway, fake_ami, caplog):
    caplog.set_level(logging.WARNING, logger="c2c_ami.pbx.actions")
    fake_ami.refused_functions.add("CHANNELS")
    assert (await click(sip_gateway))[0] == 200
    assert (await click(sip_gateway, ext="102"))[0] == 200
    assert getvars(fake_ami).count("CHANNELS(^SIP/101-)") == 1
    assert "CHANNELS(^SIP/102-)" not in getvars(fake_ami)
    assert len([r for r in caplog.records if "refused Getvar CHANNELS()" in r.getMessage()]) == 1
