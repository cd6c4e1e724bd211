"""The PBX as the call service sees it, over AMI (``pbx/actions.py``): the SIP Call-ID where
each channel driver keeps it; busy from the device's state and, where that ignores calls, from
its channels; one round trip."""
import logging

import pytest

from c2c_ami.calls.pbx_port import Availability, DeviceState
from c2c_ami.pbx import AmiClient, AmiRefused, Pbx
from c2c_ami.pbx.actions import channels_pattern
from tests.fixtures_gateway import gateway_config


@pytest.fixture
async def pbx(fake_ami):
    """A Pbx on the fake AMI, logged in."""
    ami = AmiClient(gateway_config(fake_ami.port).ami)
    ami.start()
    assert await ami.wait_ready(3)
    try:
        yield Pbx(ami)
    finally:
        await ami.close()


def getvars(fake_ami):
    return [a["Variable"][0] for a in fake_ami.actions_named("Getvar")]


@pytest.mark.parametrize("channel, item, other_item", [
    ("PJSIP/hotline-trunk-00000001", "CHANNEL(pjsip,call-id)", "SIPCALLID"),
    ("SIP/hotline-trunk-0000000a", "SIPCALLID", "CHANNEL(pjsip,call-id)"),
])
async def test_the_sip_call_id_is_read_where_the_channel_driver_keeps_it(pbx, fake_ami, channel, item, other_item):
    fake_ami.add_channel(channel)
    fake_ami.sip_call_ids[channel] = "abc123@10.0.0.1"
    assert await pbx.sip_call_id(channel) == "abc123@10.0.0.1"
    assert getvars(fake_ami) == [item]
    other = await pbx.ami.send({"Action": "Getvar", "Channel": channel, "Variable": other_item})
    assert other["Response"] == "Success" and not other.get("Value")    # as Asterisk: logged, empty


@pytest.mark.parametrize("channel", ["IAX2/trunk-1234", "Local/0899@c2c-outbound-00000001;2", "DAHDI/1-1"])
async def test_no_sip_call_id_is_asked_of_other_technologies(pbx, fake_ami, channel):
    fake_ami.add_channel(channel)
    assert await pbx.sip_call_id(channel) is None
    assert fake_ami.actions_named("Getvar") == []


@pytest.mark.parametrize("state, channels, availability, detail", [
    ("NOT_INUSE", ["SIP/101-0000000a"], Availability.BUSY, "NOT_INUSE, channel SIP/101-0000000a up"),
    ("NOT_INUSE", ["SIP/101-0000000a", "SIP/101-0000000b"], Availability.BUSY,
     "NOT_INUSE, channel SIP/101-0000000a and 1 more up"),
    ("NOT_INUSE", [], Availability.FREE, "NOT_INUSE"),
    ("NOT_INUSE", ["SIP/1010-00000001", "PJSIP/101-00000002", "SIP/hotline-trunk-00000003"],
     Availability.FREE, "NOT_INUSE"),                        # other devices' channels
    ("UNAVAILABLE", ["SIP/101-0000000a"], Availability.ABSENT, "UNAVAILABLE"),
    ("INUSE", [], Availability.BUSY, "INUSE"),
])
async def test_a_channel_of_the_device_makes_it_busy_whatever_its_device_state(
        pbx, fake_ami, state, channels, availability, detail):
    fake_ami.device_states["SIP/101"] = state
    for channel in channels:
        fake_ami.add_channel(channel)
    assert await pbx.availability("SIP/101") == DeviceState(availability, detail)
    assert getvars(fake_ami) == ["DEVICE_STATE(SIP/101)", "CHANNELS(^SIP/101-)"]


async def test_both_getvars_are_sent_before_either_is_answered(pbx, fake_ami):
    """One round trip: the fake answers only once both questions are in."""
    asked, answer = [], fake_ami._handlers["getvar"]

    def held(conn, action):
        asked.append((conn, action))
        if len(asked) == 2:
            for held_conn, held_action in asked:
                answer(held_conn, held_action)
    fake_ami._handlers["getvar"] = held
    fake_ami.add_channel("SIP/101-00000001")
    assert (await pbx.availability("SIP/101")).availability is Availability.BUSY


async def test_a_pbx_refusing_channels_is_asked_device_state_only_and_warns_once(pbx, fake_ami, caplog):
    caplog.set_level(logging.WARNING, logger="c2c_ami.pbx.actions")
    fake_ami.refused_functions.add("CHANNELS")
    fake_ami.add_channel("SIP/101-00000001")         # not seen: device state alone decides
    assert await pbx.availability("SIP/101") == DeviceState(Availability.FREE, "NOT_INUSE")
    assert await pbx.availability("SIP/101") == DeviceState(Availability.FREE, "NOT_INUSE")
    assert getvars(fake_ami) == ["DEVICE_STATE(SIP/101)", "CHANNELS(^SIP/101-)", "DEVICE_STATE(SIP/101)"]
    warnings = [r for r in caplog.records if "refused Getvar CHANNELS()" in r.getMessage()]
    assert len(warnings) == 1 and not pbx.probes_channels


async def test_a_refused_device_state_is_still_an_error(pbx, fake_ami):
    fake_ami.refused_functions.add("DEVICE_STATE")
    with pytest.raises(AmiRefused, match="Forbidden"):
        await pbx.availability("SIP/101")
    assert pbx.probes_channels


@pytest.mark.parametrize("device", ["PJSIP/101@somewhere", "Local/101@c2c-outbound", "SIP/trunk/101",
                                    "DAHDI/1", "PJSIP/101&PJSIP/102"])
async def test_dial_strings_other_than_tech_slash_resource_get_device_state_only(pbx, fake_ami, device):
    fake_ami.device_states[device] = "NOT_INUSE"
    fake_ami.add_channel("SIP/101-00000001")
    assert await pbx.availability(device) == DeviceState(Availability.FREE, "NOT_INUSE")
    assert getvars(fake_ami) == [f"DEVICE_STATE({device})"]


@pytest.mark.parametrize("device, pattern", [
    ("PJSIP/1.0", r"^PJSIP/1\.0-"), ("SIP/a+b_c-d", r"^SIP/a\+b_c-d-"), ("IAX2/101", "^IAX2/101-"),
    ("PJSIP/101@somewhere", None), ("PJSIP/1 0", None), ("PJSIP/1(0)", None), ("PJSIP/1,0", None),
    ("PJSIP/1|0", None), ("PJSIP/1\n", None), ("PJSIP/", None), ("pjsip/101", "^PJSIP/101-"),   # dialing ignores case
])
def test_the_channel_probe_pattern_is_escaped_and_only_for_plain_devices(device, pattern):
    assert channels_pattern(device) == pattern


async def test_the_escaped_pattern_matches_only_the_device(pbx, fake_ami):
    fake_ami.device_states["SIP/1.0"] = "NOT_INUSE"
    fake_ami.add_channel("SIP/100-00000001")              # '.' unescaped would match it
    assert (await pbx.availability("SIP/1.0")).availability is Availability.FREE
    fake_ami.add_channel("SIP/1.0-00000002")
    assert (await pbx.availability("SIP/1.0")).availability is Availability.BUSY
    assert getvars(fake_ami)[1] == r"CHANNELS(^SIP/1\.0-)"


async def test_a_pjsip_device_is_not_probed_its_state_follows_its_channels(pbx, fake_ami):
    """chan_pjsip computes the device state from the endpoint's channels: one Getvar."""
    fake_ami.add_channel("PJSIP/101-00000001")
    assert await pbx.availability("PJSIP/101") == DeviceState(Availability.FREE, "NOT_INUSE")   # the fake's state
    assert getvars(fake_ami) == ["DEVICE_STATE(PJSIP/101)"]


