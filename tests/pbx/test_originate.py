"""The Originate action and its dialplan variables (the contract docs/asterisk.md documents)."""
from c2c_ami.auto_answer import BUILT_IN
from c2c_ami.calls.pbx_port import Originate
from c2c_ami.pbx.originate import auto_answer_variables, channel_variables, originate_action


def originate(**overrides):
    values = dict(call_id="c-1", device="PJSIP/101", context="c2c-outbound", ext="101", phone="0899",
                  hotline="02873001234", trunk="hotline-trunk", caller_id_name="Click2Call",
                  caller_id_number="101", dest_cid_name="02873001234", dest_cid_number="02873001234",
                  ring_timeout=25, dial_timeout=50)
    return Originate(**{**values, **overrides})


def test_originate_follows_the_contract():
    action = originate_action(originate())
    assert {k: v for k, v in action.items() if k != "Variable"} == {
        "Action": "Originate", "ActionID": "c-1", "ChannelId": "c-1", "Channel": "PJSIP/101",
        "Context": "c2c-outbound", "Exten": "0899", "Priority": "1", "Timeout": "25000",
        "CallerID": '"Click2Call" <101>', "Async": "true"}
    assert action["Variable"] == [
        "C2C_CALL_ID=c-1", "C2C_EXT=101", "C2C_PHONE=0899", "C2C_HOTLINE=02873001234",
        "C2C_TRUNK=hotline-trunk", "C2C_DEST_CID_NAME=02873001234",
        "C2C_DEST_CID_NUMBER=02873001234", "C2C_DIAL_TIMEOUT=50"]


def test_auto_answer_headers_ride_along_only_when_given():
    headers = (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),)
    assert originate_action(originate(auto_answer_headers=headers))["Variable"][-1] == \
        "PJSIP_HEADER(add,Call-Info)=<sip:127.0.0.1>;answer-after=0"
    assert not [v for v in originate_action(originate())["Variable"] if "HEADER" in v]


def test_auto_answer_headers_per_channel_driver():
    headers = (("Call-Info", "<sip:127.0.0.1>;answer-after=0"), ("Alert-Info", "<http://x>;info=alert-autoanswer"))
    assert auto_answer_variables("PJSIP/101", headers) == (
        ("PJSIP_HEADER(add,Call-Info)", "<sip:127.0.0.1>;answer-after=0"),
        ("PJSIP_HEADER(add,Alert-Info)", "<http://x>;info=alert-autoanswer"))
    assert auto_answer_variables("SIP/101", headers) == (
        ("SIPADDHEADER01", "Call-Info: <sip:127.0.0.1>;answer-after=0"),
        ("SIPADDHEADER02", "Alert-Info: <http://x>;info=alert-autoanswer"))
    assert auto_answer_variables("sip/101", headers)[0][0] == "SIPADDHEADER01"
    assert auto_answer_variables("PJSIP/101", ()) == auto_answer_variables("SIP/101", ()) == ()


STANDARD_LINES = [
    "Call-Info: <sip:127.0.0.1>;answer-after=0",
    "Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0",
    "Answer-Mode: Auto",
    "P-Auto-answer: normal",
    "Answer-After: 0",
]


def test_the_standard_bundle_is_wazos_five_headers_in_order_for_pjsip():
    variables = originate_action(originate(auto_answer_headers=BUILT_IN["standard"]))["Variable"]
    assert variables[8:] == [f"PJSIP_HEADER(add,{line.replace(': ', ')=', 1)}" for line in STANDARD_LINES]
    assert variables[8] == "PJSIP_HEADER(add,Call-Info)=<sip:127.0.0.1>;answer-after=0"


def test_the_standard_bundle_for_chan_sip_is_sipaddheader01_to_05():
    variables = originate_action(originate(device="SIP/101", auto_answer_headers=BUILT_IN["standard"]))["Variable"]
    assert variables[8:] == [f"SIPADDHEADER{n:02d}={line}" for n, line in enumerate(STANDARD_LINES, 1)]


def test_a_repeated_header_gives_two_variable_lines_in_order():
    headers = (("Alert-Info", "<http://a>;info=alert-autoanswer"), ("Call-Info", "<sip:x>;answer-after=0"),
               ("Alert-Info", "Ring Answer"))
    assert originate_action(originate(auto_answer_headers=headers))["Variable"][8:] == [
        "PJSIP_HEADER(add,Alert-Info)=<http://a>;info=alert-autoanswer",
        "PJSIP_HEADER(add,Call-Info)=<sip:x>;answer-after=0",
        "PJSIP_HEADER(add,Alert-Info)=Ring Answer"]
    assert originate_action(originate(device="SIP/101", auto_answer_headers=headers))["Variable"][8:] == [
        "SIPADDHEADER01=Alert-Info: <http://a>;info=alert-autoanswer",
        "SIPADDHEADER02=Call-Info: <sip:x>;answer-after=0",
        "SIPADDHEADER03=Alert-Info: Ring Answer"]


def test_the_built_in_bundles():
    assert BUILT_IN["legacy"] == (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
                                  ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"))
    assert BUILT_IN["call-info"] == BUILT_IN["legacy"][:1] and BUILT_IN["alert-info"] == BUILT_IN["legacy"][1:]
    assert BUILT_IN["answer-mode"] == (("Answer-Mode", "Auto"),)
    assert BUILT_IN["polycom"] == (("Alert-Info", "Ring Answer"),)
    assert BUILT_IN["none"] == ()
    variables = originate_action(originate(auto_answer_headers=BUILT_IN["none"]))["Variable"]
    assert not [v for v in variables if "HEADER" in v]


def test_the_customer_id_is_a_channel_variable_only_when_given():
    assert originate_action(originate(customer_id="KH1"))["Variable"][-1] == "C2C_CUSTOMER_ID=KH1"
    assert ("C2C_CUSTOMER_ID", "KH1") in channel_variables(originate(customer_id="KH1"))
    assert not [v for v in originate_action(originate())["Variable"] if "CUSTOMER" in v]
    assert not [v for v in originate_action(originate(customer_id=None))["Variable"] if "CUSTOMER" in v]
