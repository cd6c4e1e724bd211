"""AMI events -> call transitions and outcomes, fed with the sequences real Asterisk sends."""
import pytest

from c2c_ami.calls.call import Call, CallState
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.errors import CallFailed, NoAnswer, UserBusy, UserNotRegistered
from c2c_ami.pbx.events import CallEvents, correlation_id


class Actions:
    """What the translator asks of the service, recorded."""

    def __init__(self):
        self.hangups, self.sip_call_id_reads = [], []

    def hangup_later(self, call_id):
        self.hangups.append(call_id)

    def fetch_sip_call_id_later(self, call_id):
        self.sip_call_id_reads.append(call_id)


def new_call(ext="101"):
    return Call(tenant="default", ext=ext, device=f"PJSIP/{ext}", phone="0899098899",
                hotline="02873001234", trunk="hotline-trunk")


def setup(**timers):
    registry = CallRegistry(**timers)
    call = new_call()
    assert registry.claim(call)
    return registry, CallEvents("default", registry, Actions()), call


def ext(call, event, **kw):
    return {"Event": event, "Channel": "PJSIP/101-00000001", "Uniqueid": call.call_id,
            "Linkedid": call.call_id, **kw}


def trunk(call, event, **kw):
    return {"Event": event, "Channel": "PJSIP/hotline-trunk-00000002", "Uniqueid": "1700000000.2",
            "Linkedid": call.call_id, **kw}


def response(call, result, reason):
    return {"Event": "OriginateResponse", "ActionID": call.call_id, "Response": result,
            "Reason": reason, "Uniqueid": call.call_id}


def test_correlation_prefers_actionid_then_linkedid():
    assert correlation_id({"Event": "OriginateResponse", "ActionID": "a", "Linkedid": "b"}) == "a"
    assert correlation_id({"Event": "DialEnd", "DestLinkedid": "d", "DestUniqueid": "e"}) == "d"
    assert correlation_id({"Event": "Newchannel", "Uniqueid": "u", "Linkedid": "l"}) == "l"
    assert correlation_id({"Event": "FullyBooted"}) is None


async def test_answered_call_walks_every_state_and_is_forgotten_at_hangup():
    registry, route, call = setup()
    route(ext(call, "Newchannel", ChannelStateDesc="Down"))
    assert call.ext_channel == "PJSIP/101-00000001"
    route(ext(call, "Newstate", ChannelStateDesc="Ringing"))
    assert call.state is CallState.EXT_RINGING and not call.outcome_known.is_set()
    route(response(call, "Success", "4"))
    assert call.outcome_known.is_set() and call.error is None and call.state is CallState.EXT_ANSWERED
    route(trunk(call, "Newchannel", ChannelStateDesc="Down"))
    assert call.state is CallState.DIALING
    route({"Event": "DialState", "DialStatus": "RINGING", "Linkedid": call.call_id, "DestUniqueid": "1700000000.2"})
    assert call.state is CallState.NUMBER_RINGING
    route({"Event": "DialEnd", "DialStatus": "ANSWER", "Linkedid": call.call_id, "DestUniqueid": "1700000000.2"})
    assert call.state is CallState.NUMBER_ANSWERED and call.number_answered_at is not None
    route(trunk(call, "Hangup", Cause="16"))
    assert registry.get(call.call_id) is call
    route(ext(call, "Hangup", Cause="16"))
    assert registry.get(call.call_id) is None and len(registry) == 0 and registry.claimed_devices == 0
    assert call.state is CallState.ENDED


async def test_newstate_up_answers_before_originate_response():
    registry, route, call = setup()
    route(ext(call, "Newstate", ChannelStateDesc="Up"))
    assert call.outcome_known.is_set() and call.error is None
    route(response(call, "Success", "4"))
    assert call.error is None


async def test_rejection_hangup_before_response_still_resolves():
    registry, route, call = setup()
    route(ext(call, "Newchannel"))
    route(ext(call, "Hangup", Cause="17"))
    assert registry.get(call.call_id) is call  # outcome not known yet: keep routing
    route(response(call, "Failure", "0"))
    assert isinstance(call.error, UserBusy) and call.error.call_id == call.call_id
    assert len(registry) == 0


@pytest.mark.parametrize("reason, seen, error", [
    ("0", False, UserNotRegistered), ("0", True, UserBusy), ("3", True, NoAnswer),
    ("5", True, UserBusy), ("1", True, UserBusy), ("8", True, CallFailed), ("7", True, CallFailed),
])
async def test_originate_failures_are_classified(reason, seen, error):
    registry, route, call = setup()
    if seen:
        route(ext(call, "Newchannel"))
    route(response(call, "Failure", reason))
    assert type(call.error) is error
    assert len(registry) == 0


async def test_events_of_other_calls_are_ignored():
    registry, route, call = setup()
    route({"Event": "Newchannel", "Uniqueid": "x", "Linkedid": "x", "Channel": "PJSIP/9-1"})
    route({"Event": "OriginateResponse", "ActionID": "other", "Response": "Failure", "Reason": "0"})
    assert call.ext_channel is None and not call.outcome_known.is_set()
    assert route.events_routed == 0


async def test_one_call_per_device():
    registry = CallRegistry()
    first, second = new_call(), new_call()
    assert registry.claim(first)
    assert not registry.claim(second)
    registry.finish(first)
    assert registry.claim(second)


async def test_deadline_finishes_a_silent_call():
    registry, route, call = setup(outcome_wait=0.01)
    registry.settle(call)
    await call.outcome_known.wait()
    assert isinstance(call.error, CallFailed) and len(registry) == 0
