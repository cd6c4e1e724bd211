"""The call state machine on its own: forward only, who hung up first, failures and cancel."""
import pytest

from c2c_ami.calls.call import Call, CallState, ExtLegFailure, Leg
from c2c_ami.errors import CallCancelled, CallFailed, NoAnswer, UserBusy, UserNotRegistered


def new_call():
    return Call(tenant="t", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="trunk")


def steps(call):
    return [(step, state.value) for step, state in call.take_steps()]


async def test_steps_are_announced_once_each_and_never_go_back():
    call = new_call()
    call.ext_leg_created("PJSIP/101-1")
    call.ext_ringing()
    call.ext_answered()
    call.ext_ringing()                      # a late Ringing must not move it back
    call.number_leg_created("1.2", "PJSIP/trunk-2")
    call.number_leg_created("1.3", "PJSIP/trunk-3")   # only the first leg counts
    call.number_ringing()
    call.number_answered()
    call.number_ringing()
    assert call.state is CallState.NUMBER_ANSWERED and call.trunk_channel == "PJSIP/trunk-2"
    assert steps(call) == [("ringing", "ext_ringing"), ("answered", "ext_answered"),
                           ("dialing", "dialing"), ("ringing", "number_ringing"),
                           ("answered", "number_answered")]
    assert steps(call) == []                # each step is handed over once
    call.end()
    assert call.state is CallState.ENDED and call.status == "ANSWERED" and call.error is None
    assert steps(call) == []                # the end is no step: the registry reports it


async def test_legs_are_told_apart_by_uniqueid():
    call = new_call()
    assert call.leg_of(call.call_id) is Leg.EXTENSION
    assert call.leg_of("1.2") is None and call.leg_of(None) is None
    call.number_leg_created("1.2", "PJSIP/trunk-2")
    assert call.leg_of("1.2") is Leg.NUMBER


async def test_the_first_to_hang_up_is_the_one_recorded():
    call = new_call()
    call.number_leg_created("1.2", "PJSIP/trunk-2")
    call.hangup_requested(Leg.NUMBER)
    call.hangup_requested(Leg.EXTENSION)
    call.cancel()
    assert call.hangup_by == "number"


async def test_a_cancelled_dial_is_not_the_numbers_doing():
    call = new_call()
    call.number_failed("cancelled")
    assert call.hangup_by is None and call.number_failure == "cancelled"
    call.number_failed("busy")
    assert call.hangup_by == "number"


@pytest.mark.parametrize("why, error, failure, status", [
    (ExtLegFailure.REJECTED, UserBusy, "rejected", "BUSY"),
    (ExtLegFailure.NO_ANSWER, NoAnswer, "no_answer", "NO ANSWER"),
    (ExtLegFailure.NOT_REGISTERED, UserNotRegistered, "unavailable", "FAILED"),
    (ExtLegFailure.CONGESTION, CallFailed, "unavailable", "FAILED"),
    (ExtLegFailure.OTHER, CallFailed, "unavailable", "FAILED"),
])
async def test_extension_failures_give_the_api_error_and_the_record(why, error, failure, status):
    call = new_call()
    call.ext_failed(why, "reason 7" if why is ExtLegFailure.OTHER else "")
    assert type(call.error) is error and call.error.call_id == call.call_id
    assert call.outcome_known.is_set() and call.ext_failure == failure and call.over
    if why is ExtLegFailure.OTHER:
        assert call.error.message.endswith("(reason 7)")
    call.end()
    assert call.status == status


async def test_cancel_before_the_answer_is_a_cancel_after_it_a_hangup():
    ringing = new_call()
    ringing.cancel()
    ringing.ext_failed(ExtLegFailure.REJECTED)
    assert isinstance(ringing.error, CallCancelled) and ringing.ext_failure is None
    ringing.end()
    assert (ringing.status, ringing.hangup_by) == ("CANCEL", "api")

    talking = new_call()
    talking.ext_answered()
    talking.number_answered()
    talking.cancel()
    assert not talking.cancel_requested and talking.hangup_by == "api"
    talking.end()
    assert talking.status == "ANSWERED"


async def test_over_only_when_every_leg_has_ended():
    call = new_call()
    call.ext_answered()
    call.number_leg_created("1.2", "PJSIP/trunk-2")
    call.leg_hung_up(Leg.NUMBER, "16", "Normal Clearing")
    assert not call.over and not call.awaiting_number_hangup
    call.leg_hung_up(Leg.EXTENSION, "16", "Normal Clearing")
    assert call.over and (call.cause, call.cause_txt) == ("16", "Normal Clearing")


async def test_extension_hung_up_first_waits_for_the_number():
    call = new_call()
    call.ext_answered()
    call.number_leg_created("1.2", "PJSIP/trunk-2")
    call.leg_hung_up(Leg.EXTENSION, "16", "Normal Clearing")
    assert call.awaiting_number_hangup and not call.over


async def test_end_without_an_outcome_fails_waiters_with_the_reason_given():
    call = new_call()
    call.end(CallFailed("the PBX link was lost"))
    assert call.outcome_known.is_set() and call.error.message == "the PBX link was lost"
    assert call.status == "FAILED" and call.ended_at is not None
