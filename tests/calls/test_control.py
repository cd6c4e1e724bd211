"""Call control's rules without a PBX: what is refused before anything is sent, that each new
leg is stored before its Originate, a transfer's answer from its outcome, and an action asked
on one instance carried out by the one that tracks the call (over the store's notify)."""
import asyncio
import json

import pytest

from c2c_ami.calls.call import Call
from c2c_ami.calls.control import CallControl
from c2c_ami.calls.pbx_port import Availability, DeviceState, PbxLinkDown, PbxRefused
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.config import CallsConfig, parse_config
from c2c_ami.errors import (
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
)
from c2c_ami.store import SqliteStorage
from tests.test_config import BASE

TENANT = parse_config(BASE, {}).tenants[0]


class StubPbx:
    name, ready, link_state, last_error = "default", True, "ready", None

    def __init__(self):
        self.states = {}
        self.sent = []
        self.refuse = None
        self.stored_when_sent = []

    async def availability(self, device):
        return self.states.get(device, DeviceState(Availability.FREE, "NOT_INUSE"))

    async def _send(self, what, *args):
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((what, *args))

    async def connect(self, leg):
        await self._send("connect", leg.device, leg.channel)

    async def spy(self, leg, mode):
        await self._send("spy", leg.device, leg.channel, mode)

    async def park(self, channel, context, timeout):
        await self._send("park", channel, context, timeout)

    async def mute_recording(self, channel, muted):
        await self._send("mute", channel, muted)

    async def start_recording(self, channel, file):
        await self._send("record", channel, file)

    async def hangup(self, channel, cause=16):
        await self._send("hangup", channel)


class Reported:
    """Keeps what was reported; ``stored``: what was reported when ``written`` was last awaited
    (the real reporter stores it by then, without its group commit's linger)."""

    def __init__(self):
        self.facts = []
        self.stored = []

    def call_changed(self, call, steps):
        self.facts.append(call.facts())

    def call_ended(self, call):
        pass

    def unstored_end(self, call_id):
        return None

    def call_dropped(self, call):
        pass

    async def written(self, timeout):
        self.stored = list(self.facts)
        return True


def control(pbx=None, store=None, instance_id="solo"):
    registry = CallRegistry(Reported())
    pbx = pbx or StubPbx()
    return CallControl({"default": pbx}, registry, store or SqliteStorage(":memory:"),
                       CallsConfig(ring_timeout=0.5), {TENANT.domain: TENANT}, instance_id=instance_id,
                       transfer_grace=0.1), pbx


def talking_call(registry, answered=True):
    call = Call(tenant=TENANT.domain, ext="101", device="PJSIP/101", phone="0899", hotline="02873001234",
                trunk="hotline-trunk")
    assert registry.claim(call)
    call.ext_leg_created("PJSIP/101-00000001")
    call.ext_answered()
    call.number_leg_created("1700000000.2", "PJSIP/hotline-trunk-00000002")
    if answered:
        call.number_answered()
    return call


async def test_refusals_send_nothing():
    ctl, pbx = control()
    with pytest.raises(CallNotFound):
        await ctl.transfer(TENANT, "nope", "102", "bleg", None)
    ringing = talking_call(ctl.registry, answered=False)
    with pytest.raises(CallNotAnswered):
        await ctl.transfer(TENANT, ringing.call_id, "102", "bleg", None)
    with pytest.raises(CallNotAnswered):
        await ctl.park(TENANT, ringing.call_id, "bleg", None)
    ctl.registry.release(ringing)
    call = talking_call(ctl.registry)
    with pytest.raises(CallNotFound):                       # an extension-scoped token of another ext
        await ctl.transfer(TENANT, call.call_id, "102", "bleg", "105")
    with pytest.raises(Forbidden):
        await ctl.transfer(TENANT, call.call_id, "1234567", "bleg", None)
    pbx.states["PJSIP/104"] = DeviceState(Availability.ABSENT, "UNAVAILABLE")
    pbx.states["PJSIP/105"] = DeviceState(Availability.BUSY, "INUSE")
    with pytest.raises(UserNotRegistered):
        await ctl.supervise(TENANT, call.call_id, "104", "listen", False, None)
    with pytest.raises(UserBusy):
        await ctl.transfer(TENANT, call.call_id, "105", "bleg", None)
    with pytest.raises(NotRecording):
        await ctl.mask_recording(TENANT, call.call_id, True, None)
    assert pbx.sent == [] and call.transfers == [] and call.supervisors == []


async def test_a_transfer_leg_is_stored_before_its_originate_and_answers_with_its_outcome():
    ctl, pbx = control()
    call = talking_call(ctl.registry)
    task = asyncio.ensure_future(ctl.transfer(TENANT, call.call_id, "102", "bleg", None))
    while not pbx.sent:
        await asyncio.sleep(0)
    stored = ctl.registry.observer.stored[-1]                 # in the store before the Originate
    assert stored["transfers"][0]["ext"] == "102" and stored["transfers"][0]["answered"] is None
    assert pbx.sent == [("connect", "PJSIP/102", "PJSIP/hotline-trunk-00000002")]
    leg = call.transfers[0].uniqueid
    assert ctl.registry.find("default", leg) is call
    with pytest.raises(CallBusy):                           # one transfer at a time
        await ctl.transfer(TENANT, call.call_id, "103", "bleg", None)
    call.transfer_answered(leg)
    assert await task == {"call_id": call.call_id, "ext": "102", "legs": "bleg"}
    assert call.final_ext == "102"


@pytest.mark.parametrize("failure, error", [("rejected", UserBusy), ("no_answer", NoAnswer),
                                            ("unavailable", CallFailed)])
async def test_a_transfer_not_answered_says_why_and_moves_nothing(failure, error):
    ctl, pbx = control()
    call = talking_call(ctl.registry)
    task = asyncio.ensure_future(ctl.transfer(TENANT, call.call_id, "102", "bleg", None))
    while not pbx.sent:
        await asyncio.sleep(0)
    call.transfer_failed(call.transfers[0].uniqueid, failure)
    with pytest.raises(error):
        await task
    assert call.final_ext == "101" and call.agent_id == call.call_id


async def test_a_transfer_the_pbx_never_reports_on_gives_up_after_the_ring_timeout():
    ctl, pbx = control()
    call = talking_call(ctl.registry)
    with pytest.raises(NoAnswer):
        await ctl.transfer(TENANT, call.call_id, "102", "bleg", None)
    assert call.transfers[0].answered is False


async def test_pbx_refusals_and_a_lost_link_leave_the_call_as_it_was():
    ctl, pbx = control()
    call = talking_call(ctl.registry)
    pbx.refuse = PbxRefused("No such context")
    with pytest.raises(CallFailed, match="c2c-park"):
        await ctl.park(TENANT, call.call_id, "bleg", None)
    assert call.parks == []
    pbx.refuse = PbxLinkDown("PBX link is connecting", sent=False)
    with pytest.raises(PbxUnavailable):
        await ctl.transfer(TENANT, call.call_id, "102", "bleg", None)
    assert call.transfers[0].answered is False and call.pending_transfer is None


async def test_masking_toggles_the_recording_and_is_idempotent():
    ctl, pbx = control()
    call = talking_call(ctl.registry)
    call.recording_started()
    assert (await ctl.mask_recording(TENANT, call.call_id, True, None))["masked"] is True
    await ctl.mask_recording(TENANT, call.call_id, True, None)          # already: nothing sent
    await ctl.mask_recording(TENANT, call.call_id, False, None)
    assert pbx.sent == [("mute", "PJSIP/hotline-trunk-00000002", True), ("mute", "PJSIP/hotline-trunk-00000002", False)]
    assert len(call.masks) == 1 and call.masks[0].end is not None


async def test_an_action_on_another_instances_call_is_carried_out_by_that_instance():
    """Two instances on one store: the call is tracked by ``owner``; ``asker`` forwards."""
    store = SqliteStorage(":memory:")
    owner, pbx = control(store=store, instance_id="gw1")
    asker, asker_pbx = control(store=store, instance_id="gw2")
    await owner.listen()
    await asker.listen()
    call = talking_call(owner.registry)
    await store.claim_call(call.call_id, call.tenant, call.pbx, call.device, "gw1", call.facts())
    result = await asker.park(TENANT, call.call_id, "aleg", None)
    assert result == {"call_id": call.call_id, "legs": "aleg"}
    assert pbx.sent == [("park", "PJSIP/101-00000001", "c2c-park", 10.0)] and asker_pbx.sent == []
    with pytest.raises(CallBusy):                           # the owner's refusal, as the owner said it
        await asker.park(TENANT, call.call_id, "bleg", None)
    with pytest.raises(CallNotFound):                       # another tenant's call is not found
        other = parse_config(json.loads(json.dumps(BASE)) | {"tenants": [dict(BASE["tenants"][0], domain="x")]},
                             {}).tenants[0]
        await asker.park(other, call.call_id, "bleg", None)


def test_a_recording_link_is_signed_expires_and_names_the_call():
    from c2c_ami.calls.recordings import RecordingLinks
    from c2c_ami.config import RecordingConfig
    now = [1_000_000.0]
    links = RecordingLinks([b"k1"], "https://gw.example/", clock=lambda: now[0])
    recording = RecordingConfig(url_ttl=60)
    assert links.url({"call_id": "c-1", "recorded": False}, recording) == ""
    url = links.url({"call_id": "c-1", "recorded": True}, recording)
    assert url.startswith("https://gw.example/v1/recording/c-1?exp=1000060&sig=")
    sig = url.rsplit("=", 1)[1]
    assert links.verify("c-1", "1000060", sig) is None
    assert links.verify("c-2", "1000060", sig) == "not a recording link of this gateway"      # another call
    assert links.verify("c-1", "1000061", sig) == "not a recording link of this gateway"      # another expiry
    rotated = RecordingLinks([b"k2", b"k1"], "https://gw.example", clock=lambda: now[0])   # the old key verifies
    assert rotated.verify("c-1", "1000060", sig) is None
    now[0] += 61
    assert links.verify("c-1", "1000060", sig) == "the link has expired"
    templated = RecordingConfig(url_template="https://pbx1.example/rec/{call_id}.wav")
    assert links.url({"call_id": "c-1", "recorded": True}, templated) == "https://pbx1.example/rec/c-1.wav"
