"""AMI events -> call transitions and outcomes, fed with the sequences real Asterisk sends."""
import pytest

from c2c_ami.calls.call import Call, CallState
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.errors import CallFailed, NoAnswer, UserBusy, UserNotRegistered
from c2c_ami.pbx.events import CallEvents, correlation_id, decide_pending_failure


class Actions:
    """What the translator asks of the service, recorded."""

    def __init__(self):
        self.hangups, self.sip_call_id_reads, self.recordings, self.channel_hangups = [], [], [], []

    def hangup_later(self, call_id):
        self.hangups.append(call_id)

    def fetch_sip_call_id_later(self, call_id):
        self.sip_call_id_reads.append(call_id)

    def record_later(self, call_id):
        self.recordings.append(call_id)

    def hangup_channel_later(self, call_id, channel):
        self.channel_hangups.append(channel)


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


# (OriginateResponse Reason, the channel existed, it rang, its Hangup cause) -> error, record.
# Both drivers' wordings of one outcome are listed: they must read alike.
@pytest.mark.parametrize("reason, seen, rang, cause, error, ext_failure, hangup_by, record_cause", [
    ("0", False, False, None, UserNotRegistered, "unavailable", None, None),      # no channel at all
    ("0", True, False, "17", UserBusy, "rejected", "extension", "17"),             # PJSIP 486
    ("5", True, False, "17", UserBusy, "rejected", "extension", "17"),             # chan_sip 486
    ("0", True, True, "21", UserBusy, "rejected", "extension", "21"),              # 603 while ringing
    ("3", True, True, "19", NoAnswer, "no_answer", "pbx", "19"),                   # PJSIP ring timeout
    ("3", True, True, "16", NoAnswer, "no_answer", "pbx", "19"),                   # chan_sip ring timeout
    ("3", True, False, "19", UserNotRegistered, "unavailable", "pbx", "18"),       # PJSIP dead phone
    ("3", True, False, "0", UserNotRegistered, "unavailable", "pbx", "18"),        # chan_sip dead phone
    ("0", True, False, "18", UserNotRegistered, "unavailable", "pbx", "18"),       # INVITE timed out (408)
    ("1", True, True, "16", UserBusy, "rejected", "extension", "16"),
    ("8", True, False, "34", CallFailed, "unavailable", None, "34"),
    ("7", True, False, "16", CallFailed, "unavailable", None, "16"),
])
@pytest.mark.parametrize("hangup_first", [False, True])
async def test_originate_failures_are_classified(reason, seen, rang, cause, error, ext_failure, hangup_by,
                                                 record_cause, hangup_first):
    """The failure is decided once both the OriginateResponse and (if the channel existed)
    its Hangup are in, whichever comes first (PJSIP and chan_sip send them in either order)."""
    registry, route, call = setup()
    if seen:
        route(ext(call, "Newchannel"))
    if rang:
        route(ext(call, "Newstate", ChannelStateDesc="Ringing"))
    if seen and hangup_first:
        route(ext(call, "Hangup", Cause=cause, **{"Cause-txt": "as Asterisk says"}))
    route(response(call, "Failure", reason))
    if seen and not hangup_first:
        assert call.error is None and len(registry) == 1        # waits for the channel's Hangup
        route(ext(call, "Hangup", Cause=cause, **{"Cause-txt": "as Asterisk says"}))
    assert type(call.error) is error
    assert (call.ext_failure, call.hangup_by, call.cause) == (ext_failure, hangup_by, record_cause)
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


@pytest.mark.parametrize("reason", ["0", "1"])
async def test_timer_b_is_no_response_by_the_pbx_not_the_phone(reason):
    """A dead phone with a ring timeout past timer B (32 s; 6.4 s on the rig): Asterisk sends
    HangupRequest cause 18 for the channel, then OriginateResponse Failure, then Hangup 18 (both
    drivers, measured). The phone did nothing: no response, ended by the PBX."""
    registry, route, call = setup()
    route(ext(call, "Newchannel"))
    route(ext(call, "HangupRequest", Cause="18"))
    route(response(call, "Failure", reason))
    route(ext(call, "Hangup", Cause="18", **{"Cause-txt": "No user responding"}))
    assert type(call.error) is UserNotRegistered
    assert (call.ext_failure, call.hangup_by, call.cause, call.cause_txt) == (
        "unavailable", "pbx", "18", "No user responding")


@pytest.mark.parametrize("status, cause", [("RINGING", "19"), ("PROGRESS", "19"), (None, "18")])
async def test_a_number_that_only_sent_183_rang_out_not_went_silent(status, cause):
    """The dial timeout ends it (hangup_by pbx); 19 if the number alerted (180, or 183 early
    media: DialState PROGRESS), 18 if it never answered the INVITE at all."""
    registry, route, call = setup()
    route(ext(call, "Newchannel"))
    route(ext(call, "Newstate", ChannelStateDesc="Up"))
    route(trunk(call, "Newchannel"))
    if status:
        route(trunk(call, "DialState", DialStatus=status, DestUniqueid="1700000000.2", Uniqueid=call.call_id))
    assert (call.state is CallState.NUMBER_RINGING) == (status == "RINGING")   # 183 is no "ringing" step
    route(trunk(call, "DialEnd", DialStatus="NOANSWER", DestUniqueid="1700000000.2", Uniqueid=call.call_id))
    route(trunk(call, "Hangup", Cause="0", **{"Cause-txt": "Unknown"}))
    route(ext(call, "Hangup", Cause="16"))
    assert (call.number_failure, call.hangup_by, call.cause) == ("no_answer", "pbx", cause)


@pytest.mark.parametrize("reason, alerted, ext_failure", [
    ("3", False, "unavailable"), ("3", True, "no_answer"), ("5", False, "rejected"), ("0", False, None)])
async def test_a_failure_whose_hangup_was_never_seen_keeps_what_the_reason_says(reason, alerted, ext_failure):
    """The link dropped between OriginateResponse Failure and the channel's Hangup: the end
    is unobserved, but a Reason that tells why on its own is kept (0 needs the cause: none)."""
    registry, route, call = setup()
    route(ext(call, "Newchannel"))
    if alerted:
        route(ext(call, "Newstate", ChannelStateDesc="Ringing"))
    route(response(call, "Failure", reason))
    assert call.error is None                                   # waits for the Hangup
    decide_pending_failure(call)
    registry.finish_unseen(call)
    assert call.ended_unobserved and call.ext_failure == ext_failure and len(registry) == 0


# -- call control: the sequences Asterisk 22 and 16 sent on the rig ---------------------------------

TARGET = "5f0d2c9e-0000-4000-8000-0000000000aa"      # a transfer target's leg (its ChannelId)


def talking(**timers):
    """A call whose customer answered."""
    registry, route, call = setup(**timers)
    route(ext(call, "Newchannel", ChannelStateDesc="Down"))
    route(response(call, "Success", "4"))
    route(trunk(call, "Newchannel", ChannelStateDesc="Down"))
    route({"Event": "DialEnd", "DialStatus": "ANSWER", "Linkedid": call.call_id, "Uniqueid": call.call_id,
           "DestUniqueid": "1700000000.2", "DestLinkedid": call.call_id})
    assert call.state is CallState.NUMBER_ANSWERED
    return registry, route, call


def target(event, linkedid=TARGET, **kw):
    return {"Event": event, "Channel": "PJSIP/212-00000003", "Uniqueid": TARGET, "Linkedid": linkedid, **kw}


def transferring(call, registry, legs="bleg"):
    from c2c_ami.calls.legs import Transfer
    call.transfer_asked(Transfer(ext="212", legs=legs, time=1.0, uniqueid=TARGET, device="PJSIP/212"))
    registry.add_leg(call, TARGET)


async def test_a_customer_transfer_answered_makes_the_target_the_agent_and_the_call_goes_on():
    registry, route, call = talking()
    transferring(call, registry)
    route(target("Newchannel", ChannelStateDesc="Down"))                       # its own Linkedid: by alias
    route({"Event": "DialBegin", "DestUniqueid": TARGET, "DestLinkedid": TARGET})
    route(target("Newstate", ChannelStateDesc="Ringing"))
    route({"Event": "DialEnd", "DialStatus": "ANSWER", "DestUniqueid": TARGET, "DestLinkedid": TARGET})
    assert call.number_failure is None                                          # not the number's dial
    route(target("Newstate", ChannelStateDesc="Up"))
    assert call.transfers[0].answered and call.final_ext == "212" and call.agent_id == TARGET
    route({"Event": "OriginateResponse", "ActionID": TARGET, "Response": "Success", "Reason": "4",
           "Uniqueid": TARGET})
    route(target("BridgeEnter", linkedid=call.call_id))
    assert "PJSIP/101-00000001" in route.actions.channel_hangups                # the former agent, if still up
    route(ext(call, "SoftHangupRequest", Cause="16"))
    route(ext(call, "Hangup", Cause="16"))                                      # the former agent's leg
    assert registry.get(call.call_id) is call and call.hangup_by is None and not call.ext_hungup
    route(trunk(call, "HangupRequest"))
    route(trunk(call, "Hangup", Cause="16"))
    route(target("Hangup", linkedid=call.call_id, Cause="16"))
    assert registry.get(call.call_id) is None and call.hangup_by == "number" and call.status == "ANSWERED"
    assert registry.find("default", TARGET) is None                             # the alias went with it


@pytest.mark.parametrize("first", ["hangup", "response"])
async def test_a_transfer_target_that_refuses_is_rejected_whichever_event_comes_first(first):
    registry, route, call = talking()
    transferring(call, registry)
    route(target("Newchannel", ChannelStateDesc="Down"))
    events = [target("Hangup", Cause="17", **{"Cause-txt": "User busy"}),
              {"Event": "OriginateResponse", "ActionID": TARGET, "Response": "Failure", "Reason": "0"}]
    for event in events if first == "hangup" else events[::-1]:
        route(event)
    assert (call.transfers[0].answered, call.transfers[0].failure) == (False, "rejected")
    assert call.action_done.is_set() and call.agent_id == call.call_id and registry.get(call.call_id) is call


async def test_an_agent_transfer_releases_the_agent_and_the_customers_end_ends_the_call():
    registry, route, call = talking()
    transferring(call, registry, legs="aleg")
    route(target("Newstate", ChannelStateDesc="Up"))
    assert call.agent_released and call.final_ext == "101"
    route(target("BridgeEnter", linkedid=call.call_id))
    assert "PJSIP/hotline-trunk-00000002" in route.actions.channel_hangups     # the customer left alone
    route(trunk(call, "Hangup", Cause="16"))
    assert registry.get(call.call_id) is None and call.status == "ANSWERED"


async def test_a_parked_customer_waits_after_the_agent_left_and_its_end_is_the_pbxs():
    from c2c_ami.calls.legs import Park
    registry, route, call = talking()
    call.parked_at(Park(legs="bleg", time=1.0, channel="PJSIP/hotline-trunk-00000002", uniqueid="1700000000.2"))
    route(ext(call, "SoftHangupRequest", Cause="16"))
    route(ext(call, "Hangup", Cause="16"))                                      # the agent's leg ends
    assert registry.get(call.call_id) is call and call.deadline != "number_hangup"
    route(trunk(call, "SoftHangupRequest", Cause="16"))
    route(trunk(call, "Hangup", Cause="16"))                                    # the park timed out
    assert registry.get(call.call_id) is None
    assert (call.hangup_by, call.parks[0].outcome) == ("pbx", "timed_out")


async def test_chanspy_events_start_and_end_a_supervision():
    from c2c_ami.calls.legs import Supervision
    registry, route, call = talking()
    spy = "5f0d2c9e-0000-4000-8000-0000000000bb"
    call.supervisor_asked(Supervision(ext="221", mode="listen", uniqueid=spy, device="PJSIP/221", time=1.0))
    registry.add_leg(call, spy)
    start = {"Event": "ChanSpyStart", "SpyerChannel": "PJSIP/221-00000004", "SpyerUniqueid": spy,
             "SpyerLinkedid": spy, "SpyeeChannel": "PJSIP/101-00000001", "SpyeeUniqueid": call.call_id,
             "SpyeeLinkedid": call.call_id}
    assert correlation_id(start) == call.call_id
    route(start)
    assert call.supervisors[0].time_started is not None and call.supervisors[0].time_ended is None
    route({**start, "Event": "ChanSpyStop"})
    assert call.supervisors[0].time_ended is not None


async def test_a_recorded_call_asks_for_its_recording_when_the_customer_answers():
    registry, route, call = setup()
    call.record = True
    route(ext(call, "Newchannel", ChannelStateDesc="Down"))
    route(response(call, "Success", "4"))
    route(trunk(call, "Newchannel", ChannelStateDesc="Down"))
    assert route.actions.recordings == []
    route({"Event": "DialEnd", "DialStatus": "ANSWER", "Linkedid": call.call_id, "DestUniqueid": "1700000000.2"})
    assert route.actions.recordings == [call.call_id]


@pytest.mark.parametrize("events, failure", [
    # Asterisk 22: the ring-out's Hangup says cause 19; 16 says cause 0, and the Reason (3) tells
    ([("hangup", "19"), ("response", "3")], "no_answer"),
    ([("hangup", "0"), ("response", "3")], "no_answer"),
    ([("response", "3"), ("hangup", "0")], "no_answer"),
    ([("hangup", "0"), ("response", "0")], "unavailable"),
    ([("response", "0"), ("hangup", "21")], "rejected"),
])
async def test_a_transfer_target_that_rings_out_or_fails_says_why_on_both_drivers(events, failure):
    registry, route, call = talking()
    transferring(call, registry)
    route(target("Newchannel", ChannelStateDesc="Down"))
    for kind, value in events:
        if kind == "hangup":
            route(target("Hangup", Cause=value))
        else:
            route({"Event": "OriginateResponse", "ActionID": TARGET, "Response": "Failure", "Reason": value})
    assert (call.transfers[0].answered, call.transfers[0].failure) == (False, failure)
